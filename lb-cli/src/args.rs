//! Command-line arguments (clap).

use clap::{Parser, Subcommand};

/// List, add and remove the replicas of an lb-daemon over its admin API.
#[derive(Debug, Parser)]
#[command(name = "lbctl", version, about)]
pub struct Args {
    /// Base URL of the daemon.
    #[arg(long, env = "LBCTL_URL", default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// Bearer token for `add` and `rm` (the daemon's `admin.token`).
    #[arg(long, env = "LBCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the daemon's JSON answer as received instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Give up on a call after this many milliseconds (starting replicas can take seconds).
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The admin calls.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the replicas (`GET /rep`).
    Rep,
    /// Each replica's state, address, uptime, requests and ring share (`GET /status`);
    /// with two or more URLs, whether those daemons route every key alike (their ring
    /// fingerprints), naming each one that does not (exit status 1).
    Status {
        /// Daemons to compare (base URLs); none: `--url`'s daemon, as a table.
        urls: Vec<String>,
    },
    /// Where a request with KEY goes now, and why: its position, owner and failover
    /// order with each replica's weight, rotation and in-flight requests (`GET /explain`).
    Explain {
        /// The request key (the value of `x-lb-key`, or whatever `key` reads).
        key: String,
    },
    /// Print a shell completion script, e.g. `lbctl completions bash > /etc/bash_completion.d/lbctl`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Start N replicas: the NAMEs given, then generated ones (`POST /add`).
    Add {
        /// How many replicas to start.
        #[arg(short)]
        n: usize,
        /// Hostnames for some or all of them.
        names: Vec<String>,
        /// Ring weights of the NAMEs, one per name (0..=256; default 1 each), e.g.
        /// `--weights 3,1`.
        #[arg(long, value_delimiter = ',')]
        weights: Vec<u32>,
    },
    /// Set one replica's ring weight, 0..=256 (`POST /weight`); 0 drains it: no new key
    /// goes to it and its requests in flight finish.
    Weight {
        /// The replica.
        name: String,
        /// Its new weight.
        weight: u32,
    },
    /// Load the daemon with GET requests and report latency and the split per replica.
    Bench(BenchArgs),
    /// Draw the A-1…A-4 analyses as PNG and SVG charts (distribution, scaling,
    /// failover, hash-functions).
    Analyze(AnalyzeArgs),
    /// Remove N replicas: the NAMEs given, then others the daemon picks (`DELETE /rm`).
    Rm {
        /// How many replicas to remove.
        #[arg(short)]
        n: usize,
        /// Hostnames to remove.
        names: Vec<String>,
    },
}

/// `lbctl bench` options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// `avalanche`: `-c` connections as fast as possible; `tsunami`: one request every
    /// `--interval`, on a fixed schedule (latency counted from the scheduled time).
    #[arg(long, default_value = "avalanche")]
    pub mode: String,
    /// Concurrent connections (avalanche) or worker connections (tsunami).
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// Tsunami pacing, e.g. `10ms`.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Stop after this long, e.g. `5s` (default 10s when --requests is not given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Keys: `random`, `fixed:K` or `zipf:S` (over 10,000 keys), sent in `x-lb-key`.
    #[arg(long, default_value = "random")]
    pub keys: String,
    /// Path requested.
    #[arg(long, default_value = "/home")]
    pub path: String,
    /// Write the full report as JSON to this file.
    #[arg(long = "json", value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
}

/// `lbctl analyze` options.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Which analysis.
    #[command(subcommand)]
    pub chart: Chart,
    /// Directory the `<chart>.png` and `<chart>.svg` files are written to.
    #[arg(long, global = true, default_value = ".")]
    pub out: std::path::PathBuf,
}

/// The analyses of `lbctl analyze`.
#[derive(Debug, Subcommand)]
pub enum Chart {
    /// requests per replica for N replicas (bar chart).
    Distribution {
        /// Replicas. Online, the daemon is scaled to this many and back afterwards.
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Requests (random keys).
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Hash the keys with lb-core here instead of sending them to the daemon.
        #[arg(long)]
        offline: bool,
    },
    /// mean, min and max requests per replica as N grows (line chart).
    Scaling {
        /// Smallest N.
        #[arg(long, default_value_t = 2)]
        from: usize,
        /// Largest N.
        #[arg(long, default_value_t = 6)]
        to: usize,
        /// Requests per N (random keys).
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Hash the keys with lb-core here instead of sending them to the daemon.
        #[arg(long)]
        offline: bool,
    },
    /// requests per second per replica while one replica is killed and respawned
    /// under paced load (timeline). Needs a running daemon.
    Failover {
        /// Shell command that kills the replica; `{replica}`, `{address}` and `{port}`
        /// are replaced, e.g. `docker kill {replica}` (Docker runtime, empty
        /// `name_prefix`) or `fuser -k -KILL {port}/tcp` (child processes, psmisc).
        #[arg(long)]
        kill_cmd: String,
        /// The replica to kill (default: the second one listed).
        #[arg(long)]
        victim: Option<String>,
        /// Paced requests per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Length of the timeline, seconds.
        #[arg(long, default_value_t = 12)]
        seconds: u32,
        /// When the kill command runs, seconds into the timeline.
        #[arg(long, default_value_t = 4)]
        kill_at: u32,
    },
    /// the distribution under xxh3, SHA-256 and MD5, and their lookup cost.
    HashFunctions {
        /// Replicas on each ring (offline; online, each daemon keeps the replicas it has).
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Requests (random keys) per hash function.
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Online: one daemon per hash function, as `NAME=URL` (repeat), each already
        /// configured with that `hash`. Default: the daemon at `--url`, under the hash
        /// it reports.
        #[arg(long = "daemon", value_name = "NAME=URL")]
        daemons: Vec<String>,
        /// Hash the keys with lb-core here for all three functions.
        #[arg(long)]
        offline: bool,
    },
}
