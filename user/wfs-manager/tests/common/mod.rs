//! Helpers shared by the tests that drive protocol cores by hand: a small
//! cluster whose host 0 owns file 7, and message delivery.

#![allow(dead_code)]

use wfs_manager::protocol::{Core, HostId, Input, Output, PageId};

/// Page 0 of file 7.
pub const P: PageId = PageId { file: 7, index: 0 };

/// `n` cores of incarnation `inc`; host 0 owns file 7.
pub fn cores(n: u16, inc: u64) -> Vec<Core> {
    let mut v: Vec<Core> = (0..n).map(|h| Core::with_incarnation(h, inc)).collect();
    for c in &mut v {
        c.add_file(7, 0);
        for p in 0..n {
            c.add_peer(p);
        }
    }
    v
}
/// `hosts` learn each other's incarnation `inc` and say what they hold
/// (nothing); the other hosts configured are never heard from (their
/// failure time-out passes).
pub fn join(cs: &mut [Core], hosts: &[HostId], inc: u64) {
    for &a in hosts {
        for &b in hosts {
            if a != b {
                let out = cs[a as usize]
                    .handle(Input::PeerJoined {
                        host: b,
                        incarnation: inc,
                    })
                    .unwrap();
                for o in sends(&out) {
                    assert!(deliver(cs, a, &o).is_empty(), "{o:?}");
                }
            }
        }
    }
    for &a in hosts {
        for b in 0..cs.len() as HostId {
            if !hosts.contains(&b) && b != a {
                cs[a as usize]
                    .handle(Input::PeerAbsent { host: b })
                    .unwrap();
            }
        }
    }
}
/// Delivers message `o` from host `from`; returns what its receiver does.
pub fn deliver(cs: &mut [Core], from: HostId, o: &Output) -> Vec<Output> {
    let Output::Send { to, msg } = o else {
        panic!("{o:?}")
    };
    cs[*to as usize]
        .handle(Input::Message {
            from,
            msg: msg.clone(),
        })
        .unwrap()
}
/// Host 1, asked to invalidate P (which it holds clean, with 1), hands
/// it over; returns what that message does at its receiver.
pub fn hand_over_from_1(cs: &mut [Core]) -> Vec<Output> {
    let out = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![1].into(), false)),
        })
        .unwrap();
    deliver(cs, 1, &out[0])
}

/// The messages among `out`.
pub fn sends(out: &[Output]) -> Vec<Output> {
    out.iter()
        .filter(|o| matches!(o, Output::Send { .. }))
        .cloned()
        .collect()
}

/// Host `h` gets P from the owner's disk (host 0), holding `v`.
pub fn fetch_from_disk(cs: &mut [Core], h: HostId, req: u64, v: u8) {
    let out = cs[h as usize]
        .handle(Input::Fault { req, page: P })
        .unwrap();
    let out = match h {
        0 => out,
        _ => deliver(cs, h, &out[0]),
    };
    assert_eq!(out, vec![Output::DiskRead { page: P }]);
    let out = cs[0]
        .handle(Input::DiskRead {
            page: P,
            data: vec![v].into(),
        })
        .unwrap();
    if h != 0 {
        let out = deliver(cs, 0, &out[0]);
        let done = sends(&out);
        assert!(deliver(cs, h, &done[0]).is_empty());
    }
}

/// Every host of `cs` joins; host 1 gets P from the owner's disk and
/// writes 1 back: returns its `Put`, not delivered yet (a slow one).
pub fn slow_write_back(cs: &mut [Core]) -> Vec<Output> {
    let all: Vec<HostId> = (0..cs.len() as HostId).collect();
    join(cs, &all, 5);
    fetch_from_disk(cs, 1, 1, 0);
    cs[1]
        .handle(Input::Writeback {
            req: 2,
            page: P,
            data: vec![1].into(),
        })
        .unwrap()
}

/// The owner's disk writes among `out`, carried out without error; returns
/// what the owner does then.
pub fn write_all(cs: &mut [Core], out: &[Output]) -> Vec<Output> {
    let mut after = Vec::new();
    for o in out {
        if let Output::DiskWrite {
            page, epoch, ack, ..
        } = o
        {
            after.extend(
                cs[0]
                    .handle(Input::DiskWritten {
                        page: *page,
                        epoch: *epoch,
                        ack: *ack,
                        error: 0,
                    })
                    .unwrap(),
            );
        }
    }
    after
}

/// The data of the disk writes among `out`, in order.
pub fn disk_writes(out: &[Output]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::DiskWrite { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .collect()
}
