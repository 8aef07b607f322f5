//! Why an analysis stopped.

use std::path::PathBuf;

use crate::bench::BenchError;
use crate::client::ClientError;

/// Why `lbctl analyze` could not measure or draw.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// An option out of its range; the message names the option and the range.
    #[error("{0}")]
    Usage(String),
    /// A call to a daemon's admin API failed or was refused.
    #[error("{call}: {source}")]
    Daemon {
        /// The call, e.g. `GET http://127.0.0.1:5000/status`.
        call: String,
        /// What the client saw.
        #[source]
        source: ClientError,
    },
    /// Putting the daemon back to its replicas failed or left other ones.
    #[error("could not put the daemon back to its {want} replicas: {reason}")]
    NotRestored {
        /// How many replicas it had.
        want: usize,
        /// What went wrong.
        reason: Box<AnalyzeError>,
    },
    /// The daemon lists other replicas than it had before the analysis.
    #[error("after restoring, the daemon lists {now:?}, not the original {want:?}")]
    OtherReplicas {
        /// What it lists.
        now: Vec<String>,
        /// What it had.
        want: Vec<String>,
    },
    /// Too few requests were answered with 2xx for the counts to mean anything.
    #[error(
        "only {ok} of {requests} requests to {url} succeeded ({non_2xx} non-2xx, {socket_errors} socket errors)"
    )]
    TooFewAnswers {
        /// The daemon.
        url: String,
        /// Requests sent.
        requests: u64,
        /// 2xx answers.
        ok: u64,
        /// Other answers.
        non_2xx: u64,
        /// Connections that failed.
        socket_errors: u64,
    },
    /// The load could not be sent.
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// lb-core refused the offline ring.
    #[error("invalid ring: {0}")]
    Ring(#[from] lb_core::Error),
    /// A chart file or its folder could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS's or plotters' reason.
        reason: String,
    },
    /// plotters could not draw a chart.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    /// The font compiled into lbctl does not load.
    #[error("the embedded DejaVu Sans font does not load")]
    Font,
    /// A load thread panicked.
    #[error("a load worker panicked")]
    WorkerPanicked,
    /// The `--kill-cmd` could not be started.
    #[error("cannot run the kill command `{command}`: {source}")]
    KillNotRun {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `--kill-cmd` exited with failure.
    #[error("the kill command `{command}` exited with {status}: {stderr}")]
    KillFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}
