//! Making and removing names across the cluster (Documentation/fs-plan.md,
//! step 3), as pure code.
//!
//! **Create.** A host makes a new file in its own export, and so owns it,
//! once it holds the votes of a majority of the cluster's hosts for the
//! name: it *reserves* the name, asking every connected peer
//! ([`NameMsg::Reserve`]) and voting for itself. A host votes for one
//! reservation of a name at a time: it answers that the name exists (it
//! exports it, or it heard that a host made it: with the owner and the
//! file), or that it has voted for another reservation of the name
//! (refused), or grants its vote, which it keeps until the reserver made
//! the file (its [`NameMsg::Forget`] says so, and the vote becomes the
//! record of who made it), gave up ([`NameMsg::Release`]), or a lease ran
//! out. Votes granted are more than half of the configured hosts, the
//! reserver's own included, or exactly half with the host whose name sorts
//! first among them: any two such sets share a host, and a host votes
//! once, so two reservations of one name never both win, whatever the
//! partition (two hosts that cannot reach each other but both reach a
//! third: the third votes for one only, and answers the other, later, that
//! the first made the name). A reservation that loses gives its votes back
//! and the caller tries again a moment later (the name is then found, or
//! free again). Stamps (Lamport clocks started from the wall clock, the
//! host id as tie-break) order reservations for the log and the tests;
//! the votes decide.
//!
//! What is not protected: a host whose manager restarts forgets its votes
//! (a reservation it voted for may then win twice), and a host that was
//! away, or cut off, and exports the same name from before; the name
//! service refuses such a name as a duplicate (neither copy is served,
//! `names.rs`).
//!
//! **Forget.** Once a name is made or removed, every live peer is told to
//! forget what it cached of it ([`NameMsg::Forget`]: its name service's
//! entry and its kernel's dentry, negative or not), through the session,
//! which delivers it to a peer that is disconnected now once it is back;
//! the change is answered when each connected one has ([`NameMsg::Forgot`])
//! or is gone: after `open(O_CREAT)` or `unlink` returns, every host
//! reachable sees the change.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::names::{FileInfo, NameMsg};
use crate::protocol::HostId;

/// A reservation's stamp: a Lamport clock, then the host (a total order).
pub type Stamp = (u64, HostId);

/// Messages to send: to whom, and what.
pub type Sends = Vec<(HostId, NameMsg)>;

/// How a reservation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// A majority voted for it: the caller makes the file, then calls
    /// [`Namespace::made`] (or [`Namespace::abandon`] if it could not).
    Granted {
        /// The caller's request.
        req: u64,
        /// The name.
        name: Vec<u8>,
    },
    /// A host exports the name already. `first_hand`: the owner said so
    /// itself (else a host that heard it make the name, which may be out
    /// of date: nothing is cached from it).
    Exists {
        req: u64,
        name: Vec<u8>,
        owner: HostId,
        info: FileInfo,
        first_hand: bool,
    },
    /// No majority (another reservation holds votes, or too few hosts
    /// answered): try again later.
    Busy { req: u64, name: Vec<u8> },
}

impl Reserved {
    /// The request the reservation was for.
    pub fn req(&self) -> u64 {
        match self {
            Reserved::Granted { req, .. }
            | Reserved::Exists { req, .. }
            | Reserved::Busy { req, .. } => *req,
        }
    }
}

/// What a host's vote on a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vote {
    /// For this reservation, until then.
    For { stamp: Stamp, until: Instant },
    /// The name was made: `owner` has it.
    Made { owner: HostId, info: FileInfo },
}

/// A reservation waiting for answers.
#[derive(Debug)]
struct Reserving {
    req: u64,
    name: Vec<u8>,
    stamp: Stamp,
    /// When the votes it gets run out: it must have won before.
    until: Instant,
    waiting: BTreeSet<HostId>,
    granted: BTreeSet<HostId>,
    /// The name exists: its owner, file, and whether the owner said so.
    found: Option<(HostId, FileInfo, bool)>,
}

/// Reservations over, remembered so that a vote granted late (after the
/// reservation stopped waiting for its host) is given back at once.
const ENDED_KEPT: usize = 256;

/// A forget round waiting for acknowledgements.
#[derive(Debug)]
struct Forgetting<T> {
    waiting: BTreeSet<HostId>,
    then: T,
}

/// One host's side of making and removing names; `T` is what waits for a
/// forget round (the engine's request).
#[derive(Debug)]
pub struct Namespace<T> {
    me: HostId,
    /// Every configured host, this one included.
    members: usize,
    /// The host whose name sorts first (the tie-break of a half).
    first: HostId,
    /// How long a vote holds without news from its reserver.
    lease: Duration,
    next_id: u64,
    /// The Lamport clock of reservations.
    clock: u64,
    reserving: HashMap<u64, Reserving>,
    /// The last [`ENDED_KEPT`] reservations over: id, name and stamp.
    ended: std::collections::VecDeque<(u64, Vec<u8>, u64)>,
    /// Won reservations not made yet: their stamps and voters.
    won: HashMap<Vec<u8>, (Stamp, BTreeSet<HostId>)>,
    votes: HashMap<Vec<u8>, Vote>,
    forgetting: HashMap<u64, Forgetting<T>>,
}

impl<T> Namespace<T> {
    /// The namespace side of host `me`, in a cluster of `members` hosts
    /// (this one included) whose first-sorted host is `first`; a vote
    /// holds `lease` at most without news.
    pub fn new(me: HostId, members: usize, first: HostId, lease: Duration) -> Self {
        Namespace {
            me,
            members: members.max(1),
            first,
            lease,
            next_id: 0,
            clock: 0,
            reserving: HashMap::new(),
            ended: std::collections::VecDeque::new(),
            won: HashMap::new(),
            votes: HashMap::new(),
            forgetting: HashMap::new(),
        }
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        (u64::from(self.me) << 48) | self.next_id
    }

    /// The live vote on `name`, if any (an expired one is dropped).
    fn vote(&mut self, name: &[u8], now: Instant) -> Option<Vote> {
        match self.votes.get(name) {
            Some(Vote::For { until, .. }) if *until <= now => {
                self.votes.remove(name);
                None
            }
            v => v.copied(),
        }
    }

    /// Whether this host is reserving or making `name`.
    pub fn is_mine(&self, name: &[u8]) -> bool {
        matches!(self.votes.get(name), Some(Vote::For { stamp, .. }) if stamp.1 == self.me)
    }

    /// Reserves `name` for request `req` of this host, `wall` being the
    /// wall clock (nanoseconds): asks every peer in `peers` (connected
    /// now). Returns the messages to send, and the outcome if nobody is
    /// left to ask. `None`: this host's vote on the name is taken (its own
    /// reservation, or another host's); try again later.
    pub fn reserve(
        &mut self,
        req: u64,
        name: &[u8],
        wall: u64,
        peers: &[HostId],
        now: Instant,
    ) -> Option<(Sends, Option<Reserved>)> {
        match self.vote(name, now) {
            Some(Vote::Made { owner, info }) => {
                let name = name.to_vec();
                let done = Reserved::Exists {
                    req,
                    name,
                    owner,
                    info,
                    first_hand: false,
                };
                return Some((Vec::new(), Some(done)));
            }
            Some(Vote::For { .. }) => return None,
            None => {}
        }
        self.clock = self.clock.saturating_add(1).max(wall);
        let stamp = (self.clock, self.me);
        let until = now + self.lease;
        self.votes.insert(name.to_vec(), Vote::For { stamp, until });
        let id = self.new_id();
        let waiting: BTreeSet<HostId> = peers.iter().copied().filter(|&h| h != self.me).collect();
        let at = stamp.0;
        let sends = waiting
            .iter()
            .map(|&to| {
                let msg = NameMsg::Reserve {
                    id,
                    name: name.to_vec(),
                    at,
                };
                (to, msg)
            })
            .collect();
        let r = Reserving {
            req,
            name: name.to_vec(),
            stamp,
            until,
            waiting,
            granted: BTreeSet::new(),
            found: None,
        };
        self.reserving.insert(id, r);
        let mut sends: Sends = sends;
        let done = self.settle(id, &mut sends, now);
        Some((sends, done))
    }

    /// Another host asks for `name` under stamp `(at, from)`; `exported`
    /// is what this host's export has of it. Returns the answer.
    pub fn asked(
        &mut self,
        from: HostId,
        id: u64,
        name: &[u8],
        at: u64,
        exported: Option<FileInfo>,
        now: Instant,
    ) -> NameMsg {
        self.clock = self.clock.max(at);
        let answer = |found, refused| NameMsg::Reserved { id, found, refused };
        if let Some(info) = exported {
            return answer(Some((self.me, info)), false);
        }
        match self.vote(name, now) {
            Some(Vote::Made { owner, info }) => answer(Some((owner, info)), false),
            // (A newer reservation of the same host replaces its old one:
            // a host reserves a name once at a time, so the old one is
            // over, its end lost on the way.)
            Some(Vote::For { stamp, .. })
                if stamp != (at, from) && !(stamp.1 == from && stamp.0 < at) =>
            {
                answer(None, true)
            }
            _ => {
                let until = now + self.lease;
                let stamp = (at, from);
                self.votes.insert(name.to_vec(), Vote::For { stamp, until });
                answer(None, false)
            }
        }
    }

    /// A peer's answer to reservation `id`: returns the outcome once
    /// nobody is left to hear from, and the messages that sends (votes
    /// given back).
    pub fn answered(
        &mut self,
        from: HostId,
        id: u64,
        found: Option<(HostId, FileInfo)>,
        refused: bool,
        now: Instant,
    ) -> (Sends, Option<Reserved>) {
        let mut sends = Vec::new();
        let Some(r) = self.reserving.get_mut(&id) else {
            // A vote granted after the reservation stopped waiting for
            // `from`: given back at once.
            if found.is_none()
                && !refused
                && let Some((_, name, at)) = self.ended.iter().find(|(i, ..)| *i == id)
            {
                let (name, at) = (name.clone(), *at);
                sends.push((from, NameMsg::Release { name, at }));
            }
            return (sends, None);
        };
        if !r.waiting.remove(&from) {
            return (sends, None);
        }
        if let Some((owner, info)) = found {
            r.found.get_or_insert((owner, info, owner == from));
        } else if !refused {
            r.granted.insert(from);
        }
        let done = self.settle(id, &mut sends, now);
        (sends, done)
    }

    /// `from` gave back the vote it had of this host for `name` under
    /// stamp `(at, from)` (it lost, or could not make the file).
    pub fn released(&mut self, from: HostId, name: &[u8], at: u64) {
        if matches!(self.votes.get(name), Some(Vote::For { stamp, .. }) if *stamp == (at, from)) {
            self.votes.remove(name);
        }
    }

    /// The file of a won reservation is made (`info`): the peers' votes
    /// are given back by the forget round that follows
    /// ([`Namespace::forget`] with `made`).
    pub fn made(&mut self, name: &[u8]) {
        self.won.remove(name);
        if self.is_mine(name) {
            self.votes.remove(name);
        }
    }

    /// The file of a won reservation could not be made: the votes go
    /// back. Returns the messages.
    pub fn abandon(&mut self, name: &[u8]) -> Sends {
        if self.is_mine(name) {
            self.votes.remove(name);
        }
        let Some(((at, _), voters)) = self.won.remove(name) else {
            return Vec::new();
        };
        voters
            .into_iter()
            .map(|to| {
                let name = name.to_vec();
                (to, NameMsg::Release { name, at })
            })
            .collect()
    }

    /// Whether votes from `peers` (and this host's) could win: if not, no
    /// reservation of this host can, until more hosts are reachable.
    pub fn could_win(&self, peers: &[HostId]) -> bool {
        let all: BTreeSet<HostId> = peers.iter().copied().filter(|&h| h != self.me).collect();
        self.majority(&all)
    }

    /// Whether `granted` (this host included) wins: more than half of the
    /// members, or half with the first-sorted host.
    fn majority(&self, granted: &BTreeSet<HostId>) -> bool {
        let n = granted.len() + 1;
        2 * n > self.members
            || (2 * n == self.members && (self.first == self.me || granted.contains(&self.first)))
    }

    fn settle(&mut self, id: u64, sends: &mut Sends, now: Instant) -> Option<Reserved> {
        if !self.reserving.get(&id)?.waiting.is_empty() {
            return None;
        }
        let Reserving {
            req,
            name,
            stamp,
            until,
            granted,
            found,
            ..
        } = self.reserving.remove(&id)?;
        self.ended.push_back((id, name.clone(), stamp.0));
        if self.ended.len() > ENDED_KEPT {
            self.ended.pop_front();
        }
        // This host's own vote still this reservation's, and the votes
        // not run out (a reservation slower than the lease loses).
        let mine = matches!(self.votes.get(&name), Some(Vote::For { stamp: s, .. }) if *s == stamp);
        if found.is_none() && mine && now < until && self.majority(&granted) {
            // (Held until the file is made: see `made` and `abandon`.)
            self.won.insert(name.clone(), (stamp, granted));
            return Some(Reserved::Granted { req, name });
        }
        if mine {
            self.votes.remove(&name);
        }
        sends.extend(granted.into_iter().map(|to| {
            let name = name.clone();
            (to, NameMsg::Release { name, at: stamp.0 })
        }));
        Some(match found {
            Some((owner, info, first_hand)) => {
                // Only the owner's own word is remembered (a record passed
                // on may be older than the name's removal).
                if first_hand && owner != self.me {
                    self.votes.insert(name.clone(), Vote::Made { owner, info });
                }
                Reserved::Exists {
                    req,
                    name,
                    owner,
                    info,
                    first_hand,
                }
            }
            None => Reserved::Busy { req, name },
        })
    }

    /// Tells every peer in `live` to forget `name` (`made`: the file this
    /// host made, else the one it removed), and waits for those in
    /// `connected`; `then` waits for their acknowledgements. Returns the
    /// messages, and `then` back if nobody is to be waited for.
    pub fn forget(
        &mut self,
        name: &[u8],
        made: Option<FileInfo>,
        gone: u64,
        live: &[HostId],
        connected: &[HostId],
        then: T,
    ) -> (Sends, Option<T>) {
        let waiting: BTreeSet<HostId> = connected
            .iter()
            .copied()
            .filter(|&h| h != self.me && live.contains(&h))
            .collect();
        let id = if waiting.is_empty() { 0 } else { self.new_id() };
        let sends = live
            .iter()
            .copied()
            .filter(|&h| h != self.me)
            .map(|to| {
                let name = name.to_vec();
                (
                    to,
                    NameMsg::Forget {
                        id,
                        name,
                        made,
                        gone,
                    },
                )
            })
            .collect();
        if waiting.is_empty() {
            return (sends, Some(then));
        }
        self.forgetting.insert(id, Forgetting { waiting, then });
        (sends, None)
    }

    /// `from` made `name` (`made`: the file) or removed it: its vote, or
    /// its record, changes.
    pub fn heard_forget(&mut self, from: HostId, name: &[u8], made: Option<FileInfo>) {
        match made {
            Some(info) => {
                let v = Vote::Made { owner: from, info };
                self.votes.insert(name.to_vec(), v);
            }
            // (Only the record of `from`'s file: a vote `from` holds now
            // is for a reservation of its own after the removal.)
            None => {
                if matches!(self.votes.get(name), Some(Vote::Made { owner, .. }) if *owner == from)
                {
                    self.votes.remove(name);
                }
            }
        }
    }

    /// A peer forgot what forget round `id` told it to: returns what
    /// waited, once nobody is left.
    pub fn forgot(&mut self, from: HostId, id: u64) -> Option<T> {
        let f = self.forgetting.get_mut(&id)?;
        if !f.waiting.remove(&from) || !f.waiting.is_empty() {
            return None;
        }
        self.forgetting.remove(&id).map(|f| f.then)
    }

    /// `peer`'s connection is gone: nothing waits for it any more (a
    /// reservation counts it as not voting; a forget round as done: the
    /// session delivers the `Forget` when it is back). Returns the
    /// reservations and forget rounds that are over, and the messages that
    /// sends.
    pub fn peer_down(&mut self, peer: HostId, now: Instant) -> (Sends, Vec<Reserved>, Vec<T>) {
        let ids: Vec<u64> = self
            .reserving
            .iter_mut()
            .filter_map(|(&id, r)| r.waiting.remove(&peer).then_some(id))
            .collect();
        let mut sends = Vec::new();
        let reserved = ids
            .into_iter()
            .filter_map(|id| self.settle(id, &mut sends, now))
            .collect();
        let done: Vec<u64> = self
            .forgetting
            .iter_mut()
            .filter_map(|(&id, f)| (f.waiting.remove(&peer) && f.waiting.is_empty()).then_some(id))
            .collect();
        let thens = done
            .into_iter()
            .filter_map(|id| self.forgetting.remove(&id).map(|f| f.then))
            .collect();
        (sends, reserved, thens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileInfo = FileInfo {
        file: 9,
        size: 0,
        mode: 0o644,
        mtime: wfs_abi::Time { sec: 1, nsec: 2 },
        ctime: wfs_abi::Time { sec: 3, nsec: 4 },
        uid: 0,
        gid: 0,
        root_squash: true,
    };
    const LEASE: Duration = Duration::from_secs(30);

    /// Host `me` of hosts 0 to `n - 1` (0 sorts first).
    fn host(me: HostId, n: usize) -> Namespace<u32> {
        Namespace::new(me, n, 0, LEASE)
    }

    /// Whether `ns` refuses `from`'s reservation `id` of `name` stamped
    /// `at` (it does not export the name).
    fn refused(
        ns: &mut Namespace<u32>,
        from: HostId,
        id: u64,
        name: &[u8],
        at: u64,
        now: Instant,
    ) -> bool {
        match ns.asked(from, id, name, at, None, now) {
            NameMsg::Reserved { refused, .. } => refused,
            m => panic!("{m:?}"),
        }
    }

    fn reserve_id(sends: &[(HostId, NameMsg)]) -> (u64, u64) {
        match &sends[0].1 {
            NameMsg::Reserve { id, at, .. } => (*id, *at),
            m => panic!("not a reserve: {m:?}"),
        }
    }

    /// Host `to` answers `from`'s reservation `(id, at)` of "x", and
    /// `from` hears it.
    fn vote(
        hosts: &mut [Namespace<u32>],
        from: HostId,
        to: HostId,
        (id, at): (u64, u64),
    ) -> (Sends, Option<Reserved>) {
        let now = Instant::now();
        match hosts[to as usize].asked(from, id, b"x", at, None, now) {
            NameMsg::Reserved { found, refused, .. } => {
                hosts[from as usize].answered(to, id, found, refused, Instant::now())
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn a_name_is_granted_by_a_majority_of_votes() {
        let now = Instant::now();
        let mut n = host(1, 3);
        let (sends, done) = n.reserve(7, b"j", 100, &[0, 2], now).unwrap();
        assert_eq!(sends.len(), 2);
        assert!(done.is_none());
        let (id, _) = reserve_id(&sends);
        // One grant (and this host's own vote): 2 of 3 is a majority, but
        // the other answer is still awaited.
        assert_eq!(
            n.answered(0, id, None, false, Instant::now()),
            (vec![], None)
        );
        assert_eq!(
            n.answered(0, id, None, false, Instant::now()),
            (vec![], None),
            "twice"
        );
        let (back, done) = n.answered(2, id, None, true, Instant::now());
        assert!(back.is_empty());
        assert_eq!(
            done,
            Some(Reserved::Granted {
                req: 7,
                name: b"j".to_vec()
            })
        );
        // Held until made: a second reservation of it waits.
        assert!(n.is_mine(b"j"));
        assert!(n.reserve(8, b"j", 100, &[0, 2], now).is_none());
        n.made(b"j");
        assert!(!n.is_mine(b"j"));
        // Alone in a cluster of one: granted at once.
        let mut one = host(0, 1);
        let (sends, done) = one.reserve(9, b"k", 100, &[], now).unwrap();
        assert!(sends.is_empty());
        assert_eq!(done.map(|d| d.req()), Some(9));
        // Alone out of three: not granted (and nothing held).
        let (sends, done) = n.reserve(10, b"k", 100, &[], now).unwrap();
        assert!(sends.is_empty());
        assert!(matches!(done, Some(Reserved::Busy { req: 10, .. })));
        assert!(!n.is_mine(b"k"));
    }

    #[test]
    fn half_the_votes_win_with_the_first_host_only() {
        let now = Instant::now();
        // Two hosts, each alone: host 0 (first) may, host 1 may not.
        let mut a = host(0, 2);
        let (_, done) = a.reserve(1, b"x", 5, &[], now).unwrap();
        assert!(matches!(done, Some(Reserved::Granted { .. })));
        let mut b = host(1, 2);
        let (_, done) = b.reserve(1, b"x", 5, &[], now).unwrap();
        assert!(matches!(done, Some(Reserved::Busy { .. })));
        // Four hosts: 1 with 0's vote wins, 2 with 3's does not.
        let mut hs: Vec<Namespace<u32>> = (0..4).map(|h| host(h, 4)).collect();
        let (s1, _) = hs[1].reserve(1, b"x", 5, &[0], now).unwrap();
        assert!(matches!(
            vote(&mut hs, 1, 0, reserve_id(&s1)).1,
            Some(Reserved::Granted { .. })
        ));
        let (s2, _) = hs[2].reserve(1, b"x", 5, &[3], now).unwrap();
        let (back, done) = vote(&mut hs, 2, 3, reserve_id(&s2));
        assert!(matches!(done, Some(Reserved::Busy { .. })));
        // 3's vote goes back.
        assert_eq!(back.len(), 1);
        let NameMsg::Release { at, .. } = &back[0].1 else {
            panic!("{back:?}")
        };
        hs[3].released(2, b"x", *at);
        assert!(hs[3].votes.is_empty());
    }

    #[test]
    fn an_existing_name_is_found_with_its_owner() {
        let now = Instant::now();
        let mut n = host(1, 3);
        let (sends, _) = n.reserve(7, b"j", 100, &[0, 2], now).unwrap();
        let (id, _) = reserve_id(&sends);
        assert_eq!(
            n.answered(2, id, Some((2, F)), false, Instant::now()),
            (vec![], None)
        );
        // 0 granted its vote: it is given back.
        let (back, done) = n.answered(0, id, None, false, Instant::now());
        assert_eq!(back.len(), 1);
        assert_eq!(
            done,
            Some(Reserved::Exists {
                req: 7,
                name: b"j".to_vec(),
                owner: 2,
                info: F,
                first_hand: true
            })
        );
        // Remembered: found at once the next time.
        let (sends, done) = n.reserve(8, b"j", 100, &[0, 2], now).unwrap();
        assert!(sends.is_empty());
        assert!(matches!(done, Some(Reserved::Exists { owner: 2, .. })));
        // Its owner removed it: free again.
        n.heard_forget(2, b"j", None);
        assert!(n.reserve(9, b"j", 100, &[0, 2], now).unwrap().1.is_none());
    }

    /// The review's case: a and b cannot reach each other, c reaches
    /// both. c votes once: one of them makes the name; the other, asking
    /// again after the first made it, hears from c that it exists.
    #[test]
    fn two_hosts_that_cannot_reach_each_other_do_not_both_make_a_name() {
        let now = Instant::now();
        let mut hs: Vec<Namespace<u32>> = (0..3).map(|h| host(h, 3)).collect();
        let (sa, _) = hs[0].reserve(1, b"x", 5, &[2], now).unwrap();
        let (sb, _) = hs[1].reserve(1, b"x", 9, &[2], now).unwrap();
        // b's question reaches c first.
        let (_, rb) = vote(&mut hs, 1, 2, reserve_id(&sb));
        let (_, ra) = vote(&mut hs, 0, 2, reserve_id(&sa));
        assert!(matches!(rb, Some(Reserved::Granted { .. })));
        assert!(matches!(ra, Some(Reserved::Busy { .. })));
        // b makes it and tells c; a asks again.
        hs[1].made(b"x");
        let (tell, _) = hs[1].forget(b"x", Some(F), 0, &[2], &[2], 7);
        assert_eq!(tell.len(), 1);
        hs[2].heard_forget(1, b"x", Some(F));
        let (sa, _) = hs[0].reserve(2, b"x", 5, &[2], now).unwrap();
        let (_, ra) = vote(&mut hs, 0, 2, reserve_id(&sa));
        assert_eq!(
            ra,
            Some(Reserved::Exists {
                req: 2,
                name: b"x".to_vec(),
                owner: 1,
                info: F,
                first_hand: false
            })
        );
    }

    /// The second review's cases.
    #[test]
    fn second_hand_records_are_not_kept_and_removals_drop_records_only() {
        let now = Instant::now();
        // C says A has it (second hand): B does not remember it.
        let mut b = host(1, 3);
        let (sends, _) = b.reserve(1, b"n", 5, &[0, 2], now).unwrap();
        let (id, _) = reserve_id(&sends);
        b.answered(0, id, None, false, now);
        let (_, done) = b.answered(2, id, Some((0, F)), false, now);
        assert!(matches!(
            done,
            Some(Reserved::Exists {
                owner: 0,
                first_hand: false,
                ..
            })
        ));
        let (sends, done) = b.reserve(2, b"n", 5, &[0, 2], now).unwrap();
        assert_eq!(sends.len(), 2, "asked again");
        assert!(done.is_none());
        // A removal heard from a host drops its record, not a vote for
        // its reservation made since.
        let mut v = host(2, 3);
        v.heard_forget(0, b"m", Some(F));
        v.heard_forget(0, b"m", None);
        assert!(v.votes.is_empty());
        assert!(!refused(&mut v, 0, 9, b"m", 50, now));
        v.heard_forget(0, b"m", None);
        assert!(refused(&mut v, 1, 10, b"m", 60, now));
    }

    #[test]
    fn a_reservation_slower_than_its_lease_loses_and_late_votes_go_back() {
        let now = Instant::now();
        let mut a = host(0, 3);
        let (sends, _) = a.reserve(1, b"x", 5, &[1, 2], now).unwrap();
        let (id, _) = reserve_id(&sends);
        a.answered(1, id, None, false, now);
        let (back, done) = a.answered(2, id, None, false, now + LEASE);
        assert!(matches!(done, Some(Reserved::Busy { .. })));
        assert_eq!(back.len(), 2, "both votes go back: {back:?}");
        // A vote that comes after the reservation stopped waiting for its
        // host goes back at once.
        let (sends, _) = a.reserve(2, b"y", 5, &[1, 2], now).unwrap();
        let (id, _) = reserve_id(&sends);
        a.answered(1, id, None, false, now);
        let (_, r, _) = a.peer_down(2, now);
        assert!(matches!(r[..], [Reserved::Granted { .. }]));
        let (back, done) = a.answered(2, id, None, false, now);
        assert!(done.is_none());
        assert!(
            matches!(&back[..], [(2, NameMsg::Release { .. })]),
            "{back:?}"
        );
    }

    #[test]
    fn a_newer_reservation_of_the_same_host_replaces_its_vote() {
        let now = Instant::now();
        let mut c = host(2, 3);
        assert!(!refused(&mut c, 1, 1, b"x", 5, now));
        // 1's reservation ended without this vote; it asks again.
        assert!(!refused(&mut c, 1, 2, b"x", 6, now));
        // Another host's still refused, and 1's older one too.
        assert!(refused(&mut c, 0, 3, b"x", 9, now));
        assert!(refused(&mut c, 1, 1, b"x", 5, now));
    }

    #[test]
    fn a_vote_runs_out() {
        let now = Instant::now();
        let mut c = host(2, 3);
        assert!(!refused(&mut c, 1, 1, b"x", 5, now));
        assert!(refused(&mut c, 0, 2, b"x", 6, now));
        // (The same reservation asking again keeps its vote.)
        assert!(!refused(&mut c, 1, 1, b"x", 5, now));
        assert!(!refused(&mut c, 0, 2, b"x", 6, now + LEASE));
    }

    /// Seeded random races: 2 to 5 hosts, each reserving one name at a
    /// random moment, messages delivered in a random order, links between
    /// random pairs of hosts cut at random moments (the messages on them
    /// lost, each end taking the other as down), winners making the file
    /// and telling the hosts they reach, losers asking again. Never do two
    /// hosts win; with no link cut and one host asking, it wins.
    #[test]
    fn random_races_never_grant_a_name_twice() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        let now = Instant::now();
        for round in 0..5000 {
            let n = 2 + rnd(4) as HostId;
            let mut hs: Vec<Namespace<u32>> = (0..n).map(|h| host(h, n as usize)).collect();
            let contenders = 1 + rnd(u64::from(n)) as usize;
            let mut to_start: Vec<(HostId, u32)> =
                (0..contenders as HostId).map(|h| (h, 3)).collect();
            let mut cut: Vec<(HostId, HostId)> = Vec::new();
            let linked = |cut: &[(HostId, HostId)], a: HostId, b: HostId| {
                !cut.contains(&(a, b)) && !cut.contains(&(b, a))
            };
            let mut flight: Vec<(HostId, HostId, NameMsg)> = Vec::new();
            let mut winners: Vec<HostId> = Vec::new();
            let mut steps = 0;
            loop {
                steps += 1;
                if rnd(25) == 0 && n > 2 {
                    let (a, b) = (rnd(u64::from(n)) as HostId, rnd(u64::from(n)) as HostId);
                    if a != b && linked(&cut, a, b) {
                        cut.push((a, b));
                        flight.retain(|(f, t, _)| linked(&cut, *f, *t));
                        for (x, y) in [(a, b), (b, a)] {
                            let (sends, done, _) = hs[x as usize].peer_down(y, now);
                            flight.extend(sends.into_iter().map(|(t, m)| (x, t, m)));
                            for d in done {
                                if let Reserved::Granted { .. } = d {
                                    winners.push(x);
                                }
                            }
                        }
                    }
                }
                // Winners make the file and tell the hosts they reach.
                for &w in &winners {
                    if hs[w as usize].won.contains_key(&b"x"[..]) {
                        hs[w as usize].made(b"x");
                        let live: Vec<HostId> =
                            (0..n).filter(|&h| h != w && linked(&cut, w, h)).collect();
                        let (sends, _) = hs[w as usize].forget(b"x", Some(F), 0, &live, &live, 0);
                        flight.extend(sends.into_iter().map(|(t, m)| (w, t, m)));
                    }
                }
                let start = !to_start.is_empty() && (flight.is_empty() || rnd(3) == 0);
                if start {
                    let i = rnd(to_start.len() as u64) as usize;
                    let (h, tries) = to_start.swap_remove(i);
                    if winners.contains(&h) || tries == 0 {
                        continue;
                    }
                    let peers: Vec<HostId> =
                        (0..n).filter(|&p| p != h && linked(&cut, h, p)).collect();
                    match hs[h as usize].reserve(1, b"x", rnd(3), &peers, now) {
                        None => to_start.push((h, tries - 1)),
                        Some((sends, done)) => {
                            flight.extend(sends.into_iter().map(|(t, m)| (h, t, m)));
                            match done {
                                Some(Reserved::Granted { .. }) => winners.push(h),
                                Some(Reserved::Busy { .. }) => to_start.push((h, tries - 1)),
                                _ => {}
                            }
                        }
                    }
                    continue;
                }
                if flight.is_empty() {
                    break;
                }
                let (from, to, msg) = flight.swap_remove(rnd(flight.len() as u64) as usize);
                match msg {
                    NameMsg::Reserve { id, name, at } => {
                        // (A winner has made the file: its export has it.)
                        let exported = winners.contains(&to).then_some(F);
                        let a = hs[to as usize].asked(from, id, &name, at, exported, now);
                        flight.push((to, from, a));
                    }
                    NameMsg::Reserved { id, found, refused } => {
                        let (sends, done) =
                            hs[to as usize].answered(from, id, found, refused, Instant::now());
                        flight.extend(sends.into_iter().map(|(t, m)| (to, t, m)));
                        match done {
                            Some(Reserved::Granted { .. }) => winners.push(to),
                            Some(Reserved::Busy { .. }) => to_start.push((to, 2)),
                            _ => {}
                        }
                    }
                    NameMsg::Release { name, at } => hs[to as usize].released(from, &name, at),
                    NameMsg::Forget { name, made, .. } => {
                        hs[to as usize].heard_forget(from, &name, made)
                    }
                    m => panic!("{m:?}"),
                }
                assert!(steps < 100_000, "round {round} does not end");
            }
            assert!(
                winners.len() <= 1,
                "round {round}: {winners:?} of {n}, cut {cut:?}"
            );
            if cut.is_empty() && contenders == 1 {
                assert_eq!(winners, [0], "round {round}: alone and connected");
            }
        }
    }

    #[test]
    fn a_peer_going_down_is_not_waited_for() {
        let now = Instant::now();
        let mut n = host(1, 3);
        let (sends, _) = n.reserve(7, b"j", 100, &[0, 2], now).unwrap();
        let (id, _) = reserve_id(&sends);
        assert_eq!(
            n.answered(0, id, None, false, Instant::now()),
            (vec![], None)
        );
        // 2 goes: 0's vote and this host's own are 2 of 3.
        let (back, r, t) = n.peer_down(2, Instant::now());
        assert!(back.is_empty());
        assert_eq!(r.len(), 1);
        assert!(matches!(r[0], Reserved::Granted { req: 7, .. }));
        assert!(t.is_empty());
        // A forget round waits for the connected, tells the live.
        let (sends, now_done) = n.forget(b"j", None, 5, &[0, 2], &[0], 5);
        assert_eq!(sends.len(), 2, "{sends:?}");
        assert!(now_done.is_none());
        let id = match &sends[0].1 {
            NameMsg::Forget { id, .. } => *id,
            m => panic!("{m:?}"),
        };
        assert!(n.forgot(2, id).is_none(), "not waited for");
        assert_eq!(n.forgot(0, id), Some(5));
        assert!(n.forgot(0, id).is_none(), "over");
        let (sends, _) = n.forget(b"j", None, 5, &[0, 2], &[0, 2], 6);
        let id = match &sends[0].1 {
            NameMsg::Forget { id, .. } => *id,
            m => panic!("{m:?}"),
        };
        assert!(n.forgot(0, id).is_none());
        assert_eq!(n.peer_down(2, Instant::now()).2, vec![6]);
        // Nobody to wait for: at once, and nobody answers (id 0).
        let (sends, now_done) = n.forget(b"j", None, 5, &[2], &[], 7);
        assert!(matches!(sends[..], [(2, NameMsg::Forget { id: 0, .. })]));
        assert_eq!(now_done, Some(7));
    }
}
