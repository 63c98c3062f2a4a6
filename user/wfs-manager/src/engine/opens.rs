//! Open sets (Documentation/fs-plan.md, step 2): POSIX's "the data lives
//! until the last close", across hosts.
//!
//! Every host counts its kernel's opens of each file (OPEN and RELEASE).
//! The first open of another owner's file sends that owner `Open`, and the
//! kernel's `open(2)` returns once the owner has answered (`Opened`), so an
//! unlink that starts anywhere after the open returned sees it; the last
//! release sends `Close`. The owner keeps, per file, the hosts that have it
//! open (itself among them).
//!
//! An unlink (or a rename over a file) at the owner of a file whose open
//! set is not empty keeps the file under a hidden name (`.wfs-gone-<id>`, a
//! second link made before the name goes: `Export::keep`), takes no page
//! back, and removes the name everywhere as usual. Once the set is empty
//! (the last close, or the last holder taken for dead), the hidden file is
//! removed as an unlink removes a file: every page home first. A manager
//! that starts with hidden files of an earlier run waits for its peers'
//! `Open`s (sent again to an owner that restarted) for as long as a host
//! takes to be taken for dead, then removes those nobody has open.
//!
//! An owner that cannot be reached does not hold an open up: the kernel is
//! answered at once and the `Open` waits in the session (the file's pages
//! need the owner anyway). Each open carries the kernel session of the
//! manager that counts it, and a RELEASE of another session's open is
//! ignored (`ESTALE`). A manager that starts is told by its kernel which
//! files are open (`IOC_OPENS`, which makes them its own to count) and
//! tells their owners ([`Engine::adopt_opens`]); an owner keeps a kept
//! file whose last holder went for as long as a host takes to be taken
//! for dead, for that holder's new manager to claim it
//! (`Documentation/protocol.md`, "Open sets").

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use wfs_abi::{Opcode, ReplyBody, errno};

use super::space::UnlinkThen;
use super::{Counters, Engine, kernel_errno};
use crate::names::NameMsg;
use crate::protocol::HostId;
use crate::wire::PeerMsg;
use crate::wlog;

/// The kernel's OPENs waiting for an owner's answer: request, and when it
/// came.
type Waiting = Vec<(u64, Instant)>;

/// A file kept under its hidden name.
#[derive(Debug)]
struct Kept {
    name: Vec<u8>,
    /// Found at start (an earlier run kept it): removed once nobody has
    /// said it has it open for [`Engine::absent_after`] since then.
    orphan_since: Option<Instant>,
    /// Its removal has begun.
    removing: bool,
}

/// This host's opens, and the open sets of its own files.
#[derive(Debug)]
pub(super) struct Opens {
    /// The kernel session this manager registered as: the opens it
    /// counted carry it in their RELEASE.
    session: u64,
    /// This host's kernel's opens now, by file.
    here: HashMap<u64, u32>,
    /// `Open`s asked of other owners and not yet answered, by id: the
    /// file, the owner, and the kernel's OPENs waiting for it (request,
    /// when it came).
    asking: HashMap<u64, (u64, HostId, Waiting)>,
    /// The `Open` id under way for each file.
    asking_file: HashMap<u64, u64>,
    next_id: u64,
    /// This owner's files: the hosts that have each open (this one too).
    sets: HashMap<u64, HashSet<HostId>>,
    /// This owner's files kept under hidden names, by file.
    kept: HashMap<u64, Kept>,
    /// Files this host had open when this manager started whose owner it
    /// did not know: their `Open` went to every peer, and so goes their
    /// `Close`.
    everywhere: HashSet<u64>,
    /// This owner's files whose open set lost hosts taken for dead (or
    /// restarted), when, and which have not said since that they have it
    /// open: for as long as a host takes to be taken for dead, such a file
    /// is kept as if they still had it open, for their new managers to
    /// say so.
    lost: HashMap<u64, (Instant, HashSet<HostId>)>,
}

impl Opens {
    /// No open yet, for a manager registered as kernel session `session`.
    pub(super) fn new(session: u64) -> Self {
        Opens {
            session,
            here: HashMap::new(),
            asking: HashMap::new(),
            asking_file: HashMap::new(),
            next_id: 0,
            sets: HashMap::new(),
            kept: HashMap::new(),
            everywhere: HashSet::new(),
            lost: HashMap::new(),
        }
    }

    /// Whether any host has this owner's `file` open.
    pub(super) fn is_open(&self, file: u64) -> bool {
        self.sets.get(&file).is_some_and(|s| !s.is_empty())
    }

    /// Whether this owner's `file` is kept under its hidden name and not
    /// being removed.
    pub(super) fn kept_now(&self, file: u64) -> bool {
        self.kept.get(&file).is_some_and(|k| !k.removing)
    }
}

impl Engine {
    /// The kernel's OPEN `req` of `file`.
    pub(super) fn open(&mut self, req: u64, file: u64, started: Instant) {
        Counters::add(&self.counters.opens, 1);
        let owner = self.core.owner_of(file).unwrap_or(self.me);
        if owner == self.me {
            if let Err(e) = self.export.getattr(file) {
                return self.open_answer(req, started, Err(e));
            }
            if self.space.removing(file) {
                return self.open_answer(req, started, Err(errno::ENOENT));
            }
            *self.opens.here.entry(file).or_default() += 1;
            self.opens.sets.entry(file).or_default().insert(self.me);
            return self.open_answer_counted(req, file, started);
        }
        let n = self.opens.here.entry(file).or_default();
        *n += 1;
        let first = *n == 1;
        if let Some(id) = self.opens.asking_file.get(&file)
            && let Some((_, _, waiting)) = self.opens.asking.get_mut(id)
        {
            waiting.push((req, started));
            return;
        }
        if !first {
            return self.open_answer_counted(req, file, started);
        }
        if !self.is_connected(owner) {
            // (Heard when it is back, unless it is taken for dead.)
            if !self.peer_gone(owner) {
                let msg = NameMsg::Open { id: 0, file };
                self.send(owner, PeerMsg::Name(msg));
            }
            return self.open_answer_counted(req, file, started);
        }
        self.opens.next_id += 1;
        let id = self.opens.next_id;
        self.opens
            .asking
            .insert(id, (file, owner, vec![(req, started)]));
        self.opens.asking_file.insert(file, id);
        self.send(owner, PeerMsg::Name(NameMsg::Open { id, file }));
    }

    fn open_answer(&mut self, req: u64, started: Instant, result: Result<(), i32>) {
        if result.is_err() {
            Counters::add(&self.counters.opens_failed, 1);
        }
        self.reply(req, Opcode::Open, started, result.map(|()| ReplyBody::Done));
    }

    /// Answers OPEN `req` of `file`, counted already: if the kernel no
    /// longer waits for it (its caller was killed, or its time-out ran
    /// out), no RELEASE will come, so it is taken off the count.
    fn open_answer_counted(&mut self, req: u64, file: u64, started: Instant) {
        if !self.reply(req, Opcode::Open, started, Ok(ReplyBody::Done)) {
            self.uncount(file, 1, true);
        }
    }

    /// The kernel's RELEASE `req` of an open of `file` that kernel
    /// session `session` counted: answered at once; its last open here
    /// tells the owner. An open an earlier manager counted (another
    /// session) is none of this one's: `ESTALE`, and nothing changes.
    pub(super) fn release(&mut self, req: u64, file: u64, session: u64, started: Instant) {
        tracing::trace!(
            "opens: RELEASE of {file:#x} (session {session}), {} open here",
            self.opens.here.get(&file).copied().unwrap_or(0)
        );
        if session != self.opens.session {
            Counters::add(&self.counters.releases_stale, 1);
            self.reply(req, Opcode::Release, started, Err(errno::ESTALE));
            return;
        }
        self.reply(req, Opcode::Release, started, Ok(ReplyBody::Done));
        self.uncount(file, 1, true);
    }

    /// This host has `file` open no more: its owner hears it.
    fn closed_here(&mut self, file: u64) {
        if self.opens.everywhere.remove(&file) {
            wlog!(
                "opens: {file:#x}, open when this manager started, is closed: every peer hears it"
            );
            for host in self.peer_hosts() {
                self.send(host, PeerMsg::Name(NameMsg::Close { file }));
            }
            return;
        }
        let owner = self.core.owner_of(file).unwrap_or(self.me);
        if owner == self.me {
            self.left_open_set(file, self.me);
        } else if !self.peer_gone(owner) {
            self.send(owner, PeerMsg::Name(NameMsg::Close { file }));
        }
    }

    /// A peer's `Open` `id` of `file`, which should be this host's.
    pub(super) fn open_asked(&mut self, from: HostId, id: u64, file: u64) {
        // (An open that reaches the owner while it removes the file, its
        // shrink to 0 under way, would find it empty: `ENOENT`, as an open
        // that loses the race with an unlink.)
        let error = match self.export.getattr(file) {
            Ok(_) if self.space.removing(file) => errno::ENOENT,
            Ok(_) => {
                self.core.add_file(file, self.me);
                self.opens.sets.entry(file).or_default().insert(from);
                if let Some(k) = self.opens.kept.get_mut(&file) {
                    k.orphan_since = None;
                }
                if let Some((_, hosts)) = self.opens.lost.get_mut(&file) {
                    hosts.remove(&from);
                }
                0
            }
            Err(e) => e,
        };
        if id != 0 {
            self.send(from, PeerMsg::Name(NameMsg::Opened { id, error }));
        }
    }

    /// The owner's answer to this host's `Open` `id`.
    pub(super) fn open_answered(&mut self, from: HostId, id: u64, error: i32) {
        let Some((file, owner, waiting)) = self.opens.asking.remove(&id) else {
            return;
        };
        if owner != from {
            self.opens.asking.insert(id, (file, owner, waiting));
            return;
        }
        self.opens.asking_file.remove(&file);
        let result = if error == 0 {
            Ok(())
        } else {
            Err(kernel_errno(error))
        };
        if result.is_err() {
            // Those opens fail: no RELEASE comes for them.
            self.uncount(file, waiting.len() as u32, false);
        }
        for (req, started) in waiting {
            match result {
                Ok(()) => self.open_answer_counted(req, file, started),
                Err(e) => self.open_answer(req, started, Err(e)),
            }
        }
    }

    /// Takes `n` opens of `file` this host's kernel gave up (or that
    /// failed) off its count; the last one tells the owner if `told` (its
    /// `Open` may have reached it).
    fn uncount(&mut self, file: u64, n: u32, told: bool) {
        let Some(c) = self.opens.here.get_mut(&file) else {
            return;
        };
        *c = c.saturating_sub(n);
        if *c == 0 {
            self.opens.here.remove(&file);
            if told {
                self.closed_here(file);
            }
        }
    }

    /// A peer's `Close` of `file`.
    pub(super) fn close_asked(&mut self, from: HostId, file: u64) {
        self.left_open_set(file, from);
    }

    /// `host` has this owner's `file` open no more: a kept file nobody
    /// has open is removed (once no holder taken for dead lately may
    /// still claim it).
    fn left_open_set(&mut self, file: u64, host: HostId) {
        if let Some(set) = self.opens.sets.get_mut(&file) {
            set.remove(&host);
            if set.is_empty() {
                self.opens.sets.remove(&file);
            }
        }
        if self.opens.is_open(file) {
            return;
        }
        match self.lost_lately(file) {
            Some(at) => {
                if let Some(k) = self.opens.kept.get_mut(&file) {
                    k.orphan_since = Some(at);
                }
            }
            None => self.remove_kept(file),
        }
    }

    /// When `file`'s open set lost a host taken for dead, if that was
    /// less than a failure time-out ago.
    fn lost_lately(&self, file: u64) -> Option<Instant> {
        let after = self.absent_after();
        self.opens
            .lost
            .get(&file)
            .filter(|(at, hosts)| at.elapsed() < after && !hosts.is_empty())
            .map(|(at, _)| *at)
    }

    /// Removes kept `file` (nobody has it open): every page home, then
    /// its hidden name goes.
    fn remove_kept(&mut self, file: u64) {
        let Some(k) = self.opens.kept.get_mut(&file) else {
            return;
        };
        if k.removing {
            return;
        }
        k.removing = true;
        let name = k.name.clone();
        wlog!(
            "names: nobody has {:?} open any more: its data goes",
            String::from_utf8_lossy(&name)
        );
        self.core.add_file(file, self.me);
        self.owner_remove_now(file, &name, UnlinkThen::Nobody, None);
    }

    /// The removal of kept `file` is over (`ok`, or it failed and is tried
    /// again at the next close or start).
    pub(super) fn kept_removed(&mut self, file: u64, ok: bool) {
        if ok {
            self.opens.kept.remove(&file);
        } else if let Some(k) = self.opens.kept.get_mut(&file) {
            // (Tried again after the failure time-out, unless somebody
            // opens it meanwhile.)
            k.removing = false;
            k.orphan_since = Some(Instant::now());
        }
    }

    /// An unlink or rename at this owner is about to remove `file`'s name
    /// `name`: if some host has it open, it is kept under its hidden name
    /// first (`Ok(true)`: no page is taken back).
    pub(super) fn keep_if_open(&mut self, file: u64, name: &[u8]) -> Result<bool, i32> {
        // (A file whose holder was taken for dead lately is kept too, as
        // long as that holder's new manager may claim it.)
        let lost = self.lost_lately(file);
        if !self.opens.is_open(file) && lost.is_none() {
            return Ok(false);
        }
        let Some(hidden) = self.export.keep(file, name)? else {
            // (No file handles: a second name would be another file.)
            wlog!(
                "names: {:?} is open elsewhere, but this export has no file handles to keep it by: removed",
                String::from_utf8_lossy(name)
            );
            return Ok(false);
        };
        wlog!(
            "names: {:?} is open on {} host(s): its data is kept (as {:?}) until the last close",
            String::from_utf8_lossy(name),
            self.opens.sets.get(&file).map_or(0, HashSet::len),
            String::from_utf8_lossy(&hidden)
        );
        Counters::add(&self.counters.files_kept, 1);
        let orphan_since = if self.opens.is_open(file) { None } else { lost };
        self.opens.kept.insert(
            file,
            Kept {
                name: hidden,
                orphan_since,
                removing: false,
            },
        );
        Ok(true)
    }

    /// The name `name` of `file`, kept by [`Engine::keep_if_open`], was
    /// not removed after all: the hidden name goes again.
    pub(super) fn unkeep(&mut self, file: u64, name: &[u8]) {
        if !self.opens.kept_now(file) {
            return;
        }
        if let Some(k) = self.opens.kept.remove(&file)
            && let Err(e) = self.export.unkeep(file, &k.name, name)
        {
            wlog!(
                "names: cannot remove {:?} again: errno {e}",
                String::from_utf8_lossy(&k.name)
            );
        }
    }

    /// Kept files wait as if their last holder had gone `by` earlier.
    #[cfg(test)]
    pub(super) fn age_kept(&mut self, by: std::time::Duration) {
        for k in self.opens.kept.values_mut() {
            k.orphan_since = k.orphan_since.map(|s| s - by);
        }
    }

    /// The hosts that have this owner's `file` open.
    #[cfg(test)]
    pub(super) fn opens_set(&self, file: u64) -> HashSet<HostId> {
        self.opens.sets.get(&file).cloned().unwrap_or_default()
    }

    /// At start: the files this host's kernel has open (`IOC_OPENS`, which
    /// made this manager the one that counts them), `count` opens each,
    /// are counted as if their OPENs had just come, and their owners hear
    /// it: this host's own files join their open sets at once; another
    /// owner's file (whose owner a manager that just started does not
    /// know) gets an `Open` (no answer wanted) sent to every peer as it
    /// connects ([`Engine::opens_announce`]; a host that does not own the
    /// file ignores it).
    pub(super) fn adopt_opens(&mut self, files: &[(u64, u32)]) {
        for &(file, count) in files {
            *self.opens.here.entry(file).or_default() += count;
            if self.opens.kept.contains_key(&file) || self.export.getattr(file).is_ok() {
                self.opens.sets.entry(file).or_default().insert(self.me);
                if let Some(k) = self.opens.kept.get_mut(&file) {
                    k.orphan_since = None;
                }
            } else {
                self.opens.everywhere.insert(file);
            }
        }
        if !files.is_empty() {
            wlog!(
                "opens: {} file(s) open on this host when it started are counted (their owners hear it)",
                files.len()
            );
        }
    }

    /// Peer `host` is up (first, or a new incarnation): the files this
    /// host had open when its manager started, of owners it did not know,
    /// are told to it.
    pub(super) fn opens_announce(&mut self, host: HostId) {
        let files: Vec<u64> = self.opens.everywhere.iter().copied().collect();
        for file in files {
            self.send(host, PeerMsg::Name(NameMsg::Open { id: 0, file }));
        }
    }

    /// At start: files an earlier run kept wait for their holders' `Open`s.
    pub(super) fn find_kept(&mut self) {
        let now = Instant::now();
        for (file, name) in self.export.kept_files().unwrap_or_default() {
            self.opens.kept.insert(
                file,
                Kept {
                    name,
                    orphan_since: Some(now),
                    removing: false,
                },
            );
        }
    }

    /// A peer's manager restarted (its old incarnation, taken for dead,
    /// left every open set already): this host's opens of its files are
    /// told to it again.
    pub(super) fn opens_owner_restarted(&mut self, host: HostId) {
        let files: Vec<u64> = self
            .opens
            .here
            .keys()
            .copied()
            .filter(|&f| self.core.owner_of(f) == Some(host))
            .collect();
        for file in files {
            self.send(host, PeerMsg::Name(NameMsg::Open { id: 0, file }));
        }
    }

    /// `host` is taken for dead (or restarted): it leaves every open set,
    /// and the opens waiting for its answer go on without it. A kept file
    /// it was the last to have open waits, as one found at start does,
    /// for as long as a host takes to be taken for dead: a manager that
    /// restarted tells its owners again what its kernel still has open.
    pub(super) fn opens_host_gone(&mut self, host: HostId) {
        let files: Vec<u64> = self
            .opens
            .sets
            .iter()
            .filter(|(_, s)| s.contains(&host))
            .map(|(&f, _)| f)
            .collect();
        let now = Instant::now();
        for file in files {
            let lost = self
                .opens
                .lost
                .entry(file)
                .or_insert_with(|| (now, HashSet::new()));
            lost.0 = now;
            lost.1.insert(host);
            if let Some(set) = self.opens.sets.get_mut(&file) {
                set.remove(&host);
                if set.is_empty() {
                    self.opens.sets.remove(&file);
                }
            }
            if !self.opens.is_open(file)
                && let Some(k) = self.opens.kept.get_mut(&file)
                && !k.removing
            {
                k.orphan_since = Some(now);
            }
        }
        self.opens_owner_unreachable(host);
    }

    /// The owner `host` cannot be reached: the opens waiting for its
    /// answer are answered (its pages need it anyway; the `Open` waits in
    /// the session).
    pub(super) fn opens_owner_unreachable(&mut self, host: HostId) {
        let ids: Vec<u64> = self
            .opens
            .asking
            .iter()
            .filter(|(_, (_, owner, _))| *owner == host)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            if let Some((file, _, waiting)) = self.opens.asking.remove(&id) {
                self.opens.asking_file.remove(&file);
                for (req, started) in waiting {
                    self.open_answer_counted(req, file, started);
                }
            }
        }
    }

    /// The timer: opens the kernel has given up waiting for are taken
    /// off the count; kept files of an earlier run nobody claimed go.
    pub(super) fn expire_opens(&mut self) {
        let timeout = self.sizes.kernel_timeout();
        let over: Vec<u64> = self
            .opens
            .asking
            .iter()
            .filter(|(_, (_, _, w))| w.iter().all(|(_, s)| s.elapsed() >= timeout))
            .map(|(&id, _)| id)
            .collect();
        for id in over {
            if let Some((file, _, waiting)) = self.opens.asking.remove(&id) {
                self.opens.asking_file.remove(&file);
                self.uncount(file, waiting.len() as u32, true);
            }
        }
        let after = self.absent_after();
        self.opens.lost.retain(|_, (at, _)| at.elapsed() < after);
        let orphans: Vec<u64> = self
            .opens
            .kept
            .iter()
            .filter(|(f, k)| {
                k.orphan_since.is_some_and(|s| s.elapsed() >= after) && !self.opens.is_open(**f)
            })
            .map(|(&f, _)| f)
            .collect();
        for file in orphans {
            if let Some(k) = self.opens.kept.get_mut(&file) {
                k.orphan_since = None;
            }
            self.remove_kept(file);
        }
    }
}
