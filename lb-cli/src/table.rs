//! Human-readable output.

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
}
