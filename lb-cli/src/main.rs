//! `lbctl [--url URL] [--json] rep | add -n N [NAME...] | rm -n N [NAME...]`
//!
//! Lists, adds and removes the replicas of an lb-daemon over its admin API. Prints a
//! table by default and the daemon's JSON answer with `--json`.
//!
//! Exit codes: 0 success; 1 the daemon refused the call (its reason on stderr);
//! 2 the daemon could not be reached or answered something else, or bad usage.

mod args;
mod client;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::args::{Args, Command};
use crate::client::{AdminClient, ClientError};

fn main() -> ExitCode {
    let args = Args::parse();
    let client = AdminClient::new(&args.url, Duration::from_millis(args.timeout_ms))
        .with_token(args.token.clone());
    let result = match &args.command {
        Command::Rep => client.replicas(),
        Command::Add { n, names } => client.add(*n, names),
        Command::Rm { n, names } => client.remove(*n, names),
    };
    match result {
        Ok(replicas) if args.json => {
            println!("{}", replicas.raw);
            ExitCode::SUCCESS
        }
        Ok(replicas) => {
            print!("{}", table::replicas(&replicas.names));
            ExitCode::SUCCESS
        }
        Err(ClientError::Failure { raw, message, .. }) => {
            if args.json {
                println!("{raw}");
            }
            eprintln!("lbctl: {message}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lbctl: {e}");
            ExitCode::from(2)
        }
    }
}
