//! The audit trail shipped to a real rsyslog over TLS (RFC 5425): every record arrives, across a
//! receiver outage and a gateway restart during it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::collections::HashSet;
use std::time::Duration;

use rampart_testkit::{RecordingUpstream, RsyslogServer, TestGateway};

fn config(receiver: &RsyslogServer, upstream: &RecordingUpstream) -> String {
    format!(
        "[syslog]\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nca_file = \"{ca}\"\n
[[upstreams]]\nname = \"api\"\ntargets = [\"{up}\"]\n
[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"api\"\npublic = true\n",
        port = receiver.port,
        ca = receiver.cert_file.display(),
        up = upstream.url(),
    )
}

/// The request ids the receiver has, from records shipped as `request` messages.
fn received_ids(receiver: &RsyslogServer) -> HashSet<String> {
    receiver
        .received()
        .iter()
        .filter(|(msgid, _)| msgid == "request")
        .map(|(_, text)| {
            let record: serde_json::Value = serde_json::from_str(text).unwrap();
            record["request_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn all_arrive(receiver: &RsyslogServer, ids: &[String]) {
    for _ in 0..300 {
        let got = received_ids(receiver);
        if ids.iter().all(|id| got.contains(id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received_ids(receiver);
    let missing: Vec<_> = ids.iter().filter(|id| !got.contains(*id)).collect();
    panic!("not shipped within 30 s: {missing:?}");
}

#[tokio::test]
async fn every_record_reaches_rsyslog_over_tls_across_an_outage_and_a_gateway_restart() {
    let mut receiver = RsyslogServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&config(&receiver, &upstream))
        .start()
        .await;
    let mut ids = gw.request_ids("/x", 5).await;
    all_arrive(&receiver, &ids).await;
    let events: Vec<String> = receiver.received().into_iter().map(|(id, _)| id).collect();
    assert!(
        events.contains(&"start".to_owned()),
        "events are shipped too: {events:?}"
    );
    // What the receiver has is recorded, so that a restart resumes after it.
    let cursor = gw.dir.path().join("audit.log.shipped");
    let mut shipped = 0u64;
    for _ in 0..100 {
        shipped = std::fs::read_to_string(&cursor)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if shipped >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        shipped >= 6,
        "the start event and five records confirmed: {shipped}"
    );

    // The receiver goes down; records keep coming, and the gateway restarts meanwhile.
    receiver.stop();
    ids.extend(gw.request_ids("/x", 5).await);
    let gw = gw.restart().await;
    ids.extend(gw.request_ids("/x", 3).await);
    receiver.restart();
    all_arrive(&receiver, &ids).await;
    // The restarted gateway resumed after what the receiver had confirmed: no resend of it.
    let times = |id: &String| {
        receiver
            .received()
            .iter()
            .filter(|(msgid, text)| msgid == "request" && text.contains(id.as_str()))
            .count()
    };
    for id in &ids[..5] {
        assert_eq!(times(id), 1, "{id} was shipped again after the restart");
    }
    drop(gw);
}
