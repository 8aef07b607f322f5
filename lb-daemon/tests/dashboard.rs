//! `/status` and the `/dashboard` page. The page is driven in real headless Chromium
//! through chromedriver (Debian's `chromium` and `chromium-driver`, installed by
//! `.ci/run`) with the `fantoccini` WebDriver client: it shows the replica rows, its
//! "Add replica" button adds a replica, "Remove" removes it, a killed replica's row
//! counts its respawn, and a screenshot is saved as `target/tmp/dashboard.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, agent, base_config, call, child_pids, signal};
use fantoccini::{ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};

fn status(daemon: &Daemon) -> Value {
    let (code, body) = call("GET", &daemon.url("/status"), None);
    assert_eq!(code, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["status"], "successful");
    value["message"].clone()
}

#[test]
fn status_reports_every_replica_with_its_requests_and_ring_share() {
    let daemon = Daemon::start(&base_config(3));
    for i in 0..90 {
        assert_eq!(daemon.home(Some(&format!("s{i}"))).0, 200);
    }
    let status = status(&daemon);
    let replicas = status["replicas"].as_array().unwrap();
    let names: Vec<&str> = replicas
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["server1", "server2", "server3"]);
    let requests: u64 = replicas
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, 90);
    assert_eq!(status["requests"]["total"], 90);
    assert_eq!(status["requests"]["unrouted"], 0);
    assert_eq!(status["hash"], "xxh3");
    let share: f64 = replicas
        .iter()
        .map(|r| r["ring_share"].as_f64().unwrap())
        .sum();
    assert!((share - 1.0).abs() < 1e-9, "ring shares sum to {share}");
    for replica in replicas {
        assert_eq!(replica["state"], "up", "{replica}");
        assert_eq!(replica["respawns"], 0);
        assert!(
            replica["address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        assert!(replica["uptime_ms"].as_u64().unwrap() <= status["uptime_ms"].as_u64().unwrap());
    }
    let (code, _) = call("POST", &daemon.url("/status"), Some("{}"));
    assert_eq!(code, 405);
}

#[test]
fn a_page_of_another_origin_cannot_change_replicas() {
    let daemon = Daemon::start(&base_config(2));
    let mut refused = agent()
        .post(&daemon.url("/add"))
        .header("Origin", "http://evil.example")
        .header("Content-Type", "text/plain")
        .send(r#"{"n":1}"#)
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body = refused.body_mut().read_to_string().unwrap();
    assert!(body.contains("cross-origin"), "{body}");
    assert_eq!(daemon.replicas(), ["server1", "server2"]);
    // DNS rebinding: the attacker's name re-pointed at 127.0.0.1, so Origin and Host agree.
    let port = daemon.addr.port();
    let mut rebound = agent()
        .post(&daemon.url("/add"))
        .header("Host", format!("evil.example:{port}"))
        .header("Origin", format!("http://evil.example:{port}"))
        .send(r#"{"n":1}"#)
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let body = rebound.body_mut().read_to_string().unwrap();
    assert!(body.contains("IP address or localhost"), "{body}");
    assert_eq!(daemon.replicas(), ["server1", "server2"]);
    // The page's own origin is allowed.
    let same = agent()
        .post(&daemon.url("/add"))
        .header("Origin", format!("http://{}", daemon.addr))
        .send(r#"{"n":1}"#)
        .unwrap();
    assert_eq!(same.status(), 200);
    assert_eq!(daemon.replicas(), ["server1", "server2", "server3"]);
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver, or returns `None` (and the test is skipped) when Chromium is
/// not installed and `LB_REQUIRE_PEERS` is unset. `.ci/run` sets it, so CI fails instead.
fn chromedriver() -> Option<Driver> {
    let installed =
        Path::new("/usr/bin/chromedriver").is_file() && Path::new("/usr/bin/chromium").is_file();
    if !installed {
        assert!(
            std::env::var_os("LB_REQUIRE_PEERS").is_none(),
            "chromium and chromium-driver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromium / chromedriver not installed");
        return None;
    }
    let port = common::free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(driver)
}

/// The `data-replica` names of the table rows.
async fn rows(browser: &fantoccini::Client) -> Vec<String> {
    let mut names = Vec::new();
    for row in browser
        .find_all(Locator::Css("#replicas tr"))
        .await
        .unwrap()
    {
        if let Ok(Some(name)) = row.attr("data-replica").await {
            names.push(name);
        }
    }
    names
}

/// Polls the page until `check` holds on its rows, for at most 15 s.
async fn wait_rows(browser: &fantoccini::Client, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = rows(browser).await;
        if check(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "rows stayed {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium_lists_adds_removes_and_counts_respawns() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let daemon = Daemon::start(&base_config(3));
    for i in 0..60 {
        assert_eq!(daemon.home(Some(&format!("d{i}"))).0, 200);
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,860"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("chromedriver session");
    let outcome = async {
        browser.goto(&daemon.url("/dashboard")).await.unwrap();
        assert_eq!(browser.title().await.unwrap(), "lb-daemon dashboard");
        let shown = wait_rows(&browser, |r| r.len() == 3).await;
        assert_eq!(shown, daemon.replicas());
        for state in browser
            .find_all(Locator::Css("#replicas td.state"))
            .await
            .unwrap()
        {
            assert_eq!(state.text().await.unwrap(), "up");
        }
        let bars = browser
            .find_all(Locator::Css("#share-chart .chart-row"))
            .await
            .unwrap();
        assert_eq!(bars.len(), 3, "one bar per replica");

        browser
            .find(Locator::Id("add-replica"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let shown = wait_rows(&browser, |r| r.len() == 4).await;
        assert_eq!(shown.last().map(String::as_str), Some("server4"));
        assert_eq!(daemon.replicas(), shown, "the daemon has the new replica");
        let message = browser
            .find(Locator::Id("message"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(message.contains("now 4 replicas"), "{message}");
        // Wait for the new replica's row to show it Up, then keep the picture.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = browser
                .find(Locator::Css(
                    "#replicas tr[data-replica='server4'] td.state",
                ))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text == "up" {
                break;
            }
            assert!(Instant::now() < deadline, "server4 stayed {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let png = browser.screenshot().await.unwrap();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot: {}", path.display());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");

        // Remove takes two clicks (the first arms the button).
        let remove = Locator::Css("#replicas tr[data-replica='server4'] button");
        browser.find(remove).await.unwrap().click().await.unwrap();
        browser.find(remove).await.unwrap().click().await.unwrap();
        let shown = wait_rows(&browser, |r| r.len() == 3).await;
        assert!(!shown.contains(&"server4".to_string()));
        assert_eq!(daemon.replicas(), ["server1", "server2", "server3"]);

        // A replica killed for real shows one respawn once it is back.
        let pid = child_pids(daemon.pid())["server2"];
        signal(pid, "KILL");
        let respawns = Locator::Css("#replicas tr[data-replica='server2'] td:nth-child(5)");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let shown = browser.find(respawns).await.unwrap().text().await.unwrap();
            if shown == "1" {
                break;
            }
            assert!(Instant::now() < deadline, "server2 shows {shown} respawns");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Close the browser session even when an assertion failed.
    let result = AssertUnwindSafe(outcome).catch_unwind().await;
    browser.close().await.ok();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
