//! The audit trail shipped as OTLP logs to a real HTTP receiver: a refused batch is sent again,
//! and every record arrives across a receiver outage and a gateway restart, the ones already
//! taken only once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use rampart_testkit::{Recorded, RecordingUpstream, TestGateway, json};

fn config(port: u16, upstream: &RecordingUpstream) -> String {
    format!(
        "[otlp_logs]\nendpoint = \"http://127.0.0.1:{port}\"\n
[[upstreams]]\nname = \"api\"\ntargets = [\"{up}\"]\n
[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        up = upstream.url(),
    )
}

/// How many times each request id arrived in the posts the receiver took (answered 2xx).
fn taken(posts: &[Recorded], refused: usize) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for post in posts.iter().skip(refused) {
        assert_eq!(post.uri.path(), "/v1/logs");
        let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
        let records = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap();
        for record in records {
            let line: serde_json::Value =
                serde_json::from_str(record["body"]["stringValue"].as_str().unwrap()).unwrap();
            if let Some(id) = line["request_id"].as_str() {
                *ids.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    ids
}

async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 30 s");
}

#[tokio::test]
async fn every_record_arrives_once_taken_across_a_refusal_an_outage_and_a_restart() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The first post is refused: it must come again.
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = posts.clone();
    let first = RecordingUpstream::on(
        listener,
        Arc::new(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => json(StatusCode::SERVICE_UNAVAILABLE, "{}"),
            _ => json(StatusCode::OK, "{}"),
        }),
    );
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(port, &upstream))
        .start()
        .await;
    let mut ids = gw.request_ids("/x", 5).await;
    eventually(|| {
        let got = taken(&first.requests(), 1);
        ids.iter().all(|id| got.contains_key(id))
    })
    .await;
    let before_outage = first.requests();
    drop(first);

    // The receiver is down; records keep coming, and the gateway restarts meanwhile.
    ids.extend(gw.request_ids("/x", 5).await);
    let gw = gw.restart().await;
    ids.extend(gw.request_ids("/x", 3).await);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let second = RecordingUpstream::on(listener, Arc::new(|_| json(StatusCode::OK, "{}")));
    eventually(|| {
        let got = taken(&second.requests(), 0);
        ids[5..].iter().all(|id| got.contains_key(id))
    })
    .await;
    let mut all = taken(&before_outage, 1);
    for (id, n) in taken(&second.requests(), 0) {
        *all.entry(id).or_default() += n;
    }
    for id in &ids[..5] {
        assert_eq!(
            all[id], 1,
            "a record the receiver took is not sent again after the restart"
        );
    }
    drop(gw);
}

#[tokio::test]
async fn a_record_the_receiver_refuses_is_skipped_and_the_rest_arrive() {
    // The receiver refuses (400) any post carrying the poisoned record, as a collector refuses
    // a record it cannot take.
    let receiver = RecordingUpstream::with_reply(Arc::new(|r| {
        if String::from_utf8_lossy(&r.body).contains("/poison") {
            json(StatusCode::BAD_REQUEST, "{}")
        } else {
            json(StatusCode::OK, "{}")
        }
    }))
    .await;
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(receiver.addr.port(), &upstream))
        .start()
        .await;
    let mut ids = gw.request_ids("/a", 3).await;
    gw.request_ids("/poison", 1).await;
    ids.extend(gw.request_ids("/b", 3).await);
    eventually(|| {
        let accepted: Vec<Recorded> = receiver
            .requests()
            .into_iter()
            .filter(|r| !String::from_utf8_lossy(&r.body).contains("/poison"))
            .collect();
        let got = taken(&accepted, 0);
        ids.iter().all(|id| got.contains_key(id))
    })
    .await;
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("rampart_shipping_refused_total 1"),
        "the one refused line is counted:\n{metrics}"
    );
}
