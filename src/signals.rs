//! Process signals, received synchronously on the main thread.
//!
//! [`block`] masks SIGINT, SIGTERM and SIGHUP before any other thread starts, so every thread
//! inherits the mask and none is interrupted; the main thread then takes them one at a time
//! with [`wait`]. No signal handler runs, so nothing async-signal-unsafe can happen.

/// A signal hookd acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: drain and stop.
    Stop,
    /// SIGHUP: reload the config.
    Reload,
}

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write to the set we own; zeroed memory is a valid
    // starting value for sigset_t, and sigemptyset initializes it properly.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks the signals in the calling thread (and so in every thread it starts afterwards).
pub fn block() -> std::io::Result<()> {
    let set = set();
    // SAFETY: `set` is an initialized sigset_t; passing a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// Waits for the next blocked signal.
pub fn wait() -> std::io::Result<Signal> {
    let set = set();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialized and `sig` is a valid place for sigwait to write to.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(if sig == libc::SIGHUP {
        Signal::Reload
    } else {
        Signal::Stop
    })
}
