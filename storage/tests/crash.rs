//! Crash test with real processes: a child appends in `sync` mode and prints what was
//! acknowledged; the parent SIGKILLs it at random moments, reopens the store, and checks that
//! every acknowledged record is there, byte-identical, and that nothing torn is visible.
//!
//! `HOOKD_CRASH_CYCLES` sets the number of kill cycles (default 20); `HOOKD_CRASH_SEED` fixes
//! the random kill times. By hand: `HOOKD_CRASH_CYCLES=500 cargo nextest run -p hookd-storage
//! --test crash --release`.

#[path = "support/crash_payload.rs"]
mod crash_payload;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use storage::{Store, StoreOptions, SystemClock};

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let cycles: u32 = std::env::var("HOOKD_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20);
    let mut rng: u64 = std::env::var("HOOKD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {cycles} cycles, seed {rng}");
    let dir = tempfile::tempdir().unwrap();
    // seq -> (thread, counter) of every acknowledged record, over all cycles.
    let mut acked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut base = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_storage-crash-child"))
            .arg(dir.path())
            .arg("4")
            .env("CRASH_BASE", base.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
                if lines.len() == 1 {
                    let _ = first_tx.send(());
                }
            }
            lines
        });
        // Once the child is appending, kill it at a random moment: what is checked below holds
        // whenever the kill lands, so the timing only varies where it lands.
        let started = first_rx.recv_timeout(Duration::from_secs(30));
        assert!(
            started.is_ok(),
            "cycle {cycle}: the child acknowledged nothing in 30 s"
        );
        std::thread::sleep(Duration::from_millis(xorshift(&mut rng) % 150));
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(!status.success(), "child exited by itself: {status}");
        let lines = reader.join().unwrap();
        let mut this_cycle = 0;
        for line in &lines {
            // Only whole lines count: the last one may have been cut by the kill.
            let parts: Vec<u64> = line.split(' ').filter_map(|p| p.parse().ok()).collect();
            if let [seq, t, c] = parts[..] {
                let prev = acked.insert(seq, (t, c));
                assert!(
                    prev.is_none() || prev == Some((t, c)),
                    "seq {seq} acknowledged twice with different records"
                );
                base = base.max(c + 1);
                this_cycle += 1;
            }
        }
        let (store, report) =
            Store::open(dir.path(), StoreOptions::default(), Arc::new(SystemClock))
                .expect("reopen after kill");
        assert!(
            report.quarantined.is_empty(),
            "cycle {cycle}: corrupt records after a crash: {report:?}"
        );
        for (&seq, &(t, c)) in &acked {
            let rec = store
                .log()
                .read(seq)
                .unwrap_or_else(|e| panic!("cycle {cycle}: seq {seq}: {e}"));
            let rec =
                rec.unwrap_or_else(|| panic!("cycle {cycle}: acknowledged seq {seq} is missing"));
            assert_eq!(
                rec.payload,
                crash_payload::payload(t, c),
                "cycle {cycle}: seq {seq} differs"
            );
        }
        // Every record that is visible, acknowledged or not, is whole and self-consistent.
        let mut visible = 0u64;
        let mut last = 0;
        for rec in store.log().iter_from(1) {
            let rec = rec.unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
            assert!(rec.seq > last, "sequence went backwards");
            last = rec.seq;
            let (t, c) = crash_payload::describe(&rec.payload).expect("payload header");
            assert_eq!(
                rec.payload,
                crash_payload::payload(t, c),
                "cycle {cycle}: torn record {} visible",
                rec.seq
            );
            base = base.max(c + 1);
            visible += 1;
        }
        assert!(visible >= acked.len() as u64);
        eprintln!("cycle {cycle}: {this_cycle} acknowledged, {} in total, {visible} visible, truncated {:?}", acked.len(), report.truncated);
        store.close().unwrap();
    }
    assert!(
        acked.len() as u32 > cycles,
        "the child acknowledged almost nothing: {}",
        acked.len()
    );
}
