//! The admin API of `lb-daemon` as types: every request and answer of `GET /rep`,
//! `POST /add`, `DELETE /rm`, `POST /weight`, `GET /status` and `GET /explain`, serialized by the daemon and read by
//! `lbctl`, so the two cannot drift apart. No I/O and no runtime: a client needs only
//! this crate and an HTTP library.
//!
//! ```
//! use lb_api::{Answer, ChangeRequest, ReplicaList};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // What `lbctl add 2 s4` sends ...
//! let request = ChangeRequest::new(2, ["s4"])?;
//! assert_eq!(request.to_json(), r#"{"n":2,"hostnames":["s4"]}"#);
//! // ... and how the daemon reads it back, refusing anything malformed.
//! assert_eq!(ChangeRequest::from_json(request.to_json().as_bytes())?, request);
//!
//! // The daemon's answer, as `lbctl` reads it.
//! let body = r#"{"message":{"N":2,"replicas":["server1","s4"]},"status":"successful"}"#;
//! let answer: Answer<ReplicaList> = Answer::from_json(body)?;
//! assert_eq!(answer.into_result()?.replicas, ["server1", "s4"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`answer`]: the envelope of every answer, `{"message": …, "status": "successful"}`
//!   or `{"message": "<Error> …", "status": "failure"}` (the shapes of the Python load
//!   balancer the daemon replaces, so its clients keep working).
//! - [`replicas`]: `/rep`'s [`ReplicaList`], the `/add` and `/rm` body
//!   [`ChangeRequest`] and its [`Hostname`]s.
//! - [`status`]: the `/status` document.
//! - [`weight`]: the `/weight` body [`WeightRequest`].
//! - [`explain`]: `/explain?key=K`, the route of one key.

#![deny(missing_docs)]

pub mod answer;
pub mod explain;
pub mod replicas;
pub mod status;
pub mod weight;

pub use answer::{Answer, AnswerError, Outcome, Refused};
pub use explain::{Candidate, Explanation};
pub use replicas::{ChangeError, ChangeRequest, Hostname, MAX_WEIGHT, ReplicaList};
pub use status::{ReplicaState, ReplicaStatus, RequestCounts, RingFingerprint, StatusDocument};
pub use weight::WeightRequest;
