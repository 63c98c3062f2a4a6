//! Sizes: a file's size is its owner's to set (Documentation/fs-plan.md,
//! step 1; growth only for now). Pure bookkeeping; the engine does the
//! disk, the kernel and the network.
//!
//! * The kernel sends SETSIZE before a write that ends past the end of the
//!   file (`grow`: the file must be at least that long) and for `truncate`
//!   (exactly that long). At the owner, the export grows the file (flushed
//!   before anything is answered) or refuses a shrink; another host asks
//!   the owner ([`SizeMsg::Set`]) and waits for its [`SizeMsg::Answer`].
//! * A growth reaches every other host before it is acknowledged: the
//!   owner tells each live peer ([`SizeMsg::Is`], which grows its cached
//!   size and its kernel's inode) and answers the kernel, or the asking
//!   peer, only once every peer that was connected when it was sent has
//!   acknowledged it ([`SizeMsg::IsAck`]), has lost its connection, or has
//!   been taken for dead. So a `stat` on any host after the write returns
//!   sees the new size. A peer that was not connected hears it when its
//!   connection is back (the session sends it again), before anything the
//!   owner sent after it.
//! * A request the file is long enough for already is answered at once
//!   only if the growth that made it so has been heard everywhere (it
//!   ended); else it waits with the growth still being told that covers
//!   it ([`Sizes::settle`]). So no write returns before the growth it
//!   relies on is known everywhere, whoever asked for that growth.
//! * The owner keeps, per file, the largest size it has told (and not
//!   lost: an `Is` that died with a peer's session, [`Sizes::lost`]). A
//!   request that finds the file longer than that (a growth told by an
//!   earlier incarnation of this manager, or lost) tells it again first.
//! * A request asked of an owner that is taken for dead fails
//!   (`EHOSTDOWN`, as a fault on its pages does). Nothing waits long: a
//!   growth waits for acknowledgements at most [`Sizes::ack_wait`] (a
//!   quarter of the kernel's request time-out, at most [`ACK_WAIT_MAX`]),
//!   and a request asked of an owner at most twice that
//!   ([`Sizes::answer_wait`]; a truncation, which may be a shrink whose
//!   owner first takes pages back for up to `ack_wait`, three times),
//!   then fails with `ETIMEDOUT`: all well before the kernel gives up on
//!   its own. An owner's answer that comes later still grows the cached
//!   size and the kernel's inode.
//! * A shrink (the engine's) is told to every live peer, the asker too
//!   ([`SizeMsg::Cut`], [`Sizes::cut`]), with the same wait for
//!   acknowledgements.
//! * A GETATTR of a file whose owner has restarted since its size was
//!   cached asks the owner too ([`Why::Getattr`]): a `Set` of size 0,
//!   `grow`, which changes nothing and is answered with the size.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::protocol::HostId;

/// A message about sizes between two managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeMsg {
    /// The sender's kernel asks that `file`, which this host owns, be
    /// `size` bytes long (at least, with `grow`).
    Set {
        /// Names the answer.
        id: u64,
        /// The file.
        file: u64,
        /// Its new size, at most [`wfs_abi::SIZE_MAX`].
        size: u64,
        /// A write past the end: at least `size` (else exactly).
        grow: bool,
    },
    /// The owner's answer to `Set` `id`: the file's size now (every
    /// connected host has heard of it), or an errno.
    Answer {
        /// The `Set`'s id.
        id: u64,
        /// The size, or the errno.
        result: Result<u64, i32>,
    },
    /// The owner says `file` is `size` bytes long now.
    Is {
        /// Names the acknowledgement.
        id: u64,
        /// The file.
        file: u64,
        /// Its size, at most [`wfs_abi::SIZE_MAX`].
        size: u64,
    },
    /// The owner says `file` was cut to exactly `size` bytes (a shrink:
    /// no host holds a page past the new end any more). Acknowledged with
    /// [`SizeMsg::IsAck`], as `Is`.
    Cut {
        /// Names the acknowledgement.
        id: u64,
        /// The file.
        file: u64,
        /// Its size now.
        size: u64,
    },
    /// The sender's kernel asks for the attributes of `file`, which this
    /// host owns: answered (`Times`, then `Answer` with the size) from the
    /// export as it is, telling no other host anything.
    Stat {
        /// Names the answer.
        id: u64,
        /// The file.
        file: u64,
    },
    /// `Is` or `Cut` `id` was heard (and told the kernel).
    IsAck {
        /// The `Is`'s id.
        id: u64,
    },
    /// The owner's times of `file` (its export file's, as `stat` says
    /// them), sent just before the `Answer` to a `Set` or a `Stat`, on the
    /// same connection: the asker's cache has them when the answer comes.
    Times {
        /// The file.
        file: u64,
        /// Its last modification.
        mtime: wfs_abi::Time,
        /// Its last change of contents or attributes.
        ctime: wfs_abi::Time,
        /// Its owner, group and mode now (a `chmod` or `chown` at the
        /// owner is seen at the next `stat` elsewhere; version 19 on).
        perm: crate::names::Perm,
    },
}

/// The kernel's request time-out when it does not say (REGISTER's
/// `timeout_ms` 0): the mount's default.
pub const KERNEL_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a growth waits for acknowledgements: a peer that is
/// connected but does not answer holds every growth up this long at most.
pub const ACK_WAIT_MAX: Duration = Duration::from_secs(5);

/// Who waits for a growth to reach the other hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// This host's kernel: SETSIZE `req`, read at `started`.
    Kernel {
        /// The kernel's request id.
        req: u64,
        /// When it was read.
        started: Instant,
        /// The size it asked for (it sets that one itself once answered;
        /// a larger one it is told).
        size: u64,
    },
    /// Another host's manager: `Set` `id`.
    Peer {
        /// The asking host.
        host: HostId,
        /// Its `Set`'s id.
        id: u64,
    },
    /// This owner's removal of the file (an unlink, `token` in the
    /// engine's table): its pages are taken back by a shrink to 0 first.
    Removal {
        /// The engine's key for it.
        token: u64,
    },
}

/// A growth every waited-for host has heard of: answer whoever waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    /// Who waits.
    pub then: Then,
    /// The file.
    pub file: u64,
    /// Its size now.
    pub size: u64,
}

/// Why this host asks a file's owner about its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The kernel's SETSIZE.
    Setsize,
    /// The kernel's GETATTR of a file whose cached size may be stale (its
    /// owner restarted since): asked as a `Set` of size 0, `grow`.
    Getattr,
    /// The kernel's GETATTR of a file whose cached times are old: asked as
    /// a `Stat`, which the owner answers from its export at once (it tells
    /// no other host anything), waited for [`TIMES_WAIT`] at most.
    Times,
}

/// The longest a GETATTR waits for an owner's times ([`Why::Times`]) before
/// it is answered from the cache: an owner that is connected but slow holds
/// a `stat` up this long at most.
pub const TIMES_WAIT: Duration = Duration::from_secs(1);

/// A kernel request asked of the file's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asking {
    /// The kernel's request id.
    pub req: u64,
    /// When it was read.
    pub started: Instant,
    /// The file's owner, asked.
    pub owner: HostId,
    /// The file.
    pub file: u64,
    /// The size asked for.
    pub size: u64,
    /// At least `size` (a write), or exactly (`truncate`).
    pub grow: bool,
    /// The kernel's request.
    pub why: Why,
}

/// What the owner's export found for a request: the file's size now, and
/// what the request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    /// The file.
    pub file: u64,
    /// Its size now.
    pub size: u64,
    /// The size the request asked for (at most `size`).
    pub needed: u64,
    /// The request grew it to `size`.
    pub changed: bool,
}

/// The peers a growth is told: every live one, and which of those are
/// connected now (waited for).
#[derive(Debug, Clone, Copy)]
pub struct Peers<'a> {
    /// The live peers (their incarnation not taken for dead).
    pub live: &'a [HostId],
    /// Those of them connected now.
    pub connected: &'a [HostId],
}

/// A growth that waited [`Sizes::ack_wait`] for acknowledgements: its
/// waiters are answered all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Late {
    /// The file.
    pub file: u64,
    /// The size told.
    pub size: u64,
    /// The peers that did not acknowledge it.
    pub unacked: Vec<HostId>,
    /// Its waiters, to answer.
    pub told: Vec<Told>,
}

/// A request asked of an owner.
#[derive(Debug)]
struct Ask {
    a: Asking,
    /// Its kernel was answered already (`ETIMEDOUT`): kept so that the
    /// owner's late answer still counts.
    answered: bool,
}

/// A growth being told to the other hosts.
#[derive(Debug)]
struct Telling {
    file: u64,
    size: u64,
    /// The hosts whose acknowledgement it waits for.
    waiting: BTreeSet<HostId>,
    /// Who waits for it: the request that made it, and those the file was
    /// long enough for already thanks to it.
    waiters: Vec<Then>,
    /// The host not told (it asked for the growth, and learns it from
    /// the answer), if any.
    except: Option<HostId>,
    since: Instant,
}

/// What this owner has told of one of its files.
#[derive(Debug, Default, Clone, Copy)]
struct Known {
    /// The largest size told (sent to every live peer), and not lost.
    told: u64,
    /// The largest size whose telling ended (acknowledged everywhere, or
    /// given up on).
    done: u64,
}

/// One host's side of the size service; see the module documentation.
#[derive(Debug)]
pub struct Sizes {
    /// This kernel's requests asked of other owners, by `Set` id.
    asks: HashMap<u64, Ask>,
    /// Growths of this owner's files being told, by `Is` id.
    telling: HashMap<u64, Telling>,
    /// What this owner has told of its files.
    files: HashMap<u64, Known>,
    next: u64,
    ack_wait: Duration,
    answer_wait: Duration,
    kernel_timeout: Duration,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes::new(KERNEL_TIMEOUT)
    }
}

impl Sizes {
    /// The size service of a host whose kernel gives up on a request after
    /// `kernel_timeout` (zero: [`KERNEL_TIMEOUT`]).
    pub fn new(kernel_timeout: Duration) -> Self {
        let t = if kernel_timeout.is_zero() {
            KERNEL_TIMEOUT
        } else {
            kernel_timeout
        };
        let ack_wait = (t / 4).min(ACK_WAIT_MAX);
        Sizes {
            asks: HashMap::new(),
            telling: HashMap::new(),
            files: HashMap::new(),
            next: 0,
            ack_wait,
            answer_wait: 2 * ack_wait,
            kernel_timeout: t,
        }
    }

    /// How long the kernel waits for an answer before it gives up.
    pub fn kernel_timeout(&self) -> Duration {
        self.kernel_timeout
    }

    /// How long a growth waits for acknowledgements: a quarter of the
    /// kernel's time-out, at most [`ACK_WAIT_MAX`].
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// How long a request asked of an owner waits for its answer: twice
    /// [`Sizes::ack_wait`] (the owner's own wait, and as long again for
    /// its disk and the network), half the kernel's time-out at most.
    pub fn answer_wait(&self) -> Duration {
        self.answer_wait
    }

    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Asks `a.owner` for the size in `a`: the `Set` to send it (a `Stat`
    /// for [`Why::Times`]).
    pub fn ask(&mut self, a: Asking) -> SizeMsg {
        let id = self.next_id();
        self.asks.insert(id, Ask { a, answered: false });
        if a.why == Why::Times {
            return SizeMsg::Stat { id, file: a.file };
        }
        SizeMsg::Set {
            id,
            file: a.file,
            size: a.size,
            grow: a.grow,
        }
    }

    /// The connection to `host` dropped: its GETATTRs not answered yet
    /// (of either kind), to answer from the cache now. They stay asked: a
    /// late answer still counts, and answers nobody.
    pub fn getattrs_cut_off(&mut self, host: HostId) -> Vec<Asking> {
        let mut cut = Vec::new();
        for id in sorted(self.asks.keys().copied()) {
            if let Some(a) = self.asks.get_mut(&id)
                && a.a.owner == host
                && a.a.why != Why::Setsize
                && !a.answered
            {
                a.answered = true;
                cut.push(a.a);
            }
        }
        cut
    }

    /// `from` answered `Set` `id`: the request it answers, if it was asked
    /// of that host, and whether its kernel was answered already (it timed
    /// out: the size still counts, but nobody is to be answered).
    pub fn answered(&mut self, from: HostId, id: u64) -> Option<(Asking, bool)> {
        if self.asks.get(&id)?.a.owner != from {
            return None;
        }
        self.asks.remove(&id).map(|a| (a.a, a.answered))
    }

    /// A request about this owner's file, which its export found (or
    /// made) `d.size` bytes long; `then` waits for the answer (none: the
    /// size is told, and nobody waits). Returns the `Is` messages to send
    /// and who is answered now:
    ///
    /// * a growth, or a size longer than this owner has told (told by an
    ///   earlier incarnation, or lost): told to every live peer but the
    ///   asker (`then`'s host), and `then` waits for each connected one;
    /// * a size the request needs that every host has heard (a telling
    ///   that ended): answered at once;
    /// * else the growth still being told that covers it: `then` waits
    ///   with it (and its asker, not told so far, is told now, so that a
    ///   `stat` there also sees it when `then` is answered).
    pub fn settle(
        &mut self,
        d: OnDisk,
        then: Option<Then>,
        peers: Peers<'_>,
        now: Instant,
    ) -> (Vec<(HostId, SizeMsg)>, Vec<Told>) {
        let known = self.files.get(&d.file).copied().unwrap_or_default();
        if !d.changed && d.size <= known.told {
            if d.needed <= known.done {
                let told = then.map(|then| Told {
                    then,
                    file: d.file,
                    size: d.size,
                });
                return (Vec::new(), told.into_iter().collect());
            }
            if let Some(then) = then
                && let Some(sends) = self.join(d, then, peers)
            {
                return (sends, Vec::new());
            }
        }
        self.tell(d.file, d.size, false, then, peers, now)
    }

    /// This owner cut `file` to `size` bytes (a shrink): told to every live
    /// peer, and `then` (if any) answered once each connected one has
    /// acknowledged it, as a growth. Sizes longer than `size` no longer
    /// count as told. Call it only when no growth of the file is being
    /// told ([`Sizes::telling_file`]): one that ended after it would count
    /// its size as heard.
    pub fn cut(
        &mut self,
        file: u64,
        size: u64,
        then: Option<Then>,
        peers: Peers<'_>,
        now: Instant,
    ) -> (Vec<(HostId, SizeMsg)>, Vec<Told>) {
        self.tell(file, size, true, then, peers, now)
    }

    /// Whether a size of `file` is being told (waits for acknowledgements).
    pub fn telling_file(&self, file: u64) -> bool {
        self.telling.values().any(|t| t.file == file)
    }

    /// `then` waits with the smallest growth of `d.file` being told that
    /// covers `d.needed`, if any: the messages to send.
    fn join(&mut self, d: OnDisk, then: Then, peers: Peers<'_>) -> Option<Vec<(HostId, SizeMsg)>> {
        let (&id, t) = self
            .telling
            .iter_mut()
            .filter(|(_, t)| t.file == d.file && t.size >= d.needed)
            .min_by_key(|(id, t)| (t.size, **id))?;
        t.waiters.push(then);
        let mut sends = Vec::new();
        let asker = match then {
            Then::Peer { host, .. } => Some(host),
            Then::Kernel { .. } | Then::Removal { .. } => None,
        };
        if let Some(y) = t.except.filter(|&y| Some(y) != asker) {
            t.except = None;
            if peers.live.contains(&y) {
                let (file, size) = (t.file, t.size);
                sends.push((y, SizeMsg::Is { id, file, size }));
                if peers.connected.contains(&y) {
                    t.waiting.insert(y);
                }
            }
        }
        Some(sends)
    }

    /// This owner's `file` is `size` bytes long: tells each live peer but
    /// `then`'s host, and waits for those connected now to acknowledge it.
    /// With nobody to wait for, it is told at once.
    #[allow(clippy::too_many_arguments)]
    fn tell(
        &mut self,
        file: u64,
        size: u64,
        exact: bool,
        then: Option<Then>,
        peers: Peers<'_>,
        now: Instant,
    ) -> (Vec<(HostId, SizeMsg)>, Vec<Told>) {
        let id = self.next_id();
        // (The host that asked for a growth learns it from the answer; a
        // cut is told to every host, the asker included, so that its
        // manager's cache is cut too before the answer comes.)
        let except = match then {
            Some(Then::Peer { host, .. }) if !exact => Some(host),
            _ => None,
        };
        let to: Vec<HostId> = peers
            .live
            .iter()
            .copied()
            .filter(|&h| Some(h) != except)
            .collect();
        let sends = to
            .iter()
            .map(|&h| {
                let msg = if exact {
                    SizeMsg::Cut { id, file, size }
                } else {
                    SizeMsg::Is { id, file, size }
                };
                (h, msg)
            })
            .collect();
        let k = self.files.entry(file).or_default();
        if exact {
            // Nothing longer counts as told, nor as heard until this is.
            k.told = size;
            k.done = 0;
        } else {
            k.told = k.told.max(size);
        }
        let waiting: BTreeSet<HostId> = peers
            .connected
            .iter()
            .copied()
            .filter(|h| to.contains(h))
            .collect();
        self.telling.insert(
            id,
            Telling {
                file,
                size,
                waiting,
                waiters: then.into_iter().collect(),
                except,
                since: now,
            },
        );
        let told = if self.telling[&id].waiting.is_empty() {
            self.end(id)
        } else {
            Vec::new()
        };
        (sends, told)
    }

    /// The telling `id` ended: its size counts as heard everywhere, and
    /// its waiters are answered.
    fn end(&mut self, id: u64) -> Vec<Told> {
        let Some(t) = self.telling.remove(&id) else {
            return Vec::new();
        };
        let k = self.files.entry(t.file).or_default();
        k.done = k.done.max(t.size);
        t.waiters
            .into_iter()
            .map(|then| Told {
                then,
                file: t.file,
                size: t.size,
            })
            .collect()
    }

    /// Ends the tellings `ids` that wait for nobody now.
    fn end_settled(&mut self, ids: Vec<u64>) -> Vec<Told> {
        let mut told = Vec::new();
        for id in ids {
            if self.telling.get(&id).is_some_and(|t| t.waiting.is_empty()) {
                told.extend(self.end(id));
            }
        }
        told
    }

    /// `from` acknowledged `Is` `id`: the answers due, if every host it
    /// waited for has now heard of it.
    pub fn acked(&mut self, from: HostId, id: u64) -> Vec<Told> {
        let Some(t) = self.telling.get_mut(&id) else {
            return Vec::new();
        };
        if !t.waiting.remove(&from) {
            return Vec::new();
        }
        self.end_settled(vec![id])
    }

    /// `host`'s connection dropped: growths stop waiting for it (it hears
    /// them when its connection is back: the session sends them again).
    /// The answers due.
    pub fn disconnected(&mut self, host: HostId) -> Vec<Told> {
        let ids = sorted(
            self.telling
                .iter_mut()
                .filter_map(|(&id, t)| t.waiting.remove(&host).then_some(id)),
        );
        self.end_settled(ids)
    }

    /// `host` is taken for dead (or left, or restarted): the requests
    /// asked of it (to fail), and the answers due to growths that waited
    /// for it last. A growth it asked for, or waited for, answers it no
    /// more.
    pub fn host_gone(&mut self, host: HostId) -> (Vec<Asking>, Vec<Told>) {
        let ids = sorted(
            self.asks
                .iter()
                .filter(|(_, a)| a.a.owner == host)
                .map(|(&id, _)| id),
        );
        let failed = ids
            .into_iter()
            .filter_map(|id| self.asks.remove(&id))
            .filter(|a| !a.answered)
            .map(|a| a.a)
            .collect();
        let mut ids = Vec::new();
        for (&id, t) in &mut self.telling {
            t.waiters
                .retain(|w| !matches!(w, Then::Peer { host: h, .. } if *h == host));
            if t.except == Some(host) {
                t.except = None;
            }
            if t.waiting.remove(&host) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        (failed, self.end_settled(ids))
    }

    /// An `Is` of `file` was lost (it died with a peer's session, unheard
    /// or maybe unheard): the next request about the file tells its size
    /// again.
    pub fn lost(&mut self, file: u64) {
        if let Some(k) = self.files.get_mut(&file) {
            k.told = 0;
        }
    }

    /// What has waited too long by `now`: requests asked of an owner for
    /// [`Sizes::answer_wait`] (to fail; each is kept until `deadline`, so
    /// that a late answer still counts), and growths some host has not
    /// acknowledged in [`Sizes::ack_wait`] (to answer: the file did grow).
    pub fn expire(&mut self, now: Instant, deadline: Duration) -> (Vec<Asking>, Vec<Late>) {
        let waited = |t: Instant| now.saturating_duration_since(t);
        let mut failed = Vec::new();
        for id in sorted(self.asks.keys().copied()) {
            let Some(a) = self.asks.get_mut(&id) else {
                continue;
            };
            let w = waited(a.a.started);
            // (A truncation may be a shrink, which first takes pages back,
            // up to `ack_wait`, then tells the new size: it is waited for
            // that much longer, still well within the kernel's time-out.)
            let wait = if a.a.why == Why::Times {
                self.answer_wait.min(TIMES_WAIT)
            } else if a.a.grow {
                self.answer_wait
            } else {
                self.answer_wait + self.ack_wait
            };
            if w >= deadline.max(wait) {
                if let Some(a) = self.asks.remove(&id)
                    && !a.answered
                {
                    failed.push(a.a);
                }
            } else if w >= wait && !a.answered {
                a.answered = true;
                failed.push(a.a);
            }
        }
        let ids = sorted(
            self.telling
                .iter()
                .filter(|(_, t)| waited(t.since) >= self.ack_wait)
                .map(|(&id, _)| id),
        );
        let mut late = Vec::new();
        for id in ids {
            let Some(t) = self.telling.get(&id) else {
                continue;
            };
            let (file, size) = (t.file, t.size);
            let unacked = t.waiting.iter().copied().collect();
            let told = self.end(id);
            late.push(Late {
                file,
                size,
                unacked,
                told,
            });
        }
        (failed, late)
    }

    /// How many requests wait for an owner (those whose kernel was
    /// answered already, waiting for a late answer, included).
    pub fn asking(&self) -> usize {
        self.asks.len()
    }

    /// How many growths wait for acknowledgements.
    pub fn telling(&self) -> usize {
        self.telling.len()
    }
}

fn sorted(ids: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut v: Vec<u64> = ids.collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: u64 = 9;

    fn asking(req: u64, owner: HostId, started: Instant) -> Asking {
        Asking {
            req,
            started,
            owner,
            file: FILE,
            size: 8192,
            grow: true,
            why: Why::Setsize,
        }
    }

    fn kernel(req: u64, size: u64, started: Instant) -> Then {
        Then::Kernel { req, started, size }
    }

    /// What the export did: `size` bytes now, `needed` asked for.
    fn disk(size: u64, needed: u64, changed: bool) -> OnDisk {
        OnDisk {
            file: FILE,
            size,
            needed,
            changed,
        }
    }

    fn peers<'a>(live: &'a [HostId], connected: &'a [HostId]) -> Peers<'a> {
        Peers { live, connected }
    }

    fn is_id(sends: &[(HostId, SizeMsg)]) -> u64 {
        match sends.first() {
            Some((_, SizeMsg::Is { id, .. })) => *id,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn an_answer_counts_only_from_the_owner_asked() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let SizeMsg::Set {
            id,
            file: FILE,
            size: 8192,
            grow: true,
        } = s.ask(asking(7, 2, now))
        else {
            panic!("a Set");
        };
        assert_eq!(s.answered(3, id), None, "another host");
        assert_eq!(s.answered(2, id + 1), None, "another id");
        assert_eq!(
            s.answered(2, id).map(|(a, late)| (a.req, late)),
            Some((7, false))
        );
        assert_eq!(s.answered(2, id), None, "answered once");
        assert_eq!(s.asking(), 0);
    }

    #[test]
    fn a_growth_is_told_once_every_connected_host_acknowledged_it() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let then = kernel(4, 100, now);
        // Hosts 1, 2 and 3 are told; 3 is not connected (not waited for).
        let (sends, done) = s.settle(
            disk(100, 100, true),
            Some(then),
            peers(&[1, 2, 3], &[1, 2]),
            now,
        );
        assert!(done.is_empty());
        let id = match &sends[..] {
            [
                (
                    1,
                    SizeMsg::Is {
                        id,
                        file: FILE,
                        size: 100,
                    },
                ),
                (2, SizeMsg::Is { .. }),
                (3, SizeMsg::Is { .. }),
            ] => *id,
            o => panic!("{o:?}"),
        };
        assert!(s.acked(3, id).is_empty(), "not waited for");
        assert!(s.acked(1, id).is_empty());
        assert!(s.acked(1, id).is_empty(), "twice");
        assert!(s.acked(2, id + 1).is_empty(), "another id");
        let told = Told {
            then,
            file: FILE,
            size: 100,
        };
        assert_eq!(s.acked(2, id), [told]);
        assert!(s.acked(2, id).is_empty(), "told once");
        assert_eq!(s.telling(), 0);
        // Nobody connected: told at once.
        let (sends, done) = s.settle(disk(200, 200, true), Some(then), peers(&[3], &[]), now);
        assert_eq!(sends.len(), 1);
        assert_eq!(done.iter().map(|t| t.size).collect::<Vec<_>>(), [200]);
        let (sends, done) = s.settle(disk(300, 300, true), Some(then), peers(&[], &[]), now);
        assert!(sends.is_empty());
        assert_eq!(done.iter().map(|t| t.size).collect::<Vec<_>>(), [300]);
        // A peer's growth is not told to that peer: it hears the answer.
        let asked = Then::Peer { host: 3, id: 5 };
        let (sends, done) = s.settle(
            disk(400, 400, true),
            Some(asked),
            peers(&[1, 3], &[1, 3]),
            now,
        );
        assert_eq!(sends.iter().map(|(h, _)| *h).collect::<Vec<_>>(), [1]);
        assert!(done.is_empty());
        assert_eq!(s.acked(1, is_id(&sends)).len(), 1);
    }

    #[test]
    fn a_request_the_file_is_long_enough_for_waits_for_the_growth_that_made_it_so() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let all = peers(&[1, 2, 3], &[1, 2, 3]);
        // Host 1 asks for 300: told to 2 and 3.
        let first = Then::Peer { host: 1, id: 10 };
        let (sends, done) = s.settle(disk(300, 300, true), Some(first), all, now);
        assert!(done.is_empty());
        let id = is_id(&sends);
        assert!(s.acked(2, id).is_empty());
        // 3 has not acknowledged it: the owner's kernel's 250 (no change
        // on disk) waits with it, which makes the growth's asker (host 1,
        // not told so far: it learns it from its answer) hear it as well,
        // and be waited for; host 2's 200 waits with it too.
        let own = kernel(4, 250, now);
        let (sends, done) = s.settle(disk(300, 250, false), Some(own), all, now);
        assert!(done.is_empty());
        assert_eq!(
            sends,
            [(
                1,
                SizeMsg::Is {
                    id,
                    file: FILE,
                    size: 300
                }
            )]
        );
        let second = Then::Peer { host: 2, id: 11 };
        let (sends, done) = s.settle(disk(300, 200, false), Some(second), all, now);
        assert!(sends.is_empty() && done.is_empty(), "{sends:?} {done:?}");
        // Host 1 asks again (its own growth): nothing new to send.
        let again = Then::Peer { host: 1, id: 12 };
        let (sends, done) = s.settle(disk(300, 300, false), Some(again), all, now);
        assert!(sends.is_empty() && done.is_empty());
        assert!(s.acked(3, id).is_empty(), "host 1 now waited for too");
        let told = s.acked(1, id);
        let waiters: Vec<Then> = told.iter().map(|t| t.then).collect();
        assert_eq!(waiters, [first, own, second, again]);
        assert!(told.iter().all(|t| t.size == 300));
        // Heard everywhere now: answered at once, with the size on disk.
        let (sends, done) = s.settle(disk(300, 250, false), Some(own), all, now);
        assert!(sends.is_empty());
        assert_eq!(
            done,
            [Told {
                then: own,
                file: FILE,
                size: 300
            }]
        );
    }

    #[test]
    fn a_size_longer_than_told_is_told_again() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let all = peers(&[1, 2], &[1, 2]);
        let own = kernel(1, 100, now);
        // A restarted owner has told nothing: a file longer than nothing is
        // told before the request that found it so is answered.
        let (sends, done) = s.settle(disk(500, 100, false), Some(own), all, now);
        assert_eq!(sends.len(), 2);
        assert!(done.is_empty());
        let id = is_id(&sends);
        assert!(s.acked(1, id).is_empty());
        assert_eq!(
            s.acked(2, id).iter().map(|t| t.size).collect::<Vec<_>>(),
            [500]
        );
        // Told: the next one is answered at once.
        let (sends, done) = s.settle(disk(500, 100, false), Some(own), all, now);
        assert!(sends.is_empty());
        assert_eq!(done.len(), 1);
        // An empty file needs no telling.
        let empty = OnDisk {
            file: FILE + 1,
            size: 0,
            needed: 0,
            changed: false,
        };
        let (sends, done) = s.settle(empty, Some(own), all, now);
        assert!(sends.is_empty());
        assert_eq!(done.len(), 1);
        // An Is that died with a session: told again.
        s.lost(FILE);
        let (sends, done) = s.settle(disk(500, 100, false), Some(own), all, now);
        assert_eq!(sends.len(), 2);
        assert!(done.is_empty());
        // Grown behind the export's back: told again.
        let id = is_id(&sends);
        s.acked(1, id);
        s.acked(2, id);
        let (sends, done) = s.settle(disk(600, 100, false), Some(own), all, now);
        assert_eq!(sends.len(), 2, "{done:?}");
        // Told with nobody waiting (a growth whose flush failed).
        let (sends, done) = s.settle(disk(700, 700, true), None, all, now);
        assert_eq!(sends.len(), 2);
        assert!(done.is_empty());
    }

    #[test]
    fn a_dead_host_is_not_waited_for_and_fails_what_was_asked_of_it() {
        let mut s = Sizes::default();
        let now = Instant::now();
        s.ask(asking(1, 2, now));
        s.ask(asking(2, 3, now));
        let own = kernel(5, 100, now);
        let (_, none) = s.settle(
            disk(100, 100, true),
            Some(own),
            peers(&[2, 3], &[2, 3]),
            now,
        );
        assert!(none.is_empty());
        // A growth host 2 asked for, told to host 3 only.
        let asked = Then::Peer { host: 2, id: 77 };
        s.settle(
            disk(200, 200, true),
            Some(asked),
            peers(&[2, 3], &[2, 3]),
            now,
        );
        let (failed, done) = s.host_gone(2);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [1]);
        assert!(done.is_empty(), "{done:?}");
        assert_eq!(s.telling(), 2);
        let (failed, done) = s.host_gone(3);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [2]);
        // Host 2's own growth goes unanswered.
        assert_eq!(
            done,
            vec![Told {
                then: own,
                file: FILE,
                size: 100
            }]
        );
        assert_eq!((s.asking(), s.telling()), (0, 0));
    }

    #[test]
    fn a_dropped_connection_is_not_waited_for() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let own = kernel(5, 100, now);
        let (sends, _) = s.settle(
            disk(100, 100, true),
            Some(own),
            peers(&[2, 3], &[2, 3]),
            now,
        );
        let id = is_id(&sends);
        assert!(s.acked(2, id).is_empty());
        assert!(s.disconnected(2).is_empty(), "acknowledged already");
        assert_eq!(
            s.disconnected(3).iter().map(|t| t.then).collect::<Vec<_>>(),
            [own]
        );
        assert_eq!(s.telling(), 0);
        // Its late acknowledgement is nothing.
        assert!(s.acked(3, id).is_empty());
    }

    #[test]
    fn waits_are_bounded_well_below_the_kernels_time_out() {
        let s = Sizes::new(Duration::from_secs(30));
        assert_eq!(
            (s.ack_wait(), s.answer_wait()),
            (ACK_WAIT_MAX, 2 * ACK_WAIT_MAX)
        );
        let s = Sizes::new(Duration::from_secs(3600));
        assert_eq!(s.ack_wait(), ACK_WAIT_MAX);
        let s = Sizes::new(Duration::from_secs(4));
        assert_eq!(
            (s.ack_wait(), s.answer_wait()),
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert_eq!(Sizes::new(Duration::ZERO).ack_wait(), ACK_WAIT_MAX);
    }

    #[test]
    fn nothing_waits_past_its_bound() {
        // Acknowledgements are waited for 1 s, answers 2 s.
        let mut s = Sizes::new(Duration::from_secs(4));
        let d = Duration::from_secs(60);
        let t0 = Instant::now();
        let sec = Duration::from_secs;
        let later = t0 + sec(1);
        s.ask(asking(1, 2, t0));
        s.ask(asking(2, 2, later));
        let then = Then::Peer { host: 4, id: 1 };
        s.settle(
            disk(100, 100, true),
            Some(then),
            peers(&[2, 4], &[2, 4]),
            t0,
        );
        let (failed, late) = s.expire(t0 + Duration::from_millis(999), d);
        assert!(failed.is_empty() && late.is_empty());
        let (failed, late) = s.expire(t0 + sec(1), d);
        assert!(failed.is_empty());
        let told = vec![Told {
            then,
            file: FILE,
            size: 100,
        }];
        let want = Late {
            file: FILE,
            size: 100,
            unacked: vec![2],
            told,
        };
        assert_eq!(late, [want]);
        let (failed, late) = s.expire(t0 + sec(2), d);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [1]);
        assert!(late.is_empty());
        assert_eq!((s.asking(), s.telling()), (2, 0));
        // Failed once; its late answer still counts (its kernel was
        // answered).
        assert!(s.expire(t0 + sec(2), d).0.is_empty());
        let id = 1;
        assert_eq!(
            s.answered(2, id).map(|(a, late)| (a.req, late)),
            Some((1, true))
        );
        // Forgotten at the deadline (failed first if never answered).
        let (failed, _) = s.expire(later + d, d);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [2]);
        assert_eq!(s.asking(), 0);
    }
}
