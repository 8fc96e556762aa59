//! Operator commands that look at hookd from outside: `hookd status` asks a running hookd
//! over HTTP ([`status`], through the small blocking client in [`http`]); `hookd inspect`
//! reads a stopped store from disk, changing nothing ([`inspect`]).
//!
//! Each command returns a typed report or error; `main.rs` prints and picks the exit status.

pub mod http;
pub mod inspect;
pub mod status;

/// `1536` -> `1.5 KiB`: sizes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{v:.1} {}", UNITS[unit]),
    }
}

/// `93_500` ms -> `1m33s`: ages and uptimes for people.
pub fn human_duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
        assert_eq!(human_duration_ms(250), "250ms");
        assert_eq!(human_duration_ms(1_500), "1.5s");
        assert_eq!(human_duration_ms(93_500), "1m33s");
        assert_eq!(human_duration_ms(7_260_000), "2h01m");
        assert_eq!(human_duration_ms(90_000_000), "1d01h");
    }
}
