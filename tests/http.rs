//! The HTTP/1.1 server over real sockets: a monoio shard running `run_listener` on a
//! background thread, driven with raw bytes from `std::net::TcpStream` (and rustls for TLS).
//!
//! Every test ends by checking that a fresh connection still gets a 200 and that the server
//! thread did not panic ([`finish`]).

#[path = "support/http_client.rs"]
mod http_client;
#[path = "support/http_server.rs"]
mod http_server;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hookd::config::TlsConfig;
use hookd::http::{tls, Limits};
use http_client::{request_bytes, Client, Reply};
use http_server::{test_limits, TestServer};

/// Checks the server still serves a fresh connection, then stops it (failing if it panicked).
#[track_caller]
fn finish(server: TestServer) {
    let mut client = Client::connect(server.addr);
    let reply = client.request("GET", "/healthy", b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["target"], "/healthy");
    drop(client);
    server.stop();
}

fn start() -> TestServer {
    TestServer::start(test_limits())
}

/// Sends `raw` on a fresh connection and returns the one reply; asserts the server then
/// closes the connection.
#[track_caller]
fn refused(server: &TestServer, raw: &[u8]) -> Reply {
    let mut client = Client::connect(server.addr);
    client.send(raw);
    let reply = client.read_reply();
    client.expect_closed();
    reply
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start();
    let mut client = Client::connect(server.addr);
    for i in 0..5 {
        let body = format!("{{\"n\":{i}}}");
        let reply = client.request("POST", &format!("/echo/{i}?q={i}"), body.as_bytes());
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("connection"), None, "keep-alive is implicit");
        assert!(reply.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(
            reply.header("content-length"),
            Some(reply.body.len().to_string().as_str())
        );
        let json = reply.json();
        assert_eq!(json["method"], "POST");
        assert_eq!(json["target"], format!("/echo/{i}?q={i}"));
        assert_eq!(json["body"], body);
        assert_eq!(json["peer_is_loopback"], true);
    }
    // The same connection: asking to close is honoured after the answer.
    client.send(b"GET /last HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    let reply = client.read_reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
    client.expect_closed();
    finish(server);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start();
    let mut client = Client::connect(server.addr);
    // The first is the slowest, so answering in completion order would show.
    let mut batch = request_bytes("GET", "/sleep/100", b"");
    batch.extend(request_bytes("POST", "/second", b"two"));
    batch.extend(request_bytes("GET", "/third", b""));
    client.send(&batch);
    for (target, body) in [("/sleep/100", ""), ("/second", "two"), ("/third", "")] {
        let reply = client.read_reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["target"], target);
        assert_eq!(reply.json()["body"], body);
    }
    finish(server);
}

#[test]
fn a_long_pipeline_crosses_buffer_boundaries_in_order() {
    let server = start();
    let mut client = Client::connect(server.addr);
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend(request_bytes(
            "POST",
            &format!("/p/{i}"),
            format!("body {i}").as_bytes(),
        ));
    }
    // Several reads' worth of requests, and responses larger than one write batch.
    assert!(batch.len() > 3 * 4096);
    client.send(&batch);
    for i in 0..200 {
        let reply = client.read_reply();
        assert_eq!(reply.json()["target"], format!("/p/{i}"));
        assert_eq!(reply.json()["body"], format!("body {i}"));
    }
    let big = client.request("GET", "/big/300000", b"");
    assert_eq!(big.body.len(), 300_000);
    finish(server);
}

#[test]
fn chunked_bodies_are_decoded_even_split_across_writes() {
    let server = start();
    let mut client = Client::connect(server.addr);
    let head =
        "POST /chunked HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nx-test: 1\r\n\r\n";
    let body = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\n";
    client.send(format!("{head}{body}"));
    let json = client.read_reply().json();
    assert_eq!(json["body"], "hello world");
    assert_eq!(json["headers"]["transfer-encoding"], "chunked");

    // The same request cut at awkward places, with pauses so that the pieces arrive apart.
    let whole = format!("{head}{body}");
    let cuts = [
        head.len() - 1,
        head.len() + 1,
        head.len() + 5,
        head.len() + 12,
        whole.len() - 2,
    ];
    let mut last = 0;
    for cut in cuts.into_iter().chain([whole.len()]) {
        client.send(&whole.as_bytes()[last..cut]);
        last = cut;
        thread::sleep(Duration::from_millis(15));
    }
    let json = client.read_reply().json();
    assert_eq!(json["body"], "hello world");
    assert_eq!(json["body_len"], 11);
    finish(server);
}

#[test]
fn a_content_length_body_may_arrive_in_pieces() {
    let server = start();
    let mut client = Client::connect(server.addr);
    let body = "x".repeat(3000);
    let raw = request_bytes("POST", "/pieces", body.as_bytes());
    for piece in raw.chunks(700) {
        client.send(piece);
        thread::sleep(Duration::from_millis(10));
    }
    let json = client.read_reply().json();
    assert_eq!(json["body"], body);
    finish(server);
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = start();
    let mut client = Client::connect(server.addr);
    client.send(
        "POST /expect HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n",
    );
    // The body is not sent until the interim answer is there.
    let interim = client.read_reply();
    assert_eq!(interim.status, 100);
    client.send("hello");
    let reply = client.read_reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body"], "hello");

    // Chunked, too.
    client.send(
        "POST /expect HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n",
    );
    assert_eq!(client.read_reply().status, 100);
    client.send("3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(client.read_reply().json()["body"], "abc");
    finish(server);
}

#[test]
fn expect_100_continue_over_the_limit_or_unknown_is_refused_at_once() {
    let server = start();
    let reply = refused(
        &server,
        b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n",
    );
    reply.assert_refusal(413, "body_too_large");
    let reply = refused(
        &server,
        b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 200-maybe\r\n\r\n",
    );
    reply.assert_refusal(417, "expectation_failed");
    finish(server);
}

#[test]
fn too_many_header_bytes_is_431() {
    let server = start();
    let raw = format!(
        "GET / HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n",
        "b".repeat(2000)
    );
    refused(&server, raw.as_bytes()).assert_refusal(431, "headers_too_large");
    // Refused before the head is complete, too: nothing but a header that never ends.
    let raw = format!("GET / HTTP/1.1\r\nhost: t\r\nx-big: {}", "b".repeat(1100));
    refused(&server, raw.as_bytes()).assert_refusal(431, "headers_too_large");
    finish(server);
}

#[test]
fn too_many_headers_is_431() {
    let server = start();
    let lines: String = (0..16).map(|i| format!("x-h{i}: v\r\n")).collect();
    let raw = format!("GET / HTTP/1.1\r\nhost: t\r\n{lines}\r\n");
    refused(&server, raw.as_bytes()).assert_refusal(431, "too_many_headers");
    // One fewer is fine.
    let lines: String = (0..15).map(|i| format!("x-h{i}: v\r\n")).collect();
    let mut client = Client::connect(server.addr);
    client.send(format!("GET / HTTP/1.1\r\nhost: t\r\n{lines}\r\n"));
    assert_eq!(client.read_reply().status, 200);
    finish(server);
}

#[test]
fn a_long_uri_is_414() {
    let server = start();
    let raw = format!("GET /{} HTTP/1.1\r\nhost: t\r\n\r\n", "u".repeat(300));
    refused(&server, raw.as_bytes()).assert_refusal(414, "uri_too_long");
    finish(server);
}

#[test]
fn a_large_content_length_is_413_even_while_the_body_is_being_sent() {
    let server = start();
    // Announced only.
    refused(
        &server,
        b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 4097\r\n\r\n",
    )
    .assert_refusal(413, "body_too_large");
    // Answered early, while the client is still sending the body: the server reads the rest
    // away instead of resetting, so a client that writes its whole body before reading gets
    // no write error and then the 413.
    let raw = request_bytes("POST", "/x", &vec![b'z'; 200_000]);
    let mut client = Client::connect(server.addr);
    client.send(&raw[..20_000]);
    client.read_reply().assert_refusal(413, "body_too_large");
    for piece in raw[20_000..].chunks(20_000) {
        client
            .stream
            .write_all(piece)
            .expect("the server still reads what the client sends");
        thread::sleep(Duration::from_millis(5));
    }
    client.expect_clean_close();
    // Exactly the limit is accepted.
    let mut client = Client::connect(server.addr);
    let reply = client.request("POST", "/x", &[b'a'; 4096]);
    assert_eq!(reply.json()["body_len"], 4096);
    finish(server);
}

#[test]
fn a_large_chunked_body_is_413() {
    let server = start();
    let mut raw = b"POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'c'; 0x400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    refused(&server, &raw).assert_refusal(413, "body_too_large");
    finish(server);
}

#[test]
fn a_slowloris_head_gets_408_from_its_first_byte() {
    let mut limits = test_limits();
    limits.header_read_timeout = Duration::from_millis(200);
    let server = TestServer::start(limits);
    let mut client = Client::connect(server.addr);
    let mut writer = client.stream.try_clone().expect("clone");
    let started = Instant::now();
    client.send("GET / HTTP/1.1\r\nhost: t\r\n");
    // Keep trickling header bytes: each byte arrives well within the timeout, but the head
    // never completes, so the deadline from the first byte must still fire.
    let trickle = thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(40));
        }
    });
    let reply = client.read_reply();
    let elapsed = started.elapsed();
    reply.assert_refusal(408, "request_timeout");
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    client.expect_closed();
    trickle.join().expect("trickle thread");
    finish(server);
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let mut limits = test_limits();
    limits.header_read_timeout = Duration::from_millis(150);
    let server = TestServer::start(limits);
    let mut client = Client::connect(server.addr);
    let started = Instant::now();
    client.expect_closed();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(140), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    finish(server);
}

#[test]
fn a_body_that_stalls_gets_408() {
    let mut limits = test_limits();
    limits.request_timeout = Duration::from_millis(200);
    let server = TestServer::start(limits);
    let mut client = Client::connect(server.addr);
    let started = Instant::now();
    client.send("POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc");
    let reply = client.read_reply();
    reply.assert_refusal(408, "request_timeout");
    assert!(started.elapsed() >= Duration::from_millis(190));
    client.expect_closed();
    finish(server);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_quietly() {
    let mut limits = test_limits();
    limits.idle_timeout = Duration::from_millis(200);
    let server = TestServer::start(limits);
    let mut client = Client::connect(server.addr);
    assert_eq!(client.request("GET", "/one", b"").status, 200);
    let idle_from = Instant::now();
    // No 408: an idle connection is simply closed.
    client.expect_closed();
    let elapsed = idle_from.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    finish(server);
}

#[test]
fn connections_over_the_shard_cap_get_503() {
    let mut limits = test_limits();
    limits.connections_per_shard_max = 2;
    let server = TestServer::start(limits);
    // Two connections, each proven served (so counted) by a request.
    let mut a = Client::connect(server.addr);
    assert_eq!(a.request("GET", "/a", b"").status, 200);
    let mut b = Client::connect(server.addr);
    assert_eq!(b.request("GET", "/b", b"").status, 200);
    // The third is refused without its request being read: it sends nothing at all.
    let mut c = Client::connect(server.addr);
    let reply = c.read_reply();
    reply.assert_refusal(503, "too_many_connections");
    c.expect_closed();
    // The served ones are unaffected.
    assert_eq!(a.request("GET", "/a2", b"").status, 200);
    // Once one closes, a new connection is served again (as soon as the server has seen
    // the close; retried until then).
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = Client::connect(server.addr);
        d.send(request_bytes("GET", "/d", b""));
        let status = d.try_read_reply().map(|r| r.status);
        if status == Some(200) {
            break;
        }
        assert_eq!(status, Some(503));
        assert!(Instant::now() < deadline, "a slot never freed up");
        thread::sleep(Duration::from_millis(10));
    }
    drop(a);
    finish(server);
}

#[test]
fn framing_errors_are_400_and_close() {
    let server = start();
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "content-length and transfer-encoding",
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "conflicting_framing",
        ),
        (
            "negative content-length",
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: -1\r\n\r\n",
            "invalid_content_length",
        ),
        (
            "signed content-length",
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: +5\r\n\r\nhello",
            "invalid_content_length",
        ),
        (
            "garbage content-length",
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 12abc\r\n\r\n",
            "invalid_content_length",
        ),
        (
            "different content-lengths",
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
            "invalid_content_length",
        ),
        (
            "transfer-encoding not ending in chunked",
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            "invalid_transfer_encoding",
        ),
        (
            "chunk data without CRLF",
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
            "invalid_chunked_body",
        ),
        (
            "chunk size overflow",
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n100000000000000000\r\n",
            "invalid_chunked_body",
        ),
        (
            "chunk size not hex",
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "invalid_chunked_body",
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nhost: t\r\nx-a: 1\r\n 2\r\n\r\n",
            "malformed_request",
        ),
        ("no host", b"GET / HTTP/1.1\r\n\r\n", "invalid_host"),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "unsupported_http_version",
        ),
        (
            "TLS hello on the plain port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "malformed_request",
        ),
    ];
    for (what, raw, code) in cases {
        let reply = refused(&server, raw);
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        reply.assert_refusal(400, code);
    }
    finish(server);
}

#[test]
fn head_responses_carry_the_get_headers_without_a_body() {
    let server = start();
    let mut client = Client::connect(server.addr);
    // A body that does not depend on the method.
    let get = client.request("GET", "/big/1234", b"");
    assert_eq!(get.body.len(), 1234);
    // HEAD then GET pipelined: if the HEAD answer had a body, the GET answer would be
    // misparsed.
    let mut batch = request_bytes("HEAD", "/big/1234", b"");
    batch.extend(request_bytes("GET", "/echo", b""));
    client.send(&batch);
    let head = client.read_head_reply();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length = get.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    assert_eq!(head.header("content-type"), Some("application/json"));
    let after = client.read_reply();
    assert_eq!(after.status, 200);
    assert_eq!(after.json()["target"], "/echo");
    // 204: no body and no content-length.
    let no_content = client.request("DELETE", "/no-content", b"");
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("content-length"), None);
    finish(server);
}

#[test]
fn unknown_methods_reach_the_handler() {
    let server = start();
    let mut client = Client::connect(server.addr);
    let reply = client.request("BREW", "/pot", b"");
    assert_eq!(reply.json()["method"], "OTHER");
    finish(server);
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = start();
    let mut client = Client::connect(server.addr);
    client.send("GET /ten HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
    let reply = client.read_reply();
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    client.send("GET /ten HTTP/1.0\r\n\r\n");
    let reply = client.read_reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
    client.expect_closed();
    finish(server);
}

#[test]
fn a_handler_asking_to_close_closes() {
    let server = start();
    let mut client = Client::connect(server.addr);
    let reply = client.request("GET", "/close", b"");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
    client.expect_closed();
    finish(server);
}

#[test]
fn a_panicking_handler_costs_one_500_not_the_shard() {
    let server = start();
    let mut client = Client::connect(server.addr);
    let reply = client.request("GET", "/panic", b"");
    reply.assert_refusal(500, "internal_error");
    client.expect_closed();
    finish(server);
}

#[test]
fn shutdown_closes_idle_connections_and_lets_busy_ones_finish() {
    let server = start();
    let mut idle = Client::connect(server.addr);
    assert_eq!(idle.request("GET", "/idle", b"").status, 200);
    let mut busy = Client::connect(server.addr);
    busy.send(request_bytes("GET", "/sleep/300/shutdown-test", b""));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !http_server::handler_started("/sleep/300/shutdown-test") {
        assert!(
            Instant::now() < deadline,
            "the request never reached the handler"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let started = Instant::now();
    server.trigger_shutdown();
    idle.expect_closed();
    let reply = busy.read_reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
    busy.expect_closed();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A CA and a leaf for `localhost`/127.0.0.1 signed by it, as PEM files in `dir`; returns
/// the config and the CA certificate (DER).
fn tls_files(dir: &std::path::Path) -> (TlsConfig, rustls::pki_types::CertificateDer<'static>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "hookd test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("leaf cert");

    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, leaf_cert.pem()).expect("write cert");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    (TlsConfig { cert, key }, ca_cert.der().clone())
}

#[test]
fn https_round_trip_with_a_ca_made_in_the_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, ca) = tls_files(dir.path());
    let acceptor = tls::acceptor(&config).expect("acceptor");
    let server = TestServer::start_with(test_limits(), Some(acceptor));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("trust the CA");
    let mut client_config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client_config = Arc::new(client_config);

    let connect = || {
        let name = "localhost".try_into().expect("server name");
        let conn = rustls::ClientConnection::new(client_config.clone(), name).expect("client");
        let tcp = TcpStream::connect(server.addr).expect("connect");
        tcp.set_read_timeout(Some(http_client::READ_TIMEOUT))
            .expect("timeout");
        Client::new(rustls::StreamOwned::new(conn, tcp))
    };
    let mut client = connect();
    for i in 0..3 {
        let body = format!("secret {i}");
        let reply = client.request("POST", "/tls", body.as_bytes());
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["body"], body);
    }
    assert_eq!(client.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // Pipelined over TLS too, then a close.
    let mut batch = request_bytes("GET", "/a", b"");
    batch.extend(b"GET /b HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    client.send(&batch);
    assert_eq!(client.read_reply().json()["target"], "/a");
    assert_eq!(client.read_reply().json()["target"], "/b");
    client.expect_closed();

    // Errors are answered over TLS as well.
    let mut client = connect();
    client.send(b"GET / HTTP/1.1\r\n\r\n");
    client.read_reply().assert_refusal(400, "invalid_host");
    client.expect_closed();

    // Plain HTTP on the TLS port fails the handshake and is closed, without a hang.
    let mut plain = Client::connect(server.addr);
    plain.send(request_bytes("GET", "/", b""));
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain.stream, &mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));

    let mut client = connect();
    assert_eq!(client.request("GET", "/still", b"").status, 200);
    drop(client);
    server.stop();
}

#[test]
fn after_every_kind_of_abuse_a_fresh_connection_is_served() {
    let mut limits = test_limits();
    limits.header_read_timeout = Duration::from_millis(150);
    limits.request_timeout = Duration::from_millis(150);
    limits.idle_timeout = Duration::from_millis(150);
    let server = TestServer::start(limits);
    let abuse: Vec<Vec<u8>> = vec![
        vec![0u8; 3000],
        b"\r\n\r\n\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\n", "a".repeat(5000)).into_bytes(),
        b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n"
            .to_vec(),
        b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nshort".to_vec(),
        b"GET / HTTP/1.1\r\nhost: t\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nhost: t\r\n\r\nGET / HTTP/1.1\r\nho".to_vec(),
        (0..=255u8).collect(),
    ];
    for raw in &abuse {
        let mut client = Client::connect(server.addr);
        client.send(raw);
        // Whatever the answer, it is a well-formed response (never 5xx) or a close.
        while let Some(reply) = client.try_read_reply() {
            assert!(reply.status < 500, "{reply:?}");
        }
    }
    // And connections abandoned mid-request.
    for raw in &abuse {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        let _ = stream.write_all(raw);
    }
    finish(server);
}

#[test]
fn default_limits_come_from_the_server_config() {
    let limits = Limits::default();
    assert_eq!(limits.header_bytes_max, 16 << 10);
    assert_eq!(limits.body_bytes_max, 1 << 20);
    assert_eq!(limits.connections_per_shard_max, 4096);
}
