//! How many requests one shard has in flight to one destination (scheme, host, port) at once:
//! `delivery.in_flight_per_host_max`, a counting gate with a first-come, first-served queue.
//!
//! Why: the engine caps attempts per endpoint and per shard, but thousands of endpoints often
//! live on one receiver (one customer's server, one SaaS ingest host). Without a cap per
//! destination, a shard would open one connection per attempt to that host, and the keep-alive
//! pool (which keeps few idle connections per host) would close most of them after their
//! answer: a connect per delivery, ports stuck in `TIME_WAIT`, and a receiver flooded with
//! handshakes. With the cap, attempts to a busy host wait their turn here and reuse the
//! connections (and pipelines) of those before them.
//!
//! The gate is shard-local (`RefCell`, never borrowed across an `.await`). A turn is handed
//! from the holder that finishes straight to the oldest waiter, so a waiter cannot be passed
//! by a newcomer. A waiter that gives up (its attempt's deadline, or its future dropped) hands
//! on a turn it was given but never used. A destination with nothing in flight and nobody
//! waiting has no entry: the map holds at most as many hosts as the shard has attempts.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use futures_channel::oneshot;
use monoio::time::{timeout_at, Instant};

/// The per-destination gate of one shard.
pub struct HostGate<K> {
    cap: usize,
    hosts: RefCell<HashMap<K, Host>>,
}

#[derive(Default)]
struct Host {
    in_flight: usize,
    /// Waiters, oldest first; each is sent its turn.
    waiting: VecDeque<oneshot::Sender<()>>,
}

/// A turn to send to one destination; handed on when dropped.
#[must_use = "the turn is given back when this is dropped"]
pub struct Turn<'a, K: Hash + Eq + Clone> {
    gate: &'a HostGate<K>,
    key: K,
}

/// A waiter that gives up before taking its turn passes on any turn it was sent.
struct Waiter<'a, K: Hash + Eq + Clone> {
    gate: &'a HostGate<K>,
    key: &'a K,
    rx: oneshot::Receiver<()>,
    /// The turn was received and is now held by a [`Turn`].
    taken: bool,
}

impl<K: Hash + Eq + Clone> HostGate<K> {
    /// A gate letting `cap` (at least 1) requests through per destination.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            hosts: RefCell::default(),
        }
    }

    /// Requests in flight to `key`, and requests waiting for it.
    pub fn load(&self, key: &K) -> (usize, usize) {
        self.hosts.borrow().get(key).map_or((0, 0), |h| {
            let waiting = h.waiting.iter().filter(|tx| !tx.is_canceled()).count();
            (h.in_flight, waiting)
        })
    }

    /// Destinations with something in flight or waiting.
    #[cfg(test)]
    fn hosts(&self) -> usize {
        self.hosts.borrow().len()
    }

    /// A turn for `key`: at once when fewer than the cap are in flight, else after those
    /// waiting before. `None` when `deadline` passes first.
    pub async fn enter(&self, key: &K, deadline: Instant) -> Option<Turn<'_, K>> {
        let rx = {
            let mut hosts = self.hosts.borrow_mut();
            let host = hosts.entry(key.clone()).or_default();
            if host.in_flight < self.cap {
                host.in_flight += 1;
                return Some(self.turn(key));
            }
            if host.waiting.len() >= self.cap {
                // Waiters that gave up leave their sender behind until a turn passes them;
                // drop them before the queue grows past what is live.
                host.waiting.retain(|tx| !tx.is_canceled());
            }
            let (tx, rx) = oneshot::channel();
            host.waiting.push_back(tx);
            rx
        };
        let mut waiter = Waiter {
            gate: self,
            key,
            rx,
            taken: false,
        };
        match timeout_at(deadline, &mut waiter.rx).await {
            Ok(Ok(())) => {
                waiter.taken = true;
                Some(self.turn(key))
            }
            // The sender cannot be dropped unsent while the gate lives; either way, no turn.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    fn turn(&self, key: &K) -> Turn<'_, K> {
        Turn {
            gate: self,
            key: key.clone(),
        }
    }

    /// Hands a finished turn at `key` to the oldest live waiter, or frees it.
    fn leave(&self, key: &K) {
        let mut hosts = self.hosts.borrow_mut();
        let Some(host) = hosts.get_mut(key) else {
            debug_assert!(false, "a turn left a host with no entry");
            return;
        };
        while let Some(tx) = host.waiting.pop_front() {
            if tx.send(()).is_ok() {
                return; // in_flight unchanged: the turn moved to the waiter
            }
        }
        host.in_flight -= 1;
        if host.in_flight == 0 {
            hosts.remove(key);
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        self.gate.leave(&self.key);
    }
}

impl<K: Hash + Eq + Clone> Drop for Waiter<'_, K> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        // Closing first makes any later send fail (the turn then goes to the next waiter);
        // a turn sent before the close is taken here and handed on.
        self.rx.close();
        if let Ok(Some(())) = self.rx.try_recv() {
            self.gate.leave(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn turns_beyond_the_cap_wait_in_order_and_are_handed_on() {
        runtime().block_on(async {
            let gate = Rc::new(HostGate::new(2));
            let a = gate.enter(&"h", far()).await.expect("first");
            let b = gate.enter(&"h", far()).await.expect("second");
            // Another destination is not held up by this one.
            let other = gate.enter(&"other", far()).await.expect("other host");
            assert_eq!(gate.load(&"h"), (2, 0));

            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..3 {
                let (gate, order) = (gate.clone(), order.clone());
                tasks.push(monoio::spawn(async move {
                    let turn = gate.enter(&"h", far()).await.expect("a turn");
                    order.borrow_mut().push(i);
                    // Hold it until the next yield so that turns really are passed on.
                    monoio::time::sleep(Duration::from_millis(1)).await;
                    drop(turn);
                }));
                monoio::time::sleep(Duration::from_millis(1)).await; // queue in order
            }
            assert_eq!(gate.load(&"h"), (2, 3));
            assert!(order.borrow().is_empty(), "nobody passed the cap");

            drop(a);
            monoio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(
                order.borrow().first(),
                Some(&0),
                "the oldest waiter goes first"
            );
            drop(b);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![0, 1, 2]);
            drop(other);
            assert_eq!(gate.hosts(), 0, "idle destinations leave no entry");
        });
    }

    #[test]
    fn a_waiter_past_its_deadline_gets_no_turn_and_leaves_none_stuck() {
        runtime().block_on(async {
            let gate = HostGate::new(1);
            let held = gate.enter(&"h", far()).await.expect("first");
            let soon = Instant::now() + Duration::from_millis(5);
            assert!(gate.enter(&"h", soon).await.is_none(), "timed out");
            drop(held);
            assert_eq!(gate.load(&"h"), (0, 0));
            assert_eq!(gate.hosts(), 0);
            let again = gate.enter(&"h", far()).await;
            assert!(again.is_some(), "the cap is free again");
        });
    }

    /// Polls `fut` once, so that it queues, and gives it back.
    async fn queue<F: std::future::Future + Unpin>(mut fut: F) -> F {
        std::future::poll_fn(|cx| {
            let polled = std::pin::Pin::new(&mut fut).poll(cx);
            assert!(polled.is_pending(), "the waiter queued");
            std::task::Poll::Ready(())
        })
        .await;
        fut
    }

    #[test]
    fn a_turn_sent_to_a_waiter_that_is_dropped_is_handed_on() {
        runtime().block_on(async {
            let gate = HostGate::new(1);
            let held = gate.enter(&"h", far()).await.expect("first");
            let first = queue(Box::pin(gate.enter(&"h", far()))).await;
            let second = queue(Box::pin(gate.enter(&"h", far()))).await;
            assert_eq!(gate.load(&"h"), (1, 2));
            // The turn is sent to the first waiter; its future is dropped before it runs
            // again, so the turn must pass to the second rather than be lost.
            drop(held);
            assert_eq!(gate.load(&"h"), (1, 1));
            drop(first);
            let turn = second.await.expect("the second waiter got the turn");
            assert_eq!(gate.load(&"h"), (1, 0));
            drop(turn);
            assert_eq!(gate.hosts(), 0);
        });
    }
}
