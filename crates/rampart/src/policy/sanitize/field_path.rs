//! Which fields of a JSON body to sanitize: a JSON pointer in which `*` stands for every element
//! of an array (`/comments/*/text`). Marked in the spec (`x-rampart-sanitize: html`, the compiler
//! derives the path from where the mark sits) or listed in the config.

use std::fmt;

/// One step from a value to a member of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// The member of an object with this name.
    Key(String),
    /// Every element of an array.
    AnyIndex,
    /// Zero or more repetitions of any of these step sequences: what a recursive schema (a
    /// comment whose `replies` are comments) makes of a marked field, so it is found at every
    /// depth the body has. Derived from the contract only (never parsed from config); each
    /// sequence holds at least one `Key` or `AnyIndex` step, so every repetition descends.
    Repeat(Vec<Vec<Step>>),
}

/// A path from the body's root to the fields it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(pub Vec<Step>);

impl FieldPath {
    /// Parses `/a/*/b` (RFC 6901 escapes `~0` and `~1`; a lone `*` token is every array element).
    /// The empty pointer `""` names the body itself (a body that is one string).
    pub fn parse(pointer: &str) -> Result<Self, &'static str> {
        if pointer.is_empty() {
            return Ok(Self::default());
        }
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err("a field path is a JSON pointer and starts with `/`");
        };
        rest.split('/')
            .map(|token| {
                if token == "*" {
                    return Ok(Step::AnyIndex);
                }
                unescape(token).map(Step::Key)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn push(&mut self, step: Step) {
        self.0.push(step);
    }
}

fn unescape(token: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err("`~` in a JSON pointer must be followed by 0 or 1"),
        }
    }
    Ok(out)
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.0 {
            match step {
                Step::Key(key) => write!(
                    f,
                    "/{}",
                    crate::policy::validate::violation::escape_token(key)
                )?,
                Step::AnyIndex => f.write_str("/*")?,
                Step::Repeat(cycles) => {
                    f.write_str("/(")?;
                    for (i, cycle) in cycles.iter().enumerate() {
                        if i > 0 {
                            f.write_str("|")?;
                        }
                        write!(f, "{}", FieldPath(cycle.clone()))?;
                    }
                    f.write_str(")*")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_with_wildcards_round_trips() {
        let path = FieldPath::parse("/comments/*/a~1b").unwrap_or_default();
        assert_eq!(
            path.0,
            vec![
                Step::Key("comments".into()),
                Step::AnyIndex,
                Step::Key("a/b".into())
            ]
        );
        assert_eq!(path.to_string(), "/comments/*/a~1b");
    }

    #[test]
    fn a_pointer_without_leading_slash_is_refused() {
        assert!(FieldPath::parse("comments").is_err());
        assert!(FieldPath::parse("/a~2").is_err());
    }
}
