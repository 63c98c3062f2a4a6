//! Taking pages and names away from this host's kernel.
//!
//! `IOC_INVALIDATE` removes a page from the page cache (DROP) or leaves a
//! clean read-only copy (DOWNGRADE), and hands its contents over through
//! one of the pool's scratch slots. The engine issues them for the page
//! protocol, which answers for what they bring back (a page that was
//! dirty is this host's newest data). `IOC_FORGET` drops a cached name, so
//! that a file created or removed behind the kernel's back is seen.
//! `IOC_SIZE` tells the kernel a file's new size, as its owner has it.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wfs_abi::{Invalidate, SCRATCH_SLOTS, inval, page_flags};

use crate::device::{describe_errno, ioctl_forget, ioctl_invalidate, ioctl_size};
use crate::export::Export;
use crate::pool::Pool;
use crate::protocol::PageData;

/// What an invalidation found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The page was cached on this host.
    pub present: bool,
    /// It held data not written back yet.
    pub dirty: bool,
    /// It was granted for writing.
    pub writable: bool,
    /// Its dirty data was written to the export.
    pub written: bool,
    /// How long the INVALIDATE ioctl took, in nanoseconds.
    #[serde(default)]
    pub ioctl_ns: u64,
}

/// How a page is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Remove it from this host.
    Drop,
    /// Keep a clean read-only copy.
    Downgrade,
}

impl Mode {
    /// Parses `drop` or `downgrade`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "drop" => Some(Mode::Drop),
            "downgrade" => Some(Mode::Downgrade),
            _ => None,
        }
    }

    fn abi(self) -> u32 {
        match self {
            Mode::Drop => inval::DROP,
            Mode::Downgrade => inval::DOWNGRADE,
        }
    }
}

/// What one INVALIDATE handed over.
#[derive(Debug)]
pub struct Taken {
    /// The page's contents (the kernel's copy is clean now, or gone).
    pub data: PageData,
    /// It held data not written back yet.
    pub dirty: bool,
    /// It was granted for writing.
    pub writable: bool,
    /// How long the ioctl took, in nanoseconds.
    pub ioctl_ns: u64,
}

/// Issues invalidations on the registered device.
pub struct Invalidator {
    fd: RawFd,
    pool: Option<Arc<Pool>>,
    export: Arc<Export>,
    /// Scratch slots not in use by an invalidation.
    free: Mutex<Vec<u32>>,
    /// Every size told the kernel (the tests' view of `IOC_SIZE`), and
    /// whether it was a cut.
    #[cfg(test)]
    pub(crate) sizes_told: Mutex<Vec<(u64, u64)>>,
    #[cfg(test)]
    pub(crate) sizes_cut: Mutex<Vec<(u64, u64)>>,
}

impl Invalidator {
    /// An invalidator for the device `fd`, whose pool of `pool_slots`
    /// slots (the last [`SCRATCH_SLOTS`] of them scratch) is `pool`.
    pub fn new(fd: RawFd, pool_slots: u32, pool: Option<Arc<Pool>>, export: Arc<Export>) -> Self {
        let first = pool_slots.saturating_sub(SCRATCH_SLOTS);
        Invalidator {
            fd,
            pool,
            export,
            free: Mutex::new((first..pool_slots).collect()),
            #[cfg(test)]
            sizes_told: Mutex::new(Vec::new()),
            #[cfg(test)]
            sizes_cut: Mutex::new(Vec::new()),
        }
    }

    /// One INVALIDATE (`mode`) of page `index` of file `id` for the page
    /// protocol: what the kernel handed over, or `None` if it does not
    /// have the page. `EAGAIN` if the kernel holds it busy or no scratch
    /// slot is free (try again later); nothing is written anywhere: the
    /// caller answers for the contents.
    pub fn take_page(&self, id: u64, index: u64, mode: Mode) -> Result<Option<Taken>, i32> {
        let Some(pool) = &self.pool else {
            return Err(libc::EIO);
        };
        let slot = self
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or(libc::EAGAIN)?;
        let req = Invalidate {
            file: id,
            index,
            mode: mode.abi(),
            slot,
            ..Invalidate::default()
        };
        let started = Instant::now();
        let res = ioctl_invalidate(self.fd, &req).and_then(|r| {
            let ioctl_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let f = r.flags;
            if f & page_flags::PRESENT == 0 {
                return Ok(None);
            }
            if f & page_flags::CONTENTS == 0 {
                return Err(libc::EIO);
            }
            // SAFETY: scratch slot `slot` is this call's (taken from the
            // free list), and the kernel wrote it only during the ioctl,
            // which has returned.
            let page = unsafe { pool.page(slot) }.ok_or(libc::EIO)?;
            Ok(Some(Taken {
                data: PageData::new(page.to_vec()),
                dirty: f & page_flags::DIRTY != 0,
                writable: f & page_flags::WRITABLE != 0,
                ioctl_ns,
            }))
        });
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot);
        res
    }

    /// Benchmarks only: READ answers at once without reading the page.
    pub fn set_null_read(&self, on: bool) {
        self.export.set_null_read(on);
    }

    /// Tells the kernel that file `file` is `size` bytes long at its owner
    /// (`IOC_SIZE`): a cached inode that is shorter grows to it (none
    /// cached: nothing to do). Never waits for the inode's writers, so the
    /// engine may call it while a writer waits for the engine.
    pub fn set_size(&self, file: u64, size: u64) -> Result<(), String> {
        #[cfg(test)]
        self.sizes_told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((file, size));
        self.size_ioctl(file, size, false)
    }

    /// Tells the kernel that file `file` was cut to exactly `size` bytes
    /// at its owner (`IOC_SIZE` with `WFS_SIZE_CUT`): a cached inode takes
    /// that size, longer or not. Only once no page of it past the new end
    /// is cached here (its owner took them back). Never waits for the
    /// inode's writers, as [`Invalidator::set_size`].
    pub fn cut_size(&self, file: u64, size: u64) -> Result<(), String> {
        #[cfg(test)]
        self.sizes_cut
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((file, size));
        self.size_ioctl(file, size, true)
    }

    /// `IOC_SIZE` of `file` to `size` (`cut`: exactly), its failure said.
    fn size_ioctl(&self, file: u64, size: u64, cut: bool) -> Result<(), String> {
        let what = if cut { "cut to" } else { "to" };
        if self.fd < 0 {
            return Err(format!(
                "IOC_SIZE of file {file:#x} {what} {size}: no device"
            ));
        }
        ioctl_size(self.fd, file, size, cut).map_err(|e| {
            format!(
                "IOC_SIZE of file {file:#x} {what} {size}: {}",
                describe_errno(e)
            )
        })
    }

    /// Makes the kernel forget its cached dentry for `name`.
    pub fn forget(&self, name: &str) -> Result<(), String> {
        self.forget_name(name.as_bytes())
    }

    /// Makes the kernel forget its cached dentry for `name` (any bytes).
    pub fn forget_name(&self, name: &[u8]) -> Result<(), String> {
        ioctl_forget(self.fd, name).map_err(|e| {
            let name = String::from_utf8_lossy(name);
            format!("FORGET of {name:?}: {}", describe_errno(e))
        })
    }
}
