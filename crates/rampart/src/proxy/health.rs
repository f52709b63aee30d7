//! Active health checks: a GET to each target's probe path at an interval.

use std::sync::Weak;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};

use super::upstream::{Target, Upstream};
use crate::body;
use crate::config::upstream::ActiveHealthConfig;

/// The most of a probe's response body read (the rest closes the connection).
const PROBE_BODY_LIMIT: usize = 16 * 1024;

/// Starts the probe loop; it ends by itself when the upstream is dropped (config reload).
pub(super) fn spawn_probes(
    upstream: Weak<Upstream>,
    config: ActiveHealthConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut streaks: Vec<(u32, u32)> = Vec::new();
        let mut interval = tokio::time::interval(Duration::from_millis(config.interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(upstream) = upstream.upgrade() else {
                return;
            };
            streaks.resize(upstream.targets.len(), (0, 0));
            for (target, streak) in upstream.targets.iter().zip(streaks.iter_mut()) {
                let healthy = probe(&upstream, target, &config).await;
                *streak = if healthy {
                    (streak.0 + 1, 0)
                } else {
                    (0, streak.1 + 1)
                };
                if streak.1 >= config.unhealthy_threshold {
                    upstream.set_probe_state(target, true);
                } else if streak.0 >= config.healthy_threshold {
                    upstream.set_probe_state(target, false);
                }
            }
        }
    })
}

async fn probe(upstream: &Upstream, target: &Target, config: &ActiveHealthConfig) -> bool {
    let Ok(uri) = http::Uri::try_from(config.path.as_str()) else {
        return false;
    };
    let mut request = http::Request::new(body::empty());
    *request.uri_mut() = uri;
    // One deadline for the answer and its body.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(config.timeout_ms);
    let probed = tokio::time::timeout_at(deadline, async {
        let response = upstream.send(target, request, deadline).await.ok()?;
        let healthy = response.status().is_success();
        // Read to its end (a few KiB at most), so that the connection is kept for the next probe.
        let _ = Limited::new(response.into_body(), PROBE_BODY_LIMIT)
            .collect()
            .await;
        Some(healthy)
    });
    matches!(probed.await, Ok(Some(true)))
}
