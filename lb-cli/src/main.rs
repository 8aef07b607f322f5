//! `lbctl [--url URL] [--json] rep | status [URL...] | explain KEY | add -n N [NAME...] |
//! rm -n N [NAME...] | bench | analyze | completions SHELL`
//!
//! Lists, adds and removes the replicas of an lb-daemon over its admin API. Prints a
//! table by default and the daemon's JSON answer with `--json`.
//!
//! Exit codes: 0 success; 1 the daemon refused the call (its reason on stderr), or the
//! daemons `status URL URL...` compares do not all agree;
//! 2 the daemon could not be reached or answered something else, or bad usage.

mod agreement;
mod analyze;
mod args;
mod bench;
mod client;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::args::{Args, Command};
use crate::client::{AdminClient, ClientError};

fn main() -> ExitCode {
    let args = Args::parse();
    let client = AdminClient::new(&args.url, Duration::from_millis(args.timeout_ms))
        .with_token(args.token.clone());
    if let Command::Completions { shell } = &args.command {
        clap_complete::generate(
            *shell,
            &mut Args::command(),
            "lbctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    if let Command::Status { urls } = &args.command {
        return match urls.as_slice() {
            [] => status_command(&client, args.json),
            [one] => status_command(&client_of(&args, one), args.json),
            several => agreement_command(&args, several),
        };
    }
    if let Command::Explain { key } = &args.command {
        return show(client.explain(key), args.json, table::explanation);
    }
    if let Command::Bench(bench_args) = &args.command {
        return bench_command(&args.url, bench_args);
    }
    if let Command::Analyze(analyze_args) = &args.command {
        return match analyze::run(&args.url, &client, analyze_args) {
            Ok((files, summary)) => {
                print!("{summary}");
                if !summary.ends_with('\n') {
                    println!();
                }
                for file in files {
                    println!("wrote {}", file.display());
                }
                ExitCode::SUCCESS
            }
            Err(reason) => {
                eprintln!("lbctl: {reason}");
                ExitCode::from(2)
            }
        };
    }
    let result = match &args.command {
        Command::Rep => client.replicas(),
        Command::Add { n, names, weights } => client.add(*n, names, weights),
        Command::Weight { name, weight } => client.set_weight(name, *weight),
        Command::Rm { n, names } => client.remove(*n, names),
        Command::Bench(_)
        | Command::Analyze(_)
        | Command::Status { .. }
        | Command::Explain { .. }
        | Command::Completions { .. } => {
            return ExitCode::from(2);
        }
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

/// A client of the daemon at `url` with `args`' token and timeout.
fn client_of(args: &Args, url: &str) -> AdminClient {
    AdminClient::new(url, Duration::from_millis(args.timeout_ms)).with_token(args.token.clone())
}

/// `lbctl status URL URL...`: whether the daemons agree; exit status 0 when they all
/// show one fingerprint, 1 when one differs or does not answer.
fn agreement_command(args: &Args, urls: &[String]) -> ExitCode {
    let answers = urls
        .iter()
        .map(|url| {
            let answer = client_of(args, url).status().map_err(|e| e.to_string());
            (url.clone(), answer)
        })
        .collect();
    let agreement = agreement::compare(answers);
    if args.json {
        match serde_json::to_string_pretty(&agreement) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("lbctl: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", agreement::render(&agreement));
    }
    if agreement.agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `lbctl status`: the `/status` document as a table, or as JSON with `--json`.
fn status_command(client: &AdminClient, json: bool) -> ExitCode {
    show(client.status(), json, table::status)
}

/// Prints a document the daemon answered: pretty JSON with `--json`, else `render`'s
/// table; the daemon's refusal on stderr (exit 1), any other failure likewise (exit 2).
fn show<T: serde::Serialize>(
    answer: Result<T, ClientError>,
    json: bool,
    render: impl Fn(&T) -> String,
) -> ExitCode {
    match answer {
        Ok(document) if json => match serde_json::to_string_pretty(&document) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lbctl: {e}");
                ExitCode::from(2)
            }
        },
        Ok(document) => {
            print!("{}", render(&document));
            ExitCode::SUCCESS
        }
        Err(ClientError::Failure { message, .. }) => {
            eprintln!("lbctl: {message}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lbctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// `lbctl bench`: runs, prints the report, writes `--json FILE`.
fn bench_command(url: &str, args: &args::BenchArgs) -> ExitCode {
    let report = match bench::run(url, args) {
        Ok(report) => report,
        Err(reason) => {
            eprintln!("lbctl: {reason}");
            return ExitCode::from(2);
        }
    };
    print!("{}", bench::render(&report));
    if let Some(path) = &args.report {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("lbctl: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.ok == 0 {
        eprintln!("lbctl: no request succeeded; is the daemon at {url}?");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
