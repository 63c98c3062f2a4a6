// SPDX-License-Identifier: GPL-2.0

//! The Wrapper File System: `mount -t wfs none /wfs`.
//!
//! A flat namespace of the files the manager serves. Every name lookup,
//! listing and attribute refresh is an upcall (Chunk's `wfs_lookup*`, plus
//! READDIR and GETATTR beyond the paper); the VFS caches positive and
//! negative dentries and the inodes. Page data goes through the page cache:
//! `read_folio` is Chunk's *strategy* (READ), writeback is *putpages*
//! (WRITE), and the first write to a page granted for reading only sends
//! UPGRADE ([`pages`] keeps the grants).

use crate::upcall::{
    abi::{self, ReplyBody, Request},
    channel::{Channel, Wait, TIMEOUT_MS},
    opens::OpenFiles,
    table::time_reached,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{
    c_str,
    folio::{LockedFolio, PageContents},
    fs::{DirEmitter, FileAttr, FileSystem, FileTime, FileType, Inode, LockRequest, SuperBlock},
    page::PAGE_SIZE,
    prelude::*,
    sync::{Arc, ArcBorrow},
    time::{jiffies_64, msecs_to_jiffies},
};
use pages::{Invalidate, PageState};

mod locks;
pub(crate) mod pages;

/// `s_magic` of WFS super blocks ("WFS!").
pub(crate) const WFS_MAGIC: usize = 0x5746_5321;

/// Longest `timeout` mount option, in seconds.
const MAX_TIMEOUT_S: u32 = 3600;

/// Mount options: `timeout=SECONDS` (1 to 3600), how long a request waits
/// for the manager before it fails (`EIO`, or `SIGBUS` for a fault); and
/// `view` (with `ro`), Mether's inconsistent read-only view of the files.
pub(crate) struct MountOptions {
    timeout_ms: u32,
    view: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            timeout_ms: TIMEOUT_MS,
            view: false,
        }
    }
}

/// Most times a LOOKUP or GETATTR is asked while sizes are being cut
/// ([`Mount::uncut`]).
const CUT_RETRIES: u32 = 3;

/// Files whose READ hints a mount remembers.
const HINTS: usize = 4;

/// What the manager said of a file's next READ: page `next` and the
/// `ahead` pages after it are at hand (the `ahead` of a READ reply).
///
/// A hint, not a promise: its fields are read and written apart, without a
/// lock, and a torn or stale one only makes a READ ask for more pages or
/// fewer than the manager has. Every extra page asked for is locked in the
/// page cache before the READ goes out, whatever the hint said.
struct Hint {
    /// The file (a hint of all zeros promises nothing).
    file: AtomicU64,
    next: AtomicU64,
    ahead: AtomicU32,
    /// When it came (`jiffies_64`).
    at: AtomicU64,
}

impl Hint {
    const fn new() -> Self {
        Hint {
            file: AtomicU64::new(0),
            next: AtomicU64::new(0),
            ahead: AtomicU32::new(0),
            at: AtomicU64::new(0),
        }
    }
}

/// How long a hint holds, in milliseconds: the manager keeps pages fetched
/// ahead 10 s at most, and a READ that asks for pages no longer at hand
/// holds them locked while it waits for its own (a fault to another host).
const HINT_MS: u32 = 2_000;

/// What a mounted super block keeps.
pub(crate) struct Mount {
    chan: Arc<Channel>,
    timeout_ms: u32,
    /// READ hints, by file id modulo [`HINTS`].
    hints: [Hint; HINTS],
    /// A view (`-o ro,view`): its pages are read with VIEW, as their
    /// owner has them on disk, under no grant. The page protocol never
    /// takes them back (INVALIDATE and a manager's death leave them);
    /// `msync(MS_INVALIDATE)` drops them, so that the next access reads
    /// them again. Any number of views may sit beside the one coherent
    /// mount.
    view: bool,
    /// Lock waits (`F_SETLKW`, `flock`) at the owners now ([`locks`]).
    lock_waits: AtomicU32,
    /// Sizes the manager cut ([`set_size`]) so far: a LOOKUP or GETATTR
    /// answered while one was made may carry the size from before the
    /// cut, which would grow the inode back past it; it is asked again
    /// ([`Mount::uncut`]).
    cuts: AtomicU64,
}

impl Mount {
    /// Asks `call` (a LOOKUP or GETATTR) again while a cut of a size came
    /// during it, at most [`CUT_RETRIES`] times in all: its answer may be
    /// older than the cut. (A cut between this return and the VFS's use of
    /// the answer is not seen: the window is that short.)
    fn uncut<R>(&self, mut call: impl FnMut() -> Result<R>) -> Result<R> {
        let mut tries = 1;
        loop {
            let before = self.cuts.load(Ordering::Acquire);
            let r = call()?;
            if self.cuts.load(Ordering::Acquire) == before || tries >= CUT_RETRIES {
                return Ok(r);
            }
            tries += 1;
        }
    }

    fn hint(&self, file: u64) -> &Hint {
        &self.hints[(file % HINTS as u64) as usize]
    }

    /// How many pages after page `index` of `file` a READ of it should ask
    /// for: as many as the manager said it has at hand, if this READ is
    /// the one it expected.
    fn pages_ahead(&self, file: u64, index: u64) -> usize {
        let h = self.hint(file);
        let deadline =
            h.at.load(Ordering::Relaxed)
                .wrapping_add(msecs_to_jiffies(HINT_MS) as u64);
        if h.file.load(Ordering::Relaxed) != file
            || h.next.load(Ordering::Relaxed) != index
            || time_reached(jiffies_64(), deadline)
        {
            return 0;
        }
        (h.ahead.load(Ordering::Relaxed).saturating_sub(1) as usize).min(pages::RUN_EXTRA)
    }

    /// Records a READ reply's hint: `ahead` pages of `file` from page
    /// `next` on are at hand.
    fn set_hint(&self, file: u64, next: u64, ahead: u32) {
        let h = self.hint(file);
        h.file.store(file, Ordering::Relaxed);
        h.next.store(next, Ordering::Relaxed);
        h.ahead.store(ahead, Ordering::Relaxed);
        h.at.store(jiffies_64(), Ordering::Relaxed);
    }
}

/// Whether `sb` is a view's.
fn is_view(sb: &SuperBlock<WfsFs>) -> bool {
    mount(sb).is_ok_and(|m| m.view)
}

/// Parses a decimal number of at most 10 digits.
fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

/// The `wfs` file system type.
pub(crate) struct WfsFs;

fn file_attr(a: &abi::Attr) -> FileAttr {
    FileAttr {
        ino: a.file,
        kind: FileType::Reg,
        size: a.size,
        perm: (a.mode & 0o7777) as u16,
        mtime: file_time(a.mtime),
        ctime: file_time(a.ctime),
        uid: a.uid,
        gid: a.gid,
        root_squash: a.root_squash,
    }
}

fn file_time(t: abi::Time) -> FileTime {
    FileTime {
        sec: t.sec,
        nsec: t.nsec,
    }
}

fn attr_reply(r: &abi::Reply<'_>) -> Result<FileAttr> {
    match r.body {
        Some(ReplyBody::Attr(a)) => Ok(file_attr(&a)),
        _ => Err(EIO),
    }
}

/// A reply that says the request is done and carries nothing else.
pub(crate) fn done_reply(r: &abi::Reply<'_>) -> Result {
    match r.body {
        Some(ReplyBody::Done) => Ok(()),
        _ => Err(EIO),
    }
}

/// The result of a walk over the super blocks ([`FsTable::for_each_super`])
/// that visited the coherent one if `coherent_seen`: its `EAGAIN` says
/// that some super block is shutting down, which, once the coherent one
/// was visited, is a view's, holding nothing the walk was for. (A host
/// has one coherent super block at most, dying or not: a new mount is
/// refused until the old one is gone.)
///
/// [`FsTable::for_each_super`]: kernel::fs::FsTable::for_each_super
fn walked(r: Result, coherent_seen: bool) -> Result {
    match r {
        Err(e) if e == EAGAIN && coherent_seen => Ok(()),
        r => r,
    }
}

/// Takes page `index` of file `file` away from this host (the manager's
/// INVALIDATE): `copy` gets the contents of the cached copy. Returns what
/// the page was, or `None` if it was not cached. A host has one coherent
/// WFS super block (a second mount is refused; views hold no grants),
/// hence one copy at most. `EAGAIN` if the page is busy, or the super
/// block is being unmounted: its dirty pages are on their way to the
/// manager then (WRITE), so the page is gone once the unmount is over.
pub(crate) fn invalidate_page(
    file: u64,
    index: u64,
    mode: Invalidate,
    copy: impl FnOnce(&PageContents) -> Result,
) -> Result<Option<PageState>> {
    let mut copy = Some(copy);
    let mut out: Result<Option<PageState>> = Ok(None);
    let r = crate::FS_TABLE.for_each_super(|sb| {
        // A view's pages are nobody's to take.
        if is_view(sb) {
            return;
        }
        if let Some(copy) = copy.take() {
            out = pages::invalidate_page(sb, file, index, mode, copy);
        }
    });
    // (Once the coherent super block has given the page up, a view being
    // unmounted beside it must not make the caller think it still has it.)
    walked(r, copy.is_none())?;
    out
}

/// Forgets the cached dentry of `name` on every WFS mount (the manager's
/// FORGET), views included, so that the next lookup asks the manager
/// again.
pub(crate) fn forget_name(name: &[u8]) -> Result {
    let mut out = Ok(());
    let mut coherent_seen = false;
    let r = crate::FS_TABLE.for_each_super(|sb| {
        coherent_seen |= !is_view(sb);
        if let Err(e) = sb.forget_name(name) {
            out = Err(e);
        }
    });
    walked(r, coherent_seen)?;
    out
}

/// Tells every WFS mount, views included, that `file` is `size` bytes
/// long at its owner (the manager's SIZE): a cached inode that is shorter
/// grows to it; or (`cut`: its owner cut the file, and no page past the
/// new end is cached here any more) a cached inode takes exactly that
/// size, each mount counting the cut first, so that a LOOKUP or GETATTR
/// answered meanwhile is asked again ([`Mount::uncut`]). An inode not
/// cached changes nothing.
pub(crate) fn set_size(file: u64, size: u64, cut: bool) -> Result {
    let mut coherent_seen = false;
    let r = crate::FS_TABLE.for_each_super(|sb| {
        coherent_seen |= !is_view(sb);
        if cut {
            if let Ok(m) = mount(sb) {
                m.cuts.fetch_add(1, Ordering::AcqRel);
            }
        }
        if let Some(inode) = sb.inode(file) {
            if cut {
                inode.cut_size(size);
            } else {
                inode.grow_size(size);
            }
        }
    });
    walked(r, coherent_seen)
}

/// Revokes every page grant of this host (its manager went away): a new
/// manager must not inherit grants it never gave. Clean pages are dropped;
/// dirty ones, their data's only copy, stay without write access and go
/// to the next manager when written back. `EAGAIN` if the super block is
/// being unmounted (its pages are going away anyway).
pub(crate) fn revoke_grants() -> Result {
    let mut coherent_seen = false;
    let r = crate::FS_TABLE.for_each_super(|sb| {
        // (A view's pages were granted nothing.)
        if !is_view(sb) {
            coherent_seen = true;
            pages::revoke_grants(sb);
        }
    });
    walked(r, coherent_seen)
}

fn mount(sb: &SuperBlock<WfsFs>) -> Result<&Mount> {
    sb.data().ok_or(EIO)
}

/// What one READDIR reply did.
enum Step {
    /// An entry was emitted; the emitter moved on to the next cookie.
    Next,
    /// The caller's buffer is full.
    Full,
    /// No more entries.
    End,
}

#[vtable]
impl FileSystem for WfsFs {
    const NAME: &'static CStr = c_str!("wfs");
    const MAGIC: usize = WFS_MAGIC;
    // Pages have owners: fetch only the page that was touched, as Chunk's
    // strategy does, never its neighbours on speculation.
    const READAHEAD: bool = false;
    type Context = Arc<Channel>;
    type Data = KBox<Mount>;
    type OpenData = KBox<OpenFile>;
    type Options = MountOptions;

    fn parse_option(opts: &mut MountOptions, key: &[u8], value: Option<&[u8]>) -> Result {
        match key {
            b"timeout" => {
                let secs = value
                    .and_then(parse_u32)
                    .filter(|s| (1..=MAX_TIMEOUT_S).contains(s))
                    .ok_or(EINVAL)?;
                opts.timeout_ms = secs * 1000;
                Ok(())
            }
            b"view" if value.is_none() => {
                opts.view = true;
                Ok(())
            }
            b"view" => Err(EINVAL),
            _ => Err(ENOPARAM),
        }
    }

    fn fill_super(
        ctx: ArcBorrow<'_, Channel>,
        sb: &SuperBlock<Self>,
        opts: &MountOptions,
    ) -> Result<KBox<Mount>> {
        if opts.view && !sb.read_only() {
            pr_err!("a wfs view is read-only: mount it with -o ro,view\n");
            return Err(EINVAL);
        }
        let m = KBox::new(
            Mount {
                chan: ctx.into(),
                timeout_ms: opts.timeout_ms,
                hints: [const { Hint::new() }; HINTS],
                view: opts.view,
                lock_waits: AtomicU32::new(0),
                cuts: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?;
        if m.view {
            // No grants: as many as anyone wants, beside the coherent one.
            return Ok(m);
        }
        let mut st = m.chan.state.lock();
        if st.mounts > 0 {
            // Page grants belong to the host, not to a mount: a second
            // page cache of the same files would hold a second copy of
            // pages the manager believes single. Bind mounts share the one
            // super block and are fine.
            drop(st);
            pr_err!("wfs is mounted already on this host; use a bind mount for a second place\n");
            return Err(EBUSY);
        }
        st.mounts += 1;
        drop(st);
        Ok(m)
    }

    /// A view's pages go stale; `msync(MS_INVALIDATE)` refreshes them.
    fn msync_invalidate(sb: &SuperBlock<Self>) -> bool {
        is_view(sb)
    }

    fn kill_super(m: KBox<Mount>) {
        if m.view {
            return;
        }
        let mut st = m.chan.state.lock();
        st.mounts = st.mounts.saturating_sub(1);
    }

    /// The namespace is flat: the root is the only directory.
    fn lookup(dir: &Inode<Self>, name: &[u8]) -> Result<Option<FileAttr>> {
        if name.len() > abi::NAME_MAX {
            return Err(Error::from_errno(-abi::errno::ENAMETOOLONG));
        }
        if !abi::valid_name(name) {
            return Ok(None);
        }
        let m = mount(dir.super_block())?;
        match m.uncut(|| {
            m.chan
                .call(&Request::Lookup { name }, m.timeout_ms, attr_reply)
        }) {
            Ok(attr) => Ok(Some(attr)),
            Err(e) if e == ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `O_CREAT`: this host's manager makes the file in its export (this
    /// host owns it), once no other host has or is making the name (a race
    /// for one name gives all but one host `EEXIST`); without `O_EXCL`, a
    /// file another host made meanwhile is opened instead. The file is the
    /// caller's (its fsuid and fsgid), as on a local file system, wherever
    /// it is made; the host that makes it decides what a root there is
    /// (`root_squash`).
    fn create(dir: &Inode<Self>, name: &[u8], perm: u16, excl: bool) -> Result<FileAttr> {
        if name.len() > abi::NAME_MAX {
            return Err(Error::from_errno(-abi::errno::ENAMETOOLONG));
        }
        if !abi::valid_name(name) {
            return Err(EINVAL);
        }
        let m = mount(dir.super_block())?;
        if m.view {
            return Err(EROFS);
        }
        let mode = u32::from(perm);
        let (uid, gid) = kernel::fs::caller_ids();
        let req = Request::Create {
            name,
            mode,
            excl,
            uid,
            gid,
        };
        m.chan.call(&req, m.timeout_ms, attr_reply)
    }

    /// `unlink`: the file's owner removes the name, once every page of
    /// the file is back from every host, and every host forgets the name
    /// before the answer.
    fn unlink(dir: &Inode<Self>, name: &[u8], inode: &Inode<Self>) -> Result {
        let m = mount(dir.super_block())?;
        if m.view {
            return Err(EROFS);
        }
        let file = inode.ino();
        m.chan
            .call(&Request::Unlink { file, name }, m.timeout_ms, done_reply)
    }

    /// `rename`: the file's owner renames it in its export (replacing the
    /// target, whose pages come home first as for `unlink`), once no
    /// other host has or is making the new name, and every host forgets
    /// both names before the answer. A file of another owner, or a target
    /// owned elsewhere, is `EXDEV` (`mv` then copies and removes).
    fn rename(
        old_dir: &Inode<Self>,
        old_name: &[u8],
        inode: &Inode<Self>,
        _new_dir: &Inode<Self>,
        new_name: &[u8],
        target: Option<&Inode<Self>>,
        noreplace: bool,
    ) -> Result {
        if new_name.len() > abi::NAME_MAX {
            return Err(Error::from_errno(-abi::errno::ENAMETOOLONG));
        }
        if !abi::valid_name(new_name) || !abi::valid_name(old_name) {
            return Err(EINVAL);
        }
        let m = mount(old_dir.super_block())?;
        if m.view {
            return Err(EROFS);
        }
        let req = Request::Rename {
            file: inode.ino(),
            target: target.map_or(0, |t| t.ino()),
            noreplace,
            from: old_name,
            to: new_name,
        };
        m.chan.call(&req, m.timeout_ms, done_reply)
    }

    fn readdir(dir: &Inode<Self>, emitter: &mut DirEmitter<'_>) -> Result {
        let m = mount(dir.super_block())?;
        loop {
            let cookie = emitter.cookie();
            let step = m
                .chan
                .call(&Request::Readdir { cookie }, m.timeout_ms, |r| {
                    match r.body {
                        Some(ReplyBody::Dirent { name: [], .. }) => Ok(Step::End),
                        // Cookies must advance, or a confused manager could make
                        // this loop forever.
                        Some(ReplyBody::Dirent { next, .. }) if next <= cookie => Err(EIO),
                        Some(ReplyBody::Dirent { next, file, name }) => {
                            if emitter.emit(name, file, FileType::Reg, next) {
                                Ok(Step::Next)
                            } else {
                                Ok(Step::Full)
                            }
                        }
                        _ => Err(EIO),
                    }
                })?;
            match step {
                Step::Next => continue,
                Step::Full | Step::End => return Ok(()),
            }
        }
    }

    fn getattr(inode: &Inode<Self>) -> Result<FileAttr> {
        let m = mount(inode.super_block())?;
        let file = inode.ino();
        m.uncut(|| {
            m.chan
                .call(&Request::Getattr { file }, m.timeout_ms, attr_reply)
        })
    }

    /// Chunk's *strategy*: the manager fills a pool slot with the page and
    /// the kernel copies it into the page cache, with the grant the manager
    /// gave. When the manager said it has the pages after this one at hand
    /// (a scan it fetches ahead of), they come with the same READ
    /// ([`read_run`]).
    fn read_folio(inode: &Inode<Self>, folio: &mut LockedFolio<'_>) -> Result {
        let (ino, index) = (inode.ino(), folio.index());
        let m = mount(inode.super_block())?;
        if !m.view {
            return read_run(inode, m, folio);
        }
        let grant = m.chan.call_with_page(
            abi::Opcode::View,
            m.timeout_ms,
            |slot| Request::View {
                file: ino,
                index,
                count: 1,
                slot,
            },
            |_| Ok(()),
            |reply, page| {
                let Some(ReplyBody::Grant(grant)) = reply.body else {
                    return Err(EIO);
                };
                // The slot's page is the kernel's now (the manager
                // answered); a manager that writes it anyway can only spoil
                // this page's data.
                folio.copy_from_page(page)?;
                Ok(grant)
            },
        )?;
        pages::install(folio, grant);
        Ok(())
    }

    /// Chunk's *putpages*: the kernel copies the dirty page into a pool
    /// slot and the manager writes it to the file's owner.
    fn write_folio(inode: &Inode<Self>, folio: &LockedFolio<'_>) -> Result {
        let (ino, index) = (inode.ino(), folio.index());
        let m = mount(inode.super_block())?;
        if m.view {
            // (Never dirtied: a view refuses writes.)
            return Err(EROFS);
        }
        m.chan.call_with_page(
            abi::Opcode::Write,
            m.timeout_ms,
            |slot| Request::Write {
                file: ino,
                index,
                count: 1,
                slot,
            },
            // The slot is the kernel's until the request is queued, and the
            // manager reads it only after that.
            |page| folio.with_contents(|c| c.copy_to_page(page))?,
            |reply, _| match reply.body {
                Some(ReplyBody::Done) => Ok(()),
                _ => Err(EIO),
            },
        )
    }

    /// A write to a page granted for reading only: the manager must grant
    /// it for writing before the first byte changes (UPGRADE).
    fn prepare_write(inode: &Inode<Self>, folio: &mut LockedFolio<'_>) -> Result {
        // A view is read-only, even remounted read-write.
        if is_view(inode.super_block()) {
            return Err(EROFS);
        }
        pages::make_writable(inode.mapping(), folio, |index| upgrade(inode, index))
    }

    /// A write past the end (`grow`) or a `truncate`: the file's owner
    /// changes the size first (SETSIZE), and tells every other host that
    /// has the file before it answers, so that a `stat` anywhere after
    /// this write sees the new size.
    fn set_size(inode: &Inode<Self>, size: u64, grow: bool) -> Result {
        let m = mount(inode.super_block())?;
        if m.view {
            return Err(EROFS);
        }
        let file = inode.ino();
        m.chan.call(
            &Request::Setsize { file, size, grow },
            m.timeout_ms,
            done_reply,
        )
    }

    /// `fcntl` and `flock` locks, decided by the file's owner ([`locks`]).
    fn lock(req: &mut LockRequest<'_, Self>) -> Result {
        locks::lock(req)
    }

    /// A change of a file's modification time (`utimensat`, `touch -d`,
    /// `tar -x`): set at the file's owner first (SETTIMES), which keeps
    /// times; every host's `stat` then sees it (its change time moved).
    fn set_times(inode: &Inode<Self>, mtime: FileTime) -> Result {
        let m = mount(inode.super_block())?;
        if m.view {
            return Err(EROFS);
        }
        m.chan.call(
            &Request::Settimes {
                file: inode.ino(),
                sec: mtime.sec,
                nsec: mtime.nsec,
            },
            m.timeout_ms,
            done_reply,
        )
    }

    /// An open of a file (OPEN): answered once the file's owner counts
    /// this host among those that have it open, so that an `unlink` on
    /// any host after this open returns keeps the file's data until the
    /// last close here. The open keeps the session of the manager that
    /// counted it, for its RELEASE, and is counted in the channel's open
    /// files, which a manager that starts lists. A view holds nothing open (its pages
    /// are the owner's disk as it is). A manager that does not answer in
    /// time fails the open (`EIO`); with no manager at all (none
    /// registered, or it died during the call), the open goes on
    /// uncounted by any manager: every access to the file's pages fails
    /// then as it does without a manager (`EIO`, `SIGBUS`), and the next
    /// manager learns of it from its listing.
    fn open(inode: &Inode<Self>) -> Result<KBox<OpenFile>> {
        let m = mount(inode.super_block())?;
        // (Allocated first: an open the manager counted must not fail.)
        let mut open = KBox::new(OpenFile { session: 0 }, GFP_KERNEL)?;
        if m.view {
            return Ok(open);
        }
        let file = inode.ino();
        // A manager that started meanwhile and listed the open files did
        // not hear of this open: it is asked again (managers do not
        // restart in a loop).
        for _ in 0..OPEN_TRIES {
            let room = OpenFiles::room()?;
            let before = m.chan.state.lock().session;
            let answer = m
                .chan
                .call_in_session(&Request::Open { file }, m.timeout_ms, done_reply);
            // Counted under the lock a listing takes: no manager can
            // register and list between the check and the count.
            let mut st = m.chan.state.lock();
            let session = match answer {
                Ok(((), session)) => session,
                // No manager (none registered, or it died during the
                // call): counted by none until the next one lists it.
                Err(e) if e == EIO && st.manager.is_none() => 0,
                // One registered since the call began: it is asked.
                Err(e) if e == EIO && st.session != before => continue,
                Err(e) => return Err(e),
            };
            if st.opens.opened(file, session, room) {
                open.session = session;
                return Ok(open);
            }
        }
        Err(EIO)
    }

    /// The last reference to an open is gone (RELEASE, unless no manager
    /// counted the open). Sent even by a task being killed, and waited for
    /// [`RELEASE_WAIT_MS`] at most: the manager answers at once. It
    /// carries the session that counts the open: the one that answered
    /// its OPEN, or a later one that listed the open files since
    /// ([`abi::IOC_OPENS`]); any other manager ignores it (`ESTALE`). A
    /// RELEASE that fails (the manager is gone) leaves nothing counted:
    /// its session is over.
    fn release(inode: &Inode<Self>, open: KBox<OpenFile>) {
        let Ok(m) = mount(inode.super_block()) else {
            return;
        };
        if m.view {
            return;
        }
        let file = inode.ino();
        // The session that counts the open now: its own, or one that
        // listed the open files since.
        let session = m.chan.state.lock().opens.released(file, open.session);
        if session == 0 {
            return;
        }
        let _ = m.chan.call_as(
            &Request::Release { file, session },
            m.timeout_ms.min(RELEASE_WAIT_MS),
            Wait::Unkillable,
            done_reply,
        );
    }
}

/// How many times an open asks a manager that keeps changing.
const OPEN_TRIES: u32 = 3;

/// What an open regular file keeps ([`FileSystem::OpenData`]).
pub(crate) struct OpenFile {
    /// The manager session that counted the open (its OPEN's answer), or
    /// 0: none (a view, or no manager).
    session: u64,
}

/// Longest wait for the manager's answer to a RELEASE, in milliseconds
/// (it answers at once; `close(2)` must not hang on a stuck manager).
const RELEASE_WAIT_MS: u32 = 5_000;

/// READ of page `folio` of `inode`, and of as many of the pages after it as
/// the manager's last hint for the file promised (up to
/// [`abi::READ_RUN_MAX`] in all, not past the end of the file).
///
/// The extra pages are taken in the page cache, new and locked, before the
/// READ goes out, and stay locked until they are filled or given up: an
/// INVALIDATE of one of them meanwhile finds it locked and answers
/// `EAGAIN`, so the manager takes it after the READ, never before the copy
/// it handed out is installed. The run stops at the first page that is
/// cached already, locked by somebody else, or cannot be had at once
/// (memory). Pages the manager did not send stay in the page cache, not
/// uptodate: the next access reads them.
fn read_run(inode: &Inode<WfsFs>, m: &Mount, folio: &mut LockedFolio<'_>) -> Result {
    let (ino, index) = (inode.ino(), folio.index());
    let mapping = inode.mapping();
    let last = inode.size().div_ceil(PAGE_SIZE as u64);
    let want = m
        .pages_ahead(ino, index)
        .min(last.saturating_sub(index.saturating_add(1)) as usize);
    pages::with_run(mapping, index, want, |extra| {
        read_pages(m, ino, folio, extra)
    })
}

/// The READ of [`read_run`], with the `extra` pages locked.
fn read_pages(
    m: &Mount,
    ino: u64,
    folio: &mut LockedFolio<'_>,
    extra: &mut [Option<LockedFolio<'_>>],
) -> Result {
    let index = folio.index();
    let n = extra.len();
    let (grant, sent, ahead) = m.chan.call_with_pages(
        abi::Opcode::Read,
        1 + n as u32,
        m.timeout_ms,
        |slot, count| Request::Read {
            file: ino,
            index,
            count,
            slot,
        },
        |_| Ok(()),
        |reply, lent| {
            let Some(ReplyBody::Pages {
                grant,
                pages: sent,
                ahead,
            }) = reply.body
            else {
                return Err(EIO);
            };
            // Pages past the first are copies fetched ahead, read-only:
            // more writable ones would be copies the manager does not know
            // it handed out.
            if sent > lent.count() || (sent > 1 && grant != abi::Grant::ReadOnly) {
                return Err(EIO);
            }
            // The slots' pages are the kernel's now (the manager answered);
            // a manager that writes them anyway can only spoil these pages'
            // data.
            folio.copy_from_page(lent.page(0).ok_or(EIO)?)?;
            for (i, e) in extra.iter_mut().take(sent as usize - 1).enumerate() {
                let (Some(f), Some(page)) = (e.as_mut(), lent.page(1 + i as u32)) else {
                    return Err(EIO);
                };
                f.copy_from_page(page)?;
                pages::install(f, grant);
            }
            Ok((grant, sent, ahead))
        },
    )?;
    pages::install(folio, grant);
    m.set_hint(ino, index + u64::from(sent), ahead);
    Ok(())
}

/// UPGRADE: asks the manager for write access to page `index` of `inode`;
/// returns the grant.
fn upgrade(inode: &Inode<WfsFs>, index: u64) -> Result<abi::Grant> {
    let m = mount(inode.super_block())?;
    let file = inode.ino();
    m.chan.call(
        &Request::Upgrade { file, index },
        m.timeout_ms,
        |reply| match reply.body {
            Some(ReplyBody::Grant(
                g @ (abi::Grant::ReadWrite | abi::Grant::Dirty | abi::Grant::Refault),
            )) => Ok(g),
            // Still read-only: the manager refused without saying why.
            Some(ReplyBody::Grant(abi::Grant::ReadOnly)) => Err(EACCES),
            _ => Err(EIO),
        },
    )
}

#[cfg(CONFIG_KUNIT)]
mod tests;
