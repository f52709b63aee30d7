//! The shared Redis connection: one multiplexed connection per process that reconnects by itself.
//! Timeouts are short so that a Redis outage costs a request milliseconds, not seconds; the caller
//! decides what an error means (DPoP refuses: fail closed).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a command may take before it counts as a Redis failure.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Connects to `url`. Error messages never contain the URL (it may hold a password).
pub async fn connect(url: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url)
        .map_err(|e| format!("redis.url is not a Redis URL: {:?}", e.kind()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| format!("cannot connect to Redis: {:?}", e.kind()))
}
