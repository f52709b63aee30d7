//! HTML sanitization settings: the allow-list, and which body fields it applies to.
//!
//! The allow-list can only name what ammonia itself allows by default (its default elements,
//! their default attributes plus `lang` and `title`, its default URL schemes). So no setting can
//! allow `script`, `style`, `iframe`, an event handler, the `style` attribute, or a `javascript:`
//! or `data:` URL, and the builder is never given a combination it refuses to run with.

use std::collections::{BTreeMap, HashMap, HashSet};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Issue;
use crate::policy::sanitize::field_path::FieldPath;

/// Elements kept by default: basic text formatting (bleach's defaults).
pub const DEFAULT_TAGS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "i",
    "li",
    "ol",
    "p",
    "strong",
    "ul",
];
/// Attributes kept by default, per element.
pub const DEFAULT_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("a", &["href", "title"]),
    ("abbr", &["title"]),
    ("acronym", &["title"]),
];
/// URL schemes allowed by default in `href`, `src` and `cite`.
pub const DEFAULT_URL_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// What markup survives in a sanitized field. Each list, when given, replaces its default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HtmlPolicyConfig {
    /// Elements kept; others are removed and their text kept (`script` and `style` are removed
    /// with their content). Default: a, abbr, acronym, b, blockquote, br, code, em, i, li, ol,
    /// p, strong, ul.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Attributes kept, per element. Default: `a`: href, title; `abbr`, `acronym`: title.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    /// URL schemes allowed in links and sources (relative URLs are kept). Default: http, https,
    /// mailto.
    #[serde(default)]
    pub url_schemes: Option<Vec<String>>,
}

/// What to do with a field whose value holds markup the policy does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnsafe {
    /// Remove the markup and pass the rest.
    #[default]
    Sanitize,
    /// Refuse the request, naming the field.
    Reject,
}

/// One body field to sanitize.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SanitizeFieldConfig {
    /// A JSON pointer into the body; `*` stands for every element of an array
    /// (`/comments/*/text`).
    pub pointer: String,
    #[serde(default)]
    pub on_unsafe: OnUnsafe,
}

impl SanitizeFieldConfig {
    pub fn field_path(&self) -> Result<FieldPath, &'static str> {
        FieldPath::parse(&self.pointer)
    }
}

/// Reports what is wrong with an HTML policy; `ptr` is where it sits in the config.
pub fn validate(config: &HtmlPolicyConfig, ptr: &str, issues: &mut Vec<Issue>) {
    if let Err(found) = Allowlist::resolve(config) {
        issues.extend(
            found
                .into_iter()
                .map(|issue| Issue::new(format!("{ptr}{}", issue.pointer), issue.message)),
        );
    }
}

/// Reports a field pointer that does not parse; `ptr` is where the field sits in the config.
pub fn validate_field(config: &SanitizeFieldConfig, ptr: &str, issues: &mut Vec<Issue>) {
    if let Err(why) = config.field_path() {
        issues.push(Issue::new(format!("{ptr}/pointer"), why));
    }
}

/// The allow-list in the form ammonia takes: names borrowed from ammonia's own defaults, so
/// they live for `'static` without leaking the config's strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Allowlist {
    pub(super) tags: HashSet<&'static str>,
    pub(super) attributes: HashMap<&'static str, HashSet<&'static str>>,
    pub(super) url_schemes: HashSet<&'static str>,
}

impl Allowlist {
    /// The defaults, straight from the constants (a test proves they resolve to the same).
    pub(super) fn defaults() -> Self {
        Self {
            tags: DEFAULT_TAGS.iter().copied().collect(),
            attributes: DEFAULT_ATTRIBUTES
                .iter()
                .map(|(tag, names)| (*tag, names.iter().copied().collect()))
                .collect(),
            url_schemes: DEFAULT_URL_SCHEMES.iter().copied().collect(),
        }
    }

    /// Maps every configured name onto ammonia's vocabulary; issues point inside the policy
    /// (`/tags/2`, `/attributes/a/1`, `/url_schemes/0`).
    pub(super) fn resolve(config: &HtmlPolicyConfig) -> Result<Self, Vec<Issue>> {
        let vocabulary = Vocabulary::ammonia_defaults();
        let mut issues = Vec::new();

        let tags = match &config.tags {
            None => DEFAULT_TAGS.iter().map(|t| (*t).to_owned()).collect(),
            Some(tags) => tags.clone(),
        };
        let mut allowed_tags = HashSet::new();
        for (i, tag) in tags.iter().enumerate() {
            match vocabulary.tag(tag) {
                Some(tag) => {
                    allowed_tags.insert(tag);
                }
                None => issues.push(Issue::new(
                    format!("/tags/{i}"),
                    format!("`{tag}` is not an element the sanitizer can allow"),
                )),
            }
        }

        // The default attributes apply to whichever of their elements are allowed; configured
        // attributes for an element that is not allowed are a mistake worth reporting.
        let attributes: Vec<(String, Vec<String>)> = match &config.attributes {
            None => DEFAULT_ATTRIBUTES
                .iter()
                .filter(|(tag, _)| allowed_tags.contains(tag))
                .map(|(tag, names)| {
                    let names = names.iter().map(|n| (*n).to_owned()).collect();
                    ((*tag).to_owned(), names)
                })
                .collect(),
            Some(map) => map.iter().map(|(t, n)| (t.clone(), n.clone())).collect(),
        };
        let mut allowed_attributes: HashMap<&'static str, HashSet<&'static str>> = HashMap::new();
        for (tag, names) in &attributes {
            let at = format!(
                "/attributes/{}",
                crate::policy::validate::violation::escape_token(tag)
            );
            let Some(tag) = vocabulary.tag(tag).filter(|t| allowed_tags.contains(t)) else {
                issues.push(Issue::new(
                    at,
                    "attributes for an element that is not in `tags`",
                ));
                continue;
            };
            for (i, name) in names.iter().enumerate() {
                match vocabulary.attribute(tag, name) {
                    Some(name) => {
                        allowed_attributes.entry(tag).or_default().insert(name);
                    }
                    None => issues.push(Issue::new(
                        format!("{at}/{i}"),
                        format!("`{name}` is not an attribute the sanitizer can allow on `{tag}`"),
                    )),
                }
            }
        }

        let schemes = match &config.url_schemes {
            None => DEFAULT_URL_SCHEMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Some(schemes) => schemes.clone(),
        };
        let mut allowed_schemes = HashSet::new();
        for (i, scheme) in schemes.iter().enumerate() {
            match vocabulary.url_scheme(scheme) {
                Some(scheme) => {
                    allowed_schemes.insert(scheme);
                }
                None => issues.push(Issue::new(
                    format!("/url_schemes/{i}"),
                    format!("`{scheme}` is not a URL scheme the sanitizer can allow"),
                )),
            }
        }

        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Self {
            tags: allowed_tags,
            attributes: allowed_attributes,
            url_schemes: allowed_schemes,
        })
    }
}

/// What ammonia allows by default, the outer bound of any configured allow-list.
struct Vocabulary {
    tags: HashSet<&'static str>,
    tag_attributes: HashMap<&'static str, HashSet<&'static str>>,
    generic_attributes: HashSet<&'static str>,
    url_schemes: HashSet<&'static str>,
}

impl Vocabulary {
    fn ammonia_defaults() -> Self {
        let defaults = ammonia::Builder::<'static>::default();
        Self {
            tags: defaults.clone_tags(),
            tag_attributes: defaults.clone_tag_attributes(),
            generic_attributes: defaults.clone_generic_attributes(),
            url_schemes: defaults.clone_url_schemes(),
        }
    }

    fn tag(&self, name: &str) -> Option<&'static str> {
        self.tags.get(name.to_ascii_lowercase().as_str()).copied()
    }

    fn attribute(&self, tag: &str, name: &str) -> Option<&'static str> {
        let name = name.to_ascii_lowercase();
        self.tag_attributes
            .get(tag)
            .and_then(|names| names.get(name.as_str()))
            .or_else(|| self.generic_attributes.get(name.as_str()))
            .copied()
    }

    fn url_scheme(&self, name: &str) -> Option<&'static str> {
        self.url_schemes
            .get(name.to_ascii_lowercase().as_str())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(config: &HtmlPolicyConfig) -> Vec<Issue> {
        let mut out = Vec::new();
        validate(config, "/routes/0/sanitize/html", &mut out);
        out
    }

    fn strings(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn the_defaults_are_within_the_vocabulary() {
        assert_eq!(
            Allowlist::resolve(&HtmlPolicyConfig::default()),
            Ok(Allowlist::defaults())
        );
    }

    #[test]
    fn script_style_and_iframe_cannot_be_allowed() {
        let config = HtmlPolicyConfig {
            tags: strings(&["p", "script", "STYLE", "iframe", "svg"]),
            ..HtmlPolicyConfig::default()
        };
        let pointers: Vec<_> = issues(&config).into_iter().map(|i| i.pointer).collect();
        assert_eq!(
            pointers,
            [
                "/routes/0/sanitize/html/tags/1",
                "/routes/0/sanitize/html/tags/2",
                "/routes/0/sanitize/html/tags/3",
                "/routes/0/sanitize/html/tags/4",
            ]
        );
    }

    #[test]
    fn event_handlers_style_and_rel_cannot_be_allowed() {
        let config = HtmlPolicyConfig {
            attributes: Some(BTreeMap::from([(
                "a".to_owned(),
                vec![
                    "href".into(),
                    "onclick".into(),
                    "style".into(),
                    "rel".into(),
                ],
            )])),
            ..HtmlPolicyConfig::default()
        };
        let pointers: Vec<_> = issues(&config).into_iter().map(|i| i.pointer).collect();
        assert_eq!(
            pointers,
            [
                "/routes/0/sanitize/html/attributes/a/1",
                "/routes/0/sanitize/html/attributes/a/2",
                "/routes/0/sanitize/html/attributes/a/3",
            ]
        );
    }

    #[test]
    fn attributes_for_an_element_that_is_not_allowed_are_an_issue() {
        let config = HtmlPolicyConfig {
            tags: strings(&["p"]),
            attributes: Some(BTreeMap::from([("a".to_owned(), vec!["href".into()])])),
            ..HtmlPolicyConfig::default()
        };
        let pointers: Vec<_> = issues(&config).into_iter().map(|i| i.pointer).collect();
        assert_eq!(pointers, ["/routes/0/sanitize/html/attributes/a"]);
    }

    #[test]
    fn default_attributes_follow_the_configured_elements() {
        let config = HtmlPolicyConfig {
            tags: strings(&["p", "abbr"]),
            ..HtmlPolicyConfig::default()
        };
        let allow = Allowlist::resolve(&config);
        assert!(allow.is_ok_and(|a| {
            a.attributes.len() == 1 && a.attributes.get("abbr") == Some(&HashSet::from(["title"]))
        }));
    }

    #[test]
    fn javascript_and_data_schemes_cannot_be_allowed() {
        let config = HtmlPolicyConfig {
            url_schemes: strings(&["https", "javascript", "data", "vbscript"]),
            ..HtmlPolicyConfig::default()
        };
        assert_eq!(issues(&config).len(), 3);
    }

    #[test]
    fn names_are_matched_without_regard_to_case() {
        let config = HtmlPolicyConfig {
            tags: strings(&["A", "Img"]),
            attributes: Some(BTreeMap::from([("img".to_owned(), vec!["SRC".into()])])),
            url_schemes: strings(&["HTTPS"]),
        };
        assert_eq!(issues(&config), vec![]);
    }

    #[test]
    fn the_policy_config_refuses_unknown_keys_and_reads_kebab_case() {
        let policy: Result<HtmlPolicyConfig, _> = toml::from_str("tags = [\"p\"]\nscript = true");
        assert!(policy.is_err());
        let field: Result<SanitizeFieldConfig, _> =
            toml::from_str("pointer = \"/comments/*/text\"\non_unsafe = \"reject\"");
        assert!(field.is_ok_and(|f| f.on_unsafe == OnUnsafe::Reject));
    }

    #[test]
    fn a_field_pointer_that_does_not_parse_is_an_issue() {
        let mut out = Vec::new();
        let field = SanitizeFieldConfig {
            pointer: "comments/*".into(),
            on_unsafe: OnUnsafe::Sanitize,
        };
        validate_field(&field, "/routes/0/sanitize/fields/0", &mut out);
        assert_eq!(
            out.into_iter().map(|i| i.pointer).collect::<Vec<_>>(),
            ["/routes/0/sanitize/fields/0/pointer"]
        );
    }
}
