//! Where a request waiting on a replica goes when that replica stops answering: an
//! idempotent one moves to the key's next replica as soon as its replica leaves
//! rotation; a POST whose body was not kept is never sent a second time.
//!
//! The replicas are fakes run by the test on 127.0.0.1 (static runtime), so the test
//! can count every request each one received: they answer heartbeats while `healthy`
//! and every other request at once, unless told to `hang` (hold it unanswered).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, agent, counter, header, key_owned_by, wait_for};

/// A fake replica: a listener on 127.0.0.1 and what it received.
struct Fake {
    name: &'static str,
    port: u16,
    healthy: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
    /// Hold requests for paths under `/slow` unanswered (answer the rest).
    hang_slow: Arc<AtomicBool>,
    /// "METHOD path" of every request but heartbeats, in arrival order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(name: &'static str) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = Fake {
            name,
            port: listener.local_addr().unwrap().port(),
            healthy: Arc::new(AtomicBool::new(true)),
            hang: Arc::new(AtomicBool::new(false)),
            hang_slow: Arc::new(AtomicBool::new(false)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let (healthy, hang, hang_slow, seen) = (
            Arc::clone(&fake.healthy),
            Arc::clone(&fake.hang),
            Arc::clone(&fake.hang_slow),
            Arc::clone(&fake.seen),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (healthy, seen) = (Arc::clone(&healthy), Arc::clone(&seen));
                let hangs = [Arc::clone(&hang), Arc::clone(&hang_slow)];
                std::thread::spawn(move || serve(stream, name, &healthy, &hangs, &seen));
            }
        });
        fake
    }

    fn seen(&self, what: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| *s == what)
            .count()
    }

    fn static_entry(&self) -> String {
        format!(
            "[[runtime.replicas]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\n",
            self.name, self.port
        )
    }
}

/// One connection: requests in a keep-alive loop (bodies by `content-length` only).
/// `hangs`: hold every request; hold those under `/slow`.
fn serve(
    stream: TcpStream,
    name: &str,
    healthy: &AtomicBool,
    hangs: &[Arc<AtomicBool>; 2],
    seen: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut words = line.split_whitespace();
        let request = format!(
            "{} {}",
            words.next().unwrap_or(""),
            words.next().unwrap_or("")
        );
        if request == "GET /heartbeat" {
            if !healthy.load(Ordering::SeqCst) {
                return; // closes: the heartbeat fails
            }
        } else {
            let slow = request
                .split(' ')
                .nth(1)
                .is_some_and(|p| p.starts_with("/slow"));
            seen.lock().unwrap().push(request);
            if hangs[0].load(Ordering::SeqCst) || (slow && hangs[1].load(Ordering::SeqCst)) {
                // Holds the request unanswered until the peer goes away.
                let _ = reader.read(&mut [0; 1]);
                return;
            }
        }
        // The replica-server's answer, which the tests' helpers check.
        let text =
            format!("{{\"message\":\"Hello from Server: {name}\",\"status\":\"successful\"}}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A daemon over two fakes (heartbeats every 200 ms, Down after 2 failures) with
/// `upstream` settings appended.
fn daemon_over(fakes: &[&Fake], upstream: &str) -> Daemon {
    let mut config = String::from(
        "listen = \"127.0.0.1:0\"\n[heartbeat]\ninterval_ms = 200\ntimeout_ms = 150\nrise = 1\nfall = 2\n",
    );
    config.push_str(upstream);
    config.push_str("[runtime]\nkind = \"static\"\n");
    for fake in fakes {
        config.push_str(&fake.static_entry());
    }
    let daemon = Daemon::start(&config);
    let up = wait_for(Duration::from_secs(5), || {
        (daemon.replicas().len() == fakes.len()).then_some(())
    });
    assert!(up.is_some(), "the fakes never came Up");
    daemon
}

/// Sends `method /item` with key `key` (and `body`); → (status, replica, elapsed).
fn send(daemon: &Daemon, method: &str, key: &str, body: &str) -> (u16, Option<String>, Duration) {
    send_to(daemon, method, "/item", key, body)
}

/// Sends `method path` with key `key` (and `body`); → (status, replica, elapsed).
fn send_to(
    daemon: &Daemon,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(daemon.url(path))
        .header("x-lb-key", key)
        .body(body.to_string())
        .unwrap();
    match agent().run(request) {
        Ok(response) => (
            response.status().as_u16(),
            header(&response, "x-lb-replica"),
            started.elapsed(),
        ),
        Err(e) => panic!("{method} failed in transport: {e}"),
    }
}

#[test]
fn a_get_waiting_on_a_replica_that_goes_down_moves_at_once() {
    let (a, b) = (Fake::start("fake-a"), Fake::start("fake-b"));
    // Suspicion and hedging off, the try timeout long: only leaving rotation can move it.
    let daemon = daemon_over(
        &[&a, &b],
        "[upstream]\nsuspect_after_ms = 0\nhedge = false\ntry_timeout_ms = 20000\n",
    );
    let key = key_owned_by(&daemon, "fake-a");
    a.hang.store(true, Ordering::SeqCst);
    let failing = {
        let healthy = Arc::clone(&a.healthy);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            healthy.store(false, Ordering::SeqCst);
        })
    };
    let (status, replica, elapsed) = send(&daemon, "GET", &key, "");
    failing.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(replica.as_deref(), Some("fake-b"), "it did not move");
    assert_eq!((a.seen("GET /item"), b.seen("GET /item")), (1, 1));
    // Down after 2 failed heartbeats of 200 ms: far sooner than the 20 s try timeout.
    assert!(
        elapsed < Duration::from_secs(5),
        "moved only after {elapsed:?}"
    );
    assert_eq!(counter(&daemon, "lb_moved_requests_total"), 1.0);
    assert_eq!(counter(&daemon, "lb_hedges_sent_total"), 0.0);
}

#[test]
fn a_post_without_a_kept_body_is_never_sent_twice() {
    let (a, b) = (Fake::start("fake-a"), Fake::start("fake-b"));
    // No body is kept for a retry; suspicion on (the default); a short try timeout.
    let daemon = Arc::new(daemon_over(
        &[&a, &b],
        "[upstream]\nretry_body_bytes = 0\ntry_timeout_ms = 3000\n",
    ));
    let key = key_owned_by(&daemon, "fake-a");
    let other = key_owned_by(&daemon, "fake-b");
    a.hang.store(true, Ordering::SeqCst);
    let post = {
        let (daemon, key) = (Arc::clone(&daemon), key.clone());
        std::thread::spawn(move || send(&daemon, "POST", &key, "order=1"))
    };
    let arrived = wait_for(Duration::from_secs(2), || {
        (a.seen("POST /item") == 1).then_some(())
    });
    assert!(arrived.is_some(), "the POST never reached fake-a");
    // While the POST waits on fake-a: fake-b keeps answering, an idempotent PUT on the
    // same key suspects fake-a and moves (the contrast: the POST's staying is the
    // method's doing), then fake-a fails its heartbeats and goes Down.
    let stop = Arc::new(AtomicBool::new(false));
    let chatter = {
        let (daemon, stop) = (Arc::clone(&daemon), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(send(&daemon, "GET", &other, "").0, 200);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let (put, put_replica, _) = send(&daemon, "PUT", &key, "");
    stop.store(true, Ordering::SeqCst);
    chatter.join().unwrap();
    assert_eq!(
        (put, put_replica.as_deref()),
        (200, Some("fake-b")),
        "an idempotent PUT did not move off the silent replica"
    );
    a.healthy.store(false, Ordering::SeqCst);
    let (post, _, elapsed) = post.join().unwrap();
    assert!(
        post == 504 || post == 502,
        "the POST should end in a gateway error, not {post}"
    );
    assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
    assert_eq!(a.seen("POST /item"), 1, "fake-a got the POST once");
    assert_eq!(b.seen("POST /item"), 0, "the POST was sent a second time");
}

/// GETs on `key` every 10 ms until `stop`, asserting each succeeds.
fn chatter(
    daemon: &Arc<Daemon>,
    key: String,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (daemon, stop) = (Arc::clone(daemon), Arc::clone(stop));
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            assert_eq!(send(&daemon, "GET", &key, "").0, 200);
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// Two fakes where fake-a holds `/slow` requests but answers its others, which a
/// chatter keeps asking for 800 ms before and during `slow_requests` (so fake-a is not
/// suspected and the GETs fill the hedge budget, 5 % of them). Returns the fakes, the
/// daemon and what `slow_requests` returned.
fn with_a_slow_path<T>(
    upstream: &str,
    slow_requests: impl FnOnce(&Daemon, &str) -> T,
) -> (Fake, Fake, Arc<Daemon>, T) {
    let (a, b) = (Fake::start("fake-a"), Fake::start("fake-b"));
    let daemon = Arc::new(daemon_over(&[&a, &b], upstream));
    let key = key_owned_by(&daemon, "fake-a");
    a.hang_slow.store(true, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let chatter = chatter(&daemon, key.clone(), &stop);
    std::thread::sleep(Duration::from_millis(800));
    let out = slow_requests(&daemon, &key);
    stop.store(true, Ordering::SeqCst);
    chatter.join().unwrap();
    (a, b, daemon, out)
}

/// A GET held by fake-a, which answers its other requests, is hedged on fake-b; a
/// POST beside it is not. `server` picks the path (lean HTTP/1 or hyper).
fn a_slow_get_is_hedged(server: &str) {
    let config = format!("{server}[upstream]\ntry_timeout_ms = 5000\n");
    let (a, b, daemon, (get, post)) = with_a_slow_path(&config, |daemon, key| {
        let get = send_to(daemon, "GET", "/slow", key, "");
        // A POST is never hedged: it waits out the try timeout on fake-a.
        let post = send_to(daemon, "POST", "/slow", key, "x").0;
        (get, post)
    });
    let (status, replica, elapsed) = get;
    assert_eq!((status, replica.as_deref()), (200, Some("fake-b")));
    // At the 220 ms deadline floor, not at the 5 s try timeout.
    assert!(
        elapsed < Duration::from_millis(2000),
        "hedged only after {elapsed:?}"
    );
    assert_eq!((a.seen("GET /slow"), b.seen("GET /slow")), (1, 1));
    assert_eq!(counter(&daemon, "lb_hedges_sent_total"), 1.0);
    assert_eq!(counter(&daemon, "lb_hedges_won_total"), 1.0);
    assert_eq!(counter(&daemon, "lb_hedges_lost_total"), 0.0);
    assert_eq!(post, 504);
    assert_eq!((a.seen("POST /slow"), b.seen("POST /slow")), (1, 0));
}

#[test]
fn a_slow_get_on_a_replica_that_answers_others_is_hedged_on_the_next() {
    a_slow_get_is_hedged("");
}

#[test]
fn hyper_path_a_slow_get_on_a_replica_that_answers_others_is_hedged_on_the_next() {
    a_slow_get_is_hedged("[server]\nlean_http1 = false\n");
}

#[test]
fn with_hedging_off_a_slow_get_stays_on_its_replica() {
    let (a, b, daemon, (status, _, _)) = with_a_slow_path(
        "[upstream]\nhedge = false\ntry_timeout_ms = 1500\nretries = 0\n",
        |daemon, key| send_to(daemon, "GET", "/slow", key, ""),
    );
    assert_eq!(status, 504);
    assert_eq!((a.seen("GET /slow"), b.seen("GET /slow")), (1, 0));
    assert_eq!(counter(&daemon, "lb_hedges_sent_total"), 0.0);
}

#[test]
fn a_slow_path_gets_its_own_try_timeout_and_is_never_hedged() {
    let (a, b, daemon, (status, replica, elapsed)) = with_a_slow_path(
        "[upstream]\ntry_timeout_ms = 400\n[[upstream.slow_paths]]\nprefix = \"/slow\"\ntry_timeout_ms = 1500\n",
        |daemon, key| send_to(daemon, "GET", "/slow", key, ""),
    );
    // Neither hedged at the deadline nor cut at the 400 ms try timeout: it waited the
    // slow path's 1.5 s on fake-a, then its retry went to fake-b.
    assert_eq!((status, replica.as_deref()), (200, Some("fake-b")));
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    assert_eq!(counter(&daemon, "lb_hedges_sent_total"), 0.0);
    assert_eq!((a.seen("GET /slow"), b.seen("GET /slow")), (1, 1));
}
