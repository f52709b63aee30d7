//! Arbitrary UTF-8 text as an HTML field value through the sanitizer
//! (`rampart::policy::sanitize::html::HtmlSanitizer::sanitize`, default policy).
//!
//! Asserts:
//! - it never panics (a field value is client-controlled);
//! - text without `<` is returned as it is, with `removed_markup == false` (the documented fast
//!   path: `&` and `>` alone cannot start markup).
//!
//! Not asserted, because the fuzzer showed that they do not hold (see docs/FUZZING.md, "findings
//! that are not bugs"); both are shown by `<a><table><a>`, in
//! `regressions/sanitize_html/nested-a-via-table`:
//! - idempotence of the output. Foster parenting builds an `a` inside an `a`; ammonia drops the
//!   `table` and serializes that tree as
//!   `<a rel="noopener noreferrer"><a rel="noopener noreferrer"></a></a>`, which any HTML parser
//!   (a second pass, a browser) reads as two sibling links. This is the HTML parsing algorithm,
//!   not a Rampart bug, and nothing is gained by the re-parse: no element or attribute outside
//!   the policy, only the nesting changes.
//! - "a second pass reports no removal". When the output is not a fixed point, the second pass
//!   compares its input, whose links carry the `rel` that the first pass added, with its output,
//!   where that `rel` is discounted as the sanitizer's own; so it reports a removal. A stored
//!   value that went through the sanitizer once would be refused by `on_unsafe = "reject"` on a
//!   second pass only in this non-fixed-point case.

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
        assert!(
            !first.removed_markup,
            "removal reported without `<`: {text:?}"
        );
    }
    // The output must itself be sanitizable without a panic.
    let _ = sanitizer.sanitize(&first.html);
});
