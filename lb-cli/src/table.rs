//! Human-readable output.

use lb_api::{ReplicaState, StatusDocument};

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
/// share in %).
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
        "{:<18} {:<10} {:<22} {:>9} {:>8} {:>9} {:>10} {:>6}\n",
        "REPLICA", "STATE", "ADDRESS", "UPTIME_S", "RESPAWNS", "IN_FLIGHT", "REQUESTS", "SHARE"
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
            "{:<18} {:<10} {:<22} {:>9.0} {:>8} {:>9} {:>10} {:>5.1}%\n",
            r.name,
            state,
            address,
            r.uptime_ms as f64 / 1000.0,
            r.respawns,
            r.in_flight,
            r.requests,
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
    fn the_status_table_has_a_row_per_replica_with_its_state_and_share() {
        let document: lb_api::StatusDocument = serde_json::from_str(
            r#"{"hash":"xxh3","points_per_weight":160,"fingerprint":"00000000000000ab","epoch":4,
               "requests":{"total":7,"unrouted":1},
               "replicas":[{"name":"server1","address":"127.0.0.1:9001","state":"up","uptime_ms":2000,
               "state_ms":2000,"respawns":0,"in_flight":0,"requests":6,"ring_share":0.25},
               {"name":"server2","address":null,"state":"respawning","uptime_ms":0,"state_ms":10,
               "respawns":1,"in_flight":0,"requests":0,"ring_share":0.75}],"uptime_ms":3000}"#,
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
        assert!(lines[3].contains("respawning") && lines[3].ends_with("75.0%"));
    }
}
