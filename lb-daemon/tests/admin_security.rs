//! Admin API security: bearer token on mutating calls, a separate admin listener, and
//! refusal to expose the admin API beyond loopback without a token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Daemon, agent, base_config, binary, call, wait_for};

const TOKEN: &str = "s3cret-token-for-tests";

fn with_admin(extra: &str) -> String {
    base_config(2).replace("[shutdown]", &format!("[admin]\n{extra}\n\n[shutdown]"))
}

#[test]
fn mutating_calls_need_the_bearer_token() {
    let daemon = Daemon::start(&with_admin(&format!("token = \"{TOKEN}\"")));
    let (status, body) = call("POST", &daemon.url("/add"), Some(r#"{"n":1}"#));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let wrong = agent()
        .post(&daemon.url("/add"))
        .header("authorization", "Bearer not-the-token-at-all")
        .send(r#"{"n":1}"#)
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let (status, _) = call("DELETE", &daemon.url("/rm"), Some(r#"{"n":1}"#));
    assert_eq!(status, 401);
    assert_eq!(
        daemon.replicas(),
        ["server1", "server2"],
        "refused calls changed nothing; /rep needs no token"
    );
    let ok = agent()
        .post(&daemon.url("/add"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send(r#"{"n":1}"#)
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(daemon.replicas().len(), 3);
}

#[test]
fn admin_listen_moves_the_admin_api_off_the_proxy_port() {
    let daemon = Daemon::start(&with_admin("listen = \"127.0.0.1:0\""));
    let admin = wait_for(std::time::Duration::from_secs(5), || {
        let log = daemon.log.lock().unwrap();
        log.iter()
            .find(|l| l.contains("admin API listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
    .expect("the admin listener is logged");
    let (status, body) = call("GET", &format!("http://{admin}/rep"), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"N\":2"), "{body}");
    // On the proxy port, /rep is an ordinary path that a replica answers.
    let (status, body) = call("GET", &daemon.url("/rep"), None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("does not exist in server replicas"), "{body}");
    let (status, _) = call("GET", &format!("http://{admin}/home"), None);
    assert_eq!(status, 404, "the admin listener proxies nothing");
}

#[test]
fn a_non_loopback_admin_api_without_a_token_is_refused() {
    let dir = std::env::temp_dir().join(format!("lb-admin-{}", common::fastrand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let check = |text: &str| {
        let path = dir.join("lb.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(binary("lb-daemon"))
            .arg("--check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let open = base_config(1).replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let (code, err) = check(&open);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("admin.token") && err.contains("loopback"),
        "{err}"
    );
    let (code, err) = check(&open.replace(
        "[shutdown]",
        &format!("[admin]\ntoken = \"{TOKEN}\"\n\n[shutdown]"),
    ));
    assert_eq!(code, 0, "{err}");
    let (code, err) = check(&open.replace(
        "[shutdown]",
        "[admin]\nlisten = \"127.0.0.1:5999\"\n\n[shutdown]",
    ));
    assert_eq!(code, 0, "admin on loopback, proxy public: {err}");
    let (code, err) =
        check(&base_config(1).replace("[shutdown]", "[admin]\ntoken = \"short\"\n\n[shutdown]"));
    assert_eq!(code, 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lbctl_sends_the_token() {
    let daemon = Daemon::start(&with_admin(&format!("token = \"{TOKEN}\"")));
    let run = |extra: &[&str]| {
        Command::new(binary("lbctl"))
            .arg("--url")
            .arg(daemon.url(""))
            .args(extra)
            .args(["add", "-n", "1"])
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Authorization"));
    let accepted = run(&["--token", TOKEN]);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert_eq!(daemon.replicas().len(), 3);
}
