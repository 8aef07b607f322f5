//! What the proxy knows of gRPC (the "gRPC over HTTP/2" protocol, grpc/grpc
//! `doc/PROTOCOL-HTTP2.md`): which requests are gRPC calls, their `grpc-timeout`, and
//! how the daemon answers one itself.
//!
//! - A request whose `content-type` is `application/grpc` or `application/grpc+…` is a
//!   gRPC call.
//! - When the daemon must answer a call itself (no replica, every try failed, the
//!   connection cap's queue timed out), the answer is what a gRPC client understands:
//!   HTTP 200 with a trailers-only response, `grpc-status` and `grpc-message` in its
//!   headers. The status follows gRPC's HTTP-to-gRPC mapping
//!   (`doc/http-grpc-status-mapping.md`): 502, 503, 504 and 429 become 14
//!   `UNAVAILABLE`, 400 `INTERNAL`, 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`,
//!   404 and 405 `UNIMPLEMENTED`, others `UNKNOWN`.
//! - `grpc-timeout` bounds the whole call, response stream included: past it the daemon
//!   answers 4 `DEADLINE_EXCEEDED` (or ends a response stream already under way with
//!   trailers saying so) and cancels the replica's stream. The header goes on to the
//!   replica unchanged.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::data_plane::reply::Body;

/// `grpc-status`.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-timeout`.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The gRPC status codes the daemon itself answers with (`grpc/status.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// 2: the HTTP status says nothing more precise.
    Unknown = 2,
    /// 4: the call's `grpc-timeout` passed.
    DeadlineExceeded = 4,
    /// 7: 403.
    PermissionDenied = 7,
    /// 12: 404, 405.
    Unimplemented = 12,
    /// 13: 400.
    Internal = 13,
    /// 14: no replica could take the call; the client may try again.
    Unavailable = 14,
    /// 16: 401.
    Unauthenticated = 16,
}

impl Code {
    /// gRPC's code for an HTTP status the daemon would have answered.
    pub fn for_http(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 | 405 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    fn header(self) -> HeaderValue {
        HeaderValue::from(u16::from(self as u8))
    }
}

/// Whether `headers` are a gRPC call's (`content-type: application/grpc[+…|;…]`).
pub fn is_call(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes) else {
        return false;
    };
    let (prefix, rest) = value.split_at(value.len().min(16));
    prefix.eq_ignore_ascii_case(b"application/grpc")
        && matches!(rest.first(), None | Some(b'+' | b';'))
}

/// The call's `grpc-timeout`: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`); `None` when absent or malformed (a malformed one is ignored, as grpc-go does).
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A trailers-only answer: HTTP 200, `content-type: application/grpc`, `code` and
/// `message` (percent-encoded as the protocol asks), no body.
pub fn answer(code: Code, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::Fixed(None));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(GRPC_STATUS, code.header());
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert(GRPC_MESSAGE, value);
    }
    response
}

/// The trailers that end a response stream cut at the call's deadline.
pub fn deadline_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(2);
    trailers.insert(GRPC_STATUS, Code::DeadlineExceeded.header());
    trailers.insert(
        GRPC_MESSAGE,
        HeaderValue::from_static("deadline exceeded at the load balancer"),
    );
    trailers
}

/// The daemon's own HTTP answer `response` (a failure with the admin API's JSON
/// shape) as a gRPC client understands it.
pub fn translate(response: Response<Body>) -> Response<Body> {
    let code = Code::for_http(response.status());
    let reason = match response.body() {
        Body::Fixed(Some(json)) => reason_of(json),
        _ => None,
    };
    let reason = reason.unwrap_or_else(|| {
        response
            .status()
            .canonical_reason()
            .unwrap_or("no answer")
            .to_string()
    });
    let mut answer = answer(code, &reason);
    if let Some(retry_after) = response.headers().get(hyper::header::RETRY_AFTER) {
        answer
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, retry_after.clone());
    }
    answer
}

/// The reason in a failure's JSON (`{"message": "<Error> reason", …}`).
fn reason_of(json: &Bytes) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let message = value.get("message")?.as_str()?;
    Some(
        message
            .strip_prefix("<Error> ")
            .unwrap_or(message)
            .to_string(),
    )
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_plane::reply::failure;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_call_is_told_by_its_content_type() {
        assert!(is_call(&headers(&[("content-type", "application/grpc")])));
        assert!(is_call(&headers(&[(
            "content-type",
            "application/grpc+proto"
        )])));
        assert!(is_call(&headers(&[("content-type", "Application/GRPC")])));
        assert!(!is_call(&headers(&[("content-type", "application/json")])));
        assert!(!is_call(&headers(&[("content-type", "application/grp")])));
        assert!(is_call(&headers(&[(
            "content-type",
            "application/grpc; x=1"
        )])));
        assert!(!is_call(&headers(&[(
            "content-type",
            "application/grpc-web"
        )])));
        assert!(!is_call(&headers(&[("content-type", "application/grpcx")])));
        assert!(!is_call(&headers(&[])));
    }

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        let t = |v: &'static str| timeout(&headers(&[("grpc-timeout", v)]));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("3M"), Some(Duration::from_secs(180)));
        assert_eq!(t("250u"), Some(Duration::from_micros(250)));
        assert_eq!(t("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "100", "100x", "123456789m", "-1S", "1.5S"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn a_failure_becomes_a_trailers_only_answer() {
        let answer = translate(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy replica is available",
        ));
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(answer.headers()[GRPC_STATUS], "14");
        assert_eq!(
            answer.headers()[GRPC_MESSAGE],
            "no healthy replica is available"
        );
        assert!(matches!(answer.body(), Body::Fixed(None)));
        let timeout = translate(failure(StatusCode::GATEWAY_TIMEOUT, "late"));
        assert_eq!(timeout.headers()[GRPC_STATUS], "14");
        let unknown = translate(failure(StatusCode::INTERNAL_SERVER_ERROR, "x"));
        assert_eq!(unknown.headers()[GRPC_STATUS], "2");
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("100% sure é"), "100%25 sure %C3%A9");
        let answer = answer(Code::DeadlineExceeded, "line\nbreak");
        assert_eq!(answer.headers()[GRPC_MESSAGE], "line%0Abreak");
        assert_eq!(answer.headers()[GRPC_STATUS], "4");
    }
}
