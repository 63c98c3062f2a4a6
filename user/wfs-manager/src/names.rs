//! Finding a file's owner: LOOKUP across the cluster, as pure code.
//!
//! Every host exports the files of its own directory. A LOOKUP that this
//! host cannot answer from its own export asks every peer (a broadcast,
//! Chunk's section 3.1) and waits until each has answered or is known to
//! be unreachable. Exactly one owner: the name resolves to it, and the
//! answer is cached. No owner: the name does not exist (the kernel caches
//! the negative entry; FORGET drops it). Two or more owners: the name is
//! refused with an error that names them, and neither serves it: a file
//! must have exactly one home.
//!
//! A peer whose connection drops ([`Names::peer_down`]) stops being waited
//! for, but what it owns stays cached: a file's owner does not change
//! because a connection dropped (its pages wait in the session until the
//! connection is back).
//!
//! A file's size, cached with its owner, only grows here ([`Names::grow`])
//! but when its owner cuts it ([`Names::cut`]): its owner tells every host
//! of each growth and each cut (`SizeIs`, `SizeCut`, `engine.rs`), and a
//! growth this host asked for is answered with the size. When an owner
//! restarts ([`Names::owner_restarted`]), the sizes cached of its files
//! may be behind its disk (a growth its old incarnation told while this
//! host could not hear it): they are stale until the owner says again
//! ([`Names::is_stale`]; the engine's GETATTR asks it, and a LOOKUP asks
//! every host again).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::protocol::HostId;
use wfs_abi::Time;

/// What an owner says of one of its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// File id (the same on every host: its owner's, which follows the
    /// file across renames, `export.rs`).
    pub file: u64,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Last modification, at the owner.
    pub mtime: Time,
    /// Last change of contents or attributes, at the owner.
    pub ctime: Time,
    /// Owner's user id, at the owner (the same numbers on every host).
    pub uid: u32,
    /// Group id, at the owner.
    pub gid: u32,
    /// The owner takes root on other hosts as `nobody` for this file.
    pub root_squash: bool,
}

/// Who may do what with a file, as its owner says: its mode, owner and
/// group, and whether root on other hosts is squashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perm {
    /// Permission bits.
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Root on other hosts is taken as `nobody`.
    pub root_squash: bool,
}

impl Perm {
    /// Those of `a`, an owner's attributes of its file.
    pub fn of(a: &wfs_abi::Attr) -> Perm {
        Perm {
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            root_squash: a.root_squash,
        }
    }
}

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// No host exports it.
    NotFound,
    /// Several hosts export it; none may serve it.
    Duplicate(Vec<HostId>),
    /// No host that answered exports it, but these could not be asked.
    Unreachable(Vec<HostId>),
}

/// A resolved name.
pub type Resolution = Result<(HostId, FileInfo), NameError>;

/// Most names in one part of a listing.
pub const LISTED_NAMES: usize = 4096;
/// Most bytes of names in one part of a listing (far below a frame's
/// limit, whatever the names' lengths).
pub const LISTED_BYTES: usize = 256 * 1024;

/// `names` in parts of at most [`LISTED_NAMES`] names and
/// [`LISTED_BYTES`] bytes of them, for `Listed` messages: a directory of
/// any size is listed whole, each message well below a frame's limit.
/// Always one part at least (an empty one for no names).
pub fn listing_parts(names: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut parts = vec![Vec::new()];
    let mut bytes = 0;
    for n in names {
        let last = parts.last().map_or(0, Vec::len);
        if last > 0 && (last == LISTED_NAMES || bytes + n.len() > LISTED_BYTES) {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += n.len();
        if let Some(p) = parts.last_mut() {
            p.push(n);
        }
    }
    parts
}

/// Messages of the name service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMsg {
    /// Do you export `name`?
    Lookup { id: u64, name: Vec<u8> },
    /// The answer to lookup `id`.
    Answer { id: u64, found: Option<FileInfo> },
    /// Which names do you export?
    List { id: u64 },
    /// The answer to listing `id`, in parts ([`listing_parts`]); `last`
    /// marks the last part.
    Listed {
        id: u64,
        names: Vec<Vec<u8>>,
        last: bool,
    },
    /// Which name of yours has file id `file`? (A manager that restarted
    /// gets requests for files its kernel looked up under its predecessor.)
    NameOf { id: u64, file: u64 },
    /// The answer to `NameOf` `id`: the name, if this host exports it.
    Named { id: u64, name: Option<Vec<u8>> },
    /// May the sender make `name`? Its stamp is `(at, sender)`
    /// (`namespace.rs`).
    Reserve { id: u64, name: Vec<u8>, at: u64 },
    /// The answer to reservation `id`: the name exists (`found`: its owner
    /// and file), or the receiver voted for another reservation of it
    /// (`refused`), or neither (its vote is granted).
    Reserved {
        id: u64,
        found: Option<(HostId, FileInfo)>,
        refused: bool,
    },
    /// The vote for the sender's reservation of `name` under stamp `at`
    /// is given back (it lost, or the file could not be made).
    Release { name: Vec<u8>, at: u64 },
    /// Forget what you cached of `name`: the sender made it (`made`: the
    /// file) or removed it. `id` 0: no answer is waited for.
    Forget {
        id: u64,
        name: Vec<u8>,
        made: Option<FileInfo>,
        /// The file the name stood for, gone now (removed, or replaced by
        /// a rename over it): who owns it is forgotten. 0: none (made, or
        /// renamed away: the file lives on under its new name).
        gone: u64,
    },
    /// The answer to `Forget` `id`.
    Forgot { id: u64 },
    /// To a file's owner: remove `name` (file `file`).
    Unlink { id: u64, file: u64, name: Vec<u8> },
    /// The answer to `Unlink` `id`: 0, or an errno.
    Unlinked { id: u64, error: i32 },
    /// To a file's owner: name file `file`, named `from`, `to` instead,
    /// replacing file `target` of that name (0: no file has it, and with
    /// `noreplace` none may).
    Rename {
        id: u64,
        file: u64,
        target: u64,
        noreplace: bool,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// The answer to `Rename` `id`: 0, or an errno.
    Renamed { id: u64, error: i32 },
    /// To a file's owner: the sender has file `file` open (its kernel's
    /// first open of it); count it in the file's open set. `id` 0: no
    /// answer is waited for (sent again after the owner restarted).
    Open { id: u64, file: u64 },
    /// The answer to `Open` `id`: 0, or an errno (`ENOENT`: not a file of
    /// the receiver).
    Opened { id: u64, error: i32 },
    /// To a file's owner: the sender's last open of file `file` is over.
    Close { file: u64 },
    /// To a file's owner: set file `file`'s modification time (and access
    /// time) to `sec`.`nsec` (the sender's kernel's SETTIMES: `utimensat`).
    SetTimes {
        id: u64,
        file: u64,
        sec: i64,
        nsec: u32,
    },
    /// The answer to `SetTimes` `id`: 0, or an errno.
    TimesSet { id: u64, error: i32 },
    /// To the host a placement rule names for `name`: make it, as if your
    /// kernel had asked (`O_EXCL` if `excl`), with permissions `mode`,
    /// within `within_ms` milliseconds (the asker's kernel gives up then:
    /// later, nothing is made).
    Make {
        id: u64,
        name: Vec<u8>,
        mode: u32,
        excl: bool,
        /// The creator's user and group ids (its fsuid and fsgid, as its
        /// kernel said): the file's owner, unless the maker squashes that
        /// host's root (`root_squash`), when ids 0 are `nobody`'s.
        uid: u32,
        gid: u32,
        within_ms: u32,
    },
    /// The answer to `Make` `id`: the file (made, or found when not
    /// `excl`) and its owner, or an errno.
    Made {
        id: u64,
        made: Result<(HostId, FileInfo), i32>,
    },
}

/// What the name service asks its environment to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOutput {
    /// Send `msg` to `to`.
    Send { to: HostId, msg: NameMsg },
    /// Look `name` up again for requests `reqs`: it was forgotten while
    /// they were being answered (made or removed meanwhile), so their
    /// answers may be from before the change.
    Again { reqs: Vec<u64>, name: Vec<u8> },
    /// Answer the kernel's LOOKUP `req`.
    Reply { req: u64, result: Resolution },
    /// The cluster's directory for READDIR `req`: every name exported by
    /// this host or a peer that answered, sorted, each once.
    Listing { req: u64, names: Vec<Vec<u8>> },
    /// The name of the file asked about by [`Names::name_of_file`] `req`:
    /// a name some host exports under that id; or `Err` with the hosts
    /// that could not be asked (none: nobody exports it).
    Named {
        req: u64,
        result: Result<Vec<u8>, Vec<HostId>>,
    },
}

/// A file id being named.
#[derive(Debug)]
struct Naming {
    req: u64,
    waiting: BTreeSet<HostId>,
    unreachable: Vec<HostId>,
}

/// A directory listing being gathered.
#[derive(Debug)]
struct Listing {
    req: u64,
    waiting: BTreeSet<HostId>,
    names: BTreeSet<Vec<u8>>,
}

#[derive(Debug)]
struct Pending {
    name: Vec<u8>,
    reqs: Vec<u64>,
    /// The name was forgotten meanwhile: asked again once answered.
    again: bool,
    waiting: BTreeSet<HostId>,
    owners: BTreeMap<HostId, FileInfo>,
    unreachable: Vec<HostId>,
}

/// One host's side of the name service.
#[derive(Debug)]
pub struct Names {
    me: HostId,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    by_name: HashMap<Vec<u8>, u64>,
    cache: HashMap<Vec<u8>, (HostId, FileInfo)>,
    listings: HashMap<u64, Listing>,
    naming: HashMap<u64, Naming>,
    /// Files whose owner restarted since their size was cached.
    stale: HashSet<u64>,
}

impl Names {
    /// The name service of host `me`.
    pub fn new(me: HostId) -> Self {
        Names {
            me,
            next_id: 0,
            pending: HashMap::new(),
            by_name: HashMap::new(),
            cache: HashMap::new(),
            listings: HashMap::new(),
            naming: HashMap::new(),
            stale: HashSet::new(),
        }
    }

    /// Finds the name of file id `file` (request `req` of the caller's):
    /// asks every peer in `peers` (connected now); `down` cannot be asked.
    pub fn name_of_file(
        &mut self,
        req: u64,
        file: u64,
        peers: &[HostId],
        down: &[HostId],
    ) -> Vec<NameOutput> {
        self.next_id += 1;
        let id = (u64::from(self.me) << 48) | self.next_id;
        let n = Naming {
            req,
            waiting: peers.iter().copied().filter(|&h| h != self.me).collect(),
            unreachable: down.to_vec(),
        };
        let mut out: Vec<NameOutput> = n
            .waiting
            .iter()
            .map(|&to| NameOutput::Send {
                to,
                msg: NameMsg::NameOf { id, file },
            })
            .collect();
        self.naming.insert(id, n);
        out.extend(self.settle_naming(id, None));
        out
    }

    /// A peer's answer to [`NameMsg::NameOf`]: the first name found
    /// answers (its LOOKUP then finds out if another host exports it too).
    pub fn named(&mut self, from: HostId, id: u64, name: Option<Vec<u8>>) -> Vec<NameOutput> {
        let Some(n) = self.naming.get_mut(&id) else {
            return Vec::new();
        };
        if !n.waiting.remove(&from) {
            return Vec::new();
        }
        self.settle_naming(id, name)
    }

    fn settle_naming(&mut self, id: u64, found: Option<Vec<u8>>) -> Vec<NameOutput> {
        let done = found.is_some() || self.naming.get(&id).is_some_and(|n| n.waiting.is_empty());
        if !done {
            return Vec::new();
        }
        let Some(n) = self.naming.remove(&id) else {
            return Vec::new();
        };
        let result = found.ok_or(n.unreachable);
        vec![NameOutput::Named { req: n.req, result }]
    }

    /// The kernel lists the directory (READDIR `req` from its start):
    /// `local` are this host's names; every peer in `peers` is asked for
    /// its own. Peers that are down are left out of the listing.
    pub fn list(&mut self, req: u64, local: Vec<Vec<u8>>, peers: &[HostId]) -> Vec<NameOutput> {
        self.next_id += 1;
        let id = (u64::from(self.me) << 48) | self.next_id;
        let l = Listing {
            req,
            waiting: peers.iter().copied().filter(|&h| h != self.me).collect(),
            names: local.into_iter().collect(),
        };
        let mut out: Vec<NameOutput> = l
            .waiting
            .iter()
            .map(|&to| NameOutput::Send {
                to,
                msg: NameMsg::List { id },
            })
            .collect();
        self.listings.insert(id, l);
        out.extend(self.settle_listing(id));
        out
    }

    /// A peer's answer to a listing.
    pub fn listed(
        &mut self,
        from: HostId,
        id: u64,
        names: Vec<Vec<u8>>,
        last: bool,
    ) -> Vec<NameOutput> {
        let Some(l) = self.listings.get_mut(&id) else {
            return Vec::new();
        };
        if !l.waiting.contains(&from) {
            return Vec::new();
        }
        l.names.extend(names);
        if !last {
            return Vec::new();
        }
        l.waiting.remove(&from);
        self.settle_listing(id)
    }

    fn settle_listing(&mut self, id: u64) -> Vec<NameOutput> {
        if !self.listings.get(&id).is_some_and(|l| l.waiting.is_empty()) {
            return Vec::new();
        }
        let Some(l) = self.listings.remove(&id) else {
            return Vec::new();
        };
        vec![NameOutput::Listing {
            req: l.req,
            names: l.names.into_iter().collect(),
        }]
    }

    /// The owner of a file this host has resolved (or exports), if known.
    pub fn owner_of(&self, file: u64) -> Option<(HostId, FileInfo)> {
        self.cache.values().find(|(_, i)| i.file == file).copied()
    }

    /// What this host has cached of `name`: its owner and attributes.
    pub fn lookup_cached(&self, name: &[u8]) -> Option<(HostId, FileInfo)> {
        self.cache.get(name).copied()
    }

    /// The name of a file this host has resolved, if known.
    pub fn name_of(&self, file: u64) -> Option<&[u8]> {
        self.cache
            .iter()
            .find(|(_, (_, i))| i.file == file)
            .map(|(n, _)| n.as_slice())
    }

    /// The kernel looks `name` up (LOOKUP `req`). `local` is what this
    /// host's own export says of it; `peers` are the peers connected now,
    /// `down` those that are not.
    pub fn lookup(
        &mut self,
        req: u64,
        name: &[u8],
        local: Option<FileInfo>,
        peers: &[HostId],
        down: &[HostId],
    ) -> Vec<NameOutput> {
        if let Some(&(owner, info)) = self.cache.get(name) {
            match (owner == self.me, local) {
                (true, Some(l)) => {
                    return vec![NameOutput::Reply {
                        req,
                        result: Ok((owner, l)),
                    }];
                }
                (false, None) if !self.stale.contains(&info.file) => {
                    return vec![NameOutput::Reply {
                        req,
                        result: Ok((owner, info)),
                    }];
                }
                // Its owner restarted since: ask everyone again (the entry
                // stays, stale, until the answer replaces it).
                (false, None) => {}
                // Gone from this host's export, or exported here as well
                // since: ask everyone again, so a duplicate is never served.
                _ => {
                    self.cache.remove(name);
                }
            }
        }
        if let Some(id) = self.by_name.get(name)
            && let Some(p) = self.pending.get_mut(id)
        {
            p.reqs.push(req);
            return Vec::new();
        }
        self.next_id += 1;
        let id = (u64::from(self.me) << 48) | self.next_id;
        let mut p = Pending {
            name: name.to_vec(),
            reqs: vec![req],
            again: false,
            waiting: peers.iter().copied().filter(|&h| h != self.me).collect(),
            owners: BTreeMap::new(),
            unreachable: down.to_vec(),
        };
        if let Some(l) = local {
            p.owners.insert(self.me, l);
        }
        let out = p
            .waiting
            .iter()
            .map(|&to| NameOutput::Send {
                to,
                msg: NameMsg::Lookup {
                    id,
                    name: name.to_vec(),
                },
            })
            .collect();
        self.by_name.insert(name.to_vec(), id);
        self.pending.insert(id, p);
        let mut out: Vec<NameOutput> = out;
        out.extend(self.settle(id));
        out
    }

    /// The name lookup `id` (this host's, under way) asks for.
    pub fn asked_name(&self, id: u64) -> Option<&[u8]> {
        self.pending.get(&id).map(|p| p.name.as_slice())
    }

    /// The ids of the lookups under way.
    #[cfg(test)]
    pub fn pending_ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// A peer's answer.
    pub fn answer(&mut self, from: HostId, id: u64, found: Option<FileInfo>) -> Vec<NameOutput> {
        let Some(p) = self.pending.get_mut(&id) else {
            return Vec::new();
        };
        if !p.waiting.remove(&from) {
            return Vec::new();
        }
        if let Some(f) = found {
            p.owners.insert(from, f);
        }
        self.settle(id)
    }

    /// `peer`'s connection is gone: lookups waiting for it stop waiting
    /// (it counts as unreachable). What it owns stays cached.
    pub fn peer_down(&mut self, peer: HostId) -> Vec<NameOutput> {
        let ids: Vec<u64> = self
            .pending
            .iter_mut()
            .filter_map(|(id, p)| {
                p.waiting.remove(&peer).then(|| {
                    p.unreachable.push(peer);
                    *id
                })
            })
            .collect();
        let lists: Vec<u64> = self
            .listings
            .iter_mut()
            .filter_map(|(id, l)| l.waiting.remove(&peer).then_some(*id))
            .collect();
        let naming: Vec<u64> = self
            .naming
            .iter_mut()
            .filter_map(|(id, n)| {
                n.waiting.remove(&peer).then(|| {
                    n.unreachable.push(peer);
                    *id
                })
            })
            .collect();
        let mut out: Vec<NameOutput> = ids.into_iter().flat_map(|id| self.settle(id)).collect();
        out.extend(lists.into_iter().flat_map(|id| self.settle_listing(id)));
        out.extend(
            naming
                .into_iter()
                .flat_map(|id| self.settle_naming(id, None)),
        );
        out
    }

    /// File `file` is at least `size` bytes long now, as its owner says
    /// (its current incarnation: the cached size is not stale any more):
    /// its cached size grows to that (never shrinks: a later growth may
    /// have been heard first). Returns whether it grew.
    pub fn grow(&mut self, file: u64, size: u64) -> bool {
        self.stale.remove(&file);
        let mut grew = false;
        for (_, info) in self.cache.values_mut() {
            if info.file == file && info.size < size {
                info.size = size;
                grew = true;
            }
        }
        grew
    }

    /// The owner of `file` says these are its times, mode, ids and root
    /// squashing now.
    pub fn set_times(&mut self, file: u64, mtime: Time, ctime: Time, perm: Perm) {
        for (_, info) in self.cache.values_mut() {
            if info.file == file {
                (info.mtime, info.ctime) = (mtime, ctime);
                (info.mode, info.uid, info.gid) = (perm.mode, perm.uid, perm.gid);
                info.root_squash = perm.root_squash;
            }
        }
    }

    /// Sets the cached size of `file` to exactly `size` (its owner cut
    /// it); returns whether it changed.
    pub fn cut(&mut self, file: u64, size: u64) -> bool {
        self.stale.remove(&file);
        let mut changed = false;
        for (_, info) in self.cache.values_mut() {
            if info.file == file && info.size != size {
                info.size = size;
                changed = true;
            }
        }
        changed
    }

    /// `owner` exports `name` as `info` (it said so answering a
    /// reservation of the name).
    pub fn learned(&mut self, name: &[u8], owner: HostId, info: FileInfo) {
        self.cache_put(name, owner, info);
        self.stale.remove(&info.file);
    }

    /// Caches `name` as `owner`'s file `info`: the one name of that file
    /// (what was kept of it under another, or under none, goes).
    fn cache_put(&mut self, name: &[u8], owner: HostId, info: FileInfo) {
        self.cache
            .retain(|n, (_, i)| i.file != info.file || n == name);
        self.cache.insert(name.to_vec(), (owner, info));
    }

    /// Forgets all that is cached of `file`: it is gone (removed, or
    /// replaced by a rename).
    pub fn forget_file(&mut self, file: u64) {
        self.cache.retain(|_, (_, i)| i.file != file);
        self.stale.remove(&file);
    }

    /// Forgets a cached name (the manager's FORGET of it); a lookup of it
    /// under way is asked again once answered ([`NameOutput::Again`]).
    ///
    /// The file it stood for may live on without it (renamed, or kept
    /// while open after an unlink: `Documentation/fs-plan.md`, step 2): what
    /// is known of it stays, under its hidden name (which no lookup
    /// finds), until it is learned under another name or is gone
    /// ([`Names::forget_file`]).
    pub fn forget(&mut self, name: &[u8]) {
        if let Some((o, i)) = self.cache.remove(name)
            && crate::export::shown(name)
            && o != self.me
        {
            self.cache.insert(crate::export::gone_name(i.file), (o, i));
        }
        if let Some(id) = self.by_name.get(name)
            && let Some(p) = self.pending.get_mut(id)
        {
            p.again = true;
        }
    }

    /// `owner`'s manager restarted: the sizes cached of its files may be
    /// behind its disk, stale until it says them again. Returns how many.
    pub fn owner_restarted(&mut self, owner: HostId) -> usize {
        let files: Vec<u64> = self
            .cache
            .values()
            .filter(|(o, _)| *o == owner && owner != self.me)
            .map(|(_, i)| i.file)
            .collect();
        let n = files.len();
        self.stale.extend(files);
        n
    }

    /// Whether `file`'s cached size is stale: its owner restarted since,
    /// and has not said it again.
    pub fn is_stale(&self, file: u64) -> bool {
        self.stale.contains(&file)
    }

    /// Answers lookup `id` if nobody is left to hear from.
    fn settle(&mut self, id: u64) -> Vec<NameOutput> {
        let done = self.pending.get(&id).is_some_and(|p| p.waiting.is_empty());
        if !done {
            return Vec::new();
        }
        let Some(p) = self.pending.remove(&id) else {
            return Vec::new();
        };
        self.by_name.remove(&p.name);
        if p.again {
            return vec![NameOutput::Again {
                reqs: p.reqs,
                name: p.name,
            }];
        }
        let mut owners = p.owners.iter();
        // (A name asked again because its owner restarted, which cannot be
        // asked now: as cached, still stale.)
        let cached = self
            .cache
            .get(&p.name)
            .copied()
            .filter(|(o, _)| p.unreachable.contains(o));
        let result = match (owners.next(), owners.next()) {
            (Some((&owner, &info)), None) => {
                let name = p.name.clone();
                self.cache_put(&name, owner, info);
                self.stale.remove(&info.file);
                Ok((owner, info))
            }
            (None, _) if p.unreachable.is_empty() => Err(NameError::NotFound),
            (None, _) => cached.ok_or(NameError::Unreachable(p.unreachable)),
            (Some(_), Some(_)) => Err(NameError::Duplicate(p.owners.keys().copied().collect())),
        };
        p.reqs
            .into_iter()
            .map(|req| NameOutput::Reply {
                req,
                result: result.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileInfo = FileInfo {
        file: 42,
        size: 8192,
        mode: 0o644,
        mtime: Time { sec: 1, nsec: 2 },
        ctime: Time { sec: 3, nsec: 4 },
        uid: 0,
        gid: 0,
        root_squash: true,
    };

    /// The id of the lookup the first output asks a peer for.
    fn lookup_id(out: &[NameOutput]) -> u64 {
        match out.first() {
            Some(NameOutput::Send {
                msg: NameMsg::Lookup { id, .. },
                ..
            }) => *id,
            _ => panic!("not a lookup: {out:?}"),
        }
    }

    fn reply(out: &[NameOutput]) -> Option<Resolution> {
        out.iter().find_map(|o| match o {
            NameOutput::Reply { result, .. } => Some(result.clone()),
            _ => None,
        })
    }

    #[test]
    fn one_owner_resolves_and_is_cached() {
        let mut n = Names::new(1);
        let out = n.lookup(7, b"f", None, &[0, 2], &[]);
        assert_eq!(out.len(), 2, "asks both peers: {out:?}");
        assert!(reply(&out).is_none());
        assert!(n.answer(0, 99, Some(F)).is_empty(), "unknown lookup id");
        let id = lookup_id(&out);
        assert!(n.answer(0, id, None).is_empty());
        assert!(
            n.answer(0, id, None).is_empty(),
            "a second answer is ignored"
        );
        let out = n.answer(2, id, Some(F));
        assert_eq!(reply(&out), Some(Ok((2, F))));
        // Cached: no messages the second time.
        let out = n.lookup(8, b"f", None, &[0, 2], &[]);
        assert_eq!(
            out,
            vec![NameOutput::Reply {
                req: 8,
                result: Ok((2, F))
            }]
        );
        // Exported here as well now: asked again, and refused.
        let out = n.lookup(10, b"f", Some(F), &[0, 2], &[]);
        assert_eq!(out.len(), 2, "{out:?}");
        let id = lookup_id(&out);
        assert!(n.answer(0, id, None).is_empty());
        assert_eq!(
            reply(&n.answer(2, id, Some(F))),
            Some(Err(NameError::Duplicate(vec![1, 2])))
        );
        // Once it is gone here again, host 2 owns it alone.
        let out = n.lookup(11, b"f", None, &[0, 2], &[]);
        let id = lookup_id(&out);
        assert!(n.answer(0, id, None).is_empty());
        assert_eq!(reply(&n.answer(2, id, Some(F))), Some(Ok((2, F))));
        // The owner's connection dropping does not forget it.
        assert!(n.peer_down(2).is_empty());
        assert_eq!(
            n.lookup(9, b"f", None, &[0], &[2]),
            vec![NameOutput::Reply {
                req: 9,
                result: Ok((2, F))
            }]
        );
        assert_eq!(n.owner_of(42), Some((2, F)));
    }

    #[test]
    fn a_cached_size_only_grows() {
        let mut n = Names::new(1);
        let out = n.lookup(7, b"f", None, &[2], &[]);
        n.answer(2, lookup_id(&out), Some(F));
        assert!(!n.grow(43, 1 << 20), "not a cached file");
        assert!(!n.grow(42, F.size), "the same size");
        assert!(!n.grow(42, 100), "smaller");
        assert!(n.grow(42, 3 * 4096));
        let grown = FileInfo {
            size: 3 * 4096,
            ..F
        };
        assert_eq!(n.owner_of(42), Some((2, grown)));
        // A cached LOOKUP answers the size it grew to.
        assert_eq!(
            n.lookup(8, b"f", None, &[2], &[]),
            vec![NameOutput::Reply {
                req: 8,
                result: Ok((2, grown))
            }]
        );
    }

    #[test]
    fn a_restarted_owners_sizes_are_stale_until_it_says_them_again() {
        let mut n = Names::new(1);
        let out = n.lookup(7, b"f", None, &[2, 3], &[]);
        let id = lookup_id(&out);
        n.answer(3, id, None);
        n.answer(2, id, Some(F));
        assert!(!n.is_stale(42));
        assert_eq!(n.owner_restarted(3), 0, "owns nothing here");
        assert_eq!(n.owner_restarted(2), 1);
        assert!(n.is_stale(42));
        // Still its owner's (and its size known, if stale).
        assert_eq!(n.owner_of(42), Some((2, F)));
        // A LOOKUP asks everyone again, and the answer is fresh.
        let out = n.lookup(8, b"f", None, &[2, 3], &[]);
        assert_eq!(out.len(), 2, "{out:?}");
        let id = lookup_id(&out);
        n.answer(3, id, None);
        let grown = FileInfo {
            size: 5 * 4096,
            ..F
        };
        assert_eq!(reply(&n.answer(2, id, Some(grown))), Some(Ok((2, grown))));
        assert!(!n.is_stale(42));
        // Asked again while the restarted owner cannot be asked: as
        // cached, still stale.
        n.owner_restarted(2);
        let out = n.lookup(10, b"f", None, &[3], &[2]);
        assert_eq!(
            reply(&n.answer(3, lookup_id(&out), None)),
            Some(Ok((2, grown)))
        );
        assert!(n.is_stale(42));
        // Or the owner says its size (an answer, a SizeIs), even the same.
        n.owner_restarted(2);
        assert!(n.is_stale(42));
        assert!(!n.grow(42, grown.size));
        assert!(!n.is_stale(42));
        assert_eq!(
            n.lookup(9, b"f", None, &[2, 3], &[]),
            vec![NameOutput::Reply {
                req: 9,
                result: Ok((2, grown))
            }]
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let mut n = Names::new(0);
        // This host exports it too, and so does host 2.
        let out = n.lookup(1, b"dup", Some(F), &[1, 2], &[]);
        let id = lookup_id(&out);
        assert!(n.answer(1, id, None).is_empty());
        let out = n.answer(2, id, Some(F));
        assert_eq!(reply(&out), Some(Err(NameError::Duplicate(vec![0, 2]))));
        // Not cached: the next lookup asks again.
        assert_eq!(n.lookup(2, b"dup", Some(F), &[1, 2], &[]).len(), 2);
    }

    #[test]
    fn a_listing_of_any_size_goes_in_parts_that_fit() {
        // (A listing used to be cut at 4096 names, silently.)
        let names: Vec<Vec<u8>> = (0..10_000u32)
            .map(|i| format!("{i:0>255}").into_bytes())
            .collect();
        let parts = listing_parts(names.clone());
        assert!(parts.len() > 3, "{}", parts.len());
        for p in &parts {
            assert!(!p.is_empty() && p.len() <= LISTED_NAMES);
            assert!(p.iter().map(Vec::len).sum::<usize>() <= LISTED_BYTES);
        }
        assert_eq!(parts.concat(), names, "every name, in order");
        let short: Vec<Vec<u8>> = (0..9000u32).map(|i| i.to_string().into_bytes()).collect();
        let parts = listing_parts(short);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [4096, 4096, 808]
        );
        assert_eq!(listing_parts(Vec::new()), vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn a_listing_in_parts_is_done_with_the_last() {
        let mut n = Names::new(0);
        let out = n.list(5, vec![b"a".to_vec()], &[1]);
        let NameOutput::Send {
            msg: NameMsg::List { id },
            ..
        } = out[0]
        else {
            panic!("{out:?}")
        };
        assert!(n.listed(1, id, vec![b"b".to_vec()], false).is_empty());
        let out = n.listed(1, id, vec![b"c".to_vec()], true);
        assert!(
            matches!(&out[..], [NameOutput::Listing { names, .. }] if names.len() == 3),
            "{out:?}"
        );
    }

    #[test]
    fn listing_merges_every_host() {
        let mut n = Names::new(0);
        let out = n.list(5, vec![b"b".to_vec(), b"a".to_vec()], &[1, 2]);
        assert_eq!(out.len(), 2, "asks both peers: {out:?}");
        let id = match &out[0] {
            NameOutput::Send {
                msg: NameMsg::List { id },
                ..
            } => *id,
            o => panic!("{o:?}"),
        };
        assert!(
            n.listed(1, id, vec![b"c".to_vec(), b"a".to_vec()], true)
                .is_empty()
        );
        assert!(
            n.listed(1, id, vec![b"x".to_vec()], true).is_empty(),
            "twice"
        );
        assert!(
            n.listed(2, id + 1, vec![b"y".to_vec()], true).is_empty(),
            "unknown"
        );
        // Host 2 goes away: the listing is what the others said.
        assert_eq!(
            n.peer_down(2),
            vec![NameOutput::Listing {
                req: 5,
                names: vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
            }]
        );
        // Alone: at once.
        assert_eq!(
            n.list(6, vec![], &[]),
            vec![NameOutput::Listing {
                req: 6,
                names: vec![]
            }]
        );
    }

    #[test]
    fn missing_and_unreachable() {
        let mut n = Names::new(0);
        // Alone in the cluster, with nothing exported: not found at once.
        assert_eq!(
            n.lookup(1, b"x", None, &[], &[]),
            vec![NameOutput::Reply {
                req: 1,
                result: Err(NameError::NotFound)
            }]
        );
        // A local file with every peer down resolves locally but reports
        // nothing missing; a missing one names the unreachable peers.
        assert_eq!(
            reply(&n.lookup(2, b"mine", Some(F), &[], &[1])),
            Some(Ok((0, F)))
        );
        assert_eq!(
            reply(&n.lookup(3, b"y", None, &[], &[1, 2])),
            Some(Err(NameError::Unreachable(vec![1, 2])))
        );
        // A peer going down while asked counts as unreachable.
        let out = n.lookup(4, b"z", None, &[1], &[]);
        assert!(reply(&out).is_none());
        let out = n.lookup(5, b"z", None, &[1], &[]);
        assert!(
            out.is_empty(),
            "a second lookup of the same name waits with the first"
        );
        let out = n.peer_down(1);
        assert_eq!(out.len(), 2);
        assert_eq!(reply(&out), Some(Err(NameError::Unreachable(vec![1]))));
    }

    #[test]
    fn naming_a_file_id() {
        let mut n = Names::new(0);
        let out = n.name_of_file(7, 42, &[1, 2], &[3]);
        let id = match &out[..] {
            [
                NameOutput::Send {
                    to: 1,
                    msg: NameMsg::NameOf { id, file: 42 },
                },
                NameOutput::Send { to: 2, .. },
            ] => *id,
            o => panic!("{o:?}"),
        };
        // A host without it, then one with it: the name answers at once.
        assert!(n.named(1, id, None).is_empty());
        assert_eq!(
            n.named(2, id, Some(b"f".to_vec())),
            vec![NameOutput::Named {
                req: 7,
                result: Ok(b"f".to_vec())
            }]
        );
        assert!(
            n.named(2, id, Some(b"f".to_vec())).is_empty(),
            "answered once"
        );
        // Nobody has it: the hosts that could not be asked are named.
        let out = n.name_of_file(8, 43, &[1], &[3]);
        let id = match &out[..] {
            [
                NameOutput::Send {
                    msg: NameMsg::NameOf { id, .. },
                    ..
                },
            ] => *id,
            o => panic!("{o:?}"),
        };
        assert_eq!(
            n.peer_down(1),
            vec![NameOutput::Named {
                req: 8,
                result: Err(vec![3, 1])
            }]
        );
        assert!(n.named(1, id, None).is_empty());
        // No peer at all: answered at once.
        assert_eq!(
            n.name_of_file(9, 44, &[], &[]),
            vec![NameOutput::Named {
                req: 9,
                result: Err(vec![])
            }]
        );
    }
}
