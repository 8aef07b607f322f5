//! The request key: what the ring hashes to pick a replica.
//!
//! Sources are tried in the configured order; the first one present gives the key.
//! When none is present the request is keyless, and the config's `keyless` policy
//! routes it (a random key by default, so keyless traffic spreads over all replicas as
//! Envoy's ring hash does when no hash policy matches; see
//! [`routing`](crate::data_plane::routing)).
//!
//! | source (config string) | key bytes |
//! |---|---|
//! | `header:NAME` | the value of the first `NAME` header |
//! | `cookie:NAME` | the value of cookie `NAME` in the `Cookie` headers |
//! | `query:NAME` | the raw (still percent-encoded) value of query parameter `NAME` |
//! | `path` | the path, without the query |
//! | `path_segment:N` | the path's `N`th segment (1..=64), if present and not empty: `path_segment:1` of a gRPC call's `/pkg.Service/Method` is `pkg.Service`, to shard by service |
//! | `client_ip` | the client's IP address as text (`127.0.0.1`, `::1`) |
//!
//! gRPC metadata travels as headers, so `header:NAME` keys RPCs by metadata, and `path`
//! keys them by method (`/pkg.Service/Method`).

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use hyper::Uri;
use hyper::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};

/// Where to find a request's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Query(String),
    /// The URI path.
    Path,
    /// One segment of the URI path, counted from 1.
    PathSegment(usize),
    /// The client's IP address.
    ClientIp,
}

/// Why a key source string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySourceError {
    /// `header:`, `cookie:` or `query:` with nothing after the colon.
    #[error("{0:?} needs a name after the colon")]
    MissingName(String),
    /// `header:NAME` where NAME cannot be a header name.
    #[error("{0:?} is not a valid header name")]
    BadHeaderName(String),
    /// `path_segment:N` where N is not a number from 1 to 64.
    #[error("{0:?}: the segment must be a number from 1 to 64")]
    BadSegment(String),
    /// None of the known sources.
    #[error(
        "{0:?} is not a key source; expected header:NAME, cookie:NAME, query:NAME, path, path_segment:N or client_ip"
    )]
    Unknown(String),
}

impl FromStr for KeySource {
    type Err = KeySourceError;

    /// Parses `header:NAME`, `cookie:NAME`, `query:NAME`, `path`, `path_segment:N` or
    /// `client_ip`.
    fn from_str(s: &str) -> Result<Self, KeySourceError> {
        let named = |name: &str| {
            if name.is_empty() {
                Err(KeySourceError::MissingName(s.to_string()))
            } else {
                Ok(name.to_string())
            }
        };
        match s.split_once(':') {
            Some(("header", name)) => HeaderName::from_bytes(named(name)?.as_bytes())
                .map(KeySource::Header)
                .map_err(|_| KeySourceError::BadHeaderName(name.to_string())),
            Some(("cookie", name)) => named(name).map(KeySource::Cookie),
            Some(("query", name)) => named(name).map(KeySource::Query),
            Some(("path_segment", n)) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .map(KeySource::PathSegment)
                .ok_or_else(|| KeySourceError::BadSegment(s.to_string())),
            None if s == "path" => Ok(KeySource::Path),
            None if s == "client_ip" => Ok(KeySource::ClientIp),
            _ => Err(KeySourceError::Unknown(s.to_string())),
        }
    }
}

/// What a key source reads of a request: hyper's parts ([`HyperRequest`]) or the
/// lean HTTP/1 path's head.
pub trait KeyedRequest {
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The query, without `?`.
    fn query(&self) -> Option<&str>;
    /// The values of every `name` field in order; `name` is lowercase.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

/// A request as hyper parsed it.
#[derive(Debug, Clone, Copy)]
pub struct HyperRequest<'r> {
    /// Its target.
    pub uri: &'r Uri,
    /// Its header fields.
    pub headers: &'r HeaderMap,
}

impl KeyedRequest for HyperRequest<'_> {
    fn path(&self) -> &str {
        self.uri.path()
    }

    fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .get_all(name)
            .into_iter()
            .map(HeaderValue::as_bytes)
    }
}

impl KeySource {
    /// This source's key in `req` from `client`, if present.
    pub fn extract<'r>(
        &'r self,
        req: &'r impl KeyedRequest,
        client: IpAddr,
    ) -> Option<Cow<'r, [u8]>> {
        match self {
            KeySource::Header(name) => req.header_values(name.as_str()).next().map(Cow::Borrowed),
            KeySource::Cookie(name) => req
                .header_values(COOKIE.as_str())
                .filter_map(|v| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| Cow::Borrowed(v.as_bytes())),
            KeySource::Query(name) => req
                .query()?
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .find(|(k, _)| k == name)
                .map(|(_, v)| Cow::Borrowed(v.as_bytes())),
            KeySource::Path => Some(Cow::Borrowed(req.path().as_bytes())),
            KeySource::PathSegment(n) => req
                .path()
                .strip_prefix('/')?
                .split('/')
                .nth(n - 1)
                .filter(|segment| !segment.is_empty())
                .map(|segment| Cow::Borrowed(segment.as_bytes())),
            KeySource::ClientIp => Some(Cow::Owned(client.to_string().into_bytes())),
        }
    }
}

/// The key of `req` from `client`: the first source present; `None` when the request
/// has none (the routing's `keyless` policy decides then).
pub fn request_key<'r>(
    sources: &'r [KeySource],
    req: &'r impl KeyedRequest,
    client: IpAddr,
) -> Option<Cow<'r, [u8]>> {
    sources.iter().find_map(|s| s.extract(req, client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn request_key(sources: &[KeySource], req: &Request<()>, client: IpAddr) -> Option<Vec<u8>> {
        super::request_key(
            sources,
            &HyperRequest {
                uri: req.uri(),
                headers: req.headers(),
            },
            client,
        )
        .map(std::borrow::Cow::into_owned)
    }

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    fn sources(list: &[&str]) -> Vec<KeySource> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn sources_are_tried_in_order() {
        let s = sources(&["header:x-lb-key", "cookie:sid", "query:user", "path"]);
        let r = req(
            "/a/b?x=1&user=bob",
            &[("cookie", "a=1; sid=s42"), ("x-lb-key", "k1")],
        );
        assert_eq!(request_key(&s, &r, IP).as_deref(), Some(&b"k1"[..]));
        let r = req("/a/b?x=1&user=bob", &[("cookie", "a=1; sid=s42")]);
        assert_eq!(request_key(&s, &r, IP).as_deref(), Some(&b"s42"[..]));
        let r = req("/a/b?x=1&user=bob", &[]);
        assert_eq!(request_key(&s, &r, IP).as_deref(), Some(&b"bob"[..]));
        let r = req("/a/b?x=1", &[]);
        assert_eq!(request_key(&s, &r, IP).as_deref(), Some(&b"/a/b"[..]));
        assert_eq!(
            request_key(&sources(&["client_ip"]), &r, IP).as_deref(),
            Some(&b"127.0.0.1"[..])
        );
    }

    #[test]
    fn a_path_segment_keys_an_rpc_by_its_service() {
        let s = sources(&["path_segment:1", "client_ip"]);
        let call = req("/echo.Echo/Say", &[]);
        assert_eq!(
            request_key(&s, &call, IP).as_deref(),
            Some(&b"echo.Echo"[..])
        );
        let method = sources(&["path_segment:2"]);
        assert_eq!(
            request_key(&method, &call, IP).as_deref(),
            Some(&b"Say"[..])
        );
        // Absent or empty segments fall through to the next source.
        for path in ["/", "//Say"] {
            assert_eq!(
                request_key(&s, &req(path, &[]), IP).as_deref(),
                Some(&b"127.0.0.1"[..]),
                "{path}"
            );
        }
        assert_eq!(request_key(&sources(&["path_segment:3"]), &call, IP), None);
    }

    #[test]
    fn a_request_without_any_source_is_keyless() {
        let s = sources(&["header:x-lb-key", "cookie:sid"]);
        let r = req("/home", &[("cookie", "other=1")]);
        assert_eq!(request_key(&s, &r, IP), None);
    }

    #[test]
    fn bad_sources_are_refused() {
        for bad in [
            "header:",
            "header:bad header",
            "cookie:",
            "ip",
            "query",
            "path_segment:0",
            "path_segment:x",
            "path_segment:65",
        ] {
            assert!(bad.parse::<KeySource>().is_err(), "{bad}");
        }
    }
}
