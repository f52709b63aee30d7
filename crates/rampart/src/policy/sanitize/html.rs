//! The HTML sanitizer: ammonia, configured once, plus the answer to "did it remove anything?".
//!
//! ammonia re-serializes what it keeps, so its output differs from a safe input in spelling
//! (`&` becomes `&amp;`, `<B>` becomes `<b>`, a link gains `rel="noopener noreferrer"`). A
//! re-spelling is not a removal: `on_unsafe = "reject"` must not refuse `Tom & Jerry` or a plain
//! link, and the audit should count removals, not re-spellings. So [`HtmlSanitizer::sanitize`]
//! says both what to store and whether markup was removed (see [`Cleaned`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use html5ever::buffer_queue::BufferQueue;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

use super::config::{Allowlist, HtmlPolicyConfig};
use crate::config::Issue;

/// What every link gets, so a kept link cannot reach back into the page that shows it.
const LINK_REL: &str = "noopener noreferrer";
/// The `rel` attribute ammonia adds to `a`; not a change the client made.
const ADDED_ATTRIBUTE: (&str, &str) = ("a", "rel");

/// The outcome of sanitizing one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned<'a> {
    /// What to store. The input itself (borrowed) when it is already what the sanitizer would
    /// write: text without `<` (no markup at all: `&` and `>` alone cannot start any), or
    /// input that ammonia writes back byte for byte. Otherwise ammonia's output, even when only
    /// the spelling changed: the raw input is never passed on unless it is ammonia's output.
    pub html: Cow<'a, str>,
    /// Whether the policy removed something: an element, an attribute, a URL, a comment, or
    /// text (the content of `script` and `style`). `false` when only the spelling changed.
    pub removed_markup: bool,
}

/// An allow-list HTML sanitizer, built once from the config and shared by every request.
#[derive(Debug)]
pub struct HtmlSanitizer {
    builder: Builder<'static>,
}

impl HtmlSanitizer {
    /// Builds the sanitizer; the issues point inside the policy (`/tags/2`).
    pub fn new(config: &HtmlPolicyConfig) -> Result<Self, Vec<Issue>> {
        Allowlist::resolve(config).map(Self::from_allowlist)
    }

    fn from_allowlist(allow: Allowlist) -> Self {
        let mut builder = Builder::empty();
        builder
            .tags(allow.tags)
            .tag_attributes(allow.attributes)
            .url_schemes(allow.url_schemes)
            // Every setting below is spelled out, not left to ammonia's defaults, so that an
            // upgrade cannot widen the policy silently.
            .generic_attributes(HashSet::new())
            .generic_attribute_prefixes(HashSet::new())
            .tag_attribute_values(Default::default())
            .set_tag_attribute_values(Default::default())
            .allowed_classes(Default::default())
            .clean_content_tags(HashSet::from(["script", "style"]))
            .url_relative(UrlRelative::PassThrough)
            .link_rel(Some(LINK_REL))
            .strip_comments(true)
            .id_prefix(None);
        Self { builder }
    }

    /// The sanitized string (see [`Cleaned::html`]).
    pub fn clean<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.sanitize(text).html
    }

    /// Sanitizes `text` and tells whether markup was removed.
    pub fn sanitize<'a>(&self, text: &'a str) -> Cleaned<'a> {
        let unchanged = Cleaned {
            html: Cow::Borrowed(text),
            removed_markup: false,
        };
        if !text.contains('<') {
            return unchanged;
        }
        let output = self.builder.clean(text).to_string();
        if output == text {
            return unchanged;
        }
        let removed_markup =
            !Summary::of(text, Side::Input).survives_in(&Summary::of(&output, Side::Output));
        Cleaned {
            html: Cow::Owned(output),
            removed_markup,
        }
    }
}

impl Default for HtmlSanitizer {
    /// The default policy (bleach's basic formatting).
    fn default() -> Self {
        Self::from_allowlist(Allowlist::defaults())
    }
}

/// What a string holds, as the HTML tokenizer reads it: the start tags with their attributes,
/// the text with references decoded, and whether there were comments or doctypes. Comparing
/// the input's summary with the output's tells a removal from a re-spelling.
///
/// Written here because ammonia does not report what it removed. The comparison only decides
/// "removed or not": whatever it answers, what is stored is ammonia's output, so a mistake here
/// miscounts or refuses a safe field, and never lets markup through.
#[derive(Debug, Default)]
struct Summary {
    start_tags: Vec<(String, Vec<(String, String)>)>,
    text: String,
    comments_or_doctypes: bool,
}

impl Summary {
    fn of(html: &str, side: Side) -> Self {
        let sink = SummarySink {
            summary: RefCell::default(),
            side,
        };
        let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
        let input = BufferQueue::default();
        input.push_back(StrTendril::from_slice(html));
        // Our sink never asks the tokenizer to pause, so one feed reads everything.
        let _ = tokenizer.feed(&input);
        tokenizer.end();
        tokenizer.sink.summary.into_inner()
    }

    /// Whether everything in `self` (the input) is still in `output`. The output may hold more
    /// start tags (the tree builder reopens formatting elements) but must hold every one of the
    /// input's, with the same attributes, and exactly the same text.
    fn survives_in(&self, output: &Summary) -> bool {
        !self.comments_or_doctypes && self.text == output.text && self.tags_survive_in(output)
    }

    /// Every start tag of `self` is among `output`'s, in time linear in the number of tags (a
    /// field of many distinct tags must not cost a quadratic scan).
    fn tags_survive_in(&self, output: &Summary) -> bool {
        let present: std::collections::HashSet<&(String, Vec<(String, String)>)> =
            output.start_tags.iter().collect();
        self.start_tags.iter().all(|tag| present.contains(tag))
    }
}

/// Which string is being summarized: the sanitizer's output holds what it adds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Input,
    Output,
}

struct SummarySink {
    summary: RefCell<Summary>,
    side: Side,
}

impl TokenSink for SummarySink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let mut summary = self.summary.borrow_mut();
        match token {
            Token::TagToken(tag) if tag.kind == TagKind::StartTag => {
                summary.start_tags.push(tag_key(&tag, self.side));
            }
            Token::TagToken(_) | Token::ParseError(_) | Token::EOFToken => {}
            Token::CharacterTokens(text) => summary.text.push_str(&text),
            Token::NullCharacterToken => summary.text.push('\0'),
            Token::CommentToken(_) | Token::DoctypeToken(_) => summary.comments_or_doctypes = true,
        }
        TokenSinkResult::Continue
    }
}

/// A start tag as a comparable value: its name and its attributes sorted, minus (in the output)
/// the `rel` the sanitizer adds to links.
fn tag_key(tag: &Tag, side: Side) -> (String, Vec<(String, String)>) {
    let name = tag.name.to_string();
    let mut attributes: Vec<(String, String)> = tag
        .attrs
        .iter()
        .map(|a| (a.name.local.to_string(), a.value.to_string()))
        .filter(|(attribute, value)| {
            // The sanitizer's own `rel` is not the client's markup: on the output it is what
            // the sanitizer adds, and on the input it is what an earlier pass added (a value
            // already sanitized must pass `reject` again).
            let added = (name.as_str(), attribute.as_str()) == ADDED_ATTRIBUTE;
            !added || (side == Side::Input && value != LINK_REL)
        })
        .collect();
    attributes.sort();
    (name, attributes)
}

#[cfg(test)]
mod tests;
