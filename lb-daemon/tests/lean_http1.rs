//! The lean HTTP/1.1 path end to end, on raw sockets against real replicas: bodies
//! of every framing relayed byte for byte (a long one spliced), keep-alive and
//! pipelining kept, `Connection: close` honoured, and requests the lean path does
//! not take (chunked uploads, smuggling attempts) served or refused by hyper on the
//! same connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Daemon, base_config};

/// A response read off the wire: status, lowercase header fields, decoded body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn connect(daemon: &Daemon) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(daemon.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    BufReader::new(stream)
}

fn send(conn: &mut BufReader<TcpStream>, bytes: &[u8]) {
    conn.get_mut().write_all(bytes).unwrap();
}

/// Reads one response; `head_request` for the answer to a HEAD.
fn read_reply(conn: &mut BufReader<TcpStream>, head_request: bool) -> Reply {
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut field = String::new();
        conn.read_line(&mut field).unwrap();
        let field = field.trim_end();
        if field.is_empty() {
            break;
        }
        let (name, value) = field.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 {
        return reply;
    }
    if reply.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            reply.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = reply.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        conn.read_exact(&mut body).unwrap();
        reply.body = body;
    } else {
        conn.read_to_end(&mut reply.body).unwrap();
    }
    reply
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: lb\r\nx-lb-key: lean\r\n\r\n").into_bytes()
}

#[test]
fn bodies_of_every_framing_arrive_whole_on_one_kept_alive_connection() {
    let daemon = Daemon::start(&base_config(2));
    let mut conn = connect(&daemon);
    // Content-Length, long enough to be spliced.
    send(&mut conn, &get("/bytes/2097152"));
    let reply = read_reply(&mut conn, false);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 2_097_152);
    assert!(reply.body.iter().all(|b| *b == b'x'));
    assert!(reply.header("x-lb-replica").is_some());
    // A second long body through the pipe the first one left to the worker.
    send(&mut conn, &get("/bytes/300001"));
    let reply = read_reply(&mut conn, false);
    assert_eq!(reply.body.len(), 300_001);
    assert!(reply.body.iter().all(|b| *b == b'x'));
    // Chunked, forwarded as it is.
    send(&mut conn, &get("/chunked/20000"));
    let reply = read_reply(&mut conn, false);
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.body, vec![b'x'; 20_000]);
    // A body sent along, echoed.
    let upload: Vec<u8> = (0..4096u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut post =
        b"POST /echo HTTP/1.1\r\nHost: lb\r\nx-lb-key: lean\r\nContent-Length: 4096\r\n\r\n"
            .to_vec();
    post.extend_from_slice(&upload);
    send(&mut conn, &post);
    let reply = read_reply(&mut conn, false);
    assert_eq!((reply.status, reply.body), (200, upload));
    // HEAD (the replica serves no HEAD here: a 404 whose Content-Length tells the
    // size of the body a GET would get): a head only, and the connection goes on.
    send(
        &mut conn,
        b"HEAD /home HTTP/1.1\r\nHost: lb\r\nx-lb-key: lean\r\n\r\n",
    );
    let reply = read_reply(&mut conn, true);
    assert!(
        reply.header("content-length").is_some_and(|n| n != "0"),
        "{reply:?}"
    );
    send(&mut conn, &get("/bytes/10"));
    assert_eq!(read_reply(&mut conn, false).body, b"xxxxxxxxxx");
}

#[test]
fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
    let daemon = Daemon::start(&base_config(2));
    let mut conn = connect(&daemon);
    let mut both = get("/bytes/3");
    both.extend_from_slice(&get("/bytes/5"));
    both.extend_from_slice(
        b"GET /bytes/7 HTTP/1.1\r\nHost: lb\r\nx-lb-key: lean\r\nConnection: close\r\n\r\n",
    );
    send(&mut conn, &both);
    assert_eq!(read_reply(&mut conn, false).body.len(), 3);
    assert_eq!(read_reply(&mut conn, false).body.len(), 5);
    let last = read_reply(&mut conn, false);
    assert_eq!(last.body.len(), 7);
    assert_eq!(last.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(conn.read_to_end(&mut rest).unwrap(), 0, "the daemon closed");
}

#[test]
fn requests_the_lean_path_does_not_take_go_to_hyper_on_the_same_connection() {
    let daemon = Daemon::start(&base_config(2));
    let mut conn = connect(&daemon);
    send(&mut conn, &get("/bytes/4"));
    assert_eq!(read_reply(&mut conn, false).body, b"xxxx");
    // A chunked upload: hyper's to decode, on the connection the lean path served.
    send(
        &mut conn,
        b"POST /echo HTTP/1.1\r\nHost: lb\r\nx-lb-key: lean\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let reply = read_reply(&mut conn, false);
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, &b"hello world"[..])
    );
    send(&mut conn, &get("/bytes/2"));
    assert_eq!(read_reply(&mut conn, false).body, b"xx");

    // Content-Length and Transfer-Encoding together: hyper's to judge, and it frames
    // the body by Transfer-Encoding (RFC 9112 §6.3), so the replica gets an empty
    // body, not the 4 bytes `Content-Length` claims.
    let mut conn = connect(&daemon);
    send(
        &mut conn,
        b"POST /echo HTTP/1.1\r\nHost: lb\r\nx-lb-key: lean\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let reply = read_reply(&mut conn, false);
    assert_eq!((reply.status, reply.body.len()), (200, 0), "{reply:?}");

    // Bytes that are no HTTP at all: hyper's 400.
    let mut conn = connect(&daemon);
    send(
        &mut conn,
        b"GET / HTTP/1.1\r\nHost: lb\r\nBad Header\r\n\r\n",
    );
    assert_eq!(read_reply(&mut conn, false).status, 400);
}

/// The samples of `stage` in `lb_request_stage_seconds_count`, over all workers.
fn stage_count(daemon: &Daemon, stage: &str) -> f64 {
    let (_, text) = common::call("GET", &daemon.url("/metrics"), None);
    let label = format!("stage=\"{stage}\"");
    text.lines()
        .filter(|l| l.starts_with("lb_request_stage_seconds_count") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn lean_http1_false_leaves_every_request_to_hyper() {
    for (lean, request_heads) in [(true, 5.0), (false, 0.0)] {
        let config = base_config(2).replace(
            "[shutdown]",
            &format!("[server]\nlean_http1 = {lean}\n\n[shutdown]"),
        );
        let daemon = Daemon::start(&config);
        let mut conn = connect(&daemon);
        for _ in 0..5 {
            send(&mut conn, &get("/bytes/300000"));
            assert_eq!(read_reply(&mut conn, false).body.len(), 300_000);
        }
        // Only the lean path times the request head; both time the replica's answer.
        assert_eq!(
            stage_count(&daemon, "request_head"),
            request_heads,
            "lean_http1 = {lean}"
        );
        assert_eq!(
            stage_count(&daemon, "response_head"),
            5.0,
            "lean_http1 = {lean}"
        );
    }
}
