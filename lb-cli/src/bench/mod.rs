//! `lbctl bench`: a load generator against the daemon.
//!
//! - `avalanche`: `-c` connections, each sending the next request as soon as the last
//!   one is answered, until `--requests` or `--duration`.
//! - `tsunami`: request `i` is due at `start + i × interval` (open loop). `-c` worker
//!   connections take the next due request; its latency is measured from the time it
//!   was *due*, so a slow daemon cannot hide its queueing (no coordinated omission).
//!   Each send leaves within a few µs of its schedule (a thread sleep, then a spin
//!   for the last 200 µs), not up to 1 ms late as a timer tick would make it; the
//!   report gives that send lag beside the latencies and warns when it exceeds 10 %
//!   of the median. (Sparse requests still cost more than back-to-back ones: a
//!   daemon and a replica idle between requests must be woken for each.)
//!
//! Every request is `GET <path>` with a key in `x-lb-key`; the replica comes from the
//! daemon's `X-LB-Replica` header.

pub mod error;
pub mod keys;
pub mod stats;
pub mod worker;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::BenchArgs;
pub use error::BenchError;
use keys::Keys;
use stats::{Latencies, Summary};

/// The full report (`--json FILE`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// `avalanche` or `tsunami`.
    pub mode: String,
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Answers that were not 2xx.
    pub non_2xx: u64,
    /// Requests that got no HTTP answer.
    pub socket_errors: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Requests per second.
    pub rate: f64,
    /// 2xx answers per replica.
    pub per_replica: BTreeMap<String, u64>,
    /// Latency of 2xx answers (tsunami: from the time each request was due).
    pub latency: Summary,
    /// Tsunami: how late the generator itself sent each request (its own lag, which
    /// the latencies include); `None` for avalanche.
    pub send_lag: Option<Summary>,
}

/// One worker's tallies.
#[derive(Debug, Default)]
pub struct Tally {
    ok: u64,
    non_2xx: u64,
    errors: u64,
    per_replica: BTreeMap<String, u64>,
    latencies: Latencies,
    send_lag: Latencies,
}

/// Runs the bench against `base` (e.g. `http://127.0.0.1:5000`).
///
/// # Errors
/// A one-line reason for bad options.
pub fn run(base: &str, args: &BenchArgs) -> Result<Report, BenchError> {
    let keys: Keys = args.keys.parse()?;
    let tsunami = match args.mode.as_str() {
        "avalanche" => false,
        "tsunami" => true,
        other => {
            return Err(BenchError::Usage(format!(
                "--mode {other:?}: expected avalanche or tsunami"
            )));
        }
    };
    if args.connections == 0 || args.connections > 1024 {
        return Err(BenchError::Usage("-c must be between 1 and 1024".into()));
    }
    if !args.path.starts_with('/') || args.path.parse::<hyper::Uri>().is_err() {
        return Err(BenchError::Usage(format!(
            "--path {:?} must be a path like /home",
            args.path
        )));
    }
    if tsunami && args.interval.is_zero() {
        return Err(BenchError::Usage("--interval must be above 0".into()));
    }
    let duration = match (args.requests, args.duration) {
        (None, None) => Some(Duration::from_secs(10)),
        (_, d) => d,
    };
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let progress = progress_bar(args.requests, duration);
    let start = Instant::now();
    let plan = Arc::new(worker::Plan {
        authority: worker::authority(base)?,
        path: args.path.clone(),
        keys,
        interval: tsunami.then_some(args.interval),
        start,
        deadline: duration.map(|d| start + d),
        limit: args.requests.unwrap_or(u64::MAX),
        next,
        done: progress.as_ref().map(|_| Arc::clone(&done)),
    });
    let workers: Vec<_> = (0..args.connections)
        .map(|w| {
            let plan = Arc::clone(&plan);
            std::thread::spawn(move || worker::run(w, plan))
        })
        .collect();
    let mut total = Tally::default();
    while !workers.iter().all(|w| w.is_finished()) {
        if let Some(bar) = &progress {
            bar.set_position(done.load(Ordering::Relaxed));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for worker in workers {
        let tally = worker.join().map_err(|_| BenchError::WorkerPanicked)??;
        total.ok += tally.ok;
        total.non_2xx += tally.non_2xx;
        total.errors += tally.errors;
        total.latencies.merge(&tally.latencies);
        total.send_lag.merge(&tally.send_lag);
        for (replica, n) in tally.per_replica {
            *total.per_replica.entry(replica).or_insert(0) += n;
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let seconds = start.elapsed().as_secs_f64();
    let requests = total.ok + total.non_2xx + total.errors;
    Ok(Report {
        mode: args.mode.clone(),
        requests,
        ok: total.ok,
        non_2xx: total.non_2xx,
        socket_errors: total.errors,
        seconds,
        rate: requests as f64 / seconds.max(1e-9),
        per_replica: total.per_replica,
        latency: total.latencies.summary(),
        send_lag: tsunami.then(|| total.send_lag.summary()),
    })
}

/// A progress bar on stderr, only when it is a terminal.
fn progress_bar(
    requests: Option<u64>,
    duration: Option<Duration>,
) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match requests {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Some(d) = duration {
        bar.set_message(format!("for {}", humantime::format_duration(d)));
    }
    Some(bar)
}

/// The human-readable report.
pub fn render(report: &Report) -> String {
    let l = &report.latency;
    let mut out = format!(
        "{} requests in {:.2} s ({:.0} req/s): {} ok, {} non-2xx, {} socket errors\n",
        report.requests,
        report.seconds,
        report.rate,
        report.ok,
        report.non_2xx,
        report.socket_errors
    );
    out.push_str("REPLICA            REQUESTS  SHARE\n");
    for (replica, n) in &report.per_replica {
        let share = *n as f64 / report.ok.max(1) as f64 * 100.0;
        out.push_str(&format!("{replica:<18} {n:>8}  {share:>5.1}%\n"));
    }
    out.push_str(&format!(
        "latency ms: min {:.2}  mean {:.2}  median {:.2}  mode {:.1}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
        l.min_ms, l.mean_ms, l.median_ms, l.mode_ms, l.p90_ms, l.p99_ms, l.max_ms
    ));
    if let Some(lag) = &report.send_lag {
        out.push_str(&format!(
            "send lag ms (the generator's own): median {:.3}  p99 {:.3}\n",
            lag.median_ms, lag.p99_ms
        ));
        if lag.median_ms > 0.1 * l.median_ms {
            out.push_str(&format!(
                "warning: requests left {:.3} ms late (median), more than 10 % of the median latency: \
                 the latencies above include the generator's own delay; use fewer connections or a longer --interval\n",
                lag.median_ms
            ));
        }
    }
    out
}
