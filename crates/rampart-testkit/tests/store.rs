//! The same store tests on SQLite and on a real PostgreSQL server started by the testkit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use rampart::store::{ApiKeyRecord, KeyStatus, Store};
use rampart_testkit::PgServer;

fn record(id: &str, hash: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        key_hash: hash.to_owned(),
        prefix: "rmp_abcd".to_owned(),
        name: "ci".to_owned(),
        owner: "team-a".to_owned(),
        scopes: vec!["orders:read".to_owned(), "orders:write".to_owned()],
        roles: vec!["reader".to_owned()],
        created_at: 1_700_000_000,
        expires_at: Some(1_800_000_000),
        last_used_at: None,
        status: KeyStatus::Active,
        grace_until: None,
        replaced_by: None,
    }
}

async fn exercise(url: &str) {
    let store = Store::connect(url).await.unwrap();
    // Migrations are idempotent: a second instance connecting to the same database is fine.
    let _again = Store::connect(url).await.unwrap();
    store.insert_key(&record("k1", "h1")).await.unwrap();
    assert!(
        store.insert_key(&record("k2", "h1")).await.is_err(),
        "hashes are unique"
    );
    let found = store.key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(found.id, "k1");
    assert_eq!(found.scopes, vec!["orders:read", "orders:write"]);
    assert_eq!(found.expires_at, Some(1_800_000_000));
    assert_eq!(found.last_used_at, None);
    assert!(store.key_by_hash("nope").await.unwrap().is_none());

    assert!(
        store
            .rotate_key("k1", 1_750_000_000, &record("k3", "h3"))
            .await
            .unwrap()
    );
    let old = store.key("k1").await.unwrap().unwrap();
    assert_eq!(
        (old.status, old.grace_until, old.replaced_by.as_deref()),
        (KeyStatus::Rotated, Some(1_750_000_000), Some("k3"))
    );
    assert!(
        !store
            .rotate_key("k1", 1, &record("k4", "h4"))
            .await
            .unwrap(),
        "only active keys rotate"
    );
    assert!(
        store.key("k4").await.unwrap().is_none(),
        "a refused rotation inserts nothing"
    );

    assert!(store.revoke_key("k3").await.unwrap());
    assert!(!store.revoke_key("missing").await.unwrap());
    assert_eq!(
        store.key("k3").await.unwrap().unwrap().status,
        KeyStatus::Revoked
    );

    store
        .touch_keys(&[("k1".to_owned(), 1_700_000_100)])
        .await
        .unwrap();
    assert_eq!(
        store.key("k1").await.unwrap().unwrap().last_used_at,
        Some(1_700_000_100)
    );
    let ids: Vec<String> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, vec!["k1", "k3"]);
}

#[tokio::test]
async fn store_works_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&format!(
        "sqlite:{}",
        dir.path().join("rampart.db").display()
    ))
    .await;
}

#[tokio::test]
async fn store_works_on_postgresql() {
    let pg = PgServer::start();
    exercise(&pg.url).await;
}

#[tokio::test]
async fn a_bad_store_url_is_refused() {
    assert!(Store::connect("mysql://x").await.is_err());
}
