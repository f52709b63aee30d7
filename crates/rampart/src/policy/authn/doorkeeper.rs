//! Which verified credentials are worth caching: those seen a second time.
//!
//! A cache of verified tokens pays for itself only on a token's second use. A token used once (a
//! client that fetches a new token per call, a spray of fresh tokens) costs its insertion, the
//! memory it holds until it expires or is evicted, and the eviction of tokens that are reused.
//! This is TinyLFU's doorkeeper (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", 2017): the first sighting only leaves a fingerprint in a fixed table; the
//! second, finding it, admits the token to the cache.
//!
//! Written here because moka, the cache, has no admission filter in front of insertion (its
//! TinyLFU decides only between candidates once the cache is full), and a Bloom filter crate
//! would need resetting; one slot per fingerprint, overwritten by the next token that hashes
//! there, forgets by itself.
//!
//! The table only decides what is cached, never whether a token is valid: a collision or an
//! overwritten slot costs at most one more signature check.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in one table: 512 KiB. A token seen again before about this many other first
/// sightings have gone by is admitted.
const SLOTS: usize = 1 << 16;

pub(super) struct Doorkeeper {
    slots: Box<[AtomicU64]>,
}

impl Default for Doorkeeper {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

impl Doorkeeper {
    fn with_slots(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records a sighting of `digest` (a cryptographic hash, so its bytes are uniform) and says
    /// whether it had been seen before.
    pub(super) fn seen_before(&self, digest: &[u8; 32]) -> bool {
        let [a, b, c, d, e, f, g, h, fingerprint @ ..] = *digest;
        let index = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        let [i, j, k, l, m, n, o, p, ..] = fingerprint;
        // Never 0, which an empty slot holds.
        let fingerprint = u64::from_le_bytes([i, j, k, l, m, n, o, p]) | 1;
        // Below the slot count, so the cast back to usize keeps it whole.
        let slot = (index % self.slots.len() as u64) as usize;
        self.slots[slot].swap(fingerprint, Ordering::Relaxed) == fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> [u8; 32] {
        let mut d = [0; 32];
        d[0] = n;
        d[8] = n.wrapping_mul(31).wrapping_add(7);
        d
    }

    #[test]
    fn a_digest_is_admitted_on_its_second_sighting_not_its_first() {
        let door = Doorkeeper::default();
        assert!(!door.seen_before(&digest(1)));
        assert!(door.seen_before(&digest(1)));
        assert!(door.seen_before(&digest(1)));
        assert!(!door.seen_before(&digest(2)));
    }

    #[test]
    fn a_slot_taken_by_another_digest_forgets_the_first() {
        // One slot: every digest lands in it.
        let door = Doorkeeper::with_slots(1);
        assert!(!door.seen_before(&digest(1)));
        assert!(!door.seen_before(&digest(2)));
        assert!(!door.seen_before(&digest(1)), "digest 2 overwrote it");
        assert!(door.seen_before(&digest(1)));
    }
}
