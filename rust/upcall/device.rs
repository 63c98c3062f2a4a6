// SPDX-License-Identifier: GPL-2.0

//! `/dev/wfs`: the misc device the manager opens and registers on.
//!
//! The device node is mode 0600 (root's). Whoever opens it may ask for
//! its STATUS; only a task with `CAP_SYS_ADMIN` may REGISTER, and only one file at a time may be
//! registered. Closing a registered file ends its session.

use super::{
    abi,
    channel::{Channel, MsgBuf, State, POOL_SLOTS, SCRATCH_SLOTS},
};
use crate::{fs::pages::Invalidate, netmem::SlotError};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    capability::{capable, Capability},
    miscdevice::MiscDevice,
    mm::VmArea,
    prelude::*,
    sync::Arc,
    uaccess::{UserSlice, UserSliceReader, UserSliceWriter},
};

/// One open file of `/dev/wfs`.
pub(crate) struct DevFile {
    chan: Arc<Channel>,
    /// Session this file registered, or 0.
    session: AtomicU64,
}

/// The `/dev/wfs` device type.
pub(crate) struct WfsDevice;

#[vtable]
impl MiscDevice for WfsDevice {
    type Context = Arc<Channel>;
    type Ptr = KBox<DevFile>;

    fn open(ctx: &Arc<Channel>) -> Result<KBox<DevFile>> {
        Ok(KBox::new(
            DevFile {
                chan: ctx.clone(),
                session: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    fn release(file: KBox<DevFile>) {
        let session = file.session.load(Ordering::Acquire);
        if session != 0 {
            file.end_session(session);
        }
    }

    fn ioctl(file: &DevFile, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            abi::IOC_REGISTER => file.register(arg),
            abi::IOC_STATUS => file.status(arg),
            abi::IOC_INVALIDATE => file.invalidate(arg),
            abi::IOC_FORGET => file.forget(arg),
            abi::IOC_SIZE => file.size(arg),
            abi::IOC_OPENS => file.opens(arg),
            _ => Err(ENOTTY),
        }
    }

    /// The manager reads one request per call; the buffer must hold the
    /// largest message.
    fn read(file: &DevFile, writer: &mut UserSliceWriter, nonblock: bool) -> Result<usize> {
        if writer.len() < abi::MSG_MAX {
            return Err(EINVAL);
        }
        let mut msg: MsgBuf = [0; abi::MSG_MAX];
        let len = {
            let mut st = file.chan.state.lock();
            loop {
                if !file.is_manager(&st) {
                    return Err(EPERM);
                }
                if let Some(len) = st.next_request(&mut msg) {
                    break len;
                }
                if nonblock {
                    return Err(EAGAIN);
                }
                if file.chan.requests.wait_interruptible(&mut st) {
                    return Err(ERESTARTSYS);
                }
            }
        };
        // Copied without the lock: see the channel's locking rules.
        if let Err(e) = writer.write_slice(&msg[..len]) {
            file.chan.state.lock().fail_request(&msg[..len]);
            file.chan.replies.notify_all();
            return Err(e);
        }
        Ok(len)
    }

    /// The registered manager maps the whole netmem pool, shared, from
    /// offset 0.
    fn mmap(file: &DevFile, vma: &VmArea) -> Result {
        if !file.is_manager(&file.chan.state.lock()) {
            return Err(EPERM);
        }
        file.chan.pool.map(vma)
    }

    /// The manager writes one reply per call.
    fn write(file: &DevFile, reader: &mut UserSliceReader, _nonblock: bool) -> Result<usize> {
        let len = reader.len();
        if !(abi::HEADER_LEN..=abi::MSG_MAX).contains(&len) {
            return Err(EINVAL);
        }
        let mut msg: MsgBuf = [0; abi::MSG_MAX];
        reader.read_slice(&mut msg[..len])?;
        let res = {
            let mut st = file.chan.state.lock();
            if !file.is_manager(&st) {
                return Err(EPERM);
            }
            st.accept_reply(&msg[..len]).map_err(|e| e.to_error())
        };
        // A refused late reply may have freed a pool slot callers wait for.
        file.chan.replies.notify_all();
        res.map(|()| len)
    }
}

impl DevFile {
    /// Whether this file is the registered manager's.
    fn is_manager(&self, st: &State) -> bool {
        let session = self.session.load(Ordering::Acquire);
        session != 0 && st.manager.is_some_and(|m| m.session == session)
    }

    /// Ends `session` if it is still the registered one: every pending
    /// call fails, its callers are woken, and the session's page grants are
    /// revoked before another manager may register.
    fn end_session(&self, session: u64) {
        let ended = {
            let mut st = self.chan.state.lock();
            let ended = st.unregister(session);
            st.revoking |= ended;
            ended
        };
        if !ended {
            return;
        }
        // Every pending call has failed: wake the callers, and any reader
        // of this file.
        self.chan.replies.notify_all();
        self.chan.requests.notify_all();
        pr_info!("manager unregistered (session {})\n", session);
        // Its grants die with it. Without a manager nothing can wait for an
        // upcall, so page locks and writeback are released soon; a new
        // manager waits to register until this is done.
        if let Err(e) = crate::fs::revoke_grants() {
            pr_info!("grants of session {} not revoked: {:?}\n", session, e);
        }
        self.chan.state.lock().revoking = false;
        self.chan.replies.notify_all();
    }

    fn register(&self, arg: usize) -> Result<isize> {
        if !capable(Capability::SYS_ADMIN) {
            return Err(EPERM);
        }
        let (mut reader, mut writer) = UserSlice::new(arg, abi::Register::LEN).reader_writer();
        let mut raw = [0u8; abi::Register::LEN];
        reader.read_slice(&mut raw)?;
        let req = abi::Register::decode(&raw).map_err(|_| EINVAL)?;
        let pid = kernel::current!().pid();
        let reply = {
            let mut st = self.chan.state.lock();
            if self.session.load(Ordering::Acquire) != 0 {
                // This file registered before; one registration per file.
                return Err(EBUSY);
            }
            // The last session's grants are still being revoked, or its
            // callers still hold pool slots with its data (their calls have
            // failed; they give the slots back as soon as they run, and a
            // slot coming back wakes `replies`). The slots must all be free
            // for the loop below to clear them.
            while st.revoking || (st.manager.is_none() && st.slots.free() < POOL_SLOTS) {
                if self.chan.replies.wait_interruptible(&mut st) {
                    return Err(ERESTARTSYS);
                }
            }
            if st.manager.is_none() {
                // Nothing of an earlier session reaches the new manager:
                // every free slot is cleared before it can map the pool (it
                // may only once registered, under this lock). No manager
                // has it mapped now: a mapping keeps its file open, and the
                // last manager's file was released.
                for slot in 0..(POOL_SLOTS + SCRATCH_SLOTS) as u32 {
                    let free = match slot.checked_sub(POOL_SLOTS as u32) {
                        None => st.slots.is_free(slot),
                        Some(i) => !st.scratch.is_claimed(i),
                    };
                    if free {
                        self.chan.pool.clear(slot)?;
                    }
                }
            }
            st.register(&req, pid).map_err(|e| e.to_error())?
        };
        reply.encode(&mut raw);
        if let Err(e) = writer.write_slice(&raw) {
            // The manager cannot learn its session: end it (calls made
            // meanwhile fail and are woken). No file was the manager's yet,
            // so nobody read a request or used the pool; the file may
            // register again.
            self.end_session(reply.session);
            return Err(e);
        }
        // Only now is this file the manager's: until its answer is copied
        // back, no other thread of the caller can act as the manager.
        self.session.store(reply.session, Ordering::Release);
        pr_info!(
            "manager pid {} registered (session {})\n",
            pid,
            reply.session
        );
        Ok(0)
    }

    /// Fails with `EPERM` unless this file is the registered manager's.
    fn check_manager(&self) -> Result {
        if self.is_manager(&self.chan.state.lock()) {
            Ok(())
        } else {
            Err(EPERM)
        }
    }

    /// INVALIDATE: takes a page away from this host's page cache and, if
    /// a scratch slot is named, copies its contents there.
    fn invalidate(&self, arg: usize) -> Result<isize> {
        let (mut reader, mut writer) = UserSlice::new(arg, abi::Invalidate::LEN).reader_writer();
        let mut raw = [0u8; abi::Invalidate::LEN];
        reader.read_slice(&mut raw)?;
        self.check_manager()?;
        let mut inv = abi::Invalidate::decode(&raw).map_err(|_| EINVAL)?;
        let mode = match inv.mode {
            abi::inval::DROP => Invalidate::Drop,
            abi::inval::DOWNGRADE => Invalidate::Downgrade,
            _ => return Err(EINVAL),
        };
        if inv.flags != 0 || inv.reserved != 0 {
            return Err(EINVAL);
        }
        let scratch = match inv.slot {
            abi::NO_SLOT => None,
            s => Some(s.checked_sub(POOL_SLOTS as u32).ok_or(EINVAL)?),
        };
        if let Some(i) = scratch {
            let mut st = self.chan.state.lock();
            if !self.is_manager(&st) {
                return Err(EPERM);
            }
            st.scratch.claim(i).map_err(|e| match e {
                SlotError::WrongOwner => EBUSY,
                _ => EINVAL,
            })?;
        }
        let page = scratch.and_then(|i| self.chan.pool.page(POOL_SLOTS as u32 + i));
        let mut copied = false;
        // The scratch slot is claimed by this call, so no other INVALIDATE
        // writes it, and the manager does not touch it until this ioctl
        // returns (the ABI's rule; breaking it can only spoil the manager's
        // own copy).
        let res = crate::fs::invalidate_page(inv.file, inv.index, mode, |contents| {
            if let Some(page) = page {
                contents.copy_to_page(page)?;
                copied = true;
            }
            Ok(())
        });
        if let Some(i) = scratch {
            self.chan.state.lock().scratch.release(i);
        }
        inv.flags = match res? {
            None => 0,
            Some(s) => {
                let mut f = abi::page_flags::PRESENT;
                if s.dirty {
                    f |= abi::page_flags::DIRTY;
                }
                if s.writable {
                    f |= abi::page_flags::WRITABLE;
                }
                if copied {
                    f |= abi::page_flags::CONTENTS;
                }
                f
            }
        };
        inv.encode(&mut raw);
        writer.write_slice(&raw)?;
        Ok(0)
    }

    /// FORGET: drops the cached dentry of a name, positive or negative.
    fn forget(&self, arg: usize) -> Result<isize> {
        let mut raw = [0u8; abi::Forget::LEN];
        UserSlice::new(arg, abi::Forget::LEN)
            .reader()
            .read_slice(&mut raw)?;
        self.check_manager()?;
        let name = abi::Forget::decode(&raw).map_err(|_| EINVAL)?;
        crate::fs::forget_name(name)?;
        Ok(0)
    }

    /// A file's owner says how long the file is now: a cached inode that
    /// is shorter grows to it; or (`cut`) the owner cut the file, and a
    /// cached inode takes exactly that size.
    fn size(&self, arg: usize) -> Result<isize> {
        let mut raw = [0u8; abi::Size::LEN];
        UserSlice::new(arg, abi::Size::LEN)
            .reader()
            .read_slice(&mut raw)?;
        self.check_manager()?;
        let s = abi::Size::decode(&raw).map_err(|_| EINVAL)?;
        crate::fs::set_size(s.file, s.size, s.cut)?;
        Ok(0)
    }

    /// OPENS: lists the files open on this host into the caller's buffer
    /// and makes the caller's session the one that counts their opens
    /// (their RELEASEs name it). The list is taken and the opens adopted
    /// under the state lock, and copied out after it (the buffer may be a
    /// mapping of a `/wfs` file). More files than the buffer holds:
    /// `E2BIG` with the count, nothing adopted. A buffer the list
    /// cannot be copied to (`EFAULT`) leaves the opens adopted all the
    /// same: a manager that passes one does not learn what it counts.
    fn opens(&self, arg: usize) -> Result<isize> {
        let (mut reader, mut writer) = UserSlice::new(arg, abi::Opens::LEN).reader_writer();
        let mut raw = [0u8; abi::Opens::LEN];
        reader.read_slice(&mut raw)?;
        let mut req = abi::Opens::decode(&raw).map_err(|_| EINVAL)?;
        let mut list = KVVec::with_capacity(req.cap as usize, GFP_KERNEL)?;
        let listed = {
            let mut st = self.chan.state.lock();
            if !self.is_manager(&st) {
                return Err(EPERM);
            }
            req.count = u32::try_from(st.opens.count()).unwrap_or(u32::MAX);
            // (The user's buffer holds `cap` entries, whatever room `list`
            // has.)
            if req.count > req.cap {
                false
            } else {
                match st
                    .opens
                    .list(self.session.load(Ordering::Acquire), &mut list)
                {
                    Ok(()) => true,
                    Err(e) if e == E2BIG => false,
                    Err(e) => return Err(e),
                }
            }
        };
        if listed {
            let mut out =
                UserSlice::new(req.buf as usize, list.len() * abi::OpenEntry::LEN).writer();
            for e in list.iter() {
                let mut b = [0u8; abi::OpenEntry::LEN];
                e.encode(&mut b);
                out.write_slice(&b)?;
            }
        }
        req.encode(&mut raw);
        writer.write_slice(&raw)?;
        if listed {
            Ok(0)
        } else {
            Err(E2BIG)
        }
    }

    fn status(&self, arg: usize) -> Result<isize> {
        let status = self.chan.state.lock().status();
        let mut raw = [0u8; abi::Status::LEN];
        status.encode(&mut raw);
        UserSlice::new(arg, abi::Status::LEN)
            .writer()
            .write_slice(&raw)?;
        Ok(0)
    }
}
