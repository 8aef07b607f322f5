//! Lookup and build times of lb-core and its peers in one criterion run.
//!
//! `cargo bench -p lb-benches --bench peers`
//!
//! Lookups include hashing the key. Every implementation sees the same N nodes of
//! weight 1 (`10.0.x.y:8080`) and the same 4096 keys of 16 or 30 bytes.
// Inputs here are fixed and valid; a failure is a bug in the bench itself.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hash::BuildHasherDefault;

use lb_benches::{PassThrough, VNode, keys, node_addr, node_name};
use lb_core::{BoundedLoad, HashFunction, HashRing, Maglev, Nginx, NodeId, Xxh3};

type Anchor = anchorhash::AnchorHash<u64, usize, BuildHasherDefault<PassThrough>>;

const SIZES: [usize; 3] = [10, 100, 1000];

fn ids(n: usize) -> Vec<(NodeId, u32)> {
    (0..n)
        .filter_map(|i| NodeId::new(node_name(i)).ok().map(|id| (id, 1)))
        .collect()
}

fn ring(n: usize, points: u32) -> HashRing {
    HashRing::from_nodes(Xxh3, points, ids(n)).expect("valid ring")
}

fn nginx(n: usize) -> HashRing<Nginx> {
    HashRing::from_nodes(Nginx, 160, ids(n)).expect("valid ring")
}

fn maglev(n: usize) -> Maglev {
    Maglev::from_nodes(Xxh3, 65_537, ids(n)).expect("valid table")
}

fn pingora(n: usize) -> pingora_ketama::Continuum {
    let buckets: Vec<_> = (0..n)
        .map(|i| pingora_ketama::Bucket::new(node_addr(i), 1))
        .collect();
    pingora_ketama::Continuum::new(&buckets)
}

fn hashring(n: usize) -> hashring::HashRing<VNode> {
    let mut ring = hashring::HashRing::new();
    ring.batch_add(
        (0..n)
            .flat_map(|node| (0..160).map(move |replica| VNode { node, replica }))
            .collect(),
    );
    ring
}

/// Rendezvous (HRW) over the node names (`hrw-hash`; it sorts every node per key).
fn rendezvous(n: usize) -> hrw_hash::HrwNodes<String> {
    hrw_hash::HrwNodes::new((0..n).map(node_name))
}

/// AnchorHash with room for twice the nodes (`anchorhash`).
fn anchor(n: usize) -> Anchor {
    anchorhash::Builder::with_hasher(BuildHasherDefault::<PassThrough>::default())
        .with_resources(0..n)
        .build(u16::try_from(2 * n).expect("n ≤ 32767"))
}

fn lookups(c: &mut Criterion) {
    for len in [16, 30] {
        let keys = keys(4096, len);
        let mut group = c.benchmark_group(format!("lookup_{len}B"));
        for n in SIZES {
            let mut i = 0usize;
            let mut next = || {
                i = (i + 1) & 4095;
                &keys[i]
            };
            let r = ring(n, 160);
            group.bench_function(BenchmarkId::new("lb-core ring xxh3 160", n), |b| {
                b.iter(|| black_box(r.lookup(black_box(next()))))
            });
            let r = ring(n, 2000);
            group.bench_function(BenchmarkId::new("lb-core ring xxh3 2000", n), |b| {
                b.iter(|| black_box(r.lookup(black_box(next()))))
            });
            let r = nginx(n);
            group.bench_function(BenchmarkId::new("lb-core ring nginx 160", n), |b| {
                b.iter(|| black_box(r.lookup(black_box(next()))))
            });
            let m = maglev(n);
            group.bench_function(BenchmarkId::new("lb-core maglev 65537", n), |b| {
                b.iter(|| black_box(m.lookup(black_box(next()))))
            });
            // The bounded-load rule over the 160-point ring, every node at the mean load
            // (10 in flight): the owner has room, so this is the rule's own cost.
            let r = ring(n, 160);
            let rule = BoundedLoad::default();
            let total = 10 * n as u64;
            group.bench_function(
                BenchmarkId::new("lb-core bounded loads (ring 160)", n),
                |b| {
                    b.iter(|| {
                        black_box(rule.select(&r, black_box(next()), total, n as u64, |_| Some(10)))
                    })
                },
            );
            let p = pingora(n);
            group.bench_function(BenchmarkId::new("pingora-ketama 160", n), |b| {
                b.iter(|| black_box(p.node(black_box(next()))))
            });
            let h = hashring(n);
            group.bench_function(BenchmarkId::new("hashring 160", n), |b| {
                b.iter(|| black_box(h.get(&black_box(next()))))
            });
            let hrw = rendezvous(n);
            group.bench_function(BenchmarkId::new("rendezvous (hrw-hash)", n), |b| {
                b.iter(|| black_box(hrw.sorted(black_box(next())).next()))
            });
            let slots = u32::try_from(n).expect("small n");
            group.bench_function(BenchmarkId::new("jump hash (jumpch)", n), |b| {
                b.iter(|| black_box(jumpch::hash(Xxh3.hash(black_box(next())), slots)))
            });
            let a = anchor(n);
            group.bench_function(BenchmarkId::new("anchorhash", n), |b| {
                b.iter(|| black_box(a.get_resource(Xxh3.hash(black_box(next())))))
            });
        }
        group.finish();
    }
}

fn builds(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for n in SIZES {
        group.bench_function(BenchmarkId::new("lb-core ring xxh3 160", n), |b| {
            b.iter(|| ring(n, 160))
        });
        group.bench_function(BenchmarkId::new("lb-core ring nginx 160", n), |b| {
            b.iter(|| nginx(n))
        });
        group.bench_function(BenchmarkId::new("lb-core maglev 65537", n), |b| {
            b.iter(|| maglev(n))
        });
        group.bench_function(BenchmarkId::new("pingora-ketama 160", n), |b| {
            b.iter(|| pingora(n))
        });
        group.bench_function(BenchmarkId::new("hashring 160", n), |b| {
            b.iter(|| hashring(n))
        });
        group.bench_function(BenchmarkId::new("rendezvous (hrw-hash)", n), |b| {
            b.iter(|| rendezvous(n))
        });
        group.bench_function(BenchmarkId::new("anchorhash", n), |b| b.iter(|| anchor(n)));
    }
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("change_one_node");
    group.sample_size(20);
    let base = ring(1000, 160);
    let extra = NodeId::new("10.9.9.9:8080").expect("valid id");
    group.bench_function("lb-core ring add+remove at N=1000", |b| {
        b.iter_batched(
            || base.clone(),
            |mut r| {
                let _ = r.add(extra.clone(), 1);
                let _ = r.remove(extra.as_str());
                r
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, lookups, builds, incremental);
criterion_main!(benches);
