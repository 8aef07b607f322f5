//! `[tls]` (and `[admin.tls]`): TLS termination with rustls. The files are read and
//! checked when the config is loaded, so a bad path, an empty file or a key that does
//! not match the certificate is a config error naming the key; a reload (SIGHUP)
//! reads them again, which is how renewed certificates are picked up.
//!
//! ```toml
//! [tls]
//! cert = "/etc/lb/cert.pem"   # PEM: the certificate chain, leaf first
//! key = "/etc/lb/key.pem"     # PEM: its private key (PKCS#8, PKCS#1 or SEC1)
//! ```
//!
//! The listener offers ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 (rustls' safe
//! defaults, ring provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::ConfigError;
use super::rules::invalid;

/// `[tls]` as written: both keys or neither.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsFile {
    /// PEM file of the certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM file of the private key.
    pub key: Option<PathBuf>,
}

/// Validated TLS settings: the files and the rustls configuration built from them.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate chain's file.
    pub cert: PathBuf,
    /// The private key's file.
    pub key: PathBuf,
    /// What the listener's handshakes use.
    pub server: Arc<ServerConfig>,
}

/// The dotted names of a TLS table's keys, for errors.
pub(super) struct TlsKeys {
    /// e.g. `tls.cert`.
    pub cert: &'static str,
    /// e.g. `tls.key`.
    pub key: &'static str,
}

impl TlsFile {
    /// `None` when the table is absent; else the files loaded and checked.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `keys.cert` or `keys.key`: one of the two
    /// missing, a file that cannot be read or holds no PEM certificate or key, or a
    /// key that does not match the certificate.
    pub(super) fn validate(self, keys: &TlsKeys) -> Result<Option<Tls>, ConfigError> {
        let (cert, key) = match (self.cert, self.key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (None, Some(_)) => return Err(invalid(keys.cert, "(unset)", "set it beside the key")),
            (Some(_), None) => return Err(invalid(keys.key, "(unset)", "set it beside the cert")),
        };
        let server = server_config(&cert, &key, keys)?;
        Ok(Some(Tls {
            cert,
            key,
            server: Arc::new(server),
        }))
    }
}

/// Reads the PEM files and builds the server side: rustls' safe defaults, no client
/// certificates, ALPN `h2` then `http/1.1`.
fn server_config(cert: &Path, key: &Path, keys: &TlsKeys) -> Result<ServerConfig, ConfigError> {
    let shown = |path: &Path| path.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            invalid(
                keys.cert,
                &shown(cert),
                format!("cannot read a PEM certificate: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(keys.cert, &shown(cert), "holds no PEM certificate"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        invalid(
            keys.key,
            &shown(key),
            format!("cannot read a PEM private key: {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(keys.cert, &shown(cert), e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            invalid(
                keys.key,
                &shown(key),
                format!("does not go with the certificate in {}: {e}", shown(cert)),
            )
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}
