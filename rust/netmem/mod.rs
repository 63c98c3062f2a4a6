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
//! A request may take a run of consecutive slots ([`Run`]: a READ of
//! several pages); every slot of the run moves through the same states at
//! once.
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

/// Consecutive slots lent with one request: `n` slots from `first` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// The first slot.
    pub(crate) first: u32,
    /// How many (at least 1).
    pub(crate) n: u32,
}

impl Run {
    /// The one slot `slot`.
    pub(crate) const fn one(slot: u32) -> Self {
        Run { first: slot, n: 1 }
    }
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

    /// Moves every slot of `run` from state `from` to state `to`, or none
    /// (`BadSlot` if the run leaves the map, `WrongOwner` if a slot is not
    /// in state `from`).
    fn shift(&mut self, run: Run, from: Owner, to: Owner) -> Result<(), SlotError> {
        let end = run.first.checked_add(run.n).ok_or(SlotError::BadSlot)?;
        if run.n == 0 || end as usize > N {
            return Err(SlotError::BadSlot);
        }
        let slots = run.first as usize..end as usize;
        if self.owner[slots.clone()].iter().any(|o| *o != from) {
            return Err(SlotError::WrongOwner);
        }
        for o in &mut self.owner[slots] {
            *o = to;
        }
        match (from, to) {
            (Owner::Free, Owner::Free) => {}
            (Owner::Free, _) => self.free -= run.n as usize,
            (_, Owner::Free) => self.free += run.n as usize,
            _ => {}
        }
        Ok(())
    }

    /// Takes a free slot for request `req`; the kernel owns it.
    pub(crate) fn reserve(&mut self, req: u64) -> Result<u32, SlotError> {
        self.reserve_run(req, 1).map(|run| run.first)
    }

    /// Takes up to `n` consecutive free slots for request `req`: the first
    /// run of `n`, or else the longest shorter one (the first of those).
    /// The kernel owns them.
    pub(crate) fn reserve_run(&mut self, req: u64, n: u32) -> Result<Run, SlotError> {
        let want = (n as usize).max(1);
        let mut best = (0, 0);
        let mut i = 0;
        while i < N && best.1 < want {
            if self.owner[i] != Owner::Free {
                i += 1;
                continue;
            }
            let len = self.owner[i..]
                .iter()
                .take(want)
                .take_while(|o| **o == Owner::Free)
                .count();
            if len > best.1 {
                best = (i, len);
            }
            i += len;
        }
        if best.1 == 0 {
            return Err(SlotError::Exhausted);
        }
        let run = Run {
            first: best.0 as u32,
            n: best.1 as u32,
        };
        self.shift(run, Owner::Free, Owner::Kernel(req))?;
        Ok(run)
    }

    /// Hands a kernel-owned slot to the manager along with request `req`.
    pub(crate) fn lend(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        self.lend_run(Run::one(slot), req)
    }

    /// [`SlotMap::lend`] for every slot of `run`.
    pub(crate) fn lend_run(&mut self, run: Run, req: u64) -> Result<(), SlotError> {
        self.shift(run, Owner::Kernel(req), Owner::Manager(req))
    }

    /// The manager's reply to `req` returns the slot to the kernel.
    pub(crate) fn give_back(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        self.give_back_run(Run::one(slot), req)
    }

    /// [`SlotMap::give_back`] for every slot of `run`.
    pub(crate) fn give_back_run(&mut self, run: Run, req: u64) -> Result<(), SlotError> {
        self.shift(run, Owner::Manager(req), Owner::Kernel(req))
    }

    /// The manager answered `req` late: free its orphaned slots, if any.
    /// Returns whether there were some.
    pub(crate) fn adopt_late(&mut self, req: u64) -> bool {
        let mut found = false;
        for o in self.owner.iter_mut().filter(|o| **o == Owner::Orphan(req)) {
            *o = Owner::Free;
            self.free += 1;
            found = true;
        }
        found
    }

    /// Ends the kernel's use of `slot` for `req`, whatever happened: frees
    /// it if the kernel holds it, orphans it if the manager still does (the
    /// kernel gave up on `req` while the slot was lent).
    pub(crate) fn finish(&mut self, slot: u32, req: u64) {
        self.finish_run(Run::one(slot), req);
    }

    /// [`SlotMap::finish`] for every slot of `run`.
    pub(crate) fn finish_run(&mut self, run: Run, req: u64) {
        if self.release_run(run, req).is_err() {
            let _ = self.shift(run, Owner::Manager(req), Owner::Orphan(req));
        }
    }

    /// Frees a slot. The kernel may free a slot it owns; a slot lent to the
    /// manager is only freed by [`SlotMap::reclaim_all`] (the manager is
    /// gone) or after [`SlotMap::give_back`].
    pub(crate) fn release(&mut self, slot: u32, req: u64) -> Result<(), SlotError> {
        self.release_run(Run::one(slot), req)
    }

    /// [`SlotMap::release`] for every slot of `run`.
    pub(crate) fn release_run(&mut self, run: Run, req: u64) -> Result<(), SlotError> {
        self.shift(run, Owner::Kernel(req), Owner::Free)
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
