//! Group commit: durable watermarks and the ways to wait for them without blocking.
//!
//! A [`Watermark`] is a monotonically increasing `u64` ("everything up to here is durable")
//! published by the flusher thread after each flush. Three ways to wait for it:
//!
//! - [`Watermark::wait`]: a `Send` future that registers its own waker with the watermark. One
//!   cross-thread wake per waiter: simple, right for tests and low rates.
//! - [`Watermark::subscribe`] + [`LocalWaiters`]: each executor thread (a shard) holds one
//!   subscription, woken once per flush, and wakes its own waiters locally. One cross-thread
//!   wake per shard per flush instead of one per request.
//! - [`Watermark::get`]: poll the value.
//!
//! A flush that fails is recorded as a failed range, so that the waiters in it get
//! [`Error::FlushFailed`] (or [`Error::DiskFull`] when the filesystem was full) instead of a
//! false "durable". Adjacent failed ranges of the same kind merge (a storm of failed flushes
//! with no success between them is one range); at most [`FAILURES_KEPT`] separate ranges are
//! kept. Forgetting one never turns it into a success: every sequence number at or below the
//! highest forgotten range that is not in a kept one is answered [`Error::FlushFailed`] ("not
//! known to be durable"). A waiter polled very late may so hear of a failure for a record
//! that did reach the disk (its client retries: a duplicate, which at-least-once allows);
//! it never hears "durable" for one that did not.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Waker},
};

use crate::error::{Error, Result};

/// How many separate failed flush ranges a watermark remembers (see the module doc).
pub const FAILURES_KEPT: usize = 4096;

/// The failed ranges of a watermark.
#[derive(Debug, Default)]
struct Failures {
    /// `from -> (to, disk_full)`, disjoint; adjacent ones of the same kind merged.
    ranges: BTreeMap<u64, (u64, bool)>,
    /// The end of the highest range forgotten, if any: nothing at or below it that is not
    /// in `ranges` is known to be durable.
    forgotten_upto: Option<u64>,
}

impl Failures {
    fn record(&mut self, from: u64, to: u64, disk_full: bool) {
        let (mut from, mut to) = (from, to);
        // The ranges that overlap or touch `from..=to`, highest first (they are disjoint, so
        // the first that ends before `from - 1` ends the search).
        let near: Vec<(u64, u64, bool)> = self
            .ranges
            .range(..=to.saturating_add(1))
            .rev()
            .take_while(|(_, &(hi, _))| hi.saturating_add(1) >= from)
            .map(|(&lo, &(hi, full))| (lo, hi, full))
            .collect();
        for (lo, hi, full) in near {
            self.ranges.remove(&lo);
            if full == disk_full {
                // Same kind: merged.
                from = from.min(lo);
                to = to.max(hi);
                continue;
            }
            // The other kind keeps what lies outside the new range, so that the ranges stay
            // disjoint: a lookup sees only the range starting last at or below a sequence,
            // and an overlapped one would hide the end of the new one (reading "durable").
            if lo < from {
                self.ranges.insert(lo, (hi.min(from - 1), full));
            }
            if hi > to {
                self.ranges.insert(to + 1, (hi, full));
            }
        }
        self.ranges.insert(from, (to, disk_full));
        while self.ranges.len() > FAILURES_KEPT {
            if let Some((_, (hi, _))) = self.ranges.pop_first() {
                self.forgotten_upto = self.forgotten_upto.max(Some(hi));
            }
        }
    }

    /// The error for `seq` if its flush failed, or might have (forgotten).
    fn of(&self, seq: u64) -> Option<Error> {
        if let Some((_, &(hi, disk_full))) = self.ranges.range(..=seq).next_back() {
            if seq <= hi {
                return Some(if disk_full {
                    Error::DiskFull {
                        context: format!("writing record {seq}"),
                    }
                } else {
                    Error::FlushFailed { seq }
                });
            }
        }
        self.forgotten_upto
            .is_some_and(|upto| seq <= upto)
            .then_some(Error::FlushFailed { seq })
    }
}

/// A durable watermark with its waiters.
#[derive(Default)]
pub struct Watermark {
    value: AtomicU64,
    waiters: Mutex<BTreeMap<(u64, u64), Waker>>,
    next_waiter: AtomicU64,
    subscribers: Mutex<Vec<Arc<Slot>>>,
    /// Failed ranges, each with whether the filesystem was full.
    failures: Mutex<Failures>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Watermark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watermark")
            .field("value", &self.get())
            .finish()
    }
}

impl Watermark {
    /// A watermark starting at `value`.
    pub fn new(value: u64) -> Self {
        let w = Self::default();
        w.value.store(value, Ordering::SeqCst);
        w
    }

    /// The current value: everything `<=` it is settled (durable, or failed).
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    /// Whether `seq` is settled, and how. `None` while it is not yet settled.
    pub fn outcome(&self, seq: u64) -> Option<Result<()>> {
        if self.closed.load(Ordering::Acquire) && self.get() < seq {
            return Some(Err(Error::Closed));
        }
        if self.get() < seq {
            return None;
        }
        match lock(&self.failures).of(seq) {
            Some(e) => Some(Err(e)),
            None => Some(Ok(())),
        }
    }

    /// Publishes a new value (flusher only) and wakes everyone waiting at or below it.
    pub fn advance(&self, to: u64) {
        self.value.fetch_max(to, Ordering::AcqRel);
        self.wake_settled();
    }

    /// Records that the flush covering `from..=to` failed, then advances past it so its waiters
    /// learn that.
    pub fn fail(&self, from: u64, to: u64) {
        self.record_failure(from, to);
        self.advance(to);
    }

    /// Records that `from..=to` will never be durable, without advancing: its waiters learn it
    /// when the watermark passes it (the records before it may not be durable yet).
    pub fn record_failure(&self, from: u64, to: u64) {
        self.record_failure_of(from, to, false);
    }

    /// [`Watermark::record_failure`], saying whether `error` was a full disk (its waiters then
    /// get [`Error::DiskFull`], which tells a client to come back later).
    pub fn record_failure_because(&self, from: u64, to: u64, error: &Error) {
        self.record_failure_of(from, to, error.is_disk_full());
    }

    fn record_failure_of(&self, from: u64, to: u64, disk_full: bool) {
        if from <= to {
            lock(&self.failures).record(from, to, disk_full);
        }
    }

    /// Wakes every waiter, settled or not, and makes unsettled waits fail with `Closed`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let all = std::mem::take(&mut *lock(&self.waiters));
        all.into_values().for_each(Waker::wake);
        self.notify_subscribers();
    }

    /// Signals every subscriber. Wakes outside the lock: a wake may drop the woken task (its
    /// executor is gone), and with it a `Subscription` whose drop takes this lock.
    fn notify_subscribers(&self) {
        let subs: Vec<Arc<Slot>> = lock(&self.subscribers).clone();
        subs.iter().for_each(|s| s.notify());
    }

    fn wake_settled(&self) {
        let settled = {
            let mut waiters = lock(&self.waiters);
            let above = waiters.split_off(&(self.get().saturating_add(1), 0));
            std::mem::replace(&mut *waiters, above)
        };
        settled.into_values().for_each(Waker::wake);
        self.notify_subscribers();
    }

    /// A future that resolves when `seq` is settled.
    pub fn wait(self: &Arc<Self>, seq: u64) -> Wait {
        Wait {
            mark: self.clone(),
            seq,
            key: None,
        }
    }

    /// A subscription woken once per advance: for an executor that fans out locally.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let slot = Arc::new(Slot::default());
        lock(&self.subscribers).push(slot.clone());
        Subscription {
            mark: self.clone(),
            slot,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Future returned by [`Watermark::wait`].
pub struct Wait {
    mark: Arc<Watermark>,
    seq: u64,
    key: Option<(u64, u64)>,
}

impl Future for Wait {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(done) = self.mark.outcome(self.seq) {
            return Poll::Ready(done);
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = (
                    self.seq,
                    self.mark.next_waiter.fetch_add(1, Ordering::Relaxed),
                );
                self.key = Some(k);
                k
            }
        };
        lock(&self.mark.waiters).insert(key, cx.waker().clone());
        // Re-check after registering: the flusher may have advanced in between.
        match self.mark.outcome(self.seq) {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}

impl Wait {
    /// Blocks the calling thread until the wait resolves. For threads that are not executors
    /// (tools, tests); never call it on a shard thread.
    pub fn blocking(self) -> Result<()> {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut this = std::pin::pin!(self);
        loop {
            if let Poll::Ready(v) = this.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            lock(&self.mark.waiters).remove(&k);
        }
    }
}

#[derive(Default)]
struct Slot {
    signaled: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn notify(&self) {
        self.signaled.store(true, Ordering::Release);
        let waker = lock(&self.waker).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// One executor's subscription to a watermark; see [`LocalWaiters`].
pub struct Subscription {
    mark: Arc<Watermark>,
    slot: Arc<Slot>,
}

impl Subscription {
    /// Resolves once the watermark has advanced (or closed) since the last call.
    pub fn changed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.slot.signaled.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            *lock(&self.slot.waker) = Some(cx.waker().clone());
            if self.slot.signaled.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The watermark this subscribes to.
    pub fn watermark(&self) -> &Arc<Watermark> {
        &self.mark
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.mark.subscribers).retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

/// Waiters on one executor thread, woken by one [`Subscription`]. Not `Send`: it lives on the
/// thread that owns it. Run [`LocalWaiters::pump`] as a task on that thread.
#[derive(Clone)]
pub struct LocalWaiters {
    inner: Rc<LocalInner>,
}

struct LocalInner {
    sub: Subscription,
    waiters: RefCell<BTreeMap<(u64, u64), Waker>>,
    next: std::cell::Cell<u64>,
}

impl LocalWaiters {
    /// Local waiters fed by `sub`.
    pub fn new(sub: Subscription) -> Self {
        Self {
            inner: Rc::new(LocalInner {
                sub,
                waiters: RefCell::default(),
                next: std::cell::Cell::new(0),
            }),
        }
    }

    /// Resolves when `seq` is settled on the underlying watermark.
    pub fn wait(&self, seq: u64) -> LocalWait {
        LocalWait {
            inner: self.inner.clone(),
            seq,
            key: None,
        }
    }

    /// Runs forever: on each advance, wakes the local waiters that are now settled. Returns when
    /// the watermark is closed.
    pub async fn pump(self) {
        loop {
            self.inner.sub.changed().await;
            let mark = self.inner.sub.watermark();
            let limit = if mark.closed.load(Ordering::Acquire) {
                u64::MAX
            } else {
                mark.get()
            };
            let settled = {
                let mut waiters = self.inner.waiters.borrow_mut();
                let above = waiters.split_off(&(limit.saturating_add(1), 0));
                std::mem::replace(&mut *waiters, above)
            };
            settled.into_values().for_each(Waker::wake);
            if limit == u64::MAX {
                return;
            }
        }
    }
}

/// Future returned by [`LocalWaiters::wait`].
pub struct LocalWait {
    inner: Rc<LocalInner>,
    seq: u64,
    key: Option<(u64, u64)>,
}

impl Future for LocalWait {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(done) = self.inner.sub.watermark().outcome(self.seq) {
            return Poll::Ready(done);
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let n = self.inner.next.get();
                self.inner.next.set(n + 1);
                self.key = Some((self.seq, n));
                (self.seq, n)
            }
        };
        self.inner
            .waiters
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for LocalWait {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.inner.waiters.borrow_mut().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future + Unpin>(f: &mut F, flag: &Arc<Flag>) -> Poll<F::Output> {
        let waker = Waker::from(flag.clone());
        Pin::new(f).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn waiter_is_woken_exactly_when_its_seq_is_reached() {
        let mark = Arc::new(Watermark::new(0));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut w = mark.wait(5);
        assert!(poll_once(&mut w, &flag).is_pending());
        mark.advance(4);
        assert!(!flag.0.load(Ordering::SeqCst));
        mark.advance(5);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(matches!(poll_once(&mut w, &flag), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_failed_flush_is_never_durable_however_many_failures_follow() {
        let mark = Watermark::new(0);
        // A storm: success and failure alternate, so no two failed ranges merge.
        let mut seq = 0;
        let mut failed = Vec::new();
        for _ in 0..(3 * FAILURES_KEPT) {
            seq += 1;
            mark.advance(seq);
            seq += 1;
            mark.fail(seq, seq);
            failed.push(seq);
        }
        for &f in &failed {
            assert!(
                matches!(mark.outcome(f), Some(Err(Error::FlushFailed { .. }))),
                "{f}"
            );
        }
        // Successes still in the window of kept ranges stay successes.
        assert!(matches!(mark.outcome(seq - 1), Some(Ok(()))));
        assert!(lock(&mark.failures).ranges.len() <= FAILURES_KEPT);
    }

    #[test]
    fn adjacent_failures_merge_into_one_range() {
        let mark = Watermark::new(0);
        mark.advance(10);
        for lo in (11..1_000_000).step_by(10) {
            mark.fail(lo, lo + 9);
        }
        let failures = lock(&mark.failures);
        assert_eq!(failures.ranges.len(), 1);
        assert_eq!(failures.forgotten_upto, None);
        drop(failures);
        assert!(matches!(mark.outcome(10), Some(Ok(()))));
        assert!(matches!(
            mark.outcome(500_000),
            Some(Err(Error::FlushFailed { .. }))
        ));
        // A full disk is kept apart: its waiters are told to come back later.
        let mark = Watermark::new(0);
        mark.record_failure_of(1, 5, false);
        mark.record_failure_of(6, 9, true);
        assert!(matches!(
            mark.outcome(5),
            None | Some(Err(Error::FlushFailed { .. }))
        ));
        mark.advance(9);
        assert!(matches!(mark.outcome(7), Some(Err(Error::DiskFull { .. }))));
        assert!(matches!(
            mark.outcome(2),
            Some(Err(Error::FlushFailed { .. }))
        ));
    }

    /// Found by `tests/powerloss.rs` (seed 635): a write that found the disk full inside a
    /// flush that then failed left two overlapping ranges, and the records after the first
    /// read durable.
    #[test]
    fn failures_of_both_kinds_that_overlap_are_all_failures() {
        let mark = Watermark::new(0);
        mark.record_failure_of(20, 20, true);
        mark.record_failure_of(30, 40, true);
        mark.record_failure_of(16, 26, false);
        mark.record_failure_of(35, 50, false);
        mark.advance(60);
        for seq in (16..=26).chain(30..=50) {
            assert!(matches!(mark.outcome(seq), Some(Err(_))), "{seq}");
        }
        for seq in (1..16).chain(27..30).chain(51..=60) {
            assert!(matches!(mark.outcome(seq), Some(Ok(()))), "{seq}");
        }
        assert!(matches!(mark.outcome(32), Some(Err(e)) if e.is_disk_full()));
        let failures = lock(&mark.failures);
        let ranges: Vec<_> = failures
            .ranges
            .iter()
            .map(|(&a, &(b, f))| (a, b, f))
            .collect();
        assert_eq!(
            ranges,
            vec![(16, 26, false), (30, 34, true), (35, 50, false)],
            "disjoint"
        );
    }

    #[test]
    fn failed_range_is_reported_to_its_waiters_only() {
        let mark = Arc::new(Watermark::new(0));
        mark.advance(3);
        mark.fail(4, 6);
        assert!(matches!(mark.outcome(3), Some(Ok(()))));
        assert!(matches!(
            mark.outcome(5),
            Some(Err(Error::FlushFailed { seq: 5 }))
        ));
        assert!(mark.outcome(7).is_none());
        mark.advance(7);
        assert!(matches!(mark.outcome(7), Some(Ok(()))));
    }

    #[test]
    fn a_write_that_found_the_disk_full_fails_as_disk_full() {
        let mark = Arc::new(Watermark::new(0));
        let full = Error::DiskFull {
            context: "appending".into(),
        };
        mark.record_failure_because(1, 2, &full);
        mark.record_failure_because(3, 3, &Error::Closed);
        mark.advance(3);
        assert!(matches!(mark.outcome(2), Some(Err(e)) if e.is_disk_full()));
        assert!(matches!(
            mark.outcome(3),
            Some(Err(Error::FlushFailed { seq: 3 }))
        ));
    }

    #[test]
    fn dropped_waiter_unregisters_and_close_fails_the_rest() {
        let mark = Arc::new(Watermark::new(0));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut w = mark.wait(9);
        assert!(poll_once(&mut w, &flag).is_pending());
        drop(w);
        assert!(lock(&mark.waiters).is_empty());
        let mut w = mark.wait(9);
        assert!(poll_once(&mut w, &flag).is_pending());
        mark.close();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(matches!(
            poll_once(&mut w, &flag),
            Poll::Ready(Err(Error::Closed))
        ));
    }

    /// A wake that drops the woken task's subscription (its executor has gone away) must not
    /// deadlock the flusher that is waking it.
    #[test]
    fn wake_that_drops_a_subscription_does_not_deadlock() {
        struct DropOnWake(Mutex<Option<Subscription>>);
        impl Wake for DropOnWake {
            fn wake(self: Arc<Self>) {
                drop(self.0.lock().unwrap().take());
            }
        }
        let mark = Arc::new(Watermark::new(0));
        let holder = Arc::new(DropOnWake(Mutex::new(Some(mark.subscribe()))));
        let waker = Waker::from(holder.clone());
        {
            let guard = holder.0.lock().unwrap();
            let sub = guard.as_ref().unwrap();
            let mut changed = Box::pin(sub.changed());
            assert!(changed
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        drop(waker);
        mark.advance(1);
        assert!(holder.0.lock().unwrap().is_none());
        assert!(lock(&mark.subscribers).is_empty());
    }

    #[test]
    fn subscription_signals_once_per_advance() {
        let mark = Arc::new(Watermark::new(0));
        let sub = mark.subscribe();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut changed = Box::pin(sub.changed());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(changed.as_mut().poll(&mut cx).is_pending());
        mark.advance(1);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(changed.as_mut().poll(&mut cx).is_ready());
        drop(changed);
        drop(sub);
        assert!(lock(&mark.subscribers).is_empty());
    }
}
