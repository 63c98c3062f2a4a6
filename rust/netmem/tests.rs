// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the netmem slot accounting.

use super::{Run, ScratchSlots, SlotError, SlotMap};
use kernel::{kunit_expect, kunit_expect_eq, kunit_module_suite};

fn slots_lifecycle() {
    let mut m: SlotMap<2> = SlotMap::new();
    kunit_expect_eq!(m.free(), 2);
    let s = m.reserve(7).unwrap_or(99);
    kunit_expect!(s < 2);
    kunit_expect!(!m.manager_may_access(s, 7));
    kunit_expect_eq!(m.lend(s, 7), Ok(()));
    kunit_expect!(m.manager_may_access(s, 7));
    // The manager cannot answer for another request, nor free the slot.
    kunit_expect_eq!(m.give_back(s, 8), Err(SlotError::WrongOwner));
    kunit_expect_eq!(m.release(s, 7), Err(SlotError::WrongOwner));
    kunit_expect_eq!(m.give_back(s, 7), Ok(()));
    kunit_expect_eq!(m.give_back(s, 7), Err(SlotError::WrongOwner));
    kunit_expect_eq!(m.release(s, 7), Ok(()));
    kunit_expect_eq!(m.free(), 2);
}

fn slots_bounds() {
    let mut m: SlotMap<2> = SlotMap::new();
    let a = m.reserve(1).unwrap_or(99);
    let b = m.reserve(2).unwrap_or(99);
    kunit_expect!(a != b);
    kunit_expect_eq!(m.reserve(3), Err(SlotError::Exhausted));
    kunit_expect_eq!(m.lend(2, 1), Err(SlotError::BadSlot));
    kunit_expect_eq!(m.give_back(u32::MAX, 1), Err(SlotError::BadSlot));
    kunit_expect_eq!(m.lend(a, 1), Ok(()));
    kunit_expect_eq!(m.lend(b, 2), Ok(()));
    // A manager that dies leaves no slot behind.
    kunit_expect_eq!(m.reclaim_all(), 2);
    kunit_expect_eq!(m.release(a, 1), Ok(()));
    kunit_expect_eq!(m.release(b, 2), Ok(()));
    kunit_expect_eq!(m.free(), 2);
}

fn slots_orphans() {
    let mut m: SlotMap<2> = SlotMap::new();
    let a = m.reserve(1).unwrap_or(99);
    let b = m.reserve(2).unwrap_or(99);
    kunit_expect_eq!(m.lend(a, 1), Ok(()));
    kunit_expect_eq!(m.lend(b, 2), Ok(()));
    // The callers give up while the manager holds both slots: neither is
    // reused until the manager is done with it.
    m.finish(a, 1);
    m.finish(b, 2);
    kunit_expect_eq!(m.free(), 0);
    kunit_expect_eq!(m.reserve(3), Err(SlotError::Exhausted));
    kunit_expect!(!m.manager_may_access(a, 1));
    // A late reply frees its slot; a reply for another request does not.
    kunit_expect!(!m.adopt_late(7));
    kunit_expect!(m.adopt_late(1));
    kunit_expect_eq!(m.free(), 1);
    // The manager leaving frees the other.
    kunit_expect_eq!(m.reclaim_all(), 1);
    kunit_expect_eq!(m.free(), 2);
    // finish() on a slot the kernel holds simply frees it.
    let c = m.reserve(4).unwrap_or(99);
    m.finish(c, 4);
    kunit_expect_eq!(m.free(), 2);
}

fn slots_runs() {
    let mut m: SlotMap<8> = SlotMap::new();
    let none = Run { first: 99, n: 0 };
    // A whole run when there is room, from the first free slot.
    let a = m.reserve_run(1, 3).unwrap_or(none);
    kunit_expect_eq!(a, Run { first: 0, n: 3 });
    kunit_expect_eq!(m.free(), 5);
    let b = m.reserve(2).unwrap_or(99);
    kunit_expect_eq!(b, 3);
    // Runs never overlap, and a run is moved as a whole or not at all.
    kunit_expect_eq!(
        m.lend_run(Run { first: 2, n: 2 }, 1),
        Err(SlotError::WrongOwner)
    );
    kunit_expect!(!m.manager_may_access(2, 1));
    kunit_expect_eq!(
        m.lend_run(Run { first: 6, n: 3 }, 1),
        Err(SlotError::BadSlot)
    );
    kunit_expect_eq!(
        m.lend_run(
            Run {
                first: u32::MAX,
                n: 2
            },
            1
        ),
        Err(SlotError::BadSlot)
    );
    kunit_expect_eq!(
        m.lend_run(Run { first: 0, n: 0 }, 1),
        Err(SlotError::BadSlot)
    );
    kunit_expect_eq!(m.lend_run(a, 1), Ok(()));
    kunit_expect!(m.manager_may_access(0, 1) && m.manager_may_access(2, 1));
    // Slots 4..8 are free: a run of 6 gets the longest there is.
    let c = m.reserve_run(3, 6).unwrap_or(none);
    kunit_expect_eq!(c, Run { first: 4, n: 4 });
    kunit_expect_eq!(m.reserve_run(4, 2), Err(SlotError::Exhausted));
    // A caller that gives up orphans its whole run; the late reply frees
    // all of it.
    m.finish_run(a, 1);
    kunit_expect_eq!(m.free(), 0);
    kunit_expect!(m.adopt_late(1));
    kunit_expect_eq!(m.free(), 3);
    // Free: 0..3 and 4..8, with slot 3 taken. The first run long enough
    // wins over an earlier shorter one.
    kunit_expect_eq!(m.release_run(c, 3), Ok(()));
    let d = m.reserve_run(5, 4).unwrap_or(none);
    kunit_expect_eq!(d, Run { first: 4, n: 4 });
    let e = m.reserve_run(6, 2).unwrap_or(none);
    kunit_expect_eq!(e, Run { first: 0, n: 2 });
    kunit_expect_eq!(m.give_back_run(e, 6), Err(SlotError::WrongOwner));
    kunit_expect_eq!(m.lend_run(e, 6), Ok(()));
    kunit_expect_eq!(m.give_back_run(e, 6), Ok(()));
    m.finish_run(e, 6);
    m.finish_run(d, 5);
    kunit_expect_eq!(m.release(b, 2), Ok(()));
    kunit_expect_eq!(m.free(), 8);
}

fn scratch_slots() {
    let mut s: ScratchSlots<2> = ScratchSlots::new();
    kunit_expect_eq!(s.claim(0), Ok(()));
    // Two INVALIDATEs never write one scratch slot at once.
    kunit_expect_eq!(s.claim(0), Err(SlotError::WrongOwner));
    kunit_expect_eq!(s.claim(1), Ok(()));
    kunit_expect_eq!(s.claim(2), Err(SlotError::BadSlot));
    kunit_expect_eq!(s.claim(u32::MAX), Err(SlotError::BadSlot));
    s.release(0);
    kunit_expect_eq!(s.claim(0), Ok(()));
    s.release(0);
    s.release(1);
    // Releasing an out-of-range or free slot changes nothing.
    s.release(9);
    s.release(1);
    kunit_expect_eq!(s.claim(1), Ok(()));
}

kunit_module_suite!(
    wfs_netmem_slots,
    [
        slots_lifecycle,
        slots_bounds,
        slots_orphans,
        slots_runs,
        scratch_slots
    ]
);
