//! Header rewriting on the request path (RFC 9110 §7.6.1, and the de facto
//! `X-Forwarded-*` headers of nginx and HAProxy).
//!
//! - Hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped in
//!   both directions, but `TE: trailers` goes on (the daemon passes trailers through,
//!   and gRPC servers require it); an HTTP/1.1 `Upgrade` handshake keeps
//!   `Connection: upgrade` and `Upgrade`, since the daemon tunnels it.
//! - `X-Forwarded-For`: every earlier value (however many header lines) then the
//!   client's address, as one line. `X-Forwarded-Proto`: the scheme the client used.
//! - `Host`: the client's, untouched; an HTTP/2 client's `:authority` becomes `Host`.

use std::fmt::Write as _;
use std::net::IpAddr;

use hyper::header::{
    CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::request::Parts;
use hyper::{Uri, Version};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether `parts` asks for an HTTP/1.1 protocol upgrade (WebSocket and the like):
/// `Connection` names `upgrade` and an `Upgrade` header is present.
pub fn is_upgrade(parts: &Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.headers.contains_key(UPGRADE)
        && connection_names(&parts.headers, "upgrade")
}

/// Whether a `Connection` header line lists `token` (case-insensitive).
fn connection_names(headers: &HeaderMap, token: &str) -> bool {
    lists(headers, CONNECTION, token)
}

/// Whether the comma-separated lines of `name` list `token` (case-insensitive).
fn lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case(token))
}

/// Drops hop-by-hop headers; with `keep_upgrade`, sets `Connection: upgrade` and
/// keeps `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // `TE: trailers` says the client takes trailers (gRPC requires it): it goes on,
    // as nginx's `grpc_pass` and HAProxy send it, even when `Connection` names `TE`
    // (as RFC 9110 asks of HTTP/1.1 clients); other `TE` values stop here.
    let trailers = lists(headers, TE, "trailers");
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !(keep_upgrade && name == UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, TE, TRAILER, TRANSFER_ENCODING] {
        headers.remove(name);
    }
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// Appends `client` to `X-Forwarded-For`, folding earlier lines into one.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let mut value = String::with_capacity(48);
    for prior in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(prior) = prior.to_str() {
            value.push_str(prior.trim());
            value.push_str(", ");
        }
    }
    let _ = write!(value, "{client}");
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// Sets `X-Forwarded-Proto` to the scheme the client used (`https` when the daemon
/// terminated TLS); a value the client sent is replaced, not trusted.
pub fn set_forwarded_proto(headers: &mut HeaderMap, https: bool) {
    let proto = if https { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// Makes sure the replica sees the client's host: an HTTP/2 request carries it in
/// `:authority` (the URI), which becomes `Host` when no `Host` header came along.
pub fn ensure_host(headers: &mut HeaderMap, uri: &Uri) {
    if headers.contains_key(HOST) {
        return;
    }
    if let Some(authority) = uri.authority() {
        if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
            headers.insert(HOST, value);
        }
    }
}

/// `request` as an HTTP/2 client sends it to `addr`: the target in absolute form
/// (`http://<Host>/path?query`, whence h2 takes `:scheme` and `:authority`), `Host`
/// dropped (RFC 9113 §8.3.1). A `Host` that is no valid authority stays a header and
/// `:authority` is `addr`.
pub fn absolute_form<B>(
    mut request: hyper::Request<B>,
    addr: std::net::SocketAddr,
) -> hyper::Request<B> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let from_host = request
        .headers()
        .get(HOST)
        .and_then(|h| hyper::http::uri::Authority::try_from(h.as_bytes()).ok());
    let authority = match from_host {
        Some(authority) => {
            request.headers_mut().remove(HOST);
            authority
        }
        None => match hyper::http::uri::Authority::try_from(addr.to_string()) {
            Ok(authority) => authority,
            Err(_) => return request,
        },
    };
    if let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
    {
        *request.uri_mut() = uri;
    }
    *request.version_mut() = Version::HTTP_2;
    request
}

/// The request target to send upstream: origin form (`/path?query`), whatever form
/// the client used (HTTP/2 and absolute-form requests carry scheme and authority).
pub fn origin_form(uri: Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri;
    }
    let mut parts = hyper::http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-lb-key", "user-1"),
        ] {
            headers.insert(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers, false);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-lb-key"]);
    }

    #[test]
    fn te_trailers_goes_on_and_other_te_values_stop() {
        for (connection, te, kept) in [
            (None, "trailers", true),
            (Some("TE"), "trailers, deflate", true),
            (None, "gzip", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(TE, HeaderValue::from_static(te));
            if let Some(c) = connection {
                headers.insert(CONNECTION, HeaderValue::from_static(c));
            }
            strip_hop_by_hop(&mut headers, false);
            let left = headers.get(TE).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(
                left,
                kept.then(|| "trailers".to_string()),
                "{connection:?} {te}"
            );
            assert!(!headers.contains_key(CONNECTION));
        }
    }

    #[test]
    fn an_upgrade_keeps_its_two_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[CONNECTION], "upgrade");
        assert_eq!(headers[UPGRADE], "websocket");
        assert!(!headers.contains_key(KEEP_ALIVE));
    }

    #[test]
    fn forwarded_for_folds_every_line_and_appends() {
        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("10.0.0.2, 10.0.0.3"),
        );
        append_forwarded_for(&mut headers, IpAddr::from([127, 0, 0, 1]));
        let all: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(all, vec!["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]);
    }

    #[test]
    fn authority_becomes_host_and_the_target_origin_form() {
        let uri: Uri = "http://example.test:8080/a/b?k=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        ensure_host(&mut headers, &uri);
        assert_eq!(headers[HOST], "example.test:8080");
        assert_eq!(origin_form(uri), "/a/b?k=1");
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("client.test"));
        ensure_host(&mut headers, &"http://other.test/".parse().unwrap());
        assert_eq!(headers[HOST], "client.test");
    }
}
