//! Fleet mode against a real Redis: each test starts its own `redis-server` on a free
//! port (nothing kept on disk) and runs several nodes — separate revocation lists and
//! validators, each with its own connections — against it.
//!
//! Waiting for propagation is bounded polling (up to 10 s), never a timing assertion:
//! the speed is measured in `benches` (BENCHMARKS.md).
#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokenlife_core::error::RevocationErrorKind;
use tokenlife_core::fleet::{FleetConfig, FleetTasks, RedisFleet};
use tokenlife_core::revoke::{Revocation, RevocationTarget};
use tokenlife_core::{
    Algorithm, Key, Keyset, KeysetStore, RevocationList, ValidationErrorKind as K, Validator,
    testing,
};

type Redis = testing::RedisServer;

struct Node {
    fleet: RedisFleet,
    list: RevocationList,
    validator: Validator,
    _tasks: FleetTasks,
}

fn key() -> Key {
    testing::key("k1", Algorithm::ES256)
}

fn node(url: &str, name: &str) -> Node {
    let fleet = RedisFleet::new(
        FleetConfig::new(url)
            .node_id(name)
            .max_backoff(Duration::from_millis(50)),
    )
    .unwrap();
    let list = RevocationList::builder().backend(fleet.backend()).build();
    let tasks = fleet.start(list.clone()).unwrap();
    let validator = Validator::builder(KeysetStore::new(Keyset::new([key()]).unwrap()))
        .issuer(common::ISS)
        .audience(common::AUD)
        .revocations(list.clone())
        .build()
        .unwrap();
    Node {
        fleet,
        list,
        validator,
        _tasks: tasks,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(jti: &str, sub: &str) -> String {
    testing::sign(
        &key(),
        &json!({"iss": common::ISS, "aud": common::AUD, "sub": sub, "jti": jti,
                "iat": now() - 10, "exp": now() + 3_600}),
    )
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn synced(nodes: &[&Node]) {
    for n in nodes {
        eventually("node synced", || n.fleet.status().connected).await;
    }
}

fn until() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3_600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_is_rejected_on_the_others() {
    let redis = Redis::start();
    let (a, b, c) = (
        node(&redis.url(), "a"),
        node(&redis.url(), "b"),
        node(&redis.url(), "c"),
    );
    synced(&[&a, &b, &c]).await;
    let t = token("t-1", "alice");
    let old = token("t-2", "bob");
    let fam = testing::sign(
        &key(),
        &json!({"iss": common::ISS, "aud": common::AUD, "sub": "carol", "jti": "t-3",
                "fam": "f-9", "iat": now() - 10, "exp": now() + 3_600}),
    );
    for n in [&a, &b, &c] {
        for tok in [&t, &old, &fam] {
            assert!(n.validator.validate(tok).is_ok());
        }
    }
    a.list.revoke_jti("t-1", until()).unwrap();
    b.list
        .revoke_subject("bob", SystemTime::now(), until())
        .unwrap();
    c.list.revoke_family("f-9", until()).unwrap();
    for n in [&a, &b, &c] {
        eventually("jti, subject and family revoked everywhere", || {
            n.validator.validate(&t).is_err()
                && n.validator.validate(&old).is_err()
                && n.validator.validate(&fam).is_err()
        })
        .await;
        assert_eq!(n.validator.validate(&t).unwrap_err().kind(), K::Revoked);
    }
    // Each node applied the two revocations the others made (its own only once).
    for n in [&a, &b, &c] {
        assert_eq!(n.fleet.status().applied, 2, "{:?}", n.fleet.status());
        assert_eq!(n.fleet.status().dropped, 0);
    }
    // A node that joins later reads them from the store before it counts as synced.
    let d = node(&redis.url(), "d");
    synced(&[&d]).await;
    for tok in [&t, &old, &fam] {
        assert_eq!(d.validator.validate(tok).unwrap_err().kind(), K::Revoked);
    }
    // Stored with a TTL equal to the remaining life.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let k = a.fleet.key_of(&Revocation {
        target: RevocationTarget::Jti("t-1".into()),
        until: 0,
    });
    let ttl: i64 = redis::cmd("TTL")
        .arg(&k)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((3_500..=3_600).contains(&ttl), "ttl {ttl} for {k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversize_messages_change_nothing() {
    let redis = Redis::start();
    let (a, b) = (node(&redis.url(), "a"), node(&redis.url(), "b"));
    synced(&[&a, &b]).await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let chan = a.fleet.channel();
    let big_id = "x".repeat(5_000);
    let garbage = [
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"v":2,"node":"z","kind":"jti","id":"t-1","until":99999999999}"#.to_owned(),
        r#"{"v":1,"node":"z","kind":"token","id":"t-1","until":99999999999}"#.to_owned(),
        r#"{"v":1,"node":"z","kind":"jti","id":"t-1","until":99999999999,"issued_before":1}"#
            .to_owned(),
        r#"{"v":1,"node":"z","kind":"jti","id":"","until":99999999999}"#.to_owned(),
        format!(r#"{{"v":1,"node":"z","kind":"jti","id":"{big_id}","until":99999999999}}"#),
        "\u{0}\u{1}\u{2}".to_owned(),
    ];
    for g in &garbage {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&chan)
            .arg(g)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for n in [&a, &b] {
        eventually("every bad message counted", || {
            n.fleet.status().dropped == garbage.len() as u64
        })
        .await;
        assert_eq!(n.fleet.status().applied, 0);
        assert_eq!(n.list.len(), 0);
        assert!(n.validator.validate(&token("t-1", "u")).is_ok());
    }
    // A stored garbage value is dropped at resync too, and the good ones still load.
    let _: () = redis::cmd("SET")
        .arg("{tokenlife}:rev:jti:broken")
        .arg("{nope")
        .query_async(&mut conn)
        .await
        .unwrap();
    a.list.revoke_jti("t-2", until()).unwrap();
    eventually("b applied t-2", || b.list.is_jti_revoked("t-2")).await;
    let c = node(&redis.url(), "c");
    synced(&[&c]).await;
    assert!(c.list.is_jti_revoked("t-2"));
    assert_eq!(c.fleet.status().dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_validating_through_an_outage_and_lose_no_revocation() {
    let mut redis = Redis::start();
    let port = redis.port();
    let (a, b, c) = (
        node(&redis.url(), "a"),
        node(&redis.url(), "b"),
        node(&redis.url(), "c"),
    );
    synced(&[&a, &b, &c]).await;
    a.list.revoke_jti("before", until()).unwrap();
    for n in [&b, &c] {
        eventually("before reached every node", || {
            n.list.is_jti_revoked("before")
        })
        .await;
    }

    redis.kill();
    for n in [&a, &b, &c] {
        eventually("outage noticed", || !n.fleet.status().connected).await;
    }
    // Fail-static: every node keeps validating from its local state.
    let live = token("live", "u");
    for n in [&a, &b, &c] {
        assert!(n.validator.validate(&live).is_ok());
        assert_eq!(
            n.validator
                .validate(&token("before", "u"))
                .unwrap_err()
                .kind(),
            K::Revoked
        );
    }
    // Revocations made during the outage: local at once, queued for the fleet.
    b.list.revoke_jti("during", until()).unwrap();
    c.list
        .revoke_subject("mallory", SystemTime::now(), until())
        .unwrap();
    assert_eq!(
        b.validator
            .validate(&token("during", "u"))
            .unwrap_err()
            .kind(),
        K::Revoked
    );
    assert!(
        a.validator.validate(&token("during", "u")).is_ok(),
        "not yet"
    );
    eventually("queued", || b.fleet.status().queued == 1).await;

    // Redis comes back empty (nothing on disk): the queues replay, the makers re-assert.
    let _redis = Redis::on(port);
    synced(&[&a, &b, &c]).await;
    for n in [&a, &b, &c] {
        eventually("outage revocations everywhere", || {
            n.list.is_jti_revoked("during") && n.validator.validate(&token("x", "mallory")).is_err()
        })
        .await;
    }
    eventually("b's queue drained", || b.fleet.status().queued == 0).await;
    // And the one made before the outage is back in the store for newcomers.
    let d = node(&format!("redis://127.0.0.1:{port}/"), "d");
    synced(&[&d]).await;
    eventually("d has everything", || {
        d.list.is_jti_revoked("before")
            && d.list.is_jti_revoked("during")
            && d.validator.validate(&token("y", "mallory")).is_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_queue_refuses_with_a_typed_error_and_keeps_the_local_entry() {
    // Nothing listens on this port: every revocation stays queued.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fleet = RedisFleet::new(
        FleetConfig::new(format!("redis://127.0.0.1:{port}/"))
            .max_queue(3)
            .max_backoff(Duration::from_millis(20)),
    )
    .unwrap();
    let list = RevocationList::builder().backend(fleet.backend()).build();
    let _tasks = fleet.start(list.clone()).unwrap();
    let mut refused = None;
    for i in 0..20 {
        if let Err(e) = list.revoke_jti(&format!("j{i}"), until()) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("the queue fills");
    assert_eq!(e.kind(), RevocationErrorKind::Backend);
    assert!(e.to_string().len() > 5);
    assert!(
        list.is_jti_revoked(&format!("j{i}")),
        "the local entry stays"
    );
    // A bad URL is a typed error at construction.
    assert!(RedisFleet::new(FleetConfig::new("not a url")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_closed_node_answers_503_once_cut_off_longer_than_its_bound() {
    use tokenlife_core::ManualClock;
    let mut redis = Redis::start();
    let port = redis.port();
    let clock = ManualClock::at_unix(now());
    let fleet = RedisFleet::new(
        FleetConfig::new(redis.url())
            .node_id("closed")
            .fail_closed(Duration::from_secs(30))
            .max_backoff(Duration::from_millis(50)),
    )
    .unwrap();
    let list = RevocationList::builder()
        .clock(clock.clone())
        .backend(fleet.backend())
        .build();
    let _tasks = fleet.start(list.clone()).unwrap();
    let v = Validator::builder(KeysetStore::new(Keyset::new([key()]).unwrap()))
        .issuer(common::ISS)
        .audience(common::AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .build()
        .unwrap();
    eventually("synced", || fleet.status().connected).await;
    let t = token("t", "u");
    assert!(v.validate(&t).is_ok());

    redis.kill();
    eventually("outage noticed", || !fleet.status().connected).await;
    // Within the bound: still trusted.
    clock.advance(Duration::from_secs(30));
    assert!(v.validate(&t).is_ok());
    // Past it: 503, no bearer error code, never a pass.
    clock.advance(Duration::from_secs(1));
    let err = v.validate(&t).unwrap_err();
    assert_eq!(err.kind(), K::RevocationsStale);
    assert_eq!((err.status(), err.rfc6750_code()), (503, None));
    // A fail-static node on the same outage keeps validating (the other tests), and this
    // one recovers as soon as it has synced again.
    let _redis = Redis::on(port);
    eventually("recovered", || v.validate(&t).is_ok()).await;
    assert!(fleet.status().connected);
}

struct IssuerNode {
    node: Node,
    issuer: tokenlife_core::Issuer,
}

fn issuer_node(url: &str, name: &str, clock: &tokenlife_core::ManualClock) -> IssuerNode {
    use tokenlife_core::fleet::RedisRefreshStore;
    issuer_node_on(url, name, clock, RedisRefreshStore::new(url).unwrap())
}

fn issuer_node_on(
    url: &str,
    name: &str,
    clock: &tokenlife_core::ManualClock,
    refresh: impl tokenlife_core::issue::RefreshStore,
) -> IssuerNode {
    let fleet = RedisFleet::new(
        FleetConfig::new(url)
            .node_id(name)
            .max_backoff(Duration::from_millis(50)),
    )
    .unwrap();
    let list = RevocationList::builder()
        .clock(clock.clone())
        .backend(fleet.backend())
        .build();
    let tasks = fleet.start(list.clone()).unwrap();
    let store = KeysetStore::new(Keyset::new([key()]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(common::ISS)
        .audience(common::AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .build()
        .unwrap();
    let issuer = tokenlife_core::Issuer::builder(store)
        .issuer(common::ISS)
        .audience(common::AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .refresh_store(refresh)
        .build()
        .unwrap();
    IssuerNode {
        node: Node {
            fleet,
            list,
            validator,
            _tasks: tasks,
        },
        issuer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_rotated_on_one_node_and_replayed_on_another_revokes_the_family_everywhere()
{
    use tokenlife_core::TokenRequest;
    use tokenlife_core::issue::RenewErrorKind;
    let redis = Redis::start();
    let clock = tokenlife_core::ManualClock::at_unix(now());
    let (a, b, c) = (
        issuer_node(&redis.url(), "a", &clock),
        issuer_node(&redis.url(), "b", &clock),
        issuer_node(&redis.url(), "c", &clock),
    );
    synced(&[&a.node, &b.node, &c.node]).await;

    let first = a.issuer.issue(TokenRequest::subject("alice")).unwrap();
    let first_refresh = first.refresh_token.clone().unwrap();
    // Rotated on B: the state is shared.
    let second = b.issuer.renew(&first_refresh).unwrap();
    for n in [&a, &b, &c] {
        assert!(n.node.validator.validate(&second.access_token).is_ok());
    }
    // Replayed on C, past the retry grace: reuse, the family dies.
    clock.advance(Duration::from_secs(31));
    let err = c.issuer.renew(&first_refresh).unwrap_err();
    assert_eq!(err.kind(), RenewErrorKind::Reused);
    // The current refresh token is dead on every node…
    for n in [&a, &b] {
        let e = n
            .issuer
            .renew(second.refresh_token.as_deref().unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), RenewErrorKind::Revoked, "{e}");
    }
    // …and the family's access tokens are rejected everywhere.
    for n in [&a, &b, &c] {
        eventually("family revoked on every node", || {
            n.node.validator.validate(&second.access_token).is_err()
                && n.node.validator.validate(&first.access_token).is_err()
        })
        .await;
    }

    // Two nodes renewing the same token at once: one renews; the other is refused while
    // that renewal is in flight, or (once it is stored) gets an idempotent retry's
    // sibling. Either way the family never forks: of the pairs handed out, exactly one
    // renews.
    let pair = a.issuer.issue(TokenRequest::subject("bob")).unwrap();
    let rt = pair.refresh_token.unwrap();
    let (ia, ib) = (a.issuer.clone(), b.issuer.clone());
    let (r1, r2) = (rt.clone(), rt);
    let t1 = std::thread::spawn(move || ia.renew(&r1).ok());
    let t2 = std::thread::spawn(move || ib.renew(&r2).ok());
    let won: Vec<_> = [t1.join().unwrap(), t2.join().unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert!(!won.is_empty());
    let renewed = won
        .iter()
        .filter(|p| a.issuer.renew(p.refresh_token.as_deref().unwrap()).is_ok())
        .count();
    assert_eq!(renewed, 1, "{} pairs handed out", won.len());
}

#[test]
fn the_refresh_store_reports_redis_down_as_a_backend_error() {
    use tokenlife_core::fleet::RedisRefreshStore;
    use tokenlife_core::issue::{RefreshRecord, RefreshStore, RefreshStoreErrorKind};
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = RedisRefreshStore::new(&format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .timeout(Duration::from_millis(200));
    let err = store
        .insert([7; 32], RefreshRecord::new("f", "s", now(), now() + 60))
        .unwrap_err();
    assert_eq!(err.kind(), RefreshStoreErrorKind::Backend);
    assert_eq!(
        store.get(&[7; 32]).unwrap_err().kind(),
        RefreshStoreErrorKind::Backend
    );
}

struct KeysetNode {
    fleet: RedisFleet,
    store: KeysetStore,
    validator: Validator,
    _tasks: FleetTasks,
}

fn keyset_node(
    url: &str,
    name: &str,
    observer: Option<tokenlife_core::rollout::RolloutGuard>,
) -> KeysetNode {
    let fleet = RedisFleet::new(
        FleetConfig::new(url)
            .node_id(name)
            .max_backoff(Duration::from_millis(50)),
    )
    .unwrap();
    let store = KeysetStore::new(Keyset::new([key()]).unwrap().with_label("blue"));
    fleet.share_keysets(&store);
    let list = RevocationList::builder().backend(fleet.backend()).build();
    let tasks = fleet.start(list.clone()).unwrap();
    let mut b = Validator::builder(store.clone())
        .issuer(common::ISS)
        .audience(common::AUD)
        .revocations(list);
    if let Some(o) = observer {
        b = b.observer(o);
    }
    KeysetNode {
        fleet,
        store,
        validator: b.build().unwrap(),
        _tasks: tasks,
    }
}

fn signed_by(kid: &str) -> String {
    testing::sign(
        &testing::key(kid, Algorithm::ES256),
        &json!({"iss": common::ISS, "aud": common::AUD, "sub": "u", "exp": now() + 3_600}),
    )
}

async fn keysets_synced(nodes: &[&KeysetNode]) {
    for n in nodes {
        eventually("node synced", || n.fleet.status().connected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_rollback_on_one_node_move_every_node_in_generation_order() {
    let redis = Redis::start();
    let (a, b, c) = (
        keyset_node(&redis.url(), "a", None),
        keyset_node(&redis.url(), "b", None),
        keyset_node(&redis.url(), "c", None),
    );
    keysets_synced(&[&a, &b, &c]).await;
    let (blue, green) = (signed_by("k1"), signed_by("green"));

    // Publish on A: every node validates green's tokens, and only public keys travelled.
    let v2 = a.store.publish(
        Keyset::new([testing::key("green", Algorithm::ES256)])
            .unwrap()
            .with_label("green"),
    );
    for n in [&b, &c] {
        eventually("green everywhere", || n.store.current().version() == v2).await;
        assert!(n.validator.validate(&green).is_ok());
        assert_eq!(
            n.validator.validate(&blue).unwrap_err().kind(),
            K::UnknownKid
        );
        assert_eq!(n.store.current().label(), Some("green"));
        assert!(
            n.store.current().signing_key().is_none(),
            "a private key never crosses the fleet"
        );
    }
    // Roll back on B: every node is on v1 again, and keeps signing with its own key.
    b.store.rollback().unwrap();
    for n in [&a, &b, &c] {
        eventually("back on blue everywhere", || {
            n.store.current().version() == 1
        })
        .await;
        assert!(n.validator.validate(&blue).is_ok());
        assert!(
            n.store
                .current()
                .signing_key()
                .is_some_and(|k| k.can_sign())
        );
    }
    let generation = a.fleet.status().keyset_generation;
    assert!(generation >= 2);
    for n in [&b, &c] {
        eventually("same generation", || {
            n.fleet.status().keyset_generation == generation
        })
        .await;
    }

    // A late message (an older generation carrying green) moves nobody.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let green_state = format!(
        r#"{{"v":1,"node":"z","version":2,"label":"green","active":{},"signing_kid":null,"candidate":null}}"#,
        serde_json::to_string(
            &Keyset::new([testing::key("green", Algorithm::ES256)])
                .unwrap()
                .to_public_jwks()
        )
        .unwrap()
    );
    let _: i64 = redis::cmd("PUBLISH")
        .arg("{tokenlife}:keysets")
        .arg(format!("1\n{green_state}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // A state with private key material is dropped whole, even with a newer generation.
    let mut private: serde_json::Value = serde_json::from_str(
        &Keyset::new([testing::key("evil", Algorithm::ES256)])
            .unwrap()
            .to_public_jwks(),
    )
    .unwrap();
    private["keys"][0]["d"] = json!("c2VjcmV0");
    let evil_state = format!(
        r#"{{"v":1,"node":"z","version":9,"label":"evil","active":{},"signing_kid":null,"candidate":null}}"#,
        serde_json::to_string(&private.to_string()).unwrap()
    );
    let dropped_before = c.fleet.status().dropped;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("{tokenlife}:keysets")
        .arg(format!("{}\n{evil_state}", generation + 100))
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually("evil state dropped", || {
        c.fleet.status().dropped > dropped_before
    })
    .await;
    for n in [&a, &b, &c] {
        assert_eq!(n.store.current().version(), 1);
        assert!(n.validator.validate(&blue).is_ok());
        assert_eq!(
            n.validator.validate(&signed_by("evil")).unwrap_err().kind(),
            K::UnknownKid
        );
    }
    // A node that joins now starts from the fleet's state.
    let late = keyset_node(&redis.url(), "late", None);
    keysets_synced(&[&late]).await;
    a.store
        .stage_canary(
            Keyset::new([testing::key("teal", Algorithm::ES256)]).unwrap(),
            25.0,
        )
        .unwrap();
    for n in [&b, &c, &late] {
        eventually("canary everywhere", || {
            n.store.current().canary_share() == 25.0
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guards_automatic_rollback_on_one_node_is_a_fleet_rollback() {
    use tokenlife_core::rollout::{GuardPolicy, RolloutGuard};
    let redis = Redis::start();
    let fleet_a = RedisFleet::new(FleetConfig::new(redis.url()).node_id("a")).unwrap();
    let store_a = KeysetStore::new(Keyset::new([key()]).unwrap());
    fleet_a.share_keysets(&store_a);
    let guard = RolloutGuard::new(store_a.clone(), GuardPolicy::default());
    let list_a = RevocationList::builder().backend(fleet_a.backend()).build();
    let _tasks_a = fleet_a.start(list_a.clone()).unwrap();
    let va = Validator::builder(store_a.clone())
        .issuer(common::ISS)
        .audience(common::AUD)
        .revocations(list_a)
        .observer(guard.clone())
        .build()
        .unwrap();
    let (b, c) = (
        keyset_node(&redis.url(), "b", None),
        keyset_node(&redis.url(), "c", None),
    );
    eventually("a synced", || fleet_a.status().connected).await;
    keysets_synced(&[&b, &c]).await;
    let blue = signed_by("k1");
    assert!(va.validate(&blue).is_ok());

    let broken = store_a.publish(Keyset::new([testing::key("broken", Algorithm::ES256)]).unwrap());
    for n in [&b, &c] {
        eventually("the bad deploy reached every node", || {
            n.store.current().version() == broken
        })
        .await;
        assert!(n.validator.validate(&blue).is_err());
    }
    // Clients of the blue key, each its own subject: evidence from many clients.
    let mut i = 0;
    while store_a.current().version() == broken && i < 1_000 {
        let client = testing::sign(
            &testing::key("k1", Algorithm::ES256),
            &json!({"iss": common::ISS, "aud": common::AUD, "sub": format!("c{i}"), "exp": now() + 3_600}),
        );
        va.validate(&client).unwrap_err();
        i += 1;
    }
    assert_eq!(guard.rollbacks(), 1);
    for n in [&b, &c] {
        eventually("the automatic rollback reached every node", || {
            n.store.current().version() == 1
        })
        .await;
        assert!(n.validator.validate(&blue).is_ok());
        // Security review 3, LOW 14: the quarantine travels too.
        assert!(
            n.store.is_quarantined(broken),
            "{:?}",
            n.store.quarantined()
        );
        assert_eq!(
            n.store.rollback_to(broken).unwrap_err().kind(),
            tokenlife_core::error::KeysetErrorKind::Quarantined
        );
    }
}

/// Security review 3, HIGH 3: Redis restarts empty (the generation counter starts over
/// at 1). The fleet's epoch changes, every node resets its generation, and a key removal
/// made after the restart reaches every node — it is not ignored as "older news".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_keyset_changes_still_reach_every_node() {
    let mut redis = Redis::start();
    let port = redis.port();
    let (a, b) = (
        keyset_node(&redis.url(), "a", None),
        keyset_node(&redis.url(), "b", None),
    );
    keysets_synced(&[&a, &b]).await;
    let leaked = signed_by("partner-L");
    // Several changes: the fleet generation climbs.
    let with_l = Keyset::new([key(), testing::key("partner-L", Algorithm::ES256)]).unwrap();
    for i in 0..3 {
        let v = a
            .store
            .publish(with_l.clone().with_label(format!("with L {i}")));
        eventually("b follows", || b.store.current().version() == v).await;
    }
    assert!(b.validator.validate(&leaked).is_ok());
    let generation = b.fleet.status().keyset_generation;
    assert!(generation >= 3, "{generation}");

    redis.kill();
    for n in [&a, &b] {
        eventually("outage noticed", || !n.fleet.status().connected).await;
    }
    let _redis = Redis::on(port);
    for n in [&a, &b] {
        eventually("reconnected", || n.fleet.status().connected).await;
    }
    // The leaked key is removed on A after the restart.
    let fixed = a
        .store
        .publish(Keyset::new([key()]).unwrap().with_label("L removed"));
    eventually("the removal reached b", || {
        b.store.current().version() == fixed
    })
    .await;
    assert_eq!(
        b.validator.validate(&leaked).unwrap_err().kind(),
        K::UnknownKid
    );
    assert!(b.fleet.status().epoch_changes >= 1 || a.fleet.status().epoch_changes >= 1);
}

/// Security review 3, HIGH 1 across the fleet: a key revoked as compromised on one node
/// is refused on every node, and a rollback on another node does not trust it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_is_refused_on_every_node_and_never_rolled_back_in() {
    let redis = Redis::start();
    let (a, b) = (
        keyset_node(&redis.url(), "a", None),
        keyset_node(&redis.url(), "b", None),
    );
    keysets_synced(&[&a, &b]).await;
    let leaked = signed_by("partner-L");
    let with_l = a
        .store
        .publish(Keyset::new([key(), testing::key("partner-L", Algorithm::ES256)]).unwrap());
    eventually("b has L", || b.validator.validate(&leaked).is_ok()).await;
    a.store.revoke_key("partner-L").unwrap();
    eventually("b refuses L", || b.validator.validate(&leaked).is_err()).await;
    eventually("b knows it is revoked", || {
        b.store.is_key_revoked("partner-L")
    })
    .await;
    // B's operator rolls back to the version that held L: L stays out, on every node.
    b.store.rollback_to(with_l).unwrap();
    assert!(b.store.current().find("partner-L").is_none());
    assert!(b.validator.validate(&leaked).is_err());
    assert!(b.validator.validate(&signed_by("k1")).is_ok());
    let v = b.store.current().version();
    eventually("a follows b", || a.store.current().version() == v).await;
    assert!(a.validator.validate(&leaked).is_err());
}

/// A TCP relay to Redis that can go silent: bytes are swallowed both ways and no
/// connection is closed (a NAT or load balancer that dropped the flow without a FIN).
struct SilentRelay {
    port: u16,
    flowing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentRelay {
    async fn start(redis_port: u16) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let flowing = std::sync::Arc::new(AtomicBool::new(true));
        let f = flowing.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(sr) as _, Box::new(cw) as _),
                ] {
                    let f = f.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if f.load(Ordering::Acquire) && to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { port, flowing }
    }

    fn set_flowing(&self, on: bool) {
        self.flowing.store(on, std::sync::atomic::Ordering::Release);
    }
}

/// Security review 3, HIGH 5: a subscriber cut off silently (no FIN, no error) stops
/// hearing the fleet's heartbeat, counts itself disconnected, and fail-closed applies;
/// when the path is back it reconnects and resyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_cut_subscriber_notices_by_the_heartbeat_and_fails_closed() {
    use tokenlife_core::ManualClock;
    let redis = Redis::start();
    let relay = SilentRelay::start(redis.port()).await;
    let clock = ManualClock::at_unix(now());
    let fleet = RedisFleet::new(
        FleetConfig::new(format!("redis://127.0.0.1:{}/", relay.port))
            .node_id("cut")
            .heartbeat(Duration::from_millis(50))
            .fail_closed(Duration::from_secs(30))
            .max_backoff(Duration::from_millis(50)),
    )
    .unwrap();
    let list = RevocationList::builder()
        .clock(clock.clone())
        .backend(fleet.backend())
        .build();
    let _tasks = fleet.start(list.clone()).unwrap();
    let v = Validator::builder(KeysetStore::new(Keyset::new([key()]).unwrap()))
        .issuer(common::ISS)
        .audience(common::AUD)
        .clock(clock.clone())
        .revocations(list.clone())
        .build()
        .unwrap();
    eventually("synced", || fleet.status().connected).await;
    let t = token("t", "u");
    assert!(v.validate(&t).is_ok());

    relay.set_flowing(false);
    eventually("the silence noticed", || !fleet.status().connected).await;
    assert!(fleet.status().heartbeats_missed >= 1);
    clock.advance(Duration::from_secs(31));
    assert_eq!(v.validate(&t).unwrap_err().kind(), K::RevocationsStale);

    relay.set_flowing(true);
    eventually("recovered", || v.validate(&t).is_ok()).await;
    assert!(fleet.status().connected);
}

/// Security review 3, LOW 17: the Redis password never shows in `Debug`.
#[test]
fn the_redis_password_never_shows_in_debug() {
    let c = FleetConfig::new("redis://user:s3cret-pw@127.0.0.1:6379/0");
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(shown.contains("127.0.0.1:6379"), "{shown}");
    let fleet = RedisFleet::new(c).unwrap();
    assert!(!format!("{fleet:?}").contains("s3cret-pw"));
    // LOW 21: no TLS to Redis in this build; a rediss:// URL is refused at once, never
    // silently sent in the clear.
    let err = RedisFleet::new(FleetConfig::new("rediss://:pw@127.0.0.1:6380/")).unwrap_err();
    assert!(!err.to_string().contains("pw@"), "{err}");
}

/// Security review 3, MEDIUM 11: a narrower revocation of the same subject made later on
/// another node never weakens the stored one: Redis keeps the merge (the later cut-off,
/// the longer `until`), so a late joiner still rejects what the stronger one covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_narrower_revocation_never_weakens_the_stored_one() {
    let redis = Redis::start();
    let (a, b) = (node(&redis.url(), "a"), node(&redis.url(), "b"));
    synced(&[&a, &b]).await;
    let t = token("t-merge", "mallory"); // iat = now - 10
    let wide = SystemTime::now();
    a.list
        .revoke_subject("mallory", wide, wide + Duration::from_secs(3_600))
        .unwrap();
    eventually("b has the wide one", || b.validator.validate(&t).is_err()).await;
    // B revokes the same subject again, narrower (an older cut-off) and shorter.
    b.list
        .revoke_subject(
            "mallory",
            wide - Duration::from_secs(100),
            wide + Duration::from_secs(600),
        )
        .unwrap();
    // Let B's write land, then a node joins and reads the store.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let k = a.fleet.key_of(&Revocation {
        target: RevocationTarget::Subject {
            subject: "mallory".into(),
            issued_before: 0,
        },
        until: 0,
    });
    // Queued counts it from the revoke call until the writer's pipeline succeeded.
    eventually("b's write reached Redis", || b.fleet.status().queued == 0).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(&k)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 3_000, "the longer until stays: ttl {ttl}");
    let c = node(&redis.url(), "c");
    synced(&[&c]).await;
    assert_eq!(c.validator.validate(&t).unwrap_err().kind(), K::Revoked);
    assert_eq!(a.validator.validate(&t).unwrap_err().kind(), K::Revoked);
    assert_eq!(b.validator.validate(&t).unwrap_err().kind(), K::Revoked);
}

/// Security review 3, MEDIUM 11, the other half: every node re-stores every live
/// revocation it knows after a resync, not only its own — when the node that made one is
/// gone and Redis restarts empty, a survivor refills it for late joiners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_refills_a_redis_restarted_empty_with_revocations_others_made() {
    let mut redis = Redis::start();
    let port = redis.port();
    let (a, b) = (node(&redis.url(), "a"), node(&redis.url(), "b"));
    synced(&[&a, &b]).await;
    let t = token("made-by-a", "u");
    a.list.revoke_jti("made-by-a", until()).unwrap();
    eventually("b has it", || b.validator.validate(&t).is_err()).await;
    drop(a); // the node that made it is gone
    redis.kill();
    eventually("outage noticed", || !b.fleet.status().connected).await;
    let syncs = b.fleet.status().syncs;
    let _redis = Redis::on(port);
    eventually("b resynced", || {
        b.fleet.status().connected && b.fleet.status().syncs > syncs
    })
    .await;
    let k = b.fleet.key_of(&Revocation {
        target: RevocationTarget::Jti("made-by-a".into()),
        until: 0,
    });
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    eventually("b re-stored it", || {
        redis::cmd("EXISTS")
            .arg(&k)
            .query::<bool>(&mut conn)
            .unwrap_or(false)
    })
    .await;
    let c = node(&redis.url(), "c");
    synced(&[&c]).await;
    assert_eq!(c.validator.validate(&t).unwrap_err().kind(), K::Revoked);
}

/// Security review 3, LOW 15: an id that JSON escaping would blow past the fleet's
/// message size is refused when the revocation is made (control characters), and the
/// longest id of the most-escaped printable kind still reaches every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revocation_that_is_accepted_fits_a_fleet_message() {
    let redis = Redis::start();
    let (a, b) = (node(&redis.url(), "a"), node(&redis.url(), "b"));
    synced(&[&a, &b]).await;
    let controls = "\u{1}".repeat(700);
    assert_eq!(
        a.list.revoke_jti(&controls, until()).unwrap_err().kind(),
        RevocationErrorKind::InvalidId
    );
    assert!(!a.list.is_jti_revoked(&controls));
    let quotes = "\"".repeat(RevocationList::MAX_ID_LEN);
    a.list.revoke_jti(&quotes, until()).unwrap();
    eventually("the escaped id reached b", || {
        b.list.is_jti_revoked(&quotes)
    })
    .await;
    assert_eq!(b.fleet.status().dropped, 0);
}

/// A node's view of a real Redis that goes away right after a renewal's mark (the
/// successor is never stored, the mark is never taken back), and a hook run just before
/// the commit (another node acting meanwhile).
struct CutAfterMark {
    inner: tokenlife_core::fleet::RedisRefreshStore,
    cut_next_mark: AtomicBool,
    down: AtomicBool,
    before_commit: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for CutAfterMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutAfterMark").finish_non_exhaustive()
    }
}

impl CutAfterMark {
    fn new(url: &str) -> Self {
        Self {
            inner: tokenlife_core::fleet::RedisRefreshStore::new(url).unwrap(),
            cut_next_mark: AtomicBool::new(false),
            down: AtomicBool::new(false),
            before_commit: std::sync::Mutex::new(None),
        }
    }

    fn up(&self) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        if self.down.load(SeqCst) {
            Err(tokenlife_core::issue::RefreshStoreError::backend(
                "connection reset",
            ))
        } else {
            Ok(())
        }
    }
}

impl tokenlife_core::issue::RefreshStore for CutAfterMark {
    fn insert(
        &self,
        id: [u8; 32],
        record: tokenlife_core::issue::RefreshRecord,
    ) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        self.up()?;
        self.inner.insert(id, record)
    }
    fn get(
        &self,
        id: &[u8; 32],
    ) -> Result<
        Option<tokenlife_core::issue::RefreshRecord>,
        tokenlife_core::issue::RefreshStoreError,
    > {
        self.up()?;
        self.inner.get(id)
    }
    fn mark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<
        Option<tokenlife_core::issue::RefreshRecord>,
        tokenlife_core::issue::RefreshStoreError,
    > {
        self.up()?;
        let before = self.inner.mark_used(id, at_ms);
        if self.cut_next_mark.swap(false, SeqCst) {
            self.down.store(true, SeqCst);
        }
        before
    }
    fn unmark_used(
        &self,
        id: &[u8; 32],
        at_ms: u64,
    ) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        self.up()?;
        self.inner.unmark_used(id, at_ms)
    }
    fn commit_renewal(
        &self,
        old: &[u8; 32],
        at_ms: u64,
        new_id: [u8; 32],
        record: tokenlife_core::issue::RefreshRecord,
    ) -> Result<bool, tokenlife_core::issue::RefreshStoreError> {
        let hook = self
            .before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(hook) = hook {
            hook();
        }
        self.up()?;
        self.inner.commit_renewal(old, at_ms, new_id, record)
    }
    fn revoke_family(
        &self,
        family: &str,
        until: u64,
    ) -> Result<(), tokenlife_core::issue::RefreshStoreError> {
        self.up()?;
        self.inner.revoke_family(family, until)
    }
    fn is_family_revoked(
        &self,
        family: &str,
    ) -> Result<bool, tokenlife_core::issue::RefreshStoreError> {
        self.up()?;
        self.inner.is_family_revoked(family)
    }
}

/// Peer gaps, item 4, on Redis across two nodes: a renewal answered by node A is lost,
/// the client retries on node B and gets a sibling; the family moves on through it; the
/// old token after the retry grace is reuse on every node. And a thief's sibling is
/// caught once the client has renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_renewal_answer_is_retried_on_another_node() {
    let redis = Redis::start();
    let clock = tokenlife_core::ManualClock::at_unix(now());
    let a = issuer_node(&redis.url(), "a", &clock);
    let b = issuer_node(&redis.url(), "b", &clock);
    synced(&[&a.node, &b.node]).await;
    let (ia, ib, va, clock2) = (
        a.issuer.clone(),
        b.issuer.clone(),
        a.node.validator.clone(),
        clock.clone(),
    );
    let vb = b.node.validator.clone();
    tokio::task::spawn_blocking(move || {
        // Live on both nodes; a family revocation on one reaches the other through the
        // fleet within moments, so wait (bounded) until the two agree.
        let live = |t: &str| {
            let until = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let (on_a, on_b) = (va.validate(t).is_ok(), vb.validate(t).is_ok());
                if on_a == on_b || std::time::Instant::now() > until {
                    return on_a && on_b;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        common::lost_answer_story(&ia, &ib, &clock2, live);
        common::thief_within_the_retry_grace_story(&ib, &clock2, live);
    })
    .await
    .unwrap();
}

/// Security review 3, earlier finding 4, across nodes: node A marks a refresh token used,
/// then loses Redis before storing the successor or taking the mark back. The client's
/// retry on node B is "in flight" (`Rotated`) within the grace and a renewal after it —
/// never "reuse" that kills the family. And a renewal taken back by B while A was still
/// going cannot fork the family: A's late commit stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_cut_off_after_its_mark_is_retried_on_another_node_not_called_reuse() {
    use tokenlife_core::TokenRequest;
    use tokenlife_core::issue::RenewErrorKind;
    let redis = Redis::start();
    let clock = tokenlife_core::ManualClock::at_unix(now());
    let cut = Arc::new(CutAfterMark::new(&redis.url()));
    let a = issuer_node_on(&redis.url(), "a", &clock, cut.clone());
    let b = issuer_node(&redis.url(), "b", &clock);
    let (ia, ib) = (a.issuer.clone(), b.issuer.clone());
    let (cut2, clock2) = (cut.clone(), clock.clone());
    tokio::task::spawn_blocking(move || {
        let (cut, clock) = (cut2, clock2);
        let rt = ia
            .issue(TokenRequest::subject("carol"))
            .unwrap()
            .refresh_token
            .unwrap();
        cut.cut_next_mark.store(true, SeqCst);
        assert_eq!(ia.renew(&rt).unwrap_err().kind(), RenewErrorKind::Store);
        // Retried on B at once: the renewal may still be in flight.
        assert_eq!(ib.renew(&rt).unwrap_err().kind(), RenewErrorKind::Rotated);
        // Past the grace: it failed; B renews, the family lives.
        clock.advance(Duration::from_secs(3));
        let renewed = ib.renew(&rt).unwrap();
        assert!(ib.renew(renewed.refresh_token.as_deref().unwrap()).is_ok());

        // A renewal on A that B takes back before A commits: exactly one successor.
        cut.down.store(false, SeqCst);
        let rt = ia
            .issue(TokenRequest::subject("dave"))
            .unwrap()
            .refresh_token
            .unwrap();
        let taken = Arc::new(std::sync::Mutex::new(None));
        let (ib2, rt2, taken2, clock3) = (ib.clone(), rt.clone(), taken.clone(), clock.clone());
        *cut.before_commit.lock().unwrap() = Some(Box::new(move || {
            clock3.advance(Duration::from_secs(3));
            *taken2.lock().unwrap() = Some(ib2.renew(&rt2));
        }));
        let late = ia.renew(&rt).unwrap_err();
        assert_eq!(late.kind(), RenewErrorKind::Rotated, "{late:?}");
        let won = taken.lock().unwrap().take().unwrap().unwrap();
        assert!(ib.renew(won.refresh_token.as_deref().unwrap()).is_ok());
    })
    .await
    .unwrap();
}

/// Security review 3, earlier finding 2 (Redis half): one holder renewing in a loop keeps
/// its live token and its last retired ones in Redis, not one key per renewal; the newest
/// retired token is still reuse on another node, the oldest is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_renewing_in_a_loop_holds_a_bounded_share_of_redis() {
    use tokenlife_core::TokenRequest;
    use tokenlife_core::issue::{DEFAULT_RETIRED_PER_FAMILY, RenewErrorKind};
    let redis = Redis::start();
    let clock = tokenlife_core::ManualClock::at_unix(now());
    let (a, b) = (
        issuer_node(&redis.url(), "a", &clock),
        issuer_node(&redis.url(), "b", &clock),
    );
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let renewals = DEFAULT_RETIRED_PER_FAMILY * 10;
    let issuers = (a.issuer.clone(), b.issuer.clone());
    let (current, spent) = tokio::task::spawn_blocking(move || {
        let mut current = issuers
            .0
            .issue(TokenRequest::subject("holder"))
            .unwrap()
            .refresh_token
            .unwrap();
        let mut spent = Vec::new();
        for i in 0..renewals {
            let node = if i % 2 == 0 { &issuers.0 } else { &issuers.1 };
            let next = node.renew(&current).unwrap().refresh_token.unwrap();
            spent.push(std::mem::replace(&mut current, next));
        }
        (current, spent)
    })
    .await
    .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{tokenlife}:rt:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), DEFAULT_RETIRED_PER_FAMILY + 1, "{}", keys.len());
    clock.advance(Duration::from_secs(5));
    let issuers = (a.issuer.clone(), b.issuer.clone());
    let (old, recent, live) = tokio::task::spawn_blocking(move || {
        let old = issuers.1.renew(&spent[0]).unwrap_err().kind();
        let live = issuers.0.renew(&current).is_ok();
        clock.advance(Duration::from_secs(5));
        let recent = issuers.1.renew(spent.last().unwrap()).unwrap_err().kind();
        (old, recent, live)
    })
    .await
    .unwrap();
    assert_eq!(old, RenewErrorKind::Unknown);
    assert!(live, "an unknown old token is not reuse");
    assert_eq!(recent, RenewErrorKind::Reused);
}

/// Security review 3, earlier finding 2: the refresh store refuses a Redis whose eviction
/// policy could drop its keys (a revoked family's marker, a retired record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_store_refuses_an_evicting_redis() {
    use tokenlife_core::fleet::RedisRefreshStore;
    let redis = Redis::start();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let store = RedisRefreshStore::new(&redis.url()).unwrap();
    let check = |store: RedisRefreshStore| {
        tokio::task::spawn_blocking(move || (store.check_eviction_policy(), store))
    };
    let (ok, store) = check(store).await.unwrap();
    ok.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (refused, _) = check(store).await.unwrap();
    let err = refused.unwrap_err();
    assert!(
        format!("{err} {:?}", std::error::Error::source(&err)).contains("allkeys-lru"),
        "{err:?}"
    );
}

/// The fleet's setup error has the crate's one error shape: an opaque struct with a kind.
#[test]
fn a_url_redis_cannot_use_is_a_typed_error() {
    use tokenlife_core::fleet::FleetErrorKind;
    let err = RedisFleet::new(FleetConfig::new("smtp://127.0.0.1/")).unwrap_err();
    assert_eq!(err.kind(), FleetErrorKind::InvalidUrl);
    assert!(err.to_string().starts_with("bad Redis settings"), "{err}");
    let err = tokenlife_core::fleet::RedisRefreshStore::new("not a url").unwrap_err();
    assert_eq!(err.kind(), FleetErrorKind::InvalidUrl);
}

/// Every fleet happening is an event for the node's observer (no metric is emitted from
/// `fleet`): synced, a revocation applied, a message dropped, disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_happenings_reach_the_observer_as_events() {
    use tokenlife_core::observe::{Event, FleetDrop, FleetEvent, from_fn};
    let mut redis = Redis::start();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<FleetEvent>::new()));
    let fleet = RedisFleet::new(
        FleetConfig::new(redis.url())
            .node_id("watched")
            .max_backoff(Duration::from_millis(50))
            .observer(from_fn({
                let seen = seen.clone();
                move |e| {
                    if let Event::Fleet(f) = e {
                        seen.lock().unwrap().push(*f);
                    }
                }
            })),
    )
    .unwrap();
    let list = RevocationList::builder().backend(fleet.backend()).build();
    let _tasks = fleet.start(list.clone()).unwrap();
    let a = node(&redis.url(), "a");
    let has = |want: fn(&FleetEvent) -> bool| {
        let seen = seen.clone();
        move || seen.lock().unwrap().iter().any(want)
    };
    eventually(
        "synced",
        has(|e| matches!(e, FleetEvent::Synced { at } if *at > 0)),
    )
    .await;
    eventually("a synced", || a.fleet.status().connected).await;
    a.list.revoke_jti("j-1", until()).unwrap();
    eventually("applied", has(|e| *e == FleetEvent::RevocationApplied)).await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(fleet.channel())
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    eventually(
        "dropped",
        has(|e| *e == FleetEvent::Dropped(FleetDrop::Malformed)),
    )
    .await;
    redis.kill();
    eventually("disconnected", has(|e| *e == FleetEvent::Disconnected)).await;
}

/// The Monitor turns fleet events into the `tokenlife_fleet_*` metrics.
#[test]
fn the_monitor_counts_fleet_events() {
    use metrics_util::debugging::DebuggingRecorder;
    use tokenlife_core::observe::metrics as m;
    use tokenlife_core::observe::{Event, FleetDrop, FleetEvent, Observer};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let monitor = tokenlife_core::Monitor::builder().build();
        for e in [
            FleetEvent::Synced { at: 1_700_000_000 },
            FleetEvent::RevocationApplied,
            FleetEvent::RevocationApplied,
            FleetEvent::Dropped(FleetDrop::Oversize),
            FleetEvent::Queued(7),
            FleetEvent::KeysetStateIgnored,
            FleetEvent::EpochChanged,
            FleetEvent::HeartbeatMissed,
            FleetEvent::Disconnected,
        ] {
            monitor.on_event(&Event::Fleet(e));
        }
    });
    let snap = snapshotter.snapshot().into_vec();
    // `labels value`, as the debugging recorder shows them.
    let value = |name: &str| {
        snap.iter()
            .find(|(k, _, _, _)| k.key().name() == name)
            .map(|(k, _, _, v)| {
                let labels: Vec<&str> = k.key().labels().map(|l| l.value()).collect();
                format!("{labels:?} {v:?}")
            })
            .unwrap_or_else(|| panic!("{name} not emitted"))
    };
    assert_eq!(value(m::FLEET_CONNECTED), "[] Gauge(0.0)");
    assert_eq!(value(m::FLEET_LAST_SYNC), "[] Gauge(1700000000.0)");
    assert_eq!(value(m::FLEET_APPLIED), "[] Counter(2)");
    assert_eq!(value(m::FLEET_DROPPED), r#"["oversize"] Counter(1)"#);
    assert_eq!(value(m::FLEET_REPLAY_QUEUE), "[] Gauge(7.0)");
    assert_eq!(value(m::FLEET_STATES_IGNORED), "[] Counter(1)");
    assert_eq!(value(m::FLEET_EPOCH_CHANGES), "[] Counter(1)");
    assert_eq!(value(m::FLEET_HEARTBEAT_MISSED), "[] Counter(1)");
}
