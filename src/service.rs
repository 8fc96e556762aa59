//! The state every shard shares: the store, the config, the tokens, the clock, and the indexer
//! thread that builds the message listing from the log.
//!
//! The ingest path only appends to the log (and claims an `eventId` when one is given). The
//! listing of an app's messages is built afterwards by one indexer thread that tails the
//! durable log and writes the listing entries together with its cursor, so a crash at any point
//! is repaired by tailing again from the cursor. A list request waits until the indexer has
//! passed the last message written when the request arrived, so a client always lists what it
//! has just created.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use storage::{
    codec::decode_value,
    state::{ListingEntry, MessageRecord},
    Durability, LogOptions, RecoveryReport, Store, StoreOptions, Watermark,
};

use sha2::Digest;

use crate::{auth::Auth, config::Config, time::Clock};

/// The listing indexer's cursor name in the index database.
const LISTING_CURSOR: &str = "listing";
/// Records indexed per transaction.
const INDEX_BATCH: usize = 1024;

/// Shared by all shards.
pub struct Service {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub auth: Auth,
    pub clock: Arc<dyn Clock>,
    /// How far (seq) the message listing is built.
    pub listing: Arc<Watermark>,
    indexer: Mutex<Option<JoinHandle<()>>>,
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
    #[error("starting the indexer thread: {0}")]
    Thread(std::io::Error),
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
    /// Opens the store, recovers it, and starts the indexer. When the config names no token,
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
        let cursor = store
            .state()
            .cursor(LISTING_CURSOR)
            .ok()
            .flatten()
            .unwrap_or(0);
        let listing = Arc::new(Watermark::new(cursor));
        let svc = Arc::new(Self {
            store: store.clone(),
            config: Arc::new(config),
            auth,
            clock,
            listing: listing.clone(),
            indexer: Mutex::new(None),
        });
        let handle = std::thread::Builder::new()
            .name("hookd-indexer".into())
            .spawn(move || run_indexer(&store, &listing, cursor))
            .map_err(StartError::Thread)?;
        *svc.indexer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok((
            svc,
            Opened {
                report,
                new_admin_token,
            },
        ))
    }

    /// Now, in Unix milliseconds, from the injected clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Flushes and stops: the log, then the indexer, then the index.
    pub fn close(&self) {
        self.store.log().close();
        if let Some(h) = self
            .indexer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        self.listing.close();
        if let Err(e) = self.store.close() {
            tracing::error!(error = %e, "closing the store");
        }
    }
}

/// Tails the durable log from `cursor` and adds each message to its app's listing.
fn run_indexer(store: &Store, listing: &Watermark, mut cursor: u64) {
    let log = store.log();
    loop {
        if let Err(storage::Error::Closed) = log.durable().wait(cursor + 1).blocking() {
            return;
        }
        let upto = log.durable().get();
        let mut batch = Vec::with_capacity(INDEX_BATCH);
        for rec in log.iter_from(cursor + 1) {
            let rec = match rec {
                Ok(r) if r.seq > upto => break,
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "indexer skipped an unreadable record");
                    continue;
                }
            };
            match decode_value::<MessageRecord>(&rec.payload, &|| format!("message {}", rec.seq)) {
                Ok(m) => batch.push((
                    m.app_key,
                    rec.seq,
                    ListingEntry {
                        created_ms: m.created_ms,
                        event_type: m.event_type,
                        channels: m.channels,
                    },
                )),
                Err(e) => tracing::warn!(error = %e, "indexer skipped an undecodable message"),
            }
            if batch.len() == INDEX_BATCH {
                let last = batch.last().map_or(cursor, |b| b.1);
                if index(store, &batch, last) {
                    listing.advance(last);
                }
                batch.clear();
            }
        }
        if index(store, &batch, upto) {
            listing.advance(upto);
            cursor = upto;
        } else {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn index(store: &Store, batch: &[(u64, u64, ListingEntry)], upto: u64) -> bool {
    match store.state().index_messages(batch, LISTING_CURSOR, upto) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "indexing messages");
            false
        }
    }
}
