//! The real HTTP server (`run_listener`) on 127.0.0.1:0 in a monoio runtime on a background
//! thread, with an echo handler, for the tests in `tests/http.rs`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use hookd::http::{server, Handler, Limits, Request, Response, Shutdown, TlsAcceptor};

/// Request headers the echo handler copies into its answer.
pub const ECHOED_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "expect",
    "x-test",
];

/// Targets of `/sleep/` requests whose handler has started, so that a test can wait for a
/// request to be in the handler instead of guessing with a sleep.
static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether the handler has started on a request for `target`.
pub fn handler_started(target: &str) -> bool {
    STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|t| t == target)
}

/// Answers every request with JSON describing it:
/// `{"method","target","body","body_len","headers":{...}}`, except for a few targets:
/// - `/sleep/<ms>[/tag]` answers after sleeping that long (for ordering and shutdown tests),
///   and is recorded for [`handler_started`];
/// - `/panic` panics inside the handler;
/// - `/no-content` is 204; `/close` asks for `connection: close`;
/// - `/big/<n>` answers a body of `n` bytes.
#[derive(Debug, Default)]
pub struct EchoHandler;

impl Handler for EchoHandler {
    async fn handle(&self, req: Request) -> Response {
        let path = req.path().to_owned();
        if let Some(rest) = path.strip_prefix("/sleep/") {
            STARTED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(path.clone());
            let ms = rest
                .split('/')
                .next()
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            monoio::time::sleep(Duration::from_millis(ms)).await;
        }
        if path == "/panic" {
            panic!("the echo handler was asked to panic");
        }
        if path == "/no-content" {
            return Response::empty(204);
        }
        if let Some(n) = path.strip_prefix("/big/") {
            let n = n.parse().unwrap_or(0);
            return Response::json(200, vec![b'x'; n]);
        }
        let headers: serde_json::Map<String, serde_json::Value> = ECHOED_HEADERS
            .iter()
            .filter_map(|name| {
                req.header_str(name)
                    .map(|v| ((*name).to_owned(), serde_json::Value::from(v)))
            })
            .collect();
        let body = serde_json::json!({
            "method": req.method.as_str(),
            "target": req.target,
            "body": String::from_utf8_lossy(&req.body),
            "body_len": req.body.len(),
            "headers": headers,
            "peer_is_loopback": req.peer.is_some_and(|p| p.ip().is_loopback()),
        });
        let resp = Response::json(200, body.to_string().into_bytes());
        if path == "/close" {
            return resp.with_header("connection", "close");
        }
        resp
    }
}

/// A running server. Dropping it stops it; [`TestServer::stop`] also checks that the server
/// thread did not panic.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Plain HTTP with `limits`.
    pub fn start(limits: Limits) -> Self {
        Self::start_with(limits, None)
    }

    /// HTTPS through `tls` with `limits`.
    pub fn start_with(limits: Limits, tls: Option<TlsAcceptor>) -> Self {
        let listener = server::bind_reuseport("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("http-test-shard".into())
            .spawn(move || {
                let serve = async move {
                    let listener =
                        monoio::net::TcpListener::from_std(listener).expect("monoio listener");
                    server::run_listener(
                        listener,
                        tls,
                        Rc::new(EchoHandler),
                        Rc::new(limits),
                        stop,
                    )
                    .await;
                };
                // HOOKD_TEST_LEGACY_DRIVER=1 runs the same tests on epoll, the fallback where
                // io_uring is refused.
                if std::env::var_os("HOOKD_TEST_LEGACY_DRIVER").is_some() {
                    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                        .enable_timer()
                        .build()
                        .expect("monoio runtime")
                        .block_on(serve);
                } else {
                    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                        .enable_timer()
                        .build()
                        .expect("monoio runtime")
                        .block_on(serve);
                }
            })
            .expect("spawn server thread");
        Self {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Triggers shutdown without waiting.
    pub fn trigger_shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Stops the server, waits for its thread, and fails if that thread panicked.
    pub fn stop(mut self) {
        self.shutdown.trigger();
        let thread = self.thread.take().expect("running");
        assert!(thread.join().is_ok(), "the server thread panicked");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Limits with long timeouts (tests of other things never trip them) and small sizes.
pub fn test_limits() -> Limits {
    Limits {
        header_bytes_max: 1024,
        headers_count_max: 16,
        uri_bytes_max: 256,
        body_bytes_max: 4096,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        connections_per_shard_max: 64,
    }
}
