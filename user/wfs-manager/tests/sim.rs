//! Deterministic simulation of the page protocol (`wfs_manager::protocol`)
//! on several hosts, each with a model of its kernel's page cache and of
//! the applications faulting, reading, writing, and of the kernel evicting
//! clean pages and writing dirty ones back. Every schedule comes from a
//! seed; a failure prints the seed, and `WFS_SIM_SEED=N` replays exactly
//! that schedule (`WFS_SIM_LOG=N`: the last N events of a failure;
//! `WFS_SIM_SHOW=1`: every event of a schedule that passes). `WFS_SIM_SCHEDULES=N` sets how many seeds run (a longer
//! soak outside CI).
//!
//! The network delivers each pair's messages in order (TCP) and picks which
//! pair, which host event and which application step comes next at random:
//! messages between different pairs are reordered and delayed freely.
//! Connections drop, losing whatever was in flight in both directions, and
//! come back later; the managers' sessions (`wfs_manager::session`) then
//! send again what the peer did not acknowledge.
//!
//! Checked after every step and at the end:
//! - at most one host holds each page;
//! - every read returns the last value written to the page;
//! - no dirty data is lost: after everything is written back, each owner's
//!   disk holds the last value of each of its pages;
//! - every request completes: no fault, writeback or transaction is left.
//!
//! In half of the schedules the kernel also gives up on READs (a time-out,
//! a killed task): the manager either forgets them or answers later and
//! has its answer refused; a dirty page nobody installed must still reach
//! its owner's disk.
//!
//! In a quarter of the schedules an owner's disk reads and writes fail now
//! and then (one in four): the READs waiting for that page fail with the
//! error (never a page of zeros), and the page stays available for the
//! next fault; a WRITE whose disk write failed fails with the error and
//! its page stays dirty, and a WRITE acknowledged as done finds its value
//! (or a newer one) on the owner's disk.
//!
//! In a third of the schedules hosts crash (in half of those, owners
//! too: a new incarnation of an owner rebuilds its directory from what
//! the others say they hold; what only the owner had, and what a holder
//! that died before telling it had, counts as lost) (their
//! manager, kernel and page cache are gone, and what was in flight to and
//! from them) and restart as a new incarnation; or leave on purpose
//! (`Input::Leave`): they hand every page back, their faults fail, and
//! once the core says it has left (its kernel must hold nothing by then)
//! they go, what they sent still on its way, and come back as a new
//! incarnation. Each other host takes the
//! old incarnation for dead at a moment of its own (its failure detector),
//! or when an owner's `Recover` makes it; only then does its connection to
//! the new incarnation come back. A page whose newest data died with the
//! host must be reported lost by its owner ([`Output::Lost`]) before any
//! host reads an older value of it: every read still returns the last value
//! written unless the page was reported lost since (then the next read
//! sets what the page holds, an older value). An owner's disk never goes
//! back to an older value, so nothing synced is lost; and every request
//! and every recovery completes.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::collections::BTreeSet;

use wfs_manager::protocol::{
    Access, Coherence, Core, FENCED, HOST_DOWN, HostId, Input, Msg, Output, PAST_END,
    PREFETCH_REFUSED, PageId, SHUTTING_DOWN, SUPERSEDED, UpgradeAnswer,
};
use wfs_manager::session::{Frame, Session};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What an application thread wants to do to a page.
#[derive(Debug, Clone, Copy)]
enum Op {
    Read,
    Write,
}

/// A host's kernel: its page cache and what waits on it.
#[derive(Default)]
struct Kernel {
    /// Cached pages: value and dirty flag.
    cache: BTreeMap<PageId, (u64, bool)>,
    /// Pages being written back (WRITE upcall outstanding), by request.
    writeback: BTreeMap<PageId, u64>,
    /// Faults outstanding: the READ request and the operations waiting.
    faults: BTreeMap<PageId, (u64, Vec<Op>)>,
    /// Invalidations the manager asked for while the page was under
    /// writeback (the real kernel answers EAGAIN and the manager retries),
    /// and whether each is a DOWNGRADE; answered in order.
    deferred: Vec<(PageId, bool)>,
    /// Cached pages mapped read-only (a DOWNGRADE's, or an `mrsw` read
    /// copy): a write asks first (UPGRADE).
    readonly: BTreeSet<PageId>,
    /// UPGRADEs outstanding (the folio locked): the request and the
    /// writes waiting.
    upgrades: BTreeMap<PageId, (u64, Vec<Op>)>,
}

struct Host {
    core: Core,
    /// Leaving on purpose (between `Input::Leave` and `Output::Left`).
    leaving: bool,
    /// Its manager's incarnation (a crash starts the next).
    incarnation: u64,
    /// The stream to each peer.
    sessions: BTreeMap<HostId, Session<Msg>>,
    kernel: Kernel,
    /// Inputs for the core from this host's own kernel and disk.
    inbox: VecDeque<Input>,
    /// The engine's prefetches under way: request → page.
    prefetching: BTreeMap<u64, PageId>,
    /// Pages fetched ahead that came while no READ waited, kept by the
    /// engine (not in the kernel): their value, and the grant they came
    /// with.
    kept: BTreeMap<PageId, (u64, (u64, bool))>,
    disk: BTreeMap<PageId, u64>,
    /// Disk writes that will succeed, by the writer's ack: on stable
    /// storage only once reported (`DiskWritten`; a crash before loses
    /// them).
    disk_pending: BTreeMap<(HostId, u64), (PageId, u64)>,
}

/// Host `me`'s core, incarnation `incarnation`, in a cluster of `n`.
fn new_core(
    me: HostId,
    incarnation: u64,
    n: usize,
    owners: &HashMap<u64, HostId>,
    modes: &HashMap<u64, Coherence>,
) -> Core {
    let mut core = Core::with_incarnation(me, incarnation);
    let mut files: Vec<_> = owners.iter().collect();
    files.sort();
    for (&file, &owner) in files {
        core.add_file(file, owner);
        if owner == me
            && let Some(&c) = modes.get(&file)
        {
            core.set_coherence(file, c);
        }
    }
    for p in 0..n as HostId {
        core.add_peer(p);
    }
    core
}

fn pair(a: HostId, b: HostId) -> (HostId, HostId) {
    (a.min(b), a.max(b))
}

fn encode(v: u64) -> wfs_manager::protocol::PageData {
    v.to_le_bytes().to_vec().into()
}

fn decode(d: &[u8]) -> u64 {
    u64::from_le_bytes(d.try_into().expect("pages in the simulation are 8 bytes"))
}

struct Sim {
    rng: Rng,
    hosts: Vec<Host>,
    /// In-flight frames per (from, to), in order, on the current
    /// connection of the pair.
    net: BTreeMap<(HostId, HostId), VecDeque<Frame<Msg>>>,
    /// Pairs (lower id first) whose connection is down.
    down: std::collections::BTreeSet<(HostId, HostId)>,
    /// Connection drops so far.
    drops: u32,
    /// Whether this schedule drops connections.
    flaky: bool,
    pages: Vec<PageId>,
    owners: HashMap<u64, HostId>,
    /// Files their owner keeps `mrsw` (in `protocol_simulation_mrsw`).
    modes: HashMap<u64, Coherence>,
    /// Read replication's events: UPGRADEs granted and refaulted, `Revoke`s
    /// and `Share`s delivered, write faults (`WhereIs` for write access).
    upgrades: u32,
    stale: u32,
    revokes: u32,
    shares: u32,
    write_faults: u32,
    /// Prefetches asked for, and those whose page was kept for the kernel.
    prefetches: u32,
    prefetch_hits: u32,
    /// Kept copies dropped unread and given back ([`Input::Unused`]).
    unread: u32,
    /// The last value written to each page.
    last: BTreeMap<PageId, u64>,
    next_value: u64,
    next_req: u64,
    /// Whether this schedule has the kernel give up on READs.
    timeouts: bool,
    /// Whether the operator takes pages from kernels now and then (`wfsctl
    /// invalidate`, DROP or DOWNGRADE).
    evictions: bool,
    /// Dirty pages that came for READs that had all given up, sent home.
    went_home: u32,
    /// Evictions answered, and those that brought dirty data home.
    evictions_done: u32,
    evicted_dirty: u32,
    /// READs the kernel gave up on and the manager did not forget: their
    /// answers are refused.
    abandoned: BTreeMap<u64, PageId>,
    /// Whether this schedule's disk reads and writes fail now and then.
    disk_errors: bool,
    /// WRITEs in flight: the page and the value they write.
    writes: BTreeMap<u64, (PageId, u64)>,
    /// WRITEs failed because of a disk write error.
    failed_writes: u32,
    /// WRITEs answered SUPERSEDED (newer data not durable yet).
    superseded: u32,
    /// READs failed because of a disk read error.
    failed_reads: u32,
    /// Whether this schedule crashes hosts.
    crashes: bool,
    /// Whether its hosts only ever leave on purpose (no crash, no host
    /// taken for dead while it runs, no fence, no disk error): then no
    /// page may ever be reported lost.
    leaves_only: bool,
    /// Incarnations that left on purpose (rather than crashed).
    has_left: BTreeSet<(HostId, u64)>,
    /// Whether its crashes and leaves may hit owners too.
    owner_crashes: bool,
    /// Owner crashes so far.
    owners_crashed: u32,
    /// (holder, owner): the owner crashed and the holder has not told its
    /// next incarnation what it holds yet. If the holder crashes too
    /// meanwhile, nobody alive knows what it held: its pages of that
    /// owner's files are lost without a report (a double failure).
    unreported: BTreeSet<(HostId, HostId)>,
    /// Pages a holder reported to a restarted owner.
    reported: u32,
    /// (host, owner): the host's lease on the owner's pages ran out while
    /// their connection was down (it fenced itself), until it is back.
    fenced: BTreeSet<(HostId, HostId)>,
    /// Fences so far.
    fences: u32,
    /// Incarnations an owner took for dead while they ran (cut off from it
    /// longer than their lease): they go on until a peer refuses them,
    /// then restart.
    taken: BTreeSet<(HostId, u64)>,
    /// Those so far.
    taken_alive: u32,
    /// What each crashed incarnation held (kernel, manager, in flight).
    held_at_crash: BTreeMap<(HostId, u64), Vec<PageId>>,
    /// The step the schedule is at, and the first at which hosts may
    /// crash (later in some schedules, when pages have spread).
    step_no: usize,
    crash_from: usize,
    /// Crashes so far.
    crashed: u32,
    /// (observer, dead host, dead incarnation): the observer has not taken
    /// that incarnation for dead yet, so its connection to the host's new
    /// incarnation cannot come up.
    undeclared: BTreeSet<(HostId, HostId, u64)>,
    /// The incarnation each host last knew of each other host.
    known: BTreeMap<(HostId, HostId), u64>,
    /// Pages reported lost and not read or written since: the next read
    /// tells what they hold.
    unknown: BTreeSet<PageId>,
    /// The newest value of each page a WRITE was acknowledged for: no
    /// failure may lose it.
    synced: BTreeMap<PageId, u64>,
    /// Pages reported lost, in all.
    lost: u32,
    /// Leaves completed.
    leaves: u32,
    /// (sender, crashed host, its incarnation): how many of the sender's
    /// messages the crashed incarnation had received, until the sender
    /// takes it for dead.
    received_at_crash: BTreeMap<(HostId, HostId, u64), u64>,
    /// Pages whose data was on its way to a host that crashed and never got
    /// it, and the sender: that data is not lost (its sender has it), so
    /// the next read of the page returns it or newer, unless the sender
    /// crashes too before the owner's disk has it.
    floor: BTreeMap<PageId, (u64, HostId)>,
    /// Pages a survivor had sent to a host that died, unacknowledged (it
    /// brings them home).
    returned: u32,
    /// Data an owner's incarnation that died never had, delivered to its
    /// next incarnation ([`Msg::Orphan`]).
    orphans: u32,
    /// Whether owners shrink their files now and then (`protocol_simulation_shrink`).
    shrinks: bool,
    /// Files shrinking: the first page past the new end. Their owner has
    /// set the limit and recalls the pages from there on.
    shrinking: BTreeMap<u64, u64>,
    /// Pages a shrink cut, and the first value written after the cut:
    /// no value older than that may reach a disk or a reader again.
    cut: BTreeMap<PageId, u64>,
    /// Pages ever past a limit: a fault or UPGRADE of one may fail with
    /// `PAST_END` (its refusal may arrive after the shrink is over).
    gated: BTreeSet<PageId>,
    /// Shrinks started, completed (every page past the end home, none in
    /// any kernel), abandoned (their owner crashed or left), and faults
    /// refused as past the end.
    shrinks_started: u32,
    shrinks_done: u32,
    shrinks_abandoned: u32,
    past_end: u32,
    log: Vec<String>,
}

impl Sim {
    fn new(
        seed: u64,
        nhosts: usize,
        files: usize,
        pages_per_file: u64,
        mrsw: bool,
        shrinks: bool,
    ) -> Sim {
        let mut rng = Rng::new(seed);
        let mut owners = HashMap::new();
        let mut pages = Vec::new();
        for f in 0..files as u64 {
            let file = 100 + f;
            owners.insert(file, rng.below(nhosts) as HostId);
            for index in 0..pages_per_file {
                pages.push(PageId { file, index });
            }
        }
        // (From a generator of their own, so that the schedule's draws
        // stay those of the same seed in `single`.)
        let mut modes = HashMap::new();
        if mrsw {
            let mut mode_rng = Rng::new(seed ^ 0x3257);
            for f in 0..files as u64 {
                if mode_rng.below(4) != 0 {
                    modes.insert(100 + f, Coherence::Mrsw);
                }
            }
        }
        let hosts = (0..nhosts)
            .map(|h| Host {
                leaving: false,
                core: new_core(h as HostId, 0, nhosts, &owners, &modes),
                incarnation: 0,
                sessions: (0..nhosts as HostId)
                    .filter(|&p| p != h as HostId)
                    .map(|p| (p, Session::new()))
                    .collect(),
                kernel: Kernel::default(),
                inbox: VecDeque::new(),
                prefetching: BTreeMap::new(),
                kept: BTreeMap::new(),
                disk: BTreeMap::new(),
                disk_pending: BTreeMap::new(),
            })
            .collect();
        let last = pages.iter().map(|&p| (p, 0)).collect();
        // (Drawn still, so that the seeds keep their schedules.)
        let _ = rng.below(2);
        let flaky = rng.below(2) == 0;
        let timeouts = rng.below(2) == 0;
        let disk_errors = rng.below(4) == 0;
        let crashes = rng.below(3) == 0;
        let owner_crashes = crashes && rng.below(2) == 0;
        let crash_from = if rng.below(2) == 0 { 0 } else { rng.below(400) };
        let evictions = rng.below(2) == 0;

        Sim {
            crashes,
            leaves_only: false,
            has_left: BTreeSet::new(),
            owner_crashes,
            owners_crashed: 0,
            unreported: BTreeSet::new(),
            reported: 0,
            held_at_crash: BTreeMap::new(),
            fenced: BTreeSet::new(),
            fences: 0,
            step_no: 0,
            crash_from,
            crashed: 0,
            undeclared: BTreeSet::new(),
            known: BTreeMap::new(),
            unknown: BTreeSet::new(),
            synced: BTreeMap::new(),
            lost: 0,
            leaves: 0,
            received_at_crash: BTreeMap::new(),
            floor: BTreeMap::new(),
            returned: 0,
            orphans: 0,
            shrinks,
            shrinking: BTreeMap::new(),
            cut: BTreeMap::new(),
            gated: BTreeSet::new(),
            shrinks_started: 0,
            shrinks_done: 0,
            shrinks_abandoned: 0,
            past_end: 0,
            rng,
            hosts,
            net: BTreeMap::new(),
            down: Default::default(),
            drops: 0,
            flaky,
            timeouts,
            evictions,
            evictions_done: 0,
            taken: BTreeSet::new(),
            taken_alive: 0,
            went_home: 0,
            evicted_dirty: 0,
            abandoned: BTreeMap::new(),
            pages,
            owners,
            modes,
            upgrades: 0,
            stale: 0,
            revokes: 0,
            shares: 0,
            write_faults: 0,
            prefetches: 0,
            prefetch_hits: 0,
            unread: 0,
            last,
            next_value: 1,
            next_req: 1,
            disk_errors,
            writes: BTreeMap::new(),
            failed_writes: 0,
            superseded: 0,
            failed_reads: 0,
            log: Vec::new(),
        }
    }

    fn fail(&self, why: String) -> ! {
        let keep = std::env::var("WFS_SIM_LOG")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40);
        let tail: Vec<_> = self.log.iter().rev().take(keep).rev().cloned().collect();
        panic!("{why}\nlast events:\n  {}", tail.join("\n  "));
    }

    /// Every host learns every other's first incarnation (the first
    /// handshake).
    fn join_all(&mut self) {
        let n = self.hosts.len();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    self.known.insert((a as HostId, b as HostId), 0);
                    self.input(
                        a,
                        Input::PeerJoined {
                            host: b as HostId,
                            incarnation: 0,
                        },
                    );
                }
            }
        }
    }

    /// Feeds one input to host `h`'s core and carries out its outputs.
    fn input(&mut self, h: usize, input: Input) {
        if let Input::Fault { req, page } = input {
            let pf = self.hosts[h]
                .prefetching
                .iter()
                .find(|&(_, &p)| p == page)
                .map(|(&r, _)| r);
            if let Some((value, grant)) = self.hosts[h].kept.remove(&page) {
                // Answered from the copy kept for it, without the core,
                // if the core still holds the page under the grant it
                // came with and no invalidation of it waits for the
                // kernel (`Prefetch::serve`); dropped otherwise.
                let busy = self.hosts[h]
                    .kernel
                    .deferred
                    .iter()
                    .any(|(p, _)| *p == page);
                if self.hosts[h].core.grant_of(page) == Some(grant) && !busy {
                    self.log.push(format!(
                        "h{h}: READ of {page:?} answered from its kept copy"
                    ));
                    if self.abandoned.remove(&req).is_none() {
                        let ops = match self.hosts[h].kernel.faults.remove(&page) {
                            Some((r, ops)) if r == req => ops,
                            other => self.fail(format!(
                                "h{h}: READ {req} of {page:?} answered, the kernel waits for {other:?}"
                            )),
                        };
                        self.install_kept(h, page, value, ops);
                    }
                    return;
                }
                self.log
                    .push(format!("h{h}: kept copy of {page:?} dropped (taken since)"));
            }
            if let Some(pf) = pf {
                // A READ of a page being fetched ahead: the engine gives
                // the prefetch up, and the READ joins its transaction.
                self.hosts[h].prefetching.remove(&pf);
                self.hosts[h].core.cancel(pf);
                self.log
                    .push(format!("h{h}: a READ of {page:?} takes over prefetch {pf}"));
            }
            // The kernel asks for the page, so it lacks it: the engine
            // answers the invalidations of it it kept busy as finding
            // nothing, in order, first.
            let k = &mut self.hosts[h].kernel;
            let (now, later): (Vec<_>, Vec<_>) =
                k.deferred.drain(..).partition(|(p, _)| *p == page);
            k.deferred = later;
            let inc = self.hosts[h].incarnation;
            for (page, downgrade) in now {
                self.input(h, Input::taken(page, downgrade, None));
            }
            if self.hosts[h].incarnation != inc {
                // (It left meanwhile: the fault went with its kernel.)
                return;
            }
        }
        self.log.push(format!("h{h} <- {input:?}"));
        if let Input::DiskWritten { ack, error: 0, .. } = &input
            && let Some((page, v)) = self.hosts[h].disk_pending.remove(ack)
        {
            // (Zeros are what a cut leaves: they may be written back.)
            if v != 0 && self.cut.get(&page).is_some_and(|&c| v < c) {
                self.fail(format!(
                    "h{h}: {v}, written to {page:?} before a shrink cut it, reached the disk after the cut"
                ));
            }
            let old = self.hosts[h].disk.insert(page, v).unwrap_or(0);
            if v < old {
                self.fail(format!(
                    "h{h}: {page:?} on disk went back from {old} to {v}: synced data lost"
                ));
            }
        }

        let outs = match self.hosts[h].core.handle(input) {
            Ok(o) => o,
            Err(e) => self.fail(format!("h{h}: protocol error {e:?}")),
        };
        if !self.modes.is_empty()
            && let Err(e) = self.hosts[h].core.check()
        {
            self.fail(format!("h{h}: {e}"));
        }
        // The kernel's answers to grants: reported at once, as the engine
        // does (before anything else this batch caused).
        let mut answers = Vec::new();
        // Pages taken from the kernel: answered at once, as the engine
        // does (in the same batch, before any other event).
        let mut taken = Vec::new();
        for o in outs {
            self.log.push(format!("h{h} -> {o:?}"));
            match o {
                Output::Send { to, msg } => {
                    let from = h as HostId;
                    let session = self.hosts[h]
                        .sessions
                        .get_mut(&to)
                        .expect("a session per peer");
                    let frame = session.send(msg);
                    // While the connection is down the session keeps it.
                    if !self.down.contains(&pair(from, to)) {
                        session.handed();
                        self.net.entry((from, to)).or_default().push_back(frame);
                    }
                }
                Output::Grant {
                    req,
                    data,
                    dirty,
                    writable,
                } => {
                    if let Some(page) = self.hosts[h].prefetching.remove(&req) {
                        // Kept for the kernel (the model installs it: the
                        // kernel's READ of it is answered without the
                        // core), unless dirty.
                        let installed = !dirty;
                        if installed {
                            self.prefetched(h, page, decode(&data), writable);
                        }
                        answers.push(Input::Answered { req, installed });
                        continue;
                    }
                    let installed = if self.abandoned.remove(&req).is_some() {
                        self.log
                            .push(format!("h{h}: the kernel refuses READ {req}"));
                        false
                    } else {
                        self.grant(h, req, decode(&data), dirty, writable);
                        true
                    };
                    answers.push(Input::Answered { req, installed });
                }
                Output::WriteDone { req, error } => {
                    let Some((wpage, value)) = self.writes.remove(&req) else {
                        self.fail(format!("h{h}: WRITE {req} answered twice or never sent"));
                    };
                    if error == 0 && self.cut.get(&wpage).is_some_and(|&c| value < c) {
                        // Synced, and cut by a shrink since.
                    } else if error == 0 {
                        // Synced: the owner's disk holds it, or newer data,
                        // from now on.
                        let synced = self.synced.entry(wpage).or_default();
                        *synced = (*synced).max(value);
                        let owner = self.owners[&wpage.file] as usize;
                        let on_disk = self.hosts[owner].disk.get(&wpage).copied().unwrap_or(0);
                        if on_disk < value {
                            self.fail(format!(
                                "h{h}: WRITE {req} of {value} to {wpage:?} acknowledged, but the owner's disk holds {on_disk}"
                            ));
                        }
                    } else if error != 28
                        && error != SUPERSEDED
                        && !(error == HOST_DOWN && self.owner_died(wpage))
                        && error != FENCED
                    {
                        self.fail(format!(
                            "h{h}: WRITE {req} failed with {error}, not the disk's 28 or SUPERSEDED"
                        ));
                    } else {
                        self.failed_writes += 1;
                        if error == SUPERSEDED {
                            self.superseded += 1;
                        }
                        // The kernel keeps the page dirty (if it still has
                        // it; if not, it went elsewhere dirty).
                        if let Some(e) = self.hosts[h].kernel.cache.get_mut(&wpage) {
                            e.1 = true;
                        }
                    }
                    let k = &mut self.hosts[h].kernel;
                    let page = k
                        .writeback
                        .iter()
                        .find(|(_, r)| **r == req)
                        .map(|(p, _)| *p);
                    let Some(page) = page else {
                        self.fail(format!("h{h}: WRITE {req} answered twice or never sent"));
                    };
                    k.writeback.remove(&page);
                }
                Output::Invalidate { page } | Output::Downgrade { page } => {
                    let downgrade = matches!(o, Output::Downgrade { .. });
                    // (A copy kept for the kernel goes first, as in the
                    // engine's `take`.)
                    self.hosts[h].kept.remove(&page);
                    // The kernel answers EAGAIN for a page under writeback
                    // or locked for a READ; the core settles that at once
                    // (`Core::busy`) or the engine tries again on its
                    // timer, after any invalidation of the page still
                    // waiting. It is answered at once otherwise.
                    let k = &self.hosts[h].kernel;
                    let waiting = k.deferred.iter().any(|(p, _)| *p == page);
                    let settled = match (waiting, self.kernel_busy(h, page)) {
                        (false, true) => self.hosts[h].core.busy(page, downgrade),
                        _ => None,
                    };
                    if let Some(input) = settled {
                        taken.push(input);
                    } else if waiting || self.kernel_busy(h, page) {
                        // (One just like the page's last one waiting answers
                        // for both, as in the engine.)
                        let k = &mut self.hosts[h].kernel;
                        let last = k.deferred.iter().rev().find(|(p, _)| *p == page);
                        if last.is_none_or(|&(_, d)| d != downgrade) {
                            k.deferred.push((page, downgrade));
                        }
                    } else if downgrade {
                        taken.push(self.downgrade(h, page));
                    } else {
                        taken.push(self.invalidate(h, page));
                    }
                }
                Output::Evicted { dirty, written, .. } => {
                    self.evictions_done += 1;
                    if dirty && written {
                        self.evicted_dirty += 1;
                    }
                }
                Output::DiskRead { page } => {
                    if self.disk_errors && self.rng.below(4) == 0 {
                        self.hosts[h]
                            .inbox
                            .push_back(Input::DiskReadFailed { page, error: 5 });
                    } else {
                        let v = self.hosts[h].disk.get(&page).copied().unwrap_or(0);
                        self.hosts[h].inbox.push_back(Input::DiskRead {
                            page,
                            data: encode(v),
                        });
                    }
                }
                Output::Declare {
                    host,
                    incarnation,
                    left,
                } => {
                    let me = h as HostId;
                    if self.undeclared.contains(&(me, host, incarnation))
                        && self.taken_alive(host, incarnation)
                    {
                        // It runs: the connection is closed and refused
                        // now, the death taken once its lease has run out
                        // (an event of its own).
                        let p = pair(me, host);
                        if self.down.insert(p) {
                            self.net.remove(&(me, host));
                            self.net.remove(&(host, me));
                            self.log.push(format!("h{me} closes and refuses h{host}"));
                        }
                    } else if left
                        && self.undeclared.contains(&(me, host, incarnation))
                        && self.net.get(&(host, me)).is_some_and(|q| !q.is_empty())
                    {
                        // Another host heard it leave: the engine keeps the
                        // connection for what it sent before, which ends
                        // with its own `Leaving` (declared then).
                    } else if self.undeclared.contains(&(me, host, incarnation)) {
                        self.declare(me, host, incarnation);
                    } else {
                        self.hosts[h].inbox.push_back(Input::PeerDied {
                            host,
                            incarnation,
                            undelivered: Vec::new(),
                            unsent: Vec::new(),
                        });
                    }
                }
                Output::Left => {
                    if !self.hosts[h].leaving {
                        self.fail(format!("h{h} says it has left, but it was not leaving"));
                    }
                    let k = &self.hosts[h].kernel;
                    if !k.cache.is_empty() || !k.writeback.is_empty() {
                        self.fail(format!(
                            "h{h} has left, but its kernel still holds {:?} (writeback {:?})",
                            k.cache, k.writeback
                        ));
                    }
                    self.leaves += 1;
                    self.crash_host(h, true);
                    return;
                }
                Output::WentHome { .. } => self.went_home += 1,
                Output::UpgradeAnswer { req, answer } => self.upgraded(h, req, answer),
                Output::Lost { page, host } => {
                    if self.leaves_only {
                        self.fail(format!(
                            "h{h} reports {page:?} lost with h{host}, but hosts only left on purpose"
                        ));
                    }
                    // Its owner; or a host whose dirty data for a dead owner
                    // has nowhere to go.
                    let owner = self.owners[&page.file];
                    if owner as usize != h && !(host == owner && self.owner_died(page)) {
                        self.fail(format!("h{h} reports {page:?} lost, but does not own it"));
                    }
                    self.log
                        .push(format!("{page:?} lost with h{host}, reported by h{h}"));
                    self.unknown.insert(page);
                    self.lost += 1;
                }
                // (Its owner reported the page lost.)
                Output::OrphanRefused { .. } => {}
                // Every host here runs the protocol correctly: none is
                // refused anything.
                Output::Rejected(e) => self.fail(format!("h{h}: refused {e:?}")),
                Output::PutRefused { page, owner } => {
                    self.fail(format!("h{h}: its Put of {page:?} refused by h{owner}"))
                }
                Output::ReadFailed { req, error }
                    if self.hosts[h].prefetching.contains_key(&req) =>
                {
                    let page = self.hosts[h].prefetching.remove(&req).expect("checked");
                    if error != PREFETCH_REFUSED
                        && error != 5
                        && !(error == PAST_END && self.gated.contains(&page))
                        && !(error == SHUTTING_DOWN
                            && (self.hosts[h].leaving || self.owner_leaves(page)))
                        && !(error == HOST_DOWN && self.owner_died(page))
                    {
                        self.fail(format!(
                            "h{h}: prefetch {req} of {page:?} failed with {error}"
                        ));
                    }
                }
                Output::ReadFailed { req, error } => {
                    let page = self.abandoned.get(&req).copied();
                    let page = page.unwrap_or_else(|| self.fault_of(h, req));
                    if error != 5
                        && !(error == SHUTTING_DOWN
                            && (self.hosts[h].leaving || self.owner_leaves(page)))
                        && !(error == HOST_DOWN && self.owner_died(page))
                        && !(error == PAST_END && self.gated.contains(&page))
                    {
                        self.fail(format!(
                            "h{h}: READ {req} failed with {error}, not the disk's 5"
                        ));
                    }
                    if error == PAST_END {
                        self.past_end += 1;
                    }
                    if self.abandoned.remove(&req).is_none() {
                        let page = self.fault_of(h, req);
                        // The operations waiting for it fail (EIO, SIGBUS).
                        self.hosts[h].kernel.faults.remove(&page);
                        self.log.push(format!("h{h}: READ {req} of {page:?} fails"));
                    }
                    self.failed_reads += 1;
                }
                Output::DiskWrite {
                    page,
                    data,
                    epoch,
                    ack,
                } => {
                    let error = if self.disk_errors && self.rng.below(4) == 0 {
                        28
                    } else {
                        let v = decode(&data);
                        self.hosts[h].disk_pending.insert(ack, (page, v));
                        0
                    };
                    self.hosts[h].inbox.push_back(Input::DiskWritten {
                        page,
                        epoch,
                        ack,
                        error,
                    });
                }
            }
        }
        for input in answers {
            self.input(h, input);
        }
        for input in taken {
            self.input(h, input);
        }
    }

    /// Every host's core, one per line (for a failure's message).
    fn cores(&self) -> String {
        let cores: Vec<String> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| format!("h{i}: {:?}", h.core))
            .collect();
        cores.join("\n")
    }

    /// Whether host `h`'s kernel holds `page` as a read copy of an `mrsw`
    /// file: its data is on the owner's disk, so nothing dies with it.
    fn read_copy(&self, h: usize, page: PageId) -> bool {
        let host = &self.hosts[h];
        self.modes.contains_key(&page.file)
            && host.kernel.readonly.contains(&page)
            && !host.core.writable(page)
    }

    /// Whether hosts may crash at this step.
    fn crashing(&self) -> bool {
        self.crashes && self.step_no >= self.crash_from
    }

    /// Whether the owner of `page` has crashed or left at least once.
    fn owner_died(&self, page: PageId) -> bool {
        self.hosts[self.owners[&page.file] as usize].incarnation > 0
    }

    /// Whether the owner of `page` is leaving, or has left or crashed.
    fn owner_leaves(&self, page: PageId) -> bool {
        self.hosts[self.owners[&page.file] as usize].leaving || self.owner_died(page)
    }

    /// The kernel of host `h` gives up on one of its READs (it timed out,
    /// or its task was killed): the operations waiting on it fail. The
    /// manager either notices (and the core forgets the READ) or answers
    /// it later, and the kernel refuses the answer.
    fn give_up(&mut self, h: usize) {
        let k = &mut self.hosts[h].kernel;
        let faults: Vec<PageId> = k.faults.keys().copied().collect();
        // (Or an UPGRADE: its writes fail, the copy stays read-only.)
        let upgrades: Vec<PageId> = k.upgrades.keys().copied().collect();
        if faults.is_empty() && upgrades.is_empty() {
            return;
        }
        let i = self.rng.below(faults.len() + upgrades.len());
        if i >= faults.len() {
            let page = upgrades[i - faults.len()];
            let (req, _) = k.upgrades.remove(&page).expect("listed above");
            self.log.push(format!(
                "h{h}: the kernel gives up on UPGRADE {req} of {page:?}"
            ));
            if self.rng.below(2) == 0 && self.hosts[h].core.cancel(req) {
                self.log
                    .push(format!("h{h}: the manager forgets UPGRADE {req}"));
            } else {
                self.abandoned.insert(req, page);
            }
            return;
        }
        let page = faults[i];
        let (req, _) = k.faults.remove(&page).expect("listed above");
        self.log.push(format!(
            "h{h}: the kernel gives up on READ {req} of {page:?}"
        ));
        if self.rng.below(2) == 0 && self.hosts[h].core.cancel(req) {
            self.log
                .push(format!("h{h}: the manager forgets READ {req}"));
        } else {
            self.abandoned.insert(req, page);
        }
    }

    /// Whether the kernel of host `h` answers EAGAIN for `page`: under
    /// writeback, or locked for a READ.
    fn kernel_busy(&self, h: usize, page: PageId) -> bool {
        let k = &self.hosts[h].kernel;
        k.writeback.contains_key(&page)
            || k.faults.contains_key(&page)
            || k.upgrades.contains_key(&page)
    }

    /// The engine's timer: tries the busy invalidations again, the first
    /// of each page first (`Engine::retry_busy`).
    fn retry_busy(&mut self, h: usize) {
        let mut i = 0;
        while i < self.hosts[h].kernel.deferred.len() {
            let (page, downgrade) = self.hosts[h].kernel.deferred[i];
            if self.hosts[h].kernel.deferred[..i]
                .iter()
                .any(|(p, _)| *p == page)
            {
                i += 1;
                continue;
            }
            let input = if !self.kernel_busy(h, page) {
                if downgrade {
                    self.downgrade(h, page)
                } else {
                    self.invalidate(h, page)
                }
            } else if let Some(input) = self.hosts[h].core.busy(page, downgrade) {
                input
            } else {
                i += 1;
                continue;
            };
            self.hosts[h].kernel.deferred.remove(i);
            let inc = self.hosts[h].incarnation;
            self.input(h, input);
            if self.hosts[h].incarnation != inc {
                return;
            }
        }
    }

    /// The kernel of host `h` takes `page` out of its cache (DROP).
    fn invalidate(&mut self, h: usize, page: PageId) -> Input {
        let k = &mut self.hosts[h].kernel;
        k.readonly.remove(&page);
        let contents = k.cache.remove(&page).map(|(v, dirty)| (encode(v), dirty));
        Input::taken(page, false, contents)
    }

    /// The kernel of host `h` keeps a clean read-only copy of `page`
    /// (DOWNGRADE) and hands over its contents.
    fn downgrade(&mut self, h: usize, page: PageId) -> Input {
        let k = &mut self.hosts[h].kernel;
        let contents = k.cache.get_mut(&page).map(|e| {
            let dirty = std::mem::replace(&mut e.1, false);
            (encode(e.0), dirty)
        });
        if contents.is_some() {
            k.readonly.insert(page);
        }
        Input::taken(page, true, contents)
    }

    /// The page host `h`'s READ `req` is for; a READ answered twice or
    /// never sent fails the simulation.
    fn fault_of(&self, h: usize, req: u64) -> PageId {
        let page = self.hosts[h]
            .kernel
            .faults
            .iter()
            .find(|(_, (r, _))| *r == req)
            .map(|(p, _)| *p);
        let Some(page) = page else {
            self.fail(format!("h{h}: READ {req} answered twice or never sent"));
        };
        page
    }

    /// A READ is answered: the page is installed (read-only unless
    /// `writable`) and the waiting operations run on it.
    /// A prefetch's page, kept for host `h`'s kernel: a read copy of a
    /// read-replicated file, on its owner's disk.
    fn prefetched(&mut self, h: usize, page: PageId, value: u64, writable: bool) {
        let owner = self.owners[&page.file] as usize;
        let on_disk = self.hosts[owner].disk.get(&page).copied().unwrap_or(0);
        if writable || !self.modes.contains_key(&page.file) {
            self.fail(format!("h{h}: a prefetch of {page:?} came writable"));
        }
        if !self.unknown.contains(&page) && value != on_disk {
            self.fail(format!(
                "h{h}: a prefetched copy of {page:?} holds {value}, the owner's disk {on_disk}"
            ));
        }
        if self.hosts[h].kernel.cache.contains_key(&page) {
            self.fail(format!(
                "h{h}: a prefetch of {page:?}, which its kernel has"
            ));
        }
        // READs of the page on their way to the engine are answered from
        // it, without the core (had the core seen one, it would have taken
        // the prefetch over); the kernel takes the answer only for the one
        // it still waits on.
        let waiting = self.hosts[h].kernel.faults.remove(&page);
        let inbox = &mut self.hosts[h].inbox;
        let queued: Vec<u64> = inbox
            .iter()
            .filter_map(|i| match i {
                Input::Fault { req, page: p } if *p == page => Some(*req),
                _ => None,
            })
            .collect();
        inbox.retain(|i| !matches!(i, Input::Fault { page: p, .. } if *p == page));
        for req in &queued {
            self.abandoned.remove(req);
        }
        let ops = match waiting {
            Some((req, ops)) if queued.contains(&req) => ops,
            Some((req, _)) => self.fail(format!(
                "h{h}: a prefetch of {page:?} answered beside READ {req}"
            )),
            None if !queued.is_empty() => {
                self.log.push(format!(
                    "h{h}: the kernel refuses the kept copy of {page:?} for READs {queued:?}"
                ));
                return;
            }
            None if self.rng.below(2) == 0 => {
                // Kept until the kernel asks, or dropped unread.
                match self.hosts[h].core.grant_of(page) {
                    Some(grant) => {
                        self.hosts[h].kept.insert(page, (value, grant));
                    }
                    None => self.fail(format!(
                        "h{h}: a prefetch of {page:?} granted, but the core does not hold it"
                    )),
                }
                return;
            }
            None => Vec::new(),
        };
        self.install_kept(h, page, value, ops);
    }

    /// A copy fetched ahead answers host `h`'s READ of `page`: installed
    /// read-only, and the operations that waited for it run.
    fn install_kept(&mut self, h: usize, page: PageId, value: u64, ops: Vec<Op>) {
        let k = &mut self.hosts[h].kernel;
        k.cache.insert(page, (value, false));
        k.readonly.insert(page);
        self.prefetch_hits += 1;
        self.check_single_copy(page);
        for op in ops {
            self.touch(h, page, op);
        }
    }

    fn grant(&mut self, h: usize, req: u64, value: u64, dirty: bool, writable: bool) -> PageId {
        let page = self.fault_of(h, req);
        if !writable && !self.modes.contains_key(&page.file) {
            self.fail(format!(
                "h{h}: a read-only grant of READ {req} of a single file"
            ));
        }
        if !writable && !self.unknown.contains(&page) {
            // A read copy is always on its owner's stable storage.
            let owner = self.owners[&page.file] as usize;
            let on_disk = self.hosts[owner].disk.get(&page).copied().unwrap_or(0);
            if dirty || value != on_disk {
                self.fail(format!(
                    "h{h}: a read copy of {page:?} holds {value} (dirty: {dirty}), the owner's disk {on_disk}"
                ));
            }
        }
        let k = &mut self.hosts[h].kernel;
        let (_, ops) = k.faults.remove(&page).expect("found above");
        k.cache.insert(page, (value, dirty));
        if writable || dirty {
            k.readonly.remove(&page);
        } else {
            k.readonly.insert(page);
        }
        self.check_single_copy(page);
        for op in ops {
            self.touch(h, page, op);
        }
        page
    }

    /// An operation on a page host `h` has cached: a write to a read-only
    /// copy of an `mrsw` file waits for an UPGRADE (the engine answers one
    /// of a writable copy at once, as it does for every `single` file).
    fn touch(&mut self, h: usize, page: PageId, op: Op) {
        let k = &mut self.hosts[h].kernel;
        if matches!(op, Op::Write) && k.readonly.contains(&page) {
            if let Some((_, ops)) = k.upgrades.get_mut(&page) {
                ops.push(op);
                return;
            }
            if self.modes.contains_key(&page.file) && !self.hosts[h].core.writable(page) {
                let req = self.next_req;
                self.next_req += 1;
                let k = &mut self.hosts[h].kernel;
                k.upgrades.insert(page, (req, vec![op]));
                self.hosts[h].inbox.push_back(Input::Upgrade { req, page });
                return;
            }
            self.hosts[h].kernel.readonly.remove(&page);
        }
        self.run(h, page, op);
    }

    /// The manager answers UPGRADE `req` of host `h`.
    fn upgraded(&mut self, h: usize, req: u64, answer: UpgradeAnswer) {
        if self.abandoned.remove(&req).is_some() {
            // (The kernel gave up on it: the answer is refused.)
            self.log.push(format!(
                "h{h}: the kernel refuses the answer to UPGRADE {req}"
            ));
            return;
        }
        let k = &mut self.hosts[h].kernel;
        let Some(page) = k
            .upgrades
            .iter()
            .find(|(_, (r, _))| *r == req)
            .map(|(p, _)| *p)
        else {
            self.fail(format!("h{h}: UPGRADE {req} answered twice or never sent"));
        };
        let (_, ops) = k.upgrades.remove(&page).expect("found above");
        match answer {
            UpgradeAnswer::Granted { dirty } => {
                self.upgrades += 1;
                k.readonly.remove(&page);
                if let Some(e) = k.cache.get_mut(&page) {
                    e.1 |= dirty;
                }
                self.check_single_copy(page);
                for op in ops {
                    self.run(h, page, op);
                }
            }
            UpgradeAnswer::Refault => {
                // The kernel drops its copy (clean: read-only) and the
                // writes fault the page in again.
                self.stale += 1;
                k.readonly.remove(&page);
                if let Some((_, true)) = k.cache.remove(&page) {
                    self.fail(format!("h{h}: a refault dropped dirty {page:?}"));
                }
                let req = self.next_req;
                self.next_req += 1;
                let k = &mut self.hosts[h].kernel;
                k.faults.insert(page, (req, ops));
                self.hosts[h].inbox.push_back(Input::Fault { req, page });
            }
            UpgradeAnswer::Failed(e) => {
                if !(e == HOST_DOWN && self.owner_died(page))
                    && !(e == SHUTTING_DOWN && (self.hosts[h].leaving || self.owner_leaves(page)))
                    && !(e == PAST_END && self.gated.contains(&page))
                {
                    self.fail(format!("h{h}: UPGRADE {req} of {page:?} failed with {e}"));
                }
                self.log
                    .push(format!("h{h}: UPGRADE {req} of {page:?} fails"));
            }
        }
    }

    /// Runs an operation on a page host `h` holds.
    fn run(&mut self, h: usize, page: PageId, op: Op) {
        let last = self.last[&page];
        let entry = self.hosts[h]
            .kernel
            .cache
            .get_mut(&page)
            .expect("run on a cached page");
        match op {
            Op::Read if self.unknown.contains(&page) => {
                // Lost: it holds an older value (the owner's disk's), but
                // not older than data that never reached the dead host.
                let got = entry.0;
                if got > last {
                    self.fail(format!(
                        "h{h} read {got} from lost {page:?}, newer than its last write {last}"
                    ));
                }
                let synced = self.synced.get(&page).copied().unwrap_or(0);
                if got < synced {
                    self.fail(format!(
                        "h{h} read {got} from lost {page:?}, but a WRITE of {synced} was acknowledged as on the owner's disk"
                    ));
                }
                if got != 0 && self.cut.get(&page).is_some_and(|&c| got < c) {
                    self.fail(format!(
                        "h{h} read {got} from lost {page:?}, written before a shrink cut the page"
                    ));
                }
                let floor = self.floor.get(&page).map_or(0, |f| f.0);
                if got < floor {
                    self.fail(format!(
                        "h{h} read {got} from lost {page:?}, but {floor} never reached the dead host and was not brought home"
                    ));
                }
                self.unknown.remove(&page);
                self.floor.remove(&page);
                self.last.insert(page, got);
                self.log
                    .push(format!("h{h} reads {got} from lost {page:?}"));
            }
            Op::Read => {
                if entry.0 != last {
                    let got = entry.0;
                    self.fail(format!(
                        "h{h} read {got} from {page:?}, but the last value written is {last}"
                    ));
                }
            }
            Op::Write => {
                let v = self.next_value;
                self.next_value += 1;
                *entry = (v, true);
                self.last.insert(page, v);
                self.unknown.remove(&page);
                self.floor.remove(&page);
                self.log.push(format!("h{h} writes {v} to {page:?}"));
            }
        }
    }

    /// One writable copy of the page, or read-only ones only.
    fn check_single_copy(&self, page: PageId) {
        let holders: Vec<_> = (0..self.hosts.len())
            .filter(|&h| self.hosts[h].kernel.cache.contains_key(&page))
            .collect();
        let writers = holders
            .iter()
            .filter(|&&h| !self.hosts[h].kernel.readonly.contains(&page))
            .count();
        if holders.len() > 1 && (writers > 0 || !self.modes.contains_key(&page.file)) {
            self.fail(format!(
                "{page:?} is held by hosts {holders:?} at once, {writers} of them writable"
            ));
        }
    }

    /// Host `h`'s engine fetches a page ahead of its kernel (what
    /// `prefetch.rs` does on a scan): one its kernel lacks and no READ
    /// waits for.
    fn prefetch(&mut self, h: usize) {
        let page = self.pages[self.rng.below(self.pages.len())];
        let k = &self.hosts[h].kernel;
        if k.cache.contains_key(&page)
            || k.faults.contains_key(&page)
            || self.hosts[h].prefetching.values().any(|&p| p == page)
        {
            return;
        }
        let req = self.next_req;
        self.next_req += 1;
        self.prefetches += 1;
        self.hosts[h].prefetching.insert(req, page);
        // (At once: the engine runs it on the core as it handles the READ
        // that set it off.)
        self.input(h, Input::Prefetch { req, page });
    }

    /// An application on host `h` touches a page.
    fn app(&mut self, h: usize, op: Op) {
        let page = self.pages[self.rng.below(self.pages.len())];
        let k = &mut self.hosts[h].kernel;
        if k.cache.contains_key(&page) {
            self.touch(h, page, op);
        } else if let Some((_, ops)) = k.faults.get_mut(&page) {
            // Another thread faults on the same page: it waits for the
            // same READ (the folio lock).
            ops.push(op);
        } else {
            let req = self.next_req;
            self.next_req += 1;
            k.faults.insert(page, (req, vec![op]));
            self.hosts[h].inbox.push_back(Input::Fault { req, page });
        }
    }

    /// The kernel of host `h` evicts a clean page or writes a dirty one
    /// back.
    fn kernel_event(&mut self, h: usize, flush: bool) {
        let k = &mut self.hosts[h].kernel;
        let candidates: Vec<_> = k
            .cache
            .iter()
            .filter(|(p, _)| !k.writeback.contains_key(p) && !k.upgrades.contains_key(p))
            .map(|(p, e)| (*p, *e))
            .collect();
        // (A page under writeback is neither evicted nor written again;
        // one locked for an UPGRADE is neither.)
        if candidates.is_empty() {
            return;
        }
        let (page, (value, dirty)) = candidates[self.rng.below(candidates.len())];
        let k = &mut self.hosts[h].kernel;
        if dirty {
            let req = self.next_req;
            self.next_req += 1;
            k.cache.insert(page, (value, false));
            k.writeback.insert(page, req);
            self.writes.insert(req, (page, value));
            self.hosts[h].inbox.push_back(Input::Writeback {
                req,
                page,
                data: encode(value),
            });
        } else if !flush {
            // A silent eviction of a clean page.
            k.cache.remove(&page);
            k.readonly.remove(&page);
            self.log.push(format!("h{h} evicts {page:?}"));
        }
    }

    /// One random step (and, with read replication, the check that each
    /// page has one writable copy or read-only ones only, after it).
    fn step(&mut self, apps: bool, flush: bool) -> bool {
        let went = self.one_step(apps, flush);
        if self.shrinks {
            self.complete_shrinks();
        }
        if !self.modes.is_empty() {
            for i in 0..self.pages.len() {
                self.check_single_copy(self.pages[i]);
            }
        }
        went
    }

    /// One random step. Returns false when nothing at all can happen.
    fn one_step(&mut self, apps: bool, flush: bool) -> bool {
        let links: Vec<_> = self
            .net
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let busy_hosts: Vec<_> = (0..self.hosts.len())
            .filter(|&h| !self.hosts[h].inbox.is_empty())
            .collect();
        let dirty_hosts: Vec<_> = (0..self.hosts.len())
            .filter(|&h| {
                let k = &self.hosts[h].kernel;
                k.cache
                    .iter()
                    .any(|(p, e)| e.1 && !k.writeback.contains_key(p))
            })
            .collect();
        let reconnectable: Vec<_> = self
            .down
            .iter()
            .copied()
            .filter(|&(a, b)| {
                !self
                    .undeclared
                    .iter()
                    .any(|&(o, d, _)| (o, d) == (a, b) || (o, d) == (b, a))
            })
            .collect();
        // (A running incarnation is taken for dead only once it has fenced
        // itself off the observer's pages.)
        let undeclared: Vec<_> = self
            .undeclared
            .iter()
            .copied()
            .filter(|&(o, d, inc)| {
                !self.taken_alive(d, inc)
                    || (self.down.contains(&pair(o, d)) && self.fenced_off(d, o))
            })
            // (In schedules where hosts only leave: one that left is heard
            // until the last message it sent has arrived.)
            .filter(|&(o, d, inc)| {
                !self.leaves_only
                    || !self.has_left.contains(&(d, inc))
                    || self.net.get(&(d, o)).is_none_or(VecDeque::is_empty)
            })
            .collect();
        // Hosts whose engine timer has something to do: invalidations the
        // kernel kept busy, data to send again.
        let timers: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| {
                !self.hosts[h].kernel.deferred.is_empty()
                    || self.hosts[h].core.retrying()
                    || !self.hosts[h].kept.is_empty()
                    || self.recalls_left(h)
            })
            .collect();
        let mut choices =
            links.len() + busy_hosts.len() + reconnectable.len() + undeclared.len() + timers.len();
        if apps {
            choices += 2 * self.hosts.len();
            if self.flaky {
                choices += 3;
            }
            if self.crashing() {
                choices += 1;
            }
            if self.timeouts {
                choices += 1;
            }
            if self.shrinks {
                choices += 1;
            }
            if self.evictions {
                choices += 1;
            }
            if !self.modes.is_empty() {
                choices += 1;
            }
        }
        if flush {
            choices += dirty_hosts.len();
        }
        if choices == 0 {
            return false;
        }
        let mut c = self.rng.below(choices);
        if c < links.len() {
            let (from, to) = links[c];
            let frame = self
                .net
                .get_mut(&(from, to))
                .and_then(|q| q.pop_front())
                .expect("non-empty link");
            let got = self.hosts[to as usize]
                .sessions
                .get_mut(&from)
                .expect("a session per peer")
                .receive(frame);
            match got {
                Ok(Some(msg)) => {
                    if let Msg::Holding { last, pages } = &msg {
                        if *last {
                            self.unreported.remove(&(from, to));
                        }
                        self.reported += pages.len() as u32;
                    }
                    match msg {
                        Msg::Orphan { .. } => self.orphans += 1,
                        Msg::Revoke { .. } => self.revokes += 1,
                        Msg::Share { .. } => self.shares += 1,
                        Msg::WhereIs {
                            access: Access::Write,
                            ..
                        } => self.write_faults += 1,
                        _ => {}
                    }
                    self.input(to as usize, Input::Message { from, msg })
                }
                Ok(None) => {}
                Err(e) => self.fail(format!("h{to}: session from h{from}: {e:?}")),
            }
            return true;
        }
        c -= links.len();
        if c < busy_hosts.len() {
            let h = busy_hosts[c];
            let input = self.hosts[h].inbox.pop_front().expect("non-empty inbox");
            self.input(h, input);
            return true;
        }
        c -= busy_hosts.len();
        if c < reconnectable.len() {
            self.reconnect(reconnectable[c]);
            return true;
        }
        c -= reconnectable.len();
        if c < undeclared.len() {
            let (o, d, inc) = undeclared[c];
            // A host that stays silent is taken for dead only after the
            // lease on its pages has run out: half of the time, the
            // observer fences itself off them first (the other half, the
            // new incarnation connected before that).
            if !self.taken_alive(d, inc)
                && self.down.contains(&pair(o, d))
                && !self.fenced.contains(&(o, d))
                && self.rng.below(2) == 0
            {
                self.fence_pair(o, d);
                return true;
            }
            // An observer whose lease ran out is mostly done fencing before
            // its failure detector fires (5 s later); now and then its
            // kernel is still busy with the pages then.
            if !self.taken_alive(d, inc)
                && self.fenced.contains(&(o, d))
                && !self.fenced_off(o, d)
                && self.rng.below(4) != 0
            {
                return true;
            }
            if self.taken_alive(d, inc) {
                self.declare_alive(o, d, inc);
            } else {
                self.declare(o, d, inc);
            }
            return true;
        }
        c -= undeclared.len();
        if c < timers.len() {
            let h = timers[c];
            let inc = self.hosts[h].incarnation;
            self.recall_again(h);
            if self.hosts[h].incarnation != inc {
                return true;
            }
            self.retry_busy(h);
            if self.hosts[h].core.retrying() {
                self.input(h, Input::Retry);
            }
            // A copy kept for the kernel too long is dropped unread, and
            // given back (`Prefetch::expire`), at once.
            let kept: Vec<PageId> = self.hosts[h].kept.keys().copied().collect();
            if !kept.is_empty() {
                let page = kept[self.rng.below(kept.len())];
                let (_, grant) = self.hosts[h].kept.remove(&page).expect("kept");
                // (The engine keeps a copy only while the kernel lacks the
                // page: giving back one the kernel holds would leave a
                // stale copy beside a writer's.)
                if self.hosts[h].kernel.cache.contains_key(&page) {
                    self.fail(format!(
                        "h{h}: a kept copy of {page:?} dropped unread, but the kernel has the page"
                    ));
                }
                let inc = self.hosts[h].incarnation;
                self.input(h, Input::Unused { page, grant });
                if self.hosts[h].incarnation == inc && self.hosts[h].core.grant_of(page).is_none() {
                    self.unread += 1;
                }
            }
            return true;
        }
        c -= timers.len();
        if apps && self.flaky {
            if c == 0 {
                self.drop_connection();
                return true;
            }
            c -= 1;
            if c == 0 {
                if self.leaves_only {
                    self.drop_connection();
                } else {
                    self.fence();
                }
                return true;
            }
            c -= 1;
            if c == 0 {
                if self.leaves_only {
                    self.drop_connection();
                } else {
                    self.take_alive();
                }
                return true;
            }
            c -= 1;
        }
        if apps && self.crashing() {
            if c == 0 {
                self.crash();
                return true;
            }
            c -= 1;
        }
        if apps && self.timeouts {
            if c == 0 {
                let h = self.rng.below(self.hosts.len());
                self.give_up(h);
                return true;
            }
            c -= 1;
        }
        if apps && self.shrinks {
            if c == 0 {
                self.shrink();
                return true;
            }
            c -= 1;
        }
        if apps && self.evictions {
            if c == 0 {
                let h = self.rng.below(self.hosts.len());
                let page = self.pages[self.rng.below(self.pages.len())];
                let downgrade = self.rng.below(2) == 0;
                self.hosts[h]
                    .inbox
                    .push_back(Input::Evict { page, downgrade });
                return true;
            }
            c -= 1;
        }
        if apps && !self.modes.is_empty() {
            // (Only with read replication: prefetch fetches read copies.)
            if c == 0 {
                let h = self.rng.below(self.hosts.len());
                self.prefetch(h);
                return true;
            }
            c -= 1;
        }
        if apps {
            if c < self.hosts.len() {
                let op = if self.rng.below(3) == 0 {
                    Op::Write
                } else {
                    Op::Read
                };
                self.app(c, op);
                return true;
            }
            c -= self.hosts.len();
            if c < self.hosts.len() {
                self.kernel_event(c, false);
                return true;
            }
            c -= self.hosts.len();
        }
        if flush && c < dirty_hosts.len() {
            self.kernel_event(dirty_hosts[c], true);
        }
        true
    }

    /// Whether host `h` owns a shrinking file whose pages are not all home
    /// yet: its engine's timer recalls them again.
    fn recalls_left(&self, h: usize) -> bool {
        self.shrinking.iter().any(|(f, &first)| {
            self.owners[f] as usize == h && !self.hosts[h].core.recalled(*f, first)
        })
    }

    /// Host `h`'s engine recalls the pages of its shrinking files again
    /// (those moving, or faulted by its own kernel, when it last tried).
    fn recall_again(&mut self, h: usize) {
        let files: Vec<(u64, u64)> = self
            .shrinking
            .iter()
            .filter(|(f, _)| self.owners[f] as usize == h)
            .map(|(&f, &first)| (f, first))
            .collect();
        let inc = self.hosts[h].incarnation;
        for (file, first) in files {
            if self.hosts[h].incarnation != inc {
                return;
            }
            if !self.hosts[h].core.recalled(file, first) {
                self.input(h, Input::Recall { file, first });
            }
        }
    }

    /// An owner starts shrinking one of its files (SETSIZE to a smaller
    /// size, at the owner): the file's limit first, then the recall of
    /// every page past the new end.
    fn shrink(&mut self) {
        let file = self.pages[self.rng.below(self.pages.len())].file;
        let o = self.owners[&file] as usize;
        if self.shrinking.contains_key(&file) && self.rng.below(3) == 0 {
            // Given up (it took too long): the limit goes, and the
            // recalls under way end as transactions for nobody.
            self.shrinking.remove(&file);
            self.shrinks_abandoned += 1;
            self.log
                .push(format!("h{o} gives up shrinking file {file}"));
            self.hosts[o].core.set_limit(file, None);
            return;
        }
        if self.shrinking.contains_key(&file) || self.hosts[o].leaving {
            return;
        }
        let per_file = self.pages.iter().filter(|p| p.file == file).count();
        let first = self.rng.below(per_file) as u64;
        self.shrinks_started += 1;
        self.shrinking.insert(file, first);
        let past: Vec<PageId> = self
            .pages
            .iter()
            .copied()
            .filter(|p| p.file == file && p.index >= first)
            .collect();
        self.gated.extend(past);
        self.log
            .push(format!("h{o} shrinks file {file} to {first} pages"));
        self.hosts[o].core.set_limit(file, Some(first));
        self.input(o, Input::Recall { file, first });
    }

    /// Shrinks whose pages are all home, as their owner's core says: no
    /// kernel may hold any of them (the invariant of a shrink). The owner
    /// cuts them on its disk; then the file grows back to its old size,
    /// its pages past the cut zero, and the limit goes.
    fn complete_shrinks(&mut self) {
        let done: Vec<(u64, u64)> = self
            .shrinking
            .iter()
            .filter(|&(f, &first)| self.hosts[self.owners[f] as usize].core.recalled(*f, first))
            .map(|(&f, &first)| (f, first))
            .collect();
        for (file, first) in done {
            let past = |p: &PageId| p.file == file && p.index >= first;
            for (h, host) in self.hosts.iter().enumerate() {
                if let Some(p) = host.kernel.cache.keys().find(|p| past(p)) {
                    self.fail(format!(
                        "the shrink of file {file} to {first} pages is done, but h{h}'s kernel still holds {p:?}"
                    ));
                }
            }
            let o = self.owners[&file] as usize;
            let pages: Vec<PageId> = self.pages.iter().copied().filter(past).collect();
            for page in pages {
                self.hosts[o].disk.remove(&page);
                self.last.insert(page, 0);
                self.synced.remove(&page);
                self.unknown.remove(&page);
                self.floor.remove(&page);
                self.cut.insert(page, self.next_value);
            }
            self.hosts[o].core.set_limit(file, None);
            self.shrinking.remove(&file);
            self.shrinks_done += 1;
            self.log.push(format!(
                "h{o}: file {file} cut at {first} pages, and grown back"
            ));
        }
    }

    /// Whether host `x` has fenced itself off `o`'s pages and is done with
    /// it (the fence handled, the invalidations it caused answered): what
    /// `o`'s waiting for the lease plus a margin stands for.
    fn fenced_off(&self, x: HostId, o: HostId) -> bool {
        let host = &self.hosts[x as usize];
        self.fenced.contains(&(x, o))
            && !host
                .inbox
                .iter()
                .any(|i| matches!(i, Input::Fence { owner } if *owner == o))
            && !host
                .kernel
                .deferred
                .iter()
                .any(|(p, _)| self.owners[&p.file] == o)
    }

    /// Whether `inc` of `x` was taken for dead and still runs.
    fn taken_alive(&self, x: HostId, inc: u64) -> bool {
        self.hosts[x as usize].incarnation == inc && self.taken.contains(&(x, inc))
    }

    /// An owner takes a host it has been cut off from for longer than the
    /// host's lease for dead, though it runs (the owner cannot tell): the
    /// host must have fenced itself off the owner's pages by then. Every
    /// other host takes it for dead when the owner's `Recover` comes, each
    /// only once the host has fenced itself off its pages too (it closes
    /// the connection, then waits out the lease). The host goes on
    /// meanwhile, with the pages of those that have not, and restarts when
    /// a peer refuses it.
    fn take_alive(&mut self) {
        let owners: BTreeSet<HostId> = self.owners.values().copied().collect();
        let n = self.hosts.len() as HostId;
        let candidates: Vec<(HostId, HostId)> = (0..n)
            .flat_map(|o| (0..n).map(move |x| (o, x)))
            .filter(|&(o, x)| {
                o != x
                    && owners.contains(&o)
                    && !owners.contains(&x)
                    && !self.hosts[x as usize].leaving
                    && self.down.contains(&pair(o, x))
                    && self.known.get(&(o, x)) == Some(&self.hosts[x as usize].incarnation)
                    && !self
                        .taken
                        .contains(&(x, self.hosts[x as usize].incarnation))
                    && self.fenced_off(x, o)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (o, x) = candidates[self.rng.below(candidates.len())];
        let inc = self.hosts[x as usize].incarnation;
        self.taken.insert((x, inc));
        self.taken_alive += 1;
        self.log.push(format!(
            "h{o} takes h{x} (incarnation {inc}) for dead, though it runs"
        ));
        // If it has not told this owner's incarnation what it holds of its
        // pages yet (the owner restarted meanwhile), the owner cannot know
        // what it had: those pages are lost without the owner's report
        // (the host reports what it kept when it learns of its death).
        if self.unreported.contains(&(x, o)) {
            let host = &self.hosts[x as usize];
            // (In its kernel, kept for the owner, or on its way there.)
            let sending: Vec<PageId> = host.sessions[&o]
                .resend()
                .into_iter()
                .filter_map(|f| match f.msg {
                    Some(Msg::Put { page, .. } | Msg::Orphan { page, .. }) => Some(page),
                    _ => None,
                })
                .collect();
            let untold: Vec<PageId> = host
                .kernel
                .cache
                .keys()
                .copied()
                .filter(|p| !self.read_copy(x as usize, *p))
                .chain(host.core.orphans())
                .chain(sending)
                .filter(|p| self.owners[&p.file] == o)
                .collect();
            for p in untold {
                self.log.push(format!(
                    "{p:?} lost with h{x}, taken for dead before it told its owner"
                ));
                self.unknown.insert(p);
                self.floor.remove(&p);
            }
        }
        // Data it was bringing home to this owner (a page it had sent to a
        // host that died) goes with it, as with a crash, unless the owner's
        // disk has it.
        let hosts = &self.hosts;
        let owners = &self.owners;
        self.floor.retain(|page, &mut (v, from)| {
            let owner = owners[&page.file];
            from != x || owner != o || hosts[o as usize].disk.get(page).copied().unwrap_or(0) >= v
        });
        // Every host that knows that incarnation takes it for dead in time.
        for z in 0..n {
            if z != x && self.known.get(&(z, x)) == Some(&inc) {
                self.undeclared.insert((z, x, inc));
            }
        }
        self.declare_alive(o, x, inc);
    }

    /// Host `o` takes running incarnation `inc` of `x` for dead: what `x`
    /// received of it so far is what it gets (their link is down).
    fn declare_alive(&mut self, o: HostId, x: HostId, inc: u64) {
        let got = self.hosts[x as usize].sessions[&o].received();
        self.received_at_crash.insert((o, x, inc), got);
        self.declare(o, x, inc);
        // (It learns of the next incarnation when they reconnect.)
        self.known.remove(&(o, x));
    }

    /// A host cut off from an owner longer than its lease fences itself:
    /// the owner's pages leave its kernel until the connection is back.
    fn fence(&mut self) {
        let down: Vec<(HostId, HostId)> = self
            .down
            .iter()
            .flat_map(|&(a, b)| [(a, b), (b, a)])
            .filter(|p| !self.fenced.contains(p))
            .collect();
        if down.is_empty() {
            return;
        }
        let (h, owner) = down[self.rng.below(down.len())];
        self.fence_pair(h, owner);
    }

    /// Host `h`'s lease on `owner`'s pages runs out.
    fn fence_pair(&mut self, h: HostId, owner: HostId) {
        self.fenced.insert((h, owner));
        self.fences += 1;
        self.log
            .push(format!("h{h}'s lease on h{owner}'s pages runs out"));
        self.hosts[h as usize]
            .inbox
            .push_back(Input::Fence { owner });
    }

    /// A connection drops: whatever was in flight both ways is lost.
    fn drop_connection(&mut self) {
        let n = self.hosts.len();
        let a = self.rng.below(n) as HostId;
        let b = (a as usize + 1 + self.rng.below(n - 1)) as HostId % n as HostId;
        let p = pair(a, b);
        // (Where hosts only leave, a leaving one's connections hold: it
        // waits for its peers to acknowledge what it said last.)
        if self.leaves_only && (self.hosts[a as usize].leaving || self.hosts[b as usize].leaving) {
            return;
        }
        if !self.down.insert(p) {
            return;
        }
        self.drops += 1;
        let lost = self.net.remove(&(a, b)).map_or(0, |q| q.len())
            + self.net.remove(&(b, a)).map_or(0, |q| q.len());
        self.log
            .push(format!("connection h{a}-h{b} drops, {lost} frames lost"));
    }

    /// A host that owns no file crashes: its manager, kernel and page
    /// cache are gone, and so is everything in flight to and from it. It
    /// restarts at once as a new incarnation; the others take the old one
    /// for dead each in its own time.
    fn crash(&mut self) {
        if self.crashed >= 3 {
            return;
        }
        let owners: BTreeSet<usize> = self.owners.values().map(|&o| o as usize).collect();
        let candidates: Vec<usize> = (0..self.hosts.len())
            .filter(|h| self.owner_crashes || !owners.contains(h))
            .collect();
        if candidates.is_empty() {
            return;
        }
        // Half of the time, one a page is on its way to, if any: the case
        // where a survivor must bring the page back.
        let receiving: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&h| {
                self.net.iter().any(|(&(_, to), q)| {
                    to as usize == h && q.iter().any(|f| matches!(f.msg, Some(Msg::Data { .. })))
                })
            })
            .collect();
        // Or an owner whose pages other hosts hold (its next incarnation
        // must learn where they are).
        let lending: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&h| {
                self.hosts.iter().enumerate().any(|(i, o)| {
                    i != h
                        && o.kernel
                            .cache
                            .keys()
                            .any(|p| self.owners[&p.file] as usize == h)
                })
            })
            .collect();
        let h = if !receiving.is_empty() && self.rng.below(2) == 0 {
            receiving[self.rng.below(receiving.len())]
        } else if !lending.is_empty() && self.rng.below(2) == 0 {
            lending[self.rng.below(lending.len())]
        } else {
            candidates[self.rng.below(candidates.len())]
        };
        // A third of the time it leaves on purpose instead: it hands its
        // pages back and goes once its core says it has left.
        if self.leaves_only || self.rng.below(3) == 0 {
            // (Where hosts only leave, one starts with every connection up,
            // which holds until it has left.)
            let cut_off = (0..self.hosts.len() as HostId)
                .any(|o| o != h as HostId && self.down.contains(&pair(h as HostId, o)));
            if self.leaves_only && cut_off {
                return;
            }
            if !self.hosts[h].leaving {
                self.hosts[h].leaving = true;
                self.log.push(format!("h{h} starts to leave"));
                self.hosts[h].inbox.push_back(Input::Leave);
            }
            return;
        }
        self.crash_host(h, false);
    }

    /// Host `h` is gone (a crash; or, with `left`, the end of a leave: what
    /// it sent before is still delivered) and restarts at once as a new
    /// incarnation.
    fn crash_host(&mut self, h: usize, left: bool) {
        let x = h as HostId;
        let n = self.hosts.len();
        self.crashed += 1;
        // Its shrinks end with it (their SETSIZEs fail): nothing was cut.
        let before = self.shrinking.len();
        self.shrinking.retain(|f, _| self.owners[f] != x);
        self.shrinks_abandoned += (before - self.shrinking.len()) as u32;
        let old = self.hosts[h].incarnation;
        if left {
            self.has_left.insert((x, old));
        }
        self.log.push(format!(
            "h{h} {} (incarnation {old} ends)",
            if left { "has left" } else { "crashes" }
        ));
        for req in self.hosts[h].kernel.writeback.values() {
            self.writes.remove(req);
        }
        // (What it had received of each peer: counted below for the peers
        // that have yet to take this incarnation for dead.)
        let received: Vec<(HostId, u64)> = self.hosts[h]
            .sessions
            .iter()
            .map(|(&o, s)| (o, s.received()))
            .collect();
        // An owner's crash is a crash of its file system: what no survivor
        // holds may be older on its disk than last written (its own
        // kernel's dirty pages, pages on their way to or from it).
        if !left && self.owners.values().any(|&o| o == x) {
            self.owners_crashed += 1;
            let survivors_hold = |p: &PageId| {
                self.hosts
                    .iter()
                    .enumerate()
                    .any(|(i, o)| i != h && o.kernel.cache.contains_key(p))
            };
            let gone: Vec<PageId> = self
                .pages
                .iter()
                .copied()
                .filter(|p| self.owners[&p.file] == x && !survivors_hold(p))
                .collect();
            for p in gone {
                self.unknown.insert(p);
                self.floor.remove(&p);
            }
        }
        // (Crashed or left, its next incarnation knows nothing yet.)
        if self.owners.values().any(|&o| o == x) {
            for o in 0..n as HostId {
                if o != x {
                    self.unreported.insert((o, x));
                }
            }
        }
        // (What it holds: in its kernel, or taken from it and not handled
        // by its manager yet.)
        let taken = self.hosts[h].inbox.iter().filter_map(|i| match i {
            Input::Invalidated {
                page,
                contents: Some(_),
            } => Some(*page),
            _ => None,
        });
        // (Or on its way from it, unacknowledged.)
        let sending: Vec<PageId> = self.hosts[h]
            .sessions
            .values()
            .flat_map(|s| s.resend())
            .filter_map(|f| match f.msg {
                Some(Msg::Put { page, .. } | Msg::Data { page, .. } | Msg::Orphan { page, .. }) => {
                    Some(page)
                }
                _ => None,
            })
            .collect();
        // (Or kept for an owner's next incarnation.)
        let orphans = self.hosts[h].core.orphans();
        let held: Vec<PageId> = self.hosts[h]
            .kernel
            .cache
            .keys()
            .copied()
            .filter(|p| !self.read_copy(h, *p))
            .chain(taken)
            .chain(sending)
            .chain(orphans)
            .collect();
        self.held_at_crash.insert((x, old), held.clone());
        let mut untold: Vec<PageId> = held
            .into_iter()
            .filter(|p| self.unreported.contains(&(x, self.owners[&p.file])))
            .collect();
        // An owner gone before it took a crashed holder for dead never
        // reported what that holder had of its pages: nobody will.
        for &(o, d, inc) in &self.undeclared {
            if o == x {
                let had = self.held_at_crash.get(&(d, inc)).into_iter().flatten();
                untold.extend(had.filter(|p| self.owners[&p.file] == x));
            }
        }
        for p in untold {
            self.log.push(format!(
                "{p:?} lost with h{h}, which had not told its owner"
            ));
            self.unknown.insert(p);
            self.floor.remove(&p);
        }
        self.unreported.retain(|&(holder, _)| holder != x);
        self.fenced.retain(|&(holder, _)| holder != x);
        // Data only it had is gone with it, unless its owner's disk has it.
        let hosts = &self.hosts;
        let owners = &self.owners;
        self.floor.retain(|page, &mut (v, from)| {
            let owner = owners[&page.file] as usize;
            from != x || hosts[owner].disk.get(page).copied().unwrap_or(0) >= v
        });
        let owners_map = self.owners.clone();
        let modes = self.modes.clone();
        let host = &mut self.hosts[h];
        host.incarnation += 1;
        host.core = new_core(x, host.incarnation, n, &owners_map, &modes);
        // (Its disk says which incarnation ran before.)
        host.core.set_previous(old);
        host.kernel = Kernel::default();
        host.inbox.clear();
        host.prefetching.clear();
        host.kept.clear();
        host.disk_pending.clear();
        for s in host.sessions.values_mut() {
            *s = Session::new();
        }
        // The new incarnation knows nobody yet, and has no death to take.
        self.known.retain(|&(o, _), _| o != x);
        self.undeclared.retain(|&(o, _, _)| o != x);
        self.received_at_crash.retain(|&(o, _, _), _| o != x);
        self.hosts[h].leaving = false;
        for o in 0..n as HostId {
            if o == x {
                continue;
            }
            if !left {
                self.net.remove(&(x, o));
            }
            self.net.remove(&(o, x));
            self.down.insert(pair(x, o));
            // Unless it has not even noticed the incarnation before.
            if self.known.get(&(o, x)) == Some(&old) {
                self.undeclared.insert((o, x, old));
            }
        }
        // (A peer that took this incarnation for dead already, while it
        // ran, has dealt with what it sent it.)
        for (o, got) in received {
            if self.undeclared.contains(&(o, x, old)) {
                self.received_at_crash.insert((o, x, old), got);
            }
        }
    }

    /// Host `o` takes incarnation `inc` of `dead` for dead: its session
    /// with it goes, handing back what `dead` never acknowledged.
    fn declare(&mut self, o: HostId, dead: HostId, inc: u64) {
        if !self.undeclared.remove(&(o, dead, inc)) {
            return;
        }
        let session = self.hosts[o as usize]
            .sessions
            .get_mut(&dead)
            .expect("a session per peer");
        let got = self.received_at_crash.remove(&(o, dead, inc)).unwrap_or(0);
        let unreceived: Vec<(PageId, u64, u64)> = session
            .resend()
            .into_iter()
            .filter(|f| f.seq > got)
            .filter_map(|f| match f.msg {
                Some(Msg::Data {
                    page,
                    data,
                    dirty: true,
                    owner,
                    ..
                }) => Some((page, decode(&data), owner)),
                _ => None,
            })
            .collect();
        let (undelivered, unsent) = session.abandon();
        // (Its sender brings it home, unless home is what died: the owner,
        // or the incarnation of it that moved the page.)
        let hosts = &self.hosts;
        let owners = &self.owners;
        let unreceived: Vec<(PageId, u64)> = unreceived
            .into_iter()
            .filter(|(page, _, owner)| {
                let o = owners[&page.file];
                o != dead && hosts[o as usize].incarnation == *owner
            })
            .map(|(page, v, _)| (page, v))
            .collect();
        // What it sent and this host has not received yet goes with its
        // connection.
        self.net.remove(&(dead, o));
        for (page, v) in unreceived {
            let f = self.floor.entry(page).or_insert((v, o));
            if v >= f.0 {
                *f = (v, o);
            }
        }
        self.log.push(format!(
            "h{o} takes h{dead}'s incarnation {inc} for dead ({} unacknowledged, {} of them never sent)",
            undelivered.len() + unsent.len(),
            unsent.len()
        ));
        self.returned += undelivered
            .iter()
            .chain(&unsent)
            .filter(|m| matches!(m, Msg::Data { .. }))
            .count() as u32;
        self.input(
            o as usize,
            Input::PeerDied {
                host: dead,
                incarnation: inc,
                undelivered,
                unsent,
            },
        );
    }

    /// The pair reconnects: each side learns the other's incarnation if it
    /// is new, then sends first what the other has not acknowledged.
    fn reconnect(&mut self, p: (HostId, HostId)) {
        // A side taken for dead by the other is refused, and restarts (its
        // manager; the sim's restart is a crash: the kernel's pages go too).
        for (a, b) in [(p.0, p.1), (p.1, p.0)] {
            let inc = self.hosts[b as usize].incarnation;
            if self.taken_alive(b, inc) && !self.undeclared.contains(&(a, b, inc)) {
                self.log
                    .push(format!("h{a} refuses h{b}, taken for dead: h{b} restarts"));
                self.crash_host(b as usize, false);
                return;
            }
        }
        self.log.push(format!("connection h{}-h{} back", p.0, p.1));
        for (a, b) in [(p.0, p.1), (p.1, p.0)] {
            let inc = self.hosts[b as usize].incarnation;
            if self.known.insert((a, b), inc) != Some(inc) {
                self.input(
                    a as usize,
                    Input::PeerJoined {
                        host: b,
                        incarnation: inc,
                    },
                );
            }
        }
        // What the handshake caused goes out after what came before it,
        // as in the engine (which sends nothing until the handshake is
        // over).
        self.down.remove(&p);
        for (from, to) in [(p.0, p.1), (p.1, p.0)] {
            let session = self.hosts[from as usize]
                .sessions
                .get_mut(&to)
                .expect("a session per peer");
            let frames = session.resend();
            session.handed();
            self.net.entry((from, to)).or_default().extend(frames);
        }
        // The first heartbeat renews the lease.
        for (h, owner) in [(p.0, p.1), (p.1, p.0)] {
            if self.fenced.remove(&(h, owner)) {
                self.hosts[h as usize]
                    .inbox
                    .push_back(Input::Unfence { owner });
            }
        }
    }

    fn run_schedule(&mut self, steps: usize) {
        self.join_all();
        for i in 0..steps {
            self.step_no = i;
            self.step(true, false);
        }
        // Quiesce: no new work, everything in flight completes, every
        // dirty page is written back.
        let mut n = 0;
        while self.step(false, true) {
            n += 1;
            if n > 1_000_000 {
                self.fail("the cluster never became quiet".into());
            }
        }
        for (h, host) in self.hosts.iter().enumerate() {
            let k = &host.kernel;
            if !k.faults.is_empty()
                || !k.writeback.is_empty()
                || !k.deferred.is_empty()
                || !k.upgrades.is_empty()
            {
                self.fail(format!(
                    "h{h}: requests never completed: faults {:?} writeback {:?} deferred {:?} upgrades {:?}\n{}",
                    k.faults,
                    k.writeback,
                    k.deferred,
                    k.upgrades,
                    self.cores()
                ));
            }
            // (Read copies nobody happened to read since are not stale
            // either.)
            if !self.modes.is_empty()
                && let Some((p, e)) = k
                    .cache
                    .iter()
                    .find(|(p, e)| !self.unknown.contains(p) && e.0 != self.last[p])
            {
                self.fail(format!(
                    "h{h}: its copy of {p:?} holds {}, the last write was {}",
                    e.0, self.last[p]
                ));
            }
            if host.core.recovering() != 0 {
                self.fail(format!("h{h}: a recovery never completed: {:?}", host.core));
            }
            if host.core.outstanding() != 0 {
                self.fail(format!(
                    "h{h}: the core still has {} transactions\n{}",
                    host.core.outstanding(),
                    self.cores()
                ));
            }
            if let Some((p, _)) = k.cache.iter().find(|(_, e)| e.1) {
                self.fail(format!("h{h}: {p:?} still dirty after the flush"));
            }
        }
        for (&page, &last) in &self.last {
            if self.unknown.contains(&page) {
                continue;
            }
            let owner = self.owners[&page.file] as usize;
            let on_disk = self.hosts[owner].disk.get(&page).copied().unwrap_or(0);
            if on_disk != last {
                self.fail(format!(
                    "{page:?}: the owner h{owner}'s disk holds {on_disk}, the last write was {last}: dirty data lost"
                ));
            }
        }
    }
}

/// What the schedules did, summed: the checks below make sure they
/// really exercised every failure.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    drops: u64,
    disk_failures: u64,
    crashes: u64,
    lost: u64,
    returned: u64,
    leaves: u64,
    owner_crashes: u64,
    reported: u64,
    fences: u64,
    evictions: u64,
    evicted_dirty: u64,
    went_home: u64,
    superseded: u64,
    taken_alive: u64,
    orphans: u64,
    upgrades: u64,
    stale: u64,
    revokes: u64,
    shares: u64,
    write_faults: u64,
    prefetches: u64,
    prefetch_hits: u64,
    unread: u64,
    shrinks_started: u64,
    shrinks_done: u64,
    shrinks_abandoned: u64,
    past_end: u64,
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally {
            drops: self.drops + o.drops,
            disk_failures: self.disk_failures + o.disk_failures,
            crashes: self.crashes + o.crashes,
            lost: self.lost + o.lost,
            returned: self.returned + o.returned,
            leaves: self.leaves + o.leaves,
            owner_crashes: self.owner_crashes + o.owner_crashes,
            reported: self.reported + o.reported,
            fences: self.fences + o.fences,
            evictions: self.evictions + o.evictions,
            evicted_dirty: self.evicted_dirty + o.evicted_dirty,
            went_home: self.went_home + o.went_home,
            superseded: self.superseded + o.superseded,
            taken_alive: self.taken_alive + o.taken_alive,
            orphans: self.orphans + o.orphans,
            upgrades: self.upgrades + o.upgrades,
            stale: self.stale + o.stale,
            revokes: self.revokes + o.revokes,
            shares: self.shares + o.shares,
            write_faults: self.write_faults + o.write_faults,
            prefetches: self.prefetches + o.prefetches,
            prefetch_hits: self.prefetch_hits + o.prefetch_hits,
            unread: self.unread + o.unread,
            shrinks_started: self.shrinks_started + o.shrinks_started,
            shrinks_done: self.shrinks_done + o.shrinks_done,
            shrinks_abandoned: self.shrinks_abandoned + o.shrinks_abandoned,
            past_end: self.past_end + o.past_end,
        }
    }
}

/// Runs one schedule (`mrsw`: with most files read-replicated); returns
/// what it did.
fn run_seed(seed: u64, mrsw: bool) -> Tally {
    run_seed_with(seed, mrsw, Extra::Nothing)
}

/// What a schedule does besides the failures every schedule draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    Nothing,
    /// Owners shrink files now and then.
    Shrinks,
    /// Its hosts that own no file leave on purpose instead of crashing,
    /// and nothing else fails but connections: no page may be lost.
    LeavesOnly,
}

/// Runs one schedule, with `extra`.
fn run_seed_with(seed: u64, mrsw: bool, extra: Extra) -> Tally {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let hosts = 3 + rng.below(3);
    let files = 1 + rng.below(2);
    let pages = 1 + rng.below(4) as u64;
    let steps = 200 + rng.below(800);
    let mut sim = Sim::new(seed, hosts, files, pages, mrsw, extra == Extra::Shrinks);
    if extra == Extra::LeavesOnly {
        sim.leaves_only = true;
        sim.crashes = true;
        // (An owner that leaves takes its files with it: dirty data on its
        // way home then is lost, and reported.)
        sim.owner_crashes = false;
        sim.disk_errors = false;
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run_schedule(steps)));
    if let Err(e) = result {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "panic".into());
        let (what, env) = match extra {
            Extra::Nothing => ("", ""),
            Extra::Shrinks => (" (shrinks)", " WFS_SIM_SHRINK=1"),
            Extra::LeavesOnly => (" (leaves only)", " WFS_SIM_LEAVES=1"),
        };
        let (mode, mode_env) = if mrsw {
            (" (mrsw)", " WFS_SIM_MRSW=1")
        } else {
            ("", "")
        };
        panic!(
            "simulation failed with seed {seed}{mode}{what} ({hosts} hosts, {files} files, {pages} pages each, {steps} steps, {} connection drops, {} crashes); replay with WFS_SIM_SEED={seed}{env}{mode_env}\n{msg}",
            sim.drops, sim.crashed,
        );
    }
    if std::env::var("WFS_SIM_SHOW").is_ok_and(|v| v == "1") {
        eprintln!("{}", sim.log.join("\n"));
    }
    Tally {
        drops: u64::from(sim.drops),
        disk_failures: u64::from(sim.failed_reads + sim.failed_writes),
        crashes: u64::from(sim.crashed),
        lost: u64::from(sim.lost),
        returned: u64::from(sim.returned),
        leaves: u64::from(sim.leaves),
        owner_crashes: u64::from(sim.owners_crashed),
        reported: u64::from(sim.reported),
        fences: u64::from(sim.fences),
        evictions: u64::from(sim.evictions_done),
        evicted_dirty: u64::from(sim.evicted_dirty),
        went_home: u64::from(sim.went_home),
        superseded: u64::from(sim.superseded),
        taken_alive: u64::from(sim.taken_alive),
        orphans: u64::from(sim.orphans),
        upgrades: u64::from(sim.upgrades),
        stale: u64::from(sim.stale),
        revokes: u64::from(sim.revokes),
        shares: u64::from(sim.shares),
        write_faults: u64::from(sim.write_faults),
        prefetches: u64::from(sim.prefetches),
        prefetch_hits: u64::from(sim.prefetch_hits),
        unread: u64::from(sim.unread),
        shrinks_started: u64::from(sim.shrinks_started),
        shrinks_done: u64::from(sim.shrinks_done),
        shrinks_abandoned: u64::from(sim.shrinks_abandoned),
        past_end: u64::from(sim.past_end),
    }
}

/// Schedules beyond the first 2000 that once failed, replayed on every
/// run: a data loss at the owner (76384: a failed disk write taken as lost
/// while the writer's home write of the data was under way; 19169: the
/// write of a writer that died taken as lost while a live holder, the
/// owner's own kernel, had newer data on its way home), kept data going
/// to the wrong incarnation (12524, 13095), and the simulation's own
/// bookkeeping (149995, 35188, 185044, 205539, 255430). A change to the
/// simulation that draws its random numbers differently changes what they
/// replay: find new ones then (`WFS_SIM_SCHEDULES`).
#[test]
fn schedules_that_once_failed() {
    for seed in [
        12524, 13095, 19169, 35188, 76384, 149995, 185044, 205539, 255430,
    ] {
        run_seed(seed, false);
    }
}

#[test]
fn protocol_simulation() {
    if std::env::var("WFS_SIM_MRSW").is_ok_and(|v| v == "1")
        || std::env::var("WFS_SIM_SHRINK").is_ok_and(|v| v == "1")
    {
        return;
    }
    if let Ok(seed) = std::env::var("WFS_SIM_SEED") {
        let t = run_seed(seed.parse().expect("WFS_SIM_SEED is a number"), false);
        eprintln!("seed {seed}: passed, {t:?}");
        return;
    }
    let schedules = schedules();
    let t = (0..schedules)
        .map(|seed| run_seed(seed, false))
        .fold(Tally::default(), |a, b| a + b);
    eprintln!("{schedules} schedules passed: {t:?}");
    // The schedules must really have cut connections with traffic on them,
    // failed disk reads with READs waiting, crashed hosts holding pages
    // and brought pages back from hosts that died.
    assert!(
        t.drops >= schedules,
        "only {} connection drops in {schedules} schedules",
        t.drops
    );
    assert!(
        t.disk_failures >= schedules / 20,
        "only {} READs and WRITEs failed on disk errors in {schedules} schedules",
        t.disk_failures
    );
    assert!(
        t.crashes >= schedules / 4,
        "only {} crashes in {schedules} schedules",
        t.crashes
    );
    assert!(
        // (Fewer since a host that stays silent is taken for dead only
        // after the lease: the pages a holder fenced off it go to its next
        // incarnation as `Orphan`, not in the report.)
        t.owner_crashes >= schedules / 20 && t.reported >= schedules / 80,
        "only {} owners crashed and {} held pages reported to their next incarnation in {schedules} schedules",
        t.owner_crashes,
        t.reported
    );
    assert!(
        t.taken_alive >= schedules / 20,
        "only {} running hosts taken for dead in {schedules} schedules",
        t.taken_alive
    );
    assert!(
        t.fences >= schedules / 4,
        "only {} hosts fenced themselves in {schedules} schedules",
        t.fences
    );
    assert!(
        t.evictions >= schedules && t.evicted_dirty >= schedules / 10,
        "only {} pages evicted by the operator, {} of them dirty, in {schedules} schedules",
        t.evictions,
        t.evicted_dirty
    );
    assert!(
        t.went_home >= schedules / 20,
        "only {} dirty pages that came for READs that had given up went home in {schedules} schedules",
        t.went_home
    );
    assert!(
        t.leaves >= schedules / 50,
        "only {} hosts left on purpose in {schedules} schedules",
        t.leaves
    );
    assert!(
        t.orphans >= schedules / 400,
        "only {} pages' data brought to an owner's next incarnation after the one it was going to died in {schedules} schedules",
        t.orphans
    );
    assert!(
        t.lost >= schedules / 10 && t.returned >= schedules / 100,
        "only {} pages lost and {} returned in {schedules} schedules",
        t.lost,
        t.returned
    );
}

/// Runs the schedules with `extra` in both modes, and returns how many
/// and their tally; or, with `WFS_SIM_SEED` set, replays that one seed
/// (in the mode `WFS_SIM_MRSW` says) if `env` is `1`, and returns `None`.
fn in_both_modes(extra: Extra, env: &str) -> Option<(u64, Tally)> {
    let only = std::env::var(env).is_ok_and(|v| v == "1");
    let mrsw = std::env::var("WFS_SIM_MRSW").is_ok_and(|v| v == "1");
    if let Ok(seed) = std::env::var("WFS_SIM_SEED") {
        if only {
            let t = run_seed_with(seed.parse().expect("WFS_SIM_SEED is a number"), mrsw, extra);
            eprintln!("seed {seed} ({extra:?}): passed, {t:?}");
        }
        return None;
    }
    let schedules = schedules();
    let t = (0..schedules)
        .flat_map(|seed| {
            [
                run_seed_with(seed, false, extra),
                run_seed_with(seed, true, extra),
            ]
        })
        .fold(Tally::default(), |a, b| a + b);
    Some((schedules, t))
}

/// How many schedules a simulation runs (`WFS_SIM_SCHEDULES`, 2000).
fn schedules() -> u64 {
    std::env::var("WFS_SIM_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

/// The same seeds as `protocol_simulation`, with three files in four kept
/// `mrsw` by their owner (read replication, Documentation/mrsw.md): reads
/// share read-only copies served from the owner's disk, writes revoke them
/// first, and UPGRADEs of read copies are granted in place, or refaulted
/// when they race with another host's write. Checked on
/// top of the single copy's rules: one writable copy or read-only ones
/// only, every read copy on its owner's stable storage when installed,
/// every copy holding the last value at the end. Connections drop, hosts
/// fence themselves, crash and leave, the operator evicts pages, disks
/// fail and kernels give up on READs and UPGRADEs, as in the single
/// schedules; owners do not crash, and no running host is taken for dead
/// (step 5 of the design).
#[test]
fn protocol_simulation_mrsw() {
    let only = std::env::var("WFS_SIM_MRSW").ok();
    if let Ok(seed) = std::env::var("WFS_SIM_SEED") {
        if only.is_some_and(|v| v == "1")
            && !std::env::var("WFS_SIM_SHRINK").is_ok_and(|v| v == "1")
        {
            let t = run_seed(seed.parse().expect("WFS_SIM_SEED is a number"), true);
            eprintln!("seed {seed} (mrsw): passed, {t:?}");
        }
        return;
    }
    let schedules = schedules();
    let t = (0..schedules)
        .map(|seed| run_seed(seed, true))
        .fold(Tally::default(), |a, b| a + b);
    eprintln!("{schedules} mrsw schedules passed: {t:?}");
    assert!(
        t.prefetches >= schedules
            && t.prefetch_hits >= schedules / 10
            && t.unread >= schedules / 40,
        "only {} prefetches asked for, {} kept for a kernel and {} dropped unread and given back in {schedules} schedules",
        t.prefetches,
        t.prefetch_hits,
        t.unread
    );
    assert!(
        t.revokes >= schedules && t.shares >= schedules / 2,
        "only {} read copies revoked and {} writers shared in {schedules} schedules",
        t.revokes,
        t.shares
    );
    assert!(
        t.upgrades >= schedules && t.stale >= schedules / 50 && t.write_faults >= schedules / 2,
        "only {} UPGRADEs granted in place, {} refaulted (IVY's race) and {} write faults in {schedules} schedules",
        t.upgrades,
        t.stale,
        t.write_faults
    );
    assert!(
        t.disk_failures >= schedules / 20,
        "only {} READs and WRITEs failed on disk errors in {schedules} schedules",
        t.disk_failures
    );
    assert!(
        t.drops >= schedules
            && t.crashes >= schedules / 4
            && t.leaves >= schedules / 50
            && t.fences >= schedules / 4
            && t.evictions >= schedules,
        "only {} connection drops, {} crashes, {} leaves, {} fences and {} evictions in {schedules} schedules",
        t.drops,
        t.crashes,
        t.leaves,
        t.fences,
        t.evictions
    );
}

/// The same seeds in both modes, with owners shrinking their files now
/// and then (Documentation/fs-plan.md, step 1): the owner sets the file's
/// limit, so that no page past the new end is handed out again, and
/// recalls every page past it from every host (`Input::Recall`, fed again
/// by its timer until `Core::recalled`). Checked on top of the other
/// rules: once the core says the pages are home, no kernel holds any of
/// them; the owner then cuts them on its disk (and the file grows back,
/// its pages zero), and no value written before the cut ever reaches a
/// disk or a reader again. Faults past the limit fail with `PAST_END`.
/// Now and then an owner gives a shrink up (its limit goes, the recalls
/// under way go on for nobody, and a fault may join one).
/// `WFS_SIM_SHRINK=1 WFS_SIM_SEED=N` (with `WFS_SIM_MRSW=1`) replays one.
#[test]
fn protocol_simulation_shrink() {
    let Some((schedules, t)) = in_both_modes(Extra::Shrinks, "WFS_SIM_SHRINK") else {
        return;
    };
    eprintln!("{schedules} schedules with shrinks passed, in each mode: {t:?}");
    assert!(
        t.shrinks_done >= schedules && t.past_end >= schedules / 10,
        "only {} shrinks done ({} started, {} abandoned) and {} faults refused past the end in {schedules} schedules",
        t.shrinks_done,
        t.shrinks_started,
        t.shrinks_abandoned,
        t.past_end
    );
}

/// The same seeds in both modes, where hosts that own no file only ever
/// leave on purpose, as `systemctl stop` or a shutdown makes them, and
/// connections drop: a leaving host hands every page back (its dirty data
/// on its owner's disk) before it says `Leaving`, so no page is ever
/// reported lost, whatever moves, shares or revocations were under way
/// toward it. `WFS_SIM_LEAVES=1 WFS_SIM_SEED=N` (with `WFS_SIM_MRSW=1`)
/// replays one.
#[test]
fn protocol_simulation_leaves() {
    let Some((schedules, t)) = in_both_modes(Extra::LeavesOnly, "WFS_SIM_LEAVES") else {
        return;
    };
    eprintln!("{schedules} schedules where hosts only leave passed, in each mode: {t:?}");
    assert!(
        t.leaves >= schedules && t.shares >= schedules / 4 && t.revokes >= schedules / 2,
        "only {} hosts left, {} writers shared and {} read copies revoked in {schedules} schedules",
        t.leaves,
        t.shares,
        t.revokes
    );
}

/// Delivers `out`, which must be a message from host `from` to host `to`;
/// returns what the receiver does.
fn relay(cores: &mut [Core], from: HostId, to: HostId, out: &Output) -> Vec<Output> {
    let Output::Send { to: dest, msg } = out else {
        panic!("not a message: {out:?}")
    };
    assert_eq!(*dest, to, "{out:?}");
    cores[to as usize]
        .handle(Input::Message {
            from,
            msg: msg.clone(),
        })
        .unwrap()
}

#[test]
fn a_remote_fault_moves_the_page() {
    // Host 1 reads a page of host 0's file that host 2 holds dirty: the
    // page comes from host 2 straight to host 1, dirty, and host 0 records
    // host 1 as its holder.
    let page = PageId { file: 7, index: 0 };
    let mut cores: Vec<Core> = (0..3).map(Core::new).collect();
    for c in &mut cores {
        c.add_file(7, 0);
    }
    // Host 2 faults first and gets the page from host 0's disk.
    let out = cores[2].handle(Input::Fault { req: 1, page }).unwrap();
    let out = relay(&mut cores, 2, 0, &out[0]);
    assert_eq!(out, vec![Output::DiskRead { page }]);
    let out = cores[0]
        .handle(Input::DiskRead {
            page,
            data: encode(5),
        })
        .unwrap();
    let out = relay(&mut cores, 0, 2, &out[0]);
    assert_eq!(
        out[0],
        Output::Grant {
            req: 1,
            data: encode(5),
            dirty: false,
            writable: true,
        }
    );
    assert!(relay(&mut cores, 2, 0, &out[1]).is_empty());
    let out = cores[2]
        .handle(Input::Answered {
            req: 1,
            installed: true,
        })
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
    // Host 1 faults: host 0 sends Fetch to host 2, which invalidates and
    // sends the (dirty) page to host 1 directly.
    let out = cores[1].handle(Input::Fault { req: 9, page }).unwrap();
    let out = relay(&mut cores, 1, 0, &out[0]);
    assert!(matches!(
        &out[0],
        Output::Send {
            msg: Msg::Fetch { to: 1, .. },
            ..
        }
    ));
    let out = relay(&mut cores, 0, 2, &out[0]);
    assert_eq!(out, vec![Output::Invalidate { page }]);
    let out = cores[2]
        .handle(Input::Invalidated {
            page,
            contents: Some((encode(6), true)),
        })
        .unwrap();
    let out = relay(&mut cores, 2, 1, &out[0]);
    assert_eq!(
        out[0],
        Output::Grant {
            req: 9,
            data: encode(6),
            dirty: true,
            writable: true,
        }
    );
    assert!(relay(&mut cores, 1, 0, &out[1]).is_empty());
    // The kernel installed it.
    let out = cores[1]
        .handle(Input::Answered {
            req: 9,
            installed: true,
        })
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(cores.iter().map(Core::outstanding).sum::<usize>(), 0);
}

#[test]
fn a_host_that_leaves_hands_its_pages_back() {
    // Host 2 holds a page of host 0's file and dirties it, then leaves: the
    // data goes home, the owner learns it holds nothing, and when host 2's
    // incarnation is taken for dead nothing is reported lost.
    let page = PageId { file: 7, index: 0 };
    let mut cores = common::cores(3, 5);
    common::join(&mut cores, &[0, 1, 2], 5);
    let out = cores[2].handle(Input::Fault { req: 1, page }).unwrap();
    let out = relay(&mut cores, 2, 0, &out[0]);
    assert_eq!(out, vec![Output::DiskRead { page }]);
    let out = cores[0]
        .handle(Input::DiskRead {
            page,
            data: encode(0),
        })
        .unwrap();
    let out = relay(&mut cores, 0, 2, &out[0]);
    assert!(relay(&mut cores, 2, 0, &out[1]).is_empty());
    assert_eq!(cores[0].held_by(2), 1);
    // It leaves: the page is taken from its kernel, dirty (value 9).
    let out = cores[2].handle(Input::Leave).unwrap();
    assert_eq!(out, vec![Output::Invalidate { page }]);
    let out = cores[2]
        .handle(Input::Invalidated {
            page,
            contents: Some((encode(9), true)),
        })
        .unwrap();
    assert!(
        matches!(
            &out[..],
            [
                Output::Send {
                    msg: Msg::Put { .. },
                    ..
                },
                Output::Send {
                    msg: Msg::Released { .. },
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    let write = relay(&mut cores, 2, 0, &out[0]);
    let Output::DiskWrite {
        data, epoch, ack, ..
    } = &write[0]
    else {
        panic!("{write:?}")
    };
    assert_eq!(decode(data), 9);
    assert!(relay(&mut cores, 2, 0, &out[1]).is_empty());
    assert_eq!(
        cores[0].held_by(2),
        0,
        "the owner knows host 2 holds nothing"
    );
    // Its Put is durable: only then has it left, telling every peer.
    let ack = cores[0]
        .handle(Input::DiskWritten {
            page,
            epoch: *epoch,
            ack: *ack,
            error: 0,
        })
        .unwrap();
    let out = relay(&mut cores, 0, 2, &ack[0]);
    assert_eq!(out.last(), Some(&Output::Left));
    let leaving: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: Msg::Leaving { incarnation: 5 },
            } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(leaving, vec![0, 1]);
    // The owner takes it for dead at once; nothing is lost with it.
    let declare = relay(&mut cores, 2, 0, &out[0]);
    assert_eq!(
        declare,
        vec![Output::Declare {
            host: 2,
            incarnation: 5,
            left: true
        }]
    );
    let died = cores[0]
        .handle(Input::PeerDied {
            host: 2,
            incarnation: 5,
            undelivered: Vec::new(),
            unsent: Vec::new(),
        })
        .unwrap();
    assert!(
        !died.iter().any(|o| matches!(o, Output::Lost { .. })),
        "{died:?}"
    );
    // A fault on the leaving host fails at once.
    let out = cores[2].handle(Input::Fault { req: 2, page }).unwrap();
    assert_eq!(
        out,
        vec![Output::ReadFailed {
            req: 2,
            error: wfs_manager::protocol::SHUTTING_DOWN
        }]
    );
}
