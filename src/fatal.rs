//! Stopping hookd on purpose, loudly, when going on would break a promise silently.
//!
//! Used where a part cannot make progress and a restart is the repair: for example the
//! recorder when the index keeps refusing writes (its deliveries would otherwise stay
//! unsettled and pin the fan-out cursor for good). What was acknowledged is on disk, so the
//! restart loses nothing; systemd (`Restart=on-failure`) starts hookd again.

/// The exit status of a deliberate stop (EX_SOFTWARE).
pub const EXIT_CODE: i32 = 70;

/// Logs `why` as an error, writes it to standard error too (the log may be what fails), and
/// ends the process with [`EXIT_CODE`].
pub fn stop(why: &str) -> ! {
    tracing::error!(why, "hookd stops: {why}");
    eprintln!("hookd: fatal: {why}; stopping (exit {EXIT_CODE}) so that a restart recovers");
    std::process::exit(EXIT_CODE)
}
