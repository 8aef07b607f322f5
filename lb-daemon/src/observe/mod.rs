//! What an operator sees of a running daemon: [`metrics`] (Prometheus text on
//! `/metrics`), [`status`] (the `/status` document) and [`dashboard`] (the live page on
//! `/dashboard` that polls it). Logs are `tracing` events from every module.

pub mod access_log;
pub mod dashboard;
pub mod explain;
pub mod healthcheck;
pub mod metrics;
pub mod status;
