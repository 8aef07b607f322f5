//! A typed client of the daemon's admin API (`/rep`, `/add`, `/rm`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

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

#[derive(Debug, Deserialize)]
struct Success {
    message: ReplicaList,
    status: String,
}

#[derive(Debug, Deserialize)]
struct ReplicaList {
    #[serde(rename = "N")]
    n: usize,
    replicas: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Failure {
    message: String,
    status: String,
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
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
            token: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` with `add` and `remove`.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(token) => request.set("authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// `GET /rep`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn replicas(&self) -> Result<Replicas, ClientError> {
        let url = format!("{}/rep", self.base);
        self.send(&url, self.agent.get(&url).call())
    }

    /// `POST /add` of `n` replicas, `names` first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn add(&self, n: u64, names: &[String]) -> Result<Replicas, ClientError> {
        let url = format!("{}/add", self.base);
        let body = json!({ "n": n, "hostnames": names });
        self.send(&url, self.authorized(self.agent.post(&url)).send_json(body))
    }

    /// `DELETE /rm` of `n` replicas, `names` first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn remove(&self, n: u64, names: &[String]) -> Result<Replicas, ClientError> {
        let url = format!("{}/rm", self.base);
        let body = json!({ "n": n, "hostnames": names });
        self.send(
            &url,
            self.authorized(self.agent.delete(&url)).send_json(body),
        )
    }

    fn send(
        &self,
        url: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<Replicas, ClientError> {
        let (status, response) = match result {
            Ok(response) => (response.status(), response),
            Err(ureq::Error::Status(status, response)) => (status, response),
            Err(ureq::Error::Transport(e)) => {
                return Err(ClientError::Unreachable {
                    url: url.to_string(),
                    cause: e.to_string(),
                });
            }
        };
        let body = response
            .into_string()
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                cause: format!("reading the answer failed: {e}"),
            })?;
        decode(url, status, body)
    }
}

/// Turns an answer into replicas or the daemon's failure.
fn decode(url: &str, status: u16, body: String) -> Result<Replicas, ClientError> {
    if let Ok(ok) = serde_json::from_str::<Success>(&body)
        && ok.status == "successful"
        && ok.message.n == ok.message.replicas.len()
        && (200..300).contains(&status)
    {
        return Ok(Replicas {
            names: ok.message.replicas,
            raw: body,
        });
    }
    if let Ok(failure) = serde_json::from_str::<Failure>(&body)
        && failure.status == "failure"
    {
        return Err(ClientError::Failure {
            status,
            message: failure.message,
            raw: body,
        });
    }
    Err(ClientError::BadResponse {
        url: url.to_string(),
        status,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_shapes() {
        let ok = r#"{"message":{"N":2,"replicas":["server1","s4"]},"status":"successful"}"#;
        let replicas = decode("u", 200, ok.into()).unwrap();
        assert_eq!(replicas.names, ["server1", "s4"]);
        assert_eq!(replicas.raw, ok);
        let bad = r#"{"message":"<Error> hostname 'x' does not exist","status":"failure"}"#;
        match decode("u", 400, bad.into()) {
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
                200,
                r#"{"message":{"N":3,"replicas":[]},"status":"successful"}"#,
            ),
            (502, ""),
        ] {
            assert!(
                matches!(
                    decode("u", status, body.into()),
                    Err(ClientError::BadResponse { .. })
                ),
                "{body}"
            );
        }
    }
}
