//! A typed client of the daemon's admin API (`/rep`, `/add`, `/rm`, `/status`): the
//! requests and answers are [`lb_api`]'s types, the ones the daemon serializes.

use std::time::Duration;

use lb_api::{
    Answer, ChangeError, ChangeRequest, Explanation, Hostname, ReplicaList, StatusDocument,
    WeightRequest,
};
use serde::de::DeserializeOwned;

/// The replicas the daemon reports, and its answer as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    /// Hostnames, in the order the daemon lists them.
    pub names: Vec<String>,
    /// The raw JSON body.
    pub raw: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No HTTP answer: refused, timed out, bad URL.
    #[error("cannot reach {url}: {cause}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        cause: String,
    },
    /// The daemon answered the failure shape.
    #[error("{message} (HTTP {status})")]
    Failure {
        /// HTTP status.
        status: u16,
        /// The daemon's message, e.g. `<Error> hostname 's9' does not exist`.
        message: String,
        /// The raw JSON body.
        raw: String,
    },
    /// A hostname given to `add` or `rm` is not a valid one; nothing was sent.
    #[error(transparent)]
    Invalid(#[from] ChangeError),
    /// The answer was not the admin API's JSON.
    #[error("unexpected answer from {url} (HTTP {status}): {body:.200}")]
    BadResponse {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// The body.
        body: String,
    },
}

/// Talks to one daemon.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl AdminClient {
    /// A client of the daemon at `base` (e.g. `http://127.0.0.1:5000`), giving up on a
    /// call after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .build()
                .new_agent(),
            token: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` with `add` and `remove`.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// A JSON request carrying the bearer token, if any.
    fn change<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let request = request.header("content-type", "application/json");
        match &self.token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    /// `GET /rep`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn replicas(&self) -> Result<Replicas, ClientError> {
        let url = format!("{}/rep", self.base);
        self.replica_list(&url, self.agent.get(&url).call())
    }

    /// `GET /status`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn status(&self) -> Result<StatusDocument, ClientError> {
        let url = format!("{}/status", self.base);
        let (status, body) = self.answer(&url, self.agent.get(&url).call())?;
        decode::<StatusDocument>(&url, status, &body).map(|(document, _)| document)
    }

    /// `GET /explain?key=K`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn explain(&self, key: &str) -> Result<Explanation, ClientError> {
        let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
        let url = format!("{}/explain?key={encoded}", self.base);
        let (status, body) = self.answer(&url, self.agent.get(&url).call())?;
        decode::<Explanation>(&url, status, &body).map(|(explanation, _)| explanation)
    }

    /// `POST /add` of `n` replicas, `names` first, with `weights` (one per name, or none).
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn add(
        &self,
        n: usize,
        names: &[String],
        weights: &[u32],
    ) -> Result<Replicas, ClientError> {
        let url = format!("{}/add", self.base);
        let body = ChangeRequest::new(n, names.iter().cloned())?
            .with_weights(weights.to_vec())
            .to_json();
        let request = self.change(self.agent.post(&url));
        self.replica_list(&url, request.send(&body))
    }

    /// `POST /weight`: replica `name`'s ring weight becomes `weight`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn set_weight(&self, name: &str, weight: u32) -> Result<Replicas, ClientError> {
        let url = format!("{}/weight", self.base);
        let body = WeightRequest {
            hostname: Hostname::new(name)?,
            weight,
        }
        .to_json();
        let request = self.change(self.agent.post(&url));
        self.replica_list(&url, request.send(&body))
    }

    /// `DELETE /rm` of `n` replicas, `names` first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn remove(&self, n: usize, names: &[String]) -> Result<Replicas, ClientError> {
        let url = format!("{}/rm", self.base);
        let body = ChangeRequest::new(n, names.iter().cloned())?.to_json();
        let request = self.change(self.agent.delete(&url)).force_send_body();
        self.replica_list(&url, request.send(&body))
    }

    fn replica_list(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Replicas, ClientError> {
        let (status, body) = self.answer(url, result)?;
        match decode::<ReplicaList>(url, status, &body)? {
            (list, _) if list.n != list.replicas.len() => Err(ClientError::BadResponse {
                url: url.to_string(),
                status,
                body,
            }),
            (list, _) => Ok(Replicas {
                names: list.replicas,
                raw: body,
            }),
        }
    }

    /// The HTTP status and body of an answer, whatever its status.
    fn answer(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), ClientError> {
        // The agent reads 4xx and 5xx as answers (`http_status_as_error(false)`), so every
        // error here is the transport's.
        let mut response = result.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            cause: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                cause: format!("reading the answer failed: {e}"),
            })?;
        Ok((status, body))
    }
}

/// Turns an answer into its success message (with the body) or the daemon's failure.
fn decode<T: DeserializeOwned>(
    url: &str,
    status: u16,
    body: &str,
) -> Result<(T, String), ClientError> {
    let bad = || ClientError::BadResponse {
        url: url.to_string(),
        status,
        body: body.to_string(),
    };
    match Answer::<T>::from_json(body) {
        Ok(Answer::Success { message, .. }) if (200..300).contains(&status) => {
            Ok((message, body.to_string()))
        }
        Ok(Answer::Failure { message, .. }) => Err(ClientError::Failure {
            status,
            message,
            raw: body.to_string(),
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_shapes() {
        let ok = r#"{"message":{"N":2,"replicas":["server1","s4"]},"status":"successful"}"#;
        let (list, raw) = decode::<ReplicaList>("u", 200, ok).unwrap();
        assert_eq!(list.replicas, ["server1", "s4"]);
        assert_eq!(raw, ok);
        let bad = r#"{"message":"<Error> hostname 'x' does not exist","status":"failure"}"#;
        match decode::<ReplicaList>("u", 400, bad) {
            Err(ClientError::Failure {
                status, message, ..
            }) => {
                assert_eq!(status, 400);
                assert_eq!(message, "<Error> hostname 'x' does not exist");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anything_else_is_a_bad_response() {
        for (status, body) in [
            (200, "<html>"),
            (
                500,
                r#"{"message":{"N":0,"replicas":[]},"status":"successful"}"#,
            ),
            (502, ""),
        ] {
            assert!(
                matches!(
                    decode::<ReplicaList>("u", status, body),
                    Err(ClientError::BadResponse { .. })
                ),
                "{body}"
            );
        }
    }
}
