//! Per-second counters for the status page, kept in a fixed ring: pure, time passed in.
//!
//! [`Sampler`] is fed the process's running totals (messages ingested, delivery attempts that
//! succeeded, attempts that failed) whenever someone samples them, and puts the difference
//! since the previous sample into the second it is given. [`Ring`] holds the last
//! [`WINDOW_SECS`] seconds and forgets older ones: its memory is fixed at creation.
//! [`Moves`] remembers in which second each heartbeat counter last moved.

/// The series, in the order of every `[u64; SERIES_LEN]` here.
pub const SERIES: [&str; SERIES_LEN] = ["ingest", "success", "failed"];
/// How many series.
pub const SERIES_LEN: usize = 3;
/// Seconds kept: 15 minutes.
pub const WINDOW_SECS: usize = 900;

/// The last `capacity` seconds of counts, one bucket per Unix second.
#[derive(Debug, Clone)]
pub struct Ring {
    buckets: Box<[[u32; SERIES_LEN]]>,
    /// The newest second written, if any.
    newest: Option<u64>,
}

impl Ring {
    /// An empty ring of `capacity` seconds (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            buckets: vec![[0; SERIES_LEN]; capacity.max(1)].into_boxed_slice(),
            newest: None,
        }
    }

    fn slot(&self, sec: u64) -> usize {
        (sec % self.buckets.len() as u64) as usize
    }

    /// Adds `counts` to second `sec`. Seconds skipped since the newest one read as zero. A
    /// second before the newest (the wall clock stepped back, or two samplers raced) counts in
    /// the newest, so nothing sampled is dropped. Buckets saturate at `u32::MAX`.
    pub fn add(&mut self, sec: u64, counts: [u64; SERIES_LEN]) {
        let cap = self.buckets.len() as u64;
        let sec = match self.newest {
            None => {
                self.newest = Some(sec);
                sec
            }
            Some(newest) if sec > newest => {
                if sec - newest >= cap {
                    self.buckets.fill([0; SERIES_LEN]);
                } else {
                    for s in newest + 1..=sec {
                        let i = self.slot(s);
                        self.buckets[i] = [0; SERIES_LEN];
                    }
                }
                self.newest = Some(sec);
                sec
            }
            Some(newest) => newest,
        };
        let i = self.slot(sec);
        for (b, c) in self.buckets[i].iter_mut().zip(counts) {
            *b = b.saturating_add(u32::try_from(c).unwrap_or(u32::MAX));
        }
    }

    /// The last `len` seconds (at most the capacity) ending at `end` (or at the newest second
    /// written, if that is later), oldest first, one `Vec` per series; seconds with no data
    /// are zero. Returns the second the series end at.
    pub fn series(&self, end: u64, len: usize) -> (u64, [Vec<u32>; SERIES_LEN]) {
        let cap = self.buckets.len() as u64;
        let len = len.min(self.buckets.len()) as u64;
        let end = self.newest.map_or(end, |n| end.max(n));
        let mut out: [Vec<u32>; SERIES_LEN] = Default::default();
        for v in &mut out {
            v.reserve(len as usize);
        }
        for back in (0..len).rev() {
            let Some(sec) = end.checked_sub(back) else {
                out.iter_mut().for_each(|v| v.push(0));
                continue;
            };
            let held = self.newest.is_some_and(|n| sec <= n && n - sec < cap);
            let bucket = if held {
                self.buckets[self.slot(sec)]
            } else {
                [0; SERIES_LEN]
            };
            for (v, b) in out.iter_mut().zip(bucket) {
                v.push(b);
            }
        }
        (end, out)
    }
}

/// Turns running totals into per-second counts in a [`Ring`].
#[derive(Debug, Clone)]
pub struct Sampler {
    last: [u64; SERIES_LEN],
    ring: Ring,
}

impl Sampler {
    /// A sampler whose previous totals were `start` (zero for counters made with the process).
    pub fn new(start: [u64; SERIES_LEN], capacity: usize) -> Self {
        Self {
            last: start,
            ring: Ring::new(capacity),
        }
    }

    /// Records `totals` seen in second `sec`: what grew since the last sample counts there.
    pub fn sample(&mut self, sec: u64, totals: [u64; SERIES_LEN]) {
        let mut delta = [0; SERIES_LEN];
        for ((d, t), l) in delta.iter_mut().zip(totals).zip(self.last) {
            *d = t.saturating_sub(l);
        }
        self.ring.add(sec, delta);
        self.last = totals;
    }

    /// The totals of the last sample.
    pub fn totals(&self) -> [u64; SERIES_LEN] {
        self.last
    }

    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}

/// For each heartbeat counter, the second it was last seen to move (a counter seen above zero
/// for the first time counts as moved then; one still at zero has never beaten).
#[derive(Debug, Clone, Default)]
pub struct Moves {
    seen: Vec<u64>,
    moved: Vec<Option<u64>>,
}

impl Moves {
    /// Records the counters as read in second `sec`.
    pub fn observe(&mut self, sec: u64, counts: &[u64]) {
        self.seen.resize(counts.len(), 0);
        self.moved.resize(counts.len(), None);
        for (i, &c) in counts.iter().enumerate() {
            if c != self.seen[i] {
                self.seen[i] = c;
                self.moved[i] = Some(sec);
            }
        }
    }

    /// Seconds since counter `i` last moved, as of `now`; `None` if it never has.
    pub fn age(&self, i: usize, now: u64) -> Option<u64> {
        self.moved
            .get(i)
            .copied()
            .flatten()
            .map(|m| now.saturating_sub(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(r: &Ring, end: u64, len: usize) -> Vec<u32> {
        let (_, [i, _, _]) = r.series(end, len);
        i
    }

    #[test]
    fn counts_in_one_second_add_up_and_gaps_read_as_zero() {
        let mut r = Ring::new(10);
        r.add(100, [1, 2, 3]);
        r.add(100, [1, 0, 0]);
        r.add(103, [5, 0, 1]);
        let (end, [i, s, f]) = r.series(104, 6);
        assert_eq!(end, 104);
        assert_eq!(i, vec![0, 2, 0, 0, 5, 0]);
        assert_eq!(s, vec![0, 2, 0, 0, 0, 0]);
        assert_eq!(f, vec![0, 3, 0, 0, 1, 0]);
    }

    #[test]
    fn old_seconds_are_forgotten_and_memory_stays_fixed() {
        let mut r = Ring::new(4);
        for sec in 0..10 {
            r.add(sec, [sec + 1, 0, 0]);
        }
        assert_eq!(r.buckets.len(), 4);
        assert_eq!(ingest(&r, 9, 10), vec![7, 8, 9, 10]);
        // A jump longer than the ring clears it.
        r.add(100, [1, 0, 0]);
        assert_eq!(ingest(&r, 100, 4), vec![0, 0, 0, 1]);
        // A jump shorter than the ring clears only the seconds it skips.
        r.add(102, [3, 0, 0]);
        assert_eq!(ingest(&r, 102, 4), vec![0, 1, 0, 3]);
        // Asking for a later end shifts the held seconds left; beyond the ring they are gone.
        assert_eq!(ingest(&r, 104, 4), vec![0, 3, 0, 0]);
        assert_eq!(ingest(&r, 200, 4), vec![0, 0, 0, 0]);
    }

    #[test]
    fn a_clock_stepping_back_counts_in_the_newest_second() {
        let mut r = Ring::new(8);
        r.add(50, [1, 0, 0]);
        r.add(40, [2, 0, 0]);
        r.add(49, [4, 0, 0]);
        assert_eq!(ingest(&r, 50, 3), vec![0, 0, 7]);
        // Series never end before the newest second written.
        let (end, _) = r.series(45, 3);
        assert_eq!(end, 50);
    }

    #[test]
    fn series_near_time_zero_and_buckets_saturate() {
        let mut r = Ring::new(5);
        r.add(1, [u64::MAX, 0, 0]);
        r.add(1, [7, 0, 0]);
        assert_eq!(ingest(&r, 1, 5), vec![0, 0, 0, 0, u32::MAX]);
        assert_eq!(Ring::new(0).buckets.len(), 1);
    }

    #[test]
    fn sampler_puts_differences_in_the_second_sampled() {
        let mut s = Sampler::new([0; SERIES_LEN], WINDOW_SECS);
        s.sample(10, [3, 1, 0]);
        s.sample(10, [5, 1, 2]);
        s.sample(12, [5, 4, 2]);
        assert_eq!(s.totals(), [5, 4, 2]);
        let (_, [i, ok, bad]) = s.ring().series(12, 3);
        assert_eq!(i, vec![5, 0, 0]);
        assert_eq!(ok, vec![1, 0, 3]);
        assert_eq!(bad, vec![2, 0, 0]);
        // A total that went down (it cannot, but) counts nothing.
        s.sample(13, [1, 4, 2]);
        s.sample(14, [2, 4, 2]);
        let (_, [i, _, _]) = s.ring().series(14, 2);
        assert_eq!(i, vec![0, 1]);
        let (_, series) = s.ring().series(14, usize::MAX);
        assert!(series.iter().all(|v| v.len() == WINDOW_SECS));
    }

    #[test]
    fn moves_remember_when_each_counter_last_moved() {
        let mut m = Moves::default();
        m.observe(100, &[0, 5]);
        assert_eq!(m.age(0, 100), None, "never beaten");
        assert_eq!(m.age(1, 103), Some(3));
        m.observe(104, &[1, 5]);
        m.observe(106, &[2, 5]);
        assert_eq!(m.age(0, 107), Some(1));
        assert_eq!(m.age(1, 107), Some(7));
        assert_eq!(m.age(9, 107), None);
    }
}
