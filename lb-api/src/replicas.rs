//! `GET /rep`'s answer and the body of `POST /add` and `DELETE /rm`.
//!
//! | call | request body | success message |
//! |---|---|---|
//! | `GET /rep` | none | `{"N":3,"replicas":["server1","server2","server3"]}` |
//! | `POST /add` | `{"n":2,"hostnames":["s4","s5"]}` | like `/rep`, after the replicas accept connections |
//! | `DELETE /rm` | `{"n":1,"hostnames":["s4"]}` | like `/rep`, after the replicas are stopped |
//!
//! On the static runtime `/add` also takes `"addresses": ["ip:port", ...]`, one per
//! hostname. `/add` takes `"weights": [w, ...]` (0..=256), one per hostname, for their
//! ring weights; without it every replica weighs 1.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The highest ring weight of a replica, as HAProxy's `weight` (0..=256).
pub const MAX_WEIGHT: u32 = 256;

/// `GET /rep`'s message (and that of a successful `/add` or `/rm`): the replicas in the
/// order they were added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaList {
    /// How many replicas there are; always `replicas.len()`.
    #[serde(rename = "N")]
    pub n: usize,
    /// Their hostnames.
    pub replicas: Vec<String>,
}

impl ReplicaList {
    /// The list of `names`, counted.
    pub fn new(names: Vec<String>) -> Self {
        Self {
            n: names.len(),
            replicas: names,
        }
    }
}

/// A replica hostname under DNS label rules (RFC 1123): 1–63 ASCII letters, digits and
/// `-`, neither starting nor ending with `-`. Checked before a name reaches Docker or a
/// command line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    /// `name` as a hostname.
    ///
    /// # Errors
    /// [`ChangeError::InvalidHostname`] when `name` breaks the DNS label rules.
    pub fn new(name: impl Into<String>) -> Result<Self, ChangeError> {
        let name = name.into();
        let valid = (1..=63).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(Self(name))
        } else {
            Err(ChangeError::InvalidHostname(name))
        }
    }

    /// The hostname as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of `POST /add` and `DELETE /rm`: `{"n": N, "hostnames": [..], "addresses": [..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRequest {
    /// How many replicas to add or remove.
    pub n: usize,
    /// Replicas named by the caller; the daemon picks the other `n - hostnames.len()`.
    pub hostnames: Vec<Hostname>,
    /// `/add` on the static runtime: one `ip:port` per hostname; empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<SocketAddr>,
    /// `/add`: one ring weight per hostname (0..=256); empty: all weigh 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<u32>,
}

/// Why an `/add` or `/rm` body was refused. The messages are the admin API's reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object.
    #[error("the body must be a JSON object like {{\"n\": 1, \"hostnames\": []}}")]
    NotAnObject,
    /// A field other than `n`, `hostnames`, `addresses` and `weights`.
    #[error(
        "unknown field '{0}'; expected 'n', 'hostnames', 'weights' and (static runtime) 'addresses'"
    )]
    UnknownField(String),
    /// No `n`.
    #[error("'n' is missing")]
    MissingN,
    /// `n` negative, fractional or not a number; the value as sent.
    #[error("'n' must be a non-negative integer, not {0}")]
    BadN(String),
    /// `hostnames` is not a list; the value as sent.
    #[error("'hostnames' must be a list of strings, not {0}")]
    HostnamesNotAList(String),
    /// An item of `hostnames` is not a string; the item as sent.
    #[error("hostnames must be strings, not {0}")]
    HostnameNotAString(String),
    /// A hostname breaks the DNS label rules.
    #[error(
        "invalid hostname {0:?}: use 1-63 letters, digits or '-', not starting or ending with '-'"
    )]
    InvalidHostname(String),
    /// `addresses` is not a list; the value as sent.
    #[error("'addresses' must be a list of \"ip:port\" strings, not {0}")]
    AddressesNotAList(String),
    /// An item of `addresses` is not `ip:port`; the item as sent.
    #[error("addresses must be \"ip:port\" strings, not {0}")]
    BadAddress(String),
    /// `weights` is not a list of integers in 0..=256; the value as sent.
    #[error("'weights' must be a list of integers from 0 to 256, not {0}")]
    BadWeights(String),
    /// `/weight`'s `weight` is missing or not an integer in 0..=256; the value as sent.
    #[error("'weight' must be an integer from 0 to 256, not {0}")]
    BadWeight(String),
    /// `weights` given, but not one per hostname.
    #[error("give one weight per hostname: {hostnames} hostnames, {weights} weights")]
    WeightCount {
        /// Hostnames given.
        hostnames: usize,
        /// Weights given.
        weights: usize,
    },
    /// `addresses` given, but not one per hostname.
    #[error("give one address per hostname: {hostnames} hostnames, {addresses} addresses")]
    AddressCount {
        /// Hostnames given.
        hostnames: usize,
        /// Addresses given.
        addresses: usize,
    },
}

impl ChangeRequest {
    /// A request for `n` replicas, `hostnames` first, with no addresses.
    ///
    /// # Errors
    /// [`ChangeError::InvalidHostname`] for the first name that is not a [`Hostname`].
    pub fn new<S: Into<String>>(
        n: usize,
        hostnames: impl IntoIterator<Item = S>,
    ) -> Result<Self, ChangeError> {
        Ok(Self {
            n,
            hostnames: hostnames
                .into_iter()
                .map(Hostname::new)
                .collect::<Result<_, _>>()?,
            addresses: Vec::new(),
            weights: Vec::new(),
        })
    }

    /// This request with ring `weights`, one per hostname.
    pub fn with_weights(self, weights: Vec<u32>) -> Self {
        Self { weights, ..self }
    }

    /// The body as compact JSON.
    pub fn to_json(&self) -> String {
        // Numbers, strings and addresses always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks an `/add` or `/rm` body. `hostnames` may be missing or `null`
    /// (none named); so may `addresses`.
    ///
    /// # Errors
    /// [`ChangeError`], naming the field and the refused value. Never panics, whatever
    /// the bytes.
    pub fn from_json(body: &[u8]) -> Result<Self, ChangeError> {
        let fields = object_of(body, &["n", "hostnames", "addresses", "weights"])?;
        let n = match fields.get("n") {
            None => return Err(ChangeError::MissingN),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| ChangeError::BadN(v.to_string()))?,
        };
        let hostnames = match fields.get("hostnames") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Hostname::new(s.as_str()),
                    other => Err(ChangeError::HostnameNotAString(other.to_string())),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(ChangeError::HostnamesNotAList(other.to_string())),
        };
        let addresses: Vec<SocketAddr> = match fields.get("addresses") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .and_then(|s| s.parse::<SocketAddr>().ok())
                        .ok_or_else(|| ChangeError::BadAddress(item.to_string()))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(ChangeError::AddressesNotAList(other.to_string())),
        };
        let weights: Vec<u32> = match fields.get("weights") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(weight_of).collect::<Result<_, _>>()?,
            Some(other) => return Err(ChangeError::BadWeights(other.to_string())),
        };
        if !weights.is_empty() && weights.len() != hostnames.len() {
            return Err(ChangeError::WeightCount {
                hostnames: hostnames.len(),
                weights: weights.len(),
            });
        }
        if !addresses.is_empty() && addresses.len() != hostnames.len() {
            return Err(ChangeError::AddressCount {
                hostnames: hostnames.len(),
                addresses: addresses.len(),
            });
        }
        Ok(Self {
            n,
            hostnames,
            addresses,
            weights,
        })
    }
}

/// The JSON object `body` holds, refused if it is not one or has a field outside
/// `known`.
pub(crate) fn object_of(
    body: &[u8],
    known: &[&str],
) -> Result<serde_json::Map<String, Value>, ChangeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ChangeError::Malformed(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(ChangeError::NotAnObject);
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ChangeError::UnknownField(unknown.clone()));
    }
    Ok(fields)
}

/// A ring weight: an integer in `0..=MAX_WEIGHT`.
pub(crate) fn weight_of(value: &Value) -> Result<u32, ChangeError> {
    value
        .as_u64()
        .filter(|w| *w <= u64::from(MAX_WEIGHT))
        .and_then(|w| u32::try_from(w).ok())
        .ok_or_else(|| ChangeError::BadWeights(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_python_clients_body() {
        let change =
            ChangeRequest::from_json(br#"{"n":2,"hostnames":["s4","Server-4f2a"]}"#).unwrap();
        assert_eq!(
            change,
            ChangeRequest::new(2, ["s4", "Server-4f2a"]).unwrap()
        );
        assert_eq!(
            ChangeRequest::from_json(br#"{"n":0}"#).unwrap().hostnames,
            vec![]
        );
        let fixed = ChangeRequest::from_json(
            br#"{"n":1,"hostnames":["api9"],"addresses":["127.0.0.1:9001"]}"#,
        )
        .unwrap();
        assert_eq!(fixed.addresses, ["127.0.0.1:9001".parse().unwrap()]);
        assert_eq!(
            fixed.to_json(),
            r#"{"n":1,"hostnames":["api9"],"addresses":["127.0.0.1:9001"]}"#
        );
        let weighted =
            ChangeRequest::from_json(br#"{"n":2,"hostnames":["a","b"],"weights":[3,0]}"#).unwrap();
        assert_eq!(weighted.weights, [3, 0]);
        assert_eq!(
            weighted.to_json(),
            r#"{"n":2,"hostnames":["a","b"],"weights":[3,0]}"#
        );
    }

    #[test]
    fn refuses_bad_bodies_with_a_reason() {
        for (body, says) in [
            (&b"{"[..], "malformed JSON"),
            (b"[1]", "JSON object"),
            (br#"{"hostnames":[]}"#, "'n' is missing"),
            (br#"{"n":-1}"#, "non-negative"),
            (br#"{"n":1.5}"#, "non-negative"),
            (br#"{"n":"2"}"#, "non-negative"),
            (br#"{"n":1,"hostnames":"s1"}"#, "list of strings"),
            (br#"{"n":1,"hostnames":[1]}"#, "must be strings"),
            (br#"{"n":1,"hostnames":["bad name"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostnames":["-x"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostnames":["x_y"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostnames":["a.b"]}"#, "invalid hostname"),
            (br#"{"n":1,"hostname":["x"]}"#, "unknown field"),
            (
                br#"{"n":1,"hostnames":["a"],"addresses":["nowhere"]}"#,
                "ip:port",
            ),
            (
                br#"{"n":2,"hostnames":["a","b"],"addresses":["127.0.0.1:1"]}"#,
                "one address per hostname",
            ),
            (br#"{"n":1,"hostnames":["a"],"weights":[257]}"#, "0 to 256"),
            (br#"{"n":1,"hostnames":["a"],"weights":[-1]}"#, "0 to 256"),
            (br#"{"n":1,"hostnames":["a"],"weights":3}"#, "0 to 256"),
            (
                br#"{"n":1,"hostnames":["a"],"weights":[1,2]}"#,
                "one weight per hostname",
            ),
        ] {
            let err = ChangeRequest::from_json(body).unwrap_err().to_string();
            assert!(
                err.contains(says),
                "{} gave {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn hostnames_follow_dns_label_rules() {
        for good in ["a", "server1", "Server-4f2a", &"x".repeat(63)] {
            assert!(Hostname::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a.b", "a b", "ä", &"x".repeat(64)] {
            assert!(Hostname::new(bad).is_err(), "{bad}");
        }
    }
}
