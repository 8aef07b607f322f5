//! Replacing a member's failed instance: the respawn job of one replica.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lb_core::NodeId;

use super::ReplicaPool;
use crate::runtime::{Instance, InstanceId};

/// The respawn of one member: stop the old instance, wait `delay`, start a new one
/// under the member's name (or a fresh one with `respawn.naming = "fresh"`), retrying
/// with doubling backoff until it is ready or the member was removed.
#[derive(Debug)]
pub(super) struct Respawn {
    /// The pool the member belongs to.
    pub(super) pool: Arc<ReplicaPool>,
    /// The member.
    pub(super) name: NodeId,
    /// The member's sequence number: the job gives up when `name` is removed, even
    /// if a new member takes the name meanwhile.
    pub(super) seq: u64,
    /// Its failed instance, stopped first.
    pub(super) old: Option<InstanceId>,
    /// Backoff before the first start.
    pub(super) delay: Duration,
}

impl Respawn {
    /// Replaces the instance of `name`: stops the old one, waits `delay`, starts a new
    /// one under the same hostname, retrying with backoff until it is ready or the
    /// member is removed.
    pub(super) async fn run(self) {
        let Self {
            pool,
            name,
            seq,
            old,
            mut delay,
        } = self;
        if let Some(old) = old {
            pool.runtime.stop(old).await;
        }
        loop {
            if !delay.is_zero() {
                tracing::info!(replica = %name, delay_ms = delay.as_millis() as u64, "respawn backing off");
                tokio::time::sleep(delay).await;
            }
            if pool.shutting_down.load(Ordering::SeqCst) || !pool.lock().is_generation(&name, seq) {
                return;
            }
            let target = if pool.settings.fresh_names {
                pool.lock().fresh_name()
            } else {
                name.clone()
            };
            match pool.runtime.spawn(&target, None).await {
                Ok(instance) => {
                    if !install(&pool, &name, seq, &target, instance) {
                        pool.runtime.stop(instance.id).await;
                    }
                    return;
                }
                Err(e) => {
                    if target != name {
                        pool.lock().release(&target);
                    }
                    delay =
                        (delay * 2).clamp(pool.settings.backoff_initial, pool.settings.backoff_max);
                    tracing::warn!(replica = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "respawn failed");
                }
            }
        }
    }
}

/// Puts a respawned `instance` in place of `name`'s old one; false if the member
/// was removed (even if added again since) or the daemon is stopping, and the
/// instance is unwanted.
fn install(
    pool: &ReplicaPool,
    name: &NodeId,
    seq: u64,
    target: &NodeId,
    instance: Instance,
) -> bool {
    let mut members = pool.lock();
    if pool.shutting_down.load(Ordering::SeqCst)
        || !members.replace(name, seq, target, instance, Instant::now())
    {
        return false;
    }
    if target != name {
        tracing::info!(old = %name, replica = %target, addr = %instance.addr, instance = %instance.id, "replica respawned under a new name");
    } else {
        tracing::info!(replica = %name, addr = %instance.addr, instance = %instance.id, "replica respawned");
    }
    pool.publish(&mut members);
    pool.persist(&members);
    pool.settings.metrics.respawns.inc();
    true
}
