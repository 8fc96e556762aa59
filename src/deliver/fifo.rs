//! Ordered (FIFO) endpoints on their owner shard: one delivery at a time per lane.
//!
//! A message's `orderingKey` picks its lane (messages without one share a lane). An ordered
//! endpoint sends a lane's deliveries one at a time, in seq order (the order of their 202s):
//! the next starts when the one before succeeded or failed for good.
//!
//! The fast path stays in memory: while a lane's head is in flight, later deliveries of the
//! lane that come fresh from fan-out are *held* here (still unsettled, so fan-out rebuilds
//! them after a crash) and the next starts when the head is done. When the head must wait
//! for a retry, or a delivery cannot be held (a lease, or the shard holds
//! `queue_capacity` already), the lane moves to the index (`storage::state::fifo`): the
//! head keeps an entry, the rest are *parked* there, blocked, and the recorder makes the next
//! one due when the head settles. Both paths keep one rule: a delivery starts only if no
//! delivery of its lane with a lower seq is open, as far as this shard or the index knows.

use std::collections::{BTreeMap, HashMap};

use storage::state::State;

use super::dispatch::Task;

/// The lane of a message: FNV-1a of its ordering key, stable across releases (lanes are
/// kept in the index); 0 for messages without one. Two keys that share a lane are still
/// delivered in order, only not in parallel.
pub fn lane(key: Option<&str>) -> u64 {
    let Some(key) = key else { return 0 };
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A lane this shard is sending from.
#[derive(Debug)]
struct Lane {
    /// The delivery allowed to go: in flight, queued to start, or waiting for its retry.
    head: u64,
    in_flight: bool,
    /// Fresh deliveries waiting for the head, in seq order.
    held: BTreeMap<u64, Task>,
    /// Deliveries of the lane wait in the index: later ones are parked there too.
    indexed: bool,
}

/// What becomes of a delivery that arrives at its ordered endpoint's shard.
#[derive(Debug)]
pub enum Arrival {
    /// It may start.
    Go(Task),
    /// It waits here for the lane's head.
    Held,
    /// It waits in the index; the fresh ones among these seqs are to be reported settled.
    Parked(Vec<u64>),
    /// A second lease of the delivery in flight: nothing to do.
    Dropped,
}

/// What follows the end of a lane head's attempt.
#[derive(Debug, Default)]
pub struct Done {
    /// Deliveries that may start now.
    pub next: Vec<Task>,
    /// The lane, if the head's outcome must keep or free its index entry (the recorder
    /// makes the lane's next delivery due when it settles).
    pub outcome_lane: Option<u64>,
    /// Fresh deliveries parked in the index: to be reported settled.
    pub parked: Vec<u64>,
}

/// The lanes of one ordered endpoint on its shard.
#[derive(Debug, Default)]
pub struct Lanes {
    active: HashMap<u64, Lane>,
    /// Whether the index may hold lanes of the endpoint (`None`: not asked yet).
    indexed: Option<bool>,
    held: usize,
}

impl Lanes {
    /// Nothing in flight or held: the endpoint's slot may be forgotten.
    pub fn is_idle(&self) -> bool {
        self.active.is_empty()
    }

    /// Deliveries held in memory.
    pub fn held(&self) -> usize {
        self.held
    }

    fn may_be_indexed(&mut self, state: &State, endpoint: u64) -> storage::Result<bool> {
        if let Some(known) = self.indexed {
            return Ok(known);
        }
        let any = state.fifo_any(endpoint)?;
        self.indexed = Some(any);
        Ok(any)
    }

    /// Decides for `task` (its `lane` set), holding at most `held_max` deliveries in memory
    /// on the shard (`shard_held` counts them) and a quarter of that per lane (a lane whose
    /// head is slow must not take the shard's whole queue).
    pub fn arrive(
        &mut self,
        state: &State,
        task: Task,
        (shard_held, held_max): (usize, usize),
        now_ms: u64,
    ) -> storage::Result<Arrival> {
        let lane = task.lane.unwrap_or(0);
        let endpoint = task.endpoint;
        if let Some(l) = self.active.get_mut(&lane) {
            if l.head == task.seq {
                if l.in_flight {
                    return Ok(Arrival::Dropped);
                }
                l.in_flight = true;
                return Ok(Arrival::Go(task));
            }
            if task.fresh && !l.indexed && shard_held < held_max && l.held.len() < held_max / 4 {
                l.held.insert(task.seq, task);
                self.held += 1;
                return Ok(Arrival::Held);
            }
            return self.park_behind(state, lane, task, now_ms);
        }
        let first = match self.may_be_indexed(state, endpoint)? {
            true => state.fifo_first(endpoint, lane)?,
            false => None,
        };
        match first {
            Some((head, _)) if head < task.seq => self.park_behind(state, lane, task, now_ms),
            first => {
                // Nothing of the lane before it is open (or the index holds only later ones:
                // a head due for a retry is blocked again, behind this older delivery).
                if let Some((head, false)) = first.filter(|&(head, _)| head != task.seq) {
                    state.fifo_demote(endpoint, head)?;
                }
                self.active.insert(
                    lane,
                    Lane {
                        head: task.seq,
                        in_flight: true,
                        held: BTreeMap::new(),
                        indexed: first.is_some(),
                    },
                );
                Ok(Arrival::Go(task))
            }
        }
    }

    /// Parks `task` in the index behind its lane's head, with whatever the lane held (the
    /// lane's waiting deliveries are all in memory or all in the index). On an index error
    /// a fresh delivery is held instead (still unsettled: safe) and a leased one dropped
    /// (its lease runs out and brings it back).
    fn park_behind(
        &mut self,
        state: &State,
        lane: u64,
        task: Task,
        now_ms: u64,
    ) -> storage::Result<Arrival> {
        let mut tasks = vec![task];
        if let Some(l) = self.active.get_mut(&lane) {
            self.held -= l.held.len();
            tasks.extend(std::mem::take(&mut l.held).into_values());
        }
        match self.park(state, lane, &tasks, now_ms) {
            Ok(parked) => {
                if let Some(l) = self.active.get_mut(&lane) {
                    l.indexed = true;
                }
                Ok(Arrival::Parked(parked))
            }
            Err(e) => {
                tracing::error!(error = %e, endpoint = tasks[0].endpoint, "parking ordered deliveries in the index failed; fresh ones are held in memory");
                let l = self.active.get_mut(&lane);
                match l {
                    Some(l) => {
                        for t in tasks.into_iter().filter(|t| t.fresh) {
                            l.held.insert(t.seq, t);
                            self.held += 1;
                        }
                        Ok(Arrival::Held)
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Writes `tasks` to the index, blocked in `lane`; the fresh ones' seqs.
    fn park(
        &mut self,
        state: &State,
        lane: u64,
        tasks: &[Task],
        now_ms: u64,
    ) -> storage::Result<Vec<u64>> {
        let Some(first) = tasks.first() else {
            return Ok(Vec::new());
        };
        let entries: Vec<_> = tasks
            .iter()
            .map(|t| (t.seq, t.attempts, t.trigger))
            .collect();
        state.fifo_park(first.endpoint, lane, &entries, now_ms)?;
        self.indexed = Some(true);
        Ok(tasks.iter().filter(|t| t.fresh).map(|t| t.seq).collect())
    }

    /// The attempt of `task` ended: `retry` if its delivery stays open (a retry is due
    /// later), `ordered` if its endpoint is still ordered (if not, the lane lets go of
    /// everything it held). A delivery taken from the index to follow it is leased until
    /// `lease_until_ms`.
    pub fn done(
        &mut self,
        state: &State,
        task: &Task,
        (retry, ordered): (bool, bool),
        (now_ms, lease_until_ms): (u64, u64),
    ) -> Done {
        let lane = task.lane.unwrap_or(0);
        let mut done = Done::default();
        let Some(l) = self.active.get_mut(&lane).filter(|l| l.head == task.seq) else {
            // Not this lane's head (the endpoint became ordered while it was queued).
            done.outcome_lane = (ordered && (retry || self.indexed == Some(true))).then_some(lane);
            return done;
        };
        l.in_flight = false;
        if !ordered {
            self.held -= l.held.len();
            done.next = std::mem::take(&mut l.held).into_values().collect();
            self.active.remove(&lane);
            return done;
        }
        if retry {
            // The head waits for its retry in the index, and the lane with it.
            l.indexed = true;
            self.indexed = Some(true);
            if let Err(e) = state.fifo_hold(task.endpoint, lane, task.seq) {
                tracing::error!(error = %e, "keeping an ordered lane's head in the index failed; its outcome's record keeps it");
            }
            done.outcome_lane = Some(lane);
            self.park_held(state, lane, &mut done, now_ms);
            return done;
        }
        if l.indexed {
            // The recorder frees the head's entry (and would make the next one due); the next
            // is leased here and now, so that the lane drains at the receiver's pace.
            done.outcome_lane = Some(lane);
            let next = state.fifo_take_next(task.endpoint, lane, task.seq, lease_until_ms, now_ms);
            match next {
                Ok(Some((seq, attempts, trigger))) if l.held.is_empty() => {
                    l.head = seq;
                    l.in_flight = true;
                    done.next.push(Task {
                        endpoint: task.endpoint,
                        seq,
                        attempts,
                        trigger,
                        fresh: false,
                        msg: None,
                        lane: Some(lane),
                    });
                }
                Ok(_) => self.park_held(state, lane, &mut done, now_ms),
                Err(e) => {
                    tracing::warn!(error = %e, "leasing an ordered lane's next delivery failed; the recorder makes it due");
                    self.park_held(state, lane, &mut done, now_ms);
                }
            }
            return done;
        }
        match l.held.pop_first() {
            Some((seq, next)) => {
                self.held -= 1;
                l.head = seq;
                l.in_flight = true;
                done.next.push(next);
            }
            None => {
                self.active.remove(&lane);
            }
        }
        done
    }

    /// Moves what `lane` holds to the index (its head is not in flight); the lane is
    /// forgotten here once nothing of it is held.
    fn park_held(&mut self, state: &State, lane: u64, done: &mut Done, now_ms: u64) {
        let Some(l) = self.active.get_mut(&lane) else {
            return;
        };
        let held: Vec<Task> = std::mem::take(&mut l.held).into_values().collect();
        self.held -= held.len();
        match self.park(state, lane, &held, now_ms) {
            Ok(parked) => {
                done.parked = parked;
                self.active.remove(&lane);
            }
            Err(e) => {
                tracing::error!(error = %e, "parking ordered deliveries in the index failed; they stay held in memory");
                if let Some(l) = self.active.get_mut(&lane) {
                    self.held += held.len();
                    l.held.extend(held.into_iter().map(|t| (t.seq, t)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_stable_and_spread() {
        assert_eq!(lane(None), 0);
        // FNV-1a 64 of "a", as published.
        assert_eq!(lane(Some("a")), 0xaf63_dc4c_8601_ec8c);
        let lanes: std::collections::HashSet<u64> =
            (0..1000).map(|i| lane(Some(&format!("key-{i}")))).collect();
        assert_eq!(lanes.len(), 1000);
    }
}
