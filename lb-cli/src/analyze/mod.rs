//! `lbctl analyze`: the A-1…A-4 analyses as PNG and SVG charts.
//!
//! | chart | shows | sources |
//! |---|---|---|
//! | `distribution` (A-1) | requests per replica for N replicas, against the even share | daemon or `--offline` |
//! | `scaling` (A-2) | mean and min–max requests per replica for N = 2…6 | daemon or `--offline` |
//! | `failover` (A-3) | requests/s per replica while one is killed and respawned | daemon |
//! | `hash-functions` (A-4) | the distribution under xxh3, SHA-256, MD5 and their lookup cost | daemons or `--offline` |
//!
//! Online, requests are `GET /home` with random keys in `x-lb-key`, and the replica
//! that answered is read from `X-LB-Replica`; `distribution` and `scaling` set the
//! daemon's replica count through `/add` and `/rm` and put it back afterwards.
//! Offline, the same kind of keys (seeded, so every run draws the same chart) are looked
//! up on lb-core rings of `server1..serverN` with 160 points each, as the daemon
//! builds them.

pub mod chart;
pub mod error;
pub mod failover;
pub mod sample;
pub mod scaled;

use std::path::PathBuf;

use lb_core::HashAlgorithm;

use crate::args::{AnalyzeArgs, Chart};
use crate::client::AdminClient;
use chart::{Bars, Panels, Spread};
pub use error::AnalyzeError;
use sample::Counts;
use scaled::Scaled;

/// Largest N the analyses accept.
const MAX_REPLICAS: usize = 64;
/// Most requests per measurement.
const MAX_REQUESTS: u64 = 10_000_000;

/// Runs the analysis `args` asks for; returns the files written and a summary.
///
/// # Errors
/// A one-line reason: bad options, an unreachable or refusing daemon, unwritable files.
pub fn run(
    url: &str,
    client: &AdminClient,
    args: &AnalyzeArgs,
) -> Result<(Vec<PathBuf>, String), AnalyzeError> {
    let url = url.trim_end_matches('/');
    match &args.chart {
        Chart::Distribution {
            replicas,
            requests,
            offline,
        } => {
            check(*replicas, *requests)?;
            let (counts, source) = if *offline {
                let ring = sample::ring(HashAlgorithm::Xxh3, *replicas)?;
                (
                    sample::offline(&ring, *requests),
                    "lb-core xxh3 ring".to_string(),
                )
            } else {
                let mut scaled = Scaled::new(client)?;
                scaled.to(*replicas)?;
                let counts = sample::online(url, *requests)?;
                let status = daemon_status(url)?;
                scaled.restore()?;
                (
                    padded_with(counts, &status.replicas),
                    format!("lb-daemon, hash {}", status.hash),
                )
            };
            let summary = describe(&counts);
            let bars = distribution_bars(
                format!(
                    "A-1 · Requests per replica, N = {replicas} ({} random keys, {source})",
                    thousands(*requests)
                ),
                &counts,
            );
            Ok((chart::save(&bars, &args.out, "distribution")?, summary))
        }
        Chart::Scaling {
            from,
            to,
            requests,
            offline,
        } => {
            if *from == 0 || from > to {
                return Err(AnalyzeError::Usage(
                    "--from must be at least 1 and at most --to".into(),
                ));
            }
            check(*to, *requests)?;
            let mut points = Vec::new();
            let mut summary = String::new();
            let mut scaled = if *offline {
                None
            } else {
                Some(Scaled::new(client)?)
            };
            for n in *from..=*to {
                let counts = match &mut scaled {
                    None => sample::offline(&sample::ring(HashAlgorithm::Xxh3, n)?, *requests),
                    Some(scaled) => {
                        scaled.to(n)?;
                        let counts = sample::online(url, *requests)?;
                        padded_with(counts, &daemon_status(url)?.replicas)
                    }
                };
                let values: Vec<f64> = counts.iter().map(|(_, c)| *c as f64).collect();
                let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = values.iter().copied().fold(0.0, f64::max);
                summary.push_str(&format!("N = {n}: {}\n", describe(&counts)));
                points.push((n, min, mean, max));
            }
            let source = match scaled {
                None => "lb-core xxh3 rings".to_string(),
                Some(mut scaled) => {
                    scaled.restore()?;
                    format!("lb-daemon, hash {}", daemon_status(url)?.hash)
                }
            };
            let spread = Spread {
                title: format!(
                    "A-2 · Load per replica as N grows ({} random keys per N, {source})",
                    thousands(*requests)
                ),
                points,
            };
            Ok((chart::save(&spread, &args.out, "scaling")?, summary))
        }
        Chart::Failover {
            kill_cmd,
            victim,
            rate,
            seconds,
            kill_at,
        } => {
            let measured = failover::run(&failover::Plan {
                url: url.to_string(),
                kill_cmd: kill_cmd.clone(),
                victim: victim.clone(),
                rate: *rate,
                seconds: *seconds,
                kill_at: *kill_at,
            })?;
            Ok((
                chart::save(&measured.timeline, &args.out, "failover")?,
                measured.summary,
            ))
        }
        Chart::HashFunctions {
            replicas,
            requests,
            daemons,
            offline,
        } => {
            check(*replicas, *requests)?;
            let sources: Vec<(String, Counts)> = if *offline {
                [
                    HashAlgorithm::Xxh3,
                    HashAlgorithm::Sha256,
                    HashAlgorithm::Md5,
                ]
                .into_iter()
                .map(|hash| {
                    let ring = sample::ring(hash, *replicas)?;
                    Ok((hash.name().to_string(), sample::offline(&ring, *requests)))
                })
                .collect::<Result<_, AnalyzeError>>()?
            } else {
                let targets = if daemons.is_empty() {
                    vec![(daemon_status(url)?.hash, url.to_string())]
                } else {
                    daemons
                        .iter()
                        .map(|d| parse_daemon(d))
                        .collect::<Result<_, _>>()?
                };
                targets
                    .into_iter()
                    .map(|(name, target)| {
                        let counts = sample::online(&target, *requests)?;
                        Ok((name, padded_with(counts, &daemon_status(&target)?.replicas)))
                    })
                    .collect::<Result<_, AnalyzeError>>()?
            };
            let mut panels = Vec::new();
            let mut costs = Vec::new();
            let mut summary = String::new();
            for (name, counts) in &sources {
                summary.push_str(&format!("{name}: {}", describe(counts)));
                let title = format!("{name}: max/mean {:.3}", max_over_mean(counts));
                panels.push(distribution_bars(title, counts));
                if let Ok(hash) = name.parse::<HashAlgorithm>() {
                    let ns = sample::lookup_ns(&sample::ring(hash, counts.len().max(1))?);
                    summary.push_str(&format!(", lookup {ns:.1} ns"));
                    costs.push((name.clone(), ns));
                }
                summary.push('\n');
            }
            panels.push(Bars {
                title: "lookup cost (lb-core, this machine)".into(),
                y_desc: "ns per lookup".into(),
                bars: costs,
                label: |v, _| format!("{v:.1} ns"),
                ideal: None,
            });
            let where_from = if *offline {
                "lb-core rings"
            } else {
                "through lb-daemon"
            };
            let panels = Panels {
                title: format!(
                    "A-4 · Hash functions: requests per replica ({} random keys each, {where_from}, 160 points per replica)",
                    thousands(*requests)
                ),
                panels,
            };
            Ok((chart::save(&panels, &args.out, "hash-functions")?, summary))
        }
    }
}

fn check(replicas: usize, requests: u64) -> Result<(), AnalyzeError> {
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(AnalyzeError::Usage(format!(
            "use 1 to {MAX_REPLICAS} replicas, not {replicas}"
        )));
    }
    if !(1..=MAX_REQUESTS).contains(&requests) {
        return Err(AnalyzeError::Usage(format!(
            "use 1 to {MAX_REQUESTS} requests, not {requests}"
        )));
    }
    Ok(())
}

/// `NAME=URL`.
fn parse_daemon(spec: &str) -> Result<(String, String), AnalyzeError> {
    match spec.split_once('=') {
        Some((name, url)) if !name.is_empty() && url.starts_with("http") => {
            Ok((name.to_string(), url.trim_end_matches('/').to_string()))
        }
        _ => Err(AnalyzeError::Usage(format!(
            "--daemon {spec:?}: expected NAME=http://host:port"
        ))),
    }
}

/// What an online analysis needs from the daemon at `url`'s `GET /status`: its hash
/// function and its replicas' names (to list those that got no request), asked with a
/// 10 s timeout.
struct DaemonStatus {
    hash: String,
    replicas: Vec<String>,
}

fn daemon_status(url: &str) -> Result<DaemonStatus, AnalyzeError> {
    let document = AdminClient::new(url, std::time::Duration::from_secs(10))
        .status()
        .map_err(|source| AnalyzeError::Daemon {
            call: format!("GET {url}/status"),
            source,
        })?;
    Ok(DaemonStatus {
        hash: document.hash,
        replicas: document.replicas.into_iter().map(|r| r.name).collect(),
    })
}

/// Adds `name: 0` rows for the daemon's replicas that answered no request (online
/// counts list only replicas that answered).
fn padded_with(mut counts: Counts, names: &[String]) -> Counts {
    for name in names {
        if !counts.iter().any(|(c, _)| c == name) {
            counts.push((name.clone(), 0));
        }
    }
    counts
}

fn max_over_mean(counts: &Counts) -> f64 {
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    let max = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
    let mean = total as f64 / counts.len().max(1) as f64;
    max as f64 / mean.max(1e-9)
}

/// `server1 3380, server2 3301, ... (max/mean 1.014)`.
fn describe(counts: &Counts) -> String {
    let parts: Vec<String> = counts.iter().map(|(n, c)| format!("{n} {c}")).collect();
    format!(
        "{} (max/mean {:.3})",
        parts.join(", "),
        max_over_mean(counts)
    )
}

fn distribution_bars(title: String, counts: &Counts) -> Bars {
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    Bars {
        title,
        y_desc: "requests".into(),
        bars: counts.iter().map(|(n, c)| (n.clone(), *c as f64)).collect(),
        label: |v, total| format!("{v:.0} · {:.1} %", 100.0 * v / total.max(1.0)),
        ideal: Some((
            total as f64 / counts.len().max(1) as f64,
            "even share (requests / N)".into(),
        )),
    }
}

/// `10000` → `10,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_format_and_pad() {
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let names = ["server1", "server2", "server3"].map(String::from);
        let padded = padded_with(vec![("server2".into(), 5)], &names);
        assert_eq!(padded.len(), 3);
        assert!(padded.contains(&("server1".into(), 0)));
        assert_eq!(padded[0], ("server2".into(), 5));
        assert!((max_over_mean(&padded) - 3.0).abs() < 1e-9);
        assert!(parse_daemon("md5=http://127.0.0.1:1").is_ok());
        assert!(parse_daemon("md5").is_err());
        assert!(check(0, 10).is_err() && check(3, 0).is_err() && check(3, 10).is_ok());
    }

    #[test]
    fn offline_charts_are_written_as_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("lbctl-analyze-{}", std::process::id()));
        let client = AdminClient::new("http://127.0.0.1:9", std::time::Duration::from_millis(100));
        for chart in [
            Chart::Distribution {
                replicas: 3,
                requests: 3000,
                offline: true,
            },
            Chart::Scaling {
                from: 2,
                to: 4,
                requests: 3000,
                offline: true,
            },
            Chart::HashFunctions {
                replicas: 3,
                requests: 3000,
                daemons: vec![],
                offline: true,
            },
        ] {
            let args = AnalyzeArgs {
                chart,
                out: dir.clone(),
            };
            let (files, summary) = run("http://127.0.0.1:9", &client, &args).unwrap();
            assert_eq!(files.len(), 2);
            let png = std::fs::read(&files[0]).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{}", files[0].display());
            let svg = std::fs::read_to_string(&files[1]).unwrap();
            assert!(
                svg.contains("<svg") && svg.contains("A-"),
                "{}",
                files[1].display()
            );
            assert!(summary.contains("max/mean"), "{summary}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
