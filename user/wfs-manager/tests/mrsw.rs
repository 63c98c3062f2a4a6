//! Read replication (`mrsw`, Documentation/mrsw.md) at the level of the
//! page protocol's cores: a few hosts, their kernels modelled as page
//! caches that answer at once, the owner's disk as a map, and messages
//! delivered in order, one pair at a time. Each test drives one case by
//! hand and checks the copies every host's kernel holds.
//!
//! The random simulation (`tests/sim.rs`) covers `single` files; these
//! cases pin down what `mrsw` adds: read-only copies from the owner's disk,
//! a writer's data sent home before anyone reads it, revocations before
//! any write, and upgrades turned into write faults.

use std::collections::{BTreeMap, VecDeque};

use wfs_manager::protocol::{
    Access, Coherence, Core, Held, HostId, Input, Msg, Output, PREFETCH_REFUSED, PageId,
    UpgradeAnswer,
};

const FILE: u64 = 7;
const OWNER: HostId = 0;
const P: PageId = PageId {
    file: FILE,
    index: 0,
};

fn value(d: &[u8]) -> u64 {
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

fn data(v: u64) -> wfs_manager::protocol::PageData {
    v.to_le_bytes().to_vec().into()
}

/// A page in a kernel's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Copy {
    value: u64,
    dirty: bool,
    writable: bool,
}

/// Hosts 0..n; host 0 owns file 7, `mrsw` unless said otherwise.
struct Net {
    cores: Vec<Core>,
    kernels: Vec<BTreeMap<PageId, Copy>>,
    disk: BTreeMap<PageId, u64>,
    /// Messages sent and not delivered, per (from, to), in order.
    wire: BTreeMap<(HostId, HostId), VecDeque<Msg>>,
    /// READs waiting, per host: request → page.
    reads: Vec<BTreeMap<u64, PageId>>,
    /// Answers to UPGRADEs, per host, in order.
    upgrades: Vec<Vec<(u64, UpgradeAnswer)>>,
    /// Every message delivered, for the checks of order.
    log: Vec<(HostId, HostId, Msg)>,
    next_req: u64,
    /// Disk writes held back until [`Net::flush`] (when `hold_disk`).
    hold_disk: bool,
    held: Vec<Output>,
    /// Invalidations held back (when `hold_kernel`): the kernel is slow.
    hold_kernel: bool,
    held_kernel: Vec<(HostId, Output)>,
    /// Pages reported lost, and by whom.
    lost: Vec<(HostId, PageId)>,
    /// READs (and prefetches) failed: host, request, error.
    failed: Vec<(HostId, u64, i32)>,
    /// Hosts whose core said it has left.
    left: Vec<HostId>,
}

impl Net {
    fn new(n: usize, coherence: Coherence) -> Net {
        let mut cores: Vec<Core> = (0..n as HostId).map(Core::new).collect();
        for c in &mut cores {
            c.add_file(FILE, OWNER);
        }
        cores[OWNER as usize].set_coherence(FILE, coherence);
        Net {
            cores,
            kernels: vec![BTreeMap::new(); n],
            disk: BTreeMap::new(),
            wire: BTreeMap::new(),
            reads: vec![BTreeMap::new(); n],
            upgrades: vec![Vec::new(); n],
            log: Vec::new(),
            next_req: 0,
            hold_disk: false,
            held: Vec::new(),
            hold_kernel: false,
            held_kernel: Vec::new(),
            lost: Vec::new(),
            failed: Vec::new(),
            left: Vec::new(),
        }
    }

    fn input(&mut self, h: HostId, input: Input) {
        let out = self.cores[h as usize]
            .handle(input.clone())
            .unwrap_or_else(|e| panic!("h{h} refused {input:?}: {e:?}"));
        for o in out {
            self.output(h, o);
        }
    }

    /// What the environment of host `h` does with one of its outputs.
    fn output(&mut self, h: HostId, o: Output) {
        let k = h as usize;
        match o {
            Output::Send { to, msg } => self.wire.entry((h, to)).or_default().push_back(msg),
            Output::Grant {
                req,
                data,
                dirty,
                writable,
            } => {
                let page = self.reads[k].remove(&req).expect("a READ waits");
                let copy = Copy {
                    value: value(&data),
                    dirty,
                    writable: writable || dirty,
                };
                self.kernels[k].insert(page, copy);
                self.input(
                    h,
                    Input::Answered {
                        req,
                        installed: true,
                    },
                );
            }
            o @ Output::Invalidate { .. } if self.hold_kernel => self.held_kernel.push((h, o)),
            Output::Lost { page, .. } => self.lost.push((h, page)),
            Output::ReadFailed { req, error } => {
                self.reads[k].remove(&req);
                self.failed.push((h, req, error));
            }
            Output::Invalidate { page } => {
                let contents = self.kernels[k]
                    .remove(&page)
                    .map(|c| (data(c.value), c.dirty));
                self.input(h, Input::Invalidated { page, contents });
            }
            Output::Downgrade { page } => {
                let contents = self.kernels[k].get_mut(&page).map(|c| {
                    let was = (data(c.value), c.dirty);
                    c.dirty = false;
                    c.writable = false;
                    was
                });
                self.input(h, Input::Downgraded { page, contents });
            }
            Output::DiskRead { page } => {
                let v = self.disk.get(&page).copied().unwrap_or(0);
                self.input(
                    h,
                    Input::DiskRead {
                        page,
                        data: data(v),
                    },
                );
            }
            o @ Output::DiskWrite { .. } if self.hold_disk => self.held.push(o),
            Output::DiskWrite {
                page,
                data,
                epoch,
                ack,
            } => {
                self.disk.insert(page, value(&data));
                self.input(
                    h,
                    Input::DiskWritten {
                        page,
                        epoch,
                        ack,
                        error: 0,
                    },
                );
            }
            Output::UpgradeAnswer { req, answer } => {
                if answer == UpgradeAnswer::Refault {
                    // The kernel drops its copy and reads the page in
                    // again.
                    let page = P;
                    self.kernels[k].remove(&page);
                    self.fault(h, page);
                }
                self.upgrades[k].push((req, answer));
            }
            Output::Declare {
                host, incarnation, ..
            } => self.input(
                h,
                Input::PeerDied {
                    host,
                    incarnation,
                    undelivered: Vec::new(),
                    unsent: Vec::new(),
                },
            ),
            Output::Left => self.left.push(h),
            Output::WriteDone { .. } | Output::Evicted { .. } => {}
            other => panic!("h{h}: unexpected {other:?}"),
        }
    }

    /// The owner's held disk writes reach stable storage.
    fn flush(&mut self) {
        self.hold_disk = false;
        for o in std::mem::take(&mut self.held) {
            self.output(OWNER, o);
        }
        self.settle();
    }

    /// Host `x` dies: what was on its way to or from it is gone, and the
    /// owner takes it for dead (the others follow its `Recover`).
    /// Every host learns every other's first incarnation.
    fn join(&mut self) {
        let n = self.cores.len() as HostId;
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                self.input(
                    a,
                    Input::PeerJoined {
                        host: b,
                        incarnation: 0,
                    },
                );
            }
        }
        self.settle();
    }

    fn kill(&mut self, x: HostId) {
        self.wire.retain(|&(f, t), _| f != x && t != x);
        self.kernels[x as usize].clear();
        self.input(
            OWNER,
            Input::PeerDied {
                host: x,
                incarnation: 0,
                undelivered: Vec::new(),
                unsent: Vec::new(),
            },
        );
        self.settle();
        self.wire.retain(|&(f, t), _| f != x && t != x);
    }

    /// Delivers every message, in order per pair, until none is left.
    fn settle(&mut self) {
        while let Some((&(from, to), _)) = self.wire.iter().find(|(_, q)| !q.is_empty()) {
            let msg = self
                .wire
                .get_mut(&(from, to))
                .and_then(VecDeque::pop_front)
                .expect("a message");
            self.log.push((from, to, msg.clone()));
            self.input(to, Input::Message { from, msg });
        }
    }

    fn fault(&mut self, h: HostId, page: PageId) {
        self.next_req += 1;
        let req = self.next_req;
        self.reads[h as usize].insert(req, page);
        self.input(h, Input::Fault { req, page });
    }

    /// Host `h`'s engine fetches the page ahead of its kernel (kept for
    /// it, which this model does as installing it); returns the request.
    fn prefetch(&mut self, h: HostId) -> u64 {
        self.next_req += 1;
        let req = self.next_req;
        self.reads[h as usize].insert(req, P);
        self.input(h, Input::Prefetch { req, page: P });
        req
    }

    /// Host `h` reads the page: from its cache, or by a fault.
    fn read(&mut self, h: HostId) -> u64 {
        if !self.kernels[h as usize].contains_key(&P) {
            self.fault(h, P);
            self.settle();
        }
        self.kernels[h as usize]
            .get(&P)
            .unwrap_or_else(|| panic!("h{h} never got the page"))
            .value
    }

    /// Host `h` writes `v`: upgrading a read-only copy first, or faulting
    /// the page in, as its kernel would.
    fn write(&mut self, h: HostId, v: u64) {
        let k = h as usize;
        for _ in 0..4 {
            match self.kernels[k].get(&P).copied() {
                None => {
                    self.fault(h, P);
                    self.settle();
                }
                Some(c) if !c.writable => {
                    if self.cores[k].writable(P) {
                        // The engine answers it at once.
                        self.kernels[k].insert(
                            P,
                            Copy {
                                writable: true,
                                ..c
                            },
                        );
                        continue;
                    }
                    self.next_req += 1;
                    let req = self.next_req;
                    self.input(h, Input::Upgrade { req, page: P });
                    self.settle();
                    if let Some(&(r, UpgradeAnswer::Granted { dirty })) = self.upgrades[k].last()
                        && r == req
                        && let Some(c) = self.kernels[k].get_mut(&P)
                    {
                        c.writable = true;
                        c.dirty |= dirty;
                    }
                }
                Some(_) => {
                    let c = self.kernels[k].get_mut(&P).expect("cached");
                    c.value = v;
                    c.dirty = true;
                    self.check();
                    return;
                }
            }
        }
        panic!(
            "h{h} could not write: {:?}\n{:#?}\n{:?}",
            self.kernels[k].get(&P),
            self.log,
            self.upgrades
        );
    }

    /// Host `h` writes its dirty copy back (msync).
    fn sync(&mut self, h: HostId) {
        let k = h as usize;
        let Some(c) = self.kernels[k].get(&P).copied().filter(|c| c.dirty) else {
            return;
        };
        self.kernels[k].insert(P, Copy { dirty: false, ..c });
        self.next_req += 1;
        let req = self.next_req;
        self.input(
            h,
            Input::Writeback {
                req,
                page: P,
                data: data(c.value),
            },
        );
        self.settle();
    }

    /// One writer or only readers; no read-only copy is dirty.
    fn check(&self) {
        let copies: Vec<(usize, Copy)> = self
            .kernels
            .iter()
            .enumerate()
            .filter_map(|(h, k)| k.get(&P).map(|c| (h, *c)))
            .collect();
        let writers = copies.iter().filter(|(_, c)| c.writable).count();
        assert!(
            writers == 0 || copies.len() == 1,
            "a writable copy beside others: {copies:?}"
        );
        for (h, c) in &copies {
            assert!(c.writable || !c.dirty, "h{h}: a dirty read-only copy");
        }
    }

    fn quiet(&self) {
        for (h, c) in self.cores.iter().enumerate() {
            assert_eq!(c.outstanding(), 0, "h{h} is not quiet");
        }
        assert!(self.wire.values().all(VecDeque::is_empty));
    }

    fn sent(&self, pred: impl Fn(&Msg) -> bool) -> Vec<(HostId, HostId)> {
        self.log
            .iter()
            .filter(|(_, _, m)| pred(m))
            .map(|&(f, t, _)| (f, t))
            .collect()
    }
}

#[test]
fn readers_share_read_only_copies_from_the_owners_disk() {
    let mut net = Net::new(3, Coherence::Mrsw);
    net.disk.insert(P, 5);
    assert_eq!(net.read(1), 5);
    assert_eq!(net.read(2), 5);
    assert_eq!(net.read(0), 5);
    for h in 0..3 {
        let c = net.kernels[h][&P];
        assert!(!c.writable && !c.dirty, "h{h}: {c:?}");
    }
    net.check();
    net.quiet();
    // Each copy came from the disk: three disk reads, no page moved.
    assert!(net.sent(|m| matches!(m, Msg::Fetch { .. })).is_empty());
    assert_eq!(
        net.sent(|m| matches!(
            m,
            Msg::Data {
                access: Access::Read,
                ..
            }
        ))
        .len(),
        2
    );
}

#[test]
fn an_upgrade_revokes_every_other_read_copy_first() {
    let mut net = Net::new(4, Coherence::Mrsw);
    net.disk.insert(P, 5);
    for h in 1..4 {
        net.read(h);
    }
    net.write(3, 6);
    // h3's read copy became the writable one in place, once the others'
    // copies were revoked: no data moved.
    assert_eq!(net.kernels[3][&P].value, 6);
    for h in 0..3 {
        assert!(!net.kernels[h].contains_key(&P), "h{h} kept a copy");
    }
    let revoked = net.sent(|m| matches!(m, Msg::Revoke { .. }));
    assert!(
        revoked.contains(&(0, 1)) && revoked.contains(&(0, 2)) && !revoked.contains(&(0, 3)),
        "{revoked:?}"
    );
    assert_eq!(
        net.upgrades[3],
        vec![(
            net.upgrades[3][0].0,
            UpgradeAnswer::Granted { dirty: false }
        )]
    );
    assert!(net.sent(|m| matches!(m, Msg::Data { .. })).len() == 3);
    assert!(net.sent(|m| matches!(m, Msg::Upgraded { .. })) == vec![(0, 3)]);
    net.check();
    net.quiet();
    // Its write goes home like any other.
    net.sync(3);
    assert_eq!(net.disk[&P], 6);
    assert_eq!(net.read(1), 6);
    net.quiet();
}

#[test]
fn of_two_readers_upgrading_at_once_one_is_granted_the_other_refaults() {
    let mut net = Net::new(3, Coherence::Mrsw);
    net.disk.insert(P, 5);
    net.read(1);
    net.read(2);
    // Both kernels ask before the owner hears either.
    net.input(1, Input::Upgrade { req: 101, page: P });
    net.input(2, Input::Upgrade { req: 102, page: P });
    net.settle();
    assert_eq!(
        net.upgrades[1],
        vec![(101, UpgradeAnswer::Granted { dirty: false })]
    );
    assert_eq!(net.upgrades[2], vec![(102, UpgradeAnswer::Refault)]);
    // The loser's write faulted the page in again, for writing: it came
    // from the winner, the writer now.
    assert!(
        !net.sent(|m| matches!(
            m,
            Msg::WhereIs {
                access: Access::Write,
                ..
            }
        ))
        .is_empty()
    );
    assert_eq!(net.sent(|m| matches!(m, Msg::Stale { .. })), vec![(0, 2)]);
    assert_eq!(net.sent(|m| matches!(m, Msg::Fetch { .. })), vec![(0, 1)]);
    assert!(!net.kernels[1].contains_key(&P));
    assert!(net.kernels[2][&P].writable);
    net.check();
    net.quiet();
}

#[test]
fn a_reader_gets_the_writers_data_only_once_it_is_on_disk() {
    let mut net = Net::new(3, Coherence::Mrsw);
    net.write(1, 9);
    assert!(net.kernels[1][&P].dirty);
    assert_eq!(net.disk.get(&P).copied().unwrap_or(0), 0);
    // h2 reads: h1 is asked to share; its dirty data goes home, then
    // `Kept`, and h2 gets a read copy from the disk once that data is on
    // it, not before.
    net.hold_disk = true;
    net.fault(2, P);
    net.settle();
    assert!(
        !net.kernels[2].contains_key(&P),
        "a read copy before the data was on disk"
    );
    assert_eq!(net.held.len(), 1);
    net.flush();
    assert_eq!(net.kernels[2][&P].value, 9);
    assert_eq!(net.disk[&P], 9);
    let h1 = net.kernels[1][&P];
    assert!(!h1.writable && !h1.dirty, "{h1:?}");
    let order: Vec<&Msg> = net
        .log
        .iter()
        .filter(|(f, t, _)| (*f, *t) == (1, 0))
        .map(|(_, _, m)| m)
        .collect();
    let put = order
        .iter()
        .position(|m| matches!(m, Msg::Put { .. }))
        .expect("a Put");
    let kept = order
        .iter()
        .position(|m| matches!(m, Msg::Kept { .. }))
        .expect("Kept");
    assert!(put < kept, "{order:?}");
    net.check();
    net.quiet();
    // And the writer writes again: h2's copy is revoked first.
    net.write(1, 10);
    assert!(!net.kernels[2].contains_key(&P));
    net.sync(1);
    assert_eq!(net.disk[&P], 10);
    assert_eq!(net.read(2), 10);
    net.quiet();
}

#[test]
fn a_writer_that_let_the_page_go_answers_a_share_absent() {
    let mut net = Net::new(3, Coherence::Mrsw);
    net.write(1, 4);
    net.sync(1);
    // Its kernel evicts the clean page silently.
    net.kernels[1].remove(&P);
    assert_eq!(net.read(2), 4);
    assert!(!net.sent(|m| matches!(m, Msg::Absent { .. })).is_empty());
    net.check();
    net.quiet();
}

#[test]
fn a_single_file_still_moves_its_one_writable_copy() {
    let mut net = Net::new(3, Coherence::Single);
    net.disk.insert(P, 3);
    assert_eq!(net.read(1), 3);
    assert!(net.kernels[1][&P].writable);
    assert_eq!(net.read(2), 3);
    assert!(!net.kernels[1].contains_key(&P));
    assert!(net.kernels[2][&P].writable);
    net.write(2, 8);
    assert!(
        net.sent(|m| matches!(
            m,
            Msg::Revoke { .. } | Msg::Share { .. } | Msg::Upgrade { .. }
        ))
        .is_empty()
    );
    assert!(net.upgrades.iter().all(Vec::is_empty));
    net.check();
    net.quiet();
}

#[test]
fn a_restarted_owner_rebuilds_its_readers_and_refuses_a_writer_beside_them() {
    // The owner's new incarnation hears h1 and h2 hold read copies: a write
    // from h3 revokes both.
    let mut net = Net::new(4, Coherence::Mrsw);
    let mut owner = Core::with_incarnation(OWNER, 2);
    owner.add_file(FILE, OWNER);
    owner.set_coherence(FILE, Coherence::Mrsw);
    for h in 1..4 {
        owner.add_peer(h);
    }
    net.cores[0] = owner;
    for h in 1..4 {
        net.input(
            0,
            Input::PeerJoined {
                host: h,
                incarnation: 1,
            },
        );
    }
    for (h, held) in [
        (1, vec![(P, 1, Held::Read)]),
        (2, vec![(P, 1, Held::Read)]),
        (3, vec![]),
    ] {
        let msg = Msg::Holding {
            pages: held,
            last: true,
        };
        net.input(0, Input::Message { from: h, msg });
    }
    net.write(3, 1);
    // h1 and h2 hold nothing in their cores here (the test builds the
    // owner's memory alone), so they answer the Revoke at once: the write
    // goes on once both have.
    let revoked = net.sent(|m| matches!(m, Msg::Revoke { .. }));
    assert!(
        revoked.contains(&(0, 1)) && revoked.contains(&(0, 2)),
        "{revoked:?}"
    );
    assert_eq!(net.kernels[3][&P].value, 1);
    net.quiet();
    // A writer reported beside a reader is a conflict.
    let mut owner = Core::with_incarnation(OWNER, 3);
    owner.add_file(FILE, OWNER);
    for h in 1..3 {
        owner.add_peer(h);
        owner
            .handle(Input::PeerJoined {
                host: h,
                incarnation: 1,
            })
            .unwrap();
    }
    let read = Msg::Holding {
        pages: vec![(P, 1, Held::Read)],
        last: true,
    };
    owner.handle(Input::Message { from: 1, msg: read }).unwrap();
    let write = Msg::Holding {
        pages: vec![(P, 1, Held::Write)],
        last: true,
    };
    assert!(
        owner
            .handle(Input::Message {
                from: 2,
                msg: write
            })
            .is_err()
    );
}

#[test]
fn a_reader_that_dies_unblocks_the_write_waiting_for_it() {
    let mut net = Net::new(4, Coherence::Mrsw);
    net.join();
    net.disk.insert(P, 5);
    for h in 1..4 {
        net.read(h);
    }
    // h1 upgrades; h2's `Revoked` never comes: it dies with the `Revoke`
    // on its way.
    net.input(1, Input::Upgrade { req: 50, page: P });
    let upgrade = net
        .wire
        .get_mut(&(1, 0))
        .and_then(VecDeque::pop_front)
        .expect("Upgrade");
    net.input(
        0,
        Input::Message {
            from: 1,
            msg: upgrade,
        },
    );
    let to_h2 = net.wire.get(&(0, 2)).cloned().unwrap_or_default();
    assert!(
        matches!(to_h2.front(), Some(Msg::Revoke { .. })),
        "{to_h2:?}"
    );
    net.wire.remove(&(0, 2));
    net.settle();
    assert!(net.upgrades[1].is_empty(), "granted before h2 answered");
    net.kill(2);
    assert_eq!(
        net.upgrades[1],
        vec![(50, UpgradeAnswer::Granted { dirty: false })]
    );
    // Nothing was lost with a reader: its copy was on the disk.
    assert!(!net.kernels[3].contains_key(&P));
    net.quiet();
}

#[test]
fn a_read_copy_whose_data_died_with_its_owner_is_gone_before_its_next_incarnation_hears_of_it() {
    // h1 wrote the page, then shared it with h2's read: it kept a read
    // copy and sent its dirty data home, and the owner died before that
    // data was on its disk. h1 reports the data lost and drops its copy;
    // until the kernel has, the owner's next incarnation must not hear of
    // the copy: it would count h1 as a reader of data its disk lacks.
    let mut net = Net::new(3, Coherence::Mrsw);
    net.join();
    net.write(1, 9);
    net.hold_disk = true;
    net.fault(2, P);
    net.settle();
    assert!(
        net.kernels[1]
            .get(&P)
            .is_some_and(|c| !c.writable && c.value == 9)
    );
    net.hold_kernel = true;
    net.wire.clear();
    net.input(
        1,
        Input::PeerDied {
            host: OWNER,
            incarnation: 0,
            undelivered: Vec::new(),
            unsent: Vec::new(),
        },
    );
    assert!(net.lost.contains(&(1, P)), "{:?}", net.lost);
    assert_eq!(net.held_kernel.len(), 1, "the copy is being dropped");
    net.wire.clear();
    net.input(
        1,
        Input::PeerJoined {
            host: OWNER,
            incarnation: 1,
        },
    );
    let told = |net: &Net| {
        net.wire
            .get(&(1, OWNER))
            .into_iter()
            .flatten()
            .any(|m| matches!(m, Msg::Holding { .. }))
    };
    assert!(!told(&net), "h1 reported while its copy was still there");
    net.hold_kernel = false;
    for (h, o) in std::mem::take(&mut net.held_kernel) {
        net.output(h, o);
    }
    assert!(told(&net));
    let holding = net.wire[&(1, OWNER)]
        .iter()
        .find(|m| matches!(m, Msg::Holding { .. }))
        .cloned();
    assert_eq!(
        holding,
        Some(Msg::Holding {
            pages: vec![],
            last: true
        })
    );
}

#[test]
fn a_fence_takes_read_copies_out_of_the_kernel_too() {
    // h1's lease on h0's pages runs out: h0 may take it for dead and let
    // another host write, so h1's read copies must go like its writable
    // ones (a copy kept would show stale data after that write).
    let mut net = Net::new(3, Coherence::Mrsw);
    net.join();
    net.disk.insert(P, 5);
    assert_eq!(net.read(1), 5);
    assert!(!net.kernels[1][&P].writable);
    net.input(1, Input::Fence { owner: OWNER });
    assert!(
        !net.kernels[1].contains_key(&P),
        "the fence left h1's read copy"
    );
    assert!(!net.cores[1].read_copy(P));
}

#[test]
fn a_prefetch_gets_only_an_idle_page_of_a_read_replicated_file() {
    // A single file's page never: it would be the writable copy.
    let mut net = Net::new(3, Coherence::Single);
    net.disk.insert(P, 5);
    let req = net.prefetch(2);
    net.settle();
    assert_eq!(net.failed, vec![(2, req, PREFETCH_REFUSED)]);
    assert!(!net.kernels[2].contains_key(&P));
    net.quiet();

    let mut net = Net::new(4, Coherence::Mrsw);
    net.disk.insert(P, 5);
    // Nobody holds the page: a read copy from the disk.
    net.prefetch(3);
    net.settle();
    let copy = |value| Copy {
        value,
        dirty: false,
        writable: false,
    };
    assert_eq!(net.kernels[3][&P], copy(5));
    // A copy like any other: h1's write revokes it.
    net.write(1, 6);
    assert!(!net.kernels[3].contains_key(&P));
    // h1 holds it writable: nobody's prefetch makes h1 share it, nor
    // waits for it.
    let before = net.log.len();
    let req = net.prefetch(2);
    net.settle();
    assert_eq!(net.failed, vec![(2, req, PREFETCH_REFUSED)]);
    assert!(!net.kernels[2].contains_key(&P));
    assert!(net.kernels[1][&P].writable && net.kernels[1][&P].dirty);
    assert!(
        !net.log[before..]
            .iter()
            .any(|(_, _, m)| matches!(m, Msg::Fetch { .. } | Msg::Share { .. })),
        "a prefetch disturbed the writer"
    );
    net.quiet();
    // h3 reads it: h1 keeps a read copy and holds it writable no more, so
    // a prefetch gets a read copy from the disk.
    net.sync(1);
    assert_eq!(net.read(3), 6);
    net.prefetch(2);
    net.settle();
    assert_eq!(net.kernels[2][&P], copy(6));
    assert_eq!(net.failed.len(), 1, "{:?}", net.failed);
    net.check();
    net.quiet();
}

#[test]
fn a_fault_that_joins_a_refused_prefetch_still_gets_its_page() {
    for coherence in [Coherence::Mrsw, Coherence::Single] {
        let mut net = Net::new(3, coherence);
        net.disk.insert(P, 5);
        net.write(1, 6);
        // h2's engine asks ahead; before the owner answers, h2's kernel
        // faults the page: the engine gives the prefetch up and the READ
        // waits for its transaction.
        let pf = net.prefetch(2);
        assert!(net.cores[2].cancel(pf));
        net.reads[2].remove(&pf);
        net.fault(2, P);
        net.settle();
        // Refused as a prefetch, asked again as the read fault it became.
        assert!(net.failed.is_empty(), "{coherence:?}: {:?}", net.failed);
        assert_eq!(net.kernels[2][&P].value, 6, "{coherence:?}");
        assert_eq!(
            net.sent(|m| matches!(m, Msg::WhereIs { .. })).len(),
            3,
            "{coherence:?}"
        );
        net.check();
        net.quiet();
    }
}

#[test]
fn a_copy_fetched_ahead_and_dropped_unread_goes_back_to_its_owner() {
    let mut net = Net::new(4, Coherence::Mrsw);
    net.disk.insert(P, 5);
    // h2 and h3 fetch the page ahead; h2's engine drops its copy unread
    // (the model's kernel never had it).
    net.prefetch(2);
    net.prefetch(3);
    net.settle();
    net.kernels[2].remove(&P);
    let grant = net.cores[2].grant_of(P).expect("h2 holds the page");
    // Under another grant than the one it came with: nothing happens.
    net.input(
        2,
        Input::Unused {
            page: P,
            grant: (grant.0 + 1, grant.1),
        },
    );
    assert_eq!(net.cores[2].grant_of(P), Some(grant));
    assert!(net.wire.values().all(VecDeque::is_empty));
    net.input(2, Input::Unused { page: P, grant });
    assert_eq!(net.cores[2].grant_of(P), None);
    net.settle();
    assert_eq!(
        net.sent(|m| matches!(m, Msg::Released { .. })),
        vec![(2, 0)]
    );
    // h1's write revokes h3's copy only: h2 gave its up.
    net.write(1, 6);
    assert_eq!(net.sent(|m| matches!(m, Msg::Revoke { .. })), vec![(0, 3)]);
    assert!(!net.kernels[3].contains_key(&P));
    net.check();
    net.quiet();

    // While a revocation of the copy waits for the kernel, the copy is
    // not given back (the revocation's answer says where it went).
    let mut net = Net::new(4, Coherence::Mrsw);
    net.disk.insert(P, 5);
    net.prefetch(2);
    net.settle();
    net.kernels[2].remove(&P);
    let grant = net.cores[2].grant_of(P).expect("h2 holds the page");
    net.fault(1, P);
    net.settle();
    net.hold_kernel = true;
    net.next_req += 1;
    let up = net.next_req;
    net.input(1, Input::Upgrade { req: up, page: P });
    net.settle();
    assert_eq!(
        net.held_kernel.len(),
        1,
        "h2's revocation waits for its kernel"
    );
    let before = net.log.len();
    net.input(2, Input::Unused { page: P, grant });
    net.settle();
    assert!(
        !net.log[before..]
            .iter()
            .any(|(_, _, m)| matches!(m, Msg::Released { .. })),
        "a copy under revocation given back"
    );
    net.hold_kernel = false;
    for (h, o) in std::mem::take(&mut net.held_kernel) {
        net.output(h, o);
    }
    net.settle();
    assert_eq!(
        net.upgrades[1],
        vec![(up, UpgradeAnswer::Granted { dirty: false })]
    );
    assert_eq!(net.cores[2].grant_of(P), None);
    net.check();
    net.quiet();
}

/// An owner that leaves takes its pages home before its files go with
/// it: a writer's dirty data, and every read-only copy, are recalled (the
/// data written to the owner's disk) before it says `Leaving`. Without
/// that, a holder's dirty data would have nowhere to go once the owner
/// had left (the QEMU test `names` saw it lost when every host restarted
/// at once).
#[test]
fn a_leaving_owner_takes_its_pages_home_first() {
    for coherence in [Coherence::Single, Coherence::Mrsw] {
        let mut n = Net::new(3, coherence);
        n.join();
        n.write(2, 9);
        if coherence == Coherence::Mrsw {
            // A reader beside the writer (which keeps a read copy).
            assert_eq!(n.read(1), 9);
        }
        assert!(!n.kernels[2].is_empty(), "{coherence:?}");
        n.input(OWNER, Input::Leave);
        n.settle();
        assert_eq!(n.left, vec![OWNER], "{coherence:?}");
        for h in 1..3 {
            assert!(
                n.kernels[h].is_empty(),
                "{coherence:?}: h{h} {:?}",
                n.kernels[h]
            );
        }
        assert_eq!(n.disk.get(&P), Some(&9), "{coherence:?}");
        assert!(n.lost.is_empty(), "{coherence:?}: {:?}", n.lost);
    }
}
