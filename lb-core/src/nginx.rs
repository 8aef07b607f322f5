//! [`Nginx`]: the point placement and key hash of nginx's `hash $key consistent`,
//! reproduced bit for bit (source: `src/http/modules/ngx_http_upstream_hash_module.c`,
//! `ngx_http_upstream_init_chash` and `ngx_http_upstream_find_chash_point`).

use crate::hash::HashFunction;

/// nginx's `hash ... consistent` scheme: CRC-32 (IEEE) keys and chained CRC-32 points.
///
/// For each `server` string of an upstream block, nginx splits host and port:
/// - `unix:PATH` → host `PATH`, no port;
/// - otherwise, if the string ends in `:DIGITS`, host is what comes before the last
///   `:` and port the digits (`10.0.0.1:8080`, `[::1]:80`, `example.com:81`);
/// - otherwise host is the whole string and there is no port (`10.0.0.1`, `[::1]`).
///
/// It computes `base = crc32(host ‖ 0x00 ‖ port)` and, for `j` in `0 .. 160 × weight`,
/// point `j = crc32(base-state ‖ le32(point j−1))` with point −1 = 0, i.e. the CRC-32
/// (IEEE) of `host ‖ 0x00 ‖ port ‖ le32(prev)`. Keys hash to `crc32(key)`; the owner is
/// the first point ≥ that hash, wrapping to the first point.
///
/// **Duplicate points.** nginx sorts points with `qsort` by hash only and keeps one
/// point per hash value; which server keeps it depends on the C library's sort.
/// [`HashRing`](crate::HashRing) keeps all points and orders equal hashes by node id,
/// so the smaller id owns a duplicated position. Collisions are rare (about
/// `P² / 2³³` for `P` points: 0.0001 for 1,000 points, 3 for 160,000), and only keys
/// falling in a collided point's arc can differ.
///
/// Use it with 160 points per unit of weight, nginx's constant:
///
/// ```
/// use lb_core::{HashRing, Nginx, NodeId};
/// # fn main() -> Result<(), lb_core::Error> {
/// let mut ring = HashRing::with_hasher(Nginx, 160)?;
/// ring.add(NodeId::new("127.0.0.1:8081")?, 1)?;
/// ring.add(NodeId::new("127.0.0.1:8082")?, 3)?; // server 127.0.0.1:8082 weight=3;
/// let server = ring.lookup(b"user-42");         // as nginx with `hash $arg_key consistent`
/// # assert!(server.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nginx;

impl HashFunction for Nginx {
    #[inline]
    fn hash(&self, bytes: &[u8]) -> u64 {
        u64::from(crc32fast::hash(bytes))
    }

    fn bits(&self) -> u32 {
        32
    }

    fn points(&self, id: &str, count: u32, out: &mut Vec<u64>) {
        let (host, port) = split_server(id);
        let mut base = crc32fast::Hasher::new();
        base.update(host.as_bytes());
        base.update(&[0]);
        base.update(port.as_bytes());
        out.reserve(count as usize);
        let mut prev: u32 = 0;
        for _ in 0..count {
            let mut point = base.clone();
            point.update(&prev.to_le_bytes());
            prev = point.finalize();
            out.push(u64::from(prev));
        }
    }
}

/// Splits an nginx `server` string into host and port as nginx does (port may be "").
pub fn split_server(server: &str) -> (&str, &str) {
    if server.len() >= 5 && server[..5].eq_ignore_ascii_case("unix:") {
        return (&server[5..], "");
    }
    let digits = server.bytes().rev().take_while(u8::is_ascii_digit).count();
    let colon = server.len() - digits;
    if colon > 0 && server.as_bytes()[colon - 1] == b':' {
        (&server[..colon - 1], &server[colon..])
    } else {
        (server, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port_like_nginx() {
        assert_eq!(split_server("127.0.0.1:8080"), ("127.0.0.1", "8080"));
        assert_eq!(split_server("[::1]:80"), ("[::1]", "80"));
        assert_eq!(split_server("[::1]"), ("[::1]", ""));
        assert_eq!(split_server("10.0.0.1"), ("10.0.0.1", ""));
        assert_eq!(split_server("backend"), ("backend", ""));
        assert_eq!(split_server("unix:/run/app.sock"), ("/run/app.sock", ""));
        assert_eq!(split_server("UNIX:/x"), ("/x", ""));
        assert_eq!(split_server("host:"), ("host", ""));
        assert_eq!(split_server("8080"), ("8080", ""));
    }

    #[test]
    fn points_chain_the_previous_hash() {
        let mut points = Vec::new();
        Nginx.points("10.0.0.1:80", 2, &mut points);
        let first = crc32fast::hash(b"10.0.0.1\x0080\x00\x00\x00\x00");
        let mut second_input = b"10.0.0.1\x0080".to_vec();
        second_input.extend_from_slice(&first.to_le_bytes());
        assert_eq!(
            points,
            vec![u64::from(first), u64::from(crc32fast::hash(&second_input))]
        );
    }
}
