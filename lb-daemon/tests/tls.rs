//! TLS termination against the built binaries: certificates made with rcgen, a real
//! curl client over HTTP/2, plain HTTP on the TLS port, and bad files at startup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, base_config, binary};

/// A self-signed certificate for `localhost` and its key, as PEM files in a new
/// directory: `(cert, key)`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lb-tls-{name}-{}", common::fastrand_u64()))
}

fn tls_config(cert: &Path, key: &Path) -> String {
    format!(
        "{}\n[tls]\ncert = {:?}\nkey = {:?}\n",
        base_config(2),
        cert.display().to_string(),
        key.display().to_string()
    )
}

#[test]
fn curl_gets_home_over_http2_through_tls() {
    let dir = scratch("h2");
    let (cert, key) = self_signed(&dir);
    let daemon = Daemon::start(&tls_config(&cert, &key));
    let url = format!("https://localhost:{}/home", daemon.addr.port());
    let out = Command::new("curl")
        .args(["--http2", "--silent", "--show-error", "--cacert"])
        .arg(&cert)
        .args([
            "--write-out",
            "\n%{http_version} %{http_code}",
            "-H",
            "x-lb-key: k1",
        ])
        .arg(&url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n2 200"),
        "{text} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Hello from Server"), "{text}");
    // HTTP/1.1 over TLS works too, and the replica is told the scheme was https.
    let out = Command::new("curl")
        .args(["--http1.1", "--silent", "--cacert"])
        .arg(&cert)
        .arg(format!("https://localhost:{}/headers", daemon.addr.port()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        text.contains("x-forwarded-proto") && text.contains("https"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plain_http_on_the_tls_port_is_refused_cleanly() {
    let dir = scratch("plain");
    let (cert, key) = self_signed(&dir);
    let daemon = Daemon::start(&tls_config(&cert, &key));
    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    stream
        .write_all(b"GET /home HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("HTTPS"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap();
    assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{answer}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreadable_or_mismatched_files_are_config_errors_naming_the_key() {
    let dir = scratch("bad");
    let (cert, _key) = self_signed(&dir.join("a"));
    let (_, other_key) = self_signed(&dir.join("b"));
    let check = |config: String| {
        let path = dir.join("lb.toml");
        std::fs::write(&path, config).unwrap();
        let out = Command::new(binary("lb-daemon"))
            .args(["--check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(tls_config(&cert, &other_key));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.key") && err.contains("does not go with"),
        "{err}"
    );
    let (code, err) = check(tls_config(&dir.join("missing.pem"), &other_key));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.cert") && err.contains("missing.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_healthcheck_speaks_tls_to_a_tls_listener_and_trusts_only_its_own_certificate() {
    let dir = scratch("health");
    let (cert, key) = self_signed(&dir);
    let port = common::free_port();
    let config = tls_config(&cert, &key).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let daemon = Daemon::start(&config);
    let healthcheck = |config: &Path| {
        let out = Command::new(binary("lb-daemon"))
            .args(["healthcheck", "--config"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(healthcheck(&daemon.config), (Some(0), String::new()));
    // The same listener, but a config that names another certificate: refused.
    let (other_cert, other_key) = self_signed(&dir.join("other"));
    let other = dir.join("other.toml");
    std::fs::write(
        &other,
        tls_config(&other_cert, &other_key).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let (code, err) = healthcheck(&other);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}
