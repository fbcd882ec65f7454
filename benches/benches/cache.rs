//! The verified-token cache, three candidates on the same workload (the table in
//! BENCHMARKS.md): moka (what the validator used), quick_cache (S3-FIFO, bounded, no
//! timers) and a papaya map (lock-free reads; bounded by a sweep on the injected clock).
//! Keys are the validator's: seeded 128-bit xxh3 of the token, hashed by pass-through.
//! Values are `Arc`s, as the validator's are. Hit and miss, with 1 and 100,000 live
//! entries, on one thread and on two.
//!
//! `cargo bench -p benches --bench cache`

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// Pass-through hasher: the keys are already uniform hashes.
#[derive(Clone, Copy, Default)]
struct Prehashed;

#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64 ^ (v >> 64) as u64;
    }
}

impl BuildHasher for Prehashed {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

/// Stands in for the validator's entry (the token bytes and parsed claims behind an Arc).
struct Entry {
    #[allow(dead_code)]
    token: Box<str>,
    expires_at: u64,
}

trait Candidate: Send + Sync {
    fn name(&self) -> &'static str;
    fn get(&self, k: u128) -> Option<Arc<Entry>>;
    fn insert(&self, k: u128, v: Arc<Entry>);
}

struct Moka(moka::sync::Cache<u128, Arc<Entry>, Prehashed>);
impl Candidate for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn get(&self, k: u128) -> Option<Arc<Entry>> {
        self.0.get(&k)
    }
    fn insert(&self, k: u128, v: Arc<Entry>) {
        self.0.insert(k, v);
    }
}

struct Quick(quick_cache::sync::Cache<u128, Arc<Entry>, quick_cache::UnitWeighter, Prehashed>);
impl Candidate for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn get(&self, k: u128) -> Option<Arc<Entry>> {
        self.0.get(&k)
    }
    fn insert(&self, k: u128, v: Arc<Entry>) {
        self.0.insert(k, v);
    }
}

struct Papaya(papaya::HashMap<u128, Arc<Entry>, Prehashed>);
impl Candidate for Papaya {
    fn name(&self) -> &'static str {
        "papaya"
    }
    fn get(&self, k: u128) -> Option<Arc<Entry>> {
        self.0.pin().get(&k).cloned()
    }
    fn insert(&self, k: u128, v: Arc<Entry>) {
        self.0.pin().insert(k, v);
    }
}

const CAPACITY: u64 = 200_000;

fn candidates() -> Vec<Box<dyn Candidate>> {
    vec![
        Box::new(Moka(
            moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(Duration::from_secs(600))
                .build_with_hasher(Prehashed),
        )),
        Box::new(Quick(quick_cache::sync::Cache::with(
            CAPACITY as usize,
            CAPACITY,
            quick_cache::UnitWeighter,
            Prehashed,
            quick_cache::sync::DefaultLifecycle::default(),
        ))),
        Box::new(Papaya(papaya::HashMap::with_capacity_and_hasher(
            1024, Prehashed,
        ))),
    ]
}

fn key(i: u64) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(&i.to_le_bytes(), 7)
}

fn fill(c: &dyn Candidate, n: u64) {
    for i in 0..n {
        c.insert(
            key(i),
            Arc::new(Entry {
                token: format!("token-{i}").into(),
                expires_at: 2_000_000_000,
            }),
        );
    }
}

/// Runs `op` `iters` times on each of `threads` threads; the time per operation.
fn timed(threads: u32, iters: u64, op: &(dyn Fn(u64) + Sync)) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        for i in 0..iters {
            op(i);
        }
        return start.elapsed();
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..iters {
                    op(i.wrapping_mul(31).wrapping_add(u64::from(t)));
                }
            });
        }
    });
    // Wall time for `threads × iters` operations, reported per `iters`: the
    // throughput-equivalent cost of one operation on a busy cache.
    start.elapsed() / threads
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for live in [1u64, 100_000] {
        for cand in candidates() {
            fill(&*cand, live);
            for threads in [1u32, 2] {
                let name = cand.name();
                let hit = |i: u64| {
                    let e = cand.get(key(i % live)).expect("hit");
                    black_box(e.expires_at);
                };
                g.bench_function(format!("{name}/hit/{live}/{threads}t"), |b| {
                    b.iter_custom(|iters| timed(threads, iters, &hit))
                });
                let miss = |i: u64| {
                    black_box(cand.get(key(live + 1 + i % 1000)));
                };
                g.bench_function(format!("{name}/miss/{live}/{threads}t"), |b| {
                    b.iter_custom(|iters| timed(threads, iters, &miss))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
