//! The lean HTTP/1 path's request parser against hyper's HTTP/1 server: for every
//! input of a corpus (hand-written smuggling and framing cases, then deterministic
//! mutations of plain requests), whatever the lean path takes hyper takes too, and
//! the two agree on method, target, every header field and the body length. What hyper
//! refuses the lean path hands back to hyper (so it is refused as before).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lb_daemon::testing::request::{MAX_HEADERS, Parse, parse};
use tokio::io::AsyncWriteExt;

const MAX_HEAD: usize = 8192;
const MAX_BODY: usize = 1 << 20;

/// What hyper made of the first request in `input`, if it took one.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    /// The body's length once all of it arrived; `None` while it is incomplete.
    body_len: Option<usize>,
}

fn hyper_sees(runtime: &tokio::runtime::Runtime, input: &[u8]) -> Option<Seen> {
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 21);
        let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
        let record = Arc::clone(&seen);
        let service = service_fn(move |req: Request<Incoming>| {
            let record = Arc::clone(&record);
            async move {
                let (parts, body) = req.into_parts();
                *record.lock().unwrap() = Some(Seen {
                    method: parts.method.to_string(),
                    target: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                        .collect(),
                    body_len: None,
                });
                if let Ok(body) = body.collect().await {
                    if let Some(seen) = record.lock().unwrap().as_mut() {
                        seen.body_len = Some(body.to_bytes().len());
                    }
                }
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        });
        let serving = tokio::spawn(
            http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(MAX_HEAD.max(8192))
                .serve_connection(TokioIo::new(server), service),
        );
        let (mut reader, mut writer) = tokio::io::split(client);
        // The write side stays open: an incomplete head makes hyper wait, and the
        // paused clock ends that wait at once.
        let _ = writer.write_all(input).await;
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut sink).await;
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), serving).await;
        drain.abort();
        drop(writer);
        seen.lock().unwrap().take()
    })
}

/// The lean path's view of `input`: `Some` only for a request it serves itself.
fn lean_sees(input: &[u8]) -> Option<Seen> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse(input, &mut headers, MAX_HEAD, MAX_BODY) {
        Parse::Lean(head) => Some(Seen {
            method: head.method.to_string(),
            target: head.target.to_string(),
            headers: head
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect(),
            body_len: (input.len() >= head.head_len + head.body_len).then_some(head.body_len),
        }),
        Parse::Partial | Parse::Handoff => None,
    }
}

/// Request smuggling's classics (RFC 9112 §6.3, §11.2): ambiguous or malformed
/// framing, obs-fold, two hosts. The lean path leaves every one of them to hyper.
const SMUGGLING: &[&[u8]] = &[
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n\tb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
];

/// Hand-written cases: the smuggling ones, framing and syntax corner cases.
fn seeds() -> Vec<Vec<u8>> {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /p?q=1&key=k HTTP/1.1\r\nHost: a\r\nX-Key: v\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length:  3 \r\n\r\nabc",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n",
        b"GET / HTTP/1.1\rHost: a\r\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A:no-space\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\"<>\\^`{|} HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PATCH /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    ];
    let mut seeds: Vec<Vec<u8>> = SMUGGLING.iter().chain(cases).map(|c| c.to_vec()).collect();
    // Oversized heads, and more fields than the parsers take.
    let long = "a".repeat(MAX_HEAD);
    seeds.push(format!("GET / HTTP/1.1\r\nHost: a\r\nX-Long: {long}\r\n\r\n").into_bytes());
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
    seeds.push(format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes());
    seeds
}

/// Deterministic mutations of the seeds: byte flips, insertions of the bytes that
/// matter to HTTP framing, deletions, and duplicated lines.
fn mutations(seeds: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    const SPECIAL: &[u8] = b"\r\n :\t,;\x00\x7f\xff0123456789abcdefABCDEF/?%#\"";
    let mut rng = fastrand::Rng::with_seed(0x005e_ed1b);
    (0..count)
        .map(|_| {
            let mut input = seeds[rng.usize(..seeds.len())].clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..=input.len());
                match rng.u8(..4) {
                    0 if at < input.len() => input[at] = SPECIAL[rng.usize(..SPECIAL.len())],
                    1 => input.insert(at, SPECIAL[rng.usize(..SPECIAL.len())]),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {
                        // Duplicate the line around `at`.
                        let start = input[..at]
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |i| i + 1);
                        let end = input[at..]
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(input.len(), |i| at + i + 1);
                        let line = input[start..end].to_vec();
                        input.splice(end..end, line);
                    }
                }
            }
            input
        })
        .collect()
}

#[test]
fn whatever_the_lean_path_takes_hyper_takes_the_same_way() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let seeds = seeds();
    let mut corpus = seeds.clone();
    corpus.extend(mutations(&seeds, 3000));
    let (mut lean, mut both_refuse, mut handed) = (0, 0, 0);
    for input in &corpus {
        let shown = String::from_utf8_lossy(input);
        let hyper = hyper_sees(&runtime, input);
        match (lean_sees(input), hyper) {
            (Some(lean_view), Some(hyper_view)) => {
                lean += 1;
                assert_eq!(lean_view.method, hyper_view.method, "{shown:?}");
                assert_eq!(lean_view.target, hyper_view.target, "{shown:?}");
                assert_eq!(lean_view.body_len, hyper_view.body_len, "{shown:?}");
                // hyper's map groups fields by name; compare per name, in order.
                let mut lean_fields = lean_view.headers.clone();
                let mut hyper_fields = hyper_view.headers.clone();
                lean_fields.sort_by(|a, b| a.0.cmp(&b.0));
                hyper_fields.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(lean_fields, hyper_fields, "{shown:?}");
            }
            (Some(_), None) => panic!("the lean path takes a request hyper refuses: {shown:?}"),
            (None, None) => both_refuse += 1,
            (None, Some(_)) => handed += 1,
        }
    }
    println!("{lean} lean and agreed, {handed} handed to hyper, {both_refuse} refused by both");
    // The corpus exercises all three outcomes.
    assert!(
        lean >= 20 && handed >= 20 && both_refuse >= 20,
        "{lean}/{handed}/{both_refuse}"
    );
    // Every smuggling case in particular is hyper's to judge.
    for input in SMUGGLING {
        assert!(
            lean_sees(input).is_none(),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
