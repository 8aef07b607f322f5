//! Human-readable output.

use lb_api::{Explanation, ReplicaState, StatusDocument};

/// An explanation as text: a line with the key's position, owner and route, then one
/// row per candidate in failover order (weight, whether in rotation, in flight).
pub fn explanation(e: &Explanation) -> String {
    let mut out = format!(
        "key {:?}: position {} ({}, {}); owner {}; route {}\n",
        e.key,
        e.position,
        e.hash_function,
        e.algorithm,
        e.owner.as_deref().unwrap_or("none"),
        e.route.as_deref().unwrap_or("none (503)")
    );
    out.push_str(&format!(
        "{:<18} {:>6} {:<11} {:>9}\n",
        "CANDIDATE", "WEIGHT", "IN_ROTATION", "IN_FLIGHT"
    ));
    for c in &e.candidates {
        out.push_str(&format!(
            "{:<18} {:>6} {:<11} {:>9}\n",
            c.name,
            c.weight,
            if c.in_rotation { "yes" } else { "no" },
            c.in_flight
        ));
    }
    out
}

/// The replica list as a table: a count line, a header, one hostname per line.
pub fn replicas(names: &[String]) -> String {
    let mut out = format!(
        "{} replica{}\n",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    );
    out.push_str("REPLICA\n");
    for name in names {
        out.push_str(name);
        out.push('\n');
    }
    out
}

/// The `/status` document as a table: a summary line, then one row per replica in
/// the order added (state, address, uptime in s, respawns, in flight, requests, ring
/// weight, share in %).
pub fn status(document: &StatusDocument) -> String {
    let mut out = format!(
        "{} replica{}, hash {} ({} points per weight), ring {} (epoch {}), {} requests ({} unrouted), up {:.0} s\n",
        document.replicas.len(),
        if document.replicas.len() == 1 {
            ""
        } else {
            "s"
        },
        document.hash,
        document.points_per_weight,
        document.fingerprint,
        document.epoch,
        document.requests.total,
        document.requests.unrouted,
        document.uptime_ms as f64 / 1000.0
    );
    out.push_str(&format!(
        "{:<18} {:<10} {:<22} {:>9} {:>8} {:>9} {:>10} {:>6} {:>6}\n",
        "REPLICA",
        "STATE",
        "ADDRESS",
        "UPTIME_S",
        "RESPAWNS",
        "IN_FLIGHT",
        "REQUESTS",
        "WEIGHT",
        "SHARE"
    ));
    for r in &document.replicas {
        let state = match r.state {
            ReplicaState::Up => "up",
            ReplicaState::Down => "down",
            ReplicaState::Respawning => "respawning",
            ReplicaState::Ejected => "ejected",
        };
        let address = r.address.map_or_else(|| "-".to_string(), |a| a.to_string());
        out.push_str(&format!(
            "{:<18} {:<10} {:<22} {:>9.0} {:>8} {:>9} {:>10} {:>6} {:>5.1}%\n",
            r.name,
            state,
            address,
            r.uptime_ms as f64 / 1000.0,
            r.respawns,
            r.in_flight,
            r.requests,
            r.weight,
            r.ring_share * 100.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_count_header_and_names() {
        let names = vec!["server1".to_string(), "s4".to_string()];
        assert_eq!(
            super::replicas(&names),
            "2 replicas\nREPLICA\nserver1\ns4\n"
        );
        assert_eq!(
            super::replicas(&names[..1]),
            "1 replica\nREPLICA\nserver1\n"
        );
    }

    #[test]
    fn an_explanation_shows_the_route_and_each_candidate_in_order() {
        let explanation: lb_api::Explanation = serde_json::from_str(
            r#"{"key":"alice","hash_function":"xxh3","position":"9b2e0d6c4a1f3e58","algorithm":"ring",
               "owner":"server2","route":"server3","candidates":[
               {"name":"server2","weight":1,"in_rotation":false,"in_flight":0},
               {"name":"server3","weight":2,"in_rotation":true,"in_flight":5}]}"#,
        )
        .unwrap();
        let text = super::explanation(&explanation);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            "key \"alice\": position 9b2e0d6c4a1f3e58 (xxh3, ring); owner server2; route server3"
        );
        assert!(
            lines[2].starts_with("server2") && lines[2].contains(" no "),
            "{text}"
        );
        assert!(
            lines[3].starts_with("server3") && lines[3].ends_with(" 5"),
            "{text}"
        );
    }

    #[test]
    fn the_status_table_has_a_row_per_replica_with_its_state_and_share() {
        let document: lb_api::StatusDocument = serde_json::from_str(
            r#"{"hash":"xxh3","points_per_weight":160,"fingerprint":"00000000000000ab","epoch":4,
               "requests":{"total":7,"unrouted":1},
               "replicas":[{"name":"server1","address":"127.0.0.1:9001","state":"up","uptime_ms":2000,
               "state_ms":2000,"respawns":0,"in_flight":0,"requests":6,"ring_share":0.25},
               {"name":"server2","address":null,"state":"respawning","uptime_ms":0,"state_ms":10,
               "respawns":1,"in_flight":0,"requests":0,"weight":3,"ring_share":0.75}],"uptime_ms":3000}"#,
        )
        .unwrap();
        let table = super::status(&document);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("2 replicas, hash xxh3"), "{table}");
        assert!(
            lines[0].contains("ring 00000000000000ab (epoch 4)"),
            "{table}"
        );
        assert!(lines[2].starts_with("server1") && lines[2].contains("127.0.0.1:9001"));
        assert!(
            lines[2].contains(" up ") && lines[2].ends_with("25.0%"),
            "{table}"
        );
        assert!(
            lines[3].contains("respawning") && lines[3].ends_with("     3  75.0%"),
            "{table}"
        );
        assert!(lines[2].ends_with("     1  25.0%"), "{table}");
    }
}
