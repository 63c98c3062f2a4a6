// SPDX-License-Identifier: GPL-2.0

//! WFS's page grants, kept in the page cache.
//!
//! The manager grants each page it hands out for reading only or for
//! writing (READ's and UPGRADE's replies). A cached page's grant lives in its
//! folio, as the `PG_checked` flag the page cache leaves to file systems: set
//! means this host may write the page. A write to a page without it, through
//! `write(2)` or a shared mapping, first asks the manager (UPGRADE). The
//! manager takes grants back with INVALIDATE ([`invalidate_page`]), and all
//! of them go when the manager itself goes ([`revoke_grants`]).
//!
//! The functions are generic over the file system type, so that the KUnit
//! suite runs this very policy on a stand-in file system.

use crate::upcall::abi::{Grant, READ_RUN_MAX};
use kernel::{
    folio::{Folio, LockedFolio, PageContents},
    fs::{AddressSpace, FileSystem, Inode, SuperBlock},
    page::PAGE_SIZE,
    prelude::*,
    types::ARef,
};

/// Most pages a run takes after the page a READ is for.
pub(crate) const RUN_EXTRA: usize = READ_RUN_MAX as usize - 1;

/// What [`invalidate_page`] does to a cached page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalidate {
    /// Unmap the page and remove it from the page cache.
    Drop,
    /// Keep it cached and mapped, clean and read-only: the next write to it
    /// asks for an upgrade again.
    Downgrade,
}

/// What a page was before [`invalidate_page`] took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageState {
    /// It held data not written back yet (in the folio or in a mapping).
    pub(crate) dirty: bool,
    /// It was granted for writing.
    pub(crate) writable: bool,
}

/// Installs a page just read in with `grant`: records the grant, marks the
/// contents valid, and a page handed over dirty (its contents exist nowhere
/// else) dirty, so that it is written back before it can be evicted.
pub(crate) fn install(folio: &mut LockedFolio<'_>, grant: Grant) {
    match grant {
        // (A READ reply never carries a refault: decoding refuses it.)
        Grant::ReadOnly | Grant::Refault => folio.clear_checked(),
        Grant::ReadWrite | Grant::Dirty => folio.set_checked(),
    }
    folio.mark_uptodate();
    if grant == Grant::Dirty {
        folio.mark_dirty();
    }
}

/// Takes the pages of `mapping` after page `index`, to be read together
/// with it: at most `want` of them (and [`RUN_EXTRA`]), each cached but not
/// uptodate or added new, locked. The run stops at the first page that is
/// uptodate, locked by somebody else, or cannot be had at once (memory).
/// Calls `f` with them in index order and unlocks them after; the ones `f`
/// did not make uptodate stay in the page cache, to be read when used.
///
/// While they are locked, [`invalidate_page`] of any of them answers
/// `EAGAIN`: whoever hands pages out for them takes them back after `f`,
/// once what it handed out is installed.
pub(crate) fn with_run<R>(
    mapping: &AddressSpace,
    index: u64,
    want: usize,
    f: impl FnOnce(&mut [Option<LockedFolio<'_>>]) -> R,
) -> R {
    let mut refs: [Option<ARef<Folio>>; RUN_EXTRA] = Default::default();
    for (i, r) in refs.iter_mut().take(want).enumerate() {
        let Some(at) = index.checked_add(1 + i as u64) else {
            break;
        };
        match mapping.cached_or_new(at) {
            Ok(folio) if !folio.test_uptodate() => *r = Some(folio),
            _ => break,
        }
    }
    let mut run: [Option<LockedFolio<'_>>; RUN_EXTRA] = Default::default();
    let mut n = 0;
    for (r, locked) in refs.iter().zip(run.iter_mut()) {
        let Some(folio) = r.as_ref().and_then(|f| f.try_lock()) else {
            break;
        };
        // Removed, or read by somebody else, since it was found.
        if !mapping.holds(&folio) || folio.test_uptodate() || folio.size() != PAGE_SIZE {
            break;
        }
        *locked = Some(folio);
        n += 1;
    }
    f(&mut run[..n])
}

/// Makes sure a locked, uptodate page of `mapping` may be written, asking
/// `upgrade` for write access if it was granted for reading only. `upgrade`
/// returns the new grant, for writing (`EACCES` if the manager would not);
/// a dirty one dirties the page at once, since its contents are newer than
/// the owner's (even if the write that asked copies nothing). A refault
/// (the cached copy is stale) removes the page from the page cache and
/// returns `EAGAIN`: the write or fault is made again and reads the page in
/// anew.
pub(crate) fn make_writable(
    mapping: &AddressSpace,
    folio: &mut LockedFolio<'_>,
    upgrade: impl FnOnce(u64) -> Result<Grant>,
) -> Result {
    if !folio.test_checked() {
        match upgrade(folio.index())? {
            Grant::ReadOnly => return Err(EACCES),
            Grant::Refault => {
                // Only a clean copy goes: a read-only page is dirty only if
                // a manager that died granted it (its grants were revoked),
                // and its data exists nowhere else, so the write fails
                // instead. One under writeback cannot go yet (`EBUSY`).
                if folio.test_dirty() {
                    return Err(EIO);
                }
                mapping.remove_folio(folio)?;
                return Err(EAGAIN);
            }
            Grant::ReadWrite => folio.set_checked(),
            Grant::Dirty => {
                folio.set_checked();
                folio.mark_dirty();
            }
        }
    }
    Ok(())
}

/// Takes page `index` of file `ino` away from super block `sb`, for the
/// manager that wants it elsewhere: hands the contents to `copy`, then drops
/// or downgrades the page as `mode` says. The page is cleaned:
/// responsibility for dirty data passes to the caller with the contents.
///
/// Returns `Ok(None)` if the page holds no data (not cached, or its read
/// failed), and `EAGAIN` if somebody holds it (being read in, locked for a
/// fault or a write, under writeback): it never waits for them, since they
/// may be waiting for the caller (a fault waiting for an UPGRADE, writeback
/// waiting for a WRITE the manager serves). That includes a page whose read
/// is in flight: it may already have been answered with the only copy of the
/// page's data, being copied in under the lock, so it is busy, not absent
/// (the manager knows whether it still owes that read its answer). If `copy`
/// fails, the page is left as it was, dirty flag included.
pub(crate) fn invalidate_page<T: FileSystem>(
    sb: &SuperBlock<T>,
    ino: u64,
    index: u64,
    mode: Invalidate,
    copy: impl FnOnce(&PageContents) -> Result,
) -> Result<Option<PageState>> {
    let Some(inode) = sb.inode(ino) else {
        return Ok(None);
    };
    let mapping = inode.mapping();
    let Some(folio) = mapping.folio(index) else {
        return Ok(None);
    };
    let Some(mut folio) = folio.try_lock() else {
        return Err(EAGAIN);
    };
    if folio.test_writeback() {
        return Err(EAGAIN);
    }
    if !mapping.holds(&folio) || !folio.test_uptodate() || folio.size() != PAGE_SIZE {
        // Truncated meanwhile, or a read that failed: no data.
        return Ok(None);
    }
    // Under the lock nobody faults the page in, writes it or writes it back;
    // `clear_dirty_for_io` write-protects its mappings and moves their dirty
    // bits to it first.
    let state = PageState {
        dirty: folio.clear_dirty_for_io(),
        writable: folio.test_checked(),
    };
    let copy_out = |f: &LockedFolio<'_>| f.with_contents(copy).and_then(|r| r);
    // Handing dirty contents over is writing them back: under writeback,
    // which also takes the page off the page cache's list of dirty pages
    // (else the flusher would keep looking at a clean page, and the inode
    // would stay dirty for good).
    let copied = if state.dirty {
        folio.writeback(copy_out).and_then(|r| r)
    } else {
        copy_out(&folio)
    };
    if let Err(e) = copied {
        if state.dirty {
            folio.mark_dirty();
        }
        return Err(e);
    }
    match mode {
        Invalidate::Downgrade => folio.clear_checked(),
        // Unmaps it everywhere and removes it from the page cache, under the
        // lock we hold.
        Invalidate::Drop => mapping.remove_folio(&mut folio)?,
    }
    Ok(Some(state))
}

/// Revokes every page grant of super block `sb`, whose grants came from a
/// manager that went away: a new manager must not inherit grants it never
/// gave. Clean pages are dropped from the page cache (unmapped everywhere),
/// so the next access reads them again; pages that cannot be dropped (dirty
/// ones, whose data exists nowhere else, or pages under writeback) are kept
/// but write-protected and without their write grant, so their next write
/// asks for an upgrade again, and they are written back as usual. Waits for
/// page locks and writeback in progress.
pub(crate) fn revoke_grants<T: FileSystem>(sb: &SuperBlock<T>) {
    sb.for_each_inode(|inode| {
        if inode.mapping().nrpages() > 0 {
            revoke_file(inode);
        }
    });
}

/// The grants of one file; see [`revoke_grants`].
fn revoke_file<T: FileSystem>(inode: &Inode<T>) {
    let mapping = inode.mapping();
    // Dropping unmaps each page and removes it unless it is dirty (its dirty
    // bits move from the page tables to it as it is unmapped) or under
    // writeback; those that stay are handled below either way.
    let _ = mapping.invalidate_pages();
    mapping.for_each_folio(|folio| {
        let mut folio = folio.lock();
        if mapping.holds(&folio) {
            // `mkclean` write-protects any mapping made since, moving its
            // dirty bits to the folio, so that the next write faults and
            // asks for the grant.
            folio.clear_checked();
            if folio.mkclean() {
                folio.mark_dirty();
            }
        }
    });
}
