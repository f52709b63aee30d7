//! The shared Redis connection, to one server or to a Redis Cluster: one multiplexed connection per
//! process that reconnects by itself. Timeouts are short so that a Redis outage costs a request
//! milliseconds, not seconds; each caller decides what an error means (DPoP refuses; rate limits
//! follow `on_redis_failure`).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::RedisConfig;

/// How long a command may take before it counts as a Redis failure.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection to a single server or to a cluster; commands and scripts run on either (each of
/// ours touches one key, so a cluster routes it to the key's slot).
#[derive(Clone)]
pub enum SharedRedis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for SharedRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects as configured. Error messages never contain a URL (it may hold a password).
pub async fn connect(config: &RedisConfig) -> Result<SharedRedis, String> {
    match (&config.url, config.cluster_nodes.as_slice()) {
        (Some(url), []) => connect_single(url).await.map(SharedRedis::Single),
        (None, nodes) if !nodes.is_empty() => {
            let client =
                redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()
                    .map_err(|e| format!("redis.cluster_nodes: {:?}", e.kind()))?;
            client
                .get_async_connection()
                .await
                .map(SharedRedis::Cluster)
                .map_err(|e| {
                    let nodes: Vec<String> = nodes.iter().map(|n| super::redact(n)).collect();
                    format!(
                        "cannot reach the Redis Cluster at {}: {e}",
                        nodes.join(", ")
                    )
                })
        }
        _ => Err("redis: set exactly one of `url` and `cluster_nodes`".to_owned()),
    }
}

/// One server, through a connection manager that reconnects in the background.
pub async fn connect_single(url: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url)
        .map_err(|e| format!("redis.url is not a Redis URL: {:?}", e.kind()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| format!("cannot reach Redis at {}: {e}", super::redact(url)))
}
