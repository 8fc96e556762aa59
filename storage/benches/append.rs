//! Append throughput and append-to-durable latency of the log, 1 KiB records.
//!
//! Runs side by side, on the same disk, in one process:
//! - the raw `write` + `fdatasync` rate of this disk (the ceiling a flush-per-append design has);
//! - option (b), the chosen design: append-only segment files with group commit, in `sync` mode
//!   with 1, 16, 64 and 256 concurrent appenders, with both ways of waiting for durability
//!   (a cross-thread wake per waiter, and one wake per shard fanned out locally), and in
//!   `interval` mode;
//! - option (a), each segment a sled tree: the same appenders insert into sled and one thread
//!   flushes sled in a loop and publishes the same watermark.
//!
//! Appenders are monoio tasks on 2 threads, as in hookd. Each loops "append one 1 KiB record,
//! await durable". Each row is the median (by throughput) of `BENCH_REPS` runs (default 3) of
//! `BENCH_SECS` seconds each (default 3). `BENCH_DIR` is where it writes (default a temp dir
//! under /var/tmp, i.e. on disk). Prints a Markdown table.
//!
//! `cargo bench -p hookd-storage --bench append`

use std::{
    cell::RefCell,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use storage::{Durability, LocalWaiters, LogOptions, Store, StoreOptions, SystemClock, Watermark};

const RECORD: usize = 1024;
const THREADS: usize = 2;

#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// `Watermark::wait`: one cross-thread wake per request.
    PerRequest,
    /// `LocalWaiters`: one cross-thread wake per shard per flush.
    PerShard,
    /// `interval` mode: acknowledged after the write.
    None,
}

struct Row {
    name: String,
    appenders: usize,
    ops: u64,
    secs: f64,
    lat_us: Vec<u32>,
    flushes: u64,
}

impl Row {
    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }
    fn print(&self) {
        let rate = self.ops as f64 / self.secs;
        let per_flush = if self.flushes > 0 {
            format!("{:.1}", self.ops as f64 / self.flushes as f64)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {} |",
            self.name,
            self.appenders,
            rate,
            rate * RECORD as f64 / (1 << 20) as f64,
            self.pct(0.5),
            self.pct(0.99),
            self.pct(0.999),
            per_flush
        );
    }
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    tempfile::tempdir_in(base).expect("bench dir")
}

fn secs() -> Duration {
    let s = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

/// Per-thread setup (for example a `LocalWaiters` pump) and per-task operation.
trait Workload: Send + Sync + 'static {
    type Local: 'static;
    fn setup(&self) -> Self::Local;
    fn op(&self, local: &Self::Local) -> impl std::future::Future<Output = ()>;
}

fn drive_with<W: Workload>(w: Arc<W>, appenders: usize, run_for: Duration) -> (u64, Vec<u32>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (w, stop) = (w.clone(), stop.clone());
            let tasks = appenders / THREADS + usize::from(t < appenders % THREADS);
            std::thread::spawn(move || {
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let local = Rc::new(w.setup());
                    let lat = Rc::new(RefCell::new(Vec::with_capacity(1 << 20)));
                    let handles: Vec<_> = (0..tasks)
                        .map(|_| {
                            let (w, stop, local, lat) =
                                (w.clone(), stop.clone(), local.clone(), lat.clone());
                            monoio::spawn(async move {
                                while !stop.load(Ordering::Relaxed) {
                                    let t0 = Instant::now();
                                    w.op(&local).await;
                                    lat.borrow_mut().push(t0.elapsed().as_micros() as u32);
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await;
                    }
                    let v = std::mem::take(&mut *lat.borrow_mut());
                    v
                })
            })
        })
        .collect();
    std::thread::sleep(run_for);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().expect("bench thread"));
    }
    all.sort_unstable();
    (all.len() as u64, all)
}

struct LogLoad {
    store: Store,
    wait: Wait,
    record: Vec<u8>,
}

impl Workload for LogLoad {
    type Local = Option<LocalWaiters>;
    fn setup(&self) -> Option<LocalWaiters> {
        (self.wait == Wait::PerShard).then(|| {
            let lw = LocalWaiters::new(self.store.log().durable().subscribe());
            monoio::spawn(lw.clone().pump());
            lw
        })
    }
    async fn op(&self, local: &Option<LocalWaiters>) {
        let seq = self.store.log().append(&[&self.record]).expect("append");
        match (self.wait, local) {
            (Wait::PerShard, Some(lw)) => lw.wait(seq).await.expect("durable"),
            (Wait::PerRequest, _) => self.store.log().durable().wait(seq).await.expect("durable"),
            _ => {}
        }
    }
}

fn run_log(durability: Durability, wait: Wait, appenders: usize, window: Duration) -> Row {
    let dir = bench_dir();
    let opts = StoreOptions {
        log: LogOptions {
            durability,
            commit_window: window,
            max_bytes: 0,
            ..LogOptions::default()
        },
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts, Arc::new(SystemClock)).expect("open");
    let load = Arc::new(LogLoad {
        store,
        wait,
        record: vec![0xAB; RECORD],
    });
    let t0 = Instant::now();
    let (ops, lat_us) = drive_with(load.clone(), appenders, secs());
    let secs = t0.elapsed().as_secs_f64();
    let flushes = load.store.log().flush_count();
    let name = match (durability, wait) {
        (Durability::Interval, _) => "log (b), interval".to_string(),
        _ if window > Duration::ZERO => {
            format!("log (b), sync, commit_window {}ms", window.as_millis())
        }
        (_, Wait::PerShard) => "log (b), sync, one wake per shard".into(),
        _ => "log (b), sync, wake per request".into(),
    };
    Row {
        name,
        appenders,
        ops,
        secs,
        lat_us,
        flushes,
    }
}

struct SledLoad {
    tree: sled::Tree,
    next: AtomicU64,
    durable: Arc<Watermark>,
    written: AtomicU64,
    record: Vec<u8>,
}

impl Workload for SledLoad {
    type Local = ();
    fn setup(&self) {}
    async fn op(&self, _: &()) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.tree
            .insert(seq.to_be_bytes(), self.record.as_slice())
            .expect("insert");
        self.written.fetch_max(seq, Ordering::AcqRel);
        self.durable.wait(seq).await.expect("durable");
    }
}

fn run_sled(appenders: usize) -> Row {
    let dir = bench_dir();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .flush_every_ms(None)
        .open()
        .expect("sled");
    let load = Arc::new(SledLoad {
        tree: db.open_tree("segment-1").expect("tree"),
        next: AtomicU64::new(0),
        durable: Arc::new(Watermark::new(0)),
        written: AtomicU64::new(0),
        record: vec![0xAB; RECORD],
    });
    let stop = Arc::new(AtomicBool::new(false));
    let flushes = Arc::new(AtomicU64::new(0));
    let flusher = {
        let (load, stop, flushes, db) = (load.clone(), stop.clone(), flushes.clone(), db.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let target = load.written.load(Ordering::Acquire);
                if target == load.durable.get() {
                    std::thread::yield_now();
                    continue;
                }
                db.flush().expect("flush");
                flushes.fetch_add(1, Ordering::Relaxed);
                load.durable.advance(target);
            }
            load.durable.close();
        })
    };
    let t0 = Instant::now();
    let (ops, lat_us) = drive_with(load.clone(), appenders, secs());
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = flusher.join();
    Row {
        name: "sled tree (a), sync".into(),
        appenders,
        ops,
        secs,
        lat_us,
        flushes: flushes.load(Ordering::Relaxed),
    }
}

fn raw_fsync() -> Row {
    use std::{io::Write, os::unix::fs::FileExt};
    let dir = bench_dir();
    let mut f = std::fs::File::create(dir.path().join("raw")).expect("file");
    let rec = vec![0xABu8; RECORD];
    let deadline = Instant::now() + secs();
    let mut lat = Vec::new();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        f.write_all(&rec).expect("write");
        f.sync_data().expect("fdatasync");
        lat.push(t0.elapsed().as_micros() as u32);
    }
    let _ = f.read_at(&mut [0u8; 1], 0);
    lat.sort_unstable();
    Row {
        name: "raw write+fdatasync per record".into(),
        appenders: 1,
        ops: lat.len() as u64,
        secs: secs().as_secs_f64(),
        flushes: lat.len() as u64,
        lat_us: lat,
    }
}

/// Runs `f` `BENCH_REPS` times and keeps the run with the median throughput.
fn median(f: impl Fn() -> Row) -> Row {
    let reps = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let mut rows: Vec<Row> = (0..reps).map(|_| f()).collect();
    rows.sort_by(|a, b| (a.ops as f64 / a.secs).total_cmp(&(b.ops as f64 / b.secs)));
    rows.swap_remove(reps / 2)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probes
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}; median of {} runs of {:.1} s; 1 KiB records; appenders are monoio tasks on {THREADS} threads\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("BENCH_REPS").unwrap_or_else(|_| "3".into()),
        secs().as_secs_f64()
    );
    println!(
        "| run | appenders | appends/s | MiB/s | p50 ms | p99 ms | p99.9 ms | records/flush |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    median(raw_fsync).print();
    for n in [1, 16, 64, 256] {
        median(|| run_log(Durability::Sync, Wait::PerRequest, n, Duration::ZERO)).print();
    }
    for n in [64, 256] {
        median(|| run_log(Durability::Sync, Wait::PerShard, n, Duration::ZERO)).print();
    }
    median(|| {
        run_log(
            Durability::Sync,
            Wait::PerRequest,
            64,
            Duration::from_millis(1),
        )
    })
    .print();
    median(|| run_log(Durability::Interval, Wait::None, 64, Duration::ZERO)).print();
    for n in [1, 16, 64, 256] {
        median(|| run_sled(n)).print();
    }
}
