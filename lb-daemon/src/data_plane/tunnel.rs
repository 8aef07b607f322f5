//! HTTP/1.1 `Upgrade` (WebSocket and the like): once the replica answered
//! `101 Switching Protocols`, bytes are copied both ways between the client's and the
//! replica's upgraded connections until either side closes (hyper's upgrade API).

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::data_plane::accounting::InFlight;
use crate::data_plane::hyper_connection::HyperConnection;

/// Copies between the two sides of an upgraded request until one closes. The upstream
/// connection's I/O half is driven here until it hands over the upgraded socket, and
/// its place under `upstream.max_conns_per_replica` is held until the tunnel closes;
/// `_in_flight` counts the tunnel as a request in flight (so `/rm` drains it, up to
/// `admin.drain_timeout_ms`).
pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    connection: HyperConnection,
    _in_flight: InFlight,
) {
    let (driver, _slot) = connection.into_driver();
    if let Some(driver) = driver {
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "upstream connection of an upgrade failed");
            }
        });
    }
    let (client, upstream) = tokio::join!(client, upstream);
    let (client, upstream) = match (client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => tracing::debug!(sent, received, "upgraded connection closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
    }
}
