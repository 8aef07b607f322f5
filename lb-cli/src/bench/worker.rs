//! One load-generating connection: an OS thread running a current-thread tokio runtime
//! that drives one HTTP/1.1 keep-alive connection (hyper) to the daemon, the way wrk
//! drives its connections from an event loop. A connection that fails is counted and
//! replaced by a new one.
//!
//! The connection's hyper future is polled in the worker's own task, beside the request
//! (`select!`), rather than spawned: no task switch per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::keys::Keys;
use super::{BenchError, Tally};

/// What every worker shares.
#[derive(Debug)]
pub struct Plan {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path and query requested.
    pub path: String,
    /// Key distribution.
    pub keys: Keys,
    /// `Some(interval)`: tsunami pacing; `None`: avalanche.
    pub interval: Option<Duration>,
    /// Time zero of the schedule.
    pub start: Instant,
    /// No request is sent (tsunami: due) at or after this.
    pub deadline: Option<Instant>,
    /// Most requests in all.
    pub limit: u64,
    /// Index of the next request, shared by the workers.
    pub next: Arc<AtomicU64>,
    /// Requests finished, for the progress bar; `None` without one (saves a shared
    /// atomic add per request).
    pub done: Option<Arc<AtomicU64>>,
}

/// The `host:port` of an `http://host:port` base URL.
///
/// # Errors
/// Not an `http://` URL with a host.
pub fn authority(base: &str) -> Result<String, BenchError> {
    let uri: Uri = base
        .parse()
        .map_err(|e| BenchError::Usage(format!("--url {base:?} is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(BenchError::Usage(format!(
            "--url {base:?}: bench speaks plain http:// only"
        )));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| BenchError::Usage(format!("--url {base:?} has no host")))?;
    Ok(match authority.port_u16() {
        Some(_) => authority.to_string(),
        None => format!("{authority}:80"),
    })
}

/// Runs worker `w` until the plan is done; returns its tallies.
///
/// # Errors
/// Its tokio runtime could not be built (out of file descriptors, for one).
pub fn run(w: usize, plan: Arc<Plan>) -> Result<Tally, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::Runtime { worker: w, source })?;
    Ok(runtime.block_on(drive(w, plan)))
}

/// A keep-alive connection. Its hyper connection future is polled by the worker's own
/// task while a request is outstanding (no task switch per request).
struct Link {
    sender: SendRequest<Empty<Bytes>>,
    connection: Pin<Box<Connection<TokioIo<TcpStream>, Empty<Bytes>>>>,
}

async fn connect(authority: &str) -> Option<Link> {
    let stream = TcpStream::connect(authority).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    Some(Link {
        sender,
        connection: Box::pin(connection),
    })
}

/// The last stretch of a tsunami wait that is spun instead of slept: a thread sleep
/// overshoots by tens of µs (and tokio's timer by up to 1 ms).
const SPIN: Duration = Duration::from_micros(200);

/// Returns within a few µs after `due`: a thread sleep for all but the last [`SPIN`],
/// then a spin on the clock. Blocking is fine: this worker's thread runs nothing else
/// between requests (its connection is driven by the request that uses it).
async fn wait_until(due: Instant) {
    if let Some(early) = due.checked_sub(SPIN) {
        let now = Instant::now();
        if now < early {
            std::thread::sleep(early - now);
        }
    }
    while Instant::now() < due {
        std::hint::spin_loop();
    }
}

async fn drive(w: usize, plan: Arc<Plan>) -> Tally {
    let mut rng = fastrand::Rng::with_seed(w as u64 + 1);
    let mut tally = Tally::default();
    let mut link: Option<Link> = None;
    // Avalanche without --requests needs no shared request index: each worker counts
    // for itself and the connections do not contend on one cache line.
    let shared_index = plan.interval.is_some() || plan.limit != u64::MAX;
    let mut sent = 0u64;
    loop {
        let i = if shared_index {
            plan.next.fetch_add(1, Ordering::Relaxed)
        } else {
            sent
        };
        sent += 1;
        if i >= plan.limit {
            break;
        }
        let due = match plan.interval {
            Some(interval) => {
                let due =
                    plan.start + interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                if plan.deadline.is_some_and(|d| due >= d) {
                    break;
                }
                wait_until(due).await;
                due
            }
            None => {
                let now = Instant::now();
                if plan.deadline.is_some_and(|d| now >= d) {
                    break;
                }
                now
            }
        };
        if link.as_ref().is_none_or(|l| l.sender.is_closed()) {
            link = connect(&plan.authority).await;
        }
        if plan.interval.is_some() {
            tally
                .send_lag
                .record(Instant::now().saturating_duration_since(due));
        }
        let outcome = match link.as_mut() {
            Some(l) => send(l, &plan, &plan.keys.next(&mut rng)).await,
            None => None,
        };
        match outcome {
            Some((status, replica)) if (200..300).contains(&status) => {
                tally.latencies.record(due.elapsed());
                tally.ok += 1;
                let replica = replica.to_str().unwrap_or("(not text)");
                match tally.per_replica.get_mut(replica) {
                    Some(n) => *n += 1,
                    None => {
                        tally.per_replica.insert(replica.to_string(), 1);
                    }
                }
            }
            Some(_) => tally.non_2xx += 1,
            None => {
                tally.errors += 1;
                link = None;
            }
        }
        if let Some(done) = &plan.done {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
    tally
}

/// One GET; `(status, replica header)` once the whole body is read, `None` when the
/// connection failed or 30 s passed.
async fn send(link: &mut Link, plan: &Plan, key: &str) -> Option<(u16, HeaderValue)> {
    let request = Request::get(plan.path.as_str())
        .header(hyper::header::HOST, plan.authority.as_str())
        .header("x-lb-key", key)
        .body(Empty::new())
        .ok()?;
    let Link { sender, connection } = link;
    let exchange = async {
        sender.ready().await.ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let replica = response
            .headers()
            .get("x-lb-replica")
            .cloned()
            .unwrap_or(HeaderValue::from_static("none"));
        response.into_body().collect().await.ok()?;
        Some((status, replica))
    };
    let driven = async {
        tokio::select! {
            biased;
            outcome = exchange => outcome,
            // The connection ended (closed, or an error) before the answer.
            _ = connection.as_mut() => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), driven)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_needs_plain_http_and_defaults_to_port_80() {
        assert_eq!(
            authority("http://127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(authority("http://localhost/").unwrap(), "localhost:80");
        assert!(
            authority("https://x:1")
                .unwrap_err()
                .to_string()
                .contains("plain http")
        );
        assert!(authority("not a url").is_err());
    }
}
