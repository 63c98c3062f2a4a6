//! Views: Mether's inconsistent read-only copies.
//!
//! A view is a second mount of `/wfs`'s files, `mount -t wfs -o ro,view`.
//! Its kernel asks for a page with VIEW instead of READ, and the manager
//! answers with the page as the file's owner has it on disk, asking the
//! owner with `Peek` when the file is another host's. No grant is kept
//! and no copyset lists the copy: the page protocol never takes it back,
//! and a writer never waits for it. The program refreshes its view when
//! it chooses, with `msync(MS_INVALIDATE)` on its mapping (the kernel
//! drops the pages; the next access asks again).
//!
//! What a view shows is what has reached the owner's disk: a writer's
//! data once it is written back (`msync(MS_SYNC)`, `fsync`, the kernel's
//! writeback) or sent home for a read copy (`mrsw`).
//!
//! This is the requester's bookkeeping, without I/O; the engine drives it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::{HostId, PageId};

/// A message about views between two managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewMsg {
    /// The sender's view asks for `page` as this host, its owner, has it
    /// on disk.
    Peek { id: u64, page: PageId },
    /// The answer: the page's bytes, or an errno.
    Peeked {
        id: u64,
        page: PageId,
        data: Result<crate::protocol::PageData, i32>,
    },
}

/// A VIEW request waiting for its owner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// The kernel's request id, and the pool slot it lent.
    pub req: u64,
    pub slot: u32,
    pub started: Instant,
    pub page: PageId,
    pub owner: HostId,
}

/// The VIEW requests of one engine that wait for an owner.
#[derive(Debug, Default)]
pub struct Views {
    waiting: HashMap<u64, Waiting>,
    next: u64,
}

impl Views {
    /// Starts asking `w.owner` for `w.page`; returns the `Peek` to send.
    pub fn ask(&mut self, w: Waiting) -> ViewMsg {
        self.next += 1;
        let id = self.next;
        self.waiting.insert(id, w);
        ViewMsg::Peek { id, page: w.page }
    }

    /// `from` answered `Peek` `id` about `page`: the request it answers,
    /// if it asked that host about that page and still waits.
    pub fn answered(&mut self, from: HostId, id: u64, page: PageId) -> Option<Waiting> {
        let w = self.waiting.get(&id)?;
        if w.owner != from || w.page != page {
            return None;
        }
        self.waiting.remove(&id)
    }

    /// `host` is gone (taken for dead): the requests waiting for it.
    pub fn owner_gone(&mut self, host: HostId) -> Vec<Waiting> {
        self.take(|w| w.owner == host)
    }

    /// The requests that have waited `deadline` or longer by `now`.
    pub fn expire(&mut self, now: Instant, deadline: Duration) -> Vec<Waiting> {
        self.take(|w| now.saturating_duration_since(w.started) >= deadline)
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn take(&mut self, pred: impl Fn(&Waiting) -> bool) -> Vec<Waiting> {
        let mut ids: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| pred(w))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.waiting.remove(&id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(req: u64, owner: HostId, index: u64, started: Instant) -> Waiting {
        Waiting {
            req,
            slot: 3,
            started,
            page: PageId { file: 9, index },
            owner,
        }
    }

    #[test]
    fn an_answer_counts_only_from_the_owner_asked_about_the_page_asked() {
        let mut v = Views::default();
        let now = Instant::now();
        let ViewMsg::Peek { id, page } = v.ask(w(10, 2, 5, now)) else {
            panic!("a peek");
        };
        assert_eq!(page, PageId { file: 9, index: 5 });
        assert_eq!(v.answered(3, id, page), None, "another host");
        assert_eq!(v.answered(2, id, PageId { file: 9, index: 6 }), None);
        assert_eq!(v.answered(2, id + 1, page), None);
        assert_eq!(v.answered(2, id, page).map(|w| w.req), Some(10));
        assert_eq!(v.answered(2, id, page), None, "answered once");
        assert!(v.is_empty());
    }

    #[test]
    fn requests_go_with_their_owner_or_their_deadline() {
        let mut v = Views::default();
        let now = Instant::now();
        v.ask(w(1, 2, 0, now));
        v.ask(w(2, 3, 0, now));
        v.ask(w(3, 2, 1, now + Duration::from_secs(5)));
        let gone: Vec<u64> = v.owner_gone(2).iter().map(|w| w.req).collect();
        assert_eq!(gone, vec![1, 3]);
        assert!(v.expire(now, Duration::from_secs(1)).is_empty());
        let late = v.expire(now + Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(late.iter().map(|w| w.req).collect::<Vec<_>>(), vec![2]);
        assert_eq!(v.len(), 0);
    }
}
