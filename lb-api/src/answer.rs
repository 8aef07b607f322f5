//! The envelope around every answer of the admin API.
//!
//! Success: `{"message": <T>, "status": "successful"}`.
//! Failure: `{"message": "<Error> <reason>", "status": "failure"}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The `status` field of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The call did what it was asked; `message` holds the result.
    Successful,
    /// The call was refused and changed nothing; `message` holds the reason.
    Failure,
}

/// One answer of the admin API: a success carrying a `T`, or a failure carrying the
/// daemon's reason. Read with [`Answer::from_json`], which goes by `status` (a derived
/// untagged reader could not tell a failure from a success whose `T` is a string).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer<T> {
    /// `{"message": <T>, "status": "successful"}`.
    Success {
        /// The result.
        message: T,
        /// Always [`Outcome::Successful`].
        status: Outcome,
    },
    /// `{"message": "<Error> <reason>", "status": "failure"}`.
    Failure {
        /// The reason, with its `<Error> ` prefix.
        message: String,
        /// Always [`Outcome::Failure`].
        status: Outcome,
    },
}

/// The daemon refused a call; the message is its reason, with the `<Error> ` prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Why an answer body is not the admin API's JSON.
#[derive(Debug, thiserror::Error)]
#[error("not an admin API answer: {0}")]
pub struct AnswerError(#[from] serde_json::Error);

impl<T> Answer<T> {
    /// A success around `message`.
    pub fn success(message: T) -> Self {
        Answer::Success {
            message,
            status: Outcome::Successful,
        }
    }

    /// A failure; `reason` gets the `<Error> ` prefix.
    pub fn failure(reason: impl std::fmt::Display) -> Self {
        Answer::Failure {
            message: format!("<Error> {reason}"),
            status: Outcome::Failure,
        }
    }

    /// The result of a success, or the daemon's reason for a failure.
    ///
    /// # Errors
    /// [`Refused`] with the failure's message.
    pub fn into_result(self) -> Result<T, Refused> {
        match self {
            Answer::Success { message, .. } => Ok(message),
            Answer::Failure { message, .. } => Err(Refused(message)),
        }
    }
}

impl<T: Serialize> Answer<T> {
    /// The answer as compact JSON.
    pub fn to_json(&self) -> String {
        // A derived Serialize of strings, numbers and lists cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<T: DeserializeOwned> Answer<T> {
    /// Reads an answer body.
    ///
    /// # Errors
    /// [`AnswerError`] when the body is not an `Answer<T>` or its `status` contradicts
    /// its `message`.
    pub fn from_json(body: &str) -> Result<Self, AnswerError> {
        let envelope: Envelope<serde::de::IgnoredAny> = serde_json::from_str(body)?;
        Ok(match envelope.status {
            Outcome::Successful => {
                Answer::success(serde_json::from_str::<Envelope<T>>(body)?.message)
            }
            Outcome::Failure => Answer::Failure {
                message: serde_json::from_str::<Envelope<String>>(body)?.message,
                status: Outcome::Failure,
            },
        })
    }
}

/// The two fields of every answer, `message` read as `M`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<M> {
    message: M,
    status: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_not_read_as_a_success_of_strings() {
        let body = r#"{"message":"<Error> hostname 'x' does not exist","status":"failure"}"#;
        let answer: Answer<String> = Answer::from_json(body).unwrap();
        assert_eq!(
            answer.into_result(),
            Err(Refused("<Error> hostname 'x' does not exist".to_string()))
        );
        let answer: Answer<String> = Answer::failure("hostname 'x' does not exist");
        assert_eq!(answer.to_json(), body);
    }

    #[test]
    fn a_success_of_strings_stays_a_success() {
        let answer = Answer::success("up".to_string());
        assert_eq!(
            Answer::<String>::from_json(&answer.to_json()).unwrap(),
            answer
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for body in [
            r#"{"message":[1],"status":"failure"}"#,
            r#"{"message":[1],"status":"ok"}"#,
            r#"{"message":"x"}"#,
            r#"{"message":"x","status":"failure","extra":1}"#,
            "<html>",
        ] {
            assert!(Answer::<Vec<u8>>::from_json(body).is_err(), "{body}");
        }
    }
}
