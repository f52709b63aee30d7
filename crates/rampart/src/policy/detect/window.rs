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
    /// forgets the key: the next detection needs a full new count.
    pub(super) fn add(
        &mut self,
        key: K,
        measure: Measure,
        now: Instant,
        window: Duration,
        threshold: u32,
    ) -> Option<u32> {
        let expired = self
            .entries
            .get(&key)
            .is_none_or(|e| now.saturating_duration_since(e.started) >= window);
        if expired {
            let fresh = Entry {
                started: now,
                count: 0,
                seen: Vec::new(),
            };
            self.entries.insert(key.clone(), fresh);
        }
        let entry = self.entries.get_mut(&key)?;
        match measure {
            Measure::Events => entry.count = entry.count.saturating_add(1),
            Measure::Distinct(value) => {
                if let Err(at) = entry.seen.binary_search(&value) {
                    entry.seen.insert(at, value);
                    entry.count = entry.count.saturating_add(1);
                }
            }
        }
        if entry.count < threshold {
            return None;
        }
        let count = entry.count;
        self.entries.remove(&key);
        Some(count)
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
                    "a",
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
                "a",
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
                "a",
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
                t.add("a", Measure::Events, at, MINUTE, 5),
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
            assert_eq!(t.add("k", Measure::Distinct(7), now, MINUTE, 3), None);
        }
        assert_eq!(t.add("k", Measure::Distinct(8), now, MINUTE, 3), None);
        assert_eq!(t.add("k", Measure::Distinct(9), now, MINUTE, 3), Some(3));
    }

    #[test]
    fn a_key_spray_stays_inside_the_capacity_and_keeps_the_active_key() {
        let mut t = Tracker::new(100);
        let now = Instant::now();
        for i in 0..50_000u32 {
            t.add(i, Measure::Events, now, MINUTE, 1_000);
            // The attacker's own key is the one in use: it stays.
            if i % 10 == 0 {
                assert_eq!(t.add(u32::MAX, Measure::Events, now, MINUTE, 5_001), None);
            }
        }
        assert!(t.len() <= 100);
        assert_eq!(
            t.add(u32::MAX, Measure::Events, now, MINUTE, 5_001),
            Some(5_001)
        );
    }
}
