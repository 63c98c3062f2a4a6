// SPDX-License-Identifier: GPL-2.0

//! State shared by `/dev/wfs` and the mounted file systems: who the manager
//! is, the outstanding requests and the netmem slots.
//!
//! # Locking
//!
//! One mutex, [`Channel::state`], protects everything here. It is never held
//! across a copy to or from user space: the manager's buffers may be
//! mappings of `/wfs` files, and a fault on one would need this lock to
//! send its own upcall. Waiting for a reply releases it (condition
//! variables).
//!
//! # A call
//!
//! The caller encodes its request into a heap buffer and queues the request
//! id on the outbox. The manager's `read(2)` takes the oldest id off the
//! outbox and copies the request out; its `write(2)` of the reply copies the
//! reply into the same buffer, completes the table entry and wakes the
//! callers. The caller takes its buffer back and decodes the reply. A call
//! that times out, is killed, or loses its manager gives its buffer back
//! and leaves its id dead, so a late reply is refused.

use super::opens::OpenFiles;
use super::{
    abi::{self, Reply, Request},
    table::{time_reached, Outcome, Table, SLOT_BITS},
};
use crate::netmem::{Pool, Run, ScratchSlots, SlotMap};
use kernel::page::Page;
use kernel::{
    init::{self, init_array_from_fn},
    new_condvar, new_mutex,
    prelude::*,
    sync::{lock::mutex::MutexBackend, lock::Guard, CondVar, CondVarTimeoutResult, Mutex},
    time::{jiffies_64, msecs_to_jiffies, Jiffies},
};

/// Requests that may be outstanding at once.
pub(crate) const MAX_INFLIGHT: usize = 64;
/// Page slots in the netmem pool lent with requests.
pub(crate) const POOL_SLOTS: usize = 64;
/// Pool slots a READ of several pages leaves free for other requests.
pub(crate) const RUN_HEADROOM: usize = 16;
/// The manager's scratch slots, after the request slots.
pub(crate) const SCRATCH_SLOTS: usize = abi::SCRATCH_SLOTS as usize;
/// How long a request waits for the manager by default, in milliseconds
/// (the `timeout` mount option changes it per mount).
pub(crate) const TIMEOUT_MS: u32 = 30_000;

/// How a caller waits for the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// A fatal signal ends the wait (`EINTR`); the request is withdrawn if
    /// the manager has not read it yet.
    Killable,
    /// Any signal ends it, likewise.
    Interruptible,
    /// Nothing but the reply or the time-out ends it.
    Unkillable,
}

/// A message buffer: a request on the way out, then its reply.
pub(crate) type MsgBuf = [u8; abi::MSG_MAX];

/// Encodes a request with the given id and pool slots into a buffer and
/// returns its length.
pub(crate) type Encoder<'a> = dyn FnMut(u64, Option<Run>, &mut MsgBuf) -> Result<usize> + 'a;

/// What the request table records of a reply: its length in the call's
/// buffer.
pub(crate) type ReplyLen = usize;

/// The request, reply and delivery state of one table slot.
struct Call {
    /// The buffer, while the channel holds it.
    buf: Option<KBox<MsgBuf>>,
    /// Length of the encoded request.
    len: usize,
    /// Opcode of the request, which the reply must echo.
    op: abi::Opcode,
    /// Whether the manager has read the request.
    sent: bool,
    /// The pool slots lent with the request, if any.
    slot: Option<Run>,
}

const fn slot_of(id: u64) -> usize {
    (id & ((1 << SLOT_BITS) - 1)) as usize
}

/// A bounded FIFO of request ids.
struct Outbox {
    ids: [u64; MAX_INFLIGHT],
    head: usize,
    len: usize,
}

impl Outbox {
    fn init() -> impl Init<Self> {
        init!(Self {
            ids <- init::zeroed(),
            head: 0,
            len: 0,
        })
    }

    /// Queues `id`. There is always room while every id queued belongs
    /// to a live call (the table admits at most `MAX_INFLIGHT`), which
    /// [`Outbox::remove`] keeps true; `EAGAIN` if not.
    fn push(&mut self, id: u64) -> Result {
        if self.len >= MAX_INFLIGHT {
            return Err(EAGAIN);
        }
        self.ids[(self.head + self.len) % MAX_INFLIGHT] = id;
        self.len += 1;
        Ok(())
    }

    /// Takes `id` out of the queue, if it is there, keeping the order of
    /// the others. A call that ends before the manager read it must not
    /// leave its id behind: stale ids would fill the queue while the table
    /// has room, and a live request would find no place.
    fn remove(&mut self, id: u64) -> bool {
        let Some(pos) = (0..self.len).find(|&i| self.ids[(self.head + i) % MAX_INFLIGHT] == id)
        else {
            return false;
        };
        for i in pos..self.len - 1 {
            self.ids[(self.head + i) % MAX_INFLIGHT] = self.ids[(self.head + i + 1) % MAX_INFLIGHT];
        }
        self.len -= 1;
        true
    }

    /// Ids queued.
    fn len(&self) -> usize {
        self.len
    }

    fn pop(&mut self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let id = self.ids[self.head];
        self.head = (self.head + 1) % MAX_INFLIGHT;
        self.len -= 1;
        Some(id)
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The registered manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Manager {
    /// Its process id, for status and logs.
    pub(crate) pid: i32,
    /// The session its registration opened.
    pub(crate) session: u64,
}

/// Everything [`Channel::state`] protects.
pub(crate) struct State {
    /// The registered manager, if any.
    pub(crate) manager: Option<Manager>,
    /// Number of the last session (0: none yet).
    pub(crate) session: u64,
    /// Mounted WFS super blocks.
    pub(crate) mounts: u32,
    /// The files open on this host, and which session counts them.
    pub(crate) opens: OpenFiles,
    /// The grants of a session that ended are being revoked: no manager
    /// may register until that is over (it would lose grants it just
    /// gave, and wait for the revocation behind page locks).
    pub(crate) revoking: bool,
    /// Outstanding requests.
    pub(crate) table: Table<ReplyLen, MAX_INFLIGHT>,
    /// Ownership of the netmem request slots.
    pub(crate) slots: SlotMap<POOL_SLOTS>,
    /// Scratch slots an INVALIDATE is writing.
    pub(crate) scratch: ScratchSlots<SCRATCH_SLOTS>,
    /// Per table slot: the call's buffer and delivery state.
    calls: [Option<Call>; MAX_INFLIGHT],
    /// Requests not yet read by the manager, oldest first.
    outbox: Outbox,
}

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// Not a register block at all.
    BadMagic,
    /// A different ABI version.
    Version,
    /// Unknown flags.
    Flags,
    /// Another manager is registered.
    Busy,
}

impl RegisterError {
    /// The errno a refused registration returns.
    pub(crate) fn to_error(self) -> Error {
        match self {
            RegisterError::BadMagic | RegisterError::Flags => EINVAL,
            RegisterError::Version => EPROTO,
            RegisterError::Busy => EBUSY,
        }
    }
}

impl State {
    /// Initialises the state of a freshly loaded module in place. It is a
    /// few kilobytes: never build it on the stack.
    pub(crate) fn init() -> impl Init<Self> {
        init!(Self {
            manager: None,
            session: 0,
            mounts: 0,
            opens: OpenFiles::new(),
            revoking: false,
            table <- Table::init(),
            slots <- SlotMap::init(),
            scratch: ScratchSlots::new(),
            calls <- init_array_from_fn::<_, MAX_INFLIGHT, _, core::convert::Infallible>(|_| None),
            outbox <- Outbox::init(),
        })
    }

    /// Checks a REGISTER block and, if acceptable, makes `pid` the manager.
    /// Returns the reply block.
    pub(crate) fn register(
        &mut self,
        req: &abi::Register,
        pid: i32,
    ) -> Result<abi::Register, RegisterError> {
        if req.magic != abi::REGISTER_MAGIC {
            return Err(RegisterError::BadMagic);
        }
        if req.abi_version != abi::ABI_VERSION {
            return Err(RegisterError::Version);
        }
        if req.flags != 0 {
            return Err(RegisterError::Flags);
        }
        if self.manager.is_some() {
            return Err(RegisterError::Busy);
        }
        self.session += 1;
        self.manager = Some(Manager {
            pid,
            session: self.session,
        });
        Ok(abi::Register {
            magic: abi::REGISTER_MAGIC,
            abi_version: abi::ABI_VERSION,
            flags: 0,
            max_inflight: MAX_INFLIGHT as u32,
            pool_slots: (POOL_SLOTS + SCRATCH_SLOTS) as u32,
            timeout_ms: TIMEOUT_MS,
            session: self.session,
        })
    }

    /// Ends `session` if it is the current one: every pending request fails
    /// with `EIO` and every lent slot comes back. Returns whether it was.
    pub(crate) fn unregister(&mut self, session: u64) -> bool {
        match self.manager {
            Some(m) if m.session == session => {
                self.manager = None;
                self.table.fail_all(abi::errno::EIO);
                self.slots.reclaim_all();
                self.outbox.clear();
                true
            }
            _ => false,
        }
    }

    /// The STATUS block.
    pub(crate) fn status(&self) -> abi::Status {
        abi::Status {
            abi_version: abi::ABI_VERSION,
            registered: self.manager.is_some() as u32,
            manager_pid: self.manager.map_or(0, |m| m.pid as u32),
            inflight: self.table.pending() as u32,
            session: self.session,
            mounts: self.mounts,
            pool_free: self.slots.free() as u32,
        }
    }
}

/// Why the manager's reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyError {
    /// Not a well-formed reply.
    Malformed,
    /// No pending request has this id: never sent, answered already, timed
    /// out or cancelled.
    Unknown,
    /// The reply's opcode is not the request's.
    WrongOp,
}

impl ReplyError {
    /// The errno `write(2)` returns.
    pub(crate) fn to_error(self) -> Error {
        match self {
            ReplyError::Malformed | ReplyError::WrongOp => EINVAL,
            ReplyError::Unknown => ENOENT,
        }
    }
}

impl State {
    /// Queues a request: `encode(id, slots, buf)` writes it into `buf`.
    /// With `want_slots` > 0, a run of up to that many consecutive pool
    /// slots (at least one) is reserved and lent to the manager with the
    /// request. Fails with `EIO` when there is no manager, `EAGAIN` when
    /// the table or the pool is full, `EINVAL` if encoding fails.
    pub(crate) fn submit(
        &mut self,
        mut buf: KBox<MsgBuf>,
        op: abi::Opcode,
        want_slots: u32,
        deadline: u64,
        encode: &mut Encoder<'_>,
    ) -> Result<u64, (Error, KBox<MsgBuf>)> {
        if self.manager.is_none() {
            return Err((EIO, buf));
        }
        let Ok(id) = self.table.insert(deadline) else {
            return Err((EAGAIN, buf));
        };
        // A run of more than one leaves room for others: it holds its
        // slots for as long as its first page takes to come.
        let want_slots = match want_slots {
            0 | 1 => want_slots,
            n => n.min(self.slots.free().saturating_sub(RUN_HEADROOM).max(1) as u32),
        };
        let slot = if want_slots > 0 {
            match self.slots.reserve_run(id, want_slots) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.table.cancel(id);
                    return Err((EAGAIN, buf));
                }
            }
        } else {
            None
        };
        let len = match encode(id, slot, &mut buf) {
            Ok(len) => len,
            Err(e) => {
                self.table.cancel(id);
                if let Some(s) = slot {
                    let _ = self.slots.release_run(s, id);
                }
                return Err((e, buf));
            }
        };
        if self.outbox.push(id).is_err() {
            self.table.cancel(id);
            if let Some(s) = slot {
                let _ = self.slots.release_run(s, id);
            }
            return Err((EAGAIN, buf));
        }
        if let Some(s) = slot {
            let _ = self.slots.lend_run(s, id);
        }
        self.calls[slot_of(id)] = Some(Call {
            buf: Some(buf),
            len,
            op,
            sent: false,
            slot,
        });
        Ok(id)
    }

    /// Takes the oldest undelivered request for the manager: copies it into
    /// `out` and returns its length.
    pub(crate) fn next_request(&mut self, out: &mut MsgBuf) -> Option<usize> {
        while let Some(id) = self.outbox.pop() {
            if !self.table.is_pending(id) {
                // Timed out or cancelled before the manager read it.
                continue;
            }
            if let Some(call) = self.calls[slot_of(id)].as_mut() {
                if let Some(buf) = call.buf.as_ref() {
                    out[..call.len].copy_from_slice(&buf[..call.len]);
                    call.sent = true;
                    return Some(call.len);
                }
            }
        }
        None
    }

    /// A request taken for the manager could not be copied out to it:
    /// fail it. The manager never saw it, so it is not sent, and the pool
    /// slot lent with it comes back when its caller finishes.
    pub(crate) fn fail_request(&mut self, msg: &[u8]) {
        if let Ok(h) = abi::Header::decode(msg) {
            if self.table.fail(h.id, abi::errno::EIO).is_ok() {
                if let Some(call) = self.calls[slot_of(h.id)].as_mut() {
                    call.sent = false;
                }
            } else {
                // Its caller finished meanwhile and left the slot with the
                // manager, which will never answer what it never saw.
                self.slots.adopt_late(h.id);
            }
        }
    }

    /// Requests queued for the manager and not yet read by it.
    pub(crate) fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Records the manager's reply `msg` (already copied from user space).
    pub(crate) fn accept_reply(&mut self, msg: &[u8]) -> Result<(), ReplyError> {
        let reply = Reply::decode(msg).map_err(|_| ReplyError::Malformed)?;
        if !self.table.is_pending(reply.id) {
            // Its caller gave up; the slot lent with it is free again.
            self.slots.adopt_late(reply.id);
            return Err(ReplyError::Unknown);
        }
        let call = self.calls[slot_of(reply.id)]
            .as_mut()
            .ok_or(ReplyError::Unknown)?;
        if !call.sent {
            // The manager cannot answer what it has not read.
            return Err(ReplyError::Unknown);
        }
        if call.op != reply.op {
            return Err(ReplyError::WrongOp);
        }
        let buf = call.buf.as_mut().ok_or(ReplyError::Unknown)?;
        buf[..msg.len()].copy_from_slice(msg);
        if let Some(s) = call.slot {
            // The manager is done with the slots.
            let _ = self.slots.give_back_run(s, reply.id);
        }
        self.table
            .complete(reply.id, msg.len())
            .map_err(|_| ReplyError::Unknown)
    }

    /// Ends call `id` for its caller: removes it and returns its buffer,
    /// outcome and pool slots. On success the kernel holds the slots until
    /// [`SlotMap::finish_run`]; otherwise they are finished here already.
    pub(crate) fn finish(
        &mut self,
        id: u64,
    ) -> (Option<KBox<MsgBuf>>, Option<Outcome<ReplyLen>>, Option<Run>) {
        let outcome = match self.table.take(id) {
            Some(Outcome::Pending) => {
                self.table.cancel(id);
                None
            }
            other => other,
        };
        let call = self.calls[slot_of(id)].take();
        let slot = call.as_ref().and_then(|c| c.slot);
        let sent = call.as_ref().is_some_and(|c| c.sent);
        if !sent {
            self.outbox.remove(id);
        }
        let buf = call.and_then(|c| c.buf);
        if let (Some(s), false) = (slot, matches!(outcome, Some(Outcome::Done(_)))) {
            if !sent {
                // The manager never read the request, so it cannot know the
                // slot: take it back at once instead of orphaning it.
                let _ = self.slots.give_back_run(s, id);
            }
            self.slots.finish_run(s, id);
        }
        (buf, outcome, slot)
    }
}

/// The pool slots lent with a call, while its reply is handled: the kernel
/// owns them again.
pub(crate) struct Lent<'a> {
    pool: &'a Pool,
    run: Run,
}

impl Lent<'_> {
    /// How many slots were lent (the request's count).
    pub(crate) fn count(&self) -> u32 {
        self.run.n
    }

    /// The page of the `i`-th slot lent, from 0.
    pub(crate) fn page(&self, i: u32) -> Option<&Page> {
        if i >= self.run.n {
            return None;
        }
        self.pool.page(self.run.first.checked_add(i)?)
    }
}

/// The channel between this host's kernel and its manager.
#[pin_data]
pub(crate) struct Channel {
    /// All mutable state; see the module documentation for the rules. It
    /// is boxed because it is too large to ever pass through the stack.
    #[pin]
    pub(crate) state: Mutex<KBox<State>>,
    /// The manager waits here for requests.
    #[pin]
    pub(crate) requests: CondVar,
    /// Callers wait here for replies.
    #[pin]
    pub(crate) replies: CondVar,
    /// The netmem pool: request slots, then scratch slots. Their pages are
    /// accessed by whoever owns the slot (`state.slots`, `state.scratch`),
    /// without the lock.
    pub(crate) pool: Pool,
}

impl Channel {
    /// A channel with no manager.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            state <- new_mutex!(KBox::init(State::init(), GFP_KERNEL)?, "wfs_channel"),
            requests <- new_condvar!("wfs_requests"),
            replies <- new_condvar!("wfs_replies"),
            pool: Pool::new(POOL_SLOTS + SCRATCH_SLOTS)?,
        })
    }

    /// Sends `req` to the manager and waits for its reply, at most
    /// `timeout_ms`. Only a fatal signal interrupts the wait, so a page
    /// fault is never failed by an ordinary signal.
    ///
    /// Errors: `EIO` if there is no manager, it goes away, or it does not
    /// answer in time; `EINTR` if the caller is killed; the manager's own
    /// errno if it refuses the request. On success `f` decodes the reply,
    /// whose opcode and shape the channel has already checked.
    pub(crate) fn call<R>(
        &self,
        req: &Request<'_>,
        timeout_ms: u32,
        f: impl FnOnce(&Reply<'_>) -> Result<R>,
    ) -> Result<R> {
        self.call_as(req, timeout_ms, Wait::Killable, f)
    }

    /// [`Channel::call`], waiting as `how` says: a lock's wait ends on any
    /// signal (and its time-out is no error, so it is not warned of); a
    /// lock's release, which a process being killed sends on its way out,
    /// only with the reply or `timeout_ms`.
    pub(crate) fn call_as<R>(
        &self,
        req: &Request<'_>,
        timeout_ms: u32,
        how: Wait,
        f: impl FnOnce(&Reply<'_>) -> Result<R>,
    ) -> Result<R> {
        self.call_inner(
            req.opcode(),
            0,
            timeout_ms,
            how,
            &mut |id, _, buf| req.encode(id, &mut buf[..]).map_err(|_| EINVAL),
            |reply, _, _| f(reply),
        )
    }

    /// [`Channel::call`] that also returns the session of the manager that
    /// answered (a session's end fails its pending requests, so it is the
    /// one the request was queued for).
    pub(crate) fn call_in_session<R>(
        &self,
        req: &Request<'_>,
        timeout_ms: u32,
        f: impl FnOnce(&Reply<'_>) -> Result<R>,
    ) -> Result<(R, u64)> {
        self.call_inner(
            req.opcode(),
            0,
            timeout_ms,
            Wait::Killable,
            &mut |id, _, buf| req.encode(id, &mut buf[..]).map_err(|_| EINVAL),
            |reply, _, session| Ok((f(reply)?, session)),
        )
    }

    /// Waits on `replies` with `st` held, at most `jiffies`, as `how` says.
    fn wait_reply(
        &self,
        st: &mut Guard<'_, KBox<State>, MutexBackend>,
        jiffies: Jiffies,
        how: Wait,
    ) -> CondVarTimeoutResult {
        match how {
            Wait::Killable => self.replies.wait_killable_timeout(st, jiffies),
            Wait::Interruptible => self.replies.wait_interruptible_timeout(st, jiffies),
            Wait::Unkillable => self.replies.wait_timeout(st, jiffies),
        }
    }

    /// Like [`Channel::call`], for a request that moves a page: a pool slot
    /// is lent to the manager with it. `make(slot)` builds the request;
    /// `fill` may write the slot's page before the manager can see the
    /// request (the kernel owns the slot then); `f` gets the reply and the
    /// slot's page, which the kernel owns again while `f` runs.
    pub(crate) fn call_with_page<R>(
        &self,
        op: abi::Opcode,
        timeout_ms: u32,
        make: impl Fn(u32) -> Request<'static>,
        mut fill: impl FnMut(&Page) -> Result,
        f: impl FnOnce(&Reply<'_>, &Page) -> Result<R>,
    ) -> Result<R> {
        self.call_with_pages(
            op,
            1,
            timeout_ms,
            |slot, _| make(slot),
            |page| fill(page),
            |reply, lent| f(reply, lent.page(0).ok_or(EIO)?),
        )
    }

    /// [`Channel::call_with_page`] for a request that may move up to `n`
    /// pages (1 to [`abi::READ_RUN_MAX`]): a run of consecutive pool slots,
    /// maybe fewer than `n` (one at least) if the pool is busy, is lent
    /// with it. `make(first, count)` builds the request for the `count`
    /// slots from `first` on; `fill` may write the first slot's page; `f`
    /// gets the reply and the slots' pages.
    pub(crate) fn call_with_pages<R>(
        &self,
        op: abi::Opcode,
        n: u32,
        timeout_ms: u32,
        make: impl Fn(u32, u32) -> Request<'static>,
        mut fill: impl FnMut(&Page) -> Result,
        f: impl FnOnce(&Reply<'_>, &Lent<'_>) -> Result<R>,
    ) -> Result<R> {
        if !(1..=abi::READ_RUN_MAX).contains(&n) {
            return Err(EINVAL);
        }
        self.call_inner(
            op,
            n,
            timeout_ms,
            Wait::Killable,
            &mut |id, run, buf| {
                let run = run.ok_or(EINVAL)?;
                fill(self.pool.page(run.first).ok_or(EIO)?)?;
                make(run.first, run.n)
                    .encode(id, &mut buf[..])
                    .map_err(|_| EINVAL)
            },
            |reply, run, _| {
                let run = run.ok_or(EIO)?;
                f(
                    reply,
                    &Lent {
                        pool: &self.pool,
                        run,
                    },
                )
            },
        )
    }

    fn call_inner<R>(
        &self,
        op: abi::Opcode,
        want_slots: u32,
        timeout_ms: u32,
        how: Wait,
        encode: &mut Encoder<'_>,
        f: impl FnOnce(&Reply<'_>, Option<Run>, u64) -> Result<R>,
    ) -> Result<R> {
        let mut buf = KBox::new([0u8; abi::MSG_MAX], GFP_KERNEL)?;
        let deadline = jiffies_64().wrapping_add(msecs_to_jiffies(timeout_ms) as u64);
        let mut st = self.state.lock();
        let id = loop {
            match st.submit(buf, op, want_slots, deadline, encode) {
                Ok(id) => break id,
                Err((e, b)) if e == EAGAIN => {
                    // Table or pool full: wait for room, within the deadline.
                    buf = b;
                    let now = jiffies_64();
                    if time_reached(now, deadline) {
                        return Err(EIO);
                    }
                    if let CondVarTimeoutResult::Signal { .. } =
                        self.wait_reply(&mut st, deadline.wrapping_sub(now) as _, how)
                    {
                        return Err(EINTR);
                    }
                }
                Err((e, _)) => return Err(e),
            }
        };
        // The session the request is queued for: it ends only by failing
        // every pending request, so a reply comes from it.
        let session = st.manager.map_or(0, |m| m.session);
        self.requests.notify_one();

        // A reply the manager got accepted wins over a fatal signal that
        // came with it: the manager believes it delivered, and a dirty
        // grant is the page's only copy. So the table is asked first, and
        // after a signal too.
        let killed = loop {
            if !st.table.is_pending(id) {
                break false;
            }
            let now = jiffies_64();
            if time_reached(now, deadline) {
                let _ = st.table.fail(id, abi::errno::ETIMEDOUT);
                break false;
            }
            if let CondVarTimeoutResult::Signal { .. } =
                self.wait_reply(&mut st, deadline.wrapping_sub(now) as _, how)
            {
                if st.table.is_pending(id) {
                    break true;
                }
            }
        };
        let (buf, outcome, slot) = st.finish(id);
        // Answered: the kernel holds the pool slot until `f` is done with it.
        let holds_slot = matches!(outcome, Some(Outcome::Done(_)));
        // A table slot (and maybe a pool slot) is free again.
        self.replies.notify_all();
        drop(st);
        let result = match (killed, outcome) {
            (true, _) => Err(EINTR),
            (false, Some(Outcome::Done(len))) => match buf {
                Some(buf) => match Reply::decode(&buf[..len]) {
                    Ok(reply) if reply.error != 0 => Err(Error::from_errno(-reply.error)),
                    Ok(reply) => f(&reply, slot, session),
                    Err(_) => Err(EIO),
                },
                None => Err(EIO),
            },
            (false, Some(Outcome::Failed(errno))) => {
                if errno == abi::errno::ETIMEDOUT && how != Wait::Interruptible {
                    pr_warn!("request {:#x} ({:?}) timed out\n", id, op);
                }
                Err(EIO)
            }
            _ => Err(EIO),
        };
        if let (Some(s), true) = (slot, holds_slot) {
            self.state.lock().slots.finish_run(s, id);
            self.replies.notify_all();
        }
        result
    }
}
