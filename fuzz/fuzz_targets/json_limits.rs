//! Arbitrary bytes as a JSON request body through the JSON threat limits
//! (`rampart::policy::validate::json_limits::check`, default `JsonLimits`).
//!
//! Asserts:
//! - it never panics (a body is client-controlled);
//! - `Ok` implies serde_json parses the same bytes into a `serde_json::Value`. This holds by
//!   design: `check` drives the same serde_json deserializer (`deserialize_any`, then `end()`;
//!   reading a body that is UTF-8 whole as a `str`, which differs from reading its bytes only in
//!   not checking each string's UTF-8 again),
//!   only adding refusals (limits, duplicate names) and a pre-scan for long numbers, and its depth
//!   limit (32) is below serde_json's recursion limit (128). So the guard never lets through a
//!   body that the upstream's serde_json would call malformed.
//! - `Ok` implies the parsed value is within the limits the guard promises: nesting depth,
//!   members per object, elements per array, string and member-name bytes. (`Value` keeps only
//!   the last of duplicate members, so the member count is a lower bound; that is enough.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::policy::validate::json_limits::{JsonLimits, check};
use serde_json::Value;

/// Checks `value` (at `depth` containers deep) against the limits, without recursion so that a
/// deep value cannot overflow the fuzzer's stack.
fn assert_within(value: &Value, limits: &JsonLimits, input: &[u8]) {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::Array(items) => {
                assert!(
                    depth < limits.max_depth as usize,
                    "accepted nesting deeper than {}: {input:?}",
                    limits.max_depth
                );
                assert!(items.len() <= limits.max_items as usize, "array too long");
                stack.extend(items.iter().map(|v| (v, depth + 1)));
            }
            Value::Object(members) => {
                assert!(
                    depth < limits.max_depth as usize,
                    "accepted nesting deeper than {}: {input:?}",
                    limits.max_depth
                );
                assert!(
                    members.len() <= limits.max_members as usize,
                    "object too large"
                );
                for (name, member) in members {
                    assert!(
                        name.len() <= limits.max_name_bytes as usize,
                        "member name too long: {input:?}"
                    );
                    stack.push((member, depth + 1));
                }
            }
            Value::String(s) => assert!(
                s.len() <= limits.max_string_bytes as usize,
                "string too long"
            ),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = JsonLimits::default();
    let Ok(()) = check(data, &limits) else {
        return;
    };
    let parsed = serde_json::from_slice::<Value>(data);
    let Ok(value) = parsed else {
        panic!("check accepted what serde_json refuses ({parsed:?}): {data:?}");
    };
    assert_within(&value, &limits, data);
});
