//! The proxy's listening sockets: one per worker, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over the workers and no
//! accept is shared between threads. Each listens with `server.backlog` (the kernel
//! caps it at `net.core.somaxconn`).

use std::net::SocketAddr;

use tokio::net::TcpSocket;

/// Binds `count` listening sockets on `addr` (port 0: the port the first one got).
///
/// Must run inside a tokio runtime (the sockets are made with tokio's `TcpSocket`);
/// the returned std listeners are non-blocking and can move to any worker's runtime.
///
/// # Errors
/// The OS error of the first socket that cannot be made, bound or put to listen.
pub fn bind(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = if bound.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.bind(bound)?;
        let listener = socket.listen(backlog)?;
        bound = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_worker_socket_shares_one_port() {
        let listeners = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 3, 128).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != 0 && ports.iter().all(|p| *p == ports[0]));
    }
}
