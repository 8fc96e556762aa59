//! Process signals, received synchronously on the main thread.
//!
//! [`block`] masks SIGINT, SIGTERM and SIGHUP before any other thread starts, so every thread
//! inherits the mask and none is interrupted; the main thread then takes them one at a time
//! with [`wait`]. No signal handler runs, so nothing async-signal-unsafe can happen.

use nix::sys::signal::{SigSet, Signal as NixSignal};

/// A signal hookd acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: drain and stop.
    Stop,
    /// SIGHUP: reload the config.
    Reload,
}

fn set() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [NixSignal::SIGINT, NixSignal::SIGTERM, NixSignal::SIGHUP] {
        set.add(sig);
    }
    set
}

/// Blocks the signals in the calling thread (and so in every thread it starts afterwards).
pub fn block() -> std::io::Result<()> {
    set().thread_block().map_err(std::io::Error::from)
}

/// Waits for the next blocked signal.
pub fn wait() -> std::io::Result<Signal> {
    let sig = set().wait().map_err(std::io::Error::from)?;
    Ok(if sig == NixSignal::SIGHUP {
        Signal::Reload
    } else {
        Signal::Stop
    })
}
