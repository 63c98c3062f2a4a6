//! The lock service: `fcntl` (POSIX and OFD) and `flock` locks, each
//! decided by its file's owner (Documentation/fs-plan.md, step 5), between
//! this host's kernel, the lock table of the files this host owns
//! ([`crate::locks`]) and the other hosts' managers. Pure: the engine hands
//! it the kernel's LOCK requests, the peers' lock messages, the kernel's
//! refusals of its answers, peers' deaths and the time, and carries out
//! what it answers ([`LockOut`]).
//!
//! * A request for a file this host owns goes to its table at once (the
//!   lock owner being this host and the kernel's owner id); one for a file
//!   another host owns is asked of that owner ([`LockMsg::Ask`]), which
//!   answers ([`LockMsg::Answer`]) from its table, at once or, for a wait,
//!   when the lock is granted.
//! * A grant the kernel refuses (it gave the request up: its time-out, a
//!   fatal signal) is undone: the owner gives that lock owner back exactly
//!   what it held on those bytes before the grant (its prior: the table's
//!   [`Locks::held_in`] just before an immediate grant, or
//!   [`Locks::take_prior`] for a wait granted later), at once here or by an
//!   unlock carrying the prior asked of the owner. That is what the kernel,
//!   whose request failed, still believes it holds (a read lock whose
//!   upgrade was given up stays a read lock, as POSIX has it); so an owner
//!   never keeps a lock that no kernel mirrors (a kernel unlocks at close
//!   and exit only what it holds), nor drops one a kernel still mirrors.
//! * Nothing waits for ever: a wait queued at the owner is cancelled after
//!   the engine's deadline and answered `ENOLCK`; a request asked of
//!   another host is answered `ENOLCK` a little after that deadline, or as
//!   soon as the owner is taken for dead. A host taken for dead (a restart
//!   is one) loses its locks and waits at every owner, which grants the
//!   waits they blocked.
//! * `F_GETLK` reports the holder's pid as Linux does for a lock held
//!   elsewhere: positive when the holder is on the asking host, negated
//!   when it is on another, -1 for an OFD lock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wfs_abi::{LOCK_END_MAX, LockArgs, LockCmd, LockInfo, LockKind, LockMode, errno};

use crate::locks::{Answer, Kind, Lock, Locks, Mode, Owner, Prior, Range};
use crate::protocol::HostId;

/// How much longer than the owner's deadline a request asked of it waits
/// for its answer before this host answers its kernel `ENOLCK` itself: the
/// owner's own `ENOLCK` (or grant) normally comes first.
pub const ASK_MARGIN: Duration = Duration::from_secs(5);

/// What a lock request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `F_GETLK`: which lock, if any, conflicts with this mode.
    Get(Mode),
    /// `F_SETLK`, `LOCK_NB`: take the lock now, or `EAGAIN`.
    Set(Mode),
    /// `F_SETLKW`, `flock` without `LOCK_NB`: take it, waiting if need be.
    Wait(Mode),
    /// `F_UNLCK`, `LOCK_UN`.
    Unlock,
}

/// A held lock as the owner describes it to another host (`F_GETLK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The host its lock owner is on.
    pub host: HostId,
    /// Its kind.
    pub kind: Kind,
    /// Read or write.
    pub mode: Mode,
    /// Its bytes.
    pub range: Range,
    /// The process that took it, on `host`.
    pub pid: u32,
}

impl Holder {
    fn of(l: &Lock) -> Holder {
        Holder {
            host: l.owner.host,
            kind: l.owner.kind,
            mode: l.mode,
            range: l.range,
            pid: l.pid,
        }
    }
}

/// A message about locks between two managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockMsg {
    /// The sender's kernel asks `op` on `range` of `file`, which this host
    /// owns, for its lock owner `owner` (of kind `kind`), by process `pid`.
    Ask {
        /// Names the answer.
        id: u64,
        /// The file.
        file: u64,
        /// The lock owner's id on the sender.
        owner: u64,
        /// The kind of lock.
        kind: Kind,
        /// What to do.
        op: Op,
        /// Which bytes.
        range: Range,
        /// The asking process.
        pid: u32,
        /// How long the asking kernel waits for the answer, in
        /// milliseconds: a wait still queued after it is given up.
        wait_ms: u32,
        /// Empty, but for the `Unlock` that undoes a grant the asking
        /// kernel refused: what the lock owner held on `range` before that
        /// grant, which the owner gives it back in the same step
        /// ([`Locks::restore`]; an ordinary unlock restores nothing).
        /// Ignored with any other `op`.
        prior: Prior,
    },
    /// The owner's answer to `Ask` `id`: done (a `Get`: the conflicting
    /// lock, if any), or an errno.
    Answer {
        /// The `Ask`'s id.
        id: u64,
        /// The outcome.
        result: Result<Option<Holder>, i32>,
        /// Empty, but for a grant: what the lock owner held on the range
        /// before it, for the asker's [`Undo`] should its kernel refuse
        /// the grant.
        prior: Prior,
    },
}

/// A successful answer to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Taken or released.
    Done,
    /// A `Get`'s answer ([`LockInfo::NONE`] when nothing conflicts).
    Info(LockInfo),
}

/// A grant, to be undone if the kernel refuses its answer
/// ([`LockService::refused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    /// The file's owner, whose table holds the lock.
    pub at: HostId,
    /// The file.
    pub file: u64,
    /// The lock owner's id on this host.
    pub owner: u64,
    /// Its kind of lock.
    pub kind: Kind,
    /// The bytes granted.
    pub range: Range,
    /// What the lock owner held on `range` before the grant (mode and
    /// bytes of each piece), which the undo gives it back: what its kernel,
    /// whose request failed, still believes it holds.
    pub prior: Prior,
}

/// What the lock service asks the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOut {
    /// Answer the kernel's LOCK request `req`, read at `started`. If the
    /// kernel refuses a grant (`undo`), hand it back with
    /// [`LockService::refused`].
    Reply {
        /// The kernel's request id.
        req: u64,
        /// When it was read.
        started: Instant,
        /// The answer.
        result: Result<Answered, i32>,
        /// For a grant: how to undo it.
        undo: Option<Undo>,
    },
    /// Send `msg` to host `to`.
    Send {
        /// The peer.
        to: HostId,
        /// The message.
        msg: LockMsg,
    },
    /// A request waits in this owner's table (for the counters).
    Queued,
    /// Host `host` was taken for dead and the `locks` its lock owners held
    /// on this host's files went (for the log: processes there that still
    /// believe they hold them are no longer excluded).
    Dropped {
        /// The host.
        host: HostId,
        /// How many locks.
        locks: usize,
    },
}

/// Who waits for a decision of this owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// This host's kernel, request `req`.
    Kernel { req: u64, started: Instant },
    /// Another host's manager, `Ask` `id`.
    Peer { host: HostId, id: u64 },
}

/// What the owner decided.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A `Get`'s answer.
    Got(Option<Holder>),
    /// Taken; what the lock owner held on those bytes before (to undo it).
    Granted(Prior),
    /// Released.
    Unlocked,
    /// Refused with an errno.
    Failed(i32),
}

/// A request queued in this owner's table.
#[derive(Debug, Clone, Copy)]
struct Wait {
    file: u64,
    owner: Owner,
    range: Range,
    since: Instant,
    /// When the kernel that asked gives the wait up.
    until: Instant,
    who: Who,
}

/// A kernel request asked of another host.
#[derive(Debug, Clone, Copy)]
struct Asking {
    req: u64,
    started: Instant,
    /// The file's owner, asked.
    at: HostId,
    file: u64,
    owner: u64,
    kind: Kind,
    op: Op,
    range: Range,
    /// How long the kernel waits for the answer.
    bound: Duration,
    /// The kernel was answered already (`ENOLCK`, the answer was late): a
    /// grant that still comes is undone.
    told: bool,
}

/// This host's side of the lock service; see the module documentation.
#[derive(Debug)]
pub struct LockService {
    me: HostId,
    /// The locks on the files this host owns.
    table: Locks,
    /// Requests waiting in `table`, by ticket.
    waits: HashMap<u64, Wait>,
    next_ticket: u64,
    /// Requests of this host's kernel asked of other owners, by `Ask` id.
    asks: HashMap<u64, Asking>,
    next_id: u64,
}

impl LockService {
    /// The service of host `me`, with no locks.
    pub fn new(me: HostId) -> LockService {
        LockService {
            me,
            table: Locks::default(),
            waits: HashMap::new(),
            next_ticket: 0,
            asks: HashMap::new(),
            next_id: 0,
        }
    }

    /// The kernel's LOCK request `req` (`a`, read at `started`) about a
    /// file owned by `at`; `at_gone`: that owner is taken for dead (or was
    /// never heard of).
    pub fn kernel(
        &mut self,
        req: u64,
        started: Instant,
        a: &LockArgs,
        at: HostId,
        at_gone: bool,
    ) -> Vec<LockOut> {
        let (Some(op), Some(range)) = (op_of(a), range_from_abi(a.start, a.end)) else {
            return vec![reply(req, started, Err(errno::EINVAL), None)];
        };
        let kind = kind_of(a.kind);
        let bound = Duration::from_millis(u64::from(a.wait_ms));
        if at == self.me {
            let owner = Owner {
                host: self.me,
                id: a.owner,
                kind,
            };
            let who = Who::Kernel { req, started };
            let lock = (a.file, owner, range);
            return self.decide(lock, op, &[], a.pid, who, (started, bound));
        }
        if at_gone {
            // Its locks went with it: an unlock has nothing left to do.
            let result = if op == Op::Unlock {
                Ok(Answered::Done)
            } else {
                Err(errno::ENOLCK)
            };
            return vec![reply(req, started, result, None)];
        }
        self.next_id += 1;
        let id = self.next_id;
        self.asks.insert(
            id,
            Asking {
                req,
                started,
                at,
                file: a.file,
                owner: a.owner,
                kind,
                op,
                range,
                bound,
                told: false,
            },
        );
        let msg = LockMsg::Ask {
            id,
            file: a.file,
            owner: a.owner,
            kind,
            op,
            range,
            pid: a.pid,
            wait_ms: a.wait_ms,
            prior: Vec::new(),
        };
        vec![LockOut::Send { to: at, msg }]
    }

    /// A lock message from host `from`, at `now`. An `Ask` must be about
    /// a file this host owns (the engine refuses the others).
    pub fn message(&mut self, from: HostId, msg: LockMsg, now: Instant) -> Vec<LockOut> {
        match msg {
            LockMsg::Ask {
                id,
                file,
                owner,
                kind,
                op,
                range,
                pid,
                wait_ms,
                prior,
            } => {
                let owner = Owner {
                    host: from,
                    id: owner,
                    kind,
                };
                let who = Who::Peer { host: from, id };
                let bound = Duration::from_millis(u64::from(wait_ms));
                let lock = (file, owner, range);
                self.decide(lock, op, &prior, pid, who, (now, bound))
            }
            LockMsg::Answer { id, result, prior } => self.answered(from, id, result, prior),
        }
    }

    /// The kernel refused the grant `u` (it had given the request up): the
    /// lock owner gets back what it held on those bytes before the grant
    /// (`u.prior`, what that kernel still believes it holds), here or at
    /// the file's owner.
    pub fn refused(&mut self, u: Undo) -> Vec<LockOut> {
        if u.at == self.me {
            let owner = Owner {
                host: self.me,
                id: u.owner,
                kind: u.kind,
            };
            let granted = self.table.restore(u.file, owner, u.range, &u.prior);
            let mut out = Vec::new();
            self.serve(granted, &mut out);
            return out;
        }
        // (Nobody waits for its answer: it is not recorded, and ignored.)
        self.next_id += 1;
        let msg = LockMsg::Ask {
            id: self.next_id,
            file: u.file,
            owner: u.owner,
            kind: u.kind,
            op: Op::Unlock,
            range: u.range,
            pid: 0,
            wait_ms: 0,
            prior: u.prior,
        };
        vec![LockOut::Send { to: u.at, msg }]
    }

    /// Host `host` is taken for dead (its manager is gone, or restarted):
    /// its locks and waits on this host's files go, which may grant others;
    /// this host's requests asked of it are answered (`ENOLCK`; an unlock
    /// is done: the lock went with the owner).
    pub fn host_gone(&mut self, host: HostId) -> Vec<LockOut> {
        let mut out = Vec::new();
        if host == self.me {
            return out;
        }
        self.waits.retain(|_, w| w.owner.host != host);
        let locks = self.table.held_by_host(host);
        if locks > 0 {
            out.push(LockOut::Dropped { host, locks });
        }
        let granted = self.table.release_host(host);
        self.serve(granted, &mut out);
        for id in sorted(self.asks.iter().filter(|(_, a)| a.at == host)) {
            let Some(a) = self.asks.remove(&id) else {
                continue;
            };
            if a.told {
                continue;
            }
            let result = if a.op == Op::Unlock {
                Ok(Answered::Done)
            } else {
                Err(errno::ENOLCK)
            };
            out.push(reply(a.req, a.started, result, None));
        }
        out
    }

    /// At `now`: waits queued in this owner's table past their asker's
    /// time-out, or for `deadline` or longer, are cancelled and answered
    /// `ENOLCK` (the kernel gave them up); requests asked of another host
    /// and unanswered for their time-out (at most `deadline`) plus
    /// [`ASK_MARGIN`] are answered `ENOLCK` (their owner's late grant is
    /// undone when it comes), and forgotten after twice that.
    pub fn expire(&mut self, now: Instant, deadline: Duration) -> Vec<LockOut> {
        let mut out = Vec::new();
        let old = |since: Instant, after: Duration| now.saturating_duration_since(since) >= after;
        let late = |w: &Wait| now >= w.until || old(w.since, deadline);
        for ticket in sorted(self.waits.iter().filter(|(_, w)| late(w))) {
            let Some(w) = self.waits.remove(&ticket) else {
                continue;
            };
            let granted = self.table.cancel(w.file, ticket);
            self.answer(
                w.who,
                Outcome::Failed(errno::ENOLCK),
                (w.file, w.owner, w.range),
                &mut out,
            );
            self.serve(granted, &mut out);
        }
        let answer_by = |a: &Asking| a.bound.min(deadline) + ASK_MARGIN;
        let forget_by = |a: &Asking| 2 * a.bound.min(deadline) + ASK_MARGIN;
        for id in sorted(
            self.asks
                .iter()
                .filter(|(_, a)| old(a.started, answer_by(a))),
        ) {
            let Some(a) = self.asks.get_mut(&id) else {
                continue;
            };
            if old(a.started, forget_by(a)) {
                self.asks.remove(&id);
            } else if !a.told {
                a.told = true;
                out.push(reply(a.req, a.started, Err(errno::ENOLCK), None));
            }
        }
        out
    }

    /// How many locks are held on `file` in this owner's table.
    pub fn held(&self, file: u64) -> usize {
        self.table.held(file)
    }

    /// How many requests wait in this owner's table.
    pub fn waiting(&self) -> usize {
        self.waits.len()
    }

    /// How many requests of this host's kernel wait for another owner
    /// (those already answered `ENOLCK` included).
    pub fn asking(&self) -> usize {
        self.asks.len()
    }

    /// Puts `op` by lock owner `owner` (process `pid`) on `range` of `file`
    /// (`lock`) to this owner's table, for `who`, at `now`; a wait is given
    /// up `bound` after it. An unlock gives `owner` back `prior` on those
    /// bytes in the same step (the undo of a grant its kernel refused).
    fn decide(
        &mut self,
        lock: (u64, Owner, Range),
        op: Op,
        prior: &[(Mode, Range)],
        pid: u32,
        who: Who,
        (now, bound): (Instant, Duration),
    ) -> Vec<LockOut> {
        let mut out = Vec::new();
        let (file, owner, range) = lock;
        let outcome = match op {
            Op::Get(mode) => Outcome::Got(
                self.table
                    .get(file, owner, mode, range)
                    .map(|l| Holder::of(&l)),
            ),
            Op::Unlock => {
                let granted = self.table.restore(file, owner, range, prior);
                self.answer(who, Outcome::Unlocked, lock, &mut out);
                self.serve(granted, &mut out);
                return out;
            }
            Op::Set(mode) | Op::Wait(mode) => {
                let ticket = matches!(op, Op::Wait(_)).then(|| {
                    self.next_ticket += 1;
                    self.next_ticket
                });
                // What the lock owner holds there now, should its kernel
                // refuse a grant.
                let before = self.table.held_in(file, owner, range);
                let answer = self.table.set(file, owner, mode, range, pid, ticket);
                let granted = self.table.take_granted();
                self.serve(granted, &mut out);
                match answer {
                    Answer::Granted => Outcome::Granted(before),
                    Answer::Busy => Outcome::Failed(errno::EAGAIN),
                    Answer::Deadlock => Outcome::Failed(errno::EDEADLK),
                    Answer::Queued => {
                        if let Some(ticket) = ticket {
                            let since = now;
                            self.waits.insert(
                                ticket,
                                Wait {
                                    file,
                                    owner,
                                    range,
                                    since,
                                    until: since + bound,
                                    who,
                                },
                            );
                        }
                        out.push(LockOut::Queued);
                        return out;
                    }
                }
            }
        };
        self.answer(who, outcome, lock, &mut out);
        out
    }

    /// Answers the waits `granted` (tickets) granted, each with what its
    /// lock owner held before (taken from the table, which keeps it until
    /// then).
    fn serve(&mut self, granted: Vec<u64>, out: &mut Vec<LockOut>) {
        for ticket in granted {
            if let Some(w) = self.waits.remove(&ticket) {
                let prior = self.table.take_prior(w.file, ticket);
                let lock = (w.file, w.owner, w.range);
                self.answer(w.who, Outcome::Granted(prior), lock, out);
            }
        }
    }

    /// Tells `who` this owner's `outcome` about `lock` (file, lock owner,
    /// range).
    fn answer(
        &self,
        who: Who,
        outcome: Outcome,
        lock: (u64, Owner, Range),
        out: &mut Vec<LockOut>,
    ) {
        let (file, owner, range) = lock;
        match who {
            Who::Kernel { req, started } => {
                let undo = match &outcome {
                    Outcome::Granted(prior) => Some(Undo {
                        at: self.me,
                        file,
                        owner: owner.id,
                        kind: owner.kind,
                        range,
                        prior: prior.clone(),
                    }),
                    _ => None,
                };
                out.push(reply(req, started, self.kernel_result(outcome), undo));
            }
            Who::Peer { host, id } => {
                let (result, prior) = match outcome {
                    Outcome::Got(h) => (Ok(h), Vec::new()),
                    Outcome::Granted(prior) => (Ok(None), prior),
                    Outcome::Unlocked => (Ok(None), Vec::new()),
                    Outcome::Failed(e) => (Err(e), Vec::new()),
                };
                out.push(LockOut::Send {
                    to: host,
                    msg: LockMsg::Answer { id, result, prior },
                });
            }
        }
    }

    /// `outcome` as this host's kernel is answered.
    fn kernel_result(&self, outcome: Outcome) -> Result<Answered, i32> {
        match outcome {
            Outcome::Got(h) => Ok(Answered::Info(
                h.map_or(LockInfo::NONE, |h| lock_info(&h, self.me)),
            )),
            Outcome::Granted(_) | Outcome::Unlocked => Ok(Answered::Done),
            Outcome::Failed(e) => Err(e),
        }
    }

    /// The owner `from` answered `Ask` `id` (a grant: with what the lock
    /// owner held on those bytes before, `prior`).
    fn answered(
        &mut self,
        from: HostId,
        id: u64,
        result: Result<Option<Holder>, i32>,
        prior: Prior,
    ) -> Vec<LockOut> {
        // (Not asked of that host, an undo's, or forgotten: nobody waits.)
        if self.asks.get(&id).is_none_or(|a| a.at != from) {
            return Vec::new();
        }
        let Some(a) = self.asks.remove(&id) else {
            return Vec::new();
        };
        let outcome = match (a.op, result) {
            // (The kernel takes errnos 1 to MAX_REPLY_ERRNO only.)
            (_, Err(e)) if (1..=wfs_abi::MAX_REPLY_ERRNO).contains(&e) => Outcome::Failed(e),
            (_, Err(_)) => Outcome::Failed(errno::ENOLCK),
            (Op::Get(_), Ok(h)) => Outcome::Got(h),
            (Op::Unlock, Ok(_)) => Outcome::Unlocked,
            (Op::Set(_) | Op::Wait(_), Ok(_)) => Outcome::Granted(prior),
        };
        let undo = match &outcome {
            Outcome::Granted(prior) => Some(Undo {
                at: from,
                file: a.file,
                owner: a.owner,
                kind: a.kind,
                range: a.range,
                prior: prior.clone(),
            }),
            _ => None,
        };
        if a.told {
            // Answered ENOLCK already: a late grant is undone, what the
            // lock owner held before coming back (its kernel, told the
            // request failed, still believes it holds that).
            return undo.map(|u| self.refused(u)).unwrap_or_default();
        }
        vec![reply(a.req, a.started, self.kernel_result(outcome), undo)]
    }
}

fn reply(req: u64, started: Instant, result: Result<Answered, i32>, undo: Option<Undo>) -> LockOut {
    LockOut::Reply {
        req,
        started,
        result,
        undo,
    }
}

/// The keys of `items`, in order (answers go out in a stable order).
fn sorted<'a, V: 'a>(items: impl Iterator<Item = (&'a u64, &'a V)>) -> Vec<u64> {
    let mut keys: Vec<u64> = items.map(|(&k, _)| k).collect();
    keys.sort_unstable();
    keys
}

/// A LOCK request's kind of lock.
pub fn kind_of(k: LockKind) -> Kind {
    match k {
        LockKind::Posix => Kind::Posix,
        LockKind::Ofd => Kind::Ofd,
        LockKind::Flock => Kind::Flock,
    }
}

/// What a LOCK request does (`None`: a `Get` of "unlock", which the ABI
/// refuses).
pub fn op_of(a: &LockArgs) -> Option<Op> {
    let mode = match a.mode {
        LockMode::Read => Mode::Read,
        LockMode::Write => Mode::Write,
        LockMode::Unlock if a.cmd == LockCmd::Get => return None,
        LockMode::Unlock => return Some(Op::Unlock),
    };
    Some(match a.cmd {
        LockCmd::Get => Op::Get(mode),
        LockCmd::Set => Op::Set(mode),
        LockCmd::Wait => Op::Wait(mode),
    })
}

/// The ABI's bytes `start..=end` (`end` at most [`LOCK_END_MAX`], which
/// means "to the end of the file, however far it grows") as a table's
/// range (that end is `u64::MAX`, as in [`Range::ALL`]); `None` if empty
/// or past [`LOCK_END_MAX`].
pub fn range_from_abi(start: u64, end: u64) -> Option<Range> {
    if start > end || end > LOCK_END_MAX {
        return None;
    }
    let end = if end == LOCK_END_MAX {
        u64::MAX
    } else {
        end + 1
    };
    Range::new(start, end)
}

/// A table's range as the ABI's first and last byte (the inverse of
/// [`range_from_abi`]; a range past [`LOCK_END_MAX`] is cut there).
pub fn range_to_abi(r: Range) -> (u64, u64) {
    let end = if r.end == u64::MAX {
        LOCK_END_MAX
    } else {
        r.end.saturating_sub(1).min(LOCK_END_MAX)
    };
    (r.start.min(end), end)
}

/// Whether `r` is a range the ABI can carry (what a peer may send).
pub fn valid_range(r: Range) -> bool {
    let (start, end) = range_to_abi(r);
    range_from_abi(start, end) == Some(r)
}

/// The `F_GETLK` answer describing `h` to a kernel on host `asking`.
pub fn lock_info(h: &Holder, asking: HostId) -> LockInfo {
    let (start, end) = range_to_abi(h.range);
    let pid = i32::try_from(h.pid).unwrap_or(i32::MAX);
    let pid = match h.kind {
        Kind::Ofd => -1,
        _ if h.host == asking => pid,
        _ => -pid,
    };
    LockInfo {
        mode: match h.mode {
            Mode::Read => LockMode::Read,
            Mode::Write => LockMode::Write,
        },
        start,
        end,
        pid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 7;
    const A: HostId = 1;
    const B: HostId = 2;
    const C: HostId = 3;

    fn args(owner: u64, cmd: LockCmd, mode: LockMode, start: u64, end: u64) -> LockArgs {
        LockArgs {
            file: F,
            owner,
            start,
            end,
            pid: 500 + owner as u32,
            wait_ms: 30_000,
            kind: LockKind::Posix,
            cmd,
            mode,
        }
    }

    fn replies(out: &[LockOut]) -> Vec<(u64, Result<Answered, i32>)> {
        out.iter()
            .filter_map(|o| match o {
                LockOut::Reply { req, result, .. } => Some((*req, *result)),
                _ => None,
            })
            .collect()
    }

    /// Hosts whose messages are delivered in order, one at a time, until
    /// none is left; kernels that take every answer unless told to refuse.
    struct Net {
        hosts: Vec<LockService>,
        now: Instant,
        /// Answers each kernel took: (host, req, result).
        taken: Vec<(HostId, u64, Result<Answered, i32>)>,
        /// Requests whose kernel gave up: their answers are refused.
        gave_up: Vec<(HostId, u64)>,
        queued: usize,
    }

    impl Net {
        fn new(n: u16) -> Net {
            Net {
                hosts: (0..n).map(LockService::new).collect(),
                now: Instant::now(),
                taken: Vec::new(),
                gave_up: Vec::new(),
                queued: 0,
            }
        }

        /// Carries out `out` of host `h`, and everything it causes.
        fn run(&mut self, h: HostId, out: Vec<LockOut>) {
            let mut todo: Vec<(HostId, LockOut)> = out.into_iter().map(|o| (h, o)).collect();
            todo.reverse();
            while let Some((h, o)) = todo.pop() {
                let more = match o {
                    LockOut::Reply {
                        req, result, undo, ..
                    } => {
                        if self.gave_up.contains(&(h, req)) {
                            undo.map(|u| self.hosts[h as usize].refused(u))
                                .unwrap_or_default()
                        } else {
                            self.taken.push((h, req, result));
                            Vec::new()
                        }
                    }
                    LockOut::Send { to, msg } => {
                        let now = self.now;
                        let out = self.hosts[to as usize].message(h, msg, now);
                        let mut v: Vec<(HostId, LockOut)> =
                            out.into_iter().map(|o| (to, o)).collect();
                        v.reverse();
                        todo.extend(v);
                        continue;
                    }
                    LockOut::Dropped { .. } => Vec::new(),
                    LockOut::Queued => {
                        self.queued += 1;
                        Vec::new()
                    }
                };
                let mut v: Vec<(HostId, LockOut)> = more.into_iter().map(|o| (h, o)).collect();
                v.reverse();
                todo.extend(v);
            }
        }

        /// Host `h`'s kernel asks `a` as request `req` of file `F`'s owner
        /// `at`.
        fn ask(&mut self, h: HostId, req: u64, a: LockArgs, at: HostId) {
            let now = self.now;
            let out = self.hosts[h as usize].kernel(req, now, &a, at, false);
            self.run(h, out);
        }

        fn answer(&mut self, h: HostId, req: u64) -> Option<Result<Answered, i32>> {
            self.taken
                .iter()
                .find(|(x, r, _)| (*x, *r) == (h, req))
                .map(|(_, _, res)| *res)
        }
    }

    const DONE: Option<Result<Answered, i32>> = Some(Ok(Answered::Done));

    #[test]
    fn ranges_convert_both_ways_and_to_the_end_means_all() {
        assert_eq!(range_from_abi(0, LOCK_END_MAX), Some(Range::ALL));
        assert_eq!(range_from_abi(5, 5), Range::new(5, 6));
        assert_eq!(range_from_abi(6, 5), None);
        assert_eq!(range_from_abi(0, LOCK_END_MAX + 1), None);
        for (s, e) in [
            (0, 0),
            (3, 9),
            (0, LOCK_END_MAX - 1),
            (9, LOCK_END_MAX),
            (LOCK_END_MAX, LOCK_END_MAX),
        ] {
            let r = range_from_abi(s, e).expect("range");
            assert_eq!(range_to_abi(r), (s, e));
            assert!(valid_range(r));
        }
        // What no kernel can ask for is not taken from a peer either.
        assert!(!valid_range(Range {
            start: 0,
            end: LOCK_END_MAX + 1
        }));
        assert!(!valid_range(Range {
            start: LOCK_END_MAX + 1,
            end: u64::MAX
        }));
    }

    #[test]
    fn getlk_reports_pids_as_linux_does_for_locks_held_elsewhere() {
        let h = |host, kind| Holder {
            host,
            kind,
            mode: Mode::Write,
            range: Range::ALL,
            pid: 77,
        };
        let i = lock_info(&h(A, Kind::Posix), A);
        assert_eq!(
            (i.mode, i.start, i.end, i.pid),
            (LockMode::Write, 0, LOCK_END_MAX, 77)
        );
        assert_eq!(lock_info(&h(B, Kind::Posix), A).pid, -77);
        assert_eq!(lock_info(&h(A, Kind::Ofd), A).pid, -1);
        assert_eq!(lock_info(&h(B, Kind::Ofd), A).pid, -1);
    }

    #[test]
    fn local_requests_are_decided_at_once_and_waits_when_granted() {
        let mut n = Net::new(3);
        // Host 0 owns the file; its own kernel's owners 1 and 2.
        n.ask(0, 1, args(1, LockCmd::Set, LockMode::Write, 0, 9), 0);
        assert_eq!(n.answer(0, 1), DONE);
        n.ask(0, 2, args(2, LockCmd::Set, LockMode::Read, 5, 5), 0);
        assert_eq!(n.answer(0, 2), Some(Err(errno::EAGAIN)));
        n.ask(0, 3, args(2, LockCmd::Get, LockMode::Read, 5, 5), 0);
        let info = LockInfo {
            mode: LockMode::Write,
            start: 0,
            end: 9,
            pid: 501,
        };
        assert_eq!(n.answer(0, 3), Some(Ok(Answered::Info(info))));
        n.ask(0, 4, args(2, LockCmd::Wait, LockMode::Read, 5, 5), 0);
        assert_eq!((n.answer(0, 4), n.queued), (None, 1));
        n.ask(
            0,
            5,
            args(1, LockCmd::Set, LockMode::Unlock, 0, LOCK_END_MAX),
            0,
        );
        assert_eq!((n.answer(0, 5), n.answer(0, 4)), (DONE, DONE));
        n.ask(0, 6, args(1, LockCmd::Get, LockMode::Write, 0, 100), 0);
        assert_eq!(
            n.answer(0, 6).map(|r| r.map(|a| match a {
                Answered::Info(i) => i.pid,
                Answered::Done => 0,
            })),
            Some(Ok(502))
        );
        // A Get of "unlock" is nonsense.
        n.ask(0, 7, args(1, LockCmd::Get, LockMode::Unlock, 0, 1), 0);
        assert_eq!(n.answer(0, 7), Some(Err(errno::EINVAL)));
    }

    #[test]
    fn two_hosts_contend_for_a_lock_at_a_third_that_owns_the_file() {
        let mut n = Net::new(3);
        // Host 0 owns the file; hosts 1 and 2 ask for it.
        n.ask(
            1,
            10,
            args(1, LockCmd::Set, LockMode::Write, 0, LOCK_END_MAX),
            0,
        );
        assert_eq!(n.answer(1, 10), DONE);
        n.ask(2, 20, args(1, LockCmd::Set, LockMode::Read, 0, 0), 0);
        assert_eq!(n.answer(2, 20), Some(Err(errno::EAGAIN)));
        // F_GETLK on host 2 sees host 1's lock, its pid negated.
        n.ask(2, 21, args(1, LockCmd::Get, LockMode::Read, 0, 0), 0);
        let info = LockInfo {
            mode: LockMode::Write,
            start: 0,
            end: LOCK_END_MAX,
            pid: -501,
        };
        assert_eq!(n.answer(2, 21), Some(Ok(Answered::Info(info))));
        // Host 2 waits; host 1 unlocks; host 2 is granted.
        n.ask(2, 22, args(1, LockCmd::Wait, LockMode::Read, 0, 0), 0);
        assert_eq!((n.answer(2, 22), n.hosts[2].asking()), (None, 1));
        assert_eq!(n.hosts[0].waiting(), 1);
        n.ask(
            1,
            11,
            args(1, LockCmd::Set, LockMode::Unlock, 0, LOCK_END_MAX),
            0,
        );
        assert_eq!((n.answer(1, 11), n.answer(2, 22)), (DONE, DONE));
        assert_eq!((n.hosts[0].waiting(), n.hosts[2].asking()), (0, 0));
        assert_eq!(n.hosts[0].held(F), 1);
        // The owner's own kernel contends too: its lock owner 1 is not
        // host 1's.
        n.ask(0, 30, args(1, LockCmd::Set, LockMode::Write, 0, 0), 0);
        assert_eq!(n.answer(0, 30), Some(Err(errno::EAGAIN)));
        n.ask(0, 31, args(1, LockCmd::Set, LockMode::Read, 0, 0), 0);
        assert_eq!(n.answer(0, 31), DONE);
    }

    #[test]
    fn a_wait_across_hosts_that_closes_a_cycle_is_refused() {
        let mut n = Net::new(3);
        let w = |owner, start| args(owner, LockCmd::Set, LockMode::Write, start, start);
        n.ask(1, 1, w(1, 0), 0);
        n.ask(2, 2, w(1, 1), 0);
        let wait = |owner, start| args(owner, LockCmd::Wait, LockMode::Write, start, start);
        n.ask(1, 3, wait(1, 1), 0);
        assert_eq!(n.answer(1, 3), None);
        n.ask(2, 4, wait(1, 0), 0);
        assert_eq!(n.answer(2, 4), Some(Err(errno::EDEADLK)));
    }

    #[test]
    fn a_grant_the_kernel_refuses_is_undone_here_and_at_the_owner() {
        let mut n = Net::new(3);
        // Local: host 0's kernel gave up its wait before the grant.
        n.ask(0, 1, args(1, LockCmd::Set, LockMode::Write, 0, 9), 0);
        n.gave_up.push((0, 2));
        n.ask(0, 2, args(2, LockCmd::Wait, LockMode::Write, 0, 9), 0);
        // Host 1 waits behind it.
        n.ask(1, 3, args(1, LockCmd::Wait, LockMode::Read, 0, 0), 0);
        n.ask(0, 4, args(1, LockCmd::Set, LockMode::Unlock, 0, 9), 0);
        // Owner 2's grant was refused and undone: host 1 has its lock.
        assert_eq!((n.answer(0, 2), n.answer(1, 3)), (None, DONE));
        assert_eq!(n.hosts[0].held(F), 1);
        // Remote: host 2's kernel gave up its wait; its grant is undone by
        // an unlock sent to the owner.
        n.gave_up.push((2, 5));
        n.ask(2, 5, args(1, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        assert_eq!(n.hosts[0].waiting(), 1);
        n.ask(1, 6, args(1, LockCmd::Set, LockMode::Unlock, 0, 0), 0);
        assert_eq!((n.answer(1, 6), n.answer(2, 5)), (DONE, None));
        assert_eq!((n.hosts[0].held(F), n.hosts[0].waiting()), (0, 0));
        n.ask(
            1,
            7,
            args(1, LockCmd::Set, LockMode::Write, 0, LOCK_END_MAX),
            0,
        );
        assert_eq!(n.answer(1, 7), DONE);
    }

    #[test]
    fn an_upgrade_given_up_after_its_grant_leaves_the_read_lock_in_place() {
        let mut n = Net::new(4);
        let read = |owner, start| args(owner, LockCmd::Set, LockMode::Read, start, start + 99);
        let upgrade = |owner, start| args(owner, LockCmd::Wait, LockMode::Write, start, start + 99);
        let unlock = |owner, start| args(owner, LockCmd::Set, LockMode::Unlock, start, start + 99);
        let write = |start| args(1, LockCmd::Set, LockMode::Write, start, start);
        // Host 0 owns the file. Hosts 2 and 1 share a read lock on 0..99;
        // host 2's upgrade waits for host 1, and its kernel gives it up.
        n.ask(2, 1, read(1, 0), 0);
        n.ask(1, 2, read(1, 0), 0);
        n.gave_up.push((2, 3));
        n.ask(2, 3, upgrade(1, 0), 0);
        assert_eq!(n.hosts[0].waiting(), 1);
        // Host 1 lets go: the upgrade is granted, refused by host 2's
        // kernel, and undone at the owner, which gives host 2 back its read
        // lock (its kernel still holds it, as POSIX has it).
        n.ask(1, 4, unlock(1, 0), 0);
        assert_eq!((n.answer(1, 4), n.answer(2, 3)), (DONE, None));
        assert_eq!((n.hosts[0].held(F), n.hosts[2].asking()), (1, 0));
        n.ask(3, 5, write(0), 0);
        assert_eq!(n.answer(3, 5), Some(Err(errno::EAGAIN)));
        n.ask(3, 6, args(1, LockCmd::Get, LockMode::Write, 50, 50), 0);
        let info = LockInfo {
            mode: LockMode::Read,
            start: 0,
            end: 99,
            pid: -501,
        };
        assert_eq!(n.answer(3, 6), Some(Ok(Answered::Info(info))));
        // Another host can still share it; a writer waits for host 2.
        n.ask(1, 7, read(1, 0), 0);
        assert_eq!(n.answer(1, 7), DONE);
        n.ask(1, 8, unlock(1, 0), 0);
        n.ask(3, 9, args(1, LockCmd::Wait, LockMode::Write, 0, 99), 0);
        assert_eq!(n.answer(3, 9), None);
        n.ask(2, 10, unlock(1, 0), 0);
        assert_eq!(n.answer(3, 9), DONE);

        // The same at the owner's own kernel: its refused grant is undone
        // in its own table.
        n.ask(0, 11, read(5, 200), 0);
        n.ask(1, 12, read(1, 200), 0);
        n.gave_up.push((0, 13));
        n.ask(0, 13, upgrade(5, 200), 0);
        n.ask(1, 14, unlock(1, 200), 0);
        assert_eq!((n.answer(1, 14), n.answer(0, 13)), (DONE, None));
        n.ask(3, 15, write(250), 0);
        assert_eq!(n.answer(3, 15), Some(Err(errno::EAGAIN)));
        n.ask(2, 16, read(2, 200), 0);
        assert_eq!(n.answer(2, 16), DONE);

        // And a grant that comes after the asker told its kernel ENOLCK
        // (the owner was slow): undone with what was held before too.
        let d = Duration::from_secs(10);
        n.ask(2, 17, read(2, 400), 0);
        n.ask(1, 18, read(1, 400), 0);
        n.ask(2, 19, upgrade(2, 400), 0);
        let out = n.hosts[2].expire(n.now + d + ASK_MARGIN, d);
        n.run(2, out);
        assert_eq!(n.answer(2, 19), Some(Err(errno::ENOLCK)));
        n.ask(1, 20, unlock(1, 400), 0);
        assert_eq!((n.hosts[0].waiting(), n.hosts[2].asking()), (0, 0));
        n.ask(3, 21, write(450), 0);
        assert_eq!(n.answer(3, 21), Some(Err(errno::EAGAIN)));
        n.ask(3, 22, args(1, LockCmd::Get, LockMode::Write, 499, 499), 0);
        let info = LockInfo {
            mode: LockMode::Read,
            start: 400,
            end: 499,
            pid: -502,
        };
        assert_eq!(n.answer(3, 22), Some(Ok(Answered::Info(info))));
    }

    #[test]
    fn grants_carry_what_was_held_before_and_other_answers_nothing() {
        let mut s = LockService::new(A);
        let now = Instant::now();
        let undo_of = |out: &[LockOut]| match out {
            [LockOut::Reply { undo, .. }] => undo.clone(),
            _ => panic!("{out:?}"),
        };
        let w = |start, end| args(1, LockCmd::Set, LockMode::Write, start, end);
        // This host's kernel: nothing held before, then a write lock.
        let out = s.kernel(1, now, &w(0, 9), A, false);
        assert_eq!(undo_of(&out).map(|u| u.prior), Some(Vec::new()));
        let r = args(1, LockCmd::Set, LockMode::Read, 5, 19);
        let out = s.kernel(2, now, &r, A, false);
        let u = undo_of(&out).expect("granted");
        let range = |a, b| Range::new(a, b).expect("range");
        assert_eq!(
            (u.range, u.prior.clone()),
            (range(5, 20), vec![(Mode::Write, range(5, 10))])
        );
        // Refused: the write lock comes back on 5..9, and 10..19 goes.
        assert!(s.refused(u).is_empty());
        assert_eq!(
            s.table.held_in(
                F,
                Owner {
                    host: A,
                    id: 1,
                    kind: Kind::Posix
                },
                Range::ALL
            ),
            vec![(Mode::Write, range(0, 10))]
        );
        // A peer: the grant's answer carries it, a refusal none.
        let ask = |id, op, start, end| LockMsg::Ask {
            id,
            file: F,
            owner: 7,
            kind: Kind::Posix,
            op,
            range: range(start, end),
            pid: 9,
            wait_ms: 1000,
            prior: Vec::new(),
        };
        let answer = |out: Vec<LockOut>| match &out[..] {
            [
                LockOut::Send {
                    to: B,
                    msg: LockMsg::Answer { result, prior, .. },
                },
            ] => (*result, prior.clone()),
            _ => panic!("{out:?}"),
        };
        let out = s.message(B, ask(1, Op::Set(Mode::Read), 20, 30), now);
        assert_eq!(answer(out), (Ok(None), Vec::new()));
        let out = s.message(B, ask(2, Op::Set(Mode::Write), 25, 40), now);
        assert_eq!(answer(out), (Ok(None), vec![(Mode::Read, range(25, 30))]));
        let out = s.message(B, ask(3, Op::Set(Mode::Write), 0, 1), now);
        assert_eq!(answer(out), (Err(errno::EAGAIN), Vec::new()));
        // Its undo: an unlock carrying the prior.
        let mut undo = ask(4, Op::Unlock, 25, 40);
        if let LockMsg::Ask { prior, .. } = &mut undo {
            *prior = vec![(Mode::Read, range(25, 30))];
        }
        assert_eq!(answer(s.message(B, undo, now)), (Ok(None), Vec::new()));
        assert_eq!(
            s.table.held_in(
                F,
                Owner {
                    host: B,
                    id: 7,
                    kind: Kind::Posix
                },
                Range::ALL
            ),
            vec![(Mode::Read, range(20, 30))]
        );
    }

    #[test]
    fn a_wait_is_given_up_where_it_waits_when_its_kernel_gives_it_up() {
        let mut n = Net::new(3);
        let hour = Duration::from_secs(3600);
        let short = |a: LockArgs| LockArgs { wait_ms: 2000, ..a };
        n.ask(1, 1, args(1, LockCmd::Set, LockMode::Write, 0, 0), 0);
        n.ask(
            0,
            2,
            short(args(1, LockCmd::Wait, LockMode::Write, 0, 0)),
            0,
        );
        n.ask(
            2,
            3,
            short(args(1, LockCmd::Wait, LockMode::Write, 0, 0)),
            0,
        );
        n.ask(2, 4, args(2, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        assert_eq!(n.hosts[0].waiting(), 3);
        assert!(
            n.hosts[0]
                .expire(n.now + Duration::from_millis(1999), hour)
                .is_empty()
        );
        // At 2 s the owner drops the two short waits (their kernels have
        // given them up), not the one that waits 30 s, however long the
        // engine's own deadline.
        let out = n.hosts[0].expire(n.now + Duration::from_secs(2), hour);
        n.run(0, out);
        assert_eq!(n.hosts[0].waiting(), 1);
        assert_eq!(n.answer(0, 2), Some(Err(errno::ENOLCK)));
        assert_eq!(n.answer(2, 3), Some(Err(errno::ENOLCK)));
        // The asker stops waiting for its owner at 2 s plus the margin,
        // not at the hour.
        n.ask(
            2,
            5,
            short(args(3, LockCmd::Wait, LockMode::Write, 0, 0)),
            0,
        );
        let late = n.now + Duration::from_secs(2) + ASK_MARGIN;
        let out = n.hosts[2].expire(late, hour);
        assert_eq!(replies(&out), vec![(5, Err(errno::ENOLCK))]);
        // The long wait is granted when the lock goes.
        n.ask(1, 6, args(1, LockCmd::Set, LockMode::Unlock, 0, 0), 0);
        assert_eq!(n.answer(2, 4), DONE);
    }

    #[test]
    fn waits_expire_and_a_late_grant_is_undone() {
        let mut n = Net::new(3);
        let d = Duration::from_secs(10);
        n.ask(1, 1, args(1, LockCmd::Set, LockMode::Write, 0, 0), 0);
        n.ask(0, 2, args(1, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        n.ask(2, 3, args(1, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        assert_eq!(n.hosts[0].waiting(), 2);
        // Not yet.
        let out = n.hosts[0].expire(n.now + d / 2, d);
        assert!(out.is_empty());
        // Host 2 stops waiting for its owner first (it answers ENOLCK
        // itself), then the owner expires both waits.
        let out = n.hosts[2].expire(n.now + d + ASK_MARGIN, d);
        assert_eq!(replies(&out), vec![(3, Err(errno::ENOLCK))]);
        n.run(2, out);
        assert_eq!(n.hosts[2].asking(), 1, "kept for a late answer");
        let out = n.hosts[0].expire(n.now + d + ASK_MARGIN, d);
        assert_eq!(replies(&out), vec![(2, Err(errno::ENOLCK))]);
        n.run(0, out);
        assert_eq!((n.hosts[0].waiting(), n.hosts[2].asking()), (0, 0));
        assert_eq!(n.answer(0, 2), Some(Err(errno::ENOLCK)));
        // A grant that comes after the requester answered ENOLCK goes.
        n.ask(2, 4, args(1, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        let out = n.hosts[2].expire(n.now + d + ASK_MARGIN, d);
        n.run(2, out);
        assert_eq!(n.answer(2, 4), Some(Err(errno::ENOLCK)));
        n.ask(1, 5, args(1, LockCmd::Set, LockMode::Unlock, 0, 0), 0);
        assert_eq!((n.hosts[0].held(F), n.hosts[2].asking()), (0, 0));
        // Forgotten for good after twice the deadline (an owner that
        // never answers: the Ask is dropped).
        let now = n.now;
        let a = args(1, LockCmd::Get, LockMode::Write, 0, 0);
        assert_eq!(n.hosts[2].kernel(6, now, &a, C, false).len(), 1);
        let out = n.hosts[2].expire(n.now + d + ASK_MARGIN, d);
        assert_eq!(replies(&out), vec![(6, Err(errno::ENOLCK))]);
        assert!(n.hosts[2].expire(n.now + 2 * d + ASK_MARGIN, d).is_empty());
        assert_eq!(n.hosts[2].asking(), 0);
    }

    #[test]
    fn a_dead_host_loses_its_locks_and_its_askers_are_answered() {
        let mut n = Net::new(3);
        n.ask(1, 1, args(1, LockCmd::Set, LockMode::Write, 0, 0), 0);
        n.ask(2, 2, args(1, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        n.ask(0, 3, args(1, LockCmd::Wait, LockMode::Read, 0, 0), 0);
        // Host 1 dies: host 2, first in line, is granted; host 0 waits on;
        // the log hears of the one lock that went.
        let out = n.hosts[0].host_gone(1);
        assert!(out.contains(&LockOut::Dropped { host: 1, locks: 1 }));
        n.run(0, out);
        assert!(
            !n.hosts[0]
                .host_gone(1)
                .iter()
                .any(|o| matches!(o, LockOut::Dropped { .. })),
            "nothing left to drop"
        );
        assert_eq!((n.answer(2, 2), n.answer(0, 3)), (DONE, None));
        // Host 2's kernel asks of the owner, which dies: ENOLCK, and an
        // unlock is done (the lock went with the owner).
        n.ask(2, 4, args(2, LockCmd::Wait, LockMode::Write, 0, 0), 0);
        n.hosts[2].asks.insert(
            99,
            Asking {
                req: 5,
                started: n.now,
                at: 0,
                file: F,
                owner: 1,
                kind: Kind::Posix,
                op: Op::Unlock,
                range: Range::ALL,
                bound: Duration::from_secs(30),
                told: false,
            },
        );
        let out = n.hosts[2].host_gone(0);
        assert_eq!(
            replies(&out),
            vec![(4, Err(errno::ENOLCK)), (5, Ok(Answered::Done))]
        );
        // And once gone, nothing is asked of it.
        let out = n.hosts[2].kernel(
            6,
            n.now,
            &args(1, LockCmd::Get, LockMode::Write, 0, 0),
            0,
            true,
        );
        assert_eq!(replies(&out), vec![(6, Err(errno::ENOLCK))]);
        let out = n.hosts[2].kernel(
            7,
            n.now,
            &args(1, LockCmd::Set, LockMode::Unlock, 0, 0),
            0,
            true,
        );
        assert_eq!(replies(&out), vec![(7, Ok(Answered::Done))]);
    }

    #[test]
    fn answers_count_only_from_the_host_asked() {
        let mut s = LockService::new(A);
        let now = Instant::now();
        let out = s.kernel(
            1,
            now,
            &args(1, LockCmd::Set, LockMode::Read, 0, 0),
            B,
            false,
        );
        let [
            LockOut::Send {
                to: B,
                msg: LockMsg::Ask { id, .. },
            },
        ] = out[..]
        else {
            panic!("{out:?}");
        };
        let ok = LockMsg::Answer {
            id,
            result: Ok(None),
            prior: Vec::new(),
        };
        assert!(s.message(C, ok.clone(), now).is_empty());
        assert!(
            s.message(
                B,
                LockMsg::Answer {
                    id: id + 1,
                    result: Ok(None),
                    prior: Vec::new(),
                },
                now
            )
            .is_empty()
        );
        // A nonsense errno from a peer reaches the kernel as ENOLCK.
        let bad = LockMsg::Answer {
            id,
            result: Err(-3),
            prior: Vec::new(),
        };
        assert_eq!(
            replies(&s.message(B, bad, now)),
            vec![(1, Err(errno::ENOLCK))]
        );
        assert!(s.message(B, ok, now).is_empty(), "answered once");
    }
}
