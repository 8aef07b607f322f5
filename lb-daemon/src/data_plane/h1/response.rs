//! The replica's response head on the lean path: parsed with `httparse`, rewritten
//! for the client (hop-by-hop fields dropped, `X-LB-Replica` added) and its body's
//! framing decided as RFC 9112 §6.3 says, so the connection can be reused exactly
//! when the body has ended.

use std::io::Write as _;

use crate::data_plane::h1::request::{MAX_HEADERS, is_hop_by_hop};

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: `HEAD`, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, forwarded as it is;
    /// [`Chunked`](super::chunked::Chunked) finds the end.
    Chunked,
    /// Until the replica closes (HTTP/1.0 style); the client connection closes after.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head in the replica's stream.
    pub head_len: usize,
    /// The status code.
    pub status: u16,
    /// How the body ends.
    pub framing: Framing,
    /// The replica keeps the connection open after this response.
    pub keep_alive: bool,
}

/// What the replica's bytes so far are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a complete head yet.
    Partial,
    /// A 1xx head of `len` bytes, to skip (the lean path never asks for 100-continue
    /// or an upgrade, so an informational answer carries nothing for the client).
    Informational(usize),
    /// A final response head; the client's version was written to `out`.
    Final(ResponseHead),
}

/// Why a replica's response cannot be forwarded (a 502, charged to the replica).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadResponse {
    /// `httparse` refused the head.
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
    /// Conflicting or invalid framing fields.
    #[error("invalid response framing: {0}")]
    Framing(&'static str),
    /// `101` to a request that asked for no upgrade.
    #[error("unrequested protocol switch")]
    Switch,
}

/// Parses the replica's bytes in `buf`. For a final head, writes the client's head to
/// `out`: the status line as HTTP/1.1, the replica's fields but the hop-by-hop ones
/// (`Transfer-Encoding` stays when the chunked body is forwarded as it is), then
/// `x-lb-replica: {replica}` and, when `close` or the body runs until the replica
/// closes, `connection: close`. `head_request` tells that the request was `HEAD`.
///
/// # Errors
/// [`BadResponse`] for a head that cannot be forwarded.
pub fn parse(
    buf: &[u8],
    head_request: bool,
    replica: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> Result<Parsed, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(BadResponse::Malformed(error_name(e))),
    };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(BadResponse::Malformed("no status"));
    };
    match status {
        // `http::StatusCode` (and so hyper) knows only 100..=999; "020" would be
        // written back as "20" and break the client's parse.
        0..=99 => return Err(BadResponse::Malformed("status below 100")),
        101 => return Err(BadResponse::Switch),
        100..=199 => return Ok(Parsed::Informational(head_len)),
        _ => {}
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut keep_alive = version == 1;
    let mut names_others = false;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(BadResponse::Framing("bad Content-Length"))?;
            if length.is_some_and(|l| l != value) {
                return Err(BadResponse::Framing("conflicting Content-Length"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(BadResponse::Framing(
                    "Transfer-Encoding without final chunked",
                ));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = keep_alive || version == 0;
                } else if !token.is_empty() {
                    names_others = true;
                }
            }
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(len) = length {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    let close = close || framing == Framing::UntilClose;

    let _ = write!(out, "HTTP/1.1 {status} ");
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in response.headers.iter() {
        let name = header.name;
        let keep = if name.eq_ignore_ascii_case("transfer-encoding") {
            framing == Framing::Chunked
        } else if name.eq_ignore_ascii_case("content-length") {
            !chunked
        } else {
            !(is_hop_by_hop(name)
                || name.eq_ignore_ascii_case("x-lb-replica")
                || names_others && connection_names(response.headers, name))
        };
        if keep {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"x-lb-replica: ");
    out.extend_from_slice(replica);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Parsed::Final(ResponseHead {
        head_len,
        status,
        framing,
        keep_alive: keep_alive && framing != Framing::UntilClose,
    }))
}

/// Whether a `Connection` field lists `name`.
fn connection_names(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

fn error_name(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "new line",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_request: bool) -> (Result<Parsed, BadResponse>, String) {
        let mut out = Vec::new();
        let parsed = parse(raw.as_bytes(), head_request, b"r1", false, &mut out);
        (parsed, String::from_utf8(out).unwrap())
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Framing::UntilClose, false),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
        ];
        for (raw, head_request, framing, keep_alive) in cases {
            match head(raw, head_request).0 {
                Ok(Parsed::Final(h)) => {
                    assert_eq!((h.framing, h.keep_alive), (framing, keep_alive), "{raw}");
                    assert_eq!(h.head_len, raw.len());
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_framing_and_switches_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            // Found by the fuzz target: written back as "20", which no client parses.
            "HTTP/1.1 020 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(head(raw, false).0.is_err(), "{raw}");
        }
        assert_eq!(
            head("HTTP/1.1 100 Continue\r\n\r\n", false).0,
            Ok(Parsed::Informational(25))
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Le", false).0,
            Ok(Parsed::Partial)
        );
    }

    #[test]
    fn the_client_head_drops_hop_by_hop_fields() {
        let (_, out) = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-LB-Replica: forged\r\nContent-Length: 2\r\nX-App: a\r\n\r\n",
            false,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App: a\r\nx-lb-replica: r1\r\n\r\n"
        );
        let (_, out) = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
        let (_, out) = head("HTTP/1.1 200 OK\r\n\r\n", false);
        assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");
    }
}
