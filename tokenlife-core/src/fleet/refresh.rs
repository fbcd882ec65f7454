//! [`RedisRefreshStore`]: refresh-token state shared by the fleet, so a refresh token
//! rotated on one node and replayed on another is caught as reuse, and a family revoked
//! anywhere is revoked everywhere.

use std::fmt;
use std::time::Duration;

use super::sync_conn::SyncRedis;

use crate::issue::{
    Advance, DEFAULT_RETIRED_PER_FAMILY, RefreshRecord, RefreshStore, RefreshStoreError, RetryGrant,
};

/// `mark_used` in one step on the server: of two nodes renewing the same refresh token at
/// once, exactly one sees it unused. The record (immutable JSON) and its `used` mark are
/// two fields of one hash. A record it retires is listed under its family
/// (`ARGV[3]` .. family, a list expiring with the newest of them); past `ARGV[2]` retired
/// records the family's oldest still-retired one is deleted, so one holder renewing in a
/// loop holds a bounded share of Redis. `ARGV[4]`: the retired slack in seconds.
const MARK_USED: &str = r"
local rec = redis.call('HGET', KEYS[1], 'rec')
if not rec then return false end
local prev = redis.call('HGET', KEYS[1], 'used')
local pending = redis.call('HGET', KEYS[1], 'pending')
if not prev then
  redis.call('HSET', KEYS[1], 'used', ARGV[1], 'pending', '1')
  local ok, r = pcall(cjson.decode, rec)
  if ok and type(r) == 'table' and type(r['family']) == 'string' then
    local list = ARGV[3] .. r['family']
    redis.call('RPUSH', list, KEYS[1])
    local exp = tonumber(r['expires_at'])
    if exp then redis.call('EXPIREAT', list, math.floor(exp) + tonumber(ARGV[4])) end
    while redis.call('LLEN', list) > tonumber(ARGV[2]) do
      local old = redis.call('LPOP', list)
      if redis.call('HEXISTS', old, 'used') == 1 then redis.call('DEL', old) end
    end
  end
end
return {rec, prev or '', pending or ''}
";

/// `unmark_used` only if the mark is the one made at `at_ms`.
const UNMARK_USED: &str = r"
if redis.call('HGET', KEYS[1], 'used') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'used', 'pending')
end
return 1
";

/// `commit_renewal`: the successor (`KEYS[2]`: `rec` = `ARGV[2]`, expiring at `ARGV[3]`)
/// is stored and the old mark confirmed (`pending` dropped) in one step, only if the old
/// record (`KEYS[1]`) still carries the pending mark made at `ARGV[1]`.
const COMMIT_RENEWAL: &str = r"
if redis.call('HGET', KEYS[1], 'used') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'pending') == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], 'pending')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'rec', ARGV[2])
redis.call('EXPIREAT', KEYS[2], ARGV[3])
return 1
";

/// `advance`: the parent (`KEYS[1]`) remembers the first child (`ARGV[1]`) renewed and
/// when (`ARGV[2]`). Answers -1 when this child holds the claim (or the parent is gone),
/// else the time the other child took it.
const ADVANCE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local adv = redis.call('HGET', KEYS[1], 'adv')
if not adv then
  redis.call('HSET', KEYS[1], 'adv', ARGV[1], 'adv_at', ARGV[2])
  return -1
end
if adv == ARGV[1] then return -1 end
return tonumber(redis.call('HGET', KEYS[1], 'adv_at')) or 0
";

/// `take_retry`: 1 granted, 2 exhausted, 0 not a retry (mark differs, still pending, or a
/// child already moved the family on).
const TAKE_RETRY: &str = r"
if redis.call('HGET', KEYS[1], 'used') ~= ARGV[1]
  or redis.call('HEXISTS', KEYS[1], 'pending') == 1
  or redis.call('HEXISTS', KEYS[1], 'adv') == 1 then
  return 0
end
local n = tonumber(redis.call('HGET', KEYS[1], 'retries')) or 0
if n >= tonumber(ARGV[2]) then return 2 end
redis.call('HSET', KEYS[1], 'retries', n + 1)
return 1
";

/// Records kept past their expiry, so reuse stays detectable for clock-skewed clients
/// (the in-memory store keeps them as long).
const RETIRED_SLACK_SECS: u64 = 60;

/// A [`RefreshStore`] on Redis (feature `redis`). Synchronous, as the trait is: it runs on
/// the token endpoint's path only, each round trip bounded by the timeout given (default
/// 2 s), on one connection re-opened after a failure. Keys:
/// `{prefix}:rt:<hex of the token hash>` (a hash: `rec`, `used`, and `pending` while the
/// renewal that marked it has not stored its successor — two-phase, so a renewal cut off
/// half-way on one node is retried on any other, never taken for reuse; `retries`, and
/// `adv`/`adv_at` naming the child that moved the family on) with an absolute expiry,
/// `{prefix}:fam:<family>` for revoked families, `{prefix}:retired:<family>` listing a
/// family's retired records (at most [`DEFAULT_RETIRED_PER_FAMILY`] by default, see
/// [`RedisRefreshStore::retired_per_family`]).
pub struct RedisRefreshStore {
    redis: SyncRedis,
    prefix: String,
    retired_per_family: usize,
    mark: redis::Script,
    unmark: redis::Script,
    commit: redis::Script,
    advance: redis::Script,
    retry: redis::Script,
}

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.redis.timeout)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> RefreshStoreError {
    RefreshStoreError::backend(e)
}

impl RedisRefreshStore {
    /// A store on Redis at `url`, keys under `{tokenlife}`, 2 s per round trip.
    ///
    /// # Errors
    /// A URL the `redis` crate cannot use.
    pub fn new(url: &str) -> Result<Self, super::FleetError> {
        let client = redis::Client::open(url).map_err(|source| super::FleetError { source })?;
        Ok(Self {
            redis: SyncRedis::new(client, Duration::from_secs(2)),
            prefix: "{tokenlife}".into(),
            retired_per_family: DEFAULT_RETIRED_PER_FAMILY,
            mark: redis::Script::new(MARK_USED),
            unmark: redis::Script::new(UNMARK_USED),
            commit: redis::Script::new(COMMIT_RENEWAL),
            advance: redis::Script::new(ADVANCE),
            retry: redis::Script::new(TAKE_RETRY),
        })
    }

    /// The key prefix (keep a `{hash tag}` for Redis Cluster); the same as the fleet's.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Keeps at most `n` (≥ 1) retired records per family (default
    /// [`DEFAULT_RETIRED_PER_FAMILY`], as the in-memory store); an older retired token is
    /// then refused as unknown rather than caught as reuse.
    #[must_use]
    pub fn retired_per_family(mut self, n: usize) -> Self {
        self.retired_per_family = n.max(1);
        self
    }

    /// The longest wait for one round trip (and for connecting).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.redis.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Checks that Redis will not evict this store's keys to make room: an `allkeys-*`
    /// `maxmemory-policy` could drop a family-revocation marker (a stolen family would
    /// come back) or a retired record (reuse would go unseen). With `noeviction` (or a
    /// `volatile-*` policy, which evicts only keys with a TTL — these all have one, so
    /// prefer `noeviction`) a full Redis refuses writes instead: renewals fail with a
    /// store error (503) and nothing is forgotten. Call it at start. A Redis that refuses
    /// `CONFIG GET` (managed services often do) passes: its policy is the operator's to
    /// check.
    ///
    /// # Errors
    /// [`RefreshStoreErrorKind::Backend`](crate::issue::RefreshStoreErrorKind::Backend)
    /// naming the policy when it may evict these keys, or when Redis is unreachable.
    pub fn check_eviction_policy(&self) -> Result<(), RefreshStoreError> {
        let policy: Option<Vec<String>> = self.with_conn(|c| {
            match redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory-policy")
                .query::<Vec<String>>(c)
            {
                Ok(v) => Ok(Some(v)),
                // CONFIG disabled or not allowed: nothing to check here.
                Err(e)
                    if e.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })?;
        match policy.as_deref() {
            Some([_, p]) if p.starts_with("allkeys") || p.starts_with("volatile") => {
                Err(RefreshStoreError::backend(format!(
                    "Redis maxmemory-policy {p} may evict refresh state; use noeviction"
                )))
            }
            _ => Ok(()),
        }
    }

    fn record_key(&self, id: &[u8; 32]) -> String {
        format!("{}:rt:{}", self.prefix, hex(id))
    }

    fn family_key(&self, family: &str) -> String {
        format!("{}:fam:{family}", self.prefix)
    }

    /// Runs `f` on the connection (see [`SyncRedis`]).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RefreshStoreError> {
        self.redis.run(f).map_err(backend)
    }

    fn parse(
        rec: &[u8],
        used: Option<&[u8]>,
        pending: Option<&[u8]>,
    ) -> Result<RefreshRecord, RefreshStoreError> {
        let mut r: RefreshRecord = serde_json::from_slice(rec).map_err(backend)?;
        r.renewal_pending = matches!(pending, Some(p) if !p.is_empty());
        r.used_at_ms = match used {
            None | Some(b"") => None,
            Some(u) => Some(
                std::str::from_utf8(u)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| RefreshStoreError::backend("bad used mark"))?,
            ),
        };
        Ok(r)
    }
}

fn hex(id: &[u8; 32]) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(64);
    for b in id {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

impl RefreshStore for RedisRefreshStore {
    fn insert(&self, id: [u8; 32], record: RefreshRecord) -> Result<(), RefreshStoreError> {
        let key = self.record_key(&id);
        let mut stored = record;
        stored.used_at_ms = None;
        let json = serde_json::to_string(&stored).map_err(backend)?;
        let expire_at = stored.expires_at.saturating_add(RETIRED_SLACK_SECS);
        self.with_conn(|c| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("HSET")
                .arg(&key)
                .arg("rec")
                .arg(&json)
                .ignore()
                .cmd("EXPIREAT")
                .arg(&key)
                .arg(expire_at)
                .ignore()
                .query::<()>(c)
        })
    }

    fn get(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, RefreshStoreError> {
        let key = self.record_key(id);
        type Fields = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
        let (rec, used, pending): Fields = self.with_conn(|c| {
            redis::cmd("HMGET")
                .arg(&key)
                .arg("rec")
                .arg("used")
                .arg("pending")
                .query(c)
        })?;
        rec.map(|r| Self::parse(&r, used.as_deref(), pending.as_deref()))
            .transpose()
    }

    fn mark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<Option<RefreshRecord>, RefreshStoreError> {
        let key = self.record_key(id);
        let found: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = self.with_conn(|c| {
            self.mark
                .key(&key)
                .arg(at_ms)
                .arg(self.retired_per_family)
                .arg(format!("{}:retired:", self.prefix))
                .arg(RETIRED_SLACK_SECS)
                .invoke(c)
        })?;
        found
            .map(|(rec, prev, pending)| Self::parse(&rec, Some(&prev), Some(&pending)))
            .transpose()
    }

    fn unmark_used(&self, id: &[u8; 32], at_ms: u64) -> Result<(), RefreshStoreError> {
        let key = self.record_key(id);
        self.with_conn(|c| self.unmark.key(&key).arg(at_ms).invoke::<i64>(c))
            .map(|_| ())
    }

    fn commit_renewal(
        &self,
        old: &[u8; 32],
        at_ms: u64,
        new_id: [u8; 32],
        record: RefreshRecord,
    ) -> Result<bool, RefreshStoreError> {
        let (old_key, new_key) = (self.record_key(old), self.record_key(&new_id));
        let mut stored = record;
        stored.used_at_ms = None;
        stored.renewal_pending = false;
        let json = serde_json::to_string(&stored).map_err(backend)?;
        let expire_at = stored.expires_at.saturating_add(RETIRED_SLACK_SECS);
        self.with_conn(|c| {
            self.commit
                .key(&old_key)
                .key(&new_key)
                .arg(at_ms)
                .arg(&json)
                .arg(expire_at)
                .invoke::<i64>(c)
        })
        .map(|done| done == 1)
    }

    fn advance(
        &self,
        parent: &[u8; 32],
        child: &[u8; 32],
        at_ms: u64,
    ) -> Result<Advance, RefreshStoreError> {
        let key = self.record_key(parent);
        let taken: i64 =
            self.with_conn(|c| self.advance.key(&key).arg(hex(child)).arg(at_ms).invoke(c))?;
        Ok(match u64::try_from(taken) {
            Ok(at_ms) => Advance::Taken { at_ms },
            Err(_) => Advance::Claimed,
        })
    }

    fn take_retry(
        &self,
        id: &[u8; 32],
        used_at_ms: u64,
        max: u8,
    ) -> Result<RetryGrant, RefreshStoreError> {
        let key = self.record_key(id);
        let grant: i64 =
            self.with_conn(|c| self.retry.key(&key).arg(used_at_ms).arg(max).invoke(c))?;
        Ok(match grant {
            1 => RetryGrant::Granted,
            2 => RetryGrant::Exhausted,
            _ => RetryGrant::No,
        })
    }

    fn revoke_family(&self, family: &str, until: u64) -> Result<(), RefreshStoreError> {
        let key = self.family_key(family);
        self.with_conn(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("EXAT")
                .arg(until.max(1))
                .query::<()>(c)
        })
    }

    fn is_family_revoked(&self, family: &str) -> Result<bool, RefreshStoreError> {
        let key = self.family_key(family);
        self.with_conn(|c| redis::cmd("EXISTS").arg(&key).query::<bool>(c))
    }
}
