// SPDX-License-Identifier: GPL-2.0

//! `netmem`: the memory that travels.
//!
//! Page data crosses the kernel/manager boundary through a pool of page
//! slots that the manager maps from `/dev/wfs`. This file holds the slot
//! accounting: who owns each slot, and when. The rules are enforced here so
//! that a confused or malicious manager cannot make the kernel read a slot
//! it is still writing, or hand one slot to two requests.
//!
//! ```text
//!   Free --reserve(req)--> Kernel(req) --lend(req)--> Manager(req)
//!     ^                        |                          |
//!     +-------release----------+<------give_back(req)-----+
//! ```
//!
//! - `Kernel(req)`: the kernel is filling or reading the slot for request
//!   `req`; the manager must not touch it.
//! - `Manager(req)`: the request has been sent; the manager may read or
//!   write the slot until it replies to `req`. A reply that names another
//!   request, or a slot in another state, is refused.
//!
//! The pages themselves and the `mmap` of the pool are added with the data
//! path.

/// Why a slot operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotError {
    /// No free slot.
    Exhausted,
    /// The slot number is out of range.
    BadSlot,
    /// The slot is not in the state the operation needs, or belongs to
    /// another request.
    WrongOwner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Free,
    Kernel(u64),
    Manager(u64),
}

/// Ownership of `N` page slots.
pub(crate) struct SlotMap<const N: usize> {
    owner: [Owner; N],
    free: usize,
}

impl<const N: usize> SlotMap<N> {
    /// All slots free, by value: for small maps only.
    pub(crate) const fn new() -> Self {
        Self {
            owner: [Owner::Free; N],
            free: N,
        }
    }

    /// Initialises a map with all slots free, in place.
    pub(crate) fn init() -> impl Init<Self> {
        init!(Self {
            owner <- init_array_from_fn::<_, N, _, core::convert::Infallible>(|_| Owner::Free),
            free: N,
        })
    }

    /// Number of free slots.
    pub(crate) fn free(&self) -> usize {
        self.free
    }

    fn get(&self, slot: u32) -> Result<Owner, SlotError> {
        self.owner
            .get(slot as usize)
            .copied()
            .ok_or(SlotError::BadSlot)
    }

    /// Takes a free slot for request `req`; the kernel owns it.
    pub(crate) fn reserve(&mut self, req: u64) -> Result<u32, SlotError> {
        let slot = self
            .owner
            .iter()
            .position(|o| *o == Owner::Free)
            .ok_or(SlotError::Exhausted)?;
        self.owner[slot] = Owner::Kernel(req);
        self.free -= 1;
        Ok(slot as u32)
    }

    /// Hands a kernel-owned slot to the manager along with request `req`.
    pub(crate) fn lend(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        if self.get(slot)? != Owner::Kernel(req) {
            return Err(SlotError::WrongOwner);
        }
        self.owner[slot as usize] = Owner::Manager(req);
        Ok(())
    }

    /// The manager's reply to `req` returns the slot to the kernel.
    pub(crate) fn give_back(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        if self.get(slot)? != Owner::Manager(req) {
            return Err(SlotError::WrongOwner);
        }
        self.owner[slot as usize] = Owner::Kernel(req);
        Ok(())
    }

    /// Frees a slot. The kernel may free a slot it owns; a slot lent to the
    /// manager is only freed by [`SlotMap::reclaim_all`] (the manager is
    /// gone) or after [`SlotMap::give_back`].
    pub(crate) fn release(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        if self.get(slot)? != Owner::Kernel(req) {
            return Err(SlotError::WrongOwner);
        }
        self.owner[slot as usize] = Owner::Free;
        self.free += 1;
        Ok(())
    }

    /// Takes every slot back from a manager that went away, and returns how
    /// many were lent to it.
    pub(crate) fn reclaim_all(&mut self) -> usize {
        let mut n = 0;
        for o in self.owner.iter_mut() {
            if let Owner::Manager(req) = *o {
                *o = Owner::Kernel(req);
                n += 1;
            }
        }
        n
    }

    /// Whether the manager may currently access `slot` for request `req`.
    pub(crate) fn manager_may_access(&self, slot: u32, req: u64) -> bool {
        self.get(slot) == Ok(Owner::Manager(req))
    }
}

impl<const N: usize> Default for SlotMap<N> {
    fn default() -> Self {
        Self::new()
    }
}

use kernel::{init::init_array_from_fn, prelude::*};

#[cfg(CONFIG_KUNIT)]
mod tests;
