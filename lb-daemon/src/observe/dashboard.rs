//! `GET /dashboard`: a live page for operators, served by the admin API. One static HTML
//! file with inline JS and CSS, embedded in the binary (no build step, nothing fetched
//! from elsewhere). It polls [`/status`](crate::observe::status) every 1000 ms and shows each
//! replica's health state, address, uptime, respawn count, in-flight and total requests
//! and ring share; a bar chart of the share of requests each replica answered since the
//! previous poll (against its ring share); and buttons that call `/add` and `/rm`,
//! with the admin token, if one is set, typed into the page (kept in the tab's
//! `sessionStorage` only).

use hyper::Response;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};

use crate::data_plane::reply::{Body, full};

/// The page's HTML.
pub const PAGE: &str = include_str!("dashboard.html");

/// What the page may load: its own inline script and style, and requests to this
/// origin. It may not be framed (clickjacking).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// `200` with the page.
pub fn page() -> Response<Body> {
    let mut response = Response::new(full(PAGE));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}
