// SPDX-License-Identifier: GPL-2.0

//! `/dev/wfs`: the misc device the manager opens and registers on.
//!
//! Anybody may open the device and ask for its STATUS; only a task with
//! `CAP_SYS_ADMIN` may REGISTER, and only one file at a time may be
//! registered. Closing a registered file ends its session.

use super::{
    abi,
    channel::{Channel, MsgBuf, State},
};
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
        if session != 0 && file.chan.state.lock().unregister(session) {
            // Every pending call has failed: wake the callers, and any
            // reader of this file (there is none left, but be safe).
            file.chan.replies.notify_all();
            file.chan.requests.notify_all();
            pr_info!("manager unregistered (session {})\n", session);
        }
    }

    fn ioctl(file: &DevFile, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            abi::IOC_REGISTER => file.register(arg),
            abi::IOC_STATUS => file.status(arg),
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
        {
            let mut st = file.chan.state.lock();
            if !file.is_manager(&st) {
                return Err(EPERM);
            }
            st.accept_reply(&msg[..len]).map_err(|e| e.to_error())?;
        }
        file.chan.replies.notify_all();
        Ok(len)
    }
}

impl DevFile {
    /// Whether this file is the registered manager's.
    fn is_manager(&self, st: &State) -> bool {
        let session = self.session.load(Ordering::Acquire);
        session != 0 && st.manager.is_some_and(|m| m.session == session)
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
            let reply = st.register(&req, pid).map_err(|e| e.to_error())?;
            self.session.store(reply.session, Ordering::Release);
            reply
        };
        reply.encode(&mut raw);
        if let Err(e) = writer.write_slice(&raw) {
            // The manager cannot learn its session: undo the registration.
            let _ = self.chan.state.lock().unregister(reply.session);
            self.session.store(0, Ordering::Release);
            return Err(e);
        }
        pr_info!(
            "manager pid {} registered (session {})\n",
            pid,
            reply.session
        );
        Ok(0)
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
