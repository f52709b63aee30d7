//! Arbitrary bytes as a `multipart/form-data` body (boundary `BOUNDARY` below) through
//! `rampart::policy::validate::multipart::parse`.
//!
//! Limits are small so that short inputs reach them: 4 parts, 256 bytes per file part, 64 per
//! field part, 256 bytes of part headers. `parse` is async but only reads the in-memory body, so
//! it is polled with a no-op waker (no runtime); it must finish within a bounded number of polls.
//!
//! Asserts:
//! - it never panics (a body is client-controlled);
//! - `Ok(parts)`: at most `max_parts` parts; each has a name of 1 to 255 bytes without control
//!   characters; a file part's name passes `file_name_is_allowed` (no path separator, `..`,
//!   leading dot, NUL, bidi override, also once percent-decoded); a file part holds at most
//!   `max_part_bytes` bytes and a field part at most `max_field_bytes`; every part's data is a
//!   substring of the body (the parser never invents bytes).

#![no_main]

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rampart::policy::validate::multipart::{MultipartLimits, file_name_is_allowed, parse};

const BOUNDARY: &str = "fuzzB0undary";

const LIMITS: MultipartLimits = MultipartLimits {
    max_parts: 4,
    max_part_bytes: 256,
    max_field_bytes: 64,
    max_header_bytes: 256,
};

/// Polls enough to finish any in-memory body: every poll that returns `Pending` without a waker
/// registration would loop forever, which this bound turns into a failure.
const MAX_POLLS: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let body = Bytes::copy_from_slice(data);
    let mut future = pin!(parse(body, &content_type, &LIMITS));
    let mut cx = Context::from_waker(Waker::noop());
    let mut result = None;
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(r) = future.as_mut().poll(&mut cx) {
            result = Some(r);
            break;
        }
    }
    let Some(result) = result else {
        panic!("parse did not finish within {MAX_POLLS} polls: {data:?}");
    };
    let Ok(parts) = result else {
        return;
    };
    assert!(parts.len() <= LIMITS.max_parts, "{} parts", parts.len());
    for part in &parts {
        assert!(
            !part.name.is_empty()
                && part.name.len() <= 255
                && !part.name.chars().any(char::is_control),
            "part name not allowed: {:?}",
            part.name
        );
        let limit = match &part.filename {
            Some(name) => {
                assert!(file_name_is_allowed(name), "file name accepted: {name:?}");
                LIMITS.max_part_bytes
            }
            None => LIMITS.max_field_bytes,
        };
        assert!(
            part.data.len() <= limit,
            "part of {} bytes",
            part.data.len()
        );
        assert!(
            part.data.is_empty() || data.windows(part.data.len()).any(|w| w == &part.data[..]),
            "part data not found in the body"
        );
    }
});
