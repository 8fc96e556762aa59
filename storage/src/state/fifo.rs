//! Ordered (FIFO) endpoints: the lanes whose deliveries wait in the index.
//!
//! An ordered endpoint takes one delivery at a time per *lane* (hookd hashes a message's
//! ordering key to a lane). While a lane's head is only in flight, its shard keeps the lane in
//! memory. When the head must wait for a retry, or a delivery must wait for its turn and is
//! not kept in memory, the lane moves here: every open delivery of the lane that waits in the
//! index has an entry `(endpoint, lane, seq)`, the lowest is the lane's head, and the others
//! are *blocked*: pending with `next_at_ms == BLOCKED`, so the due scan never hands them out
//! (their due entry sorts after every real time). When the head settles,
//! [`State::fifo_settled`] removes its entry and makes the next one due at once.

use sled::{transaction::ConflictableTransactionError, Transactional};

use super::{
    be, delivery::apply_delivery, key, read_be, DeliveryState, DeliveryStatus, State, Trigger,
};
use crate::{
    codec::{decode_value, encode_value},
    error::Result,
};

/// The `next_at_ms` of a blocked delivery: it waits for the one before it in its lane.
pub const BLOCKED: u64 = u64::MAX;

/// Entries [`State::fifo_heads`] reads at most.
const HEADS_SCAN_MAX: usize = 10_000;

/// The head of a lane that waits in the index, as the stats show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoHead {
    pub lane: u64,
    pub seq: u64,
    /// Its delivery's state (`None`: its first attempt is yet to be recorded).
    pub state: Option<DeliveryState>,
    /// Deliveries of the lane waiting behind it.
    pub behind: usize,
}

fn lane_prefix(endpoint: u64, lane: u64) -> Vec<u8> {
    key(&[&be(endpoint), &be(lane)])
}

fn entry(endpoint: u64, lane: u64, seq: u64) -> Vec<u8> {
    key(&[&be(endpoint), &be(lane), &be(seq)])
}

impl DeliveryState {
    /// Waiting in an ordered endpoint's lane for the delivery before it.
    pub fn is_blocked(&self) -> bool {
        self.status == DeliveryStatus::Pending && self.next_at_ms == BLOCKED
    }
}

impl State {
    /// Whether any lane of `endpoint` waits in the index.
    pub fn fifo_any(&self, endpoint: u64) -> Result<bool> {
        Ok(self
            .fifo
            .scan_prefix(be(endpoint))
            .next()
            .transpose()?
            .is_some())
    }

    /// The head of a lane that waits in the index (its lowest seq), and whether it is blocked
    /// (then nothing of the lane is due: it waits for a delivery in flight before it).
    pub fn fifo_first(&self, endpoint: u64, lane: u64) -> Result<Option<(u64, bool)>> {
        let Some(seq) = self.lane_first(endpoint, lane)? else {
            return Ok(None);
        };
        let blocked = self
            .delivery_raw(endpoint, seq)?
            .is_some_and(|st| st.is_blocked());
        Ok(Some((seq, blocked)))
    }

    /// The lowest seq of a lane in the index.
    fn lane_first(&self, endpoint: u64, lane: u64) -> Result<Option<u64>> {
        let first = self
            .fifo
            .scan_prefix(lane_prefix(endpoint, lane))
            .next()
            .transpose()?;
        Ok(first.map(|(k, _)| read_be(&k, 16)))
    }

    fn delivery_raw(&self, endpoint: u64, seq: u64) -> Result<Option<DeliveryState>> {
        super::get(
            &self.deliveries,
            &key(&[&be(endpoint), &be(seq)]),
            "delivery",
        )
    }

    /// Puts delivery `seq` in its lane's index as the head that waits for a retry (its state
    /// is written with its attempt).
    pub fn fifo_hold(&self, endpoint: u64, lane: u64, seq: u64) -> Result<()> {
        self.fifo.insert(entry(endpoint, lane, seq), &[])?;
        Ok(())
    }

    /// Parks deliveries in their lane's index, blocked behind its head: `(seq, attempts made,
    /// trigger)` each, in one transaction.
    pub fn fifo_park(
        &self,
        endpoint: u64,
        lane: u64,
        parked: &[(u64, u32, Trigger)],
        now_ms: u64,
    ) -> Result<()> {
        let mut encoded = Vec::with_capacity(parked.len());
        for &(seq, attempts, trigger) in parked {
            let st = DeliveryState {
                status: DeliveryStatus::Pending,
                attempts,
                next_at_ms: BLOCKED,
                last_status_code: None,
                updated_ms: now_ms,
                trigger,
            };
            let value = encode_value(&st)?;
            encoded.push((seq, st, value));
        }
        let delta = (&self.deliveries, &self.due, &self.pending, &self.fifo).transaction(
            |(deliveries, due, pending, fifo)| {
                let mut delta = 0;
                for (seq, st, value) in &encoded {
                    delta +=
                        apply_delivery((deliveries, due, pending), (endpoint, *seq), st, value)?;
                    fifo.insert(entry(endpoint, lane, *seq), &[])?;
                }
                Ok(delta)
            },
        )?;
        self.open_deliveries
            .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Blocks delivery `seq` if it is pending and due (a head that an older delivery of its
    /// lane goes before).
    pub fn fifo_demote(&self, endpoint: u64, seq: u64) -> Result<()> {
        self.set_due_if(endpoint, seq, BLOCKED, |st| {
            st.status == DeliveryStatus::Pending && !st.is_blocked()
        })
        .map(|_| ())
    }

    /// Makes delivery `seq` due at `at_ms` if its state passes `when`, in one transaction;
    /// whether it did.
    fn set_due_if(
        &self,
        endpoint: u64,
        seq: u64,
        at_ms: u64,
        when: impl Fn(&DeliveryState) -> bool,
    ) -> Result<bool> {
        let k = key(&[&be(endpoint), &be(seq)]);
        let changed = (&self.deliveries, &self.due, &self.pending).transaction(
            |(deliveries, due, pending)| {
                let Some(v) = deliveries.get(&k)? else {
                    return Ok(false);
                };
                let mut st: DeliveryState = decode_value(&v, &|| format!("delivery {seq}"))
                    .map_err(ConflictableTransactionError::Abort)?;
                if !when(&st) {
                    return Ok(false);
                }
                st.next_at_ms = at_ms;
                let value = encode_value(&st).map_err(ConflictableTransactionError::Abort)?;
                apply_delivery((deliveries, due, pending), (endpoint, seq), &st, &value)?;
                Ok(true)
            },
        )?;
        Ok(changed)
    }

    /// Delivery `seq` of a lane has settled: its entry goes, and the lane's next delivery, if
    /// it is blocked, is made due at `now_ms`. Returns whether one was.
    pub fn fifo_settled(&self, endpoint: u64, lane: u64, seq: u64, now_ms: u64) -> Result<bool> {
        self.fifo.remove(entry(endpoint, lane, seq))?;
        self.fifo_promote(endpoint, lane, now_ms)
    }

    /// Makes the head of a lane due if it is blocked; entries of settled deliveries met first
    /// are removed.
    fn fifo_promote(&self, endpoint: u64, lane: u64, now_ms: u64) -> Result<bool> {
        loop {
            let Some(seq) = self.lane_first(endpoint, lane)? else {
                return Ok(false);
            };
            match self.delivery_raw(endpoint, seq)? {
                Some(st) if !st.status.is_open() => {
                    self.fifo.remove(entry(endpoint, lane, seq))?;
                }
                Some(st) if st.is_blocked() => {
                    return self.set_due_if(endpoint, seq, now_ms, DeliveryState::is_blocked)
                }
                // Due, sending, or a head whose attempt is yet to be recorded.
                _ => return Ok(false),
            }
        }
    }

    /// The delivery after `after` in a lane, if it is blocked: leased at once (sending until
    /// `lease_until_ms`) for the shard whose head `after` just settled, so that a lane drains
    /// at the receiver's pace rather than one delivery per due scan. Returns its seq, the
    /// attempts it has made and what queued it.
    pub fn fifo_take_next(
        &self,
        endpoint: u64,
        lane: u64,
        after: u64,
        lease_until_ms: u64,
        now_ms: u64,
    ) -> Result<Option<(u64, u32, Trigger)>> {
        let start = entry(endpoint, lane, after.saturating_add(1));
        let end = entry(endpoint, lane, u64::MAX);
        let Some((k, _)) = self.fifo.range(start..=end).next().transpose()? else {
            return Ok(None);
        };
        let seq = read_be(&k, 16);
        let dk = key(&[&be(endpoint), &be(seq)]);
        let taken = (&self.deliveries, &self.due, &self.pending).transaction(
            |(deliveries, due, pending)| {
                let Some(v) = deliveries.get(&dk)? else {
                    return Ok(None);
                };
                let mut st: DeliveryState = decode_value(&v, &|| format!("delivery {seq}"))
                    .map_err(ConflictableTransactionError::Abort)?;
                if !st.is_blocked() {
                    return Ok(None);
                }
                st.status = DeliveryStatus::Sending;
                st.next_at_ms = lease_until_ms;
                st.updated_ms = now_ms;
                let value = encode_value(&st).map_err(ConflictableTransactionError::Abort)?;
                apply_delivery((deliveries, due, pending), (endpoint, seq), &st, &value)?;
                Ok(Some((seq, st.attempts, st.trigger)))
            },
        )?;
        Ok(taken)
    }

    /// Frees every lane of `endpoint` (it is no longer ordered, or was deleted): each blocked
    /// delivery is made due at `now_ms` and every entry goes. Returns how many were blocked.
    pub fn fifo_release(&self, endpoint: u64, now_ms: u64) -> Result<usize> {
        let mut released = 0;
        for kv in self.fifo.scan_prefix(be(endpoint)) {
            let (k, _) = kv?;
            let seq = read_be(&k, 16);
            if self.set_due_if(endpoint, seq, now_ms, DeliveryState::is_blocked)? {
                released += 1;
            }
            self.fifo.remove(k)?;
        }
        Ok(released)
    }

    /// Forgets every lane entry of `endpoint` (its open deliveries were settled).
    pub fn fifo_forget(&self, endpoint: u64) -> Result<()> {
        for kv in self.fifo.scan_prefix(be(endpoint)) {
            self.fifo.remove(kv?.0)?;
        }
        Ok(())
    }

    /// Puts every lane right after a crash: entries of settled deliveries go, and a lane
    /// whose head is blocked (its predecessor settled, the crash came before the next was
    /// made due) has it made due at `now_ms`. Returns how many heads were made due.
    pub fn fifo_repair(&self, now_ms: u64) -> Result<usize> {
        let mut promoted = 0;
        let mut last_lane: Option<(u64, u64)> = None;
        for kv in self.fifo.iter() {
            let (k, _) = kv?;
            let lane = (read_be(&k, 0), read_be(&k, 8));
            if last_lane == Some(lane) {
                continue;
            }
            last_lane = Some(lane);
            if self.fifo_promote(lane.0, lane.1, now_ms)? {
                promoted += 1;
            }
        }
        Ok(promoted)
    }

    /// The heads of `endpoint`'s lanes that wait in the index, at most `limit`, and whether
    /// there may be more (the scan reads at most 10,000 entries).
    pub fn fifo_heads(&self, endpoint: u64, limit: usize) -> Result<(Vec<FifoHead>, bool)> {
        let mut heads: Vec<FifoHead> = Vec::new();
        for (n, kv) in self.fifo.scan_prefix(be(endpoint)).enumerate() {
            if n == HEADS_SCAN_MAX {
                return Ok((heads, true));
            }
            let (k, _) = kv?;
            let (lane, seq) = (read_be(&k, 8), read_be(&k, 16));
            if let Some(h) = heads.last_mut().filter(|h| h.lane == lane) {
                h.behind += 1;
                continue;
            }
            if heads.len() == limit {
                return Ok((heads, true));
            }
            heads.push(FifoHead {
                lane,
                seq,
                state: self.delivery_raw(endpoint, seq)?,
                behind: 0,
            });
        }
        Ok((heads, false))
    }
}
