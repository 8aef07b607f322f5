//! Key distributions for `lbctl bench`: `random`, `fixed:K`, `zipf:S`.

use super::BenchError;

/// Keys drawn from a zipf distribution live in a population of this many.
pub const POPULATION: usize = 10_000;

/// Which key each request carries in `x-lb-key`.
#[derive(Debug, Clone)]
pub enum Keys {
    /// A fresh random key per request.
    Random,
    /// The same key every time.
    Fixed(String),
    /// Key `user-i` with probability ∝ 1 / (i + 1)^s over [`POPULATION`] keys
    /// (cumulative weights, searched by bisection).
    Zipf(Vec<f64>),
}

impl std::str::FromStr for Keys {
    type Err = BenchError;

    /// Parses `random`, `fixed:K` (K a valid header value) or `zipf:S` (S in (0, 10]).
    fn from_str(s: &str) -> Result<Self, BenchError> {
        match s.split_once(':') {
            None if s == "random" => Ok(Keys::Random),
            Some(("fixed", key)) if !key.is_empty() => {
                // It travels in a header: refuse what a header cannot carry, here, once.
                hyper::header::HeaderValue::from_str(key).map_err(|_| {
                    BenchError::Usage(format!("fixed key {key:?} cannot be sent in a header"))
                })?;
                Ok(Keys::Fixed(key.to_string()))
            }
            Some(("zipf", exponent)) => {
                let s: f64 = exponent.parse().map_err(|_| {
                    BenchError::Usage(format!("zipf exponent {exponent:?} is not a number"))
                })?;
                if !(s.is_finite() && s > 0.0 && s <= 10.0) {
                    return Err(BenchError::Usage(format!(
                        "zipf exponent {s} must be in (0, 10]"
                    )));
                }
                let mut total = 0.0;
                let cdf = (0..POPULATION)
                    .map(|i| {
                        total += 1.0 / ((i + 1) as f64).powf(s);
                        total
                    })
                    .collect::<Vec<f64>>();
                Ok(Keys::Zipf(cdf.into_iter().map(|c| c / total).collect()))
            }
            _ => Err(BenchError::Usage(format!(
                "{s:?}: expected random, fixed:K or zipf:S"
            ))),
        }
    }
}

impl Keys {
    /// The key for the next request.
    pub fn next(&self, rng: &mut fastrand::Rng) -> std::borrow::Cow<'_, str> {
        match self {
            Keys::Random => format!("{:016x}", rng.u64(..)).into(),
            Keys::Fixed(key) => key.as_str().into(),
            Keys::Zipf(cdf) => {
                let u = rng.f64();
                format!(
                    "user-{}",
                    cdf.partition_point(|&c| c < u).min(POPULATION - 1)
                )
                .into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_and_behave() {
        let mut rng = fastrand::Rng::with_seed(7);
        let fixed: Keys = "fixed:abc".parse().unwrap();
        assert_eq!(fixed.next(&mut rng), "abc");
        let zipf: Keys = "zipf:1.1".parse().unwrap();
        let hot = (0..10_000)
            .filter(|_| zipf.next(&mut rng) == "user-0")
            .count();
        assert!(
            (1000..2500).contains(&hot),
            "user-0 drawn {hot} times in 10,000"
        );
        let random: Keys = "random".parse().unwrap();
        assert_ne!(random.next(&mut rng), random.next(&mut rng));
        for bad in ["zipf:0", "zipf:x", "fixed:", "fixed:a\nb", "uniform"] {
            assert!(bad.parse::<Keys>().is_err(), "{bad}");
        }
    }
}
