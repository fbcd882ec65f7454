//! One blocking Redis connection for the fleet's synchronous stores (refresh state, the
//! last good JWKS): opened on first use, every round trip bounded by a timeout, dropped
//! after a failure so the next call reconnects.

use std::sync::Mutex;
use std::time::Duration;

pub(super) struct SyncRedis {
    client: redis::Client,
    pub(super) timeout: Duration,
    conn: Mutex<Option<redis::Connection>>,
}

impl SyncRedis {
    pub(super) fn new(client: redis::Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            conn: Mutex::new(None),
        }
    }

    /// Runs `f` on the connection, opening it if needed.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let c = self.client.get_connection_with_timeout(self.timeout)?;
            c.set_read_timeout(Some(self.timeout))?;
            c.set_write_timeout(Some(self.timeout))?;
            *guard = Some(c);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no connection",
            )));
        };
        let result = f(conn);
        if result.is_err() {
            *guard = None;
        }
        result
    }
}
