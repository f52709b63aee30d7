use super::*;

fn refusal(body: &str) -> Option<Violation> {
    check(body.as_bytes(), &JsonLimits::default()).err()
}

#[test]
fn an_ordinary_document_passes() {
    let body =
        r#"{"id":42,"name":"keyboard","tags":["a","b"],"price":19.99,"meta":{"x":null,"ok":true}}"#;
    assert_eq!(refusal(body), None);
}

#[test]
fn deep_nesting_is_refused_at_the_limit_with_its_pointer() {
    let limits = JsonLimits {
        max_depth: 3,
        ..JsonLimits::default()
    };
    assert!(check(br#"{"a":{"b":[1]}}"#, &limits).is_ok());
    let refused = check(br#"{"a":{"b":[[1]]}}"#, &limits).err();
    assert_eq!(
        refused,
        Some(Violation::new("/body/a/b/0", "is nested deeper than 3"))
    );
}

#[test]
fn a_nesting_bomb_far_beyond_serde_limits_is_refused_by_ours() {
    let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let refused = refusal(&bomb);
    assert!(
        matches!(&refused, Some(v) if v.reason == "is nested deeper than 32"),
        "{refused:?}"
    );
}

#[test]
fn duplicate_member_names_are_refused_even_when_escaped_differently() {
    let refused = refusal(r#"{"role":"user","r\u006fle":"admin"}"#);
    assert_eq!(
        refused,
        Some(Violation::new("/body/role", "is a duplicate member name"))
    );
    // Many members: the check moves to a hash set; still caught.
    let mut members: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
    members.push(r#""k3":0"#.to_owned());
    let body = format!("{{{}}}", members.join(","));
    assert!(matches!(refusal(&body), Some(v) if v.pointer == "/body/k3"));
}

#[test]
fn too_many_members_in_one_object_is_refused() {
    let limits = JsonLimits {
        max_members: 10,
        ..JsonLimits::default()
    };
    let body = |n: usize| {
        let members: Vec<String> = (0..n).map(|i| format!(r#""m{i}":1"#)).collect();
        format!("{{{}}}", members.join(","))
    };
    assert!(check(body(10).as_bytes(), &limits).is_ok());
    let refused = check(body(11).as_bytes(), &limits).err();
    assert!(matches!(refused, Some(v) if v.reason.contains("more than 10 members")));
}

#[test]
fn a_long_array_is_refused_with_its_pointer() {
    let limits = JsonLimits {
        max_items: 5,
        ..JsonLimits::default()
    };
    assert!(check(br#"{"a":[1,2,3,4,5]}"#, &limits).is_ok());
    let refused = check(br#"{"a":[1,2,3,4,5,6]}"#, &limits).err();
    assert_eq!(
        refused,
        Some(Violation::new(
            "/body/a",
            "is an array of more than 5 elements"
        ))
    );
}

#[test]
fn an_oversized_string_is_refused_without_echoing_it() {
    let limits = JsonLimits {
        max_string_bytes: 8,
        ..JsonLimits::default()
    };
    let refused = check(br#"{"note":"SECRETSECRETSECRET"}"#, &limits).err();
    assert!(matches!(&refused, Some(v) if v.pointer == "/body/note"));
    assert!(!format!("{refused:?}").contains("SECRET"));
}

#[test]
fn an_oversized_member_name_is_refused() {
    let name = "n".repeat(300);
    let refused = refusal(&format!(r#"{{"{name}":1}}"#));
    assert!(matches!(refused, Some(v) if v.reason.contains("member name longer")));
}

#[test]
fn a_huge_number_literal_is_refused_but_strings_of_digits_are_not_numbers() {
    let digits = "9".repeat(50);
    assert!(refusal(&format!(r#"{{"n":{digits}}}"#)).is_some());
    assert_eq!(refusal(&format!(r#"{{"n":"{digits}"}}"#)), None);
    assert_eq!(
        refusal(r#"{"n":"\"99999999999999999999999999999999999999999"}"#),
        None
    );
}

#[test]
fn invalid_utf8_is_refused() {
    let body = b"{\"a\":\"\xff\xfe\"}";
    let refused = check(body, &JsonLimits::default()).err();
    assert!(matches!(refused, Some(v) if v.pointer == "/body"));
}

#[test]
fn malformed_json_and_trailing_data_are_refused_without_library_text() {
    for body in [r#"{"a":1"#, r#"{"a":1}{"#, "{'a':1}", r#"{"a":1,}"#, ""] {
        let refused = refusal(body);
        assert!(
            matches!(&refused, Some(v) if v.pointer == "/body" && v.reason.contains("line")),
            "{body}: {refused:?}"
        );
    }
}

#[test]
fn pointers_escape_slashes_and_tildes_in_member_names() {
    let limits = JsonLimits {
        max_items: 1,
        ..JsonLimits::default()
    };
    let refused = check(br#"{"a/b~c":[1,2]}"#, &limits).err();
    assert!(matches!(refused, Some(v) if v.pointer == "/body/a~1b~0c"));
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let alphabet = br#"{}[]":,0123456789.eE-+ \truefalsnl\u"#;
    for _ in 0..5_000 {
        let len = rng.random_range(0..64);
        let body: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let _ = check(&body, &JsonLimits::default());
    }
}

#[test]
fn parse_builds_the_same_value_serde_json_reads_and_refuses_what_check_refuses() {
    let limits = JsonLimits::default();
    for text in [
        r#"{"a":1,"b":[true,false,null],"c":{"d":"\u00e9\n","e":-1.5e3},"f":18446744073709551615}"#,
        r#"[1, -2, 3.25, "x", [], {}]"#,
        r#""just a string""#,
        "  42  ",
        r#"{"r\u006fle":"admin","n":1e400}"#,
    ] {
        let expected: Result<serde_json::Value, _> = serde_json::from_slice(text.as_bytes());
        match (parse(text.as_bytes(), &limits), expected) {
            (Ok(built), Ok(expected)) => assert_eq!(built, expected, "{text}"),
            (built, expected) => {
                assert_eq!(built.is_err(), expected.is_err(), "{text}: {built:?}");
            }
        }
    }
    for bomb in [
        r#"{"role":"user","role":"admin"}"#.to_owned(),
        format!("{}{}", "[".repeat(40), "]".repeat(40)),
    ] {
        let built = parse(bomb.as_bytes(), &limits).map(|_| ());
        assert_eq!(built, check(bomb.as_bytes(), &limits), "{bomb}");
        assert!(built.is_err());
    }
}

/// The number scan as it was written first, byte by byte: the reference the memchr scan must
/// agree with.
fn overlong_number_byte_by_byte(body: &[u8], max: usize) -> bool {
    let (mut in_string, mut escaped, mut run) = (false, false, 0usize);
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => (in_string, run) = (true, 0),
            b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' => {
                run += 1;
                if run > max {
                    return true;
                }
            }
            _ => run = 0,
        }
    }
    false
}

#[test]
fn the_number_scan_skips_strings_exactly_as_a_byte_by_byte_scan() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let alphabet = br#"""""\\\\0123456789-e.,:{}[ a"#;
    for _ in 0..20_000 {
        let len = rng.random_range(0..48);
        let body: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let max = rng.random_range(1..6);
        assert_eq!(
            overlong_number(&body, max),
            overlong_number_byte_by_byte(&body, max),
            "{:?} max {max}",
            String::from_utf8_lossy(&body)
        );
    }
    // An escaped backslash closes nothing: the quote after it ends the string, and the number
    // after that is counted.
    let digits = "9".repeat(50);
    assert!(refusal(&format!(r#"{{"s":"\\","n":{digits}}}"#)).is_some());
}

#[test]
fn parse_refuses_a_duplicate_among_many_members_as_check_does() {
    let mut members: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
    members.push(r#""k\u0033":0"#.to_owned());
    let body = format!("{{{}}}", members.join(","));
    let refused = parse(body.as_bytes(), &JsonLimits::default()).err();
    assert_eq!(
        refused,
        Some(Violation::new("/body/k3", "is a duplicate member name"))
    );
    assert_eq!(
        refusal(&body).map(|v| v.pointer),
        Some("/body/k3".to_owned())
    );
}

#[test]
fn parse_builds_objects_as_serde_json_does_and_refuses_every_repeated_name_as_check_does() {
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let limits = JsonLimits::default();
    // A name as written and as read: a small alphabet, so that some objects repeat one.
    let name = |rng: &mut rand::rngs::StdRng| {
        let parts: Vec<(&str, &str)> = (0..rng.random_range(0..3))
            .map(|_| [("a", "a"), ("b", "b"), ("\\u0061", "a"), ("é", "é")][rng.random_range(0..4)])
            .collect();
        let raw: String = parts.iter().map(|p| p.0).collect();
        let read: String = parts.iter().map(|p| p.1).collect();
        (raw, read)
    };
    let repeats = |names: &[String]| {
        let mut seen = HashSet::new();
        names
            .iter()
            .filter(|n| !seen.insert(n.as_str()))
            .cloned()
            .collect::<HashSet<String>>()
    };
    for _ in 0..2_000 {
        let inner: Vec<(String, String)> = (0..rng.random_range(0..4))
            .map(|_| name(&mut rng))
            .collect();
        let mut outer: Vec<(String, String)> = (0..rng.random_range(0..6))
            .map(|_| name(&mut rng))
            .collect();
        let holder = name(&mut rng);
        outer.push(holder.clone());
        let members: Vec<String> = inner
            .iter()
            .enumerate()
            .map(|(i, (raw, _))| format!(r#""{raw}":{i}"#))
            .collect();
        let mut text: Vec<String> = outer[..outer.len() - 1]
            .iter()
            .enumerate()
            .map(|(i, (raw, _))| format!(r#""{raw}":[{i},"x"]"#))
            .collect();
        text.push(format!(r#""{}":{{{}}}"#, holder.0, members.join(",")));
        let body = format!("{{{}}}", text.join(","));
        // Every pointer a refusal may name: a repeated name of the outer object, or of the
        // inner one (reached through the last of the outer names).
        let read =
            |names: &[(String, String)]| names.iter().map(|n| n.1.clone()).collect::<Vec<_>>();
        let mut allowed: HashSet<String> = repeats(&read(&outer))
            .into_iter()
            .map(|n| format!("/body/{}", escape_token(&n)))
            .collect();
        allowed.extend(
            repeats(&read(&inner))
                .into_iter()
                .map(|n| format!("/body/{}/{}", escape_token(&holder.1), escape_token(&n))),
        );
        let built = parse(body.as_bytes(), &limits);
        let checked = check(body.as_bytes(), &limits);
        assert_eq!(built.is_ok(), allowed.is_empty(), "{body}: {built:?}");
        assert_eq!(checked.is_ok(), allowed.is_empty(), "{body}: {checked:?}");
        match built {
            Ok(value) => {
                let expected: serde_json::Value = serde_json::from_slice(body.as_bytes()).unwrap();
                assert_eq!(value, expected, "{body}");
            }
            Err(refused) => {
                assert_eq!(refused.reason, "is a duplicate member name", "{body}");
                assert!(
                    allowed.contains(&refused.pointer),
                    "{body}: {refused:?} not in {allowed:?}"
                );
            }
        }
    }
}
