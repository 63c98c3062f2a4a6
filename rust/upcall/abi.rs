// SPDX-License-Identifier: GPL-2.0

//! The WFS upcall ABI: the single source of truth shared by `wfs.ko` and
//! `wfs-manager`.
//!
//! This file is compiled twice: as `upcall::abi` inside the kernel module
//! and as `wfs_abi` in the userspace workspace (through `#[path]`). It must
//! therefore depend on nothing but `core`: no `kernel::` and no `std::`
//! items, no allocation, no `unsafe`.
//!
//! Every message is encoded explicitly, field by field, in little-endian
//! byte order. Nothing is transmuted, so a malformed message can only ever
//! produce a [`DecodeError`], never undefined behaviour.
//!
//! See `Documentation/upcall-abi.md` for the prose description.

/// Version of this ABI. A manager must present exactly this number in
/// [`Register::abi_version`]; anything else is refused with `EPROTO`.
pub const ABI_VERSION: u32 = 16;

/// Magic number at the start of every [`Register`] block, so that a random
/// ioctl argument is rejected before its version is even looked at.
pub const REGISTER_MAGIC: u32 = 0x5746_5331; // "WFS1"

/// Page size used by the protocol. WFS moves whole pages only.
pub const PAGE_SIZE: usize = 4096;

/// Most pages one READ asks for: its first page and the run after it, in
/// as many consecutive pool slots.
pub const READ_RUN_MAX: u32 = 16;

/// Longest file name the flat WFS namespace accepts.
pub const NAME_MAX: usize = 255;

/// Size in bytes of an encoded [`Header`].
pub const HEADER_LEN: usize = 16;

/// Largest message either side may send: a header, a fixed argument block
/// and two names (RENAME's). Page data never travels in messages (it goes
/// through the netmem pool), so this bound is small and fixed.
pub const MSG_MAX: usize = HEADER_LEN + 64 + 2 * NAME_MAX;

/// `errno` values used on the wire. They are Linux's numbers, spelled out
/// here because this file cannot depend on either side's errno table.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file.
    pub const ENOENT: i32 = 2;
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// The name exists already (CREATE with `O_EXCL`).
    pub const EEXIST: i32 = 17;
    /// A RENAME between files of two owners (`mv` copies instead).
    pub const EXDEV: i32 = 18;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File too large.
    pub const EFBIG: i32 = 27;
    /// Try again: a lock another owner holds (`F_SETLK`, `LOCK_NB`).
    pub const EAGAIN: i32 = 11;
    /// A wait for a lock would deadlock.
    pub const EDEADLK: i32 = 35;
    /// Name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// No lock could be had (the remote locking protocol failed).
    pub const ENOLCK: i32 = 37;
    /// Not implemented: a manager that keeps no locks answers LOCK with it,
    /// and the kernel then locks on this host alone.
    pub const ENOSYS: i32 = 38;
    /// Protocol error.
    pub const EPROTO: i32 = 71;
    /// Not supported: a SETSIZE that shrinks a file (not yet done across
    /// hosts).
    pub const EOPNOTSUPP: i32 = 95;
    /// Timer expired.
    pub const ETIMEDOUT: i32 = 110;
    /// A RELEASE of an open another manager session counted.
    pub const ESTALE: i32 = 116;
}

// ---------------------------------------------------------------------------
// ioctls
// ---------------------------------------------------------------------------

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// The ioctl "type" byte of `/dev/wfs`.
pub const IOC_MAGIC: u8 = b'W';

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT)
        | ((IOC_MAGIC as u32) << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}

/// `_IOWR('W', 1, struct wfs_register)`: register as this host's manager.
pub const IOC_REGISTER: u32 = ioc(IOC_READ | IOC_WRITE, 1, Register::LEN);

/// `_IOR('W', 2, struct wfs_status)`: read the device status. Any opener may
/// call it; it does not register.
pub const IOC_STATUS: u32 = ioc(IOC_READ, 2, Status::LEN);

/// `_IOWR('W', 3, struct wfs_invalidate)`: take a page away from this host
/// (the registered manager only).
pub const IOC_INVALIDATE: u32 = ioc(IOC_READ | IOC_WRITE, 3, Invalidate::LEN);

/// `_IOW('W', 4, struct wfs_forget)`: forget the cached dentry of a name
/// (the registered manager only).
pub const IOC_FORGET: u32 = ioc(IOC_WRITE, 4, Forget::LEN);

/// `_IOW('W', 5, struct wfs_size)`: a file's owner says how long the file
/// is now ([`Size`]); a cached inode that is shorter grows to it.
pub const IOC_SIZE: u32 = ioc(IOC_WRITE, 5, Size::LEN);

/// `_IOWR('W', 6, struct wfs_opens)`: list the files this host has open,
/// with how many opens each ([`Opens`], [`OpenEntry`]), and make the
/// caller's session the one their RELEASEs go to (the registered manager
/// only; it must ask before it answers any OPEN).
pub const IOC_OPENS: u32 = ioc(IOC_READ | IOC_WRITE, 6, Opens::LEN);

/// The most entries an [`IOC_OPENS`] buffer may hold.
pub const OPENS_MAX: u32 = 1 << 16;

/// The last `SCRATCH_SLOTS` slots of the netmem pool belong to the manager:
/// the kernel never lends them with a request, and writes one only during
/// an [`IOC_INVALIDATE`] that names it (the paper's invalidation `vaddr`).
pub const SCRATCH_SLOTS: u32 = 8;

/// [`Invalidate::slot`] when the contents are not wanted.
pub const NO_SLOT: u32 = u32::MAX;

// ---------------------------------------------------------------------------
// Little-endian field access
// ---------------------------------------------------------------------------

/// Why a byte buffer could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer is shorter than the message it claims to hold.
    Short,
    /// The header's length field disagrees with the buffer or the opcode.
    BadLength,
    /// The opcode is not one this ABI version defines.
    UnknownOpcode(u16),
    /// The magic number is wrong.
    BadMagic,
    /// A name is empty, too long, or contains `/` or NUL.
    BadName,
    /// A field holds a value outside its range.
    BadField,
}

impl DecodeError {
    /// The errno a decoding failure is reported with.
    pub const fn errno(self) -> i32 {
        match self {
            DecodeError::BadMagic => errno::EPROTO,
            _ => errno::EINVAL,
        }
    }
}

fn get_u16(b: &[u8], off: usize) -> Result<u16, DecodeError> {
    match b.get(off..off + 2) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => Err(DecodeError::Short),
    }
}

fn get_u32(b: &[u8], off: usize) -> Result<u32, DecodeError> {
    match b.get(off..off + 4) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(DecodeError::Short),
    }
}

fn get_u64(b: &[u8], off: usize) -> Result<u64, DecodeError> {
    match b.get(off..off + 8) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_le_bytes(a))
        }
        None => Err(DecodeError::Short),
    }
}

/// Writes `bytes` at `off`. Callers have checked the buffer's length first.
fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
    b[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Checks a name of the flat namespace: 1..=NAME_MAX bytes, no `/`, no NUL,
/// and not `.` or `..`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.iter().any(|&c| c == b'/' || c == 0)
}

// ---------------------------------------------------------------------------
// REGISTER and STATUS ioctl blocks
// ---------------------------------------------------------------------------

/// The argument of [`IOC_REGISTER`], `struct wfs_register`.
///
/// The manager fills in `magic` and `abi_version`; the kernel answers with
/// its own version, the session number and the limits it enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Register {
    /// Must be [`REGISTER_MAGIC`].
    pub magic: u32,
    /// Must be [`ABI_VERSION`].
    pub abi_version: u32,
    /// Reserved flags, must be zero.
    pub flags: u32,
    /// Out: how many requests the kernel keeps in flight at most.
    pub max_inflight: u32,
    /// Out: number of page slots in the netmem pool.
    pub pool_slots: u32,
    /// Out: request time-out in milliseconds.
    pub timeout_ms: u32,
    /// Out: session number, incremented by every successful registration.
    pub session: u64,
}

impl Register {
    /// Encoded size.
    pub const LEN: usize = 32;

    /// A request block as a manager sends it.
    pub const fn request() -> Self {
        Register {
            magic: REGISTER_MAGIC,
            abi_version: ABI_VERSION,
            flags: 0,
            max_inflight: 0,
            pool_slots: 0,
            timeout_ms: 0,
            session: 0,
        }
    }

    /// Decodes a block. Only the layout is checked here; the kernel checks
    /// magic, version and flags itself so that it can pick the errno.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        Ok(Register {
            magic: get_u32(b, 0)?,
            abi_version: get_u32(b, 4)?,
            flags: get_u32(b, 8)?,
            max_inflight: get_u32(b, 12)?,
            pool_slots: get_u32(b, 16)?,
            timeout_ms: get_u32(b, 20)?,
            session: get_u64(b, 24)?,
        })
    }

    /// Encodes the block into `b`, which must hold [`Register::LEN`] bytes.
    pub fn encode(&self, b: &mut [u8; Self::LEN]) {
        put(b, 0, &self.magic.to_le_bytes());
        put(b, 4, &self.abi_version.to_le_bytes());
        put(b, 8, &self.flags.to_le_bytes());
        put(b, 12, &self.max_inflight.to_le_bytes());
        put(b, 16, &self.pool_slots.to_le_bytes());
        put(b, 20, &self.timeout_ms.to_le_bytes());
        put(b, 24, &self.session.to_le_bytes());
    }
}

/// The answer of [`IOC_STATUS`], `struct wfs_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// The kernel's [`ABI_VERSION`].
    pub abi_version: u32,
    /// 1 if a manager is registered, else 0.
    pub registered: u32,
    /// Process id of the registered manager (0 if none).
    pub manager_pid: u32,
    /// Requests currently outstanding.
    pub inflight: u32,
    /// Current session number (0 before the first registration).
    pub session: u64,
    /// Number of mounted WFS super blocks.
    pub mounts: u32,
    /// Free slots in the netmem pool.
    pub pool_free: u32,
}

impl Status {
    /// Encoded size.
    pub const LEN: usize = 32;

    /// Decodes a block.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        Ok(Status {
            abi_version: get_u32(b, 0)?,
            registered: get_u32(b, 4)?,
            manager_pid: get_u32(b, 8)?,
            inflight: get_u32(b, 12)?,
            session: get_u64(b, 16)?,
            mounts: get_u32(b, 24)?,
            pool_free: get_u32(b, 28)?,
        })
    }

    /// Encodes the block.
    pub fn encode(&self, b: &mut [u8; Self::LEN]) {
        put(b, 0, &self.abi_version.to_le_bytes());
        put(b, 4, &self.registered.to_le_bytes());
        put(b, 8, &self.manager_pid.to_le_bytes());
        put(b, 12, &self.inflight.to_le_bytes());
        put(b, 16, &self.session.to_le_bytes());
        put(b, 24, &self.mounts.to_le_bytes());
        put(b, 28, &self.pool_free.to_le_bytes());
    }
}

/// [`Invalidate::mode`] values.
pub mod inval {
    /// Remove the page from this host.
    pub const DROP: u32 = 1;
    /// Keep a clean, read-only copy.
    pub const DOWNGRADE: u32 = 2;
}

/// [`Invalidate::flags`] bits.
pub mod page_flags {
    /// The page was cached on this host.
    pub const PRESENT: u32 = 1;
    /// It held data not written back yet; the contents carry it now.
    pub const DIRTY: u32 = 2;
    /// It was granted for writing.
    pub const WRITABLE: u32 = 4;
    /// Its contents were copied into the named slot.
    pub const CONTENTS: u32 = 8;
}

/// The argument of [`IOC_INVALIDATE`], `struct wfs_invalidate`.
///
/// In: `file`, `index`, `mode` and `slot` (a scratch slot, or [`NO_SLOT`]);
/// out: `flags`. `reserved` must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Invalidate {
    /// File id.
    pub file: u64,
    /// Page index.
    pub index: u64,
    /// [`inval::DROP`] or [`inval::DOWNGRADE`].
    pub mode: u32,
    /// Scratch slot to receive the contents, or [`NO_SLOT`].
    pub slot: u32,
    /// Out: [`page_flags`] bits.
    pub flags: u32,
    /// Must be zero.
    pub reserved: u32,
}

impl Invalidate {
    /// Encoded size.
    pub const LEN: usize = 32;

    /// Decodes a block (layout only; the kernel checks the values).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        Ok(Invalidate {
            file: get_u64(b, 0)?,
            index: get_u64(b, 8)?,
            mode: get_u32(b, 16)?,
            slot: get_u32(b, 20)?,
            flags: get_u32(b, 24)?,
            reserved: get_u32(b, 28)?,
        })
    }

    /// Encodes the block.
    pub fn encode(&self, b: &mut [u8; Self::LEN]) {
        put(b, 0, &self.file.to_le_bytes());
        put(b, 8, &self.index.to_le_bytes());
        put(b, 16, &self.mode.to_le_bytes());
        put(b, 20, &self.slot.to_le_bytes());
        put(b, 24, &self.flags.to_le_bytes());
        put(b, 28, &self.reserved.to_le_bytes());
    }
}

/// The argument of [`IOC_FORGET`], `struct wfs_forget`: `len` u32,
/// `reserved` u32 (zero), then `len` bytes of name in a 256-byte field.
pub struct Forget;

impl Forget {
    /// Encoded size.
    pub const LEN: usize = 8 + NAME_MAX + 1;

    /// Decodes a block into the name it carries, which must be a valid
    /// name ([`valid_name`], else [`DecodeError::BadName`]); a bad length
    /// or reserved field is [`DecodeError::BadField`].
    pub fn decode(b: &[u8]) -> Result<&[u8], DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        let len = get_u32(b, 0)? as usize;
        if get_u32(b, 4)? != 0 || len > NAME_MAX {
            return Err(DecodeError::BadField);
        }
        let name = &b[8..8 + len];
        if !valid_name(name) {
            return Err(DecodeError::BadName);
        }
        Ok(name)
    }

    /// Encodes `name` (at most [`NAME_MAX`] bytes).
    pub fn encode(name: &[u8], b: &mut [u8; Self::LEN]) -> Result<(), DecodeError> {
        if name.len() > NAME_MAX {
            return Err(DecodeError::BadField);
        }
        b.fill(0);
        put(b, 0, &(name.len() as u32).to_le_bytes());
        put(b, 8, name);
        Ok(())
    }
}

/// Largest file size: the kernel's `MAX_LFS_FILESIZE` on 64-bit hosts.
pub const SIZE_MAX: u64 = i64::MAX as u64;

/// [`Size`]'s flag: the file was cut to exactly that size.
pub const SIZE_CUT: u32 = 1;

/// The argument of [`IOC_SIZE`], `struct wfs_size`: `file` u64, `size` u64
/// (at most [`SIZE_MAX`]), `flags` u32 (0 or [`SIZE_CUT`]), `reserved`
/// u32 (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size {
    /// File id.
    pub file: u64,
    /// The file's size, as its owner has it.
    pub size: u64,
    /// The owner cut the file to exactly `size` (a shrink; no page past
    /// the new end is cached on this host any more): a cached inode takes
    /// that size. Else a cached inode that is shorter grows to it.
    pub cut: bool,
}

impl Size {
    /// Encoded size.
    pub const LEN: usize = 24;

    /// Decodes a block; a size past [`SIZE_MAX`], an unknown flag or a
    /// non-zero reserved field is [`DecodeError::BadField`].
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        let flags = get_u32(b, 16)?;
        if flags & !SIZE_CUT != 0 || get_u32(b, 20)? != 0 {
            return Err(DecodeError::BadField);
        }
        let s = Size {
            file: get_u64(b, 0)?,
            size: get_u64(b, 8)?,
            cut: flags & SIZE_CUT != 0,
        };
        if s.size > SIZE_MAX {
            return Err(DecodeError::BadField);
        }
        Ok(s)
    }

    /// Encodes the block.
    pub fn encode(&self, b: &mut [u8; Self::LEN]) {
        put(b, 0, &self.file.to_le_bytes());
        put(b, 8, &self.size.to_le_bytes());
        let flags = if self.cut { SIZE_CUT } else { 0 };
        put(b, 16, &flags.to_le_bytes());
        put(b, 20, &0u32.to_le_bytes());
    }
}

/// The block of [`IOC_OPENS`]: where the list goes, and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opens {
    /// In: a user buffer of `cap` [`OpenEntry`] blocks.
    pub buf: u64,
    /// In: how many entries `buf` holds (at most [`OPENS_MAX`]).
    pub cap: u32,
    /// Out: how many entries there are. More than `cap`: none was written
    /// and nothing changed (`E2BIG`); ask again with room for them.
    pub count: u32,
}

impl Opens {
    /// Encoded size.
    pub const LEN: usize = 16;

    /// Decodes a block; a `cap` past [`OPENS_MAX`] is
    /// [`DecodeError::BadField`].
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        let o = Opens {
            buf: get_u64(b, 0)?,
            cap: get_u32(b, 8)?,
            count: get_u32(b, 12)?,
        };
        if o.cap > OPENS_MAX {
            return Err(DecodeError::BadField);
        }
        Ok(o)
    }

    /// Encodes the block.
    pub fn encode(&self, b: &mut [u8; Self::LEN]) {
        put(b, 0, &self.buf.to_le_bytes());
        put(b, 8, &self.cap.to_le_bytes());
        put(b, 12, &self.count.to_le_bytes());
    }
}

/// One file of an [`IOC_OPENS`] list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenEntry {
    /// File id.
    pub file: u64,
    /// How many opens of it this host has (at least 1).
    pub count: u32,
}

impl OpenEntry {
    /// Encoded size.
    pub const LEN: usize = 16;

    /// Decodes an entry; a count of 0 or a non-zero reserved field is
    /// [`DecodeError::BadField`].
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::LEN {
            return Err(DecodeError::Short);
        }
        let e = OpenEntry {
            file: get_u64(b, 0)?,
            count: get_u32(b, 8)?,
        };
        if e.count == 0 || get_u32(b, 12)? != 0 {
            return Err(DecodeError::BadField);
        }
        Ok(e)
    }

    /// Encodes the entry.
    pub fn encode(&self, b: &mut [u8; Self::LEN]) {
        put(b, 0, &self.file.to_le_bytes());
        put(b, 8, &self.count.to_le_bytes());
        put(b, 12, &0u32.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------
// Messages on /dev/wfs
// ---------------------------------------------------------------------------

/// Operation codes. Requests go kernel → manager through `read(2)`; every
/// reply carries the opcode of the request it answers with [`REPLY_BIT`] set
/// and goes manager → kernel through `write(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Opcode {
    /// Look a name up in the flat namespace.
    Lookup = 1,
    /// Read a file's attributes.
    Getattr = 2,
    /// List the shared files, from a cookie on.
    Readdir = 3,
    /// Chunk's *strategy*: fill pages of a file.
    Read = 4,
    /// Chunk's *putpages*: write pages of a file back.
    Write = 5,
    /// Ask for write access to a page granted read-only.
    Upgrade = 6,
    /// Fill a page of a view (a `-o ro,view` mount): as the file's owner
    /// has it on disk, with no grant kept. The protocol never takes it
    /// back; the program refreshes it (`msync(MS_INVALIDATE)`).
    View = 7,
    /// Take, release or test an `fcntl` or `flock` lock, at the file's
    /// owner.
    Lock = 8,
    /// Grow or shrink a file, at its owner, before the kernel does (a
    /// write past the end, `truncate`).
    Setsize = 9,
    /// Make a new file, owned by this host (`O_CREAT`).
    Create = 10,
    /// Remove a file's name, at its owner (`unlink`).
    Unlink = 11,
    /// Give a file another name, at its owner (`rename`).
    Rename = 12,
    /// This host opens a file (`open(2)` of a regular file): answered once
    /// the file's owner counts this host among those that have it open,
    /// so that an `unlink` anywhere keeps its data until the last close.
    Open = 13,
    /// An open of a file made by [`Opcode::Open`] is over (its last
    /// reference gone: close, `munmap`, exit). Answered at once.
    Release = 14,
    /// Set a file's modification time, at its owner (`utimensat`,
    /// `touch -d`, `tar -x`).
    Settimes = 15,
}

/// Set in the opcode of every reply.
pub const REPLY_BIT: u16 = 0x8000;

impl Opcode {
    /// Decodes an opcode (without [`REPLY_BIT`]).
    pub fn from_u16(v: u16) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => Opcode::Lookup,
            2 => Opcode::Getattr,
            3 => Opcode::Readdir,
            4 => Opcode::Read,
            5 => Opcode::Write,
            6 => Opcode::Upgrade,
            7 => Opcode::View,
            8 => Opcode::Lock,
            9 => Opcode::Setsize,
            10 => Opcode::Create,
            11 => Opcode::Unlink,
            12 => Opcode::Rename,
            13 => Opcode::Open,
            14 => Opcode::Release,
            15 => Opcode::Settimes,
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }
}

/// What kind of lock a LOCK request is about, which decides what it
/// conflicts with and who owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LockKind {
    /// A POSIX record lock (`F_SETLK`...): owned by a process's file table.
    Posix = 1,
    /// An open file description's record lock (`F_OFD_SETLK`...): owned
    /// by the open file.
    Ofd = 2,
    /// A `flock` lock: the whole file, owned by the open file; conflicts
    /// with `flock` locks only.
    Flock = 3,
}

/// What a LOCK request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LockCmd {
    /// `F_GETLK`: which lock, if any, would conflict.
    Get = 1,
    /// `F_SETLK`, `LOCK_NB`: take or release at once, or `EAGAIN`.
    Set = 2,
    /// `F_SETLKW`, `flock` without `LOCK_NB`: wait for the lock (bounded by
    /// the mount's time-out; a fatal signal ends the wait).
    Wait = 3,
}

/// A lock's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LockMode {
    /// Shared: `F_RDLCK`, `LOCK_SH`.
    Read = 1,
    /// Exclusive: `F_WRLCK`, `LOCK_EX`.
    Write = 2,
    /// Release: `F_UNLCK`, `LOCK_UN`; in a `Get` answer, "no conflict".
    Unlock = 3,
}

impl LockMode {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => LockMode::Read,
            2 => LockMode::Write,
            3 => LockMode::Unlock,
            _ => return Err(DecodeError::BadField),
        })
    }
}

/// The last byte a lock may cover: the kernel's `OFFSET_MAX`. A lock to
/// the end of the file, however far it grows, ends there.
pub const LOCK_END_MAX: u64 = i64::MAX as u64;

/// The arguments of a LOCK request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockArgs {
    /// File id.
    pub file: u64,
    /// The lock owner, opaque: the same value for the same owner (a POSIX
    /// lock's file table; an OFD or `flock` lock's open file) for as long
    /// as it lives, on this host.
    pub owner: u64,
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive (`start..=end`), at most [`LOCK_END_MAX`].
    pub end: u64,
    /// The caller's process id (global), reported by `F_GETLK` elsewhere.
    pub pid: u32,
    /// How long a `Wait` may stay queued, in milliseconds, before it is
    /// given up and answered `ENOLCK`: a little less than the caller waits
    /// for the answer (its mount's time-out).
    pub wait_ms: u32,
    /// The kind of lock.
    pub kind: LockKind,
    /// What to do.
    pub cmd: LockCmd,
    /// The mode asked for (`Unlock` releases; not with `Get`).
    pub mode: LockMode,
}

impl LockArgs {
    /// Encoded length.
    const LEN: usize = 44;

    fn validate(&self) -> Result<(), DecodeError> {
        let whole = self.start == 0 && self.end == LOCK_END_MAX;
        if self.start > self.end
            || self.end > LOCK_END_MAX
            || (self.cmd == LockCmd::Get && self.mode == LockMode::Unlock)
            || (self.kind == LockKind::Flock && (!whole || self.cmd == LockCmd::Get))
        {
            return Err(DecodeError::BadField);
        }
        Ok(())
    }

    fn encode(&self, b: &mut [u8], p: usize) {
        put(b, p, &self.file.to_le_bytes());
        put(b, p + 8, &self.owner.to_le_bytes());
        put(b, p + 16, &self.start.to_le_bytes());
        put(b, p + 24, &self.end.to_le_bytes());
        put(b, p + 32, &self.pid.to_le_bytes());
        put(b, p + 36, &self.wait_ms.to_le_bytes());
        put(
            b,
            p + 40,
            &[self.kind as u8, self.cmd as u8, self.mode as u8, 0],
        );
    }

    fn decode(b: &[u8], p: usize) -> Result<Self, DecodeError> {
        let byte = |i: usize| b.get(p + 40 + i).copied().ok_or(DecodeError::Short);
        let a = LockArgs {
            file: get_u64(b, p)?,
            owner: get_u64(b, p + 8)?,
            start: get_u64(b, p + 16)?,
            end: get_u64(b, p + 24)?,
            pid: get_u32(b, p + 32)?,
            wait_ms: get_u32(b, p + 36)?,
            kind: match byte(0)? {
                1 => LockKind::Posix,
                2 => LockKind::Ofd,
                3 => LockKind::Flock,
                _ => return Err(DecodeError::BadField),
            },
            cmd: match byte(1)? {
                1 => LockCmd::Get,
                2 => LockCmd::Set,
                3 => LockCmd::Wait,
                _ => return Err(DecodeError::BadField),
            },
            mode: LockMode::from_u8(byte(2)?)?,
        };
        if byte(3)? != 0 {
            return Err(DecodeError::BadField);
        }
        a.validate()?;
        Ok(a)
    }
}

/// A `Get` answer: the lock that conflicts, or none (`mode` `Unlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockInfo {
    /// `Read` or `Write` for a conflicting lock; `Unlock` for none.
    pub mode: LockMode,
    /// Its first byte.
    pub start: u64,
    /// Its last byte, inclusive, at most [`LOCK_END_MAX`].
    pub end: u64,
    /// Its holder's process id: positive on the asking host; the negated
    /// id on the host that holds it otherwise (Linux's convention for a
    /// remote lock), -1 for an OFD lock, 0 when none.
    pub pid: i32,
}

impl LockInfo {
    /// No conflicting lock.
    pub const NONE: LockInfo = LockInfo {
        mode: LockMode::Unlock,
        start: 0,
        end: 0,
        pid: 0,
    };
}

/// The fixed 16-byte header of every message.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | `len`: total length of the message, header included |
/// | 4 | 2 | `opcode` ([`REPLY_BIT`] set on replies) |
/// | 6 | 2 | `flags`, zero for now |
/// | 8 | 8 | `id`: request id, echoed by the reply |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length in bytes.
    pub len: u32,
    /// Raw opcode, possibly with [`REPLY_BIT`].
    pub opcode: u16,
    /// Reserved flags.
    pub flags: u16,
    /// Request id.
    pub id: u64,
}

impl Header {
    /// Decodes a header and checks that `len` fits the buffer and the bound.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let h = Header {
            len: get_u32(b, 0)?,
            opcode: get_u16(b, 4)?,
            flags: get_u16(b, 6)?,
            id: get_u64(b, 8)?,
        };
        let len = h.len as usize;
        if !(HEADER_LEN..=MSG_MAX).contains(&len) || len != b.len() {
            return Err(DecodeError::BadLength);
        }
        if h.flags != 0 {
            return Err(DecodeError::BadField);
        }
        Ok(h)
    }

    fn encode(&self, b: &mut [u8]) {
        put(b, 0, &self.len.to_le_bytes());
        put(b, 4, &self.opcode.to_le_bytes());
        put(b, 6, &self.flags.to_le_bytes());
        put(b, 8, &self.id.to_le_bytes());
    }
}

/// A kernel → manager request, borrowing its name from the buffer it was
/// decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// LOOKUP(name).
    Lookup {
        /// The name, validated by [`valid_name`].
        name: &'a [u8],
    },
    /// GETATTR(file id).
    Getattr {
        /// File id from a LOOKUP reply.
        file: u64,
    },
    /// READDIR(cookie): names from position `cookie` on.
    Readdir {
        /// Position to continue from; 0 starts at the beginning.
        cookie: u64,
    },
    /// READ(file, page index, count) into netmem slots `slot..slot +
    /// count`: page `index` into `slot`, and as many of the pages after it
    /// as the manager has at hand into the slots after it.
    Read {
        /// File id.
        file: u64,
        /// First page.
        index: u64,
        /// Number of pages asked for, 1 to [`READ_RUN_MAX`]: the first is
        /// needed, the others are welcome.
        count: u32,
        /// Pool slot of the first page; the others follow it.
        slot: u32,
    },
    /// WRITE(file, page index, count) from netmem slot `slot`.
    Write {
        /// File id.
        file: u64,
        /// First page.
        index: u64,
        /// Number of pages: 1.
        count: u32,
        /// Pool slot holding the data.
        slot: u32,
    },
    /// UPGRADE(file, page index).
    Upgrade {
        /// File id.
        file: u64,
        /// Page.
        index: u64,
    },
    /// VIEW(file, page index, count) into netmem slot `slot`: a READ for a
    /// view, answered read-only.
    View {
        /// File id.
        file: u64,
        /// First page.
        index: u64,
        /// Number of pages: 1.
        count: u32,
        /// Pool slot the manager must fill.
        slot: u32,
    },
    /// LOCK: take, release or test a lock.
    Lock(LockArgs),
    /// SETSIZE(file, size, grow): the file is to be `size` bytes long (at
    /// most [`SIZE_MAX`]); answered `Done` once its owner has it so.
    Setsize {
        /// File id.
        file: u64,
        /// The new size.
        size: u64,
        /// `true` for a write that ends past the end: the file must be at
        /// least `size` long (the owner grows it if it is shorter, and
        /// leaves it if another host grew it further meanwhile). `false`
        /// for `truncate`: exactly `size` long.
        grow: bool,
    },
    /// CREATE(name, mode, excl, uid, gid): make regular file `name` with
    /// permission bits `mode`, owned by `uid` and `gid`; answered with its
    /// attributes.
    Create {
        /// The name, validated by [`valid_name`].
        name: &'a [u8],
        /// Permission bits (`0o7777` at most; the umask applied).
        mode: u32,
        /// `O_EXCL`: a name that exists anywhere is `EEXIST`. Without it,
        /// the manager may answer with the existing file's attributes
        /// (another host made it since this one found it missing).
        excl: bool,
        /// The caller's file-system user id (`fsuid`, as the initial user
        /// namespace numbers it): the new file's owner, as a local file
        /// system would make it; `u32::MAX` (no id) is refused.
        uid: u32,
        /// The caller's file-system group id, likewise.
        gid: u32,
    },
    /// UNLINK(file, name): remove name `name`, file `file`; answered `Done`
    /// once its owner has removed it and every host has forgotten it.
    Unlink {
        /// File id from a LOOKUP or CREATE reply.
        file: u64,
        /// The name, validated by [`valid_name`].
        name: &'a [u8],
    },
    /// RENAME(file, target, noreplace, from, to): file `file`, named
    /// `from`, is to be named `to`, replacing file `target` if that name
    /// is taken (`target` 0: the kernel knows of no file named `to`);
    /// answered `Done` once the owner has renamed it and every host has
    /// forgotten both names.
    Rename {
        /// File id of `from`.
        file: u64,
        /// File id of `to`, or 0.
        target: u64,
        /// `RENAME_NOREPLACE`: a file named `to` anywhere is `EEXIST`.
        noreplace: bool,
        /// The old name, validated by [`valid_name`].
        from: &'a [u8],
        /// The new name, validated by [`valid_name`].
        to: &'a [u8],
    },
    /// OPEN(file): this host opens file `file`; answered `Done` once its
    /// owner has this host in the file's open set.
    Open {
        /// File id from a LOOKUP or CREATE reply.
        file: u64,
    },
    /// RELEASE(file, session): an open of file `file` is over; answered
    /// `Done`.
    Release {
        /// File id of the OPEN.
        file: u64,
        /// The manager session that counts the open: the one that answered
        /// its OPEN, or a later one that listed the open files since
        /// ([`IOC_OPENS`]). A manager counts only its own session's.
        session: u64,
    },
    /// SETTIMES(file, mtime): set file `file`'s modification time at its
    /// owner; answered `Done` once it is set there.
    Settimes {
        /// File id from a LOOKUP or CREATE reply.
        file: u64,
        /// Seconds since 1970-01-01 00:00 UTC (negative before).
        sec: i64,
        /// Nanoseconds, at most 999,999,999.
        nsec: u32,
    },
}

/// Largest nanoseconds field of a time.
pub const NSEC_MAX: u32 = 999_999_999;

/// Flag of [`Request::Create`]'s flags word: `O_EXCL`.
pub const CREATE_EXCL: u32 = 1;

/// Flag of [`Request::Rename`]'s flags word: `RENAME_NOREPLACE`.
pub const RENAME_NOREPLACE: u32 = 1;

impl Request<'_> {
    /// The request's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Lookup { .. } => Opcode::Lookup,
            Request::Getattr { .. } => Opcode::Getattr,
            Request::Readdir { .. } => Opcode::Readdir,
            Request::Read { .. } => Opcode::Read,
            Request::Write { .. } => Opcode::Write,
            Request::Upgrade { .. } => Opcode::Upgrade,
            Request::View { .. } => Opcode::View,
            Request::Lock(_) => Opcode::Lock,
            Request::Setsize { .. } => Opcode::Setsize,
            Request::Create { .. } => Opcode::Create,
            Request::Unlink { .. } => Opcode::Unlink,
            Request::Rename { .. } => Opcode::Rename,
            Request::Open { .. } => Opcode::Open,
            Request::Release { .. } => Opcode::Release,
            Request::Settimes { .. } => Opcode::Settimes,
        }
    }

    /// Length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Request::Lookup { name } => 2 + name.len(),
                Request::Getattr { .. } | Request::Readdir { .. } | Request::Open { .. } => 8,
                Request::Release { .. } => 16,
                Request::Settimes { .. } => 24,
                Request::Read { .. } | Request::Write { .. } | Request::View { .. } => 24,
                Request::Upgrade { .. } => 16,
                Request::Setsize { .. } => 24,
                Request::Lock(_) => LockArgs::LEN,
                Request::Create { name, .. } => 18 + name.len(),
                Request::Unlink { name, .. } => 10 + name.len(),
                Request::Rename { from, to, .. } => 24 + from.len() + to.len(),
            }
    }

    /// Checks that the request is one [`Request::decode`] accepts.
    fn validate(&self) -> Result<(), DecodeError> {
        match *self {
            Request::Lookup { name }
            | Request::Create { name, .. }
            | Request::Unlink { name, .. }
                if !valid_name(name) =>
            {
                Err(DecodeError::BadName)
            }
            Request::Rename { from, to, .. } if !valid_name(from) || !valid_name(to) => {
                Err(DecodeError::BadName)
            }
            Request::Create { mode, .. } if mode & !0o7777 != 0 => Err(DecodeError::BadField),
            Request::Create { uid, gid, .. } if uid == u32::MAX || gid == u32::MAX => {
                Err(DecodeError::BadField)
            }
            Request::Read { count, .. } if !(1..=READ_RUN_MAX).contains(&count) => {
                Err(DecodeError::BadField)
            }
            Request::Write { count, .. } | Request::View { count, .. } if count != 1 => {
                Err(DecodeError::BadField)
            }
            Request::Lock(a) => a.validate(),
            Request::Setsize { size, .. } if size > SIZE_MAX => Err(DecodeError::BadField),
            Request::Settimes { nsec, .. } if nsec > NSEC_MAX => Err(DecodeError::BadField),
            _ => Ok(()),
        }
    }

    /// Encodes the request with id `id` into `b` and returns its length.
    /// Nothing is written unless the request is valid and fits: the encoder
    /// never produces a message the decoder would refuse.
    pub fn encode(&self, id: u64, b: &mut [u8]) -> Result<usize, DecodeError> {
        self.validate()?;
        let len = self.encoded_len();
        if b.len() < len {
            return Err(DecodeError::Short);
        }
        Header {
            len: len as u32,
            opcode: self.opcode() as u16,
            flags: 0,
            id,
        }
        .encode(b);
        let p = HEADER_LEN;
        match *self {
            Request::Lookup { name } => {
                put(b, p, &(name.len() as u16).to_le_bytes());
                put(b, p + 2, name);
            }
            Request::Getattr { file } | Request::Open { file } => put(b, p, &file.to_le_bytes()),
            Request::Release { file, session } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &session.to_le_bytes());
            }
            Request::Settimes { file, sec, nsec } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &sec.to_le_bytes());
                put(b, p + 16, &nsec.to_le_bytes());
                put(b, p + 20, &0u32.to_le_bytes());
            }
            Request::Readdir { cookie } => put(b, p, &cookie.to_le_bytes()),
            Request::Read {
                file,
                index,
                count,
                slot,
            }
            | Request::Write {
                file,
                index,
                count,
                slot,
            }
            | Request::View {
                file,
                index,
                count,
                slot,
            } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &index.to_le_bytes());
                put(b, p + 16, &count.to_le_bytes());
                put(b, p + 20, &slot.to_le_bytes());
            }
            Request::Upgrade { file, index } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &index.to_le_bytes());
            }
            Request::Setsize { file, size, grow } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &size.to_le_bytes());
                put(b, p + 16, &u32::from(grow).to_le_bytes());
                put(b, p + 20, &0u32.to_le_bytes());
            }
            Request::Lock(a) => a.encode(b, p),
            Request::Create {
                name,
                mode,
                excl,
                uid,
                gid,
            } => {
                put(b, p, &mode.to_le_bytes());
                let flags = if excl { CREATE_EXCL } else { 0 };
                put(b, p + 4, &flags.to_le_bytes());
                put(b, p + 8, &uid.to_le_bytes());
                put(b, p + 12, &gid.to_le_bytes());
                put(b, p + 16, &(name.len() as u16).to_le_bytes());
                put(b, p + 18, name);
            }
            Request::Unlink { file, name } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &(name.len() as u16).to_le_bytes());
                put(b, p + 10, name);
            }
            Request::Rename {
                file,
                target,
                noreplace,
                from,
                to,
            } => {
                put(b, p, &file.to_le_bytes());
                put(b, p + 8, &target.to_le_bytes());
                let flags = if noreplace { RENAME_NOREPLACE } else { 0 };
                put(b, p + 16, &flags.to_le_bytes());
                put(b, p + 20, &(from.len() as u16).to_le_bytes());
                put(b, p + 22, &(to.len() as u16).to_le_bytes());
                put(b, p + 24, from);
                put(b, p + 24 + from.len(), to);
            }
        }
        Ok(len)
    }

    /// Decodes one request that fills `b` exactly. Returns its id too.
    pub fn decode(b: &[u8]) -> Result<(u64, Request<'_>), DecodeError> {
        let h = Header::decode(b)?;
        if h.opcode & REPLY_BIT != 0 {
            return Err(DecodeError::UnknownOpcode(h.opcode));
        }
        let p = HEADER_LEN;
        let op = Opcode::from_u16(h.opcode)?;
        let want_fixed = match op {
            Opcode::Lookup | Opcode::Create | Opcode::Unlink | Opcode::Rename => None,
            Opcode::Getattr | Opcode::Readdir | Opcode::Open => Some(8),
            Opcode::Release => Some(16),
            Opcode::Settimes => Some(24),
            Opcode::Read | Opcode::Write | Opcode::View => Some(24),
            Opcode::Upgrade => Some(16),
            Opcode::Setsize => Some(24),
            Opcode::Lock => Some(LockArgs::LEN),
        };
        if want_fixed.is_some_and(|n| b.len() != HEADER_LEN + n) {
            return Err(DecodeError::BadLength);
        }
        let req = match op {
            Opcode::Lookup => {
                let n = get_u16(b, p)? as usize;
                if b.len() != p + 2 + n {
                    return Err(DecodeError::BadLength);
                }
                let name = &b[p + 2..];
                if !valid_name(name) {
                    return Err(DecodeError::BadName);
                }
                Request::Lookup { name }
            }
            Opcode::Getattr => Request::Getattr {
                file: get_u64(b, p)?,
            },
            Opcode::Open => Request::Open {
                file: get_u64(b, p)?,
            },
            Opcode::Release => Request::Release {
                file: get_u64(b, p)?,
                session: get_u64(b, p + 8)?,
            },
            Opcode::Settimes => {
                let nsec = get_u32(b, p + 16)?;
                // The padding after `nsec` is zero.
                if nsec > NSEC_MAX || get_u32(b, p + 20)? != 0 {
                    return Err(DecodeError::BadField);
                }
                Request::Settimes {
                    file: get_u64(b, p)?,
                    sec: get_u64(b, p + 8)? as i64,
                    nsec,
                }
            }
            Opcode::Readdir => Request::Readdir {
                cookie: get_u64(b, p)?,
            },
            Opcode::Read | Opcode::Write | Opcode::View => {
                let file = get_u64(b, p)?;
                let index = get_u64(b, p + 8)?;
                let count = get_u32(b, p + 16)?;
                let slot = get_u32(b, p + 20)?;
                let counts = if op == Opcode::Read {
                    1..=READ_RUN_MAX
                } else {
                    1..=1
                };
                if !counts.contains(&count) {
                    return Err(DecodeError::BadField);
                }
                if op == Opcode::Read {
                    Request::Read {
                        file,
                        index,
                        count,
                        slot,
                    }
                } else if op == Opcode::View {
                    Request::View {
                        file,
                        index,
                        count,
                        slot,
                    }
                } else {
                    Request::Write {
                        file,
                        index,
                        count,
                        slot,
                    }
                }
            }
            Opcode::Upgrade => Request::Upgrade {
                file: get_u64(b, p)?,
                index: get_u64(b, p + 8)?,
            },
            Opcode::Lock => Request::Lock(LockArgs::decode(b, p)?),
            Opcode::Setsize => {
                let size = get_u64(b, p + 8)?;
                let grow = match get_u32(b, p + 16)? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::BadField),
                };
                if size > SIZE_MAX || get_u32(b, p + 20)? != 0 {
                    return Err(DecodeError::BadField);
                }
                Request::Setsize {
                    file: get_u64(b, p)?,
                    size,
                    grow,
                }
            }
            Opcode::Create | Opcode::Unlink => {
                // (CREATE's name comes after its mode, flags and ids.)
                let at = if op == Opcode::Create { p + 16 } else { p + 8 };
                let n = get_u16(b, at)? as usize;
                if b.len() != at + 2 + n {
                    return Err(DecodeError::BadLength);
                }
                let name = &b[at + 2..];
                if !valid_name(name) {
                    return Err(DecodeError::BadName);
                }
                if op == Opcode::Unlink {
                    Request::Unlink {
                        file: get_u64(b, p)?,
                        name,
                    }
                } else {
                    let mode = get_u32(b, p)?;
                    let excl = match get_u32(b, p + 4)? {
                        0 => false,
                        CREATE_EXCL => true,
                        _ => return Err(DecodeError::BadField),
                    };
                    let (uid, gid) = (get_u32(b, p + 8)?, get_u32(b, p + 12)?);
                    if mode & !0o7777 != 0 || uid == u32::MAX || gid == u32::MAX {
                        return Err(DecodeError::BadField);
                    }
                    Request::Create {
                        name,
                        mode,
                        excl,
                        uid,
                        gid,
                    }
                }
            }
            Opcode::Rename => {
                let (n, m) = (get_u16(b, p + 20)? as usize, get_u16(b, p + 22)? as usize);
                if b.len() != p + 24 + n + m {
                    return Err(DecodeError::BadLength);
                }
                let (from, to) = b[p + 24..].split_at(n);
                if !valid_name(from) || !valid_name(to) {
                    return Err(DecodeError::BadName);
                }
                let noreplace = match get_u32(b, p + 16)? {
                    0 => false,
                    RENAME_NOREPLACE => true,
                    _ => return Err(DecodeError::BadField),
                };
                Request::Rename {
                    file: get_u64(b, p)?,
                    target: get_u64(b, p + 8)?,
                    noreplace,
                    from,
                    to,
                }
            }
        };
        Ok((h.id, req))
    }
}

/// Access granted with a READ reply or an UPGRADE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Grant {
    /// The page may be read; a write must go through UPGRADE first.
    ReadOnly = 1,
    /// The page may be read and written.
    ReadWrite = 2,
    /// The page may be read and written, and the kernel must install it
    /// dirty: its contents are newer than the owner's disk (another host
    /// handed them over dirty), so it must be written back, never just
    /// evicted.
    Dirty = 3,
    /// UPGRADE replies only: the cached copy is stale (another host was
    /// granted the page for writing meanwhile), so it cannot be made
    /// writable in place. The kernel drops the page, and the access faults
    /// it in again (a READ) and asks again. A READ reply carrying it is
    /// malformed.
    Refault = 4,
}

/// File attributes carried by LOOKUP and GETATTR replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr {
    /// Cluster-wide file id.
    pub file: u64,
    /// Size in bytes.
    pub size: u64,
    /// Mode bits (permission bits only; WFS files are regular files).
    pub mode: u32,
    /// Last modification (`st_mtime`) at the owner.
    pub mtime: Time,
    /// Last change of contents or attributes (`st_ctime`) at the owner.
    pub ctime: Time,
    /// The owner's user id at the owner (`st_uid`): the same numbers are
    /// assumed on every host of a cluster.
    pub uid: u32,
    /// Its group id at the owner (`st_gid`).
    pub gid: u32,
    /// Root on this host is taken as `nobody` for this file (the owner
    /// squashes other hosts' root, as NFS's `root_squash`).
    pub root_squash: bool,
}

/// [`Attr`] flag bit: [`Attr::root_squash`]. Every other bit of the flags
/// word must be 0.
pub const ATTR_ROOT_SQUASH: u32 = 1;

/// A file time: since 1970-01-01 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Time {
    /// Whole seconds (negative before 1970).
    pub sec: i64,
    /// Nanoseconds within the second, below [`NSEC_PER_SEC`].
    pub nsec: u32,
}

/// Nanoseconds in a second: a [`Time`]'s `nsec` is below it.
pub const NSEC_PER_SEC: u32 = 1_000_000_000;

/// Size of an attr reply body.
const ATTR_LEN: usize = 56;

/// The body of a manager → kernel reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyBody<'a> {
    /// LOOKUP or GETATTR answer.
    Attr(Attr),
    /// READDIR answer: one name (empty = end), and the cookie of the next.
    Dirent {
        /// Cookie to pass to get the next entry.
        next: u64,
        /// File id of this entry.
        file: u64,
        /// The name; empty means no more entries.
        name: &'a [u8],
    },
    /// VIEW or UPGRADE answer: the access granted (VIEW: read-only only).
    Grant(Grant),
    /// READ answer: the first `pages` pages asked for are in their slots
    /// (1 to the count asked for), all with the access `grant` (never
    /// [`Grant::Refault`]).
    Pages {
        /// The access granted to every page.
        grant: Grant,
        /// How many pages came, from the first on.
        pages: u32,
        /// A hint: how many pages after the last one sent the manager has
        /// at hand, so that a READ of them may ask for them together.
        ahead: u32,
    },
    /// WRITE answer, and a LOCK's that takes or releases: nothing more
    /// than success.
    Done,
    /// A LOCK `Get` answer.
    Lock(LockInfo),
}

/// Largest errno a reply may carry. Numbers from 512 up are the kernel's
/// own (`ERESTARTSYS`, `EIOCBQUEUED`, ...): the VFS gives them meaning
/// (restart the system call; the I/O is queued) and some must never reach
/// user space, so a manager may not send them (FUSE draws the same line).
pub const MAX_REPLY_ERRNO: i32 = 511;

/// A manager → kernel reply: header, status, body. A non-zero `error`
/// (a positive errno) fails the request and carries no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Id of the request answered.
    pub id: u64,
    /// Opcode of the request answered.
    pub op: Opcode,
    /// 0, or a positive errno.
    pub error: i32,
    /// The body; `None` iff `error != 0`.
    pub body: Option<ReplyBody<'a>>,
}

impl<'a> Reply<'a> {
    fn body_len(&self) -> usize {
        match self.body {
            None => 0,
            Some(ReplyBody::Attr(_)) => ATTR_LEN,
            Some(ReplyBody::Dirent { name, .. }) => 18 + name.len(),
            Some(ReplyBody::Grant(_)) => 4,
            Some(ReplyBody::Pages { .. }) => 12,
            Some(ReplyBody::Done) => 0,
            Some(ReplyBody::Lock(_)) => 24,
        }
    }

    /// Checks that the reply is one [`Reply::decode`] accepts: a valid
    /// errno and no body, or success and the body its opcode calls for.
    fn validate(&self) -> Result<(), DecodeError> {
        let body_fits = match (self.op, self.body) {
            (_, None) => self.error != 0,
            (_, Some(_)) if self.error != 0 => false,
            (Opcode::Lookup | Opcode::Getattr | Opcode::Create, Some(ReplyBody::Attr(a))) => {
                a.mtime.nsec < NSEC_PER_SEC && a.ctime.nsec < NSEC_PER_SEC
            }
            (Opcode::Readdir, Some(ReplyBody::Dirent { name, .. })) => {
                if !name.is_empty() && !valid_name(name) {
                    return Err(DecodeError::BadName);
                }
                true
            }
            (Opcode::Read, Some(ReplyBody::Pages { grant, pages, .. })) => {
                grant != Grant::Refault && (1..=READ_RUN_MAX).contains(&pages)
            }
            (Opcode::Upgrade, Some(ReplyBody::Grant(_))) => true,
            (Opcode::View, Some(ReplyBody::Grant(g))) => g == Grant::ReadOnly,
            (
                Opcode::Write
                | Opcode::Lock
                | Opcode::Setsize
                | Opcode::Unlink
                | Opcode::Rename
                | Opcode::Open
                | Opcode::Release
                | Opcode::Settimes,
                Some(ReplyBody::Done),
            ) => true,
            (Opcode::Lock, Some(ReplyBody::Lock(l))) => {
                l.mode == LockMode::Unlock || (l.start <= l.end && l.end <= LOCK_END_MAX)
            }
            _ => false,
        };
        if !body_fits || (self.error != 0 && !(1..=MAX_REPLY_ERRNO).contains(&self.error)) {
            return Err(DecodeError::BadField);
        }
        Ok(())
    }

    /// Encodes the reply into `b` and returns its length. Nothing is
    /// written unless the reply is valid and fits.
    pub fn encode(&self, b: &mut [u8]) -> Result<usize, DecodeError> {
        self.validate()?;
        let len = HEADER_LEN + 4 + self.body_len();
        if b.len() < len {
            return Err(DecodeError::Short);
        }
        Header {
            len: len as u32,
            opcode: self.op as u16 | REPLY_BIT,
            flags: 0,
            id: self.id,
        }
        .encode(b);
        let p = HEADER_LEN + 4;
        put(b, HEADER_LEN, &self.error.to_le_bytes());
        match self.body {
            None | Some(ReplyBody::Done) => {}
            Some(ReplyBody::Attr(a)) => {
                put(b, p, &a.file.to_le_bytes());
                put(b, p + 8, &a.size.to_le_bytes());
                put(b, p + 16, &a.mode.to_le_bytes());
                put(b, p + 20, &a.mtime.nsec.to_le_bytes());
                put(b, p + 24, &a.mtime.sec.to_le_bytes());
                put(b, p + 32, &a.ctime.sec.to_le_bytes());
                put(b, p + 40, &a.ctime.nsec.to_le_bytes());
                put(b, p + 44, &u32::from(a.root_squash).to_le_bytes());
                put(b, p + 48, &a.uid.to_le_bytes());
                put(b, p + 52, &a.gid.to_le_bytes());
            }
            Some(ReplyBody::Dirent { next, file, name }) => {
                put(b, p, &next.to_le_bytes());
                put(b, p + 8, &file.to_le_bytes());
                put(b, p + 16, &(name.len() as u16).to_le_bytes());
                put(b, p + 18, name);
            }
            Some(ReplyBody::Grant(g)) => put(b, p, &(g as u32).to_le_bytes()),
            Some(ReplyBody::Pages {
                grant,
                pages,
                ahead,
            }) => {
                put(b, p, &(grant as u32).to_le_bytes());
                put(b, p + 4, &pages.to_le_bytes());
                put(b, p + 8, &ahead.to_le_bytes());
            }
            Some(ReplyBody::Lock(l)) => {
                put(b, p, &l.start.to_le_bytes());
                put(b, p + 8, &l.end.to_le_bytes());
                put(b, p + 16, &l.pid.to_le_bytes());
                put(b, p + 20, &(l.mode as u32).to_le_bytes());
            }
        }
        Ok(len)
    }

    /// Decodes a reply that fills `b` exactly, checking that its body has
    /// the shape its opcode calls for.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let h = Header::decode(b)?;
        if h.opcode & REPLY_BIT == 0 {
            return Err(DecodeError::UnknownOpcode(h.opcode));
        }
        let op = Opcode::from_u16(h.opcode & !REPLY_BIT)?;
        let error = get_u32(b, HEADER_LEN)? as i32;
        let p = HEADER_LEN + 4;
        if error != 0 {
            if !(1..=MAX_REPLY_ERRNO).contains(&error) {
                return Err(DecodeError::BadField);
            }
            if b.len() != p {
                return Err(DecodeError::BadLength);
            }
            return Ok(Reply {
                id: h.id,
                op,
                error,
                body: None,
            });
        }
        let exact = |n: usize| {
            if b.len() == p + n {
                Ok(())
            } else {
                Err(DecodeError::BadLength)
            }
        };
        let body = match op {
            Opcode::Lookup | Opcode::Getattr | Opcode::Create => {
                exact(ATTR_LEN)?;
                let time = |sec: usize, nsec: usize| -> Result<Time, DecodeError> {
                    let t = Time {
                        sec: get_u64(b, p + sec)? as i64,
                        nsec: get_u32(b, p + nsec)?,
                    };
                    if t.nsec < NSEC_PER_SEC {
                        Ok(t)
                    } else {
                        Err(DecodeError::BadField)
                    }
                };
                let flags = get_u32(b, p + 44)?;
                if flags & !ATTR_ROOT_SQUASH != 0 {
                    return Err(DecodeError::BadField);
                }
                ReplyBody::Attr(Attr {
                    file: get_u64(b, p)?,
                    size: get_u64(b, p + 8)?,
                    mode: get_u32(b, p + 16)?,
                    mtime: time(24, 20)?,
                    ctime: time(32, 40)?,
                    uid: get_u32(b, p + 48)?,
                    gid: get_u32(b, p + 52)?,
                    root_squash: flags & ATTR_ROOT_SQUASH != 0,
                })
            }
            Opcode::Readdir => {
                let n = get_u16(b, p + 16)? as usize;
                exact(18 + n)?;
                let name = &b[p + 18..];
                if !name.is_empty() && !valid_name(name) {
                    return Err(DecodeError::BadName);
                }
                ReplyBody::Dirent {
                    next: get_u64(b, p)?,
                    file: get_u64(b, p + 8)?,
                    name,
                }
            }
            Opcode::Read => {
                exact(12)?;
                let grant = match get_u32(b, p)? {
                    1 => Grant::ReadOnly,
                    2 => Grant::ReadWrite,
                    3 => Grant::Dirty,
                    _ => return Err(DecodeError::BadField),
                };
                let pages = get_u32(b, p + 4)?;
                if !(1..=READ_RUN_MAX).contains(&pages) {
                    return Err(DecodeError::BadField);
                }
                ReplyBody::Pages {
                    grant,
                    pages,
                    ahead: get_u32(b, p + 8)?,
                }
            }
            Opcode::Upgrade | Opcode::View => {
                exact(4)?;
                ReplyBody::Grant(match get_u32(b, p)? {
                    1 => Grant::ReadOnly,
                    2 if op != Opcode::View => Grant::ReadWrite,
                    3 if op != Opcode::View => Grant::Dirty,
                    4 if op == Opcode::Upgrade => Grant::Refault,
                    _ => return Err(DecodeError::BadField),
                })
            }
            Opcode::Write
            | Opcode::Setsize
            | Opcode::Unlink
            | Opcode::Rename
            | Opcode::Open
            | Opcode::Release
            | Opcode::Settimes => {
                exact(0)?;
                ReplyBody::Done
            }
            Opcode::Lock if b.len() == p => ReplyBody::Done,
            Opcode::Lock => {
                exact(24)?;
                let mode = u8::try_from(get_u32(b, p + 20)?)
                    .map_err(|_| DecodeError::BadField)
                    .and_then(LockMode::from_u8)?;
                let l = LockInfo {
                    mode,
                    start: get_u64(b, p)?,
                    end: get_u64(b, p + 8)?,
                    pid: get_u32(b, p + 16)? as i32,
                };
                if mode != LockMode::Unlock && !(l.start <= l.end && l.end <= LOCK_END_MAX) {
                    return Err(DecodeError::BadField);
                }
                ReplyBody::Lock(l)
            }
        };
        Ok(Reply {
            id: h.id,
            op,
            error: 0,
            body: Some(body),
        })
    }
}
