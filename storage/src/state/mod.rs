//! The index database: everything that needs random access, in sled.
//!
//! One sled database (`<data>/index/`) with one tree per kind of key. All integers in keys are
//! big-endian, so that key order is numeric order and time order:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `b"format"`, `b"floor"`, `b"cursor/<name>"`, `b"setting/<name>"`, `b"open_deliveries"` (only between a clean close and the next open) | version byte, u64 BE, bytes |
//! | `segments` | segment id | [`SegmentSummary`] |
//! | `apps` | app key | [`AppRecord`] |
//! | `app_by_id`, `app_by_uid` | id / uid string | app key |
//! | `endpoints` | endpoint key | [`EndpointRecord`] |
//! | `ep_by_id` | id string | endpoint key |
//! | `ep_by_uid` | app key, uid | endpoint key |
//! | `app_eps` | app key, endpoint key | empty |
//! | `event_types` | name | [`EventTypeRecord`] |
//! | `event_ids` | app key, eventId | [`MessageRef`] (seq 0: claimed by a message being stored) |
//! | `event_ids_by_seq` | seq | the `event_ids` key pointing at it: pruned with the log ([`State::prune_below`]) |
//! | `deliveries` | endpoint key, seq | [`DeliveryState`] |
//! | `due` | next_at_ms, endpoint key, seq | empty (pending only) |
//! | `pending` | seq, endpoint key | empty (pending only: the retention floor) |
//! | `msg_attempts` | seq, attempt key | [`AttemptRecord`] (all but those in `settled_at_once`) |
//! | `settled_at_once` | last seq, first attempt key | first seq (u64 BE), then [([`AttemptRecord`], [`DeliveryState`])]: a run of first attempts that succeeded (their delivery has no entry in `deliveries` until a later attempt), in seq order; a few runs per outcome batch |
//! | `endpoint_attempts` | endpoint key, first attempt key | [(attempt key, seq)], one entry per endpoint per outcome batch |
//! | `idempotency` | scope, 0x00, key | [`IdempotencyRecord`] |
//! | `idem_expiry` | expires_ms, scope, 0x00, key | empty |
//! | `audit` | ts_ms, counter | [`AuditRecord`] |
//! | `portal_tokens` | SHA-256 of the token | [`PortalTokenRecord`] (see `portal.rs`) |
//! | `portal_by_app` | app key, SHA-256 | empty |
//! | `portal_expiry` | expires_ms, SHA-256 | empty |
//! | `fifo` | endpoint key, lane, seq | empty: the open deliveries of an ordered endpoint's lane that wait in the index (see `fifo.rs`) |
//!
//! Writes that touch several trees run in one sled transaction, except the outcome of a first
//! attempt that succeeds (see [`State::record_outcomes`]), the hot path, which has
//! no index entry to move and is ordered so that a crash part way loses nothing. sled makes nothing durable until
//! it is flushed; [`State::flush`] (called by the store's index flusher) does that.

mod cache;
mod delivery;
mod fifo;
mod mgmt;
mod portal;
pub mod records;

use std::path::Path;

use bincode::{Decode, Encode};
use sled::{IVec, Tree};

use crate::{
    codec::{decode_value, encode_value, FORMAT_VERSION},
    error::{Error, Result},
    log::{Catalog, SegmentSummary},
};
pub use fifo::{FifoHead, BLOCKED};
pub use records::*;

/// `meta` key of the pending count saved at a clean close.
const OPEN_COUNT_KEY: &[u8] = b"open_deliveries";

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The key of the last item: pass it back to get the next page.
    pub last_key: Option<Vec<u8>>,
    /// True when there is nothing after this page.
    pub done: bool,
}

/// The index database.
pub struct State {
    db: sled::Db,
    meta: Tree,
    segments: Tree,
    apps: Tree,
    app_by_id: Tree,
    app_by_uid: Tree,
    endpoints: Tree,
    ep_by_id: Tree,
    ep_by_uid: Tree,
    app_eps: Tree,
    event_types: Tree,
    event_ids: Tree,
    event_ids_by_seq: Tree,
    deliveries: Tree,
    due: Tree,
    pending: Tree,
    msg_attempts: Tree,
    at_once: Tree,
    endpoint_attempts: Tree,
    idempotency: Tree,
    idem_expiry: Tree,
    audit: Tree,
    /// Messages whose payload was expunged: seq -> when (Unix ms).
    expunged: Tree,
    /// The lanes of ordered (FIFO) endpoints, as far as they wait in the index.
    fifo: Tree,
    portal_tokens: Tree,
    portal_by_app: Tree,
    portal_expiry: Tree,
    /// Whether `expunged` has ever held an entry, so that the delivery path skips the lookup
    /// on a store that never expunged anything.
    any_expunged: std::sync::atomic::AtomicBool,
    /// Apps by id or uid, for the ingest path.
    app_cache: cache::AppCache<AppRecord>,
    /// Entries in `pending`, kept in step by the delivery writes (counted once at open).
    open_deliveries: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

/// A key made of big-endian integers and byte strings, in order.
pub(crate) fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(crate) fn read_be(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        b.copy_from_slice(src);
    }
    u64::from_be_bytes(b)
}

impl State {
    /// Opens the index database in `path`, with sled's page cache capped at `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput);
        // sled releases its file lock from a background thread shortly after the previous
        // handle is dropped, so a reopen in the same process may briefly find it held. Another
        // process holding the store is refused earlier, by the store's own LOCK file.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                // sled reports the busy lock as an `Other` error whose text names it.
                Err(sled::Error::Io(e)) if lock_busy(&e) && tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        let t = |name: &str| db.open_tree(name);
        let state = Self {
            meta: t("meta")?,
            segments: t("segments")?,
            apps: t("apps")?,
            app_by_id: t("app_by_id")?,
            app_by_uid: t("app_by_uid")?,
            endpoints: t("endpoints")?,
            ep_by_id: t("ep_by_id")?,
            ep_by_uid: t("ep_by_uid")?,
            app_eps: t("app_eps")?,
            event_types: t("event_types")?,
            event_ids: t("event_ids")?,
            event_ids_by_seq: t("event_ids_by_seq")?,
            deliveries: t("deliveries")?,
            due: t("due")?,
            pending: t("pending")?,
            msg_attempts: t("msg_attempts")?,
            at_once: t("settled_at_once")?,
            endpoint_attempts: t("endpoint_attempts")?,
            idempotency: t("idempotency")?,
            idem_expiry: t("idem_expiry")?,
            audit: t("audit")?,
            expunged: t("expunged")?,
            fifo: t("fifo")?,
            portal_tokens: t("portal_tokens")?,
            portal_by_app: t("portal_by_app")?,
            portal_expiry: t("portal_expiry")?,
            any_expunged: std::sync::atomic::AtomicBool::new(false),
            app_cache: cache::AppCache::default(),
            open_deliveries: std::sync::atomic::AtomicI64::new(0),
            db,
        };
        let open = state.open_count_at_open()?;
        state
            .open_deliveries
            .store(open as i64, std::sync::atomic::Ordering::Relaxed);
        state.any_expunged.store(
            !state.expunged.is_empty(),
            std::sync::atomic::Ordering::Relaxed,
        );
        match state.meta.get(b"format")? {
            Some(v) if v.first().copied().unwrap_or(0) > FORMAT_VERSION => {
                return Err(Error::NewerFormat {
                    what: format!("index database {}", path.display()),
                    found: v[0],
                    supported: FORMAT_VERSION,
                })
            }
            Some(_) => {}
            None => {
                state.meta.insert(b"format", &[FORMAT_VERSION])?;
                state.db.flush()?;
            }
        }
        state.index_event_ids_by_seq()?;
        Ok(state)
    }

    /// The number of pending deliveries when the database opens: the count saved by the last
    /// clean close ([`State::save_open_count`]), which is then removed (durably, so that a
    /// crash later cannot bring a stale one back), or else a count of the `pending` tree.
    /// Counting reads every page of that tree, which with a million deliveries pending takes
    /// a second and leaves sled's cache and page table holding about 100 MiB more.
    fn open_count_at_open(&self) -> Result<usize> {
        let saved = self.meta.remove(OPEN_COUNT_KEY)?;
        if saved.is_some() {
            self.db.flush()?;
        }
        let any = self.pending.first()?.is_some();
        Ok(match saved {
            // A count that contradicts the tree (possible only if something wrote after the
            // close) is not trusted.
            Some(v) if v.len() == 8 && (read_be(&v, 0) > 0) == any => read_be(&v, 0) as usize,
            _ => self.pending.len(),
        })
    }

    /// Saves the number of pending deliveries for the next open. Call it only when nothing
    /// writes any more (the store's close), and flush after it.
    pub fn save_open_count(&self) -> Result<()> {
        let n = self.pending_count() as u64;
        self.meta.insert(OPEN_COUNT_KEY, &be(n))?;
        Ok(())
    }

    /// Makes every write so far durable. Blocks: call it off the shard threads.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// A fresh internal key, unique and increasing for the life of the database.
    pub fn next_key(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Bytes sled uses on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// A named progress marker (for example how far fan-out has got through the log).
    pub fn cursor(&self, name: &str) -> Result<Option<u64>> {
        let k = key(&[b"cursor/", name.as_bytes()]);
        Ok(self.meta.get(k)?.map(|v| read_be(&v, 0)))
    }

    /// Sets a named progress marker.
    pub fn set_cursor(&self, name: &str, value: u64) -> Result<()> {
        self.meta
            .insert(key(&[b"cursor/", name.as_bytes()]), &be(value))?;
        Ok(())
    }

    /// Writes the progress of background task `id` (an API-defined value).
    pub fn put_task(&self, id: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(key(&[b"task/", id.as_bytes()]), value)?;
        Ok(())
    }

    /// The progress of background task `id`, if it is kept.
    pub fn task(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(key(&[b"task/", id.as_bytes()]))?
            .map(|v| v.to_vec()))
    }

    /// Forgets all but the `keep` newest tasks (ids sort by creation time).
    pub fn prune_tasks(&self, keep: usize) -> Result<()> {
        let ids: Vec<sled::IVec> = self
            .meta
            .scan_prefix(b"task/")
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in ids.iter().take(ids.len().saturating_sub(keep)) {
            self.meta.remove(k)?;
        }
        Ok(())
    }

    /// A small named value kept with the index (for example the first-start token's hash).
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(key(&[b"setting/", name.as_bytes()]))?
            .map(|v| v.to_vec()))
    }

    /// Sets a named value; see [`State::setting`].
    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<()> {
        self.meta
            .insert(key(&[b"setting/", name.as_bytes()]), value)?;
        Ok(())
    }

    /// Reserves `eventId` in the app for the message `reference` (seq 0 while it is being
    /// stored). [`Error::Conflict`] if another message has it, unless `stale` says the claim
    /// found is left over (its message never became durable, or is gone): then it is taken
    /// over. Called before the append, so two racing requests cannot both store it.
    pub fn claim_event_id(
        &self,
        app: u64,
        event_id: &str,
        reference: &MessageRef,
        stale: impl Fn(&MessageRef) -> bool,
    ) -> Result<()> {
        let k = key(&[&be(app), event_id.as_bytes()]);
        let value = encode_value(reference)?;
        let mut expected: Option<IVec> = None;
        // A takeover races only with another takeover of the same stale claim; a few tries
        // settle it.
        for _ in 0..4 {
            match self
                .event_ids
                .compare_and_swap(&k, expected.as_ref(), Some(value.as_slice()))?
            {
                Ok(()) => {
                    if let Some(old) = &expected {
                        self.unindex_event_id(old)?;
                    }
                    return Ok(());
                }
                Err(cas) => {
                    let Some(current) = cas.current else {
                        expected = None;
                        continue;
                    };
                    let found: MessageRef =
                        decode_value(&current, &|| format!("event id {event_id:?} of app {app}"))?;
                    if !stale(&found) {
                        break;
                    }
                    expected = Some(current);
                }
            }
        }
        Err(Error::Conflict {
            what: format!("eventId {event_id}"),
        })
    }

    /// Drops the by-seq entry of an `event_ids` value being replaced or removed.
    fn unindex_event_id(&self, value: &[u8]) -> Result<()> {
        let old: MessageRef = decode_value(value, &|| "a replaced event id".to_owned())?;
        if old.seq > 0 {
            self.event_ids_by_seq.remove(be(old.seq))?;
        }
        Ok(())
    }

    /// Points a claimed `eventId` at its message (once its seq is known), or frees it (`None`).
    pub fn set_event_id(
        &self,
        app: u64,
        event_id: &str,
        reference: Option<&MessageRef>,
    ) -> Result<()> {
        let k = key(&[&be(app), event_id.as_bytes()]);
        match reference {
            Some(r) => {
                if r.seq > 0 {
                    self.event_ids_by_seq.insert(be(r.seq), k.as_slice())?;
                }
                put(&self.event_ids, &k, r)
            }
            None => {
                if let Some(old) = self.event_ids.remove(k)? {
                    self.unindex_event_id(&old)?;
                }
                Ok(())
            }
        }
    }

    /// Forgets the `eventId`s of messages below `floor` (retired from the log), until
    /// `deadline` (checked every 256 entries). Returns whether anything is left.
    fn prune_event_ids_below(&self, floor: u64, deadline: std::time::Instant) -> Result<bool> {
        for (n, kv) in self.event_ids_by_seq.range(..be(floor)).enumerate() {
            if n % 256 == 255 && std::time::Instant::now() >= deadline {
                return Ok(true);
            }
            let (seq_key, id_key) = kv?;
            let seq = read_be(&seq_key, 0);
            // Only if it still points at that message (a takeover may have moved it).
            if let Some(current) = self.event_ids.get(&id_key)? {
                let r: MessageRef = decode_value(&current, &|| "an event id".to_owned())?;
                if r.seq == seq {
                    self.event_ids.remove(&id_key)?;
                }
            }
            self.event_ids_by_seq.remove(seq_key)?;
        }
        Ok(false)
    }

    /// Builds `event_ids_by_seq` for a store written before it existed (once, at open).
    fn index_event_ids_by_seq(&self) -> Result<()> {
        if !self.event_ids_by_seq.is_empty() || self.event_ids.is_empty() {
            return Ok(());
        }
        for kv in self.event_ids.iter() {
            let (k, v) = kv?;
            let r: MessageRef = decode_value(&v, &|| "an event id".to_owned())?;
            if r.seq > 0 {
                self.event_ids_by_seq.insert(be(r.seq), k)?;
            }
        }
        Ok(())
    }

    /// The message with `eventId` in the app, if any.
    pub fn message_by_event_id(&self, app: u64, event_id: &str) -> Result<Option<MessageRef>> {
        get(
            &self.event_ids,
            &key(&[&be(app), event_id.as_bytes()]),
            "event id",
        )
    }

    /// Claims an idempotency key for a request being processed: stores `placeholder` unless an
    /// unexpired record is there, which is returned instead (a finished answer to replay, or
    /// another request's placeholder). Atomic, so two concurrent requests cannot both proceed.
    pub fn claim_idempotency(
        &self,
        scope: &str,
        idem_key: &str,
        placeholder: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Option<IdempotencyRecord>> {
        let k = key(&[scope.as_bytes(), &[0], idem_key.as_bytes()]);
        let value = encode_value(placeholder)?;
        loop {
            let current = self.idempotency.get(&k)?;
            if let Some(cur) = &current {
                let rec: IdempotencyRecord =
                    decode_value(cur, &|| format!("idempotency key at {}", hex(&k)))?;
                if rec.expires_ms > now_ms {
                    return Ok(Some(rec));
                }
            }
            if self
                .idempotency
                .compare_and_swap(&k, current, Some(value.clone()))?
                .is_ok()
            {
                self.idem_expiry
                    .insert(key(&[&be(placeholder.expires_ms), &k]), &[])?;
                return Ok(None);
            }
        }
    }

    /// Forgets an idempotency key (a claim whose request failed, so that a retry may run).
    pub fn release_idempotency(&self, scope: &str, idem_key: &str) -> Result<()> {
        self.idempotency
            .remove(key(&[scope.as_bytes(), &[0], idem_key.as_bytes()]))?;
        Ok(())
    }

    /// Remembers the answer for an idempotency key until `rec.expires_ms`.
    pub fn put_idempotency(
        &self,
        scope: &str,
        idem_key: &str,
        rec: &IdempotencyRecord,
    ) -> Result<()> {
        let k = key(&[scope.as_bytes(), &[0], idem_key.as_bytes()]);
        let value = encode_value(rec)?;
        self.idempotency.insert(&k, value)?;
        self.idem_expiry
            .insert(key(&[&be(rec.expires_ms), &k]), &[])?;
        Ok(())
    }

    /// The remembered answer for an idempotency key, unless it has expired by `now_ms`.
    pub fn idempotency(
        &self,
        scope: &str,
        idem_key: &str,
        now_ms: u64,
    ) -> Result<Option<IdempotencyRecord>> {
        let k = key(&[scope.as_bytes(), &[0], idem_key.as_bytes()]);
        let rec: Option<IdempotencyRecord> = get(&self.idempotency, &k, "idempotency key")?;
        Ok(rec.filter(|r| r.expires_ms > now_ms))
    }

    /// Drops idempotency keys that expired by `now_ms`; returns how many.
    pub fn purge_idempotency(&self, now_ms: u64) -> Result<usize> {
        let mut n = 0;
        for kv in self.idem_expiry.range(..be(now_ms).to_vec()) {
            let (k, _) = kv?;
            let idem = &k[8..];
            let rec: Option<IdempotencyRecord> = get(&self.idempotency, idem, "idempotency key")?;
            if rec.is_some_and(|r| r.expires_ms <= now_ms) {
                self.idempotency.remove(idem)?;
                n += 1;
            }
            self.idem_expiry.remove(&k)?;
        }
        Ok(n)
    }

    /// Marks the payload of message `seq` as expunged (`DELETE .../msg/{msg}/content`): from
    /// then on it is neither shown nor sent. The log keeps its bytes until retention retires
    /// the segment (the log is append-only).
    pub fn expunge_message(&self, seq: u64, now_ms: u64) -> Result<()> {
        self.expunged.insert(be(seq), &be(now_ms))?;
        self.any_expunged
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether the payload of message `seq` was expunged.
    pub fn is_expunged(&self, seq: u64) -> Result<bool> {
        if !self.any_expunged.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        Ok(self.expunged.contains_key(be(seq))?)
    }

    /// Appends to the audit trail.
    pub fn audit(&self, rec: &AuditRecord) -> Result<()> {
        let k = key(&[&be(rec.ts_ms), &be(self.next_key()?)]);
        self.audit.insert(k, encode_value(rec)?)?;
        Ok(())
    }

    /// The audit trail, newest first, strictly before `before` (a `last_key` of a prior page).
    pub fn list_audit(&self, before: Option<&[u8]>, limit: usize) -> Result<Page<AuditRecord>> {
        let end = before.map_or(vec![0xFF; 17], <[u8]>::to_vec);
        page(self.audit.range(..end).rev(), limit, "audit record")
    }

    fn catalog_key(id: u64) -> [u8; 8] {
        be(id)
    }
}

/// Whether sled could not open because its file lock is still held (by this process's previous
/// handle, being released by a background thread).
fn lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.raw_os_error() == Some(rustix::io::Errno::WOULDBLOCK.raw_os_error())
        || e.to_string().contains("could not acquire lock")
}

impl Catalog for State {
    fn load(&self, id: u64) -> Result<Option<SegmentSummary>> {
        get(&self.segments, &Self::catalog_key(id), "segment summary")
    }

    fn store(&self, summary: &SegmentSummary) -> Result<()> {
        put(&self.segments, &Self::catalog_key(summary.id), summary)
    }

    fn retire(&self, id: u64, floor: u64) -> Result<()> {
        self.segments.remove(Self::catalog_key(id))?;
        let old = self.floor()?;
        self.meta.insert(b"floor", &be(floor.max(old)))?;
        self.db.flush()?;
        Ok(())
    }

    fn floor(&self) -> Result<u64> {
        Ok(self.meta.get(b"floor")?.map_or(1, |v| read_be(&v, 0)))
    }
}

/// Reads and decodes one value.
pub(crate) fn get<V: Decode<()>>(tree: &Tree, k: &[u8], what: &str) -> Result<Option<V>> {
    match tree.get(k)? {
        Some(v) => decode_value(&v, &|| format!("{what} at key {}", hex(k))).map(Some),
        None => Ok(None),
    }
}

/// Encodes and writes one value.
pub(crate) fn put<V: Encode>(tree: &Tree, k: &[u8], v: &V) -> Result<()> {
    tree.insert(k, encode_value(v)?)?;
    Ok(())
}

/// Collects up to `limit` decoded values from a key-value iterator into a page.
pub(crate) fn page<V: Decode<()>>(
    iter: impl Iterator<Item = sled::Result<(IVec, IVec)>>,
    limit: usize,
    what: &str,
) -> Result<Page<V>> {
    let mut items = Vec::new();
    let mut last_key = None;
    let mut done = true;
    for kv in iter {
        let (k, v) = kv?;
        if items.len() == limit {
            done = false;
            break;
        }
        items.push(decode_value(&v, &|| format!("{what} at key {}", hex(&k)))?);
        last_key = Some(k.to_vec());
    }
    Ok(Page {
        items,
        last_key,
        done,
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(at: u64) -> DeliveryState {
        DeliveryState {
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_at_ms: at,
            last_status_code: None,
            updated_ms: 0,
            trigger: Trigger::Scheduled,
        }
    }

    /// A clean close saves the pending count for the next open, which takes it and removes
    /// it; an open after anything else (the count gone, or one that contradicts the tree)
    /// counts the tree.
    #[test]
    fn the_pending_count_is_saved_only_from_a_clean_close_to_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path(), 1 << 20).unwrap();
        for seq in 1..=3 {
            st.set_delivery(7, seq, &pending(1_000)).unwrap();
        }
        st.save_open_count().unwrap();
        st.flush().unwrap();
        drop(st);
        let st = State::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(st.pending_count(), 3);
        assert!(st.meta.get(OPEN_COUNT_KEY).unwrap().is_none(), "taken");
        // Writes, then an end without a close (as a crash after a flush): counted again.
        st.set_delivery(8, 4, &pending(1_000)).unwrap();
        st.flush().unwrap();
        drop(st);
        let st = State::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(st.pending_count(), 4);
        // A saved count of 0 beside pending deliveries is not believed.
        st.meta.insert(OPEN_COUNT_KEY, &be(0)).unwrap();
        st.flush().unwrap();
        drop(st);
        let st = State::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(st.pending_count(), 4);
    }

    /// The retry in `State::open` must recognize sled's "lock is held" error.
    #[test]
    fn a_held_sled_lock_is_recognized() {
        let dir = tempfile::tempdir().unwrap();
        let _held = State::open(dir.path(), 1 << 20).unwrap();
        match sled::Config::new().path(dir.path()).open() {
            Err(sled::Error::Io(e)) => assert!(lock_busy(&e), "not recognized: {e:?}"),
            other => panic!("expected a lock error, got {:?}", other.map(|_| ())),
        }
    }
}
