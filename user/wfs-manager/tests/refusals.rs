//! What a peer may not do (Documentation/protocol.md, "What a peer may
//! not do"), at the cores: a refused message is answered where its
//! sender waits for an answer, and refusing one message loses nothing
//! else of the same input. Pages tiny (one byte), messages delivered by
//! hand.

mod common;

use common::{P, cores, fetch_from_disk, join};
use wfs_manager::protocol::{Access, Core, Input, Msg, Output, ProtocolError, REFUSED};

#[test]
fn a_refused_put_is_answered_with_an_error_and_not_written() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    // Host 1 holds P (epoch 1); host 2 writes that epoch, holding nothing.
    fetch_from_disk(&mut cs, 1, 1, 0);
    let out = cs[0]
        .handle(Input::Message {
            from: 2,
            msg: Msg::Put {
                page: P,
                epoch: 1,
                seq: 4,
                data: vec![9].into(),
                home: false,
            },
        })
        .expect("answered, not an error that drops the answer");
    assert!(
        matches!(
            &out[..],
            [
                Output::Send {
                    to: 2,
                    msg: Msg::PutAck {
                        page: P,
                        seq: 4,
                        error: REFUSED
                    }
                },
                Output::Rejected(ProtocolError::Forbidden { from: 2, .. })
            ]
        ),
        "{out:?}"
    );
}

#[test]
fn a_write_whose_put_is_refused_fails_and_is_not_sent_again() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);
    let out = cs[1]
        .handle(Input::Writeback {
            req: 2,
            page: P,
            data: vec![1].into(),
        })
        .unwrap();
    let [
        Output::Send {
            to: 0,
            msg: Msg::Put { seq, .. },
        },
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    // The owner refuses it (as it would a Put it takes for forbidden).
    let out = cs[1]
        .handle(Input::Message {
            from: 0,
            msg: Msg::PutAck {
                page: P,
                seq: *seq,
                error: REFUSED,
            },
        })
        .unwrap();
    assert!(
        out.contains(&Output::WriteDone {
            req: 2,
            error: REFUSED
        }),
        "{out:?}"
    );
    assert!(
        out.contains(&Output::PutRefused { page: P, owner: 0 }),
        "{out:?}"
    );
    assert!(!cs[1].retrying(), "sent again");
}

#[test]
fn a_refused_message_held_back_by_a_rebuilding_owner_loses_nothing_else() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    // The owner restarts (incarnation 6 after 5): it waits for its
    // peers' word before serving anything.
    cs[0] = Core::with_incarnation(0, 6);
    cs[0].set_previous(5);
    cs[0].add_file(7, 0);
    for p in 0..3 {
        cs[0].add_peer(p);
    }
    for h in [1, 2] {
        cs[0]
            .handle(Input::PeerJoined {
                host: h,
                incarnation: 5,
            })
            .unwrap();
    }
    let held = [
        // Host 1's genuine fault.
        (
            1,
            Msg::WhereIs {
                txn: (1 << 48) | 1,
                page: P,
                access: Access::Write,
            },
        ),
        // Host 2's Done for a move that is not under way.
        (2, Msg::Done { txn: 3, page: P }),
    ];
    for (from, msg) in held {
        let out = cs[0].handle(Input::Message { from, msg }).unwrap();
        assert!(out.is_empty(), "held back: {out:?}");
    }
    cs[0]
        .handle(Input::Message {
            from: 1,
            msg: Msg::Holding {
                pages: vec![],
                last: true,
            },
        })
        .unwrap();
    let out = cs[0]
        .handle(Input::Message {
            from: 2,
            msg: Msg::Holding {
                pages: vec![],
                last: true,
            },
        })
        .expect("the refused one is reported on its own");
    assert!(out.contains(&Output::DiskRead { page: P }), "{out:?}");
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Rejected(ProtocolError::Unexpected { from: 2, .. })
        )),
        "{out:?}"
    );
}

#[test]
fn a_leaving_host_whose_put_is_refused_still_leaves() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);
    let out = cs[1].handle(Input::Leave).unwrap();
    assert_eq!(out, vec![Output::Invalidate { page: P }]);
    let out = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![9].into(), true)),
        })
        .unwrap();
    let put = out.iter().find_map(|o| match o {
        Output::Send {
            to: 0,
            msg: Msg::Put { seq, .. },
        } => Some(*seq),
        _ => None,
    });
    let Some(seq) = put else {
        panic!("its dirty data goes home: {out:?}")
    };
    assert!(!out.contains(&Output::Left), "{out:?}");
    // The owner refuses it (as it would a Put it takes for forbidden):
    // the data is lost, but the leave ends.
    let out = cs[1]
        .handle(Input::Message {
            from: 0,
            msg: Msg::PutAck {
                page: P,
                seq,
                error: REFUSED,
            },
        })
        .unwrap();
    assert!(
        out.contains(&Output::PutRefused { page: P, owner: 0 }),
        "{out:?}"
    );
    assert_eq!(out.last(), Some(&Output::Left), "{out:?}");
    assert!(!cs[1].retrying(), "sent again");
}
