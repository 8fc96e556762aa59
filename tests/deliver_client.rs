//! The delivery HTTP client against a real receiver on loopback (`support/receiver.rs`):
//! framing, keep-alive reuse and stale connections, body caps, redirects, errors, timeouts,
//! the SSRF guard, and TLS with a test CA.

#[path = "support/client_setup.rs"]
mod client_setup;
#[path = "support/receiver.rs"]
mod receiver;

use std::rc::Rc;
use std::time::{Duration, Instant};

use client_setup::{client, run};
use hookd::config::DeliveryConfig;
use hookd::deliver::client::{Client, ClientError, Response};
use hookd::model::url::Url;
use receiver::{Receiver, Reply};

/// How long a test waits for the receiver to see something that must happen.
const WAIT: Duration = Duration::from_secs(5);

/// One request per connection (pipelining has its own tests, in `deliver_pipelining.rs`).
fn delivery() -> DeliveryConfig {
    client_setup::delivery(1)
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("valid url")
}

async fn post(client: &Client, u: &str) -> Result<Response, ClientError> {
    client.post(&url(u), &[], b"{}").await
}

#[test]
fn a_round_trip_sends_the_request_as_given_and_returns_the_answer() {
    let rx = Receiver::builder()
        .handler(|_| Reply::status(201).header("x-seen", "yes").body("thanks"))
        .start();
    let u = rx.url("/hook?x=1");
    let resp = run(async {
        let c = client(&delivery());
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", "msg_1"),
            ("Host", "must-not-override"),
        ];
        c.post(&url(&u), &headers, br#"{"a":1}"#).await
    })
    .expect("response");
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, b"thanks");
    assert_eq!(resp.retry_after, None);
    assert!(resp.duration > Duration::ZERO && resp.duration < WAIT);

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook?x=1"));
    assert_eq!(r.body, br#"{"a":1}"#);
    let host = format!("127.0.0.1:{}", rx.addr.port());
    assert_eq!(r.header("host"), Some(host.as_str()));
    assert_eq!(r.header("content-length"), Some("7"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("webhook-id"), Some("msg_1"));
    assert_eq!(r.headers.iter().filter(|(n, _)| n == "host").count(), 1);
}

#[test]
fn keep_alive_reuses_one_connection() {
    let rx = Receiver::start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery());
        for i in 0..5 {
            let resp = post(&c, &u).await.expect("response");
            assert_eq!(
                (resp.status, resp.body.as_slice()),
                (200, &b"ok"[..]),
                "{i}"
            );
        }
        assert_eq!(c.idle_connections(), 1);
    });
    assert_eq!(rx.requests().len(), 5);
    assert_eq!(rx.connections(), 1);
}

#[test]
fn concurrent_posts_use_parallel_connections_then_pool_them() {
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_millis(100)))
        .start();
    let u = rx.url("/");
    run(async {
        let c = Rc::new(client(&delivery()));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (c, u) = (c.clone(), u.clone());
                monoio::spawn(async move { post(&c, &u).await.map(|r| r.status) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await, Ok(200));
        }
        assert_eq!(c.idle_connections(), 4);
        // The pooled ones serve the next round.
        for _ in 0..4 {
            assert_eq!(post(&c, &u).await.map(|r| r.status), Ok(200));
        }
    });
    assert_eq!(rx.in_flight_max(), 4);
    assert_eq!(rx.connections(), 4);
}

#[test]
fn requests_to_one_host_beyond_its_cap_wait_and_reuse_its_connections() {
    // Twelve endpoints (paths) on one receiver, three turns per host: the receiver never
    // answers more than three at once, over three connections, while another host beside
    // it is not held up by the queue.
    let busy = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_millis(50)))
        .start();
    let other = Receiver::start();
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    run(async {
        let c = Rc::new(client(&DeliveryConfig {
            in_flight_per_host_max: 3,
            ..delivery()
        }));
        let mut tasks: Vec<_> = (0..12)
            .map(|i| {
                let (c, u, order) = (c.clone(), busy.url(&format!("/ep/{i}")), order.clone());
                monoio::spawn(async move {
                    let status = post(&c, &u).await.map(|r| r.status);
                    order.borrow_mut().push(format!("busy {i}"));
                    status
                })
            })
            .collect();
        let (c2, u2, order2) = (c.clone(), other.url("/"), order.clone());
        tasks.push(monoio::spawn(async move {
            let status = post(&c2, &u2).await.map(|r| r.status);
            order2.borrow_mut().push("other".to_string());
            status
        }));
        for t in tasks {
            assert_eq!(t.await, Ok(200));
        }
    });
    assert_eq!(busy.requests().len(), 12);
    assert_eq!(busy.in_flight_max(), 3, "the cap held, and was used");
    assert_eq!(busy.connections(), 3, "waiters reused the connections");
    let order = order.borrow();
    let other_at = order
        .iter()
        .position(|o| o == "other")
        .expect("other answered");
    assert!(
        other_at < 3,
        "the other host was answered before the busy host's queue drained: {order:?}"
    );
    // Turns go first come, first served: the last three sent are the last three queued.
    let mut last: Vec<_> = busy.requests()[9..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    last.sort();
    assert_eq!(last, ["/ep/10", "/ep/11", "/ep/9"]);
}

#[test]
fn a_request_with_no_turn_within_the_timeout_fails_unsent() {
    // One turn, answers slower than the 1 s timeout: the first holds the turn for 1 s, the
    // second (queued behind it) for the next second, so the third, queued at the start,
    // waits out its own second without a turn and is never sent.
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_millis(1500)))
        .start();
    let u = rx.url("/");
    let outcomes = run(async {
        let c = Rc::new(client(&DeliveryConfig {
            in_flight_per_host_max: 1,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            ..delivery()
        }));
        let spawn = |c: Rc<Client>, u: String| monoio::spawn(async move { post(&c, &u).await });
        let first = spawn(c.clone(), u.clone());
        while rx.requests().is_empty() {
            monoio::time::sleep(Duration::from_millis(1)).await; // the first holds the turn
        }
        let second = spawn(c.clone(), u.clone());
        let third = spawn(c.clone(), u.clone());
        [first.await, second.await, third.await]
    });
    let [first, second, third] = outcomes;
    assert_eq!(
        first,
        Err(ClientError::Timeout),
        "the slow answer itself times out"
    );
    assert_eq!(
        second,
        Err(ClientError::Timeout),
        "sent at its turn, then timed out"
    );
    match third {
        Err(ClientError::HostBusy(why)) => assert!(
            why.contains("1 requests of this shard in flight (delivery.in_flight_per_host_max) and 0 waiting"),
            "{why}"
        ),
        other => panic!("expected HostBusy, got {other:?}"),
    }
    assert_eq!(
        rx.requests().len(),
        2,
        "the request with no turn was never sent"
    );
}

#[test]
fn the_wait_for_a_turn_does_not_eat_into_the_attempts_timeout() {
    // Each answer takes 600 ms of a 1 s timeout; the second request waits 600 ms for its turn
    // and still has its whole second for the exchange.
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_millis(600)))
        .start();
    let u = rx.url("/");
    let (first, second) = run(async {
        let c = Rc::new(client(&DeliveryConfig {
            in_flight_per_host_max: 1,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            ..delivery()
        }));
        let (c1, u1) = (c.clone(), u.clone());
        let first = monoio::spawn(async move { post(&c1, &u1).await.map(|r| r.status) });
        while rx.requests().is_empty() {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        let second = post(&c, &u).await.map(|r| r.status);
        (first.await, second)
    });
    assert_eq!((first, second), (Ok(200), Ok(200)));
    assert_eq!(rx.in_flight_max(), 1);
}

#[test]
fn a_pooled_connection_the_peer_closed_is_replaced() {
    let rx = Receiver::start();
    rx.script([Reply::ok().close_silently()]);
    let u = rx.url("/");
    run(async {
        let c = client(&delivery());
        assert_eq!(post(&c, &u).await.map(|r| r.status), Ok(200));
        // The receiver has closed it while it sat in the pool.
        rx.wait_for_closed(1, WAIT);
        assert_eq!(post(&c, &u).await.map(|r| r.status), Ok(200));
    });
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(rx.connections(), 2);
}

#[test]
fn a_request_the_pooled_connection_dropped_unanswered_is_resent_once() {
    let rx = Receiver::start();
    // The second request arrives on the pooled connection, which then closes unanswered.
    rx.script([Reply::ok(), Reply::hang_up()]);
    let u = rx.url("/");
    run(async {
        let c = client(&delivery());
        assert_eq!(post(&c, &u).await.map(|r| r.status), Ok(200));
        assert_eq!(post(&c, &u).await.map(|r| r.status), Ok(200));
    });
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs.iter().map(|r| r.connection).collect::<Vec<_>>(),
        [0, 0, 1]
    );
}

#[test]
fn nothing_is_resent_once_a_response_byte_arrived() {
    let rx = Receiver::start();
    rx.script([Reply::ok(), Reply::raw("HTTP/1.1 200 O")]);
    let u = rx.url("/");
    let second = run(async {
        let c = client(&delivery());
        assert_eq!(post(&c, &u).await.map(|r| r.status), Ok(200));
        post(&c, &u).await
    });
    match second {
        Err(ClientError::Protocol(m)) => assert!(m.contains("closed"), "{m}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(rx.connections(), 1);
}

#[test]
fn a_fresh_connection_closed_unanswered_is_an_io_error_without_resend() {
    let rx = Receiver::start();
    rx.script([Reply::hang_up()]);
    let u = rx.url("/");
    let result = run(async { post(&client(&delivery()), &u).await });
    assert!(matches!(result, Err(ClientError::Io(_))), "{result:?}");
    assert_eq!(rx.requests().len(), 1);
}

#[test]
fn a_chunked_body_is_decoded_and_the_connection_reused() {
    let body = "hello, chunked world: more than one chunk";
    let rx = Receiver::builder()
        .handler(move |_| Reply::ok().body(body).chunked())
        .start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery());
        for _ in 0..2 {
            let resp = post(&c, &u).await.expect("response");
            assert_eq!(resp.body, body.as_bytes());
        }
    });
    assert_eq!(rx.connections(), 1);
}

#[test]
fn a_body_until_close_is_read_and_the_connection_not_reused() {
    let rx = Receiver::builder()
        .handler(|_| Reply::raw("HTTP/1.1 200 OK\r\n\r\nall of it"))
        .start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery());
        for _ in 0..2 {
            let resp = post(&c, &u).await.expect("response");
            assert_eq!(resp.body, b"all of it");
        }
        assert_eq!(c.idle_connections(), 0);
    });
    assert_eq!(rx.connections(), 2);
}

#[test]
fn interim_100_continue_is_skipped() {
    let rx = Receiver::start();
    rx.script([Reply::raw(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok",
    )
    .keep_open()]);
    let u = rx.url("/");
    let resp = run(async { post(&client(&delivery()), &u).await }).expect("response");
    assert_eq!((resp.status, resp.body.as_slice()), (202, &b"ok"[..]));
}

#[test]
fn the_body_kept_is_capped_and_the_rest_drained_for_reuse() {
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let expected = big[..16].to_vec();
    let rx = Receiver::builder()
        .handler(move |r| {
            if r.path == "/huge" {
                // Beyond the drain bound: the connection is closed instead.
                Reply::ok().body(vec![b'x'; (1 << 20) + 100])
            } else {
                Reply::ok().body(big.clone())
            }
        })
        .start();
    let (u, huge) = (rx.url("/"), rx.url("/huge"));
    run(async {
        let c = client(&DeliveryConfig {
            response_bytes_max: 16,
            ..delivery()
        });
        for _ in 0..2 {
            assert_eq!(post(&c, &u).await.expect("response").body, expected);
        }
        // Not read to its end: the answer does not count, and the connection is closed.
        match post(&c, &huge).await {
            Err(ClientError::Protocol(m)) => assert!(m.contains("longer than"), "{m}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert_eq!(c.idle_connections(), 0);
        assert_eq!(post(&c, &u).await.expect("response").body, expected);
    });
    assert_eq!(rx.connections(), 2);
}

#[test]
fn redirects_are_returned_not_followed() {
    let elsewhere = Receiver::start();
    let rx = Receiver::builder()
        .handler({
            let to = elsewhere.url("/moved");
            move |_| Reply::status(302).header("location", &to)
        })
        .start();
    let u = rx.url("/");
    let resp = run(async { post(&client(&delivery()), &u).await }).expect("response");
    assert_eq!(resp.status, 302);
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(elsewhere.connections(), 0);
}

#[test]
fn retry_after_is_surfaced() {
    let rx = Receiver::builder()
        .handler(|_| Reply::status(429).header("Retry-After", "7"))
        .start();
    let u = rx.url("/");
    let resp = run(async { post(&client(&delivery()), &u).await }).expect("response");
    assert_eq!((resp.status, resp.retry_after.as_deref()), (429, Some("7")));
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let result =
        run(async { post(&client(&delivery()), &format!("http://127.0.0.1:{port}/")).await });
    match result {
        Err(e @ ClientError::Connect(_)) => {
            assert_eq!(e.outcome_class(), "connect");
            assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[test]
fn a_slow_endpoint_times_out_quickly_and_its_connection_is_dropped() {
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_secs(30)))
        .start();
    let u = rx.url("/");
    let timeout = Duration::from_millis(250);
    run(async {
        let c = client(&DeliveryConfig {
            timeout,
            connect_timeout: Duration::from_millis(200),
            ..delivery()
        });
        let started = Instant::now();
        let result = post(&c, &u).await;
        let took = started.elapsed();
        assert_eq!(result, Err(ClientError::Timeout));
        // The timer may round to the millisecond.
        let floor = timeout - Duration::from_millis(5);
        assert!(took >= floor && took < Duration::from_secs(2), "{took:?}");
        assert_eq!(c.idle_connections(), 0);
    });
    // The request did reach the receiver: the timeout was waiting for the answer.
    rx.wait_for_requests(1, WAIT);
}

#[test]
fn a_connect_that_hangs_is_cut_by_connect_timeout() {
    // A listener that never accepts, with its accept queue full: the kernel drops further
    // SYNs, so a connect neither succeeds nor fails.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    while let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(s);
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    let connect_timeout = Duration::from_millis(150);
    let (result, took) = run(async {
        let c = client(&DeliveryConfig {
            connect_timeout,
            ..delivery()
        });
        let started = Instant::now();
        let result = post(&c, &format!("http://{addr}/")).await;
        (result, started.elapsed())
    });
    match result {
        Err(ClientError::Connect(m)) => assert!(m.contains("connect_timeout"), "{m}"),
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(queued);
}

#[test]
fn the_ssrf_guard_refuses_loopback_literals_without_connecting() {
    let rx = Receiver::start();
    let port = rx.addr.port();
    let urls = [
        (rx.url("/"), "127.0.0.1"),
        (format!("http://[::1]:{port}/"), "::1"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "::ffff:127.0.0.1",
        ),
    ];
    run(async {
        let c = client(&DeliveryConfig {
            allow_private_networks: false,
            ..delivery()
        });
        for (u, ip) in &urls {
            match post(&c, u).await {
                Err(e @ ClientError::Refused(_)) => {
                    assert_eq!(e.outcome_class(), "refused");
                    let why = e.to_string();
                    assert!(why.contains(ip) && why.contains("loopback"), "{why}")
                }
                other => panic!("{u}: expected a refusal, got {other:?}"),
            }
        }
    });
    assert_eq!(rx.connections(), 0);
}

#[test]
fn the_ssrf_guard_checks_the_address_a_name_resolves_to() {
    let rx = Receiver::start();
    let u = rx.url_with_host("localhost", "/");
    let (refused, allowed) = run(async {
        let strict = client(&DeliveryConfig {
            allow_private_networks: false,
            ..delivery()
        });
        let open = client(&delivery());
        (post(&strict, &u).await, post(&open, &u).await)
    });
    match refused {
        Err(ClientError::Refused(why)) => {
            assert!(why.starts_with("localhost resolves to"), "{why}");
            assert!(why.contains("loopback"), "{why}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The same name, allowed: resolution works and the receiver is reached once.
    assert_eq!(allowed.map(|r| r.status), Ok(200));
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(
        rx.requests()[0].header("host"),
        Some(&*format!("localhost:{}", rx.addr.port()))
    );
}

#[test]
fn an_unresolvable_name_is_a_resolve_error() {
    let result = run(async { post(&client(&delivery()), "http://no-such-host.invalid/").await });
    assert!(matches!(result, Err(ClientError::Resolve(_))), "{result:?}");
}

#[test]
fn tls_with_the_test_ca_round_trips_and_keeps_the_connection() {
    let rx = Receiver::builder().tls().start();
    let dir = tempfile::tempdir().expect("tempdir");
    let delivery = DeliveryConfig {
        ca_file: Some(rx.write_ca_file(dir.path())),
        ..delivery()
    };
    let (by_name, by_ip) = (rx.url_with_host("localhost", "/tls"), rx.url("/tls"));
    run(async {
        let c = client(&delivery);
        for u in [&by_name, &by_name, &by_ip] {
            let resp = c.post(&url(u), &[("x-a", "b")], b"secret").await;
            assert_eq!(
                resp.map(|r| (r.status, r.body)),
                Ok((200, b"ok".to_vec())),
                "{u}"
            );
        }
    });
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.body == b"secret" && r.path == "/tls"));
    // One connection per (host, port): the name and the literal are pooled apart.
    assert_eq!(rx.connections(), 2);
}

#[test]
fn tls_with_an_untrusted_certificate_fails() {
    let rx = Receiver::builder().tls().start();
    let u = rx.url_with_host("localhost", "/");
    let result = run(async { post(&client(&delivery()), &u).await });
    match result {
        Err(e @ ClientError::Tls(_)) => {
            assert_eq!(e.outcome_class(), "tls");
            assert!(e.to_string().contains("certificate"), "{e}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(rx.requests().is_empty());
}
