//! The retry policy: a pure state machine `(state, outcome, now, rng) -> (state, action)`.
//!
//! Nothing here does I/O, reads a clock or makes up randomness: the caller passes the time of
//! the outcome as `now_ms` (Unix milliseconds from the one clock, `crate::time`) and an RNG,
//! so tests replay exactly from a seed and a simulation runs days of retries in milliseconds.
//!
//! # Rules (`api.md` §3)
//!
//! | outcome of an attempt                                  | action                       |
//! |--------------------------------------------------------|------------------------------|
//! | 2xx                                                    | [`Action::Done`]             |
//! | 410                                                    | [`Action::DisableEndpoint`]  |
//! | [`Outcome::Refused`] (SSRF guard, config)              | [`Action::Fail`], no retry   |
//! | anything else: 1xx, 3xx, 4xx, 5xx, timeout, connection | retry; [`Action::Fail`] at end |
//!
//! "At end": when the schedule is exhausted.
//!
//! A retry waits `schedule[attempts made before this one]`, jittered uniformly within
//! ±[`Policy::jitter`] (drawn in whole milliseconds). So attempt 1 is followed by
//! `schedule[0]`, and attempt `schedule.len() + 1` is the last one: its failure is
//! [`Action::Fail`]. Then, in this order:
//!
//! 1. **Floor.** After a 429 or a timeout the wait is at least [`Policy::throttle_floor`]
//!    (60 s): `base = max(jittered, floor)`. A longer schedule entry wins, as `max` says; the
//!    floor also holds when jitter would take an entry just above it below it.
//! 2. **Retry-After.** For 429, 502, 503 and 504 carrying a `Retry-After`, the wait is that
//!    value clamped into `[base, 2 × base]`: never sooner than the schedule (and floor) says,
//!    never later than twice it. Without the header the wait is `base`. A `Retry-After` on any
//!    other status is ignored.
//!
//! # State and crashes
//!
//! [`Delivery::attempts`] counts *completed* attempts of one message to one endpoint. An
//! attempt cut short by a crash never reaches [`Policy::next`], so the stored state still has
//! the old count and the attempt does not count against the schedule: the caller persists the
//! returned state with the attempt record, or not at all.
//!
//! # Endpoint health
//!
//! [`Policy::record`] tracks, per endpoint, since when it has failed without a single success;
//! after [`Policy::disable_after`] of only failures the endpoint is disabled. A disabled
//! endpoint receives nothing, and the caller marks its pending deliveries `fail` with the
//! reason (`recover` resends them once it is enabled again, starting from a fresh
//! [`EndpointHealth::default`]).

use std::fmt;
use std::time::Duration;

use rand::{Rng, RngCore};

use crate::config::DeliveryConfig;

/// Jitter on every schedule entry: ±20 %.
pub const JITTER: f64 = 0.2;
/// Least wait after a 429 or a timeout, unless the schedule says longer.
pub const THROTTLE_FLOOR: Duration = Duration::from_secs(60);
/// Longest `Retry-After` taken from a response; longer values are cut to this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(86_400);

/// How one attempt to deliver a message to an endpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered. `retry_after` is its parsed `Retry-After` header, if any
    /// (see [`parse_retry_after`]).
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No complete response within `delivery.timeout`.
    Timeout,
    /// Resolving, connecting or TLS failed, or the connection broke mid-exchange.
    Connect(String),
    /// Not sent, by policy: the SSRF guard or the config refused the address. Never retried.
    Refused(String),
    /// The attempt stopped on a bug in hookd (a panic, caught); retried like `Connect`.
    Internal(String),
}

impl Outcome {
    /// The metrics label: `"2xx"` .. `"5xx"`, `"other"` (a status outside 200..=599),
    /// `"timeout"`, `"connect"`, `"refused"` or `"internal"`.
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Status { code, .. } => match code {
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                500..=599 => "5xx",
                _ => "other",
            },
            Outcome::Timeout => "timeout",
            Outcome::Connect(_) => "connect",
            Outcome::Refused(_) => "refused",
            Outcome::Internal(_) => "internal",
        }
    }

    /// Whether the message landed: a 2xx, nothing else.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Status {
                code: 200..=299,
                ..
            }
        )
    }

    /// The `Retry-After` this outcome asks the schedule to honour (429, 502, 503, 504 only).
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Outcome::Status {
                code: 429 | 502 | 503 | 504,
                retry_after,
            } => *retry_after,
            _ => None,
        }
    }

    /// Whether [`Policy::throttle_floor`] applies to the next wait.
    fn is_floored(&self) -> bool {
        matches!(self, Outcome::Status { code: 429, .. } | Outcome::Timeout)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status { code, .. } => write!(f, "HTTP {code}"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Connect(why) => write!(f, "connection error: {why}"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
            Outcome::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

/// Retry state of one message to one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Completed attempts so far (an attempt cut short by a crash is not one).
    pub attempts: u32,
}

/// What the caller does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delivered: the message's status for this endpoint is `success`.
    Done,
    /// Attempt again at this time (Unix milliseconds).
    RetryAt { at_ms: u64 },
    /// Give up: the message's status for this endpoint is `fail`.
    Fail { reason: String },
    /// Disable the endpoint now. This delivery fails with `reason`, and so do all the
    /// endpoint's other pending deliveries.
    DisableEndpoint { reason: String },
}

/// Since when an endpoint has failed without a success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Time of the first failure after the last success (Unix ms); `None` while healthy.
    pub failing_since_ms: Option<u64>,
}

/// The retry schedule and the limits around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Wait before each retry; its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// Relative jitter on each wait, in `[0, 1)`: 0.2 is ±20 %.
    pub jitter: f64,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after: Duration,
    /// Least wait after a 429 or a timeout.
    pub throttle_floor: Duration,
}

impl Policy {
    /// The policy `[delivery]` asks for, with the fixed jitter and floor.
    pub fn from_config(config: &DeliveryConfig) -> Self {
        Self {
            schedule: config.retry_schedule.clone(),
            jitter: JITTER,
            disable_after: config.disable_after,
            throttle_floor: THROTTLE_FLOOR,
        }
    }

    /// The step after an attempt of `d` ended in `outcome` at `now_ms`. The returned state
    /// counts that attempt. Draws from `rng` only when it schedules a retry.
    pub fn next<R: RngCore + ?Sized>(
        &self,
        d: Delivery,
        outcome: &Outcome,
        now_ms: u64,
        rng: &mut R,
    ) -> (Delivery, Action) {
        let after = Delivery {
            attempts: d.attempts.saturating_add(1),
        };
        let action = match outcome {
            _ if outcome.is_success() => Action::Done,
            Outcome::Status { code: 410, .. } => Action::DisableEndpoint {
                reason: format!("endpoint answered {outcome} Gone"),
            },
            Outcome::Refused(_) => Action::Fail {
                reason: format!("{outcome}, not retried"),
            },
            _ => match self.schedule.get(d.attempts as usize) {
                Some(&wait) => Action::RetryAt {
                    at_ms: now_ms.saturating_add(self.wait_ms(wait, outcome, rng)),
                },
                None => Action::Fail {
                    reason: format!(
                        "retry schedule exhausted after {} attempts, last: {outcome}",
                        after.attempts
                    ),
                },
            },
        };
        (after, action)
    }

    /// The wait before the next attempt: the schedule entry jittered, then floored, then
    /// `Retry-After` clamped into `[base, 2 × base]` (see the module doc).
    fn wait_ms<R: RngCore + ?Sized>(&self, entry: Duration, outcome: &Outcome, rng: &mut R) -> u64 {
        let mut base_ms = self.jittered_ms(entry, rng);
        if outcome.is_floored() {
            base_ms = base_ms.max(millis(self.throttle_floor));
        }
        match outcome.retry_after() {
            Some(asked) => millis(asked).clamp(base_ms, base_ms.saturating_mul(2)),
            None => base_ms,
        }
    }

    /// `entry` × uniform(1 − jitter, 1 + jitter), in whole milliseconds.
    fn jittered_ms<R: RngCore + ?Sized>(&self, entry: Duration, rng: &mut R) -> u64 {
        assert!(
            (0.0..1.0).contains(&self.jitter),
            "jitter {} is outside [0, 1)",
            self.jitter
        );
        let entry_ms = millis(entry);
        // Truncation keeps the spread within the bound; `jitter < 1` keeps it below `entry_ms`.
        let spread_ms = (entry_ms as f64 * self.jitter) as u64;
        (entry_ms - spread_ms).saturating_add(rng.gen_range(0..=spread_ms.saturating_mul(2)))
    }

    /// Endpoint health after an attempt that did (`success`) or did not land at `now_ms`, and
    /// whether the endpoint is to be disabled now: it has failed, without a success, for at
    /// least [`Policy::disable_after`]. A success clears the record.
    pub fn record(&self, h: EndpointHealth, success: bool, now_ms: u64) -> (EndpointHealth, bool) {
        if success {
            return (EndpointHealth::default(), false);
        }
        let since_ms = h.failing_since_ms.unwrap_or(now_ms);
        let disable = now_ms.saturating_sub(since_ms) >= millis(self.disable_after);
        (
            EndpointHealth {
                failing_since_ms: Some(since_ms),
            },
            disable,
        )
    }
}

/// A `Retry-After` header value as a wait from `now_ms`: delta-seconds (`120`) or an HTTP-date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, and the obsolete RFC 850 and asctime forms that RFC 9110
/// §5.6.7 asks recipients to take, parsed by `httpdate`). A date in the past is a zero wait.
/// Waits are cut to [`RETRY_AFTER_MAX`]. `None` for anything else. Total: the value is a
/// receiver's bytes, so no input panics (the `retry_after` fuzz target checks it).
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so a parse error can only be an overflow: a very long wait.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        let at_ms = match at.duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => millis(since),
            Err(_) => 0,
        };
        Duration::from_millis(at_ms.saturating_sub(now_ms))
    };
    Some(wait.min(RETRY_AFTER_MAX))
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    const SEC: u64 = 1000;
    const MIN: u64 = 60 * SEC;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    const NOW: u64 = 1_700_000_000_000;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Exact arithmetic: no jitter, schedule 10 s, 100 s, 1000 s.
    fn exact() -> Policy {
        Policy {
            schedule: vec![secs(10), secs(100), secs(1000)],
            jitter: 0.0,
            disable_after: secs(5 * 86_400),
            throttle_floor: THROTTLE_FLOOR,
        }
    }

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    fn status_ra(code: u16, retry_after_s: u64) -> Outcome {
        Outcome::Status {
            code,
            retry_after: Some(secs(retry_after_s)),
        }
    }

    /// The action after attempt `attempts + 1` ended in `outcome` at `NOW`, and the wait it
    /// asks for, if a retry.
    fn step(p: &Policy, attempts: u32, outcome: &Outcome) -> (Action, Option<u64>) {
        let mut rng = StdRng::seed_from_u64(7);
        let (d, action) = p.next(Delivery { attempts }, outcome, NOW, &mut rng);
        assert_eq!(d.attempts, attempts + 1, "{outcome}");
        let wait = match action {
            Action::RetryAt { at_ms } => Some(at_ms - NOW),
            _ => None,
        };
        (action, wait)
    }

    #[test]
    fn every_outcome_class() {
        let p = exact();
        let retry = |ms| Some(ms);
        // (outcome, class, wait if retried; None if it ends here)
        let table: Vec<(Outcome, &str, Option<u64>)> = vec![
            (status(200), "2xx", None),
            (status(204), "2xx", None),
            (status(299), "2xx", None),
            (status(301), "3xx", retry(10 * SEC)),
            (status(307), "3xx", retry(10 * SEC)),
            (status(400), "4xx", retry(10 * SEC)),
            (status(404), "4xx", retry(10 * SEC)),
            (status(410), "4xx", None),
            (status(429), "4xx", retry(60 * SEC)),
            (status(500), "5xx", retry(10 * SEC)),
            (status(502), "5xx", retry(10 * SEC)),
            (status(503), "5xx", retry(10 * SEC)),
            (status(504), "5xx", retry(10 * SEC)),
            (status(100), "other", retry(10 * SEC)),
            (status(999), "other", retry(10 * SEC)),
            (Outcome::Timeout, "timeout", retry(60 * SEC)),
            (Outcome::Connect("reset".into()), "connect", retry(10 * SEC)),
            (
                Outcome::Refused("10.0.0.1 is private".into()),
                "refused",
                None,
            ),
        ];
        for (outcome, class, wait) in table {
            assert_eq!(outcome.class(), class, "{outcome}");
            let (action, got) = step(&p, 0, &outcome);
            assert_eq!(got, wait, "{outcome}: {action:?}");
            assert_eq!(outcome.is_success(), action == Action::Done, "{outcome}");
        }
    }

    #[test]
    fn terminal_actions_carry_their_reason() {
        let p = exact();
        assert_eq!(
            step(&p, 1, &status(410)).0,
            Action::DisableEndpoint {
                reason: "endpoint answered HTTP 410 Gone".into()
            }
        );
        // 410 disables even on the last attempt, where any other failure just fails.
        assert!(matches!(
            step(&p, 3, &status(410)).0,
            Action::DisableEndpoint { .. }
        ));
        assert_eq!(
            step(&p, 0, &Outcome::Refused("10.0.0.1 is private".into())).0,
            Action::Fail {
                reason: "refused: 10.0.0.1 is private, not retried".into()
            }
        );
        assert_eq!(
            step(&p, 3, &Outcome::Connect("reset".into())).0,
            Action::Fail {
                reason: "retry schedule exhausted after 4 attempts, last: connection error: reset"
                    .into()
            }
        );
    }

    #[test]
    fn retry_after_is_clamped_between_the_schedule_and_twice_it() {
        let p = exact();
        for code in [502, 503, 504] {
            // (Retry-After s, expected wait s) against a 10 s entry.
            for (asked, wait) in [(0, 10), (1, 10), (10, 10), (15, 15), (20, 20), (25, 20)] {
                let (_, got) = step(&p, 0, &status_ra(code, asked));
                assert_eq!(got, Some(wait * SEC), "{code} Retry-After {asked}");
            }
            // Against the third entry, 1000 s.
            let (_, got) = step(&p, 2, &status_ra(code, 1500));
            assert_eq!(got, Some(1500 * SEC), "{code}");
        }
        // Elsewhere Retry-After is ignored.
        for code in [500, 404, 301] {
            let (_, got) = step(&p, 0, &status_ra(code, 15));
            assert_eq!(got, Some(10 * SEC), "{code}");
        }
    }

    #[test]
    fn retry_after_on_429_is_clamped_around_the_floor() {
        let p = exact();
        // Entry 10 s, floored to 60 s: Retry-After lands in [60 s, 120 s].
        for (asked, wait) in [(5, 60), (90, 90), (120, 120), (200, 120)] {
            let (_, got) = step(&p, 0, &status_ra(429, asked));
            assert_eq!(got, Some(wait * SEC), "Retry-After {asked}");
        }
        // Entry 100 s, above the floor: [100 s, 200 s].
        for (asked, wait) in [(5, 100), (150, 150), (500, 200)] {
            let (_, got) = step(&p, 1, &status_ra(429, asked));
            assert_eq!(got, Some(wait * SEC), "Retry-After {asked}");
        }
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let p = exact();
        let now_ms = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        let asked = parse_retry_after("Sun, 06 Nov 1994 08:50:32 GMT", now_ms);
        assert_eq!(asked, Some(secs(55)));
        let outcome = Outcome::Status {
            code: 503,
            retry_after: asked,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let (_, action) = p.next(Delivery { attempts: 1 }, &outcome, now_ms, &mut rng);
        assert_eq!(
            action,
            Action::RetryAt {
                at_ms: now_ms + 100 * SEC
            }
        );
    }

    #[test]
    fn floor_after_429_and_timeout_unless_the_schedule_is_longer() {
        let p = exact();
        for outcome in [status(429), Outcome::Timeout] {
            assert_eq!(step(&p, 0, &outcome).1, Some(60 * SEC), "{outcome}");
            assert_eq!(step(&p, 1, &outcome).1, Some(100 * SEC), "{outcome}");
            assert_eq!(step(&p, 2, &outcome).1, Some(1000 * SEC), "{outcome}");
        }
        // Not after other throttling statuses.
        for code in [502, 503, 504] {
            assert_eq!(step(&p, 0, &status(code)).1, Some(10 * SEC), "{code}");
        }
        // With jitter, an entry of 70 s could come out as 56 s: the floor still holds.
        let p = Policy {
            schedule: vec![secs(70)],
            jitter: JITTER,
            ..exact()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let (mut min, mut max) = (u64::MAX, 0);
        for _ in 0..2_000 {
            let (_, action) = p.next(Delivery::default(), &Outcome::Timeout, NOW, &mut rng);
            let Action::RetryAt { at_ms } = action else {
                panic!("{action:?}")
            };
            min = min.min(at_ms - NOW);
            max = max.max(at_ms - NOW);
        }
        assert_eq!(min, 60 * SEC);
        assert!(max > 80 * SEC, "{max}");
    }

    #[test]
    fn jitter_stays_within_20_percent_and_spreads() {
        let p = Policy::from_config(&DeliveryConfig::default());
        let rng: &mut dyn RngCore = &mut StdRng::seed_from_u64(42);
        for (i, entry) in p.schedule.iter().enumerate() {
            let entry_ms = millis(*entry);
            let (mut min, mut max) = (u64::MAX, 0);
            for _ in 0..5_000 {
                let (_, action) = p.next(Delivery { attempts: i as u32 }, &status(500), NOW, rng);
                let Action::RetryAt { at_ms } = action else {
                    panic!("{action:?}")
                };
                let wait_ms = at_ms - NOW;
                min = min.min(wait_ms);
                max = max.max(wait_ms);
            }
            assert!(
                min * 10 >= entry_ms * 8,
                "entry {i}: {min} < 0.8 × {entry_ms}"
            );
            assert!(
                max * 10 <= entry_ms * 12,
                "entry {i}: {max} > 1.2 × {entry_ms}"
            );
            assert!(min * 10 < entry_ms * 9, "entry {i}: min {min} not spread");
            assert!(max * 10 > entry_ms * 11, "entry {i}: max {max} not spread");
        }
    }

    #[test]
    fn fails_exactly_after_the_last_schedule_entry() {
        for len in [1, 3, 7] {
            let p = Policy {
                schedule: vec![secs(1); len],
                ..exact()
            };
            let mut rng = StdRng::seed_from_u64(len as u64);
            let mut d = Delivery::default();
            let mut retries = 0;
            loop {
                let (next, action) = p.next(d, &status(503), NOW, &mut rng);
                assert_eq!(next.attempts, d.attempts + 1);
                d = next;
                match action {
                    Action::RetryAt { .. } => retries += 1,
                    Action::Fail { .. } => break,
                    other => panic!("{other:?}"),
                }
                assert!(retries <= len, "retried past the schedule");
            }
            assert_eq!(retries, len);
            assert_eq!(d.attempts as usize, len + 1);
            // A state past the end (e.g. from a shortened schedule) fails too.
            let (_, action) = p.next(Delivery { attempts: 99 }, &status(503), NOW, &mut rng);
            assert!(matches!(action, Action::Fail { .. }), "{action:?}");
        }
    }

    #[test]
    fn from_config_takes_schedule_and_disable_after() {
        let config = DeliveryConfig {
            retry_schedule: vec![secs(1), secs(2)],
            disable_after: secs(3600),
            ..DeliveryConfig::default()
        };
        assert_eq!(
            Policy::from_config(&config),
            Policy {
                schedule: vec![secs(1), secs(2)],
                jitter: 0.2,
                disable_after: secs(3600),
                throttle_floor: secs(60),
            }
        );
        let default = Policy::from_config(&DeliveryConfig::default());
        let hours: Vec<u64> = default.schedule.iter().map(|d| d.as_secs()).collect();
        assert_eq!(hours, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
        assert_eq!(default.disable_after, secs(5 * 86_400));
    }

    #[test]
    #[should_panic(expected = "outside [0, 1)")]
    fn jitter_of_one_or_more_is_a_programmer_error() {
        let p = Policy {
            jitter: 1.0,
            ..exact()
        };
        p.next(
            Delivery::default(),
            &status(500),
            NOW,
            &mut StdRng::seed_from_u64(0),
        );
    }

    #[test]
    fn endpoint_disabled_after_only_failures_for_disable_after() {
        let p = exact(); // 5 days
        let t0 = NOW;
        let fail = |h, at| p.record(h, false, at);

        let (h, off) = fail(EndpointHealth::default(), t0);
        assert_eq!((h.failing_since_ms, off), (Some(t0), false));
        let (h, off) = fail(h, t0 + 3 * DAY);
        assert_eq!((h.failing_since_ms, off), (Some(t0), false));
        assert!(!fail(h, t0 + 5 * DAY - 1).1);
        assert!(fail(h, t0 + 5 * DAY).1);
        assert!(fail(h, t0 + 9 * DAY).1);

        // A success resets the clock: five days counted from the next failure.
        let (h, off) = p.record(h, true, t0 + 4 * DAY);
        assert_eq!((h, off), (EndpointHealth::default(), false));
        let t1 = t0 + 4 * DAY + 1;
        let (h, _) = fail(h, t1);
        assert_eq!(h.failing_since_ms, Some(t1));
        assert!(!fail(h, t0 + 5 * DAY).1);
        assert!(!fail(h, t1 + 5 * DAY - 1).1);
        assert!(fail(h, t1 + 5 * DAY).1);
    }

    #[test]
    fn parses_retry_after_forms() {
        let now_ms = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        let cases: [(&str, Option<Duration>); 26] = [
            ("120", Some(secs(120))),
            (" 0 ", Some(secs(0))),
            ("86400", Some(secs(86_400))),
            ("86401", Some(RETRY_AFTER_MAX)),
            ("99999999999999999999999", Some(RETRY_AFTER_MAX)),
            ("18446744073709551616", Some(RETRY_AFTER_MAX)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(secs(0))),
            ("Sun, 06 Nov 1994 09:49:37 GMT", Some(secs(3600))),
            ("Sat, 05 Nov 1994 08:49:37 GMT", Some(secs(0))),
            ("Wed, 09 Nov 1994 08:49:37 GMT", Some(RETRY_AFTER_MAX)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(RETRY_AFTER_MAX)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(secs(0))),
            // The obsolete forms RFC 9110 asks recipients to accept.
            ("Sunday, 06-Nov-94 09:49:37 GMT", Some(secs(3600))),
            ("Sun Nov  6 09:49:37 1994", Some(secs(3600))),
            ("", None),
            ("-5", None),
            ("-99999999999999999999999", None),
            ("1.5", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 25:49:37 GMT", None),
            // Multi-byte UTF-8 where the fixed-width format has ASCII (this panicked a shard).
            ("Sun,\u{e9}6 Nov 1994 08:49:37 GMT", None),
            ("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}", None),
            ("Sun, 06 Nov 1994 08:49:37 GM\u{e9}", None),
            ("\u{0}\u{0}\u{0}", None),
            ("Sun, 06 Nov 1994 08:49:37 GMT\u{0}", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now_ms), want, "{value:?}");
        }
        // Month and day map to the right date, not just the right format.
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2000 00:00:01 GMT", 951_782_400_000),
            Some(secs(1))
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", 946_684_798_500),
            Some(Duration::from_millis(500))
        );
    }

    /// One delivery in the simulation.
    #[derive(Default)]
    struct Sim {
        state: Delivery,
        /// Chance that an attempt lands, in percent.
        success_percent: u32,
        first_ms: u64,
        /// Attempts completed, counted by the simulation itself.
        completed: usize,
        /// Sum of the waits the policy asked for, and the bounds each wait had to lie in.
        waits_ms: u64,
        waits_lo_ms: u64,
        waits_hi_ms: u64,
        /// Time spent in attempts and in restarts after crashes.
        busy_ms: u64,
        end: Option<Action>,
    }

    /// Thousands of deliveries against flaky endpoints, through days of virtual time.
    #[test]
    fn simulation_every_delivery_lands_or_fails_when_its_schedule_ends() {
        const DELIVERIES: usize = 5_000;
        const TIMEOUT_MS: u64 = 15 * SEC;
        let p = Policy::from_config(&DeliveryConfig::default());
        let len = p.schedule.len();
        let mut policy_rng = StdRng::seed_from_u64(0x5eed);
        let mut world = StdRng::seed_from_u64(0xf1a6);

        let mut sims: Vec<Sim> = (0..DELIVERIES)
            .map(|i| Sim {
                success_percent: [0, 5, 30, 80][i % 4],
                first_ms: NOW + world.gen_range(0..HOUR),
                ..Sim::default()
            })
            .collect();
        let mut due: BinaryHeap<Reverse<(u64, usize)>> = sims
            .iter()
            .enumerate()
            .map(|(i, s)| Reverse((s.first_ms, i)))
            .collect();
        let (mut crashes, mut clock_ms) = (0, NOW);

        while let Some(Reverse((at_ms, i))) = due.pop() {
            assert!(at_ms >= clock_ms, "time went backwards");
            clock_ms = at_ms;
            let sim = &mut sims[i];
            assert!(sim.end.is_none(), "delivery {i} attempted after it ended");
            if world.gen_ratio(1, 100) {
                // Cut short by a crash: no outcome, the stored state is unchanged.
                crashes += 1;
                let restart_ms = world.gen_range(SEC..=30 * SEC);
                sim.busy_ms += restart_ms;
                due.push(Reverse((at_ms + restart_ms, i)));
                continue;
            }
            let outcome = if world.gen_ratio(sim.success_percent, 100) {
                status([200, 201, 204][world.gen_range(0..3)])
            } else {
                let retry_after = world
                    .gen_bool(0.5)
                    .then(|| secs(world.gen_range(0..=3 * 3600)));
                match world.gen_range(0..8) {
                    0 => Outcome::Timeout,
                    1 => Outcome::Connect("connection reset".into()),
                    2 => status([301, 400, 404, 500][world.gen_range(0..4)]),
                    _ => Outcome::Status {
                        code: [429, 502, 503, 504, 429][world.gen_range(0..5)],
                        retry_after,
                    },
                }
            };
            let took_ms = if outcome == Outcome::Timeout {
                TIMEOUT_MS
            } else {
                world.gen_range(1..=2 * SEC)
            };
            let now_ms = at_ms + took_ms;
            sim.busy_ms += took_ms;
            sim.completed += 1;
            assert!(sim.completed <= len + 1, "delivery {i}: too many attempts");

            let (state, action) = p.next(sim.state, &outcome, now_ms, &mut policy_rng);
            assert_eq!(state.attempts as usize, sim.completed, "delivery {i}");
            sim.state = state;
            match action {
                Action::RetryAt { at_ms } => {
                    assert!(!outcome.is_success(), "{outcome} retried");
                    let entry_ms = millis(p.schedule[sim.completed - 1]);
                    let (mut lo_ms, mut hi_ms) = (entry_ms * 8 / 10, entry_ms * 12 / 10);
                    if matches!(
                        outcome,
                        Outcome::Timeout | Outcome::Status { code: 429, .. }
                    ) {
                        lo_ms = lo_ms.max(60 * SEC);
                        hi_ms = hi_ms.max(60 * SEC);
                    }
                    if outcome.retry_after().is_some() {
                        hi_ms *= 2;
                    }
                    let wait_ms = at_ms - now_ms;
                    assert!(
                        (lo_ms..=hi_ms).contains(&wait_ms),
                        "delivery {i}, {outcome}: wait {wait_ms} outside {lo_ms}..={hi_ms}"
                    );
                    sim.waits_ms += wait_ms;
                    sim.waits_lo_ms += lo_ms;
                    sim.waits_hi_ms += hi_ms;
                    due.push(Reverse((at_ms, i)));
                }
                Action::Done => {
                    assert!(outcome.is_success());
                    sim.end = Some(Action::Done);
                }
                Action::Fail { .. } => {
                    assert!(!outcome.is_success());
                    assert_eq!(sim.completed, len + 1, "delivery {i} failed early");
                    assert_eq!(
                        now_ms - sim.first_ms,
                        sim.waits_ms + sim.busy_ms,
                        "delivery {i}: virtual time is not its waits plus its attempts"
                    );
                    assert!((sim.waits_lo_ms..=sim.waits_hi_ms).contains(&sim.waits_ms));
                    sim.end = Some(action);
                }
                Action::DisableEndpoint { .. } => panic!("no 410 in this world: {outcome}"),
            }
        }

        let delivered = sims.iter().filter(|s| s.end == Some(Action::Done)).count();
        let failed: Vec<&Sim> = sims
            .iter()
            .filter(|s| matches!(s.end, Some(Action::Fail { .. })))
            .collect();
        assert_eq!(delivered + failed.len(), DELIVERIES, "some never ended");
        // Endpoints that never answer 2xx fail every delivery; the good ones deliver most.
        assert!(sims
            .iter()
            .all(|s| s.success_percent > 0 || s.end != Some(Action::Done)));
        assert!(failed.len() >= DELIVERIES / 4, "{}", failed.len());
        assert!(delivered >= DELIVERIES / 2, "{delivered}");
        assert!(crashes > 0);
        // A failing delivery spends at least the jittered-down schedule: over a day.
        let schedule_ms: u64 = p.schedule.iter().map(|d| millis(*d)).sum();
        for s in &failed {
            assert!(s.waits_ms >= schedule_ms * 8 / 10, "{}", s.waits_ms);
        }
        assert!(clock_ms - NOW > DAY, "simulated only {} ms", clock_ms - NOW);
    }
}
