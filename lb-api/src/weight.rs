//! `POST /weight`: sets one replica's ring weight.
//!
//! | call | request body | success message |
//! |---|---|---|
//! | `POST /weight` | `{"hostname":"server2","weight":0}` | like `/rep` |
//!
//! Weight 0 drains the replica: it leaves the table (no new key goes to it), its
//! in-flight requests finish, and it stays a member, probed and ready to take keys again
//! at a weight above 0.

use serde::Serialize;
use serde_json::Value;

use crate::replicas::{ChangeError, Hostname, object_of, weight_of};

/// The body of `POST /weight`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightRequest {
    /// The replica.
    pub hostname: Hostname,
    /// Its new weight, 0..=256.
    pub weight: u32,
}

impl WeightRequest {
    /// The body as compact JSON.
    pub fn to_json(&self) -> String {
        // A string and a number always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks a `/weight` body.
    ///
    /// # Errors
    /// [`ChangeError`] naming the field and the refused value (`Malformed`,
    /// `NotAnObject`, `UnknownField`, `InvalidHostname`, `HostnameNotAString`,
    /// `BadWeight`). Never panics, whatever the bytes.
    pub fn from_json(body: &[u8]) -> Result<Self, ChangeError> {
        let fields = object_of(body, &["hostname", "weight"])?;
        let hostname = match fields.get("hostname") {
            Some(Value::String(s)) => Hostname::new(s.as_str())?,
            Some(other) => return Err(ChangeError::HostnameNotAString(other.to_string())),
            None => return Err(ChangeError::HostnameNotAString("nothing".into())),
        };
        let value = fields.get("weight").unwrap_or(&Value::Null);
        let weight = weight_of(value).map_err(|_| ChangeError::BadWeight(value.to_string()))?;
        Ok(Self { hostname, weight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_bodies() {
        let request = WeightRequest::from_json(br#"{"hostname":"server2","weight":0}"#).unwrap();
        assert_eq!((request.hostname.as_str(), request.weight), ("server2", 0));
        assert_eq!(request.to_json(), r#"{"hostname":"server2","weight":0}"#);
        for (body, says) in [
            (&b"{"[..], "malformed"),
            (
                br#"{"hostname":"a"}"#,
                "'weight' must be an integer from 0 to 256, not null",
            ),
            (br#"{"hostname":"a","weight":300}"#, "'weight' must be"),
            (br#"{"hostname":"a","weight":"1"}"#, "'weight' must be"),
            (br#"{"weight":1}"#, "must be strings"),
            (br#"{"hostname":"a b","weight":1}"#, "invalid hostname"),
            (br#"{"hostname":"a","weight":1,"n":1}"#, "unknown field"),
        ] {
            let err = WeightRequest::from_json(body).unwrap_err().to_string();
            assert!(
                err.contains(says),
                "{} gave {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
