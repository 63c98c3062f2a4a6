//! Fetching ahead of a sequential scan.
//!
//! The kernel reads a file of another host's page by page (its own
//! readahead is off: a page fetched for nobody may be one another host is
//! using), a READ each, or a run of pages in one READ once told they are
//! at hand here. When READs of a remote file come in order, the engine asks the
//! owner for the pages after them before the kernel does, as
//! `WhereIs{Prefetch}`: the owner serves a page only if it is idle (no
//! host holds it writable, nothing moves it), so a scan never takes a page
//! from a host using it, and never waits. The copies that come are kept
//! here until the kernel's READ of them, which is then answered at once.
//!
//! Only read-replicated (`mrsw`) files are fetched ahead: their pages
//! come as read-only copies from the owner's disk, which cost nobody
//! anything to drop or to lose with this host. A `single` file's page
//! would come as the writable copy, which its owner would take for lost
//! if this host died holding it.
//!
//! A kept page is, for the page protocol, one this host's kernel holds:
//! clean, so dropping it is a clean eviction, which needs nobody's leave.
//! It is dropped when the protocol takes the page from the kernel, when it
//! has waited [`KEEP_FOR`], and used only while the core still holds the
//! page under the grant it came with. Dirty pages (a `single` file's page
//! whose last writer's data is not on the owner's disk) are never kept:
//! their data would exist nowhere else.
//!
//! This is the bookkeeping only, without I/O; the engine drives it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::{PageData, PageId};

/// Pages asked for ahead of the last READ of a scan.
pub const WINDOW: u64 = 64;
/// Pages kept or asked for at most, across files.
pub const CAPACITY: usize = 1024;
/// A kept page not read by then is dropped.
pub const KEEP_FOR: Duration = Duration::from_secs(10);
/// A prefetch not answered by then is given up.
pub const ASK_FOR: Duration = Duration::from_secs(30);
/// Files whose READ order is followed at most.
const SCANS: usize = 256;
/// Request ids of prefetches (from 2^62 on: apart from the kernel's,
/// which are a sequence shifted by 8, and the name service's, from 2^63).
const FIRST_REQ: u64 = 1 << 62;

/// A copy's grant as [`crate::protocol::Core::grant_of`] tells it: its
/// epoch, and whether read-only.
pub type CopyGrant = (u64, bool);

/// A page kept for the kernel.
#[derive(Debug)]
pub struct Kept {
    pub data: PageData,
    /// The grant it came with: its epoch, and whether read-only.
    pub grant: CopyGrant,
    at: Instant,
}

/// One file's READs.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// The index a READ in order asks for next.
    next: u64,
    /// The highest index asked for ahead.
    ahead: Option<u64>,
}

/// The prefetch state of one engine.
#[derive(Debug)]
pub struct Prefetch {
    scans: HashMap<u64, Scan>,
    /// Files by their last READ, oldest first (at most [`SCANS`]).
    order: VecDeque<u64>,
    /// Prefetches under way: request id → page, and since when.
    asked: HashMap<u64, (PageId, Instant)>,
    by_page: HashMap<PageId, u64>,
    kept: HashMap<PageId, Kept>,
    /// Files whose last page the kernel got came as a read-only copy
    /// (`mrsw` at their owner): the only ones fetched ahead.
    replicated: HashSet<u64>,
    next_req: u64,
}

impl Default for Prefetch {
    fn default() -> Self {
        Prefetch {
            scans: HashMap::new(),
            order: VecDeque::new(),
            asked: HashMap::new(),
            by_page: HashMap::new(),
            kept: HashMap::new(),
            replicated: HashSet::new(),
            next_req: FIRST_REQ,
        }
    }
}

impl Prefetch {
    /// The kernel got a page of `file`, read-only or not. Only files read
    /// as read-only copies are fetched ahead: a `single` file's page
    /// fetched for nobody would be held writable, and lost with this host
    /// if it died (its owner cannot tell it was clean).
    pub fn granted(&mut self, file: u64, read_only: bool) {
        if read_only {
            if self.replicated.len() >= SCANS && !self.replicated.contains(&file) {
                // (Those whose READ order is no longer followed go first.)
                let scans = &self.scans;
                self.replicated.retain(|f| scans.contains_key(f));
                if self.replicated.len() >= SCANS {
                    self.replicated.clear();
                }
            }
            self.replicated.insert(file);
        } else {
            self.replicated.remove(&file);
        }
    }

    /// The kernel READs `page` of a file of `pages` pages: returns the
    /// pages to ask for now, each with its request id, when this READ
    /// follows the file's last one (a scan) and the file is read
    /// replicated.
    pub fn read(&mut self, page: PageId, pages: u64) -> Vec<(u64, PageId)> {
        let file = page.file;
        let last = self.scans.get(&file).copied();
        if let Some(i) = self.order.iter().position(|&f| f == file) {
            self.order.remove(i);
        }
        self.order.push_back(file);
        if self.order.len() > SCANS
            && let Some(old) = self.order.pop_front()
        {
            self.scans.remove(&old);
        }
        let in_order =
            last.is_some_and(|s| s.next == page.index) && self.replicated.contains(&file);
        let mut scan = Scan {
            next: page.index.saturating_add(1),
            ahead: last.and_then(|s| s.ahead).filter(|_| in_order),
        };
        let mut ask = Vec::new();
        // Asked for in batches of half a window or more (whenever half a
        // window or less is ahead): many asks and their answers then
        // travel together, a frame each but few system calls.
        let low = scan
            .ahead
            .is_none_or(|a| a <= page.index.saturating_add(WINDOW / 2));
        if in_order && low {
            let from = scan
                .ahead
                .map_or(scan.next, |a| a.saturating_add(1).max(scan.next));
            let to = page
                .index
                .saturating_add(WINDOW)
                .min(pages.saturating_sub(1));
            let mut index = from;
            while index <= to && self.asked.len() + self.kept.len() < CAPACITY {
                let p = PageId { file, index };
                if !self.by_page.contains_key(&p) && !self.kept.contains_key(&p) {
                    let req = self.next_req;
                    self.next_req += 1;
                    self.asked.insert(req, (p, Instant::now()));
                    self.by_page.insert(p, req);
                    ask.push((req, p));
                }
                scan.ahead = Some(index);
                index += 1;
            }
        }
        self.scans.insert(file, scan);
        ask
    }

    /// The prefetch under way of `page`, if any.
    pub fn asking(&self, page: PageId) -> Option<u64> {
        self.by_page.get(&page).copied()
    }

    /// Whether `req` is a prefetch's request id (answered or not).
    pub fn is_prefetch(req: u64) -> bool {
        (FIRST_REQ..1 << 63).contains(&req)
    }

    /// Prefetch `req` is answered or given up: its page, if it was under
    /// way.
    pub fn answered(&mut self, req: u64) -> Option<PageId> {
        let (page, _) = self.asked.remove(&req)?;
        self.by_page.remove(&page);
        Some(page)
    }

    /// The page of prefetch `req` came, `dirty` or not, and the core now
    /// holds it under `grant_of(page)`: keeps it for the kernel if it is
    /// clean and held (a dirty page's data would exist nowhere else: it
    /// goes home). Returns whether it was kept, which is what the core is
    /// told as installed.
    pub fn arrived(
        &mut self,
        req: u64,
        data: PageData,
        dirty: bool,
        grant_of: impl FnOnce(PageId) -> Option<(u64, bool)>,
    ) -> bool {
        let Some(page) = self.answered(req) else {
            return false;
        };
        match grant_of(page) {
            Some(grant) if !dirty => {
                let at = Instant::now();
                self.kept.insert(page, Kept { data, grant, at });
                true
            }
            _ => false,
        }
    }

    /// The kernel READs `page`: the copy kept for it, if it may be used:
    /// the core still holds the page under the grant it came with
    /// (`grant_now`; nothing took it since), and no invalidation of it
    /// waits for the kernel (`busy`). A copy that may not be used is
    /// dropped.
    pub fn serve(
        &mut self,
        page: PageId,
        grant_now: Option<(u64, bool)>,
        busy: bool,
    ) -> Option<Kept> {
        let kept = self.kept.remove(&page)?;
        (grant_now == Some(kept.grant) && !busy).then_some(kept)
    }

    /// The kept copies of the pages of `file` from page `from` on, in
    /// order, at most `max`, for a READ of them along with the page before:
    /// each while `usable(page, grant)` says it may be used under the grant
    /// it came with (taken out of the keep). The first that may not be used
    /// ends the run, and stays kept.
    pub fn take_run(
        &mut self,
        file: u64,
        from: u64,
        max: u32,
        mut usable: impl FnMut(PageId, CopyGrant) -> bool,
    ) -> Vec<Kept> {
        let mut run = Vec::new();
        for index in (from..=u64::MAX).take(max as usize) {
            let page = PageId { file, index };
            match self.kept.get(&page) {
                Some(k) if usable(page, k.grant) => {}
                _ => break,
            }
            if let Some(k) = self.kept.remove(&page) {
                run.push(k);
            }
        }
        run
    }

    /// How many pages of `file` from page `from` on, at most `max`, are
    /// kept in a row and `usable` (as in [`Prefetch::take_run`]): what a
    /// READ of page `from` would find at hand.
    pub fn ready(
        &self,
        file: u64,
        from: u64,
        max: u32,
        mut usable: impl FnMut(PageId, CopyGrant) -> bool,
    ) -> u32 {
        (from..=u64::MAX)
            .take(max as usize)
            .map(|index| PageId { file, index })
            .take_while(|p| self.kept.get(p).is_some_and(|k| usable(*p, k.grant)))
            .count() as u32
    }

    /// Keeps `kept` again for `page`: a copy taken for a READ the kernel
    /// then refused (it had given up on it), which the core still takes
    /// for the kernel's.
    pub fn keep_again(&mut self, page: PageId, kept: Kept) {
        self.kept.insert(page, kept);
    }

    /// Drops the kept copy of `page`, if any (the protocol takes the page
    /// from the kernel).
    pub fn drop_page(&mut self, page: PageId) {
        self.kept.remove(&page);
    }

    /// Drops everything kept and the READ order seen (prefetches under
    /// way stay until answered).
    pub fn forget(&mut self) {
        self.kept.clear();
        self.scans.clear();
        self.order.clear();
    }

    /// Drops pages kept longer than [`KEEP_FOR`]; returns them, each with
    /// the grant it came with (the kernel never had them: the core may
    /// give them back), and the prefetches under way longer than
    /// [`ASK_FOR`], given up.
    pub fn expire(&mut self, now: Instant) -> (Vec<(PageId, CopyGrant)>, Vec<u64>) {
        let mut unread: Vec<(PageId, CopyGrant)> = self
            .kept
            .iter()
            .filter(|(_, k)| now.saturating_duration_since(k.at) >= KEEP_FOR)
            .map(|(&page, k)| (page, k.grant))
            .collect();
        unread.sort_by_key(|&(p, _)| (p.file, p.index));
        for (page, _) in &unread {
            self.kept.remove(page);
        }
        let late: Vec<u64> = self
            .asked
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= ASK_FOR)
            .map(|(&req, _)| req)
            .collect();
        for &req in &late {
            self.answered(req);
        }
        (unread, late)
    }

    /// Pages kept, and prefetches under way.
    pub fn sizes(&self) -> (usize, usize) {
        (self.kept.len(), self.asked.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 7;

    fn p(index: u64) -> PageId {
        PageId { file: F, index }
    }

    fn pages(ask: &[(u64, PageId)]) -> Vec<u64> {
        ask.iter().map(|(_, p)| p.index).collect()
    }

    #[test]
    fn runs_take_kept_pages_in_order_while_usable() {
        let mut pf = Prefetch::default();
        pf.granted(F, true);
        pf.read(p(0), 100);
        let ask = pf.read(p(1), 100);
        // Pages 2..=6 come, except 5; page 4 is held under another grant.
        for &(r, page) in &ask[..5] {
            if page.index != 5 {
                let grant = if page.index == 4 {
                    (2, true)
                } else {
                    (1, true)
                };
                assert!(pf.arrived(r, vec![page.index as u8].into(), false, |_| Some(grant)));
            }
        }
        let held = |_: PageId, g: CopyGrant| g == (1, true);
        assert_eq!(pf.ready(F, 2, 16, held), 2, "pages 2 and 3, not 4");
        assert_eq!(pf.ready(F, 2, 1, held), 1, "at most max");
        assert_eq!(pf.ready(F, 5, 16, held), 0, "page 5 never came");
        assert_eq!(pf.ready(F, 6, 16, held), 1);
        // A run stops at the first page that may not be used, which stays.
        let run = pf.take_run(F, 2, 15, held);
        let data: Vec<u8> = run.iter().map(|k| k.data[0]).collect();
        assert_eq!(data, [2, 3]);
        assert_eq!(pf.ready(F, 2, 16, held), 0, "taken");
        assert_eq!(pf.ready(F, 4, 16, |_, _| true), 1, "page 4 stays kept");
        assert!(pf.take_run(F, 4, 15, held).is_empty());
        assert_eq!(pf.take_run(F, 4, 0, |_, _| true).len(), 0, "max 0");
        assert_eq!(pf.take_run(F, 4, 15, |_, _| true).len(), 1);
        let mut six = pf.take_run(F, 6, 15, held);
        assert_eq!(six.len(), 1);
        // A copy taken for a READ the kernel refused is kept again.
        pf.keep_again(p(6), six.remove(0));
        assert_eq!(pf.ready(F, 6, 16, held), 1);
        // (Never past the last index.)
        assert_eq!(pf.ready(F, u64::MAX, 16, held), 0);
        assert!(pf.take_run(F, u64::MAX, 16, held).is_empty());
    }

    #[test]
    fn a_kept_copy_serves_only_under_its_grant_and_never_dirty() {
        let mut pf = Prefetch::default();
        pf.granted(F, true);
        pf.read(p(0), 100);
        let ask = pf.read(p(1), 100);
        let [(r2, p2), (r3, p3), (r4, p4), (r5, p5), (r6, p6)] = ask[..5] else {
            panic!("{ask:?}");
        };
        // Dirty: its data would be nowhere else.
        assert!(!pf.arrived(r2, vec![1].into(), true, |_| Some((1, true))));
        assert!(pf.serve(p2, Some((1, true)), false).is_none());
        // Not held by the core (taken meanwhile, or fenced).
        assert!(!pf.arrived(r3, vec![1].into(), false, |_| None));
        assert!(pf.serve(p3, None, false).is_none());
        // Held under another grant by the time the kernel asks: dropped.
        assert!(pf.arrived(r4, vec![1].into(), false, |_| Some((1, true))));
        assert!(pf.serve(p4, Some((2, true)), false).is_none());
        assert!(pf.serve(p4, Some((1, true)), false).is_none(), "dropped");
        // An invalidation of it waits for the kernel: dropped.
        assert!(pf.arrived(r5, vec![1].into(), false, |_| Some((1, true))));
        assert!(pf.serve(p5, Some((1, true)), true).is_none());
        // Taken by the protocol: dropped.
        assert!(pf.arrived(r6, vec![1].into(), false, |_| Some((1, true))));
        pf.drop_page(p6);
        assert!(pf.serve(p6, Some((1, true)), false).is_none());
    }

    #[test]
    fn replicated_files_are_bounded() {
        let mut pf = Prefetch::default();
        for f in 0..3 * SCANS as u64 {
            pf.granted(f, true);
            assert!(pf.replicated.len() <= SCANS);
        }
        assert!(pf.replicated.contains(&(3 * SCANS as u64 - 1)));
    }

    #[test]
    fn only_files_read_as_read_only_copies() {
        let mut pf = Prefetch::default();
        pf.read(p(0), 100);
        assert!(pf.read(p(1), 100).is_empty());
        pf.granted(F, true);
        assert_eq!(pf.read(p(2), 100).len(), WINDOW as usize);
        pf.granted(F, false);
        assert!(pf.read(p(3), 100).is_empty());
    }

    #[test]
    fn a_scan_is_fetched_ahead_once_and_a_jump_starts_over() {
        let mut pf = Prefetch::default();
        pf.granted(F, true);
        // The first READ of a file is no scan yet.
        assert!(pf.read(p(0), 1000).is_empty());
        // The next in order asks for the window after it.
        let ask = pf.read(p(1), 1000);
        assert_eq!(pages(&ask), (2..=1 + WINDOW).collect::<Vec<_>>());
        assert!(ask.iter().all(|&(r, _)| Prefetch::is_prefetch(r)));
        // The next ask nothing while more than half a window is ahead,
        // then for what the window gained, together.
        for i in 2..1 + WINDOW / 2 {
            assert!(pf.read(p(i), 1000).is_empty(), "READ of page {i}");
        }
        let ask = pf.read(p(1 + WINDOW / 2), 1000);
        assert_eq!(
            pages(&ask),
            (2 + WINDOW..=1 + WINDOW / 2 + WINDOW).collect::<Vec<_>>()
        );
        // A jump is no scan; in order again from there, it asks anew,
        // but not for pages under way.
        assert!(pf.read(p(500), 1000).is_empty());
        assert!(pf.read(p(40), 1000).is_empty());
        let ask = pf.read(p(41), 1000);
        assert_eq!(
            pages(&ask),
            (2 + WINDOW / 2 + WINDOW..=41 + WINDOW).collect::<Vec<_>>()
        );
    }

    #[test]
    fn never_past_the_end_of_the_file_nor_the_capacity() {
        let mut pf = Prefetch::default();
        pf.granted(F, true);
        pf.read(p(0), 10);
        assert_eq!(pages(&pf.read(p(1), 10)), (2..10).collect::<Vec<_>>());
        assert!(pf.read(p(2), 10).is_empty());
        let mut pf = Prefetch::default();
        let mut asked = 0;
        for f in 0..100u64 {
            let q = |index| PageId { file: f, index };
            pf.granted(f, true);
            pf.read(q(0), 1 << 20);
            asked += pf.read(q(1), 1 << 20).len();
        }
        assert_eq!(asked, CAPACITY);
        assert_eq!(pf.sizes(), (0, CAPACITY));
    }

    #[test]
    fn answers_keep_and_expire() {
        let mut pf = Prefetch::default();
        pf.granted(F, true);
        pf.read(p(0), 100);
        let ask = pf.read(p(1), 100);
        let (req, page) = ask[0];
        assert_eq!(pf.asking(page), Some(req));
        assert!(pf.arrived(req, vec![1; 8].into(), false, |_| Some((3, true))));
        assert!(
            !pf.arrived(req, vec![1; 8].into(), false, |_| Some((3, true))),
            "answered once"
        );
        assert_eq!(pf.asking(page), None);
        let k = pf.serve(page, Some((3, true)), false).expect("kept");
        assert_eq!((k.data.to_vec(), k.grant), (vec![1; 8], (3, true)));
        assert!(
            pf.serve(page, Some((3, true)), false).is_none(),
            "served once"
        );
        // Kept until too long, then returned with its grant (for the
        // core to give back).
        let (req, page) = ask[1];
        assert!(pf.arrived(req, vec![2; 8].into(), false, |_| Some((4, true))));
        let (unread, late) = pf.expire(Instant::now());
        assert!(unread.is_empty() && late.is_empty(), "not yet");
        let (unread, late) = pf.expire(Instant::now() + ASK_FOR);
        assert_eq!(unread, vec![(page, (4, true))]);
        assert_eq!(late.len(), ask.len() - 2, "every other prefetch given up");
        assert!(
            pf.serve(page, Some((4, true)), false).is_none(),
            "kept too long"
        );
        assert_eq!(pf.sizes(), (0, 0));
        assert!(!Prefetch::is_prefetch(5 << 8));
        assert!(!Prefetch::is_prefetch(1 << 63));
    }
}
