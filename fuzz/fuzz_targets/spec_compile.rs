//! Arbitrary UTF-8 text as an OpenAPI contract (YAML, or JSON when it starts with `{`) through
//! `rampart::policy::validate::spec::Spec::compile_str` with the default `CompileOptions`.
//!
//! The contract's origin is a file in a directory that holds nothing (created once per fuzzing
//! process), so a relative `$ref` finds no file, and one that climbs out (`../x`) must be refused
//! without being read. Run with `-timeout=10`: compiling must not hang either (YAML aliases,
//! `$ref` cycles, recursive schemas).
//!
//! Asserts:
//! - it never panics, and it returns (libFuzzer's timeout catches a hang);
//! - `Err(issues)`: at least one issue, each in the contract's directory (the main file or a file
//!   beside it: never a path outside it), with a 1-based line when it has one, and a message;
//!   `Display` of each (what `rampart check` prints) does not panic;
//! - `Ok(spec)`: `operations()` yields `operation_count()` operations and each is found again by
//!   its key.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart::policy::validate::spec::{CompileOptions, Spec};

/// An empty directory of this process, and the contract's (nonexistent) file name in it.
fn origin() -> &'static (PathBuf, PathBuf) {
    static ORIGIN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rampart-fuzz-spec-{}", std::process::id()));
        // An existing directory is fine as long as it is empty (checked below).
        let _ = std::fs::create_dir_all(&dir);
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let empty = std::fs::read_dir(&dir).map(|mut d| d.next().is_none());
        assert!(
            matches!(empty, Ok(true)),
            "{} must be an empty directory",
            dir.display()
        );
        let file = dir.join("contract");
        (dir, file)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (dir, file) = origin();
    match Spec::compile_str(text, file, &CompileOptions::default()) {
        Ok(spec) => {
            let keys: Vec<usize> = spec.operations().map(|op| op.key()).collect();
            assert_eq!(keys.len(), spec.operation_count());
            for key in keys {
                assert!(
                    spec.operation(key).is_some_and(|op| op.key() == key),
                    "operation {key} is not found by its key"
                );
            }
        }
        Err(issues) => {
            assert!(!issues.is_empty(), "Err without an issue: {text:?}");
            for issue in &issues {
                assert!(
                    issue.file.starts_with(dir),
                    "issue outside the contract's directory: {issue:?}"
                );
                assert!(issue.line != Some(0), "line 0: {issue:?}");
                assert!(!issue.message.is_empty(), "no message: {issue:?}");
                let _ = issue.to_string();
            }
        }
    }
});
