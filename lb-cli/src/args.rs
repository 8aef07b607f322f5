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
    #[arg(long, global = true)]
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
    /// Start N replicas: the NAMEs given, then generated ones (`POST /add`).
    Add {
        /// How many replicas to start.
        #[arg(short)]
        n: u64,
        /// Hostnames for some or all of them.
        names: Vec<String>,
    },
    /// Remove N replicas: the NAMEs given, then others the daemon picks (`DELETE /rm`).
    Rm {
        /// How many replicas to remove.
        #[arg(short)]
        n: u64,
        /// Hostnames to remove.
        names: Vec<String>,
    },
}
