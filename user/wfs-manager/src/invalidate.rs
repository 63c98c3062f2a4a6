//! Taking pages and names away from this host's kernel.
//!
//! `IOC_INVALIDATE` removes a page from the page cache (DROP) or leaves a
//! clean read-only copy (DOWNGRADE), and hands its contents over through
//! one of the pool's scratch slots. A page that was dirty is this host's
//! newest data: the owner (on one host, this manager) writes it home at
//! once. `IOC_FORGET` drops a cached name, so that a file created or
//! removed behind the kernel's back is seen.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wfs_abi::{Invalidate, NO_SLOT, SCRATCH_SLOTS, inval, page_flags};

use crate::device::{describe_errno, ioctl_forget, ioctl_invalidate};
use crate::export::{Export, file_id};
use crate::upcall::Pool;

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

/// How long an invalidation retries a page the kernel keeps busy.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Why one INVALIDATE attempt did not finish.
enum TakeError {
    /// The kernel holds the page for a request: retry.
    Busy,
    /// Anything else, for the operator.
    Failed(String),
}
use TakeError::{Busy, Failed};

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

/// Issues invalidations on the registered device.
pub struct Invalidator {
    fd: RawFd,
    pool: Option<Arc<Pool>>,
    export: Arc<Export>,
    /// Scratch slots not in use by an invalidation.
    free: Mutex<Vec<u32>>,
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
        }
    }

    /// Takes page `index` of file `name` away from the kernel; writes it to
    /// the export if it was dirty.
    pub fn invalidate(&self, name: &str, index: u64, mode: Mode) -> Result<Outcome, String> {
        let id = file_id(name.as_bytes());
        if self.export.getattr(id).is_err() {
            return Err(format!(
                "{name:?} is not exported by this host: pages of other hosts' files move by the page protocol"
            ));
        }
        let slot = match &self.pool {
            Some(_) => self.free.lock().unwrap_or_else(|p| p.into_inner()).pop(),
            None => None,
        };
        let req = Invalidate {
            file: id,
            index,
            mode: mode.abi(),
            slot: slot.unwrap_or(NO_SLOT),
            ..Invalidate::default()
        };
        // The page's lock is held from the ioctl until its data is home. The
        // kernel answers EAGAIN rather than wait for a page a request holds
        // (that request may wait for this lock): let it through and retry.
        let deadline = Instant::now() + BUSY_RETRY;
        let result = loop {
            let guard = self.export.lock_page(id, index);
            match self.take(name, id, index, &req, slot) {
                Err(Busy) if Instant::now() < deadline => {
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(Busy) => {
                    break Err(format!(
                        "page {index} of {name:?} stayed busy for {} s",
                        BUSY_RETRY.as_secs()
                    ));
                }
                Err(Failed(e)) => break Err(e),
                Ok(o) => break Ok(o),
            }
        };
        if let Some(s) = slot {
            self.free.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        }
        result
    }

    /// One INVALIDATE, and the write home of what it brings back; the
    /// caller holds the page's lock.
    fn take(
        &self,
        name: &str,
        id: u64,
        index: u64,
        req: &Invalidate,
        slot: Option<u32>,
    ) -> Result<Outcome, TakeError> {
        let started = Instant::now();
        let res = ioctl_invalidate(self.fd, req);
        let ioctl_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let r = match res {
            Err(libc::EAGAIN) => return Err(Busy),
            Err(e) => {
                return Err(Failed(format!(
                    "INVALIDATE of page {index} of {name:?}: {}",
                    describe_errno(e)
                )));
            }
            Ok(r) => r,
        };
        let f = r.flags;
        let mut out = Outcome {
            present: f & page_flags::PRESENT != 0,
            dirty: f & page_flags::DIRTY != 0,
            writable: f & page_flags::WRITABLE != 0,
            written: false,
            ioctl_ns,
        };
        if !out.dirty {
            return Ok(out);
        }
        // The kernel's copy is clean now: its data is ours to write home.
        let (Some(s), Some(pool), true) = (slot, &self.pool, f & page_flags::CONTENTS != 0) else {
            return Err(Failed(format!(
                "page {index} of {name:?} was dirty but its contents did not come back"
            )));
        };
        // SAFETY: scratch slot `s` is this call's (taken from the free
        // list), and the kernel wrote it only during the ioctl, which has
        // returned.
        let page = unsafe { pool.page(s) }
            .ok_or_else(|| Failed("scratch slot outside the pool".into()))?;
        self.export.write_page(id, index, page).map_err(|e| {
            Failed(format!(
                "dirty page {index} of {name:?} could not be written: {}",
                describe_errno(e)
            ))
        })?;
        out.written = true;
        Ok(out)
    }

    /// One DROP of page `index` of file `id` for the page protocol: the
    /// page's contents and dirty flag, or `None` if this host's kernel does
    /// not have it. `EAGAIN` if the kernel holds it busy or no scratch slot
    /// is free (try again later); nothing is written anywhere: the caller
    /// answers for the contents.
    pub fn take_page(&self, id: u64, index: u64) -> Result<Option<(Vec<u8>, bool)>, i32> {
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
            mode: inval::DROP,
            slot,
            ..Invalidate::default()
        };
        let res = ioctl_invalidate(self.fd, &req).and_then(|r| {
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
            Ok(Some((page.to_vec(), f & page_flags::DIRTY != 0)))
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

    /// Makes the kernel forget its cached dentry for `name`.
    pub fn forget(&self, name: &str) -> Result<(), String> {
        ioctl_forget(self.fd, name.as_bytes())
            .map_err(|e| format!("FORGET of {name:?}: {}", describe_errno(e)))
    }
}
