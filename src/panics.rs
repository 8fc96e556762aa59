//! Panics contained: a bug that panics inside one task must cost that task, not a shard.
//!
//! - [`install_hook`] replaces the default panic hook: each panic is logged once, through
//!   `tracing`, with its thread and location, and counted ([`count`], shown by `/metrics` as
//!   `hookd_panics_total` and by `hookd status`). The last one is kept ([`last`]).
//! - [`CatchUnwind`] runs a future and turns a panic in any of its polls into an `Err`, so the
//!   task that panicked ends and its runtime (the shard) goes on. Delivery attempts and HTTP
//!   connections run inside one. What the task held is dropped as the panic unwinds, and its
//!   owner decides what the failure means (an attempt is recorded as failed, "internal
//!   error"; a connection is closed).
//!
//! A panic that still escapes a shard's runtime ends that thread: `shard::run_shard` marks the
//! shard dead in `systemd::Liveness`, `/api/v1/health` answers 503 and the watchdog stops
//! pinging.

use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
    task::{Context, Poll},
};

/// Panics since the process started.
static PANICS: AtomicU64 = AtomicU64::new(0);
/// The last panic: where and what, for `hookd status`.
static LAST: Mutex<Option<String>> = Mutex::new(None);
/// The longest panic message kept and logged.
const MESSAGE_BYTES_MAX: usize = 512;

/// Installs the hook that logs and counts panics. Call once, early in `main`.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "unknown".to_owned());
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let message = truncate(message, MESSAGE_BYTES_MAX);
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(
            thread,
            %location,
            message,
            "panic (a bug in hookd): the task that panicked was stopped"
        );
        *LAST.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(format!("{message} (thread {thread}, at {location})"));
    }));
}

/// Panics since the process started.
pub fn count() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// The last panic's message, thread and location, if any.
pub fn last() -> Option<String> {
    LAST.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A task stopped by a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked;

/// A future whose panics become [`Panicked`]. After it has panicked it is not polled again.
pub struct CatchUnwind<F> {
    inner: F,
    panicked: bool,
}

impl<F: Future> CatchUnwind<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            panicked: false,
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self` nor
        // exposed unpinned, `CatchUnwind` has no `Drop` of its own, and it is `Unpin` only
        // when `F` is. `panicked` is a plain flag, never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.panicked {
            return Poll::Ready(Err(Panicked));
        }
        // SAFETY: see above; `this.inner` stays where the pinned `self` put it.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        // A future that panicked is never polled again, so no invariant it broke is seen
        // through it; shared state it touched is its owner's to judge (see the module doc).
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(_) => {
                this.panicked = true;
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(f)
    }

    #[test]
    fn a_panic_after_an_await_ends_the_task_not_the_runtime() {
        let out = block_on(async {
            let task = monoio::spawn(CatchUnwind::new(async {
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                let v: Vec<u8> = Vec::new();
                v[usize::from(v.is_empty())] // out of bounds
            }));
            let ok = monoio::spawn(CatchUnwind::new(async { 7 }));
            (task.await, ok.await)
        });
        assert_eq!(out, (Err(Panicked), Ok(7)));
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
