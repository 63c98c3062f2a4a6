//! The engine: this host's side of the page protocol
//! ([`crate::protocol::Core`]) and of the name service
//! ([`crate::names::Names`]), run against the real world under one lock
//! ([`Handle`]).
//!
//! Upcall workers bring it the kernel's requests ([`Upcall`]); connection
//! readers bring it connections and session frames ([`NetEvent`]); each
//! runs the engine in its own thread, under the lock. It answers the
//! kernel when the protocol says so, which may be much later (a page that
//! comes from another host): requests are answered out of order, by id.
//! Its outputs are executed here: messages go into the peer's
//! [`Session`] and out on its connection, pages are taken from the kernel
//! with `IOC_INVALIDATE` (retried while the kernel holds them busy), and the
//! owner's disk is this host's export directory.
//!
//! Every host, the owner included, goes through the protocol for every
//! page, so single copy holds across the cluster: the owner's own faults
//! fetch a page from the host that holds it like anybody else's.
//!
//! The kernel's LOCK requests go to the lock service
//! ([`crate::lockserv`]): each file's owner decides its locks, for every
//! host, and the engine carries the service's questions and answers.
//!
//! The kernel's SETSIZE requests go to each file's owner, which grows its
//! export file and tells every other host before it answers
//! ([`crate::sizes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use wfs_abi::{Attr, Grant, MAX_REPLY_ERRNO, MSG_MAX, PAGE_SIZE, Reply, ReplyBody, Request, errno};

use crate::cluster::{Cluster, EventSink, NetEvent, PeerHealth};
use crate::commit::{Committer, Flushed};
use crate::config::{Config, host_id};
use crate::costs::{Stage, Timers};
use crate::deaths::Deaths;
use crate::export::{Export, Resized, file_id};
use crate::invalidate::{Invalidator, Mode, Outcome};
use crate::lockserv::{Answered, LockMsg, LockOut, LockService};
use crate::names::{FileInfo, NameError, NameMsg, NameOutput, Names};
use crate::namespace::Namespace;
use crate::pool::{Pool, check_lent, lent_page};
use crate::prefetch::{CopyGrant, Prefetch};
use crate::protocol::{
    Core, HostId, Input, Msg, Output, PageData, PageId, ProtocolError, UpgradeAnswer,
};
use crate::session::Session;
use crate::sizes::{
    Asking as SizeAsking, OnDisk, Peers as SizePeers, SizeMsg, Sizes, Then as SizeThen, Told,
    Why as SizeWhy,
};
use crate::upcall::{Stats, Upcall, UpcallSink};
use crate::views::{ViewMsg, Views, Waiting as ViewWaiting};
use crate::wire::{Frame, PeerMsg};
use crate::{log, wlog};

mod opens;
mod space;
mod times;

/// What the engine hears.
#[derive(Debug)]
pub enum Event {
    /// A request from this host's kernel.
    Upcall(Upcall),
    /// Something on the network.
    Net(NetEvent),
    /// Disk writes of this owner flushed to stable storage ([`crate::commit`]).
    Flushed(Flushed<DiskDone>),
}

/// A disk write of the core's waiting for its flush: what reports it.
#[derive(Debug, Clone, Copy)]
pub struct DiskDone {
    page: PageId,
    epoch: u64,
    ack: (HostId, u64),
}

/// What `wfsctl stats` shows of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolStats {
    /// Messages sent to peers (each once, however often it went out).
    pub sent: u64,
    /// Messages delivered from peers.
    pub received: u64,
    /// Messages sent again on a new connection, unacknowledged on the old.
    pub resent: u64,
    /// Connections the engine has heard of (the first one per peer and
    /// every reconnection).
    pub connections: u64,
    /// Pages installed from another host or from disk for this host's
    /// kernel (READs answered through the protocol).
    pub pages_in: u64,
    /// Pages taken out of this host's kernel for another host.
    pub pages_out: u64,
    /// Dirty pages that came for READs the kernel had given up on, and
    /// went to their owner's disk instead.
    #[serde(default)]
    pub pages_home: u64,
    /// READs failed because the owner could not read the page from its
    /// disk (they fail with its error instead of reading zeros).
    #[serde(default)]
    pub pages_failed: u64,
    /// Pages whose newest data may have died with a host (it held them, or
    /// they were on their way to it), served from the owner's disk since.
    #[serde(default)]
    pub pages_lost: u64,
    /// Peer incarnations this host took for dead (a restarted manager, a
    /// peer silent past the failure time-out, or an owner's word).
    #[serde(default)]
    pub peers_dead: u64,
    /// Times this host's lease on a peer's pages ran out (no answer from
    /// it for the lease time) and it fenced itself: that peer's pages left
    /// its kernel.
    #[serde(default)]
    pub fencings: u64,
    /// INVALIDATEs the kernel answered busy and that were tried again.
    pub busy_retries: u64,
    /// Pages this owner wrote to its disk for the page protocol.
    #[serde(default)]
    pub disk_writes: u64,
    /// `fdatasync` calls that made them durable (one per file per batch:
    /// fewer than the writes when many arrive together).
    #[serde(default)]
    pub disk_syncs: u64,
    /// Read-only copies installed (`mrsw` files; among `pages_in`).
    #[serde(default)]
    pub read_copies: u64,
    /// UPGRADEs of read-only copies granted by their owner in place.
    #[serde(default)]
    pub upgrades: u64,
    /// UPGRADEs answered "refault" (the copy was stale: another host's
    /// write came first), whose writes faulted the page in again.
    #[serde(default)]
    pub refaults: u64,
    /// Pages fetched ahead of a sequential scan and kept for the kernel.
    #[serde(default)]
    pub prefetched: u64,
    /// READs answered from those at once.
    #[serde(default)]
    pub prefetch_hits: u64,
    /// Those dropped unread ([`crate::prefetch::KEEP_FOR`] after they
    /// came; given back to their owners if still held as they came).
    #[serde(default)]
    pub prefetch_unread: u64,
    /// VIEW requests (pages read for a view, `views.rs`).
    #[serde(default)]
    pub views: u64,
    /// LOCK requests from this host's kernel (`lockserv.rs`).
    #[serde(default)]
    pub locks: u64,
    /// Of those, locks granted (taken by the kernel).
    #[serde(default)]
    pub locks_granted: u64,
    /// Of those, refused: held by another (`EAGAIN`), or a wait that would
    /// deadlock (`EDEADLK`).
    #[serde(default)]
    pub locks_refused: u64,
    /// Of those, failed otherwise: the owner gone, a wait past the
    /// deadline (`ENOLCK`).
    #[serde(default)]
    pub locks_failed: u64,
    /// Grants the kernel refused (it had given the request up), undone.
    #[serde(default)]
    pub locks_undone: u64,
    /// Requests, from any host, that waited in this owner's lock table.
    #[serde(default)]
    pub lock_waits: u64,
    /// SETSIZE requests from this host's kernel (`sizes.rs`).
    #[serde(default)]
    pub sizes: u64,
    /// Of those, answered done: the owner has the file that long, and
    /// every connected host has heard of it.
    #[serde(default)]
    pub sizes_done: u64,
    /// Of those, refused (`EOPNOTSUPP`).
    #[serde(default)]
    pub sizes_refused: u64,
    /// Shrinks of this owner's files begun (from any host's truncate).
    #[serde(default)]
    pub shrinks: u64,
    /// Of those, failed otherwise: the owner gone, its disk.
    #[serde(default)]
    pub sizes_failed: u64,
    /// New sizes of this owner's files sent to peers (`Is`, one per peer).
    #[serde(default)]
    pub sizes_told: u64,
    /// New sizes heard from other owners (and told this host's kernel),
    /// of files this manager has looked up or not.
    #[serde(default)]
    pub sizes_heard: u64,
    /// GETATTRs of other hosts' files that asked the owner for its times
    /// (theirs were [`ATTR_TIMES`] old): a `Stat` sent, two messages back.
    #[serde(default)]
    pub times_asked: u64,
    /// CREATEs from this host's kernel (`engine/space.rs`).
    #[serde(default)]
    pub creates: u64,
    /// Of those, sent to the host a placement rule names.
    #[serde(default)]
    pub creates_placed: u64,
    /// Of those, failed (`EEXIST` for `O_EXCL` included).
    #[serde(default)]
    pub creates_failed: u64,
    /// UNLINKs from this host's kernel.
    #[serde(default)]
    pub unlinks: u64,
    /// Of those, failed.
    #[serde(default)]
    pub unlinks_failed: u64,
    /// RENAMEs from this host's kernel.
    #[serde(default)]
    pub renames: u64,
    /// Of those, failed (`EXDEV` included: `mv` copies then).
    #[serde(default)]
    pub renames_failed: u64,
    /// OPENs from this host's kernel.
    #[serde(default)]
    pub opens: u64,
    /// Of those, failed.
    #[serde(default)]
    pub opens_failed: u64,
    /// This owner's files unlinked or renamed over while some host had
    /// them open, kept until the last close.
    #[serde(default)]
    pub files_kept: u64,
    /// Modification times set (`utimensat`) of this host's kernel's files,
    /// at their owners.
    #[serde(default)]
    pub times_set: u64,
    /// RELEASEs of opens an earlier manager of this host counted, ignored.
    #[serde(default)]
    pub releases_stale: u64,
    /// Messages from authenticated peers refused as ones no correct peer
    /// sends (Documentation/protocol.md, "What a peer may not do"):
    /// changed nothing, answered nothing.
    #[serde(default)]
    pub refused_from_peers: u64,
    /// Messages from peers that did not fit the protocol's state (a reply
    /// to no request, a frame out of turn), dropped: a peer's bug, or one
    /// sent before a change this host has not told it of.
    #[serde(default)]
    pub unexpected_from_peers: u64,
}

/// The engine's counters, shared with the status report.
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    resent: AtomicU64,
    connections: AtomicU64,
    pages_in: AtomicU64,
    pages_out: AtomicU64,
    pages_home: AtomicU64,
    pages_failed: AtomicU64,
    pages_lost: AtomicU64,
    peers_dead: AtomicU64,
    fencings: AtomicU64,
    busy_retries: AtomicU64,
    disk_writes: AtomicU64,
    disk_syncs: AtomicU64,
    read_copies: AtomicU64,
    upgrades: AtomicU64,
    refaults: AtomicU64,
    prefetched: AtomicU64,
    prefetch_hits: AtomicU64,
    prefetch_unread: AtomicU64,
    views: AtomicU64,
    locks: AtomicU64,
    locks_granted: AtomicU64,
    locks_refused: AtomicU64,
    locks_failed: AtomicU64,
    locks_undone: AtomicU64,
    lock_waits: AtomicU64,
    sizes: AtomicU64,
    sizes_done: AtomicU64,
    sizes_refused: AtomicU64,
    shrinks: AtomicU64,
    sizes_failed: AtomicU64,
    sizes_told: AtomicU64,
    sizes_heard: AtomicU64,
    times_asked: AtomicU64,
    creates: AtomicU64,
    creates_placed: AtomicU64,
    creates_failed: AtomicU64,
    unlinks: AtomicU64,
    unlinks_failed: AtomicU64,
    renames: AtomicU64,
    renames_failed: AtomicU64,
    opens: AtomicU64,
    opens_failed: AtomicU64,
    files_kept: AtomicU64,
    times_set: AtomicU64,
    releases_stale: AtomicU64,
    refused_from_peers: AtomicU64,
    unexpected_from_peers: AtomicU64,
    /// How long each kind of page message took to handle.
    pub messages: crate::messages::Messages,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ProtocolStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProtocolStats {
            sent: g(&self.sent),
            received: g(&self.received),
            resent: g(&self.resent),
            connections: g(&self.connections),
            pages_in: g(&self.pages_in),
            pages_out: g(&self.pages_out),
            pages_home: g(&self.pages_home),
            pages_failed: g(&self.pages_failed),
            pages_lost: g(&self.pages_lost),
            peers_dead: g(&self.peers_dead),
            fencings: g(&self.fencings),
            busy_retries: g(&self.busy_retries),
            disk_writes: g(&self.disk_writes),
            disk_syncs: g(&self.disk_syncs),
            read_copies: g(&self.read_copies),
            upgrades: g(&self.upgrades),
            refaults: g(&self.refaults),
            prefetched: g(&self.prefetched),
            prefetch_hits: g(&self.prefetch_hits),
            prefetch_unread: g(&self.prefetch_unread),
            views: g(&self.views),
            locks: g(&self.locks),
            locks_granted: g(&self.locks_granted),
            locks_refused: g(&self.locks_refused),
            locks_failed: g(&self.locks_failed),
            locks_undone: g(&self.locks_undone),
            lock_waits: g(&self.lock_waits),
            sizes: g(&self.sizes),
            sizes_done: g(&self.sizes_done),
            sizes_refused: g(&self.sizes_refused),
            shrinks: g(&self.shrinks),
            sizes_failed: g(&self.sizes_failed),
            sizes_told: g(&self.sizes_told),
            sizes_heard: g(&self.sizes_heard),
            times_asked: g(&self.times_asked),
            creates: g(&self.creates),
            creates_placed: g(&self.creates_placed),
            creates_failed: g(&self.creates_failed),
            unlinks: g(&self.unlinks),
            unlinks_failed: g(&self.unlinks_failed),
            renames: g(&self.renames),
            renames_failed: g(&self.renames_failed),
            opens: g(&self.opens),
            opens_failed: g(&self.opens_failed),
            files_kept: g(&self.files_kept),
            times_set: g(&self.times_set),
            releases_stale: g(&self.releases_stale),
            refused_from_peers: g(&self.refused_from_peers),
            unexpected_from_peers: g(&self.unexpected_from_peers),
        }
    }
}

/// A READ still unanswered after this long is failed by the engine: every
/// mount has given up on it by then (the longest `timeout` mount option is
/// an hour), and its pool slot is the manager's until it answers. (A mount
/// with a shorter time-out gives up earlier; its slot comes back when the
/// page does, or at this deadline.)
pub const READ_DEADLINE: Duration = Duration::from_secs(3600 + 5);

/// A page transaction not answered with its page within this long is no
/// longer timed ([`crate::costs::Timers`]).
const TIMED_FOR: Duration = Duration::from_secs(60);

/// How often the engine looks at timers when nothing happens.
const TICK: Duration = Duration::from_millis(20);

/// How long the times of another host's file, heard from its owner, answer
/// GETATTR before it is asked again (one round trip; its size needs none:
/// owners say every new size). As NFS's attribute cache (`acregmin`, 3 s)
/// but shorter: a `stat` sees a write-back at the owner at most this late.
/// (`tests/qemu/sizes.sh` step 6 waits 1.2 s on it.)
pub const ATTR_TIMES: Duration = Duration::from_secs(1);

/// Times heard kept before those [`ATTR_TIMES`] old are dropped.
const TIMES_KEPT: usize = 4096;
/// How often a page the kernel keeps busy is tried again.
const RETRY: Duration = Duration::from_millis(1);
/// Events handled with their frames held ([`Engine::cork`]) at most
/// before those go out.
const CORKED_EVENTS: usize = 64;
/// Whether a connected peer acknowledges what it is sent: the heartbeat
/// shows its manager's connection threads run, this that its engine does.
/// A wait ends only once every message that waited when it began is
/// acknowledged: a peer that acknowledges one message now and then, never
/// catching up, does not keep this host's resend queue growing for ever.
#[derive(Debug, Default)]
struct AckWatch {
    /// The last message sent when the wait began: the wait lasts until
    /// the peer acknowledges it.
    target: u64,
    /// Since when messages have waited (up to `target`).
    since: Option<Instant>,
}

impl AckWatch {
    /// Notes at `now` that the peer has acknowledged messages up to
    /// `acked` of those sent up to `sent`, and whether messages wait for
    /// it (`waiting`); returns how long messages have waited without the
    /// peer catching up with those that waited when the wait began.
    fn note(&mut self, acked: u64, sent: u64, waiting: bool, now: Instant) -> Duration {
        let since = match self.since {
            Some(since) if waiting && acked < self.target => since,
            _ => {
                self.target = sent;
                now
            }
        };
        self.since = waiting.then_some(since);
        now.saturating_duration_since(since)
    }
}

/// How often data that failed to reach its owner's disk is sent again
/// (a full disk is not written to in a loop).
const RESEND_AFTER: Duration = Duration::from_secs(1);
/// How long an operator's eviction waits for a page that is busy (in the
/// kernel, or moving between hosts).
const EVICT_WAIT: Duration = Duration::from_secs(5);
/// A page busy for this long is logged (and still retried).
const BUSY_WARN: Duration = Duration::from_secs(5);
/// How much longer than a peer's lease this host waits, from when it last
/// heard from the peer, before it takes the peer for dead on another
/// host's word: by then the peer has fenced itself (timers of different
/// hosts run at slightly different rates, and a tick may come late).
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// One peer, as the engine sees it.
struct Peer {
    name: String,
    host: HostId,
    /// The connection frames go out on, once the engine has heard of it.
    conn: Option<u64>,
    /// The peer manager's incarnation, from its last handshake.
    incarnation: Option<u64>,
    /// Its incarnations this host took for dead: one that connects again
    /// is refused (its pages were re-served elsewhere).
    dead: BTreeSet<u64>,
    /// Since when it has had no connection (none yet: since the start).
    down_since: Option<Instant>,
    /// Never heard from for the failure time-out: this host's directory
    /// was rebuilt without its word.
    absent: bool,
    /// Until when this host may keep the pages of the peer's files: the
    /// peer heard from this host no earlier than the lease time before.
    lease_until: Option<Instant>,
    /// No lease (none yet, or it ran out): the peer's pages are not held
    /// here.
    fenced: bool,
    /// The fence was logged (its end is too).
    fence_logged: bool,
    /// An incarnation of it that said it was leaving (taken for dead at
    /// once: it holds nothing).
    left: Option<u64>,
    /// An incarnation to take for dead once its lease has run out (on
    /// another host's word).
    declare_later: Option<u64>,
    /// An incarnation another host heard leave (its `Recover` said so):
    /// taken for dead at its own `Leaving`, which comes on the connection
    /// after everything it sent this host before (a reconnection of it is
    /// welcome: its session sends them again); or, should that never
    /// come, once its lease has run out with no connection.
    leaving_heard: Option<u64>,
    session: Session<PeerMsg>,
    /// Whether it acknowledges what it is sent ([`Engine::check_sessions`]).
    acks: AckWatch,
    /// Highest acknowledgement sent to it.
    acked: u64,
    /// Highest acknowledgement sent to it ahead of waiting messages.
    acked_first: u64,
}

impl Peer {
    /// Its incarnation if this host has heard of one and not taken it for
    /// dead.
    fn live_incarnation(&self) -> Option<u64> {
        self.incarnation.filter(|i| !self.dead.contains(i))
    }
}

/// A READ waiting for its page.
struct Waiting {
    page: PageId,
    /// The first of the slots lent with it.
    slot: u32,
    /// How many pages it asks for (and slots lent): its page and the ones
    /// after it, if they are at hand.
    count: u32,
    started: Instant,
}

/// An invalidation the kernel answered `EAGAIN`.
struct Busy {
    page: PageId,
    mode: Mode,
    since: Instant,
    warned: bool,
}

/// An operator's eviction of a page under way ([`Handle::evict`]).
struct Evict {
    mode: Mode,
    /// Who waits for its outcome, and the error that came with it.
    waiters: Vec<mpsc::Sender<(Outcome, i32)>>,
    /// What the INVALIDATE said.
    writable: bool,
    ioctl_ns: u64,
}

/// What the engine works with.
pub struct Parts {
    /// This host's export directory.
    pub export: Arc<Export>,
    /// The page pool mapped from `/dev/wfs`.
    pub pool: Arc<Pool>,
    /// Takes pages from the kernel.
    pub inval: Arc<Invalidator>,
    /// Upcall statistics.
    pub stats: Arc<Stats>,
    /// The engine's own counters.
    pub counters: Arc<Counters>,
    /// How long a READ may wait before the engine fails it
    /// ([`READ_DEADLINE`]).
    pub read_deadline: Duration,
    /// How long the kernel waits for an answer (REGISTER's `timeout_ms`;
    /// zero: the default mount time-out): the size service's waits are
    /// bounded well below it ([`crate::sizes`]).
    pub kernel_timeout: Duration,
    /// The session its registration with this host's kernel opened (what
    /// the kernel's RELEASEs of opens this manager counted carry).
    pub kernel_session: u64,
    /// The files this host's kernel had open when this manager registered,
    /// with how many opens each (`IOC_OPENS`): this manager counts them.
    pub open_files: Vec<(u64, u32)>,
    /// This manager's incarnation.
    pub incarnation: u64,
    /// The incarnation this host's manager ran as before, if its disk
    /// says.
    pub previous: Option<u64>,
    /// The incarnations of peers taken for dead so far, by this manager
    /// and the earlier ones of this host.
    pub deaths: Deaths,
}

/// The engine's state; see the module documentation.
pub struct Engine {
    fd: RawFd,
    me: HostId,
    export: Arc<Export>,
    pool: Arc<Pool>,
    inval: Arc<Invalidator>,
    /// The peer connections, once attached ([`Handle::attach`]).
    cluster: Option<Arc<Cluster>>,
    /// Flushes disk writes in batches, once started
    /// ([`Handle::start_committer`]); until then each is flushed at once.
    committer: Option<Arc<Committer<DiskDone>>>,
    stats: Arc<Stats>,
    read_grant: Grant,
    core: Core,
    names: Names,
    peers: Vec<Peer>,
    by_host: HashMap<HostId, usize>,
    reads: HashMap<u64, Waiting>,
    /// UPGRADEs of read-only copies waiting for their owner, and when
    /// each came.
    upgrades: HashMap<u64, (PageId, Instant)>,
    writes: HashMap<u64, Instant>,
    /// Kernel requests for files this manager does not know yet (its
    /// kernel looked them up under a manager that has died), by file id,
    /// waiting for the name service to find the file's name and owner.
    unresolved: BTreeMap<u64, Vec<Upcall>>,
    /// The name-service requests finding them: request id → file id.
    naming: HashMap<u64, u64>,
    /// The next such request id (from 2^63 on: apart from the kernel's).
    next_naming: u64,
    /// WRITEs of pages this incarnation never granted (a dead manager's
    /// grants, revoked, left them dirty in the kernel): the page is taken
    /// out of the kernel once its WRITE is answered.
    orphans: HashMap<u64, PageId>,
    lookups: HashMap<u64, Instant>,
    readdirs: HashMap<u64, Instant>,
    /// The cluster's directory as of the last READDIR from cookie 0.
    listing: Vec<Vec<u8>>,
    /// READDIRs waiting for a listing, and the cookie each asked for.
    pending_cookie: HashMap<u64, u64>,
    /// When the owner last said the times of another host's file (a
    /// GETATTR asks it again once `attr_times` passed).
    times_heard: HashMap<u64, Instant>,
    /// [`ATTR_TIMES`] (tests set it).
    attr_times: Duration,
    /// `times_heard` is purged of old entries when it grows this long.
    times_purge_at: usize,
    busy: Vec<Busy>,
    /// The operator's evictions under way.
    evicts: HashMap<PageId, Evict>,
    /// When data that failed to reach its owner's disk was last sent
    /// again ([`Input::Retry`]).
    last_resend: Instant,
    /// How long a READ may wait for its page.
    read_deadline: Duration,
    /// How long a peer may stay disconnected before it is taken for dead.
    failure_timeout: Duration,
    /// How long this host keeps a peer's pages without hearing from it.
    lease: Duration,
    /// This incarnation was taken for dead by a peer: the manager restarts.
    rejoining: bool,
    /// This host's name (for the tie-break of [`Engine::in_majority`]).
    name: String,
    /// "Cut off from most of the cluster" was logged.
    minority_logged: bool,
    /// Since when this host has been on the majority side
    /// ([`Engine::in_majority`]); `None` while it is not. A peer's failure
    /// time-out counts from then at the earliest.
    majority_since: Option<Instant>,
    /// A leave is complete: every page is back with its owner.
    left: bool,
    counters: Arc<Counters>,
    /// The incarnations taken for dead, on disk.
    deaths: Deaths,
    /// Pages fetched ahead of sequential scans.
    prefetch: Prefetch,
    /// Pages sent to the kernel after the first of a READ, while the core
    /// ran: the scan moves past them once it is done.
    read_later: Vec<PageId>,
    /// A READ's own fault is in the core: the pages in `read_later` wait
    /// for the scan to see that READ's page first.
    hold_reads: bool,
    /// VIEW requests waiting for another host's disk.
    views: Views,
    /// The locks of the files this host owns, and this kernel's lock
    /// requests waiting for another owner.
    locks: LockService,
    /// This kernel's SETSIZEs waiting for another owner, and the growths
    /// of this host's files being told to the other hosts.
    sizes: Sizes,
    /// Whether fetching ahead is safe: once the pages a manager that died
    /// left dirty in the kernel are written home and dropped
    /// ([`Handle::left_pages_flushed`]). Before, a page fetched ahead could
    /// be one the kernel still holds from it, and its grant would make the
    /// kernel's old data look like this manager's.
    prefetch_ok: bool,
    /// A write home of such a page failed: the kernel keeps it, so
    /// nothing is fetched ahead for the rest of this manager's life.
    orphan_failed: bool,
    /// Frames held back while the queued events are handled
    /// ([`Engine::cork`]): written together afterwards, a system call per
    /// connection instead of one per frame.
    corked: Option<Vec<(usize, u64, Frame)>>,
    /// When the page transactions under way began ([`crate::costs`]).
    timers: Timers,
    /// Shrinks of this owner's files under way, by file: the pages past
    /// the new end are being taken back ([`Engine::shrinks_progress`]).
    shrinks: BTreeMap<u64, Shrink>,
    /// [`Engine::shrinks_progress`] is running (it is not entered again
    /// from the requests it hands on).
    shrinking_now: bool,
    /// Files this owner has cut since it started: a peer whose manager
    /// restarts is told their sizes ([`Engine::tell_cuts`]).
    cut_files: BTreeSet<u64>,
    /// Names being made and removed ([`space`]).
    space: space::Space,
    /// This host's opens and its files' open sets ([`opens`]).
    opens: opens::Opens,
    /// SETTIMES under way at other owners.
    times: times::Times,
    /// Their reservations and forget rounds (`namespace.rs`).
    space_names: Namespace<space::SpaceThen>,
    /// Placement rules (`[[place]]`): files made under a matching name
    /// are made at that host.
    placement: Vec<(glob::Pattern, String)>,
    /// `[[file]]` rules: how the file of each name is kept coherent, set
    /// when the engine starts and when this host makes a file of that name.
    file_rules: Vec<(String, crate::protocol::Coherence)>,
}

/// A shrink of one of this owner's files (Documentation/fs-plan.md, step
/// 1): the core's limit is set at `first`, and the pages from there on
/// are recalled; once they are all home (and no growth of the file is
/// being told), the export is cut to `size` and every host told.
#[derive(Debug)]
struct Shrink {
    /// The new size.
    size: u64,
    /// The first page recalled: the one the new end falls in (its tail
    /// past the end is cut on disk too, so no host may keep it cached).
    first: u64,
    /// Who waits for it.
    then: SizeThen,
    /// The limit before it (to put back if it fails).
    limit_before: Option<u64>,
    /// When it began: it gives up after [`Sizes::ack_wait`].
    since: Instant,
    /// Size requests of the file that came meanwhile, in order: size,
    /// grow, and who waits. Handled once the shrink is over.
    queued: Vec<(u64, bool, SizeThen)>,
    /// Cut: the export has the new size, which is being told. Until every
    /// peer has heard it (or the telling gave up on it), the limit stays
    /// at `first` (a host that has not heard of the cut must not get the
    /// page the end falls in and write past the end in it), and requests
    /// still wait.
    cut: bool,
}

impl Engine {
    /// An engine for this host (`cfg`), answering the kernel on `fd`.
    pub fn new(cfg: &Config, fd: RawFd, mut parts: Parts) -> Engine {
        let open_files = std::mem::take(&mut parts.open_files);
        let mut e = Engine::build(cfg, fd, parts);
        e.find_kept();
        e.adopt_opens(&open_files);
        e
    }

    fn build(cfg: &Config, fd: RawFd, parts: Parts) -> Engine {
        let Parts {
            export,
            pool,
            inval,
            stats,
            counters,
            read_deadline,
            kernel_timeout,
            kernel_session,
            open_files: _,
            incarnation,
            previous,
            deaths,
        } = parts;
        let me = host_id(&cfg.host);
        let sizes = Sizes::new(kernel_timeout);
        // (A vote on a name holds as long as the kernel waits.)
        let vote_lease = sizes.kernel_timeout();
        let peers: Vec<Peer> = cfg
            .peers
            .iter()
            .map(|p| Peer {
                name: p.name.clone(),
                host: host_id(&p.name),
                conn: None,
                incarnation: None,
                dead: BTreeSet::new(),
                down_since: Some(Instant::now()),
                absent: false,
                lease_until: None,
                fenced: false,
                fence_logged: false,
                left: None,
                declare_later: None,
                leaving_heard: None,
                session: Session::new(),
                acks: AckWatch::default(),
                acked: 0,
                acked_first: 0,
            })
            .collect();
        let mut peers = peers;
        // Incarnations an earlier run of this manager took for dead stay
        // dead (refused by the cluster once it is attached).
        for (name, inc) in deaths.entries() {
            if let Some(p) = peers.iter_mut().find(|p| &p.name == name) {
                p.dead.insert(*inc);
            }
        }
        let by_host = peers.iter().enumerate().map(|(i, p)| (p.host, i)).collect();
        let mut core = Core::with_incarnation(me, incarnation);
        for p in &peers {
            core.add_peer(p.host);
            for &inc in &p.dead {
                core.add_dead(p.host, inc);
            }
        }
        if let Some(inc) = previous {
            core.set_previous(inc);
        }
        // How this host keeps the pages of its own files coherent (only
        // an owner's word counts: the others learn it from what it sends).
        core.set_default_coherence(cfg.coherence);
        for (name, c) in &cfg.files {
            if let Ok(a) = export.lookup(name.as_bytes()) {
                core.set_coherence(a.file, *c);
            }
        }
        Engine {
            fd,
            me,
            export,
            pool,
            inval,
            cluster: None,
            committer: None,
            stats,
            read_grant: cfg.grant,
            core,
            names: Names::new(me),
            peers,
            by_host,
            reads: HashMap::new(),
            upgrades: HashMap::new(),
            writes: HashMap::new(),
            orphans: HashMap::new(),
            unresolved: BTreeMap::new(),
            naming: HashMap::new(),
            next_naming: 1 << 63,
            lookups: HashMap::new(),
            readdirs: HashMap::new(),
            listing: Vec::new(),
            pending_cookie: HashMap::new(),
            times_heard: HashMap::new(),
            attr_times: ATTR_TIMES,
            times_purge_at: TIMES_KEPT,
            busy: Vec::new(),
            evicts: HashMap::new(),
            last_resend: Instant::now(),
            read_deadline,
            failure_timeout: cfg.failure_timeout,
            lease: cfg.lease,
            rejoining: false,
            name: cfg.host.clone(),
            minority_logged: false,
            majority_since: None,
            left: false,
            counters,
            deaths,
            prefetch: Prefetch::default(),
            read_later: Vec::new(),
            hold_reads: false,
            views: Views::default(),
            locks: LockService::new(me),
            sizes,
            prefetch_ok: false,
            orphan_failed: false,
            corked: None,
            timers: Timers::default(),
            shrinks: BTreeMap::new(),
            shrinking_now: false,
            cut_files: BTreeSet::new(),
            space: space::Space::default(),
            opens: opens::Opens::new(kernel_session),
            times: times::Times::default(),
            placement: cfg.placement.clone(),
            file_rules: cfg.files.clone(),
            space_names: Namespace::new(
                me,
                cfg.peers.len() + 1,
                host_id(
                    cfg.peers
                        .iter()
                        .map(|p| p.name.as_str())
                        .chain([cfg.host.as_str()])
                        .min()
                        .unwrap_or(cfg.host.as_str()),
                ),
                vote_lease,
            ),
        }
    }

    /// What the timer does: tries busy pages again and acknowledges on
    /// quiet connections. Returns whether pages are waiting to be retried.
    fn tick(&mut self, acks: bool) -> bool {
        if !self.busy.is_empty() {
            self.retry_busy();
        }
        if self.core.retrying() && self.last_resend.elapsed() >= RESEND_AFTER {
            self.last_resend = Instant::now();
            self.run_core(Input::Retry);
        }
        if !self.shrinks.is_empty() {
            self.recall_again();
        }
        if !self.space.creating.is_empty() {
            self.retry_creates();
        }
        if acks {
            self.expire_unlinks();
            self.expire_opens();
            self.send_acks();
            self.expire_reads();
            self.detect_failures();
            self.check_sessions();
            self.check_leases();
            self.expire_unresolved();
        }
        !self.busy.is_empty()
    }

    fn send_frame(&mut self, idx: usize, conn: u64, f: Frame) {
        if let Some(held) = &mut self.corked {
            held.push((idx, conn, f));
            return;
        }
        // A failed write closes the connection; the message stays in the
        // session and is sent again on the next one.
        if let Some(cl) = &self.cluster {
            let _ = cl.send_on(idx, conn, &f);
        }
    }

    /// Holds the frames sent from now on until [`Engine::uncork`]: the
    /// messages that a batch of events causes (a scan's prefetches, the
    /// owner's answers to them, the requester's `Done`s) go out together.
    fn cork(&mut self) {
        self.corked.get_or_insert_with(Vec::new);
    }

    /// Writes the frames held since [`Engine::cork`], each connection's in
    /// the order they were sent, together.
    fn uncork(&mut self) {
        let Some(held) = self.corked.take() else {
            return;
        };
        let Some(cl) = &self.cluster else {
            return;
        };
        for ((idx, conn), frames) in by_connection(held) {
            // (As in `send_frame`: a failed write closes the connection.)
            let _ = cl.send_all_on(idx, conn, &frames);
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Upcall(u) => self.upcall(u),
            Event::Net(NetEvent::Up {
                peer,
                conn,
                incarnation,
                since,
            }) => {
                self.renewed(peer, since);
                self.check_leases();
                self.peer_up(peer, conn, incarnation);
            }
            Event::Flushed(f) => self.flushed(f),
            Event::Net(NetEvent::Renewed { peer, since }) => self.renewed(peer, since),
            Event::Net(NetEvent::Refused { peer, reason }) => self.refused(peer, &reason),
            Event::Net(NetEvent::Down { peer, conn }) => self.peer_down(peer, conn),
            Event::Net(NetEvent::Frame {
                peer, conn, frame, ..
            }) => {
                // A lease that ran out fences before anything that came
                // is handled (the timer may be late).
                self.check_leases();
                let Some(p) = self.peers.get_mut(peer) else {
                    return;
                };
                if p.conn != Some(conn) {
                    return; // from a connection replaced since
                }
                match p.session.receive(frame) {
                    Ok(Some(msg)) => {
                        Counters::add(&self.counters.received, 1);
                        let from = p.host;
                        self.peer_msg(from, msg);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        wlog!(
                            "peer {}: session error {e:?}; dropping the connection",
                            p.name
                        );
                        if let Some(cl) = &self.cluster {
                            cl.close(peer, conn);
                        }
                    }
                }
            }
        }
    }

    // -- peers ------------------------------------------------------------

    fn peer_up(&mut self, idx: usize, conn: u64, incarnation: u64) {
        let Some(p) = self.peers.get_mut(idx) else {
            return;
        };
        if p.dead.contains(&incarnation) || p.declare_later == Some(incarnation) {
            // Taken for dead (silent too long, or an owner said so): its
            // pages were re-served, so it must not come back as it was
            // (nor renew its lease while that waits for it to run out).
            wlog!(
                "peer {}: incarnation {incarnation:#x} was taken for dead; refusing it until its manager restarts",
                p.name
            );
            if let Some(cl) = &self.cluster {
                cl.close(idx, conn);
            }
            return;
        }
        let restarted = p.incarnation.is_some_and(|i| i != incarnation);
        let first = p.incarnation.is_none();
        if let Some(old) = p.incarnation.filter(|&i| i != incarnation) {
            // A new manager: the old one is dead, with whatever it held.
            wlog!(
                "peer {} restarted (incarnation {incarnation:#x}); its old incarnation is dead",
                p.name
            );
            // (Its old manager is gone, and its kernel's grants with it.)
            self.declare(idx, old, false);
            // The sizes cached of its files may be behind its disk (a
            // growth its old incarnation told that never reached this
            // host): GETATTR asks it again.
            let host = self.peers[idx].host;
            let stale = self.names.owner_restarted(host);
            if stale > 0 {
                wlog!(
                    "peer {}: the sizes of its {stale} files looked up here are asked of it again",
                    self.peers[idx].name
                );
            }
        }
        let p = &mut self.peers[idx];
        let host = p.host;
        p.incarnation = Some(incarnation);
        p.down_since = None;
        self.run_core(Input::PeerJoined { host, incarnation });
        let p = &mut self.peers[idx];
        p.conn = Some(conn);
        p.acks = AckWatch::default();
        Counters::add(&self.counters.connections, 1);
        let again = p.session.resend();
        p.session.handed();
        Counters::add(&self.counters.resent, again.len() as u64);
        if !again.is_empty() {
            wlog!(
                "peer {}: sending {} unacknowledged messages again",
                p.name,
                again.len()
            );
        }
        let mut frames = Vec::with_capacity(again.len());
        for f in again {
            p.acked = p.acked.max(f.ack);
            frames.push(Frame::Page(f));
        }
        for f in frames {
            self.send_frame(idx, conn, f);
        }
        // Files nobody could name while this peer was away: ask again.
        let waiting: Vec<u64> = self
            .unresolved
            .keys()
            .copied()
            .filter(|f| !self.naming.values().any(|n| n == f))
            .collect();
        for file in waiting {
            self.start_naming(file);
        }
        if restarted {
            self.tell_cuts(host);
            self.opens_owner_restarted(host);
        }
        if first || restarted {
            self.opens_announce(host);
        }
    }

    /// Tells a peer whose manager restarted the exact size of every file
    /// this owner has cut (`SizeCut`, acknowledged but not waited for): a
    /// cut its old manager never heard would leave its kernel's inode
    /// longer than the file, and only a cut makes one shorter.
    fn tell_cuts(&mut self, host: HostId) {
        let files: Vec<u64> = self.cut_files.iter().copied().collect();
        for file in files {
            if let Ok(a) = self.export.getattr(file) {
                let msg = SizeMsg::Cut {
                    id: 0,
                    file,
                    size: a.size,
                };
                self.send(host, PeerMsg::Size(msg));
            }
        }
    }

    fn peer_down(&mut self, idx: usize, conn: u64) {
        let Some(p) = self.peers.get_mut(idx) else {
            return;
        };
        if p.conn != Some(conn) {
            return;
        }
        p.conn = None;
        p.down_since = Some(Instant::now());
        let host = p.host;
        let out = self.names.peer_down(host);
        self.name_outputs(out);
        self.space_peer_down(host);
        self.opens_owner_unreachable(host);
        self.times_owner_unreachable(host);
        // Growths stop waiting for it (it hears them when it is back: the
        // session sends them again).
        for t in self.sizes.disconnected(host) {
            self.size_told(t);
        }
        // GETATTRs asked of it are answered from the cache now, not when
        // the answer waits run out (a late answer still counts).
        for a in self.sizes.getattrs_cut_off(host) {
            self.getattr_reply(a.req, a.started, a.file);
        }
    }

    /// Peer `idx` heard from this host at or after `since`: this host's
    /// lease on its pages runs until `since` plus the lease time.
    fn renewed(&mut self, idx: usize, since: Instant) {
        let lease = self.lease;
        let Some(p) = self.peers.get_mut(idx) else {
            return;
        };
        let until = since + lease;
        if p.lease_until.is_some_and(|u| u >= until) {
            return;
        }
        p.lease_until = Some(until);
        if until > Instant::now() && std::mem::take(&mut p.fenced) {
            if std::mem::take(&mut p.fence_logged) {
                wlog!(
                    "peer {}: answering again; this host takes its pages again",
                    p.name
                );
            }
            let owner = p.host;
            self.run_core(Input::Unfence { owner });
        }
    }

    /// Fences this host off the pages of every peer whose lease ran out:
    /// that peer may take this host for dead (it has not heard from it for
    /// the lease time) and serve its pages to others, so they leave this
    /// host's kernel (dirty ones go home when the peer can be reached).
    fn check_leases(&mut self) {
        let now = Instant::now();
        let out: Vec<usize> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.fenced && p.lease_until.is_some_and(|u| u <= now))
            .map(|(i, _)| i)
            .collect();
        for idx in out {
            let p = &mut self.peers[idx];
            p.fenced = true;
            let owner = p.host;
            // A peer that left, or was taken for dead, is not answering
            // as expected: the fence still runs (nothing of its pages
            // stays here on a lease that ran out), but it is neither news
            // nor a fencing of a live peer.
            if p.live_incarnation().is_some() {
                p.fence_logged = true;
                wlog!(
                    "peer {}: no answer for {} s (lease): fencing this host off its pages until it answers",
                    p.name,
                    self.lease.as_secs()
                );
                Counters::add(&self.counters.fencings, 1);
            }
            self.run_core(Input::Fence { owner });
        }
        // Deaths that waited for a lease to run out.
        let due: Vec<(usize, u64)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.declare_later.map(|inc| (i, inc)))
            .collect();
        for (idx, inc) in due {
            self.declare(idx, inc, true);
        }
        // Leaves heard of from another host whose leaver's own word never
        // came (it gave up waiting for this host): taken for dead once
        // its lease has run out with no connection to it.
        let now = Instant::now();
        let silent: Vec<(usize, u64)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let inc = p.leaving_heard?;
                // (Last heard from, or else since its connection went.)
                let last = self
                    .cluster
                    .as_ref()
                    .and_then(|cl| cl.heard(i))
                    .or(p.down_since);
                (p.conn.is_none() && last.is_some_and(|h| h + self.lease + LEASE_MARGIN <= now))
                    .then_some((i, inc))
            })
            .collect();
        for (idx, inc) in silent {
            self.declare(idx, inc, false);
        }
    }

    /// Peer `idx` refused this host: if because it took this incarnation for
    /// dead, this manager restarts to rejoin as a new one (what it held of
    /// that peer's pages was served anew; its kernel keeps only dirty
    /// pages, which the new incarnation writes back where nobody has
    /// written since).
    fn refused(&mut self, idx: usize, reason: &str) {
        if !reason.contains(crate::cluster::TAKEN_FOR_DEAD) {
            return;
        }
        let name = self.peers.get(idx).map_or("?", |p| p.name.as_str());
        let why = format!("peer {name} took this manager for dead ({reason})");
        self.rejoin(&why);
    }

    /// This incarnation cannot go on (`why`: taken for dead, which every
    /// peer will hold against it; or a death it cannot keep on disk), so
    /// the manager restarts as a new one, once.
    fn rejoin(&mut self, why: &str) {
        if self.rejoining {
            return;
        }
        self.rejoining = true;
        self.prefetch.forget();
        wlog!("{why}; restarting to rejoin");
        // What it kept for owners' next incarnations goes with it.
        self.run_core(Input::TakenForDead);
        crate::signals::request_restart();
    }

    /// Takes incarnation `incarnation` of peer `idx` for dead: its session
    /// goes (what it did not acknowledge goes back to the core), its
    /// connection is closed, and the core recovers. With `wait`, not before
    /// its lease on this host's pages has run out (it may still be alive,
    /// cut off: it fences itself by then); until then it is only noted.
    fn declare(&mut self, idx: usize, incarnation: u64, wait: bool) {
        let p = &mut self.peers[idx];
        if p.dead.contains(&incarnation) {
            return;
        }
        let heard = self.cluster.as_ref().and_then(|cl| cl.heard(idx));
        if wait
            && p.incarnation == Some(incarnation)
            && let Some(h) = heard
            && h + self.lease + LEASE_MARGIN > Instant::now()
        {
            if p.declare_later != Some(incarnation) {
                // Its lease is renewed no more: no connection, no answer.
                wlog!(
                    "peer {}: taking incarnation {incarnation:#x} for dead once its lease has run out",
                    p.name
                );
                p.declare_later = Some(incarnation);
                if let Some(cl) = &self.cluster {
                    cl.refuse_incarnation(idx, incarnation);
                    if let Some(conn) = p.conn {
                        cl.close(idx, conn);
                    }
                }
            }
            return;
        }
        if p.declare_later == Some(incarnation) {
            p.declare_later = None;
        }
        if p.leaving_heard == Some(incarnation) {
            p.leaving_heard = None;
        }
        p.dead.insert(incarnation);
        if let Some(cl) = &self.cluster {
            cl.refuse_incarnation(idx, incarnation);
        }
        if !self.record_death(idx, incarnation) {
            return;
        }
        let p = &mut self.peers[idx];
        Counters::add(&self.counters.peers_dead, 1);
        let host = p.host;
        let current = p.incarnation == Some(incarnation);
        if current {
            // (Asked of this incarnation: it will never answer.)
            let gone = self.views.owner_gone(host);
            self.fail_views(gone, libc::EHOSTDOWN);
            // Its locks went with it (also when it restarted: its new
            // manager knows nothing of them), which may grant others; and
            // what this host asked of it is answered.
            let out = self.locks.host_gone(host);
            self.lock_outputs(out);
            // What this host asked of it about sizes fails; growths of
            // this host's files stop waiting for it.
            let (failed, told) = self.sizes.host_gone(host);
            for a in failed {
                self.ask_failed(a, libc::EHOSTDOWN);
            }
            for t in told {
                self.size_told(t);
            }
            // CREATEs sent to it by a placement rule fail.
            self.placed_host_dead(host);
            // It has nothing of this host's open any more.
            self.opens_host_gone(host);
        }
        let p = &mut self.peers[idx];
        let mut lost_sizes = Vec::new();
        let (undelivered, unsent) = if current {
            p.acked = 0;
            p.acked_first = 0;
            let pages = |msgs: Vec<PeerMsg>| -> Vec<Msg> {
                msgs.into_iter()
                    .filter_map(|m| match m {
                        PeerMsg::Page(m) => Some(m),
                        PeerMsg::Name(_)
                        | PeerMsg::View(_)
                        | PeerMsg::Lock(_)
                        | PeerMsg::Size(_) => None,
                    })
                    .collect()
            };
            let (handed, never) = p.session.abandon();
            // Sizes it may never have heard: told again when next asked.
            lost_sizes = handed
                .iter()
                .chain(&never)
                .filter_map(|m| match m {
                    PeerMsg::Size(SizeMsg::Is { file, .. }) => Some(*file),
                    _ => None,
                })
                .collect();
            (pages(handed), pages(never))
        } else {
            (Vec::new(), Vec::new())
        };
        for &file in &lost_sizes {
            self.sizes.lost(file);
        }
        let p = &mut self.peers[idx];
        let closed = current && p.conn.is_some();
        if current && let Some(conn) = p.conn.take() {
            if let Some(cl) = &self.cluster {
                cl.close(idx, conn);
            }
            p.down_since = Some(Instant::now());
        }
        wlog!(
            "peer {}: incarnation {incarnation:#x} is dead; recovering its pages ({} messages it never acknowledged, {} of them never sent)",
            p.name,
            undelivered.len() + unsent.len(),
            unsent.len()
        );
        if closed {
            // Its Down will find the connection gone: the name service
            // stops waiting for it now.
            let out = self.names.peer_down(host);
            self.name_outputs(out);
            self.space_peer_down(host);
        }
        let kept = self.core.orphans().len();
        self.run_core(Input::PeerDied {
            host,
            incarnation,
            undelivered,
            unsent,
        });
        let kept = self.core.orphans().len().saturating_sub(kept);
        if kept > 0 {
            wlog!(
                "peer {}: the dirty data of {kept} of its pages, taken from this host's kernel and never sent to the dead incarnation, is kept for its next one",
                self.peers[idx].name
            );
        }
    }

    /// Writes the death of peer `idx`'s incarnation `incarnation` to disk
    /// before this host recovers anything of it ([`crate::deaths`]).
    /// Returns false if it cannot: then nothing of it is recovered, and
    /// the manager restarts (a restart that forgot the death could take
    /// that incarnation's older data over newer; a state directory that
    /// cannot be written stops the new manager at its start).
    fn record_death(&mut self, idx: usize, incarnation: u64) -> bool {
        let name = &self.peers[idx].name;
        match self.deaths.record(name, incarnation) {
            Ok(()) => true,
            Err(e) => {
                let why = format!(
                    "peer {name}: cannot keep incarnation {incarnation:#x}'s death on disk ({e}); nothing of it is recovered"
                );
                self.rejoin(&why);
                false
            }
        }
    }

    /// Each peer as the page protocol sees it, by name.
    fn peer_health(&self) -> Vec<(String, PeerHealth)> {
        self.peers
            .iter()
            .map(|p| {
                let state = match p.incarnation {
                    None => "unknown",
                    Some(i) if p.dead.contains(&i) => "dead",
                    Some(_) if p.conn.is_none() => "suspected",
                    Some(_) if !p.dead.is_empty() => "rejoined",
                    Some(_) => "alive",
                };
                let h = PeerHealth {
                    state: state.to_string(),
                    incarnation: p.incarnation,
                    pages: self.core.held_by(p.host),
                    read_copies: self.core.read_by(p.host),
                };
                (p.name.clone(), h)
            })
            .collect()
    }

    /// Takes for dead every peer disconnected for longer than the failure
    /// time-out; one this host never heard from by then is taken to hold
    /// none of its pages (the directory stops waiting for its word).
    ///
    /// A host cut off from most of the cluster takes nobody for dead, and
    /// the time it spent cut off does not count towards anyone's failure
    /// time-out: once it is back with most of the others, a peer still out
    /// of its reach has the whole time-out to come back too. (Else a host
    /// that healed after a cut longer than the time-out, reconnected to
    /// one peer first, would take the healthy ones it had not redialed yet
    /// for dead; their managers would have to restart.)
    fn detect_failures(&mut self) {
        let majority = self.in_majority();
        match (majority, self.majority_since) {
            (true, None) => self.majority_since = Some(Instant::now()),
            (false, Some(_)) => self.majority_since = None,
            _ => {}
        }
        let absent_after = self.absent_after();
        let absent: Vec<usize> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.incarnation.is_none()
                    && !p.absent
                    && p.down_since.is_some_and(|s| s.elapsed() >= absent_after)
            })
            .map(|(i, _)| i)
            .collect();
        for idx in absent {
            let p = &mut self.peers[idx];
            p.absent = true;
            let host = p.host;
            if self.core.rebuilding().contains(&host) {
                wlog!(
                    "peer {}: never heard from in {} s (its lease and the failure time-out); serving this host's pages without its word",
                    p.name,
                    absent_after.as_secs()
                );
            }
            self.run_core(Input::PeerAbsent { host });
        }
        let late: Vec<(usize, u64)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let inc = p.live_incarnation()?;
                // (One already waiting for its lease to run out is taken
                // for dead by `check_leases`.)
                if p.declare_later == Some(inc) {
                    return None;
                }
                let since = p.down_since?;
                let since = self.majority_since.map_or(since, |m| since.max(m));
                (since.elapsed() >= self.failure_timeout).then_some((i, inc))
            })
            .collect();
        if late.is_empty() {
            return;
        }
        if !majority {
            // Cut off from most of the cluster: this host is the one to
            // fence itself and, once the others took it for dead, restart;
            // it takes nobody for dead on its own.
            if !self.minority_logged {
                self.minority_logged = true;
                wlog!("cut off from most of the cluster: taking no peer for dead until it is back");
            }
            return;
        }
        self.minority_logged = false;
        for (idx, inc) in late {
            wlog!(
                "peer {}: no connection for {} s (failure time-out)",
                self.peers[idx].name,
                self.failure_timeout.as_secs()
            );
            self.declare(idx, inc, true);
        }
    }

    /// Takes for dead a connected peer that has not caught up with the
    /// messages that waited when a wait began ([`AckWatch`]) for the
    /// failure time-out (and the heartbeat's [`DEAD_AFTER`]) while
    /// messages written to it waited: its connection's heartbeat is
    /// answered, but its engine is stuck (or broken), and what this host
    /// keeps to send it again must not grow for ever. A live peer
    /// acknowledges within a tick ([`TICK`]), ahead of any data it has to
    /// write. Time with messages still in this host's outbox does not
    /// count (the peer may be reading them slowly). Only on the majority
    /// side, as after the failure time-out.
    fn check_sessions(&mut self) {
        let now = Instant::now();
        let timeout = self.failure_timeout + crate::cluster::DEAD_AFTER;
        let mut stuck = Vec::new();
        for (i, p) in self.peers.iter_mut().enumerate() {
            let (Some(inc), Some(conn)) = (p.incarnation, p.conn) else {
                p.acks = AckWatch::default();
                continue;
            };
            let written = self.cluster.as_ref().is_some_and(|cl| cl.written(i, conn));
            let waited = p.acks.note(
                p.session.acknowledged(),
                p.session.sent(),
                written && p.session.unacknowledged() > 0,
                now,
            );
            if waited >= timeout && !p.dead.contains(&inc) && p.declare_later != Some(inc) {
                stuck.push((i, inc, waited));
            }
        }
        if stuck.is_empty() || !self.in_majority() {
            return;
        }
        for (idx, inc, waited) in stuck {
            let p = &self.peers[idx];
            wlog!(
                "peer {}: {} messages unacknowledged, none for {} s while its connection lives; taking it for dead",
                p.name,
                p.session.unacknowledged(),
                waited.as_secs()
            );
            self.declare(idx, inc, true);
        }
    }

    /// How long after this incarnation's start a peer never heard from is
    /// taken to hold none of its pages: any lease an earlier incarnation
    /// gave it has run out by then, and so has the failure time-out.
    fn absent_after(&self) -> Duration {
        self.failure_timeout.max(self.lease) + LEASE_MARGIN
    }

    /// The peers connected now that have not acknowledged every message
    /// this host sent them (by name; a peer taken for dead is not asked).
    fn unheard(&self) -> Vec<String> {
        self.peers
            .iter()
            .filter(|p| {
                p.conn.is_some() && p.live_incarnation().is_some() && p.session.unacknowledged() > 0
            })
            .map(|p| p.name.clone())
            .collect()
    }

    /// Whether this host and the peers it is connected to are most of the
    /// configured cluster, or half of it with the host whose name sorts
    /// first: only such a side of a partition takes the other for dead, so
    /// that two sides never both do (each counts against the same fixed
    /// membership).
    fn in_majority(&self) -> bool {
        let members: Vec<&Peer> = self.peers.iter().collect();
        let total = members.len() + 1;
        let reachable = 1 + members.iter().filter(|p| p.conn.is_some()).count();
        if 2 * reachable != total {
            return 2 * reachable > total;
        }
        let first = members.iter().map(|p| p.name.as_str()).min();
        first.is_none_or(|f| self.name.as_str() < f)
            || members
                .iter()
                .any(|p| p.conn.is_some() && Some(p.name.as_str()) == first)
    }

    fn send(&mut self, to: HostId, msg: PeerMsg) {
        let Some(&idx) = self.by_host.get(&to) else {
            wlog!("engine: message for unknown host id {to}: {msg:?}");
            return;
        };
        if let PeerMsg::Page(m) = &msg {
            match m {
                Msg::WhereIs { txn, .. } => self.timers.asked(*txn),
                Msg::Data { txn, .. } => self.timers.served(to, *txn, Some(&self.stats.costs)),
                // The owner's own fault on a page another host holds: its
                // fetch starts here. A request passed on to the holder is
                // no longer the owner's to serve.
                Msg::Fetch { txn, to, .. } if *to == self.me => self.timers.asked(*txn),
                Msg::Fetch { txn, to, .. } => self.timers.served(*to, *txn, None),
                Msg::Failed { txn, .. } | Msg::Stale { txn, .. } => {
                    self.timers.served(to, *txn, None)
                }
                _ => {}
            }
        }
        let p = &mut self.peers[idx];
        let f = p.session.send(msg);
        Counters::add(&self.counters.sent, 1);
        if let Some(conn) = p.conn {
            p.session.handed();
            p.acked = p.acked.max(f.ack);
            self.send_frame(idx, conn, Frame::Page(f));
        }
    }

    /// Acknowledges, on an otherwise quiet connection, what has arrived.
    /// Also when the acknowledgement went with a message that still waits
    /// behind others to be written: a bare one goes ahead of them.
    fn send_acks(&mut self) {
        let Some(cl) = self.cluster.clone() else {
            return;
        };
        for (idx, p) in self.peers.iter_mut().enumerate() {
            let Some(conn) = p.conn else {
                continue;
            };
            let received = p.session.received();
            if received > p.acked || (received > p.acked_first && !cl.written(idx, conn)) {
                let f = p.session.ack();
                p.acked = f.ack;
                p.acked_first = f.ack;
                // (A failed write closes the connection; the next one
                // acknowledges.)
                let _ = cl.send_first_on(idx, conn, &Frame::Page(f));
            }
        }
    }

    /// Every peer not taken for dead.
    fn peer_hosts(&self) -> Vec<HostId> {
        self.peers
            .iter()
            .map(|p| p.host)
            .filter(|&h| !self.peer_gone(h))
            .collect()
    }

    /// Whether this host has a connection to `host` now.
    fn is_connected(&self, host: HostId) -> bool {
        self.peers
            .iter()
            .any(|p| p.host == host && p.conn.is_some())
    }

    fn connected(&self) -> (Vec<HostId>, Vec<HostId>) {
        let up = self.peers.iter().filter(|p| p.conn.is_some());
        let down = self.peers.iter().filter(|p| p.conn.is_none());
        (up.map(|p| p.host).collect(), down.map(|p| p.host).collect())
    }

    fn peer_msg(&mut self, from: HostId, msg: PeerMsg) {
        match msg {
            PeerMsg::Page(m) => {
                // Its handling time, by kind ([`crate::messages`]).
                let (kind, began) = (crate::messages::kind(&m), Instant::now());
                self.page_msg(from, m);
                self.counters
                    .messages
                    .record(kind, crate::costs::nanos_since(began));
            }
            PeerMsg::View(m) => self.view_msg(from, m),
            PeerMsg::Lock(m) => self.lock_msg(from, m),
            PeerMsg::Size(m) => self.size_msg(from, m),
            PeerMsg::Name(NameMsg::Lookup { id, name }) => {
                let found = self.export.lookup(&name).ok().map(|a| {
                    self.core.add_file(a.file, self.me);
                    info(&a)
                });
                self.send(from, PeerMsg::Name(NameMsg::Answer { id, found }));
            }
            PeerMsg::Name(NameMsg::Answer { id, mut found }) => {
                // A peer that says it has the name as a file whose known
                // owner is this host or another connected one is refused:
                // its answer counts as "not here" (`may_own`; an id that
                // is the name's hash is let be: on an export without file
                // handles two hosts exporting one name answer with one
                // id, and the name service must see both to refuse the
                // name as a duplicate; protocol.md, "What a peer may not
                // do").
                let asked = self.names.asked_name(id).map(<[u8]>::to_vec);
                if let (Some(i), Some(name)) = (&found, asked)
                    && !self.may_own(from, &name, i.file, "an Answer")
                {
                    found = None;
                }
                if let Some(i) = &found {
                    // (The owner's times of the file, as of now.)
                    self.heard_times(i.file);
                }
                let out = self.names.answer(from, id, found);
                self.name_outputs(out);
            }
            PeerMsg::Name(NameMsg::List { id }) => {
                // (A listing carries no error: a peer asking lists what the
                // others have; the failure is this owner's to report.)
                let names = self.export.names().unwrap_or_else(|e| {
                    wlog!("names: cannot list the export directory for host {from} (errno {e})");
                    Vec::new()
                });
                let parts = crate::names::listing_parts(names);
                let n = parts.len();
                for (i, names) in parts.into_iter().enumerate() {
                    let last = i + 1 == n;
                    self.send(from, PeerMsg::Name(NameMsg::Listed { id, names, last }));
                }
            }
            PeerMsg::Name(NameMsg::Listed { id, names, last }) => {
                let out = self.names.listed(from, id, names, last);
                self.name_outputs(out);
            }
            PeerMsg::Name(NameMsg::NameOf { id, file }) => {
                let name = self.export.name_of_id(file);
                if name.is_some() {
                    self.core.add_file(file, self.me);
                }
                self.send(from, PeerMsg::Name(NameMsg::Named { id, name }));
            }
            PeerMsg::Name(NameMsg::Named { id, name }) => {
                let out = self.names.named(from, id, name);
                self.name_outputs(out);
            }
            PeerMsg::Name(NameMsg::Reserve { id, name, at }) => {
                self.reserve_asked(from, id, &name, at);
            }
            PeerMsg::Name(NameMsg::Reserved { id, found, refused }) => {
                let now = Instant::now();
                let (sends, done) = self.space_names.answered(from, id, found, refused, now);
                self.send_names(sends);
                if let Some(r) = done {
                    self.reserved(r);
                }
            }
            PeerMsg::Name(NameMsg::Release { name, at }) => {
                self.space_names.released(from, &name, at);
            }
            PeerMsg::Name(NameMsg::Forget {
                id,
                name,
                made,
                gone,
            }) => {
                self.forget_asked(from, id, &name, made, gone);
            }
            PeerMsg::Name(NameMsg::Forgot { id }) => {
                if let Some(then) = self.space_names.forgot(from, id) {
                    self.forgotten(then);
                }
            }
            PeerMsg::Name(NameMsg::Unlink { id, file, name }) => {
                self.unlink_asked(from, id, file, &name);
            }
            PeerMsg::Name(NameMsg::Unlinked { id, error }) => {
                self.owner_answered(from, id, error, false);
            }
            PeerMsg::Name(NameMsg::Rename {
                id,
                file,
                target: _,
                noreplace,
                from: old,
                to,
            }) => {
                self.rename_asked(from, id, file, noreplace, (&old, &to));
            }
            PeerMsg::Name(NameMsg::Renamed { id, error }) => {
                self.owner_answered(from, id, error, true);
            }
            PeerMsg::Name(NameMsg::Open { id, file }) => self.open_asked(from, id, file),
            PeerMsg::Name(NameMsg::Opened { id, error }) => self.open_answered(from, id, error),
            PeerMsg::Name(NameMsg::Close { file }) => self.close_asked(from, file),
            PeerMsg::Name(NameMsg::SetTimes {
                id,
                file,
                sec,
                nsec,
            }) => self.times_asked(from, id, file, sec, nsec),
            PeerMsg::Name(NameMsg::TimesSet { id, error }) => self.times_answered(from, id, error),
            PeerMsg::Name(NameMsg::Make {
                id,
                name,
                mode,
                excl,
                uid,
                gid,
                within_ms,
            }) => {
                let until = Instant::now() + Duration::from_millis(u64::from(within_ms));
                let asker = space::Asker::Peer { host: from, id };
                self.make_asked(asker, &name, mode, excl, (uid, gid), until);
            }
            PeerMsg::Name(NameMsg::Made { id, made }) => self.made_answered(from, id, made),
        }
    }

    /// A page-protocol message `m` from `from`, for the core.
    fn page_msg(&mut self, from: HostId, m: Msg) {
        if let Err(why) = check_page_msg(&m) {
            self.refuse(from, "a page message", &why);
            return;
        }
        // The serve timer starts before the core serves (its
        // answer stops it); the fetch timer stops once the core
        // took the answer. Neither is left touched by a message
        // the core refuses.
        let serving = match &m {
            Msg::WhereIs { txn, .. } => Some((from, *txn)),
            Msg::Fetch { txn, to, .. } => Some((*to, *txn)),
            _ => None,
        };
        let started = serving.filter(|&(to, txn)| self.timers.to_serve(to, txn));
        let answered = match &m {
            Msg::Data { txn, .. } => Some((*txn, true)),
            Msg::Failed { txn, .. } | Msg::Stale { txn, .. } => Some((*txn, false)),
            _ => None,
        };
        let fetch =
            answered.and_then(|(txn, page)| self.timers.take_fetch(txn).map(|t| (txn, page, t)));
        let page = match &m {
            Msg::WhereIs { page, .. }
            | Msg::Fetch { page, .. }
            | Msg::Data { page, .. }
            | Msg::Absent { page, .. }
            | Msg::Done { page, .. }
            | Msg::Put { page, .. }
            | Msg::Orphan { page, .. }
            | Msg::PutAck { page, .. }
            | Msg::Failed { page, .. }
            | Msg::Returned { page, .. }
            | Msg::Share { page, .. }
            | Msg::Kept { page, .. }
            | Msg::Revoke { page, .. }
            | Msg::Revoked { page, .. }
            | Msg::Upgrade { page, .. }
            | Msg::Upgraded { page, .. }
            | Msg::Stale { page, .. }
            | Msg::Released { page } => Some(*page),
            Msg::Recover { .. } | Msg::Recovered { .. } => None,
            Msg::Leaving { incarnation } => {
                if let Some(&idx) = self.by_host.get(&from) {
                    self.peers[idx].left = Some(*incarnation);
                }
                None
            }
            Msg::Holding { pages, .. } => {
                // The pages of this host's files a peer holds: the
                // core must know the files are this host's.
                // (Kept even if the core refuses the message:
                // they are this host's own files, and a refused
                // Holding may have been taken in part.)
                let mut files: Vec<u64> = pages.iter().map(|(p, _, _)| p.file).collect();
                files.dedup();
                for file in files {
                    self.know_file(file);
                }
                None
            }
        };
        // (The core refuses what only an owner sends, Fetch, Revoke
        // and Share, of a file it knows no owner of: no peer makes
        // itself an owner by saying so.)
        // (The owner put in the core for this message is taken out
        // again if the core refuses it.)
        let learnt =
            page.filter(|p| self.core.owner_of(p.file).is_none() && self.know_file(p.file));
        if self.run_core_took(Input::Message { from, msg: m }) {
            if let Some((_, true, t)) = fetch {
                Timers::fetched(t, &self.stats.costs);
            }
        } else {
            // Refused: nothing of it stays (the core output
            // nothing, so nothing else touched these meanwhile).
            if let Some((txn, _, t)) = fetch {
                self.timers.unanswered(txn, t);
            }
            if let Some((to, txn)) = started {
                self.timers.served(to, txn, None);
            }
            if let Some(page) = learnt {
                self.core.forget_owner(page.file);
            }
        }
    }

    /// Makes sure the core knows who owns `file`: this host if it exports
    /// it, else whoever the name service found.
    fn know_file(&mut self, file: u64) -> bool {
        if self.core.owner_of(file).is_some() {
            return true;
        }
        if let Some((owner, _)) = self.remote(file) {
            self.core.add_file(file, owner);
            return true;
        }
        if self.export.getattr(file).is_ok() {
            self.core.add_file(file, self.me);
            return true;
        }
        false
    }

    /// The kernel READs `page`: fetches the pages after it if its READs
    /// of another host's file come in order ([`crate::prefetch`]).
    fn read_ahead(&mut self, page: PageId) {
        if !self.prefetch_ok || self.orphan_failed {
            return;
        }
        let Some((_, info)) = self.remote(page.file) else {
            return;
        };
        let pages = info.size.div_ceil(PAGE_SIZE as u64);
        for (req, page) in self.prefetch.read(page, pages) {
            self.run_core(Input::Prefetch { req, page });
        }
    }

    /// Answers READ `req` (`w`) with its page, `data`, granted `grant`,
    /// and with as many of the pages after it, up to the count the kernel
    /// asked for, as the prefetcher keeps for it: read-only copies, so only
    /// after a read-only first page, each still held under the grant it
    /// came with and no invalidation of it waiting. The reply's `ahead`
    /// tells the kernel how many more are kept after those, so that its
    /// next READ asks for them. Returns whether the kernel took the answer,
    /// and the pages sent after the first (the core already takes them for
    /// the kernel's: a kept page is one to the protocol, and if the kernel
    /// refuses it, a clean copy it evicted).
    fn answer_read(
        &mut self,
        req: u64,
        w: &Waiting,
        data: &[u8],
        grant: Grant,
    ) -> (bool, Vec<PageId>) {
        let op = wfs_abi::Opcode::Read;
        if !self.fill_slot(req, op, w.slot, w.started, data) {
            return (false, Vec::new());
        }
        let (core, busy) = (&self.core, &self.busy);
        // (Never one the kernel faults itself: its lock in the kernel would
        // then be that READ's, whose busy INVALIDATE the core takes for
        // absent. A kept page is never one, but that is the prefetcher's
        // rule, not this one's.)
        let usable = |p: PageId, g: CopyGrant| {
            g.1 && core.grant_of(p) == Some(g)
                && !core.faulting(p)
                && !busy.iter().any(|b| b.page == p)
        };
        let (file, from) = (w.page.file, w.page.index.saturating_add(1));
        let run = if grant == Grant::ReadOnly {
            self.prefetch.take_run(file, from, w.count - 1, usable)
        } else {
            Vec::new()
        };
        // The pages copied into their slots, and those that were not (a
        // slot that is not a page: none after it either).
        let mut copied = Vec::new();
        let mut left = Vec::new();
        for (i, kept) in run.into_iter().enumerate() {
            let page = PageId {
                file,
                index: from + i as u64,
            };
            let slot = w.slot + 1 + i as u32;
            // SAFETY: The kernel lent `w.slot..w.slot + w.count` with READ
            // `req` (checked against the pool when it came), which only the
            // engine handles, and it is not answered yet.
            match unsafe { self.pool.page(slot) } {
                Some(p) if left.is_empty() && p.len() == kept.data.len() => {
                    p.copy_from_slice(&kept.data);
                    copied.push((page, kept));
                }
                _ => left.push((page, kept)),
            }
        }
        let pages = 1 + copied.len() as u32;
        let next = w.page.index.saturating_add(u64::from(pages));
        let ahead = self
            .prefetch
            .ready(file, next, wfs_abi::READ_RUN_MAX, usable);
        Counters::add(&self.counters.pages_in, u64::from(pages));
        let body = ReplyBody::Pages {
            grant,
            pages,
            ahead,
        };
        let taken = self.reply(req, op, w.started, Ok(body));
        let mut sent = Vec::new();
        if taken {
            let extra = copied.len() as u64;
            Counters::add(&self.counters.prefetch_hits, extra);
            Counters::add(&self.counters.read_copies, extra);
            sent = copied.into_iter().map(|(page, _)| page).collect();
        } else {
            // Refused (the kernel gave up on the READ): the copies are
            // still the kernel's to the core, and kept for its next READ.
            left.extend(copied);
        }
        for (page, kept) in left {
            self.prefetch.keep_again(page, kept);
        }
        (taken, sent)
    }

    /// Copies `data` into pool slot `slot`, lent with request `req` (READ or
    /// VIEW, `op`) and not answered yet; answers `EIO` if it is not a
    /// page. Returns whether it was copied.
    fn fill_slot(
        &self,
        req: u64,
        op: wfs_abi::Opcode,
        slot: u32,
        started: Instant,
        data: &[u8],
    ) -> bool {
        // SAFETY: The kernel lent `slot` with READ or VIEW `req`, which only
        // the engine handles, and it is not answered yet.
        match unsafe { self.pool.page(slot) } {
            Some(p) if data.len() == p.len() => {
                p.copy_from_slice(data);
                true
            }
            _ => {
                wlog!(
                    "page protocol: a page of {} bytes; answering EIO",
                    data.len()
                );
                self.reply(req, op, started, Err(errno::EIO));
                false
            }
        }
    }

    /// Answers VIEW `req`, lent `slot`, with `data`, read-only; returns
    /// whether the kernel took it.
    fn grant_view(&self, req: u64, slot: u32, started: Instant, data: &[u8]) -> bool {
        let op = wfs_abi::Opcode::View;
        if !self.fill_slot(req, op, slot, started, data) {
            return false;
        }
        Counters::add(&self.counters.pages_in, 1);
        self.reply(req, op, started, Ok(ReplyBody::Grant(Grant::ReadOnly)))
    }

    /// Whether `host`'s current incarnation is taken for dead (or it was
    /// never heard of).
    fn peer_gone(&self, host: HostId) -> bool {
        self.by_host.get(&host).is_none_or(|&i| {
            let p = &self.peers[i];
            p.live_incarnation().is_none()
        })
    }

    /// A VIEW: the page as its owner has it on disk, read-only, with no
    /// grant kept (`views.rs`). This host's own file is read from the
    /// export at once; another host's is asked of it (`Peek`).
    fn view(&mut self, req: u64, page: PageId, count: u32, slot: u32, started: Instant) {
        if let Err(e) = check_lent(Some(&self.pool), count, slot) {
            self.reply(req, wfs_abi::Opcode::View, started, Err(e));
            return;
        }
        Counters::add(&self.counters.views, 1);
        // (The core's owners, as READ's: a name the name service forgot
        // meanwhile stays another host's file.)
        let owner = self.core.owner_of(page.file).unwrap_or(self.me);
        if owner == self.me {
            let data = self.read_home(page).map_err(kernel_errno);
            self.answer_view(req, slot, started, data);
            return;
        }
        if self.peer_gone(owner) {
            self.reply(req, wfs_abi::Opcode::View, started, Err(libc::EHOSTDOWN));
            return;
        }
        let msg = self.views.ask(ViewWaiting {
            req,
            slot,
            started,
            page,
            owner,
        });
        self.send(owner, PeerMsg::View(msg));
    }

    /// A peer's `Peek` or `Peeked`.
    fn view_msg(&mut self, from: HostId, msg: ViewMsg) {
        match msg {
            ViewMsg::Peek { id, page } => {
                // Only this host's own files: the export says.
                let data = if self.core.owner_of(page.file).is_some_and(|o| o != self.me) {
                    Err(libc::ENOENT)
                } else {
                    self.read_home(page).map_err(kernel_errno)
                };
                self.send(from, PeerMsg::View(ViewMsg::Peeked { id, page, data }));
            }
            ViewMsg::Peeked { id, page, data } => {
                let Some(w) = self.views.answered(from, id, page) else {
                    // (Given up on, or not asked of that host.)
                    return;
                };
                self.answer_view(w.req, w.slot, w.started, data.map_err(kernel_errno));
            }
        }
    }

    /// Page `page` of this host's own file, as its export has it (under the
    /// page's lock); the export's errno if it cannot be read.
    fn read_home(&self, page: PageId) -> Result<PageData, i32> {
        let mut data = vec![0u8; PAGE_SIZE];
        let _lock = self.export.lock_page(page.file, page.index);
        let began = Instant::now();
        self.export.read_page(page.file, page.index, &mut data)?;
        self.stats.costs.since(Stage::DiskRead, began);
        Ok(PageData::new(data))
    }

    /// Answers VIEW `req`, lent `slot`, with the page read-only, or with
    /// the errno.
    fn answer_view(&self, req: u64, slot: u32, started: Instant, data: Result<PageData, i32>) {
        let op = wfs_abi::Opcode::View;
        match data {
            Ok(d) => {
                self.grant_view(req, slot, started, &d);
            }
            Err(e) => {
                self.reply(req, op, started, Err(e));
            }
        }
    }

    /// Fails the VIEW requests in `ws` with `error`.
    fn fail_views(&self, ws: Vec<ViewWaiting>, error: i32) {
        for w in ws {
            self.reply(w.req, wfs_abi::Opcode::View, w.started, Err(error));
        }
    }

    /// A LOCK: decided by the file's owner (`lockserv.rs`), this host's
    /// table at once, or another host's through the lock service's
    /// messages. (The core's owners, as VIEW's.)
    fn lock(&mut self, req: u64, a: &wfs_abi::LockArgs, started: Instant) {
        Counters::add(&self.counters.locks, 1);
        let at = self.core.owner_of(a.file).unwrap_or(self.me);
        let gone = at != self.me && self.peer_gone(at);
        let out = self.locks.kernel(req, started, a, at, gone);
        self.lock_outputs(out);
    }

    /// A peer's lock message. An `Ask` about a file this host does not
    /// own is refused (`ENOLCK`): its table would decide nothing.
    fn lock_msg(&mut self, from: HostId, msg: LockMsg) {
        if let LockMsg::Ask { id, file, .. } = msg
            && !(self.know_file(file) && self.core.owner_of(file) == Some(self.me))
        {
            wlog!(
                "locks: {} asked about file {file:#x}, which this host does not own; refused",
                self.host_names(&[from])
            );
            let result = Err(errno::ENOLCK);
            let prior = Vec::new();
            self.send(from, PeerMsg::Lock(LockMsg::Answer { id, result, prior }));
            return;
        }
        let out = self.locks.message(from, msg, Instant::now());
        self.lock_outputs(out);
    }

    /// Carries out what the lock service said, and what that causes: a
    /// grant the kernel refuses (it gave the request up) goes back to the
    /// service, which undoes it.
    fn lock_outputs(&mut self, out: Vec<LockOut>) {
        let mut todo = VecDeque::from(out);
        while let Some(o) = todo.pop_front() {
            match o {
                LockOut::Send { to, msg } => self.send(to, PeerMsg::Lock(msg)),
                LockOut::Queued => Counters::add(&self.counters.lock_waits, 1),
                LockOut::Dropped { host, locks } => wlog!(
                    "locks: {} is taken for dead: the {locks} locks its processes held on this host's files are released (processes there that still believe they hold them are no longer excluded)",
                    self.host_names(&[host])
                ),
                LockOut::Reply {
                    req,
                    started,
                    result,
                    undo,
                } => {
                    let counter = match result {
                        Ok(_) if undo.is_some() => Some(&self.counters.locks_granted),
                        Ok(_) => None,
                        Err(errno::EAGAIN | errno::EDEADLK) => Some(&self.counters.locks_refused),
                        Err(_) => Some(&self.counters.locks_failed),
                    };
                    let body = result.map(|a| match a {
                        Answered::Done => ReplyBody::Done,
                        Answered::Info(i) => ReplyBody::Lock(i),
                    });
                    let taken = self.reply(req, wfs_abi::Opcode::Lock, started, body);
                    if taken {
                        if let Some(c) = counter {
                            Counters::add(c, 1);
                        }
                    } else if let Some(u) = undo {
                        // (Its kernel gave it up: nobody mirrors the lock.)
                        Counters::add(&self.counters.locks_undone, 1);
                        todo.extend(self.locks.refused(u));
                    }
                }
            }
        }
    }

    /// A SETSIZE: decided by the file's owner (`sizes.rs`), this host's
    /// export at once, or another host's asked. (The core's owners, as
    /// LOCK's.)
    fn setsize(&mut self, req: u64, file: u64, size: u64, grow: bool, started: Instant) {
        Counters::add(&self.counters.sizes, 1);
        let at = self.core.owner_of(file).unwrap_or(self.me);
        if at != self.me {
            if self.peer_gone(at) {
                self.size_reply(req, started, Err(libc::EHOSTDOWN));
                return;
            }
            self.ask_owner(SizeAsking {
                req,
                started,
                owner: at,
                file,
                size,
                grow,
                why: SizeWhy::Setsize,
            });
            return;
        }
        // (This kernel sets its own size once answered.)
        self.owner_set_size(file, size, grow, SizeThen::Kernel { req, started, size });
    }

    /// Asks `a.owner` for the size of `a.file` (a `Set`); the answer, or
    /// its absence, is handled as `a.why` says.
    fn ask_owner(&mut self, a: SizeAsking) {
        let owner = a.owner;
        let msg = self.sizes.ask(a);
        self.send(owner, PeerMsg::Size(msg));
    }

    /// A SETSIZE of this owner's `file` (from its kernel or a peer, which
    /// `then` names): the export makes it so, and `then` is answered as
    /// [`Engine::owner_sized`] says, or with the export's error.
    fn owner_set_size(&mut self, file: u64, size: u64, grow: bool, then: SizeThen) {
        if let Some(s) = self.shrinks.get_mut(&file) {
            // After the shrink under way, in order.
            s.queued.push((size, grow, then));
            return;
        }
        if matches!(then, SizeThen::Removal { .. }) {
            // (However long the file is: every page of it comes home and
            // is refused from then on, even of an empty file, which a
            // growth under way may make longer.)
            return self.start_shrink(file, 0, then);
        }
        if !grow {
            match self.export.getattr(file) {
                Ok(a) if size < a.size => return self.start_shrink(file, size, then),
                Ok(_) => {}
                Err(e) => return self.size_answer(then, file, Err(kernel_errno(e))),
            }
        }
        match self.export.set_size(file, size, grow) {
            Err(e) => self.size_answer(then, file, Err(kernel_errno(e))),
            Ok(r) => {
                if r.changed {
                    // (Pages up to the new end may be handed out again.)
                    self.core.set_limit(file, None);
                }
                self.owner_sized(file, size, r, then)
            }
        }
    }

    /// Starts shrinking this owner's `file` to `size` bytes for `then`:
    /// no page from the one the new end falls in is handed out any more
    /// (the core's limit), and every host that holds one gives it back
    /// (`Recall`, its dirty data written to the export first). The rest is
    /// [`Engine::shrinks_progress`]'s.
    fn start_shrink(&mut self, file: u64, size: u64, then: SizeThen) {
        let first = size / PAGE_SIZE as u64;
        let limit_before = self.core.limit(file);
        self.core.set_limit(file, Some(first));
        self.shrinks.insert(
            file,
            Shrink {
                size,
                first,
                then,
                limit_before,
                since: Instant::now(),
                queued: Vec::new(),
                cut: false,
            },
        );
        Counters::add(&self.counters.shrinks, 1);
        self.run_core(Input::Recall { file, first });
    }

    /// Recalls again the pages of every shrink under way (those moving,
    /// or faulted by this host's kernel, when it last tried), and gives up
    /// the shrinks that waited [`Sizes::ack_wait`] (`ETIMEDOUT`: the file
    /// keeps its size, its pages are served again).
    fn recall_again(&mut self) {
        // (Not ended from within: the shrinks are looked at once each,
        // then moved on together.)
        let was = std::mem::replace(&mut self.shrinking_now, true);
        let files: Vec<u64> = self.shrinks.keys().copied().collect();
        for file in files {
            let Some(s) = self.shrinks.get(&file).filter(|s| !s.cut) else {
                continue;
            };
            let first = s.first;
            if s.since.elapsed() < self.sizes.ack_wait() {
                self.run_core(Input::Recall { file, first });
                continue;
            }
            wlog!(
                "sizes: file {file:#x} ({}) could not be shrunk to {} bytes: its pages past the new end were not all back (or a growth of it was still being told) in {} ms; failing the request",
                self.file_name(file),
                s.size,
                self.sizes.ack_wait().as_millis()
            );
            self.fail_shrink(file, errno::ETIMEDOUT);
        }
        self.shrinking_now = was;
        self.shrinks_progress();
    }

    /// Moves the shrinks on: one whose pages are all home, and whose file
    /// has no growth being told, is cut (the export cuts the file, flushed,
    /// and every live host is told the new size, [`SizeMsg::Cut`], before
    /// the request is answered, as with a growth); one whose cut has been
    /// told (every peer heard it, or the telling gave up) is over: the
    /// limit moves to the new last page and the requests that waited are
    /// handled.
    fn shrinks_progress(&mut self) {
        if self.shrinking_now {
            return;
        }
        self.shrinking_now = true;
        loop {
            let ready = self.shrinks.iter().find_map(|(&f, s)| {
                let told = !self.sizes.telling_file(f);
                (told && (s.cut || self.core.recalled(f, s.first))).then_some((f, s.cut))
            });
            let Some((file, cut)) = ready else {
                break;
            };
            if !cut {
                self.cut(file);
                continue;
            }
            let Some(s) = self.shrinks.remove(&file) else {
                break;
            };
            self.core
                .set_limit(file, Some(s.size.div_ceil(PAGE_SIZE as u64)));
            self.shrink_ended(file, s.queued);
        }
        self.shrinking_now = false;
    }

    /// The shrink of `file` has every page past the new end home: see
    /// [`Engine::shrinks_progress`].
    fn cut(&mut self, file: u64) {
        let Some(s) = self.shrinks.get(&file) else {
            return;
        };
        let (size, then) = (s.size, s.then);
        // (An unlink's shrink removes the file instead: one that fails
        // leaves it whole.)
        let r = match then {
            SizeThen::Removal { token } => self.remove_file(token, file),
            _ => self.export.cut(file, size),
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                wlog!(
                    "sizes: file {file:#x} ({}) could not be cut to {size} bytes (errno {e}); failing the request",
                    self.file_name(file),
                );
                self.fail_shrink(file, kernel_errno(e));
                return;
            }
        };
        if let Some(s) = self.shrinks.get_mut(&file) {
            s.cut = true;
        }
        self.cut_files.insert(file);
        self.names.cut(file, r.size);
        let (live, connected) = self.size_peers();
        let peers = SizePeers {
            live: &live,
            connected: &connected,
        };
        let waiter = r.unsynced.is_none().then_some(then);
        let (sends, told) = self.sizes.cut(file, r.size, waiter, peers, Instant::now());
        // This host's kernel first, then the peers. (Even when it asked:
        // its truncation cuts the inode it truncates once answered, but
        // not the same file's inode on a view mount of this host.)
        self.size_to_kernel_cut(file, r.size);
        Counters::add(&self.counters.sizes_told, sends.len() as u64);
        for (host, msg) in sends {
            self.send(host, PeerMsg::Size(msg));
        }
        if let Some(e) = r.unsynced {
            wlog!(
                "sizes: file {file:#x} ({}) was cut to {} bytes, but its flush failed (errno {e}); telling every host, and failing the request",
                self.file_name(file),
                r.size
            );
            self.size_answer(then, file, Err(kernel_errno(e)));
        }
        for t in told {
            self.size_told(t);
        }
    }

    /// The shrink of `file` failed before its cut (`error`): the limit is put
    /// back, its request is answered with the error, and the requests that
    /// waited are handled.
    fn fail_shrink(&mut self, file: u64, error: i32) {
        if let Some(s) = self.shrinks.remove(&file) {
            self.core.set_limit(file, s.limit_before);
            self.size_answer(s.then, file, Err(error));
            self.shrink_ended(file, s.queued);
        }
    }

    /// A shrink of `file` is over: the size requests that waited for it are
    /// handled, in order (another shrink among them waits for its own
    /// recall, and those after it with it).
    fn shrink_ended(&mut self, file: u64, queued: Vec<(u64, bool, SizeThen)>) {
        for (size, grow, then) in queued {
            self.owner_set_size(file, size, grow, then);
        }
    }

    /// Answers the kernel's SETSIZE `req`, counting how it went.
    fn size_reply(&self, req: u64, started: Instant, result: Result<(), i32>) {
        let counter = match result {
            Ok(()) => &self.counters.sizes_done,
            Err(errno::EOPNOTSUPP) => &self.counters.sizes_refused,
            Err(_) => &self.counters.sizes_failed,
        };
        let body = result.map(|()| ReplyBody::Done);
        if self.reply(req, wfs_abi::Opcode::Setsize, started, body) {
            Counters::add(counter, 1);
        }
    }

    /// This owner's export found (or made) `file` `r.size` bytes long for
    /// a request that needs `needed`, which `then` waits for: answered at
    /// once if every host has heard of that size; else once the growth
    /// that covers it has reached every connected peer (told now if this
    /// owner has not told it yet: a growth, or a size told by an earlier
    /// incarnation or lost) ([`Sizes::settle`]). A growth whose flush
    /// failed is told all the same (every host must know the size the
    /// file has), and the request fails.
    fn owner_sized(&mut self, file: u64, needed: u64, r: Resized, then: SizeThen) {
        let (live, connected) = self.size_peers();
        let peers = SizePeers {
            live: &live,
            connected: &connected,
        };
        let d = OnDisk {
            file,
            size: r.size,
            needed,
            changed: r.changed,
        };
        let now = Instant::now();
        let (sends, told) = match r.unsynced {
            None => self.sizes.settle(d, Some(then), peers, now),
            Some(e) => {
                wlog!(
                    "sizes: file {file:#x} ({}) grew to {} bytes, but its flush failed (errno {e}); telling every host, and failing the request",
                    self.file_name(file),
                    r.size
                );
                self.sizes.settle(d, None, peers, now)
            }
        };
        // This host's kernel first, then the other peers (the kernel that
        // asked sets its own, or is told with its answer).
        let own = matches!(then, SizeThen::Kernel { .. }) && r.unsynced.is_none();
        if !own && (r.changed || !sends.is_empty()) {
            self.size_to_kernel(file, r.size);
        }
        Counters::add(&self.counters.sizes_told, sends.len() as u64);
        for (host, msg) in sends {
            self.send(host, PeerMsg::Size(msg));
        }
        if let Some(e) = r.unsynced {
            self.size_answer(then, file, Err(kernel_errno(e)));
        }
        for t in told {
            self.size_told(t);
        }
    }

    /// The peers a size of this owner's is told: every live one (its
    /// incarnation not taken for dead), and those of them connected now.
    fn size_peers(&self) -> (Vec<HostId>, Vec<HostId>) {
        let live: Vec<&Peer> = self
            .peers
            .iter()
            .filter(|p| {
                p.live_incarnation()
                    .is_some_and(|i| p.declare_later != Some(i))
            })
            .collect();
        let connected = live
            .iter()
            .filter(|p| p.conn.is_some())
            .map(|p| p.host)
            .collect();
        (live.iter().map(|p| p.host).collect(), connected)
    }

    /// Every host a growth waited for has heard of it: its waiter is
    /// answered.
    fn size_told(&mut self, t: Told) {
        self.size_answer(t.then, t.file, Ok(t.size));
    }

    /// Answers `then`: `file` is the size in `result` now, or the request
    /// failed. This host's kernel is told a size larger than it asked for
    /// (the file had grown further) before it is answered.
    fn size_answer(&mut self, then: SizeThen, file: u64, result: Result<u64, i32>) {
        match then {
            SizeThen::Kernel { req, started, size } => {
                if let Ok(now) = result
                    && now > size
                {
                    self.size_to_kernel(file, now);
                }
                self.size_reply(req, started, result.map(|_| ()));
            }
            SizeThen::Peer { host, id } => {
                if result.is_ok()
                    && let Ok(a) = self.export.getattr(file)
                {
                    // (First: the asker's cache has them when it is
                    // answered.)
                    self.send(host, PeerMsg::Size(times_of(file, &a)));
                }
                self.send(host, PeerMsg::Size(SizeMsg::Answer { id, result }));
            }
            SizeThen::Removal { token } => self.removal_shrunk(token, file, result),
        }
    }

    /// A request asked of an owner failed (`error`): a SETSIZE fails; a
    /// GETATTR is answered from what this host has cached.
    fn ask_failed(&self, a: SizeAsking, error: i32) {
        match a.why {
            SizeWhy::Setsize => self.size_reply(a.req, a.started, Err(error)),
            SizeWhy::Getattr | SizeWhy::Times => self.getattr_reply(a.req, a.started, a.file),
        }
    }

    /// The owner of another host's `file` said its times just now.
    fn heard_times(&mut self, file: u64) {
        let now = Instant::now();
        if self.times_heard.len() >= self.times_purge_at {
            let keep = self.attr_times;
            self.times_heard
                .retain(|_, at| now.duration_since(*at) < keep);
            // (Not again before it has doubled: each purge costs its
            // length, once per as many insertions.)
            self.times_purge_at = TIMES_KEPT.max(2 * self.times_heard.len());
        }
        self.times_heard.insert(file, now);
    }

    /// Whether the times cached of another host's `file` were heard from
    /// its owner [`ATTR_TIMES`] ago or more (or never).
    fn times_old(&self, file: u64) -> bool {
        self.times_heard
            .get(&file)
            .is_none_or(|at| at.elapsed() >= self.attr_times)
    }

    /// Answers GETATTR `req` of `file`: another host's file from the name
    /// service's cache, this host's from its export.
    fn getattr_reply(&self, req: u64, started: Instant, file: u64) {
        let r = match self.remote(file) {
            Some((_, i)) => Ok(attr(&i)),
            None => self.export.getattr(file),
        };
        self.reply(
            req,
            wfs_abi::Opcode::Getattr,
            started,
            r.map(ReplyBody::Attr),
        );
    }

    /// Tells this host's kernel that `file` is `size` bytes long (it grows
    /// a cached inode that is shorter); a failure is logged (the kernel
    /// asks GETATTR again at its next `stat`).
    fn size_to_kernel(&self, file: u64, size: u64) {
        if let Err(e) = self.inval.set_size(file, size) {
            wlog!("sizes: {e}");
        }
    }

    /// The owner of `file` as this host knows it, for a size it is told: the
    /// core's, the name service's, or this host if its export has the file.
    fn size_owner(&self, file: u64) -> Option<HostId> {
        self.core
            .owner_of(file)
            .or_else(|| self.names.owner_of(file).map(|(o, _)| o))
            .or_else(|| self.export.getattr(file).is_ok().then_some(self.me))
    }

    /// Tells this host's kernel that `file` was cut to exactly `size` bytes
    /// (no page past the end is cached here any more: the owner took them
    /// back first); a failure is logged.
    fn size_to_kernel_cut(&self, file: u64, size: u64) {
        if let Err(e) = self.inval.cut_size(file, size) {
            wlog!("sizes: {e}");
        }
    }

    /// A peer's size message. A `Set` of a file this host does not own is
    /// refused (`ENOENT`); an `Is` from a host that is not the file's owner
    /// (as this host knows it) is ignored, but acknowledged.
    fn size_msg(&mut self, from: HostId, msg: SizeMsg) {
        match msg {
            SizeMsg::Set {
                id,
                file,
                size,
                grow,
            } => {
                if !(self.know_file(file) && self.core.owner_of(file) == Some(self.me)) {
                    wlog!(
                        "sizes: {} asked to size file {file:#x}, which this host does not own; refused",
                        self.host_names(&[from])
                    );
                    let result = Err(errno::ENOENT);
                    self.send(from, PeerMsg::Size(SizeMsg::Answer { id, result }));
                    return;
                }
                self.owner_set_size(file, size, grow, SizeThen::Peer { host: from, id });
            }
            SizeMsg::Answer { id, result } => {
                let Some((a, late)) = self.sizes.answered(from, id) else {
                    // (Forgotten, or not asked of that host.)
                    return;
                };
                if let Ok(size) = result {
                    self.names.grow(a.file, size);
                    // The kernel hears a size larger than its SETSIZE asked
                    // for (another host grew it further), and any size it
                    // was not answered with (it was answered `ETIMEDOUT`).
                    if late || (a.why == SizeWhy::Setsize && size > a.size) {
                        self.size_to_kernel(a.file, size);
                    }
                }
                if late {
                    return;
                }
                match a.why {
                    SizeWhy::Setsize => {
                        let result = result.map(|_| ()).map_err(kernel_errno);
                        self.size_reply(a.req, a.started, result);
                    }
                    // (An error: answered from the cache, as before.)
                    SizeWhy::Getattr | SizeWhy::Times => {
                        self.getattr_reply(a.req, a.started, a.file)
                    }
                }
            }
            SizeMsg::Stat { id, file } => {
                let result = if self.know_file(file) && self.core.owner_of(file) == Some(self.me) {
                    self.export.getattr(file).map_err(kernel_errno)
                } else {
                    Err(errno::ENOENT)
                };
                let result = result.map(|a| {
                    self.send(from, PeerMsg::Size(times_of(file, &a)));
                    a.size
                });
                self.send(from, PeerMsg::Size(SizeMsg::Answer { id, result }));
            }
            SizeMsg::Times {
                file,
                mtime,
                ctime,
                perm,
            } => {
                if self.remote(file).is_some_and(|(o, _)| o == from) {
                    self.names.set_times(file, mtime, ctime, perm);
                    self.heard_times(file);
                }
            }
            SizeMsg::Is { id, file, size } => {
                match self.size_owner(file) {
                    Some(o) if o == from => {
                        self.names.grow(file, size);
                        self.size_to_kernel(file, size);
                        Counters::add(&self.counters.sizes_heard, 1);
                    }
                    Some(o) => wlog!(
                        "sizes: {} says file {file:#x} is {size} bytes long, but its owner is {}; ignored",
                        self.host_names(&[from]),
                        self.host_names(&[o])
                    ),
                    // Never looked up by this manager (its size is asked
                    // of its owner when it is), but the kernel may have the
                    // file cached from an earlier manager: it hears the
                    // size all the same (a cached inode only grows; none
                    // cached, nothing happens).
                    None => {
                        self.size_to_kernel(file, size);
                        Counters::add(&self.counters.sizes_heard, 1);
                    }
                }
                self.send(from, PeerMsg::Size(SizeMsg::IsAck { id }));
            }
            SizeMsg::Cut { id, file, size } => {
                match self.size_owner(file) {
                    Some(o) if o != from => wlog!(
                        "sizes: {} says file {file:#x} was cut to {size} bytes, but its owner is {}; ignored",
                        self.host_names(&[from]),
                        self.host_names(&[o])
                    ),
                    // (Never looked up by this manager: the kernel may have
                    // it cached from an earlier one, and is told all the
                    // same.)
                    _ => {
                        self.names.cut(file, size);
                        self.size_to_kernel_cut(file, size);
                        Counters::add(&self.counters.sizes_heard, 1);
                    }
                }
                self.send(from, PeerMsg::Size(SizeMsg::IsAck { id }));
            }
            SizeMsg::IsAck { id } => {
                for t in self.sizes.acked(from, id) {
                    self.size_told(t);
                }
                if !self.shrinks.is_empty() {
                    self.shrinks_progress();
                }
            }
        }
    }

    /// Another host's file, as a LOOKUP found it. (This host's own files
    /// are asked of the export, which looks at the file itself; asking it
    /// first about another host's file would rescan the export directory
    /// for a name it does not have.)
    fn remote(&self, file: u64) -> Option<(HostId, FileInfo)> {
        self.names
            .owner_of(file)
            .filter(|&(owner, _)| owner != self.me)
    }

    // -- the kernel -------------------------------------------------------

    fn upcall(&mut self, u: Upcall) {
        let Upcall { started, msg } = u;
        let (id, req) = match Request::decode(&msg) {
            Ok(r) => r,
            Err(e) => {
                wlog!("upcall: undecodable request ({e:?}), {} bytes", msg.len());
                return;
            }
        };
        let file = match req {
            Request::Getattr { file }
            | Request::Upgrade { file, .. }
            | Request::Read { file, .. }
            | Request::Write { file, .. }
            | Request::View { file, .. } => Some(file),
            Request::Lock(a) => Some(a.file),
            Request::Setsize { file, .. }
            | Request::Unlink { file, .. }
            | Request::Rename { file, .. }
            | Request::Open { file }
            | Request::Settimes { file, .. } => Some(file),
            // (A RELEASE needs no owner: it is counted here, or refused as
            // another session's.)
            Request::Lookup { .. }
            | Request::Readdir { .. }
            | Request::Create { .. }
            | Request::Release { .. } => None,
        };
        if let Some(file) = file
            && !self.know_file(file)
        {
            // Looked up under a manager that has died: find its name and
            // owner first.
            let first = !self.unresolved.contains_key(&file);
            self.unresolved
                .entry(file)
                .or_default()
                .push(Upcall { started, msg });
            if first {
                self.start_naming(file);
            }
            return;
        }
        match req {
            Request::View {
                file,
                index,
                count,
                slot,
            } => self.view(id, PageId { file, index }, count, slot, started),
            Request::Lock(a) => self.lock(id, &a, started),
            Request::Setsize { file, size, grow } => self.setsize(id, file, size, grow, started),
            Request::Create { name, .. } | Request::Rename { to: name, .. }
                if !crate::export::shown(name) =>
            {
                let op = req.opcode();
                self.reply(id, op, started, Err(errno::EINVAL));
            }
            // (A kept file's hidden name is nobody's to find.)
            Request::Lookup { name } if !crate::export::shown(name) => {
                self.reply(id, wfs_abi::Opcode::Lookup, started, Err(errno::ENOENT));
            }
            Request::Open { file } => self.open(id, file, started),
            Request::Release { file, session } => self.release(id, file, session, started),
            Request::Settimes { file, sec, nsec } => self.settimes(id, file, sec, nsec, started),
            Request::Create {
                name,
                mode,
                excl,
                uid,
                gid,
            } => self.create(id, name, mode, excl, (uid, gid), started),
            Request::Unlink { file, name } => self.unlink(id, file, name, started),
            Request::Rename {
                file,
                target,
                noreplace,
                from,
                to,
            } => self.rename(id, file, target, noreplace, (from, to), started),
            Request::Lookup { name } => {
                let local = self.export.lookup(name).ok().map(|a| info(&a));
                let (up, down) = self.connected();
                self.lookups.insert(id, started);
                let out = self.names.lookup(id, name, local, &up, &down);
                self.name_outputs(out);
            }
            Request::Getattr { file } => {
                let why = match self.remote(file) {
                    // Its owner restarted since its size was cached: asked
                    // again (a `Set` that changes nothing, answered with
                    // the size, after the times; the owner tells every
                    // host the size if its new incarnation had not).
                    Some((owner, _)) if self.names.is_stale(file) && !self.peer_gone(owner) => {
                        Some((owner, SizeWhy::Getattr))
                    }
                    // Its times were heard ATTR_TIMES ago or more: asked
                    // (a `Stat`) if the owner can be reached now.
                    Some((owner, _)) if self.times_old(file) && self.is_connected(owner) => {
                        Some((owner, SizeWhy::Times))
                    }
                    _ => None,
                };
                let Some((owner, why)) = why else {
                    return self.getattr_reply(id, started, file);
                };
                if why == SizeWhy::Times {
                    Counters::add(&self.counters.times_asked, 1);
                }
                self.ask_owner(SizeAsking {
                    req: id,
                    started,
                    owner,
                    file,
                    size: 0,
                    grow: true,
                    why,
                });
            }
            Request::Readdir { cookie } => {
                if cookie == 0 || self.listing.is_empty() {
                    let local = self.export.names().unwrap_or_default();
                    let (up, _) = self.connected();
                    self.readdirs.insert(id, started);
                    // The kernel continues from `cookie` once it is listed.
                    let out = self.names.list(id, local, &up);
                    self.pending_cookie.insert(id, cookie);
                    self.name_outputs(out);
                } else {
                    self.reply_dirent(id, started, cookie);
                }
            }
            Request::Upgrade { file, index } => {
                let r = match self.remote(file) {
                    // Cached under a dead manager's grant (revoked, kept
                    // because it was dirty): the cluster may have served the
                    // page since, so no write access; the page goes once its
                    // data has (an orphan WRITE).
                    // (A read copy being fenced goes on: its UPGRADE is
                    // refaulted.)
                    _ if !self.core.holds(PageId { file, index })
                        && !self.core.read_copy(PageId { file, index }) =>
                    {
                        wlog!(
                            "UPGRADE of page {index} of file {file:#x}: not granted by this manager (left by one that died); refused"
                        );
                        Err(libc::EACCES)
                    }
                    Some((_, i)) if index.saturating_mul(PAGE_SIZE as u64) < i.size => {
                        Ok(Grant::ReadWrite)
                    }
                    Some(_) => Err(errno::EFBIG),
                    None => self.export.upgrade(file, index),
                };
                let page = PageId { file, index };
                if r.is_ok() && !self.core.writable(page) {
                    // A read-only copy (`mrsw`): its owner revokes the
                    // others first, or has it refaulted.
                    self.upgrades.insert(id, (page, started));
                    self.run_core(Input::Upgrade { req: id, page });
                    return;
                }
                self.reply(
                    id,
                    wfs_abi::Opcode::Upgrade,
                    started,
                    r.map(ReplyBody::Grant),
                );
            }
            Request::Read {
                file,
                index,
                count,
                slot,
            } => {
                if let Err(e) = check_lent(Some(&self.pool), count, slot) {
                    self.reply(id, wfs_abi::Opcode::Read, started, Err(e));
                    return;
                }
                let page = PageId { file, index };
                let busy = self.busy.iter().any(|b| b.page == page);
                if let Some(kept) = self.prefetch.serve(page, self.core.grant_of(page), busy) {
                    // Fetched ahead, and still held under the grant it
                    // came with (nothing took it since).
                    let grant = if kept.grant.1 {
                        Grant::ReadOnly
                    } else {
                        self.read_grant
                    };
                    Counters::add(&self.counters.prefetch_hits, 1);
                    self.prefetch.granted(page.file, kept.grant.1);
                    let w = Waiting {
                        page,
                        slot,
                        count,
                        started,
                    };
                    // (Refused by a kernel that gave up: the core holds a
                    // clean copy the kernel evicted.)
                    let (taken, sent) = self.answer_read(id, &w, &kept.data, grant);
                    if taken && kept.grant.1 {
                        Counters::add(&self.counters.read_copies, 1);
                    }
                    self.read_ahead(page);
                    for p in sent {
                        self.read_ahead(p);
                    }
                    return;
                }
                if let Some(req) = self.prefetch.asking(page) {
                    // On its way: this READ waits for it instead.
                    self.core.cancel(req);
                    self.prefetch.answered(req);
                }
                self.reads.insert(
                    id,
                    Waiting {
                        page,
                        slot,
                        count,
                        started,
                    },
                );
                // The kernel lacks the page: invalidations of it it kept
                // busy (locked for this READ) find nothing, and must not
                // take the copy this READ installs.
                self.settle_busy(page);
                // (An answer the core gives at once may carry the pages
                // after this one: the scan moves past them after this
                // page.)
                self.hold_reads = true;
                self.run_core(Input::Fault { req: id, page });
                self.hold_reads = false;
                self.read_ahead(page);
                self.reads_done();
            }
            Request::Write {
                file,
                index,
                count,
                slot,
            } => {
                // SAFETY: The kernel lent `slot` with this request, which
                // only the engine handles now.
                let data = match unsafe { lent_page(Some(&self.pool), count, slot) } {
                    Ok(p) => p.to_vec(),
                    Err(e) => {
                        self.reply(id, wfs_abi::Opcode::Write, started, Err(e));
                        return;
                    }
                };
                self.writes.insert(id, started);
                let page = PageId { file, index };
                if !self.core.holds(page) {
                    // A page a dead manager granted: the owner takes its
                    // data only if nobody was served the page since.
                    self.orphans.insert(id, page);
                }
                self.run_core(Input::Writeback {
                    req: id,
                    page,
                    data: PageData::new(data),
                });
            }
        }
    }

    /// Answers kernel request `id`; returns whether the kernel took the
    /// answer (it refuses one for a request it gave up on).
    fn reply(
        &self,
        id: u64,
        op: wfs_abi::Opcode,
        started: Instant,
        result: Result<ReplyBody<'_>, i32>,
    ) -> bool {
        let (error, body) = match result {
            // Root squashing is the owner's word for other hosts' root:
            // never for this host's own files (unless the name service
            // says another host owns the id now).
            Ok(ReplyBody::Attr(a)) if self.remote(a.file).is_none() => {
                (0, Some(ReplyBody::Attr(self.export.for_kernel(a))))
            }
            Ok(b) => (0, Some(b)),
            Err(e) => (e, None),
        };
        let reply = Reply {
            id,
            op,
            error,
            body,
        };
        let mut out = [0u8; MSG_MAX];
        let len = match reply.encode(&mut out) {
            Ok(n) => n,
            Err(e) => {
                wlog!("engine: cannot encode reply to {op:?}: {e:?}");
                return false;
            }
        };
        match crate::upcall::write_reply(self.fd, &out[..len], op, error != 0, started, &self.stats)
        {
            Ok(_) => true,
            Err(e) => {
                // ENOENT: the request timed out or its caller was killed.
                wlog!("engine: reply to {op:?} refused by the kernel: {e}");
                false
            }
        }
    }

    fn reply_dirent(&self, id: u64, started: Instant, cookie: u64) {
        let body = match usize::try_from(cookie)
            .ok()
            .and_then(|i| self.listing.get(i))
        {
            Some(name) => ReplyBody::Dirent {
                next: cookie + 1,
                file: self.dirent_id(name),
                name,
            },
            None => ReplyBody::Dirent {
                next: 0,
                file: 0,
                name: b"",
            },
        };
        self.reply(id, wfs_abi::Opcode::Readdir, started, Ok(body));
    }

    // -- the name service -------------------------------------------------

    fn name_outputs(&mut self, out: Vec<NameOutput>) {
        for o in out {
            match o {
                NameOutput::Send { to, msg } => self.send(to, PeerMsg::Name(msg)),
                NameOutput::Again { reqs, name } => {
                    let local = self.export.lookup(&name).ok().map(|a| info(&a));
                    let (up, down) = self.connected();
                    for req in reqs {
                        let out = self.names.lookup(req, &name, local, &up, &down);
                        self.name_outputs(out);
                    }
                }
                NameOutput::Reply { req, result } if self.naming.contains_key(&req) => {
                    let Some(file) = self.naming.remove(&req) else {
                        continue;
                    };
                    match result {
                        Ok((owner, i)) if i.file == file => {
                            self.core.add_file(file, owner);
                            self.resolved(file, None);
                        }
                        Err(NameError::Unreachable(_)) => {}
                        Err(NameError::Duplicate(_)) => self.resolved(file, Some(libc::ENOTUNIQ)),
                        _ => self.resolved(file, Some(errno::ENOENT)),
                    }
                }
                NameOutput::Named { req, result } => {
                    let Some(file) = self.naming.remove(&req) else {
                        continue;
                    };
                    match result {
                        Ok(name) => {
                            let local = self.export.lookup(&name).ok().map(|a| info(&a));
                            let (up, down) = self.connected();
                            let req = self.naming_id(file);
                            let out = self.names.lookup(req, &name, local, &up, &down);
                            self.name_outputs(out);
                        }
                        // Someone could not be asked: wait for it (asked
                        // again when a peer connects; `expire_unresolved`
                        // bounds the wait by the failure time-out). One that
                        // has connected since the question went out is
                        // asked now: its connection did not ask again, as
                        // the question was still out.
                        Err(down) if !down.is_empty() => {
                            let (up, _) = self.connected();
                            if down.iter().any(|h| up.contains(h)) {
                                self.start_naming(file);
                            }
                        }
                        Err(_) => self.resolved(file, Some(errno::ENOENT)),
                    }
                }
                NameOutput::Reply { req, result } => {
                    let Some(started) = self.lookups.remove(&req) else {
                        continue;
                    };
                    let r = match result {
                        Ok((owner, i)) => {
                            self.core.add_file(i.file, owner);
                            Ok(ReplyBody::Attr(attr(&i)))
                        }
                        Err(NameError::NotFound) => Err(errno::ENOENT),
                        Err(NameError::Duplicate(hosts)) => {
                            wlog!(
                                "LOOKUP: a file of this name is exported by several hosts ({}); none serves it until only one does",
                                self.host_names(&hosts)
                            );
                            Err(libc::ENOTUNIQ)
                        }
                        Err(NameError::Unreachable(hosts)) => {
                            wlog!(
                                "LOOKUP: no connected host exports the name, and {} cannot be asked",
                                self.host_names(&hosts)
                            );
                            Err(libc::EHOSTUNREACH)
                        }
                    };
                    self.reply(req, wfs_abi::Opcode::Lookup, started, r);
                }
                NameOutput::Listing { req, names } => {
                    let Some(started) = self.readdirs.remove(&req) else {
                        continue;
                    };
                    self.listing = names;
                    let cookie = self.pending_cookie.remove(&req).unwrap_or(0);
                    self.reply_dirent(req, started, cookie);
                }
            }
        }
    }

    /// The inode number READDIR gives `name`: its file id where this host
    /// knows it (its own file, or a name it has cached), else the hash of
    /// the name (`d_ino` is a hint: `stat` says what the file is).
    fn dirent_id(&self, name: &[u8]) -> u64 {
        if let Ok(a) = self.export.lookup(name) {
            return a.file;
        }
        match self.names.lookup_cached(name) {
            Some((_, info)) => info.file,
            None => file_id(name),
        }
    }

    /// A file's name for a log line: as looked up, or as exported here.
    fn file_name(&self, file: u64) -> String {
        let name = self
            .names
            .name_of(file)
            .map(<[u8]>::to_vec)
            .or_else(|| self.export.name_of_id(file));
        match name {
            Some(n) => format!("/wfs/{}", String::from_utf8_lossy(&n)),
            None => "name unknown".to_string(),
        }
    }

    /// A name-service request finding `file`.
    fn naming_id(&mut self, file: u64) -> u64 {
        self.next_naming += 1;
        self.naming.insert(self.next_naming, file);
        self.next_naming
    }

    /// Asks the cluster for the name of `file`, for the requests waiting
    /// on it.
    fn start_naming(&mut self, file: u64) {
        let req = self.naming_id(file);
        let (up, down) = self.connected();
        let out = self.names.name_of_file(req, file, &up, &down);
        self.name_outputs(out);
    }

    /// The requests waiting for `file` go on (its owner is known now), or
    /// fail with `error`.
    fn resolved(&mut self, file: u64, error: Option<i32>) {
        for u in self.unresolved.remove(&file).unwrap_or_default() {
            match error {
                None => self.upcall(u),
                Some(e) => {
                    if let Ok((id, req)) = Request::decode(&u.msg) {
                        self.reply(id, req.opcode(), u.started, Err(e));
                    }
                }
            }
        }
    }

    /// Fails requests that have waited longer than the failure time-out
    /// for a file's name (a host that could not be asked stayed away).
    fn expire_unresolved(&mut self) {
        let late: Vec<u64> = self
            .unresolved
            .iter()
            .filter(|(_, us)| {
                us.first()
                    .is_some_and(|u| u.started.elapsed() >= self.failure_timeout)
            })
            .map(|(&f, _)| f)
            .collect();
        for file in late {
            self.naming.retain(|_, f| *f != file);
            wlog!(
                "file {file:#x}: no host could name it within {} s; failing its requests",
                self.failure_timeout.as_secs()
            );
            self.resolved(file, Some(libc::EHOSTUNREACH));
        }
    }

    /// A message from `from` that no correct peer sends (`what`, refused
    /// for `why`): counted, and logged (the first hundred, then every
    /// thousandth: a flood does not fill the log). The caller changes
    /// nothing and answers nothing.
    fn refuse(&self, from: HostId, what: &str, why: &str) {
        Counters::add(&self.counters.refused_from_peers, 1);
        let n = self.counters.refused_from_peers.load(Ordering::Relaxed);
        if loggable(n) {
            let name = self.host_names(&[from]);
            wlog!("peer {name}: refused {what}: {why} ({n} refused so far)");
        }
    }

    fn host_names(&self, hosts: &[HostId]) -> String {
        hosts
            .iter()
            .map(|h| match self.by_host.get(h) {
                Some(&i) => self.peers[i].name.clone(),
                None if *h == self.me => "this host".to_string(),
                None => format!("host id {h}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    // -- the page protocol ------------------------------------------------

    /// Feeds `input` to the core and carries out everything it causes,
    /// including the inputs those outputs produce (disk reads, pages
    /// taken from the kernel).
    fn run_core(&mut self, input: Input) {
        self.run_core_took(input);
    }

    /// [`Engine::run_core`], returning whether the core took `input`
    /// itself (it did not refuse it as a whole: nothing of it changed).
    fn run_core_took(&mut self, input: Input) -> bool {
        let (mut first, mut accepted) = (true, true);
        // Each input with the ids of the one whose outputs made it.
        let mut todo = VecDeque::from([(input, (None, None))]);
        while let Some((input, cause)) = todo.pop_front() {
            // The input's transaction: what handling it logs at debug and
            // trace level carries its page and txn ([`txn_span`]).
            let ids = caused_ids(input_ids(&input), cause);
            let span = txn_span(ids);
            let _in = span.enter();
            trace_core(ids, || format!("in {}", brief_input(&input)));
            let outputs = match self.core.handle(input) {
                Ok(o) => o,
                Err(e) => {
                    self.core_refused(e);
                    if first {
                        accepted = false;
                    }
                    first = false;
                    continue;
                }
            };
            first = false;
            // The kernel's answers to grants go in at once, before what
            // this batch caused (the core sends a dirty page that no READ
            // installed home before anything else).
            let mut answers = Vec::new();
            for o in outputs {
                match self.output(o) {
                    Some(a @ Input::Answered { .. }) => answers.push((a, ids)),
                    Some(next) => todo.push_back((next, ids)),
                    None => {}
                }
            }
            for a in answers.into_iter().rev() {
                todo.push_front(a);
            }
        }
        if !self.hold_reads {
            self.reads_done();
        }
        if !self.shrinks.is_empty() {
            self.shrinks_progress();
        }
        accepted
    }

    /// An input (or a message within one) the core refused: a forbidden
    /// one counted and logged as such ([`Engine::refuse`]), one that fits
    /// no state counted apart.
    fn core_refused(&self, e: ProtocolError) {
        match e {
            ProtocolError::Forbidden { from, what, why } => self.refuse(from, what, why),
            ProtocolError::Unexpected { from, msg } if from != self.me => {
                Counters::add(&self.counters.unexpected_from_peers, 1);
                let n = self.counters.unexpected_from_peers.load(Ordering::Relaxed);
                if loggable(n) {
                    let name = self.host_names(&[from]);
                    wlog!(
                        "peer {name}: dropped {} (not in the protocol's state; {n} so far)",
                        brief_msg(&msg)
                    );
                }
            }
            e => wlog!("page protocol: refused {e:?}"),
        }
    }

    /// The scan moves past the pages READs carried after their first
    /// ([`Engine::read_later`]).
    fn reads_done(&mut self) {
        for page in std::mem::take(&mut self.read_later) {
            self.read_ahead(page);
        }
    }

    /// Answers READs every mount has given up on ([`READ_DEADLINE`]):
    /// their pages may never come (a peer died with them), and each holds
    /// a slot of the pool until it is answered. The core forgets them; a
    /// page that comes later for nobody goes home if it is dirty.
    fn expire_reads(&mut self) {
        if let Some(before) = Instant::now().checked_sub(TIMED_FOR) {
            self.timers.prune(before);
        }
        let late_views = self.views.expire(Instant::now(), self.read_deadline);
        self.fail_views(late_views, libc::ETIMEDOUT);
        // (Lock waits, too: a wait at this owner, or for another one.)
        let late_locks = self.locks.expire(Instant::now(), self.read_deadline);
        self.lock_outputs(late_locks);
        // (And sizes: asked of an owner, or told and not acknowledged.)
        let (failed, late) = self.sizes.expire(Instant::now(), self.read_deadline);
        for a in failed {
            let what = match a.why {
                SizeWhy::Setsize => "failing its SETSIZE",
                SizeWhy::Getattr => "answering its GETATTR from the cached size",
                SizeWhy::Times => "answering its GETATTR from the cached times",
            };
            wlog!(
                "sizes: no answer from {} about file {:#x} in {} ms; {what}",
                self.host_names(&[a.owner]),
                a.file,
                self.sizes.answer_wait().as_millis()
            );
            self.ask_failed(a, errno::ETIMEDOUT);
        }
        for l in late {
            wlog!(
                "sizes: file {:#x} ({}) is {} bytes long; {} did not acknowledge it in {} ms, answering anyway",
                l.file,
                self.file_name(l.file),
                l.size,
                self.host_names(&l.unacked),
                self.sizes.ack_wait().as_millis()
            );
            for t in l.told {
                self.size_told(t);
            }
        }
        let (unread, late) = self.prefetch.expire(Instant::now());
        for req in late {
            self.core.cancel(req);
        }
        for (page, grant) in unread {
            // (Before anything else runs: the kernel has never had it.)
            Counters::add(&self.counters.prefetch_unread, 1);
            self.run_core(Input::Unused { page, grant });
        }
        let late: Vec<u64> = self
            .upgrades
            .iter()
            .filter(|(_, (_, started))| started.elapsed() >= self.read_deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let Some((page, started)) = self.upgrades.remove(&id) else {
                continue;
            };
            self.core.cancel(id);
            wlog!(
                "page protocol: no answer to the UPGRADE of page {} of file {:#x} in {} s; failing it",
                page.index,
                page.file,
                self.read_deadline.as_secs()
            );
            self.reply(id, wfs_abi::Opcode::Upgrade, started, Err(errno::EIO));
        }
        let late: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, w)| w.started.elapsed() >= self.read_deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let Some(w) = self.reads.remove(&id) else {
                continue;
            };
            self.core.cancel(id);
            wlog!(
                "page protocol: page {} of file {:#x} did not come in {} s; failing its READ",
                w.page.index,
                w.page.file,
                self.read_deadline.as_secs()
            );
            self.reply(id, wfs_abi::Opcode::Read, w.started, Err(errno::EIO));
        }
    }

    fn output(&mut self, o: Output) -> Option<Input> {
        trace_core(output_ids(&o), || format!("out {}", brief_output(&o)));
        match o {
            Output::Send { to, msg } => {
                self.send(to, PeerMsg::Page(msg));
                None
            }
            Output::Grant {
                req,
                data,
                dirty,
                writable,
            } => {
                if Prefetch::is_prefetch(req) {
                    // Kept for the kernel's READ if clean (dirty, its data
                    // would be nowhere else: it goes home).
                    let core = &self.core;
                    let installed = self
                        .prefetch
                        .arrived(req, data, dirty, |p| core.grant_of(p));
                    if installed {
                        Counters::add(&self.counters.prefetched, 1);
                    }
                    return Some(Input::Answered { req, installed });
                }
                let Some(w) = self.reads.remove(&req) else {
                    return Some(Input::Answered {
                        req,
                        installed: false,
                    });
                };
                let grant = if dirty {
                    Grant::Dirty
                } else if writable {
                    self.read_grant
                } else {
                    Grant::ReadOnly
                };
                self.prefetch.granted(w.page.file, grant == Grant::ReadOnly);
                let (taken, sent) = self.answer_read(req, &w, &data, grant);
                if taken && grant == Grant::ReadOnly {
                    Counters::add(&self.counters.read_copies, 1);
                }
                // (The scan moves on past them once this batch is done: its
                // prefetches go to the core.)
                self.read_later.extend(sent);
                Some(Input::Answered {
                    req,
                    installed: taken,
                })
            }
            Output::UpgradeAnswer { req, answer } => {
                // (Given up on already: the kernel failed it.)
                let (_, started) = self.upgrades.remove(&req)?;
                let r = match answer {
                    UpgradeAnswer::Granted { dirty } => {
                        Counters::add(&self.counters.upgrades, 1);
                        Ok(if dirty {
                            Grant::Dirty
                        } else {
                            Grant::ReadWrite
                        })
                    }
                    UpgradeAnswer::Refault => {
                        Counters::add(&self.counters.refaults, 1);
                        Ok(Grant::Refault)
                    }
                    UpgradeAnswer::Failed(e) => Err(e),
                };
                self.reply(
                    req,
                    wfs_abi::Opcode::Upgrade,
                    started,
                    r.map(ReplyBody::Grant),
                );
                None
            }
            Output::WentHome { page } => {
                wlog!(
                    "page protocol: the kernel gave up on page {} of file {:#x}, handed over dirty; writing it home",
                    page.index,
                    page.file
                );
                Counters::add(&self.counters.pages_home, 1);
                None
            }
            Output::WriteDone { req, error } => {
                let started = self.writes.remove(&req)?;
                let result = if error == 0 {
                    Ok(ReplyBody::Done)
                } else {
                    Err(error)
                };
                self.reply(req, wfs_abi::Opcode::Write, started, result);
                let page = self.orphans.remove(&req)?;
                if error != 0 && error != crate::protocol::SUPERSEDED {
                    // Not written (the disk failed, its owner is gone): the
                    // kernel keeps it dirty and writes it again. (Nothing is
                    // fetched ahead while it may: it could be such a page.)
                    if !self.orphan_failed {
                        wlog!(
                            "prefetch: off for this manager (a dead manager's page is still in the kernel)"
                        );
                    }
                    self.orphan_failed = true;
                    return None;
                }
                wlog!(
                    "page protocol: page {} of file {:#x}, left dirty by a manager that died, {} its owner; dropping it from the kernel",
                    page.index,
                    page.file,
                    if error == 0 {
                        "went home to"
                    } else {
                        "was refused by"
                    }
                );
                self.take(page, Mode::Drop)
            }
            Output::ReadFailed { req, error } => {
                if Prefetch::is_prefetch(req) {
                    // (Refused, or failed: the kernel's READ asks itself.)
                    self.prefetch.answered(req);
                    return None;
                }
                let w = self.reads.remove(&req)?;
                Counters::add(&self.counters.pages_failed, 1);
                self.reply(req, wfs_abi::Opcode::Read, w.started, Err(error));
                None
            }
            Output::Invalidate { page } => self.take(page, Mode::Drop),
            Output::Downgrade { page } => self.take(page, Mode::Downgrade),
            Output::Evicted {
                page,
                present,
                dirty,
                written,
                error,
            } => {
                if let Some(e) = self.evicts.remove(&page) {
                    let o = Outcome {
                        present,
                        dirty,
                        writable: e.writable && present,
                        written,
                        ioctl_ns: e.ioctl_ns,
                    };
                    for w in e.waiters {
                        // (One that stopped waiting is gone.)
                        let _ = w.send((o, error));
                    }
                }
                None
            }
            Output::Declare {
                host,
                incarnation,
                left,
            } => {
                if let Some(&idx) = self.by_host.get(&host) {
                    let p = &mut self.peers[idx];
                    if left
                        && p.left != Some(incarnation)
                        && p.incarnation == Some(incarnation)
                        && !p.dead.contains(&incarnation)
                    {
                        // Another host heard it leave: its own `Leaving`
                        // comes on the connection after the pages it
                        // released, and takes it for dead then (closing
                        // or refusing the connection now would lose them:
                        // every page it held here reported lost).
                        if p.leaving_heard != Some(incarnation) {
                            wlog!(
                                "peer {}: incarnation {incarnation:#x} is leaving, another host says; taken for dead at its own word",
                                p.name
                            );
                            p.leaving_heard = Some(incarnation);
                        }
                        return None;
                    }
                    if p.incarnation.is_none_or(|i| i == incarnation) {
                        wlog!(
                            "peer {}: an owner took incarnation {incarnation:#x} for dead",
                            p.name
                        );
                        // One that said it was leaving holds nothing; else
                        // its lease must have run out first.
                        let wait = p.left != Some(incarnation);
                        self.declare(idx, incarnation, wait);
                        return None;
                    }
                }
                // Not the current one: refused if it ever connects, and the
                // core hears of its death anyway.
                if let Some(&idx) = self.by_host.get(&host) {
                    self.peers[idx].dead.insert(incarnation);
                    if let Some(cl) = &self.cluster {
                        cl.refuse_incarnation(idx, incarnation);
                    }
                    if !self.record_death(idx, incarnation) {
                        return None;
                    }
                }
                Some(Input::PeerDied {
                    host,
                    incarnation,
                    undelivered: Vec::new(),
                    unsent: Vec::new(),
                })
            }
            Output::Left => {
                self.left = true;
                None
            }
            Output::Lost { page, host } => {
                Counters::add(&self.counters.pages_lost, 1);
                let what = if self.core.owner_of(page.file) == Some(self.me) {
                    "served from this owner's disk"
                } else {
                    "its owner is gone"
                };
                wlog!(
                    "page protocol: LOST page {} of file {:#x} ({}): its newest data may have died with {}; {what}",
                    page.index,
                    page.file,
                    self.file_name(page.file),
                    self.host_names(&[host])
                );
                None
            }
            Output::Rejected(e) => {
                self.core_refused(e);
                None
            }
            Output::PutRefused { page, owner } => {
                wlog!(
                    "page protocol: {} refused this host's write of page {} of file {:#x} ({}) as one it may not make; the write fails (EPERM)",
                    self.host_names(&[owner]),
                    page.index,
                    page.file,
                    self.file_name(page.file)
                );
                None
            }
            Output::OrphanRefused { page } => {
                wlog!(
                    "page protocol: the owner of file {:#x} ({}) did not take the dirty data of page {} kept for it; it reports the page lost",
                    page.file,
                    self.file_name(page.file),
                    page.index
                );
                None
            }
            Output::DiskRead { page } => {
                let data = match self.read_home(page) {
                    Ok(data) => data,
                    Err(e) => {
                        wlog!(
                            "page protocol: cannot read page {} of file {:#x} from the export ({}); the requester's reads fail",
                            page.index,
                            page.file,
                            crate::device::describe_errno(e)
                        );
                        let error = kernel_errno(e);
                        return Some(Input::DiskReadFailed { page, error });
                    }
                };
                Some(Input::DiskRead { page, data })
            }
            Output::DiskWrite {
                page,
                data,
                epoch,
                ack,
            } => {
                let _lock = self.export.lock_page(page.file, page.index);
                let done = DiskDone { page, epoch, ack };
                let began = Instant::now();
                let error = match &self.committer {
                    Some(c) => match self
                        .export
                        .write_page_unsynced(page.file, page.index, &data)
                    {
                        Ok((fd, inode)) => {
                            c.push(fd, inode, began, done);
                            Counters::add(&self.counters.disk_writes, 1);
                            return None;
                        }
                        Err(e) => e,
                    },
                    // (Before the committer runs: flushed at once.)
                    None => match self.export.write_page(page.file, page.index, &data) {
                        Ok(()) => {
                            Counters::add(&self.counters.disk_writes, 1);
                            Counters::add(&self.counters.disk_syncs, 1);
                            0
                        }
                        Err(e) => e,
                    },
                };
                Some(disk_written(done, error))
            }
        }
    }

    /// Reports a flushed batch of disk writes to the core.
    fn flushed(&mut self, f: Flushed<DiskDone>) {
        Counters::add(&self.counters.disk_syncs, f.syncs);
        for (done, error) in f.done {
            self.run_core(disk_written(done, error));
        }
    }

    /// Takes `page` from the kernel for the core (`mode`); `None` if the
    /// kernel holds it busy: it is tried again, and a later take of a page
    /// waits behind an earlier one (the core hears of them in order).
    fn take(&mut self, page: PageId, mode: Mode) -> Option<Input> {
        // A copy kept for the kernel goes first (nothing of it is owed).
        self.prefetch.drop_page(page);
        if !self.busy.iter().any(|b| b.page == page)
            && let Some(input) = self.attempt(page, mode)
        {
            return Some(input);
        }
        // (One just like the page's last one waiting answers for both.)
        let last = self.busy.iter().rev().find(|b| b.page == page);
        if last.is_none_or(|b| b.mode != mode) {
            self.busy.push(Busy {
                page,
                mode,
                since: Instant::now(),
                warned: false,
            });
        }
        None
    }

    /// One INVALIDATE of `page`: its result for the core, or `None` if the
    /// kernel holds the page busy.
    fn attempt(&mut self, page: PageId, mode: Mode) -> Option<Input> {
        let downgrade = mode == Mode::Downgrade;
        let result = |contents| Input::taken(page, downgrade, contents);
        match self.inval.take_page(page.file, page.index, mode) {
            Ok(taken) => {
                if let Some(t) = &taken {
                    if mode == Mode::Drop {
                        Counters::add(&self.counters.pages_out, 1);
                    }
                    if let Some(e) = self.evicts.get_mut(&page) {
                        e.writable = t.writable;
                        e.ioctl_ns = t.ioctl_ns;
                    }
                    self.stats.costs.record(Stage::Invalidate, t.ioctl_ns);
                }
                Some(result(taken.map(|t| (t.data, t.dirty))))
            }
            Err(libc::EAGAIN) => {
                let settled = self.core.busy(page, downgrade);
                if settled.is_none() {
                    Counters::add(&self.counters.busy_retries, 1);
                }
                settled
            }
            Err(e) => {
                // The kernel refused the ioctl itself (no such mount...):
                // nothing of the page is here to hand over.
                wlog!(
                    "page protocol: INVALIDATE of page {} of file {:#x}: {}; handing it over as absent",
                    page.index,
                    page.file,
                    crate::device::describe_errno(e)
                );
                Some(result(None))
            }
        }
    }

    /// Answers the busy invalidations of `page`, in order, as finding
    /// nothing: its kernel is reading it in.
    fn settle_busy(&mut self, page: PageId) {
        while let Some(i) = self.busy.iter().position(|b| b.page == page) {
            let b = self.busy.remove(i);
            self.run_core(Input::taken(page, b.mode == Mode::Downgrade, None));
        }
    }

    /// Tries the busy pages again, in the order they were asked for: the
    /// first of each page first.
    fn retry_busy(&mut self) {
        let mut i = 0;
        while i < self.busy.len() {
            let Busy { page, mode, .. } = self.busy[i];
            if self.busy[..i].iter().any(|b| b.page == page) {
                i += 1;
                continue;
            }
            let b = &mut self.busy[i];
            if !b.warned && b.since.elapsed() >= BUSY_WARN {
                wlog!(
                    "page protocol: page {} of file {:#x} busy in the kernel for {} s; still trying",
                    page.index,
                    page.file,
                    BUSY_WARN.as_secs()
                );
                b.warned = true;
            }
            match self.attempt(page, mode) {
                Some(input) => {
                    // (What the core does now only adds to the list.)
                    self.busy.remove(i);
                    self.run_core(input);
                }
                None => i += 1,
            }
        }
    }
}

/// The core's inputs and outputs are trace events of this module
/// (`WFS_TRACE=1`, or `WFS_LOG=wfs_manager::engine=trace`): `text` ("in
/// ...", "out ..."), with the page (`file`, `page`: its index) and the
/// transaction (`txn`) they concern, `ids` ([`input_ids`],
/// [`output_ids`]), when they concern one, as fields: grep a fault's
/// `txn=0x...` in every host's log to follow it. Nothing is formatted
/// (`text` is not called) when they are off.
fn trace_core(ids: (Option<PageId>, Option<u64>), text: impl FnOnce() -> String) {
    if tracing::enabled!(tracing::Level::TRACE) {
        let (page, txn) = ids;
        tracing::trace!(
            file = page.map(|p| log::hex(p.file)),
            page = page.map(|p| p.index),
            txn = txn.map(log::hex),
            "{}",
            text()
        );
    }
}

/// The page and the transaction of an input the engine made from an output
/// of the input whose ids are `cause` (a disk read done, a page taken back
/// from the kernel, the kernel's answer to a grant), its own being `own`:
/// those of the cause when it has no transaction of its own and concerns
/// the cause's page or none, so that its lines carry the transaction it is
/// part of.
fn caused_ids(
    own: (Option<PageId>, Option<u64>),
    cause: (Option<PageId>, Option<u64>),
) -> (Option<PageId>, Option<u64>) {
    match own {
        (None, None) => cause,
        (Some(p), None) if cause.0 == Some(p) => (Some(p), cause.1),
        _ => own,
    }
}

/// The span an input of the core is handled in: a debug span `txn` with
/// the page (`file`, `page`) and the transaction (`txn`) of `ids`
/// ([`input_ids`]), those it has; every debug and trace line logged while
/// it is handled carries them ([`crate::log`]), the outputs it causes
/// among them. A root span: an input handled while another is (an output
/// of that one ran the core again) is not taken for part of it. When
/// debug is off for the engine (`info`, the default) no span is made:
/// nothing is recorded, nothing allocated.
fn txn_span(ids: (Option<PageId>, Option<u64>)) -> tracing::Span {
    let (page, txn) = ids;
    tracing::debug_span!(
        parent: None,
        "txn",
        file = page.map(|p| log::hex(p.file)),
        page = page.map(|p| p.index),
        txn = txn.map(log::hex)
    )
}

/// The page and the transaction `m` concerns, if it concerns one.
fn msg_ids(m: &Msg) -> (Option<PageId>, Option<u64>) {
    match m {
        Msg::WhereIs { txn, page, .. }
        | Msg::Fetch { txn, page, .. }
        | Msg::Data { txn, page, .. }
        | Msg::Absent { txn, page }
        | Msg::Done { txn, page }
        | Msg::Failed { txn, page, .. }
        | Msg::Returned { txn, page }
        | Msg::Share { txn, page }
        | Msg::Kept { txn, page }
        | Msg::Revoke { txn, page }
        | Msg::Revoked { txn, page }
        | Msg::Upgrade { txn, page }
        | Msg::Upgraded { txn, page, .. }
        | Msg::Stale { txn, page } => (Some(*page), Some(*txn)),
        Msg::Put { page, .. }
        | Msg::PutAck { page, .. }
        | Msg::Released { page }
        | Msg::Orphan { page, .. } => (Some(*page), None),
        Msg::Recover { .. } | Msg::Recovered { .. } | Msg::Leaving { .. } | Msg::Holding { .. } => {
            (None, None)
        }
    }
}

/// The page and the transaction input `i` concerns ([`msg_ids`]).
fn input_ids(i: &Input) -> (Option<PageId>, Option<u64>) {
    match i {
        Input::Message { msg, .. } => msg_ids(msg),
        Input::Fault { page, .. }
        | Input::Prefetch { page, .. }
        | Input::Unused { page, .. }
        | Input::Upgrade { page, .. }
        | Input::Writeback { page, .. }
        | Input::Invalidated { page, .. }
        | Input::DiskRead { page, .. }
        | Input::DiskReadFailed { page, .. }
        | Input::DiskWritten { page, .. }
        | Input::Evict { page, .. }
        | Input::Downgraded { page, .. } => (Some(*page), None),
        _ => (None, None),
    }
}

/// The page and the transaction output `o` concerns ([`msg_ids`]).
fn output_ids(o: &Output) -> (Option<PageId>, Option<u64>) {
    match o {
        Output::Send { msg, .. } => msg_ids(msg),
        Output::Invalidate { page }
        | Output::Downgrade { page }
        | Output::Evicted { page, .. }
        | Output::DiskRead { page }
        | Output::DiskWrite { page, .. }
        | Output::Lost { page, .. }
        | Output::OrphanRefused { page }
        | Output::WentHome { page }
        | Output::PutRefused { page, .. } => (Some(*page), None),
        _ => (None, None),
    }
}

/// A message without its page data, for the trace.
fn brief_msg(m: &Msg) -> String {
    match m {
        Msg::Data {
            txn,
            page,
            dirty,
            epoch,
            data,
            access,
            ..
        } => format!(
            "Data {{ txn: {txn:#x}, page: {page:?}, dirty: {dirty}, access: {access:?}, epoch: {epoch}, first: {:?} }}",
            &data[..data.len().min(8)]
        ),
        Msg::Put {
            page, epoch, seq, ..
        } => format!("Put {{ page: {page:?}, epoch: {epoch}, seq: {seq} }}"),
        other => format!("{other:?}"),
    }
}

fn brief_input(i: &Input) -> String {
    match i {
        Input::Message { from, msg } => format!("from {from}: {}", brief_msg(msg)),
        Input::Writeback { req, page, .. } => format!("Writeback {{ req: {req}, page: {page:?} }}"),
        Input::Invalidated { page, contents } => format!(
            "Invalidated {{ page: {page:?}, contents: {:?} }}",
            contents
                .as_ref()
                .map(|(d, dirty)| (&d[..d.len().min(8)], dirty))
        ),
        Input::DiskRead { page, data } => {
            format!(
                "DiskRead {{ page: {page:?}, first: {:?} }}",
                &data[..data.len().min(8)]
            )
        }
        other => format!("{other:?}"),
    }
}

fn brief_output(o: &Output) -> String {
    match o {
        Output::Send { to, msg } => format!("to {to}: {}", brief_msg(msg)),
        Output::Grant {
            req,
            dirty,
            data,
            writable,
        } => format!(
            "Grant {{ req: {req}, dirty: {dirty}, writable: {writable}, first: {:?} }}",
            &data[..data.len().min(8)]
        ),
        Output::DiskWrite { page, .. } => format!("DiskWrite {{ page: {page:?} }}"),
        other => format!("{other:?}"),
    }
}

/// The engine, shared by the threads that bring it events: upcall
/// workers, connection readers and its timer. Whoever brings an event runs
/// the engine itself, so no event waits for another thread to wake up; but
/// nobody waits for the engine's lock either: an event that finds the
/// engine busy is queued, and the thread inside handles it before it
/// leaves. (A connection reader that blocked on the engine while the engine
/// blocks writing to that peer, whose reader does the same, would
/// deadlock two hosts.)
#[derive(Clone)]
pub struct Handle(Arc<Shared>);

struct Shared {
    engine: Mutex<Engine>,
    queue: Mutex<VecDeque<Event>>,
}

impl Handle {
    /// Shares `engine`.
    pub fn new(engine: Engine) -> Handle {
        Handle(Arc::new(Shared {
            engine: Mutex::new(engine),
            queue: Mutex::new(VecDeque::new()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Engine> {
        self.0.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Event>> {
        self.0.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles one event, now or (if another thread is in the engine) as
    /// soon as that thread is done with what it has.
    pub fn event(&self, ev: Event) {
        self.queue().push_back(ev);
        self.drain();
    }

    /// Runs the queued events if nobody else is in the engine.
    fn drain(&self) {
        loop {
            let mut engine = match self.0.engine.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                // The thread inside sees the queue before it leaves.
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            engine.cork();
            let mut handled = 0;
            loop {
                let next = self.queue().pop_front();
                match next {
                    Some(ev) => engine.event(ev),
                    None => break,
                }
                handled += 1;
                if handled % CORKED_EVENTS == 0 {
                    // (Events may keep coming: what is held goes out
                    // meanwhile.)
                    engine.uncork();
                    engine.cork();
                }
            }
            engine.uncork();
            drop(engine);
            // An event queued after the last look but before the unlock
            // found the engine busy: take it.
            if self.queue().is_empty() {
                return;
            }
        }
    }

    /// Leaves the cluster (the manager is stopping): hands every page this
    /// host holds back to its owner (its dirty data on the owner's stable
    /// storage) and tells the peers, waiting at most `timeout`. Returns
    /// whether it got that far.
    pub fn leave(&self, timeout: Duration) -> bool {
        {
            let mut e = self.lock();
            wlog!("leaving the cluster: handing every page back to its owner");
            // (A page of an owner not connected now waits for the
            // connection, at most the leave's time-out.)
            e.run_core(Input::Leave);
        }
        self.drain();
        let end = Instant::now() + timeout;
        loop {
            let left = self.lock().left;
            // What arrived while this thread held the lock.
            self.drain();
            if left {
                wlog!("left the cluster: every page is back with its owner");
                break;
            }
            if Instant::now() >= end {
                wlog!(
                    "leaving: not every page went home within {} s; pages still here are lost with this host",
                    timeout.as_secs()
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The peers must have what this host said last (its read-only
        // copies released, `Leaving`) before its connections close: a
        // message still in a socket's buffer at the close may never
        // arrive, and a peer that missed `Leaving` waits for this host's
        // read-only copies until it takes it for dead, which a host left
        // alone never does.
        loop {
            let waiting = self.lock().unheard();
            self.drain();
            if waiting.is_empty() {
                return true;
            }
            if Instant::now() >= end {
                wlog!(
                    "leaving: {} did not acknowledge this host's leaving within {} s; they take it for dead later",
                    waiting.join(", "),
                    timeout.as_secs()
                );
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes page `index` of this host's file `name` from the kernel for
    /// the operator (`wfsctl invalidate`), through the page protocol: its
    /// dirty data goes home as any other does, ordered by the page's
    /// epochs. A page that is moving between hosts is tried again for
    /// [`EVICT_WAIT`].
    pub fn evict(&self, name: &str, index: u64, mode: Mode) -> Result<Outcome, String> {
        // (A look at the export directory: not under the engine's lock.)
        let export = self.lock().export.clone();
        let Ok(a) = export.lookup(name.as_bytes()) else {
            return Err(format!(
                "{name:?} is not exported by this host: pages of other hosts' files move by the page protocol"
            ));
        };
        let page = PageId {
            file: a.file,
            index,
        };
        let deadline = Instant::now() + EVICT_WAIT;
        loop {
            let (tx, rx) = mpsc::channel();
            let started = {
                let mut e = self.lock();
                e.know_file(page.file);
                match e.evicts.get_mut(&page) {
                    // One under way answers this one too.
                    Some(ev) if ev.mode == mode => {
                        ev.waiters.push(tx);
                        true
                    }
                    // The other mode: after it.
                    Some(_) => false,
                    None => {
                        e.evicts.insert(
                            page,
                            Evict {
                                mode,
                                waiters: vec![tx],
                                writable: false,
                                ioctl_ns: 0,
                            },
                        );
                        e.run_core(Input::Evict {
                            page,
                            downgrade: mode == Mode::Downgrade,
                        });
                        true
                    }
                }
            };
            self.drain();
            if !started {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "page {index} of {name:?}: another eviction of it was under way for {} s",
                        EVICT_WAIT.as_secs()
                    ));
                }
                std::thread::sleep(RETRY);
                continue;
            }
            let waited = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            let what = format!("page {index} of {name:?}");
            match waited {
                Ok((o, 0)) => return Ok(o),
                Ok((_, crate::protocol::BUSY)) if Instant::now() < deadline => {
                    std::thread::sleep(RETRY);
                }
                Ok((_, crate::protocol::BUSY)) | Err(_) => {
                    return Err(format!("{what} stayed busy for {} s", EVICT_WAIT.as_secs()));
                }
                Ok((o, error)) if o.dirty && !o.written => {
                    let why = match error {
                        crate::protocol::SUPERSEDED => {
                            "newer data of the page, not on the owner's disk yet, superseded it"
                                .to_string()
                        }
                        crate::protocol::HOST_DOWN => "its owner is gone".to_string(),
                        e => format!(
                            "{} (it is sent again, unless newer data of the page goes first)",
                            crate::device::describe_errno(e)
                        ),
                    };
                    return Err(format!(
                        "{what} was dirty, and its data is not on the owner's disk: {why}"
                    ));
                }
                Ok((_, error)) => {
                    return Err(format!("{what}: {}", crate::device::describe_errno(error)));
                }
            }
        }
    }

    /// The pages a manager that died left dirty in the kernel were all
    /// written home (`ok`), or some may still be there: fetching ahead
    /// starts only in the first case, and stops for good if an orphan's
    /// write fails later.
    pub fn left_pages_flushed(&self, ok: bool) {
        {
            let mut e = self.lock();
            e.prefetch_ok = ok;
            if !ok {
                wlog!(
                    "prefetch: off for this manager (a dead manager's pages may still be in the kernel)"
                );
            }
        }
        // What arrived while this thread held the lock.
        self.drain();
    }

    /// Where the upcall workers hand the kernel's requests.
    pub fn upcall_sink(&self) -> UpcallSink {
        let me = self.clone();
        Arc::new(move |u| me.event(Event::Upcall(u)))
    }

    /// Forgets what the name service cached of `name` (`wfsctl forget`).
    pub fn forget_name(&self, name: &[u8]) {
        self.lock().names.forget(name);
        self.drain();
    }

    /// Each peer as the page protocol sees it, by name (`wfsctl status`).
    pub fn peer_health(&self) -> Vec<(String, PeerHealth)> {
        let h = self.lock().peer_health();
        self.drain();
        h
    }

    /// Starts the cluster with `start`, handing it a sink that brings its
    /// events here; none is handled before the engine has the cluster.
    pub fn attach(
        &self,
        start: impl FnOnce(EventSink) -> std::io::Result<Arc<Cluster>>,
    ) -> std::io::Result<Arc<Cluster>> {
        let mut engine = self.lock();
        let me = self.clone();
        let cluster = start(Box::new(move |e| {
            // A frame with another right behind it waits for it: the two
            // are handled together, and what they cause is sent together.
            if matches!(e, NetEvent::Frame { more: true, .. }) {
                me.queue().push_back(Event::Net(e));
            } else {
                me.event(Event::Net(e));
            }
        }))?;
        for (idx, p) in engine.peers.iter().enumerate() {
            for &inc in &p.dead {
                cluster.refuse_incarnation(idx, inc);
            }
        }
        engine.cluster = Some(cluster.clone());
        drop(engine);
        // What arrived meanwhile is queued.
        self.drain();
        Ok(cluster)
    }

    /// Starts the thread that flushes this owner's disk writes in batches
    /// ([`crate::commit`]); until then each write is flushed by itself.
    pub fn start_committer(&self) -> std::io::Result<()> {
        let me = self.clone();
        let c = Committer::start(move |f| me.event(Event::Flushed(f)))?;
        self.lock().committer = Some(c);
        self.drain();
        Ok(())
    }

    /// Starts the timer thread: every millisecond while pages wait to be
    /// taken from the kernel, else every [`TICK`].
    pub fn start_ticker(&self) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("engine-timer".into())
            .spawn(move || {
                let mut last_acks = Instant::now();
                let mut busy = false;
                loop {
                    std::thread::sleep(if busy { RETRY } else { TICK });
                    let acks = last_acks.elapsed() >= TICK;
                    if acks {
                        last_acks = Instant::now();
                    }
                    busy = me.lock().tick(acks);
                    me.drain();
                }
            })
            .map(|_| ())
    }
}

/// Frames sent to (peer, connection), grouped by connection in the order
/// each was first sent to, each connection's in the order sent.
fn by_connection<F>(held: Vec<(usize, u64, F)>) -> Vec<((usize, u64), Vec<F>)> {
    let mut by_conn: Vec<((usize, u64), Vec<F>)> = Vec::new();
    for (idx, conn, f) in held {
        match by_conn.iter_mut().find(|(k, _)| *k == (idx, conn)) {
            Some((_, fs)) => fs.push(f),
            None => by_conn.push(((idx, conn), vec![f])),
        }
    }
    by_conn
}

/// The core's report of a disk write that ended with `error` (logged).
fn disk_written(done: DiskDone, error: i32) -> Input {
    let DiskDone { page, epoch, ack } = done;
    if error != 0 {
        wlog!(
            "page protocol: cannot write page {} of file {:#x} to the export: {}; the writer's WRITE fails",
            page.index,
            page.file,
            crate::device::describe_errno(error)
        );
    }
    Input::DiskWritten {
        page,
        epoch,
        ack,
        error: if error == 0 { 0 } else { kernel_errno(error) },
    }
}

/// An errno of this host's disk as the kernel takes it in a reply: 1 to
/// `MAX_REPLY_ERRNO`, `EIO` for anything else.
fn kernel_errno(e: i32) -> i32 {
    if (1..=MAX_REPLY_ERRNO).contains(&e) {
        e
    } else {
        errno::EIO
    }
}

/// Whether the `n`th refusal is logged: the first hundred, then every
/// thousandth.
fn loggable(n: u64) -> bool {
    n <= 100 || n.is_multiple_of(1000)
}

/// Refuses a page message whose page is not exactly one page: written to
/// the export or installed, anything else would spill into the next page
/// or leave part of one undefined.
fn check_page_msg(m: &Msg) -> Result<(), String> {
    match m {
        Msg::Data { data, .. } | Msg::Put { data, .. } | Msg::Orphan { data, .. }
            if data.len() != PAGE_SIZE =>
        {
            Err(format!(
                "a page of {} bytes (pages are {PAGE_SIZE})",
                data.len()
            ))
        }
        // The error goes to the kernel, which takes errnos 1 to
        // MAX_REPLY_ERRNO only.
        Msg::Failed { error, .. } if !(1..=MAX_REPLY_ERRNO).contains(error) => {
            Err(format!("a failed page with error {error}"))
        }
        Msg::PutAck { error, .. } if !(0..=MAX_REPLY_ERRNO).contains(error) => {
            Err(format!("a Put acknowledged with error {error}"))
        }
        _ => Ok(()),
    }
}

/// An owner's `Times` of its `file`, whose attributes are `a`.
fn times_of(file: u64, a: &Attr) -> SizeMsg {
    SizeMsg::Times {
        file,
        mtime: a.mtime,
        ctime: a.ctime,
        perm: crate::names::Perm::of(a),
    }
}

fn info(a: &Attr) -> FileInfo {
    FileInfo {
        file: a.file,
        size: a.size,
        mode: a.mode,
        mtime: a.mtime,
        ctime: a.ctime,
        uid: a.uid,
        gid: a.gid,
        root_squash: a.root_squash,
    }
}

fn attr(i: &FileInfo) -> Attr {
    Attr {
        file: i.file,
        size: i.size,
        mode: i.mode,
        mtime: i.mtime,
        ctime: i.ctime,
        uid: i.uid,
        gid: i.gid,
        root_squash: i.root_squash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Access;

    /// Engines driven by hand, for the lock and size services: each
    /// host's kernel is the test's end of a socket pair (the engine writes
    /// its replies to the other end), and what an engine sends its peers is
    /// held ([`Engine::cork`]), encoded and decoded as on the wire, and
    /// handed to the peer as its connection reader would.
    mod harness {
        use super::*;
        use crate::testkit::TestDir;
        use wfs_abi::LockInfo;

        /// Every host's connection to every other is number 1.
        pub(super) const CONN: u64 = 1;

        /// The kernel session every test engine registered as.
        pub(super) const KERNEL_SESSION: u64 = 7;

        /// What a reply carried.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Got {
            /// Nothing: an error.
            Nothing,
            Done,
            Lock(LockInfo),
            Attr(Attr),
            Other,
        }

        /// One host of the test.
        pub(super) struct Host {
            pub(super) engine: Engine,
            /// The kernel's end of the socket pair.
            pub(super) kernel: RawFd,
            /// The engine's end.
            pub(super) device: RawFd,
            pub(super) dir: TestDir,
        }

        impl Host {
            /// Host `name` (incarnation `inc`), whose export holds `files`,
            /// with the other hosts `peers`.
            pub(super) fn new(
                name: &str,
                inc: u64,
                peers: &[&str],
                files: &[&str],
                read_deadline: Duration,
            ) -> Host {
                let dir = TestDir::new(&format!("engine-locks-{name}"));
                for f in files {
                    std::fs::write(dir.export().join(f), vec![0u8; PAGE_SIZE]).expect("file");
                }
                let mut text = format!(
                    "cluster = \"t\"\nhost = \"{name}\"\nlisten = \"127.0.0.1:1\"\nexport = \"{}\"\ndevice = \"/nonexistent\"\ncontrol = \"{}\"\nstate = \"{}\"\ntransport = \"plain\"\n",
                    dir.export().display(),
                    dir.path.join("ctl").display(),
                    dir.path.display()
                );
                for (i, p) in peers.iter().enumerate() {
                    text += &format!("[[peer]]\nname = \"{p}\"\naddr = \"127.0.0.1:{}\"\n", i + 2);
                }
                let cfg = Config::parse(&text).expect("config");
                let mut fds = [0; 2];
                // SAFETY: socketpair(2) fills the two descriptors of `fds`.
                let rc = unsafe {
                    libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr())
                };
                assert_eq!(rc, 0, "socketpair");
                let export = Arc::new(Export::new(&dir.export()));
                let pool = Arc::new(Pool::for_tests(4 + wfs_abi::SCRATCH_SLOTS));
                let inval = Arc::new(Invalidator::new(
                    -1,
                    pool.slots(),
                    Some(pool.clone()),
                    export.clone(),
                ));
                let deaths = Deaths::load(Deaths::path(&dir.path, "t", name)).expect("deaths");
                let parts = Parts {
                    export,
                    pool,
                    inval,
                    stats: Arc::new(Stats::default()),
                    counters: Arc::new(Counters::default()),
                    read_deadline,
                    kernel_timeout: crate::sizes::KERNEL_TIMEOUT,
                    kernel_session: KERNEL_SESSION,
                    open_files: Vec::new(),
                    incarnation: inc,
                    previous: None,
                    deaths,
                };
                Host {
                    engine: Engine::new(&cfg, fds[0], parts),
                    kernel: fds[1],
                    device: fds[0],
                    dir,
                }
            }

            /// The engine's peer index of host `name`.
            pub(super) fn peer(&self, name: &str) -> usize {
                self.engine
                    .peers
                    .iter()
                    .position(|p| p.name == name)
                    .expect("peer")
            }

            /// Runs `f` on the engine; returns the frames it sent, each
            /// with the name of the host it is for.
            pub(super) fn with(&mut self, f: impl FnOnce(&mut Engine)) -> Vec<(String, Frame)> {
                self.engine.cork();
                f(&mut self.engine);
                let held = self.engine.corked.take().unwrap_or_default();
                held.into_iter()
                    .map(|(idx, _, f)| (self.engine.peers[idx].name.clone(), f))
                    .collect()
            }

            /// The replies the kernel has received since last asked: (id,
            /// opcode, errno, body).
            pub(super) fn kernel_replies(&self) -> Vec<(u64, wfs_abi::Opcode, i32, Got)> {
                let mut out = Vec::new();
                let mut buf = [0u8; MSG_MAX];
                loop {
                    // SAFETY: `buf` is valid for its length; `kernel` is
                    // this host's open socket.
                    let n = unsafe {
                        libc::recv(
                            self.kernel,
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT,
                        )
                    };
                    let Ok(n) = usize::try_from(n) else {
                        return out;
                    };
                    let r = Reply::decode(&buf[..n]).expect("reply");
                    let got = match r.body {
                        None => Got::Nothing,
                        Some(ReplyBody::Done) => Got::Done,
                        Some(ReplyBody::Lock(i)) => Got::Lock(i),
                        Some(ReplyBody::Attr(a)) => Got::Attr(a),
                        Some(_) => Got::Other,
                    };
                    out.push((r.id, r.op, r.error, got));
                }
            }
        }

        impl Drop for Host {
            fn drop(&mut self) {
                // SAFETY: both descriptors are this host's, open, and
                // closed once.
                unsafe {
                    libc::close(self.kernel);
                    libc::close(self.device);
                }
            }
        }

        std::thread_local! {
            /// The id of file `f` of the last cluster this test made.
            static F_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }

        /// The id of file `f` of the cluster this test made.
        pub(super) fn f_id() -> u64 {
            F_ID.with(|id| id.get())
        }

        /// Hosts by name, and the frames between them.
        pub(super) struct Cluster {
            pub(super) hosts: Vec<(String, Host)>,
            /// Hosts whose manager is gone (restarted): what is sent to
            /// them is lost.
            pub(super) gone: Vec<String>,
        }

        impl Cluster {
            /// Hosts `names`, the first exporting file `f`, all connected
            /// to all.
            pub(super) fn new(names: &[&str], read_deadline: Duration) -> Cluster {
                let hosts: Vec<(String, Host)> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let peers: Vec<&str> = names.iter().copied().filter(|p| p != n).collect();
                        let files: &[&str] = if i == 0 { &["f"] } else { &[] };
                        let h = Host::new(n, inc(n, 1), &peers, files, read_deadline);
                        (n.to_string(), h)
                    })
                    .collect();
                let mut c = Cluster {
                    hosts,
                    gone: Vec::new(),
                };
                // Every connection up first (a frame on a connection its
                // receiver has not heard of yet is dropped), then what
                // that sent.
                let mut sent = Vec::new();
                for a in names {
                    for b in names.iter().filter(|b| *b != a) {
                        let h = c.host(a);
                        let ev = up(h.peer(b), inc(b, 1));
                        sent.extend(
                            h.with(|e| e.event(ev))
                                .into_iter()
                                .map(|(to, f)| (a.to_string(), to, f)),
                        );
                    }
                }
                c.deliver(sent.into());
                let f = c.id_of(b"f");
                F_ID.with(|id| id.set(f));
                c
            }

            /// The id of file `name`, as the export holding it gives it.
            pub(super) fn id_of(&mut self, name: &[u8]) -> u64 {
                self.hosts
                    .iter()
                    .map(|(_, h)| h.dir.export())
                    .find(|d| {
                        d.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name))
                            .exists()
                    })
                    .map(|d| crate::export::id_in(&d, name))
                    .expect("a host exports it")
            }

            pub(super) fn host(&mut self, name: &str) -> &mut Host {
                &mut self
                    .hosts
                    .iter_mut()
                    .find(|(n, _)| n == name)
                    .expect("host")
                    .1
            }

            /// Host `at` hears that `peer` restarted as incarnation
            /// `incarnation` (the old one is gone, its messages lost).
            pub(super) fn restarted(&mut self, at: &str, peer: &str, incarnation: u64) {
                self.gone.push(peer.to_string());
                let ev = up(self.host(at).peer(peer), incarnation);
                self.on(at, |e| e.event(ev));
            }

            /// Runs `f` on host `at`'s engine, and delivers what it sends,
            /// and what that causes, until nothing is left.
            pub(super) fn on(&mut self, at: &str, f: impl FnOnce(&mut Engine)) {
                let sent = self.host(at).with(f);
                let todo = sent
                    .into_iter()
                    .map(|(to, f)| (at.to_string(), to, f))
                    .collect();
                self.deliver(todo);
            }

            /// Delivers `todo` (from, to, frame), in order, and what that
            /// causes, until nothing is left.
            pub(super) fn deliver(&mut self, mut todo: VecDeque<(String, String, Frame)>) {
                while let Some((from, to, frame)) = todo.pop_front() {
                    for (next, f) in self.step(&from, &to, frame) {
                        todo.push_back((to.clone(), next, f));
                    }
                }
            }

            /// Delivers one frame `from` → `to` (nothing to a host that is
            /// gone); returns what it caused, undelivered.
            pub(super) fn step(
                &mut self,
                from: &str,
                to: &str,
                frame: Frame,
            ) -> Vec<(String, Frame)> {
                if self.gone.iter().any(|g| g == to) {
                    return Vec::new();
                }
                // As on the wire.
                let bytes = frame.encode();
                let frame = crate::wire::read_frame(&mut std::io::Cursor::new(bytes))
                    .expect("a frame that decodes");
                let Frame::Page(frame) = frame else {
                    panic!("a session frame: {frame:?}");
                };
                let h = self.host(to);
                let ev = Event::Net(NetEvent::Frame {
                    peer: h.peer(from),
                    conn: CONN,
                    frame,
                    more: false,
                });
                h.with(|e| e.event(ev))
            }

            /// Host `at`'s kernel sends `req` as request `id`.
            pub(super) fn ask(&mut self, at: &str, id: u64, req: Request<'_>) {
                let mut msg = [0u8; MSG_MAX];
                let n = req.encode(id, &mut msg).expect("encode");
                let u = Upcall {
                    started: Instant::now(),
                    msg: msg[..n].to_vec(),
                };
                self.on(at, |e| e.event(Event::Upcall(u)));
            }
        }

        /// The connection to peer `idx`, incarnation `incarnation`, is up.
        pub(super) fn up(idx: usize, incarnation: u64) -> Event {
            Event::Net(NetEvent::Up {
                peer: idx,
                conn: CONN,
                incarnation,
                since: Instant::now(),
            })
        }

        pub(super) fn inc(name: &str, n: u64) -> u64 {
            (u64::from(host_id(name)) << 16) | n
        }
    }

    /// CREATE and UNLINK across hosts (`engine/space.rs`).
    mod names_made {
        use super::harness::{CONN, Cluster, Got};
        use super::*;
        use wfs_abi::Opcode;

        fn create(name: &[u8], excl: bool) -> Request<'_> {
            Request::Create {
                name,
                mode: 0o640,
                excl,
                uid: 0,
                gid: 0,
            }
        }

        fn upcall(req: u64, r: Request<'_>) -> Upcall {
            let mut msg = [0u8; MSG_MAX];
            let n = r.encode(req, &mut msg).expect("encode");
            Upcall {
                started: Instant::now(),
                msg: msg[..n].to_vec(),
            }
        }

        impl Cluster {
            fn answers_of(&mut self, at: &str) -> Vec<(u64, Opcode, i32, Got)> {
                self.host(at).kernel_replies()
            }

            fn exports(&mut self, at: &str, name: &str) -> bool {
                self.host(at).dir.export().join(name).exists()
            }

            /// The attributes of `name` in host `at`'s export, as its
            /// owner reports them to other hosts: as a `stat` there says,
            /// root squashed (the default). Its own kernel is told the
            /// same but root squashing ([`Cluster::own`]).
            pub(super) fn exported(&mut self, at: &str, name: &str) -> Attr {
                use std::os::unix::fs::{MetadataExt, PermissionsExt};
                let md = std::fs::metadata(self.host(at).dir.export().join(name)).unwrap();
                Attr {
                    file: self.id_of(name.as_bytes()),
                    size: md.len(),
                    mode: md.permissions().mode() & 0o7777,
                    mtime: crate::export::time(md.mtime(), md.mtime_nsec()),
                    ctime: crate::export::time(md.ctime(), md.ctime_nsec()),
                    uid: md.uid(),
                    gid: md.gid(),
                    root_squash: true,
                }
            }

            /// `a` as its owner's own kernel is told it: root is not
            /// squashed on the host that owns a file.
            pub(super) fn own(a: Attr) -> Attr {
                Attr {
                    root_squash: false,
                    ..a
                }
            }

            /// Host `at`'s kernel removes `name` (UNLINK `req`).
            fn unlink(&mut self, at: &str, req: u64, name: &[u8]) {
                let file = self.id_of(name);
                self.ask(at, req, Request::Unlink { file, name });
            }

            /// Host `at`'s kernel looks `name` up: the errno, or the file.
            fn lookup(&mut self, at: &str, req: u64, name: &[u8]) -> Result<Attr, i32> {
                self.ask(at, req, Request::Lookup { name });
                match &self.answers_of(at)[..] {
                    [(id, Opcode::Lookup, 0, Got::Attr(a))] if *id == req => Ok(*a),
                    [(id, Opcode::Lookup, e, Got::Nothing)] if *id == req => Err(*e),
                    r => panic!("{r:?}"),
                }
            }
        }

        #[test]
        fn a_file_made_on_one_host_is_seen_on_every_host_and_made_once() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            // c has looked the name up first: it is missing (cached so).
            assert_eq!(c.lookup("c", 1, b"n"), Err(errno::ENOENT));
            c.ask("b", 2, create(b"n", true));
            let n = c.id_of(b"n");
            let want = c.exported("b", "n");
            assert_eq!((want.size, want.mode), (0, 0o640));
            // Its maker, b, owns it: root is not squashed there, only
            // elsewhere.
            assert_eq!(
                c.answers_of("b"),
                [(2, Opcode::Create, 0, Got::Attr(Cluster::own(want)))]
            );
            assert!(want.root_squash);
            assert!(c.exports("b", "n"));
            assert!(!c.exports("a", "n") && !c.exports("c", "n"));
            // Every host sees it, c too (told to forget the name first).
            assert_eq!(c.lookup("c", 3, b"n"), Ok(want));
            assert_eq!(c.lookup("a", 4, b"n"), Ok(want));
            assert_eq!(c.host("c").engine.core.owner_of(n), Some(host_id("b")));
            // Made again: EEXIST with O_EXCL anywhere; without, the file.
            for (at, req) in [("a", 5), ("b", 6), ("c", 7)] {
                c.ask(at, req, create(b"n", true));
                assert_eq!(
                    c.answers_of(at),
                    [(req, Opcode::Create, errno::EEXIST, Got::Nothing)]
                );
                c.ask(at, req + 10, create(b"n", false));
                let seen = if at == "b" { Cluster::own(want) } else { want };
                assert_eq!(
                    c.answers_of(at),
                    [(req + 10, Opcode::Create, 0, Got::Attr(seen))]
                );
            }
            // Also a file that was there from the start, at its owner's
            // peers.
            c.ask("c", 20, create(b"f", true));
            assert_eq!(
                c.answers_of("c"),
                [(20, Opcode::Create, errno::EEXIST, Got::Nothing)]
            );
            let st = c.host("a").engine.counters.snapshot();
            assert_eq!((st.creates, st.creates_failed), (2, 1));
        }

        #[test]
        fn two_hosts_racing_for_a_name_make_it_once() {
            for excl in [true, false] {
                let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
                // Both reservations are out before either is answered.
                let from_b = c
                    .host("b")
                    .with(|e| e.upcall(upcall(1, create(b"r", excl))));
                let from_c = c
                    .host("c")
                    .with(|e| e.upcall(upcall(1, create(b"r", excl))));
                let mut todo: VecDeque<(String, String, Frame)> = VecDeque::new();
                for (from, frames) in [("b", from_b), ("c", from_c)] {
                    todo.extend(frames.into_iter().map(|(to, f)| (from.to_string(), to, f)));
                }
                c.deliver(todo);
                let made: Vec<&str> = ["a", "b", "c"]
                    .into_iter()
                    .filter(|h| c.exports(h, "r"))
                    .collect();
                assert_eq!(made.len(), 1, "excl {excl}: {made:?}");
                let winner = made[0];
                let loser = if winner == "b" { "c" } else { "b" };
                let want = c.exported(winner, "r");
                assert_eq!((want.size, want.mode), (0, 0o640));
                assert_eq!(
                    c.answers_of(winner),
                    [(1, Opcode::Create, 0, Got::Attr(Cluster::own(want)))]
                );
                // The loser asks again after a moment, and finds the
                // winner's file: EEXIST, or (without O_EXCL) the file.
                assert!(c.answers_of(loser).is_empty());
                std::thread::sleep(2 * space::BUSY_RETRY);
                c.on(loser, |e| {
                    e.tick(false);
                });
                let got = if excl {
                    (errno::EEXIST, Got::Nothing)
                } else {
                    (0, Got::Attr(want))
                };
                assert_eq!(c.answers_of(loser), [(1, Opcode::Create, got.0, got.1)]);
                assert!(!c.exports(loser, "r"));
            }
        }

        #[test]
        fn a_name_is_not_made_away_from_most_of_the_cluster() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            for (at, peer) in [("a", "b"), ("a", "c"), ("b", "a"), ("c", "a")] {
                let idx = c.host(at).peer(peer);
                let down = Event::Net(NetEvent::Down {
                    peer: idx,
                    conn: CONN,
                });
                c.on(at, |e| e.event(down));
            }
            c.ask("a", 1, create(b"m", true));
            assert_eq!(
                c.answers_of("a"),
                [(1, Opcode::Create, libc::EHOSTUNREACH, Got::Nothing)]
            );
            assert!(!c.exports("a", "m"));
            assert!(!c.host("a").engine.space_names.is_mine(b"m"));
            // b, with c, may.
            c.ask("b", 2, create(b"m", true));
            assert_eq!(c.answers_of("b")[0].2, 0);
            assert!(c.exports("b", "m"));
        }

        /// The review's case: a and b cannot reach each other, both reach
        /// c, and both make one name at once: c votes for one only.
        #[test]
        fn two_hosts_that_cannot_reach_each_other_make_a_name_once() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            for (at, peer) in [("a", "b"), ("b", "a")] {
                let idx = c.host(at).peer(peer);
                let down = Event::Net(NetEvent::Down {
                    peer: idx,
                    conn: CONN,
                });
                c.on(at, |e| e.event(down));
            }
            let from_a = c
                .host("a")
                .with(|e| e.upcall(upcall(1, create(b"x", true))));
            let from_b = c
                .host("b")
                .with(|e| e.upcall(upcall(1, create(b"x", true))));
            let mut todo: VecDeque<(String, String, Frame)> = VecDeque::new();
            for (from, frames) in [("b", from_b), ("a", from_a)] {
                todo.extend(frames.into_iter().map(|(to, f)| (from.to_string(), to, f)));
            }
            // (What a and b send each other is lost.)
            todo.retain(|(f, t, _)| !(f != "c" && t != "c"));
            c.deliver(todo);
            std::thread::sleep(2 * space::BUSY_RETRY);
            for h in ["a", "b"] {
                let sent = c.host(h).with(|e| {
                    e.tick(false);
                });
                let todo = sent
                    .into_iter()
                    .filter(|(to, _)| to == "c")
                    .map(|(to, f)| (h.to_string(), to, f))
                    .collect();
                c.deliver(todo);
            }
            let made: Vec<&str> = ["a", "b"]
                .into_iter()
                .filter(|h| c.exports(h, "x"))
                .collect();
            assert_eq!(made.len(), 1, "{made:?}");
            let loser = if made[0] == "a" { "b" } else { "a" };
            assert_eq!(
                c.answers_of(loser),
                [(1, Opcode::Create, errno::EEXIST, Got::Nothing)]
            );
        }

        /// A CREATE of a name a placement rule gives another host is made
        /// there, as if that host's kernel had asked: its export holds
        /// the file, every host takes it for the owner, and the name is
        /// made once only. A name no rule matches is made by its maker.
        #[test]
        fn a_placement_rule_makes_the_file_at_its_host() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let rule = vec![(
                glob::Pattern::new("*.db").expect("a pattern"),
                "a".to_string(),
            )];
            for h in ["a", "b", "c"] {
                c.host(h).engine.placement = rule.clone();
                // (Root, which asks here, trusted; squashed below.)
                c.host(h).engine.export.set_root_squash(false);
            }
            c.ask("c", 1, create(b"x.db", true));
            let f = c.id_of(b"x.db");
            match &c.answers_of("c")[..] {
                [(1, Opcode::Create, 0, Got::Attr(a))] => assert_eq!(a.file, f),
                r => panic!("c's CREATE: {r:?}"),
            }
            assert!(c.exports("a", "x.db"));
            assert!(!c.exports("c", "x.db"));
            for h in ["a", "c"] {
                assert_eq!(c.host(h).engine.core.owner_of(f), Some(host_id("a")), "{h}");
            }
            assert_eq!(c.lookup("b", 9, b"x.db").map(|a| a.file), Ok(f));
            // Made once: O_EXCL from another host (sent to a too) is EEXIST.
            c.ask("b", 2, create(b"x.db", true));
            assert_eq!(
                c.answers_of("b"),
                [(2, Opcode::Create, errno::EEXIST, Got::Nothing)]
            );
            // A name no rule matches is made where it is asked for.
            c.ask("c", 3, create(b"y.txt", true));
            assert_eq!(c.answers_of("c")[0].2, 0);
            assert!(c.exports("c", "y.txt"));
            assert!(!c.exports("a", "y.txt"));
            let st = c.host("c").engine.counters.snapshot();
            assert_eq!(
                (st.creates, st.creates_placed, st.creates_failed),
                (2, 1, 0)
            );
            // Made at another host's word: never set-user-id or
            // set-group-id there (a's manager, root, makes it); made by its
            // maker's own kernel, as asked. Either way the file is its
            // creator's; with a's root squashing (on by default) c's root
            // may make none there (below), and gid 0 is nobody's.
            let n = crate::export::NOBODY;
            for (name, at, ids, squash, want) in [
                (&b"s.db"[..], "a", (0, 0), false, (0o755, (0, 0))),
                (b"s.txt", "c", (0, 0), true, (0o6755, (0, 0))),
                (b"u.db", "a", (1000, 100), true, (0o755, (1000, 100))),
                (b"v.db", "a", (1000, 0), true, (0o755, (1000, n))),
            ] {
                c.host("a").engine.export.set_root_squash(squash);
                c.ask(
                    "c",
                    4,
                    Request::Create {
                        name,
                        mode: 0o6755,
                        excl: true,
                        uid: ids.0,
                        gid: ids.1,
                    },
                );
                assert_eq!(c.answers_of("c")[0].2, 0);
                let n = std::str::from_utf8(name).unwrap();
                let a = c.exported(at, n);
                assert_eq!((a.mode, (a.uid, a.gid)), want, "{n}");
            }
            // A squashed root makes nothing at a: EACCES, no file, the
            // name free again; a file of that name a has already, it opens.
            c.host("a").engine.export.set_root_squash(true);
            c.ask("c", 5, create(b"r.db", false));
            assert_eq!(
                c.answers_of("c"),
                [(5, Opcode::Create, libc::EACCES, Got::Nothing)]
            );
            assert!(!c.exports("a", "r.db"));
            assert!(!c.exports("c", "r.db"));
            c.ask("c", 6, create(b"s.db", false));
            assert_eq!(c.answers_of("c")[0].2, 0, "s.db, a's already");
            c.host("a").engine.export.set_root_squash(false);
            c.ask("c", 7, create(b"r.db", true));
            assert_eq!(c.answers_of("c")[0].2, 0);
            assert!(c.exports("a", "r.db"), "made once root is trusted");
        }

        /// A placed host answering a `Make` with another host's file is
        /// refused: the CREATE fails, and the file's owner stays.
        #[test]
        fn a_made_with_another_hosts_file_id_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let rule = vec![(
                glob::Pattern::new("*.db").expect("a pattern"),
                "b".to_string(),
            )];
            c.host("c").engine.placement = rule;
            let f = c.id_of(b"f");
            assert_eq!(c.lookup("c", 1, b"f").map(|a| a.file), Ok(f));
            // (The Make is not delivered: b answers with a's file.)
            let _ = c
                .host("c")
                .with(|e| e.upcall(upcall(2, create(b"x.db", true))));
            let placed = c.host("c").engine.space.placed();
            let [(at, id)] = placed[..] else {
                panic!("{placed:?}")
            };
            assert_eq!(at, host_id("b"));
            let made = NameMsg::Made {
                id,
                made: Ok((host_id("b"), super::peer_refusals::claim(f))),
            };
            c.on("b", |e| e.send(host_id("c"), PeerMsg::Name(made)));
            assert_eq!(
                c.answers_of("c"),
                [(2, Opcode::Create, libc::EIO, Got::Nothing)]
            );
            let st = c.host("c").engine.counters.snapshot();
            assert_eq!(st.refused_from_peers, 1);
            assert_eq!(c.host("c").engine.core.owner_of(f), Some(host_id("a")));
        }

        /// A peer answering a LOOKUP with a file id another connected
        /// host owns is refused: its answer counts as "not here", the
        /// LOOKUP finds nothing, and the file's owner stays.
        #[test]
        fn an_answer_with_another_hosts_file_id_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let f = c.id_of(b"f");
            assert_eq!(c.lookup("c", 1, b"f").map(|a| a.file), Ok(f));
            let asked = c
                .host("c")
                .with(|e| e.upcall(upcall(5, Request::Lookup { name: b"g" })));
            let ids = c.host("c").engine.names.pending_ids();
            let [id] = ids[..] else { panic!("{ids:?}") };
            // b's Lookup is not delivered: b answers with a's file.
            let to_a: VecDeque<(String, String, Frame)> = asked
                .into_iter()
                .filter(|(to, _)| to == "a")
                .map(|(to, f)| ("c".to_string(), to, f))
                .collect();
            let forged = NameMsg::Answer {
                id,
                found: Some(super::peer_refusals::claim(f)),
            };
            c.on("b", |e| e.send(host_id("c"), PeerMsg::Name(forged)));
            c.deliver(to_a);
            assert_eq!(
                c.answers_of("c"),
                [(5, Opcode::Lookup, errno::ENOENT, Got::Nothing)]
            );
            let st = c.host("c").engine.counters.snapshot();
            assert_eq!(st.refused_from_peers, 1);
            assert_eq!(c.host("c").engine.core.owner_of(f), Some(host_id("a")));
        }

        /// A LOOKUP under way when its name is made is asked again: its
        /// first answers may be from before.
        #[test]
        fn a_lookup_crossing_a_creation_is_asked_again() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let asked = c
                .host("c")
                .with(|e| e.upcall(upcall(5, Request::Lookup { name: b"n" })));
            // b says it has no such name; a's answer is held.
            let (to_a, to_b): (Vec<_>, Vec<_>) = asked.into_iter().partition(|(to, _)| to == "a");
            c.deliver(
                to_b.into_iter()
                    .map(|(to, f)| ("c".to_string(), to, f))
                    .collect(),
            );
            let held: VecDeque<(String, String, Frame)> = to_a
                .into_iter()
                .map(|(to, f)| ("c".to_string(), to, f))
                .collect();
            // b makes the name (c forgets it), then a answers.
            c.ask("b", 1, create(b"n", true));
            assert_eq!(c.answers_of("b")[0].2, 0);
            c.deliver(held);
            match &c.answers_of("c")[..] {
                [(5, Opcode::Lookup, 0, Got::Attr(a))] => assert_eq!(a.file, c.id_of(b"n")),
                r => panic!("c's LOOKUP: {r:?}"),
            }
        }

        /// An unlink whose removal fails leaves the file whole (its pages
        /// came home, but it is not cut), served again.
        #[test]
        fn a_failed_unlink_loses_nothing() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let f = c.id_of(b"f");
            let path = c.host("a").dir.export().join("f");
            std::fs::write(&path, vec![7u8; PAGE_SIZE]).expect("write");
            assert_eq!(c.lookup("b", 1, b"f").map(|a| a.file), Ok(f));
            c.host("a")
                .engine
                .export
                .fail_remove
                .store(libc::EIO, std::sync::atomic::Ordering::Relaxed);
            c.unlink("b", 2, b"f");
            assert_eq!(
                c.answers_of("b"),
                [(2, Opcode::Unlink, libc::EIO, Got::Nothing)]
            );
            assert_eq!(
                std::fs::read(&path).expect("still there"),
                vec![7u8; PAGE_SIZE]
            );
            assert_eq!(c.host("a").engine.core.limit(f), None, "served again");
            assert_eq!(c.lookup("c", 3, b"f").map(|a| a.size), Ok(PAGE_SIZE as u64));
        }

        fn rename<'a>(
            file: u64,
            target: u64,
            noreplace: bool,
            from: &'a [u8],
            to: &'a [u8],
        ) -> Request<'a> {
            Request::Rename {
                file,
                target,
                noreplace,
                from,
                to,
            }
        }

        /// A rename asked of the owner by another host keeps the file (its
        /// id, its data) under the new name, and every host forgets both
        /// names.
        #[test]
        fn a_rename_at_another_owner_keeps_the_file_and_is_forgotten_everywhere() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let path = c.host("a").dir.export().join("f");
            std::fs::write(&path, vec![7u8; PAGE_SIZE]).expect("write");
            let f = c.id_of(b"f");
            // b and c have the name cached, and c has the new one cached
            // missing.
            assert_eq!(c.lookup("b", 1, b"f").map(|a| a.file), Ok(f));
            assert_eq!(c.lookup("c", 2, b"f").map(|a| a.file), Ok(f));
            assert_eq!(c.lookup("c", 3, b"g"), Err(errno::ENOENT));
            c.ask("b", 4, rename(f, 0, false, b"f", b"g"));
            assert_eq!(c.answers_of("b"), [(4, Opcode::Rename, 0, Got::Done)]);
            assert!(!c.exports("a", "f") && c.exports("a", "g"));
            assert_eq!(c.id_of(b"g"), f);
            // b's kernel keeps the inode under the new name: its GETATTR
            // is answered (b never looked the new name up).
            c.ask("b", 30, Request::Getattr { file: f });
            match &c.answers_of("b")[..] {
                [(30, Opcode::Getattr, 0, Got::Attr(a))] => {
                    assert_eq!((a.file, a.size), (f, PAGE_SIZE as u64))
                }
                r => panic!("b's GETATTR after the rename: {r:?}"),
            }
            for (at, req) in [("a", 5), ("b", 6), ("c", 7)] {
                assert_eq!(c.lookup(at, req, b"f"), Err(errno::ENOENT), "{at}");
                assert_eq!(
                    c.lookup(at, req + 10, b"g").map(|a| (a.file, a.size)),
                    Ok((f, PAGE_SIZE as u64)),
                    "{at}"
                );
                assert_eq!(
                    c.host(at).engine.core.owner_of(f),
                    Some(host_id("a")),
                    "{at}"
                );
            }
            // Its pages are served as before.
            assert_eq!(c.host("a").engine.core.limit(f), None);
            // Renamed back at its owner, by its own kernel.
            c.ask("a", 20, rename(f, 0, true, b"g", b"f"));
            assert_eq!(c.answers_of("a"), [(20, Opcode::Rename, 0, Got::Done)]);
            assert_eq!(c.lookup("c", 21, b"g"), Err(errno::ENOENT));
            assert_eq!(c.lookup("c", 22, b"f").map(|a| a.file), Ok(f));
            let st = c.host("b").engine.counters.snapshot();
            assert_eq!((st.renames, st.renames_failed), (1, 0));
        }

        /// A rename over another file of the same owner takes that file's
        /// pages home first and replaces it; over a file of another owner
        /// it is EXDEV (`mv` copies), or EEXIST with RENAME_NOREPLACE.
        #[test]
        fn a_rename_replaces_only_a_file_of_the_same_owner() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            std::fs::write(c.host("a").dir.export().join("f"), b"new").expect("write");
            std::fs::write(c.host("a").dir.export().join("h"), b"old").expect("write");
            let (f, h) = (c.id_of(b"f"), c.id_of(b"h"));
            assert_eq!(c.lookup("b", 1, b"f").map(|a| a.file), Ok(f));
            assert_eq!(c.lookup("b", 2, b"h").map(|a| a.file), Ok(h));
            assert_eq!(c.lookup("c", 3, b"h").map(|a| a.file), Ok(h));
            // Not with RENAME_NOREPLACE.
            c.ask("b", 4, rename(f, 0, true, b"f", b"h"));
            assert_eq!(
                c.answers_of("b"),
                [(4, Opcode::Rename, errno::EEXIST, Got::Nothing)]
            );
            c.ask("b", 5, rename(f, h, false, b"f", b"h"));
            assert_eq!(c.answers_of("b"), [(5, Opcode::Rename, 0, Got::Done)]);
            assert_eq!(
                std::fs::read(c.host("a").dir.export().join("h")).expect("h"),
                b"new"
            );
            assert!(!c.exports("a", "f"));
            // The file replaced is gone: its pages refused, its owner
            // forgotten everywhere, its name the other file's everywhere.
            assert_eq!(c.host("a").engine.core.limit(h), Some(0));
            for at in ["a", "b", "c"] {
                assert_eq!(c.host(at).engine.core.owner_of(h), None, "{at}");
                assert_eq!(
                    c.host(at).engine.core.owner_of(f),
                    Some(host_id("a")),
                    "{at}"
                );
            }
            assert_eq!(c.lookup("c", 6, b"h").map(|a| a.file), Ok(f));
            assert_eq!(c.lookup("b", 7, b"f"), Err(errno::ENOENT));
            // c makes a file of its own: a's file cannot replace it, nor
            // take its name.
            c.ask("c", 8, create(b"x", true));
            assert_eq!(c.answers_of("c")[0].2, 0);
            let x = c.id_of(b"x");
            assert_eq!(c.lookup("b", 9, b"x").map(|a| a.file), Ok(x));
            c.ask("b", 10, rename(f, x, false, b"h", b"x"));
            assert_eq!(
                c.answers_of("b"),
                [(10, Opcode::Rename, errno::EXDEV, Got::Nothing)]
            );
            // (Unknown to the asking host: the owner finds it through the
            // name's reservation.)
            c.ask("a", 11, rename(f, 0, false, b"h", b"x"));
            assert_eq!(
                c.answers_of("a"),
                [(11, Opcode::Rename, errno::EXDEV, Got::Nothing)]
            );
            c.ask("a", 12, rename(f, 0, true, b"h", b"x"));
            assert_eq!(
                c.answers_of("a"),
                [(12, Opcode::Rename, errno::EEXIST, Got::Nothing)]
            );
            assert!(c.exports("a", "h") && c.exports("c", "x"));
            // A name that is not the file's: ENOENT.
            c.ask("b", 13, rename(f, 0, false, b"f", b"y"));
            assert_eq!(
                c.answers_of("b"),
                [(13, Opcode::Rename, errno::ENOENT, Got::Nothing)]
            );
            let st = c.host("b").engine.counters.snapshot();
            assert_eq!((st.renames, st.renames_failed), (4, 3));
        }

        #[test]
        fn an_unlink_at_another_owner_empties_removes_and_is_forgotten_everywhere() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let f = c.id_of(b"f");
            assert_eq!(c.lookup("b", 1, b"f").map(|a| a.file), Ok(f));
            assert_eq!(c.lookup("c", 2, b"f").map(|a| a.file), Ok(f));
            c.unlink("b", 3, b"f");
            assert_eq!(c.answers_of("b"), [(3, Opcode::Unlink, 0, Got::Done)]);
            assert!(!c.exports("a", "f"));
            // Its pages are refused until a file of that name is made
            // again; nobody resolves the name.
            assert_eq!(c.host("a").engine.core.limit(f), Some(0));
            for (at, req) in [("a", 4), ("b", 5), ("c", 6)] {
                assert_eq!(c.lookup(at, req, b"f"), Err(errno::ENOENT), "{at}");
            }
            // Again: gone.
            c.ask(
                "b",
                7,
                Request::Unlink {
                    file: f,
                    name: b"f",
                },
            );
            assert_eq!(
                c.answers_of("b"),
                [(7, Opcode::Unlink, errno::ENOENT, Got::Nothing)]
            );
            // Made again, by c: another file, which c owns; a serves
            // nothing of the old one.
            c.ask("c", 8, create(b"f", true));
            assert_eq!(c.answers_of("c")[0].2, 0);
            let g = c.id_of(b"f");
            assert_ne!(g, f);
            assert_eq!(c.lookup("a", 9, b"f").map(|a| a.file), Ok(g));
            assert_eq!(c.host("a").engine.core.owner_of(g), Some(host_id("c")));
            assert_eq!(c.host("b").engine.core.owner_of(g), Some(host_id("c")));
            assert_eq!(c.host("c").engine.core.limit(g), None);
            assert_eq!(c.host("a").engine.core.limit(f), Some(0));
            // Removed at its owner, by its own kernel.
            c.unlink("c", 10, b"f");
            assert_eq!(c.answers_of("c"), [(10, Opcode::Unlink, 0, Got::Done)]);
            assert_eq!(c.lookup("b", 11, b"f"), Err(errno::ENOENT));
            // (The second UNLINK failed before it was one: nobody owns the
            // file id any more, so it found no name.)
            let st = c.host("b").engine.counters.snapshot();
            assert_eq!((st.unlinks, st.unlinks_failed), (1, 0));
        }
    }

    /// What an authenticated peer may not do (Documentation/protocol.md,
    /// "What a peer may not do"): each forbidden message is refused,
    /// counted, and changes nothing; genuine traffic goes on.
    mod peer_refusals {
        use super::harness::{Cluster, f_id, inc};
        use super::*;
        use wfs_abi::Opcode;

        impl Cluster {
            /// Host `from` sends `msg` to `to` on its session, as any
            /// message of its; delivered, with what it causes.
            fn forge(&mut self, from: &str, to: &str, msg: PeerMsg) {
                let to = host_id(to);
                self.on(from, |e| e.send(to, msg));
            }

            fn refusals(&mut self, at: &str) -> u64 {
                self.host(at).engine.counters.snapshot().refused_from_peers
            }

            /// What the owner a's disk has of file f: the byte its page
            /// is filled with (`None` if not one byte throughout).
            fn f_on_disk(&mut self) -> Option<u8> {
                let d = std::fs::read(self.host("a").dir.export().join("f")).expect("f");
                (d.len() == PAGE_SIZE && d.iter().all(|&b| b == d[0])).then_some(d[0])
            }

            /// Host `at`'s kernel READs page 0 of f (request `req`).
            fn read_f(&mut self, at: &str, req: u64) {
                let file = f_id();
                self.ask(
                    at,
                    req,
                    Request::Read {
                        file,
                        index: 0,
                        count: 1,
                        slot: 0,
                    },
                );
                let r = self.host(at).kernel_replies();
                assert!(
                    matches!(r[..], [(id, Opcode::Read, 0, _)] if id == req),
                    "{r:?}"
                );
            }
        }

        fn page() -> PageId {
            PageId {
                file: f_id(),
                index: 0,
            }
        }

        fn put(epoch: u64, byte: u8) -> PeerMsg {
            PeerMsg::Page(Msg::Put {
                page: page(),
                epoch,
                seq: 1,
                data: Arc::new(vec![byte; PAGE_SIZE]),
                home: false,
            })
        }

        /// A genuine writeback of page 0 of f by its holder `at`.
        fn write_back(c: &mut Cluster, at: &str, byte: u8) {
            let data = Arc::new(vec![byte; PAGE_SIZE]);
            c.on(at, |e| {
                e.run_core(Input::Writeback {
                    req: 900,
                    page: page(),
                    data,
                })
            });
        }

        /// Host `at`'s handling times, by message kind: (kind, count).
        fn message_counts(c: &mut Cluster, at: &str) -> Vec<(String, u64)> {
            let s = c.host(at).engine.counters.messages.snapshot();
            for k in &s {
                assert!(k.p50_ns <= k.p99_ns && k.p99_ns <= k.max_ns, "{k:?}");
                assert!(k.mean_ns <= k.max_ns, "{k:?}");
            }
            s.into_iter().map(|k| (k.kind, k.count)).collect()
        }

        #[test]
        fn each_page_message_received_is_timed_by_kind() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let n = |k: &str, v: u64| (k.to_string(), v);
            // Started: each host has had the other two's Holding.
            for h in ["a", "b", "c"] {
                assert_eq!(message_counts(&mut c, h), [n("Holding", 2)], "{h}");
            }
            // b reads a's page: a gets its WhereIs (and Done), b the Data.
            c.read_f("b", 1);
            assert_eq!(message_counts(&mut c, "b"), [n("Data", 1), n("Holding", 2)]);
            assert_eq!(
                message_counts(&mut c, "a"),
                [n("WhereIs", 1), n("Done", 1), n("Holding", 2)]
            );
            // c reads it next: a asks b to send it (Fetch); b's test
            // kernel has no page to give (Absent), so a sends it from disk.
            c.read_f("c", 2);
            assert_eq!(
                message_counts(&mut c, "b"),
                [n("Fetch", 1), n("Data", 1), n("Holding", 2)]
            );
            assert_eq!(message_counts(&mut c, "c"), [n("Data", 1), n("Holding", 2)]);
            assert_eq!(
                message_counts(&mut c, "a"),
                [
                    n("WhereIs", 2),
                    n("Absent", 1),
                    n("Done", 2),
                    n("Holding", 2)
                ]
            );
            // A message the core refuses was handled too: it counts.
            c.forge("c", "a", put(u64::MAX, 0xee));
            assert_eq!(c.refusals("a"), 1);
            assert!(message_counts(&mut c, "a").contains(&n("Put", 1)));
        }

        #[test]
        fn a_put_of_an_epoch_never_handed_out_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let before = c.f_on_disk();
            // c overwrites the page with the highest epoch there is: every
            // genuine Put after it would be taken for older data.
            c.forge("c", "a", put(u64::MAX, 0xee));
            assert_eq!(c.f_on_disk(), before);
            assert_eq!(c.refusals("a"), 1);
            // Answered (c, which sent no such Put, drops the answer).
            let s = c.host("c").engine.counters.snapshot();
            assert_eq!(s.unexpected_from_peers, 1);
            // b reads the page, writes it back: its data lands.
            c.read_f("b", 1);
            write_back(&mut c, "b", 0x11);
            assert_eq!(c.f_on_disk(), Some(0x11));
            assert_eq!(c.refusals("a"), 1);
        }

        #[test]
        fn a_put_of_a_page_another_host_holds_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            c.read_f("b", 1);
            let before = c.f_on_disk();
            // c writes the epoch b was given (the newest), holding nothing.
            c.forge("c", "a", put(1, 0xee));
            assert_eq!(c.f_on_disk(), before);
            assert_eq!(c.refusals("a"), 1);
            write_back(&mut c, "b", 0x22);
            assert_eq!(c.f_on_disk(), Some(0x22));
            // A late Put of an older epoch is no refusal (its sender held
            // the page then; the epochs keep it off newer data on disk).
            c.read_f("c", 2);
            c.forge("b", "a", put(1, 0x33));
            assert_eq!(c.refusals("a"), 1);
        }

        #[test]
        fn a_fetch_from_a_host_that_is_not_the_owner_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            c.read_f("b", 1);
            let f = f_id();
            let unknown = f ^ 0x5a5a;
            for file in [unknown, f] {
                let fetch = PeerMsg::Page(Msg::Fetch {
                    txn: 7,
                    page: PageId { file, index: 0 },
                    to: host_id("c"),
                    incarnation: inc("c", 1),
                    epoch: 9,
                });
                c.forge("c", "b", fetch);
            }
            assert_eq!(c.refusals("b"), 2);
            // No trace of them: no page is timed as to be served.
            assert!(!c.host("b").engine.timers.serving(host_id("c"), 7));
            // Nobody made c an owner, and b still holds f's page.
            assert_eq!(c.host("b").engine.core.owner_of(unknown), None);
            assert_eq!(c.host("b").engine.core.owner_of(f), Some(host_id("a")));
            assert!(c.host("b").engine.core.holds(page()));
            // The owner's own move of it still works.
            c.read_f("c", 2);
            assert!(!c.host("b").engine.core.holds(page()));
            assert!(c.host("c").engine.core.holds(page()));
        }

        #[test]
        fn a_page_for_a_request_this_host_never_made_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            c.read_f("b", 1);
            // c sends b a dirty page of f for a transaction of c's: b
            // would take it for one meant for its earlier incarnation and
            // send it home to a, as its own.
            let data = PeerMsg::Page(Msg::Data {
                txn: (u64::from(host_id("c")) << 48) | 5,
                page: page(),
                data: Arc::new(vec![0xee; PAGE_SIZE]),
                dirty: true,
                epoch: 1,
                owner: inc("a", 1),
                access: Access::Write,
            });
            let before = c.f_on_disk();
            c.forge("c", "b", data);
            assert_eq!(c.refusals("b"), 1);
            assert_eq!(c.f_on_disk(), before);
            assert_eq!(c.refusals("a"), 0);
            write_back(&mut c, "b", 0x55);
            assert_eq!(c.f_on_disk(), Some(0x55));
        }

        /// A fault followed across hosts by its txn: each host's trace
        /// lines of it carry the txn, those of outputs that have none of
        /// their own (the page granted to the kernel) from the span of the
        /// input that caused them.
        #[test]
        fn a_faults_trace_lines_on_every_host_carry_its_txn() {
            use crate::log::tests::captured;
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            c.read_f("b", 1);
            crate::log::set_host("h1");
            let got = captured(crate::log::filter(None, Some("1")), || c.read_f("c", 2));
            let lines: Vec<&str> = got.lines().collect();
            let (a, cc) = (host_id("a"), host_id("c"));
            // c's fault has no transaction yet: the core makes one, and
            // asks the owner a where the page is with it.
            assert!(
                lines[0].starts_with("wfs-manager[h1]: trace: in Fault {")
                    && !lines[0].contains("txn="),
                "{got}"
            );
            assert!(
                lines[1].starts_with(&format!("wfs-manager[h1]: trace: out to {a}: WhereIs {{")),
                "{got}"
            );
            let (_, txn) = lines[1].rsplit_once(" txn=").expect("a txn");
            let txn = format!(" txn={txn}");
            // Every trace line after, of every host, carries it, once.
            for l in lines[1..].iter().filter(|l| l.contains(": trace: ")) {
                assert_eq!(l.matches(" txn=").count(), 1, "{l}\n{got}");
                assert!(l.ends_with(&txn), "{l}\n{got}");
            }
            // The owner a's, b's (which had the page) and c's lines; those
            // of outputs and inputs with no txn of their own among them.
            for want in [
                format!("in from {cc}: WhereIs {{"),
                format!("in from {a}: Fetch {{"),
                "out Invalidate {".to_string(),
                "in Invalidated {".to_string(),
                format!("in from {a}: Data {{"),
                "out Grant {".to_string(),
                "in Answered {".to_string(),
                format!("in from {cc}: Done {{"),
            ] {
                assert!(
                    lines
                        .iter()
                        .any(|l| l.contains(&format!(": trace: {want}")) && l.ends_with(&txn)),
                    "{want}: {got}"
                );
            }
            // Lines that are not debug or trace get nothing appended.
            for l in lines.iter().filter(|l| !l.contains(": trace: ")) {
                assert!(!l.contains("txn="), "{l}");
            }
        }

        /// What a peer says of a file it owns, for file `file`.
        pub(super) fn claim(file: u64) -> FileInfo {
            FileInfo {
                file,
                size: PAGE_SIZE as u64,
                mode: 0o644,
                mtime: crate::export::time(0, 0),
                ctime: crate::export::time(0, 0),
                uid: 0,
                gid: 0,
                root_squash: true,
            }
        }

        #[test]
        fn a_name_made_with_another_hosts_file_id_is_refused() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            c.read_f("b", 1);
            let f = f_id();
            // c says it made a name whose file is a's f: b would take c
            // for f's owner, and let it fetch f's page.
            let forget = NameMsg::Forget {
                id: 0,
                name: b"g".to_vec(),
                made: Some(claim(f)),
                gone: 0,
            };
            c.forge("c", "b", PeerMsg::Name(forget));
            assert_eq!(c.refusals("b"), 1);
            assert_eq!(c.host("b").engine.core.owner_of(f), Some(host_id("a")));
            // Nor is it a's own file at a.
            let forget = NameMsg::Forget {
                id: 0,
                name: b"g".to_vec(),
                made: Some(claim(f)),
                gone: 0,
            };
            c.forge("c", "a", PeerMsg::Name(forget));
            assert_eq!(c.refusals("a"), 1);
            assert_eq!(c.host("a").engine.core.owner_of(f), Some(host_id("a")));
            // So c's Fetch of it from b is refused; a's own move goes on.
            let fetch = PeerMsg::Page(Msg::Fetch {
                txn: 7,
                page: page(),
                to: host_id("c"),
                incarnation: inc("c", 1),
                epoch: 9,
            });
            c.forge("c", "b", fetch);
            assert_eq!(c.refusals("b"), 2);
            assert!(c.host("b").engine.core.holds(page()));
            c.read_f("c", 2);
            assert!(c.host("c").engine.core.holds(page()));
        }

        /// On an export without file handles a file's id is its name's
        /// hash: a name removed at a and made again at b keeps its id, and
        /// b's word may come before a's `gone`, on another connection. Not
        /// refused: b owns the id, and a's late `gone` leaves it so.
        #[test]
        fn a_name_made_again_elsewhere_with_its_hashed_id_is_taken() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let x = file_id(b"x");
            c.host("c").engine.core.add_file(x, host_id("a"));
            let made = NameMsg::Forget {
                id: 0,
                name: b"x".to_vec(),
                made: Some(claim(x)),
                gone: 0,
            };
            c.forge("b", "c", PeerMsg::Name(made));
            assert_eq!(c.host("c").engine.core.owner_of(x), Some(host_id("b")));
            let removed = NameMsg::Forget {
                id: 0,
                name: b"x".to_vec(),
                made: None,
                gone: x,
            };
            c.forge("a", "c", PeerMsg::Name(removed));
            assert_eq!(c.host("c").engine.core.owner_of(x), Some(host_id("b")));
            assert_eq!(c.refusals("c"), 0);
        }

        #[test]
        fn a_reply_to_no_request_is_dropped_and_counted() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            c.read_f("b", 1);
            // A Done for a move that is not under way, from a host that
            // asked for nothing.
            c.forge(
                "c",
                "a",
                PeerMsg::Page(Msg::Done {
                    txn: 3,
                    page: page(),
                }),
            );
            let s = c.host("a").engine.counters.snapshot();
            assert_eq!((s.refused_from_peers, s.unexpected_from_peers), (0, 1));
            assert!(c.host("b").engine.core.holds(page()));
            c.read_f("c", 2);
            assert!(c.host("c").engine.core.holds(page()));
        }
    }

    /// Open sets (`engine/opens.rs`): a file removed while some host has
    /// it open keeps its data until the last close.
    mod open_sets {
        use super::harness::{Cluster, Got, KERNEL_SESSION, inc};
        use super::*;
        use wfs_abi::Opcode;

        impl Cluster {
            fn host_answers(&mut self, at: &str) -> Vec<(u64, Opcode, i32, Got)> {
                self.host(at).kernel_replies()
            }

            /// The hosts owner `at` counts as having `file` open, sorted.
            fn open_set(&mut self, at: &str, file: u64) -> Vec<HostId> {
                let mut v: Vec<HostId> = self.host(at).engine.opens_set(file).into_iter().collect();
                v.sort();
                v
            }

            fn hidden(&mut self, at: &str, file: u64) -> std::path::PathBuf {
                let name = crate::export::gone_name(file);
                self.host(at)
                    .dir
                    .export()
                    .join(std::ffi::OsStr::from_bytes(&name))
            }
        }

        use std::os::unix::ffi::OsStrExt;

        #[test]
        fn a_file_unlinked_while_open_elsewhere_lives_until_the_last_close() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let path = c.host("a").dir.export().join("f");
            std::fs::write(&path, vec![5u8; PAGE_SIZE]).expect("write");
            let f = c.id_of(b"f");
            c.ask("b", 1, Request::Lookup { name: b"f" });
            c.ask("b", 2, Request::Open { file: f });
            c.ask("b", 3, Request::Open { file: f });
            let a = c.host_answers("b");
            assert_eq!(
                a[1..],
                [
                    (2, Opcode::Open, 0, Got::Done),
                    (3, Opcode::Open, 0, Got::Done)
                ]
            );
            // The owner counts b (once) and its own kernel.
            c.ask("a", 4, Request::Open { file: f });
            assert_eq!(c.host_answers("a"), [(4, Opcode::Open, 0, Got::Done)]);
            let mut both = vec![host_id("a"), host_id("b")];
            both.sort();
            assert_eq!(c.open_set("a", f), both);
            // c removes the name: gone everywhere, but the data is kept
            // under the hidden name and its pages still served.
            c.ask("c", 5, Request::Lookup { name: b"f" });
            c.ask(
                "c",
                6,
                Request::Unlink {
                    file: f,
                    name: b"f",
                },
            );
            assert_eq!(c.host_answers("c")[1], (6, Opcode::Unlink, 0, Got::Done));
            assert!(!path.exists());
            let hidden = c.hidden("a", f);
            assert_eq!(std::fs::read(&hidden).expect("kept"), vec![5u8; PAGE_SIZE]);
            assert_eq!(c.host("a").engine.core.limit(f), None);
            assert_eq!(c.host("b").engine.core.owner_of(f), Some(host_id("a")));
            for (at, req) in [("a", 7), ("b", 8), ("c", 9)] {
                c.ask(at, req, Request::Lookup { name: b"f" });
                assert_eq!(
                    c.host_answers(at),
                    [(req, Opcode::Lookup, errno::ENOENT, Got::Nothing)]
                );
            }
            // The hidden name is nobody's to see or make.
            let hidden_name = crate::export::gone_name(f);
            c.ask("b", 10, Request::Lookup { name: &hidden_name });
            c.ask(
                "b",
                11,
                Request::Create {
                    name: &hidden_name,
                    mode: 0o600,
                    excl: true,
                    uid: 0,
                    gid: 0,
                },
            );
            assert_eq!(
                c.host_answers("b"),
                [
                    (10, Opcode::Lookup, errno::ENOENT, Got::Nothing),
                    (11, Opcode::Create, errno::EINVAL, Got::Nothing)
                ]
            );
            // b's GETATTR of its open file is answered.
            c.ask("b", 12, Request::Getattr { file: f });
            match &c.host_answers("b")[..] {
                [(12, Opcode::Getattr, 0, Got::Attr(at))] => {
                    assert_eq!((at.file, at.size), (f, PAGE_SIZE as u64))
                }
                r => panic!("GETATTR of the kept file: {r:?}"),
            }
            // A RELEASE of an open an earlier manager of b counted (another
            // kernel session) is refused and changes nothing, though b has
            // the file open twice and would drop it after two.
            let before = c.open_set("a", f);
            for req in [30, 31] {
                c.ask(
                    "b",
                    req,
                    Request::Release {
                        file: f,
                        session: KERNEL_SESSION - 1,
                    },
                );
                assert_eq!(
                    c.host_answers("b"),
                    [(req, Opcode::Release, errno::ESTALE, Got::Nothing)]
                );
            }
            assert_eq!(c.open_set("a", f), before);
            assert!(before.contains(&host_id("b")));
            assert_eq!(c.host("b").engine.counters.snapshot().releases_stale, 2);
            // b closes one of its two opens: still kept; then the owner's
            // own kernel closes: still kept (b has it).
            c.ask(
                "b",
                13,
                Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                },
            );
            assert_eq!(c.host_answers("b"), [(13, Opcode::Release, 0, Got::Done)]);
            c.ask(
                "a",
                14,
                Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                },
            );
            assert!(hidden.exists());
            assert_eq!(c.open_set("a", f), [host_id("b")]);
            // b's last close: the data goes, and its pages are refused.
            c.ask(
                "b",
                15,
                Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                },
            );
            assert_eq!(c.host_answers("b"), [(15, Opcode::Release, 0, Got::Done)]);
            assert!(!hidden.exists());
            assert_eq!(c.host("a").engine.core.limit(f), Some(0));
            assert_eq!(c.host("a").engine.counters.snapshot().files_kept, 1);
            // Nobody keeps anything of it any more: not its owner, not what
            // was cached under the hidden name.
            for at in ["a", "b", "c"] {
                assert_eq!(c.host(at).engine.names.owner_of(f), None, "{at}");
                assert_eq!(c.host(at).engine.names.name_of(f), None, "{at}");
            }
            for at in ["b", "c"] {
                assert_eq!(c.host(at).engine.core.owner_of(f), None, "{at}");
            }
            // A release the count never saw changes nothing.
            c.ask(
                "b",
                16,
                Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                },
            );
            assert_eq!(c.host_answers("b"), [(16, Opcode::Release, 0, Got::Done)]);
        }

        #[test]
        fn a_file_nobody_has_open_is_removed_at_once() {
            let mut c = Cluster::new(&["a", "b"], READ_DEADLINE);
            let f = c.id_of(b"f");
            c.ask("b", 1, Request::Lookup { name: b"f" });
            c.ask("b", 2, Request::Open { file: f });
            c.ask(
                "b",
                3,
                Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                },
            );
            c.ask(
                "b",
                4,
                Request::Unlink {
                    file: f,
                    name: b"f",
                },
            );
            assert_eq!(c.host_answers("b")[3], (4, Opcode::Unlink, 0, Got::Done));
            assert!(!c.hidden("a", f).exists());
            assert_eq!(c.host("a").engine.core.limit(f), Some(0));
        }

        #[test]
        fn a_rename_over_an_open_file_keeps_the_replaced_data_for_its_holder() {
            let mut c = Cluster::new(&["a", "b"], READ_DEADLINE);
            std::fs::write(c.host("a").dir.export().join("f"), b"old").expect("write");
            std::fs::write(c.host("a").dir.export().join("n"), b"new").expect("write");
            let (f, n) = (c.id_of(b"f"), c.id_of(b"n"));
            c.ask("b", 1, Request::Lookup { name: b"f" });
            c.ask("b", 2, Request::Open { file: f });
            c.ask(
                "a",
                3,
                Request::Rename {
                    file: n,
                    target: f,
                    noreplace: false,
                    from: b"n",
                    to: b"f",
                },
            );
            assert_eq!(c.host_answers("a"), [(3, Opcode::Rename, 0, Got::Done)]);
            assert_eq!(
                std::fs::read(c.host("a").dir.export().join("f")).expect("f"),
                b"new"
            );
            assert_eq!(std::fs::read(c.hidden("a", f)).expect("kept"), b"old");
            // (b still knows who owns its open file.)
            assert_eq!(c.host("b").engine.core.owner_of(f), Some(host_id("a")));
            c.ask(
                "b",
                4,
                Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                },
            );
            assert!(!c.hidden("a", f).exists());
            assert_eq!(
                std::fs::read(c.host("a").dir.export().join("f")).expect("f"),
                b"new"
            );
        }

        #[test]
        fn a_holder_taken_for_dead_or_restarted_leaves_the_open_set() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let f = c.id_of(b"f");
            for (at, req) in [("b", 1), ("c", 3)] {
                c.ask(at, req, Request::Lookup { name: b"f" });
                c.ask(at, req + 1, Request::Open { file: f });
            }
            c.ask(
                "a",
                5,
                Request::Unlink {
                    file: f,
                    name: b"f",
                },
            );
            assert_eq!(c.host_answers("a"), [(5, Opcode::Unlink, 0, Got::Done)]);
            assert!(c.hidden("a", f).exists());
            // b restarts: its opens went with its manager.
            c.restarted("a", "b", inc("b", 2));
            assert!(c.hidden("a", f).exists());
            // c is taken for dead: nobody has the file open now, but the
            // file waits as long as a host takes to be taken for dead, for
            // a restarted manager to say its kernel still has it open.
            let idx = c.host("a").peer("c");
            c.on("a", |e| e.declare(idx, inc("c", 1), false));
            assert!(c.hidden("a", f).exists());
            let wait = c.host("a").engine.absent_after();
            c.on("a", |e| {
                e.age_kept(wait);
                e.expire_opens();
            });
            assert!(!c.hidden("a", f).exists());
            assert_eq!(c.host("a").engine.core.limit(f), Some(0));
        }

        #[test]
        fn a_restarted_manager_counts_what_its_kernel_still_has_open() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let f = c.id_of(b"f");
            std::fs::write(c.host("a").dir.export().join("g"), [7u8; 100]).unwrap();
            let g = c.id_of(b"g");
            for (at, req, name, file) in [("b", 1, b"f", f), ("c", 6, b"g", g)] {
                c.ask(at, req, Request::Lookup { name });
                c.ask(at, req + 1, Request::Open { file });
            }
            c.ask(
                "a",
                3,
                Request::Unlink {
                    file: f,
                    name: b"f",
                },
            );
            assert_eq!(c.host_answers("a"), [(3, Opcode::Unlink, 0, Got::Done)]);
            // c, which has g open, is taken for dead; g is unlinked before
            // c's new manager could speak: kept all the same.
            let idx = c.host("a").peer("c");
            c.on("a", |e| e.declare(idx, inc("c", 1), false));
            assert!(c.open_set("a", g).is_empty());
            c.ask(
                "a",
                8,
                Request::Unlink {
                    file: g,
                    name: b"g",
                },
            );
            assert_eq!(c.host_answers("a"), [(8, Opcode::Unlink, 0, Got::Done)]);
            assert!(c.hidden("a", g).exists(), "c's new manager may claim g");
            // b's manager restarts: a takes b's opens for gone, but keeps
            // the file waiting for b's word.
            c.restarted("a", "b", inc("b", 2));
            assert!(c.open_set("a", f).is_empty());
            assert!(c.hidden("a", f).exists());
            // b's new manager (nothing counted, the owner unknown) lists its
            // kernel's opens: its `Open` goes to every peer.
            let names = |sent: Vec<(String, Frame)>| -> Vec<(String, NameMsg)> {
                sent.into_iter()
                    .filter_map(|(to, fr)| match fr {
                        Frame::Page(crate::session::Frame {
                            msg: Some(PeerMsg::Name(m)),
                            ..
                        }) => Some((to, m)),
                        _ => None,
                    })
                    .collect()
            };
            c.host("b").engine.opens = super::opens::Opens::new(KERNEL_SESSION);
            c.host("b").engine.core = crate::protocol::Core::with_incarnation(host_id("b"), 2);
            let sent = names(c.host("b").with(|e| e.adopt_opens(&[(f, 2)])));
            assert!(sent.is_empty(), "told as peers connect: {sent:?}");
            let sent = names(c.host("b").with(|e| {
                e.opens_announce(host_id("a"));
                e.opens_announce(host_id("c"));
            }));
            // (c is taken for dead: it hears nothing.)
            let open = NameMsg::Open { id: 0, file: f };
            assert_eq!(sent, [("a".to_string(), open)]);
            // a counts b again and keeps f past the wait; g, which nobody
            // claimed, goes once the wait is over.
            c.on("a", |e| e.open_asked(host_id("b"), 0, f));
            assert_eq!(c.open_set("a", f), [host_id("b")]);
            let wait = c.host("a").engine.absent_after();
            c.on("a", |e| {
                e.age_kept(wait);
                e.expire_opens();
            });
            assert!(c.hidden("a", f).exists(), "b has it open");
            assert!(!c.hidden("a", g).exists(), "g went after the wait");
            // b's kernel closes both opens (this session counts them): the
            // second one's `Close` goes everywhere, and the data goes.
            let mut closes = Vec::new();
            for req in [4, 5] {
                let mut msg = [0u8; MSG_MAX];
                let release = Request::Release {
                    file: f,
                    session: KERNEL_SESSION,
                };
                let n = release.encode(req, &mut msg).expect("encode");
                let u = Upcall {
                    started: Instant::now(),
                    msg: msg[..n].to_vec(),
                };
                closes.extend(names(c.host("b").with(|e| e.upcall(u))));
            }
            assert_eq!(closes, [("a".to_string(), NameMsg::Close { file: f })]);
            c.on("a", |e| e.close_asked(host_id("b"), f));
            assert!(c.open_set("a", f).is_empty());
            assert!(!c.hidden("a", f).exists());
        }

        #[test]
        fn an_owner_that_restarts_hears_the_opens_again() {
            let mut c = Cluster::new(&["a", "b"], READ_DEADLINE);
            let f = c.id_of(b"f");
            c.ask("b", 1, Request::Lookup { name: b"f" });
            c.ask("b", 2, Request::Open { file: f });
            assert_eq!(c.open_set("a", f), [host_id("b")]);
            // a's manager restarts: b sends its open again to the new
            // incarnation, and a (a new engine, with nothing counted)
            // counts it.
            let ev = super::harness::up(c.host("b").peer("a"), inc("a", 2));
            let sent = c.host("b").with(|e| e.event(ev));
            let opens: Vec<NameMsg> = sent
                .into_iter()
                .filter_map(|(to, fr)| match fr {
                    Frame::Page(crate::session::Frame {
                        msg: Some(PeerMsg::Name(m @ NameMsg::Open { .. })),
                        ..
                    }) if to == "a" => Some(m),
                    _ => None,
                })
                .collect();
            assert_eq!(opens, [NameMsg::Open { id: 0, file: f }]);
            c.host("a").engine.opens = super::opens::Opens::new(KERNEL_SESSION);
            c.host("a").with(|e| e.open_asked(host_id("b"), 0, f));
            assert_eq!(c.open_set("a", f), [host_id("b")]);
        }
    }

    /// What a leaving host waits for before it closes its connections.
    mod leaving {
        use super::harness::{CONN, Cluster, up};
        use super::*;

        impl Cluster {
            /// Host `at` acknowledges everything `peer` sent it, as a bare
            /// acknowledgement (the harness sends none of its own).
            fn ack(&mut self, at: &str, peer: &str) {
                let h = self.host(at);
                let idx = h.peer(peer);
                let f = h.engine.peers[idx].session.ack();
                let caused = self.step(at, peer, Frame::Page(f));
                assert!(caused.is_empty(), "{caused:?}");
            }

            fn unheard(&mut self, at: &str) -> Vec<String> {
                self.host(at).engine.unheard()
            }
        }

        #[test]
        fn a_leaving_host_waits_until_its_connected_peers_acknowledge_leaving() {
            let mut c = Cluster::new(&["a", "b", "c"], Duration::from_secs(5));
            for (x, y) in [
                ("a", "b"),
                ("a", "c"),
                ("b", "a"),
                ("b", "c"),
                ("c", "a"),
                ("c", "b"),
            ] {
                c.ack(x, y);
            }
            assert!(c.unheard("b").is_empty());
            // A message is waited for until it is acknowledged.
            let b = c.host("b");
            let to_a = b.engine.peers[b.peer("a")].host;
            let sent = c.host("b").with(|e| {
                e.send(to_a, PeerMsg::Size(SizeMsg::IsAck { id: 7 }));
            });
            assert_eq!(c.unheard("b"), ["a"]);
            c.deliver(
                sent.into_iter()
                    .map(|(to, f)| ("b".to_string(), to, f))
                    .collect(),
            );
            assert_eq!(c.unheard("b"), ["a"], "delivered is not acknowledged");
            c.ack("a", "b");
            assert!(c.unheard("b").is_empty());
            // b holds nothing: it has left at once, and told a and c.
            let sent = c.host("b").with(|e| e.run_core(Input::Leave));
            assert!(c.host("b").engine.left);
            let mut to: Vec<&str> = sent.iter().map(|(to, _)| to.as_str()).collect();
            to.sort();
            assert_eq!(to, ["a", "c"]);
            assert_eq!(c.unheard("b"), ["a", "c"]);
            // a takes b for dead on its word, and closes their connection
            // (the cluster's refusal of that incarnation): b's wait for a
            // ends with it. A peer taken for dead is not waited for either.
            c.deliver(
                sent.into_iter()
                    .map(|(to, f)| ("b".to_string(), to, f))
                    .collect(),
            );
            let a = c.host("a");
            let b_at_a = &a.engine.peers[a.peer("b")];
            assert!(b_at_a.incarnation.is_some_and(|i| b_at_a.dead.contains(&i)));
            let down = Event::Net(NetEvent::Down {
                peer: c.host("b").peer("a"),
                conn: CONN,
            });
            c.on("b", |e| e.event(down));
            assert_eq!(c.unheard("b"), ["c"]);
            let idx = c.host("b").peer("c");
            let inc_c = c.host("b").engine.peers[idx]
                .incarnation
                .expect("c's incarnation");
            c.host("b").engine.peers[idx].dead.insert(inc_c);
            assert!(c.unheard("b").is_empty());
        }

        /// A host that hears from another that a third left (`Recover`
        /// with `left`) before the leaver's own `Leaving` has arrived keeps
        /// the connection for what the leaver sent before it (its pages
        /// released: closing now would report them lost), and takes it for
        /// dead at its own word.
        #[test]
        fn a_leave_heard_of_from_another_host_waits_for_the_leavers_own_word() {
            let mut c = Cluster::new(&["a", "b", "c"], Duration::from_secs(5));
            let sent = c.host("b").with(|e| e.run_core(Input::Leave));
            assert!(c.host("b").engine.left);
            let (to_c, to_a): (Vec<_>, Vec<_>) = sent.into_iter().partition(|(to, _)| to == "c");
            let from_b = |v: Vec<(String, Frame)>| -> VecDeque<(String, String, Frame)> {
                v.into_iter()
                    .map(|(to, f)| ("b".to_string(), to, f))
                    .collect()
            };
            // a hears b leave first and tells c (its Recover says b left).
            c.deliver(from_b(to_a));
            let cc = c.host("c");
            let b_at_c = &cc.engine.peers[cc.peer("b")];
            let inc = b_at_c.incarnation.expect("b's incarnation");
            assert!(!b_at_c.dead.contains(&inc), "taken for dead on a's word");
            assert!(
                b_at_c.conn.is_some(),
                "b's connection closed before its word"
            );
            assert_eq!(b_at_c.leaving_heard, Some(inc));
            assert_eq!(b_at_c.declare_later, None, "b refused before its word");
            // Their connection drops and comes back meanwhile: b is not
            // refused (its session sends what c has not acknowledged).
            let idx = c.host("c").peer("b");
            let down = Event::Net(NetEvent::Down {
                peer: idx,
                conn: CONN,
            });
            c.on("c", |e| e.event(down));
            c.on("c", |e| e.event(up(idx, inc)));
            let cc = c.host("c");
            let b_at_c = &cc.engine.peers[cc.peer("b")];
            assert!(b_at_c.conn.is_some(), "b refused as it came back");
            assert!(!b_at_c.dead.contains(&inc));
            // b's own Leaving, after everything it sent c before.
            c.deliver(from_b(to_c));
            let cc = c.host("c");
            let b_at_c = &cc.engine.peers[cc.peer("b")];
            assert!(b_at_c.dead.contains(&inc));
            assert_eq!(b_at_c.leaving_heard, None);
        }

        #[test]
        fn a_peer_that_left_is_fenced_without_a_fencing_counted() {
            let mut c = Cluster::new(&["a", "b"], Duration::from_secs(5));
            c.ack("a", "b");
            c.ack("b", "a");
            let sent = c.host("b").with(|e| e.run_core(Input::Leave));
            c.deliver(
                sent.into_iter()
                    .map(|(to, f)| ("b".to_string(), to, f))
                    .collect(),
            );
            let fencings =
                |c: &mut Cluster| c.host("a").engine.counters.fencings.load(Ordering::Relaxed);
            let before = fencings(&mut c);
            // Its lease then runs out, as it does for a host that left.
            let a = c.host("a");
            let idx = a.peer("b");
            a.engine.peers[idx].lease_until = Some(Instant::now());
            c.on("a", |e| e.check_leases());
            let a = c.host("a");
            assert!(a.engine.peers[idx].fenced, "the fence runs all the same");
            assert!(!a.engine.peers[idx].fence_logged);
            assert_eq!(
                fencings(&mut c),
                before,
                "a host that left is not a fencing"
            );
            // A live peer whose lease runs out is one.
            let mut c = Cluster::new(&["a", "b"], Duration::from_secs(5));
            c.ack("a", "b");
            let a = c.host("a");
            let idx = a.peer("b");
            a.engine.peers[idx].lease_until = Some(Instant::now());
            c.on("a", |e| e.check_leases());
            assert!(c.host("a").engine.peers[idx].fence_logged);
            assert_eq!(fencings(&mut c), 1);
        }
    }

    /// The lock service between engines ([`harness`]).
    mod locks {
        use super::harness::{Cluster, Got, inc};
        use super::*;
        use wfs_abi::{LOCK_END_MAX, LockArgs, LockCmd, LockInfo, LockKind, LockMode};

        impl Cluster {
            /// Host `at`'s kernel asks `a` as request `req`.
            fn lock(&mut self, at: &str, req: u64, a: LockArgs) {
                self.ask(at, req, Request::Lock(a));
            }

            fn replies(&mut self, at: &str) -> Vec<(u64, i32, Option<LockInfo>)> {
                self.host(at)
                    .kernel_replies()
                    .into_iter()
                    .map(|(id, op, error, got)| {
                        assert_eq!(op, wfs_abi::Opcode::Lock);
                        let info = match got {
                            Got::Lock(i) => Some(i),
                            _ => None,
                        };
                        (id, error, info)
                    })
                    .collect()
            }
        }

        fn file() -> u64 {
            super::harness::f_id()
        }

        /// A POSIX request of lock owner `owner` (pid `pid`) on bytes
        /// `start..=end` of the file.
        fn posix(
            owner: u64,
            pid: u32,
            cmd: LockCmd,
            mode: LockMode,
            start: u64,
            end: u64,
        ) -> LockArgs {
            LockArgs {
                file: file(),
                owner,
                start,
                end,
                pid,
                wait_ms: 30_000,
                kind: LockKind::Posix,
                cmd,
                mode,
            }
        }

        const ALL: (u64, u64) = (0, LOCK_END_MAX);
        const DONE: (i32, Option<LockInfo>) = (0, None);

        fn one(r: Vec<(u64, i32, Option<LockInfo>)>) -> (u64, i32, Option<LockInfo>) {
            assert_eq!(r.len(), 1, "{r:?}");
            r[0]
        }

        #[test]
        fn two_hosts_contend_for_a_lock_the_owner_decides() {
            let mut c = Cluster::new(&["a", "b"], READ_DEADLINE);
            let (s, e) = ALL;
            // b's kernel takes a write lock on all of a's file: b finds the
            // file's owner, asks it, and is granted.
            c.lock("b", 1, posix(1, 100, LockCmd::Set, LockMode::Write, s, e));
            assert_eq!(c.replies("b"), vec![(1, 0, None)]);
            // a's own kernel is refused, and F_GETLK shows b's lock, its
            // pid negated (another host's).
            c.lock("a", 2, posix(1, 200, LockCmd::Set, LockMode::Read, 0, 0));
            assert_eq!(c.replies("a"), vec![(2, errno::EAGAIN, None)]);
            c.lock("a", 3, posix(1, 200, LockCmd::Get, LockMode::Read, 0, 0));
            let info = LockInfo {
                mode: LockMode::Write,
                start: 0,
                end: LOCK_END_MAX,
                pid: -100,
            };
            assert_eq!(c.replies("a"), vec![(3, 0, Some(info))]);
            // b's other lock owner sees it with its pid as is (its host's).
            c.lock("b", 4, posix(2, 101, LockCmd::Get, LockMode::Read, 7, 7));
            assert_eq!(
                c.replies("b"),
                vec![(4, 0, Some(LockInfo { pid: 100, ..info }))]
            );
            // a waits; b unlocks; a is granted.
            c.lock("a", 5, posix(1, 200, LockCmd::Wait, LockMode::Write, 0, 9));
            assert!(c.replies("a").is_empty());
            c.lock("b", 6, posix(1, 100, LockCmd::Set, LockMode::Unlock, s, e));
            assert_eq!(c.replies("b"), vec![(6, 0, None)]);
            assert_eq!(c.replies("a"), vec![(5, 0, None)]);
            // b waits behind a, and gives up before a lets go: its grant,
            // refused by its kernel, is undone at the owner.
            c.lock("b", 7, posix(1, 100, LockCmd::Wait, LockMode::Read, 5, 5));
            assert!(c.replies("b").is_empty());
            assert_eq!(c.host("a").engine.locks.waiting(), 1);
            c.host("b").engine.fd = -1;
            c.lock("a", 8, posix(1, 200, LockCmd::Set, LockMode::Unlock, s, e));
            c.host("b").engine.fd = c.host("b").device;
            assert_eq!(c.replies("a"), vec![(8, 0, None)]);
            assert!(c.replies("b").is_empty());
            assert_eq!(c.host("a").engine.locks.held(file()), 0);
            let undone = c.host("b").engine.counters.snapshot();
            assert_eq!((undone.locks_undone, undone.locks), (1, 4));
            // So a may take it all again.
            c.lock("a", 9, posix(1, 200, LockCmd::Set, LockMode::Write, s, e));
            assert_eq!(one(c.replies("a")), (9, DONE.0, DONE.1));
            let st = c.host("a").engine.counters.snapshot();
            assert_eq!(
                (st.locks, st.locks_granted, st.locks_refused, st.lock_waits),
                (5, 2, 1, 2)
            );
        }

        #[test]
        fn a_restarted_or_dead_host_loses_its_locks_and_its_waiters_hear() {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            let (s, e) = ALL;
            c.lock("b", 1, posix(1, 100, LockCmd::Set, LockMode::Write, s, e));
            assert_eq!(c.replies("b"), vec![(1, 0, None)]);
            c.lock("a", 2, posix(1, 200, LockCmd::Wait, LockMode::Write, 0, 0));
            c.lock("c", 3, posix(1, 300, LockCmd::Wait, LockMode::Read, 0, 0));
            assert!(c.replies("a").is_empty() && c.replies("c").is_empty());
            // b's manager restarts: a (the owner) drops its old locks, and
            // grants its own kernel's wait, first in line (c's still
            // conflicts with it).
            c.restarted("a", "b", inc("b", 2));
            assert_eq!(c.replies("a"), vec![(2, 0, None)]);
            assert!(c.replies("c").is_empty());
            // c takes a for dead: its wait fails at once, a new request
            // too, and an unlock has nothing left to do.
            let idx = c.host("c").peer("a");
            c.on("c", |e| e.declare(idx, inc("a", 1), false));
            assert_eq!(c.replies("c"), vec![(3, errno::ENOLCK, None)]);
            c.lock("c", 4, posix(1, 300, LockCmd::Set, LockMode::Read, 9, 9));
            c.lock("c", 5, posix(1, 300, LockCmd::Set, LockMode::Unlock, s, e));
            assert_eq!(c.replies("c"), vec![(4, errno::ENOLCK, None), (5, 0, None)]);
        }

        #[test]
        fn waits_end_at_the_deadline() {
            let deadline = Duration::from_millis(50);
            let mut c = Cluster::new(&["a", "b"], deadline);
            c.lock("a", 1, posix(1, 200, LockCmd::Set, LockMode::Write, 0, 0));
            c.lock("a", 2, posix(2, 201, LockCmd::Wait, LockMode::Write, 0, 0));
            c.lock("b", 3, posix(1, 100, LockCmd::Wait, LockMode::Read, 0, 0));
            assert_eq!(c.replies("a"), vec![(1, 0, None)]);
            assert_eq!(c.host("a").engine.locks.waiting(), 2);
            std::thread::sleep(deadline);
            // The owner gives up both waits: its kernel's and b's (b's own
            // deadline is later: the owner's answer comes first).
            c.on("a", |e| e.expire_reads());
            assert_eq!(c.replies("a"), vec![(2, errno::ENOLCK, None)]);
            assert_eq!(c.replies("b"), vec![(3, errno::ENOLCK, None)]);
            assert_eq!(c.host("a").engine.locks.waiting(), 0);
            assert_eq!(c.host("b").engine.locks.asking(), 0);
            assert_eq!(c.host("a").engine.locks.held(file()), 1);
        }
    }

    /// The size service between engines ([`harness`]): host a owns file
    /// `f` (one page long at first).
    mod sizes {
        use super::harness::{CONN, Cluster, Got, inc, up};
        use super::*;
        use wfs_abi::{Opcode, Time};

        const PAGE: u64 = PAGE_SIZE as u64;

        fn file() -> u64 {
            super::harness::f_id()
        }

        impl Cluster {
            /// Host `at`'s kernel asks for the file to be `size` long.
            fn setsize(&mut self, at: &str, req: u64, size: u64, grow: bool) {
                let file = file();
                self.ask(at, req, Request::Setsize { file, size, grow });
            }

            /// Host `at`'s kernel's GETATTR of the file: its size.
            fn size_at(&mut self, at: &str, req: u64) -> u64 {
                self.ask(at, req, Request::Getattr { file: file() });
                match &self.answers(at)[..] {
                    [(id, Opcode::Getattr, 0, Got::Attr(a))] if *id == req => a.size,
                    r => panic!("{r:?}"),
                }
            }

            /// What host `at`'s kernel was answered since last asked.
            fn answers(&mut self, at: &str) -> Vec<(u64, Opcode, i32, Got)> {
                self.host(at).kernel_replies()
            }

            /// The sizes host `at`'s manager told its kernel (`IOC_SIZE`)
            /// since last asked.
            fn told(&mut self, at: &str) -> Vec<(u64, u64)> {
                let inval = self.host(at).engine.inval.clone();
                let mut told = inval.sizes_told.lock().expect("lock");
                std::mem::take(&mut *told)
            }

            /// The size of the owner's export file.
            fn on_disk(&mut self) -> u64 {
                let path = self.host("a").dir.export().join("f");
                std::fs::metadata(path).expect("export file").len()
            }

            fn stats(&mut self, at: &str) -> ProtocolStats {
                self.host(at).engine.counters.snapshot()
            }

            /// Delivers `frames` sent by `from`, and what they cause, but
            /// those for `held` (returned).
            fn deliver_but(
                &mut self,
                from: &str,
                frames: Vec<(String, Frame)>,
                held: &str,
            ) -> Vec<(String, String, Frame)> {
                let mut todo: VecDeque<(String, String, Frame)> = frames
                    .into_iter()
                    .map(|(to, f)| (from.to_string(), to, f))
                    .collect();
                let mut kept = Vec::new();
                while let Some((from, to, frame)) = todo.pop_front() {
                    if to == held {
                        kept.push((from, to, frame));
                        continue;
                    }
                    for (next, f) in self.step(&from, &to, frame) {
                        todo.push_back((to.clone(), next, f));
                    }
                }
                kept
            }
        }

        fn setsize_answers(r: Vec<(u64, Opcode, i32, Got)>) -> Vec<(u64, i32)> {
            r.into_iter()
                .map(|(id, op, error, got)| {
                    assert_eq!(op, Opcode::Setsize);
                    assert_eq!(got, if error == 0 { Got::Done } else { Got::Nothing });
                    (id, error)
                })
                .collect()
        }

        /// Three hosts, b and c having looked the file up (one page).
        fn cluster() -> Cluster {
            let mut c = Cluster::new(&["a", "b", "c"], READ_DEADLINE);
            for h in ["a", "b", "c"] {
                // The times b and c heard with their lookups stay fresh: a
                // GETATTR asks the owner only when its size is stale (the
                // tests of sizes; that of times sets it itself).
                c.host(h).engine.attr_times = Duration::from_secs(3600);
            }
            assert_eq!(c.size_at("b", 100), PAGE);
            assert_eq!(c.size_at("c", 100), PAGE);
            for h in ["a", "b", "c"] {
                assert!(c.told(h).is_empty());
            }
            c
        }

        #[test]
        fn a_getattr_brings_the_owners_mode_and_ids_and_its_root_squashing() {
            use std::os::unix::fs::PermissionsExt;
            let mut c = cluster();
            let f = file();
            let path = c.host("a").dir.export().join("f");
            // b's lookup told it a's mode, ids and root squashing.
            let before = c.exported("a", "f");
            assert!(before.root_squash);
            // a changes the file's mode at its export (and the file's
            // owner, when the test runs as root), and stops squashing
            // root; b's next GETATTR, its times old, brings all of it.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let chowned = std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_ok();
            c.host("a").engine.export.set_root_squash(false);
            let after = Attr {
                root_squash: false,
                ..c.exported("a", "f")
            };
            assert_eq!(after.mode, 0o600);
            if chowned {
                assert_eq!((after.uid, after.gid), (65534, 65534));
            }
            c.host("b").engine.attr_times = Duration::ZERO;
            let sent = c.host("b").with(|e| e.upcall(getattr_upcall(1, f)));
            let to_c = c.deliver_but("b", sent, "c");
            assert!(to_c.is_empty(), "{to_c:?}");
            assert_eq!(c.answers("b"), [(1, Opcode::Getattr, 0, Got::Attr(after))]);
            // a's own kernel never had root squashed for it.
            c.ask("a", 2, Request::Getattr { file: f });
            assert_eq!(c.answers("a"), [(2, Opcode::Getattr, 0, Got::Attr(after))]);
            c.host("a").engine.export.set_root_squash(true);
            c.ask("a", 3, Request::Getattr { file: f });
            assert_eq!(c.answers("a"), [(3, Opcode::Getattr, 0, Got::Attr(after))]);
        }

        #[test]
        fn getattr_asks_the_owner_for_its_times_once_those_cached_are_old() {
            let mut c = cluster();
            let f = file();
            // b has the export file's times from its lookup.
            let want = c.exported("a", "f");
            assert_eq!(want.size, PAGE);
            c.host("b").engine.attr_times = Duration::from_secs(3600);
            c.ask("b", 1, Request::Getattr { file: f });
            assert_eq!(
                c.answers("b"),
                [(1, Opcode::Getattr, 0, Got::Attr(want))],
                "the size and times the owner said"
            );
            // The owner's file changes (a write-back): b answers from its
            // cache while its times are young, asks a once they are old.
            let path = c.host("a").dir.export().join("f");
            let later = std::time::SystemTime::now() + Duration::from_secs(100);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(later)
                .unwrap();
            let newer = c.exported("a", "f");
            assert!(newer.mtime > want.mtime && newer.ctime >= want.ctime);
            c.ask("b", 2, Request::Getattr { file: f });
            assert_eq!(c.answers("b"), [(2, Opcode::Getattr, 0, Got::Attr(want))]);
            c.host("b").engine.attr_times = Duration::ZERO;
            let sent = c.host("b").with(|e| e.upcall(getattr_upcall(3, f)));
            match &size_msgs(sent.clone())[..] {
                [(to, SizeMsg::Stat { file, .. })] if to == "a" && *file == f => {}
                o => panic!("{o:?}"),
            }
            // a answers from its export, and tells c nothing (it had told
            // nobody this file's size: a Set would have).
            let to_c = c.deliver_but("b", sent, "c");
            assert!(to_c.is_empty(), "{to_c:?}");
            assert_eq!(c.answers("b"), [(3, Opcode::Getattr, 0, Got::Attr(newer))]);
            assert!(c.told("b").is_empty() && c.told("c").is_empty());
            assert_eq!(c.stats("b").times_asked, 1);
            // One whose connection drops before the answer is answered from
            // the cache at once.
            let sent = c.host("b").with(|e| e.upcall(getattr_upcall(5, f)));
            assert_eq!(size_msgs(sent).len(), 1);
            assert!(c.answers("b").is_empty());
            let peer = c.host("b").peer("a");
            c.on("b", |e| {
                e.event(Event::Net(NetEvent::Down { peer, conn: CONN }))
            });
            assert_eq!(c.answers("b"), [(5, Opcode::Getattr, 0, Got::Attr(newer))]);
            // Not asked of an owner this host has no connection to: the
            // cache answers at once.
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(later + Duration::from_secs(100))
                .unwrap();
            c.ask("b", 4, Request::Getattr { file: f });
            assert_eq!(c.answers("b"), [(4, Opcode::Getattr, 0, Got::Attr(newer))]);
        }

        #[test]
        fn a_time_set_anywhere_is_set_at_the_owner_and_heard_by_the_asker_first() {
            let mut c = cluster();
            let f = file();
            let before = c.exported("a", "f");
            // b's kernel sets the time back (`touch -d`): a sets it on its
            // export file, whose change time moves on.
            c.ask(
                "b",
                1,
                Request::Settimes {
                    file: f,
                    sec: 1_000_000_000,
                    nsec: 5,
                },
            );
            assert_eq!(c.answers("b"), [(1, Opcode::Settimes, 0, Got::Done)]);
            let set = c.exported("a", "f");
            assert_eq!(set.mtime, crate::export::time(1_000_000_000, 5));
            assert!(set.ctime >= before.ctime);
            assert_eq!(c.stats("b").times_set, 1);
            // b heard the new times before its answer: its GETATTR says
            // them from its cache (still young).
            c.ask("b", 2, Request::Getattr { file: f });
            assert_eq!(c.answers("b"), [(2, Opcode::Getattr, 0, Got::Attr(set))]);
            // c's cached times are old at once: its GETATTR asks a.
            c.host("c").engine.attr_times = Duration::ZERO;
            c.ask("c", 3, Request::Getattr { file: f });
            assert_eq!(c.answers("c"), [(3, Opcode::Getattr, 0, Got::Attr(set))]);
            // The owner's own kernel sets one in its export at once.
            c.ask(
                "a",
                4,
                Request::Settimes {
                    file: f,
                    sec: -3,
                    nsec: 0,
                },
            );
            assert_eq!(c.answers("a"), [(4, Opcode::Settimes, 0, Got::Done)]);
            assert_eq!(c.exported("a", "f").mtime, crate::export::time(-3, 0));
            // An owner b cannot reach does not keep a time: EIO at once; one
            // that goes away before it answers, EIO then.
            let sent = c.host("b").with(|e| {
                e.upcall(upcall_of(
                    5,
                    Request::Settimes {
                        file: f,
                        sec: 7,
                        nsec: 0,
                    },
                ))
            });
            assert_eq!(sent.len(), 1, "b asked a");
            assert!(c.answers("b").is_empty());
            let peer = c.host("b").peer("a");
            c.on("b", |e| {
                e.event(Event::Net(NetEvent::Down { peer, conn: CONN }))
            });
            assert_eq!(
                c.answers("b"),
                [(5, Opcode::Settimes, errno::EIO, Got::Nothing)]
            );
            c.ask(
                "b",
                6,
                Request::Settimes {
                    file: f,
                    sec: 8,
                    nsec: 0,
                },
            );
            assert_eq!(
                c.answers("b"),
                [(6, Opcode::Settimes, errno::EIO, Got::Nothing)]
            );
            assert_eq!(c.exported("a", "f").mtime, crate::export::time(-3, 0));
        }

        #[test]
        fn a_growth_asked_of_the_owner_reaches_every_host_before_it_is_answered() {
            let mut c = cluster();
            let size = 3 * PAGE + 5;
            // b's kernel writes past the end: b asks a, which grows its
            // file at once and tells c (not b, which asked) before it
            // answers.
            let f = file();
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(1, f, size, true)));
            let to_c = c.deliver_but("b", sent, "c");
            assert_eq!(c.on_disk(), size);
            assert!(c.answers("b").is_empty(), "answered before c heard");
            assert_eq!(c.told("a"), [(f, size)], "the owner's own kernel");
            assert_eq!(to_c.len(), 1, "{to_c:?}");
            c.deliver(to_c.into());
            assert_eq!(setsize_answers(c.answers("b")), [(1, 0)]);
            // c's kernel was told, and its GETATTR answers the new size;
            // b's kernel sets its own (the size it asked for).
            assert_eq!(c.told("c"), [(f, size)]);
            assert!(c.told("b").is_empty());
            assert_eq!(c.size_at("c", 2), size);
            assert_eq!(c.size_at("b", 2), size);
            // Pages in the grown range are the file's now.
            let a = c.host("a");
            assert_eq!(a.engine.export.upgrade(f, 3), Ok(Grant::ReadWrite));
            let st = c.stats("b");
            assert_eq!((st.sizes, st.sizes_done), (1, 1));
            assert_eq!(c.stats("a").sizes_told, 1);
            assert_eq!(c.stats("c").sizes_heard, 1);
            // A smaller growth (another host grew it further meanwhile) is
            // answered with the whole size, which b's kernel is told.
            c.setsize("b", 3, 2 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("b")), [(3, 0)]);
            assert_eq!(c.told("b"), [(f, size)]);
            assert!(c.told("c").is_empty(), "nothing changed");
            assert_eq!(c.on_disk(), size);
        }

        #[test]
        fn a_growth_at_the_owner_waits_for_every_connected_peer() {
            let mut c = cluster();
            let f = file();
            let size = 5 * PAGE;
            let sent = c
                .host("a")
                .with(|e| e.upcall(setsize_upcall(1, f, size, false)));
            assert_eq!(c.on_disk(), size);
            assert_eq!(sent.len(), 2, "b and c are told: {sent:?}");
            let to_c = c.deliver_but("a", sent, "c");
            assert!(c.answers("a").is_empty(), "c has not acknowledged");
            assert_eq!(c.told("b"), [(f, size)]);
            c.deliver(to_c.into());
            assert_eq!(setsize_answers(c.answers("a")), [(1, 0)]);
            assert_eq!(c.told("c"), [(f, size)]);
            assert!(c.told("a").is_empty(), "a's kernel sets its own");
            assert_eq!(c.size_at("b", 2), size);
            assert_eq!(c.size_at("c", 2), size);
            assert_eq!(c.size_at("a", 2), size);
            assert_eq!(c.stats("a").sizes_told, 2);
            // A peer taken for dead is waited for no longer.
            let bigger = 6 * PAGE;
            let sent = c
                .host("a")
                .with(|e| e.upcall(setsize_upcall(3, f, bigger, true)));
            let to_c = c.deliver_but("a", sent, "c");
            assert_eq!(to_c.len(), 1);
            assert!(c.answers("a").is_empty());
            let idx = c.host("a").peer("c");
            c.on("a", |e| e.declare(idx, inc("c", 1), false));
            assert_eq!(setsize_answers(c.answers("a")), [(3, 0)]);
            // The next growth is told to b alone (c's incarnation is dead).
            let sent = c
                .host("a")
                .with(|e| e.upcall(setsize_upcall(4, f, 7 * PAGE, true)));
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(sent[0].0, "b");
        }

        /// The sizes host `at`'s manager cut its kernel's inode to
        /// (`IOC_SIZE` with `SIZE_CUT`) since last asked.
        fn cut(c: &mut Cluster, at: &str) -> Vec<(u64, u64)> {
            let inval = c.host(at).engine.inval.clone();
            let mut cut = inval.sizes_cut.lock().expect("lock");
            std::mem::take(&mut *cut)
        }

        /// [`cluster`], the file grown to three pages (by a).
        fn three_pages() -> Cluster {
            let mut c = cluster();
            c.setsize("a", 1, 3 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("a")), [(1, 0)]);
            c.told("b");
            c.told("c");
            c
        }

        #[test]
        fn a_shrink_is_cut_at_the_owner_and_reaches_every_host_before_it_is_answered() {
            let mut c = three_pages();
            let f = file();
            // b's kernel truncates the file to 100 bytes: a takes back the
            // pages from the one the new end falls in (nobody holds any),
            // cuts its file, and tells every other host, b included (its
            // manager's cache is cut before the answer), answering once
            // each has acknowledged it.
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(2, f, 100, false)));
            let to_c = c.deliver_but("b", sent, "c");
            assert_eq!(c.on_disk(), 100);
            assert!(c.answers("b").is_empty(), "answered before c heard");
            assert_eq!(cut(&mut c, "a"), [(f, 100)], "the owner's own kernel");
            assert_eq!(cut(&mut c, "b"), [(f, 100)]);
            // Until c has heard, the page the end falls in is not served
            // (c could write past the end in it), and a growth waits.
            assert_eq!(c.host("a").engine.core.limit(f), Some(0));
            c.setsize("b", 9, PAGE + 1, true);
            assert!(c.answers("b").is_empty(), "a growth went ahead of the cut");
            assert_eq!(to_c.len(), 1, "{to_c:?}");
            c.deliver(to_c.into());
            assert_eq!(cut(&mut c, "c"), [(f, 100)]);
            assert_eq!(setsize_answers(c.answers("b")), [(2, 0), (9, 0)]);
            assert_eq!(c.on_disk(), PAGE + 1);
            assert_eq!(c.size_at("c", 3), PAGE + 1);
            for h in ["a", "b", "c"] {
                c.told(h);
            }
            c.setsize("a", 10, 100, false);
            assert_eq!(setsize_answers(c.answers("a")), [(10, 0)]);
            assert_eq!(cut(&mut c, "a"), [(f, 100)]);
            assert_eq!(cut(&mut c, "b"), [(f, 100)]);
            assert_eq!(cut(&mut c, "c"), [(f, 100)]);
            assert_eq!(c.size_at("c", 4), 100);
            assert_eq!(c.size_at("b", 3), 100);
            for h in ["a", "b", "c"] {
                assert!(c.told(h).is_empty(), "{h}: a cut is not a growth");
            }
            // Past the new end the owner serves no page; a growth lifts
            // that, and reads zeros where the cut was.
            assert_eq!(c.host("a").engine.core.limit(f), Some(1));
            c.setsize("c", 4, 2 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("c")), [(4, 0)]);
            assert_eq!(c.host("a").engine.core.limit(f), None);
            assert_eq!(c.on_disk(), 2 * PAGE);
            // At the owner itself, to nothing: its kernel is told too (its
            // truncation cuts the inode it truncates once answered, not a
            // view's); b and c are told.
            c.setsize("a", 5, 0, false);
            assert_eq!(setsize_answers(c.answers("a")), [(5, 0)]);
            assert_eq!(c.on_disk(), 0);
            assert_eq!(cut(&mut c, "a"), [(f, 0)], "its views too");
            assert_eq!(cut(&mut c, "b"), [(f, 0)]);
            assert_eq!(cut(&mut c, "c"), [(f, 0)]);
            assert_eq!(c.stats("a").shrinks, 3);
            // c's manager restarts: it is told the exact size of every file
            // a has cut (its old manager may have missed a cut).
            let idx = c.host("a").peer("c");
            let sent = c.host("a").with(|e| e.event(up(idx, inc("c", 2))));
            let cuts: Vec<(String, SizeMsg)> = size_msgs(sent)
                .into_iter()
                .filter(|(_, m)| matches!(m, SizeMsg::Cut { .. }))
                .collect();
            assert_eq!(
                cuts,
                [(
                    "c".to_string(),
                    SizeMsg::Cut {
                        id: 0,
                        file: f,
                        size: 0
                    }
                )]
            );

            let st = c.stats("b");
            assert_eq!((st.sizes, st.sizes_done, st.sizes_refused), (2, 2, 0));
            // A size past the largest file never leaves the kernel: the
            // ABI refuses it (and so would the owner).
            let huge = Request::Setsize {
                file: f,
                size: wfs_abi::SIZE_MAX + 1,
                grow: true,
            };
            assert!(huge.encode(1, &mut [0u8; MSG_MAX]).is_err());
            assert_eq!(
                c.host("a").engine.export.set_size(f, u64::MAX, true),
                Err(errno::EFBIG)
            );
        }

        #[test]
        fn a_shrink_whose_pages_do_not_come_home_fails_in_time_and_changes_nothing() {
            let mut c = three_pages();
            let f = file();
            // c asks for page 2, and its connection drops with the page on
            // its way: the page is moving for as long as the test likes.
            let page = PageId { file: f, index: 2 };
            let msg = Msg::WhereIs {
                txn: 77,
                page,
                access: Access::Read,
            };
            let from = host_id("c");
            let idx = c.host("a").peer("c");
            let to_c = c.host("a").with(|e| {
                e.run_core(Input::Message { from, msg });
                e.peer_down(idx, CONN);
            });
            assert!(!to_c.is_empty(), "the page went to c");
            // b truncates the file to one page, then grows it a little:
            // the growth waits for the shrink.
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(2, f, PAGE, false)));
            assert!(c.deliver_but("b", sent, "c").is_empty());
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(3, f, 3 * PAGE + 1, true)));
            assert!(c.deliver_but("b", sent, "c").is_empty());
            assert!(c.answers("b").is_empty());
            assert_eq!(c.on_disk(), 3 * PAGE);
            assert_eq!(c.host("a").engine.core.limit(f), Some(1));
            // Past the shrink's wait it fails: the file is as it was and
            // its pages are served again; b's growth goes ahead (c, not
            // connected, hears it when it is back).
            let sent = c.host("a").with(|e| {
                let s = e.shrinks.get_mut(&f).expect("a shrink under way");
                s.since = Instant::now()
                    .checked_sub(e.sizes.ack_wait())
                    .expect("a clock past its wait");
                e.tick(false);
            });
            assert!(c.deliver_but("a", sent, "c").is_empty());
            assert_eq!(
                setsize_answers(c.answers("b")),
                [(2, errno::ETIMEDOUT), (3, 0)]
            );
            assert_eq!(c.on_disk(), 3 * PAGE + 1);
            assert_eq!(c.host("a").engine.core.limit(f), None);
            assert!(c.host("a").engine.shrinks.is_empty());
            assert!(cut(&mut c, "a").is_empty() && cut(&mut c, "b").is_empty());
        }

        #[test]
        fn a_request_asked_of_an_owner_that_dies_fails() {
            let mut c = cluster();
            let f = file();
            // The Set never reaches a; b takes a for dead.
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(1, f, 2 * PAGE, true)));
            assert_eq!(sent.len(), 1);
            assert!(c.answers("b").is_empty());
            let idx = c.host("b").peer("a");
            c.on("b", |e| e.declare(idx, inc("a", 1), false));
            assert_eq!(setsize_answers(c.answers("b")), [(1, libc::EHOSTDOWN)]);
            // Later ones fail at once.
            c.setsize("b", 2, 2 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("b")), [(2, libc::EHOSTDOWN)]);
            let st = c.stats("b");
            assert_eq!((st.sizes, st.sizes_failed), (2, 2));
            assert_eq!(c.on_disk(), PAGE);
            assert_eq!(c.host("b").engine.sizes.asking(), 0);
        }

        #[test]
        fn only_the_owner_says_a_size_and_only_the_owner_sets_one() {
            let mut c = cluster();
            let f = file();
            let (a, b) = (host_id("a"), host_id("b"));
            // b says the file (a's) is larger: c ignores it, but answers.
            let is = SizeMsg::Is {
                id: 7,
                file: f,
                size: 1 << 30,
            };
            let sent = c.host("c").with(|e| e.size_msg(b, is));
            assert_eq!(
                size_msgs(sent),
                [("b".to_string(), SizeMsg::IsAck { id: 7 })]
            );
            assert!(c.told("c").is_empty());
            assert_eq!(c.size_at("c", 1), PAGE);
            // b is asked to size a's file: refused.
            let set = SizeMsg::Set {
                id: 8,
                file: f,
                size: 1 << 30,
                grow: true,
            };
            let sent = c.host("b").with(|e| e.size_msg(a, set));
            let result = Err(errno::ENOENT);
            let answer = SizeMsg::Answer { id: 8, result };
            assert_eq!(size_msgs(sent), [("a".to_string(), answer)]);
            // An answer from a host that was not asked is ignored.
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(2, f, 2 * PAGE, true)));
            let Some(SizeMsg::Set { id, .. }) = size_msgs(sent).pop().map(|(_, m)| m) else {
                panic!("a Set");
            };
            let result = Ok(1 << 30);
            let forged = SizeMsg::Answer { id, result };
            c.host("b").with(|e| e.size_msg(host_id("c"), forged));
            assert!(c.answers("b").is_empty());
            assert_eq!(c.size_at("b", 3), PAGE);
        }

        #[test]
        fn a_request_the_file_is_long_enough_for_waits_for_the_growth_that_made_it_so() {
            let mut c = cluster();
            let f = file();
            let big = 3 * PAGE;
            // b grows the file to 3 pages; c has not acknowledged it yet.
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(1, f, big, true)));
            let to_c = c.deliver_but("b", sent, "c");
            assert_eq!(c.on_disk(), big);
            assert_eq!(c.told("a"), [(f, big)]);
            // The owner's own kernel writes to 2 pages and a bit, and b's
            // to 2 pages: long enough on disk, but neither is answered
            // before c has heard of the growth that made it so (nor is the
            // growth's asker, b, left to learn it from its answer alone).
            let sent = c
                .host("a")
                .with(|e| e.upcall(setsize_upcall(2, f, 2 * PAGE + 5, true)));
            assert_eq!(
                size_msgs(sent.clone())
                    .into_iter()
                    .map(|(to, m)| (to, matches!(m, SizeMsg::Is { size, .. } if size == big)))
                    .collect::<Vec<_>>(),
                [("b".to_string(), true)]
            );
            assert!(c.deliver_but("a", sent, "c").is_empty());
            c.setsize("b", 3, 2 * PAGE, true);
            assert!(c.answers("a").is_empty(), "answered before c heard");
            assert!(c.answers("b").is_empty(), "answered before c heard");
            assert_eq!(c.size_at("c", 4), PAGE, "c has not heard");
            c.deliver(to_c.into());
            assert_eq!(setsize_answers(c.answers("b")), [(1, 0), (3, 0)]);
            assert_eq!(setsize_answers(c.answers("a")), [(2, 0)]);
            // The owner's kernel asked for less: it is told the whole size.
            assert_eq!(c.told("a"), [(f, big)]);
            assert_eq!(c.told("c"), [(f, big)]);
            assert_eq!(c.size_at("c", 5), big);
            assert_eq!(c.size_at("b", 6), big);
            assert_eq!(c.told("b"), [(f, big), (f, big)], "heard, and answered");
            // Heard everywhere now: answered at once, and the owner's own
            // kernel, which asked for less, is told the whole size too.
            c.setsize("a", 7, PAGE, true);
            assert_eq!(setsize_answers(c.answers("a")), [(7, 0)]);
            assert_eq!(c.told("a"), [(f, big)]);
            assert!(
                c.told("b").is_empty() && c.told("c").is_empty(),
                "nothing new"
            );
        }

        #[test]
        fn a_growth_whose_flush_failed_is_told_everywhere_and_fails() {
            let mut c = cluster();
            let f = file();
            let fail = |c: &mut Cluster| {
                let e = &c.host("a").engine.export;
                e.fail_sync.store(errno::EIO, Ordering::Relaxed);
            };
            // Asked by b: the file is longer on disk, so every host hears
            // it (b too: its kernel does not set a size that failed).
            fail(&mut c);
            c.setsize("b", 1, 2 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("b")), [(1, errno::EIO)]);
            assert_eq!(c.on_disk(), 2 * PAGE);
            for h in ["a", "b", "c"] {
                assert_eq!(c.told(h), [(f, 2 * PAGE)], "{h}");
            }
            assert_eq!(c.size_at("b", 2), 2 * PAGE);
            assert_eq!(c.size_at("c", 3), 2 * PAGE);
            // At the owner's own kernel alike.
            fail(&mut c);
            c.setsize("a", 4, 3 * PAGE, false);
            assert_eq!(setsize_answers(c.answers("a")), [(4, errno::EIO)]);
            for h in ["a", "b", "c"] {
                assert_eq!(c.told(h), [(f, 3 * PAGE)], "{h}");
            }
            // Done again: nothing new to tell.
            c.setsize("b", 5, 3 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("b")), [(5, 0)]);
            assert_eq!(c.stats("b").sizes_failed, 1);
        }

        #[test]
        fn a_size_whose_telling_died_with_a_session_is_told_again() {
            let mut c = cluster();
            let f = file();
            // c's connection drops: a's growth is told it (kept in its
            // session), and waits for b alone.
            let idx = c.host("a").peer("c");
            let down = Event::Net(NetEvent::Down {
                peer: idx,
                conn: CONN,
            });
            c.on("a", |e| e.event(down));
            c.setsize("a", 1, 2 * PAGE, true);
            assert_eq!(setsize_answers(c.answers("a")), [(1, 0)]);
            assert!(c.told("c").is_empty());
            // c's manager restarts: what its old one never heard is lost.
            c.restarted("a", "c", inc("c", 2));
            // b asks for a size the file has: a tells c's new incarnation
            // first, and answers b once it has heard.
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(2, f, 2 * PAGE, true)));
            let held = c.deliver_but("b", sent, "c");
            let is = held.into_iter().find_map(|(from, _, f)| {
                size_msgs(vec![(from, f)])
                    .into_iter()
                    .find_map(|(_, m)| match m {
                        SizeMsg::Is { id, size, .. } => Some((id, size)),
                        _ => None,
                    })
            });
            let Some((id, size)) = is else {
                panic!("no SizeIs for c");
            };
            assert_eq!(size, 2 * PAGE);
            assert!(c.answers("b").is_empty(), "answered before c heard");
            c.on("a", |e| e.size_msg(host_id("c"), SizeMsg::IsAck { id }));
            assert_eq!(setsize_answers(c.answers("b")), [(2, 0)]);
        }

        #[test]
        fn a_restarted_owners_sizes_are_asked_again_by_getattr() {
            let mut c = cluster();
            let f = file();
            // a's manager restarts (b hears it); the file is 4 pages long
            // by then, which b never heard.
            c.restarted("b", "a", inc("a", 2));
            assert!(c.host("b").engine.names.is_stale(f));
            let sent = c.host("b").with(|e| e.upcall(getattr_upcall(2, f)));
            let id = match &size_msgs(sent)[..] {
                [
                    (
                        to,
                        SizeMsg::Set {
                            id,
                            file,
                            size: 0,
                            grow: true,
                        },
                    ),
                ] if to == "a" && *file == f => *id,
                o => panic!("{o:?}"),
            };
            assert!(c.answers("b").is_empty());
            // The owner's times come first, then its answer.
            let (mtime, ctime) = (Time { sec: 7, nsec: 8 }, Time { sec: 9, nsec: 10 });
            let times = SizeMsg::Times {
                file: f,
                mtime,
                ctime,
                perm: crate::names::Perm::default(),
            };
            let answer = SizeMsg::Answer {
                id,
                result: Ok(4 * PAGE),
            };
            c.host("b").with(|e| {
                e.attr_times = Duration::from_secs(3600);
                e.size_msg(host_id("a"), times.clone());
                e.size_msg(host_id("a"), answer)
            });
            match &c.answers("b")[..] {
                [(2, Opcode::Getattr, 0, Got::Attr(got))] => {
                    assert_eq!((got.size, got.mtime, got.ctime), (4 * PAGE, mtime, ctime))
                }
                o => panic!("{o:?}"),
            }
            assert!(!c.host("b").engine.names.is_stale(f));
            // Fresh now: answered from the cache.
            assert_eq!(c.size_at("b", 3), 4 * PAGE);
            // c, which did not hear of the restart but has fresh times,
            // answers from its own.
            c.host("c").with(|e| {
                e.attr_times = Duration::from_secs(3600);
                e.size_msg(host_id("a"), times)
            });
            assert_eq!(c.size_at("c", 4), PAGE);
            // Restarted again, and this time it does not answer in time:
            // answered from the cache, and its late answer still counts.
            c.host("b").engine.sizes = Sizes::new(Duration::from_millis(40));
            c.restarted("b", "a", inc("a", 3));
            let sent = c.host("b").with(|e| e.upcall(getattr_upcall(5, f)));
            let id = match &size_msgs(sent)[..] {
                [(_, SizeMsg::Set { id, .. })] => *id,
                o => panic!("{o:?}"),
            };
            std::thread::sleep(c.host("b").engine.sizes.answer_wait());
            c.on("b", |e| e.expire_reads());
            match &c.answers("b")[..] {
                [(5, Opcode::Getattr, 0, Got::Attr(got))] => assert_eq!(got.size, 4 * PAGE),
                o => panic!("{o:?}"),
            }
            let answer = SizeMsg::Answer {
                id,
                result: Ok(5 * PAGE),
            };
            c.host("b").with(|e| e.size_msg(host_id("a"), answer));
            assert!(c.answers("b").is_empty());
            assert_eq!(c.told("b"), [(f, 5 * PAGE)]);
            assert_eq!(c.size_at("b", 6), 5 * PAGE);
        }

        #[test]
        fn a_size_heard_of_a_file_not_named_here_reaches_the_kernel() {
            let mut c = cluster();
            // c's kernel may have it cached from an earlier manager.
            let g = file_id(b"g");
            let is = SizeMsg::Is {
                id: 9,
                file: g,
                size: 5 * PAGE,
            };
            let sent = c.host("c").with(|e| e.size_msg(host_id("a"), is));
            assert_eq!(
                size_msgs(sent),
                [("a".to_string(), SizeMsg::IsAck { id: 9 })]
            );
            assert_eq!(c.told("c"), [(g, 5 * PAGE)]);
            assert_eq!(c.stats("c").sizes_heard, 1);
        }

        #[test]
        fn a_growth_waits_for_acknowledgements_a_bounded_time() {
            let mut c = cluster();
            let f = file();
            // A kernel that gives up after 400 ms: acknowledgements are
            // waited for 100 ms.
            c.host("a").engine.sizes = Sizes::new(Duration::from_millis(400));
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(1, f, 2 * PAGE, true)));
            let to_c = c.deliver_but("b", sent, "c");
            assert!(c.answers("b").is_empty());
            std::thread::sleep(c.host("a").engine.sizes.ack_wait());
            c.on("a", |e| e.expire_reads());
            assert_eq!(setsize_answers(c.answers("b")), [(1, 0)]);
            // c hears it when it can.
            c.deliver(to_c.into());
            assert_eq!(c.told("c"), [(f, 2 * PAGE)]);
            assert_eq!(c.host("a").engine.sizes.telling(), 0);
        }

        #[test]
        fn a_growth_stops_waiting_for_a_peer_whose_connection_drops() {
            let mut c = cluster();
            let f = file();
            let sent = c
                .host("a")
                .with(|e| e.upcall(setsize_upcall(1, f, 2 * PAGE, true)));
            let to_c = c.deliver_but("a", sent, "c");
            assert_eq!(to_c.len(), 1);
            assert!(c.answers("a").is_empty());
            // c's connection drops (what was on it is lost): answered.
            let idx = c.host("a").peer("c");
            let down = Event::Net(NetEvent::Down {
                peer: idx,
                conn: CONN,
            });
            c.on("a", |e| e.event(down));
            assert_eq!(setsize_answers(c.answers("a")), [(1, 0)]);
            // Its connection is back: the session sends it again.
            c.on("a", |e| e.event(up(idx, inc("c", 1))));
            assert_eq!(c.told("c"), [(f, 2 * PAGE)]);
            assert_eq!(c.size_at("c", 2), 2 * PAGE);
        }

        #[test]
        fn a_request_asked_of_an_owner_fails_before_the_kernel_gives_up() {
            let mut c = cluster();
            let f = file();
            // A kernel that gives up after 80 ms: the owner's answer is
            // waited for 40 ms.
            c.host("b").engine.sizes = Sizes::new(Duration::from_millis(80));
            let sent = c
                .host("b")
                .with(|e| e.upcall(setsize_upcall(1, f, 2 * PAGE, true)));
            std::thread::sleep(c.host("b").engine.sizes.answer_wait());
            c.on("b", |e| e.expire_reads());
            assert_eq!(setsize_answers(c.answers("b")), [(1, errno::ETIMEDOUT)]);
            // The owner's late answer still grows b's cached size and its
            // kernel's inode.
            assert!(c.deliver_but("b", sent, "nobody").is_empty());
            assert!(c.answers("b").is_empty(), "answered once");
            assert_eq!(c.told("b"), [(f, 2 * PAGE)]);
            assert_eq!(c.size_at("b", 2), 2 * PAGE);
            assert_eq!(c.stats("b").sizes_failed, 1);
        }

        /// The kernel's SETSIZE `req`, as an upcall worker hands it over.
        fn setsize_upcall(req: u64, file: u64, size: u64, grow: bool) -> Upcall {
            upcall_of(req, Request::Setsize { file, size, grow })
        }

        /// The kernel's GETATTR `req`.
        fn getattr_upcall(req: u64, file: u64) -> Upcall {
            upcall_of(req, Request::Getattr { file })
        }

        fn upcall_of(req: u64, r: Request<'_>) -> Upcall {
            let mut msg = [0u8; MSG_MAX];
            let n = r.encode(req, &mut msg).expect("encode");
            Upcall {
                started: Instant::now(),
                msg: msg[..n].to_vec(),
            }
        }

        /// The size messages among `frames`, with whom each is for.
        fn size_msgs(frames: Vec<(String, Frame)>) -> Vec<(String, SizeMsg)> {
            frames
                .into_iter()
                .filter_map(|(to, f)| match f {
                    Frame::Page(crate::session::Frame {
                        msg: Some(PeerMsg::Size(m)),
                        ..
                    }) => Some((to, m)),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn held_frames_go_out_by_connection_each_in_the_order_sent() {
        let held = vec![
            (0, 7, "a1"),
            (1, 3, "b1"),
            (0, 7, "a2"),
            (0, 8, "a-new-conn"),
            (1, 3, "b2"),
            (0, 7, "a3"),
        ];
        assert_eq!(
            by_connection(held),
            vec![
                ((0, 7), vec!["a1", "a2", "a3"]),
                ((1, 3), vec!["b1", "b2"]),
                ((0, 8), vec!["a-new-conn"]),
            ]
        );
    }

    #[test]
    fn a_peer_that_acknowledges_nothing_is_noticed_after_the_wait_and_not_before() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = AckWatch::default();
        // Nothing waits: nothing is owed, however long.
        assert_eq!(w.note(0, 0, false, t0), s(0));
        assert_eq!(w.note(0, 0, false, t0 + s(60)), s(0));
        // Messages 1 to 5 wait from 60 s on, unacknowledged.
        assert_eq!(w.note(0, 5, true, t0 + s(60)), s(0));
        assert_eq!(w.note(0, 5, true, t0 + s(65)), s(5));
        // All of those acknowledged (more sent since): a new wait.
        assert_eq!(w.note(5, 8, true, t0 + s(66)), s(0));
        assert_eq!(w.note(5, 8, true, t0 + s(76)), s(10));
        // All acknowledged, then new messages: a new wait.
        assert_eq!(w.note(9, 9, false, t0 + s(77)), s(0));
        assert_eq!(w.note(9, 12, true, t0 + s(78)), s(0));
        assert_eq!(w.note(9, 12, true, t0 + s(79)), s(1));
    }

    /// A peer that acknowledges one message now and then while more are
    /// sent never catches up: its wait is not started again, so it is
    /// taken for dead after the failure time-out, and what this host
    /// keeps to send it again stays bounded by what it sends in that time.
    #[test]
    fn a_peer_that_acknowledges_a_trickle_is_noticed_too() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = AckWatch::default();
        assert_eq!(w.note(0, 100, true, t0), s(0));
        let mut waited = s(0);
        for i in 1..=30u64 {
            waited = w.note(i, 100 + 100 * i, true, t0 + s(i));
        }
        assert_eq!(waited, s(30));
    }

    #[test]
    fn pages_are_one_page() {
        let page = PageId { file: 1, index: 2 };
        let put = |n| Msg::Put {
            page,
            epoch: 1,
            seq: 1,
            data: vec![0; n].into(),
            home: false,
        };
        let data = |n| Msg::Data {
            txn: 1,
            page,
            data: vec![0; n].into(),
            dirty: true,
            epoch: 1,
            owner: 2,
            access: Access::Write,
        };
        assert!(check_page_msg(&put(PAGE_SIZE)).is_ok());
        assert!(check_page_msg(&data(PAGE_SIZE)).is_ok());
        for n in [0, 1, PAGE_SIZE - 1, PAGE_SIZE + 1, 1 << 20] {
            assert!(check_page_msg(&put(n)).is_err(), "{n}");
            assert!(check_page_msg(&data(n)).is_err(), "{n}");
        }
        let access = Access::Read;
        assert!(
            check_page_msg(&Msg::WhereIs {
                txn: 1,
                page,
                access
            })
            .is_ok()
        );
    }

    /// The core's inputs and outputs are trace events of the engine with
    /// the page and the transaction as fields, shown with `WFS_TRACE=1`
    /// and not formatted otherwise.
    #[test]
    fn core_traces_carry_file_page_and_txn() {
        use crate::log::tests::captured;
        crate::log::set_host("h1");
        let page = PageId {
            file: 0xabc,
            index: 7,
        };
        let trace_input = |i: &Input| trace_core(input_ids(i), || format!("in {}", brief_input(i)));
        let trace_output =
            |o: &Output| trace_core(output_ids(o), || format!("out {}", brief_output(o)));
        let trace = || {
            trace_input(&Input::Message {
                from: 2,
                msg: Msg::WhereIs {
                    txn: 0x30005,
                    page,
                    access: Access::Read,
                },
            });
            trace_output(&Output::Send {
                to: 2,
                msg: Msg::Absent { txn: 0x30005, page },
            });
            trace_input(&Input::Fault { req: 9, page });
            trace_input(&Input::Retry);
        };
        assert_eq!(captured(crate::log::filter(None, None), trace), "");
        let got = captured(crate::log::filter(None, Some("1")), trace);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 4, "{got}");
        assert!(
            lines[0].starts_with("wfs-manager[h1]: trace: in from 2: WhereIs {")
                && lines[0].ends_with(" file=0xabc page=7 txn=0x30005"),
            "{got}"
        );
        assert!(
            lines[1].starts_with("wfs-manager[h1]: trace: out to 2: Absent {")
                && lines[1].ends_with(" file=0xabc page=7 txn=0x30005"),
            "{got}"
        );
        assert!(lines[2].ends_with(" file=0xabc page=7"), "{got}");
        assert_eq!(lines[3], "wfs-manager[h1]: trace: in Retry", "{got}");
        // The same with WFS_LOG alone.
        let log = Some("wfs_manager::engine=trace");
        assert_eq!(captured(crate::log::filter(log, None), trace), got);
    }
}
