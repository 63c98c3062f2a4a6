// SPDX-License-Identifier: GPL-2.0

//! `fcntl` and `flock` locks across hosts (LOCK).
//!
//! Every lock request on a WFS file goes to the manager, which has the
//! file's owner decide it against the locks every host holds on the file
//! (`user/wfs-manager/src/lockserv.rs`). A lock the owner grants is also
//! recorded in the VFS's own lists, so that `close(2)` and exit release it
//! as on a local file system: the VFS then asks here for the unlock (only
//! once its lists have let go of the range, and only if they held
//! something there), which goes to the owner in turn.
//!
//! A wait (`F_SETLKW`, `flock` without `LOCK_NB`) waits at the owner. A
//! signal ends it (`ERESTARTSYS`: the call is restarted or fails with
//! `EINTR`, as for a local lock); it is bounded by the mount's time-out (the
//! owner gives it up a little before, and the call fails with `ENOLCK`,
//! like any failure to reach the owner); and a mount keeps at most
//! [`MAX_WAITS`] waits at once (one more fails with `ENOLCK`: each holds a
//! request slot of the channel). A manager that keeps no locks (it runs
//! with no cluster) answers `ENOSYS`, and the request is decided among this
//! host's locks alone.

use super::{done_reply, mount, Mount, WfsFs};
use crate::upcall::abi::{self, LockArgs, LockInfo, ReplyBody, Request};
use crate::upcall::channel::{Wait, MAX_INFLIGHT};
use core::sync::atomic::Ordering;
use kernel::{
    fs::{LockCmd, LockKind, LockRequest, LockType},
    prelude::*,
};

/// Most lock waits a mount keeps at the owners at once: each holds one of
/// the channel's request slots until it is granted or given up, and the
/// others are for page faults (the holders' among them).
const MAX_WAITS: u32 = (MAX_INFLIGHT / 4) as u32;

/// Longest an unlock waits for the owner's answer, in milliseconds: it is
/// sent even by a dying process, which cannot be interrupted meanwhile.
const UNLOCK_WAIT_MS: u32 = 30_000;

/// How long the owner may keep a wait queued: the mount's time-out less a
/// margin (a quarter, at most 5 s), so that the owner's `ENOLCK` comes
/// back before the channel gives up on the request.
fn wait_bound(timeout_ms: u32) -> u32 {
    timeout_ms - (timeout_ms / 4).min(5_000)
}

/// The lock request `req` on a file of mount `m` as LOCK's arguments,
/// asking `cmd` with `mode`.
fn args(
    req: &LockRequest<'_, WfsFs>,
    m: &Mount,
    cmd: abi::LockCmd,
    mode: abi::LockMode,
) -> LockArgs {
    LockArgs {
        file: req.inode().ino(),
        owner: req.owner_id(),
        start: req.start(),
        end: req.end(),
        pid: req.pid(),
        wait_ms: wait_bound(m.timeout_ms),
        kind: match req.kind() {
            LockKind::Posix => abi::LockKind::Posix,
            LockKind::Ofd => abi::LockKind::Ofd,
            LockKind::Flock => abi::LockKind::Flock,
        },
        cmd,
        mode,
    }
}

/// Sends LOCK with `a`: `ENOSYS` if the manager keeps no locks; a request
/// that could not be decided (no manager, its time-out, no owner) fails
/// with `ENOLCK`, what `fcntl(2)` says of a remote locking protocol that
/// failed. A wait ends on a signal (`ERESTARTSYS`); an unlock, which a
/// dying process sends on its way out, only with its answer or its
/// time-out; the others on a fatal signal.
fn call<R>(m: &Mount, a: LockArgs, f: impl FnOnce(&abi::Reply<'_>) -> Result<R>) -> Result<R> {
    let (how, timeout_ms) = match (a.cmd, a.mode) {
        (_, abi::LockMode::Unlock) => (Wait::Unkillable, m.timeout_ms.min(UNLOCK_WAIT_MS)),
        (abi::LockCmd::Wait, _) => (Wait::Interruptible, m.timeout_ms),
        _ => (Wait::Killable, m.timeout_ms),
    };
    match m.chan.call_as(&Request::Lock(a), timeout_ms, how, f) {
        Err(e) if e == EINTR && a.cmd == abi::LockCmd::Wait => Err(ERESTARTSYS),
        Err(e) if e == EIO || e == ETIMEDOUT || e == ENOTCONN => Err(ENOLCK),
        r => r,
    }
}

/// One of [`MAX_WAITS`], given back when dropped.
struct WaitSlot<'a>(&'a Mount);

impl<'a> WaitSlot<'a> {
    /// A slot, or `ENOLCK` ("the lock table is full") if all are taken.
    fn take(m: &'a Mount) -> Result<Self> {
        m.lock_waits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_WAITS).then_some(n + 1)
            })
            .map(|_| WaitSlot(m))
            .map_err(|_| ENOLCK)
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        self.0.lock_waits.fetch_sub(1, Ordering::Relaxed);
    }
}

fn mode_of(t: LockType) -> abi::LockMode {
    match t {
        LockType::Read => abi::LockMode::Read,
        LockType::Write => abi::LockMode::Write,
        LockType::Unlock => abi::LockMode::Unlock,
    }
}

/// Decides `req` at the file's owner (see the module's documentation).
pub(crate) fn lock(req: &mut LockRequest<'_, WfsFs>) -> Result {
    let m = mount(req.inode().super_block())?;
    if m.view {
        // A view holds no grants and shares nothing coherently: its locks
        // are this host's.
        return req.apply_locally();
    }
    match (req.cmd(), req.lock_type()) {
        // `F_OFD_GETLK` of `F_UNLCK`: the open file's own locks, which the
        // VFS's lists hold all of.
        (LockCmd::Test, LockType::Unlock) => req.apply_locally(),
        (LockCmd::Test, t) => test(req, m, mode_of(t)),
        (_, LockType::Unlock) => {
            // The VFS's lists have let go already: tell the owner.
            let a = args(req, m, abi::LockCmd::Set, abi::LockMode::Unlock);
            match call(m, a, done_reply) {
                Err(e) if e != ENOSYS => {
                    // Kept at the owner until this host is taken for dead;
                    // the process holds nothing any more.
                    pr_warn!(
                        "the release of a lock on file {:#x} did not reach its owner ({:?})\n",
                        a.file,
                        e
                    );
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        (cmd, t) => take(req, m, cmd, mode_of(t)),
    }
}

/// `F_GETLK` of `mode`, answered by the owner.
fn test(req: &mut LockRequest<'_, WfsFs>, m: &Mount, mode: abi::LockMode) -> Result {
    let r = call(m, args(req, m, abi::LockCmd::Get, mode), |r| match r.body {
        Some(ReplyBody::Lock(l)) => Ok(l),
        _ => Err(EIO),
    });
    match r {
        Ok(LockInfo {
            mode,
            start,
            end,
            pid,
        }) => {
            let t = match mode {
                abi::LockMode::Read => LockType::Read,
                abi::LockMode::Write => LockType::Write,
                abi::LockMode::Unlock => LockType::Unlock,
            };
            req.report(t, start, end, pid)
        }
        Err(e) if e == ENOSYS => req.apply_locally(),
        Err(e) => Err(e),
    }
}

/// Takes `mode` for `req` (`cmd`: at once, or waiting) at the owner, then
/// records it.
fn take(req: &mut LockRequest<'_, WfsFs>, m: &Mount, cmd: LockCmd, mode: abi::LockMode) -> Result {
    let wait = cmd == LockCmd::Wait;
    let c = if wait {
        abi::LockCmd::Wait
    } else {
        abi::LockCmd::Set
    };
    let a = args(req, m, c, mode);
    let slot = if wait { Some(WaitSlot::take(m)?) } else { None };
    let r = call(m, a, done_reply);
    drop(slot);
    match r {
        Ok(()) => {}
        Err(e) if e == ENOSYS => return req.apply_locally(),
        Err(e) => return Err(e),
    }
    let Err(e) = req.record() else {
        return Ok(());
    };
    // The owner granted what this host's own lists refuse (a release of
    // this host's racing the grant, or no memory): give it back, and let
    // go here of what the owner no longer has for this lock owner on
    // those bytes, so that the lists never claim more than the owner.
    let undo = LockArgs {
        cmd: abi::LockCmd::Set,
        mode: abi::LockMode::Unlock,
        ..a
    };
    if let Err(u) = call(m, undo, done_reply) {
        pr_warn!(
            "a lock on file {:#x} could not be given back to its owner ({:?})\n",
            a.file,
            u
        );
    }
    req.release_locally()?;
    // (A wait does not fail with `EAGAIN`.)
    Err(if wait && e == EAGAIN { ENOLCK } else { e })
}
