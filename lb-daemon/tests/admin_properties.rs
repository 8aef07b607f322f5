//! Random sequences of admin calls against a pool (static runtime: no processes):
//! a refused call changes nothing; an accepted one changes exactly what it says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lb_core::{HashAlgorithm, HealthConfig, NodeId};
use lb_daemon::testing::{PoolSettings, ReplicaPool, StaticRuntime};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Call {
    Add {
        n: usize,
        names: Vec<u8>,
        with_addresses: bool,
    },
    Rm {
        n: usize,
        names: Vec<u8>,
    },
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (
            0usize..6,
            prop::collection::vec(0u8..8, 0..5),
            any::<bool>()
        )
            .prop_map(|(n, names, with_addresses)| Call::Add {
                n,
                names,
                with_addresses
            }),
        (0usize..7, prop::collection::vec(0u8..8, 0..5))
            .prop_map(|(n, names)| Call::Rm { n, names }),
    ]
}

fn name(i: u8) -> NodeId {
    NodeId::new(format!("h{i}")).unwrap()
}

fn pool() -> Arc<ReplicaPool> {
    let settings = PoolSettings {
        hash: HashAlgorithm::Xxh3,
        points_per_weight: 16,
        routing: Default::default(),
        protocol: Default::default(),
        health: HealthConfig::default(),
        max_per_call: 4,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
        fresh_names: false,
        drain_timeout: Duration::ZERO,
        state_file: None,
        max_fails: 3,
        metrics: Default::default(),
    };
    ReplicaPool::new(settings, Arc::new(StaticRuntime::new(Vec::new()))).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn refused_calls_change_nothing_and_accepted_calls_do_what_they_say(calls in prop::collection::vec(call(), 1..25)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let pool = pool();
            for call in calls {
                let before = pool.names();
                let ring_before = pool.snapshot().ring.len();
                match call {
                    Call::Add { n, names, with_addresses } => {
                        let names: Vec<NodeId> = names.into_iter().map(name).collect();
                        let addresses: Vec<SocketAddr> = if with_addresses {
                            (0..names.len()).map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16))).collect()
                        } else {
                            Vec::new()
                        };
                        match pool.add(n, names.clone(), addresses, Vec::new()).await {
                            Ok(added) => {
                                prop_assert_eq!(added.len(), n);
                                prop_assert_eq!(&added[..names.len()], &names[..]);
                                let mut want = before.clone();
                                want.extend(added);
                                prop_assert_eq!(pool.names(), want);
                            }
                            Err(_) => {
                                prop_assert_eq!(pool.names(), before);
                                prop_assert_eq!(pool.snapshot().ring.len(), ring_before);
                            }
                        }
                    }
                    Call::Rm { n, names } => {
                        let names: Vec<NodeId> = names.into_iter().map(name).collect();
                        match pool.remove(n, names.clone()).await {
                            Ok(removed) => {
                                // n above the pool's size removes all of it (the seed's /rm).
                                prop_assert_eq!(removed.len(), n.min(before.len()));
                                prop_assert!(names.iter().all(|x| removed.contains(x)));
                                let want: Vec<NodeId> = before.iter().filter(|x| !removed.contains(x)).cloned().collect();
                                prop_assert_eq!(pool.names(), want);
                            }
                            Err(_) => {
                                prop_assert_eq!(pool.names(), before);
                                prop_assert_eq!(pool.snapshot().ring.len(), ring_before);
                            }
                        }
                    }
                }
                prop_assert_eq!(pool.snapshot().ring.len(), pool.names().len());
            }
            Ok(())
        })?;
    }
}
