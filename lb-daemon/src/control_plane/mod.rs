//! The control plane: everything that changes which replicas exist and which of them
//! take traffic, on the daemon's own multi-thread tokio runtime, off the request path.
//!
//! - [`admin_api`]: `/add`, `/rm`, `/rep` (shapes in the `lb-api` crate);
//!   [`admin_listener`]: the `admin.listen` listener and [`admin_listener::App`],
//!   which answers admin and observation paths wherever they arrive.
//! - [`pool`]: the replica pool: membership, health (heartbeat results and passive
//!   outcomes through rise/fall), respawn; the only publisher of routing snapshots.
//! - [`prober`]: heartbeats of every replica; [`grpc_health`]: the gRPC health check's
//!   messages.
//! - [`state_file`]: the replica set saved on every change, so a restarted daemon
//!   finds its replicas again.

pub mod admin_api;
pub mod admin_listener;
pub mod grpc_health;
pub mod pool;
pub mod prober;
pub mod state_file;
