//! The routing keys of the root table: which table keys are looked up in, the bounded
//! load factor, and what requests without a key go to. All apply on a reload.
//!
//! ```toml
//! algorithm = "ring"          # or "maglev"
//! maglev_table_size = 65537   # slots of the Maglev table: a prime, 3..=16777213
//! balance_factor = 1.25       # bounded loads: at most 125 % of the mean in flight; off by default
//! keyless = "random"          # or "round_robin", "least_requests"
//! ```

use lb_core::{BoundedLoad, DEFAULT_TABLE_SIZE, HashAlgorithm, Maglev};

use super::ConfigError;
use super::rules::invalid;
use crate::data_plane::routing::{Algorithm, Keyless, Routing};

/// The routing keys as written.
#[derive(Debug, Default)]
pub struct RoutingFile {
    /// `algorithm`.
    pub algorithm: Option<String>,
    /// `maglev_table_size`.
    pub maglev_table_size: Option<u64>,
    /// `balance_factor`.
    pub balance_factor: Option<f64>,
    /// `keyless`.
    pub keyless: Option<String>,
}

impl RoutingFile {
    /// Checks the keys into the routing choice (`data_plane::routing::Routing`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: an unknown algorithm or keyless policy,
    /// a table size that is not a prime in `3..=16777213` (or set without
    /// `algorithm = "maglev"`), a balance factor not above 1 or above 101.
    pub fn validate(self) -> Result<Routing, ConfigError> {
        let algorithm = match self.algorithm.as_deref().unwrap_or("ring") {
            "ring" => {
                if let Some(size) = self.maglev_table_size {
                    return Err(invalid(
                        "maglev_table_size",
                        &size.to_string(),
                        "only applies to algorithm = \"maglev\"",
                    ));
                }
                Algorithm::Ring
            }
            "maglev" => {
                let size = self
                    .maglev_table_size
                    .unwrap_or(u64::from(DEFAULT_TABLE_SIZE));
                let table_size = u32::try_from(size)
                    .ok()
                    .filter(|s| Maglev::with_hasher(HashAlgorithm::Xxh3, *s).is_ok())
                    .ok_or_else(|| {
                        invalid(
                            "maglev_table_size",
                            &size.to_string(),
                            "must be a prime between 3 and 16777213 (e.g. 65537)",
                        )
                    })?;
                Algorithm::Maglev { table_size }
            }
            other => {
                return Err(invalid(
                    "algorithm",
                    other,
                    "expected \"ring\" or \"maglev\"",
                ));
            }
        };
        let bounded = match self.balance_factor {
            None => None,
            Some(factor) => Some(BoundedLoad::new(factor - 1.0).map_err(|_| {
                invalid(
                    "balance_factor",
                    &factor.to_string(),
                    "must be above 1 and at most 101 (1.25: 125 % of the mean load)",
                )
            })?),
        };
        let keyless = match self.keyless.as_deref().unwrap_or("random") {
            "random" => Keyless::Random,
            "round_robin" => Keyless::RoundRobin,
            "least_requests" => Keyless::LeastRequests,
            other => {
                return Err(invalid(
                    "keyless",
                    other,
                    "expected \"random\", \"round_robin\" or \"least_requests\"",
                ));
            }
        };
        Ok(Routing {
            algorithm,
            bounded,
            keyless,
        })
    }
}
