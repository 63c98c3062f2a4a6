//! The lock table a file's owner keeps for `fcntl` and `flock` locks taken
//! on its files from any host (Documentation/fs-plan.md, step 5). Pure:
//! requests in, answers out; the lock service ([`crate::lockserv`]) puts
//! the kernels' LOCK requests to it and answers them, and the engine
//! carries those between the kernels and the owner.
//!
//! The rules are Linux's:
//!
//! * Record locks (POSIX `F_SETLK`/`F_SETLKW`/`F_GETLK`, and OFD locks)
//!   cover byte ranges; two conflict when their ranges overlap, one of
//!   them is a write lock, and their owners differ. POSIX and OFD locks
//!   conflict with each other. `flock` locks cover the whole file and
//!   conflict only with `flock` locks.
//! * A new lock replaces what its owner held on the same bytes (a read
//!   lock becomes a write lock in place, or back), splitting what it cuts
//!   and merging what it touches with the same mode.
//! * A blocked `F_SETLKW` waits in arrival order; each release grants
//!   every waiter that no longer conflicts, oldest first. A POSIX wait
//!   that would close a cycle of owners waiting for each other among this
//!   owner's files is refused (`EDEADLK`); a cycle through another host's
//!   files is broken by the waits' time-out (the mount's), as the kernel
//!   bounds every wait.
//! * A lock owner's locks go when it closes or exits (`release_owner`), a
//!   host's when it is taken for dead (`release_host`); a waiter that gave
//!   up (time-out, fatal signal) is cancelled (`cancel`).
//! * A grant whose kernel had given the request up is undone by
//!   [`Locks::restore`]: the owner gets back exactly what it held on those
//!   bytes before the grant ([`Locks::held_in`] just before an immediate
//!   grant, [`Locks::take_prior`] for a wait granted later), which is what
//!   that kernel, whose request failed, still believes it holds.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::protocol::HostId;

/// What kind of lock, which decides what it conflicts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A POSIX record lock: its owner is a process's file table.
    Posix,
    /// An open file description's record lock.
    Ofd,
    /// A `flock` lock (whole file).
    Flock,
}

impl Kind {
    fn record(self) -> bool {
        self != Kind::Flock
    }
}

/// Who holds or wants a lock: on `host`, the lock owner `id` (the kernel's
/// `fl_owner`: a file table for POSIX, an open file for OFD and `flock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The host it is on.
    pub host: HostId,
    /// Its id on that host.
    pub id: u64,
    /// Its kind of lock.
    pub kind: Kind,
}

/// Shared (read) or exclusive (write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `F_RDLCK`, `LOCK_SH`.
    Read,
    /// `F_WRLCK`, `LOCK_EX`.
    Write,
}

/// Bytes `start..end` of a file (`end` exclusive; `u64::MAX` for "to the
/// end, however far it grows").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// The whole file.
    pub const ALL: Range = Range {
        start: 0,
        end: u64::MAX,
    };

    /// `start..end`, or `None` if empty or reversed.
    pub fn new(start: u64, end: u64) -> Option<Range> {
        (start < end).then_some(Range { start, end })
    }

    fn overlaps(self, o: Range) -> bool {
        self.start < o.end && o.start < self.end
    }

    /// Touching or overlapping: may merge.
    fn touches(self, o: Range) -> bool {
        self.start <= o.end && o.start <= self.end
    }
}

/// One held lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    /// Who holds it.
    pub owner: Owner,
    /// Read or write.
    pub mode: Mode,
    /// Which bytes.
    pub range: Range,
    /// The process that took it, on its host (what `F_GETLK` reports; not
    /// part of the owner: locks merged keep the latest request's).
    pub pid: u32,
}

impl Lock {
    fn conflicts(&self, owner: Owner, mode: Mode, range: Range) -> bool {
        self.owner != owner
            && self.owner.kind.record() == owner.kind.record()
            && (self.mode == Mode::Write || mode == Mode::Write)
            && self.range.overlaps(range)
    }
}

/// The answer to a request for a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Held now.
    Granted,
    /// Another owner holds a conflicting lock and the request does not
    /// wait (`EAGAIN`).
    Busy,
    /// Waiting; [`Locks::granted`] says when.
    Queued,
    /// Waiting would close a cycle of POSIX owners (`EDEADLK`).
    Deadlock,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    ticket: u64,
    lock: Lock,
}

/// What a lock owner held on some bytes: each piece's mode and range.
pub type Prior = Vec<(Mode, Range)>;

#[derive(Debug, Default)]
struct FileLocks {
    held: Vec<Lock>,
    waiting: VecDeque<Waiter>,
    /// Waits granted by [`FileLocks::wake`], by ticket: their lock owner,
    /// and what it held on the granted range before, until
    /// [`Locks::take_prior`] takes it.
    priors: HashMap<u64, (Owner, Prior)>,
}

impl FileLocks {
    /// Nothing held, waiting, or to be taken: the file can go.
    fn is_empty(&self) -> bool {
        self.held.is_empty() && self.waiting.is_empty() && self.priors.is_empty()
    }

    /// `owner`'s locks that overlap `range`, cut to it, in order.
    fn held_in(&self, owner: Owner, range: Range) -> Prior {
        let mut v: Prior = self
            .held
            .iter()
            .filter(|l| l.owner == owner && l.range.overlaps(range))
            .map(|l| {
                let r = Range {
                    start: l.range.start.max(range.start),
                    end: l.range.end.min(range.end),
                };
                (l.mode, r)
            })
            .collect();
        v.sort_by_key(|(_, r)| r.start);
        v
    }

    fn conflict(&self, owner: Owner, mode: Mode, range: Range) -> Option<&Lock> {
        self.held.iter().find(|l| l.conflicts(owner, mode, range))
    }

    /// Takes `range` out of what `owner` holds (splitting locks it cuts).
    fn remove(&mut self, owner: Owner, range: Range) {
        let mut kept = Vec::with_capacity(self.held.len() + 1);
        for l in self.held.drain(..) {
            if l.owner != owner || !l.range.overlaps(range) {
                kept.push(l);
                continue;
            }
            if let Some(r) = Range::new(l.range.start, range.start) {
                kept.push(Lock { range: r, ..l });
            }
            if let Some(r) = Range::new(range.end, l.range.end) {
                kept.push(Lock { range: r, ..l });
            }
        }
        self.held = kept;
    }

    /// Gives `lock` to its owner, in place of what it held on those bytes,
    /// merged with its locks of the same mode that touch it.
    fn install(&mut self, lock: Lock) {
        self.remove(lock.owner, lock.range);
        let mut merged = lock;
        self.held.retain(|l| {
            let joins =
                l.owner == lock.owner && l.mode == lock.mode && l.range.touches(merged.range);
            if joins {
                merged.range = Range {
                    start: merged.range.start.min(l.range.start),
                    end: merged.range.end.max(l.range.end),
                };
            }
            !joins
        });
        self.held.push(merged);
    }

    /// Grants, oldest first, every waiter nothing held conflicts with,
    /// keeping what its owner held on those bytes before (its prior, for
    /// [`Locks::take_prior`]).
    fn wake(&mut self, out: &mut Vec<u64>) {
        let mut still = VecDeque::with_capacity(self.waiting.len());
        while let Some(w) = self.waiting.pop_front() {
            if self
                .conflict(w.lock.owner, w.lock.mode, w.lock.range)
                .is_some()
            {
                still.push_back(w);
            } else {
                let prior = self.held_in(w.lock.owner, w.lock.range);
                self.priors.insert(w.ticket, (w.lock.owner, prior));
                self.install(w.lock);
                out.push(w.ticket);
            }
        }
        self.waiting = still;
    }
}

/// The locks on the files this host owns.
#[derive(Debug, Default)]
pub struct Locks {
    files: HashMap<u64, FileLocks>,
    /// Waits granted by a [`Locks::set`] (a `flock` conversion that waits
    /// lets go of the old lock first), for [`Locks::take_granted`].
    granted: Vec<u64>,
}

/// `range`, or the whole file for a `flock` lock (which always covers
/// it).
fn range_of(owner: Owner, range: Range) -> Range {
    if owner.kind == Kind::Flock {
        Range::ALL
    } else {
        range
    }
}

impl Locks {
    /// Asks for `mode` on `range` of `file` for `owner`, by process `pid`
    /// of its host; `wait` is `F_SETLKW` (`ticket` then names the wait). A
    /// `flock` request always covers the whole file.
    pub fn set(
        &mut self,
        file: u64,
        owner: Owner,
        mode: Mode,
        range: Range,
        pid: u32,
        wait: Option<u64>,
    ) -> Answer {
        let range = range_of(owner, range);
        let lock = Lock {
            owner,
            mode,
            range,
            pid,
        };
        let f = self.files.entry(file).or_default();
        let Some(holder) = f.conflict(owner, mode, range).map(|l| l.owner) else {
            f.install(lock);
            return Answer::Granted;
        };
        let Some(ticket) = wait else {
            return Answer::Busy;
        };
        if owner.kind == Kind::Posix && self.waits_for(holder, owner) {
            return Answer::Deadlock;
        }
        let f = self.files.entry(file).or_default();
        if owner.kind == Kind::Flock {
            // A `flock` conversion that must wait lets go of the lock it
            // converts first, as Linux's does: two holders of a shared
            // lock that both ask for it exclusive would otherwise wait for
            // each other.
            f.remove(owner, Range::ALL);
            f.wake(&mut self.granted);
        }
        f.waiting.push_back(Waiter { ticket, lock });
        Answer::Queued
    }

    /// The waits the last [`Locks::set`] granted (a `flock` conversion
    /// queued behind others lets go of its old lock, which may grant
    /// them).
    pub fn take_granted(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.granted)
    }

    /// `F_GETLK`: a lock that would conflict with `mode` on `range` for
    /// `owner`, if any.
    pub fn get(&self, file: u64, owner: Owner, mode: Mode, range: Range) -> Option<Lock> {
        let range = range_of(owner, range);
        self.files
            .get(&file)
            .and_then(|f| f.conflict(owner, mode, range).copied())
    }

    /// `F_UNLCK` of `range` (`flock`'s `LOCK_UN`: the whole file). Returns
    /// the tickets of the waits this grants.
    pub fn unlock(&mut self, file: u64, owner: Owner, range: Range) -> Vec<u64> {
        let range = range_of(owner, range);
        let mut out = Vec::new();
        if let Some(f) = self.files.get_mut(&file) {
            f.remove(owner, range);
            f.wake(&mut out);
        }
        self.tidy(file);
        out
    }

    /// What `owner` holds on `range` of `file` (`flock`: the whole file):
    /// its locks that overlap it, cut to it, in order. Taken just before an
    /// immediate grant, it is what [`Locks::restore`] gives back if the
    /// grant is undone.
    pub fn held_in(&self, file: u64, owner: Owner, range: Range) -> Prior {
        let range = range_of(owner, range);
        self.files
            .get(&file)
            .map_or_else(Vec::new, |f| f.held_in(owner, range))
    }

    /// What the lock owner of wait `ticket` held on its range before that
    /// wait was granted, forgotten here. A prior is kept for each wait this
    /// table grants (the tickets [`Locks::unlock`], [`Locks::cancel`],
    /// [`Locks::restore`], the releases and [`Locks::take_granted`]
    /// return), and only for those: the caller takes it for every such
    /// ticket as it answers it, so that none accumulate (a cancel of that
    /// ticket or a release of its owner drops it too). Empty if there is
    /// none.
    pub fn take_prior(&mut self, file: u64, ticket: u64) -> Prior {
        let prior = self
            .files
            .get_mut(&file)
            .and_then(|f| f.priors.remove(&ticket))
            .map(|(_, p)| p)
            .unwrap_or_default();
        self.tidy(file);
        prior
    }

    /// Undoes a grant of `range` of `file` to `owner` (its kernel gave the
    /// request up): in one step, `range` goes from what `owner` holds and
    /// each piece of `prior` (what it held there before the grant, from
    /// [`Locks::held_in`] or [`Locks::take_prior`]; cut to `range`) comes
    /// back, with the pid of the lock it replaces (0 if none); then waiters
    /// are granted (returned, as by [`Locks::unlock`]). With an empty
    /// `prior` this is [`Locks::unlock`].
    ///
    /// Until the undo `owner` held all of `range`, so nobody else holds a
    /// write lock there; but after a grant of a read lock others may have
    /// shared it, and a write lock of `prior` that would now conflict comes
    /// back as a read lock (a piece that would conflict even so, which the
    /// table's rules rule out, is left out): the table never holds two
    /// conflicting locks.
    pub fn restore(
        &mut self,
        file: u64,
        owner: Owner,
        range: Range,
        prior: &[(Mode, Range)],
    ) -> Vec<u64> {
        let range = range_of(owner, range);
        let mut out = Vec::new();
        let f = self.files.entry(file).or_default();
        let pieces: Vec<Lock> = prior
            .iter()
            .filter_map(|&(mode, r)| {
                let r = Range::new(r.start.max(range.start), r.end.min(range.end))?;
                let pid = f
                    .held
                    .iter()
                    .find(|l| l.owner == owner && l.range.overlaps(r))
                    .map_or(0, |l| l.pid);
                Some(Lock {
                    owner,
                    mode,
                    range: r,
                    pid,
                })
            })
            .collect();
        f.remove(owner, range);
        for mut l in pieces {
            if l.mode == Mode::Write && f.conflict(owner, Mode::Write, l.range).is_some() {
                l.mode = Mode::Read;
            }
            if f.conflict(owner, l.mode, l.range).is_none() {
                f.install(l);
            }
        }
        f.wake(&mut out);
        self.tidy(file);
        out
    }

    /// A wait given up (its time-out, a fatal signal): forgotten (and its
    /// prior, were it granted and not taken). Returns the waits this grants
    /// (none today: waiters never block waiters, but the engine need not
    /// know that).
    pub fn cancel(&mut self, file: u64, ticket: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if let Some(f) = self.files.get_mut(&file) {
            f.waiting.retain(|w| w.ticket != ticket);
            f.priors.remove(&ticket);
            f.wake(&mut out);
        }
        self.tidy(file);
        out
    }

    /// Every lock and wait of `owner` on every file goes (it closed the
    /// file, or exited). Returns the waits this grants.
    pub fn release_owner(&mut self, owner: Owner) -> Vec<u64> {
        self.release(|o| o == owner)
    }

    /// Every lock and wait of host `host` goes (it was taken for dead).
    /// Returns the waits this grants.
    pub fn release_host(&mut self, host: HostId) -> Vec<u64> {
        self.release(|o| o.host == host)
    }

    /// How many locks the lock owners of host `host` hold, on every file.
    pub fn held_by_host(&self, host: HostId) -> usize {
        self.files
            .values()
            .map(|f| f.held.iter().filter(|l| l.owner.host == host).count())
            .sum()
    }

    /// How many locks are held on `file` (for tests and the status).
    pub fn held(&self, file: u64) -> usize {
        self.files.get(&file).map_or(0, |f| f.held.len())
    }

    /// How many requests wait on `file` (for tests and the status).
    pub fn waiting(&self, file: u64) -> usize {
        self.files.get(&file).map_or(0, |f| f.waiting.len())
    }

    fn release(&mut self, gone: impl Fn(Owner) -> bool) -> Vec<u64> {
        let mut out = Vec::new();
        for f in self.files.values_mut() {
            f.held.retain(|l| !gone(l.owner));
            f.waiting.retain(|w| !gone(w.lock.owner));
            f.priors.retain(|_, (o, _)| !gone(*o));
            f.wake(&mut out);
        }
        self.files.retain(|_, f| !f.is_empty());
        out
    }

    fn tidy(&mut self, file: u64) {
        if self.files.get(&file).is_some_and(FileLocks::is_empty) {
            self.files.remove(&file);
        }
    }

    /// Whether `from` waits, directly or through other owners' waits, for
    /// a lock `to` holds (POSIX owners, on this host's files).
    fn waits_for(&self, from: Owner, to: Owner) -> bool {
        let mut seen = HashSet::new();
        let mut next = vec![from];
        while let Some(o) = next.pop() {
            if o == to {
                return true;
            }
            if !seen.insert(o) {
                continue;
            }
            for f in self.files.values() {
                for w in f.waiting.iter().filter(|w| w.lock.owner == o) {
                    next.extend(
                        f.held
                            .iter()
                            .filter(|l| l.conflicts(o, w.lock.mode, w.lock.range))
                            .map(|l| l.owner),
                    );
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(host: HostId, id: u64, kind: Kind) -> Owner {
        Owner { host, id, kind }
    }

    fn posix(host: HostId, id: u64) -> Owner {
        owner(host, id, Kind::Posix)
    }

    /// The pid every test request comes from (checked where it matters).
    const PID: u32 = 4242;

    fn r(start: u64, end: u64) -> Range {
        Range::new(start, end).expect("range")
    }

    #[test]
    fn read_locks_share_and_write_locks_exclude() {
        let mut t = Locks::default();
        let (a, b) = (posix(1, 1), posix(2, 1));
        assert_eq!(
            t.set(7, a, Mode::Read, r(0, 10), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(7, b, Mode::Read, r(5, 15), PID, None),
            Answer::Granted
        );
        assert_eq!(t.set(7, b, Mode::Write, r(5, 15), PID, None), Answer::Busy);
        // Not overlapping: no conflict; another file: none either.
        assert_eq!(
            t.set(7, b, Mode::Write, r(10, 20), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(8, b, Mode::Write, r(0, 10), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.get(7, a, Mode::Write, r(12, 13)).map(|l| l.owner),
            Some(b)
        );
        assert_eq!(t.get(7, b, Mode::Write, r(12, 13)), None);
        assert_eq!(Range::new(3, 3), None);
    }

    #[test]
    fn a_new_lock_replaces_splits_and_merges_its_owners_own() {
        let mut t = Locks::default();
        let a = posix(1, 1);
        assert_eq!(
            t.set(1, a, Mode::Read, r(0, 100), PID, None),
            Answer::Granted
        );
        // A write lock in the middle splits the read lock in three.
        assert_eq!(
            t.set(1, a, Mode::Write, r(40, 60), PID, None),
            Answer::Granted
        );
        assert_eq!(t.held(1), 3);
        let b = posix(2, 9);
        assert_eq!(
            t.get(1, b, Mode::Read, r(50, 51)).map(|l| l.mode),
            Some(Mode::Write)
        );
        assert_eq!(
            t.set(1, b, Mode::Read, r(0, 40), PID, None),
            Answer::Granted
        );
        // Back to read: the three merge into one.
        assert_eq!(
            t.set(1, a, Mode::Read, r(40, 60), PID, None),
            Answer::Granted
        );
        assert_eq!(t.held(1), 2);
        // Unlocking a hole splits it again; the hole is free for b.
        assert!(t.unlock(1, a, r(10, 20)).is_empty());
        assert_eq!(
            t.set(1, b, Mode::Write, r(10, 20), PID, None),
            Answer::Granted
        );
        assert_eq!(t.set(1, b, Mode::Write, r(9, 20), PID, None), Answer::Busy);
    }

    #[test]
    fn posix_and_ofd_conflict_flock_is_apart() {
        let mut t = Locks::default();
        let p = posix(1, 1);
        let o = owner(1, 2, Kind::Ofd);
        let f = owner(2, 3, Kind::Flock);
        let g = owner(3, 3, Kind::Flock);
        assert_eq!(
            t.set(1, p, Mode::Write, r(0, 1), PID, None),
            Answer::Granted
        );
        assert_eq!(t.set(1, o, Mode::Read, r(0, 1), PID, None), Answer::Busy);
        // flock ignores record locks, and covers the whole file.
        assert_eq!(
            t.set(1, f, Mode::Write, r(5, 6), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(1, g, Mode::Read, r(900, 901), PID, None),
            Answer::Busy
        );
        assert_eq!(t.unlock(1, f, r(0, 1)), Vec::<u64>::new());
        assert_eq!(
            t.set(1, g, Mode::Read, Range::ALL, PID, None),
            Answer::Granted
        );
    }

    #[test]
    fn waiters_are_granted_in_order_when_the_holder_lets_go() {
        let mut t = Locks::default();
        let (a, b, c) = (posix(1, 1), posix(2, 1), posix(3, 1));
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 10), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(1, b, Mode::Write, r(0, 5), PID, Some(100)),
            Answer::Queued
        );
        assert_eq!(
            t.set(1, c, Mode::Read, r(3, 4), PID, Some(101)),
            Answer::Queued
        );
        // b first; c still conflicts with b's write lock.
        assert_eq!(t.unlock(1, a, Range::ALL), vec![100]);
        assert_eq!(t.unlock(1, b, r(0, 5)), vec![101]);
        // A waiter that gave up is forgotten.
        assert_eq!(
            t.set(1, a, Mode::Write, r(3, 4), PID, Some(102)),
            Answer::Queued
        );
        assert!(t.cancel(1, 102).is_empty());
        assert!(t.unlock(1, c, Range::ALL).is_empty());
        assert_eq!(t.held(1), 0);
    }

    #[test]
    fn a_wait_that_would_deadlock_is_refused() {
        let mut t = Locks::default();
        let (a, b, c) = (posix(1, 1), posix(2, 1), posix(3, 1));
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 1), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(2, b, Mode::Write, r(0, 1), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(3, c, Mode::Write, r(0, 1), PID, None),
            Answer::Granted
        );
        // a waits for b, b for c: c waiting for a closes the cycle.
        assert_eq!(
            t.set(2, a, Mode::Write, r(0, 1), PID, Some(1)),
            Answer::Queued
        );
        assert_eq!(
            t.set(3, b, Mode::Write, r(0, 1), PID, Some(2)),
            Answer::Queued
        );
        assert_eq!(
            t.set(1, c, Mode::Read, r(0, 1), PID, Some(3)),
            Answer::Deadlock
        );
        // OFD locks are not checked (as in Linux): that wait just queues.
        let o = owner(3, 9, Kind::Ofd);
        assert_eq!(
            t.set(1, o, Mode::Read, r(0, 1), PID, Some(4)),
            Answer::Queued
        );
    }

    #[test]
    fn a_lock_keeps_the_pid_that_took_it_through_splits_merges_and_waits() {
        let mut t = Locks::default();
        let (a, b) = (posix(1, 1), posix(2, 1));
        let pid_of = |t: &Locks, at: u64| t.get(1, b, Mode::Write, r(at, at + 1)).map(|l| l.pid);
        assert_eq!(
            t.set(1, a, Mode::Read, r(0, 10), 100, None),
            Answer::Granted
        );
        assert_eq!(pid_of(&t, 5), Some(100));
        // Cut in two: both halves keep it.
        assert!(t.unlock(1, a, r(4, 6)).is_empty());
        assert_eq!((pid_of(&t, 0), pid_of(&t, 9)), (Some(100), Some(100)));
        // Merged with a newer request of the same owner: the newer pid.
        assert_eq!(t.set(1, a, Mode::Read, r(4, 6), 101, None), Answer::Granted);
        assert_eq!(t.held(1), 1);
        assert_eq!(pid_of(&t, 0), Some(101));
        // A waiter's pid goes with the lock it is granted.
        assert_eq!(
            t.set(1, b, Mode::Write, r(0, 1), 200, Some(9)),
            Answer::Queued
        );
        assert_eq!(t.waiting(1), 1);
        assert_eq!(t.unlock(1, a, Range::ALL), vec![9]);
        assert_eq!(t.waiting(1), 0);
        assert_eq!(
            t.get(1, a, Mode::Read, r(0, 1)).map(|l| (l.owner, l.pid)),
            Some((b, 200))
        );
    }

    /// Random requests on a 64-byte file by four owners, checked byte by
    /// byte against a model that keeps, per byte, each owner's mode.
    #[test]
    fn random_requests_agree_with_a_byte_model() {
        let owners: Vec<Owner> = (0..4).map(|i| posix(i % 2, u64::from(i))).collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut t = Locks::default();
            // model[byte][owner]: None, or the mode held.
            let mut model = [[None::<Mode>; 4]; 64];
            for _ in 0..60 {
                let o = next(4) as usize;
                let a = next(64);
                let b = a + 1 + next(64 - a);
                let range = r(a, b);
                let mode = if next(2) == 0 {
                    Mode::Read
                } else {
                    Mode::Write
                };
                let bytes = a as usize..b as usize;
                if next(4) == 0 {
                    t.unlock(1, owners[o], range);
                    for m in &mut model[bytes] {
                        m[o] = None;
                    }
                    continue;
                }
                let conflict = model[bytes.clone()].iter().any(|m| {
                    (0..4).any(|x| {
                        x != o && m[x].is_some_and(|h| h == Mode::Write || mode == Mode::Write)
                    })
                });
                let got = t.set(1, owners[o], mode, range, PID, None);
                assert_eq!(got == Answer::Busy, conflict, "{mode:?} {range:?} by {o}");
                assert_eq!(t.get(1, owners[o], mode, range).is_some(), conflict);
                if !conflict {
                    for m in &mut model[bytes] {
                        m[o] = Some(mode);
                    }
                }
                // Same-mode neighbours are merged: never two touching.
                let f = &t.files[&1];
                for (i, x) in f.held.iter().enumerate() {
                    for y in &f.held[i + 1..] {
                        assert!(
                            !(x.owner == y.owner && x.mode == y.mode && x.range.touches(y.range)),
                            "unmerged {x:?} {y:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_owner_or_a_dead_host_takes_its_locks_and_waits_along() {
        let mut t = Locks::default();
        let (a, a2, b) = (posix(1, 1), posix(1, 2), posix(2, 1));
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 10), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(2, a2, Mode::Read, r(0, 10), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(1, b, Mode::Read, r(0, 1), PID, Some(7)),
            Answer::Queued
        );
        assert_eq!(
            t.set(2, b, Mode::Write, r(0, 1), PID, Some(8)),
            Answer::Queued
        );
        assert_eq!(t.release_owner(a), vec![7]);
        assert_eq!(t.release_host(1), vec![8]);
        assert_eq!(t.held(1) + t.held(2), 2);
        assert_eq!(t.release_host(2), Vec::<u64>::new());
        assert!(t.files.is_empty());
    }

    #[test]
    fn a_flock_conversion_that_waits_lets_go_of_the_old_lock_first() {
        const F: u64 = 7;
        let mut l = Locks::default();
        let a = Owner {
            host: 1,
            id: 1,
            kind: Kind::Flock,
        };
        let b = Owner { id: 2, ..a };
        assert_eq!(
            l.set(F, a, Mode::Read, Range::ALL, 10, None),
            Answer::Granted
        );
        assert_eq!(
            l.set(F, b, Mode::Read, Range::ALL, 20, None),
            Answer::Granted
        );
        // Not waiting: refused, and the shared lock stays.
        assert_eq!(l.set(F, a, Mode::Write, Range::ALL, 10, None), Answer::Busy);
        assert_eq!(l.held(F), 2);
        // Both convert, waiting: the first lets go of its shared lock and
        // queues behind the second's; the second then holds the only lock
        // and converts at once (as on Linux, where nothing queues ahead of
        // a `flock` request either), and its release grants the first.
        // Without letting go, each would wait for the other.
        assert_eq!(
            l.set(F, a, Mode::Write, Range::ALL, 10, Some(1)),
            Answer::Queued
        );
        assert!(l.take_granted().is_empty());
        assert_eq!(l.held(F), 1);
        assert_eq!(
            l.set(F, b, Mode::Write, Range::ALL, 20, Some(2)),
            Answer::Granted
        );
        assert_eq!(l.unlock(F, b, Range::ALL), vec![1]);
        assert_eq!(
            l.get(F, b, Mode::Read, Range::ALL).map(|k| k.owner),
            Some(a)
        );
        // A shared holder converting behind a queued exclusive waiter lets
        // go, which grants that waiter.
        assert_eq!(l.unlock(F, a, Range::ALL), Vec::<u64>::new());
        assert_eq!(
            l.set(F, a, Mode::Read, Range::ALL, 10, None),
            Answer::Granted
        );
        assert_eq!(
            l.set(F, b, Mode::Write, Range::ALL, 20, Some(4)),
            Answer::Queued
        );
        let c = Owner { id: 3, ..a };
        assert_eq!(
            l.set(F, c, Mode::Read, Range::ALL, 30, None),
            Answer::Granted
        );
        assert_eq!(
            l.set(F, a, Mode::Write, Range::ALL, 10, Some(5)),
            Answer::Queued
        );
        assert!(l.take_granted().is_empty(), "c still holds a shared lock");
        assert_eq!(l.unlock(F, c, Range::ALL), vec![4]);
        assert_eq!(l.unlock(F, b, Range::ALL), vec![5]);
        l.unlock(F, a, Range::ALL);
        // Record locks convert in place, as before: no letting go.
        let p = Owner {
            kind: Kind::Posix,
            ..a
        };
        let q = Owner { id: 2, ..p };
        assert_eq!(
            l.set(F, p, Mode::Read, Range::ALL, 10, None),
            Answer::Granted
        );
        assert_eq!(
            l.set(F, q, Mode::Read, Range::ALL, 20, None),
            Answer::Granted
        );
        assert_eq!(
            l.set(F, p, Mode::Write, Range::ALL, 10, Some(3)),
            Answer::Queued
        );
        assert!(l.take_granted().is_empty());
        assert_eq!(
            l.get(F, q, Mode::Write, Range::ALL).map(|k| k.owner),
            Some(p)
        );
    }

    /// Every lock on `file`, in a stable order (to compare tables).
    fn locks_on(t: &Locks, file: u64) -> Vec<(u64, u64, Mode, u64, u64, u32)> {
        let mut v: Vec<_> = t.files.get(&file).map_or_else(Vec::new, |f| {
            f.held
                .iter()
                .map(|l| {
                    let o = l.owner;
                    (
                        u64::from(o.host),
                        o.id,
                        l.mode,
                        l.range.start,
                        l.range.end,
                        l.pid,
                    )
                })
                .collect()
        });
        v.sort_by_key(|&(h, id, _, s, _, _)| (h, id, s));
        v
    }

    #[test]
    fn an_upgrade_wait_refused_after_its_grant_gives_the_read_lock_back() {
        let mut t = Locks::default();
        let (a, b, c) = (posix(1, 1), posix(2, 1), posix(3, 1));
        assert_eq!(
            t.set(1, a, Mode::Read, r(0, 100), 10, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(1, b, Mode::Read, r(0, 100), 20, None),
            Answer::Granted
        );
        // a asks to upgrade, waiting for b; c waits for a write lock too.
        assert_eq!(t.held_in(1, a, r(50, 200)), vec![(Mode::Read, r(50, 100))]);
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 100), 11, Some(1)),
            Answer::Queued
        );
        assert_eq!(
            t.set(1, c, Mode::Write, r(0, 100), 30, Some(2)),
            Answer::Queued
        );
        // b lets go: a is upgraded (c now waits for a's write lock), and
        // what a held before is kept for its undo.
        assert_eq!(t.unlock(1, b, Range::ALL), vec![1]);
        assert_eq!(t.take_prior(1, 1), vec![(Mode::Read, r(0, 100))]);
        assert_eq!(t.take_prior(1, 1), Vec::new(), "taken once");
        // a's kernel gave the wait up: its read lock comes back, as its
        // kernel still believes, and c waits on.
        assert!(
            t.restore(1, a, r(0, 100), &[(Mode::Read, r(0, 100))])
                .is_empty()
        );
        assert_eq!(t.waiting(1), 1);
        assert_eq!(
            t.get(1, c, Mode::Write, r(0, 1))
                .map(|l| (l.owner, l.mode, l.range, l.pid)),
            Some((a, Mode::Read, r(0, 100), 11))
        );
        assert_eq!(
            t.set(1, b, Mode::Read, r(0, 100), 20, None),
            Answer::Granted
        );
        assert_eq!(t.set(1, b, Mode::Write, r(0, 1), 20, None), Answer::Busy);
        // Once a and b let go, c is granted.
        assert!(t.unlock(1, b, Range::ALL).is_empty());
        assert_eq!(t.unlock(1, a, Range::ALL), vec![2]);
        assert_eq!(t.take_prior(1, 2), Vec::new());

        // An upgrade of the middle of a read lock, undone: the read lock is
        // whole again (merged), not three pieces.
        let mut t = Locks::default();
        assert_eq!(
            t.set(1, a, Mode::Read, r(0, 200), 10, None),
            Answer::Granted
        );
        let prior = t.held_in(1, a, r(50, 100));
        assert_eq!(prior, vec![(Mode::Read, r(50, 100))]);
        assert_eq!(
            t.set(1, a, Mode::Write, r(50, 100), 11, None),
            Answer::Granted
        );
        assert_eq!(t.held(1), 3);
        assert!(t.restore(1, a, r(50, 100), &prior).is_empty());
        assert_eq!(locks_on(&t, 1), vec![(1, 1, Mode::Read, 0, 200, 11)]);
        // A prior piece outside the range is cut to it.
        assert!(
            t.restore(1, a, r(0, 10), &[(Mode::Write, r(0, 500))])
                .is_empty()
        );
        assert_eq!(
            locks_on(&t, 1),
            vec![
                (1, 1, Mode::Write, 0, 10, 11),
                (1, 1, Mode::Read, 10, 200, 11)
            ]
        );
    }

    #[test]
    fn a_write_lock_given_back_where_others_share_now_comes_back_read() {
        let mut t = Locks::default();
        let (a, b) = (posix(1, 1), posix(2, 1));
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 10), 10, None),
            Answer::Granted
        );
        let prior = t.held_in(1, a, r(0, 10));
        // Downgraded; b shares it before the downgrade is undone.
        assert_eq!(t.set(1, a, Mode::Read, r(0, 10), 10, None), Answer::Granted);
        assert_eq!(t.set(1, b, Mode::Read, r(5, 6), 20, None), Answer::Granted);
        assert!(t.restore(1, a, r(0, 10), &prior).is_empty());
        assert_eq!(
            locks_on(&t, 1),
            vec![(1, 1, Mode::Read, 0, 10, 10), (2, 1, Mode::Read, 5, 6, 20)]
        );
    }

    #[test]
    fn restoring_nothing_is_unlocking() {
        let (a, b, f) = (posix(1, 1), posix(2, 1), owner(1, 3, Kind::Flock));
        let setup = || {
            let mut t = Locks::default();
            assert_eq!(t.set(1, a, Mode::Read, r(0, 10), 1, None), Answer::Granted);
            assert_eq!(
                t.set(1, a, Mode::Write, r(20, 30), 1, None),
                Answer::Granted
            );
            assert_eq!(
                t.set(1, f, Mode::Write, Range::ALL, 1, None),
                Answer::Granted
            );
            assert_eq!(
                t.set(1, b, Mode::Write, r(5, 6), 2, Some(7)),
                Answer::Queued
            );
            assert_eq!(
                t.set(1, b, Mode::Read, r(25, 26), 2, Some(8)),
                Answer::Queued
            );
            t
        };
        for (o, range) in [
            (a, r(0, 10)),
            (a, r(4, 25)),
            (a, r(40, 50)),
            (a, Range::ALL),
            (b, r(0, 1)),
            (f, r(3, 4)),
        ] {
            let (mut u, mut v) = (setup(), setup());
            assert_eq!(
                u.unlock(1, o, range),
                v.restore(1, o, range, &[]),
                "{o:?} {range:?}"
            );
            assert_eq!(locks_on(&u, 1), locks_on(&v, 1));
            assert_eq!(u.waiting(1), v.waiting(1));
            // And on a file with no locks at all, nothing is left behind.
            assert!(v.restore(2, o, range, &[]).is_empty());
            assert!(!v.files.contains_key(&2));
        }
    }

    #[test]
    fn priors_are_kept_for_granted_waits_only_and_do_not_pile_up() {
        let mut t = Locks::default();
        let (a, b, c) = (posix(1, 1), posix(2, 1), posix(3, 1));
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 10), PID, None),
            Answer::Granted
        );
        // Immediate grants and queued waits keep nothing.
        assert_eq!(
            t.set(1, b, Mode::Read, r(20, 30), PID, None),
            Answer::Granted
        );
        assert_eq!(
            t.set(1, b, Mode::Write, r(0, 30), PID, Some(1)),
            Answer::Queued
        );
        assert_eq!(
            t.set(1, c, Mode::Read, r(0, 1), PID, Some(2)),
            Answer::Queued
        );
        assert!(t.files[&1].priors.is_empty());
        // A cancelled wait leaves none.
        assert!(t.cancel(1, 2).is_empty());
        assert!(t.files[&1].priors.is_empty());
        // A granted one does until taken.
        assert_eq!(t.unlock(1, a, Range::ALL), vec![1]);
        assert_eq!(t.files[&1].priors.len(), 1);
        assert_eq!(t.take_prior(1, 1), vec![(Mode::Read, r(20, 30))]);
        assert!(t.files[&1].priors.is_empty());
        // One not taken goes with a cancel of its ticket, or with its owner.
        assert_eq!(
            t.set(1, c, Mode::Read, r(0, 1), PID, Some(3)),
            Answer::Queued
        );
        assert_eq!(t.unlock(1, b, r(0, 1)), vec![3]);
        assert!(t.cancel(1, 3).is_empty());
        assert!(t.files[&1].priors.is_empty());
        assert_eq!(
            t.set(1, a, Mode::Write, r(0, 1), PID, Some(4)),
            Answer::Queued
        );
        assert_eq!(t.release_owner(c), vec![4]);
        assert_eq!(t.files[&1].priors.len(), 1);
        assert!(t.release_owner(a).is_empty());
        assert!(t.files[&1].priors.is_empty());
        // Many waits granted and taken in turn: nothing is left.
        assert_eq!(
            t.set(1, b, Mode::Write, r(0, 1), PID, None),
            Answer::Granted
        );
        for i in 10..100 {
            let o = posix(4, i);
            assert_eq!(
                t.set(1, o, Mode::Write, r(0, 1), PID, Some(i)),
                Answer::Queued
            );
            assert_eq!(t.release_owner(b), vec![i]);
            assert_eq!(t.take_prior(1, i), Vec::new());
            assert!(t.restore(1, o, r(0, 1), &[]).is_empty());
            assert_eq!(
                t.set(1, b, Mode::Write, r(0, 1), PID, None),
                Answer::Granted
            );
        }
        assert!(t.files[&1].priors.is_empty());
        assert!(t.release_owner(b).is_empty());
        assert!(t.files.is_empty());
    }

    /// Random requests as in the byte-model test; each grant is undone at
    /// random with what its owner held before, which must leave every
    /// byte as it was.
    #[test]
    fn a_grant_undone_with_its_prior_leaves_every_byte_as_it_was() {
        let owners: Vec<Owner> = (0..4).map(|i| posix(i % 2, u64::from(i))).collect();
        let bytes_of = |t: &Locks| {
            let mut m = [[None::<Mode>; 4]; 64];
            for l in t.files.get(&1).map_or(&[][..], |f| &f.held[..]) {
                let o = owners.iter().position(|&o| o == l.owner).expect("owner");
                for b in l.range.start..l.range.end.min(64) {
                    m[b as usize][o] = Some(l.mode);
                }
            }
            m
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut t = Locks::default();
            for _ in 0..60 {
                let o = owners[next(4) as usize];
                let a = next(64);
                let range = r(a, a + 1 + next(64 - a));
                let mode = if next(2) == 0 {
                    Mode::Read
                } else {
                    Mode::Write
                };
                let before = bytes_of(&t);
                let prior = t.held_in(1, o, range);
                if t.set(1, o, mode, range, PID, None) == Answer::Granted && next(2) == 0 {
                    assert!(t.restore(1, o, range, &prior).is_empty());
                    assert_eq!(bytes_of(&t), before, "{mode:?} {range:?} by {o:?}");
                }
                let f = t.files.get(&1);
                for (i, x) in f.map_or(&[][..], |f| &f.held[..]).iter().enumerate() {
                    for y in &f.map_or(&[][..], |f| &f.held[..])[i + 1..] {
                        assert!(
                            !(x.owner == y.owner && x.range.overlaps(y.range)),
                            "overlapping {x:?} {y:?}"
                        );
                        assert!(
                            !(x.owner == y.owner && x.mode == y.mode && x.range.touches(y.range)),
                            "unmerged {x:?} {y:?}"
                        );
                    }
                }
            }
        }
    }
}
