//! What a replica speaks: HTTP/1.1 (default) or HTTP/2 without TLS (`h2c`, prior
//! knowledge, as gRPC servers do). `upstream.protocol` sets it for every replica of
//! every runtime; a static replica's own `protocol` overrides it.

/// The protocol the daemon speaks to a replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive: one request per connection at a time.
    #[default]
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge (RFC 9113 §3.3): requests are
    /// multiplexed as streams on a few connections per replica and worker.
    H2c,
}

impl Protocol {
    /// Parses a config value: `"http1"` or `"h2c"`.
    ///
    /// # Errors
    /// The expected values, as the config error's reason.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value {
            "http1" => Ok(Self::Http1),
            "h2c" => Ok(Self::H2c),
            _ => Err("expected \"http1\" or \"h2c\""),
        }
    }

    /// Whether any of a request's candidates speaks h2c.
    pub fn any_h2c(
        candidates: &[Option<(&lb_core::NodeId, &crate::data_plane::snapshot::Upstream)>],
    ) -> bool {
        candidates
            .iter()
            .flatten()
            .any(|(_, upstream)| upstream.protocol == Protocol::H2c)
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::H2c => "h2c",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn parses_the_config_spellings_only() {
        assert_eq!(Protocol::parse("http1"), Ok(Protocol::Http1));
        assert_eq!(Protocol::parse("h2c"), Ok(Protocol::H2c));
        for bad in ["h2", "HTTP1", "", "http2"] {
            assert!(Protocol::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Protocol::parse(Protocol::H2c.as_str()), Ok(Protocol::H2c));
    }
}
