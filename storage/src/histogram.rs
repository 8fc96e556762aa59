//! Lock-free histograms with fixed buckets, for the metrics page.
//!
//! A [`Histogram`] is a fixed array of `AtomicU64` bucket counters plus a sum: `observe` is one
//! short search over the bucket bounds and two relaxed atomic adds, cheap enough for the
//! flusher thread and the shards. Bounds are integers in the unit of the observations
//! (nanoseconds for latencies, records for batch sizes) and log-spaced, so a few buckets cover
//! several orders of magnitude. Counters only grow; a reader takes a [`Snapshot`] whenever it
//! likes (a snapshot taken during an `observe` may miss it, never count it twice).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Latency bounds in nanoseconds: 50 µs to 10 s, in 1-2.5-5 steps.
pub const LATENCY_NS: [u64; 18] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Count bounds (records per group commit): powers of two, 1 to 65536.
pub const COUNT: [u64; 17] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
];

/// A histogram over `N` fixed upper bounds (inclusive) and one overflow bucket.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    /// `counts[i]` holds observations `<= bounds[i]` and `> bounds[i - 1]`.
    counts: [AtomicU64; N],
    overflow: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram over `bounds`, which must increase strictly.
    pub const fn new(bounds: &'static [u64; N]) -> Self {
        let mut i = 1;
        while i < N {
            assert!(bounds[i - 1] < bounds[i], "histogram bounds must increase");
            i += 1;
        }
        Self {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `value`.
    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        match self.counts.get(i) {
            Some(c) => c.fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one duration, in nanoseconds (for the [`LATENCY_NS`] bounds).
    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counts: Vec<u64> = self.counts.iter().map(load).collect();
        counts.push(load(&self.overflow));
        Snapshot {
            bounds: self.bounds,
            counts,
            sum: load(&self.sum),
        }
    }
}

/// The counters of a [`Histogram`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Upper bounds (inclusive), in the unit of the observations.
    pub bounds: &'static [u64],
    /// One count per bound, then the overflow bucket: `bounds.len() + 1` entries (not
    /// cumulative). Empty only in a default snapshot.
    pub counts: Vec<u64>,
    /// The sum of every value observed.
    pub sum: u64,
}

impl Snapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, observations <= it)` for every bound, as Prometheus buckets are
    /// (cumulative); the `+Inf` bucket is [`Snapshot::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.bounds
            .iter()
            .zip(&self.counts)
            .scan(0u64, |acc, (&b, &c)| {
                *acc += c;
                Some((b, *acc))
            })
    }
}

/// What the log's flusher thread measures: each group commit's `fdatasync` time and the
/// number of records it made durable.
#[derive(Debug)]
pub struct FlushStats {
    /// Time spent in `fdatasync` per flush, in nanoseconds.
    pub sync_ns: Histogram<{ LATENCY_NS.len() }>,
    /// Records made durable (or failed) per flush: the group-commit batch size.
    pub batch_records: Histogram<{ COUNT.len() }>,
}

impl Default for FlushStats {
    fn default() -> Self {
        Self {
            sync_ns: Histogram::new(&LATENCY_NS),
            batch_records: Histogram::new(&COUNT),
        }
    }
}

impl FlushStats {
    /// Counts one flush that synced for `took` and settled `records` records.
    pub fn flushed(&self, took: Duration, records: u64) {
        self.sync_ns.observe_duration(took);
        self.batch_records.observe(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        static B: [u64; 3] = [10, 100, 1000];
        let h = Histogram::new(&B);
        for v in [0, 10, 11, 100, 999, 1000, 1001, u64::MAX / 2] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 2, 2]);
        assert_eq!(s.count(), 8);
        assert_eq!(
            s.cumulative().collect::<Vec<_>>(),
            vec![(10, 2), (100, 4), (1000, 6)]
        );
        assert_eq!(s.sum, 10 + 11 + 100 + 999 + 1000 + 1001 + u64::MAX / 2);
    }

    #[test]
    fn durations_are_nanoseconds() {
        let h = Histogram::new(&LATENCY_NS);
        h.observe_duration(Duration::from_micros(70));
        h.observe_duration(Duration::from_secs(100_000));
        let s = h.snapshot();
        assert_eq!(s.counts[1], 1, "70 µs is in (50 µs, 100 µs]");
        assert_eq!(*s.counts.last().unwrap(), 1, "overflow");
        assert_eq!(s.counts.len(), LATENCY_NS.len() + 1);
    }

    #[test]
    fn a_default_snapshot_is_empty() {
        let s = Snapshot::default();
        assert_eq!(s.count(), 0);
        assert_eq!(s.cumulative().count(), 0);
    }

    #[test]
    fn observes_from_many_threads_without_losing_counts() {
        let h = std::sync::Arc::new(Histogram::new(&COUNT));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || (0..10_000u64).for_each(|i| h.observe(i % 100 + t)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(h.snapshot().count(), 40_000);
    }
}
