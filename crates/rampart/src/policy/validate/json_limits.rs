//! JSON threat limits, on every JSON body, with or without a contract.
//!
//! Threat: a body built to exhaust the parser or the upstream behind it: nesting thousands deep
//! (stack exhaustion), millions of members or elements (hash-flooding, memory), megabyte strings
//! or numbers, duplicate member names (two parsers read `{"role":"user","role":"admin"}`
//! differently: the gateway validates one value and the upstream uses the other), invalid UTF-8.
//!
//! Invariants: the body is parsed once by serde_json, into nothing ([`check`]: the visitor keeps
//! no values, only the member names of the objects open along the current path, each bounded) or
//! into the `Value` a later policy needs ([`parse`]: built as it is checked, so a route with a
//! contract parses its body once, not twice); either way a bomb never allocates beyond the limits;
//! the first limit crossed stops the parse; a refusal names the pointer of the offending value and
//! the limit, never the value.
//!
//! Why a hand-written visitor: serde_json does the parsing (escapes, numbers, UTF-8; a body that
//! is valid UTF-8 as a whole is checked once and read as a `str`); no crate
//! enforces per-object and per-array limits or refuses duplicate names while parsing, which is
//! the point (checking a parsed `Value` would mean the bomb was already allocated, and `Value`
//! keeps only the last of duplicate members).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::violation::{Violation, escape_token};

/// `[validation.json]`: limits on every JSON body (the total size is the route's body limit).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonLimits {
    /// Check JSON bodies (`application/json`, `+json`) on every route. On by default.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Objects and arrays nested at most this deep.
    #[serde(default = "default_max_depth")]
    #[schemars(range(min = 1, max = 100))]
    pub max_depth: u32,
    /// Members in one object.
    #[serde(default = "default_max_members")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_members: u32,
    /// Elements in one array.
    #[serde(default = "default_max_items")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_items: u32,
    /// Bytes in one string value (after unescaping).
    #[serde(default = "default_max_string_bytes")]
    #[schemars(range(min = 1, max = 104_857_600))]
    pub max_string_bytes: u32,
    /// Bytes in one member name.
    #[serde(default = "default_max_name_bytes")]
    #[schemars(range(min = 1, max = 65_536))]
    pub max_name_bytes: u32,
    /// Characters in one number literal (digits, sign, point and exponent).
    #[serde(default = "default_max_number_chars")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_number_chars: u32,
}

fn default_true() -> bool {
    true
}
fn default_max_depth() -> u32 {
    32
}
fn default_max_members() -> u32 {
    1_000
}
fn default_max_items() -> u32 {
    10_000
}
fn default_max_string_bytes() -> u32 {
    64 * 1024
}
fn default_max_name_bytes() -> u32 {
    256
}
fn default_max_number_chars() -> u32 {
    40
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            max_depth: default_max_depth(),
            max_members: default_max_members(),
            max_items: default_max_items(),
            max_string_bytes: default_max_string_bytes(),
            max_name_bytes: default_max_name_bytes(),
            max_number_chars: default_max_number_chars(),
        }
    }
}

/// Checks `body` against the limits without building it. `Err` names the first value that
/// crosses a limit, or `/body` for JSON that is not well-formed.
pub fn check(body: &[u8], limits: &JsonLimits) -> Result<(), Violation> {
    walk::<Discard>(body, limits)
}

/// Checks `body` against the limits and returns it as a `Value`, built while it is checked.
pub fn parse(body: &[u8], limits: &JsonLimits) -> Result<serde_json::Value, Violation> {
    walk::<Keep>(body, limits)
}

fn walk<B: Build>(body: &[u8], limits: &JsonLimits) -> Result<B::Out, Violation> {
    if overlong_number(body, limits.max_number_chars as usize) {
        return Err(Violation::new(
            "/body",
            format!(
                "has a number longer than {} characters",
                limits.max_number_chars
            ),
        ));
    }
    let mut walk = Walk {
        limits,
        path: Vec::new(),
        refusal: None,
    };
    // Checked as UTF-8 whole, in one fast pass, the text is not checked again string by string
    // (the slice reader does that for every string: ~100 instructions each). A body that is not
    // UTF-8 is read as bytes, so that its error is the one the parser gives.
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => read::<B, _>(&mut walk, serde_json::Deserializer::from_str(text)),
        Err(_) => read::<B, _>(&mut walk, serde_json::Deserializer::from_slice(body)),
    };
    match (parsed, walk.refusal) {
        (_, Some(violation)) => Err(violation),
        (Ok(out), None) => Ok(out),
        (Err(error), None) => Err(not_well_formed(&error)),
    }
}

/// One whole JSON text, and nothing after it.
fn read<'de, B: Build, R: serde_json::de::Read<'de>>(
    walk: &mut Walk<'_, 'de>,
    mut deserializer: serde_json::Deserializer<R>,
) -> serde_json::Result<B::Out> {
    let out = Node::<B> {
        walk,
        build: PhantomData,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(out)
}

/// What the walk makes of the values it checks: nothing ([`Discard`]) or a `Value` ([`Keep`]).
trait Build {
    type Out;
    type Array: Default;
    /// An object being read: its members so far, which also tell whether a name repeats.
    type Object<'de>: Default;
    fn scalar(value: impl FnOnce() -> serde_json::Value) -> Self::Out;
    fn push(array: &mut Self::Array, element: Self::Out);
    fn array(array: Self::Array) -> Self::Out;
    fn members(object: &Self::Object<'_>) -> usize;
    /// Adds a member; `false` when the name was there already (the object is then refused).
    fn insert<'de>(object: &mut Self::Object<'de>, name: Cow<'de, str>, value: Self::Out) -> bool;
    fn object(object: Self::Object<'_>) -> Self::Out;
}

struct Discard;

impl Build for Discard {
    type Out = ();
    type Array = ();
    /// Only the names, to refuse a repeated one.
    type Object<'de> = Names<'de>;
    fn scalar(_: impl FnOnce() -> serde_json::Value) {}
    fn push((): &mut (), (): ()) {}
    fn array((): ()) {}
    fn members(object: &Names<'_>) -> usize {
        object.len()
    }
    fn insert<'de>(object: &mut Names<'de>, name: Cow<'de, str>, (): ()) -> bool {
        object.insert(name)
    }
    fn object(_: Names<'_>) {}
}

struct Keep;

impl Build for Keep {
    type Out = serde_json::Value;
    type Array = Vec<serde_json::Value>;
    /// The map being built answers for repeated names itself: no second set of names.
    type Object<'de> = serde_json::Map<String, serde_json::Value>;
    fn scalar(value: impl FnOnce() -> serde_json::Value) -> serde_json::Value {
        value()
    }
    fn push(array: &mut Self::Array, element: serde_json::Value) {
        array.push(element);
    }
    fn array(array: Self::Array) -> serde_json::Value {
        serde_json::Value::Array(array)
    }
    fn members(object: &Self::Object<'_>) -> usize {
        object.len()
    }
    /// One search of the map per member: the insertion itself tells a repeated name.
    fn insert(object: &mut Self::Object<'_>, name: Cow<'_, str>, value: serde_json::Value) -> bool {
        object.insert(name.into_owned(), value).is_none()
    }
    fn object(object: Self::Object<'_>) -> serde_json::Value {
        serde_json::Value::Object(object)
    }
}

/// serde_json's classification and position, in our words (never its message, which may quote
/// the input).
fn not_well_formed(error: &serde_json::Error) -> Violation {
    let what = match error.classify() {
        serde_json::error::Category::Eof => "ends before the JSON value is complete",
        serde_json::error::Category::Syntax => "is not well-formed JSON",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "is not valid JSON",
    };
    Violation::new(
        "/body",
        format!("{what} (line {}, column {})", error.line(), error.column()),
    )
}

/// The first number literal longer than `max`, by a scan outside strings (serde_json hands the
/// visitor parsed numbers, not their text). Strings, most of a body, are crossed by memchr from
/// one quote or backslash to the next, not byte by byte.
fn overlong_number(body: &[u8], max: usize) -> bool {
    let mut at = 0;
    let mut run = 0usize;
    while let Some(&byte) = body.get(at) {
        match byte {
            b'"' => {
                run = 0;
                match string_end(body, at + 1) {
                    Some(end) => at = end,
                    // Unterminated: not well-formed, which the parser reports.
                    None => return false,
                }
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' => {
                run += 1;
                if run > max {
                    return true;
                }
            }
            _ => run = 0,
        }
        at += 1;
    }
    false
}

/// The index of the quote that closes the string whose content starts at `from`.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let found = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body.get(found) == Some(&b'"') {
            return Some(found);
        }
        from = found + 2; // a backslash and the byte it escapes
    }
}

/// The state of one check: the limits, the path to the value being read (for the pointer of a
/// refusal) and the refusal, if any.
struct Walk<'l, 'de> {
    limits: &'l JsonLimits,
    path: Vec<Token<'de>>,
    refusal: Option<Violation>,
}

enum Token<'de> {
    Name(Cow<'de, str>),
    Index(u32),
}

impl Walk<'_, '_> {
    fn refuse<E: de::Error>(&mut self, reason: String) -> E {
        self.refusal = Some(Violation::new(self.pointer(), reason));
        E::custom("limit")
    }

    fn pointer(&self) -> String {
        let mut pointer = String::from("/body");
        for token in &self.path {
            pointer.push('/');
            match token {
                Token::Name(name) => pointer.push_str(&escape_token(name)),
                Token::Index(index) => pointer.push_str(&index.to_string()),
            }
        }
        pointer
    }

    fn depth_ok(&self) -> bool {
        // `path` holds one token per container already entered above this value.
        self.path.len() < self.limits.max_depth as usize
    }
}

/// Reads one value of any kind.
struct Node<'w, 'l, 'de, B> {
    walk: &'w mut Walk<'l, 'de>,
    build: PhantomData<B>,
}

impl<'w, 'l, 'de, B: Build> Node<'w, 'l, 'de, B> {
    fn child<'c>(walk: &'c mut Walk<'l, 'de>) -> Node<'c, 'l, 'de, B> {
        Node {
            walk,
            build: PhantomData,
        }
    }
}

impl<'de, B: Build> DeserializeSeed<'de> for Node<'_, '_, 'de, B> {
    type Value = B::Out;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<B::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, B: Build> Visitor<'de> for Node<'_, '_, 'de, B> {
    type Value = B::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<B::Out, E> {
        Ok(B::scalar(|| serde_json::Value::Bool(value)))
    }
    fn visit_i64<E>(self, value: i64) -> Result<B::Out, E> {
        Ok(B::scalar(|| serde_json::Value::from(value)))
    }
    fn visit_u64<E>(self, value: u64) -> Result<B::Out, E> {
        Ok(B::scalar(|| serde_json::Value::from(value)))
    }
    fn visit_f64<E>(self, value: f64) -> Result<B::Out, E> {
        // serde_json hands over finite numbers only; `Null` is never reached.
        Ok(B::scalar(|| {
            serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, Into::into)
        }))
    }
    fn visit_unit<E>(self) -> Result<B::Out, E> {
        Ok(B::scalar(|| serde_json::Value::Null))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<B::Out, E> {
        let max = self.walk.limits.max_string_bytes;
        if value.len() > max as usize {
            return Err(self
                .walk
                .refuse(format!("is a string longer than {max} bytes")));
        }
        Ok(B::scalar(|| serde_json::Value::String(value.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<B::Out, A::Error> {
        if !self.walk.depth_ok() {
            let max = self.walk.limits.max_depth;
            return Err(self.walk.refuse(format!("is nested deeper than {max}")));
        }
        let mut array = B::Array::default();
        let mut index = 0u32;
        loop {
            self.walk.path.push(Token::Index(index));
            let element = seq.next_element_seed(Node::<B>::child(self.walk));
            self.walk.path.pop();
            let Some(element) = element? else {
                return Ok(B::array(array));
            };
            B::push(&mut array, element);
            index += 1;
            if index > self.walk.limits.max_items {
                let max = self.walk.limits.max_items;
                return Err(self
                    .walk
                    .refuse(format!("is an array of more than {max} elements")));
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<B::Out, A::Error> {
        if !self.walk.depth_ok() {
            let max = self.walk.limits.max_depth;
            return Err(self.walk.refuse(format!("is nested deeper than {max}")));
        }
        let mut object = B::Object::default();
        while let Some(name) = map.next_key_seed(Name { walk: self.walk })? {
            if B::members(&object) >= self.walk.limits.max_members as usize {
                let max = self.walk.limits.max_members;
                return Err(self
                    .walk
                    .refuse(format!("is an object of more than {max} members")));
            }
            self.walk.path.push(Token::Name(name.clone()));
            // A repeated name is found when its value is in (the value read first, within the
            // same limits): the map then needs one search per member, not two.
            let value = map.next_value_seed(Node::<B>::child(self.walk))?;
            if !B::insert(&mut object, name, value) {
                return Err(self.walk.refuse("is a duplicate member name".to_owned()));
            }
            self.walk.path.pop();
        }
        Ok(B::object(object))
    }
}

/// The member names of one object (borrowed from the body unless escaped); a linear scan while
/// small (most objects), a set beyond.
#[derive(Default)]
struct Names<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

impl<'de> Names<'de> {
    const FEW: usize = 16;

    fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }

    fn contains(&self, name: &str) -> bool {
        self.few.iter().any(|seen| seen == name) || self.many.contains(name)
    }

    /// Adds `name`; `false` when it was there already.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        if self.contains(&name) {
            return false;
        }
        if self.few.len() < Self::FEW {
            self.few.push(name);
        } else {
            self.many.insert(name);
        }
        true
    }
}

/// Reads a member name, bounded; borrowed from the body when it has no escapes.
struct Name<'w, 'l, 'de> {
    walk: &'w mut Walk<'l, 'de>,
}

impl<'de> DeserializeSeed<'de> for Name<'_, '_, 'de> {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name<'_, '_, 'de> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
        self.bounded(name).map(|()| Cow::Borrowed(name))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        self.bounded(name).map(|()| Cow::Owned(name.to_owned()))
    }
}

impl Name<'_, '_, '_> {
    fn bounded<E: de::Error>(self, name: &str) -> Result<(), E> {
        let max = self.walk.limits.max_name_bytes;
        if name.len() > max as usize {
            return Err(self
                .walk
                .refuse(format!("has a member name longer than {max} bytes")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
