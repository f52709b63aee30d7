//! The violation type lives with the errors (a leaf module); validation code names it here.

pub use crate::error::violation::{Violation, escape_token};
