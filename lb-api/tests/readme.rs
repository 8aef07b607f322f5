//! The README's admin API examples are the seed-compatible shapes (those of the Python
//! load balancer the daemon replaces): each one reads into its type and writes back
//! byte for byte.

use lb_api::{Answer, ChangeRequest, Explanation, ReplicaList, StatusDocument};

const README: &str = include_str!("../../README.md");

/// The JSON after each `# ` answer line of the README's shell examples (continuation
/// lines that start with `#  ` are joined), with the call that produced it.
fn answers() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut call = String::new();
    let mut lines = README.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("curl ") {
            call = line.to_string();
        } else if let Some(json) = line.strip_prefix("# {\"message\"") {
            // A comment may follow the JSON after two or more spaces.
            let json = json.split("  ").next().unwrap_or_default();
            let mut json = format!("{{\"message\"{json}");
            while let Some(more) = lines.peek().and_then(|l| l.strip_prefix("#  ")) {
                json.push_str(more.trim());
                lines.next();
            }
            found.push((call.clone(), json));
        }
    }
    found
}

#[test]
fn every_answer_in_the_readme_round_trips() {
    let answers = answers();
    let mut kinds = [0; 3];
    for (call, json) in &answers {
        let written = if call.contains("/explain") {
            Answer::<Explanation>::from_json(json).map(|a| a.to_json())
        } else if call.contains("/status") {
            kinds[0] += 1;
            Answer::<StatusDocument>::from_json(json).map(|a| a.to_json())
        } else if call.contains("/rep") || call.contains("/add") || call.contains("/rm") {
            kinds[1] += 1;
            Answer::<ReplicaList>::from_json(json).map(|a| a.to_json())
        } else {
            kinds[2] += 1;
            Answer::<String>::from_json(json).map(|a| a.to_json())
        };
        assert_eq!(written.as_deref().ok(), Some(json.as_str()), "{call}");
    }
    assert!(
        kinds.iter().all(|&k| k > 0),
        "the README lost its /status, replica list or message examples: {kinds:?}"
    );
}

#[test]
fn every_request_body_in_the_readme_round_trips() {
    let bodies: Vec<&str> = README
        .lines()
        .filter(|l| l.contains("/add") || l.contains("/rm"))
        .filter_map(|l| l.split(['\'', '`']).find(|part| part.starts_with("{\"n\"")))
        .collect();
    assert!(bodies.len() >= 4, "{bodies:?}");
    for body in bodies {
        let request = ChangeRequest::from_json(body.as_bytes());
        assert_eq!(request.map(|r| r.to_json()).as_deref(), Ok(body));
    }
}
