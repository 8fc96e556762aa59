//! Unit tests of the framing rules: one table per rule, each row a raw request and what it
//! must give.

use super::*;

fn limits() -> Limits {
    Limits {
        header_bytes_max: 512,
        headers_count_max: 8,
        uri_bytes_max: 64,
        body_bytes_max: 100,
        ..Limits::default()
    }
}

fn parse(raw: &[u8]) -> Result<HeadStatus, HeadError> {
    parse_head(raw, &limits())
}

#[track_caller]
fn head(raw: &str) -> RequestHead {
    match parse(raw.as_bytes()) {
        Ok(HeadStatus::Complete(h)) => h,
        other => panic!("{raw:?}: expected a complete head, got {other:?}"),
    }
}

#[track_caller]
fn error(raw: &str) -> HeadError {
    match parse(raw.as_bytes()) {
        Err(e) => e,
        other => panic!("{raw:?}: expected an error, got {other:?}"),
    }
}

/// A POST head with one extra header line (or none when `extra` is empty).
fn post_with(extra: &str) -> String {
    format!("POST /in HTTP/1.1\r\nHost: h\r\n{extra}\r\n")
}

#[test]
fn a_simple_get_is_parsed_with_lowercased_header_names() {
    let raw = "GET /api/v1/app?x=1 HTTP/1.1\r\nHost: example\r\nX-Thing:  a b \r\n\r\n";
    let h = head(raw);
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.target, "/api/v1/app?x=1");
    assert_eq!(h.minor_version, 1);
    assert_eq!(
        h.headers,
        vec![
            ("host".to_owned(), b"example".to_vec()),
            ("x-thing".to_owned(), b"a b".to_vec()),
        ]
    );
    assert_eq!(h.framing, BodyFraming::None);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert_eq!(h.head_bytes, raw.len());
}

#[test]
fn an_incomplete_head_is_partial() {
    for raw in [
        "",
        "GE",
        "GET / HTTP/1.1",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\r",
    ] {
        assert_eq!(parse(raw.as_bytes()), Ok(HeadStatus::Partial), "{raw:?}");
    }
}

#[test]
fn head_bytes_stop_at_the_first_request_of_a_pipeline() {
    let first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let raw = format!("{first}GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    let h = head(&raw);
    assert_eq!(h.target, "/a");
    assert_eq!(h.head_bytes, first.len());
}

#[test]
fn leading_empty_lines_and_bare_lf_line_ends_are_accepted() {
    let h = head("\r\n\r\nGET /x HTTP/1.1\nHost: h\n\n");
    assert_eq!(h.target, "/x");
}

#[test]
fn methods_are_case_sensitive_and_unknown_ones_are_other() {
    assert_eq!(
        head("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").method,
        Method::Head
    );
    assert_eq!(
        head("BREW / HTTP/1.1\r\nHost: h\r\n\r\n").method,
        Method::Other
    );
    assert_eq!(
        head("get / HTTP/1.1\r\nHost: h\r\n\r\n").method,
        Method::Other
    );
}

#[test]
fn an_absolute_form_target_is_reduced_to_origin_form() {
    for (target, expected) in [
        ("http://example.com/a/b?c=1", "/a/b?c=1"),
        ("HTTPS://example.com:8443/a", "/a"),
        ("http://example.com", "/"),
        ("http://example.com?q", "/?q"),
        ("*", "*"),
        ("/plain", "/plain"),
    ] {
        let h = head(&format!("OPTIONS {target} HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert_eq!(h.target, expected, "{target}");
    }
}

#[test]
fn syntax_errors_are_malformed_400() {
    for raw in [
        "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        "GET / HTTP/1.1\r\nHo st: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
        "GET / HTTP/1.1\rHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\nHost: h\r\n\r\n",
    ] {
        let e = error(raw);
        assert!(matches!(e, HeadError::Malformed(_)), "{raw:?}: {e:?}");
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn obs_fold_is_refused_with_a_message_that_names_it() {
    for raw in [
        "GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n\tb\r\n\r\n",
    ] {
        let e = error(raw);
        assert_eq!(
            e,
            HeadError::Malformed("header line folding (obs-fold) is not allowed"),
            "{raw:?}"
        );
    }
}

#[test]
fn only_http_1_0_and_1_1_are_spoken() {
    for raw in [
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
        "GET / FTP/1.1\r\nHost: h\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert_eq!(error(raw), HeadError::UnsupportedVersion, "{raw:?}");
    }
    assert_eq!(head("GET / HTTP/1.0\r\n\r\n").minor_version, 0);
}

#[test]
fn http_1_1_needs_exactly_one_host() {
    assert!(matches!(
        error("GET / HTTP/1.1\r\n\r\n"),
        HeadError::InvalidHost(_)
    ));
    assert!(matches!(
        error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        HeadError::InvalidHost(_)
    ));
    assert!(matches!(
        error("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"),
        HeadError::InvalidHost(_)
    ));
    head("GET / HTTP/1.0\r\n\r\n");
    head("GET / HTTP/1.1\r\nHost:\r\n\r\n");
}

#[test]
fn keep_alive_follows_the_version_and_connection_header() {
    for (raw, keep) in [
        ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ] {
        assert_eq!(head(raw).keep_alive, keep, "{raw:?}");
    }
}

#[test]
fn content_length_forms() {
    // OWS around a field value is not part of it (RFC 9110 §5.5), so " 5" and "5 " are 5.
    for (value, framing) in [
        ("5", BodyFraming::Length(5)),
        ("005", BodyFraming::Length(5)),
        (" 5", BodyFraming::Length(5)),
        ("5 ", BodyFraming::Length(5)),
        ("\t5\t", BodyFraming::Length(5)),
        ("5,5", BodyFraming::Length(5)),
        ("5, 5", BodyFraming::Length(5)),
        ("0", BodyFraming::None),
        ("100", BodyFraming::Length(100)),
    ] {
        let raw = post_with(&format!("Content-Length: {value}\r\n"));
        assert_eq!(head(&raw).framing, framing, "{value:?}");
    }
    for value in [
        "+5", "-1", "5 5", "0x5", "1e3", "5a", "", " ", "5,", ",5", "5, 6", "٥", "5.0",
    ] {
        let raw = post_with(&format!("Content-Length: {value}\r\n"));
        let e = error(&raw);
        assert!(
            matches!(e, HeadError::InvalidContentLength(_)),
            "{value:?}: {e:?}"
        );
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn duplicate_content_lengths_must_agree() {
    let same = post_with("Content-Length: 7\r\nContent-Length: 7\r\n");
    assert_eq!(head(&same).framing, BodyFraming::Length(7));
    let different = post_with("Content-Length: 7\r\nContent-Length: 8\r\n");
    assert!(matches!(
        error(&different),
        HeadError::InvalidContentLength(_)
    ));
}

#[test]
fn a_content_length_over_the_limit_is_413_at_once() {
    for value in ["101", "99999999999999999999999999"] {
        let raw = post_with(&format!("Content-Length: {value}\r\n"));
        let e = error(&raw);
        assert_eq!(e, HeadError::BodyTooLarge { limit: 100 }, "{value}");
        assert_eq!(e.status(), 413);
    }
}

#[test]
fn transfer_encoding_must_be_chunked_alone_and_last() {
    for value in ["chunked", "Chunked", "CHUNKED", " chunked ", "chunked,"] {
        let raw = post_with(&format!("Transfer-Encoding: {value}\r\n"));
        assert_eq!(head(&raw).framing, BodyFraming::Chunked, "{value:?}");
    }
    for extra in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked;q=1\r\n",
        "Transfer-Encoding: \r\n",
        "Transfer-Encoding: xchunked\r\n",
    ] {
        let e = error(&post_with(extra));
        assert!(
            matches!(e, HeadError::InvalidTransferEncoding(_)),
            "{extra:?}: {e:?}"
        );
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn content_length_beside_transfer_encoding_is_refused() {
    for extra in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Transfer-Encoding: gzip, chunked\r\nContent-Length: 0\r\n",
    ] {
        assert_eq!(
            error(&post_with(extra)),
            HeadError::ConflictingFraming,
            "{extra:?}"
        );
    }
}

#[test]
fn transfer_encoding_in_http_1_0_is_refused() {
    let raw = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(error(raw), HeadError::InvalidTransferEncoding(_)));
}

#[test]
fn expect_100_continue_is_flagged_only_with_a_body() {
    let with_body = post_with("Content-Length: 5\r\nExpect: 100-continue\r\n");
    assert!(head(&with_body).expect_continue);
    let chunked = post_with("Transfer-Encoding: chunked\r\nExpect: 100-Continue\r\n");
    assert!(head(&chunked).expect_continue);
    let no_body = post_with("Expect: 100-continue\r\n");
    assert!(!head(&no_body).expect_continue);
    let http10 = "POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    assert!(!head(http10).expect_continue);
}

#[test]
fn other_expectations_are_417_except_in_http_1_0() {
    let e = error(&post_with("Content-Length: 5\r\nExpect: 200-ok\r\n"));
    assert_eq!(e, HeadError::ExpectationFailed);
    assert_eq!(e.status(), 417);
    head("POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 200-ok\r\n\r\n");
}

#[test]
fn a_long_target_is_414_complete_or_not() {
    let target = format!("/{}", "a".repeat(64));
    let complete = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(error(&complete), HeadError::UriTooLong { limit: 64 });
    assert_eq!(error(&complete).status(), 414);
    // Refused while the request line is still arriving, long before header_bytes_max.
    let partial = format!("GET {target}");
    assert!(partial.len() < limits().header_bytes_max);
    assert_eq!(error(&partial), HeadError::UriTooLong { limit: 64 });
    // A target of exactly the limit is fine.
    let target = format!("/{}", "a".repeat(63));
    head(&format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert_eq!(
        parse(format!("GET {target}").as_bytes()),
        Ok(HeadStatus::Partial)
    );
}

#[test]
fn a_long_head_is_431_complete_or_not() {
    let filler = format!("X-Filler: {}\r\n", "f".repeat(500));
    let complete = format!("GET / HTTP/1.1\r\nHost: h\r\n{filler}\r\n");
    assert_eq!(error(&complete), HeadError::HeadersTooLarge { limit: 512 });
    assert_eq!(error(&complete).status(), 431);
    let partial = format!("GET / HTTP/1.1\r\nHost: h\r\n{filler}");
    assert_eq!(error(&partial), HeadError::HeadersTooLarge { limit: 512 });
    // A head of exactly the limit is fine.
    let base = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
    let exact = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        "x".repeat(512 - base)
    );
    assert_eq!(exact.len(), 512);
    head(&exact);
}

#[test]
fn too_many_headers_is_431() {
    let lines = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    // Host plus 7 others: exactly the limit of 8.
    head(&format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", lines(7)));
    let e = error(&format!("GET / HTTP/1.1\r\nHost: h\r\n{}\r\n", lines(8)));
    assert_eq!(e, HeadError::TooManyHeaders { limit: 8 });
    assert_eq!(e.status(), 431);
}

#[test]
fn a_head_fed_a_byte_at_a_time_parses_like_a_whole_one() {
    let raw = b"POST /x?y HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    let whole = parse(raw).expect("valid");
    let mut parser = HeadParser::new();
    let mut result = None;
    for end in 1..=raw.len() {
        match parser.parse(&raw[..end], &limits()) {
            Ok(HeadStatus::Partial) => continue,
            other => {
                result = Some((end, other));
                break;
            }
        }
    }
    let (end, status) = result.expect("completes");
    assert_eq!(end, raw.len() - 3, "completes at the empty line");
    assert_eq!(status, Ok(whole));
}

#[test]
fn a_parser_given_a_shorter_buffer_starts_over() {
    let mut parser = HeadParser::new();
    let long = b"GET /a-rather-long-target HTTP/1.1\r\nHost: h\r\n";
    assert_eq!(parser.parse(long, &limits()), Ok(HeadStatus::Partial));
    let short = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    assert!(short.len() < long.len());
    match parser.parse(short, &limits()) {
        Ok(HeadStatus::Complete(h)) => assert_eq!(h.target, "/b"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_hold_when_a_head_trickles_in() {
    let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "x".repeat(600));
    let mut parser = HeadParser::new();
    let mut outcome = None;
    for end in 1..=raw.len() {
        if let Err(e) = parser.parse(&raw.as_bytes()[..end], &limits()) {
            outcome = Some((end, e));
            break;
        }
    }
    assert_eq!(
        outcome,
        Some((513, HeadError::HeadersTooLarge { limit: 512 }))
    );

    let raw = format!("GET /{}", "a".repeat(100));
    let mut parser = HeadParser::new();
    let mut outcome = None;
    for end in 1..=raw.len() {
        if let Err(e) = parser.parse(&raw.as_bytes()[..end], &limits()) {
            outcome = Some((end, e));
            break;
        }
    }
    assert_eq!(outcome, Some((4 + 65, HeadError::UriTooLong { limit: 64 })));
}

#[test]
fn every_head_error_has_a_status_and_a_code() {
    let errors = [
        HeadError::HeadersTooLarge { limit: 1 },
        HeadError::TooManyHeaders { limit: 1 },
        HeadError::UriTooLong { limit: 1 },
        HeadError::BodyTooLarge { limit: 1 },
        HeadError::Malformed("x"),
        HeadError::UnsupportedVersion,
        HeadError::InvalidContentLength("x"),
        HeadError::InvalidTransferEncoding("x"),
        HeadError::ConflictingFraming,
        HeadError::InvalidHost("x"),
        HeadError::ExpectationFailed,
    ];
    for e in errors {
        assert!((400..500).contains(&e.status()), "{e:?}");
        assert!(!e.code().is_empty() && !e.to_string().is_empty(), "{e:?}");
    }
}

// ---- chunked bodies

fn chunk_limits() -> Limits {
    Limits {
        body_bytes_max: 32,
        header_bytes_max: 64,
        ..Limits::default()
    }
}

fn dechunk_all(raw: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ChunkedError> {
    dechunk(raw, &chunk_limits())
}

#[track_caller]
fn body(raw: &str) -> Vec<u8> {
    match dechunk_all(raw.as_bytes()) {
        Ok(Some((body, used))) => {
            assert_eq!(used, raw.len(), "{raw:?}: consumed");
            body
        }
        other => panic!("{raw:?}: expected a body, got {other:?}"),
    }
}

#[track_caller]
fn chunk_error(raw: &str) -> ChunkedError {
    match dechunk_all(raw.as_bytes()) {
        Err(e) => e,
        other => panic!("{raw:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn chunked_bodies_decode() {
    assert_eq!(body("0\r\n\r\n"), b"");
    assert_eq!(body("5\r\nhello\r\n0\r\n\r\n"), b"hello");
    assert_eq!(
        body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        b"hello world"
    );
    assert_eq!(body("000\r\n\r\n"), b"");
    assert_eq!(body("0005\r\nhello\r\n0\r\n\r\n"), b"hello");
}

#[test]
fn chunk_sizes_are_hex_in_either_case() {
    let data = "0123456789abcdef0123456789";
    assert_eq!(data.len(), 0x1a);
    assert_eq!(body(&format!("1a\r\n{data}\r\n0\r\n\r\n")), data.as_bytes());
    assert_eq!(body(&format!("1A\r\n{data}\r\n0\r\n\r\n")), data.as_bytes());
}

#[test]
fn chunk_extensions_are_skipped() {
    assert_eq!(body("5;name=value\r\nhello\r\n0\r\n\r\n"), b"hello");
    assert_eq!(
        body("5 ; a=\"q s\"; b\r\nhello\r\n0;last\r\n\r\n"),
        b"hello"
    );
    assert!(matches!(
        chunk_error("5;a\x01b\r\nhello\r\n0\r\n\r\n"),
        ChunkedError::Invalid(_)
    ));
}

#[test]
fn trailers_are_read_and_dropped() {
    assert_eq!(
        body("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"),
        b"hello"
    );
    assert!(matches!(
        chunk_error("0\r\nX: a\nb\r\n\r\n"),
        ChunkedError::Invalid(_)
    ));
}

#[test]
fn framing_errors_are_400() {
    for raw in [
        "5\r\nhelloX\r\n0\r\n\r\n",  // data longer than its size
        "5\r\nhello\n0\r\n\r\n",     // LF without CR after data
        "5\r\nhello0\r\n\r\n",       // no CRLF after data at all
        "5\nhello\r\n0\r\n\r\n",     // bare LF after the size
        "5\r\rhello\r\n0\r\n\r\n",   // CR CR
        "\r\nhello\r\n0\r\n\r\n",    // no size
        "x\r\nhello\r\n0\r\n\r\n",   // not hex
        "-1\r\nhello\r\n0\r\n\r\n",  // negative
        "+5\r\nhello\r\n0\r\n\r\n",  // sign
        "0x5\r\nhello\r\n0\r\n\r\n", // 0x prefix
        "5 \r\nhello\r\n0\r\n\r\n",  // whitespace not followed by an extension
        " 5\r\nhello\r\n0\r\n\r\n",  // leading whitespace
        "0\r\n\r\r",                 // bad final CRLF
        "0\r\n\n",                   // bare LF at the end
        "10000000000000000\r\n",     // 17 hex digits
        "00000000000000000\r\n",     // 17 digits, even as zeros
    ] {
        let e = chunk_error(raw);
        assert!(matches!(e, ChunkedError::Invalid(_)), "{raw:?}: {e:?}");
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn chunk_sizes_are_summed_against_the_body_limit() {
    // 16 hex digits fit a u64 but are far over the limit: refused at the size line.
    assert_eq!(
        chunk_error("ffffffffffffffff\r\n"),
        ChunkedError::TooLarge { limit: 32 }
    );
    assert_eq!(
        chunk_error("10\r\n0123456789abcdef\r\n11\r\n"),
        ChunkedError::TooLarge { limit: 32 }
    );
    assert_eq!(chunk_error("21\r\n").status(), 413);
    // Exactly the limit is fine.
    let data = "x".repeat(32);
    assert_eq!(body(&format!("20\r\n{data}\r\n0\r\n\r\n")), data.as_bytes());
}

#[test]
fn extensions_and_trailers_are_bounded() {
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(65));
    assert!(matches!(chunk_error(&long_ext), ChunkedError::Invalid(_)));
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(64));
    assert!(matches!(
        chunk_error(&long_trailer),
        ChunkedError::Invalid(_)
    ));
}

#[test]
fn an_unfinished_body_needs_more() {
    for raw in [
        "",
        "5",
        "5\r",
        "5\r\nhel",
        "5\r\nhello\r\n",
        "5\r\nhello\r\n0\r\n",
        "0\r\nX: 1\r\n",
    ] {
        assert_eq!(dechunk_all(raw.as_bytes()), Ok(None), "{raw:?}");
    }
}

#[test]
fn bytes_after_the_body_are_left_for_the_next_request() {
    let raw = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(dechunk_all(raw), Ok(Some((b"abc".to_vec(), 13))));
    let mut decoder = ChunkedDecoder::new(&chunk_limits());
    assert_eq!(decoder.decode(b"0\r\n\r\n"), Ok(Decoded::Done(5)));
    assert!(decoder.is_done());
    assert_eq!(decoder.decode(b"more"), Ok(Decoded::Done(0)));
}

#[test]
fn any_split_of_the_input_decodes_the_same() {
    let raw = b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n";
    let expected = b"abc0123456789abcdef".to_vec();
    // Every way of cutting the input in two, then one byte at a time.
    for cut in 0..=raw.len() {
        let mut decoder = ChunkedDecoder::new(&chunk_limits());
        let mut out = Vec::new();
        let mut done = false;
        for part in [&raw[..cut], &raw[cut..]] {
            let mut pos = 0;
            while pos < part.len() && !done {
                match decoder.decode(&part[pos..]).expect("valid") {
                    Decoded::Data(r) => {
                        out.extend_from_slice(&part[pos..][r.clone()]);
                        pos += r.end;
                    }
                    Decoded::NeedMore => pos = part.len(),
                    Decoded::Done(n) => {
                        pos += n;
                        done = true;
                    }
                }
            }
        }
        assert!(done, "cut at {cut}");
        assert_eq!(out, expected, "cut at {cut}");
    }
    let mut decoder = ChunkedDecoder::new(&chunk_limits());
    let mut out = Vec::new();
    for (i, byte) in raw.iter().enumerate() {
        match decoder.decode(std::slice::from_ref(byte)).expect("valid") {
            Decoded::Data(r) => {
                assert_eq!(r, 0..1);
                out.push(*byte);
            }
            Decoded::NeedMore => {}
            Decoded::Done(n) => {
                assert_eq!((i, n), (raw.len() - 1, 1));
            }
        }
    }
    assert!(decoder.is_done());
    assert_eq!(out, expected);
}

/// Mutated valid requests (byte flips, insertions, cuts) through every entry point: nothing
/// panics, and whatever is accepted respects the limits. A cheap stand-in for a fuzzer.
#[test]
fn mutated_inputs_never_panic_and_respect_the_limits() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let seeds: [&[u8]; 4] = [
        b"POST /in?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        b"GET http://x/y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n",
    ];
    let interesting = b"\r\n :;,0123456789abcdefABCDEF-+\t\0\x7f\xff";
    let mut rng = StdRng::seed_from_u64(0x6b6f_6f68);
    for _ in 0..20_000 {
        let mut input = seeds[rng.gen_range(0..seeds.len())].to_vec();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..=input.len());
            let byte = interesting[rng.gen_range(0..interesting.len())];
            match rng.gen_range(0..4) {
                0 if at < input.len() => input[at] = byte,
                1 => input.insert(at, byte),
                2 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.truncate(at),
            }
        }
        let limits = limits();
        if let Ok(HeadStatus::Complete(head)) = parse_head(&input, &limits) {
            assert!(head.head_bytes <= input.len().min(limits.header_bytes_max));
            if let BodyFraming::Length(n) = head.framing {
                assert!(n <= limits.body_bytes_max);
            }
        }
        let mut parser = HeadParser::new();
        for end in 0..=input.len() {
            if !matches!(
                parser.parse(&input[..end], &limits),
                Ok(HeadStatus::Partial)
            ) {
                break;
            }
        }
        if let Ok(Some((body, used))) = dechunk(&input, &limits) {
            assert!(body.len() <= limits.body_bytes_max && used <= input.len());
        }
    }
}
