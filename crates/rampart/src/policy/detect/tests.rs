//! Each detector against the pattern it is for, on a clock the test moves; the block list.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::blocks::BlockList;
use super::rules::Rule;
use super::subject::Subject;
use super::{DetectConfig, DetectSettings, Detection, Detectors};
use crate::audit::AuditRecord;
use crate::context::{Decision, RequestId};

fn record(ip: &str, status: u16, code: Option<&'static str>) -> AuditRecord {
    let decision = if status < 400 {
        Decision::Allow
    } else {
        Decision::Deny
    };
    AuditRecord {
        route: Some(Arc::from("orders")),
        path: "/orders/1".into(),
        code,
        ..AuditRecord::answered(
            RequestId::generate(),
            ip.parse().unwrap(),
            Arc::from("public"),
            "GET".into(),
            status,
            decision,
        )
    }
}

fn failed_login(ip: &str, user: &str) -> AuditRecord {
    AuditRecord {
        claimed_user: Some(Arc::new(user.to_owned())),
        ..record(ip, 401, Some("invalid_token"))
    }
}

fn by_caller(ip: &str, sub: &str, path: &str, status: u16) -> AuditRecord {
    AuditRecord {
        principal: Some(sub.to_owned()),
        auth_method: Some("jwt"),
        path: path.to_owned(),
        upstream_status: Some(status),
        ..record(ip, status, None)
    }
}

fn detectors(toml: &str) -> Detectors {
    let config: DetectConfig = toml::from_str(toml).unwrap();
    let settings = Arc::new(ArcSwap::from_pointee(DetectSettings::new(&config, &[])));
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    Detectors::new(settings, tx)
}

/// Feeds records one second apart from `start`; returns every detection.
fn feed(d: &mut Detectors, records: impl IntoIterator<Item = AuditRecord>) -> Vec<Detection> {
    let start = Instant::now();
    records
        .into_iter()
        .enumerate()
        .flat_map(|(i, r)| d.observe_at(&r, start + Duration::from_secs(i as u64)))
        .collect()
}

fn rules(found: &[Detection]) -> Vec<Rule> {
    found.iter().map(|d| d.rule).collect()
}

#[test]
fn credential_stuffing_many_users_from_one_address_is_detected_and_blocks_the_address() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..10).map(|i| failed_login("198.51.100.7", &format!("user{i}"))),
    );
    let stuffing: Vec<_> = found
        .iter()
        .filter(|d| d.rule == Rule::UsersByAddress)
        .collect();
    assert_eq!(stuffing.len(), 1, "{found:?}");
    assert_eq!(stuffing[0].subject.to_string(), "198.51.100.7");
    assert_eq!(stuffing[0].observed, 10);
    assert_eq!(stuffing[0].block_for, Some(Duration::from_secs(900)));
}

#[test]
fn the_same_user_retried_from_one_address_is_not_credential_stuffing() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..15).map(|_| failed_login("198.51.100.7", "alice")),
    );
    assert!(!rules(&found).contains(&Rule::UsersByAddress), "{found:?}");
}

#[test]
fn one_user_guessed_from_many_addresses_alerts_without_blocking_the_user() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..10).map(|i| failed_login(&format!("203.0.113.{i}"), "alice")),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::AddressesByUser)
        .expect("detected");
    assert_eq!(hit.subject, Subject::user("alice"));
    assert_eq!(hit.block_for, None, "a claimed user is never blocked");
}

#[test]
fn failures_spread_over_a_network_are_counted_per_network() {
    let mut d = detectors("[auth_failures_by_network]\nthreshold = 30\n");
    let found = feed(
        &mut d,
        (0..30).map(|i| failed_login(&format!("192.0.2.{i}"), "x")),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::AuthFailuresByNetwork)
        .expect("detected");
    assert_eq!(hit.subject.to_string(), "192.0.2.0/24");
    assert!(
        !rules(&found).contains(&Rule::AuthFailuresByAddress),
        "no single address failed often"
    );
}

#[test]
fn failures_slower_than_the_window_are_never_a_detection() {
    let mut d = detectors("[users_by_address]\nwindow_s = 5\n");
    let found = feed(
        &mut d,
        (0..40).map(|i| failed_login("198.51.100.7", &format!("user{i}"))),
    );
    // One a second, 10 needed within 5 seconds.
    assert!(!rules(&found).contains(&Rule::UsersByAddress), "{found:?}");
}

#[test]
fn bola_probing_many_403_and_404_on_one_route_is_enumeration() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..30).map(|i| by_caller("192.0.2.1", "mallory", &format!("/orders/{i}"), 404)),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::ObjectEnumeration)
        .expect("detected");
    assert_eq!(hit.subject.to_string(), "sub:mallory");
    assert_eq!(hit.route.as_deref(), Some("orders"));
}

#[test]
fn an_id_walk_of_successful_reads_is_detected_by_distinct_paths() {
    let mut d = detectors("[id_walk]\nthreshold = 50\n");
    let found = feed(
        &mut d,
        (0..50).map(|i| by_caller("192.0.2.1", "mallory", &format!("/orders/{i}"), 200)),
    );
    assert_eq!(rules(&found), vec![Rule::IdWalk]);
    // The same object read again and again is no walk.
    let again = feed(
        &mut d,
        (0..200).map(|_| by_caller("192.0.2.1", "alice", "/orders/7", 200)),
    );
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn one_key_used_from_many_networks_is_key_sharing() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..5).map(|i| AuditRecord {
            key_id: Some(Arc::from("k-123")),
            principal: Some("owner".into()),
            ..record(&format!("10.{i}.0.1"), 200, None)
        }),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::KeySharing)
        .expect("detected");
    assert_eq!(hit.subject.to_string(), "key:k-123");
}

#[test]
fn one_key_from_many_addresses_of_one_network_is_not_sharing() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..15).map(|i| AuditRecord {
            key_id: Some(Arc::from("k-123")),
            ..record(&format!("10.0.0.{i}"), 200, None)
        }),
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn one_user_spreading_over_many_addresses_is_limit_evasion() {
    let mut d = detectors("[limit_evasion]\nthreshold = 8\n");
    let found = feed(
        &mut d,
        (0..8).map(|i| by_caller(&format!("10.0.0.{i}"), "bot", "/orders/1", 200)),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::LimitEvasion)
        .expect("detected");
    assert_eq!(hit.subject.to_string(), "sub:bot");
}

fn probe(ip: &str, path: String) -> AuditRecord {
    AuditRecord {
        route: None,
        path,
        ..record(ip, 404, Some("route_not_found"))
    }
}

#[test]
fn many_unknown_paths_from_one_address_is_scanning_and_blocks_it() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..50).map(|i| probe("192.0.2.9", format!("/probe/{i}"))),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::Scanning)
        .expect("detected");
    assert_eq!(hit.block_for, Some(Duration::from_secs(300)));
}

#[test]
fn a_client_polling_one_missing_path_is_not_a_scanner() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..500).map(|_| probe("192.0.2.9", "/v1/old".into())),
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn an_undeclared_operation_on_a_known_route_is_scanning_not_enumeration() {
    let mut d = detectors("[scanning]\nthreshold = 30\n");
    let found = feed(
        &mut d,
        (0..30).map(|i| AuditRecord {
            path: format!("/orders/x/{i}"),
            ..record("192.0.2.9", 404, Some("operation_not_declared"))
        }),
    );
    assert_eq!(rules(&found), vec![Rule::Scanning]);
}

#[test]
fn an_ipv6_client_rotating_through_its_64_is_counted_as_one() {
    let mut d = detectors("");
    let found = feed(
        &mut d,
        (0..50).map(|i| probe(&format!("2001:db8:1:2::{i:x}"), format!("/probe/{i}"))),
    );
    let hit = found
        .iter()
        .find(|d| d.rule == Rule::Scanning)
        .expect("detected");
    assert_eq!(hit.subject.to_string(), "2001:db8:1:2::/64");
}

#[test]
fn trusted_proxies_exempt_networks_and_the_admin_api_are_never_counted() {
    let config: DetectConfig = toml::from_str("exempt = [\"198.51.100.0/24\"]").unwrap();
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.1/32".parse().unwrap()];
    let settings = Arc::new(ArcSwap::from_pointee(DetectSettings::new(
        &config, &trusted,
    )));
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let mut d = Detectors::new(settings, tx);
    // A client behind the proxy whose address the proxy could not name is the proxy itself:
    // counting it would let anyone block everyone behind it.
    for ip in ["10.0.0.1", "198.51.100.20"] {
        let found = feed(&mut d, (0..100).map(|i| probe(ip, format!("/p/{i}"))));
        assert!(found.is_empty(), "{ip}: {found:?}");
    }
    let admin = (0..100).map(|i| AuditRecord {
        listener: Arc::from("admin"),
        ..probe("192.0.2.1", format!("/v1/p/{i}"))
    });
    assert!(feed(&mut d, admin).is_empty());
}

#[test]
fn refusals_of_a_blocked_client_never_renew_its_block() {
    let mut d = detectors("[object_enumeration]\nthreshold = 5\nblock_s = 60\n");
    let blocked = (0..50).map(|i| AuditRecord {
        code: Some("blocked"),
        status: 403,
        ..by_caller("192.0.2.1", "mallory", &format!("/orders/{i}"), 403)
    });
    assert!(feed(&mut d, blocked).is_empty());
}

#[test]
fn a_caller_without_a_subject_is_never_a_caller_subject() {
    assert_eq!(Subject::caller(None, Some("")), None);
    assert_eq!(Subject::caller(Some(""), None), None);
}

#[test]
fn a_burst_of_validation_failures_is_detected() {
    let mut d = detectors("[validation_failures]\nthreshold = 20\nblock_s = 60\n");
    let found = feed(
        &mut d,
        (0..20).map(|_| record("192.0.2.9", 400, Some("validation_failed"))),
    );
    assert_eq!(rules(&found), vec![Rule::ValidationFailures]);
    assert_eq!(found[0].block_for, Some(Duration::from_secs(60)));
}

#[test]
fn a_disabled_detector_or_detection_off_finds_nothing() {
    let mut d = detectors("[scanning]\nenabled = false\n");
    let scans = (0..60).map(|i| probe("192.0.2.9", format!("/p/{i}")));
    assert!(feed(&mut d, scans.clone()).is_empty());
    let mut d = detectors("enabled = false\n");
    assert!(feed(&mut d, scans).is_empty());
}

#[test]
fn new_thresholds_apply_to_the_counts_already_made() {
    let config: DetectConfig = toml::from_str("").unwrap();
    let settings = Arc::new(ArcSwap::from_pointee(DetectSettings::new(&config, &[])));
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let mut d = Detectors::new(settings.clone(), tx);
    let now = Instant::now();
    for i in 0..20 {
        assert!(
            d.observe_at(&probe("192.0.2.9", format!("/p/{i}")), now)
                .is_empty()
        );
    }
    // A reload lowers the threshold: the 20 already counted stay.
    let lowered: DetectConfig = toml::from_str("[scanning]\nthreshold = 21\n").unwrap();
    settings.store(Arc::new(DetectSettings::new(&lowered, &[])));
    let found = d.observe_at(&probe("192.0.2.9", "/p/20".into()), now);
    assert_eq!(rules(&found), vec![Rule::Scanning]);
}

#[test]
fn a_config_that_would_block_a_claimed_user_or_count_unbounded_values_is_refused() {
    let config: DetectConfig =
        toml::from_str("[addresses_by_user]\nblock_s = 60\n[id_walk]\nthreshold = 20000\n")
            .unwrap();
    let mut issues = Vec::new();
    config.validate(&mut issues);
    let pointers: Vec<&str> = issues.iter().map(|i| i.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        vec![
            "/detect/addresses_by_user/block_s",
            "/detect/id_walk/threshold"
        ]
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn blocks_cover_their_address_network_or_caller_until_they_expire() {
    let list = BlockList::new(100, None);
    assert_eq!(list.source_blocked(ip("192.0.2.1")), None);
    list.raise(
        Subject::address(ip("192.0.2.1")),
        "scanning",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    list.raise(
        Subject::parse("198.51.100.0/24").unwrap(),
        "operator",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    list.raise(
        Subject::parse("key:k1").unwrap(),
        "key_sharing",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let blocked = list.source_blocked(ip("192.0.2.1")).unwrap();
    assert_eq!(&*blocked.by, "scanning");
    assert!((59..=60).contains(&blocked.retry_after_s));
    assert!(
        list.source_blocked(ip("::ffff:192.0.2.1")).is_some(),
        "IPv4-mapped"
    );
    assert_eq!(list.source_blocked(ip("192.0.2.2")), None);
    assert_eq!(
        &*list.source_blocked(ip("198.51.100.77")).unwrap().by,
        "operator"
    );
    assert!(list.caller_blocked(Some("k1"), "owner").is_some());
    assert!(
        list.caller_blocked(None, "k1").is_none(),
        "sub:k1 is not key:k1"
    );

    list.raise(
        Subject::address(ip("192.0.2.3")),
        "scanning",
        Duration::from_millis(1),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(list.source_blocked(ip("192.0.2.3")), None, "expired");
    list.sync().await;
    assert_eq!(list.list(10).1, 3, "the expired block is gone");
}

#[tokio::test]
async fn a_full_block_list_refuses_new_blocks_and_keeps_the_old_ones() {
    let list = BlockList::new(2, None);
    for i in 0..2 {
        list.raise(
            Subject::address(ip(&format!("192.0.2.{i}"))),
            "s",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
    assert!(
        list.raise(
            Subject::address(ip("192.0.2.9")),
            "s",
            Duration::from_secs(60)
        )
        .await
        .is_err()
    );
    assert!(list.source_blocked(ip("192.0.2.0")).is_some());
    // Extending a block already there is no new entry.
    assert!(
        list.raise(
            Subject::address(ip("192.0.2.0")),
            "s",
            Duration::from_secs(600)
        )
        .await
        .is_ok()
    );
    assert!(list.source_blocked(ip("192.0.2.0")).unwrap().retry_after_s > 500);
}

#[tokio::test]
async fn a_lifted_block_no_longer_holds() {
    let list = BlockList::new(10, None);
    let subject = Subject::parse("2001:db8::/64").unwrap();
    list.raise(subject.clone(), "operator", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(list.source_blocked(ip("2001:db8::5")).is_some());
    assert!(list.lift(&subject).await.unwrap());
    assert!(list.source_blocked(ip("2001:db8::5")).is_none());
    assert!(!list.lift(&subject).await.unwrap(), "nothing left to lift");
}
