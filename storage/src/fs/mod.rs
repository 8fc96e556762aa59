//! The seam between the log and the file system: every file operation of the log's path
//! (segment create, open, read, write, truncate, `fdatasync`/`fsync`, directory fsync,
//! rename, remove, listing, the quarantine copies) goes through [`Fs`] and [`FsFile`].
//!
//! [`RealFs`] is the default: `std::fs` and `FileExt`, one virtual call per operation (the
//! handle is chosen once, at [`crate::Log::open`]), so nothing changes and nothing measurable
//! is added. [`sim::SimFs`] is a simulated disk for tests: it keeps written-but-unsynced bytes
//! apart from durable ones, can cut the power (dropping, keeping part of, or tearing the
//! unsynced writes) and fails writes and syncs with `EIO` or `ENOSPC`, all from one seed
//! (`storage/tests/powerloss.rs` drives it).
//!
//! Out of the seam: the index (sled does its own I/O: the simulator cannot cut power under
//! it), the data directory's marker and lock files (`Store::open`), and the free-space reading
//! of [`crate::space`] (`statvfs` of the real directory). Directories are made with
//! [`Fs::create_dir_all`]; the simulator treats them as durable at once.

pub mod sim;

use std::{
    fs::{File, OpenOptions},
    io::{self, Read},
    os::unix::fs::FileExt,
    path::Path,
    sync::Arc,
};

/// A file opened through an [`Fs`]: positioned reads and writes, length, sync.
pub trait FsFile: Send + Sync + std::fmt::Debug {
    /// Fills `buf` from `offset`; `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (a failure may leave part of it written).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// `fdatasync(2)`: the file's data (and its length) survive a power cut once it returns.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync(2)`.
    fn sync_all(&self) -> io::Result<()>;
}

/// The file system operations of the log.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens `path` for reading and writing, created (or cut to nothing) first.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Opens the existing file `path` for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Reads the whole file `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Writes `bytes` as the whole file `path` (created or replaced), without syncing.
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Renames `from` to `to` (in one directory: durable after [`Fs::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path` (durable after [`Fs::sync_dir`]).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// fsyncs the directory `dir`, so that entries created, renamed or removed in it
    /// survive a power cut.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    /// A shared handle, for [`crate::Log::open_on`].
    pub fn shared() -> Arc<dyn Fs> {
        Arc::new(RealFs)
    }
}

/// A real file.
#[derive(Debug)]
pub struct RealFile(pub File);

impl FsFile for RealFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(RealFile(file)))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(RealFile(file)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(path, bytes)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
