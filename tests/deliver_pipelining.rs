//! The delivery client's HTTP/1.1 pipelining (`delivery.pipeline_depth`) against a real
//! receiver on loopback (`support/receiver.rs`, which reads requests off a connection one
//! after the other, as servers do): requests share a connection and each gets its own answer;
//! servers that end connections after some or every answer lose no request; an unanswered
//! pipe times out; an idle pipe the server closed is replaced; TLS is not pipelined.

#[path = "support/client_setup.rs"]
mod client_setup;
#[path = "support/receiver.rs"]
mod receiver;

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client_setup::{delivery, run};
use hookd::config::DeliveryConfig;
use hookd::deliver::client::{Client, ClientError};
use hookd::model::url::Url;
use receiver::{Receiver, Reply};

/// How long a test waits for the receiver to see something that must happen.
const WAIT: Duration = Duration::from_secs(5);

fn client(delivery: &DeliveryConfig) -> Rc<Client> {
    Rc::new(client_setup::client(delivery))
}

/// Posts `bodies` all at once (one task each) and returns each result's status and body, in
/// the order of `bodies`.
async fn post_all(
    c: &Rc<Client>,
    u: &str,
    bodies: Vec<String>,
) -> Vec<Result<(u16, Vec<u8>), ClientError>> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (c, u) = (c.clone(), Url::parse(u).expect("url"));
            monoio::spawn(async move {
                c.post(&u, &[], body.as_bytes())
                    .await
                    .map(|r| (r.status, r.body))
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await);
    }
    out
}

fn bodies(round: usize, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{\"n\":\"{round}-{i}\"}}"))
        .collect()
}

/// `rounds` rounds of `n` requests at once, each of which must be answered with its own body.
async fn post_rounds_echoed(c: &Rc<Client>, u: &str, rounds: usize, n: usize) {
    for round in 0..rounds {
        let sent = bodies(round, n);
        let got = post_all(c, u, sent.clone()).await;
        for (body, result) in sent.iter().zip(got) {
            assert_eq!(result, Ok((200, body.clone().into_bytes())), "{body}");
        }
    }
}

/// An echo: the answer's body is the request's.
fn echo(r: &receiver::Recorded) -> Reply {
    Reply::ok().body(r.body.clone())
}

#[test]
fn requests_share_one_connection_and_each_gets_its_own_answer() {
    let rx = Receiver::builder().handler(echo).start();
    let u = rx.url("/hook");
    run(async {
        let c = client(&delivery(8));
        post_rounds_echoed(&c, &u, 5, 8).await;
    });
    assert_eq!(rx.requests().len(), 40);
    // A burst waits for the one connection being opened instead of opening its own.
    assert_eq!(rx.connections(), 1, "all 40 on one connection");
}

#[test]
fn depth_bounds_the_requests_on_one_connection() {
    // Slow answers: none comes back before all 8 are written.
    let rx = Receiver::builder()
        .handler(|r| echo(r).delay(Duration::from_millis(100)))
        .start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery(2));
        post_rounds_echoed(&c, &u, 1, 8).await;
    });
    // 8 at once, 2 per connection.
    assert_eq!(rx.connections(), 4);
}

#[test]
fn a_server_ending_connections_after_some_answers_loses_no_request() {
    // Like nginx's keepalive_requests: every third answer on a connection says close, with
    // more requests written behind it. Those are sent again.
    let seen = Arc::new(AtomicUsize::new(0));
    let rx = {
        let seen = seen.clone();
        Receiver::builder()
            .handler(move |r| {
                let reply = echo(r);
                if seen.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                    reply.close()
                } else {
                    reply
                }
            })
            .start()
    };
    let u = rx.url("/");
    run(async {
        let c = client(&delivery(8));
        post_rounds_echoed(&c, &u, 4, 8).await;
    });
    let reqs = rx.requests();
    assert!(rx.connections() > 1);
    for round in 0..4 {
        for body in bodies(round, 8) {
            assert!(
                reqs.iter().any(|r| r.body == body.as_bytes()),
                "{body} never arrived"
            );
        }
    }
}

#[test]
fn a_server_that_closes_after_every_answer_loses_nothing() {
    let rx = Receiver::builder().handler(|r| echo(r).close()).start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery(8));
        post_rounds_echoed(&c, &u, 3, 6).await;
    });
    // Every connection served one request; whatever else was written to it was never read
    // and went again on another.
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 18);
    assert_eq!(rx.connections(), 18);
}

#[test]
fn a_pipe_without_answers_times_out_and_does_not_hang() {
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_secs(30)))
        .start();
    let u = rx.url("/");
    let started = Instant::now();
    let got = run(async {
        let c = client(&DeliveryConfig {
            timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            ..delivery(8)
        });
        post_all(&c, &u, bodies(0, 4)).await
    });
    assert!(
        got.iter().all(|r| *r == Err(ClientError::Timeout)),
        "{got:?}"
    );
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
}

#[test]
fn an_idle_pipe_the_server_closed_is_replaced() {
    let rx = Receiver::builder()
        .handler(|r| echo(r).close_silently())
        .start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery(8));
        let first = post_all(&c, &u, bodies(0, 1)).await;
        assert_eq!(first[0].as_ref().map(|r| r.0), Ok(200));
        rx.wait_for_closed(1, WAIT);
        let second = post_all(&c, &u, bodies(1, 1)).await;
        assert_eq!(second[0].as_ref().map(|r| r.0), Ok(200));
    });
    assert_eq!(rx.requests().len(), 2, "nothing sent twice");
    assert_eq!(rx.connections(), 2);
}

#[test]
fn tls_endpoints_are_not_pipelined() {
    let rx = Receiver::builder()
        .tls()
        .handler(|r| echo(r).delay(Duration::from_millis(100)))
        .start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = DeliveryConfig {
        ca_file: Some(rx.write_ca_file(dir.path())),
        ..delivery(8)
    };
    let u = rx.url("/");
    run(async {
        let c = client(&d);
        post_rounds_echoed(&c, &u, 1, 4).await;
    });
    assert_eq!(rx.connections(), 4);
    assert_eq!(rx.in_flight_max(), 4);
}

#[test]
fn a_slow_server_gets_one_request_per_connection() {
    // Answers take 150 ms. The first burst shares a connection (nothing says yet that the
    // server is slow); its first answer does, and later bursts go one request per connection,
    // answered side by side instead of one after the other.
    let rx = Receiver::builder()
        .handler(|r| echo(r).delay(Duration::from_millis(150)))
        .start();
    let u = rx.url("/");
    run(async {
        let c = client(&delivery(8));
        post_rounds_echoed(&c, &u, 3, 4).await;
    });
    assert_eq!(rx.requests().len(), 12);
    assert_eq!(rx.in_flight_max(), 4, "a later burst ran side by side");
}
