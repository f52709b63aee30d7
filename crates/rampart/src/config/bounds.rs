//! The largest value each kind of number in the config may take.
//!
//! Every duration, size and count has a maximum, checked by the schema pass with the value's path
//! and line. Without one, a value such as `block_s = 40000000000` passes `check` and then panics
//! at `run` (an `Instant` or a cache TTL overflows) or reserves absurd memory. The maxima are far
//! above any sensible setting and far below any overflow; `docs/config.md` lists them.

/// Durations in seconds (`*_s`): one year.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;
/// Durations in milliseconds (`*_ms`): one day.
pub const MAX_MILLIS: u64 = 24 * 3600 * 1000;
/// Body and file sizes (`max_body_bytes`, `audit.max_file_bytes`): 1 TiB.
pub const MAX_BODY_BYTES: u64 = 1 << 40;
/// Sizes of single items held in memory (a token, a proof): 1 MiB.
pub const MAX_ITEM_BYTES: u64 = 1 << 20;
/// The longest request target `http::Uri` parses.
pub const MAX_URI_BYTES: u64 = 65_000;
/// The most a body may be buffered in memory before the upstream is used (per request).
pub const MAX_BUFFER_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// Entries of a bounded cache or queue: 100 million.
pub const MAX_ENTRIES: u64 = 100_000_000;
/// Small counts (failures, thresholds, instances, files): one million.
pub const MAX_COUNT: u64 = 1_000_000;
/// Rates, bursts and quotas: 10^12 per period.
pub const MAX_RATE: u64 = 1_000_000_000_000;
/// `store.timeout_ms`: a minute (a request waits this long at most for the store).
pub const MAX_STORE_TIMEOUT_MS: u64 = 60_000;
