//! `BodyView`: a body read whole (bounded), as the body policies of one request or response see
//! it. It is parsed as JSON at most once, however many policies look at it, and serialized again
//! only if one of them changed it.

use bytes::Bytes;

use crate::policy::validate::violation::Violation;

/// A whole body, its JSON reading once asked for, and whether a policy changed it.
pub struct BodyView {
    bytes: Bytes,
    json: Option<serde_json::Value>,
    json_changed: bool,
}

impl BodyView {
    pub fn new(bytes: Bytes) -> Self {
        Self {
            bytes,
            json: None,
            json_changed: false,
        }
    }

    /// The body as received (not reflecting a JSON change not yet serialized).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The body as JSON, parsed on the first call. The JSON limits run before (they are the first
    /// body policy of every route), so this never parses a bomb.
    pub fn json(&mut self) -> Result<&mut serde_json::Value, Violation> {
        match &mut self.json {
            Some(value) => Ok(value),
            slot @ None => {
                // Checked as UTF-8 whole, the text is not checked again string by string (as
                // `from_slice` does); a body that is not UTF-8 is not JSON (RFC 8259 section 8.1).
                let not_json = || Violation::new("/body", "is not valid JSON");
                let text = std::str::from_utf8(&self.bytes).map_err(|_| not_json())?;
                let value = serde_json::from_str(text).map_err(|_| not_json())?;
                Ok(slot.insert(value))
            }
        }
    }

    /// Hands over the JSON value a policy has already parsed from these bytes (the JSON limits
    /// build it while checking), so no later policy parses the body again.
    pub fn set_json(&mut self, value: serde_json::Value) {
        self.json = Some(value);
    }

    /// Records that the JSON value was changed: the body is serialized from it when it leaves.
    pub fn mark_json_changed(&mut self) {
        self.json_changed = true;
    }

    /// Whether the body leaves different from how it arrived.
    pub fn changed(&self) -> bool {
        self.json_changed
    }

    /// The body to send on: the original bytes, or the changed JSON serialized.
    pub fn into_bytes(self) -> Bytes {
        match (self.json_changed, self.json) {
            (true, Some(value)) => match serde_json::to_vec(&value) {
                Ok(bytes) => Bytes::from(bytes),
                // A `Value` always serializes; keep the original rather than send nothing.
                Err(_) => self.bytes,
            },
            _ => self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_body_leaves_byte_for_byte() {
        let original = Bytes::from_static(br#"{ "b": 1,  "a": 2 }"#);
        let mut view = BodyView::new(original.clone());
        assert!(view.json().is_ok());
        assert!(!view.changed());
        assert_eq!(view.into_bytes(), original);
    }

    #[test]
    fn a_body_is_json_only_when_it_is_utf8() {
        let mut view = BodyView::new(Bytes::from_static(b"{\"a\":\"\xff\"}"));
        assert!(view.json().is_err());
        let mut view = BodyView::new(Bytes::from_static("{\"a\":\"é\"}".as_bytes()));
        assert_eq!(view.json().ok().map(|v| v["a"].clone()), Some("é".into()));
    }

    #[test]
    fn a_changed_json_body_is_serialized_from_the_value() {
        let mut view = BodyView::new(Bytes::from_static(br#"{"a":"<b>x</b>","z":1}"#));
        if let Ok(value) = view.json() {
            value["a"] = serde_json::Value::from("x");
        }
        view.mark_json_changed();
        assert_eq!(view.into_bytes(), Bytes::from_static(br#"{"a":"x","z":1}"#));
    }
}
