//! Free space on the store's filesystem, and the reserve kept for the index.
//!
//! Left alone, the log would fill the filesystem to its last byte, and the index (sled) would
//! be next to hit ENOSPC. sled treats a failed write as fatal for the rest of the process: every
//! later index operation fails until a restart, so delivery and management would stop. Hence
//! [`Space::check`]: appends are refused with [`Error::DiskFull`] while the filesystem has less
//! than the reserve free, and the reserve is what delivery state, attempts and management
//! writes use meanwhile. It buys time, not immunity: if the index grows through the whole
//! reserve (or another program fills the disk), sled can still fail.
//!
//! Free space is read with `statvfs(3)` (blocks available to unprivileged users) at most every
//! [`SAMPLE_EVERY`]; between two readings, the log's own growth since the last reading is
//! subtracted, so a burst of appends cannot overshoot the reserve by more than what the index
//! and other programs wrote meanwhile.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// How often the filesystem is asked.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The reserve until told otherwise.
pub const DEFAULT_RESERVE_BYTES: u64 = 64 << 20;

/// No reading yet.
const NEVER: u64 = u64::MAX;

/// The free-space guard of one data directory.
#[derive(Debug)]
pub struct Space {
    dir: PathBuf,
    c_dir: Option<CString>,
    reserve: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` of the last reading, or [`NEVER`].
    sampled_at_ms: AtomicU64,
    /// Bytes free at the last reading.
    free: AtomicU64,
    /// The log's bytes at the last reading.
    log_bytes: AtomicU64,
}

impl Space {
    /// A guard for the filesystem holding `dir`, with the default reserve.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            c_dir: CString::new(dir.as_os_str().as_bytes()).ok(),
            reserve: AtomicU64::new(DEFAULT_RESERVE_BYTES),
            started: Instant::now(),
            sampled_at_ms: AtomicU64::new(NEVER),
            free: AtomicU64::new(u64::MAX),
            log_bytes: AtomicU64::new(0),
        }
    }

    /// Sets the bytes kept free (0: none; appends then run until ENOSPC).
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
    }

    /// The bytes kept free.
    pub fn reserve(&self) -> u64 {
        self.reserve.load(Ordering::Relaxed)
    }

    /// Bytes free on the filesystem now, by its own count, or `None` if it cannot be asked.
    #[allow(
        clippy::useless_conversion,
        reason = "the statvfs fields are 32 bits wide on some targets"
    )]
    pub fn free_now(&self) -> Option<u64> {
        let path = self.c_dir.as_ref()?;
        let st = rustix::fs::statvfs(path.as_c_str()).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Estimated bytes free: the last reading (taken again when older than [`SAMPLE_EVERY`])
    /// less what the log grew since. `log_bytes` is the log's size now.
    pub fn estimate(&self, log_bytes: u64) -> u64 {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.estimate_at(now, log_bytes)
    }

    /// [`Space::estimate`] at `now` milliseconds after the guard was made.
    fn estimate_at(&self, now: u64, log_bytes: u64) -> u64 {
        let at = self.sampled_at_ms.load(Ordering::Acquire);
        let stale = at == NEVER || now.saturating_sub(at) >= SAMPLE_EVERY.as_millis() as u64;
        // One caller takes the reading; the others use the last one meanwhile.
        if stale
            && self
                .sampled_at_ms
                .compare_exchange(at, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // A filesystem that cannot be asked is not refused for it.
            let free = self.free_now().unwrap_or(u64::MAX);
            self.log_bytes.store(log_bytes, Ordering::Relaxed);
            self.free.store(free, Ordering::Release);
        }
        let grown = log_bytes.saturating_sub(self.log_bytes.load(Ordering::Relaxed));
        self.free.load(Ordering::Acquire).saturating_sub(grown)
    }

    /// `Ok` while appending `len` more bytes leaves the reserve free; [`Error::DiskFull`]
    /// otherwise.
    pub fn check(&self, log_bytes: u64, len: u64) -> Result<()> {
        let reserve = self.reserve();
        if reserve == 0 {
            return Ok(());
        }
        let free = self.estimate(log_bytes);
        if free.saturating_sub(len) >= reserve {
            return Ok(());
        }
        Err(Error::DiskFull {
            context: format!(
                "appending: {} has {free} bytes free, and {reserve} are kept free for the index",
                self.dir.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_filesystem_and_refuses_below_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path());
        let free = space.free_now().expect("statvfs works on a temp dir");
        assert!(free > 0);
        space.set_reserve(1);
        space.check(0, 0).unwrap();
        space.set_reserve(free.saturating_mul(4).max(1 << 50));
        let e = space.check(0, 0).unwrap_err();
        assert!(e.is_disk_full(), "{e}");
        assert!(e.to_string().contains("kept free for the index"), "{e}");
        space.set_reserve(0);
        space.check(0, u64::MAX).unwrap();
    }

    #[test]
    fn log_growth_between_readings_counts_against_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path());
        let every = SAMPLE_EVERY.as_millis() as u64;
        let first = space.estimate_at(0, 1_000);
        // Within SAMPLE_EVERY of the reading: the log's growth is subtracted, not re-read.
        assert_eq!(space.estimate_at(every - 1, 5_096), first - 4096);
        assert_eq!(space.estimate_at(every - 1, 1_000), first);
        // Then read again: the log's growth is in the filesystem's own count (or not, on a
        // filesystem that others write to; either way it is a fresh reading).
        space.estimate_at(every, 9_999);
        assert_eq!(space.log_bytes.load(Ordering::Relaxed), 9_999);
    }

    #[test]
    fn a_directory_that_cannot_be_asked_is_not_refused() {
        let space = Space::new(Path::new("/nonexistent/hookd/space/test"));
        assert_eq!(space.free_now(), None);
        space.check(0, 0).unwrap();
    }
}
