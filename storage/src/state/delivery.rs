//! Delivery state: the delivery index, the due index, the pending floor and attempts.
//!
//! A delivery `(endpoint, seq)` is in `deliveries` once it has state (a first attempt handed
//! over straight from fan-out has none until its outcome is written, and one that succeeds
//! has its state in a run of `settled_at_once` instead, until a later attempt). While it is open
//! (pending, or sending under a lease) it also has exactly one entry in `due` (keyed by when it
//! is next due, or when its lease runs out) and one in `pending` (keyed by seq, so that the
//! lowest open seq, below which the log may be retired, is the first key).
//! [`State::set_delivery`] keeps the three in step in one transaction.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use sled::{
    transaction::{ConflictableTransactionError, TransactionalTree},
    Transactional,
};

use super::{
    be, get, key, page, read_be, AttemptRecord, DeliveryState, DeliveryStatus, OutcomeRecord, Page,
    State,
};
use crate::{
    codec::{decode_value, encode_value},
    error::{Error, Result},
};

pub(super) type Trees<'a> = (
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
);

/// Writes one delivery state and moves its index entries (only those that change), inside a
/// transaction over (deliveries, due, pending). The previous state is read
/// in the same transaction, so concurrent writers cannot leave an index entry behind.
/// Returns how the number of open deliveries changed (-1, 0 or 1).
pub(super) fn apply_delivery(
    (deliveries, due, pending): Trees<'_>,
    (ep, seq): (u64, u64),
    st: &DeliveryState,
    value: &[u8],
) -> Result<i64, ConflictableTransactionError<Error>> {
    let k = key(&[&be(ep), &be(seq)]);
    let old: Option<DeliveryState> = match deliveries.get(&k)? {
        Some(v) => Some(
            decode_value(&v, &|| format!("delivery at {}", super::hex(&k)))
                .map_err(ConflictableTransactionError::Abort)?,
        ),
        None => None,
    };
    let was_open = old.as_ref().filter(|o| o.status.is_open());
    let old_due = was_open.map(|o| o.next_at_ms);
    let new_due = st.status.is_open().then_some(st.next_at_ms);
    if old_due != new_due {
        if let Some(at) = old_due {
            due.remove(key(&[&be(at), &be(ep), &be(seq)]))?;
        }
        if let Some(at) = new_due {
            due.insert(key(&[&be(at), &be(ep), &be(seq)]), &[])?;
        }
    }
    let delta = match (was_open.is_some(), st.status.is_open()) {
        (false, true) => {
            pending.insert(key(&[&be(seq), &be(ep)]), &[])?;
            1
        }
        (true, false) => {
            pending.remove(key(&[&be(seq), &be(ep)]))?;
            -1
        }
        _ => 0,
    };
    deliveries.insert(k, value)?;
    Ok(delta)
}

/// How far apart the first and last message of one run in `settled_at_once` may be
/// (exclusive), which bounds the keys a lookup by message visits.
const RUN_SPAN: u64 = 1024;

/// Splits first attempts that succeeded into runs for `settled_at_once`: in message order,
/// each spanning less than `RUN_SPAN` messages.
fn settled_runs(mut quick: Vec<&OutcomeRecord>) -> Vec<Vec<&OutcomeRecord>> {
    quick.sort_unstable_by_key(|o| (o.attempt.msg_seq, o.attempt.key));
    let mut runs: Vec<Vec<&OutcomeRecord>> = Vec::new();
    for o in quick {
        match runs.last_mut() {
            Some(run) if o.attempt.msg_seq - run[0].attempt.msg_seq < RUN_SPAN => run.push(o),
            _ => runs.push(vec![o]),
        }
    }
    runs
}

/// A due entry: which delivery, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub at_ms: u64,
    pub endpoint: u64,
    pub seq: u64,
}

impl State {
    /// Writes the state of delivery `(endpoint, seq)`, moving its due and pending entries.
    pub fn set_delivery(&self, endpoint: u64, seq: u64, st: &DeliveryState) -> Result<()> {
        self.set_deliveries(&[(endpoint, seq, st.clone())])
    }

    /// [`State::set_delivery`] for many deliveries in one transaction.
    pub fn set_deliveries(&self, batch: &[(u64, u64, DeliveryState)]) -> Result<()> {
        let mut encoded = Vec::with_capacity(batch.len());
        for (ep, seq, st) in batch {
            encoded.push((*ep, *seq, st, encode_value(st)?));
        }
        let delta = (&self.deliveries, &self.due, &self.pending).transaction(
            |(deliveries, due, pending)| {
                let mut delta = 0;
                for (ep, seq, st, value) in &encoded {
                    delta += apply_delivery((deliveries, due, pending), (*ep, *seq), st, value)?;
                }
                Ok(delta)
            },
        )?;
        self.open_deliveries.fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    /// Records finished attempts and the delivery states they lead to (a shard batches its
    /// outcomes so that many deliveries share one write).
    ///
    /// The endpoint index goes first: one entry per endpoint for the whole call, listing its
    /// attempts (calls come from one recorder thread, and an endpoint's attempts from one
    /// shard in order, so entries never overlap). Reads skip an entry whose attempt is not
    /// there (a crash part way).
    ///
    /// A first attempt that succeeds (the usual case: handed to the shard straight from
    /// fan-out, it has no state and no index entry to move) is not written on its own: the
    /// batch's successes go into a few runs in `settled_at_once`, one insert each, which hold
    /// both the attempt and the delivery state. A crash before the run is written leaves no
    /// state, and the delivery is fanned out and sent again (at least once). The others go in
    /// one transaction that writes the attempt and moves the due and pending entries.
    ///
    /// Heads of ordered endpoints' lanes (`fifo_lane`) keep their lane entry while open; once
    /// settled, it goes and the lane's next delivery is made due (after the transaction, so a
    /// crash between the two leaves a blocked head: [`State::fifo_repair`] frees it at start).
    pub fn record_outcomes(&self, outcomes: &[OutcomeRecord]) -> Result<()> {
        self.record_attempts(outcomes)?;
        for o in outcomes {
            let Some(lane) = o.fifo_lane else { continue };
            let (ep, seq) = (o.attempt.endpoint_key, o.attempt.msg_seq);
            if o.next.status.is_open() {
                self.fifo_hold(ep, lane, seq)?;
            } else {
                self.fifo_settled(ep, lane, seq, o.next.updated_ms)?;
            }
        }
        Ok(())
    }

    fn record_attempts(&self, outcomes: &[OutcomeRecord]) -> Result<()> {
        let mut by_endpoint: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
        for o in outcomes {
            let a = &o.attempt;
            by_endpoint
                .entry(a.endpoint_key)
                .or_default()
                .push((a.key, a.msg_seq));
        }
        for (ep, mut list) in by_endpoint {
            list.sort_unstable();
            let first = list[0].0;
            self.endpoint_attempts
                .insert(key(&[&be(ep), &be(first)]), encode_value(&list)?)?;
        }
        let (quick, moving): (Vec<&OutcomeRecord>, Vec<&OutcomeRecord>) =
            outcomes.iter().partition(|o| {
                o.first_write && o.next.status == DeliveryStatus::Success && o.fifo_lane.is_none()
            });
        for run in settled_runs(quick) {
            let first = run[0].attempt.msg_seq;
            let last = run[run.len() - 1].attempt.msg_seq;
            let entries: Vec<(&AttemptRecord, &DeliveryState)> =
                run.iter().map(|o| (&o.attempt, &o.next)).collect();
            let mut value = be(first).to_vec();
            value.extend(encode_value(&entries)?);
            self.at_once
                .insert(key(&[&be(last), &be(run[0].attempt.key)]), value)?;
        }
        if moving.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(moving.len());
        for o in moving {
            encoded.push((
                &o.attempt,
                encode_value(&o.attempt)?,
                &o.next,
                encode_value(&o.next)?,
            ));
        }
        let delta = (
            &self.msg_attempts,
            &self.deliveries,
            &self.due,
            &self.pending,
        )
            .transaction(|(msg_attempts, deliveries, due, pending)| {
                let mut delta = 0;
                for (a, a_value, st, st_value) in &encoded {
                    msg_attempts.insert(key(&[&be(a.msg_seq), &be(a.key)]), a_value.clone())?;
                    delta += apply_delivery(
                        (deliveries, due, pending),
                        (a.endpoint_key, a.msg_seq),
                        st,
                        st_value,
                    )?;
                }
                Ok(delta)
            })?;
        self.open_deliveries.fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    /// Forgets the `eventId`s, attempts, expunge marks and settled delivery states of messages
    /// below `floor` (their log records are gone), until `deadline`. Returns whether anything is
    /// left to prune.
    /// Open deliveries are kept (they hold the retention floor up, so there should be none).
    pub fn prune_below(&self, floor: u64, deadline: std::time::Instant) -> Result<bool> {
        if self.prune_event_ids_below(floor, deadline)? {
            return Ok(true);
        }
        let mut n = 0u32;
        let mut out_of_time = || {
            n = n.wrapping_add(1);
            n % 256 == 0 && std::time::Instant::now() >= deadline
        };
        for tree in [&self.msg_attempts, &self.at_once, &self.expunged] {
            for kv in tree.range(..key(&[&be(floor)])) {
                if out_of_time() {
                    return Ok(true);
                }
                tree.remove(kv?.0)?;
            }
        }
        // Delivery states and the endpoint index are keyed by endpoint first: visit each
        // endpoint's range below the floor.
        for tree in [&self.deliveries, &self.endpoint_attempts] {
            let mut ep = 0u64;
            while let Some(kv) = tree.range(key(&[&be(ep)])..).next() {
                ep = read_be(&kv?.0, 0);
                for kv in tree.range(key(&[&be(ep)])..key(&[&be(ep), &be(u64::MAX)])) {
                    if out_of_time() {
                        return Ok(true);
                    }
                    let (k, v) = kv?;
                    if !self.prunable(tree, &k, &v, floor)? {
                        break;
                    }
                    tree.remove(k)?;
                }
                let Some(next) = ep.checked_add(1) else { break };
                ep = next;
            }
        }
        Ok(false)
    }

    /// Whether an entry of `deliveries` or `endpoint_attempts` is wholly below `floor` and
    /// settled. Entries are in seq (or attempt) order per endpoint: the first that is not
    /// ends that endpoint's pruning.
    fn prunable(&self, tree: &sled::Tree, k: &[u8], v: &[u8], floor: u64) -> Result<bool> {
        let what = || format!("entry at {}", super::hex(k));
        if std::ptr::eq(tree, &self.deliveries) {
            let st: DeliveryState = decode_value(v, &what)?;
            Ok(read_be(k, 8) < floor && !st.status.is_open())
        } else {
            let list: Vec<(u64, u64)> = decode_value(v, &what)?;
            Ok(list.iter().all(|&(_, seq)| seq < floor))
        }
    }

    /// Settles every open delivery of `endpoint` as failed (it was disabled; they can be
    /// recovered later). Returns how many. Scans the endpoint's deliveries: run it off the
    /// shard threads.
    pub fn fail_open_deliveries(&self, endpoint: u64, now_ms: u64) -> Result<usize> {
        let mut from = 0;
        let mut failed = 0;
        loop {
            let page = self.endpoint_deliveries(endpoint, from, 1024)?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            let open: Vec<_> = page
                .into_iter()
                .filter(|(_, st)| st.status.is_open())
                .map(|(seq, st)| {
                    let st = DeliveryState {
                        status: super::DeliveryStatus::Fail,
                        updated_ms: now_ms,
                        trigger: super::Trigger::Scheduled,
                        ..st
                    };
                    (endpoint, seq, st)
                })
                .collect();
            failed += open.len();
            self.set_deliveries(&open)?;
            from = last + 1;
        }
        self.fifo_forget(endpoint)?;
        Ok(failed)
    }

    /// Removes a due entry whose delivery is no longer open (left by a racing write).
    pub fn remove_stale_due(&self, due: Due) -> Result<()> {
        self.due
            .remove(key(&[&be(due.at_ms), &be(due.endpoint), &be(due.seq)]))?;
        Ok(())
    }

    /// The state of delivery `(endpoint, seq)`.
    pub fn delivery(&self, endpoint: u64, seq: u64) -> Result<Option<DeliveryState>> {
        let st = get(
            &self.deliveries,
            &key(&[&be(endpoint), &be(seq)]),
            "delivery",
        )?;
        match st {
            Some(st) => Ok(Some(st)),
            None => Ok(self
                .at_once(seq)?
                .into_iter()
                .find(|(a, _)| a.endpoint_key == endpoint)
                .map(|(_, st)| st)),
        }
    }

    /// The first attempts of message `seq` that succeeded and were recorded in a run of
    /// `settled_at_once`, with the delivery states they left.
    fn at_once(&self, seq: u64) -> Result<Vec<(AttemptRecord, DeliveryState)>> {
        let mut out = Vec::new();
        // A run holding `seq` starts at or before it and ends less than RUN_SPAN after.
        let end = key(&[&be(seq.saturating_add(RUN_SPAN))]);
        for kv in self.at_once.range(key(&[&be(seq)])..end) {
            let (k, v) = kv?;
            if v.len() < 8 || read_be(&v, 0) > seq {
                continue;
            }
            let run: Vec<(AttemptRecord, DeliveryState)> =
                decode_value(&v[8..], &|| format!("run at {}", super::hex(&k)))?;
            out.extend(run.into_iter().filter(|(a, _)| a.msg_seq == seq));
        }
        Ok(out)
    }

    /// Pending deliveries due at or before `now_ms`, earliest first, at most `limit`.
    pub fn due_before(&self, now_ms: u64, limit: usize) -> Result<Vec<Due>> {
        let mut out = Vec::new();
        for kv in self.due.range(..key(&[&be(now_ms.saturating_add(1))])) {
            if out.len() == limit {
                break;
            }
            let (k, _) = kv?;
            out.push(Due {
                at_ms: read_be(&k, 0),
                endpoint: read_be(&k, 8),
                seq: read_be(&k, 16),
            });
        }
        Ok(out)
    }

    /// When the earliest pending delivery is due (Unix ms), if any is.
    pub fn next_due_ms(&self) -> Result<Option<u64>> {
        Ok(self.due.first()?.map(|(k, _)| read_be(&k, 0)))
    }

    /// The lowest seq with a pending delivery.
    pub fn min_pending_seq(&self) -> Result<Option<u64>> {
        Ok(self.pending.first()?.map(|(k, _)| read_be(&k, 0)))
    }

    /// Number of pending deliveries.
    pub fn pending_count(&self) -> usize {
        self.open_deliveries.load(Ordering::Relaxed).max(0) as usize
    }

    /// Which of `endpoints` a message has deliveries for, with their states.
    pub fn message_deliveries(
        &self,
        seq: u64,
        endpoints: impl IntoIterator<Item = u64>,
    ) -> Result<Vec<(u64, DeliveryState)>> {
        let at_once = self.at_once(seq)?;
        let mut out = Vec::new();
        for ep in endpoints {
            let st = get(&self.deliveries, &key(&[&be(ep), &be(seq)]), "delivery")?.or_else(|| {
                at_once
                    .iter()
                    .find(|(a, _)| a.endpoint_key == ep)
                    .map(|(_, st)| st.clone())
            });
            if let Some(st) = st {
                out.push((ep, st));
            }
        }
        Ok(out)
    }

    /// An endpoint's deliveries in seq order from `from_seq`, at most `limit`.
    pub fn endpoint_deliveries(
        &self,
        endpoint: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, DeliveryState)>> {
        let start = key(&[&be(endpoint), &be(from_seq)]);
        let end = key(&[&be(endpoint), &be(u64::MAX)]);
        let mut out = Vec::new();
        for kv in self.deliveries.range(start..=end).take(limit) {
            let (k, v) = kv?;
            let st = crate::codec::decode_value(&v, &|| format!("delivery at {}", super::hex(&k)))?;
            out.push((read_be(&k, 8), st));
        }
        Ok(out)
    }

    /// An endpoint's deliveries of the messages in `seqs`, counted by status (indexed by
    /// `DeliveryStatus as usize`), over at most `max` of them.
    ///
    /// Deliveries whose first attempt succeeded have no state of their own (their run in
    /// `settled_at_once` holds it): they are the messages the endpoint's attempt index names
    /// that have no state, and count as successes.
    pub fn endpoint_status_counts(
        &self,
        endpoint: u64,
        seqs: std::ops::Range<u64>,
        max: usize,
    ) -> Result<[u64; 4]> {
        let mut counts = [0u64; 4];
        let mut with_state = std::collections::HashSet::new();
        for (seq, st) in self.endpoint_deliveries(endpoint, seqs.start, max)? {
            if seq >= seqs.end {
                break;
            }
            counts[st.status as usize] += 1;
            with_state.insert(seq);
        }
        let mut at_once = std::collections::HashSet::new();
        let range = key(&[&be(endpoint)])..key(&[&be(endpoint), &be(u64::MAX)]);
        'entries: for kv in self.endpoint_attempts.range(range) {
            let (k, v) = kv?;
            let list: Vec<(u64, u64)> =
                decode_value(&v, &|| format!("endpoint attempts at {}", super::hex(&k)))?;
            for (_, seq) in list {
                if with_state.len() + at_once.len() >= max {
                    break 'entries;
                }
                if seqs.contains(&seq) && !with_state.contains(&seq) {
                    at_once.insert(seq);
                }
            }
        }
        counts[DeliveryStatus::Success as usize] += at_once.len() as u64;
        Ok(counts)
    }

    /// Replaces the response body kept for attempt `k` of message `seq` with `with` (the API's
    /// expunge). `false` if there is no such attempt. An attempt kept in a run of
    /// `settled_at_once` is rewritten in its run, which is swapped only if nothing changed it
    /// meanwhile (retention may remove it: then nothing is written back).
    pub fn replace_attempt_response(&self, seq: u64, k: u64, with: &str) -> Result<bool> {
        let direct = key(&[&be(seq), &be(k)]);
        if let Some(mut a) = get::<AttemptRecord>(&self.msg_attempts, &direct, "attempt")? {
            a.response = with.to_owned();
            self.msg_attempts.insert(direct, encode_value(&a)?)?;
            return Ok(true);
        }
        // A run holding `seq` starts at or before it and ends less than RUN_SPAN after.
        let end = key(&[&be(seq.saturating_add(RUN_SPAN))]);
        for kv in self.at_once.range(key(&[&be(seq)])..end) {
            let (run_key, v) = kv?;
            if v.len() < 8 || read_be(&v, 0) > seq {
                continue;
            }
            let what = || format!("run at {}", super::hex(&run_key));
            let mut run: Vec<(AttemptRecord, DeliveryState)> = decode_value(&v[8..], &what)?;
            let Some(entry) = run.iter_mut().find(|(a, _)| a.msg_seq == seq && a.key == k) else {
                continue;
            };
            entry.0.response = with.to_owned();
            let mut value = v[..8].to_vec();
            value.extend(encode_value(&run)?);
            let swapped = self
                .at_once
                .compare_and_swap(&run_key, Some(&v), Some(value))?;
            return Ok(swapped.is_ok());
        }
        Ok(false)
    }

    /// Attempt `k` of message `seq`.
    pub fn attempt(&self, seq: u64, k: u64) -> Result<Option<AttemptRecord>> {
        match get(&self.msg_attempts, &key(&[&be(seq), &be(k)]), "attempt")? {
            Some(a) => Ok(Some(a)),
            None => Ok(self
                .at_once(seq)?
                .into_iter()
                .map(|(a, _)| a)
                .find(|a| a.key == k)),
        }
    }

    /// A message's attempts, newest first, strictly before attempt key `before`.
    pub fn attempts_for_message(
        &self,
        seq: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page<AttemptRecord>> {
        let before = before.unwrap_or(u64::MAX);
        let start = key(&[&be(seq), &be(0)]);
        let end = key(&[&be(seq), &be(before)]);
        let mut p = page(self.msg_attempts.range(start..end).rev(), limit, "attempt")?;
        // A delivery's first attempt is older than its others, but not than the message's
        // other deliveries' attempts: merge by key.
        p.items.extend(
            self.at_once(seq)?
                .into_iter()
                .map(|(a, _)| a)
                .filter(|a| a.key < before),
        );
        p.items.sort_unstable_by_key(|a| std::cmp::Reverse(a.key));
        if p.items.len() > limit {
            p.items.truncate(limit);
            p.done = false;
        }
        p.last_key = p.items.last().map(|a: &AttemptRecord| be(a.key).to_vec());
        Ok(p)
    }

    /// An endpoint's attempts, newest first, strictly before attempt key `before`.
    pub fn attempts_for_endpoint(
        &self,
        endpoint: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page<AttemptRecord>> {
        let before = before.unwrap_or(u64::MAX);
        let start = key(&[&be(endpoint), &be(0)]);
        let end = key(&[&be(endpoint), &be(before)]);
        let mut items = Vec::new();
        let mut done = true;
        'entries: for kv in self.endpoint_attempts.range(start..end).rev() {
            let (k, v) = kv?;
            let list: Vec<(u64, u64)> =
                decode_value(&v, &|| format!("endpoint attempts at {}", super::hex(&k)))?;
            for &(attempt, seq) in list.iter().rev().filter(|(a, _)| *a < before) {
                if items.len() == limit {
                    done = false;
                    break 'entries;
                }
                // Missing only after a crash part way through recording it.
                if let Some(a) = self.attempt(seq, attempt)? {
                    items.push(a);
                }
            }
        }
        Ok(Page {
            last_key: items.last().map(|a: &AttemptRecord| be(a.key).to_vec()),
            items,
            done,
        })
    }
}
