//! one replica is killed while paced load runs through the daemon; the timeline
//! shows requests per second answered by each replica (0.25 s buckets), failed
//! requests per second, the moment of the kill and the moment `/status` shows the
//! replica Up again after its respawn.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lb_api::ReplicaState;

use super::AnalyzeError;
use crate::client::AdminClient;

use super::chart::Timeline;

/// Width of a timeline bucket, seconds.
const BUCKET: f64 = 0.25;
/// Worker connections sending the paced requests.
const WORKERS: usize = 8;

/// What to do: the `lbctl analyze failover` options.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Daemon base URL.
    pub url: String,
    /// Shell command with `{replica}`, `{address}`, `{port}` placeholders.
    pub kill_cmd: String,
    /// Replica to kill; `None`: the second listed.
    pub victim: Option<String>,
    /// Requests per second.
    pub rate: u32,
    /// Timeline length, seconds.
    pub seconds: u32,
    /// Kill time, seconds.
    pub kill_at: u32,
}

/// The measured timeline and a one-paragraph summary.
#[derive(Debug)]
pub struct Measured {
    /// The chart.
    pub timeline: Timeline,
    /// What happened, in numbers.
    pub summary: String,
}

/// One replica of `GET /status`, as the analysis needs it.
#[derive(Debug, Clone)]
struct Replica {
    name: String,
    address: Option<std::net::SocketAddr>,
    state: ReplicaState,
    respawns: u64,
}

fn status(client: &AdminClient, url: &str) -> Result<Vec<Replica>, AnalyzeError> {
    let document = client.status().map_err(|source| AnalyzeError::Daemon {
        call: format!("GET {url}/status"),
        source,
    })?;
    Ok(document
        .replicas
        .into_iter()
        .map(|r| Replica {
            name: r.name,
            address: r.address,
            state: r.state,
            respawns: r.respawns,
        })
        .collect())
}

/// Letters, digits and `- . : [ ]`: the characters of a replica name.
fn shell_inert(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']')
}

/// Runs the plan against the daemon.
///
/// # Errors
/// Bad options, an unreachable daemon, an unknown victim, a victim whose name or address
/// holds shell syntax, or a kill command that
/// could not run or exited with failure.
pub fn run(plan: &Plan) -> Result<Measured, AnalyzeError> {
    if !(1..=5_000).contains(&plan.rate) {
        return Err(AnalyzeError::Usage(
            "--rate must be 1 to 5000 requests per second".into(),
        ));
    }
    if !(2..=600).contains(&plan.seconds) || plan.kill_at == 0 || plan.kill_at >= plan.seconds {
        return Err(AnalyzeError::Usage(
            "use 2 to 600 --seconds and a --kill-at between 1 and --seconds - 1".into(),
        ));
    }
    let url = plan.url.trim_end_matches('/').to_string();
    let client = AdminClient::new(&url, Duration::from_secs(5));
    let before = status(&client, &url)?;
    let victim = match &plan.victim {
        Some(name) => before.iter().find(|r| &r.name == name).cloned(),
        None => before.get(1).or(before.first()).cloned(),
    }
    .ok_or_else(|| match &plan.victim {
        Some(name) => AnalyzeError::Usage(format!("no replica named {name:?} at {url}")),
        None => AnalyzeError::Usage(format!("the daemon at {url} has no replica")),
    })?;
    let Some(address) = victim.address else {
        return Err(AnalyzeError::Usage(format!(
            "replica {} has no address now (it is respawning); try again",
            victim.name
        )));
    };
    // The name goes into a shell command: accept only what names are made of, so a
    // daemon's answer cannot inject shell syntax (an address is typed, so inert).
    if victim.name.is_empty() || !victim.name.chars().all(shell_inert) {
        return Err(AnalyzeError::Usage(format!(
            "replica name {:?} is not safe to put in --kill-cmd",
            victim.name
        )));
    }
    let command = plan
        .kill_cmd
        .replace("{replica}", &victim.name)
        .replace("{address}", &address.to_string())
        .replace("{port}", &address.port().to_string());

    let start = Instant::now();
    let end = start + Duration::from_secs(u64::from(plan.seconds));
    let next = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs(1) / plan.rate;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (url, next) = (url.clone(), Arc::clone(&next));
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .new_agent();
                let mut rng = fastrand::Rng::with_seed(w as u64 + 1);
                let mut results: Vec<(f64, Option<String>)> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let due = start + interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                    if due >= end {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let key = format!("{:016x}", rng.u64(..));
                    let replica = match agent
                        .get(&format!("{url}/home"))
                        .header("x-lb-key", &key)
                        .call()
                    {
                        // 4xx and 5xx are errors (ureq's default): a failed request.
                        Ok(mut resp) => {
                            let replica = resp
                                .headers()
                                .get("x-lb-replica")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let _ = resp.body_mut().read_to_string();
                            replica
                        }
                        Err(_) => None,
                    };
                    results.push(((due - start).as_secs_f64(), replica));
                }
                results
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(u64::from(plan.kill_at)));
    let killed_at = start.elapsed().as_secs_f64();
    let killed = Command::new("sh").arg("-c").arg(&command).output();
    let mut back_at = None;
    if matches!(&killed, Ok(out) if out.status.success()) {
        while Instant::now() < end {
            let now = start.elapsed().as_secs_f64();
            let replaced = status(&client, &url).ok().and_then(|replicas| {
                replicas
                    .into_iter()
                    .find(|r| r.name == victim.name)
                    .filter(|r| r.respawns > victim.respawns && r.state == ReplicaState::Up)
            });
            if replaced.is_some() {
                back_at = Some(now);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut results = Vec::new();
    for worker in workers {
        results.extend(worker.join().map_err(|_| AnalyzeError::WorkerPanicked)?);
    }
    match killed {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(AnalyzeError::KillFailed {
                command,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Err(source) => return Err(AnalyzeError::KillNotRun { command, source }),
    }
    Ok(measured(
        plan,
        &victim.name,
        &command,
        &results,
        killed_at,
        back_at,
    ))
}

/// Buckets the results into the chart and writes the summary.
fn measured(
    plan: &Plan,
    victim: &str,
    command: &str,
    results: &[(f64, Option<String>)],
    killed_at: f64,
    back_at: Option<f64>,
) -> Measured {
    let buckets = (f64::from(plan.seconds) / BUCKET).ceil() as usize;
    let mut per_replica: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut failed = vec![0u64; buckets];
    for (t, replica) in results {
        let b = ((t / BUCKET) as usize).min(buckets - 1);
        match replica {
            Some(name) => per_replica.entry(name).or_insert_with(|| vec![0; buckets])[b] += 1,
            None => failed[b] += 1,
        }
    }
    let curve = |counts: &[u64]| -> Vec<(f64, f64)> {
        counts
            .iter()
            .enumerate()
            .map(|(b, n)| ((b as f64 + 0.5) * BUCKET, *n as f64 / BUCKET))
            .collect()
    };
    let failures: u64 = failed.iter().sum();
    let mut marks = vec![(killed_at, format!("kill: {command}"))];
    let recovery = match back_at {
        Some(t) => {
            marks.push((
                t,
                format!("{victim} Up again (+{:.0} ms)", (t - killed_at) * 1000.0),
            ));
            format!(
                "{victim} was Up again {:.0} ms after the kill",
                (t - killed_at) * 1000.0
            )
        }
        None => format!("{victim} was not seen Up again before the end"),
    };
    let summary = format!(
        "{} requests at {} req/s over {} s; killed {victim} at {killed_at:.2} s; {recovery}; {failures} requests failed",
        results.len(),
        plan.rate,
        plan.seconds
    );
    Measured {
        timeline: Timeline {
            title: format!(
                "A-3 · Failover: {victim} killed under {} req/s through lb-daemon ({failures} failed)",
                plan.rate
            ),
            seconds: f64::from(plan.seconds),
            series: per_replica
                .into_iter()
                .map(|(name, counts)| (name.to_string(), curve(&counts)))
                .collect(),
            failed: curve(&failed),
            marks,
        },
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_requests_per_second_and_failures() {
        let plan = Plan {
            url: String::new(),
            kill_cmd: String::new(),
            victim: None,
            rate: 4,
            seconds: 2,
            kill_at: 1,
        };
        let results = vec![
            (0.1, Some("a".to_string())),
            (0.3, Some("a".to_string())),
            (0.6, Some("b".to_string())),
            (1.2, None),
            (1.9, Some("b".to_string())),
        ];
        let m = measured(&plan, "b", "kill", &results, 1.0, Some(1.5));
        let a = &m.timeline.series[0];
        assert_eq!(a.0, "a");
        assert_eq!(a.1.len(), 8, "2 s in 0.25 s buckets");
        assert_eq!(a.1[0], (0.125, 4.0), "0.1 s falls in the first bucket");
        assert_eq!(a.1[1], (0.375, 4.0));
        assert_eq!(a.1.iter().map(|p| p.1).sum::<f64>(), 8.0);
        assert_eq!(m.timeline.failed[4], (1.125, 4.0));
        assert_eq!(m.timeline.marks.len(), 2);
        assert!(m.summary.contains("Up again 500 ms after"), "{}", m.summary);
        assert!(m.summary.contains("1 requests failed"), "{}", m.summary);
    }
}
