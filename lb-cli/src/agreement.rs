//! `lbctl status URL URL...`: do several daemons route every key alike? Each daemon's
//! `/status` carries its ring fingerprint; daemons with equal fingerprints map every key
//! to the same replica. The fingerprint most daemons show is the reference (the first
//! daemon's, on a tie), and every daemon that shows another one, or cannot be asked,
//! is named.

use lb_api::{RingFingerprint, StatusDocument};
use serde::Serialize;

/// One daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Daemon {
    /// Its base URL, as given.
    pub url: String,
    /// Its ring fingerprint; `None` when it could not be asked.
    pub fingerprint: Option<RingFingerprint>,
    /// Its membership epoch.
    pub epoch: Option<u64>,
    /// Its replicas, in the order it added them.
    pub replicas: Vec<String>,
    /// Whether it shows the reference fingerprint.
    pub agrees: bool,
    /// Why it could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The comparison of several daemons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// True when every daemon answered with the same fingerprint.
    pub agree: bool,
    /// The fingerprint most daemons show (the first daemon's on a tie).
    pub reference: Option<RingFingerprint>,
    /// Every daemon, in the order given.
    pub daemons: Vec<Daemon>,
}

/// Compares the answers of the daemons at the given URLs (`Err`: why one could not be
/// asked).
pub fn compare(answers: Vec<(String, Result<StatusDocument, String>)>) -> Agreement {
    let fingerprints: Vec<RingFingerprint> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok().map(|d| d.fingerprint))
        .collect();
    // The most common fingerprint; `max_by_key` keeps the last maximum, so walk the
    // candidates in reverse to keep the first daemon's on a tie.
    let reference = fingerprints
        .iter()
        .rev()
        .max_by_key(|f| fingerprints.iter().filter(|g| g == f).count())
        .copied();
    let daemons: Vec<Daemon> = answers
        .into_iter()
        .map(|(url, answer)| match answer {
            Ok(document) => Daemon {
                url,
                agrees: Some(document.fingerprint) == reference,
                fingerprint: Some(document.fingerprint),
                epoch: Some(document.epoch),
                replicas: document.replicas.into_iter().map(|r| r.name).collect(),
                error: None,
            },
            Err(error) => Daemon {
                url,
                fingerprint: None,
                epoch: None,
                replicas: Vec::new(),
                agrees: false,
                error: Some(error),
            },
        })
        .collect();
    Agreement {
        agree: daemons.iter().all(|d| d.agrees),
        reference,
        daemons,
    }
}

/// The comparison as text: one row per daemon, then a verdict naming every daemon
/// that disagrees or did not answer.
pub fn render(agreement: &Agreement) -> String {
    let mut out = format!(
        "{:<32} {:<16} {:>6} {:>8}  {}\n",
        "DAEMON", "FINGERPRINT", "EPOCH", "REPLICAS", "AGREES"
    );
    for d in &agreement.daemons {
        let fingerprint = d
            .fingerprint
            .map_or_else(|| "-".to_string(), |f| f.to_string());
        let epoch = d.epoch.map_or_else(|| "-".to_string(), |e| e.to_string());
        let verdict = match (&d.error, d.agrees) {
            (Some(e), _) => format!("no answer: {e}"),
            (None, true) => "yes".to_string(),
            (None, false) => "NO".to_string(),
        };
        out.push_str(&format!(
            "{:<32} {:<16} {:>6} {:>8}  {}\n",
            d.url,
            fingerprint,
            epoch,
            d.replicas.len(),
            verdict
        ));
    }
    if agreement.agree {
        out.push_str(&format!(
            "all {} daemons route every key alike\n",
            agreement.daemons.len()
        ));
    } else {
        let odd: Vec<&str> = agreement
            .daemons
            .iter()
            .filter(|d| !d.agrees)
            .map(|d| d.url.as_str())
            .collect();
        out.push_str(&format!("disagreeing: {}\n", odd.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(fingerprint: u64, replicas: &[&str]) -> StatusDocument {
        let rows: Vec<String> = replicas
            .iter()
            .map(|n| {
                format!(
                    r#"{{"name":"{n}","address":null,"state":"up","uptime_ms":0,"state_ms":0,
                    "respawns":0,"in_flight":0,"requests":0,"ring_share":0.5}}"#
                )
            })
            .collect();
        serde_json::from_str(&format!(
            r#"{{"hash":"xxh3","points_per_weight":160,"fingerprint":"{:016x}","epoch":2,
            "requests":{{"total":0,"unrouted":0}},"replicas":[{}],"uptime_ms":1}}"#,
            fingerprint,
            rows.join(",")
        ))
        .unwrap()
    }

    #[test]
    fn the_odd_daemon_out_is_named() {
        let agreement = compare(vec![
            ("http://a".into(), Ok(document(7, &["s1", "s2"]))),
            ("http://b".into(), Ok(document(9, &["s1", "s2"]))),
            ("http://c".into(), Ok(document(7, &["s1", "s2"]))),
        ]);
        assert!(!agreement.agree);
        assert_eq!(agreement.reference, Some(RingFingerprint(7)));
        let agrees: Vec<bool> = agreement.daemons.iter().map(|d| d.agrees).collect();
        assert_eq!(agrees, [true, false, true]);
        let text = render(&agreement);
        assert!(text.ends_with("disagreeing: http://b\n"), "{text}");
        assert!(text.contains("0000000000000009"), "{text}");
    }

    #[test]
    fn equal_fingerprints_agree_and_a_silent_daemon_does_not() {
        let same = compare(vec![
            ("http://a".into(), Ok(document(5, &["s1"]))),
            ("http://b".into(), Ok(document(5, &["s1"]))),
        ]);
        assert!(same.agree);
        assert!(render(&same).ends_with("all 2 daemons route every key alike\n"));
        let silent = compare(vec![
            ("http://a".into(), Ok(document(5, &["s1"]))),
            ("http://b".into(), Err("connection refused".into())),
        ]);
        assert!(!silent.agree);
        assert!(render(&silent).contains("no answer: connection refused"));
    }

    #[test]
    fn a_tie_takes_the_first_daemons_fingerprint() {
        let tie = compare(vec![
            ("http://a".into(), Ok(document(1, &["s1"]))),
            ("http://b".into(), Ok(document(2, &["s1"]))),
        ]);
        assert_eq!(tie.reference, Some(RingFingerprint(1)));
        assert!(!tie.daemons[1].agrees);
    }
}
