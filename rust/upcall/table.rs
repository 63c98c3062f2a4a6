// SPDX-License-Identifier: GPL-2.0

//! The table of outstanding upcall requests.
//!
//! Pure bookkeeping, no locking and no waiting: the channel wraps it in a
//! lock and pairs it with a wait queue. Keeping it pure lets KUnit test every
//! transition directly.
//!
//! A request id is `(seq << SLOT_BITS) | slot`: the slot gives O(1) lookup of
//! a reply, and the sequence number (which never repeats within a table's
//! lifetime) makes a reply to a finished, timed-out or never-sent request
//! recognisable as stale instead of completing whoever reuses the slot.
//!
//! Entry life cycle:
//!
//! ```text
//!   Free --insert--> Pending --complete--> Done --take--> Free
//!                      |  \--expire/fail/fail_all--> Failed --take--> Free
//!                      \--cancel--> Free
//! ```

/// Bits of a request id that hold the slot number.
pub(crate) const SLOT_BITS: u32 = 8;
/// Most entries a table can hold.
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<R> {
    /// Still waiting for the manager.
    Pending,
    /// The manager answered.
    Done(R),
    /// Failed locally with this (positive) errno: time-out, manager gone.
    Failed(i32),
}

/// Why a table operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableError {
    /// No free entry.
    Full,
    /// The id names no pending request (never sent, already answered,
    /// timed out, or cancelled).
    Unknown,
}

#[derive(Clone, Copy)]
enum State<R> {
    Free,
    Pending,
    Done(R),
    Failed(i32),
}

#[derive(Clone, Copy)]
struct Entry<R> {
    id: u64,
    deadline: u64,
    state: State<R>,
}

impl<R> Entry<R> {
    const FREE: Self = Entry {
        id: 0,
        deadline: 0,
        state: State::Free,
    };
}

/// A table of at most `N` outstanding requests with replies of type `R`.
pub(crate) struct Table<R: Copy, const N: usize> {
    entries: [Entry<R>; N],
    seq: u64,
    pending: usize,
    used: usize,
}

/// Returns whether time `now` is at or past `deadline`, on a wrapping clock
/// such as jiffies.
pub(crate) fn time_reached(now: u64, deadline: u64) -> bool {
    (now.wrapping_sub(deadline) as i64) >= 0
}

impl<R: Copy, const N: usize> Table<R, N> {
    const MASK: u64 = (1 << SLOT_BITS) - 1;
    /// Checked at compile time: ids have room for `N` slots.
    const SIZE_OK: () = assert!(N > 0 && N <= MAX_SLOTS);

    /// An empty table, by value: for small tables only, as it lives on the
    /// stack until moved. Large ones use [`Table::init`].
    pub(crate) const fn new() -> Self {
        let () = Self::SIZE_OK;
        Self {
            entries: [Entry::FREE; N],
            seq: 0,
            pending: 0,
            used: 0,
        }
    }

    /// Initialises an empty table in place.
    pub(crate) fn init() -> impl Init<Self> {
        let () = Self::SIZE_OK;
        init!(Self {
            entries <- init_array_from_fn::<_, N, _, core::convert::Infallible>(|_| Entry::FREE),
            seq: 0,
            pending: 0,
            used: 0,
        })
    }

    /// Requests waiting for an answer.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Entries in use (pending, or finished but not yet taken).
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn slot_of(&self, id: u64) -> Option<usize> {
        let slot = (id & Self::MASK) as usize;
        match self.entries.get(slot) {
            Some(e) if e.id == id && !matches!(e.state, State::Free) => Some(slot),
            _ => None,
        }
    }

    /// Adds a pending request that times out at `deadline` and returns its id.
    pub(crate) fn insert(&mut self, deadline: u64) -> Result<u64, TableError> {
        let slot = self
            .entries
            .iter()
            .position(|e| matches!(e.state, State::Free))
            .ok_or(TableError::Full)?;
        self.seq = self.seq.wrapping_add(1);
        let id = (self.seq << SLOT_BITS) | slot as u64;
        self.entries[slot] = Entry {
            id,
            deadline,
            state: State::Pending,
        };
        self.pending += 1;
        self.used += 1;
        Ok(id)
    }

    fn finish(&mut self, id: u64, state: State<R>) -> Result<(), TableError> {
        let slot = self.slot_of(id).ok_or(TableError::Unknown)?;
        let e = &mut self.entries[slot];
        if !matches!(e.state, State::Pending) {
            return Err(TableError::Unknown);
        }
        e.state = state;
        self.pending -= 1;
        Ok(())
    }

    /// Records the manager's answer to pending request `id`.
    pub(crate) fn complete(&mut self, id: u64, reply: R) -> Result<(), TableError> {
        self.finish(id, State::Done(reply))
    }

    /// Fails pending request `id` with `errno`.
    pub(crate) fn fail(&mut self, id: u64, errno: i32) -> Result<(), TableError> {
        self.finish(id, State::Failed(errno))
    }

    /// Returns whether `id` is a pending request.
    pub(crate) fn is_pending(&self, id: u64) -> bool {
        self.slot_of(id)
            .is_some_and(|s| matches!(self.entries[s].state, State::Pending))
    }

    /// Collects the outcome of `id`. A finished request is removed; a pending
    /// one stays. `None` if `id` is not in the table.
    pub(crate) fn take(&mut self, id: u64) -> Option<Outcome<R>> {
        let slot = self.slot_of(id)?;
        let e = &mut self.entries[slot];
        let out = match e.state {
            State::Free => return None,
            State::Pending => return Some(Outcome::Pending),
            State::Done(r) => Outcome::Done(r),
            State::Failed(errno) => Outcome::Failed(errno),
        };
        e.state = State::Free;
        self.used -= 1;
        Some(out)
    }

    /// Removes `id` whatever its state (the waiter gave up, e.g. on a
    /// signal). A later reply to it is then refused as unknown.
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        let e = &mut self.entries[slot];
        if matches!(e.state, State::Pending) {
            self.pending -= 1;
        }
        e.state = State::Free;
        self.used -= 1;
        true
    }

    /// Fails every pending request whose deadline is reached at `now` with
    /// `ETIMEDOUT`, and returns how many.
    pub(crate) fn expire(&mut self, now: u64, errno: i32) -> usize {
        let mut n = 0;
        for e in self.entries.iter_mut() {
            if matches!(e.state, State::Pending) && time_reached(now, e.deadline) {
                e.state = State::Failed(errno);
                n += 1;
            }
        }
        self.pending -= n;
        n
    }

    /// Fails every pending request with `errno` (the manager went away) and
    /// returns how many.
    pub(crate) fn fail_all(&mut self, errno: i32) -> usize {
        let mut n = 0;
        for e in self.entries.iter_mut() {
            if matches!(e.state, State::Pending) {
                e.state = State::Failed(errno);
                n += 1;
            }
        }
        self.pending -= n;
        n
    }

    /// The earliest deadline of a pending request, if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, State::Pending))
            .map(|e| e.deadline)
            .reduce(|a, b| if time_reached(a, b) { b } else { a })
    }
}

impl<R: Copy, const N: usize> Default for Table<R, N> {
    fn default() -> Self {
        Self::new()
    }
}

use kernel::{init::init_array_from_fn, prelude::*};
