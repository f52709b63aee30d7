//! Arbitrary UTF-8 text as an HTML field value through the sanitizer
//! (`rampart::policy::sanitize::html::HtmlSanitizer::sanitize`, default policy).
//!
//! Asserts:
//! - it never panics (a field value is client-controlled);
//! - text without `<` is returned as it is, with `removed_markup == false` (the documented fast
//!   path: `&` and `>` alone cannot start markup);
//! - idempotence: sanitizing the output again returns the output unchanged, and reports no
//!   removal. What the gateway stores is then a fixed point: a second gateway (or the same one on
//!   a replay) neither changes it nor counts a removal, and no markup is left for a later pass to
//!   find.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart::policy::sanitize::html::HtmlSanitizer;

fn sanitizer() -> &'static HtmlSanitizer {
    static SANITIZER: OnceLock<HtmlSanitizer> = OnceLock::new();
    SANITIZER.get_or_init(HtmlSanitizer::default)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sanitizer = sanitizer();
    let first = sanitizer.sanitize(text);
    if !text.contains('<') {
        assert_eq!(first.html, text, "text without `<` was changed");
        assert!(!first.removed_markup, "removal reported without `<`: {text:?}");
    }
    let second = sanitizer.sanitize(&first.html);
    assert_eq!(
        second.html, first.html,
        "not idempotent: {text:?} -> {:?} -> {:?}",
        first.html, second.html
    );
    assert!(
        !second.removed_markup,
        "removal reported on the sanitizer's own output: {text:?} -> {:?}",
        first.html
    );
});
