//! Bounded counting over time windows: events per key, or distinct values per key.
//!
//! Hand-written over `hashlink::LruCache` because the detectors need what rate-limit crates do
//! not count (distinct values per key) and time passed in by the caller, so that tests drive the
//! clock. Attackers choose the keys: the map holds at most `capacity` keys, forgetting the least
//! recently seen, and a key keeps at most `threshold` fingerprints.

use std::collections::hash_map::RandomState;
use std::hash::Hash;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use hashlink::linked_hash_map::RawEntryMut;

/// One key's window: from its first event, `window` long.
struct Entry {
    started: Instant,
    count: u32,
    /// Sorted fingerprints of the distinct values seen (distinct counting only).
    seen: Vec<u64>,
}

/// What a detector counts for a key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Measure {
    /// Every event.
    Events,
    /// Distinct values, by a keyed 64-bit fingerprint.
    Distinct(u64),
}

pub(super) struct Tracker<K: Hash + Eq> {
    entries: LruCache<K, Entry, RandomState>,
}

impl<K: Hash + Eq + Clone> Tracker<K> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: LruCache::with_hasher(capacity.max(1), RandomState::new()),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Follows a changed `max_tracked` (the least recently seen keys go first).
    pub(super) fn set_capacity(&mut self, capacity: usize) {
        if self.entries.capacity() != capacity.max(1) {
            self.entries.set_capacity(capacity.max(1));
        }
    }

    /// Counts one event for `key`. When the window's count reaches `threshold`, returns it and
    /// forgets the key: the next detection needs a full new count. A key already tracked (the
    /// usual case: a caller's next request) costs one hashed lookup; the key is copied only when
    /// it starts being tracked.
    pub(super) fn add(
        &mut self,
        key: &K,
        measure: Measure,
        now: Instant,
        window: Duration,
        threshold: u32,
    ) -> Option<u32> {
        match self.entries.raw_entry_mut().from_key(key) {
            RawEntryMut::Occupied(mut occupied) => {
                occupied.to_back();
                let entry = occupied.get_mut();
                if now.saturating_duration_since(entry.started) >= window {
                    entry.restart(now);
                }
                entry.count(measure);
                (entry.count >= threshold).then(|| occupied.remove().count)
            }
            RawEntryMut::Vacant(vacant) => {
                let mut entry = Entry::starting(now);
                entry.count(measure);
                if entry.count >= threshold {
                    return Some(entry.count);
                }
                vacant.insert(key.clone(), entry);
                // The raw entry API lets the map go one over its capacity: back inside it now.
                if self.entries.len() > self.entries.capacity() {
                    self.entries.remove_lru();
                }
                None
            }
        }
    }
}

impl Entry {
    fn starting(now: Instant) -> Self {
        Self {
            started: now,
            count: 0,
            seen: Vec::new(),
        }
    }

    /// A new window from `now` (the fingerprints' storage kept).
    fn restart(&mut self, now: Instant) {
        self.started = now;
        self.count = 0;
        self.seen.clear();
    }

    fn count(&mut self, measure: Measure) {
        match measure {
            Measure::Events => self.count = self.count.saturating_add(1),
            Measure::Distinct(value) => {
                if let Err(at) = self.seen.binary_search(&value) {
                    self.seen.insert(at, value);
                    self.count = self.count.saturating_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn events_reach_the_threshold_inside_the_window_and_then_start_over() {
        let mut t = Tracker::new(10);
        let start = Instant::now();
        for i in 0..4 {
            assert_eq!(
                t.add(
                    &"a",
                    Measure::Events,
                    start + Duration::from_secs(i),
                    MINUTE,
                    5
                ),
                None
            );
        }
        assert_eq!(
            t.add(
                &"a",
                Measure::Events,
                start + Duration::from_secs(5),
                MINUTE,
                5
            ),
            Some(5)
        );
        assert_eq!(t.len(), 0, "a detection forgets the key");
        assert_eq!(
            t.add(
                &"a",
                Measure::Events,
                start + Duration::from_secs(6),
                MINUTE,
                5
            ),
            None
        );
    }

    #[test]
    fn events_spread_over_more_than_the_window_never_reach_it() {
        let mut t = Tracker::new(10);
        let start = Instant::now();
        for i in 0..20 {
            let at = start + Duration::from_secs(20 * i);
            assert_eq!(
                t.add(&"a", Measure::Events, at, MINUTE, 5),
                None,
                "event {i}"
            );
        }
    }

    #[test]
    fn distinct_values_count_once_each() {
        let mut t = Tracker::new(10);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(t.add(&"k", Measure::Distinct(7), now, MINUTE, 3), None);
        }
        assert_eq!(t.add(&"k", Measure::Distinct(8), now, MINUTE, 3), None);
        assert_eq!(t.add(&"k", Measure::Distinct(9), now, MINUTE, 3), Some(3));
    }

    #[test]
    fn distinct_values_of_an_expired_window_count_again_in_the_next() {
        let mut t = Tracker::new(10);
        let start = Instant::now();
        assert_eq!(t.add(&"k", Measure::Distinct(1), start, MINUTE, 2), None);
        // A new window: the value seen before it counts again, and the old count is gone.
        let later = start + MINUTE;
        assert_eq!(t.add(&"k", Measure::Distinct(2), later, MINUTE, 2), None);
        assert_eq!(t.add(&"k", Measure::Distinct(1), later, MINUTE, 2), Some(2));
    }

    #[test]
    fn a_threshold_of_one_detects_at_once_and_evicts_no_tracked_key() {
        let mut t = Tracker::new(2);
        let now = Instant::now();
        assert_eq!(t.add(&"a", Measure::Events, now, MINUTE, 10), None);
        assert_eq!(t.add(&"b", Measure::Events, now, MINUTE, 10), None);
        assert_eq!(t.add(&"c", Measure::Events, now, MINUTE, 1), Some(1));
        assert_eq!(t.len(), 2, "the full map keeps both keys");
        assert_eq!(t.add(&"a", Measure::Events, now, MINUTE, 2), Some(2));
        assert_eq!(t.add(&"b", Measure::Events, now, MINUTE, 2), Some(2));
    }

    #[test]
    fn a_key_spray_stays_inside_the_capacity_and_keeps_the_active_key() {
        let mut t = Tracker::new(100);
        let now = Instant::now();
        for i in 0..50_000u32 {
            t.add(&i, Measure::Events, now, MINUTE, 1_000);
            assert!(t.len() <= 100, "{} keys after key {i}", t.len());
            // The attacker's own key is the one in use: it stays.
            if i % 10 == 0 {
                assert_eq!(t.add(&u32::MAX, Measure::Events, now, MINUTE, 5_001), None);
            }
        }
        assert!(t.len() <= 100);
        assert_eq!(
            t.add(&u32::MAX, Measure::Events, now, MINUTE, 5_001),
            Some(5_001)
        );
    }
}
