//! Response bodies and the JSON shapes shared by the admin API and the proxy's errors.
//!
//! Success: `{"message": <value>, "status": "successful"}`.
//! Failure: `{"message": "<Error> <reason>", "status": "failure"}`.
//! Both are the shapes of the Python load balancer this daemon replaces.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::data_plane::body::{Frames, ProxiedBody};

/// The body of every response: bytes built here (`Fixed`), or a replica's body
/// streamed through (`Streamed`).
pub type Body = Frames<ProxiedBody>;

/// A body of fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let bytes = bytes.into();
    if bytes.is_empty() {
        Body::Fixed(None)
    } else {
        Body::Fixed(Some(bytes))
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
