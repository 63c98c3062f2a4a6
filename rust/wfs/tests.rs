// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the page states: WFS's grant policy ([`super::pages`])
//! on the `kernel::fs` page-cache paths (grants, UPGRADE, writeback,
//! invalidation, revocation, the fixed file size), driven on real folios.
//! A small in-memory file system, `wfs_kunit`, stands in for the manager:
//! it is mounted inside the kernel (`KernMount`), and its `read_folio`,
//! `write_folio` and upgrades count their calls and serve one file, `f`,
//! of four pages, from a buffer.

use super::pages::{self, Invalidate, PageState};
use crate::upcall::abi::Grant;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::{
    c_str,
    error::code::{EACCES, EFBIG, ENOENT, EPERM},
    folio::LockedFolio,
    fs::{
        open_flags, FileAttr, FileSystem, FileTime, FileType, FsTable, Inode, KernFile, KernMount,
        Registration, SuperBlock, NOBODY,
    },
    kunit_expect, kunit_expect_eq, kunit_module_suite, new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
};

const PAGES: usize = 4;
const FILE_INO: u64 = 2;

/// What the stand-in store keeps and counts.
#[pin_data]
struct MemState {
    #[pin]
    store: Mutex<KVec<u8>>,
    reads: AtomicU32,
    writes: AtomicU32,
    upgrades: AtomicU32,
    fail_upgrade: AtomicBool,
    /// How many more UPGRADEs to answer with a refault (a stale copy).
    refaults: AtomicU32,
    /// Grant pages dirty (`Grant::Dirty`) instead of read-only.
    grant_dirty: AtomicBool,
}

impl MemState {
    fn new() -> Result<Arc<Self>> {
        let mut store = KVec::with_capacity(PAGES * PAGE_SIZE, GFP_KERNEL)?;
        for i in 0..PAGES * PAGE_SIZE {
            store.push((i / PAGE_SIZE) as u8, GFP_KERNEL)?;
        }
        Arc::pin_init(
            pin_init!(MemState {
                store <- new_mutex!(store, "wfs_kunit_store"),
                reads: AtomicU32::new(0),
                writes: AtomicU32::new(0),
                upgrades: AtomicU32::new(0),
                fail_upgrade: AtomicBool::new(false),
                refaults: AtomicU32::new(0),
                grant_dirty: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    fn count(&self) -> (u32, u32, u32) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
            self.upgrades.load(Ordering::Relaxed),
        )
    }
}

struct MemFs;

static MEMFS: FsTable<MemFs> = FsTable::new();

fn attr() -> FileAttr {
    FileAttr {
        ino: FILE_INO,
        kind: FileType::Reg,
        size: (PAGES * PAGE_SIZE) as u64,
        perm: 0o644,
        mtime: FileTime::default(),
        ctime: FileTime::default(),
        uid: 0,
        gid: 0,
        root_squash: false,
    }
}

/// The files of the test file system: `f`, and beside it files that
/// differ only in who may open them (inode `FILE_INO` + their index).
const FILES: [&[u8]; 4] = [b"f", b"secret", b"squashed", b"nobodys"];

/// The attributes of `FILES[i]`.
fn attr_of(i: u64) -> FileAttr {
    let other = |perm, id, root_squash| FileAttr {
        ino: FILE_INO + i,
        perm,
        uid: id,
        gid: id,
        root_squash,
        ..attr()
    };
    match i {
        1 => other(0o600, 1000, false),
        2 => other(0o644, 0, true),
        3 => other(0o600, NOBODY, true),
        _ => attr(),
    }
}

fn state(sb: &SuperBlock<MemFs>) -> Result<ArcBorrow<'_, MemState>> {
    sb.data().ok_or(EIO)
}

#[vtable]
impl FileSystem for MemFs {
    const NAME: &'static CStr = c_str!("wfs_kunit");
    const MAGIC: usize = 0x5746_534b;
    const READAHEAD: bool = false;
    const FIXED_SIZE: bool = true;
    type Context = Arc<MemState>;
    type Data = Arc<MemState>;
    type OpenData = ();
    type Options = ();

    fn fill_super(
        ctx: ArcBorrow<'_, MemState>,
        _sb: &SuperBlock<Self>,
        _opts: &(),
    ) -> Result<Arc<MemState>> {
        Ok(ctx.into())
    }

    fn lookup(_dir: &Inode<Self>, name: &[u8]) -> Result<Option<FileAttr>> {
        Ok(FILES
            .iter()
            .position(|&n| n == name)
            .map(|i| attr_of(i as u64)))
    }

    /// Sizes are fixed (`FIXED_SIZE`): a truncation is refused; a write
    /// across the end (cut there by `FIXED_SIZE`, but asked for as it was
    /// given) is let be, as the store keeps its size anyway.
    fn set_size(_inode: &Inode<Self>, _size: u64, grow: bool) -> Result {
        if grow {
            Ok(())
        } else {
            Err(EPERM)
        }
    }

    fn getattr(inode: &Inode<Self>) -> Result<FileAttr> {
        match inode.ino().checked_sub(FILE_INO) {
            Some(i) if (i as usize) < FILES.len() => Ok(attr_of(i)),
            _ => Err(ENOENT),
        }
    }

    /// Grants every page for reading only, like `grant = "read-only"`, or
    /// dirty when the test says so.
    fn read_folio(inode: &Inode<Self>, folio: &mut LockedFolio<'_>) -> Result {
        let st = state(inode.super_block())?;
        st.reads.fetch_add(1, Ordering::Relaxed);
        let at = folio.index() as usize * PAGE_SIZE;
        let store = st.store.lock();
        let page = store.get(at..at + PAGE_SIZE).ok_or(EIO)?;
        folio.write(0, page)?;
        let grant = if st.grant_dirty.load(Ordering::Relaxed) {
            Grant::Dirty
        } else {
            Grant::ReadOnly
        };
        pages::install(folio, grant);
        Ok(())
    }

    fn write_folio(inode: &Inode<Self>, folio: &LockedFolio<'_>) -> Result {
        let st = state(inode.super_block())?;
        st.writes.fetch_add(1, Ordering::Relaxed);
        let at = folio.index() as usize * PAGE_SIZE;
        let mut store = st.store.lock();
        let page = store.get_mut(at..at + PAGE_SIZE).ok_or(EIO)?;
        folio.with_contents(|c| c.copy_to_slice(page))?
    }

    fn prepare_write(inode: &Inode<Self>, folio: &mut LockedFolio<'_>) -> Result {
        let st = state(inode.super_block())?;
        pages::make_writable(inode.mapping(), folio, |_| {
            st.upgrades.fetch_add(1, Ordering::Relaxed);
            if st.fail_upgrade.load(Ordering::Relaxed) {
                return Err(EACCES);
            }
            let refault = st
                .refaults
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            Ok(if refault {
                Grant::Refault
            } else {
                Grant::ReadWrite
            })
        })
    }
}

/// Invalidates a page of `f`, keeping its contents in `got`.
fn take(
    m: &KernMount<MemFs>,
    index: u64,
    mode: Invalidate,
    got: &mut [u8; PAGE_SIZE],
) -> Result<Option<PageState>> {
    pages::invalidate_page(m.super_block(), FILE_INO, index, mode, |c| {
        c.copy_to_slice(got)
    })
}

/// Whether the page cache lists a page of `f` as dirty (what writeback
/// looks for), apart from the pages' own flags.
fn dirty_tagged(m: &KernMount<MemFs>) -> bool {
    m.super_block()
        .inode(FILE_INO)
        .is_some_and(|i| i.mapping().has_dirty_pages())
}

const fn page(dirty: bool, writable: bool) -> Option<PageState> {
    Some(PageState { dirty, writable })
}

/// Mounts a fresh `wfs_kunit` with a fresh store, opens `f` read-write,
/// and runs `test` on them.
fn with_memfs(test: impl FnOnce(&Arc<MemState>, &KernMount<MemFs>, &KernFile)) {
    let Ok(st) = MemState::new() else {
        kunit_expect!(false, "no memory for the store");
        return;
    };
    let reg = match Registration::register(&MEMFS, &crate::THIS_MODULE, st.clone()) {
        Ok(r) => r,
        Err(e) => {
            kunit_expect!(false, "registering wfs_kunit: {:?}", e);
            return;
        }
    };
    match KernMount::new(&MEMFS) {
        Ok(m) => match m.open(c_str!("f"), open_flags::O_RDWR) {
            Ok(f) => test(&st, &m, &f),
            Err(e) => kunit_expect!(false, "opening f: {:?}", e),
        },
        Err(e) => kunit_expect!(false, "mounting wfs_kunit: {:?}", e),
    }
    drop(reg);
}

fn pages_grants_and_invalidation() {
    with_memfs(|st, m, f| {
        let mut got = [0u8; PAGE_SIZE];
        // A write to a page not cached reads it in (granted read-only),
        // then asks for write access; a second write needs neither.
        kunit_expect_eq!(f.write_at(b"abc", 4096 + 10), Ok(3));
        kunit_expect_eq!(st.count(), (1, 0, 1));
        kunit_expect_eq!(f.write_at(b"x", 4096 + 20), Ok(1));
        kunit_expect_eq!(st.count(), (1, 0, 1));
        kunit_expect!(dirty_tagged(m), "written page not listed as dirty");
        // DOWNGRADE hands over the dirty contents and leaves a clean,
        // read-only copy, no longer listed as dirty; a second one finds it
        // so.
        kunit_expect_eq!(
            take(m, 1, Invalidate::Downgrade, &mut got),
            Ok(page(true, true))
        );
        kunit_expect!(!dirty_tagged(m), "downgraded page still listed as dirty");
        kunit_expect_eq!(&got[10..13], b"abc");
        kunit_expect_eq!((got[0], got[20], got[4095]), (1, b'x', 1));
        kunit_expect_eq!(
            take(m, 1, Invalidate::Downgrade, &mut got),
            Ok(page(false, false))
        );
        // The next write asks for write access again, without a read.
        kunit_expect_eq!(f.write_at(b"y", 4096), Ok(1));
        kunit_expect_eq!(st.count(), (1, 0, 2));
        // fsync writes the page back; it stays cached, clean and writable.
        kunit_expect_eq!(f.fsync(), Ok(()));
        kunit_expect_eq!(st.count(), (1, 1, 2));
        {
            let store = st.store.lock();
            kunit_expect_eq!((store[4096], store[4096 + 20]), (b'y', b'x'));
            kunit_expect_eq!(&store[4096 + 10..4096 + 13], b"abc");
        }
        kunit_expect_eq!(
            take(m, 1, Invalidate::Drop, &mut got),
            Ok(page(false, true))
        );
        // Dropped: nothing left, and a read goes to the store again.
        kunit_expect_eq!(take(m, 1, Invalidate::Drop, &mut got), Ok(None));
        let mut buf = [0u8; 4];
        kunit_expect_eq!(f.read_at(&mut buf, 4096), Ok(4));
        kunit_expect_eq!(&buf, &[b'y', 1, 1, 1]);
        kunit_expect_eq!(st.count(), (2, 1, 2));
        // Pages never touched are not cached.
        kunit_expect_eq!(take(m, 2, Invalidate::Drop, &mut got), Ok(None));
        kunit_expect_eq!(take(m, 99, Invalidate::Drop, &mut got), Ok(None));
    });
}

fn pages_fixed_size() {
    with_memfs(|st, _m, f| {
        let end = (PAGES * PAGE_SIZE) as u64;
        kunit_expect_eq!(f.write_at(b"z", end), Err(EFBIG));
        kunit_expect_eq!(f.write_at(b"z", end + 5000), Err(EFBIG));
        // A write across the end is cut there.
        kunit_expect_eq!(f.write_at(b"0123456789", end - 4), Ok(4));
        kunit_expect_eq!(f.fsync(), Ok(()));
        let store = st.store.lock();
        kunit_expect_eq!(&store[store.len() - 4..], b"0123");
        kunit_expect_eq!(store.len(), PAGES * PAGE_SIZE);
    });
}

fn pages_failed_upgrade() {
    with_memfs(|st, m, f| {
        let mut got = [0u8; PAGE_SIZE];
        st.fail_upgrade.store(true, Ordering::Relaxed);
        // The write fails with the store's error and changes nothing: the
        // page was read in, clean, and stays read-only.
        kunit_expect_eq!(f.write_at(b"q", 2 * 4096), Err(EACCES));
        kunit_expect_eq!(st.count(), (1, 0, 1));
        kunit_expect_eq!(
            take(m, 2, Invalidate::Drop, &mut got),
            Ok(page(false, false))
        );
        kunit_expect_eq!(got[0], 2);
        // Once the store grants it, the same write goes through.
        st.fail_upgrade.store(false, Ordering::Relaxed);
        kunit_expect_eq!(f.write_at(b"q", 2 * 4096), Ok(1));
        kunit_expect_eq!(take(m, 2, Invalidate::Drop, &mut got), Ok(page(true, true)));
        kunit_expect_eq!(got[0], b'q');
    });
}

fn pages_refault_upgrade() {
    with_memfs(|st, m, f| {
        let mut got = [0u8; PAGE_SIZE];
        let mut buf = [0u8; 2];
        // Page 2 is read in, read-only.
        kunit_expect_eq!(f.read_at(&mut buf, 2 * 4096), Ok(2));
        kunit_expect_eq!(buf, [2, 2]);
        kunit_expect_eq!(st.count(), (1, 0, 0));
        // Another host writes it meanwhile: this copy is stale, and the
        // write's UPGRADE is answered with a refault. The stale page goes,
        // the write reads the page in anew and asks again.
        st.store.lock()[2 * 4096] = b'n';
        st.refaults.store(1, Ordering::Relaxed);
        kunit_expect_eq!(f.write_at(b"w", 2 * 4096 + 1), Ok(1));
        kunit_expect_eq!(st.count(), (2, 0, 2));
        kunit_expect_eq!(take(m, 2, Invalidate::Drop, &mut got), Ok(page(true, true)));
        kunit_expect_eq!((got[0], got[1], got[2]), (b'n', b'w', 2));
        // A store that always answers with a refault: the write gives up
        // (EIO) after the kernel's retries, each a new READ and UPGRADE,
        // and leaves nothing cached.
        st.refaults.store(u32::MAX, Ordering::Relaxed);
        kunit_expect_eq!(f.write_at(b"v", 4096), Err(EIO));
        let retries = kernel::fs::PREPARE_WRITE_RETRIES;
        kunit_expect_eq!(st.count(), (2 + retries, 0, 2 + retries));
        kunit_expect_eq!(take(m, 1, Invalidate::Drop, &mut got), Ok(None));
        // A dirty page without its write grant (left by a manager that
        // died) is never dropped for a refault: its data exists nowhere
        // else. The write fails, and the page keeps its data.
        st.refaults.store(0, Ordering::Relaxed);
        kunit_expect_eq!(f.write_at(b"d", 3 * 4096), Ok(1));
        pages::revoke_grants(m.super_block());
        st.refaults.store(1, Ordering::Relaxed);
        kunit_expect_eq!(f.write_at(b"e", 3 * 4096 + 1), Err(EIO));
        kunit_expect_eq!(
            take(m, 3, Invalidate::Drop, &mut got),
            Ok(page(true, false))
        );
        kunit_expect_eq!((got[0], got[1]), (b'd', 3));
    });
}

fn pages_dirty_grant() {
    with_memfs(|st, m, f| {
        let mut got = [0u8; PAGE_SIZE];
        let mut buf = [0u8; 1];
        st.grant_dirty.store(true, Ordering::Relaxed);
        // A page granted dirty is installed dirty and writable: taking it
        // hands its contents over as dirty data...
        kunit_expect_eq!(f.read_at(&mut buf, 3 * 4096), Ok(1));
        kunit_expect_eq!(
            take(m, 3, Invalidate::Downgrade, &mut got),
            Ok(page(true, true))
        );
        kunit_expect_eq!(got[0], 3);
        // ...and fsync writes it back although nobody wrote to it here.
        kunit_expect_eq!(f.read_at(&mut buf, 0), Ok(1));
        kunit_expect_eq!(st.count(), (2, 0, 0));
        kunit_expect_eq!(f.fsync(), Ok(()));
        kunit_expect_eq!(st.count(), (2, 1, 0));
        kunit_expect_eq!(
            take(m, 0, Invalidate::Drop, &mut got),
            Ok(page(false, true))
        );
    });
}

fn pages_revoked() {
    with_memfs(|st, m, f| {
        let mut got = [0u8; PAGE_SIZE];
        let mut buf = [0u8; 1];
        // Page 1 dirty and writable, page 2 clean and read-only.
        kunit_expect_eq!(f.write_at(b"r", 4096), Ok(1));
        kunit_expect_eq!(f.read_at(&mut buf, 2 * 4096), Ok(1));
        kunit_expect_eq!(st.count(), (2, 0, 1));
        pages::revoke_grants(m.super_block());
        // The clean page is gone; the dirty one stays, without its grant,
        // and its data intact.
        kunit_expect_eq!(take(m, 2, Invalidate::Drop, &mut got), Ok(None));
        kunit_expect_eq!(
            take(m, 1, Invalidate::Downgrade, &mut got),
            Ok(page(true, false))
        );
        kunit_expect_eq!((got[0], got[1]), (b'r', 1));
        // The next write asks for write access again.
        kunit_expect_eq!(f.write_at(b"s", 4096), Ok(1));
        kunit_expect_eq!(st.count(), (2, 0, 2));
    });
}

/// A run of pages read together with another (`pages::with_run`): the
/// pages are taken locked, so an invalidation meanwhile finds them busy;
/// the ones filled are cached as read in, the others read when used.
fn pages_runs() {
    with_memfs(|st, m, f| {
        let Some(inode) = m.super_block().inode(FILE_INO) else {
            kunit_expect!(false, "f not cached");
            return;
        };
        let mapping = inode.mapping();
        let mut got = [0u8; PAGE_SIZE];
        let mut b = [0u8; 4];
        // Page 2 is cached: a run after page 0 stops before it.
        kunit_expect_eq!(f.read_at(&mut b, 2 * 4096), Ok(4));
        kunit_expect_eq!(st.count().0, 1);
        let filled = pages::with_run(mapping, 0, 3, |extra| {
            kunit_expect_eq!(extra.len(), 1);
            // Busy while taken: the invalidation is answered EAGAIN.
            kunit_expect_eq!(take(m, 1, Invalidate::Drop, &mut got), Err(EAGAIN));
            let Some(Some(p)) = extra.first_mut() else {
                return false;
            };
            let store = st.store.lock();
            let Some(data) = store.get(4096..2 * 4096) else {
                return false;
            };
            if p.write(0, data).is_err() || p.write(0, b"run!").is_err() {
                return false;
            }
            pages::install(p, Grant::ReadOnly);
            true
        });
        kunit_expect!(filled, "page 1 not filled");
        // Filled: read from the page cache, with no READ.
        kunit_expect_eq!(f.read_at(&mut b, 4096), Ok(4));
        kunit_expect_eq!(&b, b"run!");
        kunit_expect_eq!(st.count().0, 1);
        kunit_expect_eq!(
            take(m, 1, Invalidate::Drop, &mut got),
            Ok(page(false, false))
        );
        // A page taken and not filled holds nothing, and is read when used.
        let n = pages::with_run(mapping, 2, 1, |extra| extra.len());
        kunit_expect_eq!(n, 1);
        kunit_expect_eq!(take(m, 3, Invalidate::Drop, &mut got), Ok(None));
        kunit_expect_eq!(f.read_at(&mut b, 3 * 4096), Ok(4));
        kunit_expect_eq!(&b, &[3, 3, 3, 3]);
        kunit_expect_eq!(st.count().0, 2);
        // Nothing wanted, nothing taken; a run never starts at a cached page.
        kunit_expect_eq!(pages::with_run(mapping, 0, 0, |extra| extra.len()), 0);
        kunit_expect_eq!(pages::with_run(mapping, 1, 5, |extra| extra.len()), 0);
    });
}

/// Who may open a file: the owner's ids and mode, and root squashing
/// (patch 0035). The test runs as root (insmod's task).
fn permissions_root_squash() {
    with_memfs(|_, m, _| {
        // Root, not squashed: no mode bit stops it (`CAP_DAC_OVERRIDE`).
        kunit_expect!(m.open(c_str!("secret"), open_flags::O_RDWR).is_ok());
        // Squashed, root's file of mode 0644: what nobody may, reading.
        kunit_expect!(m.open(c_str!("squashed"), open_flags::O_RDONLY).is_ok());
        kunit_expect_eq!(
            m.open(c_str!("squashed"), open_flags::O_RDWR).err(),
            Some(EACCES)
        );
        // Squashed, nobody's own file of mode 0600: the owner's bits.
        kunit_expect!(m.open(c_str!("nobodys"), open_flags::O_RDWR).is_ok());
    });
}

kunit_module_suite!(
    wfs_page_states,
    [
        pages_grants_and_invalidation,
        pages_fixed_size,
        pages_failed_upgrade,
        pages_refault_upgrade,
        pages_dirty_grant,
        pages_revoked,
        pages_runs,
        permissions_root_squash
    ]
);
