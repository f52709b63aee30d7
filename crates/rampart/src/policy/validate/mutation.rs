//! Test support: deterministic input mutation for the no-panic tests of the body parsers (the
//! same idea as the cargo-fuzz targets in `fuzz/`, small enough to run in every `cargo test`).

use rand::Rng;

/// A few random edits of `seed`: flip a bit, insert a markup byte, delete a byte, or duplicate a
/// slice (which grows nesting and repeats delimiters).
pub(crate) fn mutate(seed: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    const MARKUP: &[u8] = b"<>&;/=\"'![]?-#x%+\\\0\r\n ";
    let mut out = seed.to_vec();
    for _ in 0..rng.random_range(1..6) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..4) {
            0 if at < out.len() => out[at] ^= 1 << rng.random_range(0..8),
            1 => out.insert(at, MARKUP[rng.random_range(0..MARKUP.len())]),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ => {
                let end = rng.random_range(at..=out.len());
                let slice = out[at..end].to_vec();
                out.splice(at..at, slice);
            }
        }
    }
    out
}
