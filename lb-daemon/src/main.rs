//! `lb-daemon [--config FILE] [--check]`: runs the load balancer.
//! `lb-daemon healthcheck [--config FILE]`: asks a running daemon's `GET /healthz`.
//!
//! Without `--config` it runs on the defaults: listens on `127.0.0.1:5000` and starts
//! three child-process replicas (`server1..3`) from the `replica-server` binary beside
//! it. `--check` validates the config and exits. SIGHUP re-reads the config file: a
//! valid one is applied (what can change live), an invalid one is rejected with the
//! reason and the running config stays. Logs go to stderr, as text or as JSON lines
//! (`log.format`); set `RUST_LOG` (e.g. `RUST_LOG=lb_daemon=debug`) to change the
//! level.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), a passing `--check` or a
//! healthy `healthcheck`; 1 when the daemon cannot start or the healthcheck fails;
//! 2 for an invalid config or usage.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lb_daemon::config::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// jemalloc with a background thread that hands freed memory back to the OS about
/// a second after a load peak: the same CPU per request as mimalloc on the data
/// plane, 40 % less idle memory, and RSS back within a few MiB of idle 10 s after a
/// `-c4096` run where mimalloc kept 30–37 MiB (BENCHMARKS.md, "Allocator"). Only the
/// binary sets it, so the library's tests keep their own counting allocators.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf`): purge from a background thread, dirty
/// pages after 1000 ms, no lazily-freed ("muzzy") stage.
#[allow(non_upper_case_globals, unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Log lines queued for the background writer at most.
const LOG_QUEUE_LINES: usize = 8192;

/// Consistent-hashing load balancer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (see the README's config reference); defaults apply without it.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Validate the config and exit (0 if valid, 2 if not).
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask the daemon of this config for `GET /healthz` (on `admin.listen`, else
    /// `listen`) and exit 0 when it answers 200 within 2 s, 1 otherwise: for
    /// Docker's HEALTHCHECK, Kubernetes probes and scripts.
    Healthcheck,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match &args.config {
        Some(path) => Config::load(path),
        None => Config::defaults(),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lb-daemon: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Healthcheck) = args.command {
        return healthcheck(&config);
    }
    // Lines are written by a background thread: a request that logs (the access log)
    // never waits on stderr. `flush` writes what is left when it is dropped. The
    // queue holds LOG_QUEUE_LINES (its slots are allocated up front: the default
    // 128,000 cost 5 MiB of idle RSS); past that, lines are dropped, not waited for.
    let (writer, flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(true)
        .thread_name("lb-log")
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if config.log.json {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    // The control plane (admin API, prober, runtime) runs here; the data plane's
    // workers are threads of their own, so one control thread is enough.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lb-control")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lb-daemon: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ran = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
        if let Some(path) = args.config.clone() {
            tokio::spawn(reload_on_sighup(path, reload_tx));
        }
        lb_daemon::run_with_reloads(config, shutdown, reloads).await
    });
    // The queued log lines first, so the error is the last line, after them.
    drop(flush);
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-daemon: {e}");
            ExitCode::from(1)
        }
    }
}

/// `lb-daemon healthcheck`: 0 when the daemon answers `GET /healthz` with 200.
fn healthcheck(config: &Config) -> ExitCode {
    match lb_daemon::healthcheck::probe(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-daemon healthcheck: {e}");
            ExitCode::from(1)
        }
    }
}

/// On SIGHUP, re-reads and validates `path`; a valid config is sent to the daemon, an
/// invalid one is rejected with the reason and the running config stays.
async fn reload_on_sighup(path: PathBuf, reloads: tokio::sync::mpsc::UnboundedSender<Config>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot install the SIGHUP handler; config reload is off");
            return;
        };
        while hup.recv().await.is_some() {
            match Config::load(&path) {
                Ok(config) => {
                    if reloads.send(config).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload rejected; the running config stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, reloads);
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}
