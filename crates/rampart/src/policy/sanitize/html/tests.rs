use std::collections::BTreeMap;

use super::*;

fn sanitize(text: &str) -> Cleaned<'_> {
    // A fresh default sanitizer per call is fine in tests; production builds one per config.
    let sanitizer = HtmlSanitizer::default();
    let cleaned = sanitizer.sanitize(text);
    Cleaned {
        html: Cow::Owned(cleaned.html.into_owned()),
        removed_markup: cleaned.removed_markup,
    }
}

/// Nothing that can run script survives, whatever the spelling.
fn assert_inert(output: &str) {
    let lower = output.to_ascii_lowercase();
    for needle in [
        "<script",
        "<iframe",
        "<svg",
        "<math",
        "<img",
        "<style",
        "<object",
        "<embed",
        "onerror",
        "onload",
        "onclick",
        "javascript:",
        "data:",
        "style=",
    ] {
        assert!(!lower.contains(needle), "{needle} survived in {output}");
    }
}

fn removed(input: &str) -> String {
    let cleaned = sanitize(input);
    assert!(cleaned.removed_markup, "nothing was removed from {input}");
    assert_inert(&cleaned.html);
    cleaned.html.into_owned()
}

#[test]
fn a_script_element_is_removed_with_its_content() {
    assert_eq!(removed("hi<script>alert(1)</script>there"), "hithere");
}

#[test]
fn mixed_case_script_is_removed() {
    assert_eq!(removed("<ScRiPt>alert(1)</sCrIpT>ok"), "ok");
}

#[test]
fn an_image_with_an_error_handler_is_removed() {
    assert_eq!(removed("<img src=x onerror=alert(1)>ok"), "ok");
}

#[test]
fn a_javascript_link_loses_its_href() {
    assert_eq!(
        removed("<a href=\"javascript:alert(1)\">x</a>"),
        "<a rel=\"noopener noreferrer\">x</a>"
    );
    removed("<a href=\"JaVaScRiPt:alert(1)\">x</a>");
    removed("<a href=\"java&#x09;script:alert(1)\">x</a>");
    removed("<a href=\" javascript:alert(1)\">x</a>");
}

#[test]
fn a_data_url_is_removed() {
    removed("<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>");
}

#[test]
fn svg_with_onload_is_removed() {
    assert_eq!(
        removed("<svg onload=alert(1)><circle r=1></circle></svg>ok"),
        "ok"
    );
    assert_eq!(removed("<svg/onload=alert(1)>"), "");
}

#[test]
fn an_iframe_is_removed() {
    assert_eq!(
        removed("<iframe src=\"https://evil.example\"></iframe>ok"),
        "ok"
    );
}

#[test]
fn event_handlers_and_style_attributes_on_allowed_elements_are_removed() {
    assert_eq!(removed("<b onclick=\"alert(1)\">x</b>"), "<b>x</b>");
    assert_eq!(
        removed("<p style=\"background:url(javascript:alert(1))\">x</p>"),
        "<p>x</p>"
    );
}

#[test]
fn comments_are_removed() {
    assert_eq!(removed("a<!--<script>alert(1)</script>-->b"), "ab");
}

#[test]
fn nested_and_broken_script_tags_do_not_reassemble() {
    let out = removed("<scr<script>ipt>alert(1)</scr</script>ipt>");
    assert!(!out.contains("<script"));
    removed("<<script>script>alert(1)<</script>/script>");
}

#[test]
fn namespace_confusion_does_not_smuggle_an_image() {
    removed("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>");
    removed("<svg><p><style><img src=x onerror=alert(1)></style></p></svg>");
    removed("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">");
}

#[test]
fn allowed_formatting_is_kept_byte_for_byte() {
    let text = "<p><b>bold</b> <em>em</em> <i>i</i> <strong>s</strong> <code>c()</code></p>\
                <ul><li>one</li></ul><ol><li>two</li></ol><blockquote>q</blockquote>\
                <abbr title=\"HyperText\">HTML</abbr><br>";
    let sanitizer = HtmlSanitizer::default();
    assert!(matches!(sanitizer.clean(text), Cow::Borrowed(_)));
}

#[test]
fn an_already_sanitized_link_passes_again_without_a_removal() {
    let once = sanitize("<a href=\"https://example.com/\">x</a>");
    let twice = sanitize(&once.html);
    assert!(!twice.removed_markup, "{}", twice.html);
    assert_eq!(twice.html, once.html);
    // Another `rel` is the client's own markup, which the sanitizer replaces: a removal.
    assert!(sanitize("<a href=\"/x\" rel=\"opener\">x</a>").removed_markup);
}

#[test]
fn a_safe_link_gains_rel_without_counting_as_a_removal() {
    let cleaned = sanitize("<a href=\"https://example.com/x?a=1&amp;b=2\" title=\"t\">x</a>");
    assert!(!cleaned.removed_markup);
    assert_eq!(
        cleaned.html,
        "<a href=\"https://example.com/x?a=1&amp;b=2\" title=\"t\" rel=\"noopener noreferrer\">x</a>"
    );
    assert!(!sanitize("<a href=\"mailto:a@example.com\">mail</a>").removed_markup);
    assert!(!sanitize("<a href=\"/relative/path\">rel</a>").removed_markup);
}

#[test]
fn a_client_supplied_rel_is_a_removal() {
    assert!(sanitize("<a href=\"https://x.example\" rel=\"opener\">x</a>").removed_markup);
}

#[test]
fn plain_text_is_untouched_and_borrowed() {
    let sanitizer = HtmlSanitizer::default();
    for text in [
        "Tom & Jerry",
        "a > b",
        "\"quoted\" 'single'",
        "&lt;script&gt;",
        "",
        "naïve café",
    ] {
        assert!(
            matches!(sanitizer.clean(text), Cow::Borrowed(t) if t == text),
            "{text} was changed"
        );
    }
}

#[test]
fn text_with_a_lone_less_than_is_respelled_not_removed() {
    let cleaned = sanitize("5 < 6 & 7 > 3");
    assert_eq!(cleaned.html, "5 &lt; 6 &amp; 7 &gt; 3");
    assert!(!cleaned.removed_markup);
    let cleaned = sanitize("<B>Loud</B> <P>para");
    assert_eq!(cleaned.html, "<b>Loud</b> <p>para</p>");
    assert!(!cleaned.removed_markup);
}

#[test]
fn an_element_outside_the_allow_list_is_removed_and_its_text_kept() {
    assert_eq!(removed("<div><span>x</span></div>"), "x");
    assert_eq!(removed("<h1>Title</h1>"), "Title");
}

#[test]
fn a_configured_policy_is_what_applies() {
    let config = HtmlPolicyConfig {
        tags: Some(vec!["p".into(), "img".into()]),
        attributes: Some(BTreeMap::from([(
            "img".to_owned(),
            vec!["src".into(), "alt".into()],
        )])),
        url_schemes: Some(vec!["https".into()]),
    };
    let Ok(sanitizer) = HtmlSanitizer::new(&config) else {
        unreachable!("a valid policy was refused");
    };
    let kept = sanitizer.sanitize("<p><img src=\"https://cdn.example/a.png\" alt=\"a\"></p>");
    assert!(!kept.removed_markup);
    let http = sanitizer.sanitize("<img src=\"http://cdn.example/a.png\">");
    assert!(http.removed_markup);
    assert_eq!(http.html, "<img>");
    let bold = sanitizer.sanitize("<b>x</b>");
    assert!(bold.removed_markup);
    assert_eq!(bold.html, "x");
}

#[test]
fn an_invalid_policy_is_refused_with_pointers() {
    let config = HtmlPolicyConfig {
        tags: Some(vec!["script".into()]),
        ..HtmlPolicyConfig::default()
    };
    let pointers = HtmlSanitizer::new(&config)
        .err()
        .map(|issues| issues.into_iter().map(|i| i.pointer).collect::<Vec<_>>());
    assert!(pointers.is_some_and(|p| p.contains(&"/tags/0".to_owned())));
}

#[test]
fn the_sanitizer_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<HtmlSanitizer>();
}

#[test]
fn arbitrary_and_mutated_html_never_panics_and_sanitizing_twice_changes_nothing() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let seeds: [&[u8]; 5] = [
        b"<p><b>x</b><a href=\"https://e.x\" title=t>l</a></p>",
        b"<img src=x onerror=alert(1)><script>s</script>",
        b"<svg><p><style><img src=x></style></p></svg>",
        b"<!-- c --><a href=javascript:x>y</a>&amp;&lt;",
        b"<ul><li>a<li>b</ul><blockquote>q",
    ];
    let sanitizer = HtmlSanitizer::default();
    let mut rng = StdRng::seed_from_u64(0x6874_6d6c);
    for round in 0..2000 {
        let bytes = if round % 4 == 0 {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            crate::policy::validate::mutation::mutate(seeds[round % seeds.len()], &mut rng)
        };
        let input = String::from_utf8_lossy(&bytes);
        let once = sanitizer.clean(&input).into_owned();
        let twice = sanitizer.sanitize(&once);
        assert!(
            !twice.removed_markup,
            "sanitized output still had markup removed: {input:?} -> {once:?} -> {:?}",
            twice.html
        );
    }
}
