//! Counters every shard bumps, and the Prometheus text page (`GET /metrics`) made from them.
//!
//! Label sets are fixed and small (route family × status class, outcome class): no label
//! carries a message, endpoint or app, so the number of series never grows with traffic.
//! Gauges that the index already knows (pending deliveries, disk use) are read at scrape time.
//!
//! Histograms (fixed log-spaced buckets, no labels, see [`storage::histogram`]): append
//! latency (append to durable, as the ingest path waits for it), the flusher's `fdatasync`
//! time and group-commit batch size (kept by the storage crate, read at scrape time), and
//! delivery latency (attempt start to response).

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use storage::histogram::{Histogram, Snapshot, LATENCY_NS};

/// Route families counted separately.
pub const ROUTES: [&str; 8] = [
    "health",
    "app",
    "endpoint",
    "event_type",
    "message",
    "attempt",
    "metrics",
    "other",
];
/// Status classes: 1xx..5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Delivery outcome classes, as the retry policy names them.
pub const OUTCOMES: [&str; 11] = [
    "2xx", "3xx", "4xx", "5xx", "timeout", "connect", "refused", "resolve", "tls", "internal",
    "other",
];

/// The process's counters.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; 5]; ROUTES.len()],
    pub events_appended: AtomicU64,
    pub event_bytes: AtomicU64,
    deliveries: [AtomicU64; OUTCOMES.len()],
    pub endpoints_disabled: AtomicU64,
    /// Append to durable (sync mode) or to written (interval mode), per event.
    append_ns: Histogram<{ LATENCY_NS.len() }>,
    /// Delivery attempt start to response (or failure), per attempt.
    delivery_ns: Histogram<{ LATENCY_NS.len() }>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Default::default(),
            events_appended: AtomicU64::new(0),
            event_bytes: AtomicU64::new(0),
            deliveries: Default::default(),
            endpoints_disabled: AtomicU64::new(0),
            append_ns: Histogram::new(&LATENCY_NS),
            delivery_ns: Histogram::new(&LATENCY_NS),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16) {
        let r = ROUTES
            .iter()
            .position(|x| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let c = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[r][c].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one appended event of `bytes`.
    pub fn appended(&self, bytes: usize) {
        self.events_appended.fetch_add(1, Ordering::Relaxed);
        self.event_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one delivery attempt by outcome class.
    pub fn delivery(&self, class: &str) {
        let i = OUTCOMES
            .iter()
            .position(|x| *x == class)
            .unwrap_or(OUTCOMES.len() - 1);
        self.deliveries[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the time one append took to become durable (or written, in `interval` mode).
    pub fn append_latency(&self, took: Duration) {
        self.append_ns.observe_duration(took);
    }

    /// Counts the time one delivery attempt took (a monotonic clock, to the nanosecond).
    pub fn delivery_latency(&self, took: Duration) {
        self.delivery_ns.observe_duration(took);
    }

    /// Delivery attempts so far, by outcome class in [`OUTCOMES`] order.
    pub fn delivery_totals(&self) -> [u64; OUTCOMES.len()] {
        std::array::from_fn(|i| self.deliveries[i].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition of the counters plus the gauges given.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        self.render_counters(&mut out, gauges);
        self.render_histograms(&mut out, gauges);
        render_gauges(&mut out, gauges);
        out
    }

    /// The counters (and the gauges that count since start).
    fn render_counters(&self, out: &mut String, gauges: &Gauges) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        head(
            out,
            "hookd_http_requests_total",
            "counter",
            "HTTP requests answered, by route family and status class.",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "hookd_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {}",
                    load(&self.requests[r][c])
                );
            }
        }
        single(
            out,
            "hookd_events_appended_total",
            "counter",
            "Events appended to the log.",
            load(&self.events_appended),
        );
        single(
            out,
            "hookd_event_bytes_total",
            "counter",
            "Payload bytes of the events appended.",
            load(&self.event_bytes),
        );
        head(
            out,
            "hookd_deliveries_total",
            "counter",
            "Delivery attempts, by outcome class.",
        );
        for (i, class) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "hookd_deliveries_total{{outcome=\"{class}\"}} {}",
                load(&self.deliveries[i])
            );
        }
        single(
            out,
            "hookd_endpoints_disabled_total",
            "counter",
            "Endpoints disabled by delivery (410 or failing too long).",
            load(&self.endpoints_disabled),
        );
        single(
            out,
            "hookd_panics_total",
            "counter",
            "Panics caught (bugs in hookd); each stopped one task. The log has where.",
            crate::panics::count(),
        );
        single(
            out,
            "hookd_unhealthy_parts",
            "gauge",
            "Threads of hookd (shards, dispatcher, recorder) that stopped unexpectedly.",
            gauges.dead_parts,
        );
        single(
            out,
            "hookd_log_flushes_total",
            "counter",
            "Group-commit flushes (fdatasync) of the log.",
            gauges.flushes,
        );
        let help = "Corrupt stretches found in the log (at start or by a read), quarantined and \
                    stepped over.";
        let name = "hookd_log_corrupt_stretches_total";
        single(out, name, "counter", help, gauges.corrupt_stretches);
    }

    /// The latency and batch-size histograms.
    fn render_histograms(&self, out: &mut String, gauges: &Gauges) {
        histogram(
            out,
            "hookd_log_append_seconds",
            "Time from appending an event to the log until it is durable (sync) or written.",
            &self.append_ns.snapshot(),
            Unit::Nanoseconds,
        );
        histogram(
            out,
            "hookd_log_flush_seconds",
            "Time one group commit spends in fdatasync.",
            &gauges.log_flush,
            Unit::Nanoseconds,
        );
        histogram(
            out,
            "hookd_log_flush_batch_records",
            "Records made durable by one group commit (the batch size).",
            &gauges.log_batch,
            Unit::Count,
        );
        histogram(
            out,
            "hookd_delivery_seconds",
            "Time from the start of a delivery attempt to its response or failure.",
            &self.delivery_ns.snapshot(),
            Unit::Nanoseconds,
        );
    }
}

/// The gauges read at scrape time.
fn render_gauges(out: &mut String, gauges: &Gauges) {
    single(
        out,
        "hookd_pending_deliveries",
        "gauge",
        "Deliveries not yet settled (pending or sending).",
        gauges.pending,
    );
    head(
        out,
        "hookd_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest unsettled delivery's message.",
    );
    let _ = writeln!(
        out,
        "hookd_oldest_pending_age_seconds {:.3}",
        gauges.oldest_pending_age_ms as f64 / 1000.0
    );
    head(
        out,
        "hookd_shard_queue_depth",
        "gauge",
        "Deliveries waiting in each shard's inbox.",
    );
    for (i, d) in gauges.queue_depths.iter().enumerate() {
        let _ = writeln!(out, "hookd_shard_queue_depth{{shard=\"{i}\"}} {d}");
    }
    single(
        out,
        "hookd_disk_bytes",
        "gauge",
        "Bytes on disk: log segments and index.",
        gauges.disk_bytes,
    );
    head(
        out,
        "hookd_io_driver",
        "gauge",
        "The I/O driver the shards run on (1 for the one in use).",
    );
    let _ = writeln!(out, "hookd_io_driver{{driver=\"{}\"}} 1", gauges.driver);
    head(out, "hookd_build_info", "gauge", "Build information.");
    let _ = writeln!(
        out,
        "hookd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

/// A metric of one unlabelled sample: its `# HELP` and `# TYPE` lines, then the sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    head(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub pending: usize,
    pub oldest_pending_age_ms: u64,
    pub queue_depths: Vec<usize>,
    pub disk_bytes: u64,
    pub flushes: u64,
    /// Corrupt stretches found in the log since start (`Log::corruptions_found`).
    pub corrupt_stretches: u64,
    pub driver: &'static str,
    /// The log flusher's `fdatasync` time per group commit, in nanoseconds.
    pub log_flush: Snapshot,
    /// Records per group commit.
    pub log_batch: Snapshot,
    /// Threads that stopped unexpectedly (`Liveness::dead`).
    pub dead_parts: usize,
}

/// What a histogram's integer observations count.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Shown in seconds.
    Nanoseconds,
    Count,
}

impl Unit {
    fn write(self, out: &mut String, v: u64) {
        let _ = match self {
            Unit::Nanoseconds => write!(out, "{}", v as f64 / 1e9),
            Unit::Count => write!(out, "{v}"),
        };
    }
}

/// One histogram family: cumulative `_bucket` series with `le`, then `_sum` and `_count`.
fn histogram(out: &mut String, name: &str, help: &str, s: &Snapshot, unit: Unit) {
    head(out, name, "histogram", help);
    for (bound, n) in s.cumulative() {
        let _ = write!(out, "{name}_bucket{{le=\"");
        unit.write(out, bound);
        let _ = writeln!(out, "\"}} {n}");
    }
    let count = s.count();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = write!(out, "{name}_sum ");
    unit.write(out, s.sum);
    let _ = writeln!(out, "\n{name}_count {count}");
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_land_in_their_series_and_unknowns_in_other() {
        let m = Metrics::default();
        m.request("message", 202);
        m.request("message", 202);
        m.request("nope", 404);
        m.delivery("timeout");
        m.delivery("weird");
        m.appended(10);
        let text = m.render(&Gauges {
            dead_parts: 0,
            driver: "io_uring",
            queue_depths: vec![3, 0],
            ..Gauges::default()
        });
        assert!(text.contains("hookd_http_requests_total{route=\"message\",status=\"2xx\"} 2\n"));
        assert!(text.contains("hookd_http_requests_total{route=\"other\",status=\"4xx\"} 1\n"));
        assert!(text.contains("hookd_deliveries_total{outcome=\"timeout\"} 1\n"));
        assert!(text.contains("hookd_deliveries_total{outcome=\"other\"} 1\n"));
        assert!(text.contains("hookd_event_bytes_total 10\n"));
        assert!(text.contains("hookd_shard_queue_depth{shard=\"0\"} 3\n"));
        assert!(text.contains("hookd_io_driver{driver=\"io_uring\"} 1\n"));
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        m.append_latency(Duration::from_micros(70));
        m.append_latency(Duration::from_millis(3));
        m.delivery_latency(Duration::from_micros(80));
        m.delivery_latency(Duration::from_secs(40));
        let flush = storage::histogram::FlushStats::default();
        flush.flushed(Duration::from_micros(400), 3);
        let text = m.render(&Gauges {
            dead_parts: 0,
            log_flush: flush.sync_ns.snapshot(),
            log_batch: flush.batch_records.snapshot(),
            ..Gauges::default()
        });
        for line in [
            "# TYPE hookd_log_append_seconds histogram\n",
            "hookd_log_append_seconds_bucket{le=\"0.00005\"} 0\n",
            "hookd_log_append_seconds_bucket{le=\"0.0001\"} 1\n",
            "hookd_log_append_seconds_bucket{le=\"0.005\"} 2\n",
            "hookd_log_append_seconds_bucket{le=\"+Inf\"} 2\n",
            "hookd_log_append_seconds_sum 0.00307\n",
            "hookd_log_append_seconds_count 2\n",
            "hookd_log_flush_seconds_bucket{le=\"0.0005\"} 1\n",
            "hookd_log_flush_batch_records_bucket{le=\"2\"} 0\n",
            "hookd_log_flush_batch_records_bucket{le=\"4\"} 1\n",
            "hookd_log_flush_batch_records_sum 3\n",
            "hookd_delivery_seconds_bucket{le=\"0.00005\"} 0\n",
            "hookd_delivery_seconds_bucket{le=\"0.0001\"} 1\n",
            "hookd_delivery_seconds_bucket{le=\"30\"} 1\n",
            "hookd_delivery_seconds_bucket{le=\"+Inf\"} 2\n",
            "hookd_delivery_seconds_sum 40.00008\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }
}
