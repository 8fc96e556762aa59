//! Stopping the server: one cross-thread [`Shutdown`] signal for the whole process, and per
//! shard a [`Connections`] set through which the listener counts its connections, closes the
//! idle ones and waits for the busy ones to finish.
//!
//! The sequence, per shard, once [`Shutdown::trigger`] is called from any thread:
//! 1. the accept loop wakes (one cross-thread wake per shard), drops its listener;
//! 2. [`Connections::close_all`] marks the set closing and wakes every connection task that
//!    parked itself while waiting for a next request: those close at once;
//! 3. a connection busy with a request finishes it, answers with `connection: close` and
//!    closes (its reads and writes are bounded by the request timeouts, so this ends);
//! 4. [`Connections::drained`] resolves when the last slot is dropped, and `run_listener`
//!    returns.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A process-wide stop signal. Cheap to clone, `Send + Sync`: trigger it from a signal
/// handler thread, await it on every shard (monoio's `sync` feature makes the cross-thread
/// wake work).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers the signal and wakes every waiter. Idempotent.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(
            &mut *self
                .inner
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether [`Shutdown::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once the signal is triggered.
    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait {
            inner: self.inner.clone(),
        }
    }
}

/// The future of [`Shutdown::wait`].
#[derive(Debug)]
pub struct ShutdownWait {
    inner: Arc<ShutdownInner>,
}

impl Future for ShutdownWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.triggered.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        {
            let mut wakers = self
                .inner
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        // Checked again after registering, so a trigger in between is not missed.
        if self.inner.triggered.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The connections of one shard. Single-threaded (`Rc`), lives as long as its listener.
#[derive(Debug, Default)]
pub struct Connections {
    closing: Cell<bool>,
    /// Connections being served (each holds a [`ConnSlot`]).
    served: Cell<usize>,
    /// Connections being refused (each holds a [`RejectSlot`]).
    rejecting: Cell<usize>,
    /// The waker of each served connection that parked itself, by slot; free slots are `None`.
    parked: RefCell<Vec<Option<Waker>>>,
    /// Free indexes of `parked`.
    free: RefCell<Vec<usize>>,
    /// The task waiting in [`Connections::drained`].
    drain_waiter: RefCell<Option<Waker>>,
}

impl Connections {
    /// An empty set.
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Connections being served.
    pub fn served(&self) -> usize {
        self.served.get()
    }

    /// Connections being refused.
    pub fn rejecting(&self) -> usize {
        self.rejecting.get()
    }

    /// Whether [`Connections::close_all`] has been called.
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Counts a new served connection; the count drops with the slot.
    pub fn register(self: &Rc<Self>) -> ConnSlot {
        self.served.set(self.served.get() + 1);
        let id = match self.free.borrow_mut().pop() {
            Some(id) => id,
            None => {
                let mut parked = self.parked.borrow_mut();
                parked.push(None);
                parked.len() - 1
            }
        };
        ConnSlot {
            conns: self.clone(),
            id,
        }
    }

    /// Counts a connection being refused; the count drops with the slot.
    pub fn register_reject(self: &Rc<Self>) -> RejectSlot {
        self.rejecting.set(self.rejecting.get() + 1);
        RejectSlot {
            conns: self.clone(),
        }
    }

    /// Marks the set closing and wakes every parked connection.
    pub fn close_all(&self) {
        self.closing.set(true);
        let wakers: Vec<Waker> = self
            .parked
            .borrow_mut()
            .iter_mut()
            .flatten()
            .map(|w| w.clone())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves when no connection is served or refused any more.
    pub async fn drained(&self) {
        poll_fn(|cx| {
            if self.served.get() == 0 && self.rejecting.get() == 0 {
                return Poll::Ready(());
            }
            *self.drain_waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    fn release(&self) {
        if self.served.get() == 0 && self.rejecting.get() == 0 {
            if let Some(waker) = self.drain_waiter.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// One served connection's place in its shard's [`Connections`].
#[derive(Debug)]
pub struct ConnSlot {
    conns: Rc<Connections>,
    id: usize,
}

impl ConnSlot {
    /// A slot in a set of its own, for serving a connection outside `run_listener`.
    pub fn standalone() -> Self {
        Connections::new().register()
    }

    /// Whether the shard is shutting down: finish the current request, then close.
    pub fn is_closing(&self) -> bool {
        self.conns.closing.get()
    }

    /// Runs `fut` unless or until the shard starts shutting down (then `None`, and `fut` is
    /// dropped). For waits between requests, which a shutdown may cut short.
    pub async fn unless_closing<F: Future>(&self, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if self.is_closing() {
                return Poll::Ready(None);
            }
            self.park(cx.waker());
            fut.as_mut().poll(cx).map(Some)
        })
        .await
    }

    /// Remembers `waker` to be woken by [`Connections::close_all`].
    fn park(&self, waker: &Waker) {
        let mut parked = self.conns.parked.borrow_mut();
        if let Some(slot) = parked.get_mut(self.id) {
            match slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(slot) = self.conns.parked.borrow_mut().get_mut(self.id) {
            *slot = None;
        }
        self.conns.free.borrow_mut().push(self.id);
        self.conns.served.set(self.conns.served.get() - 1);
        self.conns.release();
    }
}

/// One refused connection's place in its shard's [`Connections`].
#[derive(Debug)]
pub struct RejectSlot {
    conns: Rc<Connections>,
}

impl Drop for RejectSlot {
    fn drop(&mut self) {
        self.conns.rejecting.set(self.conns.rejecting.get() - 1);
        self.conns.release();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag_waker() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn a_trigger_from_another_thread_wakes_the_waiter() {
        let shutdown = Shutdown::new();
        let (flag, waker) = flag_waker();
        let mut cx = Context::from_waker(&waker);
        let mut wait = pin!(shutdown.wait());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        let remote = shutdown.clone();
        std::thread::spawn(move || remote.trigger())
            .join()
            .expect("thread");
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(shutdown.is_triggered());
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn slots_are_counted_reused_and_woken_on_close() {
        let conns = Connections::new();
        let a = conns.register();
        let b = conns.register();
        let r = conns.register_reject();
        assert_eq!((conns.served(), conns.rejecting()), (2, 1));
        let (flag, waker) = flag_waker();
        a.park(&waker);
        let b_id = b.id;
        drop(b);
        assert_eq!(conns.register().id, b_id, "freed slot reused");
        conns.close_all();
        assert!(flag.0.load(Ordering::SeqCst), "parked connection woken");
        assert!(a.is_closing());

        let (drained_flag, drained_waker) = flag_waker();
        let mut cx = Context::from_waker(&drained_waker);
        let mut drained = pin!(conns.drained());
        assert!(drained.as_mut().poll(&mut cx).is_pending());
        drop(a);
        drop(r);
        assert!(drained.as_mut().poll(&mut cx).is_ready());
        assert!(drained_flag.0.load(Ordering::SeqCst));
    }
}
