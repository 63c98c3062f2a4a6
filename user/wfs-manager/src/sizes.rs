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
//!   acknowledged it ([`SizeMsg::IsAck`]) or has been taken for dead. So a
//!   `stat` on any host after the write returns sees the new size. A peer
//!   that was not connected hears it when its connection is back (the
//!   session sends it again), before anything the owner sent after it.
//! * A request asked of an owner that is taken for dead fails
//!   (`EHOSTDOWN`, as a fault on its pages does). Nothing waits for ever:
//!   both sides give up after the engine's deadline.

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
    /// `Is` `id` was heard (and told the kernel).
    IsAck {
        /// The `Is`'s id.
        id: u64,
    },
}

/// Who waits for a growth to reach the other hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// This host's kernel: SETSIZE `req`, read at `started`.
    Kernel {
        /// The kernel's request id.
        req: u64,
        /// When it was read.
        started: Instant,
    },
    /// Another host's manager: `Set` `id`.
    Peer {
        /// The asking host.
        host: HostId,
        /// Its `Set`'s id.
        id: u64,
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

/// A kernel SETSIZE asked of the file's owner.
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
}

/// A growth being told to the other hosts.
#[derive(Debug)]
struct Telling {
    file: u64,
    size: u64,
    /// The hosts whose acknowledgement it waits for.
    waiting: BTreeSet<HostId>,
    then: Then,
    since: Instant,
}

/// One host's side of the size service; see the module documentation.
#[derive(Debug, Default)]
pub struct Sizes {
    /// This kernel's requests asked of other owners, by `Set` id.
    asks: HashMap<u64, Asking>,
    /// Growths of this owner's files being told, by `Is` id.
    telling: HashMap<u64, Telling>,
    next: u64,
}

impl Sizes {
    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Asks `a.owner` for the size in `a`: the `Set` to send it.
    pub fn ask(&mut self, a: Asking) -> SizeMsg {
        let id = self.next_id();
        self.asks.insert(id, a);
        SizeMsg::Set {
            id,
            file: a.file,
            size: a.size,
            grow: a.grow,
        }
    }

    /// `from` answered `Set` `id`: the request it answers, if it was asked
    /// of that host and still waits.
    pub fn answered(&mut self, from: HostId, id: u64) -> Option<Asking> {
        if self.asks.get(&id)?.owner != from {
            return None;
        }
        self.asks.remove(&id)
    }

    /// This owner's `file` is `size` bytes long now: tells each of `to`
    /// (`Is`, the messages to send) and waits for those of them in `wait`
    /// (connected now) to acknowledge it; `then` waits for that. With
    /// nobody to wait for, it is told at once (the second result).
    pub fn tell(
        &mut self,
        file: u64,
        size: u64,
        to: &[HostId],
        wait: &[HostId],
        then: Then,
        now: Instant,
    ) -> (Vec<(HostId, SizeMsg)>, Option<Told>) {
        let id = self.next_id();
        let sends = to
            .iter()
            .map(|&h| (h, SizeMsg::Is { id, file, size }))
            .collect();
        let waiting: BTreeSet<HostId> = wait.iter().copied().filter(|h| to.contains(h)).collect();
        if waiting.is_empty() {
            return (sends, Some(Told { then, file, size }));
        }
        self.telling.insert(
            id,
            Telling {
                file,
                size,
                waiting,
                then,
                since: now,
            },
        );
        (sends, None)
    }

    /// `from` acknowledged `Is` `id`: the growth, if every host it waited
    /// for has now heard of it.
    pub fn acked(&mut self, from: HostId, id: u64) -> Option<Told> {
        let t = self.telling.get_mut(&id)?;
        if !t.waiting.remove(&from) || !t.waiting.is_empty() {
            return None;
        }
        self.telling.remove(&id).map(told)
    }

    /// `host` is taken for dead (or left, or restarted): the requests
    /// asked of it (to fail), and the growths that waited for it alone (to
    /// answer). A growth it asked for goes unanswered.
    pub fn host_gone(&mut self, host: HostId) -> (Vec<Asking>, Vec<Told>) {
        let failed = self.take_asks(|a| a.owner == host);
        self.telling
            .retain(|_, t| !matches!(t.then, Then::Peer { host: h, .. } if h == host));
        let ids = sorted(self.telling.iter_mut().filter_map(|(&id, t)| {
            (t.waiting.remove(&host) && t.waiting.is_empty()).then_some(id)
        }));
        let done = ids
            .into_iter()
            .filter_map(|id| self.telling.remove(&id))
            .map(told)
            .collect();
        (failed, done)
    }

    /// What has waited `deadline` or longer by `now`: requests asked of an
    /// owner (to fail: their kernels gave up long ago), and growths some
    /// host never acknowledged (to answer: the file did grow).
    pub fn expire(&mut self, now: Instant, deadline: Duration) -> (Vec<Asking>, Vec<Told>) {
        let late = |t: Instant| now.saturating_duration_since(t) >= deadline;
        let failed = self.take_asks(|a| late(a.started));
        let ids = sorted(
            self.telling
                .iter()
                .filter(|(_, t)| late(t.since))
                .map(|(&id, _)| id),
        );
        let done = ids
            .into_iter()
            .filter_map(|id| self.telling.remove(&id))
            .map(told)
            .collect();
        (failed, done)
    }

    /// How many requests wait for an owner.
    pub fn asking(&self) -> usize {
        self.asks.len()
    }

    /// How many growths wait for acknowledgements.
    pub fn telling(&self) -> usize {
        self.telling.len()
    }

    fn take_asks(&mut self, pred: impl Fn(&Asking) -> bool) -> Vec<Asking> {
        let ids = sorted(self.asks.iter().filter(|(_, a)| pred(a)).map(|(&id, _)| id));
        ids.into_iter()
            .filter_map(|id| self.asks.remove(&id))
            .collect()
    }
}

fn told(t: Telling) -> Told {
    Told {
        then: t.then,
        file: t.file,
        size: t.size,
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

    fn asking(req: u64, owner: HostId, started: Instant) -> Asking {
        Asking {
            req,
            started,
            owner,
            file: 9,
            size: 8192,
            grow: true,
        }
    }

    #[test]
    fn an_answer_counts_only_from_the_owner_asked() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let SizeMsg::Set {
            id,
            file: 9,
            size: 8192,
            grow: true,
        } = s.ask(asking(7, 2, now))
        else {
            panic!("a Set");
        };
        assert_eq!(s.answered(3, id), None, "another host");
        assert_eq!(s.answered(2, id + 1), None, "another id");
        assert_eq!(s.answered(2, id).map(|a| a.req), Some(7));
        assert_eq!(s.answered(2, id), None, "answered once");
        assert_eq!(s.asking(), 0);
    }

    #[test]
    fn a_growth_is_told_once_every_connected_host_acknowledged_it() {
        let mut s = Sizes::default();
        let now = Instant::now();
        let then = Then::Kernel {
            req: 4,
            started: now,
        };
        // Hosts 1, 2 and 3 are told; 3 is not connected (not waited for).
        let (sends, done) = s.tell(9, 100, &[1, 2, 3], &[1, 2], then, now);
        assert_eq!(done, None);
        let id = match &sends[..] {
            [
                (
                    1,
                    SizeMsg::Is {
                        id,
                        file: 9,
                        size: 100,
                    },
                ),
                (2, SizeMsg::Is { .. }),
                (3, SizeMsg::Is { .. }),
            ] => *id,
            o => panic!("{o:?}"),
        };
        assert_eq!(s.acked(3, id), None, "not waited for");
        assert_eq!(s.acked(1, id), None);
        assert_eq!(s.acked(1, id), None, "twice");
        assert_eq!(s.acked(2, id + 1), None, "another id");
        let told = Told {
            then,
            file: 9,
            size: 100,
        };
        assert_eq!(s.acked(2, id), Some(told));
        assert_eq!(s.acked(2, id), None, "told once");
        assert_eq!(s.telling(), 0);
        // Nobody connected: told at once.
        let (sends, done) = s.tell(9, 200, &[3], &[], then, now);
        assert_eq!(sends.len(), 1);
        assert_eq!(done.map(|t| t.size), Some(200));
        let (sends, done) = s.tell(9, 300, &[], &[], then, now);
        assert!(sends.is_empty());
        assert_eq!(done.map(|t| t.size), Some(300));
    }

    #[test]
    fn a_dead_host_is_not_waited_for_and_fails_what_was_asked_of_it() {
        let mut s = Sizes::default();
        let now = Instant::now();
        s.ask(asking(1, 2, now));
        s.ask(asking(2, 3, now));
        let kernel = Then::Kernel {
            req: 5,
            started: now,
        };
        let (_, none) = s.tell(9, 100, &[2, 3], &[2, 3], kernel, now);
        assert_eq!(none, None);
        // A growth host 2 asked for, told to host 3 only.
        let asked = Then::Peer { host: 2, id: 77 };
        s.tell(9, 200, &[3], &[3], asked, now);
        let (failed, done) = s.host_gone(2);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [1]);
        assert!(done.is_empty(), "{done:?}");
        assert_eq!(s.telling(), 1, "host 2's own growth goes unanswered");
        let (failed, done) = s.host_gone(3);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [2]);
        assert_eq!(
            done,
            vec![Told {
                then: kernel,
                file: 9,
                size: 100
            }]
        );
        assert_eq!((s.asking(), s.telling()), (0, 0));
    }

    #[test]
    fn nothing_waits_past_the_deadline() {
        let mut s = Sizes::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        s.ask(asking(1, 2, t0));
        s.ask(asking(2, 2, later));
        let then = Then::Peer { host: 4, id: 1 };
        s.tell(9, 100, &[2], &[2], then, t0);
        let d = Duration::from_secs(5);
        let (failed, done) = s.expire(t0 + Duration::from_secs(4), d);
        assert!(failed.is_empty() && done.is_empty());
        let (failed, done) = s.expire(later, d);
        assert_eq!(failed.iter().map(|a| a.req).collect::<Vec<_>>(), [1]);
        assert_eq!(done.iter().map(|t| t.then).collect::<Vec<_>>(), [then]);
        assert_eq!((s.asking(), s.telling()), (1, 0));
    }
}
