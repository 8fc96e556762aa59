//! The thread topology: one monoio runtime per shard, each on its own thread with its own
//! `SO_REUSEPORT` listener on `server.listen`, all sharing one [`Service`].
//!
//! This is the one place threads for serving and delivery are started: the shards (each also
//! runs its delivery engine), the dispatcher thread, and the resolver threads. Each shard uses io_uring when the
//! kernel allows it and epoll otherwise (monoio's fusion driver decides at start; which one
//! runs is logged and reported). Listeners are bound on the starting thread before any shard
//! starts, so a bind error is reported at once and port 0 resolves to one port for all.

use std::{net::SocketAddr, rc::Rc, sync::Arc, thread::JoinHandle};

use crate::{
    api::Api,
    config::Config,
    deliver::{
        client::{Client, ClientConfig, ClientError, Resolver},
        dispatch::{Dispatcher, Inbox},
        engine::Engine,
    },
    http::{self, Limits, Shutdown},
    service::Service,
};

/// Threads resolving endpoint host names (their lookups block).
const RESOLVER_THREADS: usize = 2;

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] http::tls::TlsError),
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    #[error("delivery client: {0}")]
    Client(#[from] ClientError),
}

/// What every shard's delivery engine shares.
#[derive(Clone)]
struct DeliveryParts {
    inboxes: Arc<Vec<Inbox>>,
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
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("addr", &self.addr)
            .field("shards", &self.threads.len())
            .finish()
    }
}

/// Binds every shard's listener and starts the shards.
pub fn start(svc: Arc<Service>, config: &Config) -> Result<Shards, ServeError> {
    let n = config.effective_shards();
    let tls = match &config.server.tls {
        Some(t) => Some(http::tls::acceptor(t)?),
        None => None,
    };
    let mut addr = config.server.listen;
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n {
        let l = http::server::bind_reuseport(addr)
            .map_err(|source| ServeError::Bind { addr, source })?;
        // Port 0: every later shard binds the port the first one got.
        addr = l
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        listeners.push(l);
    }
    let driver = Driver::detect();
    let limits = Limits::from(&config.server);
    let shutdown = Shutdown::new();
    let queue = config.delivery.queue_capacity as usize;
    let delivery = DeliveryParts {
        inboxes: Arc::new((0..n).map(|_| Inbox::new(queue)).collect()),
        client: ClientConfig::from_config(&config.delivery)?,
        resolver: Resolver::start(RESOLVER_THREADS).map_err(ServeError::Thread)?,
    };
    let _ = svc.shards.set((delivery.inboxes.clone(), driver.as_str()));
    let mut threads = Vec::with_capacity(n);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (svc, tls, limits, shutdown) =
            (svc.clone(), tls.clone(), limits.clone(), shutdown.clone());
        let delivery = delivery.clone();
        let t = std::thread::Builder::new()
            .name(format!("hookd-shard-{i}"))
            .spawn(move || run_shard(i, listener, svc, tls, limits, shutdown, delivery))
            .map_err(ServeError::Thread)?;
        threads.push(t);
    }
    let dispatcher =
        Dispatcher::start(svc, delivery.inboxes.clone()).map_err(ServeError::Thread)?;
    tracing::info!(%addr, shards = n, driver = driver.as_str(), tls = config.server.tls.is_some(), "listening");
    Ok(Shards {
        addr,
        driver,
        shutdown,
        threads,
        dispatcher,
        inboxes: delivery.inboxes,
    })
}

fn run_shard(
    index: usize,
    listener: std::net::TcpListener,
    svc: Arc<Service>,
    tls: Option<http::tls::TlsAcceptor>,
    limits: Limits,
    shutdown: Shutdown,
    delivery: DeliveryParts,
) {
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
        let engine = Engine::new(svc.clone(), delivery.inboxes, index, client);
        monoio::spawn(engine.run());
        let api = Rc::new(Api::new(svc));
        http::server::run_listener(listener, tls, api, Rc::new(limits), shutdown).await;
    });
}

impl Shards {
    /// Stops accepting, lets requests in flight finish, and joins the shard threads.
    pub fn stop(self) {
        self.dispatcher.stop();
        for inbox in self.inboxes.iter() {
            inbox.doorbell.close();
        }
        self.shutdown.trigger();
        for t in self.threads {
            let _ = t.join();
        }
    }
}
