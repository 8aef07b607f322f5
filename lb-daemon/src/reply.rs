//! Response bodies and the JSON shapes shared by the admin API and the proxy's errors.
//!
//! Success: `{"message": <value>, "status": "successful"}`.
//! Failure: `{"message": "<Error> <reason>", "status": "failure"}`.
//! Both are the shapes of the Python load balancer this daemon replaces.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::data_plane::body::ProxiedBody;

/// The body of every response: bytes built here, or a replica's body streamed through.
///
/// An enum rather than a boxed trait object, so a proxied response costs no allocation
/// for its body.
#[derive(Debug)]
pub enum Body {
    /// Fixed bytes (admin answers, errors); `None` once sent.
    Full(Option<Bytes>),
    /// A replica's response body, streamed as it arrives.
    Proxied(ProxiedBody),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Proxied(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Proxied(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Proxied(body) => body.size_hint(),
        }
    }
}

/// A body of fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let bytes = bytes.into();
    if bytes.is_empty() {
        Body::Full(None)
    } else {
        Body::Full(Some(bytes))
    }
}

/// `status` with the success shape around `message`.
pub fn success(status: StatusCode, message: Value) -> Response<Body> {
    json_response(
        status,
        &json!({ "message": message, "status": "successful" }),
    )
}

/// `status` with the failure shape; `reason` gets the `<Error> ` prefix.
pub fn failure(status: StatusCode, reason: impl std::fmt::Display) -> Response<Body> {
    json_response(
        status,
        &json!({ "message": format!("<Error> {reason}"), "status": "failure" }),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
