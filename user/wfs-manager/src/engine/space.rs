//! CREATE and UNLINK (Documentation/fs-plan.md, step 3): names made and
//! removed across the cluster. The reservation and forget rounds are
//! `namespace.rs`'s pure code; this is what the engine does with them.
//!
//! A CREATE makes the file in this host's export once the name is
//! reserved (a majority of the cluster's hosts voted for it, none has it),
//! then has every peer forget what it cached of the name (the connected
//! ones before the kernel is answered).
//!
//! A CREATE of a name a placement rule (`[[place]]`) gives another host
//! goes to that host (`Make`), which makes the file as if its own kernel
//! had asked and answers (`Made`) once every peer forgot the name.
//!
//! An UNLINK goes to the file's owner, which takes every page of the file
//! back from every host by shrinking it to 0 bytes (the shrink's recall,
//! cut and telling), removes it from its export, keeps its pages refused
//! (the core's limit at 0) until a file of that name is made again, and
//! has every connected peer forget the name before it answers.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wfs_abi::{Attr, ReplyBody, errno};

use super::{Engine, Resized, SizeThen, attr, info, kernel_errno};
use crate::names::{FileInfo, NameMsg};
use crate::namespace::Reserved;
use crate::protocol::HostId;
use crate::wire::PeerMsg;
use crate::wlog;

/// How long a CREATE waits at least before asking again when its
/// reservation lost (another is making the name, or the votes split): the
/// name is then found, or free again. A random part up to as long again
/// is added, so that two losers do not split the votes again in step.
pub(super) const BUSY_RETRY: Duration = Duration::from_millis(20);

/// Keys of the creations other hosts ask for (`Make`), apart from the
/// kernel's request numbers in [`Space::creating`].
const PEER_MAKE: u64 = 1 << 63;

/// Who asked for a creation.
#[derive(Debug, Clone, Copy)]
pub(super) enum Asker {
    /// This host's kernel: the CREATE whose request is the key.
    Kernel,
    /// Another host, by a placement rule: its `Make` `id`.
    Peer { host: HostId, id: u64 },
}

/// A CREATE under way.
#[derive(Debug)]
pub(super) struct Creating {
    name: Vec<u8>,
    mode: u32,
    excl: bool,
    /// The new file's user and group ids: its creator's, as this host
    /// takes them for a peer's `Make` (`Export::made_for`), or why it
    /// makes no file for that creator.
    ids: Result<(u32, u32), i32>,
    started: Instant,
    /// The reservation lost: ask again at this time.
    retry_at: Option<Instant>,
    asker: Asker,
    /// Sent to the host a placement rule names, as its `Make` of this id.
    placed: Option<(HostId, u64)>,
    /// Another host's: given up at this time (its kernel's time-out).
    until: Option<Instant>,
    /// Not a file to make: the name a rename of this owner's file takes.
    rename: Option<RenameOf>,
}

/// A rename waiting for its new name's reservation.
#[derive(Debug)]
pub(super) struct RenameOf {
    /// The file, by id.
    file: u64,
    /// Its name now.
    from: Vec<u8>,
    /// `RENAME_NOREPLACE`.
    noreplace: bool,
    /// Who waits.
    then: UnlinkThen,
}

impl Creating {
    /// Whether its asker has given it up by `now`: the kernel's time-out
    /// `timeout` since it came, or another host's own limit.
    fn given_up(&self, timeout: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.started) >= timeout
            || self.until.is_some_and(|u| u <= now)
    }
}

/// Who waits for an unlink or a rename.
#[derive(Debug, Clone, Copy)]
pub(super) enum UnlinkThen {
    /// This host's kernel: UNLINK or RENAME `req`.
    Kernel { req: u64, started: Instant },
    /// Another host's manager: its `Unlink` or `Rename` `id`.
    Peer { host: HostId, id: u64 },
    /// Nobody: the removal of a file kept while open, once nobody has it
    /// open ([`super::opens`]).
    Nobody,
}

/// Who waits for a forget round.
#[derive(Debug, Clone)]
pub(super) enum SpaceThen {
    /// CREATE `req` (of `asker`), answered with `attr`.
    Created {
        req: u64,
        started: Instant,
        attr: Attr,
        asker: Asker,
    },
    /// An unlink, done.
    Unlinked(UnlinkThen),
    /// A rename: its old name is forgotten everywhere; its new name `to`
    /// is forgotten next (the file `made` under it), then `then` is
    /// answered.
    RenamedFrom {
        to: Vec<u8>,
        made: FileInfo,
        /// The file the new name stood for, replaced (0: none).
        gone: u64,
        then: UnlinkThen,
    },
    /// A rename, done.
    Renamed(UnlinkThen),
}

/// What a removal's shrink to 0 leads to once no host holds a page of
/// the file.
#[derive(Debug)]
pub(super) struct Removal {
    /// The file.
    file: u64,
    /// The file's name.
    name: Vec<u8>,
    then: UnlinkThen,
    /// Removed (or renamed over) already.
    done: bool,
    /// Not removed but renamed over: by this file, named so now.
    by: Option<(u64, Vec<u8>)>,
}

/// This host's CREATEs, unlinks and the unlinks it asked of other owners.
#[derive(Debug, Default)]
pub(super) struct Space {
    /// The kernel's CREATEs under way, by request.
    pub(super) creating: HashMap<u64, Creating>,
    /// Removals of this owner's files waiting for their shrink to 0, by
    /// token ([`SizeThen::Removal`]): the file's name, who waits, and
    /// whether the shrink removed the file already.
    removals: HashMap<u64, Removal>,
    next_token: u64,
    /// UNLINKs and RENAMEs asked of another owner, by `Unlink` or `Rename`
    /// id: the kernel's request, when it came, the owner, and whether it
    /// is a RENAME.
    asked: HashMap<u64, (u64, Instant, HostId, bool)>,
}

impl Space {
    /// Whether this owner is removing `file` (its shrink to 0 under way).
    pub(super) fn removing(&self, file: u64) -> bool {
        self.removals.values().any(|r| r.file == file)
    }
}

/// The wall clock in nanoseconds (a reservation's clock starts there).
fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Engine {
    /// The kernel's CREATE `req` of `name`.
    pub(super) fn create(
        &mut self,
        req: u64,
        name: &[u8],
        mode: u32,
        excl: bool,
        ids: (u32, u32),
        started: Instant,
    ) {
        crate::engine::Counters::add(&self.counters.creates, 1);
        self.space.creating.insert(
            req,
            Creating {
                name: name.to_vec(),
                mode,
                excl,
                ids: Ok(ids),
                started,
                retry_at: None,
                asker: Asker::Kernel,
                placed: None,
                until: None,
                rename: None,
            },
        );
        self.try_create(req);
    }

    /// A peer's `Make` of `name` (`asker`, [`Asker::Peer`]), for its
    /// caller `ids`: a placement rule gives this host the files of that
    /// name. Made as the kernel's CREATE would be.
    pub(super) fn make_asked(
        &mut self,
        asker: Asker,
        name: &[u8],
        mode: u32,
        excl: bool,
        ids: (u32, u32),
        until: Instant,
    ) {
        let key = PEER_MAKE | self.space.next_token();
        // Made by this manager (root) at another host's word: never
        // set-user-id or set-group-id (a peer's root could otherwise plant
        // a set-uid-root file here), nor anything but permission bits.
        let mode = mode & 0o1777;
        // A peer's root is `nobody` here when this host squashes it: it
        // may open a file of that name, not make one.
        let ids = self.export.made_for(ids);
        self.space.creating.insert(
            key,
            Creating {
                name: name.to_vec(),
                mode,
                excl,
                ids,
                started: Instant::now(),
                retry_at: None,
                asker,
                placed: None,
                until: Some(until),
                rename: None,
            },
        );
        self.try_create(key);
    }

    /// The host a placement rule names for files made as `name`, if any.
    fn placed_at(&self, name: &[u8]) -> Option<HostId> {
        crate::config::placement_for(&self.placement, name).map(crate::config::host_id)
    }

    /// CREATE `req` goes to `at`, which a placement rule names for its
    /// name.
    fn create_at(&mut self, req: u64, at: HostId) {
        if self.peer_gone(at) {
            return self.create_failed(req, libc::EHOSTDOWN);
        }
        let id = self.space.next_token();
        // (It gives up a tenth before this host's kernel would: a file it
        // made after that would be one the kernel was told failed.)
        let left = self.sizes.kernel_timeout().saturating_sub(
            self.space
                .creating
                .get(&req)
                .map_or(Duration::ZERO, |c| c.started.elapsed()),
        );
        let within_ms = u32::try_from((left * 9 / 10).as_millis()).unwrap_or(u32::MAX);
        let Some(c) = self.space.creating.get_mut(&req) else {
            return;
        };
        c.placed = Some((at, id));
        // (A kernel's CREATE always has its caller's ids.)
        let (uid, gid) = c.ids.unwrap_or((u32::MAX, u32::MAX));
        let msg = NameMsg::Make {
            id,
            name: c.name.clone(),
            mode: c.mode,
            excl: c.excl,
            uid,
            gid,
            within_ms,
        };
        crate::engine::Counters::add(&self.counters.creates_placed, 1);
        self.send(at, PeerMsg::Name(msg));
    }

    /// `from`'s answer to this host's `Make` `id`.
    pub(super) fn made_answered(
        &mut self,
        from: HostId,
        id: u64,
        made: Result<(HostId, FileInfo), i32>,
    ) {
        let Some((&req, c)) = self
            .space
            .creating
            .iter()
            .find(|(_, c)| c.placed == Some((from, id)))
        else {
            // (Given up.)
            return;
        };
        match made {
            // (Another host's file: no CREATE answered with it.)
            Ok((owner, info))
                if owner == from && !self.may_own(from, &c.name, info.file, "a Made") =>
            {
                self.create_failed(req, libc::EIO);
            }
            Ok((owner, info)) => {
                // (Cached only from the owner's own word.)
                if owner == from {
                    let name = c.name.clone();
                    self.names.learned(&name, owner, info);
                    self.core.add_file(info.file, owner);
                }
                if let Some(c) = self.space.creating.remove(&req) {
                    self.create_answer(req, c.asker, c.started, Ok(attr(&info)));
                }
            }
            // (Only an errno the kernel knows goes to it.)
            Err(e) => self.create_failed(req, if (1..4096).contains(&e) { e } else { libc::EIO }),
        }
    }

    /// Answers CREATE `req` of `asker`, which came at `started`.
    fn create_answer(
        &mut self,
        req: u64,
        asker: Asker,
        started: Instant,
        result: Result<Attr, i32>,
    ) {
        match asker {
            Asker::Kernel => {
                if result.is_err() {
                    crate::engine::Counters::add(&self.counters.creates_failed, 1);
                }
                self.reply(
                    req,
                    wfs_abi::Opcode::Create,
                    started,
                    result.map(ReplyBody::Attr),
                );
            }
            Asker::Peer { host, id } => {
                let made =
                    result.map(|a| (self.core.owner_of(a.file).unwrap_or(self.me), info(&a)));
                self.send(host, PeerMsg::Name(NameMsg::Made { id, made }));
            }
        }
    }

    /// Tries CREATE `req` (again): a name this host or the name service
    /// knows exists is answered at once; otherwise it is reserved.
    fn try_create(&mut self, req: u64) {
        let Some(c) = self.space.creating.get_mut(&req) else {
            return;
        };
        c.retry_at = None;
        let name = c.name.clone();
        let asker = c.asker;
        let c_is_file = c.rename.is_none();
        if let Ok(a) = self.export.lookup(&name) {
            self.core.add_file(a.file, self.me);
            return self.create_exists(req, a);
        }
        let cached = self
            .names
            .lookup_cached(&name)
            .filter(|&(owner, i)| owner != self.me && !self.names.is_stale(i.file));
        if let Some((owner, i)) = cached {
            self.core.add_file(i.file, owner);
            return self.create_exists(req, attr(&i));
        }
        // (Made where a placement rule says, unless asked by another
        // host: that host found this one named.)
        if let Asker::Kernel = asker
            && c_is_file
            && let Some(at) = self.placed_at(&name)
            && at != self.me
        {
            return self.create_at(req, at);
        }
        let (up, _) = self.connected();
        if !self.space_names.could_win(&up) {
            wlog!(
                "names: cannot make {:?}: this host reaches too few of the cluster's hosts for a majority of their votes",
                String::from_utf8_lossy(&name)
            );
            return self.create_failed(req, libc::EHOSTUNREACH);
        }
        match self
            .space_names
            .reserve(req, &name, wall_ns(), &up, Instant::now())
        {
            None => {
                // (This host's vote is taken: its own reservation of the
                // name, for a request the kernel gave up on, or another
                // host's: as a reservation that lost.)
                self.reserved(Reserved::Busy { req, name });
            }
            Some((sends, done)) => {
                self.send_names(sends);
                if let Some(r) = done {
                    self.reserved(r);
                }
            }
        }
    }

    pub(super) fn send_names(&mut self, sends: crate::namespace::Sends) {
        for (to, msg) in sends {
            self.send(to, PeerMsg::Name(msg));
        }
    }

    /// CREATE `req`'s name exists (`a`): `EEXIST` for `O_EXCL`, else its
    /// attributes. For a rename, the new name is another file's (made
    /// meanwhile, or another owner's): `EEXIST` with `RENAME_NOREPLACE`,
    /// else `EXDEV` (replacing another owner's file is a copy).
    fn create_exists(&mut self, req: u64, a: Attr) {
        let Some(c) = self.space.creating.remove(&req) else {
            return;
        };
        if let Some(r) = c.rename {
            let e = if r.noreplace {
                errno::EEXIST
            } else {
                errno::EXDEV
            };
            return self.rename_answer(r.then, Err(e));
        }
        // The kernel's negative dentry of the name (its LOOKUP was answered
        // before the name was made, and a FORGET of it that came before
        // the dentry was hashed missed it) would leave the file missing on
        // this host after the EEXIST: forgotten first.
        if c.excl
            && matches!(c.asker, Asker::Kernel)
            && let Err(e) = self.inval.forget_name(&c.name)
        {
            wlog!("names: {e}");
        }
        let result = if c.excl { Err(errno::EEXIST) } else { Ok(a) };
        self.create_answer(req, c.asker, c.started, result);
    }

    /// A reservation is over.
    pub(super) fn reserved(&mut self, r: Reserved) {
        let req = r.req();
        match r {
            Reserved::Exists {
                name,
                owner,
                info,
                first_hand,
                ..
            } => {
                // (Cached only from the owner's own word.)
                if first_hand {
                    self.names.learned(&name, owner, info);
                    self.core.add_file(info.file, owner);
                }
                self.create_exists(req, attr(&info));
            }
            Reserved::Busy { .. } => {
                let Some(c) = self.space.creating.get_mut(&req) else {
                    return;
                };
                let jitter = Duration::from_nanos(wall_ns() % BUSY_RETRY.as_nanos() as u64);
                c.retry_at = Some(Instant::now() + BUSY_RETRY + jitter);
            }
            Reserved::Granted { name, .. } => self.make_file(req, &name),
        }
    }

    /// The name of CREATE `req` is reserved: made in this host's export,
    /// then forgotten everywhere.
    fn make_file(&mut self, req: u64, name: &[u8]) {
        let timeout = self.sizes.kernel_timeout();
        let made = match self.space.creating.get(&req) {
            Some(c) if !c.given_up(timeout, Instant::now()) => match &c.rename {
                Some(r) => self
                    .export
                    .rename(r.file, &r.from, name, None)
                    .map(|a| (a, true)),
                None => c
                    .ids
                    .and_then(|ids| self.export.create(name, c.mode, true, ids)),
            },
            // (The request is gone, or its asker gave it up: nothing is
            // made.)
            _ => Err(errno::ETIMEDOUT),
        };
        let a = match made {
            Ok((a, _)) => a,
            Err(e) => {
                let sends = self.space_names.abandon(name);
                self.send_names(sends);
                return self.create_failed(req, kernel_errno(e));
            }
        };
        self.space_names.made(name);
        let Some(c) = self.space.creating.remove(&req) else {
            return;
        };
        if let Some(r) = c.rename {
            return self.renamed(&r.from, name, &a, 0, r.then);
        }
        // A file of that name removed before may have left its pages
        // refused, and a name cached.
        self.core.add_file(a.file, self.me);
        self.core.set_limit(a.file, None);
        self.names.forget(name);
        if let Some((_, c)) = self.file_rules.iter().find(|(n, _)| n.as_bytes() == name) {
            self.core.set_coherence(a.file, *c);
        }
        let then = SpaceThen::Created {
            req,
            started: c.started,
            attr: a,
            asker: c.asker,
        };
        self.forget_everywhere(name, Some(info(&a)), 0, then);
    }

    fn create_failed(&mut self, req: u64, error: i32) {
        if let Some(c) = self.space.creating.remove(&req) {
            match c.rename {
                Some(r) => self.rename_answer(r.then, Err(error)),
                None => self.create_answer(req, c.asker, c.started, Err(error)),
            }
        }
    }

    /// Asks again the CREATEs whose reservation lost, and gives up those
    /// the kernel has given up (its time-out).
    pub(super) fn retry_creates(&mut self) {
        let now = Instant::now();
        let timeout = self.sizes.kernel_timeout();
        // (A reservation under way past the kernel's time-out is given up
        // too: its request is gone; if it wins, nothing is made.)
        let due: Vec<(u64, bool)> = self
            .space
            .creating
            .iter()
            .filter_map(|(&r, c)| {
                let gave_up = c.given_up(timeout, now);
                (gave_up || c.retry_at.is_some_and(|t| t <= now)).then_some((r, gave_up))
            })
            .collect();
        for (req, gave_up) in due {
            if gave_up {
                self.create_failed(req, errno::ETIMEDOUT);
            } else {
                self.try_create(req);
            }
        }
    }

    /// Tells every live peer to forget `name` (`made`: the file this host
    /// made or renamed to it; `gone`: the file it stood for, removed or
    /// replaced, or 0); `then` is done once each connected one has (at
    /// once with nobody to wait for). A peer disconnected now hears it
    /// through its session when it is back.
    fn forget_everywhere(
        &mut self,
        name: &[u8],
        made: Option<FileInfo>,
        gone: u64,
        then: SpaceThen,
    ) {
        let (up, down) = self.connected();
        let mut live = up.clone();
        live.extend(down.into_iter().filter(|&h| !self.peer_gone(h)));
        let (sends, now) = self.space_names.forget(name, made, gone, &live, &up, then);
        self.send_names(sends);
        if let Some(then) = now {
            self.forgotten(then);
        }
    }

    /// A forget round is over.
    pub(super) fn forgotten(&mut self, then: SpaceThen) {
        match then {
            SpaceThen::Created {
                req,
                started,
                attr,
                asker,
            } => self.create_answer(req, asker, started, Ok(attr)),
            SpaceThen::Unlinked(u) => self.unlink_answer(u, Ok(())),
            SpaceThen::RenamedFrom {
                to,
                made,
                gone,
                then,
            } => {
                self.forget_everywhere(&to, Some(made), gone, SpaceThen::Renamed(then));
            }
            SpaceThen::Renamed(then) => self.rename_answer(then, Ok(())),
        }
    }

    /// The kernel's UNLINK `req` of `name`, file `file`.
    pub(super) fn unlink(&mut self, req: u64, file: u64, name: &[u8], started: Instant) {
        crate::engine::Counters::add(&self.counters.unlinks, 1);
        let then = UnlinkThen::Kernel { req, started };
        let at = self.core.owner_of(file).unwrap_or(self.me);
        if at == self.me {
            return self.owner_unlink(file, name, then);
        }
        if self.peer_gone(at) {
            return self.unlink_answer(then, Err(libc::EHOSTDOWN));
        }
        let id = self.space.next_token();
        self.space.asked.insert(id, (req, started, at, false));
        let msg = NameMsg::Unlink {
            id,
            file,
            name: name.to_vec(),
        };
        self.send(at, PeerMsg::Name(msg));
    }

    /// A peer's `Unlink` of a file this host should own.
    pub(super) fn unlink_asked(&mut self, from: HostId, id: u64, file: u64, name: &[u8]) {
        let then = UnlinkThen::Peer { host: from, id };
        match self.export.lookup(name) {
            Ok(a) if a.file == file => {
                self.core.add_file(file, self.me);
                self.owner_unlink(file, name, then);
            }
            _ => self.unlink_answer(then, Err(errno::ENOENT)),
        }
    }

    /// The owner's answer to this host's `Unlink` (or, `rename`, its
    /// `Rename`) `id`.
    pub(super) fn owner_answered(&mut self, from: HostId, id: u64, error: i32, rename: bool) {
        let Some(&(req, started, owner, asked_rename)) = self.space.asked.get(&id) else {
            return;
        };
        if owner != from || asked_rename != rename {
            return;
        }
        self.space.asked.remove(&id);
        let result = if error == 0 {
            Ok(())
        } else {
            Err(kernel_errno(error))
        };
        self.changed_answer(UnlinkThen::Kernel { req, started }, result, rename);
    }

    /// Fails the UNLINKs asked of owners taken for dead, and forgets those
    /// the kernel has given up (its time-out; an answer would find no
    /// request).
    pub(super) fn expire_unlinks(&mut self) {
        let timeout = self.sizes.kernel_timeout();
        let over: Vec<(u64, bool)> = self
            .space
            .asked
            .iter()
            .filter_map(|(&id, &(_, started, owner, _))| {
                let gone = self.peer_gone(owner);
                (gone || started.elapsed() >= timeout).then_some((id, gone))
            })
            .collect();
        for (id, gone) in over {
            if let Some((req, started, _, rename)) = self.space.asked.remove(&id)
                && gone
            {
                let then = UnlinkThen::Kernel { req, started };
                self.changed_answer(then, Err(libc::EHOSTDOWN), rename);
            }
        }
    }

    /// Removes this owner's `file`, `name`, for `then`: first a shrink to
    /// 0 bytes takes every page back from every host ([`SizeThen::Removal`]).
    fn owner_unlink(&mut self, file: u64, name: &[u8], then: UnlinkThen) {
        self.owner_remove(file, name, then, None);
    }

    /// Removes this owner's `file`, `name`, for `then`, or (`by`) renames
    /// another of its files over it, once a shrink to 0 bytes has taken
    /// every page back from every host.
    fn owner_remove(
        &mut self,
        file: u64,
        name: &[u8],
        then: UnlinkThen,
        by: Option<(u64, Vec<u8>)>,
    ) {
        match self.keep_if_open(file, name) {
            Ok(false) => self.owner_remove_now(file, name, then, by),
            // (Kept under its hidden name: only the name goes, now.)
            Ok(true) => self.name_removed(file, name, then, by, false),
            Err(e) => self.changed_answer(then, Err(kernel_errno(e)), by.is_some()),
        }
    }

    /// [`Engine::owner_remove`] of a file nobody has open: a shrink to 0
    /// bytes first.
    pub(super) fn owner_remove_now(
        &mut self,
        file: u64,
        name: &[u8],
        then: UnlinkThen,
        by: Option<(u64, Vec<u8>)>,
    ) {
        let token = self.space.next_token();
        self.space.removals.insert(
            token,
            Removal {
                file,
                name: name.to_vec(),
                then,
                done: false,
                by,
            },
        );
        self.owner_set_size(file, 0, false, SizeThen::Removal { token });
    }

    /// Every page of removal `token`'s file is home: the shrink removes the
    /// export file where it would cut it to 0 (an unlink that fails, as a
    /// disk error or the manager's death in between, leaves it whole).
    pub(super) fn remove_file(&mut self, token: u64, file: u64) -> Result<Resized, i32> {
        let Some(r) = self.space.removals.get_mut(&token) else {
            return Err(errno::ENOENT);
        };
        match &r.by {
            Some((by, from)) => {
                self.export.rename(*by, from, &r.name, Some(file))?;
            }
            None => self.export.remove(file, &r.name)?,
        }
        r.done = true;
        Ok(Resized {
            size: 0,
            changed: true,
            unsynced: None,
        })
    }

    /// The shrink to 0 of removal `token` is over (`result`): the file is
    /// gone from the export (removed now if it needed no shrink), and
    /// every host forgets its name.
    pub(super) fn removal_shrunk(&mut self, token: u64, file: u64, result: Result<u64, i32>) {
        let Some(Removal {
            name,
            then,
            done,
            by,
            ..
        }) = self.space.removals.remove(&token)
        else {
            return;
        };
        if matches!(then, UnlinkThen::Nobody) {
            // A kept file's hidden name, nobody's to hear of.
            let ok = result.is_ok() && (done || self.export.remove(file, &name).is_ok());
            if ok {
                self.file_gone(file);
                // (Every peer forgets what it kept of the file, under the
                // hidden name: who owns it, its size.)
                self.forget_everywhere(&name, None, file, SpaceThen::Unlinked(then));
            } else {
                wlog!(
                    "names: cannot remove {:?} (kept while open, closed since); tried again later",
                    String::from_utf8_lossy(&name)
                );
            }
            return self.kept_removed(file, ok);
        }
        if let Err(e) = result {
            return self.changed_answer(then, Err(e), by.is_some());
        }
        self.name_removed(file, &name, then, by, done);
    }

    /// Removes `name`, file `file`, from the export for `then` (or, `by`,
    /// renames that file over it), unless `done` already, and has every
    /// host forget it. The file's pages are refused from now on unless it
    /// is kept under its hidden name (some host has it open).
    fn name_removed(
        &mut self,
        file: u64,
        name: &[u8],
        then: UnlinkThen,
        by: Option<(u64, Vec<u8>)>,
        done: bool,
    ) {
        let answer = |e: &mut Engine, result| e.changed_answer(then, result, by.is_some());
        let name = name.to_vec();
        // (A file of 0 bytes needed no shrink: removed now.)
        let renamed = match &by {
            Some((by, from)) if !done => self.export.rename(*by, from, &name, Some(file)).map(Some),
            Some((by, _)) => self.export.getattr(*by).map(Some),
            None if !done => self.export.remove(file, &name).map(|()| None),
            None => Ok(None),
        };
        let renamed = match renamed {
            Ok(r) => r,
            Err(e) => {
                // (Kept for nothing: the name stays.)
                self.unkeep(file, &name);
                return answer(self, Err(kernel_errno(e)));
            }
        };
        // (Kept: its id lives on under its hidden name, for its holders.)
        let gone = if self.opens.kept_now(file) { 0 } else { file };
        if gone != 0 {
            self.file_gone(file);
        }
        if let (Some(a), Some((_, from))) = (renamed, &by) {
            return self.renamed(from, &name, &a, gone, then);
        }
        self.names.forget(&name);
        if !matches!(then, UnlinkThen::Kernel { .. })
            && let Err(e) = self.inval.forget_name(&name)
        {
            wlog!("names: {e}");
        }
        self.forget_everywhere(&name, None, gone, SpaceThen::Unlinked(then));
    }

    /// This owner's `file` is gone from its export: no page of it is
    /// handed out any more (a host taken for dead may come back with
    /// some), nobody owns its id, its size is nobody's concern, and
    /// nothing cached of it stays.
    fn file_gone(&mut self, file: u64) {
        self.core.set_limit(file, Some(0));
        self.core.forget_owner(file);
        self.cut_files.remove(&file);
        self.names.forget_file(file);
    }

    // -- renames ------------------------------------------------------------

    /// The kernel's RENAME `req`: file `file`, named `from`, is to be named
    /// `to`, replacing file `target` (0: none known).
    pub(super) fn rename(
        &mut self,
        req: u64,
        file: u64,
        target: u64,
        noreplace: bool,
        (from, to): (&[u8], &[u8]),
        started: Instant,
    ) {
        crate::engine::Counters::add(&self.counters.renames, 1);
        let then = UnlinkThen::Kernel { req, started };
        let at = self.core.owner_of(file).unwrap_or(self.me);
        // (A file of another owner in the way: `mv` copies.)
        if target != 0 && self.core.owner_of(target).is_some_and(|o| o != at) {
            return self.rename_answer(then, Err(errno::EXDEV));
        }
        if at == self.me {
            return self.owner_rename(file, noreplace, from, to, then);
        }
        if self.peer_gone(at) {
            return self.rename_answer(then, Err(libc::EHOSTDOWN));
        }
        let id = self.space.next_token();
        self.space.asked.insert(id, (req, started, at, true));
        let msg = NameMsg::Rename {
            id,
            file,
            target,
            noreplace,
            from: from.to_vec(),
            to: to.to_vec(),
        };
        self.send(at, PeerMsg::Name(msg));
    }

    /// A peer's `Rename` of a file this host should own.
    pub(super) fn rename_asked(
        &mut self,
        from_host: HostId,
        id: u64,
        file: u64,
        noreplace: bool,
        (from, to): (&[u8], &[u8]),
    ) {
        let then = UnlinkThen::Peer {
            host: from_host,
            id,
        };
        self.owner_rename(file, noreplace, from, to, then);
    }

    /// Renames this owner's `file`, named `from`, to `to`, for `then`:
    /// over a file of this host's export named so, once every page of
    /// that one is home (as an unlink's); else once the name is reserved
    /// (as a CREATE's: a name another host has or is making is `EXDEV`,
    /// or `EEXIST` with `noreplace`).
    fn owner_rename(
        &mut self,
        file: u64,
        noreplace: bool,
        from: &[u8],
        to: &[u8],
        then: UnlinkThen,
    ) {
        match self.export.lookup(from) {
            Ok(a) if a.file == file => self.core.add_file(file, self.me),
            _ => return self.rename_answer(then, Err(errno::ENOENT)),
        }
        match self.export.lookup(to) {
            // (Two names of one file: nothing to do.)
            Ok(b) if b.file == file => self.rename_answer(then, Ok(())),
            Ok(_) if noreplace => self.rename_answer(then, Err(errno::EEXIST)),
            Ok(b) => {
                self.core.add_file(b.file, self.me);
                self.owner_remove(b.file, to, then, Some((file, from.to_vec())));
            }
            Err(_) => {
                let key = PEER_MAKE | self.space.next_token();
                self.space.creating.insert(
                    key,
                    Creating {
                        name: to.to_vec(),
                        mode: 0,
                        excl: true,
                        // (The file keeps its own.)
                        ids: Ok((0, 0)),
                        // (The kernel's time-out runs from its request.)
                        started: match then {
                            UnlinkThen::Kernel { started, .. } => started,
                            UnlinkThen::Peer { .. } | UnlinkThen::Nobody => Instant::now(),
                        },
                        retry_at: None,
                        asker: Asker::Kernel,
                        placed: None,
                        until: None,
                        rename: Some(RenameOf {
                            file,
                            from: from.to_vec(),
                            noreplace,
                            then,
                        }),
                    },
                );
                self.try_create(key);
            }
        }
    }

    /// This owner's file `a` is named `to` now, no longer `from` (and
    /// file `gone`, which had that name, is gone; 0: none): every host
    /// forgets `from`, then `to` (learning the file under it), then `then`
    /// is answered.
    fn renamed(&mut self, from: &[u8], to: &[u8], a: &Attr, gone: u64, then: UnlinkThen) {
        self.names.forget(from);
        self.names.forget(to);
        // This host's kernel too, even when it asked: if it gave up
        // waiting, its dentries are not moved; if not, `d_move` after the
        // answer hashes the renamed dentry again.
        for n in [from, to] {
            if let Err(e) = self.inval.forget_name(n) {
                wlog!("names: {e}");
            }
        }
        let next = SpaceThen::RenamedFrom {
            to: to.to_vec(),
            made: info(a),
            gone,
            then,
        };
        self.forget_everywhere(from, None, 0, next);
    }

    /// Answers whoever waits for a rename.
    fn rename_answer(&mut self, then: UnlinkThen, result: Result<(), i32>) {
        self.changed_answer(then, result, true);
    }

    /// Answers whoever waits for an unlink.
    fn unlink_answer(&mut self, then: UnlinkThen, result: Result<(), i32>) {
        self.changed_answer(then, result, false);
    }

    /// Answers whoever waits for an unlink (or, `rename`, a rename).
    fn changed_answer(&mut self, then: UnlinkThen, result: Result<(), i32>, rename: bool) {
        match then {
            UnlinkThen::Kernel { req, started } => {
                if result.is_err() {
                    let failed = if rename {
                        &self.counters.renames_failed
                    } else {
                        &self.counters.unlinks_failed
                    };
                    crate::engine::Counters::add(failed, 1);
                }
                let op = if rename {
                    wfs_abi::Opcode::Rename
                } else {
                    wfs_abi::Opcode::Unlink
                };
                self.reply(req, op, started, result.map(|()| ReplyBody::Done));
            }
            UnlinkThen::Nobody => {}
            UnlinkThen::Peer { host, id } => {
                let error = result.err().unwrap_or(0);
                let msg = if rename {
                    NameMsg::Renamed { id, error }
                } else {
                    NameMsg::Unlinked { id, error }
                };
                self.send(host, PeerMsg::Name(msg));
            }
        }
    }

    /// A peer's `Forget`: `from` made `name` (`made`) or removed it; this
    /// host's name service and kernel forget it, then it is acknowledged
    /// (`id` 0: nobody waits).
    pub(super) fn forget_asked(
        &mut self,
        from: HostId,
        id: u64,
        name: &[u8],
        made: Option<FileInfo>,
        gone: u64,
    ) {
        if let Some(i) = made
            && !self.may_own(from, name, i.file, "a Forget")
        {
            // (Refused: nothing changes; acknowledged, as the session
            // acknowledges any refused message.)
            if id != 0 {
                self.send(from, PeerMsg::Name(NameMsg::Forgot { id }));
            }
            return;
        }
        self.space_names.heard_forget(from, name, made);
        self.names.forget(name);
        // (Never about a name this host exports.)
        if self.export.lookup(name).is_err() {
            // The owner's own word: `from` owns the file made (or renamed)
            // under the name, with these attributes.
            if let Some(info) = made {
                self.core.add_file(info.file, from);
                self.names.learned(name, from, info);
            }
            // The file the name stood for is gone (removed, or replaced):
            // nobody owns its id any more.
            if gone != 0 && self.core.owner_of(gone) == Some(from) {
                self.core.forget_owner(gone);
                self.names.forget_file(gone);
            }
        }
        if let Err(e) = self.inval.forget_name(name) {
            wlog!("names: {e}");
        }
        if id != 0 {
            self.send(from, PeerMsg::Name(NameMsg::Forgot { id }));
        }
    }

    /// Whether `from` may be taken at its word (`what`: a `Forget` that
    /// made `name`, a `Made`) for the owner of `file`: not when this host
    /// knows another owner of the id, this host or a connected peer, that
    /// has not said the id is gone (it would make `from` the owner of
    /// another host's file here, and let it `Fetch` its pages): refused,
    /// counted and logged. Taken, as before, when that owner is not
    /// connected (its `gone` may never come), and when `file` is `name`'s
    /// hash (an export without file handles: a name removed at its owner
    /// and made again at `from` keeps its id, and the first owner's `gone`
    /// may come after `from`'s word, on another connection).
    pub(super) fn may_own(&self, from: HostId, name: &[u8], file: u64, what: &str) -> bool {
        let Some(owner) = self.core.owner_of(file) else {
            return true;
        };
        if owner == from || file == crate::export::file_id(name) {
            return true;
        }
        let present = owner == self.me
            || self
                .by_host
                .get(&owner)
                .is_some_and(|&i| self.peers[i].conn.is_some());
        if !present {
            return true;
        }
        let why = if owner == self.me {
            "ownership of a file this host owns"
        } else {
            "ownership of a file another host owns"
        };
        self.refuse(from, what, why);
        false
    }

    /// A peer's `Reserve` of `name`.
    pub(super) fn reserve_asked(&mut self, from: HostId, id: u64, name: &[u8], at: u64) {
        let exported = self.export.lookup(name).ok().map(|a| {
            self.core.add_file(a.file, self.me);
            info(&a)
        });
        let answer = self
            .space_names
            .asked(from, id, name, at, exported, Instant::now());
        self.send(from, PeerMsg::Name(answer));
    }

    /// `peer`'s connection is gone: reservations and forget rounds stop
    /// waiting for it.
    pub(super) fn space_peer_down(&mut self, peer: HostId) {
        let (sends, reserved, thens) = self.space_names.peer_down(peer, Instant::now());
        self.send_names(sends);
        for r in reserved {
            self.reserved(r);
        }
        for t in thens {
            self.forgotten(t);
        }
    }
}

impl Engine {
    /// `peer` is taken for dead: the CREATEs sent to it by a placement
    /// rule fail (while it is only disconnected, they wait: its session
    /// sends the `Make` again, bounded by the kernel's time-out).
    pub(super) fn placed_host_dead(&mut self, peer: HostId) {
        let lost: Vec<u64> = self
            .space
            .creating
            .iter()
            .filter(|(_, c)| c.placed.is_some_and(|(h, _)| h == peer))
            .map(|(&req, _)| req)
            .collect();
        for req in lost {
            self.create_failed(req, libc::EHOSTDOWN);
        }
    }
}

impl Space {
    /// Tests only: the `Make`s sent for CREATEs under way, by host.
    #[cfg(test)]
    pub(super) fn placed(&self) -> Vec<(HostId, u64)> {
        self.creating.values().filter_map(|c| c.placed).collect()
    }

    fn next_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }
}
