//! A simulated disk that loses what was not synced: the [`Fs`] the power-loss test runs the
//! log on (`storage/tests/powerloss.rs`).
//!
//! Each file keeps its **durable** bytes and, on top, the writes and truncations made since
//! its last `fdatasync`/`fsync` (the volatile layer, in order); reads see both. Likewise the
//! namespace: creating, renaming and removing a file change what the running system sees at
//! once, but reach the durable namespace only when their directory is fsynced.
//!
//! [`SimFs::power_cut`] is a power failure: for every file, and for the namespace, the
//! volatile layer is dropped wholly, kept in part (a seeded subset of the operations, in
//! order), or torn (a prefix of the operations, the last of them cut at an arbitrary byte).
//! What survives is durable; every handle opened before the cut fails from then on with
//! `EIO`, like the process that died with the machine.
//!
//! [`Faults`] make writes, truncations, syncs, creations, renames and directory syncs fail
//! with `EIO` or `ENOSPC`. A failed write may leave a prefix of itself behind (short write);
//! a failed sync leaves the file's unsynced writes unsynced, or, as Linux does after an
//! `fdatasync` error, forgets them: they stay readable but a later sync does not make them
//! durable, and a power cut loses them.
//!
//! Everything random comes from one [`Rng`] seeded at [`SimFs::new`], and nothing depends on
//! threads or time, so a seed replays a run exactly when one thread drives the log (the test
//! steps the flusher itself, [`crate::Log::open_stepped`]). Directories are durable as soon
//! as they are made.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    ffi::{OsStr, OsString},
    hash::{BuildHasherDefault, Hasher},
    io,
    os::unix::ffi::OsStrExt,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{Fs, FsFile};

/// A small, fast, seedable generator (SplitMix64): the simulator's and the test's only source
/// of randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `per_million` times in a million.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }
}

/// How often operations fail, per million calls of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// `write_all_at`, `set_len` and whole-file writes.
    pub write_per_million: u32,
    /// `sync_data`, `sync_all` and directory syncs.
    pub sync_per_million: u32,
    /// Creating, renaming and removing files.
    pub namespace_per_million: u32,
}

/// What survived of the volatile layer at a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Nothing unsynced survived.
    DropAll,
    /// A seeded subset of the unsynced operations survived.
    Subset,
    /// A prefix of the unsynced operations survived, the last one torn at a byte.
    Torn,
}

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl Op {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Op::Write { offset, bytes } => {
                let (at, end) = (*offset as usize, *offset as usize + bytes.len());
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[at..end].copy_from_slice(bytes);
            }
            Op::SetLen(len) => data.resize(*len as usize, 0),
        }
    }

    /// The op cut at a seeded byte (a truncation is all or nothing).
    fn torn(&self, rng: &mut Rng) -> Option<Op> {
        match self {
            Op::Write { offset, bytes } if !bytes.is_empty() => Some(Op::Write {
                offset: *offset,
                bytes: bytes[..rng.below(bytes.len() as u64) as usize].to_vec(),
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// What reads see: `durable` with the volatile layer applied (and writes a failed sync
    /// forgot).
    cache: Vec<u8>,
    /// The volatile layer, oldest first.
    ops: Vec<Op>,
}

/// A path as the disk keeps it: its bytes. Names compare as bytes (a `BTreeMap<PathBuf, _>`
/// compares component by component, which made path lookups most of the cost of a simulated
/// file operation), so `a//b` and `a/b` are two names here: the log builds every path the
/// same way (`dir.join(name)`), and a path must be written the same way to name the same file.
type Name = OsString;

/// Names to inodes. Hashed, not ordered: the log's names share long prefixes
/// (`/…/seg-000000000000000000…`), and an ordered map compares a name with several others per
/// lookup, each a `memcmp` that a fuzzer's hooks make costly; a hashed one compares once. What
/// gives names in an order ([`SimFs::list`], [`SimFs::describe`]) sorts them.
type Names = HashMap<Name, u64, BuildHasherDefault<NameHasher>>;
type Dirs = HashSet<Name, BuildHasherDefault<NameHasher>>;

/// A small, fixed hasher for [`Names`] (FxHash's step, eight bytes at a time): the same on every
/// run, so nothing depends on a random seed.
#[derive(Debug, Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().expect("eight bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(last) ^ rest.len() as u64).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `path` as a [`Name`].
fn name(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// The directory a [`Name`] is in, as `Path::parent` gives it.
fn parent(name: &OsStr) -> Option<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"/" {
        return None;
    }
    Some(OsStr::from_bytes(
        match b.iter().rposition(|&c| c == b'/') {
            None => b"",
            Some(0) => b"/",
            Some(i) => &b[..i],
        },
    ))
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(Name, u64),
    Unlink(Name),
    Rename(Name, Name, u64),
}

impl DirOp {
    /// Whether syncing `dir` makes this change durable.
    fn in_dir(&self, dir: &OsStr) -> bool {
        let in_dir = |p: &OsStr| parent(p) == Some(dir);
        match self {
            DirOp::Link(p, _) | DirOp::Unlink(p) => in_dir(p),
            DirOp::Rename(from, to, _) => in_dir(from) || in_dir(to),
        }
    }

    fn apply(&self, names: &mut Names) {
        match self {
            DirOp::Link(p, ino) => {
                names.insert(p.clone(), *ino);
            }
            DirOp::Unlink(p) => {
                names.remove(p);
            }
            DirOp::Rename(from, to, ino) => {
                if names.get(from) == Some(ino) {
                    names.remove(from);
                    names.insert(to.clone(), *ino);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Disk {
    rng: Rng,
    faults: Faults,
    /// Bumped by every power cut: handles of an older epoch are dead.
    epoch: u64,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    names: Names,
    durable_names: Names,
    dir_ops: Vec<DirOp>,
    dirs: Dirs,
    injected: u64,
}

impl Disk {
    /// A seeded failure of an operation of the kind `rate` picks from the faults.
    fn fault(&mut self, rate: fn(&Faults) -> u32) -> io::Result<()> {
        let per_million = rate(&self.faults);
        if per_million == 0 || !self.rng.chance(per_million) {
            return Ok(());
        }
        self.injected += 1;
        let errno = if self.rng.chance(500_000) {
            rustix::io::Errno::IO
        } else {
            rustix::io::Errno::NOSPC
        };
        Err(io::Error::from(errno))
    }

    fn inode(&mut self, ino: u64, epoch: u64) -> io::Result<&mut Inode> {
        if epoch != self.epoch {
            return Err(dead());
        }
        self.inodes.get_mut(&ino).ok_or_else(dead)
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        self.names
            .get(name(path))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn link_new(&mut self, path: &Path) -> io::Result<u64> {
        self.check_parent(path)?;
        self.next_inode += 1;
        let ino = self.next_inode;
        self.inodes.insert(ino, Inode::default());
        let name = name(path).to_owned();
        self.names.insert(name.clone(), ino);
        self.dir_ops.push(DirOp::Link(name, ino));
        Ok(ino)
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match parent(name(path)) {
            Some(p) if self.dirs.contains(p) => Ok(()),
            _ => Err(not_found(path)),
        }
    }

    fn push_op(&mut self, ino: u64, epoch: u64, op: Op) -> io::Result<()> {
        let inode = self.inode(ino, epoch)?;
        op.apply(&mut inode.cache);
        inode.ops.push(op);
        Ok(())
    }

    fn sync(&mut self, ino: u64, epoch: u64) -> io::Result<()> {
        self.inode(ino, epoch)?;
        if let Err(e) = self.fault(|f| f.sync_per_million) {
            let forget = self.rng.chance(500_000);
            let inode = self.inode(ino, epoch)?;
            if forget {
                inode.ops.clear();
            }
            return Err(e);
        }
        let inode = self.inode(ino, epoch)?;
        for op in std::mem::take(&mut inode.ops) {
            op.apply(&mut inode.durable);
        }
        Ok(())
    }

    /// Which of `n` volatile operations survive a cut: `(kept, torn)`, where `torn` is the
    /// index of the one kept in part.
    fn survivors(rng: &mut Rng, mode: CutMode, n: usize) -> (Vec<bool>, Option<usize>) {
        match mode {
            CutMode::DropAll => (vec![false; n], None),
            CutMode::Subset => ((0..n).map(|_| rng.chance(500_000)).collect(), None),
            CutMode::Torn => {
                let k = rng.below(n as u64 + 1) as usize;
                ((0..n).map(|i| i < k).collect(), (k < n).then_some(k))
            }
        }
    }
}

/// `names` in the order of their bytes.
fn sorted(names: &Names) -> Vec<(&Name, u64)> {
    let mut v: Vec<(&Name, u64)> = names.iter().map(|(p, &i)| (p, i)).collect();
    v.sort_unstable_by(|a, b| bytes_cmp(a.0.as_bytes(), b.0.as_bytes()));
    v
}

/// `a.cmp(b)`, eight bytes at a time and without `memcmp`: the names of a directory share
/// long prefixes, and a fuzzer's `memcmp` hook walks them byte by byte for every comparison
/// of a sort.
fn bytes_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let word = |s: &[u8], i: usize| u64::from_be_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 <= a.len() && i + 8 <= b.len() {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    let (a, b) = (&a[i..], &b[i..]);
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

fn dead() -> io::Error {
    io::Error::other("the power was cut under this handle")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display()))
}

/// The simulated disk. Clones share it.
#[derive(Debug, Clone)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
}

impl SimFs {
    /// An empty disk whose every random choice follows `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        let disk = Disk {
            rng: Rng::new(seed),
            faults,
            epoch: 0,
            inodes: BTreeMap::new(),
            next_inode: 0,
            names: Names::default(),
            durable_names: Names::default(),
            dir_ops: Vec::new(),
            dirs: Dirs::default(),
            injected: 0,
        };
        Self {
            disk: Arc::new(Mutex::new(disk)),
        }
    }

    /// This disk as the log's [`Fs`].
    pub fn shared(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// Changes how often operations fail from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Cuts the power: every file's and the namespace's unsynced operations are dropped,
    /// kept in part or torn, as the seed picks; every open handle dies. Returns the mode.
    pub fn power_cut(&self) -> CutMode {
        let mut guard = self.lock();
        let disk = &mut *guard;
        let mode = match disk.rng.below(3) {
            0 => CutMode::DropAll,
            1 => CutMode::Subset,
            _ => CutMode::Torn,
        };
        for inode in disk.inodes.values_mut() {
            let ops = std::mem::take(&mut inode.ops);
            let (kept, torn) = Disk::survivors(&mut disk.rng, mode, ops.len());
            for (op, keep) in ops.iter().zip(kept) {
                if keep {
                    op.apply(&mut inode.durable);
                }
            }
            if let Some(part) = torn.and_then(|i| ops[i].torn(&mut disk.rng)) {
                part.apply(&mut inode.durable);
            }
            inode.cache = inode.durable.clone();
        }
        let dir_ops = std::mem::take(&mut disk.dir_ops);
        let (kept, _) = Disk::survivors(&mut disk.rng, mode, dir_ops.len());
        for (op, keep) in dir_ops.iter().zip(kept) {
            if keep {
                op.apply(&mut disk.durable_names);
            }
        }
        disk.names = disk.durable_names.clone();
        let live: BTreeSet<u64> = disk.names.values().copied().collect();
        disk.inodes.retain(|ino, _| live.contains(ino));
        disk.epoch += 1;
        mode
    }

    /// The bytes of `path` that would survive a power cut now (`None`: no durable entry).
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.lock();
        let ino = disk.durable_names.get(name(path))?;
        disk.inodes.get(ino).map(|i| i.durable.clone())
    }

    /// The namespace, for a failing test to print: each name with its file's length and
    /// durable length, then the durable names, then the unsynced directory changes.
    pub fn describe(&self) -> String {
        let disk = self.lock();
        let mut out = String::from("names:");
        for (path, ino) in sorted(&disk.names) {
            let inode = &disk.inodes[&ino];
            let (len, durable) = (inode.cache.len(), inode.durable.len());
            out += &format!(
                " {} (#{ino}, {len} bytes, {durable} durable)",
                Path::new(path).display()
            );
        }
        out += "; durable names:";
        for (path, ino) in sorted(&disk.durable_names) {
            out += &format!(" {} (#{ino})", Path::new(path).display());
        }
        out += &format!("; unsynced directory changes: {:?}", disk.dir_ops);
        out
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self, ino: u64, epoch: u64) -> Arc<dyn FsFile> {
        Arc::new(SimFile {
            disk: self.disk.clone(),
            ino,
            epoch,
        })
    }
}

/// A file open on a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    disk: Arc<Mutex<Disk>>,
    ino: u64,
    epoch: u64,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FsFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut disk = self.lock();
        let data = &disk.inode(self.ino, self.epoch)?.cache;
        let at = offset as usize;
        let src = data
            .get(at..at + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = self.lock();
        disk.inode(self.ino, self.epoch)?;
        if let Err(e) = disk.fault(|f| f.write_per_million) {
            // A short write: a seeded prefix of it may have landed.
            let part = disk.rng.below(buf.len() as u64 + 1) as usize;
            if part > 0 {
                let bytes = buf[..part].to_vec();
                disk.push_op(self.ino, self.epoch, Op::Write { offset, bytes })?;
            }
            return Err(e);
        }
        let bytes = buf.to_vec();
        disk.push_op(self.ino, self.epoch, Op::Write { offset, bytes })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.lock();
        disk.inode(self.ino, self.epoch)?;
        disk.fault(|f| f.write_per_million)?;
        disk.push_op(self.ino, self.epoch, Op::SetLen(len))
    }

    fn size(&self) -> io::Result<u64> {
        let mut disk = self.lock();
        Ok(disk.inode(self.ino, self.epoch)?.cache.len() as u64)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.lock().sync(self.ino, self.epoch)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.lock().sync(self.ino, self.epoch)
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        for d in dir.ancestors() {
            disk.dirs.insert(name(d).to_owned());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut disk = self.lock();
        disk.fault(|f| f.namespace_per_million)?;
        let epoch = disk.epoch;
        let ino = match disk.names.get(name(path)).copied() {
            Some(ino) => {
                disk.push_op(ino, epoch, Op::SetLen(0))?;
                ino
            }
            None => disk.link_new(path)?,
        };
        Ok(self.handle(ino, epoch))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let disk = self.lock();
        let ino = disk.lookup(path)?;
        Ok(self.handle(ino, disk.epoch))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut disk = self.lock();
        let ino = disk.lookup(path)?;
        let epoch = disk.epoch;
        Ok(disk.inode(ino, epoch)?.cache.clone())
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let file = self.create(path)?;
        file.write_all_at(bytes, 0)
    }

    fn exists(&self, path: &Path) -> bool {
        let disk = self.lock();
        let name = name(path);
        disk.names.contains_key(name) || disk.dirs.contains(name)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        let ino = disk.lookup(from)?;
        disk.check_parent(to)?;
        disk.fault(|f| f.namespace_per_million)?;
        let (from, to) = (name(from).to_owned(), name(to).to_owned());
        disk.names.remove(&from);
        disk.names.insert(to.clone(), ino);
        let op = DirOp::Rename(from, to, ino);
        disk.dir_ops.push(op);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.lock();
        disk.lookup(path)?;
        disk.fault(|f| f.namespace_per_million)?;
        let name = name(path).to_owned();
        disk.names.remove(&name);
        disk.dir_ops.push(DirOp::Unlink(name));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.lock();
        let dir_name = name(dir);
        if !disk.dirs.contains(dir_name) {
            return Err(not_found(dir));
        }
        // The entries of `dir` are the names that start with `dir/` (`/` for the root, none
        // for the empty path) and hold no other separator after it: files first, then
        // directories, each in the order of their bytes.
        let prefix: Name = match dir_name.as_bytes() {
            b"" => OsString::new(),
            b"/" => OsString::from("/"),
            _ => {
                let mut p = dir_name.to_owned();
                p.push("/");
                p
            }
        };
        let entries = |keys: &mut dyn Iterator<Item = &Name>, out: &mut Vec<String>| {
            let mut found: Vec<&[u8]> = keys
                .filter_map(|key| key.as_bytes().strip_prefix(prefix.as_bytes()))
                .filter(|rest| !rest.is_empty() && *rest != b".." && !rest.contains(&b'/'))
                .collect();
            found.sort_unstable_by(|a, b| bytes_cmp(a, b));
            out.extend(
                found
                    .iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned()),
            );
        };
        let mut out = Vec::new();
        entries(&mut disk.names.keys(), &mut out);
        entries(&mut disk.dirs.iter(), &mut out);
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut guard = self.lock();
        let disk = &mut *guard;
        disk.fault(|f| f.sync_per_million)?;
        let dir = name(dir);
        let (now, later): (Vec<DirOp>, Vec<DirOp>) = std::mem::take(&mut disk.dir_ops)
            .into_iter()
            .partition(|op| op.in_dir(dir));
        for op in &now {
            op.apply(&mut disk.durable_names);
        }
        disk.dir_ops = later;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn disk() -> (SimFs, PathBuf) {
        let fs = SimFs::new(7, Faults::default());
        let dir = PathBuf::from("/sim/log");
        fs.create_dir_all(&dir).unwrap();
        (fs, dir)
    }

    #[test]
    fn synced_writes_survive_a_cut_and_unsynced_ones_need_not() {
        let (fs, dir) = disk();
        let path = dir.join("a");
        let f = fs.create(&path).unwrap();
        fs.sync_dir(&dir).unwrap();
        f.write_all_at(b"durable", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b" maybe", 7).unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"durable maybe");
        assert_eq!(fs.durable_bytes(&path).unwrap(), b"durable");
        fs.power_cut();
        let after = fs.read(&path).unwrap();
        assert!(after.starts_with(b"durable") && b"durable maybe".starts_with(&after));
        assert!(
            f.write_all_at(b"x", 0).is_err(),
            "the handle died with the power"
        );
    }

    #[test]
    fn an_entry_is_durable_only_after_its_directory_is_synced() {
        let (fs, dir) = disk();
        let f = fs.create(&dir.join("a")).unwrap();
        f.sync_all().unwrap();
        assert_eq!(fs.durable_bytes(&dir.join("a")), None);
        fs.sync_dir(&dir).unwrap();
        assert_eq!(fs.durable_bytes(&dir.join("a")), Some(Vec::new()));
        fs.rename(&dir.join("a"), &dir.join("b")).unwrap();
        fs.sync_dir(&dir).unwrap();
        fs.remove_file(&dir.join("b")).unwrap();
        assert!(!fs.exists(&dir.join("b")));
        assert!(
            fs.durable_bytes(&dir.join("b")).is_some(),
            "until the dir sync"
        );
        fs.sync_dir(&dir).unwrap();
        assert_eq!(fs.durable_bytes(&dir.join("b")), None);
    }

    #[test]
    fn bytes_cmp_orders_as_slices_do() {
        let words: [&[u8]; 12] = [
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"abcdefghabcdefgh",
            b"abcdefghabcdefgz",
            b"seg-00000000000000000009.log",
            b"seg-00000000000000000010.log",
            b"seg-00000000000000000010.log.tmp",
            b"\xff\xfe",
        ];
        for a in words {
            for b in words {
                assert_eq!(bytes_cmp(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn list_gives_the_names_of_one_directory() {
        let (fs, dir) = disk();
        fs.create_dir_all(&dir.join("sub/deeper")).unwrap();
        fs.create(Path::new("/sim/log/a")).unwrap();
        fs.create(&dir.join("sub/b")).unwrap();
        fs.create(Path::new("/sim/log-c")).unwrap();
        assert!(fs.exists(Path::new("/sim/log/a")) && fs.exists(&dir.join("sub/deeper")));
        let mut names = fs.list(&dir).unwrap();
        names.sort();
        assert_eq!(names, ["a", "sub"]);
        assert_eq!(fs.list(&dir.join("sub")).unwrap(), ["b", "deeper"]);
        let mut top = fs.list(Path::new("/sim")).unwrap();
        top.sort();
        assert_eq!(top, ["log", "log-c"]);
        assert_eq!(fs.list(Path::new("/")).unwrap(), ["sim"]);
    }

    #[test]
    fn a_seed_replays_the_same_cuts() {
        let run = |seed| {
            let fs = SimFs::new(seed, Faults::default());
            let dir = PathBuf::from("/d");
            fs.create_dir_all(&dir).unwrap();
            let f = fs.create(&dir.join("f")).unwrap();
            fs.sync_dir(&dir).unwrap();
            for i in 0..20u8 {
                f.write_all_at(&[i; 5], u64::from(i) * 5).unwrap();
            }
            fs.power_cut();
            fs.read(&dir.join("f")).unwrap()
        };
        assert_eq!(run(3), run(3));
        assert!((0..20).any(|s| run(s) != run(3)));
    }

    #[test]
    fn faults_fail_writes_and_syncs_with_eio_or_enospc() {
        let all = Faults {
            write_per_million: 1_000_000,
            sync_per_million: 1_000_000,
            namespace_per_million: 0,
        };
        let (fs, dir) = disk();
        let f = fs.create(&dir.join("a")).unwrap();
        fs.set_faults(all);
        let errno = |e: io::Error| e.raw_os_error();
        let w = errno(f.write_all_at(b"x", 0).unwrap_err());
        let s = errno(f.sync_data().unwrap_err());
        for e in [w, s] {
            let (eio, enospc) = (rustix::io::Errno::IO, rustix::io::Errno::NOSPC);
            assert!(
                e == Some(eio.raw_os_error()) || e == Some(enospc.raw_os_error()),
                "{e:?}"
            );
        }
        assert_eq!(fs.injected(), 2);
    }
}
