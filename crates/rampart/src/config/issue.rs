//! `Issue`: a problem at a place in the config. A leaf that imports nothing of the crate, so that
//! every layer (config validation, policies, the route build) can report problems the same way.

/// A problem at a JSON pointer into the config (`/routes/2/cors`), before lines are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub pointer: String,
    pub message: String,
}

impl Issue {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}
