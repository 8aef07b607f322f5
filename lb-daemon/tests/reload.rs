//! SIGHUP: a valid config is applied live; an invalid one is rejected with the reason
//! and the running config stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Daemon, agent, base_config, signal, wait_for};

/// The replica that serves `/home?user=<user>` (no key header).
fn served_for_user(daemon: &Daemon, user: &str) -> String {
    let resp = agent()
        .get(&daemon.url(&format!("/home?user={user}")))
        .call()
        .unwrap();
    resp.header("x-lb-replica").unwrap().to_string()
}

#[test]
fn sighup_applies_a_valid_config_and_rejects_an_invalid_one() {
    let config = base_config(3);
    let daemon = Daemon::start(&config);
    // Keyed by header only: the same user spreads over replicas (random keys).
    let spread: std::collections::HashSet<String> =
        (0..40).map(|_| served_for_user(&daemon, "alice")).collect();
    assert!(spread.len() > 1, "{spread:?}");

    std::fs::write(
        &daemon.config,
        config.replacen(
            "replicas = 3\n",
            "replicas = 3\nkey = [\"query:user\"]\n",
            1,
        ),
    )
    .unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .log_contains("config reloaded")
            .then_some(()))
        .is_some()
    );
    let pinned: std::collections::HashSet<String> =
        (0..40).map(|_| served_for_user(&daemon, "alice")).collect();
    assert_eq!(
        pinned.len(),
        1,
        "after reload the query parameter is the key: {pinned:?}"
    );

    std::fs::write(&daemon.config, "replicas = \"many\"\n").unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .log_contains("config reload rejected")
            .then_some(()))
        .is_some()
    );
    assert!(
        daemon.log_contains("replicas"),
        "the rejection names the key"
    );
    let still: std::collections::HashSet<String> =
        (0..20).map(|_| served_for_user(&daemon, "alice")).collect();
    assert_eq!(still, pinned, "the running config stayed");
    assert_eq!(daemon.home(Some("k")).0, 200);
}
