//! `application/x-www-form-urlencoded` bodies.
//!
//! Threat: a form body with so many fields that the upstream's parameter map becomes the
//! attack (hash flooding, memory), or with percent-encoded bytes that are not UTF-8, which
//! parsers repair differently (replacement characters, Latin-1 fallbacks, truncation), so the
//! value the gateway checked is not the value the upstream uses.
//!
//! Invariants: parsing follows the WHATWG urlencoded parser (split on `&`, skip empty
//! sequences, split each at the first `=`, `+` is a space, then percent-decode); it stops at the
//! first field over `max_fields`, so the output is bounded; a name or value that is not UTF-8
//! after decoding is refused, never repaired. A refusal names the field (`/body/{name}`) when the
//! name itself is readable, else `/body`, and never the value.

use std::borrow::Cow;

use super::violation::{Violation, escape_token};

/// Parses a urlencoded form into its fields, in order (a name may repeat).
pub fn parse_urlencoded(
    body: &[u8],
    max_fields: usize,
) -> Result<Vec<(String, String)>, Violation> {
    let mut fields = Vec::new();
    for sequence in body.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
        if fields.len() == max_fields {
            return Err(Violation::new(
                "/body",
                format!("more than {max_fields} fields"),
            ));
        }
        let (raw_name, raw_value) = match sequence.iter().position(|&b| b == b'=') {
            Some(at) => (&sequence[..at], &sequence[at + 1..]),
            None => (sequence, &[][..]),
        };
        let Some(name) = decode(raw_name) else {
            return Err(Violation::new(
                "/body",
                "a field name must be valid UTF-8 once decoded",
            ));
        };
        let Some(value) = decode(raw_value) else {
            return Err(Violation::new(
                format!("/body/{}", escape_token(&name)),
                "must be valid UTF-8 once decoded",
            ));
        };
        fields.push((name, value));
    }
    Ok(fields)
}

/// `+` to space, then percent-decoding, refusing bytes that are not UTF-8. Written here rather
/// than with `form_urlencoded::parse` because that one replaces invalid UTF-8 silently.
fn decode(raw: &[u8]) -> Option<String> {
    let spaced: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_form_decodes_plus_and_percent_escapes_in_order() {
        let got = parse_urlencoded(b"q=Tom+%26+Jerry&empty=&flag&q=%C3%A9", 10);
        assert_eq!(
            got,
            Ok(pairs(&[
                ("q", "Tom & Jerry"),
                ("empty", ""),
                ("flag", ""),
                ("q", "é")
            ]))
        );
    }

    #[test]
    fn empty_sequences_do_not_count_as_fields() {
        assert_eq!(parse_urlencoded(b"&&a=1&&", 1), Ok(pairs(&[("a", "1")])));
        assert_eq!(parse_urlencoded(b"", 0), Ok(vec![]));
    }

    #[test]
    fn a_field_flood_is_refused_at_the_first_field_over_the_limit() {
        let body = "a=1&".repeat(1001);
        assert_eq!(
            parse_urlencoded(body.as_bytes(), 1000),
            Err(Violation::new("/body", "more than 1000 fields"))
        );
        assert!(parse_urlencoded("a=1&".repeat(1000).as_bytes(), 1000).is_ok());
    }

    #[test]
    fn a_value_that_is_not_utf8_once_decoded_is_refused_not_repaired() {
        assert_eq!(
            parse_urlencoded(b"name=%FF%FE", 10),
            Err(Violation::new(
                "/body/name",
                "must be valid UTF-8 once decoded"
            ))
        );
        // An overlong encoding of `/`, a classic filter bypass.
        assert!(parse_urlencoded(b"path=%C0%AF", 10).is_err());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused_at_the_body() {
        assert_eq!(
            parse_urlencoded(b"%FF=1", 10).map_err(|v| v.pointer),
            Err("/body".to_owned())
        );
        assert!(parse_urlencoded(b"a=1&\xff=2", 10).is_err());
    }

    #[test]
    fn a_refusal_never_carries_the_value() {
        let Err(violation) = parse_urlencoded(b"secret=hunter2%FF", 10) else {
            unreachable!("invalid UTF-8 passed");
        };
        assert!(!violation.reason.contains("hunter2"));
        assert_eq!(violation.pointer, "/body/secret");
    }

    #[test]
    fn a_name_with_a_slash_is_escaped_in_the_pointer() {
        assert_eq!(
            parse_urlencoded(b"a%2Fb=%FF", 10).map_err(|v| v.pointer),
            Err("/body/a~1b".to_owned())
        );
    }

    #[test]
    fn arbitrary_and_mutated_forms_never_panic() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        let seeds: [&[u8]; 3] = [b"a=1&b=%20x+y&c", b"%E2%82%AC=%C3%A9&&=", b"x=%%%2&y=%zz"];
        let mut rng = StdRng::seed_from_u64(0x666f_726d);
        for round in 0..3000 {
            let input = if round % 3 == 0 {
                (0..rng.random_range(0..48)).map(|_| rng.random()).collect()
            } else {
                super::super::mutation::mutate(seeds[round % seeds.len()], &mut rng)
            };
            if let Ok(fields) = parse_urlencoded(&input, 4) {
                assert!(fields.len() <= 4);
            }
        }
    }
}
