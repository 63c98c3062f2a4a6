// SPDX-License-Identifier: GPL-2.0

//! The files this host has open, for the manager that counts them.
//!
//! Each open of a regular file is counted by the manager whose session
//! answered its OPEN, and its RELEASE names that session, so that a
//! manager never takes an open it did not count off its counts. A manager
//! that starts (after its predecessor died or restarted) asks for the list
//! of open files ([`abi::IOC_OPENS`]) before it answers any OPEN: the
//! listing *adopts* every open counted here, whichever session answered it,
//! and from then on their RELEASEs name the adopting session.
//!
//! The rule that keeps a count exact: an open is counted here only if no
//! session listed the opens since its OPEN was answered (else the lister
//! never heard of it: the OPEN goes to the current manager again), and a
//! RELEASE names the later of the open's session and the last lister's,
//! taken when the open leaves the count. Both happen under
//! [`super::channel::Channel::state`], as the listing does.

use super::abi::OpenEntry;
use kernel::{
    alloc::KVVec,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
};

/// Open files and their counts of opens.
pub(crate) struct OpenFiles {
    /// Opens per file id (never 0).
    files: RBTree<u64, u32>,
    /// How many files `files` holds.
    len: usize,
    /// The last session that listed the opens: every open counted before
    /// its listing is that session's.
    adopted: u64,
}

/// Room for one more file in [`OpenFiles`], taken before the lock.
pub(crate) type OpenRoom = RBTreeNodeReservation<u64, u32>;

impl OpenFiles {
    /// No file open.
    pub(crate) fn new() -> Self {
        Self {
            files: RBTree::new(),
            len: 0,
            adopted: 0,
        }
    }

    /// Room for one more file (an allocation: before taking the lock).
    pub(crate) fn room() -> Result<OpenRoom> {
        RBTreeNodeReservation::new(GFP_KERNEL)
    }

    /// Counts an open of `file` whose OPEN session `session` answered (0:
    /// none, no manager), in `room` if the file is new here. Returns
    /// `false`, counting nothing, if a session listed the opens since that
    /// answer: the lister does not know this open, so it must be asked
    /// again.
    pub(crate) fn opened(&mut self, file: u64, session: u64, room: OpenRoom) -> bool {
        if session != 0 && session < self.adopted {
            return false;
        }
        match self.files.entry(file) {
            kernel::rbtree::Entry::Occupied(mut o) => {
                let n = o.get_mut();
                *n = n.saturating_add(1);
            }
            kernel::rbtree::Entry::Vacant(v) => {
                v.insert(1, room);
                self.len += 1;
            }
        }
        true
    }

    /// An open of `file` counted by session `session` (0: none) is over.
    /// Returns the session its RELEASE names: the open's, or a later one
    /// that adopted it by listing; 0: no session counts it.
    pub(crate) fn released(&mut self, file: u64, session: u64) -> u64 {
        if let Some(mut o) = self.files.find_mut(&file) {
            if *o.get() > 1 {
                *o.get_mut() -= 1;
            } else {
                o.remove();
                self.len -= 1;
            }
        }
        session.max(self.adopted)
    }

    /// How many files are open.
    pub(crate) fn count(&self) -> usize {
        self.len
    }

    /// Lists the open files into `out` (which has room for all of them:
    /// see [`OpenFiles::count`]) and makes `session` the one that counts
    /// every open counted so far.
    pub(crate) fn list(&mut self, session: u64, out: &mut KVVec<OpenEntry>) -> Result {
        if out.capacity() - out.len() < self.count() {
            return Err(E2BIG);
        }
        for (&file, &count) in self.files.iter() {
            // (Within the capacity: no allocation.)
            out.push(OpenEntry { file, count }, GFP_NOWAIT)?;
        }
        self.adopted = self.adopted.max(session);
        Ok(())
    }
}
