//! `lb-daemon healthcheck`: asks the daemon of a config for `GET /healthz` on its
//! admin API's listener (`admin.listen`, else `listen`; an unspecified address is
//! asked on loopback), for Docker's `HEALTHCHECK`, Kubernetes probes and scripts.
//!
//! When that listener terminates TLS (`[admin.tls]`, else `[tls]`), the probe speaks
//! TLS and accepts exactly one server certificate: the one in the config's own
//! `cert` file (pinned), so a self-signed certificate works and nothing else passes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::config::{Config, Tls};

/// Time the probe gives the daemon to connect and to answer, each.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Why the daemon was found unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// No connection, or it broke before the answer.
    #[error("{addr}: {source}")]
    Io {
        /// Where the daemon was asked.
        addr: SocketAddr,
        /// The socket's error.
        source: io::Error,
    },
    /// The TLS setup failed (the pinned certificate could not be read, or the
    /// handshake was refused).
    #[error("{addr}: TLS: {reason}")]
    Tls {
        /// Where the daemon was asked.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The daemon answered, but not 200 (503 while it is stopping).
    #[error("{addr} answered {status}")]
    Status {
        /// Where the daemon was asked.
        addr: SocketAddr,
        /// The status it gave.
        status: u16,
    },
    /// What came back was not an HTTP status line.
    #[error("{addr}: not an HTTP answer")]
    NotHttp {
        /// Where the daemon was asked.
        addr: SocketAddr,
    },
}

/// Asks the daemon of `config` for `GET /healthz`.
///
/// # Errors
/// [`HealthcheckError`] unless it answers 200 within [`TIMEOUT`].
pub fn probe(config: &Config) -> Result<(), HealthcheckError> {
    let (mut addr, tls) = match config.admin.listen {
        Some(admin) => (admin, config.admin.tls.as_ref()),
        None => (config.listen, config.tls.as_ref()),
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let io = |source| HealthcheckError::Io { addr, source };
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let head = match tls {
        None => ask(stream, addr),
        Some(tls) => {
            let connection =
                pinned_client(tls).map_err(|reason| HealthcheckError::Tls { addr, reason })?;
            ask(StreamOwned::new(connection, stream), addr)
        }
    }
    .map_err(io)?;
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .filter(|_| head.starts_with(b"HTTP/1."))
        .ok_or(HealthcheckError::NotHttp { addr })?;
    match status {
        200 => Ok(()),
        status => Err(HealthcheckError::Status { addr, status }),
    }
}

/// Sends the request on `stream` and reads the status line's first 12 bytes
/// (`HTTP/1.1 200`).
fn ask(mut stream: impl Read + Write, addr: SocketAddr) -> io::Result<[u8; 12]> {
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head)
}

/// A TLS client that accepts only the certificate in `tls.cert` (its first one).
fn pinned_client(tls: &Tls) -> Result<ClientConnection, String> {
    let pinned = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("no certificate in {}", tls.cert.display()))?
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        certificate: pinned,
        provider: Arc::clone(&provider),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())
}

/// Accepts exactly one server certificate, and checks the handshake's signatures
/// against it.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the certificate of this config".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
