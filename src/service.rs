//! The state every shard shares: the store, the config, the tokens and the clock.
//!
//! The ingest path only appends to the log (and claims an `eventId` when one is given). Each
//! message is appended under its application's key, so listing an app's messages scans the log
//! backwards and skips every segment that holds none of them (`Log::scan_back`); there is no
//! separate listing index to keep up to date.
//!
//! The config can be reloaded (SIGHUP, `reload`): readers take a snapshot with
//! [`Service::config`] (and the tokens and HTTP limits built from it with [`Service::auth`]
//! and [`Service::http_limits`]) and keep it for the request or attempt at hand;
//! [`Service::install`] swaps all three. Keys that need a
//! restart keep their old values in the installed config, so a snapshot always describes
//! what runs.

use std::{
    path::PathBuf,
    sync::{atomic::AtomicUsize, Arc},
};

use arc_swap::{ArcSwap, Guard};
use storage::{Durability, LogOptions, RecoveryReport, Store, StoreOptions};

use sha2::Digest;

use crate::{
    auth::Auth,
    config::{Config, TokenConfig},
    http::Limits,
    time::Clock,
};

/// Shared by all shards.
pub struct Service {
    pub store: Arc<Store>,
    /// The running config, swapped whole on reload: see [`Service::config`].
    config: ArcSwap<Config>,
    /// Built from `config`'s tokens; swapped with it.
    auth: ArcSwap<Auth>,
    /// Built from `config`'s `[server]`; swapped with it.
    http_limits: ArcSwap<Limits>,
    pub clock: Arc<dyn Clock>,
    /// Bumped on every endpoint or application write, so that caches of endpoints reload.
    pub endpoints_version: std::sync::atomic::AtomicU64,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Heartbeats of the shards and the dispatcher, for the systemd watchdog.
    pub liveness: Arc<crate::systemd::Liveness>,
    /// Delivery attempts running on all shards; the log's commit window applies while
    /// there are any (`storage.commit_window`).
    pub deliveries_in_flight: Arc<AtomicUsize>,
    /// Wakes the dispatcher (set once it runs): see [`Service::due_written`].
    pub dispatcher_wake: std::sync::OnceLock<crossbeam_utils::sync::Unparker>,
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
    #[error("opening the data directory {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: storage::Error,
    },
    #[error("making the first admin token: {0}")]
    Random(crate::config::tokens::RandomError),
}

/// Why a reloaded config's tokens could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// No `[[auth.tokens]]`, and no first-start admin token to fall back on.
    #[error(
        "auth.tokens: the new config has no tokens and this data directory has no first-start \
         admin token; nothing could use the API"
    )]
    NoTokens,
    /// Reading the first-start admin token's hash failed.
    #[error("reading the first-start admin token's hash: {0}")]
    Store(#[from] storage::Error),
}

/// The store options the config asks for; `in_flight` counts the deliveries in flight, while
/// which the commit window applies.
pub fn store_options(config: &Config, in_flight: Arc<AtomicUsize>) -> StoreOptions {
    let s = &config.storage;
    StoreOptions {
        log: LogOptions {
            durability: match s.durability {
                crate::config::Durability::Sync => Durability::Sync,
                crate::config::Durability::Interval => Durability::Interval,
            },
            flush_interval: s.flush_interval,
            commit_window: s.commit_window,
            window_while: Some(in_flight),
            segment_bytes_max: s.segment_bytes_max,
            segment_events_max: s.segment_events_max,
            segment_age_max: s.segment_age_max,
            max_bytes: s.max_bytes,
        },
        cache_bytes: s.cache_bytes,
        index_flush_interval: std::time::Duration::from_millis(200),
    }
}

/// What opening found: recovery's report, and the admin token made at first start (to keep
/// with [`Service::keep_admin_token`] once hookd serves, then show once).
#[derive(Debug)]
pub struct Opened {
    pub report: RecoveryReport,
    pub new_admin_token: Option<String>,
}

/// Name of the setting that keeps the first-start admin token's hash.
const BOOTSTRAP_SETTING: &str = "bootstrap_admin_sha256";

impl Service {
    /// Opens the store and recovers it. When the config names no token and the store keeps
    /// no first-start admin token, one is made (accepted from now on, but kept only by
    /// [`Service::keep_admin_token`], and then only its hash, in the index).
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<(Arc<Self>, Opened), StartError> {
        let path = config.storage.path.clone();
        let store_err = |source| StartError::Store {
            path: path.clone(),
            source,
        };
        let deliveries_in_flight = Arc::new(AtomicUsize::new(0));
        let options = store_options(&config, deliveries_in_flight.clone());
        let (store, report) = Store::open(&path, options, clock.clone()).map_err(store_err)?;
        store.space().set_reserve(config.storage.reserve_bytes);
        let store = Arc::new(store);
        let mut auth = Auth::new(&config.auth.tokens, clock.now_ms());
        let mut new_admin_token = None;
        if config.auth.tokens.is_empty() {
            // A new token is only kept (`Service::keep_admin_token`) once hookd serves: a
            // start that fails after this point makes a new one next time.
            let hash = match store
                .state()
                .setting(BOOTSTRAP_SETTING)
                .map_err(store_err)?
            {
                Some(h) if h.len() == 32 => h,
                _ => {
                    let token = crate::config::tokens::new_token().map_err(StartError::Random)?;
                    let hash = sha2::Sha256::digest(token.as_bytes()).to_vec();
                    new_admin_token = Some(token);
                    hash
                }
            };
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&hash);
            auth.add_admin_hash("admin", sha);
        }
        let liveness = Arc::new(crate::systemd::Liveness::new(config.effective_shards()));
        liveness.watch_store(store.clone());
        let svc = Arc::new(Self {
            store,
            http_limits: ArcSwap::from_pointee(Limits::from(&config.server)),
            config: ArcSwap::from_pointee(config),
            auth: ArcSwap::from_pointee(auth),
            clock,
            endpoints_version: std::sync::atomic::AtomicU64::new(1),
            metrics: crate::metrics::Metrics::default(),
            liveness,
            deliveries_in_flight,
            dispatcher_wake: std::sync::OnceLock::new(),
        });
        Ok((
            svc,
            Opened {
                report,
                new_admin_token,
            },
        ))
    }

    /// Keeps the hash of the first-start admin token that [`Service::open`] made (durably),
    /// to be called once hookd serves and before the token is shown.
    pub fn keep_admin_token(&self, token: &str) -> storage::Result<()> {
        let hash = sha2::Sha256::digest(token.as_bytes());
        let state = self.store.state();
        state.set_setting(BOOTSTRAP_SETTING, &hash)?;
        state.flush()
    }

    /// The running config. Keep the snapshot for one request or attempt, not longer: a reload
    /// installs another. A guard that derefs to `Arc<Config>`: taking it touches no shared
    /// reference count (every request takes one), `Guard::into_inner` gives the `Arc`.
    pub fn config(&self) -> Guard<Arc<Config>> {
        self.config.load()
    }

    /// The API tokens of the running config (a guard, as [`Service::config`]).
    pub fn auth(&self) -> Guard<Arc<Auth>> {
        self.auth.load()
    }

    /// The HTTP limits of the running config (`[server]`), read once per accepted connection.
    pub fn http_limits(&self) -> Arc<Limits> {
        self.http_limits.load_full()
    }

    /// The token table for `tokens` (from a reloaded config): buckets of unchanged limits are
    /// kept, and with no tokens the first-start admin token is the one, as at start.
    pub fn auth_for(&self, tokens: &[TokenConfig]) -> Result<Auth, TokensError> {
        let mut auth = self.auth().reloaded(tokens, self.now_ms());
        if tokens.is_empty() {
            match self.store.state().setting(BOOTSTRAP_SETTING)? {
                Some(h) if h.len() == 32 => {
                    let mut sha = [0u8; 32];
                    sha.copy_from_slice(&h);
                    auth.add_admin_hash("admin", sha);
                }
                _ => return Err(TokensError::NoTokens),
            }
        }
        Ok(auth)
    }

    /// Makes `config` the running one, with `auth` (see [`Service::auth_for`]) as its tokens.
    /// Only the main thread's reload calls this; readers see the old or the new config whole.
    pub fn install(&self, config: Config, auth: Auth) {
        self.http_limits
            .store(Arc::new(Limits::from(&config.server)));
        self.auth.store(Arc::new(auth));
        self.config.store(Arc::new(config));
    }

    /// Tells the dispatcher that a delivery was made due (a retry, a resend, a recover), so
    /// that its due scan does not wait for its idle tick. Cheap; call it after the write.
    pub fn due_written(&self) {
        if let Some(u) = self.dispatcher_wake.get() {
            u.unpark();
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
