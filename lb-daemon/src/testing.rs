//! What the integration tests and the fuzz targets reach below [`run`](crate::run):
//! the lean HTTP/1 path's parsers of untrusted bytes (for `tests/h1_differential.rs`
//! and the `h1_parse` fuzz target) and the replica pool on the static runtime (for
//! `tests/admin_properties.rs`). Everything else of the daemon is private to it.
//!
//! Not a stable API: embedders use [`run`](crate::run) and [`config`](crate::config).

pub use crate::control_plane::pool::{AdminError, PoolSettings, ReplicaPool};
pub use crate::data_plane::h1::{chunked, request, response};
pub use crate::runtime::fixed::StaticRuntime;
