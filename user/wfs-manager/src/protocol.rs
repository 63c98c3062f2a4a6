//! The page-ownership protocol of Chunk (seed 000, section 3), as pure
//! code: [`Core::handle`] takes one [`Input`] (an upcall from this host's
//! kernel, a message from a peer, the result of a disk read or of an
//! invalidation) and returns the [`Output`]s it causes (messages, replies
//! to the kernel, invalidations, disk reads and writes). There are no
//! sockets, threads or clocks in here, so a deterministic simulation
//! (`tests/sim.rs`) can drive many hosts through any interleaving.
//!
//! Single copy: at any moment at most one host holds a page of a file in
//! its page cache. Every file has an owner, the host that exports it; the
//! owner keeps a directory entry per page (who holds it, and a lock that
//! queues requests while the page moves).
//!
//! A fault on host R (a READ upcall for a page R lacks):
//!
//! 1. R asks the owner: `WhereIs`.
//! 2. The owner locks the page and starts a new *epoch* of it. If nobody
//!    holds it, or R does (R's kernel evicted it), the owner reads its disk
//!    and sends `Data` to R. Otherwise it sends `Fetch` to the holder H.
//! 3. H takes the page from its kernel (INVALIDATE, DROP) and sends its
//!    contents and dirty flag straight to R (`Data`); if its kernel had
//!    evicted the page (a clean page, written back first if it was dirty),
//!    H tells the owner (`Absent`), which reads its disk for R.
//! 4. R installs the page (answers the READ; a dirty page stays dirty in
//!    R's kernel, which now answers for it) and tells the owner (`Done`):
//!    R is the holder, the lock is released and the next queued request
//!    starts.
//!
//! Writeback (a WRITE upcall) sends the page to the owner (`Put`), which
//! writes it to disk without changing who holds the page, and answers
//! (`PutAck`); the WRITE is answered then, so `fsync` means "on the
//! owner's disk". Each `Put` carries the epoch of the holder's copy, and
//! the owner never lets an older epoch overwrite a newer one: a `Put` that
//! was still on its way when the page moved on cannot undo a later write.
//! A holder whose `Put`s are not all acknowledged hands the page over as
//! dirty, so the disk copy is only ever trusted for a page whose every
//! write reached it.
//!
//! Messages between two hosts arrive in the order they were sent (TCP);
//! messages of different pairs may be reordered in any way.

use std::collections::{HashMap, HashSet, VecDeque};

/// `PutAck`'s error for a `Put` superseded by newer data that is not on
/// stable storage (yet, or at all): the writer's data is not durable, but
/// a later holder answers for the page (Linux's `ESTALE`).
pub const SUPERSEDED: i32 = 116;

/// A host of the cluster.
pub type HostId = u16;

/// A transaction: one fault being served. Unique cluster-wide (the
/// requester's id in the top bits).
pub type Txn = u64;

/// Page `index` of file `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageId {
    /// File id.
    pub file: u64,
    /// Page index.
    pub index: u64,
}

/// A message between managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Requester → owner: where is this page? Send it to me.
    WhereIs { txn: Txn, page: PageId },
    /// Owner → holder: give the page to `to`, which starts `epoch`.
    Fetch {
        txn: Txn,
        page: PageId,
        to: HostId,
        epoch: u64,
    },
    /// Holder (or owner, from disk) → requester: the page.
    Data {
        txn: Txn,
        page: PageId,
        data: Vec<u8>,
        dirty: bool,
        epoch: u64,
    },
    /// Holder → owner: my kernel had already evicted the page.
    Absent { txn: Txn, page: PageId },
    /// Requester → owner: the page is installed; the transaction is over.
    Done { txn: Txn, page: PageId },
    /// Any host → owner: write this page to disk (putpages).
    Put {
        page: PageId,
        epoch: u64,
        seq: u64,
        data: Vec<u8>,
    },
    /// Owner → writer: `Put` number `seq` is on disk (or superseded), if
    /// `error` is 0; otherwise the disk write failed with `error` (an
    /// errno) and the data is not on disk.
    PutAck { page: PageId, seq: u64, error: i32 },
    /// Owner → requester: the page cannot be had (its disk read failed
    /// with `error`); the transaction is over.
    Failed { txn: Txn, page: PageId, error: i32 },
}

/// What happens to a host's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The kernel needs a page it does not hold (READ upcall `req`).
    Fault { req: u64, page: PageId },
    /// The kernel writes a dirty page back (WRITE upcall `req`).
    Writeback {
        req: u64,
        page: PageId,
        data: Vec<u8>,
    },
    /// The result of [`Output::Invalidate`]: the page's contents and
    /// dirty flag, or `None` if the kernel did not have it.
    Invalidated {
        page: PageId,
        contents: Option<(Vec<u8>, bool)>,
    },
    /// The kernel refused a [`Output::Grant`] of a dirty page (the READ
    /// had given up: timed out, or its task was killed), and no other READ
    /// of the page installed it: the data goes home.
    NotInstalled { page: PageId, data: Vec<u8> },
    /// The result of [`Output::DiskRead`] (owner only).
    DiskRead { page: PageId, data: Vec<u8> },
    /// [`Output::DiskRead`] failed with `error` (an errno): the page is
    /// not served as zeros; the requester's READs fail.
    DiskReadFailed { page: PageId, error: i32 },
    /// The result of [`Output::DiskWrite`]: 0 once the data is on stable
    /// storage, or the errno it failed with; `ack` is the write's.
    DiskWritten {
        page: PageId,
        epoch: u64,
        ack: (HostId, u64),
        error: i32,
    },
    /// A message from a peer (or from this host to itself).
    Message { from: HostId, msg: Msg },
}

/// What a host's core asks its environment to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to peer `to` (never this host: those are handled within).
    Send { to: HostId, msg: Msg },
    /// Answer READ `req`: install `data`; `dirty` means the kernel must
    /// keep it dirty (write it back before it may evict it).
    Grant {
        req: u64,
        data: Vec<u8>,
        dirty: bool,
    },
    /// Answer WRITE `req`: the page is on the owner's disk if `error` is 0;
    /// otherwise fail it with `error` (the kernel keeps the page dirty).
    WriteDone { req: u64, error: i32 },
    /// Fail READ `req` with `error` (an errno): the page cannot be had.
    ReadFailed { req: u64, error: i32 },
    /// Take the page from the kernel (INVALIDATE, DROP) and report with
    /// [`Input::Invalidated`].
    Invalidate { page: PageId },
    /// Read the page from this (owning) host's disk; report with
    /// [`Input::DiskRead`]. Disk reads and writes take effect in the order
    /// they are output.
    DiskRead { page: PageId },
    /// Write the page to this (owning) host's disk, to stable storage, and
    /// report with [`Input::DiskWritten`] carrying `ack` (the writer and
    /// its `Put`'s sequence number).
    DiskWrite {
        page: PageId,
        data: Vec<u8>,
        epoch: u64,
        ack: (HostId, u64),
    },
}

/// Why an input was refused. Refused inputs change nothing; a message
/// that a correct peer never sends points at a bug or a confused peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The file has no known owner.
    UnknownFile(u64),
    /// A message that does not fit the page's state.
    Unexpected { from: HostId, msg: Msg },
}

/// The owner's directory entry of a page.
#[derive(Debug, Default)]
struct Dir {
    /// Who holds the page; `None`: only the disk.
    holder: Option<HostId>,
    /// Epoch of the current (or moving) copy.
    epoch: u64,
    /// Epoch of the newest data sent to the disk.
    disk_epoch: u64,
    /// Epoch of the newest data known to be on stable storage.
    durable_epoch: u64,
    /// Epoch of the newest data whose disk write failed, until newer or
    /// equal data is written: the disk does not hold the page's data, so
    /// reading it must wait (its writer still has it and writes it again).
    unwritten: Option<u64>,
    /// Disk writes output and not reported yet: a read waits for them (one
    /// that fails leaves the disk without the page's data).
    writing: u32,
    /// A disk read waiting for those.
    read_deferred: bool,
    /// The transaction moving the page, and its requester.
    busy: Option<(Txn, HostId)>,
    /// Waiting transactions, in arrival order.
    queue: VecDeque<(Txn, HostId)>,
    /// Waiting for a disk read to send to the busy requester.
    reading: bool,
}

/// What a `Put` this host sent is for.
#[derive(Debug)]
enum PutFor {
    /// WRITE upcall `req`: the kernel keeps the page dirty if it fails.
    Write(u64),
    /// A dirty page that arrived for READs that had all given up, going
    /// home: nobody else has its data, so it is sent again if the owner's
    /// disk write fails (the owner's disk reads of the page wait for it).
    Home { epoch: u64, data: Vec<u8> },
}

impl Dir {
    /// Reads the page from disk for the busy transaction; or, while a write
    /// of it is not reported yet, or the disk misses its newest data (that
    /// write failed), once the data is written.
    fn read_disk(&mut self, page: PageId, out: &mut Vec<Output>) {
        self.reading = true;
        if self.writing > 0 || self.unwritten.is_some() {
            self.read_deferred = true;
        } else {
            out.push(Output::DiskRead { page });
        }
    }

    /// A disk write of data of `epoch` ended with `error`.
    fn written(&mut self, page: PageId, epoch: u64, error: i32, out: &mut Vec<Output>) {
        self.writing = self.writing.saturating_sub(1);
        if error != 0 {
            if epoch >= self.durable_epoch {
                self.unwritten = Some(self.unwritten.map_or(epoch, |u| u.max(epoch)));
            }
        } else {
            self.durable_epoch = self.durable_epoch.max(epoch);
            if self.unwritten.is_some_and(|u| u <= epoch) {
                self.unwritten = None;
            }
        }
        if self.writing == 0 && self.unwritten.is_none() && std::mem::take(&mut self.read_deferred)
        {
            out.push(Output::DiskRead { page });
        }
    }
}

/// A fault this host is waiting for.
#[derive(Debug)]
struct Pending {
    txn: Txn,
    reqs: Vec<u64>,
}

/// One host's protocol state.
#[derive(Debug)]
pub struct Core {
    me: HostId,
    owners: HashMap<u64, HostId>,
    next_txn: u64,
    // Requester side.
    faults: HashMap<PageId, Pending>,
    // Holder side.
    epochs: HashMap<PageId, u64>,
    fetching: HashMap<PageId, (Txn, HostId, u64)>,
    unacked: HashMap<PageId, u32>,
    /// Pages whose last write-back failed at the owner's disk: not on disk,
    /// so handed over dirty (whatever the kernel's flag said when it was
    /// taken) until a write-back of them succeeds.
    unsynced: HashSet<PageId>,
    next_put: u64,
    /// Put sequence number → what it is for.
    puts: HashMap<u64, PutFor>,
    // Owner side.
    dir: HashMap<PageId, Dir>,
}

impl Core {
    /// The core of host `me`.
    pub fn new(me: HostId) -> Self {
        Core {
            me,
            owners: HashMap::new(),
            next_txn: 0,
            faults: HashMap::new(),
            epochs: HashMap::new(),
            fetching: HashMap::new(),
            unacked: HashMap::new(),
            unsynced: HashSet::new(),
            next_put: 0,
            puts: HashMap::new(),
            dir: HashMap::new(),
        }
    }

    /// Records that `owner` exports `file`.
    pub fn add_file(&mut self, file: u64, owner: HostId) {
        self.owners.insert(file, owner);
    }

    /// The owner of `file`, if known.
    pub fn owner_of(&self, file: u64) -> Option<HostId> {
        self.owners.get(&file).copied()
    }

    /// Whether this host waits for `page` (a READ of it is outstanding).
    pub fn faulting(&self, page: PageId) -> bool {
        self.faults.contains_key(&page)
    }

    /// The kernel gave up on READ `req` (it timed out): it is not answered
    /// (the fault it waits on goes on; if nobody else waits for the page,
    /// it goes home when it arrives). Returns whether `req` was waiting.
    pub fn cancel(&mut self, req: u64) -> bool {
        for p in self.faults.values_mut() {
            if let Some(i) = p.reqs.iter().position(|&r| r == req) {
                p.reqs.remove(i);
                return true;
            }
        }
        false
    }

    /// Faults waiting for a page, and transactions the owner side is
    /// moving or queueing: zero when this host is quiet.
    pub fn outstanding(&self) -> usize {
        self.faults.len()
            + self.fetching.len()
            + self.puts.len()
            + self
                .dir
                .values()
                .map(|d| d.busy.is_some() as usize + d.queue.len())
                .sum::<usize>()
    }

    /// Handles one input; returns what must be done, in order.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, ProtocolError> {
        let mut out = Vec::new();
        let mut local = VecDeque::new();
        self.step(input, &mut out, &mut local)?;
        // Messages to this host itself are handled at once, in order.
        while let Some(msg) = local.pop_front() {
            let me = self.me;
            self.step(Input::Message { from: me, msg }, &mut out, &mut local)?;
        }
        Ok(out)
    }

    fn owner(&self, file: u64) -> Result<HostId, ProtocolError> {
        self.owners
            .get(&file)
            .copied()
            .ok_or(ProtocolError::UnknownFile(file))
    }

    fn send(&self, to: HostId, msg: Msg, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        if to == self.me {
            local.push_back(msg);
        } else {
            out.push(Output::Send { to, msg });
        }
    }

    fn step(
        &mut self,
        input: Input,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        match input {
            Input::Fault { req, page } => {
                let owner = self.owner(page.file)?;
                if let Some(p) = self.faults.get_mut(&page) {
                    p.reqs.push(req);
                    return Ok(());
                }
                self.next_txn += 1;
                let txn = (u64::from(self.me) << 48) | self.next_txn;
                self.faults.insert(
                    page,
                    Pending {
                        txn,
                        reqs: vec![req],
                    },
                );
                self.send(owner, Msg::WhereIs { txn, page }, out, local);
            }
            Input::Writeback { req, page, data } => {
                let owner = self.owner(page.file)?;
                self.next_put += 1;
                let seq = self.next_put;
                let epoch = self.epochs.get(&page).copied().unwrap_or(0);
                *self.unacked.entry(page).or_default() += 1;
                self.puts.insert(seq, PutFor::Write(req));
                self.send(
                    owner,
                    Msg::Put {
                        page,
                        epoch,
                        seq,
                        data,
                    },
                    out,
                    local,
                );
            }
            Input::Invalidated { page, contents } => {
                let Some((txn, to, epoch)) = self.fetching.remove(&page) else {
                    // Nobody asked: nothing to hand over.
                    return Ok(());
                };
                self.epochs.remove(&page);
                // Whoever gets the page answers for its data from now on.
                let unsynced = self.unsynced.remove(&page);
                match contents {
                    Some((data, dirty)) => {
                        // Writes not yet on the owner's disk travel with the
                        // page: the next holder answers for them.
                        let dirty =
                            dirty || self.unacked.get(&page).is_some_and(|&n| n > 0) || unsynced;
                        let msg = Msg::Data {
                            txn,
                            page,
                            data,
                            dirty,
                            epoch,
                        };
                        self.send(to, msg, out, local);
                    }
                    None => {
                        let owner = self.owner(page.file)?;
                        self.send(owner, Msg::Absent { txn, page }, out, local);
                    }
                }
            }
            Input::NotInstalled { page, data } => {
                let owner = self.owner(page.file)?;
                let epoch = self.epochs.get(&page).copied().unwrap_or(0);
                self.put_home(owner, page, epoch, data, out, local);
            }
            Input::DiskRead { page, data } => {
                let d = self.dir.entry(page).or_default();
                let (Some((txn, to)), true) = (d.busy, d.reading) else {
                    return Ok(());
                };
                d.reading = false;
                let epoch = d.epoch;
                let msg = Msg::Data {
                    txn,
                    page,
                    data,
                    dirty: false,
                    epoch,
                };
                self.send(to, msg, out, local);
            }
            Input::DiskReadFailed { page, error } => {
                let d = self.dir.entry(page).or_default();
                let (Some((txn, to)), true) = (d.busy, d.reading) else {
                    return Ok(());
                };
                // Nobody has the page now (the requester does not get it);
                // the next transaction tries the disk again.
                d.reading = false;
                d.busy = None;
                d.holder = None;
                let next = d.queue.pop_front();
                self.send(to, Msg::Failed { txn, page, error }, out, local);
                if let Some((txn, to)) = next {
                    self.start(page, txn, to, out, local);
                }
            }
            Input::DiskWritten {
                page,
                epoch,
                ack: (to, seq),
                error,
            } => {
                self.owned(page, &Msg::PutAck { page, seq, error }, to)?;
                self.dir
                    .entry(page)
                    .or_default()
                    .written(page, epoch, error, out);
                self.send(to, Msg::PutAck { page, seq, error }, out, local);
            }
            Input::Message { from, msg } => self.message(from, msg, out, local)?,
        }
        Ok(())
    }

    fn message(
        &mut self,
        from: HostId,
        msg: Msg,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        let unexpected = |msg: &Msg| ProtocolError::Unexpected {
            from,
            msg: msg.clone(),
        };
        match msg {
            Msg::WhereIs { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                if d.busy.is_some() {
                    d.queue.push_back((txn, from));
                } else {
                    self.start(page, txn, from, out, local);
                }
            }
            Msg::Fetch {
                txn,
                page,
                to,
                epoch,
            } => {
                if self.owner(page.file)? != from || self.fetching.contains_key(&page) {
                    return Err(unexpected(&msg));
                }
                self.fetching.insert(page, (txn, to, epoch));
                out.push(Output::Invalidate { page });
            }
            Msg::Data {
                txn,
                page,
                ref data,
                dirty,
                epoch,
            } => {
                let Some(p) = self.faults.get(&page).filter(|p| p.txn == txn) else {
                    return Err(unexpected(&msg));
                };
                let owner = self.owner(page.file)?;
                let nobody = p.reqs.is_empty();
                for &req in &p.reqs {
                    out.push(Output::Grant {
                        req,
                        data: data.clone(),
                        dirty,
                    });
                }
                self.faults.remove(&page);
                self.epochs.insert(page, epoch);
                if nobody && dirty {
                    // Every READ waiting for it gave up (cancelled): the
                    // kernel will not have the page, so its data goes home
                    // before this host says it holds it (a Fetch then
                    // finds it absent, and the owner's disk has it).
                    self.put_home(owner, page, epoch, data.clone(), out, local);
                }
                self.send(owner, Msg::Done { txn, page }, out, local);
            }
            Msg::Failed { txn, page, error } => {
                if self.owner(page.file)? != from
                    || self.faults.get(&page).is_none_or(|p| p.txn != txn)
                {
                    return Err(unexpected(&msg));
                }
                let p = self.faults.remove(&page).expect("checked above");
                for req in p.reqs {
                    out.push(Output::ReadFailed { req, error });
                }
            }
            Msg::Absent { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                if d.busy.map(|b| b.0) != Some(txn) || d.holder != Some(from) || d.reading {
                    return Err(unexpected(&msg));
                }
                d.read_disk(page, out);
            }
            Msg::Done { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                if d.busy != Some((txn, from)) || d.reading {
                    return Err(unexpected(&msg));
                }
                d.holder = Some(from);
                d.busy = None;
                if let Some((txn, to)) = d.queue.pop_front() {
                    self.start(page, txn, to, out, local);
                }
            }
            Msg::Put {
                page,
                epoch,
                seq,
                ref data,
            } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                if epoch >= d.disk_epoch {
                    // Acknowledged once the disk write is done (or failed).
                    d.disk_epoch = epoch;
                    d.writing += 1;
                    out.push(Output::DiskWrite {
                        page,
                        data: data.clone(),
                        epoch,
                        ack: (from, seq),
                    });
                } else {
                    // Superseded by newer data: done if that is on stable
                    // storage; if it is not (its write failed, or is not
                    // done yet), neither is this write's data, whose newer
                    // version lives dirty with a later holder: the writer
                    // learns that its data is not durable.
                    let error = if d.durable_epoch > epoch {
                        0
                    } else {
                        SUPERSEDED
                    };
                    let ack = Msg::PutAck { page, seq, error };
                    self.send(from, ack, out, local);
                }
            }
            Msg::PutAck { page, seq, error } => {
                let req = match self.puts.remove(&seq) {
                    None => return Err(unexpected(&msg)),
                    Some(PutFor::Write(req)) => req,
                    // A page nobody waited for, home now; or superseded by
                    // a later holder's newer data: that holder answers for
                    // it.
                    Some(PutFor::Home { .. }) if error == 0 || error == SUPERSEDED => return Ok(()),
                    // Not on disk, and nobody else has it: again.
                    Some(PutFor::Home { epoch, data }) => {
                        let owner = self.owner(page.file)?;
                        self.put_home(owner, page, epoch, data, out, local);
                        return Ok(());
                    }
                };
                if let Some(n) = self.unacked.get_mut(&page) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.unacked.remove(&page);
                    }
                }
                if error == 0 {
                    self.unsynced.remove(&page);
                } else {
                    self.unsynced.insert(page);
                }
                out.push(Output::WriteDone { req, error });
            }
        }
        Ok(())
    }

    /// Sends dirty `data` of `page` that no kernel holds to its owner.
    fn put_home(
        &mut self,
        owner: HostId,
        page: PageId,
        epoch: u64,
        data: Vec<u8>,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) {
        self.next_put += 1;
        let seq = self.next_put;
        let put = Msg::Put {
            page,
            epoch,
            seq,
            data: data.clone(),
        };
        self.puts.insert(seq, PutFor::Home { epoch, data });
        self.send(owner, put, out, local);
    }

    /// Refuses a message about a page this host does not own.
    fn owned(&self, page: PageId, msg: &Msg, from: HostId) -> Result<(), ProtocolError> {
        if self.owner(page.file)? == self.me {
            Ok(())
        } else {
            Err(ProtocolError::Unexpected {
                from,
                msg: msg.clone(),
            })
        }
    }

    /// The owner starts moving `page` to `to` for `txn`.
    fn start(
        &mut self,
        page: PageId,
        txn: Txn,
        to: HostId,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) {
        let d = self.dir.entry(page).or_default();
        d.busy = Some((txn, to));
        d.epoch += 1;
        let epoch = d.epoch;
        match d.holder {
            // Nobody has it; or the requester itself is the holder, so its
            // kernel evicted the page (it asks only for pages it lacks),
            // clean or after writing it back (that Put came before this
            // request on the same stream, so the disk has it).
            None => d.read_disk(page, out),
            Some(h) if h == to => d.read_disk(page, out),
            Some(h) => self.send(
                h,
                Msg::Fetch {
                    txn,
                    page,
                    to,
                    epoch,
                },
                out,
                local,
            ),
        }
    }
}
