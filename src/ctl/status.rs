//! `hookd status`: asks a running hookd for `GET /api/v1/status/summary` (a `read` token) and
//! puts its health part in a few lines: shards, the dispatcher, pending deliveries and the
//! oldest one's age, disk use against `storage.max_bytes`, unhealthy endpoints.

use std::{fmt::Write as _, time::Duration};

use serde::Deserialize;

use super::{
    http::{self, HttpError},
    human_bytes, human_duration_ms,
};

/// The route asked.
pub const SUMMARY_PATH: &str = "/api/v1/status/summary?seconds=1";
/// How long each step of the request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why no status could be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("hookd refused the token ({status} {code}): {detail}")]
    Refused {
        status: u16,
        code: String,
        detail: String,
    },
    #[error("hookd answered {status}: {detail}")]
    Unexpected { status: u16, detail: String },
    #[error("the status answer is not what this hookd-cli expects: {0}")]
    Shape(#[from] serde_json::Error),
}

/// The parts of the summary shown (the JSON has more).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub version: String,
    pub uptime_ms: u64,
    pub driver: String,
    pub shards: Vec<Shard>,
    pub dispatcher: Beat,
    pub disk: Disk,
    pub pending: Pending,
    pub endpoints: Endpoints,
    /// Absent from a hookd older than this CLI.
    #[serde(default)]
    pub problems: Problems,
}

/// Bugs met and threads lost since start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problems {
    pub panics: u64,
    pub last_panic: Option<String>,
    pub stopped: Vec<String>,
}

/// One shard.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    pub index: usize,
    pub up: bool,
    pub beat_age_secs: Option<u64>,
    pub queue_depth: usize,
}

/// A heartbeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Beat {
    pub up: bool,
    pub beat_age_secs: Option<u64>,
}

/// Disk use.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub bytes: u64,
    pub log_bytes: u64,
    pub log_max_bytes: u64,
}

/// Pending deliveries.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub count: usize,
    pub oldest_age_ms: u64,
}

/// Unhealthy endpoints, counted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub unhealthy: Vec<Unhealthy>,
    pub truncated: bool,
}

/// One unhealthy endpoint: only whether it is disabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unhealthy {
    pub disabled: bool,
}

/// Asks hookd at `url` with `token`; returns the summary and its raw JSON.
pub fn fetch(
    url: &str,
    token: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<(Summary, serde_json::Value), StatusError> {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let resp = http::get(url, SUMMARY_PATH, &headers, TIMEOUT, ca_file)?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j[name].as_str())
            .map(str::to_owned)
    };
    match resp.status {
        200 => {}
        401 | 403 => {
            return Err(StatusError::Refused {
                status: resp.status,
                code: field("code").unwrap_or_default(),
                detail: field("detail").unwrap_or_else(|| "a read token is needed".into()),
            })
        }
        status => {
            let detail = field("detail").unwrap_or_else(|| {
                String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(200)
                    .collect()
            });
            return Err(StatusError::Unexpected { status, detail });
        }
    }
    let json = json.unwrap_or_default();
    let summary = Summary::deserialize(&json)?;
    Ok((summary, json))
}

/// True when every shard and the dispatcher are up, no thread stopped and nothing panicked.
pub fn healthy(s: &Summary) -> bool {
    s.dispatcher.up
        && s.shards.iter().all(|sh| sh.up)
        && s.problems.stopped.is_empty()
        && s.problems.panics == 0
}

/// The summary as text, one fact per line.
pub fn render(url: &str, s: &Summary) -> String {
    let mut out = String::new();
    let up = s.shards.iter().filter(|sh| sh.up).count();
    let _ = writeln!(
        out,
        "hookd {} at {url}: up {}, {} driver",
        s.version,
        human_duration_ms(s.uptime_ms),
        s.driver
    );
    let _ = writeln!(out, "shards:      {up} of {} up", s.shards.len());
    for sh in &s.shards {
        let beat = match sh.beat_age_secs {
            Some(a) => format!("heartbeat {a}s ago"),
            None => "no heartbeat yet".into(),
        };
        let _ = writeln!(
            out,
            "  shard {}:   {}, {beat}, {} queued",
            sh.index,
            if sh.up { "up" } else { "DOWN" },
            sh.queue_depth
        );
    }
    let _ = writeln!(
        out,
        "dispatcher:  {}",
        if s.dispatcher.up { "up" } else { "DOWN" }
    );
    if !s.problems.stopped.is_empty() {
        let _ = writeln!(out, "STOPPED:     {}", s.problems.stopped.join(", "));
    }
    if s.problems.panics > 0 {
        let last = s.problems.last_panic.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "panics:      {} since start (bugs; each stopped one task); last: {last}",
            s.problems.panics
        );
    }
    let oldest = match s.pending.count {
        0 => String::new(),
        _ => format!(
            ", oldest {} old",
            human_duration_ms(s.pending.oldest_age_ms)
        ),
    };
    let _ = writeln!(out, "pending:     {} deliveries{oldest}", s.pending.count);
    let share = match s.disk.log_max_bytes {
        0 => String::new(),
        max => format!(
            ", {:.1}% of storage.max_bytes ({})",
            s.disk.log_bytes as f64 * 100.0 / max as f64,
            human_bytes(max)
        ),
    };
    let _ = writeln!(
        out,
        "disk:        {}: log {}{share}; index {}",
        human_bytes(s.disk.bytes),
        human_bytes(s.disk.log_bytes),
        human_bytes(s.disk.bytes.saturating_sub(s.disk.log_bytes))
    );
    let disabled = s.endpoints.unhealthy.iter().filter(|e| e.disabled).count();
    let more = if s.endpoints.truncated {
        " or more"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "endpoints:   {} unhealthy{more} ({disabled} disabled)",
        s.endpoints.unhealthy.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_summary() {
        let json = serde_json::json!({
            "version": "0.1.0", "nowMs": 1, "startedMs": 0, "uptimeMs": 61_000,
            "driver": "io_uring",
            "shards": [
                {"index": 0, "up": true, "beatAgeSecs": 0, "queueDepth": 3},
                {"index": 1, "up": false, "beatAgeSecs": 9, "queueDepth": 0}
            ],
            "dispatcher": {"up": true, "beatAgeSecs": 0},
            "disk": {"bytes": 3 << 20, "logBytes": 1 << 20, "logMaxBytes": 4 << 20},
            "pending": {"count": 12, "oldestAgeMs": 5_200},
            "series": {},
            "endpoints": {"unhealthy": [{"disabled": true}, {"disabled": false}],
                          "scanned": 5, "truncated": false, "limits": {}}
        });
        let s = Summary::deserialize(&json).unwrap();
        assert!(!healthy(&s));
        let text = render("http://h:1", &s);
        for line in [
            "hookd 0.1.0 at http://h:1: up 1m01s, io_uring driver\n",
            "shards:      1 of 2 up\n",
            "  shard 0:   up, heartbeat 0s ago, 3 queued\n",
            "  shard 1:   DOWN, heartbeat 9s ago, 0 queued\n",
            "dispatcher:  up\n",
            "pending:     12 deliveries, oldest 5.2s old\n",
            "disk:        3.0 MiB: log 1.0 MiB, 25.0% of storage.max_bytes (4.0 MiB); \
             index 2.0 MiB\n",
            "endpoints:   2 unhealthy (1 disabled)\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }
}
