//! Arbitrary bytes, as UTF-8, through the whole configuration loader (`rampart::config::parse`:
//! TOML syntax with recovery, the generated JSON Schema, serde, semantic validation).
//!
//! Asserts:
//! - it never panics;
//! - `Ok(config)`: the config passes semantic validation again (`rampart::config::validate`
//!   finds no issue in the value that `parse` returned);
//! - `Err(errors)`: there is at least one error, each at a line and column inside the text
//!   (the loader promises every error "with its path and line").

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rampart::config::{ConfigSource, parse, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = ConfigSource::from_text("fuzz.toml", text, Path::new("/nonexistent"));
    match parse(&source) {
        Ok(config) => {
            let issues = validate(&config);
            assert!(
                issues.is_empty(),
                "parse returned Ok but the config does not re-validate: {issues:?}"
            );
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "Err without any error");
            // Lines and columns are 1-based; the last possible position is just past the text.
            let lines = text.matches('\n').count() + 1;
            for e in &errors.errors {
                assert!(
                    e.line >= 1 && e.line <= lines && e.column >= 1,
                    "error outside the text ({lines} lines): {e:?}"
                );
            }
            // Display is what `rampart check` prints; it must not panic either.
            let _ = errors.to_string();
        }
    }
});
