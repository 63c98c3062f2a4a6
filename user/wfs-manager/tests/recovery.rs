//! Recovery scenarios found in review, each a regression test of a rule
//! of the page protocol's recovery (`wfs_manager::protocol`): pages tiny
//! (one byte), messages delivered by hand.

mod common;

use common::{P, cores, deliver, fetch_from_disk, join, sends};
use wfs_manager::protocol::{Core, Input, Msg, Output};

#[test]
fn an_orphan_put_taken_after_a_loss_is_written() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);
    // host 1 writes back once (epoch 1), acked.
    let out = cs[1]
        .handle(Input::Writeback {
            req: 2,
            page: P,
            data: vec![1],
        })
        .unwrap();
    let out = deliver(&mut cs, 1, &out[0]);
    let Output::DiskWrite { epoch, ack, .. } = &out[0] else {
        panic!("{out:?}")
    };
    let out = cs[0]
        .handle(Input::DiskWritten {
            page: P,
            epoch: *epoch,
            ack: *ack,
            error: 0,
        })
        .unwrap();
    deliver(&mut cs, 0, &out[0]);
    // host 1 dies; owner reports lost
    let died = cs[0]
        .handle(Input::PeerDied {
            host: 1,
            incarnation: 5,
            undelivered: vec![],
        })
        .unwrap();
    assert!(
        died.iter().any(|o| matches!(o, Output::Lost { .. })),
        "{died:?}"
    );
    // restarted host 1 writes back the kernel's dirty copy with epoch 0
    cs[1] = Core::with_incarnation(1, 6);
    cs[1].add_file(7, 0);
    cs[0]
        .handle(Input::PeerJoined {
            host: 1,
            incarnation: 6,
        })
        .unwrap();
    let out = cs[1]
        .handle(Input::Writeback {
            req: 3,
            page: P,
            data: vec![2],
        })
        .unwrap();
    let out = deliver(&mut cs, 1, &out[0]);
    assert!(
        out.iter().any(|o| matches!(o, Output::DiskWrite { .. })),
        "orphan Put not written: {out:?}"
    );
}

#[test]
fn a_peer_never_heard_from_does_not_block_a_recovery() {
    let mut cs = cores(4, 5);
    join(&mut cs, &[0, 1, 2], 5); // host 3 configured, never heard from
    fetch_from_disk(&mut cs, 2, 1, 0);
    let out = cs[1].handle(Input::Fault { req: 9, page: P }).unwrap();
    let out = deliver(&mut cs, 1, &out[0]);
    assert!(matches!(
        &out[0],
        Output::Send {
            to: 2,
            msg: Msg::Fetch { .. }
        }
    ));
    // host 2 dies before the Fetch is handled
    let out = cs[0]
        .handle(Input::PeerDied {
            host: 2,
            incarnation: 5,
            undelivered: vec![],
        })
        .unwrap();
    for o in sends(&out) {
        if let Output::Send { to: 1, .. } = o {
            // Host 1 takes host 2 for dead on the owner's word.
            let declare = deliver(&mut cs, 0, &o);
            assert!(
                matches!(&declare[..], [Output::Declare { host: 2, .. }]),
                "{declare:?}"
            );
            let ans = cs[1]
                .handle(Input::PeerDied {
                    host: 2,
                    incarnation: 5,
                    undelivered: vec![],
                })
                .unwrap();
            for a in sends(&ans) {
                if let Output::Send { to: 0, .. } = a {
                    deliver(&mut cs, 1, &a);
                }
            }
        }
    }
    assert_eq!(
        cs[0].recovering(),
        0,
        "recovery waits for host 3, which never connected"
    );
}

#[test]
fn a_stale_put_does_not_land_after_a_loss() {
    let mut cs = cores(4, 5);
    join(&mut cs, &[0, 1, 2, 3], 5);
    fetch_from_disk(&mut cs, 2, 1, 0);
    // host 2 writes back v3; the Put stays in flight.
    let put = cs[2]
        .handle(Input::Writeback {
            req: 2,
            page: P,
            data: vec![3],
        })
        .unwrap();
    // host 1 faults; page moves 2 -> 1 dirty (Put unacked)
    let out = cs[1].handle(Input::Fault { req: 3, page: P }).unwrap();
    let out = deliver(&mut cs, 1, &out[0]);
    deliver(&mut cs, 0, &out[0]);
    let out = cs[2]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![3], false)),
        })
        .unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    let done = sends(&out);
    deliver(&mut cs, 1, &done[0]);
    // host 1 dies holding it: lost
    let out = cs[0]
        .handle(Input::PeerDied {
            host: 1,
            incarnation: 5,
            undelivered: vec![],
        })
        .unwrap();
    assert!(out.iter().any(|o| matches!(o, Output::Lost { .. })));
    // host 3 faults: served from disk (old value 0)
    let out = cs[3].handle(Input::Fault { req: 4, page: P }).unwrap();
    let out = deliver(&mut cs, 3, &out[0]);
    assert_eq!(out, vec![Output::DiskRead { page: P }]);
    // now host 2's old Put (epoch 1) arrives
    let out = deliver(&mut cs, 2, &put[0]);
    assert!(
        !out.iter().any(|o| matches!(o, Output::DiskWrite { .. })),
        "stale Put written after the page was re-served from disk"
    );
}

#[test]
fn a_leave_waits_for_its_abandoned_faults() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    let out = cs[1].handle(Input::Fault { req: 1, page: P }).unwrap();
    let whereis = out[0].clone();
    let out = cs[1].handle(Input::Leave).unwrap();
    assert!(
        !out.iter().any(|o| matches!(o, Output::Left)),
        "Left while the owner may still send it the page"
    );
    // The page comes after all: it goes home, and only then has it left.
    let out = deliver(&mut cs, 1, &whereis);
    assert_eq!(out, vec![Output::DiskRead { page: P }]);
    let out = cs[0]
        .handle(Input::DiskRead {
            page: P,
            data: vec![4],
        })
        .unwrap();
    let out = deliver(&mut cs, 0, &out[0]);
    let returned = out.iter().position(|o| {
        matches!(
            o,
            Output::Send {
                msg: Msg::Returned { .. },
                ..
            }
        )
    });
    let leaving = out.iter().position(|o| {
        matches!(
            o,
            Output::Send {
                msg: Msg::Leaving { .. },
                ..
            }
        )
    });
    assert!(
        returned.is_some() && leaving.is_some() && returned < leaving,
        "{out:?}"
    );
    assert_eq!(out.last(), Some(&Output::Left));
}
