//! The operator's evictions (`wfsctl invalidate`) go through the page
//! protocol (`Input::Evict`): their data goes home in `Put`s ordered by
//! the page's epochs like any other. Pages one byte long, messages
//! delivered by hand.

mod common;

use common::{
    P, cores, deliver, disk_writes, fetch_from_disk, hand_over_from_1, join, sends,
    slow_write_back, write_all,
};
use wfs_manager::protocol::{BUSY, Core, Input, Msg, Output, PageId};

/// Host 1 holds P dirty (1), and the operator downgrades it there: what
/// host 1 does then (the `Put` of its data).
fn downgrade_dirty(cs: &mut [Core]) -> Vec<Output> {
    join(cs, &[0, 1], 5);
    fetch_from_disk(cs, 1, 1, 0);
    let out = cs[1]
        .handle(Input::Evict {
            page: P,
            downgrade: true,
        })
        .unwrap();
    assert_eq!(out, vec![Output::Downgrade { page: P }]);
    cs[1]
        .handle(Input::Downgraded {
            page: P,
            contents: Some((vec![1].into(), true)),
        })
        .unwrap()
}

/// Delivers host 1's `Put`, whose disk write fails (`ENOSPC`): what the
/// owner does then.
fn fail_disk_write(cs: &mut [Core], put: &Output) -> Vec<Output> {
    let out = deliver(cs, 1, put);
    let Output::DiskWrite { epoch, ack, .. } = out[0].clone() else {
        panic!("{out:?}")
    };
    cs[0]
        .handle(Input::DiskWritten {
            page: P,
            epoch,
            ack,
            error: 28,
        })
        .unwrap()
}

#[test]
fn an_evicted_page_is_not_overwritten_by_a_stale_put() {
    // (Before evictions went through the protocol, the owner's manager
    // wrote an evicted page to its export outside the epochs: a Put of
    // older data still on its way landed on it afterwards.)
    let mut cs = cores(2, 5);
    let stale = slow_write_back(&mut cs);
    // The owner's own fault takes the page (dirty: the Put is not acked).
    let out = cs[0].handle(Input::Fault { req: 3, page: P }).unwrap();
    let fetch = sends(&out);
    assert_eq!(
        deliver(&mut cs, 0, &fetch[0]),
        vec![Output::Invalidate { page: P }]
    );
    let out = hand_over_from_1(&mut cs);
    assert!(
        out.contains(&Output::Grant {
            req: 3,
            data: vec![1].into(),
            dirty: true,
            writable: true,
        }),
        "{out:?}"
    );
    // The owner's program writes 2; the operator evicts the page there.
    let out = cs[0]
        .handle(Input::Evict {
            page: P,
            downgrade: false,
        })
        .unwrap();
    assert_eq!(out, vec![Output::Invalidate { page: P }]);
    let out = cs[0]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![2].into(), true)),
        })
        .unwrap();
    assert_eq!(disk_writes(&out), vec![vec![2]], "{out:?}");
    let done = write_all(&mut cs, &out);
    assert!(
        done.contains(&Output::Evicted {
            page: P,
            present: true,
            dirty: true,
            written: true,
            error: 0
        }),
        "{done:?}"
    );
    // The stale Put arrives: it is not written over the evicted data.
    let out = deliver(&mut cs, 1, &stale[0]);
    assert!(disk_writes(&out).is_empty(), "{out:?}");
}

#[test]
fn a_failed_downgrade_is_not_sent_again_over_newer_data() {
    let mut cs = cores(2, 5);
    let down = downgrade_dirty(&mut cs);
    // Its program writes 2, written back in the same epoch.
    let newer = cs[1]
        .handle(Input::Writeback {
            req: 2,
            page: P,
            data: vec![2].into(),
        })
        .unwrap();
    // The downgrade's write fails at the owner's disk; the newer one works.
    let failed = fail_disk_write(&mut cs, &down[0]);
    let out = deliver(&mut cs, 1, &newer[0]);
    assert_eq!(disk_writes(&out), vec![vec![2]]);
    let acked = write_all(&mut cs, &out);
    // The failure reaches host 1 after the newer Put went: 1 is not sent
    // again (it would land on 2).
    let out = deliver(&mut cs, 0, &sends(&failed)[0]);
    assert!(
        out.contains(&Output::Evicted {
            page: P,
            present: true,
            dirty: true,
            written: false,
            error: 28
        }),
        "{out:?}"
    );
    assert!(sends(&out).is_empty(), "sent again: {out:?}");
    let out = deliver(&mut cs, 0, &sends(&acked)[0]);
    assert_eq!(out, vec![Output::WriteDone { req: 2, error: 0 }]);
}

#[test]
fn a_downgrade_that_fails_alone_is_sent_again() {
    let mut cs = cores(2, 5);
    let down = downgrade_dirty(&mut cs);
    let failed = fail_disk_write(&mut cs, &down[0]);
    // The kernel's copy is clean and may be evicted: the data goes again
    // (at the next Retry), and the owner's reads wait for it.
    let out = deliver(&mut cs, 0, &sends(&failed)[0]);
    assert!(sends(&out).is_empty(), "{out:?}");
    let again = cs[1].handle(Input::Retry).unwrap();
    let out = deliver(&mut cs, 1, &sends(&again)[0]);
    assert_eq!(disk_writes(&out), vec![vec![1]]);
}

#[test]
fn a_page_on_its_way_elsewhere_is_busy() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);
    // Host 2 faults: the owner asks host 1 for the page.
    let out = cs[2].handle(Input::Fault { req: 2, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    let out = deliver(&mut cs, 0, &sends(&out)[0]);
    assert_eq!(out, vec![Output::Invalidate { page: P }]);
    let out = cs[1]
        .handle(Input::Evict {
            page: P,
            downgrade: false,
        })
        .unwrap();
    assert_eq!(
        out,
        vec![Output::Evicted {
            page: P,
            present: false,
            dirty: false,
            written: false,
            error: BUSY
        }]
    );
    // An eviction of a page this host does not hold touches nothing.
    let out = cs[2]
        .handle(Input::Evict {
            page: PageId { file: 7, index: 1 },
            downgrade: true,
        })
        .unwrap();
    assert!(matches!(
        out[..],
        [Output::Evicted {
            present: false,
            error: 0,
            ..
        }]
    ));
}

/// The owner (host 0) holds P, which its kernel evicted silently (clean),
/// and faults on it again (its READ not handled yet) as the operator
/// evicts it: the kernel keeps the page busy (locked for the READ), and
/// the eviction's answer comes from the fault's `Data` (not present). A
/// retry of the INVALIDATE still waiting then finds the copy the READ
/// installed. (Found in review: the engine used to retry it, and the core
/// dropped the result, dirty data and all.)
fn evict_while_read_in_flight(downgrade: bool) -> Vec<Core> {
    let mut cs = cores(2, 5);
    join(&mut cs, &[0, 1], 5);
    fetch_from_disk(&mut cs, 0, 1, 0);
    let out = cs[0].handle(Input::Evict { page: P, downgrade }).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    let out = cs[0].handle(Input::Fault { req: 2, page: P }).unwrap();
    assert_eq!(out, vec![Output::DiskRead { page: P }]);
    let out = cs[0]
        .handle(Input::DiskRead {
            page: P,
            data: vec![0].into(),
        })
        .unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Evicted { present: false, .. })),
        "{out:?}"
    );
    cs
}

#[test]
fn a_late_drop_of_a_page_faulted_in_again_sends_its_data_home() {
    let mut cs = evict_while_read_in_flight(false);
    let out = cs[0]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![6].into(), true)),
        })
        .unwrap();
    assert_eq!(disk_writes(&out), vec![vec![6]], "{out:?}");
}

#[test]
fn a_late_downgrade_of_a_page_faulted_in_again_sends_its_data_home() {
    let mut cs = evict_while_read_in_flight(true);
    let out = cs[0]
        .handle(Input::Downgraded {
            page: P,
            contents: Some((vec![6].into(), true)),
        })
        .unwrap();
    assert_eq!(disk_writes(&out), vec![vec![6]], "{out:?}");
}

/// The owner evicts its own dirty page and its disk write fails: the data
/// is sent again at the next `Retry`, not at once (the engine handled the
/// Put to itself, the failed write and the resend in one go, in a loop
/// with its lock held, while the disk was full: found in review).
fn a_full_disk_is_not_written_in_a_loop(downgrade: bool) {
    let mut cs = cores(2, 5);
    join(&mut cs, &[0, 1], 5);
    fetch_from_disk(&mut cs, 0, 1, 0);
    cs[0].handle(Input::Evict { page: P, downgrade }).unwrap();
    let contents = Some((vec![6].into(), true));
    let out = if downgrade {
        cs[0].handle(Input::Downgraded { page: P, contents })
    } else {
        cs[0].handle(Input::Invalidated { page: P, contents })
    }
    .unwrap();
    let Some(Output::DiskWrite { epoch, ack, .. }) = out
        .iter()
        .find(|o| matches!(o, Output::DiskWrite { .. }))
        .cloned()
    else {
        panic!("{out:?}")
    };
    let out = cs[0]
        .handle(Input::DiskWritten {
            page: P,
            epoch,
            ack,
            error: 28,
        })
        .unwrap();
    assert!(
        disk_writes(&out).is_empty(),
        "written again at once: {out:?}"
    );
    assert!(cs[0].retrying());
    let out = cs[0].handle(Input::Retry).unwrap();
    assert_eq!(disk_writes(&out), vec![vec![6]], "{out:?}");
    assert!(!cs[0].retrying());
}

#[test]
fn a_full_disk_is_not_written_in_a_loop_after_a_drop() {
    a_full_disk_is_not_written_in_a_loop(false);
}

#[test]
fn a_full_disk_is_not_written_in_a_loop_after_a_downgrade() {
    a_full_disk_is_not_written_in_a_loop(true);
}

#[test]
fn a_downgraded_copy_whose_data_died_with_its_owner_is_dropped() {
    // Host 1 downgrades its dirty page; the owner dies before the data is
    // on its disk. The kernel's copy is clean, so the kernel could evict it
    // any time and the page be read again from the owner's next
    // incarnation, older: the data is reported lost, and the copy goes
    // (nobody reads the lost data now and older data later).
    let mut cs = cores(2, 5);
    let _put = downgrade_dirty(&mut cs);
    let out = cs[1]
        .handle(Input::PeerDied {
            host: 0,
            incarnation: 5,
            undelivered: Vec::new(),
            unsent: Vec::new(),
        })
        .unwrap();
    assert!(out.contains(&Output::Lost { page: P, host: 0 }), "{out:?}");
    assert!(out.contains(&Output::Invalidate { page: P }), "{out:?}");
}

#[test]
fn only_the_newest_of_failed_writes_is_sent_again() {
    // Host 1 downgrades its dirty page (1), writes 2 and evicts it: both
    // Puts (of the same epoch) fail at the owner's disk. Sent again, 1
    // would land on 2, and a read waiting for the page's data would take
    // it (found by the simulation).
    let mut cs = cores(2, 5);
    let down = downgrade_dirty(&mut cs);
    cs[1]
        .handle(Input::Evict {
            page: P,
            downgrade: false,
        })
        .unwrap();
    let dropped = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![2].into(), true)),
        })
        .unwrap();
    for put in [&down[0], &dropped[0]] {
        let failed = fail_disk_write(&mut cs, put);
        deliver(&mut cs, 0, &sends(&failed)[0]);
    }
    let again = cs[1].handle(Input::Retry).unwrap();
    let puts: Vec<Vec<u8>> = sends(&again)
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: Msg::Put { data, .. },
                ..
            } => Some(data.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(puts, vec![vec![2]], "{again:?}");
}
