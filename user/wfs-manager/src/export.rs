//! The export directory: the files this host owns, as the kernel's LOOKUP,
//! GETATTR and READDIR see them.
//!
//! Only regular files whose names fit the flat namespace are shared (see
//! [`wfs_abi::valid_name`]); symbolic links are not followed, so nothing
//! outside the directory can be reached.
//!
//! The directory is opened once, when the export is made (a descriptor;
//! the configured path may itself be a symbolic link, the administrator's
//! choice, and is followed then, never again: a path later pointed
//! elsewhere does not move the export). Every name in it is reached from
//! that descriptor alone: files are opened with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`
//! (`openat2()` here, the one place that opens an export file), and stat,
//! unlink, rename, link and listing use the `*at` calls on the descriptor
//! without following a link. A symbolic link in the export, whether it
//! points outside (`x -> /etc/shadow`, which would otherwise be served to
//! every host) or to a file inside, is neither listed nor looked up nor
//! opened: to every host the name does not exist (`ENOENT`), as a
//! directory or FIFO does not. A kernel without `openat2` (before 5.6, or
//! a seccomp filter that forbids it) makes [`Export::checked`] fail: the
//! manager does not start rather than fall back to path lookups.
//!
//! A file's id is a 64-bit hash of its file handle (`name_to_handle_at(2)`,
//! the NFS server's way of naming a file), with the top bit set, so never
//! 0 or 1 (the kernel's root). The export's file system keeps a handle
//! across renames and restarts, and gives a file made again under a
//! removed name (even on a reused inode number) another one: so an id
//! follows a file, not its name, and a host that kept a removed file open
//! never reaches its successor. On a file system without handles (no
//! `CONFIG_FHANDLE`, or one that cannot export them) the id is a hash of
//! the name, and files cannot be renamed (`EXDEV`). Two names of one id
//! (hard links, or hashes alike) are refused but for the first.
//!
//! The owner keeps the files it serves open ([`OPEN_FILES`] at most), so a
//! page read or written costs a `pread`/`pwrite` and an `fstat`, not a path
//! lookup and an `open` each. A file is opened as above (names are one
//! component: no symbolic link is followed, even one put in place of a
//! file after its LOOKUP) with `O_NONBLOCK` (a FIFO put there does not
//! block the manager), and must be a regular file. Each use checks with an
//! `fstatat(AT_SYMLINK_NOFOLLOW)` of the name that it still stands for the
//! open file; one removed, renamed away or replaced is opened again by
//! name.
//!
//! Files grow only through [`Export::set_size`] (SETSIZE, at the owner):
//! a page is written only within the file's size, which every use reads
//! afresh from the file, never from a copy kept here.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
#[cfg(test)]
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use wfs_abi::{Attr, Grant, NSEC_PER_SEC, PAGE_SIZE, Time, errno, valid_name};

/// The user and group id a squashed root is taken as (`nobody`,
/// `nogroup`), as the kernel takes it for a squashed file.
pub const NOBODY: u32 = 65534;

/// A file time from `stat`'s seconds and nanoseconds (these clamped to
/// within the second, as the ABI needs).
pub fn time(sec: i64, nsec: i64) -> Time {
    Time {
        sec,
        nsec: nsec.clamp(0, i64::from(NSEC_PER_SEC) - 1) as u32,
    }
}

/// FNV-1a, 64 bits, over `parts`, with the top bit forced on.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | (1 << 63)
}

/// The id of a file named `name` on a file system without file handles:
/// a hash of the name.
pub fn file_id(name: &[u8]) -> u64 {
    fnv(&[name])
}

/// Tests only: the id the export in `dir` gives its file `name`.
#[cfg(test)]
pub(crate) fn id_in(dir: &Path, name: &[u8]) -> u64 {
    c_path(&dir.join(std::ffi::OsStr::from_bytes(name)))
        .and_then(|p| handle_id(libc::AT_FDCWD, &p, 0))
        .ok()
        .flatten()
        .unwrap_or_else(|| file_id(name))
}

/// `MAX_HANDLE_SZ` of `<linux/exportfs.h>`.
const MAX_HANDLE_SZ: usize = 128;

/// Names beginning so are files removed while some host had them open
/// (`.wfs-gone-<id>`, [`gone_name`]): kept until the last close, never
/// looked up, listed or made through WFS.
pub const GONE_PREFIX: &[u8] = b".wfs-gone-";

/// The hidden name file `id` is kept under once removed while open.
pub fn gone_name(id: u64) -> Vec<u8> {
    format!(".wfs-gone-{id:016x}").into_bytes()
}

/// Whether `name` is a name WFS shows: valid, and not a kept file's.
pub fn shown(name: &[u8]) -> bool {
    valid_name(name) && !name.starts_with(GONE_PREFIX)
}

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// `path` for a system call.
#[cfg(test)]
fn c_path(path: &Path) -> Result<CString, i32> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| errno::EINVAL)
}

/// Export name `name` for a system call: one path component
/// ([`valid_name`]: no `/`, not `.` or `..`), else `ENOENT`.
fn c_name(name: &[u8]) -> Result<CString, i32> {
    if !valid_name(name) {
        return Err(errno::ENOENT);
    }
    CString::new(name).map_err(|_| errno::ENOENT)
}

/// The id of the file at `name` relative to `dir` (`AT_EMPTY_PATH` in
/// `flags`: the file `dir` itself) from its file handle, or `None` if its
/// file system has none to give. No symbolic link is followed (no
/// `AT_SYMLINK_FOLLOW`).
fn handle_id(dir: RawFd, name: &CStr, flags: libc::c_int) -> Result<Option<u64>, i32> {
    let mut fh = FileHandle {
        handle_bytes: MAX_HANDLE_SZ as u32,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `name` is a NUL-terminated string; `fh` has room for
    // `handle_bytes` bytes of handle, as the call needs; `mount_id` is a
    // valid int; `dir` is a descriptor (or `AT_FDCWD`) the caller holds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            dir,
            name.as_ptr(),
            &mut fh as *mut FileHandle,
            &mut mount_id as *mut libc::c_int,
            flags,
        )
    };
    if rc == 0 {
        let n = (fh.handle_bytes as usize).min(MAX_HANDLE_SZ);
        return Ok(Some(fnv(&[
            &fh.handle_type.to_le_bytes(),
            &fh.f_handle[..n],
        ])));
    }
    match io::Error::last_os_error().raw_os_error() {
        // (EPERM: a seccomp filter that forbids the call.)
        Some(libc::ENOSYS | libc::EOPNOTSUPP | libc::EOVERFLOW | libc::EPERM) => Ok(None),
        Some(libc::ENOENT | libc::ENOTDIR) => Err(errno::ENOENT),
        Some(e) => Err(e),
        None => Err(errno::EIO),
    }
}

/// `struct open_how` of `<linux/openat2.h>` (libc's is `#[non_exhaustive]`,
/// so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How every name in the export is resolved: beneath the export's
/// directory (no absolute path, no `..` out of it), through no symbolic
/// link (not even the last component) and no "magic link" (`/proc/*/fd`).
const RESOLVE: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

/// `openat2(2)` of `name` beneath the directory `dir` with [`RESOLVE`]:
/// `flags` (`O_CLOEXEC` and `O_NOFOLLOW` added) and `mode` as `openat`'s.
/// Every open of an export file goes through here. A symbolic link (as
/// the last component too: `O_NOFOLLOW`) is `ELOOP`, but with `O_PATH`,
/// which opens the link itself; a name that leaves `dir` is `EXDEV`; a
/// kernel before 5.6 is `ENOSYS`.
fn openat2(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<fs::File> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as libc::c_uint as u64,
        mode: u64::from(mode),
        resolve: RESOLVE,
    };
    loop {
        // SAFETY: `dir` is an open descriptor borrowed for the call;
        // `name` is a NUL-terminated string and `how` an initialized
        // `struct open_how` of the size passed, both living across the
        // call, which reads them only. A descriptor returned is new and
        // ours alone, so `OwnedFd` may own it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: see above: `fd` is a new descriptor nobody else owns.
            return Ok(fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Opens the export directory `dir` (following a symbolic link: the
/// configured path is the administrator's, and may be one), and checks
/// that `openat2(2)` works beneath it. `ENOSYS` (or `EPERM`, a seccomp
/// filter): no `openat2`, and no fallback.
fn open_root(dir: &Path) -> Result<fs::File, i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let root = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| io_errno(&e))?;
    openat2(root.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| io_errno(&e))?;
    Ok(root)
}

/// The export directory of this host.
#[derive(Debug)]
pub struct Export {
    /// The export directory, opened once: every name is resolved beneath
    /// it, never through its path again (or the errno opening it failed
    /// with, which every request then fails with).
    root: Result<fs::File, i32>,
    /// Names seen by id, for GETATTR.
    names: Mutex<HashMap<u64, Vec<u8>>>,
    /// What READ grants: this host owns every page, so any grant is its
    /// choice; read-only makes every first write send UPGRADE.
    read_grant: Grant,
    /// Benchmarks only: READ is answered at once, without reading the page
    /// (the paper's null page fault). The page's contents are then garbage.
    null_read: AtomicBool,
    /// Whether root on other hosts is taken as `nobody` for these files
    /// (config `root_squash`): said in every [`Attr`] of them, which the
    /// engine clears for this host's own kernel ([`Export::holds`]).
    root_squash: AtomicBool,
    /// The owner's per-page locks.
    pages: PageLocks,
    /// The files kept open, by id.
    open: Mutex<HashMap<u64, OpenFile>>,
    /// The single-host server only: how many opens of each file this
    /// host's kernel has (OPEN and RELEASE), so that an UNLINK keeps the
    /// data of an open file until its last close ([`Export::keep`]). (In a
    /// cluster the engine keeps the open sets.)
    held: Mutex<HashMap<u64, u32>>,
    /// Held across a size change, from reading the size to its flush: two
    /// concurrent growths of a file (the single-host server's workers)
    /// must not set its sizes in the wrong order.
    sizing: Mutex<()>,
    /// Tests only: the next growth's flush fails with this errno (0: no).
    #[cfg(test)]
    pub(crate) fail_sync: std::sync::atomic::AtomicI32,
    /// Tests only: the next removal fails with this errno (0: no).
    #[cfg(test)]
    pub(crate) fail_remove: std::sync::atomic::AtomicI32,
}

/// What [`Export::set_size`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resized {
    /// The file's size now.
    pub size: u64,
    /// It changed (grew): durably, unless `unsynced`.
    pub changed: bool,
    /// It grew, but its flush failed with this errno: the file has `size`
    /// bytes now (so every host must hear of it) though the growth may not
    /// survive a crash, and the request fails with that errno.
    pub unsynced: Option<i32>,
}

impl Resized {
    /// What the request is answered: the size, or the flush's errno.
    pub fn result(&self) -> Result<u64, i32> {
        match self.unsynced {
            Some(e) => Err(e),
            None => Ok(self.size),
        }
    }
}

/// How a size is set ([`Export::set_size`], [`Export::cut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sizing {
    /// At least that long (a write past the end).
    Grow,
    /// Exactly that long, but never shorter (a `truncate` whose pages past
    /// the end have not been taken back).
    Exact,
    /// Exactly that long, shorter included (the pages past the end are
    /// home).
    Cut,
}

/// What setting a file `now` bytes long to `size` does: nothing (`None`),
/// set it (`Some(size)`), or fail.
fn resize(now: u64, size: u64, how: Sizing) -> Result<Option<u64>, i32> {
    if size == now || (how == Sizing::Grow && size < now) {
        Ok(None)
    } else if size < now && how == Sizing::Exact {
        Err(errno::EOPNOTSUPP)
    } else {
        Ok(Some(size))
    }
}

/// Files kept open at most (each an open file description).
pub const OPEN_FILES: usize = 256;

/// An export file kept open.
#[derive(Debug, Clone)]
struct OpenFile {
    file: Arc<fs::File>,
    /// Opened for writing too (else read-only: its mode allows no more).
    writable: bool,
    /// Its inode: the name still stands for it while an `lstat` of the
    /// name finds this one.
    inode: Inode,
}

/// The owner's per-page locks. An invalidation holds a page's lock from
/// its ioctl until the page's data is written home; READ and WRITE hold it
/// while they read or write the page in the export. So a READ never sees
/// the export while the page's newest data is in transit (a fault right
/// after a DROP), and a WRITE of newer data is never overwritten by an
/// invalidation's older copy.
#[derive(Debug, Default)]
struct PageLocks {
    held: Mutex<HashSet<(u64, u64)>>,
    freed: Condvar,
}

/// A held page lock; dropping it releases the page.
pub struct PageGuard<'a> {
    locks: &'a PageLocks,
    key: (u64, u64),
}

impl Drop for PageGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
        drop(held);
        self.locks.freed.notify_all();
    }
}

/// A file's device and inode.
pub type Inode = (u64, u64);

/// The entries of directory `dir` (its descriptor, taken over) as `(name,
/// d_type)`, `.` and `..` too.
fn read_dir(dir: OwnedFd) -> Result<Vec<(Vec<u8>, u8)>, i32> {
    /// Closes the stream (and so its descriptor).
    struct Stream(*mut libc::DIR);
    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: a stream `fdopendir` opened, closed once, here.
            unsafe { libc::closedir(self.0) };
        }
    }
    let fd = dir.into_raw_fd();
    // SAFETY: `fd` is an open directory descriptor that we own; on
    // success the stream owns it (and `closedir` closes it).
    let dp = unsafe { libc::fdopendir(fd) };
    if dp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: `fdopendir` failed, so `fd` is still ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        return Err(io_errno(&e));
    }
    let stream = Stream(dp);
    let mut out = Vec::new();
    loop {
        // SAFETY: errno is this thread's; `readdir` returns NULL both at
        // the end and on an error, which only errno tells apart.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream.0` is an open stream used by this thread only.
        let ent = unsafe { libc::readdir(stream.0) };
        if ent.is_null() {
            return match io::Error::last_os_error().raw_os_error() {
                Some(0) | None => Ok(out),
                Some(e) => Err(e),
            };
        }
        // SAFETY: a non-NULL `readdir` result is a valid entry, whose
        // `d_name` is NUL-terminated, until the stream's next call: it is
        // copied before that.
        let (name, kind) = unsafe {
            (
                CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes().to_vec(),
                (*ent).d_type,
            )
        };
        out.push((name, kind));
    }
}

/// Writes `page` as page `index` of `f`, `size` bytes long, without
/// growing it: bytes past its end are dropped; a page wholly past it is
/// `EFBIG`.
fn write_within(f: &fs::File, size: u64, index: u64, page: &[u8]) -> Result<(), i32> {
    use std::os::unix::fs::FileExt;
    let offset = index.checked_mul(page.len() as u64).ok_or(errno::EINVAL)?;
    if offset >= size {
        return Err(errno::EFBIG);
    }
    let len = (size - offset).min(page.len() as u64) as usize;
    f.write_all_at(&page[..len], offset)
        .map_err(|e| io_errno(&e))
}

fn io_errno(e: &io::Error) -> i32 {
    match e.kind() {
        io::ErrorKind::NotFound => errno::ENOENT,
        _ => e.raw_os_error().unwrap_or(errno::EIO),
    }
}

impl Export {
    /// Serves the files of `dir`. A directory that cannot be opened (or a
    /// kernel without `openat2`) fails every request; the manager starts
    /// through [`Export::checked`], which refuses to.
    pub fn new(dir: &Path) -> Self {
        Export::with_grant(dir, Grant::ReadWrite)
    }

    /// An export whose READ replies grant `read_grant` (see
    /// [`Export::new`]).
    pub fn with_grant(dir: &Path, read_grant: Grant) -> Self {
        Export {
            root: open_root(dir),
            names: Mutex::new(HashMap::new()),
            read_grant,
            null_read: AtomicBool::new(false),
            root_squash: AtomicBool::new(true),
            pages: PageLocks::default(),
            open: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            sizing: Mutex::new(()),
            #[cfg(test)]
            fail_sync: std::sync::atomic::AtomicI32::new(0),
            #[cfg(test)]
            fail_remove: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// The manager's export: as [`Export::with_grant`], but a directory
    /// that cannot be opened, or a kernel that cannot open files beneath
    /// it without following symbolic links (`openat2(2)`, Linux 5.6), is
    /// an error, said in words: the manager does not start rather than
    /// serve files less safely.
    pub fn checked(dir: &Path, read_grant: Grant) -> Result<Self, String> {
        let export = Export::with_grant(dir, read_grant);
        match export.root {
            Ok(_) => Ok(export),
            Err(e @ (libc::ENOSYS | libc::EPERM)) => Err(format!(
                "cannot serve export directory {}: openat2(2) is not available ({}); \
                 export files are opened only beneath the directory with no symbolic \
                 link followed, which needs Linux 5.6 or later (and openat2 allowed by \
                 any seccomp filter)",
                dir.display(),
                io::Error::from_raw_os_error(e)
            )),
            Err(e) => Err(format!(
                "cannot open export directory {}: {}",
                dir.display(),
                io::Error::from_raw_os_error(e)
            )),
        }
    }

    /// The export directory's descriptor (see the module's documentation).
    fn root(&self) -> Result<BorrowedFd<'_>, i32> {
        self.root.as_ref().map(|f| f.as_fd()).map_err(|&e| e)
    }

    /// Opens export file `name` ([`openat2`]: beneath the directory, no
    /// symbolic link followed) with `flags` and `mode`. A name that is not
    /// one component, a symbolic link, or a name that would leave the
    /// directory is `ENOENT`: not a file WFS shares.
    fn open_at(&self, name: &[u8], flags: libc::c_int, mode: u32) -> Result<fs::File, i32> {
        let c = c_name(name)?;
        openat2(self.root()?, &c, flags, mode).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::EXDEV) => errno::ENOENT,
            _ => io_errno(&e),
        })
    }

    /// `lstat` of export file `name` (`fstatat` beneath the directory,
    /// `AT_SYMLINK_NOFOLLOW`): a symbolic link is seen as one.
    fn lstat(&self, name: &[u8]) -> Result<libc::stat, i32> {
        let c = c_name(name)?;
        let root = self.root()?;
        // SAFETY: all-zero bytes are a valid `struct stat` (integers only).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `root` is an open directory borrowed for the call, `c`
        // NUL-terminated and `st` a writable `struct stat`, all living
        // across it.
        let rc = unsafe {
            libc::fstatat(
                root.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(io_errno(&io::Error::last_os_error()));
        }
        Ok(st)
    }

    /// Removes export name `name` (`unlinkat` beneath the directory: a
    /// symbolic link's name would be removed, never its target).
    fn unlink_at(&self, name: &[u8]) -> Result<(), i32> {
        let c = c_name(name)?;
        let root = self.root()?;
        // SAFETY: `root` is an open directory borrowed for the call and
        // `c` a NUL-terminated string living across it.
        if unsafe { libc::unlinkat(root.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(io_errno(&io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Flushes the export directory (its entries).
    fn sync_dir(&self) -> io::Result<()> {
        self.root
            .as_ref()
            .map_err(|&e| io::Error::from_raw_os_error(e))?
            .sync_all()
    }

    /// Opens export file `name` (for writing too if `write`): read-write
    /// if its mode allows, so that one open file serves both, else
    /// read-only for reading. Through [`Export::open_at`]: never follows
    /// a symbolic link, never leaves the directory; never blocks on a FIFO
    /// (`O_NONBLOCK`), never takes a terminal (`O_NOCTTY`); anything but a
    /// regular file is `ENOENT`. Returns the file, whether it is writable,
    /// its size and its inode.
    fn open_name(&self, name: &[u8], write: bool) -> Result<(fs::File, bool, u64, Inode), i32> {
        use std::os::unix::fs::MetadataExt;
        let open = |w: bool| {
            let access = if w { libc::O_RDWR } else { libc::O_RDONLY };
            self.open_at(name, access | libc::O_NONBLOCK | libc::O_NOCTTY, 0)
        };
        let not_a_file = |e: i32| matches!(e, libc::EISDIR | libc::ENXIO);
        let (file, writable) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if not_a_file(e) => return Err(errno::ENOENT),
            // Read-only (its mode, a read-only file system, a running
            // program): good for reading.
            Err(_) if !write => match open(false) {
                Ok(f) => (f, false),
                Err(e) if not_a_file(e) => return Err(errno::ENOENT),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let md = file.metadata().map_err(|e| io_errno(&e))?;
        if !md.file_type().is_file() {
            return Err(errno::ENOENT);
        }
        Ok((file, writable, md.len(), (md.dev(), md.ino())))
    }

    /// Takes the lock of page `index` of file `id`, waiting while somebody
    /// else holds it.
    pub fn lock_page(&self, id: u64, index: u64) -> PageGuard<'_> {
        let key = (id, index);
        let mut held = self.pages.held.lock().unwrap_or_else(|p| p.into_inner());
        while held.contains(&key) {
            held = self
                .pages
                .freed
                .wait(held)
                .unwrap_or_else(|p| p.into_inner());
        }
        held.insert(key);
        PageGuard {
            locks: &self.pages,
            key,
        }
    }

    /// Turns the benchmark's null READ on or off.
    pub fn set_null_read(&self, on: bool) {
        self.null_read.store(on, Ordering::Relaxed);
    }

    /// Whether READ skips the data (see [`Export::set_null_read`]).
    pub fn null_read(&self) -> bool {
        self.null_read.load(Ordering::Relaxed)
    }

    /// What a READ of page `index` of file `id` grants.
    pub fn read_grant(&self, _id: u64, _index: u64) -> Grant {
        self.read_grant
    }

    /// UPGRADE: write access to page `index` of file `id`, which must be a
    /// page of the file. The single-host owner always grants it.
    pub fn upgrade(&self, id: u64, index: u64) -> Result<Grant, i32> {
        let attr = self.getattr(id)?;
        if index
            .checked_mul(PAGE_SIZE as u64)
            .is_none_or(|o| o >= attr.size)
        {
            return Err(errno::EFBIG);
        }
        Ok(Grant::ReadWrite)
    }

    /// Sets whether root on other hosts is taken as `nobody` for these
    /// files (config `root_squash`; true until set).
    pub fn set_root_squash(&self, on: bool) {
        self.root_squash.store(on, Ordering::Relaxed);
    }

    /// The ids a file made here at another host's word gets, for its
    /// creator's `ids` (user, group): theirs, but that with root squashing
    /// a creator of uid 0 is refused (`EACCES`: it is `nobody` here, who
    /// may not add names to a directory only root writes, as NFS's server
    /// refuses a squashed root's create there) and gid 0 is `nobody`'s
    /// ([`NOBODY`]). `u32::MAX`, no id, is `EINVAL`.
    pub fn made_for(&self, (uid, gid): (u32, u32)) -> Result<(u32, u32), i32> {
        if uid == u32::MAX || gid == u32::MAX {
            return Err(errno::EINVAL);
        }
        if !self.root_squash.load(Ordering::Relaxed) {
            return Ok((uid, gid));
        }
        if uid == 0 {
            return Err(libc::EACCES);
        }
        Ok((uid, if gid == 0 { NOBODY } else { gid }))
    }

    /// Whether `id` is a file of this export (one it has given attributes
    /// of): its owner is this host, whose root is never squashed.
    pub fn holds(&self, id: u64) -> bool {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.contains_key(&id)
    }

    /// What this host's kernel is told of `a`: root squashing is for other
    /// hosts' root, so it is cleared for a file of this export.
    pub fn for_kernel(&self, mut a: Attr) -> Attr {
        if self.holds(a.file) {
            a.root_squash = false;
        }
        a
    }

    /// Remembers `name` as the name of file `id`. Another name known for
    /// `id` that no longer stands for it (renamed away, by WFS or by hand)
    /// is replaced; one that still does (a hard link) keeps it, and `name`
    /// is refused.
    fn remember(&self, name: &[u8], id: u64) -> Result<u64, i32> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        match names.get(&id) {
            Some(known) if known.as_slice() != name => {
                if self.id_at(known) == Ok(id) {
                    crate::wlog!(
                        "export: {:?} and {:?} have the same file id {id:#x}; refusing the second",
                        String::from_utf8_lossy(known),
                        String::from_utf8_lossy(name)
                    );
                    return Err(errno::EIO);
                }
                names.insert(id, name.to_vec());
                Ok(id)
            }
            Some(_) => Ok(id),
            None => {
                names.insert(id, name.to_vec());
                Ok(id)
            }
        }
    }

    /// The regular file `name` now stands for: its handle's id (`None`
    /// on a file system without handles) and its metadata, both of the
    /// one file opened (`O_PATH`, beneath the directory, no symbolic link
    /// followed: a link is opened itself, and is no regular file).
    fn handle_and_metadata(&self, name: &[u8]) -> Result<(Option<u64>, fs::Metadata), i32> {
        let f = self.open_at(name, libc::O_PATH, 0)?;
        let md = f.metadata().map_err(|e| io_errno(&e))?;
        if !md.file_type().is_file() {
            return Err(errno::ENOENT);
        }
        let handle = handle_id(f.as_raw_fd(), c"", libc::AT_EMPTY_PATH)?;
        Ok((handle, md))
    }

    /// The id of the regular file `name` now stands for (see the module's
    /// documentation), with its metadata.
    fn id_and_metadata(&self, name: &[u8]) -> Result<(u64, fs::Metadata), i32> {
        let (handle, md) = self.handle_and_metadata(name)?;
        Ok((handle.unwrap_or_else(|| file_id(name)), md))
    }

    /// The id of the regular file `name` stands for.
    fn id_at(&self, name: &[u8]) -> Result<u64, i32> {
        self.id_and_metadata(name).map(|(id, _)| id)
    }

    fn attr_of(&self, name: &[u8]) -> Result<Attr, i32> {
        let (id, md) = self.id_and_metadata(name)?;
        Ok(Attr {
            file: self.remember(name, id)?,
            size: md.len(),
            mode: md.permissions().mode() & 0o7777,
            mtime: time(md.mtime(), md.mtime_nsec()),
            ctime: time(md.ctime(), md.ctime_nsec()),
            uid: md.uid(),
            gid: md.gid(),
            root_squash: self.root_squash.load(Ordering::Relaxed),
        })
    }

    /// LOOKUP: the attributes of `name`, or `ENOENT` (a kept file's
    /// hidden name too).
    pub fn lookup(&self, name: &[u8]) -> Result<Attr, i32> {
        if !shown(name) {
            return Err(errno::ENOENT);
        }
        self.attr_of(name)
    }

    fn name_of(&self, id: u64) -> Option<Vec<u8>> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.get(&id).cloned()
    }

    /// GETATTR: the attributes of file `id`. The kernel may hold ids that a
    /// previous manager handed out, and a file may have been renamed in the
    /// export by hand, so an id not found under the name known for it makes
    /// us rescan the directory before answering `ENOENT`.
    pub fn getattr(&self, id: u64) -> Result<Attr, i32> {
        if let Some(name) = self.name_of(id)
            && let Ok(a) = self.attr_of(&name)
            && a.file == id
        {
            return Ok(a);
        }
        for name in self.all_names()? {
            let _ = self.attr_of(&name);
        }
        let name = self.name_of(id).ok_or(errno::ENOENT)?;
        match self.attr_of(&name) {
            Ok(a) if a.file == id => Ok(a),
            _ => Err(errno::ENOENT),
        }
    }

    /// The name file `id` has in the export, if it has one.
    pub fn name_of_id(&self, id: u64) -> Option<Vec<u8>> {
        self.getattr(id).ok()?;
        self.name_of(id)
    }

    /// File `id`, open (for writing too if `write`), with its size and
    /// inode: the one kept open if its name still stands for it (one
    /// `lstat`), else opened by name (found again if a restarted manager
    /// has not seen it yet).
    fn open(&self, id: u64, write: bool) -> Result<(Arc<fs::File>, u64, Inode), i32> {
        // (The name known for it, unchecked: the file kept open is used
        // only if the name still stands for its inode.)
        if let Some(name) = self.name_of(id)
            && let Ok(st) = self.lstat(&name)
        {
            let inode = (st.st_dev, st.st_ino);
            let kept = self.open_files().get(&id).cloned();
            if let Some(f) = kept.filter(|f| f.inode == inode && (f.writable || !write)) {
                return Ok((f.file, st.st_size as u64, inode));
            }
        }
        let name = self.name_checked(id)?;
        let (file, writable, size, inode) = self.open_name(&name, write)?;
        let file = Arc::new(file);
        let mut open = self.open_files();
        if open.len() >= OPEN_FILES && !open.contains_key(&id) {
            // (Any one: it is opened again when needed.)
            if let Some(&other) = open.keys().next() {
                open.remove(&other);
            }
        }
        open.insert(
            id,
            OpenFile {
                file: file.clone(),
                writable,
                inode,
            },
        );
        Ok((file, size, inode))
    }

    /// The name of file `id`, checked to stand for it (found again if a
    /// restarted manager has not seen it yet, or it was renamed by hand).
    fn name_checked(&self, id: u64) -> Result<Vec<u8>, i32> {
        let name = match self.name_of(id) {
            Some(n) if self.id_at(&n) == Ok(id) => n,
            _ => {
                self.getattr(id)?;
                self.name_of(id).ok_or(errno::ENOENT)?
            }
        };
        Ok(name)
    }

    fn open_files(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OpenFile>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// READ: fills `page` with page `index` of file `id`; past the end of
    /// the file the page is zero.
    pub fn read_page(&self, id: u64, index: u64, page: &mut [u8]) -> Result<(), i32> {
        use std::os::unix::fs::FileExt;
        let (f, _, _) = self.open(id, false)?;
        let offset = index.checked_mul(page.len() as u64).ok_or(errno::EINVAL)?;
        let mut done = 0;
        while done < page.len() {
            match f.read_at(&mut page[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_errno(&e)),
            }
        }
        page[done..].fill(0);
        Ok(())
    }

    /// WRITE: writes `page` as page `index` of file `id`, without growing
    /// the file: bytes past its end are dropped (the kernel's page cache
    /// covers whole pages, the file need not). Returns once the data is on
    /// stable storage (`fdatasync`): the owner acknowledges a `Put` only
    /// after this, so a writer's `fsync` means "on the owner's disk".
    pub fn write_page(&self, id: u64, index: u64, page: &[u8]) -> Result<(), i32> {
        // Through a file of its own: a failed write-back is reported once
        // to each open file, and one shared with concurrent writes could
        // have reported this one's to their flush.
        let (f, _, size, _) = self.open_name(&self.name_checked(id)?, true)?;
        write_within(&f, size, index, page)?;
        f.sync_data().map_err(|e| io_errno(&e))
    }

    /// Like [`Export::write_page`], up to the page cache only, through the
    /// file kept open: returns it, for [`crate::commit`] to flush (with
    /// other writes, and minding the failures its other flushes saw)
    /// before the write counts as done.
    pub fn write_page_unsynced(
        &self,
        id: u64,
        index: u64,
        page: &[u8],
    ) -> Result<(Arc<fs::File>, Inode), i32> {
        let (f, size, inode) = self.open(id, true)?;
        write_within(&f, size, index, page)?;
        Ok((f, inode))
    }

    /// SETSIZE at the owner: file `id` is to be `size` bytes long; with
    /// `grow` (a write that ends past the end), at least `size` long.
    ///
    /// A file that is as long (or, with `grow`, longer: another host grew
    /// it meanwhile) is left as it is. A longer size is set with
    /// `ftruncate` and flushed (`fsync`) before this returns, so a growth
    /// that is acknowledged survives a crash; the new pages read as zeros
    /// and may be written. A shorter size without `grow` (a shrinking
    /// `truncate`) is refused with `EOPNOTSUPP`: pages past the new end
    /// must first be taken back from every host that holds them (the
    /// engine does, then calls [`Export::cut`]). A size past
    /// [`wfs_abi::SIZE_MAX`] is `EFBIG`; a file that cannot be written
    /// (its mode, a read-only file system) fails with `open`'s error
    /// (`EACCES`, `EROFS`) when it would have to grow.
    ///
    /// If the flush fails after the size was set, the file is that long
    /// now all the same (a failed `fsync` cannot be undone reliably):
    /// `Ok` with [`Resized::unsynced`], so that the caller tells every
    /// host the size the file has, and fails the request.
    pub fn set_size(&self, id: u64, size: u64, grow: bool) -> Result<Resized, i32> {
        let how = if grow { Sizing::Grow } else { Sizing::Exact };
        self.resize_file(id, size, how)
    }

    /// Sets file `id`'s modification time, and its access time (not kept
    /// apart), to `sec`.`nsec` (a host's `utimensat`: `touch -d`, `tar
    /// -x`, `cp -p`); its change time becomes now, which tells every
    /// host's kernel to take the modification time as it is. Errors: those
    /// of `open` (`ENOENT`, `EACCES`, `EROFS`) and `futimens`; `EINVAL` for
    /// `nsec` past a second.
    pub fn set_mtime(&self, id: u64, sec: i64, nsec: u32) -> Result<(), i32> {
        if nsec > wfs_abi::NSEC_MAX {
            return Err(errno::EINVAL);
        }
        let name = self.name_checked(id)?;
        // (Read-only: setting times needs the file's ownership, not write
        // permission; `futimens` on the file opened, not a path.)
        let (f, _, _, _) = self.open_name(&name, false)?;
        let at = if sec >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::new(sec as u64, nsec)
        } else {
            // (Before 1970: whole seconds back, then nanoseconds forward.)
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(sec.unsigned_abs())
                + std::time::Duration::from_nanos(u64::from(nsec))
        };
        f.set_times(fs::FileTimes::new().set_modified(at).set_accessed(at))
            .map_err(|e| io_errno(&e))
    }

    /// Shrinks (or sets) file `id` to exactly `size` bytes, flushed before
    /// this returns, as [`Export::set_size`] grows one. For the owner's
    /// engine once no host holds a page past the new end any more (the
    /// page protocol's recall): bytes past it are gone, and read as zeros
    /// if the file grows again.
    pub fn cut(&self, id: u64, size: u64) -> Result<Resized, i32> {
        self.resize_file(id, size, Sizing::Cut)
    }

    fn resize_file(&self, id: u64, size: u64, how: Sizing) -> Result<Resized, i32> {
        if size > wfs_abi::SIZE_MAX {
            return Err(errno::EFBIG);
        }
        let _sizing = self.sizing.lock().unwrap_or_else(|p| p.into_inner());
        let name = self.name_checked(id)?;
        let st = self.lstat(&name)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(errno::ENOENT);
        }
        let unchanged = |size| Resized {
            size,
            changed: false,
            unsynced: None,
        };
        let len = st.st_size as u64;
        if resize(len, size, how)?.is_none() {
            return Ok(unchanged(len));
        }
        // Through a file of its own, as `write_page`: its flush must not
        // take (and so hide) a write-back error of the writes in flight
        // through the file kept open.
        let (f, _, now, _) = self.open_name(&name, true)?;
        // (Its size again: the file may have changed between the two.)
        let Some(size) = resize(now, size, how)? else {
            return Ok(unchanged(now));
        };
        f.set_len(size).map_err(|e| io_errno(&e))?;
        #[cfg(test)]
        let injected = self.fail_sync.swap(0, Ordering::Relaxed);
        #[cfg(not(test))]
        let injected = 0;
        let synced = match injected {
            0 => f.sync_all().map_err(|e| io_errno(&e)),
            e => Err(e),
        };
        Ok(Resized {
            size,
            changed: true,
            unsynced: synced.err(),
        })
    }

    /// CREATE at the owner: makes regular file `name` with permission
    /// bits `mode`, exactly (the kernel applied the caller's umask), and
    /// returns its attributes and whether it was made now. The file and
    /// the directory's new entry are flushed before this returns. A name
    /// that exists is `EEXIST` if `excl`, else its attributes (a regular
    /// file's only: anything else under that name is `EEXIST` too).
    ///
    /// A file made is owned by `ids` (user, group), its creator's.
    pub fn create(
        &self,
        name: &[u8],
        mode: u32,
        excl: bool,
        (uid, gid): (u32, u32),
    ) -> Result<(Attr, bool), i32> {
        if !shown(name) {
            return Err(errno::EINVAL);
        }
        // (`O_EXCL`: a symbolic link of that name is not followed, but
        // exists.)
        // (Made without set-id bits, which are given once it has its
        // owner: a change of owner would take them away, and until then
        // it is the manager's.)
        let made = self.open_at(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NONBLOCK | libc::O_NOCTTY,
            mode & 0o777,
        );
        match made {
            Ok(f) => {
                let perm = fs::Permissions::from_mode(mode & 0o7777);
                // (Changed only if it is not the manager's own: a manager
                // that may not change owners still makes its own files.)
                let owned = f.metadata().and_then(|md| {
                    if (md.uid(), md.gid()) == (uid, gid) {
                        Ok(())
                    } else {
                        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                    }
                });
                let synced = owned
                    .and_then(|()| f.set_permissions(perm))
                    .and_then(|()| f.sync_all())
                    .and_then(|()| self.sync_dir());
                let attr = synced
                    .map_err(|e| io_errno(&e))
                    .and_then(|()| self.attr_of(name));
                match attr {
                    Ok(a) => Ok((a, true)),
                    Err(e) => {
                        // (Not made, as far as anyone is told; an id
                        // another name has is refused.)
                        let _ = self.unlink_at(name);
                        Err(e)
                    }
                }
            }
            Err(libc::EEXIST) if !excl => {
                let a = self.attr_of(name).map_err(|_| errno::EEXIST)?;
                Ok((a, false))
            }
            Err(e) => Err(e),
        }
    }

    /// UNLINK at the owner, once no host holds a page of the file: removes
    /// `name`, file `id`, from the export (flushed) and forgets it.
    pub fn remove(&self, id: u64, name: &[u8]) -> Result<(), i32> {
        if self.id_at(name)? != id {
            return Err(errno::ENOENT);
        }
        #[cfg(test)]
        match self.fail_remove.swap(0, Ordering::Relaxed) {
            0 => {}
            e => return Err(e),
        }
        self.unlink_at(name)?;
        // (A file kept under its hidden name stays known by that name, and
        // open.)
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.get(&id).is_none_or(|n| n.as_slice() == name) {
            names.remove(&id);
            drop(names);
            self.open_files().remove(&id);
        }
        self.sync_dir().map_err(|e| io_errno(&e))
    }

    /// RENAME at the owner: file `id`, named `from`, is named `to` from
    /// now on, replacing file `target` of that name (once no host holds
    /// a page of it), or with `target` `None` only if no file has that
    /// name (`EEXIST`). The directory is flushed before this returns (a
    /// flush that fails is logged: the file is renamed all the same).
    /// Returns the file's attributes. A file whose export has no file
    /// handles would change its id with its name: `EXDEV`.
    pub fn rename(
        &self,
        id: u64,
        from: &[u8],
        to: &[u8],
        target: Option<u64>,
    ) -> Result<Attr, i32> {
        if !shown(to) {
            return Err(errno::EINVAL);
        }
        match self.handle_and_metadata(from)? {
            (Some(h), _) if h == id => {}
            (Some(_), _) => return Err(errno::ENOENT),
            (None, _) if file_id(from) == id => return Err(errno::EXDEV),
            (None, _) => return Err(errno::ENOENT),
        }
        match target {
            Some(t) if self.id_at(to) != Ok(t) => return Err(errno::EBUSY),
            Some(t) if t == id => return self.attr_of(to),
            _ => {}
        }
        let (csrc, cdst) = (c_name(from)?, c_name(to)?);
        let flags = if target.is_none() {
            libc::RENAME_NOREPLACE
        } else {
            0
        };
        let root = self.root()?.as_raw_fd();
        // SAFETY: Both names are NUL-terminated strings that live across
        // the call; `root` is the export's open directory, held by `self`
        // across it. (Names of one component, beneath it: a symbolic link
        // is renamed itself, never followed.)
        let rc = unsafe { libc::renameat2(root, csrc.as_ptr(), root, cdst.as_ptr(), flags) };
        if rc != 0 {
            return Err(io_errno(&io::Error::last_os_error()));
        }
        // (A target kept under its hidden name stays known by it, and open.)
        let target_gone = {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            let gone = target.filter(|t| names.get(t).is_none_or(|n| n.as_slice() == to));
            if let Some(t) = gone {
                names.remove(&t);
            }
            names.insert(id, to.to_vec());
            gone
        };
        if let Some(t) = target_gone {
            self.open_files().remove(&t);
        }
        // (Renamed, whatever the flush says: every host must hear of it.)
        if let Err(e) = self.sync_dir() {
            crate::wlog!(
                "export: renamed {:?} to {:?}, but flushing the directory failed: {e}",
                String::from_utf8_lossy(from),
                String::from_utf8_lossy(to)
            );
        }
        self.getattr(id)
    }

    /// Keeps file `id`, named `name`, under its hidden name
    /// ([`gone_name`]) too: a second link, so that removing `name` (or
    /// renaming another file over it) leaves the data for the hosts that
    /// have it open; from now on `id` is known by the hidden name. The
    /// directory is flushed. Returns the hidden name, or `None` (nothing
    /// done) on an export file system without file handles, where a file's
    /// id is its name's hash: under another name it would be another file.
    pub fn keep(&self, id: u64, name: &[u8]) -> Result<Option<Vec<u8>>, i32> {
        match self.handle_and_metadata(name)? {
            (Some(h), _) if h == id => {}
            (Some(_), _) => return Err(errno::ENOENT),
            (None, _) if file_id(name) == id => return Ok(None),
            (None, _) => return Err(errno::ENOENT),
        }
        let hidden = gone_name(id);
        let (cname, chidden) = (c_name(name)?, c_name(&hidden)?);
        let root = self.root()?.as_raw_fd();
        // SAFETY: Both names are NUL-terminated strings that live across
        // the call; `root` is the export's open directory, held by `self`
        // across it. (Flags 0: a symbolic link is linked itself, never
        // followed.)
        let rc = unsafe { libc::linkat(root, cname.as_ptr(), root, chidden.as_ptr(), 0) };
        if rc != 0 {
            match io::Error::last_os_error().raw_os_error() {
                // (Kept already: by an unlink that failed after it.)
                Some(libc::EEXIST) if self.id_at(&hidden) == Ok(id) => {}
                Some(e) => return Err(e),
                None => return Err(errno::EIO),
            }
        }
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, hidden.clone());
        self.sync_dir().map_err(|e| io_errno(&e))?;
        Ok(Some(hidden))
    }

    /// The single-host server's OPEN of file `id`, counted.
    pub fn opened(&self, id: u64) -> Result<(), i32> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        self.getattr(id)?;
        *held.entry(id).or_default() += 1;
        Ok(())
    }

    /// The single-host server's RELEASE of file `id`: the last one of a
    /// file removed while open removes its hidden name. (A RELEASE of an
    /// open this manager never counted, its predecessor's, is ignored.)
    pub fn released(&self, id: u64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let Some(n) = held.get_mut(&id) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        held.remove(&id);
        if let Some(name) = self.name_of(id).filter(|n| !shown(n))
            && let Err(e) = self.remove(id, &name)
        {
            crate::wlog!(
                "export: cannot remove {:?}, closed at last: errno {e}",
                String::from_utf8_lossy(&name)
            );
        }
    }

    /// The single-host server's UNLINK: [`Export::remove`], keeping the
    /// file under its hidden name while this host has it open.
    pub fn unlink(&self, id: u64, name: &[u8]) -> Result<(), i32> {
        let _held = self.keep_held(id, name)?;
        self.remove(id, name)
    }

    /// The single-host server: keeps file `id`, named `name`, under its
    /// hidden name if this host has it open, before its name goes (an
    /// UNLINK, a RENAME over it); the guard keeps the count of opens as
    /// it is until then.
    pub fn keep_held(
        &self,
        id: u64,
        name: &[u8],
    ) -> Result<std::sync::MutexGuard<'_, HashMap<u64, u32>>, i32> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.contains_key(&id) {
            self.keep(id, name)?;
        }
        Ok(held)
    }

    /// Undoes [`Export::keep`]: file `id` keeps `name`, and its hidden
    /// name goes.
    pub fn unkeep(&self, id: u64, hidden: &[u8], name: &[u8]) -> Result<(), i32> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, name.to_vec());
        if self.id_at(hidden) == Ok(id) {
            self.unlink_at(hidden)?;
        }
        Ok(())
    }

    /// The files kept under hidden names (an earlier run removed them
    /// while open), as `(id, hidden name)`.
    ///
    /// A hidden name whose file still has its shown name too (a manager
    /// that died between [`Export::keep`] and the removal of the name, or
    /// a failed [`Export::unkeep`]) is not a kept file: that link goes.
    pub fn kept_files(&self) -> Result<Vec<(u64, Vec<u8>)>, i32> {
        let all = self.all_names()?;
        let shown_ids: HashSet<u64> = all
            .iter()
            .filter(|n| shown(n))
            .filter_map(|n| self.id_at(n).ok())
            .collect();
        let mut kept = Vec::new();
        for name in all.into_iter().filter(|n| !shown(n)) {
            let Ok(id) = self.id_at(&name) else {
                continue;
            };
            if shown_ids.contains(&id) {
                crate::wlog!(
                    "export: {:?} is a second name of a file still named: removed",
                    String::from_utf8_lossy(&name)
                );
                let _ = self.unlink_at(&name);
                continue;
            }
            self.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, name.clone());
            kept.push((id, name));
        }
        Ok(kept)
    }

    /// The shared names, sorted (not the hidden names of kept files).
    pub fn names(&self) -> Result<Vec<Vec<u8>>, i32> {
        let mut out = self.all_names()?;
        out.retain(|n| shown(n));
        Ok(out)
    }

    /// Every name of a regular file in the export, hidden ones too, sorted
    /// (read from the directory's descriptor, opened anew so that
    /// concurrent listings do not share a position). A symbolic link is
    /// no regular file: it is not listed, whatever it points to.
    fn all_names(&self) -> Result<Vec<Vec<u8>>, i32> {
        let dir = openat2(self.root()?, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| io_errno(&e))?;
        let mut out = Vec::new();
        for (name, kind) in read_dir(OwnedFd::from(dir))? {
            let is_file = match kind {
                libc::DT_REG => true,
                libc::DT_UNKNOWN => self
                    .lstat(&name)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG),
                _ => false,
            };
            if is_file && valid_name(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// READDIR: the entry at position `cookie` as `(next cookie, id,
    /// name)`, or `None` past the end.
    pub fn entry(&self, cookie: u64) -> Result<Option<(u64, u64, Vec<u8>)>, i32> {
        let names = self.names()?;
        let Some(name) = usize::try_from(cookie).ok().and_then(|i| names.get(i)) else {
            return Ok(None);
        };
        // (`d_ino` is a hint: a name gone meanwhile, or a second name of a
        // file, is listed with its name's hash.)
        let id = self
            .attr_of(name)
            .map_or_else(|_| file_id(name), |a| a.file);
        Ok(Some((cookie + 1, id, name.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wfs-export-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn page_locks_exclude_per_page() {
        let e = std::sync::Arc::new(Export::new(Path::new("/nonexistent")));
        let held = e.lock_page(1, 2);
        // Another page is free.
        drop(e.lock_page(1, 3));
        let (tx, rx) = std::sync::mpsc::channel();
        let e2 = e.clone();
        let t = std::thread::spawn(move || {
            let _g = e2.lock_page(1, 2);
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            "a held page was locked twice"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the page was not handed over");
        t.join().unwrap();
    }

    #[test]
    fn create_and_remove() {
        let d = tmpdir("create");
        let e = Export::new(&d);
        let (a, made) = e.create(b"n", 0o640, true, (0, 0)).unwrap();
        assert!(made);
        assert_eq!((a.file, a.size, a.mode), (id_in(&d, b"n"), 0, 0o640));
        assert_ne!(a.file, file_id(b"n"), "a handle's id, not the name's");
        let md = fs::metadata(d.join("n")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o640);
        // Exclusive: refused; else the file that is there.
        assert_eq!(e.create(b"n", 0o600, true, (0, 0)), Err(errno::EEXIST));
        fs::write(d.join("n"), b"abc").unwrap();
        let (b, made) = e.create(b"n", 0o600, false, (0, 0)).unwrap();
        assert!(!made);
        assert_eq!((b.file, b.size, b.mode), (a.file, 3, 0o640));
        // Not a regular file: exists, and is not opened.
        fs::create_dir(d.join("dir")).unwrap();
        assert_eq!(e.create(b"dir", 0o600, false, (0, 0)), Err(errno::EEXIST));
        assert_eq!(e.create(b"a/b", 0o600, false, (0, 0)), Err(errno::EINVAL));
        // Removed: gone, and its id with it.
        assert_eq!(e.getattr(a.file).unwrap().size, 3);
        assert_eq!(e.remove(a.file, b"n"), Ok(()));
        assert!(!d.join("n").exists());
        assert_eq!(e.getattr(a.file), Err(errno::ENOENT));
        assert_eq!(e.remove(a.file, b"n"), Err(errno::ENOENT));
        assert_eq!(e.remove(file_id(b"dir"), b"dir"), Err(errno::ENOENT));
        assert_eq!(e.remove(a.file, b"dir"), Err(errno::ENOENT), "wrong id");
        // Made again: empty.
        let (c, made) = e.create(b"n", 0o600, true, (0, 0)).unwrap();
        assert!(made);
        assert_eq!(c.size, 0);
        assert_ne!(c.file, a.file, "another file, another id");
        fs::remove_dir_all(&d).unwrap();
    }

    /// A file made is its creator's: owned by the ids asked for, with the
    /// mode asked for (set-id bits too: given after the owner, which would
    /// take them away).
    #[test]
    fn create_gives_the_creator_the_file() {
        let d = tmpdir("create-ids");
        let e = Export::new(&d);
        let (a, made) = e.create(b"alice", 0o2750, true, (1000, 100)).unwrap();
        assert!(made);
        let md = fs::metadata(d.join("alice")).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (1000, 100, 0o2750)
        );
        assert_eq!((a.uid, a.gid, a.mode & 0o7777), (1000, 100, 0o2750));
        // Found, not made: its owner stays.
        let (b, made) = e.create(b"alice", 0o600, false, (0, 0)).unwrap();
        assert!(!made);
        assert_eq!((b.uid, b.gid), (1000, 100));
        fs::remove_dir_all(&d).unwrap();
    }

    /// A peer's root may not make files here while this export squashes
    /// root (it is nobody); other users' files are theirs, with group 0
    /// nobody's; without squashing root's files are root's. No id is
    /// refused either way.
    #[test]
    fn ids_of_a_peers_creator() {
        let d = tmpdir("squash-ids");
        let e = Export::new(&d);
        assert_eq!(e.made_for((0, 0)), Err(libc::EACCES), "squashed by default");
        assert_eq!(e.made_for((0, 100)), Err(libc::EACCES));
        assert_eq!(e.made_for((1000, 0)), Ok((1000, NOBODY)));
        assert_eq!(e.made_for((1000, 100)), Ok((1000, 100)));
        assert_eq!(e.made_for((u32::MAX, 100)), Err(errno::EINVAL));
        e.set_root_squash(false);
        assert_eq!(e.made_for((0, 0)), Ok((0, 0)));
        assert_eq!(e.made_for((1000, u32::MAX)), Err(errno::EINVAL));
        fs::remove_dir_all(&d).unwrap();
    }

    /// The single-host server keeps an open file's data past its unlink
    /// (and past a rename over it) until the last RELEASE, under a hidden
    /// name nobody can look up, list or make; a restarted manager finds it.
    #[test]
    fn a_file_unlinked_while_open_lives_until_its_last_release() {
        let d = tmpdir("kept");
        let e = Export::new(&d);
        fs::write(d.join("a"), b"aaa").unwrap();
        fs::write(d.join("b"), b"bb").unwrap();
        let a = e.lookup(b"a").unwrap().file;
        let b_id = e.lookup(b"b").unwrap().file;
        e.opened(a).unwrap();
        e.opened(a).unwrap();
        e.unlink(a, b"a").unwrap();
        let hidden = gone_name(a);
        assert_eq!(e.lookup(b"a"), Err(errno::ENOENT));
        assert_eq!(e.lookup(&hidden), Err(errno::ENOENT));
        assert_eq!(e.names().unwrap(), [b"b".to_vec()]);
        assert_eq!(e.create(&hidden, 0o600, true, (0, 0)), Err(errno::EINVAL));
        assert_eq!(e.getattr(a).map(|x| x.size), Ok(3));
        let mut page = vec![0u8; 4096];
        e.read_page(a, 0, &mut page).unwrap();
        assert_eq!(&page[..3], b"aaa");
        e.write_page(a, 0, b"AAA").unwrap();
        // A restarted manager finds it, kept.
        assert_eq!(Export::new(&d).kept_files().unwrap(), [(a, hidden.clone())]);
        // A hidden link left beside the file's own name is no kept file.
        fs::hard_link(d.join("b"), d.join(OsStr::from_bytes(&gone_name(b_id)))).unwrap();
        assert_eq!(Export::new(&d).kept_files().unwrap(), [(a, hidden.clone())]);
        assert!(!d.join(OsStr::from_bytes(&gone_name(b_id))).exists());
        e.released(a);
        assert!(d.join(OsStr::from_bytes(&hidden)).exists());
        e.released(a);
        assert!(!d.join(OsStr::from_bytes(&hidden)).exists());
        assert_eq!(e.getattr(a), Err(errno::ENOENT));
        // A file nobody has open goes at once; a rename over an open one
        // keeps it.
        fs::write(d.join("c"), b"c").unwrap();
        let (b, c) = (e.lookup(b"b").unwrap().file, e.lookup(b"c").unwrap().file);
        e.opened(b).unwrap();
        {
            let _held = e.keep_held(b, b"b").unwrap();
            e.rename(c, b"c", b"b", Some(b)).unwrap();
        }
        assert_eq!(fs::read(d.join("b")).unwrap(), b"c");
        assert_eq!(
            fs::read(d.join(OsStr::from_bytes(&gone_name(b)))).unwrap(),
            b"bb"
        );
        e.released(b);
        assert_eq!(e.kept_files().unwrap(), []);
        e.unlink(c, b"b").unwrap();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        // (A RELEASE never counted changes nothing.)
        e.released(c);
    }

    #[test]
    fn rename_keeps_the_id_and_replaces_only_the_file_named() {
        let d = tmpdir("rename");
        let e = Export::new(&d);
        fs::write(d.join("a"), b"aaa").unwrap();
        fs::write(d.join("b"), b"bb").unwrap();
        let a = e.lookup(b"a").unwrap().file;
        let b = e.lookup(b"b").unwrap().file;
        // To a free name: the same file, the same id.
        let r = e.rename(a, b"a", b"c", None).unwrap();
        assert_eq!((r.file, r.size), (a, 3));
        assert_eq!(e.lookup(b"a"), Err(errno::ENOENT));
        assert_eq!(e.getattr(a).map(|x| x.size), Ok(3));
        // Not over a name that is taken, unless the file there is named.
        assert_eq!(e.rename(a, b"c", b"b", None), Err(errno::EEXIST));
        assert_eq!(e.rename(a, b"c", b"b", Some(a)), Err(errno::EBUSY));
        assert_eq!(
            e.rename(b, b"c", b"x", None),
            Err(errno::ENOENT),
            "wrong id"
        );
        let r = e.rename(a, b"c", b"b", Some(b)).unwrap();
        assert_eq!(r.file, a);
        assert_eq!(fs::read(d.join("b")).unwrap(), b"aaa");
        assert_eq!(e.getattr(b), Err(errno::ENOENT));
        assert_eq!(e.lookup(b"c"), Err(errno::ENOENT));
        // Pages follow the file.
        let mut page = vec![0u8; 4096];
        e.read_page(a, 0, &mut page).unwrap();
        assert_eq!(&page[..3], b"aaa");
        // A restarted manager finds it under its new name.
        assert_eq!(Export::new(&d).getattr(a).map(|x| x.size), Ok(3));
        assert_eq!(e.rename(a, b"b", b"a/b", None), Err(errno::EINVAL));
        fs::remove_dir_all(&d).unwrap();
    }

    /// The `openat2` wrapper: nothing but a name beneath the directory,
    /// through no symbolic link, whatever the name.
    #[test]
    fn openat2_stays_beneath_the_directory_and_follows_no_link() {
        let d = tmpdir("openat2");
        fs::write(d.join("inner"), b"inner").unwrap();
        fs::create_dir(d.join("real")).unwrap();
        fs::write(d.join("real/f"), b"f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("out")).unwrap();
        std::os::unix::fs::symlink("inner", d.join("in")).unwrap();
        std::os::unix::fs::symlink(d.join("inner"), d.join("in_abs")).unwrap();
        std::os::unix::fs::symlink("real", d.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
        let root = open_root(&d).unwrap();
        let open = |name: &CStr| {
            openat2(root.as_fd(), name, libc::O_RDONLY, 0)
                .map(|_| ())
                .map_err(|e| e.raw_os_error().unwrap())
        };
        assert_eq!(open(c"inner"), Ok(()));
        assert_eq!(open(c"real/f"), Ok(()), "a real directory, beneath");
        // Symbolic links, out of the directory or in it, last or not.
        assert_eq!(open(c"out"), Err(libc::ELOOP));
        assert_eq!(open(c"in"), Err(libc::ELOOP));
        assert_eq!(open(c"in_abs"), Err(libc::ELOOP));
        assert_eq!(open(c"sub/f"), Err(libc::ELOOP));
        assert_eq!(open(c"etc/passwd"), Err(libc::ELOOP));
        // Out of the directory.
        assert_eq!(open(c"../x"), Err(libc::EXDEV));
        assert_eq!(open(c"real/../../x"), Err(libc::EXDEV));
        assert_eq!(open(c"/etc/passwd"), Err(libc::EXDEV));
        assert_eq!(open(c"/proc/self/fd/0"), Err(libc::EXDEV));
        // `O_PATH` opens the link itself, never its target.
        let l = openat2(root.as_fd(), c"out", libc::O_PATH, 0).unwrap();
        assert!(l.metadata().unwrap().file_type().is_symlink());
        // A name made is made beneath the directory, never through a link.
        let made = openat2(
            root.as_fd(),
            c"sub/new",
            libc::O_WRONLY | libc::O_CREAT,
            0o600,
        );
        assert_eq!(
            made.map(|_| ()).map_err(|e| e.raw_os_error()),
            Err(Some(libc::ELOOP))
        );
        assert!(!d.join("real/new").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    /// A symbolic link in the export, to a file outside it (`/etc/passwd`)
    /// or inside it, is neither listed nor looked up, nor opened, read,
    /// written, grown, cut, timed, kept, renamed or removed through any
    /// of the export's calls, even under a name that was a file's.
    #[test]
    fn symbolic_links_in_the_export_are_never_followed() {
        let d = tmpdir("links");
        let outside = tmpdir("links-outside");
        let secret = outside.join("secret");
        fs::write(&secret, b"secret").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let secret_md = fs::metadata(&secret).unwrap();
        let passwd = fs::read("/etc/passwd").unwrap();
        fs::write(d.join("inner"), b"inner").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        std::os::unix::fs::symlink("inner", d.join("in")).unwrap();
        std::os::unix::fs::symlink(&outside, d.join("dir")).unwrap();
        let e = Export::new(&d);
        let inner = e.lookup(b"inner").unwrap().file;
        // Not listed, not looked up; nor a path through a linked directory.
        assert_eq!(e.names().unwrap(), [b"inner".to_vec()]);
        assert_eq!(e.all_names().unwrap(), [b"inner".to_vec()]);
        assert_eq!(e.entry(1).unwrap(), None);
        for name in [
            &b"passwd"[..],
            b"in",
            b"dir",
            b"dir/secret",
            b"../links-outside/secret",
        ] {
            assert_eq!(e.lookup(name), Err(errno::ENOENT), "{name:?}");
            assert!(e.open_name(name, false).is_err(), "{name:?}");
        }
        // The target's id is no file of the export.
        let etc = id_in(Path::new("/etc"), b"passwd");
        let mut page = vec![0u8; PAGE_SIZE];
        assert_eq!(e.getattr(etc), Err(errno::ENOENT));
        assert_eq!(e.read_page(etc, 0, &mut page), Err(errno::ENOENT));
        // Not made through (nor over) a link.
        assert_eq!(
            e.create(b"passwd", 0o600, false, (0, 0)),
            Err(errno::EEXIST)
        );
        assert_eq!(e.create(b"in", 0o600, true, (0, 0)), Err(errno::EEXIST));
        // Files replaced by links after their LOOKUP: to a file outside,
        // and to a file inside.
        fs::write(d.join("f"), b"f").unwrap();
        fs::write(d.join("g"), b"g").unwrap();
        let f = e.lookup(b"f").unwrap().file;
        let g = e.lookup(b"g").unwrap().file;
        e.read_page(f, 0, &mut page).unwrap();
        fs::remove_file(d.join("f")).unwrap();
        std::os::unix::fs::symlink(&secret, d.join("f")).unwrap();
        fs::remove_file(d.join("g")).unwrap();
        std::os::unix::fs::symlink("inner", d.join("g")).unwrap();
        let data = vec![b'x'; PAGE_SIZE];
        for (id, name) in [(f, &b"f"[..]), (g, b"g")] {
            assert_eq!(e.getattr(id), Err(errno::ENOENT));
            assert_eq!(e.read_page(id, 0, &mut page), Err(errno::ENOENT));
            assert_eq!(e.write_page(id, 0, &data), Err(errno::ENOENT));
            assert!(e.write_page_unsynced(id, 0, &data).is_err());
            assert_eq!(
                e.set_size(id, 3 * PAGE_SIZE as u64, true),
                Err(errno::ENOENT)
            );
            assert_eq!(e.cut(id, 0), Err(errno::ENOENT));
            assert_eq!(e.set_mtime(id, 1, 0), Err(errno::ENOENT));
            assert_eq!(e.upgrade(id, 0), Err(errno::ENOENT));
            assert_eq!(e.keep(id, name), Err(errno::ENOENT));
            assert_eq!(e.remove(id, name), Err(errno::ENOENT));
            assert_eq!(e.rename(id, name, b"moved", None), Err(errno::ENOENT));
            assert_eq!(e.opened(id), Err(errno::ENOENT));
        }
        // The link that points inside is no second name of its target.
        assert_eq!(e.rename(inner, b"g", b"moved", None), Err(errno::ENOENT));
        assert_eq!(e.remove(inner, b"g"), Err(errno::ENOENT));
        assert!(fs::symlink_metadata(d.join("g")).unwrap().is_symlink());
        // Nothing was touched through them.
        assert_eq!(fs::read(&secret).unwrap(), b"secret");
        let md = fs::metadata(&secret).unwrap();
        assert_eq!((md.len(), md.mtime()), (secret_md.len(), secret_md.mtime()));
        assert_eq!(fs::read(d.join("inner")).unwrap(), b"inner");
        assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);
        assert!(!d.join("moved").exists());
        // Regular files are served as before.
        e.read_page(inner, 0, &mut page).unwrap();
        assert_eq!(&page[..5], b"inner");
        fs::remove_dir_all(&d).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }

    /// The export is the directory opened at start, not its path: a path
    /// made to point elsewhere later (the directory renamed away, a link
    /// put in its place) does not take the manager with it.
    #[test]
    fn the_export_is_the_directory_opened_at_start() {
        let d = tmpdir("pinned");
        let moved = tmpdir("pinned-moved");
        let outside = tmpdir("pinned-outside");
        fs::write(d.join("mine"), b"mine").unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        let e = Export::checked(&d, Grant::ReadWrite).unwrap();
        fs::remove_dir(&moved).unwrap();
        fs::rename(&d, &moved).unwrap();
        std::os::unix::fs::symlink(&outside, &d).unwrap();
        assert_eq!(e.lookup(b"secret"), Err(errno::ENOENT));
        assert_eq!(e.names().unwrap(), [b"mine".to_vec()]);
        let mine = e.lookup(b"mine").unwrap().file;
        let mut page = vec![0u8; PAGE_SIZE];
        e.read_page(mine, 0, &mut page).unwrap();
        assert_eq!(&page[..4], b"mine");
        e.create(b"new", 0o600, true, (0, 0)).unwrap();
        assert!(moved.join("new").exists() && !outside.join("new").exists());
        fs::remove_file(&d).unwrap();
        fs::remove_dir_all(&moved).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_checked_export_needs_its_directory() {
        let err =
            Export::checked(Path::new("/nonexistent/wfs-export"), Grant::ReadWrite).unwrap_err();
        assert!(err.contains("cannot open export directory"), "{err}");
        let err = Export::checked(Path::new("/etc/passwd"), Grant::ReadWrite).unwrap_err();
        assert!(err.contains("Not a directory"), "{err}");
        // Unchecked, every request fails, and none panics.
        let e = Export::new(Path::new("/nonexistent/wfs-export"));
        assert_eq!(e.lookup(b"a"), Err(errno::ENOENT));
        assert_eq!(e.names(), Err(errno::ENOENT));
        assert_eq!(e.create(b"a", 0o600, true, (0, 0)), Err(errno::ENOENT));
    }

    #[test]
    fn ids_are_stable_and_never_root() {
        assert_eq!(file_id(b"foo"), file_id(b"foo"));
        assert_ne!(file_id(b"foo"), file_id(b"bar"));
        assert!(file_id(b"") >= 2 && file_id(b"x") >= 2);
    }

    #[test]
    fn lookup_getattr_readdir() {
        let d = tmpdir("basic");
        fs::write(d.join("b"), vec![7u8; 8192]).unwrap();
        fs::write(d.join("a"), b"hello").unwrap();
        fs::set_permissions(d.join("a"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::create_dir(d.join("subdir")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        let e = Export::new(&d);

        let a = e.lookup(b"a").unwrap();
        assert_eq!((a.file, a.size, a.mode), (id_in(&d, b"a"), 5, 0o640));
        assert_eq!(e.lookup(b"missing"), Err(errno::ENOENT));
        // Directories and symbolic links are not shared.
        assert_eq!(e.lookup(b"subdir"), Err(errno::ENOENT));
        assert_eq!(e.lookup(b"link"), Err(errno::ENOENT));
        assert_eq!(e.lookup(b".."), Err(errno::ENOENT));
        assert_eq!(e.getattr(a.file).unwrap(), a);
        assert_eq!(e.getattr(12345), Err(errno::ENOENT));
        // A restarted manager answers for ids its predecessor handed out.
        let fresh = Export::new(&d);
        assert_eq!(fresh.getattr(a.file).unwrap(), a);
        // Pages: the data, then zeros past the end of the file.
        let mut page = vec![0xffu8; 4096];
        fresh.read_page(a.file, 0, &mut page).unwrap();
        assert_eq!(&page[..5], b"hello");
        assert!(page[5..].iter().all(|&b| b == 0));
        fresh.read_page(a.file, 9, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0));
        assert_eq!(fresh.read_page(999, 0, &mut page), Err(errno::ENOENT));
        // Writes land in place and never grow the file.
        let mut page = vec![b'x'; 4096];
        page[..3].copy_from_slice(b"new");
        fresh.write_page(a.file, 0, &page).unwrap();
        assert_eq!(fs::read(d.join("a")).unwrap(), b"newxx");
        assert_eq!(fresh.write_page(a.file, 1, &page), Err(errno::EFBIG));
        // A file that grows is seen at its new size.
        fs::write(d.join("a"), b"hello, world").unwrap();
        assert_eq!(e.getattr(a.file).unwrap().size, 12);

        let mut listed = Vec::new();
        let mut cookie = 0;
        while let Some((next, id, name)) = e.entry(cookie).unwrap() {
            assert!(next > cookie);
            assert_eq!(id, id_in(&d, &name));
            listed.push(String::from_utf8(name).unwrap());
            cookie = next;
        }
        assert_eq!(listed, ["a", "b"]);
        // A file removed behind our back disappears.
        fs::remove_file(d.join("b")).unwrap();
        assert_eq!(e.lookup(b"b"), Err(errno::ENOENT));
        assert_eq!(e.entry(1).unwrap(), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn cut_shrinks_a_file_durably_and_what_it_cut_reads_as_zeros() {
        let d = tmpdir("cut");
        let mut data = vec![b'a'; PAGE_SIZE];
        data.extend(vec![b'b'; PAGE_SIZE]);
        fs::write(d.join("f"), &data).unwrap();
        let e = Export::new(&d);
        let f = e.lookup(b"f").unwrap().file;
        let cut = Resized {
            size: 10,
            changed: true,
            unsynced: None,
        };
        assert_eq!(e.cut(f, 10), Ok(cut));
        assert_eq!(fs::read(d.join("f")).unwrap(), vec![b'a'; 10]);
        assert_eq!(Export::new(&d).getattr(f).unwrap().size, 10);
        // Past the new end nothing is written; grown again, the bytes
        // past the cut are zeros.
        assert_eq!(
            e.write_page(f, 1, &vec![b'x'; PAGE_SIZE]),
            Err(errno::EFBIG)
        );
        e.set_size(f, 2 * PAGE_SIZE as u64, true).unwrap();
        let mut page = vec![0xff; PAGE_SIZE];
        e.read_page(f, 0, &mut page).unwrap();
        assert_eq!(&page[..10], &[b'a'; 10]);
        assert!(page[10..].iter().all(|&b| b == 0));
        e.read_page(f, 1, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0));
        // The same size changes nothing; an unknown file is ENOENT.
        assert_eq!(
            e.cut(f, 2 * PAGE_SIZE as u64),
            Ok(Resized {
                size: 2 * PAGE_SIZE as u64,
                changed: false,
                unsynced: None,
            })
        );
        assert_eq!(e.cut(12345, 0), Err(errno::ENOENT));
    }

    #[test]
    fn files_grow_through_set_size_only_and_never_shrink() {
        let d = tmpdir("size");
        fs::write(d.join("f"), b"hello").unwrap();
        let e = Export::new(&d);
        let f = e.lookup(b"f").unwrap().file;
        let page = vec![b'x'; PAGE_SIZE];
        // Before: nothing past the end may be written or upgraded.
        assert_eq!(e.write_page(f, 1, &page), Err(errno::EFBIG));
        assert_eq!(e.upgrade(f, 1), Err(errno::EFBIG));
        // The same size, or (growing) a smaller one: nothing changes.
        let same = |size| {
            Ok(Resized {
                size,
                changed: false,
                unsynced: None,
            })
        };
        assert_eq!(e.set_size(f, 5, false), same(5));
        assert_eq!(e.set_size(f, 5, true), same(5));
        assert_eq!(e.set_size(f, 3, true), same(5));
        // Shrinking is refused, and leaves the file alone.
        assert_eq!(e.set_size(f, 3, false), Err(errno::EOPNOTSUPP));
        assert_eq!(e.set_size(f, 0, false), Err(errno::EOPNOTSUPP));
        assert_eq!(fs::read(d.join("f")).unwrap(), b"hello");
        // Past the largest file: EFBIG; an unknown file: ENOENT.
        assert_eq!(
            e.set_size(f, wfs_abi::SIZE_MAX + 1, true),
            Err(errno::EFBIG)
        );
        assert_eq!(e.set_size(12345, 10, true), Err(errno::ENOENT));
        // Growing: the new bytes are zeros, and the size is on disk (a
        // restarted manager's export sees it).
        let grown = Resized {
            size: 2 * PAGE_SIZE as u64 + 10,
            changed: true,
            unsynced: None,
        };
        assert_eq!(e.set_size(f, grown.size, true), Ok(grown));
        let mut want = b"hello".to_vec();
        want.resize(grown.size as usize, 0);
        assert_eq!(fs::read(d.join("f")).unwrap(), want);
        assert_eq!(Export::new(&d).getattr(f).unwrap().size, grown.size);
        assert_eq!(e.getattr(f).unwrap().size, grown.size);
        // Pages in the grown range may be written and upgraded now, through
        // the file kept open as through one of their own; the last page is
        // cut at the new end.
        assert_eq!(e.upgrade(f, 2), Ok(Grant::ReadWrite));
        assert_eq!(e.upgrade(f, 3), Err(errno::EFBIG));
        e.write_page(f, 1, &page).unwrap();
        drop(e.write_page_unsynced(f, 2, &page).unwrap());
        let data = fs::read(d.join("f")).unwrap();
        assert_eq!(data.len() as u64, grown.size);
        assert!(data[PAGE_SIZE..].iter().all(|&b| b == b'x'));
        assert_eq!(e.write_page(f, 3, &page), Err(errno::EFBIG));
        // An exact size that is larger grows it too (truncate up).
        assert_eq!(
            e.set_size(f, 5 * PAGE_SIZE as u64, false),
            Ok(Resized {
                size: 5 * PAGE_SIZE as u64,
                changed: true,
                unsynced: None,
            })
        );
        assert_eq!(e.upgrade(f, 4), Ok(Grant::ReadWrite));
        // Grown behind the export's back: a smaller growth leaves it.
        fs::OpenOptions::new()
            .write(true)
            .open(d.join("f"))
            .unwrap()
            .set_len(9 * PAGE_SIZE as u64)
            .unwrap();
        assert_eq!(
            e.set_size(f, 6 * PAGE_SIZE as u64, true),
            same(9 * PAGE_SIZE as u64)
        );
        // A flush that fails after the size was set: the file is that long
        // all the same, which the caller hears (to tell every host), with
        // the errno its request fails with.
        e.fail_sync.store(errno::EIO, Ordering::Relaxed);
        let r = e.set_size(f, 10 * PAGE_SIZE as u64, true);
        let unsynced = Resized {
            size: 10 * PAGE_SIZE as u64,
            changed: true,
            unsynced: Some(errno::EIO),
        };
        assert_eq!(r, Ok(unsynced));
        assert_eq!(unsynced.result(), Err(errno::EIO));
        assert_eq!(e.getattr(f).unwrap().size, unsynced.size);
        // A file that cannot be written (not for root, who may) is not
        // grown, but a size it has already is answered.
        fs::write(d.join("ro"), b"ro").unwrap();
        fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o444)).unwrap();
        let ro = e.lookup(b"ro").unwrap().file;
        assert_eq!(e.set_size(ro, 2, false), same(2));
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert_eq!(e.set_size(ro, 10, true), Err(libc::EACCES));
            assert_eq!(fs::read(d.join("ro")).unwrap(), b"ro");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_kept_open_follow_their_files_and_never_a_symbolic_link() {
        let d = tmpdir("open");
        let secret = tmpdir("outside").join("secret");
        fs::write(&secret, b"secret").unwrap();
        fs::write(d.join("f"), b"first").unwrap();
        let e = Export::new(&d);
        let f = e.lookup(b"f").unwrap().file;
        let mut page = vec![0u8; 4096];
        e.read_page(f, 0, &mut page).unwrap();
        assert_eq!(&page[..5], b"first");
        // Written through the file kept open, and seen by name.
        let mut new = vec![0u8; 4096];
        new[..5].copy_from_slice(b"FIRST");
        drop(e.write_page_unsynced(f, 0, &new).unwrap());
        assert_eq!(fs::read(d.join("f")).unwrap(), b"FIRST");
        // Renamed by hand: its id follows it, under its new name.
        fs::rename(d.join("f"), d.join("f2")).unwrap();
        new[..5].copy_from_slice(b"again");
        e.write_page(f, 0, &new).unwrap();
        assert_eq!(fs::read(d.join("f2")).unwrap(), b"again");
        assert_eq!(e.getattr(f).map(|a| a.size), Ok(5));
        assert_eq!(e.lookup(b"f2").map(|a| a.file), Ok(f));
        assert_eq!(e.lookup(b"f"), Err(errno::ENOENT));
        // Replaced by another file renamed over it (an editor's save): the
        // id is gone with the file, and the new one has another.
        fs::write(d.join("g"), b"second").unwrap();
        fs::rename(d.join("g"), d.join("f2")).unwrap();
        assert_eq!(e.read_page(f, 0, &mut page), Err(errno::ENOENT));
        assert_eq!(e.write_page(f, 0, &new), Err(errno::ENOENT));
        assert_eq!(fs::read(d.join("f2")).unwrap(), b"second");
        let g = e.lookup(b"f2").unwrap().file;
        assert_ne!(g, f);
        // Made again under a removed name: another id.
        fs::remove_file(d.join("f2")).unwrap();
        fs::write(d.join("f2"), b"third").unwrap();
        assert_eq!(e.read_page(g, 0, &mut page), Err(errno::ENOENT));
        let f = e.lookup(b"f2").unwrap().file;
        assert_ne!(f, g);
        e.read_page(f, 0, &mut page).unwrap();
        assert_eq!(&page[..5], b"third");
        fs::rename(d.join("f2"), d.join("f")).unwrap();
        // Replaced by a symbolic link after its LOOKUP: not followed.
        fs::remove_file(d.join("f")).unwrap();
        std::os::unix::fs::symlink(&secret, d.join("f")).unwrap();
        assert_eq!(e.read_page(f, 0, &mut page), Err(errno::ENOENT));
        assert_eq!(e.write_page(f, 0, &new), Err(errno::ENOENT));
        assert_eq!(fs::read(&secret).unwrap(), b"secret");
        // Nor is a FIFO opened (it would block the manager).
        fs::remove_file(d.join("f")).unwrap();
        let fifo = std::ffi::CString::new(d.join("f").into_os_string().into_vec()).unwrap();
        // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(e.read_page(f, 0, &mut page), Err(errno::ENOENT));
        fs::remove_dir_all(&d).unwrap();
        fs::remove_dir_all(secret.parent().unwrap()).unwrap();
    }
}
