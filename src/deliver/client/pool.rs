//! Idle keep-alive connections per (scheme, host, port), for reuse.

use std::collections::HashMap;

use monoio::time::Instant;

use super::conn::Conn;
use super::POOL_PER_KEY_MAX;
use super::{POOL_IDLE_MAX, POOL_TOTAL_MAX};
use super::{READ_BUF_INITIAL, READ_BUF_RETAIN};

/// Where pooled connections lead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PoolKey {
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
}

pub(super) struct Idle {
    pub(super) conn: Conn,
    pub(super) since: Instant,
}

/// Idle keep-alive connections, most recently used last.
pub(super) struct Pool {
    pub(super) idle: HashMap<PoolKey, Vec<Idle>>,
    pub(super) total: usize,
    /// Idle connections kept per key.
    pub(super) per_key_max: usize,
}

impl Pool {
    /// A pool keeping as many idle connections per key as may be in flight to it (at least
    /// [`POOL_PER_KEY_MAX`], at most [`POOL_TOTAL_MAX`]).
    pub(super) fn new(in_flight_per_host_max: usize) -> Self {
        Self {
            idle: HashMap::new(),
            total: 0,
            per_key_max: in_flight_per_host_max.clamp(POOL_PER_KEY_MAX, POOL_TOTAL_MAX),
        }
    }

    /// The most recently pooled live connection to `key`; stale ones found on the way are
    /// closed.
    pub(super) fn take(&mut self, key: &PoolKey, now: Instant) -> Option<Conn> {
        let list = self.idle.get_mut(key)?;
        let mut found = None;
        while let Some(idle) = list.pop() {
            self.total -= 1;
            if now.saturating_duration_since(idle.since) < POOL_IDLE_MAX && idle.conn.looks_open() {
                found = Some(idle.conn);
                break;
            }
        }
        if list.is_empty() {
            self.idle.remove(key);
        }
        found
    }

    /// Keeps `conn` for reuse, unless the caps are reached (then it is closed).
    pub(super) fn put(&mut self, key: PoolKey, mut conn: Conn, now: Instant) {
        if self.total >= POOL_TOTAL_MAX {
            self.sweep(now);
        }
        if self.total >= POOL_TOTAL_MAX {
            return;
        }
        let list = self.idle.entry(key).or_default();
        if list.len() >= self.per_key_max {
            return;
        }
        if conn.rbuf.capacity() > READ_BUF_RETAIN {
            conn.rbuf = Vec::with_capacity(READ_BUF_INITIAL);
        }
        conn.rbuf.clear();
        conn.pos = 0;
        list.push(Idle { conn, since: now });
        self.total += 1;
    }

    /// Closes every connection idle for too long.
    pub(super) fn sweep(&mut self, now: Instant) {
        let mut total = 0;
        self.idle.retain(|_, list| {
            list.retain(|idle| now.saturating_duration_since(idle.since) < POOL_IDLE_MAX);
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
    }
}
