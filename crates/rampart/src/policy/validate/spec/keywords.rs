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

/// Backtracking allowed per pattern match, for the few schemas whose patterns need a
/// backtracking engine (lookaround, back-references): a request may carry thousands of strings,
/// so each match is kept to a few thousand steps (a match that runs out refuses the value).
const PATTERN_BACKTRACK_LIMIT: usize = 10_000;

/// Upper bound on a compiled pattern (patterns come from the contract).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Which regex engine a schema's `pattern`s and `patternProperties` run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PatternEngine {
    /// The `regex` crate: time linear in the input, whatever the pattern. Every schema whose
    /// patterns it reads (nearly all) is compiled with it.
    Linear,
    /// `fancy-regex`, bounded by [`PATTERN_BACKTRACK_LIMIT`]: only for a schema with a pattern
    /// the linear engine cannot read (lint `pattern-backtracking`).
    Backtracking,
}

/// The options every schema of a contract is compiled with: 2020-12, formats asserted,
/// Rampart's keywords, bounded pattern matching on `engine`.
pub(super) fn options<'r>(
    registry: &'r jsonschema::Registry<'r>,
    engine: PatternEngine,
) -> ValidationOptions<'r> {
    let options = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(registry);
    with_engine(options, engine)
        .should_validate_formats(true)
        .with_keyword(READ_ONLY_KEYWORD, |_, _, _| Ok(Box::new(ReadOnly)))
        .with_keyword(INT_KEYWORD, integer_width)
        .with_format("byte", is_base64)
}

fn with_engine(options: ValidationOptions<'_>, engine: PatternEngine) -> ValidationOptions<'_> {
    match engine {
        PatternEngine::Linear => {
            options.with_pattern_options(PatternOptions::regex().size_limit(PATTERN_SIZE_LIMIT))
        }
        PatternEngine::Backtracking => options.with_pattern_options(
            PatternOptions::fancy_regex()
                .backtrack_limit(PATTERN_BACKTRACK_LIMIT)
                .size_limit(PATTERN_SIZE_LIMIT),
        ),
    }
}

/// Whether an ECMA-262 `pattern` needs the backtracking engine: the linear one cannot read it
/// (lookaround, back-references) and the backtracking one can. A pattern neither reads is
/// reported by the compiler, not here.
pub(crate) fn needs_backtracking(pattern: &str) -> bool {
    let schema = serde_json::json!({ "pattern": pattern });
    let compiles = |engine| {
        with_engine(jsonschema::options(), engine)
            .build(&schema)
            .is_ok()
    };
    !compiles(PatternEngine::Linear) && compiles(PatternEngine::Backtracking)
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
        // A float: compared as a float against exact bounds. The minimum (`-2^31` or `-2^63`) is
        // a power of two and exact as an f64; the maximum is one below a power of two, which an
        // f64 cannot hold for 64 bits (`i64::MAX as f64` rounds up to 2^63), so the bound is the
        // exclusive power of two above it: `f < 2^31` or `f < 2^63`.
        #[allow(clippy::cast_precision_loss)]
        let min = self.min as f64;
        let above = -min;
        n.as_f64().is_some_and(|f| f >= min && f < above)
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{INT32_REASON, INT64_REASON, IntegerWidth};

    fn number(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }

    const INT64: IntegerWidth = IntegerWidth {
        min: i64::MIN,
        max: i64::MAX,
        reason: INT64_REASON,
    };

    #[test]
    fn two_to_the_63_is_not_an_int64_in_any_spelling() {
        for text in [
            "9223372036854775808",
            "9223372036854775808.0",
            "9.223372036854775808e18",
            "-9223372036854777856.0",
        ] {
            assert!(!INT64.fits(&number(text)), "{text}");
        }
        for text in [
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775808.0",
            "9223372036854774784.0",
        ] {
            assert!(INT64.fits(&number(text)), "{text}");
        }
    }

    #[test]
    fn two_to_the_31_is_not_an_int32() {
        let int32 = IntegerWidth {
            min: i64::from(i32::MIN),
            max: i64::from(i32::MAX),
            reason: INT32_REASON,
        };
        assert!(!int32.fits(&number("2147483648.0")));
        assert!(!int32.fits(&number("2147483648")));
        assert!(int32.fits(&number("2147483647.0")));
        assert!(int32.fits(&number("-2147483648.0")));
        assert!(!int32.fits(&number("-2147483649.0")));
    }
}
