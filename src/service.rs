//! The state every shard shares: the store, the config, the tokens and the clock.
//!
//! The ingest path only appends to the log (and claims an `eventId` when one is given). Each
//! message is appended under its application's key, so listing an app's messages scans the log
//! backwards and skips every segment that holds none of them (`Log::scan_back`); there is no
//! separate listing index to keep up to date.

use std::{path::PathBuf, sync::Arc};

use storage::{Durability, LogOptions, RecoveryReport, Store, StoreOptions};

use sha2::Digest;

use crate::{auth::Auth, config::Config, time::Clock};

/// Shared by all shards.
pub struct Service {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub auth: Auth,
    pub clock: Arc<dyn Clock>,
    /// Bumped on every endpoint or application write, so that caches of endpoints reload.
    pub endpoints_version: std::sync::atomic::AtomicU64,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The shards' inboxes and I/O driver, once they run.
    pub shards: std::sync::OnceLock<(Arc<Vec<crate::deliver::dispatch::Inbox>>, &'static str)>,
    /// Heartbeats of the shards and the dispatcher, for the systemd watchdog.
    pub liveness: Arc<crate::systemd::Liveness>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store)
            .finish()
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the data directory {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: storage::Error,
    },
    #[error("making the first admin token: {0}")]
    Random(crate::config::tokens::RandomError),
}

/// The store options the config asks for.
pub fn store_options(config: &Config) -> StoreOptions {
    let s = &config.storage;
    StoreOptions {
        log: LogOptions {
            durability: match s.durability {
                crate::config::Durability::Sync => Durability::Sync,
                crate::config::Durability::Interval => Durability::Interval,
            },
            flush_interval: s.flush_interval,
            commit_window: s.commit_window,
            segment_bytes_max: s.segment_bytes_max,
            segment_events_max: s.segment_events_max,
            segment_age_max: s.segment_age_max,
            max_bytes: s.max_bytes,
        },
        cache_bytes: s.cache_bytes,
        index_flush_interval: std::time::Duration::from_millis(200),
    }
}

/// What opening found: recovery's report, and the admin token made at first start (shown once).
#[derive(Debug)]
pub struct Opened {
    pub report: RecoveryReport,
    pub new_admin_token: Option<String>,
}

/// Name of the setting that keeps the first-start admin token's hash.
const BOOTSTRAP_SETTING: &str = "bootstrap_admin_sha256";

impl Service {
    /// Opens the store and recovers it. When the config names no token,
    /// an admin token is made at first start and only its hash is kept (in the index).
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<(Arc<Self>, Opened), StartError> {
        let path = config.storage.path.clone();
        let store_err = |source| StartError::Store {
            path: path.clone(),
            source,
        };
        let (store, report) =
            Store::open(&path, store_options(&config), clock.clone()).map_err(store_err)?;
        let store = Arc::new(store);
        let mut auth = Auth::new(&config.auth.tokens, clock.now_ms());
        let mut new_admin_token = None;
        if config.auth.tokens.is_empty() {
            let hash = match store
                .state()
                .setting(BOOTSTRAP_SETTING)
                .map_err(store_err)?
            {
                Some(h) if h.len() == 32 => h,
                _ => {
                    let token = crate::config::tokens::new_token().map_err(StartError::Random)?;
                    let hash = sha2::Sha256::digest(token.as_bytes()).to_vec();
                    store
                        .state()
                        .set_setting(BOOTSTRAP_SETTING, &hash)
                        .map_err(store_err)?;
                    store.state().flush().map_err(store_err)?;
                    new_admin_token = Some(token);
                    hash
                }
            };
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&hash);
            auth.add_admin_hash("admin", sha);
        }
        let liveness = Arc::new(crate::systemd::Liveness::new(config.effective_shards()));
        let svc = Arc::new(Self {
            store,
            config: Arc::new(config),
            auth,
            clock,
            endpoints_version: std::sync::atomic::AtomicU64::new(1),
            metrics: crate::metrics::Metrics::default(),
            shards: std::sync::OnceLock::new(),
            liveness,
        });
        Ok((
            svc,
            Opened {
                report,
                new_admin_token,
            },
        ))
    }

    /// The gauges of `/metrics`, read now. Blocks on index reads: cheap, but not free.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        let state = self.store.state();
        let now = self.now_ms();
        let inboxes = self.shards.get().map_or(&[][..], |(i, _)| i.as_slice());
        // Pending: in the index, and first attempts handed to shards straight from the log.
        let oldest = inboxes
            .iter()
            .filter_map(|i| i.oldest_unsettled())
            .chain(state.min_pending_seq().ok().flatten())
            .min()
            .and_then(|seq| self.store.log().read(seq).ok().flatten())
            .map_or(0, |r| now.saturating_sub(r.ts_ms));
        let unsettled: usize = inboxes.iter().map(|i| i.unsettled_len()).sum();
        let depths = inboxes.iter().map(|i| i.rx.len()).collect();
        let driver = self.shards.get().map_or("none", |(_, d)| *d);
        crate::metrics::Gauges {
            pending: state.pending_count() + unsettled,
            oldest_pending_age_ms: oldest,
            queue_depths: depths,
            disk_bytes: self.store.disk_bytes(),
            flushes: self.store.log().flush_count(),
            driver,
        }
    }

    /// Tells endpoint caches (fan-out, delivery) to reload.
    pub fn endpoints_changed(&self) {
        self.endpoints_version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Now, in Unix milliseconds, from the injected clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Flushes the log and the index and stops their threads.
    pub fn close(&self) {
        if let Err(e) = self.store.close() {
            tracing::error!(error = %e, "closing the store");
        }
    }
}
