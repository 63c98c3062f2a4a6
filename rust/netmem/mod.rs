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
//! - `Orphan(req)`: lent to the manager, but the kernel side gave up on
//!   `req` (time-out, killed caller). The slot is not reused while the
//!   manager may still write to it: it becomes free when the manager's
//!   (refused) late reply to `req` arrives, or when the manager goes away.
//!
//! After the request slots come the manager's scratch slots
//! ([`ScratchSlots`]): never lent with a request, they belong to the
//! manager except while an INVALIDATE ioctl that names one copies a page
//! into it. Two INVALIDATEs never use one scratch slot at once.
//!
//! The pool's pages ([`Pool`]) are mapped by the manager from `/dev/wfs`.
//! Ownership is a protocol between kernel and manager, not a hardware
//! protection: a manager that writes a slot it does not own can only spoil
//! the data of that request, never kernel memory.

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
    Orphan(u64),
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

    /// The kernel gives up on `req` while its slot is lent to the manager.
    pub(crate) fn orphan(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        if self.get(slot)? != Owner::Manager(req) {
            return Err(SlotError::WrongOwner);
        }
        self.owner[slot as usize] = Owner::Orphan(req);
        Ok(())
    }

    /// The manager answered `req` late: free its orphaned slot, if any.
    /// Returns whether there was one.
    pub(crate) fn adopt_late(&mut self, req: u64) -> bool {
        match self.owner.iter().position(|o| *o == Owner::Orphan(req)) {
            Some(slot) => {
                self.owner[slot] = Owner::Free;
                self.free += 1;
                true
            }
            None => false,
        }
    }

    /// Ends the kernel's use of `slot` for `req`, whatever happened: frees
    /// it if the kernel holds it, orphans it if the manager still does.
    pub(crate) fn finish(&mut self, slot: u32, req: u64) {
        if self.release(slot, req).is_err() {
            let _ = self.orphan(slot, req);
        }
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
    /// many were lent to it. Orphans become free; the others go back to
    /// the kernel side of their request.
    pub(crate) fn reclaim_all(&mut self) -> usize {
        let mut n = 0;
        for o in self.owner.iter_mut() {
            match *o {
                Owner::Manager(req) => *o = Owner::Kernel(req),
                Owner::Orphan(_) => {
                    *o = Owner::Free;
                    self.free += 1;
                }
                _ => continue,
            }
            n += 1;
        }
        n
    }

    /// Whether `slot` is free: no request, kernel or manager, has it.
    pub(crate) fn is_free(&self, slot: u32) -> bool {
        self.get(slot) == Ok(Owner::Free)
    }

    /// Whether the manager may currently access `slot` for request `req`.
    pub(crate) fn manager_may_access(&self, slot: u32, req: u64) -> bool {
        self.get(slot) == Ok(Owner::Manager(req))
    }
}

/// The manager's `N` scratch slots, which follow the request slots in the
/// pool: which of them an INVALIDATE is writing right now.
pub(crate) struct ScratchSlots<const N: usize> {
    busy: [bool; N],
}

impl<const N: usize> ScratchSlots<N> {
    /// None busy.
    pub(crate) const fn new() -> Self {
        Self { busy: [false; N] }
    }

    /// Claims scratch slot `i` (counted from the first scratch slot) for
    /// the kernel: `BadSlot` if out of range, `WrongOwner` if another
    /// INVALIDATE holds it.
    pub(crate) fn claim(&mut self, i: u32) -> Result<(), SlotError> {
        match self.busy.get_mut(i as usize) {
            None => Err(SlotError::BadSlot),
            Some(true) => Err(SlotError::WrongOwner),
            Some(b) => {
                *b = true;
                Ok(())
            }
        }
    }

    /// Whether an INVALIDATE is writing scratch slot `i`.
    pub(crate) fn is_claimed(&self, i: u32) -> bool {
        self.busy.get(i as usize).copied().unwrap_or(false)
    }

    /// Gives a claimed scratch slot back to the manager.
    pub(crate) fn release(&mut self, i: u32) {
        if let Some(b) = self.busy.get_mut(i as usize) {
            *b = false;
        }
    }
}

impl<const N: usize> Default for SlotMap<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The pool's pages: one per slot, allocated when the module loads and
/// mapped by the manager.
pub(crate) struct Pool {
    pages: KVec<Page>,
}

impl Pool {
    /// Allocates `n` zeroed pages.
    pub(crate) fn new(n: usize) -> Result<Self> {
        let mut pages = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        Ok(Pool { pages })
    }

    /// The page of `slot`.
    pub(crate) fn page(&self, slot: u32) -> Option<&Page> {
        self.pages.get(slot as usize)
    }

    /// Zeroes the page of `slot`, so that a new manager finds nothing of
    /// what an earlier one or the kernel left there. The caller makes sure
    /// that nobody uses the page meanwhile (the slot is free and no manager
    /// has the pool mapped), or the page is merely not all zeros.
    pub(crate) fn clear(&self, slot: u32) -> Result {
        self.page(slot).ok_or(EINVAL)?.fill_zero()
    }

    /// Maps every page into `vma`, which must be a shared mapping of the
    /// whole pool from offset 0. The mapping is the manager's alone: a
    /// child it forks does not inherit it, `mremap(2)` cannot grow it, and
    /// core dumps leave it out (page data of every file passes through).
    pub(crate) fn map(&self, vma: &VmArea) -> Result {
        if !vma.is_shared()
            || vma.pgoff() != 0
            || vma.end() - vma.start() != self.pages.len() * PAGE_SIZE
        {
            return Err(EINVAL);
        }
        // The pool is the manager's alone: not inherited by its children
        // (`VM_IO` keeps `MADV_DOFORK` from undoing that), not grown, not
        // dumped, and out of reach of `get_user_pages` (another process's
        // `/proc/PID/mem` or `process_vm_readv`).
        vma.set_dontcopy();
        vma.set_io();
        vma.set_dontexpand();
        vma.set_dontdump();
        for (i, page) in self.pages.iter().enumerate() {
            vma.insert_page(vma.start() + i * PAGE_SIZE, page)?;
        }
        Ok(())
    }
}

use kernel::{
    alloc::flags::__GFP_ZERO,
    init::init_array_from_fn,
    mm::VmArea,
    page::{Page, PAGE_SIZE},
    prelude::*,
};

#[cfg(CONFIG_KUNIT)]
mod tests;
