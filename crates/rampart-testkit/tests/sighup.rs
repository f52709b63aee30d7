//! SIGHUP reloads, in a test binary of its own: a signal reaches the whole process, so no other
//! gateway may share it (`cargo test` runs a binary's tests in one process).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::time::Duration;

use http::StatusCode;
use rampart_testkit::{RecordingUpstream, TestGateway};

fn limited(upstream: &RecordingUpstream) -> String {
    format!(
        "[[upstreams]]\nname = \"api\"\ntargets = [\"{}\"]\n\n[[routes]]\nname = \"limited\"\npath = \"/limited\"\nupstream = \"api\"\npublic = true\nrate_limits = [{{ name = \"per-ip\", key = \"ip\", rate = 3, per = \"hour\" }}]\n",
        upstream.url()
    )
}

#[tokio::test]
async fn a_burst_of_sighups_is_one_reload_and_limits_stay_exact() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::builder()
        .config(&limited(&upstream))
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(gw.get("/limited").await.status, StatusCode::OK);
    }
    // The reloader's signal handler is installed when `serve` starts (before the first answer).
    let pid = std::process::id().to_string();
    for _ in 0..10 {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gw.gateway.reloads(), 1, "ten signals, one reload");
    assert_eq!(
        gw.get("/limited").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "3 per hour allows exactly 3, reload or not"
    );
}
