//! Shared parts of the end-to-end tests: the built binaries, a daemon on an
//! ephemeral port with child-process replicas, and a small HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// `target/<profile>/`, where cargo put `lb-daemon` and the other binaries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lb-daemon"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A workspace binary, built on first use if `cargo test` did not build it.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let path = bin_dir().join(name);
    if !path.is_file() {
        BUILD.call_once(|| {
            let release = bin_dir().ends_with("release");
            let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
            cmd.args(["build", "-p", "lb-examples", "-p", "lb-cli"]);
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(
                status.success(),
                "cargo build of the helper binaries failed"
            );
        });
    }
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// A running `lb-daemon` with its stderr captured.
pub struct Daemon {
    pub child: Child,
    /// The config file it was started with.
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The config every test starts from: ephemeral port, the built replica-server, fast heartbeats.
pub fn base_config(replicas: usize) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nreplicas = {replicas}\n\n[runtime]\ncommand = [{:?}, \"--host\", \"127.0.0.1\"]\n\n[heartbeat]\ninterval_ms = 500\ntimeout_ms = 250\nrise = 2\nfall = 3\n\n[shutdown]\ngrace_ms = 2000\n",
        binary("replica-server").display().to_string()
    )
}

impl Daemon {
    /// Starts `lb-daemon --config <file with `config`>` and waits until it listens.
    pub fn start(config: &str) -> Daemon {
        let dir =
            std::env::temp_dir().join(format!("lb-test-{}-{}", std::process::id(), fastrand_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lb.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(binary("lb-daemon"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("daemon ready") || line.contains("lb-daemon:") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("daemon did not start");
        let lines = log.lock().unwrap().clone();
        // `addr=127.0.0.1:5000` in text logs, `"addr":"127.0.0.1:5000"` in JSON ones.
        let addr = lines
            .iter()
            .filter(|l| l.contains("listening"))
            .find_map(|l| {
                let rest = l
                    .split("addr=")
                    .nth(1)
                    .or_else(|| l.split("\"addr\":\"").nth(1))?;
                rest.split(|c: char| c.is_whitespace() || c == '"').next()
            })
            .unwrap_or_else(|| panic!("no listening line in {lines:?}"))
            .parse()
            .unwrap();
        Daemon {
            child,
            config: path,
            addr,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /rep` → the replica names.
    pub fn replicas(&self) -> Vec<String> {
        let (status, body) = call("GET", &self.url("/rep"), None);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let names: Vec<String> = v["message"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        assert_eq!(v["message"]["N"].as_u64().unwrap() as usize, names.len());
        names
    }

    /// `GET /home` with `key` (or none): (status, replica that served it).
    pub fn home(&self, key: Option<&str>) -> (u16, Option<String>) {
        let mut req = agent().get(&self.url("/home"));
        if let Some(key) = key {
            req = req.header("x-lb-key", key);
        }
        match req.call() {
            Ok(resp) if !resp.status().is_success() => (resp.status().as_u16(), None),
            Ok(mut resp) => {
                let replica = header(&resp, "x-lb-replica");
                let body = resp.body_mut().read_to_string().unwrap();
                let id = replica.clone().unwrap();
                assert_eq!(
                    body,
                    format!(
                        "{{\"message\":\"Hello from Server: {id}\",\"status\":\"successful\"}}"
                    )
                );
                (200, replica)
            }
            Err(e) => panic!("transport error: {e}"),
        }
    }

    /// SIGTERM, then wait (at most 15 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let children = child_pids(self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
            for pid in children.values() {
                signal(*pid, "KILL");
            }
        }
    }
}

/// `/status`'s entry of `replica` (`Null` when it is not listed).
pub fn replica_status(daemon: &Daemon, replica: &str) -> serde_json::Value {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["message"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == replica)
        .cloned()
        .unwrap_or_default()
}

/// One keep-alive client for the whole test binary; a 4xx or 5xx is an answer, not an
/// error, so `Err` means the transport failed.
pub fn agent() -> ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT
        .get_or_init(|| {
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .new_agent()
        })
        .clone()
}

/// The value of header `name` in `response`, if present and text.
pub fn header<B>(response: &ureq::http::Response<B>, name: &str) -> Option<String> {
    let value = response.headers().get(name)?;
    value.to_str().ok().map(str::to_string)
}

/// `method url` with an optional JSON body, through [`agent`].
fn send(
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    let request = match body {
        Some(body) => request.body(body.to_string()),
        None => request.body(String::new()),
    };
    agent().run(request.map_err(ureq::Error::Http)?)
}

/// Any method with an optional JSON body → (status, body).
pub fn call(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    match send(method, url, body) {
        Ok(mut resp) => (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        ),
        Err(e) => panic!("transport error on {method} {url}: {e}"),
    }
}

/// The value of counter `name` (e.g. `lb_hedges_sent_total`) in the daemon's `/metrics`.
pub fn counter(daemon: &Daemon, name: &str) -> f64 {
    let (_, text) = call("GET", &daemon.url("/metrics"), None);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// Sends a signal with kill(1).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Live child processes of `parent`, by their `SERVER_ID` (Linux /proc).
pub fn child_pids(parent: u32) -> HashMap<String, u32> {
    let mut found = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(parent)
            || fields.first() == Some(&"Z")
        {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        for var in environ.split(|b| *b == 0) {
            if let Some(id) = var.strip_prefix(b"SERVER_ID=") {
                found.insert(String::from_utf8_lossy(id).into_owned(), pid);
            }
        }
    }
    found
}

/// Polls `check` every 50 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port on 127.0.0.1 that nothing listens on now (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// A random 16-character key.
pub fn random_key() -> String {
    format!("{:016x}", fastrand_u64())
}

/// Like [`call`] without a body, but `None` on a transport error instead of panicking.
pub fn try_call(method: &str, url: &str) -> Option<(u16, String)> {
    let mut resp = send(method, url, None).ok()?;
    let body = resp.body_mut().read_to_string().ok()?;
    Some((resp.status().as_u16(), body))
}

/// Keyed GETs from `threads` threads at about `rate` requests/s in all until `stop`;
/// returns (ok, non-2xx, transport errors).
pub fn load(
    daemon: &Daemon,
    threads: usize,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u64, u64, u64)>> {
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    (0..threads)
        .map(|t| {
            let url = daemon.url("/home");
            let stop = Arc::clone(&stop);
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                let agent = agent();
                let (mut ok, mut bad, mut errors) = (0, 0, 0);
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    // Open-loop pacing shared by all threads.
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    let due = start + Duration::from_micros(n * 1_000_000 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    i += 1;
                    match agent
                        .get(&url)
                        .header("x-lb-key", format!("user-{t}-{}", i % 500))
                        .call()
                    {
                        Ok(mut resp) if resp.status().is_success() => {
                            let _ = resp.body_mut().read_to_string();
                            ok += 1;
                        }
                        Ok(_) => bad += 1,
                        Err(_) => errors += 1,
                    }
                }
                (ok, bad, errors)
            })
        })
        .collect()
}

/// A key the daemon routes to `replica` (found by trying `probe-0`, `probe-1`, ...).
pub fn key_owned_by(daemon: &Daemon, replica: &str) -> String {
    (0..10_000)
        .map(|i| format!("probe-{i}"))
        .find(|k| daemon.home(Some(k)).1.as_deref() == Some(replica))
        .expect("some key maps to every replica")
}

/// Joins [`load`]'s workers → (ok, non-2xx, transport errors) summed.
pub fn join_load(workers: Vec<std::thread::JoinHandle<(u64, u64, u64)>>) -> (u64, u64, u64) {
    workers.into_iter().fold((0, 0, 0), |(o, b, e), w| {
        let (wo, wb, we) = w.join().unwrap();
        (o + wo, b + wb, e + we)
    })
}

/// Runs `lbctl --url <url> <args>` → (exit code, stdout, stderr).
pub fn lbctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("lbctl"))
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
