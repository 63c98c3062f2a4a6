//! A file's owner takes back the pages past a new end before it shrinks
//! the file (`Core::set_limit`, `Input::Recall`, `Core::recalled`;
//! Documentation/fs-plan.md, step 1). Pages one byte long, messages
//! delivered by hand; the simulation (`sim.rs`,
//! `protocol_simulation_shrink`) runs the same under every failure.

mod common;

use common::{P, cores, deliver, disk_writes, fetch_from_disk, join, sends, write_all};
use wfs_manager::protocol::{Input, Output, PAST_END, PageId};

/// Host 1 holds P dirty (it wrote 9 to the copy it got from the disk); the
/// owner, host 0, shrinks the file to nothing: P comes home, its data is
/// written to the owner's disk, and only then is the recall over; a fault
/// of P afterwards, on any host, fails as past the end.
#[test]
fn a_shrink_takes_a_dirty_page_home_and_refuses_it_afterwards() {
    let mut cs = cores(3, 5);
    join(&mut cs, &[0, 1, 2], 5);
    fetch_from_disk(&mut cs, 1, 1, 0);

    cs[0].set_limit(P.file, Some(0));
    assert!(!cs[0].recalled(P.file, 0), "host 1 still holds P");
    let out = cs[0]
        .handle(Input::Recall {
            file: P.file,
            first: 0,
        })
        .unwrap();
    // The owner asks for the writable copy for nobody: a Fetch to host 1.
    let fetch = sends(&out);
    assert_eq!(fetch.len(), 1, "{out:?}");
    let out = deliver(&mut cs, 0, &fetch[0]);
    assert_eq!(out, vec![Output::Invalidate { page: P }]);
    let out = cs[1]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![9].into(), true)),
        })
        .unwrap();
    // The dirty data comes home and goes to the disk; nobody holds P.
    let out = deliver(&mut cs, 1, &out[0]);
    assert_eq!(disk_writes(&out), vec![vec![9]], "{out:?}");
    assert!(
        out.iter()
            .all(|o| !matches!(o, Output::DiskWrite { page, .. } if *page != P)),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Grant { .. })),
        "the recall installs nothing: {out:?}"
    );
    assert!(!cs[0].recalled(P.file, 0), "its disk write is not done yet");
    write_all(&mut cs, &out);
    assert!(cs[0].recalled(P.file, 0));
    assert!(!cs[1].holds(P));

    // Past the limit, host 2's fault fails, and so does the owner's own.
    let out = cs[2].handle(Input::Fault { req: 7, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    let out = deliver(&mut cs, 0, &sends(&out)[0]);
    assert_eq!(
        out,
        vec![Output::ReadFailed {
            req: 7,
            error: PAST_END
        }]
    );
    let out = cs[0].handle(Input::Fault { req: 8, page: P }).unwrap();
    assert_eq!(
        out,
        vec![Output::ReadFailed {
            req: 8,
            error: PAST_END
        }]
    );
    // Once the file is a page long again (the limit past P), P is served
    // as ever, from the disk; the page after it is not.
    cs[0].set_limit(P.file, Some(1));
    let out = cs[2].handle(Input::Fault { req: 9, page: P }).unwrap();
    let out = deliver(&mut cs, 2, &out[0]);
    assert_eq!(out, vec![Output::DiskRead { page: P }]);
    let next = PageId {
        file: P.file,
        index: 1,
    };
    let out = cs[0]
        .handle(Input::Fault {
            req: 10,
            page: next,
        })
        .unwrap();
    assert_eq!(
        out,
        vec![Output::ReadFailed {
            req: 10,
            error: PAST_END
        }]
    );
}

/// The owner's own kernel holds the page: the recall takes it from there
/// (a DROP), and the directory hears that the owner holds it no more.
#[test]
fn a_shrink_takes_the_owners_own_copy_from_its_kernel() {
    let mut cs = cores(2, 5);
    join(&mut cs, &[0, 1], 5);
    fetch_from_disk(&mut cs, 0, 1, 0);
    cs[0]
        .handle(Input::Answered {
            req: 1,
            installed: true,
        })
        .unwrap();
    cs[0].set_limit(P.file, Some(0));
    let out = cs[0]
        .handle(Input::Recall {
            file: P.file,
            first: 0,
        })
        .unwrap();
    assert_eq!(out, vec![Output::Invalidate { page: P }]);
    // Asked again while the DROP is under way, nothing more is done.
    let again = cs[0]
        .handle(Input::Recall {
            file: P.file,
            first: 0,
        })
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert!(!cs[0].recalled(P.file, 0));
    let out = cs[0]
        .handle(Input::Invalidated {
            page: P,
            contents: Some((vec![4].into(), true)),
        })
        .unwrap();
    assert_eq!(disk_writes(&out), vec![vec![4]], "{out:?}");
    write_all(&mut cs, &out);
    assert!(cs[0].recalled(P.file, 0));
    assert_eq!(cs[0].outstanding(), 0, "{:?}", cs[0]);
}
