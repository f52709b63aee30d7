//! Arbitrary bytes, as UTF-8, through `rampart::proxy::path::normalize`.
//!
//! Asserts only what the function's doc promises (module doc of `proxy/path.rs`):
//! - it never panics;
//! - input without a leading `/` is refused (`NotOriginForm`);
//! - input containing NUL (raw, or `%00`) is refused: "Encoded `/` and `\`, raw `\`, NUL and
//!   broken percent-encoding are refused";
//! - on `Ok(out)`:
//!   - `out` starts with `/`;
//!   - no dot segments (`.`, `..`) and no empty segment except a trailing one (so no `/./`,
//!     `/../`, `//`, and no trailing `/.` or `/..`);
//!   - no `\` and no encoded separator (`%2F`, `%5C`, any case) that an upstream could decode
//!     into a slash or backslash;
//!   - every `%` starts a `%XX` escape with upper-case hex, and never of an unreserved byte
//!     (those are decoded: RFC 3986 section 6.2.2.2);
//!   - idempotent: `normalize(out) == Ok(out)`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::proxy::path::{PathError, normalize};

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn check_canonical(input: &str, out: &str) {
    assert!(out.starts_with('/'), "{input:?} -> {out:?}: no leading /");
    assert!(!out.contains('\\'), "{input:?} -> {out:?}: backslash");
    assert!(!out.contains('\0'), "{input:?} -> {out:?}: NUL");
    let segments: Vec<&str> = out[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        assert!(
            *segment != "." && *segment != "..",
            "{input:?} -> {out:?}: dot segment"
        );
        assert!(
            !segment.is_empty() || last,
            "{input:?} -> {out:?}: empty segment"
        );
    }
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(upper_hex),
            bytes.get(i + 2).copied().and_then(upper_hex),
        ) else {
            panic!("{input:?} -> {out:?}: `%` at {i} is not %XX with upper-case hex");
        };
        let decoded = hi << 4 | lo;
        assert!(
            decoded != b'/' && decoded != b'\\' && decoded != 0,
            "{input:?} -> {out:?}: encoded separator or NUL at {i}"
        );
        assert!(
            !is_unreserved(decoded),
            "{input:?} -> {out:?}: unreserved byte left encoded at {i}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let result = normalize(input);
    if !input.starts_with('/') {
        assert_eq!(result, Err(PathError::NotOriginForm), "{input:?}");
        return;
    }
    let Ok(out) = result else {
        return;
    };
    assert!(
        !input.contains('\0') && !input.contains("%00"),
        "{input:?} contains NUL but was accepted as {out:?}"
    );
    check_canonical(input, &out);
    let again = normalize(&out);
    assert_eq!(
        again.as_deref(),
        Ok(&*out),
        "not idempotent: {input:?} -> {out:?} -> {again:?}"
    );
});
