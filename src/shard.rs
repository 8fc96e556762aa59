//! The thread topology: one monoio runtime per shard, each on its own thread with its own
//! `SO_REUSEPORT` listener on `server.listen`, all sharing one [`Service`].
//!
//! This is the one place threads for serving and delivery are started: the shards (each also
//! runs its delivery engine), the dispatcher thread, the resolver threads, and the log check
//! (one pass over the sealed segments after start, for corrupt records). Each shard uses io_uring when the
//! kernel allows it and epoll otherwise (monoio's fusion driver decides at start; which one
//! runs is logged and reported). Listeners are bound on the starting thread before any shard
//! starts, so a bind error is reported at once, on the address `http::claim` holds for this
//! process (which also resolved port 0 to one port for all).
//!
//! Each shard also runs a heartbeat task for the systemd watchdog (`crate::systemd`). Its first
//! beat happens once the shard's accept loop waits for connections, and [`start`] returns only
//! after every shard has beaten: from then on every shard is serving (what `READY=1` promises).

use std::{
    cell::RefCell,
    net::SocketAddr,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    api::{error::ApiError, Api},
    config::Config,
    deliver::{
        client::{Client, ClientConfig, Resolver},
        dispatch::{Dispatcher, Inbox},
        engine::Engine,
        recorder::Recorder,
        Queues,
    },
    http::{self, claim::Claim, Handler, Limits, LimitsSource, Request, Response, Shutdown},
    ingest::Ingest,
    preflight::Prepared,
    service::Service,
    status::{self, Status},
    systemd::{Component, Liveness, ThreadGuard},
};

/// Threads resolving endpoint host names (their lookups block).
const RESOLVER_THREADS: usize = 2;
/// The log check's pause after each sealed segment it reads, leaving the disk to the rest.
const LOG_CHECK_PAUSE: Duration = Duration::from_millis(20);
/// The longest wait for every shard to run its accept loop.
const SHARD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The I/O driver a shard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    /// What this kernel will give a new runtime.
    pub fn detect() -> Self {
        if monoio::utils::detect_uring() {
            Driver::IoUring
        } else {
            Driver::Epoll
        }
    }

    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    #[error("shard {0} stopped while starting (its error is in the log)")]
    ShardStopped(usize),
    #[error("shard {0} did not start within {1:?}")]
    ShardTimeout(usize, Duration),
}

/// What every shard's delivery engine shares.
#[derive(Clone)]
struct DeliveryParts {
    queues: Queues,
    recorder: Arc<Recorder>,
    client: ClientConfig,
    resolver: Arc<Resolver>,
}

/// The running shards.
pub struct Shards {
    pub addr: SocketAddr,
    pub driver: Driver,
    shutdown: Shutdown,
    threads: Vec<JoinHandle<()>>,
    dispatcher: Dispatcher,
    inboxes: Arc<Vec<Inbox>>,
    recorder: Arc<Recorder>,
    log_check: Option<LogCheck>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("addr", &self.addr)
            .field("shards", &self.threads.len())
            .finish()
    }
}

/// Binds every shard's listener on the address `claim` holds, starts the shards, and returns
/// once every shard serves. `prepared` holds what the config's files became (TLS, the
/// delivery client's roots). Each shard bumps its heartbeat in `svc.liveness` every
/// `beat_every`.
pub fn start(
    ingest: Arc<Ingest>,
    config: &Config,
    prepared: Prepared,
    claim: &mut Claim,
    beat_every: Duration,
) -> Result<Shards, ServeError> {
    let svc = ingest.svc.clone();
    let n = config.effective_shards();
    assert_eq!(
        svc.liveness.shards(),
        n,
        "liveness counters for every shard"
    );
    let Prepared { tls, client } = prepared;
    // The claim resolved port 0: every shard binds the same port.
    let addr = claim.addr();
    let listeners = (0..n)
        .map(|_| http::server::bind_reuseport(addr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ServeError::Bind { addr, source })?;
    claim.release_probe();
    let driver = Driver::detect();
    let shutdown = Shutdown::new();
    let queue = config.delivery.queue_capacity as usize;
    let inboxes: Arc<Vec<Inbox>> = Arc::new((0..n).map(|_| Inbox::new(queue)).collect());
    let delivery = DeliveryParts {
        recorder: Arc::new(
            Recorder::start(svc.clone(), inboxes.clone()).map_err(ServeError::Thread)?,
        ),
        queues: Queues {
            inboxes,
            driver: driver.as_str(),
        },
        client,
        resolver: Resolver::start(RESOLVER_THREADS).map_err(ServeError::Thread)?,
    };
    let mut threads = Vec::with_capacity(n);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (ingest, tls, shutdown) = (ingest.clone(), tls.clone(), shutdown.clone());
        let delivery = delivery.clone();
        let t = std::thread::Builder::new()
            .name(format!("hookd-shard-{i}"))
            .spawn(move || run_shard(i, listener, ingest, tls, shutdown, delivery, beat_every))
            .map_err(ServeError::Thread)?;
        threads.push(t);
    }
    let liveness = svc.liveness.clone();
    let svc_for_check = svc.clone();
    let dispatcher =
        Dispatcher::start(svc, delivery.queues.inboxes.clone()).map_err(ServeError::Thread)?;
    let shards = Shards {
        addr,
        driver,
        shutdown,
        threads,
        dispatcher,
        inboxes: delivery.queues.inboxes,
        recorder: delivery.recorder,
        log_check: None,
    };
    if let Err(e) = shards.wait_serving(&liveness, SHARD_START_TIMEOUT) {
        shards.stop();
        return Err(e);
    }
    let mut shards = shards;
    match LogCheck::start(svc_for_check) {
        Ok(check) => shards.log_check = Some(check),
        Err(e) => {
            tracing::warn!(error = %e, "the log check did not start; corrupt records are found when read")
        }
    }
    tracing::info!(%addr, shards = n, driver = driver.as_str(), tls = config.server.tls.is_some(), "listening");
    Ok(shards)
}

/// The thread that reads every sealed segment once after start (`Log::check_sealed`), so that
/// bytes gone bad in one are found, quarantined and reported then, not only when a read meets
/// them (open reads only the segments without a stored summary).
struct LogCheck {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl LogCheck {
    fn start(svc: Arc<Service>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hookd-log-check".into())
            .spawn(move || {
                let log = svc.store.log();
                match log.check_sealed(LOG_CHECK_PAUSE, &flag) {
                    Ok((segments, records)) => tracing::info!(
                        segments,
                        records,
                        corrupt_stretches = log.corruptions_found(),
                        "log check done: the sealed segments were read"
                    ),
                    Err(e) => tracing::warn!(error = %e, "log check stopped"),
                }
            })?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Bumps the shard's heartbeat every `every`, on the shard's own runtime: a shard thread that
/// blocks or spins stops beating, and the systemd watchdog notices.
async fn heartbeat(liveness: Arc<Liveness>, shard: usize, every: Duration) {
    loop {
        liveness.beat_shard(shard);
        monoio::time::sleep(every).await;
    }
}

fn run_shard(
    index: usize,
    listener: std::net::TcpListener,
    ingest: Arc<Ingest>,
    tls: Option<http::tls::TlsAcceptor>,
    shutdown: Shutdown,
    delivery: DeliveryParts,
    beat_every: Duration,
) {
    // Should a panic escape the runtime (a bug outside the tasks that catch their own), the
    // thread ends: the guard marks the shard dead, for the health route and the watchdog,
    // and the listening socket is shut down so that the kernel hands new connections to the
    // live shards only (the runtime, torn down by the panic, may never close it).
    let svc = ingest.svc.clone();
    let guard = ThreadGuard::new(svc.liveness.clone(), Component::Shard(index));
    let _listening = ListenerGuard(listener.try_clone().ok());
    let mut rt = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(shard = index, error = %e, "cannot start the runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match monoio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(shard = index, error = %e, "cannot use the listener");
                return;
            }
        };
        let client = Client::new(delivery.client, delivery.resolver);
        let engine = Engine::new(
            ingest.clone(),
            delivery.queues.inboxes.clone(),
            index,
            client,
            delivery.recorder,
        );
        monoio::spawn(engine.run());
        // Its first beat runs once `run_listener` below waits in accept.
        monoio::spawn(heartbeat(svc.liveness.clone(), index, beat_every));
        let limits = LiveLimits::new(svc.clone());
        let front = Rc::new(Front {
            status: Status::attach(&svc),
            api: Api::new(svc.clone(), ingest, delivery.queues.clone()),
            queues: delivery.queues,
            svc,
        });
        http::server::run_listener(listener, tls, front, limits, shutdown).await;
    });
    guard.finish();
}

/// What a shard serves: the status page and its summary route (`status`), the app portal's
/// page (`portal`), else the API.
struct Front {
    api: Api,
    /// The status page's sampled counters, shared by the shards.
    status: Arc<Status>,
    svc: Arc<Service>,
    queues: Queues,
}

impl Handler for Front {
    async fn handle(&self, req: Request) -> Response {
        let page = status::handle(&self.status, &self.svc, &self.queues, &req)
            .or_else(|| crate::portal::handle(&self.svc, &req));
        match page {
            Some(answer) => {
                let resp = answer.unwrap_or_else(ApiError::into_response);
                let family = crate::api::family(req.path());
                self.svc.metrics.request(family, resp.status);
                resp
            }
            None => self.api.handle(req).await,
        }
    }
}

/// A second handle on a shard's listening socket that shuts it down if the shard's thread
/// unwinds from a panic: it then leaves the `SO_REUSEPORT` group at once.
struct ListenerGuard(Option<std::net::TcpListener>);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        if let (Some(l), true) = (&self.0, std::thread::panicking()) {
            let _ = socket2::SockRef::from(l).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A shard's HTTP limits: those of the running config (`Service::http_limits`), taken by
/// each connection when it is accepted, so that a config reload applies to later connections.
struct LiveLimits {
    svc: Arc<Service>,
    /// The service's limits last seen, and this shard's copy of them.
    seen: RefCell<(Arc<Limits>, Rc<Limits>)>,
}

impl LiveLimits {
    fn new(svc: Arc<Service>) -> Self {
        let limits = svc.http_limits();
        let copy = Rc::new(Limits::clone(&limits));
        Self {
            svc,
            seen: RefCell::new((limits, copy)),
        }
    }
}

impl LimitsSource for LiveLimits {
    fn current(&self) -> Rc<Limits> {
        let now = self.svc.http_limits();
        let mut seen = self.seen.borrow_mut();
        if !Arc::ptr_eq(&seen.0, &now) {
            let copy = Rc::new(Limits::clone(&now));
            *seen = (now, copy);
        }
        seen.1.clone()
    }
}

impl Shards {
    /// Waits until every shard has beaten once (its accept loop is waiting for connections).
    /// Fails if a shard thread ends first (it could not start its runtime) or `timeout` passes.
    fn wait_serving(&self, liveness: &Liveness, timeout: Duration) -> Result<(), ServeError> {
        let deadline = Instant::now() + timeout;
        for (i, thread) in self.threads.iter().enumerate() {
            while !liveness.shard_started(i) {
                if thread.is_finished() {
                    return Err(ServeError::ShardStopped(i));
                }
                if Instant::now() >= deadline {
                    return Err(ServeError::ShardTimeout(i, timeout));
                }
                // Start-up only: shards come up within a few milliseconds.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Stops accepting, lets requests in flight finish, and joins the shard threads.
    pub fn stop(self) {
        if let Some(check) = self.log_check {
            check.stop();
        }
        self.dispatcher.stop();
        for inbox in self.inboxes.iter() {
            inbox.doorbell.close();
        }
        self.shutdown.trigger();
        for t in self.threads {
            let _ = t.join();
        }
        // The shards are gone: write the outcomes they handed over.
        self.recorder.stop();
    }
}
