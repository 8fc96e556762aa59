//! Logs through `tracing`: human-readable by default, one JSON object per line with
//! `log.format = "json"`, colours only on a terminal (journald gets plain text).
//!
//! The level can change while hookd runs ([`set_level`], on config reload): the filter sits
//! behind a `tracing_subscriber` reload handle. The format cannot: it needs a restart.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::{reload, EnvFilter};

use crate::config::{LogConfig, LogFormat, LogLevel};

/// Replaces the installed subscriber's filter.
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>;

/// Set once by [`init`] when it installed the global subscriber.
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Why [`set_level`] did not change the level.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    /// [`init`] did not install the global subscriber (another one was there first).
    #[error("the log subscriber was not installed by hookd")]
    NotInstalled,
    /// The subscriber is gone or its filter could not be replaced.
    #[error("replacing the log filter: {0}")]
    Reload(#[from] reload::Error),
}

/// hookd's own crates at `level`, everything else at `warn`.
fn filter(level: LogLevel) -> EnvFilter {
    let level = level.as_str();
    EnvFilter::try_new(format!("hookd={level},storage={level},warn"))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. A second call does nothing.
pub fn init(config: &LogConfig) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(config.level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let set: Option<SetFilter> = match config.format {
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder
                .try_init()
                .ok()
                .map(|()| Box::new(move |f| handle.reload(f)) as SetFilter)
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder
                .try_init()
                .ok()
                .map(|()| Box::new(move |f| handle.reload(f)) as SetFilter)
        }
    };
    if let Some(set) = set {
        let _ = SET_FILTER.set(set);
    }
}

/// Changes the level of the subscriber [`init`] installed.
pub fn set_level(level: LogLevel) -> Result<(), LevelError> {
    let set = SET_FILTER.get().ok_or(LevelError::NotInstalled)?;
    set(filter(level))?;
    Ok(())
}
