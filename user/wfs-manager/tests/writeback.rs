//! Writeback and fencing rules of the page protocol that the simulation
//! reaches too rarely to check on its own (`tools/mutants.py` found them
//! unchecked), each driven by hand. Pages one byte long.

mod common;

use common::{P, cores, deliver, fetch_from_disk, hand_over_from_1, join, sends, slow_write_back};
use wfs_manager::protocol::{Input, Msg, Output, SUPERSEDED};

#[test]
fn a_put_superseded_by_data_not_yet_durable_is_not_acknowledged_as_written() {
    let mut cs = cores(3, 5);
    let slow = slow_write_back(&mut cs);
    // Host 2 takes the page (dirty) and writes 2 back: the owner's disk
    // write of it is not done yet when host 1's Put arrives.
    let out = cs[2].handle(Input::Fault { req: 3, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    assert_eq!(
        deliver(&mut cs, 0, &sends(&out)[0]),
        vec![Output::Invalidate { page: P }]
    );
    let out = hand_over_from_1(&mut cs);
    for o in sends(&out) {
        deliver(&mut cs, 2, &o);
    }
    let out = cs[2]
        .handle(Input::Writeback {
            req: 4,
            page: P,
            data: vec![2].into(),
        })
        .unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    assert!(matches!(out[..], [Output::DiskWrite { .. }]), "{out:?}");
    // Host 1's Put is older: not written, and not acknowledged as on disk
    // (the newer data may still fail to get there).
    let out = deliver(&mut cs, 1, &slow[0]);
    assert_eq!(
        out,
        vec![Output::Send {
            to: 1,
            msg: Msg::PutAck {
                page: P,
                seq: match &slow[0] {
                    Output::Send {
                        msg: Msg::Put { seq, .. },
                        ..
                    } => *seq,
                    o => panic!("{o:?}"),
                },
                error: SUPERSEDED
            }
        }]
    );
}

#[test]
fn a_page_that_comes_while_its_owner_is_fenced_off_is_not_installed() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);
    // Host 2 faults, then loses its lease on host 0's pages while the page
    // is on its way from host 1.
    let out = cs[2].handle(Input::Fault { req: 2, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    deliver(&mut cs, 0, &sends(&out)[0]);
    let out = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![1].into(), true)),
        })
        .unwrap();
    cs[2].handle(Input::Fence { owner: 0 }).unwrap();
    let out = deliver(&mut cs, 1, &out[0]);
    // Host 0 may take host 2 for dead any moment now and serve the page
    // again: it is not installed, and goes home.
    assert!(
        !out.iter().any(|o| matches!(o, Output::Grant { .. })),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                to: 0,
                msg: Msg::Put { data, .. }
            } if data.as_slice() == [1]
        )),
        "{out:?}"
    );
}

#[test]
fn a_failed_write_of_a_page_nobody_holds_waits_for_its_writers_home_write() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);
    // Host 1 writes 9 back (disk write A, not done yet)...
    let out = cs[1]
        .handle(Input::Writeback {
            req: 2,
            page: P,
            data: vec![9].into(),
        })
        .unwrap();
    let a = deliver(&mut cs, 1, &out[0]);
    let [
        Output::DiskWrite {
            epoch, ack: ack_a, ..
        },
    ] = a[..]
    else {
        panic!("{a:?}")
    };
    // ... and hands the page over to host 2, which dies before it
    // acknowledges it.
    let out = cs[2].handle(Input::Fault { req: 3, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    assert_eq!(
        deliver(&mut cs, 0, &sends(&out)[0]),
        vec![Output::Invalidate { page: P }]
    );
    let out = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![9].into(), true)),
        })
        .unwrap();
    let data = sends(&out).into_iter().map(|o| match o {
        Output::Send { to: 2, msg } => msg,
        o => panic!("{o:?}"),
    });
    let died = Input::PeerDied {
        host: 2,
        incarnation: 5,
        undelivered: vec![],
        unsent: vec![],
    };
    cs[0].handle(died.clone()).unwrap();
    let Input::PeerDied {
        host, incarnation, ..
    } = died
    else {
        unreachable!()
    };
    // Host 1 brings the page home (disk write B, of the same data) and
    // says it did not go.
    let back = cs[1]
        .handle(Input::PeerDied {
            host,
            incarnation,
            undelivered: data.collect(),
            unsent: vec![],
        })
        .unwrap();
    let mut writes = vec![ack_a];
    for o in sends(&back) {
        if let Output::Send { to: 0, .. } = o {
            for r in deliver(&mut cs, 1, &o) {
                if let Output::DiskWrite { ack, .. } = r {
                    writes.push(ack);
                }
            }
        }
    }
    assert_eq!(writes.len(), 2, "{back:?}");
    // The owner faults on the page itself: the read waits for the writes.
    let out = cs[0].handle(Input::Fault { req: 4, page: P }).unwrap();
    assert!(
        !out.iter().any(|o| matches!(o, Output::DiskRead { .. })),
        "{out:?}"
    );
    // Both fail (a full disk): host 1 still has the data and sends it
    // again, so the page is not lost and the disk's older copy is not
    // served.
    for ack in writes {
        let out = cs[0]
            .handle(Input::DiskWritten {
                page: P,
                epoch,
                ack,
                error: 28,
            })
            .unwrap();
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::DiskRead { .. } | Output::Lost { host: 1, .. })),
            "{out:?}"
        );
    }
}
