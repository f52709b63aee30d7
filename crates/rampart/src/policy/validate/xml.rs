//! XML bodies: a guard in front of whatever XML parser the upstream runs.
//!
//! Threat: an XML body built to attack the parser behind the gateway. A document type declaration
//! carries the classic attacks (external entities that read local files or call internal URLs,
//! parameter entities that fetch more DTD, the billion laughs expansion); processing instructions
//! reach application hooks; deep nesting, attribute floods and huge text nodes exhaust stack and
//! memory; a second root or trailing content is read differently by different parsers.
//!
//! Invariants: the body is read as a stream of events (quick-xml, which never expands an entity
//! and never fetches anything), so nothing is ever resolved here. A `<!DOCTYPE` is refused when its
//! event is read, before any declaration in it could be acted on. Only the five predefined entity
//! references and character references to characters XML allows pass, in text and in attribute
//! values alike. The document is UTF-8 (a declared encoding other than UTF-8 is refused, so the
//! guard and the upstream read the same characters), well-formed (end tags match), and has exactly
//! one root element with nothing but whitespace and comments around it. Every count and size that
//! the client controls is bounded by [`XmlLimits`] while reading, and the guard stops at the first
//! violation. A refusal points at `/body` and says why in our words; it never echoes the document
//! and never carries the parser's message.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::violation::Violation;

const BODY: &str = "/body";

/// Bounds on an XML document; each is checked while reading, before the next event is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct XmlLimits {
    /// How deeply elements may nest (the root is depth 1).
    #[schemars(range(min = 1, max = 1000))]
    pub max_depth: usize,
    /// Attributes on one element.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_attributes: usize,
    /// Length of one attribute value, as written (before references are resolved).
    #[schemars(range(min = 1, max = 104_857_600))]
    pub max_attribute_bytes: usize,
    /// Length of one run of character data (text, CDATA and references between two tags), and of
    /// one comment.
    #[schemars(range(min = 1, max = 1_073_741_824))]
    pub max_text_bytes: usize,
    /// Elements in the whole document.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_elements: usize,
    /// Length of an element or attribute name, prefix included.
    #[schemars(range(min = 1, max = 65_536))]
    pub max_name_bytes: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_attributes: 32,
            max_attribute_bytes: 8 * 1024,
            max_text_bytes: 1024 * 1024,
            max_elements: 10_000,
            max_name_bytes: 256,
        }
    }
}

/// Checks that `body` is one safe, well-formed XML document within `limits`.
pub fn check(body: &[u8], limits: &XmlLimits) -> Result<(), Violation> {
    let text = std::str::from_utf8(body).map_err(|_| refuse("must be valid UTF-8"))?;
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    // Well-formedness the upstream parser would insist on too: matching end tags, no `--` in a
    // comment, no lone `&` in text.
    config.enable_all_checks(true);
    config.allow_unmatched_ends = false;
    config.allow_dangling_amp = false;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut guard = Guard::new(limits);
    loop {
        let event = reader.read_event().map_err(|_| malformed())?;
        if guard.observe(event)? == Flow::Done {
            return Ok(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

/// Where the reader is: before the root element (prolog), inside it, or after it (epilog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Prolog,
    Root,
    Epilog,
}

/// The state the checks need: counts so far and where we are. Everything here is bounded by the
/// limits (the reader's own stack of open names is bounded by `max_depth` because we stop first).
struct Guard<'l> {
    limits: &'l XmlLimits,
    first_event: bool,
    place: Place,
    depth: usize,
    elements: usize,
    /// Bytes of character data since the last tag or comment.
    text_run: usize,
}

impl<'l> Guard<'l> {
    fn new(limits: &'l XmlLimits) -> Self {
        Self {
            limits,
            first_event: true,
            place: Place::Prolog,
            depth: 0,
            elements: 0,
            text_run: 0,
        }
    }

    fn observe(&mut self, event: Event<'_>) -> Result<Flow, Violation> {
        let first = std::mem::replace(&mut self.first_event, false);
        match event {
            Event::DocType(_) => return Err(refuse("a document type declaration is not allowed")),
            Event::PI(_) => return Err(refuse("a processing instruction is not allowed")),
            Event::Decl(decl) => {
                if !first {
                    return Err(refuse(
                        "an XML declaration is only allowed at the start of the document",
                    ));
                }
                match decl.encoding() {
                    None => {}
                    Some(Ok(encoding)) if is_utf8_label(&encoding) => {}
                    Some(Ok(_)) => {
                        return Err(refuse("an encoding other than UTF-8 is not allowed"));
                    }
                    Some(Err(_)) => return Err(malformed()),
                }
            }
            Event::Start(start) => {
                self.open_element(&start)?;
                self.depth += 1;
            }
            Event::Empty(start) => {
                self.open_element(&start)?;
                if self.depth == 0 {
                    self.place = Place::Epilog;
                }
            }
            Event::End(_) => {
                self.text_run = 0;
                // The reader already refuses an end tag without a matching start tag.
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.place = Place::Epilog;
                }
            }
            Event::Text(text) => {
                if self.place != Place::Root {
                    if text.chars().all(is_xml_whitespace) {
                        return Ok(Flow::Continue);
                    }
                    return Err(refuse("text outside the root element is not allowed"));
                }
                check_chars(&text)?;
                self.add_text(text.len())?;
            }
            Event::CData(cdata) => {
                if self.place != Place::Root {
                    return Err(refuse("text outside the root element is not allowed"));
                }
                check_chars(&cdata)?;
                self.add_text(cdata.len())?;
            }
            Event::GeneralRef(reference) => {
                if self.place != Place::Root {
                    return Err(refuse("text outside the root element is not allowed"));
                }
                check_reference(&reference)?;
                self.add_text(reference.len())?;
            }
            Event::Comment(comment) => {
                self.text_run = 0;
                check_chars(&comment)?;
                if comment.len() > self.limits.max_text_bytes {
                    return Err(refuse(format!(
                        "a comment longer than {} bytes is not allowed",
                        self.limits.max_text_bytes
                    )));
                }
            }
            Event::Eof => return self.finish().map(|()| Flow::Done),
        }
        Ok(Flow::Continue)
    }

    fn open_element(&mut self, start: &BytesStart<'_>) -> Result<(), Violation> {
        self.text_run = 0;
        if self.place == Place::Epilog {
            return Err(refuse("more than one root element is not allowed"));
        }
        self.place = Place::Root;
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(refuse(format!(
                "more than {} elements",
                self.limits.max_elements
            )));
        }
        if self.depth + 1 > self.limits.max_depth {
            return Err(refuse(format!(
                "nesting deeper than {}",
                self.limits.max_depth
            )));
        }
        if start.name().0.len() > self.limits.max_name_bytes {
            return Err(refuse(format!(
                "an element name longer than {} bytes",
                self.limits.max_name_bytes
            )));
        }
        self.check_attributes(start)
    }

    fn check_attributes(&self, start: &BytesStart<'_>) -> Result<(), Violation> {
        // The iterator refuses duplicate attribute names and unquoted values; it stops being
        // driven as soon as the count is over the limit, so its bookkeeping stays bounded.
        for (index, attribute) in start.attributes().enumerate() {
            if index >= self.limits.max_attributes {
                return Err(refuse(format!(
                    "more than {} attributes on one element",
                    self.limits.max_attributes
                )));
            }
            let attribute = attribute.map_err(|_| malformed())?;
            if attribute.key.0.len() > self.limits.max_name_bytes {
                return Err(refuse(format!(
                    "an attribute name longer than {} bytes",
                    self.limits.max_name_bytes
                )));
            }
            if attribute.value.len() > self.limits.max_attribute_bytes {
                return Err(refuse(format!(
                    "an attribute value longer than {} bytes",
                    self.limits.max_attribute_bytes
                )));
            }
            check_attribute_value(&attribute.value)?;
        }
        Ok(())
    }

    fn add_text(&mut self, len: usize) -> Result<(), Violation> {
        self.text_run = self.text_run.saturating_add(len);
        if self.text_run > self.limits.max_text_bytes {
            return Err(refuse(format!(
                "a text node longer than {} bytes",
                self.limits.max_text_bytes
            )));
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), Violation> {
        match self.place {
            Place::Prolog => Err(refuse("must have a root element")),
            Place::Root => Err(malformed()),
            Place::Epilog => Ok(()),
        }
    }
}

/// An attribute value as written: `<` is not allowed in it (XML 1.0, AttValue) and each `&` must
/// start an allowed reference. quick-xml leaves both to the caller.
fn check_attribute_value(raw: &str) -> Result<(), Violation> {
    if raw.contains('<') {
        return Err(malformed());
    }
    check_chars(raw)?;
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        let after = &rest[amp + 1..];
        let Some(semicolon) = after.find(';') else {
            return Err(malformed());
        };
        check_reference(&after[..semicolon])?;
        rest = &after[semicolon + 1..];
    }
    Ok(())
}

/// The name between `&` and `;`: one of the five predefined entities, or a character reference to
/// a character XML allows. Anything else would need a DTD to mean something, and DTDs are refused.
fn check_reference(name: &str) -> Result<(), Violation> {
    if matches!(name, "lt" | "gt" | "amp" | "apos" | "quot") {
        return Ok(());
    }
    let Some(number) = name.strip_prefix('#') else {
        return Err(refuse(
            "an entity reference other than the five predefined ones is not allowed",
        ));
    };
    match character_reference(number) {
        Some(c) if is_xml_char(c) => Ok(()),
        _ => Err(refuse(
            "a character reference must name a character XML allows",
        )),
    }
}

/// `x1F600` or `128512` (the part after `&#`). Seven digits cover every code point and keep the
/// parse from overflowing.
fn character_reference(number: &str) -> Option<char> {
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty() || digits.len() > 7 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix)
        .ok()
        .and_then(char::from_u32)
}

/// XML 1.0 `Char`: no C0 controls other than tab, newline and carriage return, no U+FFFE/U+FFFF.
fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

fn check_chars(text: &str) -> Result<(), Violation> {
    if text.chars().all(is_xml_char) {
        Ok(())
    } else {
        Err(refuse("contains a character XML does not allow"))
    }
}

fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_utf8_label(label: &str) -> bool {
    label.eq_ignore_ascii_case("utf-8") || label.eq_ignore_ascii_case("utf8")
}

fn refuse(reason: impl Into<std::borrow::Cow<'static, str>>) -> Violation {
    Violation::new(BODY, reason)
}

fn malformed() -> Violation {
    refuse("must be well-formed XML")
}

#[cfg(test)]
mod tests;
