//! Temporary blocks of addresses, networks and callers: raised by detectors or by an operator,
//! enforced on the request path, shared by every instance through Redis when it is configured.
//!
//! Invariants: the request path reads a local map (no I/O; nothing at all while no block is in
//! force); the map is bounded (`max_blocks`: past it a new block is refused and counted, an old
//! one is never dropped); a block carries its expiry as wall-clock time, so every instance ends
//! it at the same moment. With Redis, blocks live in one sorted set (`rampart:blocks`, scored by
//! expiry) that each instance reads every `block_sync_ms`: a block raised or lifted on one
//! instance holds on all within that period, and an instance that restarts reads them back. A
//! block that could not be written to Redis is kept locally and written again at the next sync.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use redis::AsyncCommands;

use super::subject::Subject;
use crate::store::redis::SharedRedis;

const REDIS_KEY: &str = "rampart:blocks";

/// Removes every member of a subject (one per detector that blocked it): members are
/// `SUBJECT\nBY`.
const LIFT_SCRIPT: &str = r"
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #ARGV[1] + 1) == ARGV[1] .. '\n' then
    redis.call('ZREM', KEYS[1], m)
    n = n + 1
  end
end
return n
";

/// One block in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub until: SystemTime,
    /// The detector that raised it, or `operator`.
    pub by: Arc<str>,
    /// When this instance raised it (blocks read from Redis: the epoch).
    raised_at: SystemTime,
}

impl Block {
    /// Whole seconds left, at least one while it holds.
    pub fn seconds_left(&self, now: SystemTime) -> Option<u64> {
        let left = self.until.duration_since(now).ok()?;
        (!left.is_zero()).then(|| left.as_secs().max(1))
    }
}

/// Why a request is refused: who blocked it and for how long still.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub by: Arc<str>,
    pub retry_after_s: u64,
}

#[derive(Default)]
struct State {
    blocks: HashMap<Subject, Block>,
    /// The prefix lengths of the network blocks, per family (IPv6: true): a lookup truncates
    /// the address to each and probes the map, instead of scanning every network.
    prefixes: BTreeSet<(bool, u8)>,
}

impl State {
    fn rebuild_prefixes(&mut self) {
        self.prefixes = self
            .blocks
            .keys()
            .filter_map(|s| match s {
                Subject::Network(net) => Some((net.addr().is_ipv6(), net.prefix_len())),
                _ => None,
            })
            .collect();
    }
}

/// The refusal to add a block past `max_blocks`.
#[derive(Debug, thiserror::Error)]
#[error("the block list is full ({0} blocks)")]
pub struct BlockListFull(pub usize);

pub struct BlockList {
    state: RwLock<State>,
    /// Entries in `state` (the request path's fast exit when zero).
    entries: AtomicUsize,
    max: AtomicUsize,
    /// `block_sync_ms` of the running config.
    sync_every_ms: AtomicU64,
    redis: Option<SharedRedis>,
    /// Blocks raised here whose Redis write failed, written again at the next sync.
    unsent: Mutex<Vec<(Subject, Block)>>,
    lift: redis::Script,
}

impl BlockList {
    pub fn new(max: usize, redis: Option<SharedRedis>) -> Self {
        Self {
            state: RwLock::default(),
            entries: AtomicUsize::new(0),
            max: AtomicUsize::new(max.max(1)),
            sync_every_ms: AtomicU64::new(1000),
            redis,
            unsent: Mutex::default(),
            lift: redis::Script::new(LIFT_SCRIPT),
        }
    }

    /// Follows `max_blocks` and `block_sync_ms` of the running config.
    pub fn configure(&self, config: &super::DetectConfig) {
        let max = usize::try_from(config.max_blocks).unwrap_or(usize::MAX);
        self.max.store(max.max(1), Ordering::Relaxed);
        self.sync_every_ms
            .store(config.block_sync_ms.max(1), Ordering::Relaxed);
    }

    /// The block on this client address or a network around it.
    pub fn source_blocked(&self, ip: IpAddr) -> Option<Blocked> {
        if self.entries.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let ip = ip.to_canonical();
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
        let mut probes = std::iter::once(Subject::Address(ip)).chain(
            state
                .prefixes
                .iter()
                .filter(|(v6, _)| *v6 == ip.is_ipv6())
                .filter_map(|(_, len)| IpNet::new(ip, *len).ok())
                .map(|net| Subject::Network(net.trunc())),
        );
        probes.find_map(|subject| blocked(state.blocks.get(&subject)?, now))
    }

    /// The block on an authenticated caller (`key:ID` or `sub:SUBJECT`).
    pub fn caller_blocked(&self, key_id: Option<&str>, subject: &str) -> Option<Blocked> {
        if self.entries.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let caller = Subject::caller(key_id, Some(subject))?;
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        blocked(state.blocks.get(&caller)?, SystemTime::now())
    }

    /// Blocks a subject for `duration` (a longer block already in force stays); shared through
    /// Redis when configured.
    pub async fn raise(
        &self,
        subject: Subject,
        by: &str,
        duration: Duration,
    ) -> Result<SystemTime, BlockListFull> {
        let now = SystemTime::now();
        let block = Block {
            until: now.checked_add(duration).unwrap_or(now),
            by: Arc::from(by),
            raised_at: now,
        };
        let until = self.insert_local(subject.clone(), block.clone())?;
        if let Err(e) = self.publish(&subject, &block).await {
            tracing::warn!(error = %e, "cannot share a block through Redis; retrying at the next sync");
            self.unsent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((subject, block));
        }
        Ok(until)
    }

    fn insert_local(&self, subject: Subject, block: Block) -> Result<SystemTime, BlockListFull> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let max = self.max.load(Ordering::Relaxed);
        if !state.blocks.contains_key(&subject) && state.blocks.len() >= max {
            metrics::counter!("rampart_blocks_refused_total").increment(1);
            return Err(BlockListFull(max));
        }
        let entry = state.blocks.entry(subject).or_insert_with(|| block.clone());
        if block.until > entry.until {
            *entry = block;
        }
        let until = entry.until;
        state.rebuild_prefixes();
        self.entries.store(state.blocks.len(), Ordering::Relaxed);
        Ok(until)
    }

    async fn publish(&self, subject: &Subject, block: &Block) -> redis::RedisResult<()> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        let member = format!("{subject}\n{}", block.by);
        let score = unix_ms(block.until);
        redis
            .clone()
            .zadd::<_, _, _, ()>(REDIS_KEY, member, score)
            .await
    }

    /// Lifts every block on a subject, here and in Redis; false when none was in force.
    pub async fn lift(&self, subject: &Subject) -> Result<bool, redis::RedisError> {
        let was_here = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            let was = state.blocks.remove(subject);
            state.rebuild_prefixes();
            self.entries.store(state.blocks.len(), Ordering::Relaxed);
            was.is_some_and(|b| b.seconds_left(SystemTime::now()).is_some())
        };
        self.unsent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _)| s != subject);
        let Some(redis) = &self.redis else {
            return Ok(was_here);
        };
        let removed: u64 = self
            .lift
            .key(REDIS_KEY)
            .arg(subject.to_string())
            .invoke_async(&mut redis.clone())
            .await?;
        Ok(was_here || removed > 0)
    }

    /// The blocks in force, sorted by subject, at most `limit`; and how many there are.
    pub fn list(&self, limit: usize) -> (Vec<(Subject, Block)>, usize) {
        let now = SystemTime::now();
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let mut live: Vec<(Subject, Block)> = state
            .blocks
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(s, b)| (s.clone(), b.clone()))
            .collect();
        let total = live.len();
        live.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        live.truncate(limit);
        (live, total)
    }

    /// Drops expired blocks; with Redis, replaces the local map by the shared set (keeping
    /// blocks raised here since the read began) and writes again the blocks it missed.
    pub async fn sync(&self) {
        let started = SystemTime::now();
        let shared = match &self.redis {
            Some(redis) => match self.read_shared(redis, started).await {
                Ok(shared) => Some(shared),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the shared blocks from Redis; keeping the local ones");
                    None
                }
            },
            None => None,
        };
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            if let Some(shared) = shared {
                let fresh = state
                    .blocks
                    .drain()
                    .filter(|(_, b)| b.raised_at >= started)
                    .collect::<Vec<_>>();
                state.blocks = shared;
                for (subject, block) in fresh {
                    state.blocks.insert(subject, block);
                }
            }
            state.blocks.retain(|_, b| b.until > started);
            state.rebuild_prefixes();
            self.entries.store(state.blocks.len(), Ordering::Relaxed);
            metrics::gauge!("rampart_blocks_active").set(state.blocks.len() as f64);
        }
        self.resend().await;
    }

    async fn read_shared(
        &self,
        redis: &SharedRedis,
        now: SystemTime,
    ) -> redis::RedisResult<HashMap<Subject, Block>> {
        let mut redis = redis.clone();
        let now_ms = unix_ms(now);
        let max = isize::try_from(self.max.load(Ordering::Relaxed)).unwrap_or(isize::MAX);
        let (members,): (Vec<(String, f64)>,) = redis::pipe()
            .zrembyscore(REDIS_KEY, "-inf", now_ms)
            .ignore()
            .zrange_withscores(REDIS_KEY, 0, max.saturating_sub(1))
            .query_async(&mut redis)
            .await?;
        let mut blocks = HashMap::with_capacity(members.len());
        for (member, until_ms) in members {
            let Some((subject, by)) = member.split_once('\n') else {
                continue;
            };
            let Ok(subject) = Subject::parse(subject) else {
                continue;
            };
            let block = Block {
                until: UNIX_EPOCH + Duration::from_millis(until_ms.max(0.0) as u64),
                by: Arc::from(by),
                raised_at: UNIX_EPOCH,
            };
            let entry = blocks.entry(subject).or_insert_with(|| block.clone());
            if block.until > entry.until {
                *entry = block;
            }
        }
        Ok(blocks)
    }

    async fn resend(&self) {
        let unsent = std::mem::take(&mut *self.unsent.lock().unwrap_or_else(|p| p.into_inner()));
        for (subject, block) in unsent {
            if block.until <= SystemTime::now() {
                continue;
            }
            if self.publish(&subject, &block).await.is_err() {
                self.unsent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((subject, block));
            }
        }
    }

    /// Syncs every `block_sync_ms` until the list is dropped.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(list) = weak.upgrade() else { return };
                let period = Duration::from_millis(list.sync_every_ms.load(Ordering::Relaxed));
                drop(list);
                tokio::time::sleep(period).await;
                let Some(list) = weak.upgrade() else { return };
                list.sync().await;
            }
        })
    }
}

fn blocked(block: &Block, now: SystemTime) -> Option<Blocked> {
    Some(Blocked {
        retry_after_s: block.seconds_left(now)?,
        by: block.by.clone(),
    })
}

fn unix_ms(time: SystemTime) -> i64 {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}
