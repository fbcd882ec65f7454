//! Who is calling: the admin key, client and resource-server credentials (constant-time
//! compares), and the failed-authentication throttle per (address, presented identity).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A credential held as its BLAKE3 hash only; compared in constant time.
pub(super) struct Secret(blake3::Hash);

impl Secret {
    pub(super) fn new(raw: &str) -> Self {
        Self(blake3::hash(raw.as_bytes()))
    }

    pub(super) fn matches(&self, presented: &str) -> bool {
        // blake3::Hash's == is constant-time.
        blake3::hash(presented.as_bytes()) == self.0
    }
}

pub(super) struct Client {
    pub(super) id: String,
    pub(super) secret: Secret,
    pub(super) scope: Option<String>,
}

/// Failed authentications per (client address, presented identity) in a fixed window on
/// the validator's clock: one party guessing a secret — behind a proxy, everyone shares
/// an address — locks out that identity from that address only, never another client's
/// or the admin's valid credential (security review 3, MEDIUM 6). The identity is the
/// Basic client id, or "the admin key" for a bearer; it is hashed with a seed of this
/// process, so no client id can be chosen to collide with another's. Bounded: past
/// `MAX_TRACKED` buckets, new ones share one.
pub(super) struct Throttle {
    pub(super) max_failures: u32,
    pub(super) window: u64,
    pub(super) seed: u64,
    pub(super) by_addr: Mutex<HashMap<Bucket, (u64, u32)>>,
}

/// A throttle bucket: the client address and the presented identity's seeded hash.
pub(super) type Bucket = (IpAddr, u64);

pub(super) const MAX_TRACKED: usize = 10_000;
pub(super) const SHARED_BUCKET: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Who a request claims to be, before anything is checked.
pub(super) enum Identity<'a> {
    /// A bearer (the admin key).
    Bearer,
    /// A client or resource-server id (Basic, or the token form's `client_id`).
    Id(&'a str),
    /// No credentials.
    None,
}

impl Throttle {
    /// The bucket of `ip` presenting `identity`.
    pub(super) fn bucket(&self, ip: IpAddr, identity: &Identity<'_>) -> Bucket {
        let h = match identity {
            Identity::Bearer => xxhash_rust::xxh3::xxh3_64_with_seed(b"\0bearer", self.seed),
            Identity::Id(id) => xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), self.seed),
            Identity::None => 0,
        };
        (ip, h)
    }

    /// The table; a panic elsewhere cannot leave it half-changed (each change is one
    /// entry), so a poisoned lock is still usable.
    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Bucket, (u64, u32)>> {
        self.by_addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn slot(
        map: &mut HashMap<Bucket, (u64, u32)>,
        key: Bucket,
        now: u64,
        window: u64,
    ) -> Bucket {
        if map.contains_key(&key) || map.len() < MAX_TRACKED {
            return key;
        }
        map.retain(|_, (start, _)| start.saturating_add(window) > now);
        if map.len() < MAX_TRACKED {
            key
        } else {
            (SHARED_BUCKET, 0)
        }
    }

    /// Seconds to wait, if this bucket has used up its failures in this window.
    pub(super) fn blocked(&self, key: Bucket, now: u64) -> Option<u64> {
        let map = self.table();
        let key = if map.contains_key(&key) {
            key
        } else {
            (SHARED_BUCKET, 0)
        };
        let (start, count) = *map.get(&key)?;
        let end = start.saturating_add(self.window);
        (count >= self.max_failures && now < end).then(|| end - now)
    }

    pub(super) fn failed(&self, key: Bucket, now: u64) {
        let mut map = self.table();
        let key = Self::slot(&mut map, key, now, self.window);
        let entry = map.entry(key).or_insert((now, 0));
        if entry.0.saturating_add(self.window) <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    pub(super) fn tracked(&self) -> usize {
        self.table().len()
    }
}

/// The identity the headers claim (Bearer, or a Basic id), unchecked.
pub(super) fn claimed_identity(headers: &HeaderMap) -> (Identity<'static>, Option<String>) {
    if bearer(headers).is_some() {
        return (Identity::Bearer, None);
    }
    match basic_credentials(headers).and_then(|c| c.into_iter().next()) {
        Some((id, _)) => (Identity::None, Some(id)),
        None => (Identity::None, None),
    }
}

pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    // RFC 6749 §2.3.1: the id and the secret are each form-urlencoded before they
    // become the Basic user and password. Many clients skip that step; their raw pair
    // is tried second, when it differs (knowing the secret is what counts, in either
    // spelling).
    let raw = (id.to_owned(), secret.to_owned());
    Some(
        match (crate::form::decode(id), crate::form::decode(secret)) {
            (Some(id), Some(secret)) if (id.as_str(), secret.as_str()) != (&*raw.0, &*raw.1) => {
                vec![(id, secret), raw]
            }
            // Nothing to decode, or not decodable (a raw `%` not followed by two hex digits).
            _ => vec![raw],
        },
    )
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

impl AdminState {
    pub(super) fn now(&self) -> u64 {
        self.inner.validator.clock().unix_now()
    }

    /// The caller these headers authenticate, among the roles allowed.
    pub(super) fn caller(&self, headers: &HeaderMap, roles: Access) -> Option<Caller> {
        if roles.admin
            && let (Some(key), Some(p)) = (&self.inner.admin_key, bearer(headers))
            && key.matches(p)
        {
            return Some(Caller(CallerKind::Admin));
        }
        for (id, secret) in basic_credentials(headers)? {
            if roles.client
                && let Some(c) = self.client(&id, &secret)
            {
                return Some(Caller(CallerKind::Client(c.id.as_str().into())));
            }
            if roles.resource_server
                && let Some((rid, _)) = self
                    .inner
                    .resource_servers
                    .iter()
                    .find(|(rid, s)| *rid == id && s.matches(&secret))
            {
                return Some(Caller(CallerKind::ResourceServer(rid.as_str().into())));
            }
        }
        None
    }

    /// The client with this id and secret. Every client's id and secret are compared
    /// (ids in constant time), so the answer's timing does not say which ids exist.
    pub(super) fn client(&self, id: &str, secret: &str) -> Option<&Client> {
        let presented = blake3::hash(id.as_bytes());
        let mut found = None;
        for c in &self.inner.clients {
            // blake3::Hash's == is constant-time; both checks run for every client.
            let id_ok = blake3::hash(c.id.as_bytes()) == presented;
            let secret_ok = c.secret.matches(secret);
            if id_ok && secret_ok {
                found = Some(c);
            }
        }
        found
    }

    /// A failed authentication: counted, audited, throttled.
    pub(super) fn auth_failed(&self, bucket: Bucket, what: AdminFailure) {
        let now = self.now();
        let ip = bucket.0;
        self.inner.throttle.failed(bucket, now);
        if let Some(o) = self.inner.validator.observer() {
            o.on_event(&Event::Admin {
                action: AuditAction::Admin,
                detail: None,
                failure: Some(what),
                client: Some(&ip.to_string()),
                subject: None,
                keyset_version: None,
            });
        }
    }

    /// An admin action, by the admin (the admin routes admit no one else).
    pub(super) fn audit(&self, action: AuditAction, detail: String) {
        self.audit_by(action, detail, "admin", None);
    }

    /// An action with its actor (`admin`, a client or resource-server id) and the subject
    /// it concerned, if any.
    pub(super) fn audit_by(
        &self,
        action: AuditAction,
        detail: String,
        actor: &str,
        subject: Option<&str>,
    ) {
        if let Some(o) = self.inner.validator.observer() {
            o.on_event(&Event::Admin {
                action,
                detail: Some(&detail),
                failure: None,
                client: Some(actor),
                subject,
                keyset_version: Some(self.inner.validator.keyset_store().current().version()),
            });
        }
    }

    /// A revocation's `until` (Unix seconds): given and in the future, or the default.
    pub(super) fn until(&self, until: Option<u64>) -> Result<u64, ApiError> {
        let now = self.now();
        let until = until.unwrap_or(now.saturating_add(self.inner.default_until.as_secs()));
        if until <= now {
            return Err(ApiError::bad("`until` must be in the future"));
        }
        Ok(until)
    }
}
