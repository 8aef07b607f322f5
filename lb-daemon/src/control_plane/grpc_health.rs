//! The messages of gRPC's health checking protocol (`grpc.health.v1`, grpc/grpc
//! `doc/health-checking.md`), encoded and decoded by hand: a heartbeat needs one string
//! field out and one enum field back, not a protobuf stack.
//!
//! ```proto
//! message HealthCheckRequest { string service = 1; }
//! message HealthCheckResponse { ServingStatus status = 1; }  // SERVING = 1
//! ```
//!
//! Each message travels in gRPC's length-prefixed frame: a compression flag byte (0)
//! and a big-endian `u32` length before the protobuf bytes.

use bytes::{BufMut, Bytes, BytesMut};

/// The health check's method path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// The framed `HealthCheckRequest` for `service` (empty: the whole server).
pub fn check_request(service: &str) -> Bytes {
    let mut message = BytesMut::with_capacity(service.len() + 8);
    if !service.is_empty() {
        message.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.put_slice(&message);
    framed.freeze()
}

/// Whether `framed` (a response body) is one `HealthCheckResponse` saying `SERVING`.
/// Anything else, malformed or compressed included, is not serving.
pub fn is_serving(framed: &[u8]) -> bool {
    let Some((&[0], rest)) = framed.split_at_checked(1) else {
        return false;
    };
    let Some((length, message)) = rest.split_at_checked(4) else {
        return false;
    };
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    if message.len() != length {
        return false;
    }
    status(message) == Some(SERVING)
}

/// The `status` field of a `HealthCheckResponse` (0, `UNKNOWN`, when absent); `None`
/// when the bytes are not a valid message.
fn status(mut message: &[u8]) -> Option<u64> {
    let mut status = 0;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        match key & 7 {
            0 => {
                let value = varint(&mut message)?;
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => message = message.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut message)?).ok()?;
                message = message.get(len..)?;
            }
            5 => message = message.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_framed_protobuf() {
        assert_eq!(&check_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &check_request("echo.Echo")[..],
            b"\x00\x00\x00\x00\x0b\x0a\x09echo.Echo"
        );
        let long = "s".repeat(200);
        let framed = check_request(&long);
        // A 200-byte string's length takes two varint bytes.
        assert_eq!(&framed[5..8], &[0x0a, 0xc8, 0x01]);
        assert_eq!(framed.len(), 5 + 3 + 200);
    }

    #[test]
    fn only_a_serving_answer_passes() {
        assert!(is_serving(b"\x00\x00\x00\x00\x02\x08\x01"));
        // NOT_SERVING, UNKNOWN (field absent), SERVICE_UNKNOWN.
        assert!(!is_serving(b"\x00\x00\x00\x00\x02\x08\x02"));
        assert!(!is_serving(b"\x00\x00\x00\x00\x00"));
        assert!(!is_serving(b"\x00\x00\x00\x00\x02\x08\x03"));
        // An unknown field beside it is skipped.
        assert!(is_serving(b"\x00\x00\x00\x00\x05\x12\x01x\x08\x01"));
        // Compressed, truncated, wrong length, bad wire type, empty.
        assert!(!is_serving(b"\x01\x00\x00\x00\x02\x08\x01"));
        assert!(!is_serving(b"\x00\x00\x00\x00\x02\x08"));
        assert!(!is_serving(b"\x00\x00\x00\x00\x03\x08\x01"));
        assert!(!is_serving(b"\x00\x00\x00\x00\x02\x0f\x01"));
        assert!(!is_serving(b""));
    }
}
