//! Ring lookup: ns per lookup, key hash included, for N = 10, 100, 1000 nodes.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use lb_core::{HashRing, NodeId};

fn ring(nodes: usize) -> HashRing {
    let mut ring = HashRing::new();
    for i in 0..nodes {
        if let Ok(id) = NodeId::new(format!("10.0.{}.{}:8080", i / 256, i % 256)) {
            let _ = ring.add(id, 1);
        }
    }
    ring
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_lookup");
    group.throughput(Throughput::Elements(1));
    for nodes in [10, 100, 1000] {
        let ring = ring(nodes);
        let keys: Vec<String> = (0..1024).map(|i| format!("user-{i:011}")).collect(); // 16 bytes
        let mut i = 0;
        group.bench_function(BenchmarkId::new("xxh3_16B", nodes), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(ring.lookup(black_box(keys[i].as_bytes())))
            })
        });
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_build");
    group.sample_size(10);
    for nodes in [10, 100, 1000] {
        group.bench_function(BenchmarkId::from_parameter(nodes), |b| {
            b.iter(|| ring(nodes))
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, build);
criterion_main!(benches);
