//! Rampart's own schema keywords and the validator options every contract schema is built with.
//!
//! The compiler writes these keywords into the schemas it prepares (never read from a contract
//! as such: a contract that uses the names gets the same meaning). Their error messages are
//! Rampart's words and are the reasons the client sees.

use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, PatternOptions, ValidationError, ValidationOptions};
use serde_json::{Map, Value};

/// Present on a schema whose value a client may not send (`readOnly: true`).
pub(super) const READ_ONLY_KEYWORD: &str = "x-rampart-read-only";
/// `32` or `64`: a number must fit a signed integer of that width (`format: int32|int64`).
pub(super) const INT_KEYWORD: &str = "x-rampart-int";

pub(super) const READ_ONLY_REASON: &str = "is read-only";
pub(super) const INT32_REASON: &str = "must be a 32-bit integer";
pub(super) const INT64_REASON: &str = "must be a 64-bit integer";

/// Backtracking allowed per pattern match: a contract's pattern with nested quantifiers must
/// not let one request burn the CPU (a failed match refuses the value).
const PATTERN_BACKTRACK_LIMIT: usize = 100_000;

/// The options every schema of a contract is compiled with: 2020-12, formats asserted,
/// Rampart's keywords, bounded pattern matching.
pub(super) fn options<'r>(registry: &'r jsonschema::Registry<'r>) -> ValidationOptions<'r> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(registry)
        .should_validate_formats(true)
        .with_pattern_options(
            PatternOptions::fancy_regex().backtrack_limit(PATTERN_BACKTRACK_LIMIT),
        )
        .with_keyword(READ_ONLY_KEYWORD, |_, _, _| Ok(Box::new(ReadOnly)))
        .with_keyword(INT_KEYWORD, integer_width)
        .with_format("byte", is_base64)
}

/// OpenAPI's `format: byte`: base64 (RFC 4648 section 4, padded).
fn is_base64(text: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .is_ok()
}

struct ReadOnly;

impl<'i> Keyword<'i> for ReadOnly {
    fn validate(&self, _instance: &'i Value) -> Result<(), ValidationError<'i>> {
        Err(ValidationError::custom(READ_ONLY_REASON))
    }

    fn is_valid(&self, _instance: &'i Value) -> bool {
        false
    }
}

fn integer_width<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _path: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    match value.as_u64() {
        Some(32) => Ok(Box::new(IntegerWidth {
            min: i64::from(i32::MIN),
            max: i64::from(i32::MAX),
            reason: INT32_REASON,
        })),
        Some(64) => Ok(Box::new(IntegerWidth {
            min: i64::MIN,
            max: i64::MAX,
            reason: INT64_REASON,
        })),
        _ => Err(ValidationError::schema("x-rampart-int must be 32 or 64")),
    }
}

/// Range of a signed integer; only numbers are checked (the `type` keyword speaks for others).
struct IntegerWidth {
    min: i64,
    max: i64,
    reason: &'static str,
}

impl IntegerWidth {
    fn fits(&self, instance: &Value) -> bool {
        let Value::Number(n) = instance else {
            return true;
        };
        if let Some(i) = n.as_i64() {
            return (self.min..=self.max).contains(&i);
        }
        if n.as_u64().is_some() {
            // Above i64::MAX.
            return false;
        }
        // A float: compared as a float (both bounds are exactly representable as powers of two
        // or one below them, and the comparison is what the upstream's parser would do).
        #[allow(clippy::cast_precision_loss)]
        let (min, max) = (self.min as f64, self.max as f64);
        n.as_f64().is_some_and(|f| f >= min && f <= max)
    }
}

impl<'i> Keyword<'i> for IntegerWidth {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.fits(instance) {
            Ok(())
        } else {
            Err(ValidationError::custom(self.reason))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.fits(instance)
    }
}
