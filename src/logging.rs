//! Logs through `tracing`: human-readable by default, one JSON object per line with
//! `log.format = "json"`, colours only on a terminal (journald gets plain text).

use std::io::IsTerminal;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A second call does nothing.
pub fn init(config: &LogConfig) {
    let level = config.level.as_str();
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("hookd={level},storage={level},warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
