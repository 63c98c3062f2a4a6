// SPDX-License-Identifier: GPL-2.0

//! State shared by `/dev/wfs` and the mounted file systems: who the manager
//! is, the outstanding requests and the netmem slots.
//!
//! # Locking
//!
//! One mutex, [`Channel::state`], protects everything here. It is never held
//! across a copy to or from user space, nor while sleeping for a reply.

use super::{abi, table::Table};
use crate::netmem::SlotMap;
use kernel::{new_mutex, prelude::*, sync::Mutex};

/// Requests that may be outstanding at once.
pub(crate) const MAX_INFLIGHT: usize = 64;
/// Page slots in the netmem pool.
pub(crate) const POOL_SLOTS: usize = 64;
/// How long a request waits for the manager, in milliseconds.
pub(crate) const TIMEOUT_MS: u32 = 30_000;

/// A manager's answer to a request, as kept in the request table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// 0 or a positive errno from the manager.
    pub(crate) error: i32,
    /// Attributes (LOOKUP, GETATTR).
    pub(crate) attr: abi::Attr,
}

/// The registered manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Manager {
    /// Its process id, for status and logs.
    pub(crate) pid: i32,
    /// The session its registration opened.
    pub(crate) session: u64,
}

/// Everything [`Channel::state`] protects.
pub(crate) struct State {
    /// The registered manager, if any.
    pub(crate) manager: Option<Manager>,
    /// Number of the last session (0: none yet).
    pub(crate) session: u64,
    /// Mounted WFS super blocks.
    pub(crate) mounts: u32,
    /// Outstanding requests.
    pub(crate) table: Table<Answer, MAX_INFLIGHT>,
    /// Ownership of the netmem slots.
    pub(crate) slots: SlotMap<POOL_SLOTS>,
}

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// Not a register block at all.
    BadMagic,
    /// A different ABI version.
    Version,
    /// Unknown flags.
    Flags,
    /// Another manager is registered.
    Busy,
}

impl RegisterError {
    /// The errno a refused registration returns.
    pub(crate) fn to_error(self) -> Error {
        match self {
            RegisterError::BadMagic | RegisterError::Flags => EINVAL,
            RegisterError::Version => EPROTO,
            RegisterError::Busy => EBUSY,
        }
    }
}

impl State {
    /// The state of a freshly loaded module.
    pub(crate) const fn new() -> Self {
        Self {
            manager: None,
            session: 0,
            mounts: 0,
            table: Table::new(),
            slots: SlotMap::new(),
        }
    }

    /// Checks a REGISTER block and, if acceptable, makes `pid` the manager.
    /// Returns the reply block.
    pub(crate) fn register(
        &mut self,
        req: &abi::Register,
        pid: i32,
    ) -> Result<abi::Register, RegisterError> {
        if req.magic != abi::REGISTER_MAGIC {
            return Err(RegisterError::BadMagic);
        }
        if req.abi_version != abi::ABI_VERSION {
            return Err(RegisterError::Version);
        }
        if req.flags != 0 {
            return Err(RegisterError::Flags);
        }
        if self.manager.is_some() {
            return Err(RegisterError::Busy);
        }
        self.session += 1;
        self.manager = Some(Manager {
            pid,
            session: self.session,
        });
        Ok(abi::Register {
            magic: abi::REGISTER_MAGIC,
            abi_version: abi::ABI_VERSION,
            flags: 0,
            max_inflight: MAX_INFLIGHT as u32,
            pool_slots: POOL_SLOTS as u32,
            timeout_ms: TIMEOUT_MS,
            session: self.session,
        })
    }

    /// Ends `session` if it is the current one: every pending request fails
    /// with `EIO` and every lent slot comes back. Returns whether it was.
    pub(crate) fn unregister(&mut self, session: u64) -> bool {
        match self.manager {
            Some(m) if m.session == session => {
                self.manager = None;
                self.table.fail_all(abi::errno::EIO);
                self.slots.reclaim_all();
                true
            }
            _ => false,
        }
    }

    /// The STATUS block.
    pub(crate) fn status(&self) -> abi::Status {
        abi::Status {
            abi_version: abi::ABI_VERSION,
            registered: self.manager.is_some() as u32,
            manager_pid: self.manager.map_or(0, |m| m.pid as u32),
            inflight: self.table.pending() as u32,
            session: self.session,
            mounts: self.mounts,
            reserved: 0,
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// The channel between this host's kernel and its manager.
#[pin_data]
pub(crate) struct Channel {
    /// All mutable state; see the module documentation for the rules.
    #[pin]
    pub(crate) state: Mutex<State>,
}

impl Channel {
    /// A channel with no manager.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_mutex!(State::new(), "wfs_channel"),
        })
    }
}
