//! [`RedisLastGood`]: the last good JWKS of each remote key source, kept in the fleet's
//! Redis, so that a node restarted while the identity provider is down starts from the
//! keys its peers fetched, and a node cut off from the provider takes them (peer gaps,
//! item 1). Features `redis` and `remote`.

use std::fmt;
use std::time::Duration;

use super::sync_conn::SyncRedis;
use crate::keys::Keyset;
use crate::keys::remote::{LastGood, LastGoodStore};

/// Keeps `ARGV[1]` fetched at `ARGV[2]` unless a newer copy is there (two nodes saving at
/// once: the later fetch wins), for `ARGV[3]` seconds.
const SAVE: &str = r"
local at = tonumber(redis.call('HGET', KEYS[1], 'at')) or -1
if at > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'jwks', ARGV[1], 'at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Reads the copy, unless its JWKS is longer than `ARGV[1]` bytes (a Redis that holds
/// junk never makes a node read it all).
const LOAD: &str = r"
if redis.call('HSTRLEN', KEYS[1], 'jwks') > tonumber(ARGV[1]) then return false end
return redis.call('HMGET', KEYS[1], 'jwks', 'at')
";

/// How long a kept copy lives in Redis without a save (a week: far past the default
/// 24 h staleness bound, past which a copy is no longer trusted anyway).
const KEEP_SECS: u64 = 7 * 24 * 3600;

/// A [`LastGoodStore`] on Redis, one hash per source: `{prefix}:jwks:<blake3 of the
/// source URL>` with `jwks` and `at`. Give every node's
/// [`RemoteKeysBuilder::last_good`](crate::keys::remote::RemoteKeysBuilder::last_good)
/// one. Synchronous (the remote keys call it on tokio's blocking pool), one connection,
/// each round trip bounded (default 2 s).
///
/// Redis is trusted here as the fleet trusts it with keysets: whoever can write to it can
/// offer verification keys. What it offers is used only while the provider cannot be
/// reached, parsed as a public JWKS (nothing that could sign), at most
/// [`Keyset::MAX_JWKS_BYTES`], its time never later than now.
pub struct RedisLastGood {
    redis: SyncRedis,
    prefix: String,
    save: redis::Script,
    load: redis::Script,
}

impl fmt::Debug for RedisLastGood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLastGood")
            .field("prefix", &self.prefix)
            .field("timeout", &self.redis.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisLastGood {
    /// A store on Redis at `url`, keys under `{tokenlife}`, 2 s per round trip.
    ///
    /// # Errors
    /// A URL the `redis` crate cannot use.
    pub fn new(url: &str) -> Result<Self, super::FleetError> {
        let client = redis::Client::open(url).map_err(|source| super::FleetError { source })?;
        Ok(Self {
            redis: SyncRedis::new(client, Duration::from_secs(2)),
            prefix: "{tokenlife}".into(),
            save: redis::Script::new(SAVE),
            load: redis::Script::new(LOAD),
        })
    }

    /// The key prefix; the same as the fleet's.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest wait for one round trip (and for connecting).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.redis.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    fn key(&self, source: &str) -> String {
        format!(
            "{}:jwks:{}",
            self.prefix,
            blake3::hash(source.as_bytes()).to_hex()
        )
    }
}

impl LastGoodStore for RedisLastGood {
    fn load(&self, source: &str) -> Option<LastGood> {
        let key = self.key(source);
        let found: Option<(Option<String>, Option<u64>)> = self
            .redis
            .run(|c| self.load.key(&key).arg(Keyset::MAX_JWKS_BYTES).invoke(c))
            .ok()?;
        match found? {
            (Some(jwks), Some(fetched_at)) => Some(LastGood { jwks, fetched_at }),
            _ => None,
        }
    }

    fn save(&self, source: &str, good: &LastGood) {
        let key = self.key(source);
        let _ = self.redis.run(|c| {
            self.save
                .key(&key)
                .arg(&good.jwks)
                .arg(good.fetched_at)
                .arg(KEEP_SECS)
                .invoke::<i64>(c)
        });
    }
}
