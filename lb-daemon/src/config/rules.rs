//! The value rules every section applies: a default when the key is absent, a
//! range it must fall in, milliseconds turned into a [`Duration`], and a
//! [`ConfigError::Invalid`] that names the key and the refused value.

use std::time::Duration;

use super::ConfigError;

/// The error for `key = value`, breaking `reason`.
pub(crate) fn invalid(key: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `value` (or `default` when absent), refused outside `min..=max` or when it
/// does not fit in `T` on this machine.
pub(crate) fn ranged<T: TryFrom<u64>>(
    key: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<T, ConfigError> {
    let value = value.unwrap_or(default);
    if !(min..=max).contains(&value) {
        return Err(invalid(
            key,
            &value.to_string(),
            format!("must be between {min} and {max}"),
        ));
    }
    T::try_from(value).map_err(|_| invalid(key, &value.to_string(), "too large for this machine"))
}

/// A `*_ms` key: [`ranged`] in milliseconds, as a [`Duration`].
pub(crate) fn ms(
    key: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    ranged::<u64>(key, value, default, min, max).map(Duration::from_millis)
}

/// An `ip:port` address.
pub(crate) fn address(key: &'static str, text: &str) -> Result<std::net::SocketAddr, ConfigError> {
    text.parse()
        .map_err(|e| invalid(key, text, format!("not an ip:port address ({e})")))
}

/// Appends `key` to `changed` when `differs`: how each section lists the keys a
/// reload cannot apply.
pub(crate) fn note(changed: &mut Vec<&'static str>, key: &'static str, differs: bool) {
    if differs {
        changed.push(key);
    }
}
