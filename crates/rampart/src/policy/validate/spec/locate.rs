//! Lines for JSON pointers: an issue in a contract names the line an operator has to edit.
//!
//! The values the compiler works on carry no positions, so the text is read a second time, as a
//! stream of YAML events (JSON is YAML 1.2 flow), only when there is an issue to place. A
//! pointer that the event stream cannot reach (a member brought in by a YAML merge key) gets the
//! line of its deepest ancestor that it can.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser};

use super::pointer;

/// The line of each pointer in `pointers` inside `text`, in the same order.
pub(super) fn lines(text: &str, pointers: &[&str]) -> Vec<Option<usize>> {
    let mut wanted = HashSet::new();
    for p in pointers {
        let mut prefix = String::new();
        wanted.insert(String::new());
        for token in pointer::tokens(p) {
            prefix = pointer::child(&prefix, &token);
            wanted.insert(prefix.clone());
        }
    }
    let found = walk(text, &wanted);
    pointers.iter().map(|p| deepest_known(p, &found)).collect()
}

fn deepest_known(target: &str, found: &HashMap<String, usize>) -> Option<usize> {
    let mut best = found.get("").copied();
    let mut prefix = String::new();
    for token in pointer::tokens(target) {
        prefix = pointer::child(&prefix, &token);
        match found.get(&prefix) {
            Some(line) => best = Some(*line),
            None => break,
        }
    }
    best
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

/// Walks the events once, noting the line of every wanted pointer.
fn walk(text: &str, wanted: &HashSet<String>) -> HashMap<String, usize> {
    let mut found = HashMap::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next_event() {
        let line = span.start.line();
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { key: key @ None }) = frames.last_mut() {
                    // A key: its value is placed on the key's line.
                    let token = value.into_owned();
                    note(&mut found, wanted, &path, Some(&token), line);
                    *key = Some(token);
                    continue;
                }
                let token = value_token(&frames);
                note(&mut found, wanted, &path, token.as_deref(), line);
                advance(&mut frames);
            }
            Event::Alias(_) => {
                if let Some(Frame::Map { key: key @ None }) = frames.last_mut() {
                    *key = Some(String::new());
                    continue;
                }
                advance(&mut frames);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let token = value_token(&frames);
                note(&mut found, wanted, &path, token.as_deref(), line);
                if let Some(token) = token {
                    path.push(token);
                }
                frames.push(match event {
                    Event::MappingStart(..) => Frame::Map { key: None },
                    _ => Frame::Seq { index: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
                if !frames.is_empty() {
                    path.pop();
                }
                advance(&mut frames);
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    found
}

/// The token under which the next value sits: the pending key, the next index, or none at the
/// root.
fn value_token(frames: &[Frame]) -> Option<String> {
    match frames.last() {
        Some(Frame::Map { key }) => Some(key.clone().unwrap_or_default()),
        Some(Frame::Seq { index }) => Some(index.to_string()),
        None => None,
    }
}

/// A value is complete: a map waits for its next key, a sequence for its next index.
fn advance(frames: &mut [Frame]) {
    match frames.last_mut() {
        Some(Frame::Map { key }) => *key = None,
        Some(Frame::Seq { index }) => *index += 1,
        None => {}
    }
}

fn note(
    found: &mut HashMap<String, usize>,
    wanted: &HashSet<String>,
    path: &[String],
    token: Option<&str>,
    line: usize,
) {
    let mut p = String::new();
    for t in path.iter().map(String::as_str).chain(token) {
        p = pointer::child(&p, t);
    }
    if wanted.contains(&p) {
        found.entry(p).or_insert(line);
    }
}
