//! The allocation budget of a proxied request: a keep-alive client sends keyed GETs
//! through an in-process daemon (one worker, static runtime) to a backend, and a
//! counting global allocator tallies every allocation in the process while they run.
//! The client and the backend allocate nothing per request (fixed buffers, requests
//! formatted beforehand), so the tally is the daemon's. BENCHMARKS.md states the budget.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Allocations (and reallocations) per proxied request, at most: on the lean HTTP/1
/// path, the client's read buffer, the upstream request bytes, the response read
/// buffer and the client's response head (hyper's path took 11).
const BUDGET: u64 = 4;
/// Room for work done once a second or so whatever the load (hyper's cached `Date`
/// header, the pool sweep), spread over the measured requests.
const AMORTIZED: f64 = 0.05;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Index just past the first `\r\n\r\n` in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A backend that answers every request on every connection with `200 ok`, from
/// fixed buffers.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let mut filled = 0;
                loop {
                    match stream.read(&mut buf[filled..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    while let Some(end) = head_end(&buf[..filled]) {
                        buf.copy_within(end..filled, 0);
                        filled -= end;
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `request` on `stream` and reads the whole response into `buf`.
fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> u16 {
    stream.write_all(request).unwrap();
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).unwrap();
        assert!(n > 0, "the daemon closed the connection");
        filled += n;
        if let Some(end) = head_end(&buf[..filled]) {
            let head = &buf[..end];
            let length: usize = head
                .split(|b| *b == b'\n')
                .find_map(|line| {
                    let line = std::str::from_utf8(line).ok()?;
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content-length");
            if filled >= end + length {
                let status = std::str::from_utf8(&head[9..12]).unwrap();
                return status.parse().unwrap();
            }
        }
    }
}

#[test]
fn a_proxied_request_stays_within_its_allocation_budget() {
    let upstream = backend();
    let port = common::free_port();
    let config = lb_daemon::config::Config::parse(&format!(
        "listen = \"127.0.0.1:{port}\"\nworkers = 1\nhash = \"nginx\"\nkey = [\"query:key\"]\n\
         [runtime]\nkind = \"static\"\n[[runtime.replicas]]\nname = \"b1\"\naddress = \"{upstream}\"\n\
         [heartbeat]\ninterval_ms = 3600000\ntimeout_ms = 1000\n"
    ))
    .unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let daemon = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(lb_daemon::run(config, stop)).unwrap();
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = common::wait_for(Duration::from_secs(10), || TcpStream::connect(addr).ok())
        .expect("the daemon listens");
    stream.set_nodelay(true).unwrap();
    let requests: Vec<Vec<u8>> = (0..3000)
        .map(|i| {
            format!("GET /item?key=k{i} HTTP/1.1\r\nHost: lb\r\nUser-Agent: t\r\n\r\n").into_bytes()
        })
        .collect();
    let mut buf = vec![0u8; 16 * 1024];
    let (warmup, measured) = requests.split_at(1000);
    for request in warmup {
        assert_eq!(exchange(&mut stream, request, &mut buf), 200);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for request in measured {
        assert_eq!(exchange(&mut stream, request, &mut buf), 200);
    }
    let per_request = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / measured.len() as f64;
    println!("allocations per proxied request: {per_request:.3}");
    drop(stream);
    shutdown.cancel();
    daemon.join().unwrap();
    assert!(
        per_request <= BUDGET as f64 + AMORTIZED,
        "{per_request:.3} allocations per request, over the budget of {BUDGET}"
    );
}
