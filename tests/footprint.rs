//! The memory an idle hookd holds: its anonymous resident memory (heap, stacks; not the
//! binary's pages, which differ between a debug and a release build) stays within issue 17's
//! bar for idle RSS, 32 MiB, with 25% slack. It caught the allocator backing each thread's
//! heap with a 2 MiB huge page (57 MiB idle; mimalloc's `no_thp` feature fixed it).

#[path = "support/hookd.rs"]
mod hookd;

/// Issue 17's bar for an idle hookd's RSS, and the slack this test allows above it.
const IDLE_RSS_BAR_KIB: u64 = 32 << 10;
const SLACK_PERCENT: u64 = 25;

/// `name:  N kB` from `/proc/<pid>/status`.
fn status_kib(pid: u32, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
}

#[test]
fn an_idle_hookd_stays_within_its_memory_bar() {
    let h = hookd::Hookd::start("");
    // One app and a few requests: idle, but past start-up.
    h.create(
        "/api/v1/app",
        serde_json::json!({"name": "Shop", "uid": "shop"}),
    );
    for _ in 0..10 {
        assert_eq!(h.admin("GET", "/api/v1/app/shop", None).status, 200);
    }
    let anon = status_kib(h.pid(), "RssAnon:");
    let max = IDLE_RSS_BAR_KIB * (100 + SLACK_PERCENT) / 100;
    assert!(
        anon <= max,
        "an idle hookd holds {anon} KiB of anonymous memory, over {max} KiB \
         (issue 17's bar of {IDLE_RSS_BAR_KIB} KiB plus {SLACK_PERCENT}%)"
    );
    eprintln!(
        "idle hookd: RssAnon {anon} KiB, RSS {} KiB",
        status_kib(h.pid(), "VmRSS:")
    );
}
