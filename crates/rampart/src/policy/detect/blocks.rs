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

use super::subject::Subject;
use crate::store::redis::SharedRedis;

const REDIS_KEY: &str = "rampart:blocks";
/// Who raised a block an operator made (admin API, CLI).
pub const OPERATOR: &str = "operator";

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

/// The map the request path reads, with what makes its lookups cheap.
#[derive(Default)]
struct State {
    blocks: HashMap<Subject, Block>,
    /// The prefix lengths of the network blocks, per family (IPv6: true): a lookup truncates
    /// the address to each and probes the map, instead of scanning every network.
    prefixes: BTreeSet<(bool, u8)>,
    /// Caller blocks: while there are none, an authenticated request does no lookup.
    callers: usize,
}

impl State {
    fn new(blocks: HashMap<Subject, Block>) -> Self {
        let mut state = Self {
            blocks,
            ..Self::default()
        };
        state.recount();
        state
    }

    fn recount(&mut self) {
        self.prefixes = self.blocks.keys().filter_map(prefix_of).collect();
        self.callers = self
            .blocks
            .keys()
            .filter(|s| matches!(s, Subject::Caller(_)))
            .count();
    }

    /// Adds or extends a block; returns the expiry in force.
    fn insert(&mut self, subject: Subject, block: Block) -> SystemTime {
        if let Some(held) = self.blocks.get_mut(&subject) {
            if block.until > held.until {
                *held = block;
            }
            return held.until;
        }
        self.prefixes.extend(prefix_of(&subject));
        self.callers += usize::from(matches!(subject, Subject::Caller(_)));
        let until = block.until;
        self.blocks.insert(subject, block);
        until
    }
}

fn prefix_of(subject: &Subject) -> Option<(bool, u8)> {
    match subject {
        Subject::Network(net) => Some((net.addr().is_ipv6(), net.prefix_len())),
        _ => None,
    }
}

/// A block raised here and not yet seen back in Redis.
struct Pending {
    block: Block,
    /// When the Redis write completed: a read that began after it shows the block.
    written_at: Option<SystemTime>,
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
    /// Blocks raised here until a Redis read shows them (or, unwritten, until written): a sync
    /// keeps them, so that a failed write or a read that began before the write loses nothing.
    pending: Mutex<HashMap<Subject, Pending>>,
    /// Subjects lifted here, and when: a sync whose read began before the lift must not bring
    /// them back.
    lifted: Mutex<HashMap<Subject, SystemTime>>,
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
            pending: Mutex::default(),
            lifted: Mutex::default(),
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The block on this client address or a network around it.
    pub fn source_blocked(&self, ip: IpAddr) -> Option<Blocked> {
        if self.entries.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let ip = ip.to_canonical();
        let state = self.read();
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
        if self.entries.load(Ordering::Relaxed) == 0 || self.read().callers == 0 {
            return None;
        }
        let caller = Subject::caller(key_id, Some(subject))?;
        blocked(self.read().blocks.get(&caller)?, SystemTime::now())
    }

    /// Blocks a subject for `duration` (a longer block already in force stays); shared through
    /// Redis when configured. Past `max_blocks` a detector's block is refused; an operator's is
    /// always taken (the list must never keep an operator from acting).
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
        };
        // Locks in the order `sync` takes them: the pending list, then the map.
        let until = {
            let mut pending = self.pending_lock();
            let mut state = self.write();
            let max = self.max.load(Ordering::Relaxed);
            let full = state.blocks.len() >= max && !state.blocks.contains_key(&subject);
            if full && by != OPERATOR {
                metrics::counter!("rampart_blocks_refused_total").increment(1);
                return Err(BlockListFull(max));
            }
            let until = state.insert(subject.clone(), block.clone());
            self.entries.store(state.blocks.len(), Ordering::Relaxed);
            // What is shared is the block in force, which may be longer than this one.
            let block = Block { until, ..block };
            let entry = Pending {
                block,
                written_at: None,
            };
            pending.insert(subject.clone(), entry);
            until
        };
        let kept = Block {
            until,
            by: Arc::from(by),
        };
        match self.publish(&subject, &kept).await {
            Ok(()) => self.mark_written(&subject),
            Err(e) => {
                tracing::warn!(error = %e, "cannot share a block through Redis; retrying at the next sync")
            }
        }
        Ok(until)
    }

    fn mark_written(&self, subject: &Subject) {
        if let Some(p) = self.pending_lock().get_mut(subject) {
            p.written_at = Some(SystemTime::now());
        }
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lifted_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, SystemTime>> {
        self.lifted.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn publish(&self, subject: &Subject, block: &Block) -> redis::RedisResult<()> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        let member = format!("{subject}\n{}", block.by);
        let score = unix_ms(block.until);
        // GT: a shorter block raised elsewhere never cuts a longer one short.
        redis::cmd("ZADD")
            .arg(REDIS_KEY)
            .arg("GT")
            .arg(score)
            .arg(member)
            .query_async::<()>(&mut redis.clone())
            .await
    }

    /// Lifts every block on a subject, here and in Redis; false when none was in force. The
    /// local block is gone even when Redis fails (the error says the others may keep it).
    pub async fn lift(&self, subject: &Subject) -> Result<bool, redis::RedisError> {
        let was_here = {
            let mut state = self.write();
            let was = state.blocks.remove(subject);
            state.recount();
            self.entries.store(state.blocks.len(), Ordering::Relaxed);
            was.is_some_and(|b| b.seconds_left(SystemTime::now()).is_some())
        };
        self.pending_lock().remove(subject);
        let removed: u64 = match &self.redis {
            None => 0,
            Some(redis) => {
                self.lift
                    .key(REDIS_KEY)
                    .arg(subject.to_string())
                    .invoke_async(&mut redis.clone())
                    .await?
            }
        };
        self.lifted_lock()
            .insert(subject.clone(), SystemTime::now());
        Ok(was_here || removed > 0)
    }

    /// The blocks in force, sorted by subject, at most `limit`; and how many there are.
    pub fn list(&self, limit: usize) -> (Vec<(Subject, Block)>, usize) {
        let now = SystemTime::now();
        let state = self.read();
        let mut live: Vec<(Subject, Block)> = state
            .blocks
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(s, b)| (s.clone(), b.clone()))
            .collect();
        drop(state);
        let total = live.len();
        live.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        live.truncate(limit);
        (live, total)
    }

    /// Drops expired blocks; with Redis, replaces the local map by the shared set, keeping
    /// what was raised here and not yet seen there, and leaving out what was lifted here since
    /// the read began. The new map is built outside the lock the request path reads.
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
        let mut next = match shared {
            Some(mut shared) => {
                self.lifted_lock().retain(|subject, at| {
                    if *at >= started {
                        shared.remove(subject);
                    }
                    *at >= started
                });
                shared
            }
            None => self.read().blocks.clone(),
        };
        next.retain(|_, b| b.until > started);
        let mut state = State::new(next);
        let old = {
            let mut pending = self.pending_lock();
            pending.retain(|_, p| p.block.until > started);
            let mut current = self.write();
            for (subject, p) in pending.iter() {
                state.insert(subject.clone(), p.block.clone());
            }
            self.entries.store(state.blocks.len(), Ordering::Relaxed);
            metrics::gauge!("rampart_blocks_active").set(state.blocks.len() as f64);
            std::mem::replace(&mut *current, state)
        };
        // The old map is freed here, outside the lock.
        drop(old);
        self.settle(started).await;
    }

    /// Forgets pending blocks a read after their write has seen, and writes again the others.
    async fn settle(&self, read_started: SystemTime) {
        if self.redis.is_none() {
            self.pending_lock().clear();
            return;
        }
        let unwritten: Vec<(Subject, Block)> = {
            let mut pending = self.pending_lock();
            pending.retain(|_, p| p.written_at.is_none_or(|at| at >= read_started));
            pending
                .iter()
                .filter(|(_, p)| p.written_at.is_none())
                .map(|(s, p)| (s.clone(), p.block.clone()))
                .collect()
        };
        for (subject, block) in unwritten {
            if self.publish(&subject, &block).await.is_ok() {
                self.mark_written(&subject);
            }
        }
    }

    async fn read_shared(
        &self,
        redis: &SharedRedis,
        now: SystemTime,
    ) -> redis::RedisResult<HashMap<Subject, Block>> {
        let mut redis = redis.clone();
        let now_ms = unix_ms(now);
        let max = isize::try_from(self.max.load(Ordering::Relaxed)).unwrap_or(isize::MAX);
        // The longest-lived first: past `max_blocks`, the blocks about to end are left out.
        let (members,): (Vec<(String, f64)>,) = redis::pipe()
            .zrembyscore(REDIS_KEY, "-inf", now_ms)
            .ignore()
            .zrevrange_withscores(REDIS_KEY, 0, max.saturating_sub(1))
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
            };
            let entry = blocks.entry(subject).or_insert_with(|| block.clone());
            if block.until > entry.until {
                *entry = block;
            }
        }
        Ok(blocks)
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
