use std::time::Duration;

use super::gcra::{LocalLimiter, Params, decide};

fn params(rate: u64, per_s: u64, burst: u64, max_delay_ms: u64) -> Params {
    Params::new(
        rate,
        Duration::from_secs(per_s),
        burst,
        Duration::from_millis(max_delay_ms),
    )
}

/// Runs `n` requests at `now` through the pure GCRA, keeping the state.
fn burst(tat: &mut u64, now: u64, n: usize, p: Params) -> Vec<bool> {
    (0..n)
        .map(|_| {
            let (verdict, next) = decide(*tat, now, p);
            if let Some(next) = next {
                *tat = next;
            }
            verdict.allowed
        })
        .collect()
}

#[test]
fn a_burst_is_allowed_then_the_rate_refills() {
    let p = params(10, 1, 20, 0);
    let mut tat = 0;
    let now = 1_000_000;
    let allowed = burst(&mut tat, now, 25, p);
    assert_eq!(allowed.iter().filter(|a| **a).count(), 20, "burst of 20");
    // 10/s: one more every 100 ms.
    assert_eq!(burst(&mut tat, now + 99_000, 1, p), [false]);
    assert_eq!(burst(&mut tat, now + 100_000, 2, p), [true, false]);
    assert_eq!(
        burst(&mut tat, now + 1_100_000, 11, p)
            .iter()
            .filter(|a| **a)
            .count(),
        10
    );
}

#[test]
fn refusal_reports_when_to_retry_and_changes_nothing() {
    let p = params(2, 1, 2, 0);
    let now = 5_000_000;
    let mut tat = 0;
    burst(&mut tat, now, 2, p);
    let (verdict, next) = decide(tat, now, p);
    assert!(!verdict.allowed);
    assert_eq!(next, None, "a refused request does not consume");
    assert_eq!(verdict.retry_after, Duration::from_millis(500));
    let (verdict, _) = decide(tat, now + 500_000, p);
    assert!(verdict.allowed, "allowed exactly at Retry-After");
}

#[test]
fn remaining_counts_down_to_zero() {
    let p = params(5, 1, 5, 0);
    let mut tat = 0;
    let remaining: Vec<u64> = (0..5)
        .map(|_| {
            let (v, next) = decide(tat, 1_000_000, p);
            tat = next.unwrap_or(tat);
            v.remaining
        })
        .collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
}

#[test]
fn throttled_requests_wait_their_turn_up_to_the_delay_budget() {
    // 10/s, burst 1, wait up to 250 ms: requests 2..=3 wait 100 and 200 ms, request 4 is refused.
    let p = params(10, 1, 1, 250);
    let mut tat = 0;
    let now = 1_000_000;
    let delays: Vec<Option<Duration>> = (0..4)
        .map(|_| {
            let (v, next) = decide(tat, now, p);
            tat = next.unwrap_or(tat);
            v.allowed.then_some(v.delay)
        })
        .collect();
    assert_eq!(
        delays,
        [
            Some(Duration::ZERO),
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(200)),
            None
        ]
    );
}

#[test]
fn fail_open_fallback_divides_the_rate_between_instances() {
    let p = params(30, 1, 30, 0).divided(3);
    let mut tat = 0;
    assert_eq!(
        burst(&mut tat, 1_000_000, 30, p)
            .iter()
            .filter(|a| **a)
            .count(),
        10
    );
}

#[tokio::test(start_paused = true)]
async fn local_limiter_follows_the_clock() {
    let p = params(1, 1, 1, 0);
    let limiter = LocalLimiter::new(100, p);
    assert!(limiter.check(7, p).allowed);
    assert!(!limiter.check(7, p).allowed);
    assert!(limiter.check(8, p).allowed, "keys are independent");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(limiter.check(7, p).allowed);
}

#[tokio::test(start_paused = true)]
async fn a_spray_of_distinct_keys_stays_within_the_bound_and_spares_busy_keys() {
    let p = params(5, 60, 5, 0);
    let limiter = LocalLimiter::new(10_000, p);
    // The legitimate key uses its whole burst first.
    for _ in 0..5 {
        assert!(limiter.check(u64::MAX, p).allowed);
    }
    for key in 0..200_000u64 {
        limiter.check(key, p);
        if key % 1000 == 0 {
            // The busy key stays tracked, so its spent burst is not forgotten.
            assert!(
                !limiter.check(u64::MAX, p).allowed,
                "busy key reset by the spray at {key}"
            );
        }
    }
    assert!(
        limiter.tracked_keys() <= 10_000,
        "{} keys tracked",
        limiter.tracked_keys()
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_limit_carries_over_what_each_key_has_used() {
    let three = params(3, 3600, 3, 0);
    let old = LocalLimiter::new(100, three);
    for _ in 0..3 {
        assert!(old.check(1, three).allowed);
    }
    assert!(old.check(2, three).allowed, "key 2 used one of three");
    let four = params(4, 3600, 4, 0);
    let raised = LocalLimiter::carried_over(Some(&old), 100, four);
    assert!(raised.check(1, four).allowed, "the fourth of four");
    assert!(!raised.check(1, four).allowed, "three were already used");
    for _ in 0..3 {
        assert!(raised.check(2, four).allowed);
    }
    assert!(!raised.check(2, four).allowed);
    let two = params(2, 3600, 2, 0);
    let lowered = LocalLimiter::carried_over(Some(&old), 100, two);
    assert!(!lowered.check(1, two).allowed, "three used of a new two");
    assert!(lowered.check(2, two).allowed, "one used of a new two");
    assert!(!lowered.check(2, two).allowed);
}

#[tokio::test(start_paused = true)]
async fn a_lowered_limit_never_carries_more_debt_than_its_own_window() {
    let fast = params(1000, 1, 1000, 0);
    let old = LocalLimiter::new(100, fast);
    for _ in 0..1000 {
        assert!(old.check(1, fast).allowed);
    }
    let slow = params(10, 60, 10, 0);
    let lowered = LocalLimiter::carried_over(Some(&old), 100, slow);
    let refused = lowered.check(1, slow);
    assert!(!refused.allowed);
    assert!(
        refused.retry_after <= Duration::from_secs(60),
        "a full burst of the new limit refills within its window: {:?}",
        refused.retry_after
    );
}

#[tokio::test(start_paused = true)]
async fn a_fail_open_fallback_with_a_window_beyond_a_year_does_not_panic() {
    // One request a day shared by a million instances: each gets one per million days.
    let p = params(1, 86_400, 1, 0).divided(1_000_000);
    let limiter = LocalLimiter::new(10, p);
    assert!(limiter.check(1, p).allowed);
    assert!(!limiter.check(1, p).allowed);
}

#[test]
fn a_burst_that_refills_over_more_than_a_year_is_a_config_error() {
    let limit: super::LimitConfig =
        toml::from_str("name = \"slow\"\nkey = \"ip\"\nrate = 1\nper = \"day\"\nburst = 400000\n")
            .unwrap_or_else(|e| panic!("{e}"));
    let mut issues = Vec::new();
    super::config::validate(&[limit], false, "/routes/0", &mut issues);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].pointer, "/routes/0/rate_limits/0/burst");
}
