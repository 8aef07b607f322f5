//! Why a bench could not run.

/// Why `lbctl bench` (or an online analysis that drives it) could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option that cannot be used; the message names the option and what it takes.
    #[error("{0}")]
    Usage(String),
    /// A worker could not build its tokio runtime (out of file descriptors, for one).
    #[error("bench worker {worker}: no tokio runtime: {source}")]
    Runtime {
        /// The worker's index.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("a bench worker panicked")]
    WorkerPanicked,
}
