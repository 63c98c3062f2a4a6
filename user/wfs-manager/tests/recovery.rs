//! Recovery scenarios found in review, each a regression test of a rule
//! of the page protocol's recovery (`wfs_manager::protocol`): pages tiny
//! (one byte), messages delivered by hand.

mod common;

use common::{P, cores, deliver, fetch_from_disk, join, sends};
use wfs_manager::protocol::{Core, Input, Msg, NOT_TAKEN, Output};

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
            data: vec![1].into(),
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
            unsent: vec![],
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
            data: vec![2].into(),
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
            unsent: vec![],
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
                    unsent: vec![],
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
            data: vec![3].into(),
        })
        .unwrap();
    // host 1 faults; page moves 2 -> 1 dirty (Put unacked)
    let out = cs[1].handle(Input::Fault { req: 3, page: P }).unwrap();
    let out = deliver(&mut cs, 1, &out[0]);
    deliver(&mut cs, 0, &out[0]);
    let out = cs[2]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![3].into(), false)),
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
            unsent: vec![],
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
            data: vec![4].into(),
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

/// Host 1 holds P clean from the owner's disk, its lease on the owner's
/// pages runs out and its kernel gives the page up dirty (9): the `Put`
/// and `Released` that take it home, not delivered. Returns them.
fn fence_dirty_page_of_owner(cs: &mut [Core]) -> Vec<Msg> {
    join(cs, &[0, 1, 2], 5);
    fetch_from_disk(cs, 1, 1, 0);
    let out = cs[1].handle(Input::Fence { owner: 0 }).unwrap();
    assert_eq!(out, vec![Output::Invalidate { page: P }]);
    let out = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![9].into(), true)),
        })
        .unwrap();
    let msgs: Vec<Msg> = sends(&out)
        .into_iter()
        .map(|o| match o {
            Output::Send { to: 0, msg } => msg,
            o => panic!("{o:?}"),
        })
        .collect();
    assert!(
        matches!(
            &msgs[..],
            [Msg::Put { home: true, .. }, Msg::Released { .. }]
        ),
        "{msgs:?}"
    );
    msgs
}

/// As [`fence_dirty_page_of_owner`], then host 1 takes the owner's
/// incarnation 5 for dead with the `Put` and `Released` never handed to a
/// connection (the owner stayed silent past the lease). Returns what that
/// did.
fn owner_dies_before_its_data_went(cs: &mut [Core]) -> Vec<Output> {
    let unsent = fence_dirty_page_of_owner(cs);
    cs[1]
        .handle(Input::PeerDied {
            host: 0,
            incarnation: 5,
            undelivered: vec![],
            unsent,
        })
        .unwrap()
}

/// Host 1 takes the owner's incarnation 5 for dead (`out`: what that
/// did), and host 2 follows its `Recover`: both recoveries complete
/// (what they send the dead owner goes nowhere).
fn owner_death_recovered(cs: &mut [Core], out: &[Output]) {
    let mut queue: Vec<(u16, Output)> = sends(out).into_iter().map(|o| (1, o)).collect();
    while let Some((from, o)) = queue.pop() {
        if matches!(o, Output::Send { to: 0, .. }) {
            continue;
        }
        for r in deliver(cs, from, &o) {
            match r {
                Output::Declare { host: 0, .. } => {
                    let Output::Send { to, .. } = o else {
                        unreachable!()
                    };
                    let ans = cs[to as usize]
                        .handle(Input::PeerDied {
                            host: 0,
                            incarnation: 5,
                            undelivered: vec![],
                            unsent: vec![],
                        })
                        .unwrap();
                    queue.extend(sends(&ans).into_iter().map(|a| (to, a)));
                }
                Output::Send { .. } => {
                    let Output::Send { to, .. } = o else {
                        unreachable!()
                    };
                    queue.push((to, r));
                }
                r => panic!("{r:?}"),
            }
        }
    }
    assert_eq!((cs[1].recovering(), cs[2].recovering()), (0, 0));
}

/// The owner's next incarnation (6), which knows hosts 1 and 2 are
/// configured and has heard from nobody yet.
fn restarted_owner(cs: &mut [Core]) {
    restarted_owner_after(cs, 5);
}

/// The owner's incarnation 6, whose disk says the one before it was
/// `previous`.
fn restarted_owner_after(cs: &mut [Core], previous: u64) {
    cs[0] = Core::with_incarnation(0, 6);
    cs[0].set_previous(previous);
    cs[0].add_file(7, 0);
    for p in 0..cs.len() as u16 {
        cs[0].add_peer(p);
    }
}

#[test]
fn dirty_data_fenced_off_an_owner_that_died_before_it_was_sent_reaches_the_next_incarnation() {
    let mut cs = cores(3, 5);
    // The owner dies (silent past the lease) before the connection came
    // back: nothing of that went out.
    let out = owner_dies_before_its_data_went(&mut cs);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Lost { .. })),
        "{out:?}"
    );
    assert_eq!(cs[1].orphans(), vec![P]);
    owner_death_recovered(&mut cs, &out);
    restarted_owner(&mut cs);
    let out = cs[1]
        .handle(Input::PeerJoined {
            host: 0,
            incarnation: 6,
        })
        .unwrap();
    let out = sends(&out);
    assert!(
        matches!(
            &out[..],
            [
                Output::Send {
                    to: 0,
                    msg: Msg::Orphan { .. }
                },
                Output::Send {
                    to: 0,
                    msg: Msg::Holding { last: true, .. }
                }
            ]
        ),
        "the data first, then the report: {out:?}"
    );
    assert!(cs[1].orphans().is_empty());
    // Delivered in order: the directory still waits for host 1's word.
    let written = deliver(&mut cs, 1, &out[0]);
    let [
        Output::DiskWrite {
            page: P,
            data,
            epoch,
            ack,
        },
    ] = &written[..]
    else {
        panic!("orphan not written: {written:?}")
    };
    assert_eq!(data.as_slice(), &[9]);
    let (epoch, ack) = (*epoch, *ack);
    deliver(&mut cs, 1, &out[1]);
    let acked = cs[0]
        .handle(Input::DiskWritten {
            page: P,
            epoch,
            ack,
            error: 0,
        })
        .unwrap();
    let acked = sends(&acked);
    assert!(deliver(&mut cs, 0, &acked[0]).is_empty());
    // Host 2 faults after host 2 reported: the disk's copy, the new data,
    // is served (the page's next epoch is above the orphan's).
    let out = cs[2]
        .handle(Input::PeerJoined {
            host: 0,
            incarnation: 6,
        })
        .unwrap();
    for o in sends(&out) {
        deliver(&mut cs, 2, &o);
    }
    let out = cs[2].handle(Input::Fault { req: 4, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    assert_eq!(out, vec![Output::DiskRead { page: P }]);
    let out = cs[0]
        .handle(Input::DiskRead {
            page: P,
            data: vec![9].into(),
        })
        .unwrap();
    let Output::Send {
        to: 2,
        msg: Msg::Data { epoch: e, .. },
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert!(*e > epoch, "epoch {e} after the orphan's {epoch}");
}

#[test]
fn dirty_data_that_may_have_reached_the_owner_that_died_is_reported_lost() {
    let mut cs = cores(3, 5);
    let handed = fence_dirty_page_of_owner(&mut cs);
    // Handed to a connection: the dead owner may have written it and
    // served the page again since; its next incarnation cannot tell.
    let out = cs[1]
        .handle(Input::PeerDied {
            host: 0,
            incarnation: 5,
            undelivered: handed,
            unsent: vec![],
        })
        .unwrap();
    assert!(out.contains(&Output::Lost { page: P, host: 0 }), "{out:?}");
    assert!(cs[1].orphans().is_empty());
}

#[test]
fn an_orphan_that_comes_once_the_directory_no_longer_waits_for_its_sender_is_refused_and_reported()
{
    let mut cs = cores(3, 5);
    let out = owner_dies_before_its_data_went(&mut cs);
    owner_death_recovered(&mut cs, &out);
    restarted_owner(&mut cs);
    // Host 1 was not heard from within the time-out: the directory was
    // rebuilt without it and may have served the page since.
    cs[0].handle(Input::PeerAbsent { host: 1 }).unwrap();
    let out = cs[1]
        .handle(Input::PeerJoined {
            host: 0,
            incarnation: 6,
        })
        .unwrap();
    let out = sends(&out);
    let refused = deliver(&mut cs, 1, &out[0]);
    assert_eq!(
        refused,
        vec![
            Output::Lost { page: P, host: 1 },
            Output::Send {
                to: 1,
                msg: Msg::PutAck {
                    page: P,
                    seq: match &out[0] {
                        Output::Send {
                            msg: Msg::Orphan { seq, .. },
                            ..
                        } => *seq,
                        o => panic!("{o:?}"),
                    },
                    error: NOT_TAKEN,
                },
            }
        ]
    );
    let told = deliver(&mut cs, 0, &refused[1]);
    assert_eq!(told, vec![Output::OrphanRefused { page: P }]);
}

#[test]
fn data_kept_for_an_owner_is_reported_lost_when_its_keeper_is_taken_for_dead() {
    let mut cs = cores(3, 5);
    owner_dies_before_its_data_went(&mut cs);
    assert_eq!(cs[1].orphans(), vec![P]);
    // Host 2 took this very incarnation of host 1 for dead: every owner
    // will refuse it, and its kept data with it.
    let out = cs[1]
        .handle(Input::Message {
            from: 2,
            msg: Msg::Recover {
                dead: 1,
                incarnation: 5,
                left: false,
            },
        })
        .unwrap();
    assert!(out.contains(&Output::Lost { page: P, host: 0 }), "{out:?}");
    assert!(cs[1].orphans().is_empty());
    // (A refusal says the same: nothing is left to report twice.)
    let out = cs[1].handle(Input::TakenForDead).unwrap();
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn an_orphan_for_an_incarnation_before_the_previous_one_is_refused() {
    let mut cs = cores(3, 5);
    let out = owner_dies_before_its_data_went(&mut cs);
    owner_death_recovered(&mut cs, &out);
    // An incarnation ran between the one the data went to and this one:
    // it may have served the page without host 1 (it did not wait for a
    // host it never heard from).
    restarted_owner_after(&mut cs, 55);
    let out = cs[1]
        .handle(Input::PeerJoined {
            host: 0,
            incarnation: 6,
        })
        .unwrap();
    let out = sends(&out);
    let refused = deliver(&mut cs, 1, &out[0]);
    assert!(
        matches!(
            &refused[..],
            [
                Output::Lost { page: P, host: 1 },
                Output::Send {
                    to: 1,
                    msg: Msg::PutAck {
                        error: NOT_TAKEN,
                        ..
                    }
                }
            ]
        ),
        "{refused:?}"
    );
    assert_eq!(
        deliver(&mut cs, 0, &refused[1]),
        vec![Output::OrphanRefused { page: P }]
    );
}
