//! HTTP/1.1 pipelining to plain-HTTP endpoints: several requests outstanding on one
//! connection, written together and answered in order.
//!
//! A busy endpoint costs a write and a read per request on a connection of its own; on a
//! [`Pipe`] the requests that pile up while one write is under way go out in the next write,
//! and one read often brings several responses. That saves system calls and wake-ups on both
//! sides (`delivery.pipeline_depth`; see the README for the measured effect).
//!
//! **How.** The connection is split: the task that finds no write under way writes
//! everything queued (and keeps writing while more is queued); a reader task per pipe reads
//! the responses and hands each to the oldest waiting request. A request waits at most until
//! its own deadline.
//!
//! **Failures never lose a request.** When the connection ends, every request whose response
//! had not begun is answered [`Answer::Unanswered`]; the client sends it again on a
//! connection of its own (the server may have seen it: at least once, as everywhere in
//! delivery). A response that breaks part way, or does not come in time, fails its own
//! request only. A pipe that failed with requests behind the one being answered, or whose
//! server ends the first pipelined exchange, is not used again, and the client stops
//! pipelining to that server for [`PIPELINING_OFF_FOR`]. TLS endpoints are not pipelined.
//!
//! **Slow servers are not pipelined.** Servers answer a connection's requests one after the
//! other, so a request queued behind a slow answer waits for it, and may time out where it
//! would not have on a connection of its own. A request joins a pipe only while the pipe's
//! oldest request is younger than [`JOIN_BEHIND_MAX`], and a server that takes longer than
//! [`SLOW_ANSWER`] over one answer is sent one request per connection for [`SLOW_OFF_FOR`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use monoio::io::{AsyncWriteRentExt, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};

use super::conn::{Conn, Exchanged, Stream};
use super::{oneshot, ClientError};

/// How long a server that broke a pipeline is sent one request per connection.
pub const PIPELINING_OFF_FOR: Duration = Duration::from_secs(600);
/// A request joins a pipe only while the oldest request on it was sent less than this ago:
/// it does not queue behind a response that is already slow.
pub const JOIN_BEHIND_MAX: Duration = Duration::from_millis(20);
/// A response that took longer than this (from when the server could start on it) makes
/// the server slow: requests behind one of its answers would wait for it, so it is sent one
/// request per connection for [`SLOW_OFF_FOR`].
pub const SLOW_ANSWER: Duration = Duration::from_millis(100);
/// See [`SLOW_ANSWER`].
pub const SLOW_OFF_FOR: Duration = Duration::from_secs(60);

/// What became of a request sent on a pipe.
pub(super) enum Answer {
    Response(Exchanged),
    Failed(ClientError),
    /// No byte of its response arrived before the connection ended: send it again.
    Unanswered,
}

struct Waiter {
    /// When it was queued.
    sent: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Answer>,
}

/// One pipelined connection.
pub(super) struct Pipe {
    write: RefCell<Option<OwnedWriteHalf<TcpStream>>>,
    /// Requests queued and not yet written.
    outbox: RefCell<Vec<u8>>,
    writing: Cell<bool>,
    /// Requests written or queued whose responses are still to come, oldest first.
    waiting: RefCell<VecDeque<Waiter>>,
    reader: RefCell<Option<Waker>>,
    closed: Cell<bool>,
    /// How long not to pipeline to this server, if it showed it does not take pipelined
    /// requests or answers slowly (see the module doc).
    pipelining_off: Cell<Option<Duration>>,
    fd: std::os::fd::RawFd,
}

impl Pipe {
    /// Starts pipelining on `conn`, a fresh plain-TCP connection: spawns its reader, which
    /// keeps `keep_max` body bytes per response and closes the pipe after `idle_max` with
    /// nothing outstanding.
    pub(super) fn start(conn: Conn, keep_max: usize, idle_max: Duration) -> Option<Rc<Self>> {
        let Conn {
            stream: Stream::Plain(tcp),
            fd,
            rbuf,
            pos,
        } = conn
        else {
            return None;
        };
        let (read, write) = tcp.into_split();
        let pipe = Rc::new(Self {
            write: RefCell::new(Some(write)),
            outbox: RefCell::default(),
            writing: Cell::new(false),
            waiting: RefCell::default(),
            reader: RefCell::default(),
            closed: Cell::new(false),
            pipelining_off: Cell::new(None),
            fd,
        });
        let conn = Conn {
            stream: Stream::ReadHalf(read),
            fd,
            rbuf,
            pos,
        };
        monoio::spawn(read_responses(pipe.clone(), conn, keep_max, idle_max));
        Some(pipe)
    }

    /// Requests written or queued and not yet answered.
    pub(super) fn outstanding(&self) -> usize {
        self.waiting.borrow().len()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Whether a request sent now may join this pipe: there is room, and its oldest request
    /// was sent less than [`JOIN_BEHIND_MAX`] ago.
    pub(super) fn has_room(&self, depth: usize, now: Instant) -> bool {
        let waiting = self.waiting.borrow();
        waiting.len() < depth
            && waiting
                .front()
                .is_none_or(|w| now.saturating_duration_since(w.sent) < JOIN_BEHIND_MAX)
    }

    /// How long not to pipeline to this pipe's server, when it showed it should not be.
    pub(super) fn pipelining_off_for(&self) -> Option<Duration> {
        self.pipelining_off.get()
    }

    fn stop_pipelining_for(&self, d: Duration) {
        self.pipelining_off
            .set(Some(self.pipelining_off.get().map_or(d, |o| o.max(d))));
    }

    /// Whether an idle pipe's socket still looks open (see `Conn::looks_open`).
    pub(super) fn looks_open(&self) -> bool {
        super::conn::socket_looks_open(self.fd)
    }

    /// Queues `request`, writes it (with whatever else is queued) unless a write is under
    /// way, and waits for its answer until `deadline`.
    pub(super) async fn send(self: &Rc<Self>, request: &[u8], deadline: Instant) -> Answer {
        if self.closed.get() {
            return Answer::Unanswered;
        }
        let (reply, answer) = oneshot::channel();
        self.waiting.borrow_mut().push_back(Waiter {
            sent: Instant::now(),
            deadline,
            reply,
        });
        self.outbox.borrow_mut().extend_from_slice(request);
        if let Some(reader) = self.reader.borrow_mut().take() {
            reader.wake();
        }
        if !self.writing.get() {
            self.writing.set(true);
            self.write_queued(deadline).await;
            self.writing.set(false);
        }
        match timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Answer::Unanswered,
            Err(_) => {
                // The reader is still waiting for this response, or one before it: the
                // order of what follows is lost.
                self.close();
                Answer::Failed(ClientError::Timeout)
            }
        }
    }

    /// Writes what is queued until nothing is, or the pipe closes.
    async fn write_queued(&self, deadline: Instant) {
        loop {
            let bytes = std::mem::take(&mut *self.outbox.borrow_mut());
            if bytes.is_empty() || self.closed.get() {
                return;
            }
            let Some(mut write) = self.write.borrow_mut().take() else {
                return;
            };
            match timeout_at(deadline, write.write_all(bytes)).await {
                Ok((Ok(_), _)) if !self.closed.get() => *self.write.borrow_mut() = Some(write),
                _ => {
                    drop(write);
                    self.close();
                    return;
                }
            }
        }
    }

    /// Stops the pipe: nothing more is written, the reader answers what waits.
    pub(super) fn close(&self) {
        self.closed.set(true);
        if !self.writing.get() {
            self.write.borrow_mut().take();
        }
        if let Some(reader) = self.reader.borrow_mut().take() {
            reader.wake();
        }
    }
}

/// The reader task of a pipe: answers the waiting requests in order until the connection
/// ends, then answers the rest [`Answer::Unanswered`].
async fn read_responses(pipe: Rc<Pipe>, mut conn: Conn, keep_max: usize, idle_max: Duration) {
    let mut answered = 0u64;
    // When the previous response ended: the server could not start on the next before.
    let mut previous_end: Option<Instant> = None;
    loop {
        let next = poll_fn(|cx| {
            if pipe.closed.get() {
                return Poll::Ready(None);
            }
            match pipe.waiting.borrow().front() {
                Some(w) => Poll::Ready(Some(w.deadline)),
                None => {
                    *pipe.reader.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        let Ok(Some(deadline)) = timeout(idle_max, next).await else {
            break; // closed, or idle for too long
        };
        let front_sent = pipe.waiting.borrow().front().map(|w| w.sent);
        let could_start = match (front_sent, previous_end) {
            (Some(sent), Some(end)) => sent.max(end),
            (Some(sent), None) => sent,
            (None, _) => Instant::now(),
        };
        let mut before_response = Some(Vec::new());
        let result = conn
            .read_response(deadline, &mut before_response, keep_max)
            .await;
        let Some(waiter) = pipe.waiting.borrow_mut().pop_front() else {
            break;
        };
        let more = !pipe.waiting.borrow().is_empty();
        match result {
            Ok(exchanged) => {
                answered += 1;
                let now = Instant::now();
                previous_end = Some(now);
                if now.saturating_duration_since(could_start) > SLOW_ANSWER {
                    pipe.stop_pipelining_for(SLOW_OFF_FOR);
                }
                let keep_going = exchanged.reusable;
                // A request whose caller gave up (timed out) has nobody to answer.
                let _ = waiter.reply.send(Answer::Response(exchanged));
                if !keep_going {
                    // A server may end a connection after any response (nginx does after
                    // 1000): the rest is sent again. One that ends it after the first,
                    // with requests behind it, keeps no connection open for pipelining.
                    if more && answered == 1 {
                        pipe.stop_pipelining_for(PIPELINING_OFF_FOR);
                    }
                    break;
                }
            }
            Err(failure) => {
                if more {
                    pipe.stop_pipelining_for(PIPELINING_OFF_FOR);
                }
                let _ = waiter.reply.send(match failure.resend {
                    Some(_) => Answer::Unanswered,
                    None => Answer::Failed(failure.error),
                });
                break;
            }
        }
    }
    pipe.close();
    // Dropping the senders answers `Unanswered`.
    pipe.waiting.borrow_mut().clear();
}
