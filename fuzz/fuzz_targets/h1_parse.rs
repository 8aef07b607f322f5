//! The lean HTTP/1 path's parsers of untrusted bytes: the client's request head, the
//! replica's response head and its chunked framing. Whatever the bytes, they never
//! panic; a head the lean path takes is rewritten into an upstream head that parses
//! again as the same request; a response head it forwards parses again with the same
//! status; the chunked tracker ends within the bytes it was given.
#![no_main]

use lb_daemon::testing::request::{MAX_HEADERS, Parse, parse};
use lb_daemon::testing::chunked::Chunked;
use lb_daemon::testing::response::{self, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if let Parse::Lean(head) = parse(data, &mut headers, 8192, 1 << 20) {
        assert!(head.head_len <= data.len());
        if head.headers.len() + 2 <= MAX_HEADERS {
            let mut upstream = Vec::new();
            head.write_upstream_head("10.0.0.1".parse().unwrap(), &mut upstream);
            let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse(&upstream, &mut again, usize::MAX, usize::MAX) {
                Parse::Lean(rewritten) => {
                    assert_eq!(rewritten.method, head.method);
                    assert_eq!(rewritten.target, head.target);
                    assert_eq!(rewritten.body_len, head.body_len);
                    assert_eq!(rewritten.head_len, upstream.len());
                }
                other => panic!("the upstream head is not a plain request: {other:?}"),
            }
        }
    }

    let mut client_head = Vec::new();
    if let Ok(Parsed::Final(head)) = response::parse(data, false, b"r1", false, &mut client_head) {
        assert!(head.head_len <= data.len());
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS + 2];
        let mut again = httparse::Response::new(&mut fields);
        match again.parse(&client_head) {
            Ok(httparse::Status::Complete(len)) => {
                assert_eq!(len, client_head.len());
                assert_eq!(again.code, Some(head.status));
            }
            other => panic!("the client head does not parse: {other:?}"),
        }
    }

    let mut chunked = Chunked::default();
    if let Ok(Some(end)) = chunked.feed(data) {
        assert!(end <= data.len());
    }
});
