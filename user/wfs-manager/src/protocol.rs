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
//!
//! # When a host dies
//!
//! Every manager runs as an *incarnation* (a number drawn at start). The
//! environment tells the core when a peer's incarnation is dead
//! ([`Input::PeerDied`]: it came back as a new one, it was silent for the
//! failure time-out, or another host said so), handing back the messages
//! that peer has not acknowledged; and when a peer's incarnation is known
//! alive ([`Input::PeerJoined`]). Whatever the dead incarnation held is
//! gone. A death one host sees is the cluster's: it asks every live host
//! (itself included) to take the incarnation for dead too (`Recover`); each
//! does (if it had not: [`Output::Declare`]) and answers `Recovered` once
//! none of the asker's pages is on its way there from it.
//!
//! - A *holder* whose page was on its way to the dead host, unacknowledged,
//!   sends it home (`Put`, if dirty, with the epoch before the move's) and
//!   tells the owner (`Returned`): the data it sent is not lost (what the
//!   dead host may have written to it is).
//! - A *requester* whose page's owner died fails its READs; a writer's
//!   unacknowledged `Put`s to it fail their WRITEs (the kernel keeps the
//!   page dirty).
//! - An *owner* forgets the dead host's queued requests and takes every
//!   page it held, or that went to it from the disk, back to the disk's
//!   copy (reported [`Output::Lost`]). A page moving between the dead host
//!   and a live one stays locked until every live host has answered its
//!   `Recover` (its location is in doubt: it may still arrive or come
//!   back); then, if it has done neither, it is taken as lost and served
//!   from the owner's disk.
//!
//! Because each pair's messages are in order, a `Recovered` comes after
//! every `Done`, `Returned` and `Put` its sender sent before: the owner
//! never re-serves a page from disk that a survivor still has.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A page's bytes, never changed once read: shared, not copied, between
/// the message that carries them, the session that keeps a sent message
/// until its peer acknowledges it, and the answers of every READ waiting
/// for the page (benchmarks.md, "Copies of a page").
pub type PageData = Arc<Vec<u8>>;

/// `PutAck`'s error for a `Put` superseded by newer data that is not on
/// stable storage (yet, or at all): the writer's data is not durable, but
/// a later holder answers for the page (Linux's `ESTALE`).
pub const SUPERSEDED: i32 = 116;

/// `PutAck`'s error for a `Put` the owner refused as one no correct peer
/// sends (Documentation/protocol.md, "What a peer may not do"): the data
/// is not on the owner's disk and is not sent again; the WRITE fails with
/// it (Linux's `EPERM`).
pub const REFUSED: i32 = 1;

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

/// How the owner keeps a file's pages coherent (its configuration
/// decides; requesters learn it from the [`Access`] of what they are sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coherence {
    /// One copy of each page, always writable (Chunk's protocol).
    #[default]
    Single,
    /// Many read-only copies or one writable one (read replication,
    /// `Documentation/mrsw.md`).
    Mrsw,
}

/// What a requester asks for, or is given, of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A read-only copy (only ever sent for an `mrsw` file).
    Read,
    /// The writable copy.
    Write,
    /// What `Read` gives, a read-only copy of an `mrsw` file's page, if
    /// the page is idle at its owner: no host holds it writable, no
    /// transaction moves or waits for it, no disk write of it is under way
    /// and the owner is not rebuilding its directory. Refused with `Failed`
    /// ([`PREFETCH_REFUSED`]) otherwise, and always for a `single` file
    /// (its writable copy, held for nobody, would be lost with its
    /// holder), so fetching ahead of a scan never takes a page from a
    /// host using it nor waits.
    Prefetch,
}

/// What a host holds of a page, as it tells a restarted owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The writable copy.
    Write,
    /// A read-only copy.
    Read,
}

/// The answer to an UPGRADE of a read-only copy ([`Input::Upgrade`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeAnswer {
    /// The copy is writable now; `dirty`: its data is not known to be on
    /// the owner's stable storage, so the kernel must keep it dirty.
    Granted { dirty: bool },
    /// The copy is stale: the kernel drops it and faults the page in
    /// again (which asks for the writable copy).
    Refault,
    /// The UPGRADE fails with this errno.
    Failed(i32),
}

/// What an owner's transaction of a page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Want {
    /// A read-only copy (`mrsw`).
    Read,
    /// The writable copy (every `single` transaction).
    #[default]
    Write,
    /// A reader's copy made writable in place (`mrsw`).
    Upgrade,
}

/// A message between managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Requester → owner: where is this page? Send it to me, with
    /// `access` (`Write` only for a write retried after [`Msg::Stale`]; a
    /// `single` owner sends the writable copy either way).
    WhereIs {
        txn: Txn,
        page: PageId,
        access: Access,
    },
    /// Owner → holder: give the page to `to` (incarnation `incarnation`
    /// of it, as the owner knows it), which starts `epoch`.
    Fetch {
        txn: Txn,
        page: PageId,
        to: HostId,
        incarnation: u64,
        epoch: u64,
    },
    /// Holder (or owner, from disk) → requester: the page, moved for
    /// incarnation `owner` of the page's owner; `access` says whether it
    /// is the writable copy or a read-only one (never dirty).
    Data {
        txn: Txn,
        page: PageId,
        data: PageData,
        dirty: bool,
        epoch: u64,
        owner: u64,
        access: Access,
    },
    /// Holder → owner: my kernel had already evicted the page.
    Absent { txn: Txn, page: PageId },
    /// Requester → owner: the page is installed; the transaction is over.
    Done { txn: Txn, page: PageId },
    /// Any host → owner: write this page to disk (putpages). `home`: no
    /// kernel holds this data; its sender sends it again if the write
    /// fails (else the writer's kernel keeps the page dirty, or whoever
    /// it handed the page to has the data).
    Put {
        page: PageId,
        epoch: u64,
        seq: u64,
        data: PageData,
        home: bool,
    },
    /// Owner → writer: `Put` number `seq` is on disk (or superseded), if
    /// `error` is 0; otherwise the disk write failed with `error` (an
    /// errno) and the data is not on disk.
    PutAck { page: PageId, seq: u64, error: i32 },
    /// Owner → requester: the page cannot be had (its disk read failed
    /// with `error`); the transaction is over.
    Failed { txn: Txn, page: PageId, error: i32 },
    /// Holder → owner: the page I had for `txn` did not go to its
    /// requester, taken for dead (it may have got it without acknowledging
    /// it), or came back from a new incarnation of the requester that never
    /// asked for it; its data, if dirty, went home in a `Put` just before.
    Returned { txn: Txn, page: PageId },
    /// Any host → every live host: I take incarnation `incarnation` of
    /// host `dead` for dead; take it for dead too, and answer `Recovered`
    /// when none of my pages is on its way there from you. `left`: it told
    /// me it was leaving (`Leaving`), so it told you too, after what it
    /// sent you before: receive that first.
    Recover {
        dead: HostId,
        incarnation: u64,
        left: bool,
    },
    /// Answer to `Recover`.
    Recovered { dead: HostId, incarnation: u64 },
    /// Holder → owner: I do not hold this page any more (I am leaving; its
    /// data, if dirty, went home in a `Put` just before).
    Released { page: PageId },
    /// Leaving host → every peer: I have handed every page back; take my
    /// incarnation `incarnation` for dead now: no page it held is lost
    /// with it (the files it owns are gone with it, though).
    Leaving { incarnation: u64 },
    /// Any host → a peer's new incarnation, once nothing of the peer's
    /// earlier incarnations can still reach it: the peer's pages it holds,
    /// each with the epoch of its copy, in page order and in parts of at
    /// most [`HOLDING_PART`]; `last` marks the last part (an empty one
    /// when it holds none). An owner serves nothing until every peer has
    /// said (or is dead, or was never heard from for the failure
    /// time-out): it rebuilds its directory from them.
    /// Each page says whether the host holds it writable or read-only.
    Holding {
        pages: Vec<(PageId, u64, Held)>,
        last: bool,
    },
    /// Holder → a new incarnation of the owner, just before its `Holding`:
    /// dirty data of a page this host took from its kernel to go home to
    /// an earlier incarnation of the owner (its lease on the owner's pages
    /// had run out), which died before the data was handed to any
    /// connection to it. That incarnation never had the data, so it never
    /// served the page since: this is the page's newest data. The owner
    /// writes it like a `Put` home if that incarnation (`owner`) is the
    /// one right before its own (none between could have served the page
    /// without the sender) and while its directory still waits for the
    /// sender's `Holding` and knows no newer copy (nothing has been served
    /// since it started), and answers `PutAck`; otherwise it refuses it
    /// ([`NOT_TAKEN`]), reporting the page lost.
    Orphan {
        page: PageId,
        epoch: u64,
        seq: u64,
        owner: u64,
        data: PageData,
    },
    /// Owner → writer (`mrsw`): keep a clean read-only copy of the page
    /// (DOWNGRADE), send its dirty data home in a `Put`, then answer
    /// `Kept` (or `Absent` if the kernel no longer had it).
    Share { txn: Txn, page: PageId },
    /// Writer → owner: done, I hold a read-only copy now.
    Kept { txn: Txn, page: PageId },
    /// Owner → reader (`mrsw`): drop your read-only copy, then answer
    /// `Revoked`.
    Revoke { txn: Txn, page: PageId },
    /// Reader → owner: my copy is gone (or I had none).
    Revoked { txn: Txn, page: PageId },
    /// Reader → owner (`mrsw`): make my read-only copy writable.
    Upgrade { txn: Txn, page: PageId },
    /// Owner → reader: granted; every other copy is gone and this one
    /// starts `epoch`. The transaction is over (no `Done` follows).
    Upgraded { txn: Txn, page: PageId, epoch: u64 },
    /// Owner → reader: your copy is revoked or unknown to me; drop it and
    /// ask again with a write fault.
    Stale { txn: Txn, page: PageId },
}

/// `PutAck`'s error for an [`Msg::Orphan`] the owner did not take (its
/// directory no longer waits for the sender, or knows a newer copy): the
/// data is lost (Linux's `ECANCELED`).
pub const NOT_TAKEN: i32 = 125;

/// Most pages whose writes a host remembers ([`Core`]'s `wrote`); past
/// it, it forgets them all (their next faults ask for read copies first).
pub const WROTE_PAGES: usize = 4096;

/// Most pages in one [`Msg::Holding`].
pub const HOLDING_PART: usize = 4096;

/// `errno` for a fault on a host that is leaving (Linux's `ESHUTDOWN`).
pub const SHUTTING_DOWN: i32 = 108;

/// `errno` of a refused [`Input::Prefetch`] (Linux's `EAGAIN`): nothing
/// was asked for.
pub const PREFETCH_REFUSED: i32 = 11;

/// `errno` for an UPGRADE of a page this host holds no grant of (Linux's
/// `EACCES`).
pub const NOT_HELD: i32 = 13;

/// `errno` for what waited on a host that died (Linux's `EHOSTDOWN`).
pub const HOST_DOWN: i32 = 112;

/// `errno` for an eviction of a page that is moving between hosts
/// (Linux's `EAGAIN`): try again.
pub const BUSY: i32 = 11;

/// `errno` for a fault of a page at or past its file's limit (a shrink
/// under way or done, [`Core::set_limit`]) (Linux's `ENXIO`): the page is
/// past the end of the file.
pub const PAST_END: i32 = 6;

/// `errno` for a writeback to an owner whose lease this host lost
/// (Linux's `ETIMEDOUT`): the kernel keeps the page dirty, and the page
/// goes home with the fence.
pub const FENCED: i32 = 110;

/// What happens to a host's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The kernel needs a page it does not hold (READ upcall `req`).
    Fault { req: u64, page: PageId },
    /// The engine would fetch `page` ahead of the kernel's READ (a
    /// sequential scan): a fault of it as read access (the write memory
    /// left alone) whose grant the engine keeps until the kernel asks, or
    /// drops, which is a clean copy evicted. Refused with
    /// [`Output::ReadFailed`] `EAGAIN` when the page is not worth
    /// fetching now: held or being fetched already, written by this host
    /// last, its owner this host, dead, fenced or unknown, or this host
    /// leaving.
    Prefetch { req: u64, page: PageId },
    /// A copy of `page` fetched ahead ([`Input::Prefetch`]) under `grant`
    /// ([`Core::grant_of`]) was dropped before the kernel read it, so the
    /// kernel never had it. If this host still holds it read-only under
    /// that grant, and nothing is under way for it, the owner is told
    /// (`Released`): a writer need not revoke a copy nobody reads.
    /// Otherwise nothing happens (the copy is then a clean one the kernel
    /// evicted, which costs a revocation that finds nothing).
    Unused { page: PageId, grant: (u64, bool) },
    /// The kernel would write to `page`, which this host holds read-only
    /// (UPGRADE upcall `req`; the engine answers one of a writable copy
    /// itself, see [`Core::writable`]). Answered with
    /// [`Output::UpgradeAnswer`].
    Upgrade { req: u64, page: PageId },
    /// The kernel writes a dirty page back (WRITE upcall `req`).
    Writeback {
        req: u64,
        page: PageId,
        data: PageData,
    },
    /// The result of [`Output::Invalidate`]: the page's contents and
    /// dirty flag, or `None` if the kernel did not have it.
    Invalidated {
        page: PageId,
        contents: Option<(PageData, bool)>,
    },
    /// The kernel's answer to [`Output::Grant`] `req`: whether it
    /// installed the page (it refuses the answer to a READ that gave up:
    /// timed out, or its task was killed). Reported for every grant, at
    /// once, before anything else. A dirty page that no READ installed
    /// goes home: its data exists nowhere else.
    Answered { req: u64, installed: bool },
    /// The result of [`Output::DiskRead`] (owner only).
    DiskRead { page: PageId, data: PageData },
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
    /// Incarnation `incarnation` of peer `host` is dead. The environment
    /// has dropped its session with it; `undelivered` are the messages it
    /// had sent that incarnation and has no acknowledgement of, in order,
    /// that it handed to a connection (the peer may have had them), and
    /// `unsent` those after them that it never did (the peer cannot have
    /// had them).
    PeerDied {
        host: HostId,
        incarnation: u64,
        undelivered: Vec<Msg>,
        unsent: Vec<Msg>,
    },
    /// Peer `host` runs incarnation `incarnation` (its first handshake, or
    /// a new manager after [`Input::PeerDied`]).
    PeerJoined { host: HostId, incarnation: u64 },
    /// This incarnation was taken for dead (a peer refused it as such): the
    /// data it keeps for owners' next incarnations ([`Msg::Orphan`]) will
    /// be refused, so it is lost (reported).
    TakenForDead,
    /// This host leaves the cluster on purpose (its manager is stopping):
    /// hand every page back to its owner, then say so ([`Output::Left`]).
    Leave,
    /// This host's lease on the pages of `owner`'s files ran out (no answer
    /// from it for the lease time): it may be taken for dead and its pages
    /// served anew, so they leave this host's kernel (dirty ones go home
    /// as soon as the owner can be reached), and pages that arrive for it
    /// wait until [`Input::Unfence`] (self-fencing).
    Fence { owner: HostId },
    /// The lease on `owner`'s pages is back: what waited is installed.
    Unfence { owner: HostId },
    /// Peer `host` has not been heard from since this incarnation started,
    /// for the failure time-out: its directory is rebuilt without its word
    /// (if it turns up holding pages of this host's files, its incarnation
    /// is taken for dead).
    PeerAbsent { host: HostId },
    /// The operator takes `page` from this host's kernel (`wfsctl
    /// invalidate`): out of it (DROP), or (`downgrade`) leaving a clean
    /// read-only copy this host still holds. Its dirty data goes home like
    /// any other (a `Put` of the copy's epoch), so no older data still on
    /// its way can land on it. Answered with [`Output::Evicted`].
    Evict { page: PageId, downgrade: bool },
    /// The result of [`Output::Downgrade`]: the page's contents and dirty
    /// flag, or `None` if the kernel did not have it.
    Downgraded {
        page: PageId,
        contents: Option<(PageData, bool)>,
    },
    /// Time has passed since data that no kernel holds dirty failed to
    /// reach its owner's disk ([`Core::retrying`]): it is sent again.
    Retry,
    /// Owner side, as `file` shrinks: every page of it from `first` on
    /// comes home, from every host (this one's kernel included) that holds
    /// it or a read-only copy of it, its dirty data to the disk, and no
    /// host holds it afterwards. Set the file's limit first
    /// ([`Core::set_limit`]) so that no other transaction hands such a page
    /// out again (a page short of the limit is not recalled), then feed
    /// this until [`Core::recalled`] says the pages
    /// are home: a page moving, or one this host's kernel is still
    /// faulting in, is recalled by a later `Recall`.
    Recall { file: u64, first: u64 },
}

impl Input {
    /// The kernel's answer to [`Output::Invalidate`] (`downgrade` false)
    /// or [`Output::Downgrade`]: what it took of `page` (`None`: it did not
    /// have the page).
    pub fn taken(page: PageId, downgrade: bool, contents: Option<(PageData, bool)>) -> Input {
        if downgrade {
            Input::Downgraded { page, contents }
        } else {
            Input::Invalidated { page, contents }
        }
    }
}

/// What a host's core asks its environment to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to peer `to` (never this host: those are handled within).
    Send { to: HostId, msg: Msg },
    /// Answer READ `req`: install `data`; `dirty` means the kernel must
    /// keep it dirty (write it back before it may evict it); `writable`
    /// false: a read-only copy (`mrsw`), whose writes ask first (UPGRADE).
    Grant {
        req: u64,
        data: PageData,
        dirty: bool,
        writable: bool,
    },
    /// Answer UPGRADE `req`.
    UpgradeAnswer { req: u64, answer: UpgradeAnswer },
    /// Answer WRITE `req`: the page is on the owner's disk if `error` is 0;
    /// otherwise fail it with `error` (the kernel keeps the page dirty).
    WriteDone { req: u64, error: i32 },
    /// Fail READ `req` with `error` (an errno): the page cannot be had.
    ReadFailed { req: u64, error: i32 },
    /// Take the page from the kernel (INVALIDATE, DROP) and report with
    /// [`Input::Invalidated`].
    Invalidate { page: PageId },
    /// Have the kernel keep a clean read-only copy of the page and hand
    /// over its contents (INVALIDATE, DOWNGRADE); report with
    /// [`Input::Downgraded`]. (The result of an earlier `Downgrade` or
    /// `Invalidate` of a page is reported before that of a later one.)
    Downgrade { page: PageId },
    /// The answer to [`Input::Evict`]: whether the kernel had the page,
    /// whether it held data not on the owner's disk (`dirty`), and whether
    /// that data is on the owner's stable storage now (`written`). `error`:
    /// 0, or what kept the eviction from happening ([`BUSY`]: the page is
    /// moving; [`SHUTTING_DOWN`]) or the data from being written (the
    /// owner's disk error, [`HOST_DOWN`], [`SUPERSEDED`]). A page that a
    /// fault of another host took meanwhile went there: `written` is false.
    Evicted {
        page: PageId,
        present: bool,
        dirty: bool,
        written: bool,
        error: i32,
    },
    /// Read the page from this (owning) host's disk; report with
    /// [`Input::DiskRead`]. Disk reads and writes take effect in the order
    /// they are output.
    DiskRead { page: PageId },
    /// Write the page to this (owning) host's disk, to stable storage, and
    /// report with [`Input::DiskWritten`] carrying `ack` (the writer and
    /// its `Put`'s sequence number).
    DiskWrite {
        page: PageId,
        data: PageData,
        epoch: u64,
        ack: (HostId, u64),
    },
    /// Declare incarnation `incarnation` of `host` dead (another host did):
    /// drop the session with it and report [`Input::PeerDied`] (with no
    /// messages if that incarnation is not the current one). `left`: it
    /// said it was leaving, to this host or to the host whose `Recover`
    /// this follows; then what it sent this host up to its `Leaving` is
    /// to be received first (its pages released, nothing lost), unless the
    /// connection with it is gone.
    Declare {
        host: HostId,
        incarnation: u64,
        left: bool,
    },
    /// The newest data of `page` may have died with `host`: at the page's
    /// owner, the host held the page or it was on its way there, and the
    /// page is served from the disk from now on; elsewhere, dirty data this
    /// host was bringing home to `host`, the page's owner, is gone. Logged
    /// and counted.
    Lost { page: PageId, host: HostId },
    /// The owner's incarnation refused the dirty data of `page` this host
    /// kept for it ([`Msg::Orphan`]): the owner reports it lost. Logged.
    OrphanRefused { page: PageId },
    /// Dirty `page` came for READs that all gave up (none installed it):
    /// its data went home. Logged and counted.
    WentHome { page: PageId },
    /// Every page this host held is back with its owner, its dirty data on
    /// the owner's stable storage, and the peers were told (`Leaving`): the
    /// manager may go.
    Left,
    /// A message refused while other work of the same input goes on (a
    /// forbidden `Put`, answered with [`REFUSED`]; a message held back
    /// while this owner rebuilt its directory, refused when replayed):
    /// counted and logged as an error of [`Core::handle`] would be.
    Rejected(ProtocolError),
    /// Page `page`'s owner `owner` refused this host's `Put` of it
    /// ([`REFUSED`]): its data is not on the owner's disk and is not sent
    /// again (a WRITE waiting for it fails). Logged.
    PutRefused { page: PageId, owner: HostId },
}

impl Output {
    /// The end of an operator's eviction of `page` that wrote nothing to
    /// the owner's disk ([`Output::Evicted`]).
    fn not_written(page: PageId, present: bool, dirty: bool, error: i32) -> Output {
        Output::Evicted {
            page,
            present,
            dirty,
            written: false,
            error,
        }
    }
}

/// Why an input was refused. Refused inputs change nothing; a message
/// that a correct peer never sends points at a bug or a confused peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The file has no known owner.
    UnknownFile(u64),
    /// A message that does not fit the page's state.
    Unexpected { from: HostId, msg: Msg },
    /// A message no correct peer sends, whatever the timing: it claims
    /// more than its sender was given (Documentation/protocol.md, "What
    /// a peer may not do"). Nothing changed and nothing was answered.
    Forbidden {
        from: HostId,
        what: &'static str,
        why: &'static str,
    },
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
    /// Epoch of the newest data whose disk write failed, and its writer,
    /// until newer or equal data is written: the disk does not hold the
    /// page's data, so reading it must wait (its writer still has it and
    /// writes it again, or hands it over dirty to whoever writes it).
    unwritten: Option<(u64, HostId)>,
    /// Disk writes output and not reported yet: a read waits for them (one
    /// that fails leaves the disk without the page's data).
    writing: u32,
    /// A disk read waiting for those.
    read_deferred: bool,
    /// The transaction moving the page, and its requester.
    busy: Option<(Txn, HostId)>,
    /// Waiting transactions, in arrival order, with what each wants.
    queue: VecDeque<(Txn, HostId, Want)>,
    /// `mrsw`: the hosts holding a read-only copy. Empty while `holder`
    /// (the writer) is some.
    readers: BTreeSet<HostId>,
    /// `mrsw`: hosts sent `Revoke` that have neither answered `Revoked`
    /// nor been taken for dead. Outlives the transaction that sent it: no
    /// writable copy is granted while it is not empty.
    revoking: BTreeSet<HostId>,
    /// What the busy transaction wants.
    want: Want,
    /// `mrsw` read transaction: `Share` went to the writer (`holder`),
    /// whose `Kept` or `Absent` has not come yet.
    sharing: bool,
    /// `mrsw` write transaction: waiting for `revoking` to empty before it
    /// reads the disk.
    awaiting_revokes: bool,
    /// Waiting for a disk read to send to the busy requester.
    reading: bool,
    /// The busy transaction's requester died (that incarnation did, even
    /// if a new one has joined since): nobody is to get the page.
    orphaned: bool,
    /// The holder released the page (`Released`, after the `Put` of its
    /// dirty data) while the busy transaction was under way: it no longer
    /// had the page when that transaction's `Fetch` or `Share` reached it,
    /// so nothing went from it to the requester. Cleared as a transaction
    /// starts.
    released: Option<HostId>,
    /// The hosts that held the page since a write of its current epoch
    /// was last known durable: a disk write of one of them that fails
    /// late is owed by whoever holds what came of its copy.
    chain: BTreeSet<HostId>,
    /// The host the page was last lost with, until a transaction serves
    /// it again: that host's manager, restarted, may still find the lost
    /// data dirty in its kernel, and may bring it home (an epoch-0 `Put`).
    lost_from: Option<HostId>,
}

/// What a `Put` this host sent is for.
#[derive(Debug)]
enum PutFor {
    /// WRITE upcall `req` of `page`: the kernel keeps the page dirty if it
    /// fails.
    Write(u64, PageId),
    /// A dirty page that arrived for READs that had all given up, going
    /// home: nobody else has its data, so it is sent again if the owner's
    /// disk write fails (the owner's disk reads of the page wait for it).
    /// `sole`: this host was the page's holder as its owner knows, so no
    /// other host can have been given the page after this data unless the
    /// owner had this `Put` (the data may go to the owner's next
    /// incarnation if this one never left: [`Msg::Orphan`]).
    Home {
        page: PageId,
        epoch: u64,
        data: PageData,
        sole: bool,
    },
    /// A WRITE of `page` failed already (its owner's lease ran out): its
    /// answer, if one comes, changes nothing.
    Answered(PageId),
    /// The dirty data of a page the operator downgraded: the kernel keeps
    /// a clean copy, which it may evict, so the data is sent again if the
    /// owner's disk write fails, unless a newer `Put` of the page went
    /// after it (and the page is handed over dirty until one succeeds).
    /// `counted`: in `unacked` (the page was held when it was sent).
    Downgrade {
        page: PageId,
        epoch: u64,
        data: PageData,
        counted: bool,
    },
}

impl PutFor {
    fn page(&self) -> PageId {
        match self {
            PutFor::Write(_, page)
            | PutFor::Home { page, .. }
            | PutFor::Answered(page)
            | PutFor::Downgrade { page, .. } => *page,
        }
    }
}

/// A page move `fetching`: the transaction, requester and epoch, and
/// whether the requester died meanwhile (the page goes home instead), or
/// the owner that asked for the move did (the requester's fault has
/// failed: the page goes home, to the owner's next incarnation).
#[derive(Debug, Clone, Copy)]
struct Fetching {
    txn: Txn,
    to: HostId,
    incarnation: u64,
    epoch: u64,
    orphan: bool,
    owner_died: bool,
}

/// A `Recover` to answer: who asks, about which incarnation of which
/// host.
#[derive(Debug)]
struct Answer {
    asker: HostId,
    dead: HostId,
    incarnation: u64,
}

/// A recovery from the death of one incarnation, at the host that took it
/// for dead.
#[derive(Debug)]
struct Recovery {
    dead: HostId,
    incarnation: u64,
    /// Live hosts (this one included) that have not answered `Recover`.
    waiting: BTreeSet<HostId>,
    /// Pages whose move involved the dead host, by transaction, and
    /// whether the dead host was its requester (else its holder).
    doubt: Vec<(PageId, Txn, bool)>,
}

impl Dir {
    /// The page's newest data is lost with `host` (reported): the disk's
    /// copy is what is served from now on, so no older data still on its
    /// way may land on it, and no rewrite of older data is waited for.
    fn lose(&mut self, page: PageId, host: HostId, out: &mut Vec<Output>) {
        self.disk_epoch = self.disk_epoch.max(self.epoch);
        self.unwritten = None;
        out.push(Output::Lost { page, host });
        self.read_if_written(page, out);
    }

    /// Why a `Put` of `epoch` from `from` is one no correct peer sends,
    /// if it is: its epoch was never handed out (above the newest), or
    /// it is the newest epoch's, which another host holds, and `from` is
    /// not the host it is moving to. (An older epoch's `Put` may be late:
    /// its sender held the page then, and the epochs keep it from landing
    /// on newer data. So may one of the newest epoch from no holder: the
    /// last one gave the page back, and sends its data again after a
    /// failed disk write.)
    fn forbidden_put(&self, from: HostId, epoch: u64) -> Option<&'static str> {
        if epoch > self.epoch {
            Some("an epoch never handed out")
        } else if epoch > 0
            && epoch == self.epoch
            && self.holder.is_some_and(|h| h != from)
            && self.busy.map(|(_, to)| to) != Some(from)
        {
            Some("a page the sender does not hold")
        } else {
            None
        }
    }

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

    /// A disk write of `writer`'s data of `epoch` ended with `error`
    /// (`home`: data no kernel holds, which its writer sends again;
    /// `covered`: a write of such data from the same writer, of this epoch
    /// or a later one, is still under way).
    #[allow(clippy::too_many_arguments)]
    fn written(
        &mut self,
        page: PageId,
        epoch: u64,
        writer: HostId,
        home: bool,
        covered: bool,
        error: i32,
        out: &mut Vec<Output>,
    ) {
        self.writing = self.writing.saturating_sub(1);
        if error != 0 {
            // Only the newest data sent to the disk matters.
            if epoch >= self.durable_epoch
                && epoch >= self.disk_epoch
                && self.unwritten.is_none_or(|(u, _)| u <= epoch)
            {
                // If the writer has handed the page on since (dirty: its
                // Put was not acknowledged), the holder now owes it; if
                // nobody holds it (it was lost on the way, with a host that
                // died), nobody has the data any more, unless the writer's
                // manager has it (it sends it again).
                match self.holder {
                    _ if home => self.unwritten = Some((epoch, writer)),
                    Some(h) if self.chain.contains(&writer) => {
                        self.unwritten = Some((epoch, h));
                    }
                    // (The writer brought the page home after a move that
                    // failed: that write answers for the data.)
                    None if covered => {}
                    None => self.lose(page, writer, out),
                    _ => self.unwritten = Some((epoch, writer)),
                }
            }
        } else {
            self.durable_epoch = self.durable_epoch.max(epoch);
            if self.unwritten.is_some_and(|(u, _)| u <= epoch) {
                self.unwritten = None;
            }
            if self.durable_epoch >= self.epoch {
                self.chain.clear();
            }
        }
        self.read_if_written(page, out);
    }

    /// Reads the page for the busy transaction if a read waits for disk
    /// writes that are all done now.
    fn read_if_written(&mut self, page: PageId, out: &mut Vec<Output>) {
        if self.writing == 0 && self.unwritten.is_none() && std::mem::take(&mut self.read_deferred)
        {
            out.push(Output::DiskRead { page });
        }
    }
}

/// Grants of a page whose answers from the kernel are not all in
/// ([`Input::Answered`]).
#[derive(Debug, Default)]
struct Granting {
    /// Answers still to come.
    left: usize,
    /// One of them installed the page.
    installed: bool,
    /// The page's data, if it came dirty.
    data: Option<PageData>,
}

/// Data that failed to reach its owner's disk and that no kernel holds
/// dirty, sent again at the next [`Input::Retry`]: the `Put` that failed
/// (`seq`), and whether it is a downgrade's.
#[derive(Debug)]
struct Resend {
    page: PageId,
    epoch: u64,
    data: PageData,
    seq: u64,
    downgrade: bool,
}

/// A fault this host is waiting for.
#[derive(Debug)]
struct Pending {
    txn: Txn,
    reqs: Vec<u64>,
    /// What the fault asks for (asked again with it after a fence).
    access: Access,
    /// Asked for as a prefetch, which its owner may refuse
    /// ([`PREFETCH_REFUSED`]; `access` turns `Read` if a fault joins).
    prefetch: bool,
}

/// One host's protocol state.
#[derive(Debug)]
pub struct Core {
    me: HostId,
    /// This host's own incarnation.
    incarnation: u64,
    owners: HashMap<u64, HostId>,
    /// The other hosts of the cluster.
    peers: BTreeSet<HostId>,
    /// Each peer's incarnation, as last reported alive or dead.
    incarnations: BTreeMap<HostId, u64>,
    /// Peers whose current incarnation is dead (until a new one joins).
    dead: BTreeSet<HostId>,
    /// Every incarnation this host has declared dead.
    declared: BTreeSet<(HostId, u64)>,
    /// Incarnations that said `Leaving` and are not declared dead yet (the
    /// `Recover`s about them say so).
    said_leaving: BTreeSet<(HostId, u64)>,
    /// `Recover`s to answer once no page of the asker's is on its way to
    /// the dead incarnation any more.
    to_answer: Vec<Answer>,
    /// `Recover`s waiting for this host's own declaration of the death.
    to_declare: Vec<Answer>,
    next_txn: u64,
    // Requester side.
    faults: HashMap<PageId, Pending>,
    // Holder side.
    epochs: HashMap<PageId, u64>,
    fetching: HashMap<PageId, Fetching>,
    /// Leaving: the pages being taken from the kernel to go home.
    leaving: Option<BTreeSet<PageId>>,
    /// Faults failed at once as this host leaves, whose page may still
    /// arrive; and UPGRADEs answered here (a leave, a fence) whose
    /// owner's answer may still come.
    abandoned: BTreeSet<(PageId, Txn)>,
    /// `Output::Left` was given.
    left: bool,
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
    /// Disk writes output and not reported, by the writer and its `Put`'s
    /// sequence number: a writer that died meanwhile gets no `PutAck`.
    disk_acks: BTreeSet<(HostId, u64)>,
    /// Those of them whose data no kernel holds (`Put` with `home`).
    /// (Their pages and epochs.)
    home_writes: BTreeMap<(HostId, u64), (PageId, u64)>,
    /// Recoveries from deaths in progress.
    recoveries: Vec<Recovery>,
    /// Owner side, after a start: the peers that have not said which of
    /// this host's pages they hold ([`Msg::Holding`]); the directory serves
    /// nothing until none is left.
    rebuild: BTreeSet<HostId>,
    /// Owner-side messages that came while the directory was rebuilt, in
    /// arrival order.
    held_back: VecDeque<(HostId, Msg)>,
    /// The incarnation of each peer this host has told what it holds.
    reported: BTreeMap<HostId, u64>,
    /// Owners whose lease this host lost: it holds none of their pages.
    fenced: BTreeSet<HostId>,
    /// Pages being taken from the kernel because their owner's lease ran
    /// out.
    fencing: BTreeSet<PageId>,
    /// Faults whose page came while its owner's lease was out: the page
    /// went home, and they ask again once the lease is back.
    refetch: BTreeSet<PageId>,
    /// Pages the operator is taking from the kernel ([`Input::Evict`]),
    /// and whether to keep a read-only copy.
    evicting: BTreeMap<PageId, bool>,
    /// The `Put`s taking evicted pages' dirty data home, by sequence
    /// number: the eviction is answered with theirs.
    evict_puts: BTreeMap<u64, PageId>,
    /// The newest `Put` sent of each page, and its epoch, while `Put`s
    /// are under way or waiting to be sent again: data is not sent again
    /// over newer data of the page (of the same epoch, it would land on
    /// it).
    newest_put: HashMap<PageId, (u64, u64)>,
    /// Grants the kernel has not answered, by page, and their pages, by
    /// READ.
    granting: HashMap<PageId, Granting>,
    grant_reqs: HashMap<u64, PageId>,
    /// Data to send again at the next [`Input::Retry`].
    retry: Vec<Resend>,
    /// Dirty data of pages taken from the kernel for an owner's
    /// incarnation that died before any of it was handed to a connection,
    /// with its epoch: it goes to the owner's next incarnation
    /// ([`Msg::Orphan`]).
    orphans: BTreeMap<PageId, Orphaned>,
    /// This host's incarnation before this one, as its disk says: the only
    /// one whose [`Msg::Orphan`]s it takes.
    previous: Option<u64>,
    /// Owner side: how the files this host exports are kept coherent
    /// (those not in it: `default_coherence`).
    coherence: HashMap<u64, Coherence>,
    default_coherence: Coherence,
    /// Pages in `epochs` held as read-only copies (`mrsw`).
    readonly: HashSet<PageId>,
    /// UPGRADEs of read-only copies waiting for their owner.
    upgrading: HashMap<PageId, Pending>,
    /// Pages whose write was turned into a refault: their next fault asks
    /// for the writable copy.
    want_write: HashSet<PageId>,
    /// Pages this host wrote while it last held them (an UPGRADE granted,
    /// or a copy that left its kernel dirty): their next fault asks for
    /// the writable copy at once, rather than a read copy and then an
    /// UPGRADE (write sharing). At most [`WROTE_PAGES`].
    wrote: HashSet<PageId>,
    /// Holder side: `Revoke`s whose DROP is under way, by page.
    revokes: HashMap<PageId, Txn>,
    /// Holder side: `Share`s whose DOWNGRADE is under way, by page.
    shares: HashMap<PageId, Txn>,
    /// Owner side: per file, the first page no transaction but a recall's
    /// hands out ([`Core::set_limit`]).
    limits: HashMap<u64, u64>,
    /// Owner side: the recalls' own transactions ([`Input::Recall`]), by
    /// page: the page comes to this host, its dirty data goes to the
    /// disk, and this host lets it go at once.
    recalls: HashMap<PageId, Txn>,
    /// Owner side: pages this host's kernel is giving up for a recall.
    recalling: BTreeSet<PageId>,
}

/// Dirty data kept for an owner's next incarnation: of `epoch`, taken
/// from this host's kernel while incarnation `owner` of the owner had
/// this host as the page's holder.
#[derive(Debug)]
struct Orphaned {
    epoch: u64,
    owner: u64,
    data: PageData,
}

impl Core {
    /// The core of host `me`.
    pub fn new(me: HostId) -> Self {
        Self::with_incarnation(me, 0)
    }

    /// The core of host `me` running as incarnation `incarnation`: its
    /// transaction and `Put` numbers start from a base drawn from it, so
    /// that no answer meant for an earlier incarnation matches a request
    /// of this one.
    pub fn with_incarnation(me: HostId, incarnation: u64) -> Self {
        let base = incarnation & 0xffff_ffff;
        Core {
            me,
            incarnation,
            owners: HashMap::new(),
            peers: BTreeSet::new(),
            incarnations: BTreeMap::new(),
            dead: BTreeSet::new(),
            said_leaving: BTreeSet::new(),
            declared: BTreeSet::new(),
            to_answer: Vec::new(),
            to_declare: Vec::new(),
            next_txn: base << 16,
            faults: HashMap::new(),
            epochs: HashMap::new(),
            fetching: HashMap::new(),
            leaving: None,
            abandoned: BTreeSet::new(),
            left: false,
            unacked: HashMap::new(),
            unsynced: HashSet::new(),
            next_put: base << 24,
            puts: HashMap::new(),
            dir: HashMap::new(),
            disk_acks: BTreeSet::new(),
            home_writes: BTreeMap::new(),
            recoveries: Vec::new(),
            rebuild: BTreeSet::new(),
            held_back: VecDeque::new(),
            reported: BTreeMap::new(),
            fenced: BTreeSet::new(),
            fencing: BTreeSet::new(),
            refetch: BTreeSet::new(),
            evicting: BTreeMap::new(),
            evict_puts: BTreeMap::new(),
            newest_put: HashMap::new(),
            granting: HashMap::new(),
            grant_reqs: HashMap::new(),
            retry: Vec::new(),
            orphans: BTreeMap::new(),
            previous: None,
            coherence: HashMap::new(),
            default_coherence: Coherence::Single,
            readonly: HashSet::new(),
            upgrading: HashMap::new(),
            want_write: HashSet::new(),
            wrote: HashSet::new(),
            revokes: HashMap::new(),
            shares: HashMap::new(),
            limits: HashMap::new(),
            recalls: HashMap::new(),
            recalling: BTreeSet::new(),
        }
    }

    /// Records that `host` is a peer of this one. Peers are added before
    /// the first input: this host's directory waits for each to say what
    /// it holds.
    pub fn add_peer(&mut self, host: HostId) {
        if host != self.me {
            self.peers.insert(host);
            self.rebuild.insert(host);
        }
    }

    /// This host's incarnation before this one (its disk keeps it): the
    /// data kept for that one is taken ([`Msg::Orphan`]). Unknown, none is.
    pub fn set_previous(&mut self, incarnation: u64) {
        self.previous = Some(incarnation);
    }

    /// Incarnation `incarnation` of `host` was taken for dead by an earlier
    /// incarnation of this host (its disk keeps the list): it is refused,
    /// and a `Recover` about it is answered at once.
    pub fn add_dead(&mut self, host: HostId, incarnation: u64) {
        if host != self.me {
            self.declared.insert((host, incarnation));
        }
    }

    /// How this host, as their owner, keeps the pages of files it has no
    /// [`Core::set_coherence`] for coherent (`single` unless set).
    pub fn set_default_coherence(&mut self, c: Coherence) {
        self.default_coherence = c;
    }

    /// How this host, as its owner, keeps the pages of `file` coherent.
    pub fn set_coherence(&mut self, file: u64, c: Coherence) {
        self.coherence.insert(file, c);
    }

    /// How the pages of `file` are kept coherent, if this host owns it.
    fn coherence_of(&self, file: u64) -> Coherence {
        self.coherence
            .get(&file)
            .copied()
            .unwrap_or(self.default_coherence)
    }

    /// Reports lost every page kept for an owner's next incarnation.
    fn lose_orphans(&mut self, out: &mut Vec<Output>) -> Result<(), ProtocolError> {
        let pages: Vec<PageId> = std::mem::take(&mut self.orphans).into_keys().collect();
        let mut first = Ok(());
        for page in pages {
            match self.owner(page.file) {
                Ok(host) => out.push(Output::Lost { page, host }),
                Err(e) => first = first.and(Err(e)),
            }
        }
        first
    }

    /// Pages whose dirty data this host keeps for their owner's next
    /// incarnation (the one it was going home to died before it was
    /// sent): see [`Msg::Orphan`].
    pub fn orphans(&self) -> Vec<PageId> {
        self.orphans.keys().copied().collect()
    }

    /// Whether this host's directory is still being rebuilt: the peers
    /// that have not said what they hold.
    pub fn rebuilding(&self) -> Vec<HostId> {
        self.rebuild.iter().copied().collect()
    }

    /// Whether this host holds `page` under a grant of this incarnation
    /// (it received the page and has not handed it over since).
    pub fn holds(&self, page: PageId) -> bool {
        self.epochs.contains_key(&page)
            && !self.fencing.contains(&page)
            && self
                .owners
                .get(&page.file)
                .is_none_or(|o| !self.fenced.contains(o))
    }

    /// Checks the rules of read replication on this host's state (for the
    /// simulation, after every input): a writer has no readers beside it
    /// nor revocations under way; a share or a wait for revocations
    /// belongs to a busy transaction; every read-only copy is one this
    /// host holds.
    pub fn check(&self) -> Result<(), String> {
        for (page, d) in &self.dir {
            if d.holder.is_some() && (!d.readers.is_empty() || !d.revoking.is_empty()) {
                return Err(format!(
                    "{page:?}: writer {:?} beside readers {:?} and revocations {:?}",
                    d.holder, d.readers, d.revoking
                ));
            }
            if (d.sharing || d.awaiting_revokes) && d.busy.is_none() {
                return Err(format!(
                    "{page:?}: a share or revocation wait with no transaction"
                ));
            }
            if d.sharing && (d.want != Want::Read || d.holder.is_none()) {
                return Err(format!("{page:?}: sharing, but not a read from a writer"));
            }
        }
        if let Some(p) = self.readonly.iter().find(|p| !self.epochs.contains_key(p)) {
            return Err(format!("{p:?}: a read-only copy this host does not hold"));
        }
        Ok(())
    }

    /// The epoch of the grant under which this host holds `page`
    /// ([`Core::holds`]), and whether it is a read-only copy: a copy the
    /// engine keeps for the kernel is good while this stays the same.
    pub fn grant_of(&self, page: PageId) -> Option<(u64, bool)> {
        let epoch = *self.epochs.get(&page).filter(|_| self.holds(page))?;
        Some((epoch, self.readonly.contains(&page)))
    }

    /// Whether this host holds a read-only copy of `page` under a grant of
    /// this incarnation (fenced or not): its UPGRADE goes to the owner, or
    /// is refaulted.
    pub fn read_copy(&self, page: PageId) -> bool {
        self.epochs.contains_key(&page) && self.readonly.contains(&page)
    }

    /// Whether this host holds `page` writable ([`Core::holds`], and not
    /// as a read-only copy): the kernel's UPGRADE of it is granted at once.
    pub fn writable(&self, page: PageId) -> bool {
        self.holds(page) && !self.readonly.contains(&page)
    }

    /// Whether this host's lease on `owner`'s pages is out.
    pub fn fenced(&self, owner: HostId) -> bool {
        self.fenced.contains(&owner)
    }

    /// How many pages of this host's files `host` holds, as this host's
    /// directory says.
    pub fn held_by(&self, host: HostId) -> u64 {
        self.dir.values().filter(|d| d.holder == Some(host)).count() as u64
    }

    /// How many read-only copies of this host's pages `host` holds, as
    /// this host's directory says.
    pub fn read_by(&self, host: HostId) -> u64 {
        self.dir
            .values()
            .filter(|d| d.readers.contains(&host))
            .count() as u64
    }

    /// Whether data waits to be sent again ([`Input::Retry`]): the
    /// environment feeds a `Retry` now and then (not at once: a disk that
    /// fails for good would be written to in a loop).
    pub fn retrying(&self) -> bool {
        !self.retry.is_empty()
    }

    /// How many recoveries from deaths are in progress at this host.
    pub fn recovering(&self) -> usize {
        self.recoveries.len()
    }

    /// Records that `owner` exports `file`.
    pub fn add_file(&mut self, file: u64, owner: HostId) {
        self.owners.insert(file, owner);
    }

    /// Forgets who owns `file` (its name was removed, or made anew by
    /// another host): the next LOOKUP says. For a file no host holds a
    /// page of any more (the removal's recall).
    pub fn forget_owner(&mut self, file: u64) {
        self.owners.remove(&file);
    }

    /// The owner of `file`, if known.
    pub fn owner_of(&self, file: u64) -> Option<HostId> {
        self.owners.get(&file).copied()
    }

    /// Owner side: from now on no transaction hands out a page of `file`
    /// from `first` on (`None`: any page), but a recall's
    /// ([`Input::Recall`]): the file shrinks, or has shrunk, to end in
    /// page `first - 1`. A request for such a page fails ([`PAST_END`]),
    /// queued or not; one already under way ends as it would.
    pub fn set_limit(&mut self, file: u64, first: Option<u64>) {
        match first {
            Some(first) => self.limits.insert(file, first),
            None => self.limits.remove(&file),
        };
        // Recalls of pages the limit no longer covers (a shrink given up)
        // go on as transactions for nobody: a READ of the page may join
        // them and install it.
        let end = first.unwrap_or(u64::MAX);
        self.recalls.retain(|p, _| p.file != file || p.index >= end);
    }

    /// Owner side: the limit of `file` ([`Core::set_limit`]), if any.
    pub fn limit(&self, file: u64) -> Option<u64> {
        self.limits.get(&file).copied()
    }

    /// Owner side: whether `page` is at or past its file's limit.
    fn past_limit(&self, page: PageId) -> bool {
        self.limits
            .get(&page.file)
            .is_some_and(|&first| page.index >= first)
    }

    /// Owner side: whether every page of `file` from `first` on is home
    /// ([`Input::Recall`]): no host holds it or a read-only copy of it,
    /// none is moving or queued for, and every write of its data to the
    /// disk is reported done (so a truncation of the file now cuts
    /// nothing that is still on its way).
    pub fn recalled(&self, file: u64, first: u64) -> bool {
        if !self.rebuild.is_empty() {
            // (Who holds what is not known yet.)
            return false;
        }
        let past = |p: &PageId| p.file == file && p.index >= first;
        let dir_quiet = self.dir.iter().filter(|(p, _)| past(p)).all(|(_, d)| {
            d.busy.is_none()
                && d.queue.is_empty()
                && d.holder.is_none()
                && d.readers.is_empty()
                && d.revoking.is_empty()
                && d.writing == 0
                && d.unwritten.is_none()
        });
        dir_quiet
            && !self.epochs.keys().any(past)
            && !self.faults.keys().any(past)
            && !self.upgrading.keys().any(past)
            && !self.fetching.keys().any(past)
            && !self.recalls.keys().any(past)
            && !self.recalling.iter().any(past)
            && !self.puts.values().any(|w| past(&w.page()))
            && !self.retry.iter().any(|r| past(&r.page))
    }

    /// Whether this host waits for `page` (a READ of it is outstanding).
    pub fn faulting(&self, page: PageId) -> bool {
        self.faults.contains_key(&page)
    }

    /// The kernel answered [`Output::Invalidate`] (`downgrade` false) or
    /// [`Output::Downgrade`] of `page` busy (`EAGAIN`: the page is locked,
    /// for a READ or under writeback). Returns the input that settles it
    /// now, or `None` if it must be tried again later (after any
    /// invalidation of the page already waiting). Locked for this host's
    /// own READ that the core waits on, the page is not in the kernel: it
    /// is handed over as absent (waiting would deadlock: the READ waits for
    /// the page this invalidation is making way for).
    pub fn busy(&self, page: PageId, downgrade: bool) -> Option<Input> {
        self.faulting(page)
            .then(|| Input::taken(page, downgrade, None))
    }

    /// The kernel gave up on READ or UPGRADE `req` (it timed out): it is not answered
    /// (the fault it waits on goes on; if nobody else waits for the page,
    /// it goes home when it arrives). Returns whether `req` was waiting.
    pub fn cancel(&mut self, req: u64) -> bool {
        // (An UPGRADE given up leaves its transaction to end as it will:
        // a late `Upgraded` makes this host the writer of a copy its
        // kernel keeps read-only, a late `Stale` drops the copy.)
        for p in self.faults.values_mut().chain(self.upgrading.values_mut()) {
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
            + self.recoveries.len()
            + self.to_answer.len()
            + self.to_declare.len()
            + self.rebuild.len()
            + self.held_back.len()
            + self.fencing.len()
            + self.evicting.len()
            + self.granting.len()
            + self.retry.len()
            + self.upgrading.len()
            + self.revokes.len()
            + self.shares.len()
            + self.recalls.len()
            + self.recalling.len()
            + self
                .dir
                .values()
                .map(|d| d.busy.is_some() as usize + d.queue.len() + d.revoking.len())
                .sum::<usize>()
    }

    /// Handles one input; returns what must be done, in order.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Output>, ProtocolError> {
        let mut out = Vec::new();
        let mut local = VecDeque::new();
        self.step(input, &mut out, &mut local)?;
        loop {
            // Messages to this host itself are handled at once, in order.
            while let Some(msg) = local.pop_front() {
                let me = self.me;
                self.step(Input::Message { from: me, msg }, &mut out, &mut local)?;
            }
            // (Whatever this input finished may have been the last thing a
            // leave waited for; Leaving goes only to peers, but a leaving
            // owner's recalls ask this host itself.)
            self.maybe_left(&mut out, &mut local);
            if local.is_empty() {
                break;
            }
        }
        if self.puts.is_empty() && self.retry.is_empty() {
            self.newest_put.clear();
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
                if self.leaving.is_some() {
                    out.push(Output::ReadFailed {
                        req,
                        error: SHUTTING_DOWN,
                    });
                    return Ok(());
                }
                let owner = self.owner(page.file)?;
                if owner == self.me && self.past_limit(page) {
                    // Past the end of a file that shrinks (or shrank): no
                    // page to give, nor one to wait for (a recall's).
                    out.push(Output::ReadFailed {
                        req,
                        error: PAST_END,
                    });
                    return Ok(());
                }
                // (A recall's fault is joined only once its limit is
                // gone, and `set_limit` forgot it was a recall then.)
                if let Some(p) = self.faults.get_mut(&page) {
                    p.reqs.push(req);
                    if p.access == Access::Prefetch {
                        // A fault of a page fetched ahead: if its owner
                        // refuses the prefetch, it is asked for again.
                        p.access = Access::Read;
                    }
                    return Ok(());
                }
                let txn = self.new_txn();
                // (A write turned into a refault asks for the writable copy,
                // and so does a fault of a page this host wrote last time.)
                let wrote = self.wrote.remove(&page);
                let access = if self.want_write.remove(&page) || wrote {
                    Access::Write
                } else {
                    Access::Read
                };
                self.ask(owner, page, txn, vec![req], access, out, local);
            }
            Input::Prefetch { req, page } => {
                let owner = self.owners.get(&page.file).copied();
                let worth = owner.is_some_and(|o| {
                    o != self.me && !self.dead.contains(&o) && !self.fenced.contains(&o)
                }) && self.leaving.is_none()
                    && !self.epochs.contains_key(&page)
                    && !self.faults.contains_key(&page)
                    && !self.upgrading.contains_key(&page)
                    && !self.wrote.contains(&page)
                    && !self.want_write.contains(&page)
                    && !self.taking(page)
                    && !self.shares.contains_key(&page);
                let Some(owner) = owner.filter(|_| worth) else {
                    out.push(Output::ReadFailed {
                        req,
                        error: PREFETCH_REFUSED,
                    });
                    return Ok(());
                };
                let txn = self.new_txn();
                self.ask(owner, page, txn, vec![req], Access::Prefetch, out, local);
            }
            Input::Unused { page, grant } => {
                let idle = grant.1
                    && self.grant_of(page) == Some(grant)
                    && self.leaving.is_none()
                    && !self.faults.contains_key(&page)
                    && !self.upgrading.contains_key(&page)
                    && !self.revokes.contains_key(&page)
                    && !self.taking(page)
                    && !self.shares.contains_key(&page)
                    && !self.evicting.contains_key(&page)
                    && !self.owed(page)
                    && self
                        .owners
                        .get(&page.file)
                        .is_some_and(|o| !self.dead.contains(o));
                if idle {
                    self.release(page, None, out, local)?;
                }
            }
            Input::Upgrade { req, page } => {
                let answer = |answer| Output::UpgradeAnswer { req, answer };
                if self.leaving.is_some() {
                    out.push(answer(UpgradeAnswer::Failed(SHUTTING_DOWN)));
                    return Ok(());
                }
                if !self.epochs.contains_key(&page) {
                    // A grant of an earlier incarnation's (the engine
                    // refuses those first).
                    out.push(answer(UpgradeAnswer::Failed(NOT_HELD)));
                    return Ok(());
                }
                if !self.readonly.contains(&page) {
                    // The writer already (its copy was downgraded).
                    let dirty = self.owed(page);
                    out.push(answer(UpgradeAnswer::Granted { dirty }));
                    return Ok(());
                }
                let owner = self.owner(page.file)?;
                if self.dead.contains(&owner) {
                    out.push(answer(UpgradeAnswer::Failed(HOST_DOWN)));
                    return Ok(());
                }
                if self.revokes.contains_key(&page)
                    || self.taking(page)
                    || self.fenced.contains(&owner)
                {
                    // The copy is on its way out (its DROP waits for this
                    // UPGRADE): the write faults the page in again.
                    self.want_write.insert(page);
                    out.push(answer(UpgradeAnswer::Refault));
                    return Ok(());
                }
                if let Some(p) = self.upgrading.get_mut(&page) {
                    p.reqs.push(req);
                    return Ok(());
                }
                let txn = self.new_txn();
                let pending = Pending {
                    txn,
                    reqs: vec![req],
                    access: Access::Write,
                    prefetch: false,
                };
                self.upgrading.insert(page, pending);
                self.send(owner, Msg::Upgrade { txn, page }, out, local);
            }
            Input::Writeback { req, page, data } => {
                let owner = self.owner(page.file)?;
                if self.fenced.contains(&owner) {
                    // No lease: the page leaves the kernel, dirty, and goes
                    // home from there.
                    self.unsynced.insert(page);
                    out.push(Output::WriteDone { req, error: FENCED });
                    return Ok(());
                }
                self.next_put += 1;
                let seq = self.next_put;
                let epoch = self.epochs.get(&page).copied().unwrap_or(0);
                *self.unacked.entry(page).or_default() += 1;
                self.puts.insert(seq, PutFor::Write(req, page));
                self.sent_put(page, seq, epoch);
                self.send(
                    owner,
                    Msg::Put {
                        page,
                        epoch,
                        seq,
                        data,
                        home: false,
                    },
                    out,
                    local,
                );
            }
            Input::Invalidated { page, contents } => {
                // (A recall's DROP is answered by whichever DROP of the
                // page comes back first: a revoke's, a move's, its own.)
                let recalled = self.recalling.remove(&page);
                if let Some(txn) = self.revokes.remove(&page) {
                    return self.revoked(page, txn, contents, out, local);
                }
                // (A DROP under way when a `Share` came answers it: the
                // copy goes home as the DROP's cause says, then `Absent`.)
                // (Still listed while the DROP's hand-over runs, so that a
                // leave is not over before the `Absent`.)
                let share = self.shares.get(&page).copied();
                let fenced = self.fencing.remove(&page);
                let evicted = self.evicting.get(&page) == Some(&false);
                if evicted {
                    self.evicting.remove(&page);
                }
                let Some(f) = self.fetching.remove(&page) else {
                    let left = self.leaving.as_mut().is_some_and(|l| l.remove(&page));
                    if left || fenced || evicted || recalled {
                        let present = contents.is_some();
                        let (dirty, put) = self.release(page, contents, out, local)?;
                        match put {
                            Some(seq) if evicted => {
                                self.evict_puts.insert(seq, page);
                            }
                            // (Dirty and not sent: its owner is dead.)
                            _ if evicted => out.push(Output::not_written(
                                page,
                                present,
                                dirty,
                                if dirty { HOST_DOWN } else { 0 },
                            )),
                            _ => {}
                        }
                    } else if contents.is_some() && self.epochs.contains_key(&page) {
                        // Nobody waits for this DROP any more (its page was
                        // faulted in again since), but it took a copy this
                        // host holds: the kernel has let go of it.
                        self.release(page, contents, out, local)?;
                    }
                    // Else nobody asked: nothing to hand over.
                    if let Some(txn) = share {
                        self.shares.remove(&page);
                        let owner = self.owner(page.file)?;
                        if !self.dead.contains(&owner) {
                            self.send(owner, Msg::Absent { txn, page }, out, local);
                        }
                        self.maybe_left(out, local);
                    }
                    if fenced || share.is_some() {
                        // (A report may have waited for this DROP.)
                        self.report_holdings(out, local);
                    }
                    return Ok(());
                };
                let Fetching {
                    txn,
                    to,
                    epoch,
                    orphan,
                    owner_died,
                    ..
                } = f;
                // (A page this host is leaving goes to whoever asked.)
                if let Some(l) = &mut self.leaving {
                    l.remove(&page);
                }
                self.epochs.remove(&page);
                self.readonly.remove(&page);
                let owed = self.hand_over(page);
                if evicted {
                    // It went where the owner sent it.
                    out.push(Output::not_written(
                        page,
                        contents.is_some(),
                        contents.as_ref().is_some_and(|c| c.1) || owed,
                        0,
                    ));
                }
                match contents {
                    Some((data, dirty)) => {
                        if dirty {
                            self.note_write(page);
                        }
                        let dirty = dirty || owed;
                        if orphan || owner_died {
                            // The requester died: the page goes home.
                            self.return_page(page, txn, data, dirty, epoch, true, out, local)?;
                            self.answer_recovers(out, local);
                            return Ok(());
                        }
                        let owner = self.owner_incarnation(page.file)?;
                        let msg = Msg::Data {
                            txn,
                            page,
                            data,
                            dirty,
                            epoch,
                            owner,
                            access: Access::Write,
                        };
                        self.send(to, msg, out, local);
                    }
                    // The dead owner's move is over: nothing to say.
                    None if owner_died => {}
                    None => {
                        let owner = self.owner(page.file)?;
                        self.send(owner, Msg::Absent { txn, page }, out, local);
                    }
                }
                self.answer_recovers(out, local);
                self.maybe_left(out, local);
            }
            Input::Answered { req, installed } => {
                let Some(page) = self.grant_reqs.remove(&req) else {
                    return Ok(());
                };
                let Some(g) = self.granting.get_mut(&page) else {
                    return Ok(());
                };
                g.left = g.left.saturating_sub(1);
                g.installed |= installed;
                if g.left > 0 {
                    return Ok(());
                }
                let Some(Granting {
                    installed: false,
                    data: Some(data),
                    ..
                }) = self.granting.remove(&page)
                else {
                    return Ok(());
                };
                // Dirty, and no READ installed it: the data goes home,
                // before anything else (a Fetch of the page finds it
                // absent here, and the owner must read it from disk after
                // this Put).
                let owner = self.owner(page.file)?;
                if self.dead.contains(&owner) {
                    // Nobody to take it home to.
                    out.push(Output::Lost { page, host: owner });
                    return Ok(());
                }
                let epoch = self.epochs.get(&page).copied().unwrap_or(0);
                out.push(Output::WentHome { page });
                self.put_home(owner, page, epoch, data, true, out, local);
            }
            Input::DiskRead { page, data } => {
                let d = self.dir.entry(page).or_default();
                let (Some((txn, to)), true) = (d.busy, d.reading) else {
                    return Ok(());
                };
                d.reading = false;
                if d.orphaned {
                    // Its requester died meanwhile.
                    self.end_txn(page, out, local);
                    return Ok(());
                }
                let d = self.dir.entry(page).or_default();
                let epoch = d.epoch;
                let access = match d.want {
                    Want::Read => Access::Read,
                    Want::Write | Want::Upgrade => Access::Write,
                };
                let msg = Msg::Data {
                    txn,
                    page,
                    data,
                    dirty: false,
                    epoch,
                    owner: self.incarnation,
                    access,
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
                let orphaned = std::mem::take(&mut d.orphaned);
                let next = d.queue.pop_front();
                if !orphaned {
                    self.send(to, Msg::Failed { txn, page, error }, out, local);
                }
                if let Some((txn, to, want)) = next {
                    self.start(page, txn, to, want, out, local);
                }
            }
            Input::DiskWritten {
                page,
                epoch,
                ack: (to, seq),
                error,
            } => {
                self.owned(page, &Msg::PutAck { page, seq, error }, to)?;
                let home = self.home_writes.remove(&(to, seq)).is_some();
                // A write of the same data (or newer) from the same writer
                // that it sends again if it fails, still under way.
                let covered = self
                    .home_writes
                    .iter()
                    .any(|(&(w, _), &(p, e))| w == to && p == page && e >= epoch);
                let dead = &self.dead;
                let d = self.dir.entry(page).or_default();
                d.written(page, epoch, to, home, covered, error, out);
                // A writer that died meanwhile is not answered; if the
                // write failed, its data is lost with it, unless a live
                // host holds the page: it got it after that data, so its
                // copy is newer (the owner's own kernel, say, as it hands
                // the page on), and what it sends home must still land.
                let acked = self.disk_acks.remove(&(to, seq));
                if !acked && error != 0 && d.unwritten == Some((epoch, to)) {
                    if d.holder.is_some_and(|h| h != to && !dead.contains(&h)) {
                        d.unwritten = None;
                        d.read_if_written(page, out);
                    } else {
                        d.lose(page, to, out);
                    }
                }
                if acked {
                    self.send(to, Msg::PutAck { page, seq, error }, out, local);
                }
            }
            Input::Message { from, msg } => self.message(from, msg, out, local)?,
            Input::PeerDied {
                host,
                incarnation,
                undelivered,
                unsent,
            } => self.peer_died(host, incarnation, undelivered, unsent, out, local)?,
            Input::TakenForDead => self.lose_orphans(out)?,
            Input::Leave => {
                if self.leaving.is_none() {
                    // Faults still waiting fail: a page coming for them
                    // goes home instead.
                    // Their pages may still come: they go home then, before
                    // this host says it has left.
                    let failed = self.fail_faults(|_, _| true, SHUTTING_DOWN, out);
                    self.abandoned.extend(failed);
                    // (Recalls for nobody end with them.)
                    self.recalls.clear();
                    self.refetch.clear();
                    // And UPGRADEs (first: their folios unlock for the
                    // DROPs below).
                    // (Their owners' answers may still come.)
                    let failed =
                        self.fail_upgrades(None, UpgradeAnswer::Failed(SHUTTING_DOWN), out);
                    self.abandoned.extend(failed);
                    self.want_write.clear();
                    // Data waiting for an owner's next incarnation is lost.
                    self.lose_orphans(out)?;
                    let mut held: Vec<PageId> = self
                        .epochs
                        .keys()
                        .copied()
                        .filter(|p| !self.fetching.contains_key(p))
                        .collect();
                    held.sort();
                    for &page in &held {
                        // (One being fenced or evicted is on its way out
                        // already.)
                        if !self.taking(page) {
                            out.push(Output::Invalidate { page });
                        }
                    }
                    self.leaving = Some(held.into_iter().collect());
                    // Requests queued at this host as an owner fail.
                    let mut pages: Vec<PageId> = self.dir.keys().copied().collect();
                    pages.sort();
                    for page in pages {
                        let queued = self
                            .dir
                            .get_mut(&page)
                            .map(|d| std::mem::take(&mut d.queue))
                            .unwrap_or_default();
                        for (txn, to, _) in queued {
                            let msg = Msg::Failed {
                                txn,
                                page,
                                error: SHUTTING_DOWN,
                            };
                            self.send(to, msg, out, local);
                        }
                    }
                }
                self.maybe_left(out, local);
            }
            Input::PeerJoined { host, incarnation } => {
                if let Some(&old) = self.incarnations.get(&host)
                    && old != incarnation
                    && !self.declared.contains(&(host, old))
                {
                    // A new incarnation means the old one died.
                    self.peer_died(host, old, Vec::new(), Vec::new(), out, local)?;
                }
                self.incarnations.insert(host, incarnation);
                if !self.declared.contains(&(host, incarnation)) {
                    self.dead.remove(&host);
                }
                self.report_holdings(out, local);
            }
            Input::Fence { owner } => {
                if self.fenced.insert(owner) {
                    // WRITEs to it fail now: the kernel keeps their pages
                    // dirty and lets them go (a page under writeback it
                    // does not give up).
                    let mut writes: Vec<(u64, u64, PageId)> = self
                        .puts
                        .iter()
                        .filter_map(|(&seq, p)| match p {
                            PutFor::Write(req, page)
                                if self.owners.get(&page.file) == Some(&owner) =>
                            {
                                Some((seq, *req, *page))
                            }
                            _ => None,
                        })
                        .collect();
                    writes.sort();
                    for (seq, req, page) in writes {
                        self.puts.insert(seq, PutFor::Answered(page));
                        self.write_done(req, page, FENCED, out);
                    }
                    // UPGRADEs of its read copies are refaulted, so that
                    // their folios unlock for the DROPs below.
                    // (Their owner's answers may still come.)
                    let refaulted = self.fail_upgrades(Some(owner), UpgradeAnswer::Refault, out);
                    self.abandoned.extend(refaulted);
                    let mut held: Vec<PageId> = self
                        .epochs
                        .keys()
                        .copied()
                        .filter(|p| {
                            self.owners.get(&p.file) == Some(&owner)
                                && !self.fetching.contains_key(p)
                                && !self.taking(*p)
                                && !self.faults.contains_key(p)
                                && !self.leaving_with(*p)
                        })
                        .collect();
                    held.sort();
                    for &page in &held {
                        out.push(Output::Invalidate { page });
                    }
                    self.fencing.extend(held);
                }
            }
            Input::Unfence { owner } => {
                if self.fenced.remove(&owner) {
                    let again: Vec<PageId> = self
                        .refetch
                        .iter()
                        .copied()
                        .filter(|p| self.owners.get(&p.file) == Some(&owner))
                        .collect();
                    for page in again {
                        self.refetch.remove(&page);
                        let txn = self.new_txn();
                        if let Some(p) = self.faults.get_mut(&page) {
                            p.txn = txn;
                            let access = p.access;
                            self.send(owner, Msg::WhereIs { txn, page, access }, out, local);
                        }
                    }
                }
            }
            Input::PeerAbsent { host } => {
                if !self.incarnations.contains_key(&host) || self.dead.contains(&host) {
                    self.rebuild.remove(&host);
                    self.rebuilt(out, local)?;
                }
            }
            Input::Retry => {
                for r in std::mem::take(&mut self.retry) {
                    let owner = self.owner(r.page.file)?;
                    if self
                        .newest_put
                        .get(&r.page)
                        .is_some_and(|&(n, e)| n > r.seq && e >= r.epoch)
                    {
                        // Newer data of the page went since (of the same
                        // epoch or a later one: the old data would land on
                        // it, or be refused).
                        continue;
                    }
                    self.send_home(
                        owner,
                        r.page,
                        r.epoch,
                        r.data,
                        r.downgrade,
                        false,
                        out,
                        local,
                    );
                }
            }
            Input::Recall { file, first } => {
                if self.owner(file)? != self.me
                    || self.leaving.is_some()
                    || !self.rebuild.is_empty()
                {
                    // (Not while its directory is rebuilt: who holds what
                    // is not known yet.)
                    return Ok(());
                }
                // (Only pages past the limit: a recall of any other would
                // outlive it, see `set_limit`.)
                let past = |p: &PageId| p.file == file && p.index >= first && self.past_limit(*p);
                let mut pages: BTreeSet<PageId> =
                    self.epochs.keys().copied().filter(past).collect();
                pages.extend(
                    self.dir
                        .iter()
                        .filter(|(p, d)| {
                            past(p)
                                && (d.holder.is_some()
                                    || !d.readers.is_empty()
                                    || !d.revoking.is_empty()
                                    || d.busy.is_some()
                                    || !d.queue.is_empty())
                        })
                        .map(|(p, _)| *p),
                );
                for page in pages {
                    self.recall(page, out, local);
                }
            }
            Input::Evict { page, downgrade } => {
                if self.evicting.contains_key(&page) {
                    // Under way: its answer answers this one too.
                    return Ok(());
                }
                let owner = self.owner(page.file)?;
                // (Not while its owner cannot take the data: a clean copy
                // left in the kernel may be evicted silently.)
                let error = if self.leaving.is_some() {
                    SHUTTING_DOWN
                } else if self.dead.contains(&owner) {
                    HOST_DOWN
                } else if self.fenced.contains(&owner) {
                    FENCED
                } else if self.fetching.contains_key(&page)
                    || self.fencing.contains(&page)
                    || self.revokes.contains_key(&page)
                    || self.shares.contains_key(&page)
                {
                    BUSY
                } else {
                    0
                };
                // (A page being faulted in is not in the kernel yet.)
                if error != 0 || !self.epochs.contains_key(&page) || self.faulting(page) {
                    out.push(Output::not_written(page, false, false, error));
                    return Ok(());
                }
                self.evicting.insert(page, downgrade);
                out.push(if downgrade {
                    Output::Downgrade { page }
                } else {
                    Output::Invalidate { page }
                });
            }
            Input::Downgraded { page, contents } => {
                if let Some(txn) = self.shares.remove(&page) {
                    return self.shared(page, txn, contents, out, local);
                }
                if self.evicting.get(&page) != Some(&true) {
                    // Nobody waits for this DOWNGRADE any more, but it
                    // cleaned a copy this host holds: its data goes home.
                    if let Some((data, dirty)) = contents
                        && (dirty || self.unsynced.contains(&page))
                        && let Some(&epoch) = self.epochs.get(&page)
                    {
                        let owner = self.owner(page.file)?;
                        if self.dead.contains(&owner) {
                            out.push(Output::Lost { page, host: owner });
                            self.drop_lost_copy(page, out);
                        } else {
                            self.send_home(owner, page, epoch, data, true, false, out, local);
                        }
                    }
                    return Ok(());
                }
                self.evicting.remove(&page);
                let present = contents.is_some();
                let held = self.epochs.get(&page).copied();
                // A copy whose last write-back failed is not on disk either.
                let data = match contents {
                    Some((data, dirty)) if dirty || self.unsynced.contains(&page) => data,
                    _ => {
                        out.push(Output::not_written(page, present, false, 0));
                        return Ok(());
                    }
                };
                let owner = self.owner(page.file)?;
                if self.dead.contains(&owner) {
                    // It died since the DOWNGRADE was asked for (that
                    // waited for a writeback). The kernel's copy is clean
                    // now and may be evicted any time: the data is lost,
                    // and the copy goes too, so that nobody reads it now
                    // and older data later.
                    out.push(Output::Lost { page, host: owner });
                    self.drop_lost_copy(page, out);
                    out.push(Output::not_written(page, present, true, HOST_DOWN));
                    return Ok(());
                }
                let epoch = held.unwrap_or(0);
                let seq = self.send_home(owner, page, epoch, data, true, false, out, local);
                self.evict_puts.insert(seq, page);
            }
        }
        Ok(())
    }

    /// The DROP of a read-only copy for the owner's `Revoke` (of
    /// transaction `txn`) is done: it says so. (Whatever waited on the same
    /// DROP, a fence, an eviction or a leave, is over too.)
    fn revoked(
        &mut self,
        page: PageId,
        txn: Txn,
        contents: Option<(PageData, bool)>,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        let owner = self.owner(page.file)?;
        let present = contents.is_some();
        let epoch = self.epochs.remove(&page).unwrap_or(0);
        self.readonly.remove(&page);
        // (A read-only copy is never dirty; were it, its data goes home
        // before the owner hears it is gone. A downgraded writer's data
        // not known on disk yet is sent again by its own `Put`'s retry.)
        self.hand_over(page);
        if let Some((data, true)) = contents
            && !self.dead.contains(&owner)
        {
            self.put_home(owner, page, epoch, data, true, out, local);
        }
        self.fencing.remove(&page);
        if self.evicting.remove(&page).is_some() {
            out.push(Output::not_written(page, present, false, 0));
        }
        if let Some(l) = &mut self.leaving {
            l.remove(&page);
        }
        if !self.dead.contains(&owner) {
            self.send(owner, Msg::Revoked { txn, page }, out, local);
        }
        self.answer_recovers(out, local);
        self.maybe_left(out, local);
        self.report_holdings(out, local);
        Ok(())
    }

    /// The DOWNGRADE of the writable copy for the owner's `Share` (of
    /// transaction `txn`) is done: its dirty data goes home, then `Kept`
    /// (this host holds a read-only copy now), on the same stream; or
    /// `Absent` if the kernel no longer had the page.
    fn shared(
        &mut self,
        page: PageId,
        txn: Txn,
        contents: Option<(PageData, bool)>,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        let owner = self.owner(page.file)?;
        // An operator's DOWNGRADE of the same page waited on this one.
        let evicted = self.evicting.get(&page) == Some(&true);
        if evicted {
            self.evicting.remove(&page);
        }
        let Some((data, dirty)) = contents else {
            self.epochs.remove(&page);
            self.readonly.remove(&page);
            if evicted {
                out.push(Output::not_written(page, false, false, 0));
            }
            if !self.dead.contains(&owner) {
                self.send(owner, Msg::Absent { txn, page }, out, local);
            }
            return Ok(());
        };
        if dirty {
            self.note_write(page);
        }
        let dirty = dirty || self.unsynced.contains(&page);
        if self.dead.contains(&owner) {
            // (Its recovery is mrsw.md's step 4.)
            if dirty {
                out.push(Output::Lost { page, host: owner });
                self.drop_lost_copy(page, out);
            } else {
                self.readonly.insert(page);
            }
            if evicted {
                out.push(Output::not_written(page, true, dirty, HOST_DOWN));
            }
            return Ok(());
        }
        if dirty {
            let epoch = self.epochs.get(&page).copied().unwrap_or(0);
            let seq = self.send_home(owner, page, epoch, data, true, false, out, local);
            if evicted {
                self.evict_puts.insert(seq, page);
            }
        } else if evicted {
            out.push(Output::not_written(page, true, false, 0));
        }
        self.readonly.insert(page);
        self.send(owner, Msg::Kept { txn, page }, out, local);
        self.report_holdings(out, local);
        Ok(())
    }

    /// The data of `page` this host downgraded is lost with its owner: the
    /// kernel's clean copy of it, which the kernel may evict any time,
    /// goes too, so that nobody reads that data now and older data later.
    fn drop_lost_copy(&mut self, page: PageId, out: &mut Vec<Output>) {
        if self.epochs.contains_key(&page)
            && !self.taking(page)
            && !self.fetching.contains_key(&page)
        {
            self.fencing.insert(page);
            out.push(Output::Invalidate { page });
        }
    }

    /// Whether this host is leaving and taking `page` out of its kernel.
    fn leaving_with(&self, page: PageId) -> bool {
        self.leaving.as_ref().is_some_and(|l| l.contains(&page))
    }

    /// Whether `page` is on its way out of the kernel already (a DROP of
    /// it is under way for a fence or an eviction).
    fn taking(&self, page: PageId) -> bool {
        self.fencing.contains(&page)
            || self.recalling.contains(&page)
            || self.evicting.get(&page) == Some(&false)
            || self.revokes.contains_key(&page)
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
        if !self.rebuild.is_empty() {
            // A Put of a known epoch is written at once: its writer's
            // kernel may not give the page up before it is (a holder's
            // word may wait for that), and the epochs keep older data
            // from landing on newer.
            let page = match &msg {
                Msg::WhereIs { page, .. }
                | Msg::Done { page, .. }
                | Msg::Absent { page, .. }
                | Msg::Returned { page, .. }
                | Msg::Put { page, epoch: 0, .. }
                | Msg::Upgrade { page, .. }
                | Msg::Kept { page, .. }
                | Msg::Revoked { page, .. }
                | Msg::Released { page } => Some(*page),
                _ => None,
            };
            if let Some(page) = page {
                // Nothing else of this host's pages is served, taken from
                // a dead manager's kernel or released before its directory
                // knows who holds them.
                self.owned(page, &msg, from)?;
                if let Msg::WhereIs {
                    txn,
                    access: Access::Prefetch,
                    ..
                } = msg
                {
                    // (Not worth waiting for.)
                    let error = PREFETCH_REFUSED;
                    self.send(from, Msg::Failed { txn, page, error }, out, local);
                    return Ok(());
                }
                self.held_back.push_back((from, msg));
                return Ok(());
            }
        }
        match msg {
            Msg::WhereIs { txn, page, access } => {
                self.owned(page, &msg, from)?;
                // (A `single` file's transactions all move the writable copy.)
                let want = match (self.coherence_of(page.file), access) {
                    (Coherence::Mrsw, Access::Read | Access::Prefetch) => Want::Read,
                    _ => Want::Write,
                };
                // (A leaving owner's own recalls bring its pages home.)
                let gathering = from == self.me && self.recalls.get(&page) == Some(&txn);
                if !gathering && self.refused_leaving(txn, page, from, out, local) {
                    return Ok(());
                }
                let d = self.dir.entry(page).or_default();
                if access == Access::Prefetch
                    && (want == Want::Write
                        || d.busy.is_some()
                        || !d.queue.is_empty()
                        || d.holder.is_some()
                        || !d.revoking.is_empty()
                        || d.unwritten.is_some()
                        || d.writing > 0)
                {
                    let error = PREFETCH_REFUSED;
                    self.send(from, Msg::Failed { txn, page, error }, out, local);
                    return Ok(());
                }
                if d.busy.is_some() {
                    d.queue.push_back((txn, from, want));
                } else {
                    self.start(page, txn, from, want, out, local);
                }
            }
            Msg::Fetch {
                txn,
                page,
                to,
                incarnation,
                epoch,
            } => {
                // Only a file's owner sends Fetch (and only to a host it
                // served the page to, which knows the file's owner).
                let owner = self.claimed(page, from, "a Fetch")?;
                if owner != from || self.fetching.contains_key(&page) {
                    return Err(unexpected(&msg));
                }
                let orphan = self.declared.contains(&(to, incarnation));
                self.fetching.insert(
                    page,
                    Fetching {
                        txn,
                        to,
                        incarnation,
                        epoch,
                        orphan,
                        owner_died: false,
                    },
                );
                // (A page being fenced or evicted is on its way out
                // already: that answer serves this move.)
                if !self.taking(page) {
                    out.push(Output::Invalidate { page });
                }
            }
            Msg::Data {
                txn,
                page,
                ref data,
                dirty,
                epoch,
                access,
                ..
            } => {
                let owner = self.owner(page.file)?;
                if txn >> 48 != u64::from(self.me) {
                    // Every transaction a page moves to this host for is
                    // this host's (its id in the top bits), whichever
                    // incarnation of it made it.
                    return Err(ProtocolError::Forbidden {
                        from,
                        what: "a Data",
                        why: "a page for a request this host never made",
                    });
                }
                if access == Access::Read && dirty {
                    // A read-only copy is always on the owner's disk.
                    return Err(unexpected(&msg));
                }
                if self.fenced.contains(&owner)
                    && self.faults.get(&page).is_some_and(|p| p.txn == txn)
                {
                    // Not installed without a lease on the owner's pages:
                    // it goes home (the owner hears it was not taken), and
                    // the fault asks again once the lease is back.
                    self.return_page(page, txn, data.clone(), dirty, epoch, false, out, local)?;
                    self.refetch.insert(page);
                    return Ok(());
                }
                let Some(p) = self.faults.get(&page).filter(|p| p.txn == txn) else {
                    // Not for anything this incarnation waits for (meant
                    // for an earlier one, which died; or a fault given up
                    // as this host leaves): the page goes home.
                    self.return_page(page, txn, data.clone(), dirty, epoch, false, out, local)?;
                    if self.abandoned.remove(&(page, txn)) {
                        self.maybe_left(out, local);
                    }
                    return Ok(());
                };
                let nobody = p.reqs.is_empty();
                let recall = self.recalls.get(&page) == Some(&txn);
                // (The kernel lacked it: an invalidation of it still
                // under way finds nothing, and must not take this copy.)
                self.fencing.remove(&page);
                if self.evicting.remove(&page).is_some() {
                    out.push(Output::not_written(page, false, false, 0));
                }
                for &req in &p.reqs {
                    out.push(Output::Grant {
                        req,
                        data: data.clone(),
                        dirty,
                        writable: access == Access::Write,
                    });
                    self.grant_reqs.insert(req, page);
                }
                if !nobody {
                    let g = self.granting.entry(page).or_default();
                    g.left += p.reqs.len();
                    if dirty {
                        g.data = Some(data.clone());
                    }
                }
                self.faults.remove(&page);
                self.epochs.insert(page, epoch);
                if access == Access::Read {
                    self.readonly.insert(page);
                } else {
                    self.readonly.remove(&page);
                }
                if nobody && dirty {
                    // Every READ waiting for it gave up (cancelled), or a
                    // recall asked for nobody: the kernel will not have
                    // the page, so its data goes home before this host
                    // says it holds it (a Fetch then finds it absent, and
                    // the owner's disk has it).
                    if !recall {
                        out.push(Output::WentHome { page });
                    }
                    self.put_home(owner, page, epoch, data.clone(), true, out, local);
                }
                self.send(owner, Msg::Done { txn, page }, out, local);
                if recall {
                    // Recalled: home now (its dirty data is on its way to
                    // the disk, just sent), and held by nobody.
                    self.recalls.remove(&page);
                    self.release(page, None, out, local)?;
                }
            }
            Msg::Failed { txn, page, error } => {
                if self.recalls.get(&page) == Some(&txn) {
                    // (Its disk read failed: nobody holds the page.)
                    self.recalls.remove(&page);
                }
                if self.owner(page.file)? != from {
                    return Err(unexpected(&msg));
                }
                let failed = UpgradeAnswer::Failed(error);
                if self.answer_upgrade(page, Some(txn), failed, out).is_some() {
                    return Ok(());
                }
                if self.faults.get(&page).is_none_or(|p| p.txn != txn) {
                    // Failed already (this host is leaving).
                    if self.abandoned.remove(&(page, txn)) {
                        self.maybe_left(out, local);
                        return Ok(());
                    }
                    return Err(unexpected(&msg));
                }
                let p = self.faults.remove(&page).expect("checked above");
                if p.prefetch && p.access == Access::Read && error == PREFETCH_REFUSED {
                    // A prefetch refused after a fault joined it: the
                    // fault asks as any read fault does. (Only a prefetch:
                    // 11 is also the errno of a disk read that failed.)
                    let txn = self.new_txn();
                    let owner = self.owner(page.file)?;
                    self.ask(owner, page, txn, p.reqs, Access::Read, out, local);
                    return Ok(());
                }
                // Its kernel asked for the page, so it has none: this host
                // holds nothing of it (the owner holds it for nobody now).
                self.epochs.remove(&page);
                self.readonly.remove(&page);
                for req in p.reqs {
                    out.push(Output::ReadFailed { req, error });
                }
            }
            Msg::Absent { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                let Some((busy, _)) = d.busy else {
                    return Err(unexpected(&msg));
                };
                if busy != txn || d.holder != Some(from) || d.reading {
                    return Err(unexpected(&msg));
                }
                // (Answered: its release says nothing more.)
                d.released = None;
                if d.want == Want::Read && d.sharing {
                    // The writer's kernel had let the page go (clean, or
                    // written back first): nobody holds it.
                    d.sharing = false;
                    d.holder = None;
                }
                if d.orphaned {
                    self.end_txn(page, out, local);
                } else {
                    d.read_disk(page, out);
                }
            }
            Msg::Returned { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                // Its data (if dirty) is home, sent just before this; the
                // transaction may be over already (its recovery ended it).
                match d.busy {
                    Some((b, to)) if b == txn && !d.reading => {
                        if to == from {
                            // A new incarnation of the requester got what
                            // the dead one had asked for: it never reached
                            // the dead one.
                            self.end_txn(page, out, local);
                        } else if d.orphaned {
                            // The dead requester may have got it (and
                            // written to it) without acknowledging it.
                            // (Its sender's data, just written, is the
                            // newest there is: its retries must land.)
                            d.lost_from = Some(to);
                            out.push(Output::Lost { page, host: to });
                            self.end_txn(page, out, local);
                        } else {
                            // Its sender took an earlier incarnation of the
                            // requester for dead (its `Recover` came first)
                            // with the page still unsent: the live one
                            // never got it, and gets it from disk.
                            d.holder = None;
                            d.read_disk(page, out);
                        }
                    }
                    _ => {}
                }
            }
            Msg::Holding { pages, last } => self.holding(from, pages, last, out, local)?,
            Msg::Recover {
                dead, incarnation, ..
            } if dead == self.me => {
                // An earlier incarnation of this host: nothing of this one
                // goes there. (This very one: the asker lost it for longer
                // than the failure time-out; what it held is re-served, and
                // what it kept for an owner's next incarnation is refused.)
                if incarnation == self.incarnation {
                    self.lose_orphans(out)?;
                }
                let msg = Msg::Recovered { dead, incarnation };
                self.send(from, msg, out, local);
            }
            Msg::Recover {
                dead,
                incarnation,
                left,
            } => {
                let answer = Answer {
                    asker: from,
                    dead,
                    incarnation,
                };
                if self.declared.contains(&(dead, incarnation)) {
                    // Dealt with already.
                    self.to_answer.push(answer);
                    self.answer_recovers(out, local);
                } else {
                    // Taken for dead here too (and refused if it ever
                    // connects), even an incarnation this host never knew.
                    self.to_declare.push(answer);
                    out.push(Output::Declare {
                        host: dead,
                        incarnation,
                        left,
                    });
                }
            }
            Msg::Released { page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                // A move under way finds the page absent at the leaving
                // host and reads the disk, after the Put that came first.
                if d.holder == Some(from) && d.busy.is_none() {
                    d.holder = None;
                } else if d.holder == Some(from) {
                    d.released = Some(from);
                }
                d.readers.remove(&from);
            }
            Msg::Leaving { incarnation } => {
                if !self.declared.contains(&(from, incarnation)) {
                    self.said_leaving.insert((from, incarnation));
                }
                out.push(Output::Declare {
                    host: from,
                    incarnation,
                    left: true,
                });
            }
            Msg::Recovered { dead, incarnation } => {
                let Some(i) = self
                    .recoveries
                    .iter()
                    .position(|r| r.dead == dead && r.incarnation == incarnation)
                else {
                    // For an earlier incarnation of this host, which asked.
                    return Ok(());
                };
                self.recoveries[i].waiting.remove(&from);
                self.complete_recoveries(out, local);
            }
            Msg::Done { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                if d.busy != Some((txn, from)) || d.reading {
                    return Err(unexpected(&msg));
                }
                if d.want == Want::Read {
                    // A read-only copy, from the disk: nothing else changes.
                    d.readers.insert(from);
                    d.busy = None;
                    if let Some((txn, to, want)) = d.queue.pop_front() {
                        self.start(page, txn, to, want, out, local);
                    }
                    return Ok(());
                }
                // A rewrite the disk waits for, owed by the holder that
                // handed the page over (dirty, since its write failed), is
                // owed by the new holder now.
                if let Some((e, w)) = d.unwritten
                    && Some(w) == d.holder
                {
                    d.unwritten = Some((e, from));
                }
                if let Some(h) = d.holder
                    && h != from
                {
                    d.chain.insert(h);
                }
                d.holder = Some(from);
                d.busy = None;
                if let Some((txn, to, want)) = d.queue.pop_front() {
                    self.start(page, txn, to, want, out, local);
                }
            }
            Msg::Put {
                page,
                epoch,
                seq,
                ref data,
                home,
            } => {
                self.owned(page, &msg, from)?;
                // (A sender whose `Holding` this rebuilding owner waits
                // for may write data of an epoch its directory has not
                // heard of yet.)
                if !self.rebuild.contains(&from)
                    && let Some(why) = self
                        .dir
                        .get(&page)
                        .map_or((epoch > 0).then_some("an epoch never handed out"), |d| {
                            d.forbidden_put(from, epoch)
                        })
                {
                    // Answered, so that its sender neither waits for ever
                    // nor sends it again: its WRITE fails.
                    let error = REFUSED;
                    self.send(from, Msg::PutAck { page, seq, error }, out, local);
                    out.push(Output::Rejected(ProtocolError::Forbidden {
                        from,
                        what: "a Put",
                        why,
                    }));
                    return Ok(());
                }
                let d = self.dir.entry(page).or_default();
                // Epoch 0: data no incarnation of this owner granted (a
                // restarted manager's kernel kept it dirty). Taken only if
                // nobody has been served the page since this owner started,
                // or since it was lost with that very host; else the page
                // has moved on without it.
                let orphan_ok = d.busy.is_none()
                    && d.holder.is_none()
                    && (d.epoch == 0 || d.lost_from == Some(from))
                    && d.readers.is_empty();
                // An orphan taken is written as the newest data there is.
                let epoch = if epoch == 0 && orphan_ok {
                    d.disk_epoch.max(d.epoch)
                } else {
                    epoch
                };
                if epoch == 0 && !orphan_ok {
                    let ack = Msg::PutAck {
                        page,
                        seq,
                        error: SUPERSEDED,
                    };
                    self.send(from, ack, out, local);
                } else if epoch >= d.disk_epoch {
                    self.write_put(page, epoch, (from, seq), home, data.clone(), out);
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
            Msg::Orphan {
                page,
                epoch,
                seq,
                owner,
                ref data,
            } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                // Meant for the incarnation before this one (one between
                // may have served the page without the sender); nothing of
                // the page is served before the sender's word, and nobody
                // else says they hold a copy.
                if self.previous == Some(owner)
                    && self.rebuild.contains(&from)
                    && d.holder.is_none()
                    && d.busy.is_none()
                    && epoch >= d.disk_epoch
                    && d.readers.is_empty()
                {
                    self.write_put(page, epoch, (from, seq), true, data.clone(), out);
                } else {
                    // The sender's data is lost: reported here, where the
                    // older copy is served from.
                    out.push(Output::Lost { page, host: from });
                    let ack = Msg::PutAck {
                        page,
                        seq,
                        error: NOT_TAKEN,
                    };
                    self.send(from, ack, out, local);
                }
            }
            Msg::Revoke { txn, page } => {
                // (Only a file's owner sends it.)
                if self.claimed(page, from, "a Revoke")? != from {
                    return Err(unexpected(&msg));
                }
                if !self.epochs.contains_key(&page) || self.revokes.contains_key(&page) {
                    // (Evicted silently; or revoked already, for an
                    // earlier transaction whose answer comes first.)
                    if !self.revokes.contains_key(&page) {
                        self.send(from, Msg::Revoked { txn, page }, out, local);
                    }
                    return Ok(());
                }
                // (A writable copy, which the owner took for a reader's:
                // it goes the same way, its dirty data home first.)
                // (One on its way out already: that DROP's answer serves.)
                if !self.taking(page) && !self.leaving_with(page) {
                    out.push(Output::Invalidate { page });
                }
                self.revokes.insert(page, txn);
            }
            Msg::Share { txn, page } => {
                if self.claimed(page, from, "a Share")? != from {
                    return Err(unexpected(&msg));
                }
                if !self.epochs.contains_key(&page) {
                    self.send(from, Msg::Absent { txn, page }, out, local);
                    return Ok(());
                }
                if self.shares.contains_key(&page) {
                    return Err(unexpected(&msg));
                }
                if self.readonly.contains(&page) {
                    // A reader already: the owner took it for the writer
                    // still (its `Released` came while a move was under
                    // way). Its copy is on the owner's disk.
                    self.send(from, Msg::Kept { txn, page }, out, local);
                    return Ok(());
                }
                self.shares.insert(page, txn);
                // (A DROP or DOWNGRADE of it under way answers this too.)
                if !self.taking(page)
                    && !self.leaving_with(page)
                    && !self.evicting.contains_key(&page)
                {
                    out.push(Output::Downgrade { page });
                }
            }
            Msg::Kept { txn, page } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                if d.busy.map(|(t, _)| t) != Some(txn)
                    || d.want != Want::Read
                    || !d.sharing
                    || d.holder != Some(from)
                {
                    return Err(unexpected(&msg));
                }
                // The writer is a reader now; its dirty data came just
                // before (its disk write is counted in `writing`, and a
                // failed one leaves it owing the data): the read copy is
                // read from the disk once that is written.
                d.holder = None;
                d.sharing = false;
                d.readers.insert(from);
                if d.orphaned {
                    self.end_txn(page, out, local);
                } else {
                    d.read_disk(page, out);
                }
            }
            Msg::Revoked { page, .. } => {
                self.owned(page, &msg, from)?;
                let d = self.dir.entry(page).or_default();
                // (Whatever transaction sent it: no write waits for a host
                // that is not in `revoking`, one taken for dead included.)
                if d.revoking.remove(&from) {
                    self.proceed_if_revoked(page, out, local);
                }
            }
            Msg::Upgrade { txn, page } => {
                self.owned(page, &msg, from)?;
                if self.refused_leaving(txn, page, from, out, local) {
                    return Ok(());
                }
                let d = self.dir.entry(page).or_default();
                if d.holder == Some(from) {
                    // The writer already (a correct one answers itself).
                    let epoch = d.epoch;
                    self.send(from, Msg::Upgraded { txn, page, epoch }, out, local);
                } else if !d.readers.contains(&from) {
                    // Revoked (its kernel cannot drop the copy before this
                    // is answered: waiting would deadlock), or unknown here:
                    // the write faults the page in again.
                    self.send(from, Msg::Stale { txn, page }, out, local);
                } else if d.busy.is_some() {
                    d.queue.push_back((txn, from, Want::Upgrade));
                } else {
                    self.start(page, txn, from, Want::Upgrade, out, local);
                }
            }
            Msg::Stale { txn, page } => {
                if self.owner(page.file)? != from {
                    return Err(unexpected(&msg));
                }
                if self.abandoned.remove(&(page, txn)) {
                    self.maybe_left(out, local);
                    return Ok(());
                }
                self.answer_upgrade(page, Some(txn), UpgradeAnswer::Refault, out);
                // The kernel drops its copy as it refaults; and an UPGRADE
                // given up may have left it there: it goes.
                if self.readonly.contains(&page)
                    && !self.revokes.contains_key(&page)
                    && !self.taking(page)
                {
                    self.fencing.insert(page);
                    out.push(Output::Invalidate { page });
                }
            }
            Msg::Upgraded { txn, page, epoch } => {
                if self.owner(page.file)? != from {
                    return Err(unexpected(&msg));
                }
                if self.abandoned.remove(&(page, txn)) {
                    // (Failed as this host leaves: its copy is on its way
                    // home, and tells the owner so; a copy the kernel
                    // dropped before does not, and the owner takes this
                    // host for the writer now: it hears it holds nothing.)
                    if !self.epochs.contains_key(&page) {
                        self.send(from, Msg::Released { page }, out, local);
                    }
                    self.maybe_left(out, local);
                    return Ok(());
                }
                // This host is the writer now, whether its UPGRADE still
                // waits (it is granted) or was given up (its copy stays
                // read-only in the kernel; the next UPGRADE is answered
                // here). A copy dropped meanwhile told the owner so after
                // the `Upgrade` (`Released`, which undoes the writer).
                if self.readonly.contains(&page) {
                    self.readonly.remove(&page);
                    self.epochs.insert(page, epoch);
                }
                self.note_write(page);
                let dirty = self.owed(page);
                self.answer_upgrade(page, Some(txn), UpgradeAnswer::Granted { dirty }, out);
            }
            Msg::PutAck { page, seq, error } => {
                if error == REFUSED && self.puts.contains_key(&seq) {
                    out.push(Output::PutRefused { page, owner: from });
                }
                if self.puts.contains_key(&seq)
                    && let Some(page) = self.evict_puts.remove(&seq)
                {
                    out.push(Output::Evicted {
                        page,
                        present: true,
                        dirty: true,
                        written: error == 0,
                        error,
                    });
                }
                let req = match self.puts.remove(&seq) {
                    None => return Err(unexpected(&msg)),
                    Some(PutFor::Write(req, _)) => req,
                    Some(PutFor::Downgrade {
                        epoch,
                        data,
                        counted,
                        ..
                    }) => {
                        if counted {
                            self.put_done(page, error);
                        }
                        if error != 0 && error != SUPERSEDED && error != REFUSED {
                            // Not on disk, and the kernel's copy is clean:
                            // again at the next Retry, unless newer data of
                            // the page has gone by then.
                            self.retry.push(Resend {
                                page,
                                epoch,
                                data,
                                seq,
                                downgrade: true,
                            });
                        }
                        self.maybe_left(out, local);
                        return Ok(());
                    }
                    Some(PutFor::Answered(_)) => {
                        self.maybe_left(out, local);
                        return Ok(());
                    }
                    // Data an earlier incarnation of the owner never had,
                    // refused by its next: lost (the owner reports it).
                    Some(PutFor::Home { .. }) if error == NOT_TAKEN => {
                        out.push(Output::OrphanRefused { page });
                        self.maybe_left(out, local);
                        return Ok(());
                    }
                    // Refused (PutRefused above): not sent again.
                    Some(PutFor::Home { .. }) if error == REFUSED => {
                        self.maybe_left(out, local);
                        return Ok(());
                    }
                    // A page nobody waited for, home now; or superseded by
                    // a later holder's newer data: that holder answers for
                    // it.
                    Some(PutFor::Home { .. }) if error == 0 || error == SUPERSEDED => {
                        self.maybe_left(out, local);
                        return Ok(());
                    }
                    // Not on disk, and nobody else has it: again, at the
                    // next Retry (a disk that fails for good is not written
                    // to in a loop).
                    Some(PutFor::Home { epoch, data, .. }) => {
                        self.retry.push(Resend {
                            page,
                            epoch,
                            data,
                            seq,
                            downgrade: false,
                        });
                        return Ok(());
                    }
                };
                self.write_done(req, page, error, out);
                self.maybe_left(out, local);
            }
        }
        Ok(())
    }

    /// Writes `data` of `page`, of `epoch`, that `ack` (the writer and
    /// its `Put`'s number) sent (`home`: no kernel holds it), answered
    /// once the disk write is done or failed.
    fn write_put(
        &mut self,
        page: PageId,
        epoch: u64,
        ack: (HostId, u64),
        home: bool,
        data: PageData,
        out: &mut Vec<Output>,
    ) {
        let d = self.dir.entry(page).or_default();
        d.disk_epoch = epoch;
        // Data brought home to a new incarnation of this owner may be of
        // an epoch its directory never saw: the next move starts above it.
        d.epoch = d.epoch.max(epoch);
        d.writing += 1;
        self.disk_acks.insert(ack);
        if home {
            self.home_writes.insert(ack, (page, epoch));
        }
        out.push(Output::DiskWrite {
            page,
            data,
            epoch,
            ack,
        });
    }

    /// WRITE `req` of `page` is answered with `error`: one `Put` of the
    /// page fewer under way, and the page is on disk as of it, or not.
    fn write_done(&mut self, req: u64, page: PageId, error: i32, out: &mut Vec<Output>) {
        self.put_done(page, error);
        out.push(Output::WriteDone { req, error });
    }

    /// A `Put` of `page` this host holds is answered with `error`.
    fn put_done(&mut self, page: PageId, error: i32) {
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
    }

    /// An owner that leaves serves what it has started, and nothing new:
    /// request `txn` from `from` fails (`Failed`, [`SHUTTING_DOWN`]).
    /// Returns whether it did.
    fn refused_leaving(
        &mut self,
        txn: Txn,
        page: PageId,
        from: HostId,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> bool {
        if self.leaving.is_none() {
            return false;
        }
        let msg = Msg::Failed {
            txn,
            page,
            error: SHUTTING_DOWN,
        };
        self.send(from, msg, out, local);
        true
    }

    /// Remembers that this host wrote `page` (see `wrote`).
    fn note_write(&mut self, page: PageId) {
        if self.wrote.len() >= WROTE_PAGES {
            self.wrote.clear();
        }
        self.wrote.insert(page);
    }

    /// Whether this host's copy of `page` holds data not known to be on
    /// its owner's stable storage (as [`Core::hand_over`], which forgets it).
    fn owed(&self, page: PageId) -> bool {
        self.unsynced.contains(&page) || self.unacked.get(&page).is_some_and(|&n| n > 0)
    }

    /// `page` leaves this host: whether writes of it not on the owner's
    /// disk go with it (a `Put` not acknowledged, or one that failed), so
    /// that whoever gets it must keep it dirty and answer for them.
    fn hand_over(&mut self, page: PageId) -> bool {
        let unsynced = self.unsynced.remove(&page);
        unsynced || self.unacked.get(&page).is_some_and(|&n| n > 0)
    }

    /// Answers every UPGRADE waiting for a page of `owner`'s (of any owner:
    /// `None`) with `answer` (a failure, or a refault), in page order.
    fn fail_upgrades(
        &mut self,
        owner: Option<HostId>,
        answer: UpgradeAnswer,
        out: &mut Vec<Output>,
    ) -> Vec<(PageId, Txn)> {
        let mut pages: Vec<PageId> = self
            .upgrading
            .keys()
            .copied()
            .filter(|p| owner.is_none_or(|o| self.owners.get(&p.file) == Some(&o)))
            .collect();
        pages.sort();
        pages
            .into_iter()
            .filter_map(|page| Some((page, self.answer_upgrade(page, None, answer, out)?)))
            .collect()
    }

    /// Answers the UPGRADEs waiting for `page` with `answer`, if they wait
    /// in transaction `txn` (in any, with `None`); after a refault the
    /// page's next fault asks for the writable copy. Returns the
    /// transaction ended, if any.
    fn answer_upgrade(
        &mut self,
        page: PageId,
        txn: Option<Txn>,
        answer: UpgradeAnswer,
        out: &mut Vec<Output>,
    ) -> Option<Txn> {
        let p = self.upgrading.get(&page)?;
        if txn.is_some_and(|t| t != p.txn) {
            return None;
        }
        let p = self.upgrading.remove(&page)?;
        if answer == UpgradeAnswer::Refault {
            self.want_write.insert(page);
        }
        for req in p.reqs {
            out.push(Output::UpgradeAnswer { req, answer });
        }
        Some(p.txn)
    }

    /// Fails every fault on a page `which` picks with `error`, in page
    /// order; returns the transactions given up.
    fn fail_faults(
        &mut self,
        which: impl Fn(&Core, &PageId) -> bool,
        error: i32,
        out: &mut Vec<Output>,
    ) -> Vec<(PageId, Txn)> {
        let mut pages: Vec<PageId> = self
            .faults
            .keys()
            .copied()
            .filter(|p| which(self, p))
            .collect();
        pages.sort();
        let mut failed = Vec::with_capacity(pages.len());
        for page in pages {
            if let Some(p) = self.faults.remove(&page) {
                failed.push((page, p.txn));
                for req in p.reqs {
                    out.push(Output::ReadFailed { req, error });
                }
            }
        }
        failed
    }

    /// Sends dirty `data` of `page` that no kernel holds to its owner
    /// (`sole`: see [`PutFor::Home`]).
    #[allow(clippy::too_many_arguments)]
    fn put_home(
        &mut self,
        owner: HostId,
        page: PageId,
        epoch: u64,
        data: PageData,
        sole: bool,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> u64 {
        self.send_home(owner, page, epoch, data, false, sole, out, local)
    }

    /// Sends `data` of `page` home in a `Put` that its sender sends again
    /// if the owner's disk write fails: data no kernel holds, or
    /// (`downgrade`) the data of a clean copy the kernel holds (`sole`:
    /// see [`PutFor::Home`]). Returns the `Put`'s sequence number.
    #[allow(clippy::too_many_arguments)]
    fn send_home(
        &mut self,
        owner: HostId,
        page: PageId,
        epoch: u64,
        data: PageData,
        downgrade: bool,
        sole: bool,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> u64 {
        self.next_put += 1;
        let seq = self.next_put;
        let put = Msg::Put {
            page,
            epoch,
            seq,
            data: data.clone(),
            home: true,
        };
        let why = if downgrade {
            // Handed over dirty while the Put is under way.
            let counted = self.epochs.contains_key(&page);
            if counted {
                *self.unacked.entry(page).or_default() += 1;
            }
            PutFor::Downgrade {
                page,
                epoch,
                data,
                counted,
            }
        } else {
            PutFor::Home {
                page,
                epoch,
                data,
                sole,
            }
        };
        self.puts.insert(seq, why);
        self.sent_put(page, seq, epoch);
        self.send(owner, put, out, local);
        seq
    }

    /// `Put` number `seq` of `page`, of `epoch`, is sent.
    fn sent_put(&mut self, page: PageId, seq: u64, epoch: u64) {
        self.newest_put.insert(page, (seq, epoch));
    }

    /// A page taken from the kernel to go home (this host leaves, fences
    /// itself off its owner, or the operator evicts it): its data goes
    /// home if dirty, and its owner learns that this host holds it no more.
    /// Returns whether it was dirty, and the `Put` taking it home.
    fn release(
        &mut self,
        page: PageId,
        contents: Option<(PageData, bool)>,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(bool, Option<u64>), ProtocolError> {
        let owner = self.owner(page.file)?;
        let epoch = self.epochs.remove(&page).unwrap_or(0);
        self.readonly.remove(&page);
        let owed = self.hand_over(page);
        let mut went = (false, None);
        if let Some((data, dirty)) = contents {
            let dirty = dirty || owed;
            if dirty {
                went.0 = true;
                if self.dead.contains(&owner) {
                    out.push(Output::Lost { page, host: owner });
                } else {
                    went.1 = Some(self.put_home(owner, page, epoch, data, true, out, local));
                }
            }
        }
        if !self.dead.contains(&owner) {
            self.send(owner, Msg::Released { page }, out, local);
        }
        self.maybe_left(out, local);
        Ok(went)
    }

    /// Says [`Output::Left`] once a leave is complete: no page left to
    /// take, no move or `Put` under way (as a holder, or as an owner: a
    /// page on its way from here to a host that dies must come home to
    /// this incarnation); the peers are told first.
    fn maybe_left(&mut self, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        if self.leaving.is_none() || self.left {
            return;
        }
        // An owner takes its pages home before its files go with it: every
        // page of its files another host holds, writable or read-only
        // (the moves under way as it started to leave included, once
        // done), is recalled, its dirty data written to this host's disk.
        // A holder would otherwise have nowhere to write it.
        let me = self.me;
        let mut out_there: Vec<PageId> = self
            .dir
            .iter()
            .filter(|(p, d)| {
                self.owners.get(&p.file) == Some(&me)
                    && d.busy.is_none()
                    && (d.holder.is_some_and(|h| h != me) || d.readers.iter().any(|&r| r != me))
            })
            .map(|(p, _)| *p)
            .collect();
        out_there.sort();
        let gathered = out_there.is_empty();
        for page in out_there {
            self.recall(page, out, local);
        }
        let done = gathered
            && self.leaving.as_ref().is_some_and(BTreeSet::is_empty)
            && self.recalls.is_empty()
            && self.abandoned.is_empty()
            && self.fetching.is_empty()
            && self.puts.is_empty()
            && self.retry.is_empty()
            && self.disk_acks.is_empty()
            && self.upgrading.is_empty()
            && self.revokes.is_empty()
            && self.shares.is_empty()
            && self
                .dir
                .values()
                .all(|d| d.busy.is_none() && d.writing == 0 && d.revoking.is_empty())
            && !self.left;
        if !done {
            return;
        }
        self.left = true;
        let peers: Vec<HostId> = self
            .peers
            .iter()
            .copied()
            .filter(|h| !self.dead.contains(h))
            .collect();
        for h in peers {
            let msg = Msg::Leaving {
                incarnation: self.incarnation,
            };
            self.send(h, msg, out, local);
        }
        out.push(Output::Left);
    }

    /// A page of move `txn` (to `epoch`) that is not installed: this host
    /// sent it and its requester is taken for dead (`sent`), or this host
    /// was sent it and does not want it. The data goes home if dirty, and
    /// the owner hears of it.
    #[allow(clippy::too_many_arguments)]
    fn return_page(
        &mut self,
        page: PageId,
        txn: Txn,
        data: PageData,
        dirty: bool,
        epoch: u64,
        sent: bool,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        let owner = self.owner(page.file)?;
        if self.dead.contains(&owner) {
            if dirty {
                out.push(Output::Lost { page, host: owner });
            }
            return Ok(());
        }
        if dirty {
            // Its sender's data goes with the epoch before the move's: if
            // the requester got the page after all and wrote it back, its
            // Puts (of the move's epoch) win, and the sender's own earlier
            // Puts came before this one. A receiver's goes with the move's
            // epoch: the sender's earlier Puts, from another host, may
            // still be on their way, and are older.
            let epoch = if sent {
                epoch.saturating_sub(1).max(1)
            } else {
                epoch
            };
            // (Sent on, the requester may have written newer data home
            // since: not this host's to keep if the owner dies.)
            self.put_home(owner, page, epoch, data, !sent, out, local);
        }
        self.send(owner, Msg::Returned { txn, page }, out, local);
        Ok(())
    }

    /// Ends the owner's transaction on `page` with nobody holding it (its
    /// requester died, or the page came back): the disk has the page, and
    /// the next queued request starts.
    fn end_txn(&mut self, page: PageId, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        let d = self.dir.entry(page).or_default();
        d.busy = None;
        d.holder = None;
        d.reading = false;
        d.read_deferred = false;
        d.orphaned = false;
        d.sharing = false;
        d.awaiting_revokes = false;
        if let Some((txn, to, want)) = d.queue.pop_front() {
            self.start(page, txn, to, want, out, local);
        }
    }

    /// A write transaction waiting for read-only copies to be revoked
    /// reads the disk once none is left.
    fn proceed_if_revoked(
        &mut self,
        page: PageId,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) {
        let d = self.dir.entry(page).or_default();
        if !d.awaiting_revokes || !d.revoking.is_empty() {
            return;
        }
        d.awaiting_revokes = false;
        if d.orphaned {
            // Its requester died meanwhile.
            self.end_txn(page, out, local);
        } else if d.want == Want::Upgrade {
            // Only its copy is left: it becomes the writer's, at a new
            // epoch, and the transaction is over (no `Done` follows).
            let Some((txn, to)) = d.busy.take() else {
                return;
            };
            if !d.readers.contains(&to) {
                // It released its copy meanwhile (it leaves, or the
                // operator took the page): it has nothing to write to,
                // and would be taken for the writer of a page it does not
                // hold. The write faults the page in again.
                self.send(to, Msg::Stale { txn, page }, out, local);
                self.next_txn_of(page, out, local);
                return;
            }
            d.readers.clear();
            d.holder = Some(to);
            let epoch = d.epoch;
            self.send(to, Msg::Upgraded { txn, page, epoch }, out, local);
            self.next_txn_of(page, out, local);
        } else {
            d.read_disk(page, out);
        }
    }

    /// Starts the next transaction queued for `page`, if any.
    fn next_txn_of(&mut self, page: PageId, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        let next = self.dir.get_mut(&page).and_then(|d| d.queue.pop_front());
        if let Some((txn, to, want)) = next {
            self.start(page, txn, to, want, out, local);
        }
    }

    /// Incarnation `incarnation` of `x` is dead; see the module
    /// documentation.
    #[allow(clippy::too_many_arguments)]
    fn peer_died(
        &mut self,
        x: HostId,
        incarnation: u64,
        undelivered: Vec<Msg>,
        unsent: Vec<Msg>,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        if x == self.me {
            return Ok(());
        }
        // (Whether it said it was leaving: the `Recover`s say so.)
        let left = self.said_leaving.remove(&(x, incarnation));
        self.said_leaving
            .retain(|&(h, i)| h != x || i > incarnation);
        if !self.declared.insert((x, incarnation)) {
            // Dealt with already: what waited for it here need not wait.
            self.declared_now(x, incarnation, out, local);
            return Ok(());
        }
        // Holder side: pages on their way to it go home instead; and so do
        // pages it asked this host to move, if it owns them (the
        // requester's fault fails).
        let owners = &self.owners;
        let current = self.incarnations.get(&x) == Some(&incarnation);
        for (p, f) in self.fetching.iter_mut() {
            if f.to == x && f.incarnation == incarnation {
                f.orphan = true;
            }
            if current && owners.get(&p.file) == Some(&x) {
                f.owner_died = true;
            }
        }
        if self.incarnations.get(&x).is_none_or(|&i| i != incarnation) {
            // An incarnation before the one this host knows now (which it
            // never dealt with, or whose death it has handled), or one it
            // never knew (nothing it sent reached that one: what it sends
            // goes to the next): only pages still meant for it are
            // affected.
            self.declared_now(x, incarnation, out, local);
            return Ok(());
        }
        self.incarnations.insert(x, incarnation);
        self.dead.insert(x);
        let owned_by_x = |core: &Core, page: PageId| core.owners.get(&page.file) == Some(&x);
        // Every live host, this one included, takes the incarnation for
        // dead too (a death one host sees is the cluster's), and says when
        // nothing of it can reach the dead host any more. First: every
        // `Returned` this host sends below then finds its owner knowing.
        // (A peer never heard from cannot have dealt with it.)
        let mut waiting: BTreeSet<HostId> = self
            .peers
            .iter()
            .copied()
            .filter(|h| self.incarnations.contains_key(h) && !self.dead.contains(h))
            .collect();
        waiting.insert(self.me);
        for &h in &waiting {
            self.send(
                h,
                Msg::Recover {
                    dead: x,
                    incarnation,
                    left,
                },
                out,
                local,
            );
        }

        // Requester side: faults on the dead owner's pages fail (what was
        // parked for them goes home, or is lost with the owner).
        self.fail_faults(|core, &p| owned_by_x(core, p), HOST_DOWN, out);
        self.refetch.retain(|p| self.faults.contains_key(p));
        // And so do its upgrades: the read copies stay (they are on its
        // disk), to be reported to its next incarnation.
        let _ = self.fail_upgrades(Some(x), UpgradeAnswer::Failed(HOST_DOWN), out);
        let owners = &self.owners;
        self.want_write.retain(|p| owners.get(&p.file) != Some(&x));
        // Its revocations and shares under way finish in the kernel with
        // nobody to answer (its next incarnation never asked): the copy
        // goes, or stays read-only with its dirty data sent home, as for
        // any DROP or DOWNGRADE nobody waits for.
        self.revokes.retain(|p, _| owners.get(&p.file) != Some(&x));
        self.shares.retain(|p, _| owners.get(&p.file) != Some(&x));
        // A leaving host no longer waits for pages from a dead owner.
        self.abandoned
            .retain(|&(p, _)| self.owners.get(&p.file) != Some(&x));
        // What waited to be sent again to it is lost with it.
        let (gone, keep): (Vec<Resend>, Vec<Resend>) = std::mem::take(&mut self.retry)
            .into_iter()
            .partition(|r| owned_by_x(self, r.page));
        self.retry = keep;
        for r in gone {
            out.push(Output::Lost {
                page: r.page,
                host: x,
            });
            if r.downgrade {
                self.drop_lost_copy(r.page, out);
            }
        }
        // Writer side: Puts the dead owner did not acknowledge fail; data
        // no kernel holds that it cannot have had goes to its next
        // incarnation.
        let never: BTreeSet<u64> = unsent
            .iter()
            .filter_map(|m| match m {
                Msg::Put { seq, .. } | Msg::Orphan { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        let mut seqs: Vec<u64> = self
            .puts
            .iter()
            .filter(|(_, p)| owned_by_x(self, p.page()))
            .map(|(&s, _)| s)
            .collect();
        seqs.sort();
        for seq in seqs {
            match self.puts.remove(&seq) {
                Some(PutFor::Write(req, page)) => self.write_done(req, page, HOST_DOWN, out),
                Some(PutFor::Home {
                    page,
                    epoch,
                    data,
                    sole: true,
                }) if never.contains(&seq) && self.leaving.is_none() => {
                    let kept = Orphaned {
                        epoch,
                        owner: incarnation,
                        data,
                    };
                    self.orphans.insert(page, kept);
                }
                Some(PutFor::Home { page, .. }) => out.push(Output::Lost { page, host: x }),
                Some(PutFor::Downgrade { page, counted, .. }) => {
                    if counted {
                        self.put_done(page, HOST_DOWN);
                    }
                    out.push(Output::Lost { page, host: x });
                    self.drop_lost_copy(page, out);
                }
                Some(PutFor::Answered(_)) | None => {}
            }
            if let Some(page) = self.evict_puts.remove(&seq) {
                out.push(Output::not_written(page, true, true, HOST_DOWN));
            }
        }
        // Holder side: what it never acknowledged goes home.
        for msg in undelivered.into_iter().chain(unsent) {
            if let Msg::Data {
                txn,
                page,
                data,
                dirty,
                epoch,
                owner,
                ..
            } = msg
            {
                if owner != self.owner_incarnation(page.file)? {
                    // Moved for an owner that has died since: the dead
                    // host may have received it and written newer data to
                    // that owner's disk, and no later incarnation of the
                    // owner can tell which is newer. Its data is lost.
                    if dirty {
                        let host = self.owner(page.file)?;
                        out.push(Output::Lost { page, host });
                    }
                    continue;
                }
                self.return_page(page, txn, data, dirty, epoch, true, out, local)?;
            }
        }
        // Owner side.
        let mut pages: Vec<PageId> = self.dir.keys().copied().collect();
        pages.sort();
        let mut doubt = Vec::new();
        for page in pages {
            let alive = |h: HostId| !self.dead.contains(&h);
            let Some(d) = self.dir.get_mut(&page) else {
                continue;
            };
            d.queue.retain(|&(_, r, _)| r != x);
            // A reader's copy was durable: nothing is lost with it. A
            // write waiting for its `Revoked` waits no more: it was taken
            // for dead only once its lease, and every copy it had of this
            // host's pages, were gone.
            d.readers.remove(&x);
            let unblocked = d.revoking.remove(&x);
            // Data it owed the disk (its write failed) is lost with it.
            let owed = d.unwritten.is_some_and(|(_, w)| w == x);
            if owed {
                d.unwritten = None;
                d.read_if_written(page, out);
                if d.holder != Some(x) || d.busy.is_some() {
                    // (A page in doubt settles that when its recovery is
                    // complete.)
                    if d.busy.is_none() {
                        d.disk_epoch = d.disk_epoch.max(d.epoch);
                    }
                    out.push(Output::Lost { page, host: x });
                }
            }
            // It let the page go (its data came home before its
            // `Released`) before this move's request reached it: it sent the
            // requester nothing, and would have answered `Absent`.
            let released = d.busy.is_some() && d.holder == Some(x) && d.released == Some(x);
            match d.busy {
                None => {
                    if d.holder == Some(x) {
                        d.holder = None;
                        d.lost_from = Some(x);
                        // No Put of data from before it (one still on its
                        // way from an earlier holder) may land on what is
                        // served now.
                        d.lose(page, x, out);
                    }
                }
                // Its disk read ends it.
                Some((_, r)) if d.reading => d.orphaned |= r == x,
                // The writer asked to share died: its dirty data may have
                // died with it (what it sent home first is read first).
                Some(_) if d.want == Want::Read && d.sharing && d.holder == Some(x) => {
                    d.holder = None;
                    d.sharing = false;
                    if !owed && !released {
                        d.lost_from = Some(x);
                        d.lose(page, x, out);
                    }
                    if d.orphaned {
                        self.end_txn(page, out, local);
                    } else {
                        d.read_disk(page, out);
                    }
                }
                // Its requester died before (an earlier incarnation of the
                // same host): being recovered already.
                Some(_) if d.orphaned => {}
                // A read copy or an upgrade it asked for, or a write still
                // waiting for revocations: no data went to it. (A writer
                // sharing the page answers first; the revocations go on.)
                Some((_, r)) if r == x && (d.want != Want::Write || d.awaiting_revokes) => {
                    if d.want == Want::Read && d.sharing {
                        d.orphaned = true;
                    } else {
                        self.end_txn(page, out, local);
                    }
                }
                Some((txn, r)) if r == x => match d.holder {
                    // The page was fetched from a live holder: it may
                    // come back.
                    Some(h) if h != x && alive(h) => {
                        d.orphaned = true;
                        doubt.push((page, txn, true));
                    }
                    // From the disk, or from a holder that died too: it
                    // may have got the page and written to it (whether it
                    // acknowledged the page or not).
                    _ => {
                        d.lost_from = Some(x);
                        d.lose(page, x, out);
                        self.end_txn(page, out, local);
                    }
                },
                Some((txn, _)) => {
                    if d.holder == Some(x) && released {
                        d.holder = None;
                        d.read_disk(page, out);
                    } else if d.holder == Some(x) {
                        // Fetched from it: whether the requester got the
                        // page before it died, the requester's answer says.
                        // (It holds nothing any more, whichever it is.)
                        d.holder = None;
                        doubt.push((page, txn, false));
                    }
                }
            }
            if unblocked {
                self.proceed_if_revoked(page, out, local);
            }
        }
        // Its Puts on their way to the disk get no PutAck.
        // (Whether they were `home` still matters: a failed one of those is
        // lost with it.)
        self.disk_acks.retain(|&(w, _)| w != x);
        // A rebuilding directory does not wait for it, nor serve what it
        // asked for.
        self.held_back.retain(|&(from, _)| from != x);
        self.rebuild.remove(&x);
        // Recoveries waiting for it stop waiting; its Recovers need no answer.
        for r in &mut self.recoveries {
            r.waiting.remove(&x);
        }
        self.to_answer.retain(|a| a.asker != x);
        self.to_declare.retain(|a| a.asker != x);
        self.recoveries.push(Recovery {
            dead: x,
            incarnation,
            waiting,
            doubt,
        });
        self.declared_now(x, incarnation, out, local);
        self.complete_recoveries(out, local);
        self.rebuilt(out, local)
    }

    /// Answers the `Recover`s that waited for this host to take
    /// incarnation `incarnation` of `x` for dead, once they can be.
    fn declared_now(
        &mut self,
        x: HostId,
        incarnation: u64,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.to_declare)
            .into_iter()
            .partition(|a| a.dead == x && a.incarnation == incarnation);
        self.to_declare = later;
        self.to_answer.extend(now);
        self.answer_recovers(out, local);
    }

    /// Answers the `Recover`s for which nothing of this host can still
    /// reach the dead host: no page on its way there.
    fn answer_recovers(&mut self, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        let pending = std::mem::take(&mut self.to_answer);
        for a in pending {
            // Nor a page of the dead host's, moved for it: whatever this
            // host sends the asker of those comes before the answer.
            let moving = self.fetching.iter().any(|(p, f)| {
                (f.to == a.dead
                    && f.incarnation == a.incarnation
                    && self.owners.get(&p.file) == Some(&a.asker))
                    || (f.owner_died && self.owners.get(&p.file) == Some(&a.dead))
            });
            if moving {
                self.to_answer.push(a);
            } else {
                let msg = Msg::Recovered {
                    dead: a.dead,
                    incarnation: a.incarnation,
                };
                self.send(a.asker, msg, out, local);
            }
        }
    }

    /// Finishes the recoveries every live host has answered: a page still
    /// in doubt did not come back, so it is lost and served from disk.
    fn complete_recoveries(&mut self, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        while let Some(i) = self.recoveries.iter().position(|r| r.waiting.is_empty()) {
            let r = self.recoveries.remove(i);
            for (page, txn, requester_died) in r.doubt {
                let Some(d) = self.dir.get_mut(&page) else {
                    continue;
                };
                let Some((busy, to)) = d.busy else {
                    continue;
                };
                // A requester that died since is that death's to recover.
                if busy != txn || d.reading || (!requester_died && self.dead.contains(&to)) {
                    continue;
                }
                // No older data still on its way may land on what is served
                // from now (what came back before every answer is in), and
                // no rewrite is waited for.
                d.lose(page, r.dead, out);
                if requester_died {
                    self.end_txn(page, out, local);
                } else {
                    d.holder = None;
                    d.read_disk(page, out);
                }
            }
        }
        self.report_holdings(out, local);
    }

    /// `from` says which of this host's pages it holds (a part of them,
    /// the last if `last`): the directory records it as their holder, at
    /// the epoch of its copy. A host whose word comes after the directory
    /// was rebuilt without it (it was never heard from, or was taken for
    /// dead) and that holds pages is taken for dead: they may have been
    /// served from disk since.
    fn holding(
        &mut self,
        from: HostId,
        pages: Vec<(PageId, u64, Held)>,
        last: bool,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        // (A page of a file this host does not know it owns is none of its
        // business: the environment makes the files it exports known.)
        let mine = |core: &Core, p: &PageId| core.owners.get(&p.file) == Some(&core.me);
        if !self.rebuild.contains(&from) {
            if pages.iter().any(|(p, _, _)| mine(self, p))
                && let Some(&incarnation) = self.incarnations.get(&from)
                && !self.dead.contains(&from)
            {
                out.push(Output::Declare {
                    host: from,
                    incarnation,
                    left: false,
                });
            }
            return Ok(());
        }
        let mut conflict = None;
        for (page, epoch, held) in pages {
            if !mine(self, &page) {
                continue;
            }
            let d = self.dir.entry(page).or_default();
            // A writable copy is the only copy.
            let clash = match held {
                Held::Write => {
                    d.holder.is_some_and(|h| h != from) || d.readers.iter().any(|&r| r != from)
                }
                Held::Read => d.holder.is_some(),
            };
            if clash {
                // Two hosts say they hold it: a bug somewhere.
                conflict = Some((page, epoch, held));
                continue;
            }
            match held {
                Held::Write => d.holder = Some(from),
                Held::Read => {
                    d.readers.insert(from);
                }
            }
            d.epoch = d.epoch.max(epoch);
            // No older data may land on the disk under its copy.
            d.disk_epoch = d.disk_epoch.max(epoch);
        }
        if last {
            self.rebuild.remove(&from);
            self.rebuilt(out, local)?;
        }
        match conflict {
            Some(p) => Err(ProtocolError::Unexpected {
                from,
                msg: Msg::Holding {
                    pages: vec![p],
                    last,
                },
            }),
            None => Ok(()),
        }
    }

    /// Once every peer has said what it holds, serves what was held back
    /// meanwhile, in order.
    fn rebuilt(
        &mut self,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) -> Result<(), ProtocolError> {
        if !self.rebuild.is_empty() {
            return Ok(());
        }
        // (One refused is reported on its own: what the others caused
        // still happens.)
        while let Some((from, msg)) = self.held_back.pop_front() {
            if let Err(e) = self.message(from, msg, out, local) {
                out.push(Output::Rejected(e));
            }
        }
        Ok(())
    }

    /// Tells each peer's incarnation not told yet which of its pages this
    /// host holds, once nothing of its earlier incarnations can reach it
    /// any more (no recovery from one is under way here: every page that
    /// was moving for them has arrived, or gone home).
    /// Whether a read copy of a page of `owner`'s is still on its way out
    /// of the kernel (revoked, shared, or dropped because its data was
    /// lost with the owner): reported now, it would count as a reader of
    /// the owner's next incarnation, which may serve older data to others
    /// while this kernel still shows it.
    fn dropping_copies_of(&self, owner: HostId) -> bool {
        let of = |p: &PageId| self.owners.get(&p.file) == Some(&owner);
        self.revokes.keys().any(of)
            || self.shares.keys().any(of)
            || self
                .fencing
                .iter()
                .any(|p| of(p) && self.readonly.contains(p))
    }

    fn report_holdings(&mut self, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        let due: Vec<(HostId, u64)> = self
            .incarnations
            .iter()
            .filter(|&(h, i)| {
                !self.dead.contains(h)
                    && self.reported.get(h) != Some(i)
                    && !self.recoveries.iter().any(|r| r.dead == *h)
                    && !self.dropping_copies_of(*h)
            })
            .map(|(&h, &i)| (h, i))
            .collect();
        for (h, incarnation) in due {
            self.reported.insert(h, incarnation);
            // First the data an earlier incarnation never had: the
            // directory takes it only before this host's word.
            let orphans: Vec<PageId> = self
                .orphans
                .keys()
                .copied()
                .filter(|p| self.owners.get(&p.file) == Some(&h))
                .collect();
            for page in orphans {
                let Some(Orphaned { epoch, owner, data }) = self.orphans.remove(&page) else {
                    continue;
                };
                self.next_put += 1;
                let seq = self.next_put;
                // (Not kept again if this incarnation dies too: the next
                // may have served the page without this host.)
                self.puts.insert(
                    seq,
                    PutFor::Home {
                        page,
                        epoch,
                        data: data.clone(),
                        sole: false,
                    },
                );
                self.sent_put(page, seq, epoch);
                let msg = Msg::Orphan {
                    page,
                    epoch,
                    seq,
                    owner,
                    data,
                };
                self.send(h, msg, out, local);
            }
            let mut pages: Vec<(PageId, u64, Held)> = self
                .epochs
                .iter()
                .filter(|(p, _)| self.owners.get(&p.file) == Some(&h))
                .map(|(&p, &e)| {
                    let held = if self.readonly.contains(&p) {
                        Held::Read
                    } else {
                        Held::Write
                    };
                    (p, e, held)
                })
                .collect();
            pages.sort_by_key(|&(p, e, _)| (p, e));
            let parts = pages.len().div_ceil(HOLDING_PART).max(1);
            let mut chunks = pages.chunks(HOLDING_PART);
            for i in 0..parts {
                let part = chunks.next().unwrap_or(&[]).to_vec();
                let msg = Msg::Holding {
                    pages: part,
                    last: i + 1 == parts,
                };
                self.send(h, msg, out, local);
            }
        }
    }

    /// Owner side: brings `page` home for [`Input::Recall`], unless it is
    /// under way already or cannot be now (a move from this host, or this
    /// host's own fault of it, is under way: a later `Recall` does it).
    fn recall(&mut self, page: PageId, out: &mut Vec<Output>, local: &mut VecDeque<Msg>) {
        if self.recalls.contains_key(&page)
            || self.faults.contains_key(&page)
            || self.upgrading.contains_key(&page)
            || self.fetching.contains_key(&page)
        {
            return;
        }
        if self.epochs.contains_key(&page) {
            // This host's kernel has it (or had it and let it go): it gives
            // it up, its dirty data goes to the disk, and the directory
            // hears that this host holds it no more (`Released`).
            if !self.taking(page) {
                self.recalling.insert(page);
                out.push(Output::Invalidate { page });
            }
            return;
        }
        // Another host holds it, or read-only copies, or a transaction is
        // under way or queued: this host asks for the writable copy for
        // nobody, behind them, and lets it go as it comes.
        let txn = self.new_txn();
        self.recalls.insert(page, txn);
        self.ask(self.me, page, txn, Vec::new(), Access::Write, out, local);
    }

    /// Asks `owner` for `page` (transaction `txn`, `access`) for the
    /// kernel's requests `reqs`.
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &mut self,
        owner: HostId,
        page: PageId,
        txn: Txn,
        reqs: Vec<u64>,
        access: Access,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) {
        let prefetch = access == Access::Prefetch;
        self.faults.insert(
            page,
            Pending {
                txn,
                reqs,
                access,
                prefetch,
            },
        );
        self.send(owner, Msg::WhereIs { txn, page, access }, out, local);
    }

    /// A new transaction number (the requester's id in the top bits).
    fn new_txn(&mut self) -> Txn {
        self.next_txn += 1;
        (u64::from(self.me) << 48) | (self.next_txn & 0xffff_ffff_ffff)
    }

    /// The incarnation of `file`'s owner this host knows (its own, if it
    /// is the owner; 0 if it never heard of one).
    fn owner_incarnation(&self, file: u64) -> Result<u64, ProtocolError> {
        let owner = self.owner(file)?;
        Ok(if owner == self.me {
            self.incarnation
        } else {
            self.incarnations.get(&owner).copied().unwrap_or(0)
        })
    }

    /// The owner of `page`'s file, for a message only an owner sends
    /// (`what`, from `from`): refused unless `from` is the owner this
    /// host knows.
    /// A peer cannot make itself a file's owner by saying so (an owner
    /// only asks a page of a host it served it to, which had looked the
    /// file up first).
    fn claimed(
        &self,
        page: PageId,
        from: HostId,
        what: &'static str,
    ) -> Result<HostId, ProtocolError> {
        match self.owners.get(&page.file) {
            Some(&owner) if owner == from => Ok(owner),
            Some(_) => Err(ProtocolError::Forbidden {
                from,
                what,
                why: "ownership of a file another host owns",
            }),
            None => Err(ProtocolError::Forbidden {
                from,
                what,
                why: "ownership of a file this host knows no owner of",
            }),
        }
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
        want: Want,
        out: &mut Vec<Output>,
        local: &mut VecDeque<Msg>,
    ) {
        if self.past_limit(page) && self.recalls.get(&page) != Some(&txn) {
            // Past the end of a file that shrinks (or shrank): refused,
            // and the next request is looked at.
            let error = PAST_END;
            self.send(to, Msg::Failed { txn, page, error }, out, local);
            self.next_txn_of(page, out, local);
            return;
        }
        let d = self.dir.entry(page).or_default();
        d.busy = Some((txn, to));
        d.want = want;
        d.orphaned = false;
        d.released = None;
        d.lost_from = None;
        d.epoch += 1;
        let epoch = d.epoch;
        if want == Want::Upgrade && !d.readers.contains(&to) {
            // Revoked since it asked, or its copy was dropped: the write
            // faults the page in again.
            d.busy = None;
            self.send(to, Msg::Stale { txn, page }, out, local);
            self.next_txn_of(page, out, local);
            return;
        }
        // (Its kernel asks, so it has no copy: it evicted any it had.)
        if want != Want::Upgrade {
            d.readers.remove(&to);
        }
        if want == Want::Read {
            // A read-only copy is served from the disk only, once every
            // write of the page is reported: a writer keeps a read-only
            // copy and sends its dirty data home first (`Share`).
            match d.holder {
                Some(w) if w != to => {
                    d.sharing = true;
                    self.send(w, Msg::Share { txn, page }, out, local);
                }
                Some(_) => {
                    d.holder = None;
                    d.read_disk(page, out);
                }
                None => d.read_disk(page, out),
            }
            return;
        }
        // (There is no writer while there are readers, nor while any is
        // being revoked: a writer elsewhere hands its copy over as ever.)
        debug_assert!(
            d.holder.is_none_or(|h| h == to) || (d.readers.is_empty() && d.revoking.is_empty()),
            "a writer and read-only copies of {page:?}"
        );
        if (!d.readers.is_empty() || !d.revoking.is_empty()) && d.holder.is_none_or(|h| h == to) {
            // Every read-only copy goes before the writable one is served
            // (but the upgrading reader's own).
            d.holder = None;
            let mut readers = std::mem::take(&mut d.readers);
            if want == Want::Upgrade {
                readers.remove(&to);
                d.readers.insert(to);
            }
            d.revoking.extend(readers.iter().copied());
            d.awaiting_revokes = true;
            // An upgrade queued by a host revoked now is answered `Stale`
            // (after its `Revoke`): its kernel drops the copy only once
            // the UPGRADE is answered, and this write waits for that.
            let stale: Vec<(Txn, HostId)> = d
                .queue
                .iter()
                .filter(|&&(_, h, w)| w == Want::Upgrade && readers.contains(&h))
                .map(|&(t, h, _)| (t, h))
                .collect();
            d.queue
                .retain(|&(_, h, w)| !(w == Want::Upgrade && readers.contains(&h)));
            for r in readers {
                self.send(r, Msg::Revoke { txn, page }, out, local);
            }
            for (t, h) in stale {
                self.send(h, Msg::Stale { txn: t, page }, out, local);
            }
            self.proceed_if_revoked(page, out, local);
            return;
        }
        match d.holder {
            // Nobody has it; or the requester itself is the holder, so its
            // kernel evicted the page (it asks only for pages it lacks),
            // clean or after writing it back (that Put came before this
            // request on the same stream, so the disk has it).
            None => d.read_disk(page, out),
            Some(h) if h == to => d.read_disk(page, out),
            Some(h) => {
                let incarnation = if to == self.me {
                    self.incarnation
                } else {
                    self.incarnations.get(&to).copied().unwrap_or(0)
                };
                self.send(
                    h,
                    Msg::Fetch {
                        txn,
                        page,
                        to,
                        incarnation,
                        epoch,
                    },
                    out,
                    local,
                )
            }
        }
    }
}
