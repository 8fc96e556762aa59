//! The storage crate's error type.
//!
//! Operating errors (disk full, a foreign data directory, a corrupt record) are values the
//! caller can match on; none of them panics. Positions are always named so that an operator can
//! find the bytes in question.

use std::{io, path::PathBuf};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error other than a full disk, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The filesystem is full (ENOSPC / EDQUOT). Nothing half-written was left behind.
    #[error("disk full while {context}")]
    DiskFull { context: String },
    /// The store is at its configured byte ceiling; delivery and retention keep running.
    #[error("log is at its size ceiling ({used} of {max} bytes)")]
    OverCapacity { used: u64, max: u64 },
    /// The directory exists and is not empty, but was not created by hookd.
    #[error("{path} is not a hookd data directory (no HOOKD marker, but not empty)")]
    ForeignDirectory { path: PathBuf },
    /// The directory cannot be written.
    #[error("{path} is not writable: {source}")]
    Unwritable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process holds the store's lock.
    #[error("{path} is locked by another hookd process")]
    Locked { path: PathBuf },
    /// Written by a newer hookd: refuse rather than misread it.
    #[error("{what} has format version {found}, this build reads up to {supported}")]
    NewerFormat {
        what: String,
        found: u8,
        supported: u8,
    },
    /// A record that failed to decode, with where it is.
    #[error("corrupt record in {location}: {reason}")]
    Corrupt { location: String, reason: String },
    /// The record was found corrupt at recovery and moved aside.
    #[error("record {seq} was quarantined as corrupt")]
    Quarantined { seq: u64 },
    /// The flush that would have made this record durable failed; it may or may not survive.
    #[error("flush failed; record {seq} is not known to be durable")]
    FlushFailed { seq: u64 },
    /// A record is larger than the store accepts.
    #[error("record of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// A uniqueness rule would be broken (a uid or name already taken).
    #[error("{what} already exists")]
    Conflict { what: String },
    /// The store has been closed.
    #[error("store is closed")]
    Closed,
    /// An error from sled, the index database.
    #[error("index database: {0}")]
    Sled(#[from] sled::Error),
}

impl Error {
    /// Wraps an I/O error, turning ENOSPC and EDQUOT into [`Error::DiskFull`].
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        if is_disk_full(&source) {
            Error::DiskFull {
                context: context.into(),
            }
        } else {
            Error::Io {
                context: context.into(),
                source,
            }
        }
    }

    /// True for errors that mean "no space left"; the caller should answer 507 and retry later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::DiskFull { .. } | Error::OverCapacity { .. } => true,
            Error::Sled(sled::Error::Io(e)) => is_disk_full(e),
            _ => false,
        }
    }
}

/// True when `e` means the filesystem or quota is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let full = [Errno::NOSPC, Errno::DQUOT].map(|n| Some(n.raw_os_error()));
    full.contains(&e.raw_os_error()) || e.kind() == io::ErrorKind::StorageFull
}

impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(e: sled::transaction::TransactionError<Error>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => Error::Sled(e),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
