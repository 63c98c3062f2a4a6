//! The netmem page pool shared with the kernel (`/dev/wfs`, mapped): the
//! slots the kernel lends with READ and WRITE requests, and the scratch
//! slots invalidations hand pages over in.

use std::os::fd::RawFd;

use wfs_abi::{PAGE_SIZE, errno};

/// The netmem pool as mapped from `/dev/wfs`: one page per slot.
pub struct Pool {
    base: *mut u8,
    slots: u32,
}

// SAFETY: The pool is plain shared memory. Each slot is lent by the kernel
// with exactly one request, which exactly one worker handles, so no two
// threads touch a slot at the same time.
unsafe impl Send for Pool {}
// SAFETY: See `Send`.
unsafe impl Sync for Pool {}

impl Pool {
    /// Maps the pool of `slots` pages from the device `fd`.
    pub fn map(fd: RawFd, slots: u32) -> std::io::Result<Pool> {
        let len = slots as usize * PAGE_SIZE;
        // SAFETY: A fresh shared mapping of the device; the kernel checks
        // size and offset.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Pool {
            base: p.cast(),
            slots,
        })
    }

    /// A pool in ordinary memory, for tests.
    pub fn for_tests(slots: u32) -> Pool {
        let mem = vec![0u8; slots as usize * PAGE_SIZE].leak();
        Pool {
            base: mem.as_mut_ptr(),
            slots,
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The page of `slot`.
    ///
    /// # Safety
    ///
    /// The caller handles the request `slot` was lent with, and no other
    /// reference to the page exists.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn page(&self, slot: u32) -> Option<&mut [u8]> {
        if slot >= self.slots {
            return None;
        }
        // SAFETY: In bounds of the mapping; exclusive by the caller's
        // guarantee.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.base.add(slot as usize * PAGE_SIZE), PAGE_SIZE)
        })
    }
}

/// Checks the slot lent with a WRITE or VIEW, or with a READ of `count`
/// pages: its first slot, and `count - 1` after it for a READ (1 to
/// [`wfs_abi::READ_RUN_MAX`]). `EINVAL` for a run outside the request
/// slots (the pool's last [`wfs_abi::SCRATCH_SLOTS`] are the manager's own).
pub(crate) fn check_lent(pool: Option<&Pool>, count: u32, slot: u32) -> Result<(), i32> {
    match pool {
        Some(p)
            if (1..=wfs_abi::READ_RUN_MAX).contains(&count)
                && slot
                    .checked_add(count)
                    .is_some_and(|end| end <= p.slots.saturating_sub(wfs_abi::SCRATCH_SLOTS)) =>
        {
            Ok(())
        }
        _ => Err(errno::EINVAL),
    }
}

/// The page of the first slot lent with a request of `count` pages (see
/// [`check_lent`]).
///
/// # Safety
///
/// The kernel lent `slot` with the request the caller handles, and only
/// the caller does.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn lent_page(
    pool: Option<&Pool>,
    count: u32,
    slot: u32,
) -> Result<&mut [u8], i32> {
    check_lent(pool, count, slot)?;
    // SAFETY: The slot is the caller's alone (this function's contract),
    // and in the pool (checked above).
    pool.and_then(|p| unsafe { p.page(slot) })
        .ok_or(errno::EINVAL)
}
