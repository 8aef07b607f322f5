//! lb-core's nginx mode against a real nginx: `hash $arg_key consistent` over four
//! replica-servers (one `weight=3`, one `weight=2`) picks the same server as
//! `HashRing<Nginx>` for 10,000 keys.
//!
//! Needs the `nginx` binary (Debian `nginx-light`, installed by `.ci/run`). Without it
//! the test says so and passes, unless `LB_REQUIRE_PEERS=1` (set by `.ci/run`).
//! `LB_CORE_BLESS=1` rewrites `lb-core/tests/data/nginx_golden.tsv` from nginx's answers
//! (with the fixed `BLESSED_SERVERS` addresses; otherwise the ports are free ones).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lb_core::{HashRing, Nginx, NodeId};

/// Fixed addresses for blessing: nginx hashes the `server` strings, so they are part of
/// the golden vectors. Otherwise the test uses free ports with the same weights: a fixed
/// port in the ephemeral range can be held by another test's outgoing connection (or its
/// TIME-WAIT) for a minute, and then the replica-server cannot bind it.
const BLESSED_SERVERS: [(&str, u32); 4] = [
    ("127.0.0.1:47301", 1),
    ("127.0.0.1:47302", 3),
    ("127.0.0.1:47303", 1),
    ("127.0.0.1:47304", 2),
];
const KEYS: usize = 10_000;

/// Children stopped on drop, even when the test fails. nginx gets SIGQUIT so its
/// master stops its workers (SIGKILL would orphan them).
struct Stopped(Vec<Child>);

impl Drop for Stopped {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `(ip:port, weight)` of the four replica-servers.
fn servers() -> Vec<(String, u32)> {
    if std::env::var_os("LB_CORE_BLESS").is_some() {
        return BLESSED_SERVERS
            .iter()
            .map(|(addr, weight)| (addr.to_string(), *weight))
            .collect();
    }
    BLESSED_SERVERS
        .iter()
        .map(|(_, weight)| (format!("127.0.0.1:{}", free_port()), *weight))
        .collect()
}

/// A port nothing listens on now (bound to port 0, then released).
fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} never accepted connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn nginx_config(dir: &Path, listen: &str, servers: &[(String, u32)]) -> String {
    let servers: String = servers
        .iter()
        .map(|(addr, weight)| format!("        server {addr} weight={weight};\n"))
        .collect();
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         upstream replicas {{\n        hash $arg_key consistent;\n{servers}    }}\n\
         server {{\n        listen {listen};\n        location / {{ proxy_pass http://replicas; }}\n    }}\n}}\n"
    )
}

#[test]
fn nginx_mode_picks_the_same_server_as_nginx() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var_os("LB_REQUIRE_PEERS").is_none(),
            "nginx is not installed (apt-get install nginx-light)"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let servers = servers();
    let mut children = Stopped(Vec::new());
    for (addr, _) in &servers {
        let port = addr.rsplit(':').next().unwrap();
        children.0.push(
            Command::new(env!("CARGO_BIN_EXE_replica-server"))
                .args(["--id", addr, "--port", port, "--host", "127.0.0.1"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let dir = std::env::temp_dir().join(format!("lb-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.join("nginx.conf"),
        nginx_config(&dir, &listen, &servers),
    )
    .unwrap();
    children.0.push(
        Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for (addr, _) in &servers {
        wait_for_port(addr);
    }
    wait_for_port(&listen);

    let ring = HashRing::from_nodes(
        Nginx,
        160,
        servers
            .iter()
            .map(|(a, w)| (NodeId::new(a.as_str()).unwrap(), *w)),
    )
    .unwrap();
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut golden =
        String::from("# key\tserver chosen by nginx 1.22 `hash $arg_key consistent`\n");
    let mut mismatches = Vec::new();
    for i in 0..KEYS {
        let key = format!("key-{i}");
        let body = agent
            .get(&format!("http://{listen}/home?key={key}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let chosen = body
            .split("Hello from Server: ")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("unexpected body {body}"))
            .to_string();
        if ring.lookup(key.as_bytes()).map(NodeId::as_str) != Some(chosen.as_str()) {
            mismatches.push((key.clone(), chosen.clone()));
        }
        golden.push_str(&format!("{key}\t{chosen}\n"));
    }
    if std::env::var_os("LB_CORE_BLESS").is_some() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../lb-core/tests/data/nginx_golden.tsv");
        std::fs::write(path, &golden).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        mismatches.is_empty(),
        "{} of {KEYS} keys differ, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}
