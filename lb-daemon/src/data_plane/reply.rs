//! Response bodies, and the admin API's answer shapes ([`lb_api::Answer`]) as
//! responses, shared by the admin API and the proxy's own errors.
//!
//! Success: `{"message": <value>, "status": "successful"}`.
//! Failure: `{"message": "<Error> <reason>", "status": "failure"}`.
//! Both are the shapes of the Python load balancer this daemon replaces.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use lb_api::Answer;
use serde::Serialize;

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
pub fn success<T: Serialize>(status: StatusCode, message: T) -> Response<Body> {
    json_response(status, Answer::success(message).to_json())
}

/// `status` with the failure shape; `reason` gets the `<Error> ` prefix.
pub fn failure(status: StatusCode, reason: impl std::fmt::Display) -> Response<Body> {
    json_response(status, Answer::<()>::failure(reason).to_json())
}

fn json_response(status: StatusCode, json: String) -> Response<Body> {
    let mut response = Response::new(full(json));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
