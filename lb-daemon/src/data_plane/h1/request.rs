//! The client's request head, parsed with `httparse` (the parser hyper is built on),
//! and the decision whether the lean path may serve it.
//!
//! The lean path takes only the plain case; everything else goes to hyper
//! ([`Parse::Handoff`]) together with the rest of the connection, so hyper keeps
//! the last word on anything unusual or malformed: it is never less strict than
//! hyper. Lean requests are HTTP/1.1 requests with
//!
//! - a method among `GET HEAD POST PUT DELETE PATCH OPTIONS` and an origin-form
//!   target made of RFC 3986 characters only;
//! - exactly one `Host`, at most one `Content-Length` (1–19 digits, within the lean
//!   body limit), and no `Transfer-Encoding`, `Upgrade` or `Expect`;
//! - `Connection` listing nothing but `keep-alive` and `close`.
//!
//! So request smuggling's material (CL + TE, duplicate or malformed lengths, obs-fold,
//! oversized heads, more than [`MAX_HEADERS`] fields) always reaches hyper, which
//! refuses it as it would without this path.

use std::net::IpAddr;

/// Header fields parsed per head, as hyper's default.
pub const MAX_HEADERS: usize = 100;

/// Methods the lean path forwards.
const LEAN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// What the bytes received so far are.
#[derive(Debug)]
pub enum Parse<'b> {
    /// A head has started but is not complete.
    Partial,
    /// A complete head the lean path serves.
    Lean(RequestHead<'b>),
    /// hyper serves this request and the rest of the connection.
    Handoff,
}

/// A complete, plain HTTP/1.1 request head.
#[derive(Debug)]
pub struct RequestHead<'b> {
    /// The method, one of the lean ones.
    pub method: &'b str,
    /// The origin-form target (`/path?query`).
    pub target: &'b str,
    /// The header fields in order.
    pub headers: &'b [httparse::Header<'b>],
    /// Bytes of the head, request line to the empty line.
    pub head_len: usize,
    /// `Content-Length`, bytes (0 without one).
    pub body_len: usize,
    /// The client asked to close the connection after this request.
    pub close: bool,
}

impl RequestHead<'_> {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The query, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether the method may be sent twice (RFC 9110 §9.2.2).
    pub fn idempotent(&self) -> bool {
        matches!(self.method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
    }

    /// The head to send the replica, into `out`: the request line, every field but
    /// the hop-by-hop ones and `X-Forwarded-*`, then `X-Forwarded-For` (earlier
    /// values folded, then `client`) and `X-Forwarded-Proto: http` — what the hyper
    /// path sends (see the data plane's `headers` module).
    pub fn write_upstream_head(&self, client: IpAddr, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for header in self.headers {
            let name = header.name;
            if is_hop_by_hop(name)
                || name.eq_ignore_ascii_case("x-forwarded-proto")
                || name.eq_ignore_ascii_case("x-forwarded-for")
            {
                continue;
            }
            push_field(out, name.as_bytes(), header.value);
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        for header in self.headers {
            if header.name.eq_ignore_ascii_case("x-forwarded-for") {
                let value = header.value.trim_ascii();
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
        push_ip(out, client);
        out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n\r\n");
    }
}

/// Headers of one connection, never forwarded (RFC 9110 §7.6.1).
pub fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    use std::io::Write as _;
    let _ = write!(out, "{ip}");
}

/// Parses the start of `buf` into `headers`. `max_head` is the largest head (bytes),
/// `max_body` the largest `Content-Length` the lean path takes.
pub fn parse<'b>(
    buf: &'b [u8],
    headers: &'b mut [httparse::Header<'b>; MAX_HEADERS],
    max_head: usize,
    max_body: usize,
) -> Parse<'b> {
    let mut request = httparse::Request::new(headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Parse::Partial,
        _ => return Parse::Handoff,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Parse::Handoff;
    };
    if !LEAN_METHODS.contains(&method) || !is_origin_form(target) {
        return Parse::Handoff;
    }
    let headers: &'b [httparse::Header<'b>] = request.headers;
    let mut hosts = 0;
    let mut body_len: Option<usize> = None;
    let mut close = false;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            match (body_len, content_length(header.value)) {
                (None, Some(len)) if len <= max_body => body_len = Some(len),
                _ => return Parse::Handoff,
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',') {
                match token.trim_ascii() {
                    t if t.eq_ignore_ascii_case(b"close") => close = true,
                    t if t.eq_ignore_ascii_case(b"keep-alive") => {}
                    _ => return Parse::Handoff,
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Parse::Handoff;
        }
    }
    if hosts != 1 {
        return Parse::Handoff;
    }
    Parse::Lean(RequestHead {
        method,
        target,
        headers,
        head_len,
        body_len: body_len.unwrap_or(0),
        close,
    })
}

/// A `Content-Length` value: 1 to 19 ASCII digits, nothing else (no sign, no
/// spaces inside, no list).
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// `/` then RFC 3986 path and query characters only (unreserved, sub-delims,
/// `:@/?%`): anything else is hyper's to judge.
fn is_origin_form(target: &str) -> bool {
    target.starts_with('/')
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lean(raw: &[u8]) -> Option<(String, String, usize, usize, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse(raw, &mut headers, 8192, 1 << 20) {
            Parse::Lean(h) => Some((
                h.method.into(),
                h.target.into(),
                h.head_len,
                h.body_len,
                h.close,
            )),
            _ => None,
        }
    }

    #[test]
    fn plain_requests_are_lean() {
        let raw = b"GET /a?key=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            lean(raw),
            Some(("GET".into(), "/a?key=1".into(), raw.len(), 0, false))
        );
        let raw =
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        assert_eq!(
            lean(raw),
            Some(("POST".into(), "/p".into(), raw.len() - 5, 5, true))
        );
    }

    #[test]
    fn unusual_requests_go_to_hyper() {
        for raw in [
            &b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"[..],
            b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: x-secret\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
            b"GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        ] {
            assert_eq!(lean(raw), None, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn heads_and_bodies_over_the_limits_go_to_hyper() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n";
        assert!(matches!(parse(raw, &mut headers, 8192, 10), Parse::Handoff));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut headers, 8192, 10),
            Parse::Partial
        ));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut headers, 20, 10),
            Parse::Handoff
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(lean(raw.as_bytes()), None);
    }

    #[test]
    fn the_upstream_head_drops_hop_by_hop_fields_and_folds_forwarded_for() {
        let raw = b"GET /k HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nx-forwarded-for: 2.2.2.2 \r\nX-Key: v\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Parse::Lean(head) = parse(raw, &mut headers, 8192, 0) else {
            panic!("not lean");
        };
        let mut out = Vec::new();
        head.write_upstream_head("10.0.0.9".parse().unwrap(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /k HTTP/1.1\r\nHost: h\r\nX-Key: v\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }
}
