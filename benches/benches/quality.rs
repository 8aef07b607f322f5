//! Balance and key movement of lb-core and its peers: prints a Markdown table.
//!
//! `cargo bench -p lb-benches --bench quality`
//!
//! For N = 10, 100, 1000 nodes of weight 1 and 1,000,000 keys: max/mean load and the
//! coefficient of variation of load per node, and max/mean of the exact share of the
//! hash space (no sampling noise); the fraction of keys that move when a node is added
//! (ideal 1/(N+1)) or removed (ideal 1/N), each averaged over 5 different nodes, and
//! when one node flaps Down
//! (keys of *other* nodes that move; ideal 0). Flaps use each implementation's
//! failover walk (lb-core `lookup_with`, pingora-ketama `node_iter`); `hashring` has
//! none, so its flap is a removal. Memory per point is heap bytes / points.
//!
//! Rendezvous (`hrw-hash`), jump hash (`jumpch`) and AnchorHash (`anchorhash`) have no
//! points: their memory column is bytes per node. Jump hash can only grow or shrink at
//! the end, so removing a node renumbers every later one (that is what its column
//! shows) and it has no failover walk (a flap is a removal). AnchorHash adds and
//! removes through its own incremental API; it has no failover walk either, so its flap
//! is `remove_resource`. `hrw-hash` sorts every node per key, so at N = 1000 it is
//! measured over the first 100,000 keys.
// Inputs here are fixed and valid; a failure is a bug in the bench itself.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use lb_benches::{PassThrough, VNode, keys, node_addr, node_name};
use lb_core::{HashFunction, HashRing, Maglev, Nginx, NodeId, Xxh3};

const KEYS: usize = 1_000_000;
/// Nodes added (and, separately, removed) to average key movement over.
const TRIALS: usize = 5;

/// Owner of every key as a node index; `usize::MAX` for none.
type Owners = Vec<usize>;

/// One implementation under test, built over nodes `0..n` except `skip`.
trait Subject {
    fn name(&self) -> String;
    /// Owners with the given node set.
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners;
    /// Owners with all `n` nodes but `down` skipped by the failover walk.
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners;
    /// Heap bytes per point at `n` nodes.
    fn bytes_per_point(&self, n: usize) -> f64;
    /// max/mean of the exact share of the hash space per node, where known.
    fn share_max_mean(&self, _n: usize) -> Option<f64> {
        None
    }
    /// Owners after node `extra` joins nodes `0..n`.
    fn owners_added(&self, n: usize, extra: usize, keys: &[Vec<u8>]) -> Owners {
        let mut nodes = all(n);
        nodes.push(extra);
        self.owners(&nodes, keys)
    }
    /// Owners after node `gone` leaves nodes `0..n`.
    fn owners_removed(&self, n: usize, gone: usize, keys: &[Vec<u8>]) -> Owners {
        let nodes: Vec<usize> = (0..n).filter(|&i| i != gone).collect();
        self.owners(&nodes, keys)
    }
    /// How many of the keys to measure at `n` nodes (all but for slow peers).
    fn key_count(&self, _n: usize) -> usize {
        KEYS
    }
}

fn max_over_mean(shares: &[f64]) -> f64 {
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    shares.iter().copied().fold(0.0, f64::max) / mean
}

fn index_of(id: &str) -> usize {
    let addr: std::net::SocketAddr = id.parse().unwrap_or_else(|_| node_addr(usize::MAX >> 40));
    let o = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(_) => [0; 4],
    };
    (usize::from(o[1]) << 16) | (usize::from(o[2]) << 8) | usize::from(o[3])
}

fn ids(nodes: &[usize]) -> Vec<(NodeId, u32)> {
    nodes
        .iter()
        .filter_map(|&i| NodeId::new(node_name(i)).ok().map(|id| (id, 1)))
        .collect()
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

struct Ring<H: HashFunction + Clone> {
    label: &'static str,
    hasher: H,
    points: u32,
}

impl<H: HashFunction + Clone> Subject for Ring<H> {
    fn name(&self) -> String {
        format!("lb-core ring {} {}", self.label, self.points)
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        let ring =
            HashRing::from_nodes(self.hasher.clone(), self.points, ids(nodes)).expect("ring");
        keys.iter()
            .map(|k| {
                ring.lookup(k)
                    .map_or(usize::MAX, |id| index_of(id.as_str()))
            })
            .collect()
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        let ring =
            HashRing::from_nodes(self.hasher.clone(), self.points, ids(&all(n))).expect("ring");
        let down = node_name(down);
        keys.iter()
            .map(|k| {
                ring.lookup_with(k, |id| id.as_str() != down)
                    .map_or(usize::MAX, |id| index_of(id.as_str()))
            })
            .collect()
    }
    fn bytes_per_point(&self, n: usize) -> f64 {
        let ring =
            HashRing::from_nodes(self.hasher.clone(), self.points, ids(&all(n))).expect("ring");
        ring.heap_bytes() as f64 / ring.point_count() as f64
    }
    fn share_max_mean(&self, n: usize) -> Option<f64> {
        let ring =
            HashRing::from_nodes(self.hasher.clone(), self.points, ids(&all(n))).expect("ring");
        Some(max_over_mean(&ring.shares()))
    }
}

struct MaglevTable;

impl Subject for MaglevTable {
    fn name(&self) -> String {
        "lb-core maglev 65537".into()
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        let table = Maglev::from_nodes(Xxh3, 65_537, ids(nodes)).expect("table");
        keys.iter()
            .map(|k| {
                table
                    .lookup(k)
                    .map_or(usize::MAX, |id| index_of(id.as_str()))
            })
            .collect()
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        let table = Maglev::from_nodes(Xxh3, 65_537, ids(&all(n))).expect("table");
        let down = node_name(down);
        keys.iter()
            .map(|k| {
                table
                    .lookup_with(k, |id| id.as_str() != down)
                    .map_or(usize::MAX, |id| index_of(id.as_str()))
            })
            .collect()
    }
    fn bytes_per_point(&self, n: usize) -> f64 {
        let table = Maglev::from_nodes(Xxh3, 65_537, ids(&all(n))).expect("table");
        table.heap_bytes() as f64 / 65_537.0
    }
    fn share_max_mean(&self, n: usize) -> Option<f64> {
        let table = Maglev::from_nodes(Xxh3, 65_537, ids(&all(n))).expect("table");
        Some(max_over_mean(&table.shares()))
    }
}

struct Pingora;

impl Pingora {
    fn build(nodes: &[usize]) -> pingora_ketama::Continuum {
        let buckets: Vec<_> = nodes
            .iter()
            .map(|&i| pingora_ketama::Bucket::new(node_addr(i), 1))
            .collect();
        pingora_ketama::Continuum::new(&buckets)
    }
}

impl Subject for Pingora {
    fn name(&self) -> String {
        "pingora-ketama 160".into()
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        let c = Self::build(nodes);
        keys.iter()
            .map(|k| c.node(k).map_or(usize::MAX, |a| index_of(&a.to_string())))
            .collect()
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        let c = Self::build(&all(n));
        let down = node_addr(down);
        keys.iter()
            .map(|k| {
                c.node_iter(k)
                    .take(100_000)
                    .find(|a| **a != down)
                    .map_or(usize::MAX, |a| index_of(&a.to_string()))
            })
            .collect()
    }
    fn bytes_per_point(&self, n: usize) -> f64 {
        // Continuum holds an 8-byte point (u32 hash, u32 node) per point and one
        // SocketAddr per node (its fields are private; counted from its source).
        (n as f64 * 160.0 * 8.0 + n as f64 * std::mem::size_of::<std::net::SocketAddr>() as f64)
            / (n as f64 * 160.0)
    }
}

struct HashRingCrate;

impl HashRingCrate {
    fn build(nodes: &[usize]) -> hashring::HashRing<VNode> {
        let mut ring = hashring::HashRing::new();
        ring.batch_add(
            nodes
                .iter()
                .flat_map(|&node| (0..160).map(move |replica| VNode { node, replica }))
                .collect(),
        );
        ring
    }
}

impl Subject for HashRingCrate {
    fn name(&self) -> String {
        "hashring 160".into()
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        let ring = Self::build(nodes);
        keys.iter()
            .map(|k| ring.get(k).map_or(usize::MAX, |v| v.node))
            .collect()
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        let nodes: Vec<usize> = (0..n).filter(|&i| i != down).collect();
        self.owners(&nodes, keys)
    }
    fn bytes_per_point(&self, _n: usize) -> f64 {
        // A Vec of (u64 hash, VNode) entries: 8 + 16 bytes.
        (8 + std::mem::size_of::<VNode>()) as f64
    }
}

struct Rendezvous;

impl Subject for Rendezvous {
    fn name(&self) -> String {
        "rendezvous (hrw-hash)".into()
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        let hrw = hrw_hash::HrwNodes::new(nodes.iter().copied());
        keys.iter()
            .map(|k| hrw.sorted(k).next().copied().unwrap_or(usize::MAX))
            .collect()
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        // The failover walk: the next node in the key's order.
        let hrw = hrw_hash::HrwNodes::new(all(n));
        keys.iter()
            .map(|k| {
                hrw.sorted(k)
                    .find(|&&node| node != down)
                    .copied()
                    .unwrap_or(usize::MAX)
            })
            .collect()
    }
    fn bytes_per_point(&self, _n: usize) -> f64 {
        // A HashMap entry per node: the node (usize here, a String in real use) and
        // its u64 hash, plus a control byte.
        (std::mem::size_of::<usize>() + 8 + 1) as f64
    }
    fn key_count(&self, n: usize) -> usize {
        if n >= 1000 { 100_000 } else { KEYS }
    }
}

struct Jump;

impl Subject for Jump {
    fn name(&self) -> String {
        "jump hash (jumpch)".into()
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        // Buckets are positions in the node list.
        let slots = u32::try_from(nodes.len()).expect("small n");
        keys.iter()
            .map(|k| nodes[jumpch::hash(Xxh3.hash(k), slots) as usize])
            .collect()
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        let nodes: Vec<usize> = (0..n).filter(|&i| i != down).collect();
        self.owners(&nodes, keys)
    }
    fn bytes_per_point(&self, _n: usize) -> f64 {
        // Nothing but the node list itself.
        std::mem::size_of::<usize>() as f64
    }
}

struct Anchor;

type AnchorTable = anchorhash::AnchorHash<u64, usize, BuildHasherDefault<PassThrough>>;

impl Anchor {
    fn build(nodes: &[usize], capacity: usize) -> AnchorTable {
        anchorhash::Builder::with_hasher(BuildHasherDefault::<PassThrough>::default())
            .with_resources(nodes.iter().copied())
            .build(u16::try_from(capacity).expect("capacity ≤ 65535"))
    }

    fn lookup_all(table: &AnchorTable, keys: &[Vec<u8>]) -> Owners {
        keys.iter()
            .map(|k| {
                table
                    .get_resource(Xxh3.hash(k))
                    .copied()
                    .unwrap_or(usize::MAX)
            })
            .collect()
    }
}

impl Subject for Anchor {
    fn name(&self) -> String {
        "anchorhash (capacity 2N)".into()
    }
    fn owners(&self, nodes: &[usize], keys: &[Vec<u8>]) -> Owners {
        Self::lookup_all(&Self::build(nodes, 2 * nodes.len().max(1)), keys)
    }
    fn owners_added(&self, n: usize, extra: usize, keys: &[Vec<u8>]) -> Owners {
        let mut table = Self::build(&all(n), 2 * n);
        table.add_resource(extra).expect("room for one more");
        Self::lookup_all(&table, keys)
    }
    fn owners_removed(&self, n: usize, gone: usize, keys: &[Vec<u8>]) -> Owners {
        let mut table = Self::build(&all(n), 2 * n);
        table.remove_resource(&gone).expect("a member");
        Self::lookup_all(&table, keys)
    }
    fn owners_flap(&self, n: usize, down: usize, keys: &[Vec<u8>]) -> Owners {
        self.owners_removed(n, down, keys)
    }
    fn bytes_per_point(&self, _n: usize) -> f64 {
        // Per bucket of capacity 2N: four u16 arrays (A, K, W, L) and the resource
        // map's (u16, usize) entry for the live half; per node that is twice the
        // arrays plus one entry.
        (2 * 4 * 2 + 2 + std::mem::size_of::<usize>() + 1) as f64
    }
}

fn balance(owners: &Owners, n: usize) -> (f64, f64) {
    let mut counts: HashMap<usize, u64> = HashMap::new();
    for o in owners {
        *counts.entry(*o).or_insert(0) += 1;
    }
    let mean = owners.len() as f64 / n as f64;
    let max = counts.values().copied().max().unwrap_or(0) as f64;
    let var = (0..n)
        .map(|i| (*counts.get(&i).unwrap_or(&0) as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    (max / mean, var.sqrt() / mean)
}

fn moved(a: &Owners, b: &Owners) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

fn moved_outside(a: &Owners, b: &Owners, node: usize) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, y)| **x != node && x != y)
        .count() as f64
        / a.len() as f64
}

/// Concurrent load under a skewed key mix: `100 × n` requests in flight at once, keys
/// drawn so that a few are hot (key `⌊1000 · u³⌋` for `u` uniform in `[0, 1)`, from a
/// fixed LCG). Returns max/mean of in-flight requests per node, with the ring alone and
/// with bounded loads (ε = 0.25) over it.
fn hot_keys(n: usize) -> (f64, f64) {
    let ring = HashRing::from_nodes(Xxh3, 160, ids(&all(n))).expect("ring");
    let rule = lb_core::BoundedLoad::default();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut plain = vec![0u64; n];
    let mut bounded = vec![0u64; n];
    let mut placed = 0u64;
    for _ in 0..100 * n {
        let key = format!("hot-{}", (1000.0 * uniform().powi(3)) as u64);
        if let Some(id) = ring.lookup(key.as_bytes()) {
            plain[index_of(id.as_str())] += 1;
        }
        let chosen = rule.select(&ring, key.as_bytes(), placed, n as u64, |node| {
            Some(bounded[index_of(node.id().as_str())])
        });
        if let Some(id) = chosen {
            bounded[index_of(id.as_str())] += 1;
            placed += 1;
        }
    }
    let max_mean = |loads: &[u64]| {
        let mean = loads.iter().sum::<u64>() as f64 / n as f64;
        loads.iter().copied().max().unwrap_or(0) as f64 / mean
    };
    (max_mean(&plain), max_mean(&bounded))
}

fn main() {
    println!("Concurrent load under a skewed key mix (100 x N in flight), max/mean per node:");
    println!("| N | ring 160 alone | ring 160 + bounded loads (1.25) |");
    println!("|---:|---:|---:|");
    for n in [10usize, 100, 1000] {
        let (plain, bounded) = hot_keys(n);
        println!("| {n} | {plain:.2} | {bounded:.2} |");
    }
    println!();
    let keys = keys(KEYS, 16);
    let subjects: Vec<Box<dyn Subject>> = vec![
        Box::new(Ring {
            label: "xxh3",
            hasher: Xxh3,
            points: 160,
        }),
        Box::new(Ring {
            label: "xxh3",
            hasher: Xxh3,
            points: 2000,
        }),
        Box::new(Ring {
            label: "nginx",
            hasher: Nginx,
            points: 160,
        }),
        Box::new(MaglevTable),
        Box::new(Pingora),
        Box::new(HashRingCrate),
        Box::new(Rendezvous),
        Box::new(Jump),
        Box::new(Anchor),
    ];
    println!(
        "| implementation | N | max/mean (1M keys) | CV (1M keys) | max/mean (exact share) | moved on add (ideal) | moved on remove (ideal) | other keys moved on flap | bytes/point (per node: last three) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [10usize, 100, 1000] {
        for s in &subjects {
            let keys = &keys[..s.key_count(n)];
            let base = s.owners(&all(n), keys);
            let (max_mean, cv) = balance(&base, n);
            // Averaged over TRIALS different nodes added, and removed.
            let added: f64 = (0..TRIALS)
                .map(|t| moved(&base, &s.owners_added(n, n + t, keys)))
                .sum::<f64>()
                / TRIALS as f64;
            let removed: f64 = (0..TRIALS)
                .map(|t| moved(&base, &s.owners_removed(n, t * n / TRIALS, keys)))
                .sum::<f64>()
                / TRIALS as f64;
            let flapped = s.owners_flap(n, n / 2, keys);
            let exact = s
                .share_max_mean(n)
                .map_or("n/a".to_string(), |v| format!("{v:.3}"));
            println!(
                "| {} | {n} | {max_mean:.3} | {cv:.3} | {exact} | {:.4} ({:.4}) | {:.4} ({:.4}) | {:.4} | {:.1} |",
                s.name(),
                added,
                1.0 / (n as f64 + 1.0),
                removed,
                1.0 / n as f64,
                moved_outside(&base, &flapped, n / 2),
                s.bytes_per_point(n),
            );
        }
    }
}
