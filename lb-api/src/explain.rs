//! `GET /explain?key=K`: the route a request with key `K` takes right now, and why. It
//! is the `message` of a success answer:
//!
//! ```json
//! {"key":"alice","hash_function":"xxh3","position":"9b2e0d6c4a1f3e58","algorithm":"ring",
//!  "owner":"server2","route":"server3",
//!  "candidates":[{"name":"server2","weight":1,"in_rotation":false,"in_flight":0},
//!                {"name":"server3","weight":1,"in_rotation":true,"in_flight":2},
//!                {"name":"server1","weight":1,"in_rotation":true,"in_flight":0}]}
//! ```

use serde::{Deserialize, Serialize};

/// The explanation of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    /// The key, as given (percent-decoded from the query).
    pub key: String,
    /// The ring's hash function: `xxh3`, `sha256`, `md5` or `nginx`.
    pub hash_function: String,
    /// The key's position on the ring: its hash, 16 hex digits.
    pub position: String,
    /// The table the key is looked up in: `ring` (ketama) or `maglev`.
    pub algorithm: String,
    /// The replica that owns the key, whatever its health; `None` with no replica.
    pub owner: Option<String>,
    /// Where a request with this key goes now: the first candidate in rotation (with
    /// `balance_factor`, the first whose in-flight requests are below its bounded-load
    /// capacity); `None` when none is (the request would get `503`).
    pub route: Option<String>,
    /// Every replica of weight > 0 in the key's failover order: the owner, then each
    /// next distinct replica on the table.
    pub candidates: Vec<Candidate>,
}

/// One replica in a key's failover order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// Hostname.
    pub name: String,
    /// Its weight on the ring.
    pub weight: u32,
    /// Whether it takes requests now (Up, not respawning, not ejected).
    pub in_rotation: bool,
    /// Requests being proxied to it now.
    pub in_flight: usize,
}
