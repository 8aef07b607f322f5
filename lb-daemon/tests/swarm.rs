//! The Swarm runtime on this machine's engine, as one sequence (one swarm, one test):
//! a refusal without a swarm, then a single-node swarm (initialised here when
//! inactive, and left at the end) with two daemons on different ports that follow the
//! same services: agreement on 10,000 keys and on the fingerprint before and after an
//! `/add` sent to one of them, an `/rm` seen by the other, a daemon with other
//! settings named by `lbctl status`, a task's container killed under load with no
//! failed request, and a foreign service left alone. Everything it creates is removed.
//!
//! Needs a Docker engine and the `lb-replica:latest` image from
//! `examples/docker/build-images.sh` (run by `.ci/run`). Without an engine the test says
//! why and passes, unless `LB_REQUIRE_PEERS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, agent, call, header, lbctl, wait_for};

/// `docker ARGS` → (success, trimmed stdout, trimmed stderr).
fn docker(args: &[&str]) -> (bool, String, String) {
    match Command::new("docker").args(args).output() {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ),
        Err(e) => (false, String::new(), e.to_string()),
    }
}

fn swarm_state() -> String {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).1
}

/// What the test created; removed on drop, the swarm left if the test initialised it.
struct Scope {
    id: String,
    initialised: bool,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let label = format!("label=io.consistent-lb.owner={}", self.id);
        let (_, services, _) = docker(&["service", "ls", "-q", "--filter", &label]);
        for service in services.lines() {
            docker(&["service", "rm", service]);
        }
        docker(&["service", "rm", &format!("{}-foreign", self.id)]);
        // The network goes once its tasks are gone (their containers stop first).
        for _ in 0..120 {
            if docker(&["network", "rm", &format!("{}-net", self.id)]).0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if self.initialised {
            docker(&["swarm", "leave", "--force"]);
        }
    }
}

impl Scope {
    fn config(&self, port_extra: &str, replicas: usize) -> String {
        format!(
            "listen = \"127.0.0.1:0\"\nreplicas = {replicas}\n{port_extra}\n\
             [heartbeat]\ninterval_ms = 300\ntimeout_ms = 250\nrise = 2\nfall = 2\n\n\
             [shutdown]\ngrace_ms = 1000\n\n\
             [runtime]\nkind = \"swarm\"\nimage = \"lb-replica:latest\"\nnetwork = \"{id}-net\"\n\
             name_prefix = \"{id}-\"\nowner = \"{id}\"\nready_timeout_ms = 60000\n",
            id = self.id
        )
    }
}

/// `key → replica` for `keys` through `daemon` (`None`: no 200).
fn owners(daemon: &Daemon, keys: &[String]) -> Vec<Option<String>> {
    keys.iter()
        .map(|key| {
            let response = agent()
                .get(&daemon.url("/home"))
                .header("x-lb-key", key)
                .call()
                .ok()?;
            if response.status() != 200 {
                return None;
            }
            header(&response, "x-lb-replica")
        })
        .collect()
}

fn status_of(daemon: &Daemon) -> serde_json::Value {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"].clone()
}

/// Replica names whose state is `up` on `daemon`.
fn up(daemon: &Daemon) -> Vec<String> {
    let status = status_of(daemon);
    let mut names: Vec<String> = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "up")
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn fingerprint(daemon: &Daemon) -> String {
    status_of(daemon)["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until both daemons see exactly `names` Up, with one fingerprint.
fn settle(a: &Daemon, b: &Daemon, names: &[&str]) {
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    let agreed = wait_for(Duration::from_secs(60), || {
        (up(a) == want && up(b) == want && fingerprint(a) == fingerprint(b)).then_some(())
    });
    assert!(
        agreed.is_some(),
        "daemons did not settle on {want:?}: a {:?} {}, b {:?} {}",
        up(a),
        fingerprint(a),
        up(b),
        fingerprint(b)
    );
}

/// A fresh scope after the engine and image checks, or `None` (test skipped) when no
/// engine answers.
fn scope() -> Option<Scope> {
    let (engine, version, err) = docker(&["info", "--format", "{{.ServerVersion}}"]);
    if !engine {
        assert!(
            std::env::var_os("LB_REQUIRE_PEERS").is_none(),
            "no Docker engine answers: {err}"
        );
        eprintln!("skipped: no Docker engine answers ({err})");
        return None;
    }
    assert!(
        !docker(&["image", "ls", "-q", "lb-replica:latest"])
            .1
            .is_empty(),
        "image lb-replica:latest is missing: run examples/docker/build-images.sh"
    );
    eprintln!("Docker engine {version}, swarm {}", swarm_state());
    Some(Scope {
        id: format!(
            "lbs{}x{}",
            std::process::id(),
            common::fastrand_u64() % 100_000
        ),
        initialised: false,
    })
}

impl Scope {
    /// Makes this engine a single-node swarm manager if it is not in a swarm; the
    /// scope leaves the swarm again when dropped.
    fn join_swarm(&mut self) {
        if swarm_state() == "inactive" {
            let (ok, _, err) = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
            assert!(ok, "docker swarm init: {err}");
            self.initialised = true;
        }
    }
}

#[test]
fn daemons_on_one_swarm_follow_its_services_and_agree_on_every_key() {
    let Some(mut scope) = scope() else {
        return;
    };

    // Not a manager: the daemon refuses to start and says how to fix it.
    if swarm_state() == "inactive" {
        let config = scope.config("", 1);
        let dir = std::env::temp_dir().join(format!("{}-refused", scope.id));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lb.toml"), config).unwrap();
        let out = Command::new(common::binary("lb-daemon"))
            .arg("--config")
            .arg(dir.join("lb.toml"))
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("docker swarm init"), "{stderr}");
    }
    scope.join_swarm();

    // A service of someone else's, with a replica label but not our owner label.
    let foreign = format!("{}-foreign", scope.id);
    let (ok, _, err) = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &foreign,
        "--label",
        "io.consistent-lb.replica=server9",
        "--label",
        "io.consistent-lb.owner=someone-else",
        "lb-replica:latest",
    ]);
    assert!(ok, "{err}");

    // Two daemons boot at once against the same swarm, each wanting three replicas:
    // three services in all, whichever daemon created each.
    let config = scope.config("", 3);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Daemon::start(&config));
        let b = s.spawn(|| Daemon::start(&config));
        (a.join().unwrap(), b.join().unwrap())
    });
    settle(&a, &b, &["server1", "server2", "server3"]);
    let label = format!("label=io.consistent-lb.owner={}", scope.id);
    let (_, services, _) = docker(&["service", "ls", "-q", "--filter", &label]);
    assert_eq!(services.lines().count(), 3, "{services}");
    let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
    let seen_by_a = owners(&a, &keys);
    assert!(seen_by_a.iter().all(Option::is_some), "a request failed");
    assert_eq!(
        seen_by_a,
        owners(&b, &keys),
        "the daemons route keys differently"
    );

    // /add to one daemon only: the other follows within seconds.
    let epoch = status_of(&b)["epoch"].as_u64().unwrap();
    let (code, body) = call(
        "POST",
        &a.url("/add"),
        Some(r#"{"n":1,"hostnames":["s4"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    settle(&a, &b, &["s4", "server1", "server2", "server3"]);
    assert!(status_of(&b)["epoch"].as_u64().unwrap() > epoch);
    let sample = &keys[..2_000];
    let after = owners(&a, sample);
    assert!(after.iter().any(|r| r.as_deref() == Some("s4")));
    assert_eq!(after, owners(&b, sample));
    // The same hostname again, on the other daemon: the usual 400, nothing duplicated.
    let (code, body) = call(
        "POST",
        &b.url("/add"),
        Some(r#"{"n":1,"hostnames":["s4"]}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("already exists"), "{body}");

    // Other settings, other fingerprint, named by lbctl.
    let c = Daemon::start(&scope.config("points_per_weight = 100", 0));
    let urls = [a.url(""), b.url(""), c.url("")];
    let named = wait_for(Duration::from_secs(30), || {
        let (code, out, _) = lbctl(&urls[0], &["status", &urls[0], &urls[1], &urls[2]]);
        (code == 1 && out.ends_with(&format!("disagreeing: {}\n", urls[2]))).then_some(())
    });
    assert!(named.is_some(), "lbctl status did not name the odd daemon");
    drop(c);

    // A task's container killed under load: no failed request, Swarm restarts it.
    let stop = Arc::new(AtomicBool::new(false));
    let load = common::load(&a, 4, 200, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(500));
    let key = common::key_owned_by(&a, "server2");
    let container = container_of(&scope, "server2").expect("no container for server2");
    let killed = Instant::now();
    assert!(docker(&["kill", &container]).0);
    let back = wait_for(Duration::from_secs(60), || {
        let now = container_of(&scope, "server2")?;
        (now != container && a.home(Some(&key)).1.as_deref() == Some("server2")).then_some(())
    });
    assert!(back.is_some(), "server2 did not serve its keys again");
    eprintln!(
        "server2 serving its keys again {:?} after the kill",
        killed.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (ok, bad, errors) = common::join_load(load);
    assert!(ok > 0);
    assert_eq!((bad, errors), (0, 0), "requests failed around the kill");

    // /rm on the other daemon: the first one follows.
    let (code, body) = call(
        "DELETE",
        &b.url("/rm"),
        Some(r#"{"n":1,"hostnames":["s4"]}"#),
    );
    assert_eq!(code, 200, "{body}");
    settle(&a, &b, &["server1", "server2", "server3"]);

    // The foreign service was never touched.
    let (ok, _, _) = docker(&["service", "inspect", &foreign]);
    assert!(ok, "a service without our owner label was removed");
    drop(a);
    drop(b);
}

/// The container of `replica`'s running task in `scope`, if any.
fn container_of(scope: &Scope, replica: &str) -> Option<String> {
    let label = format!("label=io.consistent-lb.replica={replica}");
    let owner = format!("label=io.consistent-lb.owner={}", scope.id);
    let (_, out, _) = docker(&["ps", "-q", "--filter", &label, "--filter", &owner]);
    out.lines().next().map(str::to_string)
}

/// `docker kill` of a replica's task container → its keys served by it again, five
/// times, for BENCHMARKS.md:
/// `cargo test -p lb-daemon --test swarm -- --ignored --nocapture measure_kill_to_serving`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_kill_to_serving_on_swarm() {
    let Some(mut scope) = scope() else {
        return;
    };
    scope.join_swarm();
    let daemon = Daemon::start(&scope.config("", 3));
    let three = wait_for(Duration::from_secs(60), || {
        (up(&daemon).len() == 3).then_some(())
    });
    assert!(three.is_some(), "three replicas did not come up");
    let key = common::key_owned_by(&daemon, "server3");
    let mut times = Vec::new();
    for _ in 0..5 {
        let old = container_of(&scope, "server3").expect("server3 runs");
        let killed = Instant::now();
        assert!(docker(&["kill", &old]).0);
        let served = wait_for(Duration::from_secs(60), || {
            let new = container_of(&scope, "server3")?;
            (new != old && daemon.home(Some(&key)).1.as_deref() == Some("server3")).then_some(())
        });
        assert!(served.is_some(), "server3 did not serve again");
        times.push(killed.elapsed().as_millis());
        std::thread::sleep(Duration::from_secs(3));
    }
    eprintln!("docker kill -> server3 serving its keys again, ms: {times:?}");
}
