//! Making and removing names across the cluster (Documentation/fs-plan.md,
//! step 3), as pure code.
//!
//! **Create.** A host makes a new file in its own export, and so owns it,
//! once no other host has the name or is making it: it *reserves* the name
//! first, asking every connected peer ([`NameMsg::Reserve`]). A peer
//! answers that it exports the name (with the file's attributes), that it
//! is making the name itself under an earlier stamp (refused), or grants
//! it. Stamps are Lamport clocks started from the wall clock (a host's
//! clock moves past every stamp it is asked about), with the host id as a
//! tie-break: two hosts racing for one name compare the same two stamps,
//! so exactly one of them is granted by the other; and a host that granted
//! a name to another can only ask for it later under a greater stamp,
//! which the other refuses while it is making the name. A host holds its
//! reservation until the file exists in its export (then a later `Reserve`
//! finds the file). Peers that cannot be asked are not waited for; the
//! engine makes the file only if the hosts it reaches are the majority side
//! of the cluster ([`crate::engine`]'s rule for taking hosts for dead), so
//! two sides of a partition never both make a name. (A host that was away
//! and comes back with the same name is refused as a duplicate by the name
//! service, `names.rs`.)
//!
//! **Forget.** Once a name is made or removed, every connected peer is
//! told to forget what it cached of it ([`NameMsg::Forget`]: its name
//! service's entry and its kernel's dentry, negative or not), and the
//! change is answered only when each has ([`NameMsg::Forgot`]) or is gone:
//! after `open(O_CREAT)` or `unlink` returns, every host sees the change.

use std::collections::{BTreeSet, HashMap};

use crate::names::{FileInfo, NameMsg};
use crate::protocol::HostId;

/// A reservation's stamp: a Lamport clock, then the host (a total order).
pub type Stamp = (u64, HostId);

/// Messages to send: to whom, and what.
pub type Sends = Vec<(HostId, NameMsg)>;

/// How a reservation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Every connected peer granted it: the caller may make the file (if
    /// the hosts it reaches are the majority side), then calls
    /// [`Namespace::made`] either way.
    Granted {
        /// The caller's request.
        req: u64,
        /// The name.
        name: Vec<u8>,
    },
    /// A host exports the name already.
    Exists {
        req: u64,
        name: Vec<u8>,
        owner: HostId,
        info: FileInfo,
    },
    /// A host is making the name first.
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

/// A reservation waiting for answers.
#[derive(Debug)]
struct Reserving {
    req: u64,
    name: Vec<u8>,
    waiting: BTreeSet<HostId>,
    found: Option<(HostId, FileInfo)>,
    busy: bool,
}

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
    next_id: u64,
    /// The Lamport clock of reservations.
    clock: u64,
    reserving: HashMap<u64, Reserving>,
    /// Names this host reserves or is making, with their stamps.
    mine: HashMap<Vec<u8>, Stamp>,
    forgetting: HashMap<u64, Forgetting<T>>,
}

impl<T> Namespace<T> {
    /// The namespace side of host `me`.
    pub fn new(me: HostId) -> Self {
        Namespace {
            me,
            next_id: 0,
            clock: 0,
            reserving: HashMap::new(),
            mine: HashMap::new(),
            forgetting: HashMap::new(),
        }
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        (u64::from(self.me) << 48) | self.next_id
    }

    /// Whether this host is reserving or making `name`.
    pub fn is_mine(&self, name: &[u8]) -> bool {
        self.mine.contains_key(name)
    }

    /// Reserves `name` for request `req` of this host, `now` being the
    /// wall clock (nanoseconds): asks every peer in `peers` (connected
    /// now). Returns the messages to send, and the outcome if nobody is
    /// left to ask. `None` and no messages: this host is reserving or
    /// making the name already (the caller waits for that, or retries).
    pub fn reserve(
        &mut self,
        req: u64,
        name: &[u8],
        now: u64,
        peers: &[HostId],
    ) -> Option<(Sends, Option<Reserved>)> {
        if self.mine.contains_key(name) {
            return None;
        }
        self.clock = self.clock.saturating_add(1).max(now);
        let at = self.clock;
        self.mine.insert(name.to_vec(), (at, self.me));
        let id = self.new_id();
        let waiting: BTreeSet<HostId> = peers.iter().copied().filter(|&h| h != self.me).collect();
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
        self.reserving.insert(
            id,
            Reserving {
                req,
                name: name.to_vec(),
                waiting,
                found: None,
                busy: false,
            },
        );
        Some((sends, self.settle(id)))
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
    ) -> NameMsg {
        self.clock = self.clock.max(at);
        let refused =
            exported.is_none() && self.mine.get(name).is_some_and(|&mine| mine < (at, from));
        NameMsg::Reserved {
            id,
            found: exported,
            refused,
        }
    }

    /// A peer's answer to reservation `id`.
    pub fn answered(
        &mut self,
        from: HostId,
        id: u64,
        found: Option<FileInfo>,
        refused: bool,
    ) -> Option<Reserved> {
        let r = self.reserving.get_mut(&id)?;
        if !r.waiting.remove(&from) {
            return None;
        }
        if let Some(info) = found {
            r.found.get_or_insert((from, info));
        }
        r.busy |= refused;
        self.settle(id)
    }

    /// The reservation or making of `name` is over (the file is made, or
    /// it was not): other hosts' reservations of it are no longer refused
    /// for this host's sake.
    pub fn made(&mut self, name: &[u8]) {
        self.mine.remove(name);
    }

    fn settle(&mut self, id: u64) -> Option<Reserved> {
        if !self.reserving.get(&id)?.waiting.is_empty() {
            return None;
        }
        let Reserving {
            req,
            name,
            found,
            busy,
            ..
        } = self.reserving.remove(&id)?;
        if found.is_none() && !busy {
            // (Held until the file is made: see `made`.)
            return Some(Reserved::Granted { req, name });
        }
        self.mine.remove(&name);
        Some(match found {
            Some((owner, info)) => Reserved::Exists {
                req,
                name,
                owner,
                info,
            },
            None => Reserved::Busy { req, name },
        })
    }

    /// Tells every peer in `peers` (connected now) to forget `name`;
    /// `then` waits for their acknowledgements. Returns the messages, and
    /// `then` back if nobody is to be waited for.
    pub fn forget(&mut self, name: &[u8], peers: &[HostId], then: T) -> (Sends, Option<T>) {
        let waiting: BTreeSet<HostId> = peers.iter().copied().filter(|&h| h != self.me).collect();
        if waiting.is_empty() {
            return (Vec::new(), Some(then));
        }
        let id = self.new_id();
        let sends = waiting
            .iter()
            .map(|&to| {
                let msg = NameMsg::Forget {
                    id,
                    name: name.to_vec(),
                };
                (to, msg)
            })
            .collect();
        self.forgetting.insert(id, Forgetting { waiting, then });
        (sends, None)
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
    /// reservation counts it as not asked; a forget round as done: its
    /// caches are checked again when it comes back, the name service
    /// asking every host). Returns the reservations and forget rounds that
    /// are over.
    pub fn peer_down(&mut self, peer: HostId) -> (Vec<Reserved>, Vec<T>) {
        let ids: Vec<u64> = self
            .reserving
            .iter_mut()
            .filter_map(|(&id, r)| r.waiting.remove(&peer).then_some(id))
            .collect();
        let reserved = ids.into_iter().filter_map(|id| self.settle(id)).collect();
        let done: Vec<u64> = self
            .forgetting
            .iter_mut()
            .filter_map(|(&id, f)| (f.waiting.remove(&peer) && f.waiting.is_empty()).then_some(id))
            .collect();
        let thens = done
            .into_iter()
            .filter_map(|id| self.forgetting.remove(&id).map(|f| f.then))
            .collect();
        (reserved, thens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileInfo = FileInfo {
        file: 9,
        size: 0,
        mode: 0o644,
    };

    fn reserve_id(sends: &[(HostId, NameMsg)]) -> (u64, u64) {
        match &sends[0].1 {
            NameMsg::Reserve { id, at, .. } => (*id, *at),
            m => panic!("not a reserve: {m:?}"),
        }
    }

    #[test]
    fn a_name_nobody_has_is_granted_once_every_peer_answered() {
        let mut n: Namespace<()> = Namespace::new(1);
        let (sends, done) = n.reserve(7, b"j", 100, &[0, 2]).unwrap();
        assert_eq!(sends.len(), 2);
        assert!(done.is_none());
        let (id, _) = reserve_id(&sends);
        assert!(n.answered(0, id, None, false).is_none());
        assert!(n.answered(0, id, None, false).is_none(), "twice");
        assert_eq!(
            n.answered(2, id, None, false),
            Some(Reserved::Granted {
                req: 7,
                name: b"j".to_vec()
            })
        );
        // Held until made: a second reservation of it waits.
        assert!(n.is_mine(b"j"));
        assert!(n.reserve(8, b"j", 100, &[0, 2]).is_none());
        n.made(b"j");
        assert!(!n.is_mine(b"j"));
        // Alone: granted at once.
        let (sends, done) = n.reserve(9, b"k", 100, &[]).unwrap();
        assert!(sends.is_empty());
        assert_eq!(done.map(|d| d.req()), Some(9));
    }

    #[test]
    fn an_exported_name_exists() {
        let mut n: Namespace<()> = Namespace::new(1);
        let (sends, _) = n.reserve(7, b"j", 100, &[0, 2]).unwrap();
        let (id, _) = reserve_id(&sends);
        assert!(n.answered(2, id, Some(F), false).is_none());
        assert_eq!(
            n.answered(0, id, None, true),
            Some(Reserved::Exists {
                req: 7,
                name: b"j".to_vec(),
                owner: 2,
                info: F
            })
        );
        assert!(!n.is_mine(b"j"), "not held");
    }

    #[test]
    fn two_hosts_racing_for_a_name_get_it_once() {
        // Every order of the four messages: exactly one host wins.
        for clocks in [(5, 5), (5, 9), (9, 5)] {
            let mut a: Namespace<()> = Namespace::new(1);
            let mut b: Namespace<()> = Namespace::new(2);
            let (sa, _) = a.reserve(1, b"x", clocks.0, &[2]).unwrap();
            let (sb, _) = b.reserve(1, b"x", clocks.1, &[1]).unwrap();
            let (ia, ta) = reserve_id(&sa);
            let (ib, tb) = reserve_id(&sb);
            let to_b = b.asked(1, ia, b"x", ta, None);
            let to_a = a.asked(2, ib, b"x", tb, None);
            let ra = match to_b {
                NameMsg::Reserved { found, refused, .. } => a.answered(2, ia, found, refused),
                m => panic!("{m:?}"),
            };
            let rb = match to_a {
                NameMsg::Reserved { found, refused, .. } => b.answered(1, ib, found, refused),
                m => panic!("{m:?}"),
            };
            let wins = [ra, rb]
                .iter()
                .filter(|r| matches!(r, Some(Reserved::Granted { .. })))
                .count();
            assert_eq!(wins, 1, "clocks {clocks:?}");
        }
    }

    #[test]
    fn a_host_that_granted_a_name_asks_for_it_later_and_is_refused() {
        let mut a: Namespace<()> = Namespace::new(1);
        let mut b: Namespace<()> = Namespace::new(2);
        // b's clock is far ahead of a's.
        let (sb, _) = b.reserve(1, b"x", 1_000, &[1]).unwrap();
        let (ib, tb) = reserve_id(&sb);
        assert_eq!(
            a.asked(2, ib, b"x", tb, None),
            NameMsg::Reserved {
                id: ib,
                found: None,
                refused: false
            }
        );
        // a asks after granting: its stamp is past b's, so b refuses it.
        let (sa, _) = a.reserve(1, b"x", 10, &[2]).unwrap();
        let (ia, ta) = reserve_id(&sa);
        assert!(ta > tb);
        let NameMsg::Reserved { refused, .. } = b.asked(1, ia, b"x", ta, None) else {
            panic!()
        };
        assert!(refused);
        assert_eq!(
            a.answered(2, ia, None, refused),
            Some(Reserved::Busy {
                req: 1,
                name: b"x".to_vec()
            })
        );
        assert!(!a.is_mine(b"x"));
    }

    #[test]
    fn a_peer_going_down_is_not_waited_for() {
        let mut n: Namespace<u32> = Namespace::new(1);
        let (sends, _) = n.reserve(7, b"j", 100, &[0, 2]).unwrap();
        let (id, _) = reserve_id(&sends);
        assert!(n.answered(0, id, None, false).is_none());
        let (r, t) = n.peer_down(2);
        assert_eq!(r.len(), 1);
        assert!(matches!(r[0], Reserved::Granted { req: 7, .. }));
        assert!(t.is_empty());
        // Forget rounds.
        let (sends, now) = n.forget(b"j", &[0, 2], 5);
        assert_eq!(sends.len(), 2);
        assert!(now.is_none());
        let id = match &sends[0].1 {
            NameMsg::Forget { id, .. } => *id,
            m => panic!("{m:?}"),
        };
        assert!(n.forgot(0, id).is_none());
        assert!(n.forgot(0, id).is_none(), "twice");
        assert_eq!(n.peer_down(2).1, vec![5]);
        assert!(n.forgot(2, id).is_none(), "over");
        // Nobody to tell.
        assert_eq!(n.forget(b"j", &[], 6).1, Some(6));
    }
}
