//! State that users rely on (rate-limit buckets, concurrency slots) kept across reloads.
//!
//! A reload builds a complete new runtime beside the running one and swaps it in only if every
//! part of it built. So the build must neither lose the state of the running runtime nor change
//! it: a build that fails, or `rampart check`, leaves everything as it was. `Kept` achieves this
//! without any commit step: it remembers weakly every state object handed out under a key, and a
//! build asks for the state of its key with the *shape* it needs (the parameters that the object
//! was created with):
//! - the newest live object of that key (held by the running runtime) is shared when it has the
//!   same shape;
//! - otherwise a new one is made from it (the maker decides what can soundly be carried over), or
//!   from nothing when the key has no live object;
//! - objects die with the last runtime holding them, so a removed limit frees its memory and a
//!   failed build leaves only dead entries, pruned on the next call.
//!
//! Hand-written because it is a dozen lines over `Weak` and no crate offers this contract.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// The objects handed out under one key, each with the shape it was made with.
type Handed<S, Shape> = Vec<(Shape, Weak<S>)>;

/// Live state objects by key.
pub struct Kept<K, S, Shape> {
    entries: Mutex<HashMap<K, Handed<S, Shape>>>,
}

impl<K, S, Shape> Default for Kept<K, S, Shape> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, S, Shape: PartialEq> Kept<K, S, Shape> {
    /// The live object for `key` with `shape`, or a new one made by `make` from the newest live
    /// object of that key (if any).
    pub fn get_or_make(&self, key: K, shape: Shape, make: impl FnOnce(Option<&S>) -> S) -> Arc<S> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|_, list| {
            list.retain(|(_, weak)| weak.strong_count() > 0);
            !list.is_empty()
        });
        let list = entries.entry(key).or_default();
        // Only the newest live object may be shared: after a change and a roll-back, an older
        // object of the same shape (still held by a draining runtime) has missed what the newer
        // one counted.
        let newest = list
            .iter()
            .rev()
            .find_map(|(s, weak)| Some((s, weak.upgrade()?)));
        if let Some((newest_shape, object)) = &newest
            && **newest_shape == shape
        {
            return object.clone();
        }
        let made = Arc::new(make(newest.as_ref().map(|(_, o)| &**o)));
        list.push((shape, Arc::downgrade(&made)));
        made
    }

    /// Keys with live state (for tests and metrics).
    pub fn live_keys(&self) -> usize {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .values()
            .filter(|list| list.iter().any(|(_, w)| w.strong_count() > 0))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_shape_shares_the_live_object() {
        let kept: Kept<&str, u32, u8> = Kept::default();
        let first = kept.get_or_make("a", 1, |_| 7);
        let again = kept.get_or_make("a", 1, |_| 9);
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn a_changed_shape_starts_from_the_live_object() {
        let kept: Kept<&str, u32, u8> = Kept::default();
        let old = kept.get_or_make("a", 1, |_| 7);
        let new = kept.get_or_make("a", 2, |prev| prev.copied().unwrap_or(0) + 1);
        assert_eq!(*new, 8);
        assert_eq!(*old, 7, "the running object is untouched");
    }

    #[test]
    fn a_failed_build_does_not_hide_the_running_state() {
        let kept: Kept<&str, u32, u8> = Kept::default();
        let running = kept.get_or_make("a", 1, |_| 7);
        // A build that asked for another shape and was then dropped (failed or `check`).
        drop(kept.get_or_make("a", 2, |_| 100));
        let next = kept.get_or_make("a", 1, |_| 0);
        assert!(Arc::ptr_eq(&running, &next));
    }

    #[test]
    fn a_rolled_back_change_starts_from_the_newest_state_not_an_older_one() {
        let kept: Kept<&str, u32, u8> = Kept::default();
        let a = kept.get_or_make("a", 1, |_| 7);
        let b = kept.get_or_make("a", 2, |prev| prev.copied().unwrap_or(0) + 1);
        // Back to shape 1 while the runtime holding `a` still drains: carry from `b`, not `a`.
        let back = kept.get_or_make("a", 1, |prev| prev.copied().unwrap_or(0) + 10);
        assert!(!Arc::ptr_eq(&a, &back));
        assert_eq!(*back, *b + 10);
    }

    #[test]
    fn dead_state_is_forgotten() {
        let kept: Kept<&str, u32, u8> = Kept::default();
        drop(kept.get_or_make("a", 1, |_| 7));
        let fresh = kept.get_or_make("a", 1, |prev| prev.copied().unwrap_or(0));
        assert_eq!(*fresh, 0);
        assert_eq!(kept.live_keys(), 1);
    }
}
