//! Arbitrary bytes as an XML request body through the XML guard
//! (`rampart::policy::validate::xml::check`, default `XmlLimits`).
//!
//! Asserts:
//! - it never panics (a body is client-controlled);
//! - `Ok` implies: the body is UTF-8, and a second, independent read with quick-xml's default
//!   (lenient) reader finds no document type declaration (where entities, XXE and billion laughs
//!   live) and no processing instruction, exactly one root element, at most `max_elements`
//!   elements, nesting at most `max_depth`, and no more than `max_attributes` attributes on one
//!   element. The default reader does not check well-formedness, so it reads every document the
//!   strict guard accepts; an error from it on an accepted document is reported too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quick_xml::Reader;
use quick_xml::events::Event;
use rampart::policy::validate::xml::{XmlLimits, check};

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits::default();
    if check(data, &limits).is_err() {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        panic!("accepted a body that is not UTF-8: {data:?}");
    };
    let mut reader = Reader::from_str(text);
    let (mut depth, mut deepest, mut elements, mut roots) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let event = reader.read_event();
        let event = match event {
            Ok(event) => event,
            Err(error) => panic!("accepted, but quick-xml cannot read it ({error}): {text:?}"),
        };
        match event {
            Event::DocType(_) => panic!("accepted a DOCTYPE: {text:?}"),
            Event::PI(_) => panic!("accepted a processing instruction: {text:?}"),
            Event::Start(ref start) | Event::Empty(ref start) => {
                if depth == 0 {
                    roots += 1;
                }
                elements += 1;
                let attributes = start.attributes().count();
                assert!(
                    attributes <= limits.max_attributes,
                    "accepted {attributes} attributes on one element: {text:?}"
                );
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                    deepest = deepest.max(depth);
                } else {
                    deepest = deepest.max(depth + 1);
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(roots, 1, "accepted {roots} root elements: {text:?}");
    assert!(
        elements <= limits.max_elements,
        "accepted {elements} elements"
    );
    assert!(
        deepest <= limits.max_depth,
        "accepted nesting {deepest} deep: {text:?}"
    );
});
