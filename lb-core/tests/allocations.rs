//! Lookups allocate nothing: counted with a global allocator that tallies every
//! allocation made on this test's thread.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[cfg(feature = "nginx")]
use lb_core::Nginx;
use lb_core::{BoundedLoad, HashAlgorithm, HashRing, Maglev, NodeId, Xxh3};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn nodes(n: usize) -> Vec<(NodeId, u32)> {
    (0..n)
        .map(|i| {
            (
                NodeId::new(format!("10.0.{}.{}:8080", i / 250, i % 250)).unwrap(),
                1 + (i % 3) as u32,
            )
        })
        .collect()
}

#[test]
fn lookups_candidates_and_bounded_selection_do_not_allocate() {
    let ring = HashRing::from_nodes(Xxh3, 160, nodes(1000)).unwrap();
    #[cfg(feature = "nginx")]
    let nginx = HashRing::from_nodes(Nginx, 160, nodes(100)).unwrap();
    let runtime = HashRing::from_nodes(HashAlgorithm::Xxh3, 160, nodes(10)).unwrap();
    let maglev = Maglev::from_nodes(Xxh3, 65_537, nodes(1000)).unwrap();
    let rule = BoundedLoad::default();
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("user-{i:011}").into_bytes())
        .collect();
    let mut found = 0usize;
    let count = allocations_in(|| {
        for key in &keys {
            found += usize::from(ring.lookup(key).is_some());
            #[cfg(feature = "nginx")]
            {
                found += usize::from(nginx.lookup(key).is_some());
            }
            found += usize::from(runtime.lookup(key).is_some());
            found += usize::from(maglev.lookup(key).is_some());
            found += ring.candidates(key).take(3).count();
            found += maglev.candidates(key).take(3).count();
            found += usize::from(
                ring.lookup_with(key, |id| !id.as_str().starts_with("10.0.0."))
                    .is_some(),
            );
            found += usize::from(
                rule.select(&maglev, key, 10, maglev.total_weight(), |_| Some(0))
                    .is_some(),
            );
        }
    });
    assert_eq!(count, 0, "lookups allocated {count} times");
    let tables = if cfg!(feature = "nginx") { 4 } else { 3 };
    assert_eq!(found, keys.len() * (tables + 3 + 3 + 1 + 1));
}
