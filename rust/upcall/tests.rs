// SPDX-License-Identifier: GPL-2.0

//! KUnit suites of the upcall channel: message encoding, the request table
//! and the registration state machine. They run when `wfs.ko` is loaded.

use super::abi::{self, Attr, DecodeError, Grant, Opcode, Reply, ReplyBody, Request, Time};
use super::channel::{RegisterError, ReplyError, State, MAX_INFLIGHT, RUN_HEADROOM};
use super::opens::OpenFiles;
use super::table::{time_reached, Outcome, Table, TableError};
use crate::netmem::Run;
use kernel::{kunit_expect, kunit_expect_eq, kunit_module_suite, prelude::*};

fn roundtrip(req: Request<'_>, id: u64) {
    let mut buf = [0u8; abi::MSG_MAX];
    let n = match req.encode(id, &mut buf) {
        Ok(n) => n,
        Err(e) => {
            kunit_expect!(false, "encode failed: {:?}", e);
            return;
        }
    };
    kunit_expect_eq!(n, req.encoded_len());
    kunit_expect_eq!(Request::decode(&buf[..n]), Ok((id, req)));
    // Every strict prefix and every one-byte extension must be refused.
    for cut in 0..n {
        kunit_expect!(
            Request::decode(&buf[..cut]).is_err(),
            "prefix {} accepted",
            cut
        );
    }
    kunit_expect!(Request::decode(&buf[..n + 1]).is_err());
}

fn abi_request_roundtrip() {
    roundtrip(Request::Lookup { name: b"foo" }, 1);
    roundtrip(
        Request::Lookup {
            name: &[b'x'; abi::NAME_MAX],
        },
        2,
    );
    roundtrip(Request::Getattr { file: 7 }, 3);
    roundtrip(Request::Readdir { cookie: 9 }, 4);
    roundtrip(
        Request::Read {
            file: u64::MAX,
            index: 1 << 40,
            count: abi::READ_RUN_MAX,
            slot: 48,
        },
        u64::MAX,
    );
    roundtrip(
        Request::Write {
            file: 1,
            index: 2,
            count: 1,
            slot: 4,
        },
        5,
    );
    roundtrip(Request::Upgrade { file: 1, index: 0 }, 6);
    roundtrip(
        Request::View {
            file: 9,
            index: 3,
            count: 1,
            slot: 2,
        },
        7,
    );
    roundtrip(
        Request::Lock(abi::LockArgs {
            file: 9,
            owner: u64::MAX,
            start: 0,
            end: abi::LOCK_END_MAX,
            pid: 1,
            wait_ms: 30_000,
            kind: abi::LockKind::Flock,
            cmd: abi::LockCmd::Wait,
            mode: abi::LockMode::Write,
        }),
        8,
    );
    for grow in [false, true] {
        roundtrip(
            Request::Setsize {
                file: 3,
                size: abi::SIZE_MAX,
                grow,
            },
            9,
        );
    }
    for (excl, uid, gid) in [
        (false, 0, 0),
        (true, 1000, 100),
        (false, 65534, u32::MAX - 1),
    ] {
        roundtrip(
            Request::Create {
                name: b"new.db-journal",
                mode: 0o644,
                excl,
                uid,
                gid,
            },
            10,
        );
    }
    roundtrip(
        Request::Unlink {
            file: 7,
            name: &[b'u'; abi::NAME_MAX],
        },
        11,
    );
    for noreplace in [false, true] {
        roundtrip(
            Request::Rename {
                file: 7,
                target: 8,
                noreplace,
                from: &[b'f'; abi::NAME_MAX],
                to: &[b't'; abi::NAME_MAX],
            },
            12,
        );
    }
    roundtrip(Request::Open { file: u64::MAX }, 13);
    roundtrip(
        Request::Release {
            file: 2,
            session: u64::MAX,
        },
        22,
    );
    roundtrip(
        Request::Settimes {
            file: 3,
            sec: -1,
            nsec: abi::NSEC_MAX,
        },
        30,
    );
}

fn abi_request_malformed() {
    let mut buf = [0u8; abi::MSG_MAX];
    // Names the flat namespace cannot hold are refused when encoding.
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        kunit_expect_eq!(
            Request::Lookup { name: bad }.encode(1, &mut buf),
            Err(DecodeError::BadName)
        );
    }
    for bad in [&b""[..], b"..", b"a/b"] {
        kunit_expect_eq!(
            Request::Create {
                name: bad,
                mode: 0o600,
                excl: true,
                uid: 0,
                gid: 0,
            }
            .encode(1, &mut buf),
            Err(DecodeError::BadName)
        );
        kunit_expect_eq!(
            Request::Unlink { file: 2, name: bad }.encode(1, &mut buf),
            Err(DecodeError::BadName)
        );
        kunit_expect_eq!(
            Request::Rename {
                file: 2,
                target: 0,
                noreplace: false,
                from: b"ok",
                to: bad
            }
            .encode(1, &mut buf),
            Err(DecodeError::BadName)
        );
    }
    // Only permission bits are a mode, and an owner is a valid id.
    for (mode, uid, gid) in [(0o100644, 0, 0), (0o644, u32::MAX, 0), (0o644, 0, u32::MAX)] {
        kunit_expect_eq!(
            Request::Create {
                name: b"f",
                mode,
                excl: false,
                uid,
                gid,
            }
            .encode(1, &mut buf),
            Err(DecodeError::BadField)
        );
    }
    let long = [b'y'; abi::NAME_MAX + 1];
    kunit_expect!(Request::Lookup { name: &long }.encode(1, &mut buf).is_err());
    // Too small an output buffer.
    kunit_expect_eq!(
        Request::Getattr { file: 1 }.encode(1, &mut buf[..10]),
        Err(DecodeError::Short)
    );
    // Unknown opcode, reply bit on a request, flags.
    let n = Request::Getattr { file: 1 }
        .encode(1, &mut buf)
        .unwrap_or(0);
    kunit_expect_eq!(n, abi::HEADER_LEN + 8);
    let mut m = buf;
    m[4] = 99;
    kunit_expect_eq!(
        Request::decode(&m[..n]),
        Err(DecodeError::UnknownOpcode(99))
    );
    let mut m = buf;
    m[5] = 0x80;
    kunit_expect!(Request::decode(&m[..n]).is_err());
    let mut m = buf;
    m[6] = 1;
    kunit_expect_eq!(Request::decode(&m[..n]), Err(DecodeError::BadField));
    // A length field that lies.
    let mut m = buf;
    m[0] = (n + 1) as u8;
    kunit_expect_eq!(Request::decode(&m[..n]), Err(DecodeError::BadLength));
    // READ with a zero page count.
    let n = Request::Read {
        file: 1,
        index: 0,
        count: 1,
        slot: 0,
    }
    .encode(1, &mut buf)
    .unwrap_or(0);
    buf[abi::HEADER_LEN + 16] = 0;
    kunit_expect_eq!(Request::decode(&buf[..n]), Err(DecodeError::BadField));
    // READ of more than READ_RUN_MAX pages; WRITE and VIEW of more than one.
    buf[abi::HEADER_LEN + 16] = abi::READ_RUN_MAX as u8 + 1;
    kunit_expect_eq!(Request::decode(&buf[..n]), Err(DecodeError::BadField));
    for op in [Opcode::Write, Opcode::View] {
        let mut m = buf;
        m[4] = op as u8;
        m[abi::HEADER_LEN + 16] = 2;
        kunit_expect_eq!(Request::decode(&m[..n]), Err(DecodeError::BadField));
        m[abi::HEADER_LEN + 16] = 1;
        kunit_expect!(Request::decode(&m[..n]).is_ok());
    }
    let big = Request::Read {
        file: 1,
        index: 0,
        count: abi::READ_RUN_MAX + 1,
        slot: 0,
    };
    kunit_expect_eq!(big.encode(1, &mut buf), Err(DecodeError::BadField));
    // SETSIZE past the largest size, with a `grow` other than 0 or 1, or
    // with its reserved field set.
    let past = Request::Setsize {
        file: 1,
        size: abi::SIZE_MAX + 1,
        grow: true,
    };
    kunit_expect_eq!(past.encode(1, &mut buf), Err(DecodeError::BadField));
    let n = Request::Setsize {
        file: 1,
        size: 5,
        grow: true,
    }
    .encode(1, &mut buf)
    .unwrap_or(0);
    for (at, v) in [
        (abi::HEADER_LEN + 15, 0x80),
        (abi::HEADER_LEN + 16, 2),
        (abi::HEADER_LEN + 20, 1),
    ] {
        let mut m = buf;
        m[at] = v;
        kunit_expect_eq!(Request::decode(&m[..n]), Err(DecodeError::BadField));
    }
    // The size block of IOC_SIZE: short, past the largest size, or with a
    // flag or reserved bit unknown.
    kunit_expect_eq!(abi::Size::decode(&[0u8; 23]), Err(DecodeError::Short));
    let mut b = [0u8; abi::Size::LEN];
    let largest = abi::Size {
        file: 2,
        size: abi::SIZE_MAX,
        cut: true,
    };
    largest.encode(&mut b);
    kunit_expect_eq!(abi::Size::decode(&b), Ok(largest));
    for (at, v) in [(15, 0x80), (16, 3), (23, 1)] {
        let mut m = b;
        m[at] = v;
        kunit_expect_eq!(abi::Size::decode(&m), Err(DecodeError::BadField));
    }
}

fn abi_reply_roundtrip() {
    let attr = Attr {
        file: 42,
        size: 1 << 20,
        mode: 0o644,
        mtime: Time {
            sec: 1_700_000_000,
            nsec: 999_999_999,
        },
        ctime: Time { sec: -1, nsec: 0 },
        uid: 1000,
        gid: u32::MAX,
        root_squash: true,
    };
    let replies = [
        Reply {
            id: 1,
            op: Opcode::Lookup,
            error: 0,
            body: Some(ReplyBody::Attr(attr)),
        },
        Reply {
            id: 2,
            op: Opcode::Getattr,
            error: abi::errno::ENOENT,
            body: None,
        },
        Reply {
            id: 3,
            op: Opcode::Readdir,
            error: 0,
            body: Some(ReplyBody::Dirent {
                next: 4,
                file: 5,
                name: b"shared",
            }),
        },
        Reply {
            id: 4,
            op: Opcode::Readdir,
            error: 0,
            body: Some(ReplyBody::Dirent {
                next: 0,
                file: 0,
                name: b"",
            }),
        },
        Reply {
            id: 5,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant: Grant::ReadOnly,
                pages: abi::READ_RUN_MAX,
                ahead: u32::MAX,
            }),
        },
        Reply {
            id: 6,
            op: Opcode::Upgrade,
            error: 0,
            body: Some(ReplyBody::Grant(Grant::ReadWrite)),
        },
        Reply {
            id: 8,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant: Grant::Dirty,
                pages: 1,
                ahead: 0,
            }),
        },
        Reply {
            id: 7,
            op: Opcode::Write,
            error: 0,
            body: Some(ReplyBody::Done),
        },
        Reply {
            id: 9,
            op: Opcode::View,
            error: 0,
            body: Some(ReplyBody::Grant(Grant::ReadOnly)),
        },
        Reply {
            id: 10,
            op: Opcode::Lock,
            error: 0,
            body: Some(ReplyBody::Done),
        },
        Reply {
            id: 11,
            op: Opcode::Lock,
            error: 0,
            body: Some(ReplyBody::Lock(abi::LockInfo {
                mode: abi::LockMode::Read,
                start: 3,
                end: abi::LOCK_END_MAX,
                pid: -12,
            })),
        },
        Reply {
            id: 12,
            op: Opcode::Lock,
            error: abi::errno::EAGAIN,
            body: None,
        },
    ];
    for r in replies {
        let mut buf = [0u8; abi::MSG_MAX];
        match r.encode(&mut buf) {
            Ok(n) => {
                kunit_expect_eq!(Reply::decode(&buf[..n]), Ok(r));
                kunit_expect!(Reply::decode(&buf[..n - 1]).is_err());
                // A reply is never mistaken for a request.
                kunit_expect!(Request::decode(&buf[..n]).is_err());
            }
            Err(e) => kunit_expect!(false, "encode {:?}: {:?}", r.op, e),
        }
    }
}

fn abi_reply_malformed() {
    let mut buf = [0u8; abi::MSG_MAX];
    // An error reply must not carry a body, and a success must.
    let bad = Reply {
        id: 1,
        op: Opcode::Read,
        error: 5,
        body: Some(ReplyBody::Pages {
            grant: Grant::ReadOnly,
            pages: 1,
            ahead: 0,
        }),
    };
    kunit_expect_eq!(bad.encode(&mut buf), Err(DecodeError::BadField));
    // A READ is answered with pages, 1 to READ_RUN_MAX of them, never a
    // bare grant.
    for (grant, pages) in [
        (Grant::ReadOnly, 0),
        (Grant::ReadOnly, abi::READ_RUN_MAX + 1),
        (Grant::Refault, 1),
    ] {
        let r = Reply {
            id: 1,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant,
                pages,
                ahead: 7,
            }),
        };
        kunit_expect_eq!(r.encode(&mut buf), Err(DecodeError::BadField));
    }
    let bare = Reply {
        id: 1,
        op: Opcode::Read,
        error: 0,
        body: Some(ReplyBody::Grant(Grant::ReadWrite)),
    };
    kunit_expect_eq!(bare.encode(&mut buf), Err(DecodeError::BadField));
    let ok = Reply {
        id: 1,
        op: Opcode::Read,
        error: 0,
        body: Some(ReplyBody::Pages {
            grant: Grant::ReadWrite,
            pages: 2,
            ahead: 0,
        }),
    };
    let n = ok.encode(&mut buf).unwrap_or(0);
    // An unknown grant value, a refault, and page counts out of range.
    for (at, v) in [(4, 4u8), (4, 9), (8, 0), (8, 17)] {
        let mut m = buf;
        m[abi::HEADER_LEN + at] = v;
        kunit_expect_eq!(Reply::decode(&m[..n]), Err(DecodeError::BadField));
    }
    // A negative errno.
    let mut m = buf;
    m[abi::HEADER_LEN..abi::HEADER_LEN + 4].copy_from_slice(&(-5i32).to_le_bytes());
    kunit_expect!(Reply::decode(&m[..n]).is_err());
    // A WRITE reply with trailing bytes.
    let w = Reply {
        id: 2,
        op: Opcode::Write,
        error: 0,
        body: Some(ReplyBody::Done),
    };
    let n = w.encode(&mut buf).unwrap_or(0);
    buf[0] += 1;
    kunit_expect_eq!(Reply::decode(&buf[..n + 1]), Err(DecodeError::BadLength));
    // A VIEW is answered read-only, nothing else: a view's page is never
    // writable.
    for g in [Grant::ReadWrite, Grant::Dirty, Grant::Refault] {
        let v = Reply {
            id: 3,
            op: Opcode::View,
            error: 0,
            body: Some(ReplyBody::Grant(g)),
        };
        kunit_expect_eq!(v.encode(&mut buf), Err(DecodeError::BadField));
    }
    let v = Reply {
        id: 3,
        op: Opcode::View,
        error: 0,
        body: Some(ReplyBody::Grant(Grant::ReadOnly)),
    };
    let n = v.encode(&mut buf).unwrap_or(0);
    for raw in [2u8, 3, 4] {
        let mut m = buf;
        m[abi::HEADER_LEN + 4] = raw;
        kunit_expect_eq!(Reply::decode(&m[..n]), Err(DecodeError::BadField));
    }
}

fn abi_register_block() {
    let req = abi::Register::request();
    let mut raw = [0u8; abi::Register::LEN];
    req.encode(&mut raw);
    kunit_expect_eq!(abi::Register::decode(&raw), Ok(req));
    kunit_expect_eq!(abi::Register::decode(&raw[..31]), Err(DecodeError::Short));
    // The ioctl numbers are the ones userspace computes with _IOWR/_IOR.
    kunit_expect_eq!(abi::IOC_REGISTER, 0xC020_5701u32);
    kunit_expect_eq!(abi::IOC_STATUS, 0x8020_5702u32);
}

kunit_module_suite!(
    wfs_upcall_abi,
    [
        abi_request_roundtrip,
        abi_request_malformed,
        abi_reply_roundtrip,
        abi_reply_malformed,
        abi_register_block
    ]
);

/// A reply length, as the channel's table records.
const T_ANS: usize = 42;

fn table_insert_complete() {
    let mut t: Table<usize, 4> = Table::new();
    let a = t.insert(100).unwrap_or(0);
    let b = t.insert(100).unwrap_or(0);
    kunit_expect!(a != 0 && b != 0 && a != b);
    kunit_expect_eq!(t.pending(), 2);
    kunit_expect_eq!(t.take(a), Some(Outcome::Pending));
    kunit_expect_eq!(t.complete(a, T_ANS), Ok(()));
    kunit_expect_eq!(t.pending(), 1);
    // A second reply to the same id is refused.
    kunit_expect_eq!(t.complete(a, T_ANS), Err(TableError::Unknown));
    kunit_expect_eq!(t.take(a), Some(Outcome::Done(T_ANS)));
    kunit_expect_eq!(t.take(a), None);
    kunit_expect_eq!(t.used(), 1);
    // A reply to an id never handed out is refused.
    kunit_expect_eq!(t.complete(b ^ (1 << 20), T_ANS), Err(TableError::Unknown));
    kunit_expect_eq!(t.complete(b | 0xff, T_ANS), Err(TableError::Unknown));
    // A request failed locally cannot then be completed.
    kunit_expect_eq!(t.fail(b, abi::errno::EIO), Ok(()));
    kunit_expect_eq!(t.complete(b, T_ANS), Err(TableError::Unknown));
    kunit_expect_eq!(t.fail(b, abi::errno::EIO), Err(TableError::Unknown));
    kunit_expect_eq!(t.take(b), Some(Outcome::Failed(abi::errno::EIO)));
    kunit_expect_eq!(t.pending(), 0);
}

fn table_full_and_reuse() {
    let mut t: Table<usize, 2> = Table::new();
    let a = t.insert(1).unwrap_or(0);
    let _b = t.insert(1).unwrap_or(0);
    kunit_expect_eq!(t.insert(1), Err(TableError::Full));
    kunit_expect!(t.cancel(a));
    // The freed slot is reused under a new id; the old id stays dead.
    let c = t.insert(1).unwrap_or(0);
    kunit_expect!(c != a);
    kunit_expect_eq!(c & 0xff, a & 0xff);
    kunit_expect_eq!(t.complete(a, T_ANS), Err(TableError::Unknown));
    kunit_expect_eq!(t.complete(c, T_ANS), Ok(()));
}

fn table_timeout() {
    let mut t: Table<usize, 4> = Table::new();
    let early = t.insert(10).unwrap_or(0);
    let late = t.insert(20).unwrap_or(0);
    kunit_expect_eq!(t.next_deadline(), Some(10));
    kunit_expect_eq!(t.expire(9, abi::errno::ETIMEDOUT), 0);
    kunit_expect_eq!(t.expire(10, abi::errno::ETIMEDOUT), 1);
    kunit_expect_eq!(t.take(early), Some(Outcome::Failed(abi::errno::ETIMEDOUT)));
    // A reply that arrives after the time-out is refused.
    kunit_expect_eq!(t.complete(early, T_ANS), Err(TableError::Unknown));
    kunit_expect!(t.is_pending(late));
    // Deadlines compare correctly across the wrap of the clock.
    kunit_expect!(time_reached(5, u64::MAX - 5));
    kunit_expect!(!time_reached(u64::MAX - 5, 5));
    let mut w: Table<usize, 2> = Table::new();
    let x = w.insert(3).unwrap_or(0);
    kunit_expect_eq!(w.expire(u64::MAX, abi::errno::ETIMEDOUT), 0);
    kunit_expect_eq!(w.expire(3, abi::errno::ETIMEDOUT), 1);
    kunit_expect_eq!(w.take(x), Some(Outcome::Failed(abi::errno::ETIMEDOUT)));
}

fn table_fail_all() {
    let mut t: Table<usize, 8> = Table::new();
    let mut ids = [0u64; 5];
    for id in ids.iter_mut() {
        *id = t.insert(1000).unwrap_or(0);
    }
    kunit_expect_eq!(t.complete(ids[0], T_ANS), Ok(()));
    kunit_expect_eq!(t.fail_all(abi::errno::EIO), 4);
    kunit_expect_eq!(t.pending(), 0);
    kunit_expect_eq!(t.take(ids[0]), Some(Outcome::Done(T_ANS)));
    for id in &ids[1..] {
        kunit_expect_eq!(t.take(*id), Some(Outcome::Failed(abi::errno::EIO)));
    }
    kunit_expect_eq!(t.used(), 0);
    kunit_expect_eq!(t.next_deadline(), None);
}

kunit_module_suite!(
    wfs_upcall_table,
    [
        table_insert_complete,
        table_full_and_reuse,
        table_timeout,
        table_fail_all
    ]
);

fn register_rules() {
    let Ok(mut st) = new_state() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let mut req = abi::Register::request();
    req.abi_version = abi::ABI_VERSION + 1;
    kunit_expect_eq!(st.register(&req, 10), Err(RegisterError::Version));
    kunit_expect_eq!(
        RegisterError::Version.to_error(),
        kernel::error::code::EPROTO
    );
    let mut req = abi::Register::request();
    req.magic = 0;
    kunit_expect_eq!(st.register(&req, 10), Err(RegisterError::BadMagic));
    let mut req = abi::Register::request();
    req.flags = 1;
    kunit_expect_eq!(st.register(&req, 10), Err(RegisterError::Flags));
    kunit_expect!(st.manager.is_none());

    let reply = st.register(&abi::Register::request(), 10);
    kunit_expect!(reply.is_ok());
    let session = reply.map(|r| r.session).unwrap_or(0);
    kunit_expect_eq!(session, 1);
    kunit_expect_eq!(st.status().registered, 1);
    kunit_expect_eq!(st.status().manager_pid, 10);
    // Exactly one manager at a time.
    kunit_expect_eq!(
        st.register(&abi::Register::request(), 11),
        Err(RegisterError::Busy)
    );
    kunit_expect_eq!(RegisterError::Busy.to_error(), kernel::error::code::EBUSY);

    // Unregistering fails everything pending and frees the way.
    let id = st.table.insert(1).unwrap_or(0);
    kunit_expect!(!st.unregister(session + 1));
    kunit_expect!(st.unregister(session));
    kunit_expect_eq!(st.table.take(id), Some(Outcome::Failed(abi::errno::EIO)));
    kunit_expect_eq!(st.status().registered, 0);
    let again = st
        .register(&abi::Register::request(), 12)
        .map(|r| r.session);
    kunit_expect_eq!(again, Ok(2));
    kunit_expect_eq!(
        st.register(&abi::Register::request(), 12)
            .map(|r| r.max_inflight),
        Err(RegisterError::Busy)
    );
    kunit_expect!(MAX_INFLIGHT > 0);
}

kunit_module_suite!(wfs_upcall_register, [register_rules]);

/// A fresh state, on the heap: it is too large for a test's stack.
fn new_state() -> Result<KBox<State>> {
    KBox::init(State::init(), GFP_KERNEL)
}

/// A state with a registered manager.
fn registered() -> Result<KBox<State>> {
    let mut st = new_state()?;
    let _ = st.register(&abi::Register::request(), 1);
    Ok(st)
}

/// Encodes `req` into a fresh call buffer and submits it; returns its id.
fn submit(st: &mut State, req: Request<'_>) -> Option<u64> {
    let buf = KBox::new([0u8; abi::MSG_MAX], GFP_KERNEL).ok()?;
    st.submit(buf, req.opcode(), 0, 1000, &mut |id, _, b| {
        req.encode(id, &mut b[..]).map_err(|_| EINVAL)
    })
    .ok()
}

fn reply_bytes(r: Reply<'_>, out: &mut [u8; abi::MSG_MAX]) -> usize {
    r.encode(out).unwrap_or(0)
}

/// Encodes the reply to READ `id`: `pages` pages under `grant`.
fn read_reply_bytes(id: u64, grant: Grant, pages: u32, out: &mut [u8; abi::MSG_MAX]) -> usize {
    reply_bytes(
        Reply {
            id,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant,
                pages,
                ahead: 0,
            }),
        },
        out,
    )
}

fn transport_roundtrip() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let id = submit(&mut st, Request::Getattr { file: 9 }).unwrap_or(0);
    kunit_expect!(id != 0);
    let mut out = [0u8; abi::MSG_MAX];
    let n = st.next_request(&mut out).unwrap_or(0);
    // What the manager reads is the request, under its id.
    kunit_expect_eq!(
        Request::decode(&out[..n]),
        Ok((id, Request::Getattr { file: 9 }))
    );
    kunit_expect_eq!(st.next_request(&mut out), None);
    let attr = Attr {
        file: 9,
        size: 8192,
        mode: 0o644,
        ..Attr::default()
    };
    let mut rb = [0u8; abi::MSG_MAX];
    let rn = reply_bytes(
        Reply {
            id,
            op: Opcode::Getattr,
            error: 0,
            body: Some(ReplyBody::Attr(attr)),
        },
        &mut rb,
    );
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Ok(()));
    let (buf, outcome, _) = st.finish(id);
    kunit_expect_eq!(outcome, Some(Outcome::Done(rn)));
    match buf {
        Some(b) => kunit_expect_eq!(
            Reply::decode(&b[..rn]).map(|r| r.body),
            Ok(Some(ReplyBody::Attr(attr)))
        ),
        None => kunit_expect!(false, "the call's buffer was lost"),
    }
    kunit_expect_eq!(st.table.used(), 0);
}

fn transport_bad_replies() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let id = submit(&mut st, Request::Upgrade { file: 1, index: 2 }).unwrap_or(0);
    let grant = |id| Reply {
        id,
        op: Opcode::Upgrade,
        error: 0,
        body: Some(ReplyBody::Grant(Grant::ReadWrite)),
    };
    let mut rb = [0u8; abi::MSG_MAX];
    // Not read by the manager yet: it cannot be answered.
    let rn = reply_bytes(grant(id), &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Err(ReplyError::Unknown));
    let mut out = [0u8; abi::MSG_MAX];
    kunit_expect!(st.next_request(&mut out).is_some());
    // Garbage, an id never handed out, and an answer of another kind.
    kunit_expect_eq!(st.accept_reply(&rb[..rn - 1]), Err(ReplyError::Malformed));
    let rn2 = reply_bytes(grant(id + (1 << 8)), &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn2]), Err(ReplyError::Unknown));
    let rn3 = reply_bytes(
        Reply {
            id,
            op: Opcode::Write,
            error: 0,
            body: Some(ReplyBody::Done),
        },
        &mut rb,
    );
    kunit_expect_eq!(st.accept_reply(&rb[..rn3]), Err(ReplyError::WrongOp));
    kunit_expect!(st.table.is_pending(id));
    // The right answer is taken once, and only once.
    let rn = reply_bytes(grant(id), &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Ok(()));
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Err(ReplyError::Unknown));
    let _ = st.finish(id);
    // A call given up by its caller cannot be answered later.
    let id2 = submit(&mut st, Request::Getattr { file: 1 }).unwrap_or(0);
    kunit_expect!(st.next_request(&mut out).is_some());
    let (buf, outcome, _) = st.finish(id2);
    kunit_expect!(buf.is_some());
    kunit_expect_eq!(outcome, None);
    let rn = reply_bytes(
        Reply {
            id: id2,
            op: Opcode::Getattr,
            error: abi::errno::ENOENT,
            body: None,
        },
        &mut rb,
    );
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Err(ReplyError::Unknown));
    kunit_expect_eq!(st.table.used(), 0);
}

fn transport_manager_gone() {
    let Ok(mut st) = new_state() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    // No manager: refused at once.
    let mut buf = KBox::new([0u8; abi::MSG_MAX], GFP_KERNEL).ok();
    if let Some(b) = buf.take() {
        kunit_expect!(matches!(
            st.submit(b, Opcode::Getattr, 0, 10, &mut |_, _, _| Ok(24)),
            Err((e, _)) if e == kernel::error::code::EIO
        ));
    }
    let _ = st.register(&abi::Register::request(), 1);
    let read = submit(&mut st, Request::Getattr { file: 1 }).unwrap_or(0);
    let queued = submit(&mut st, Request::Getattr { file: 2 }).unwrap_or(0);
    let mut out = [0u8; abi::MSG_MAX];
    kunit_expect!(st.next_request(&mut out).is_some());
    kunit_expect!(st.unregister(1));
    // Both calls failed with EIO; nothing is left for a new manager to read.
    kunit_expect_eq!(st.finish(read).1, Some(Outcome::Failed(abi::errno::EIO)));
    kunit_expect_eq!(st.finish(queued).1, Some(Outcome::Failed(abi::errno::EIO)));
    let _ = st.register(&abi::Register::request(), 2);
    kunit_expect_eq!(st.next_request(&mut out), None);
    kunit_expect_eq!(st.table.used(), 0);
}

kunit_module_suite!(
    wfs_upcall_transport,
    [
        transport_roundtrip,
        transport_bad_replies,
        transport_manager_gone
    ]
);

/// Submits a READ of page 3 of file 5 with a pool slot; returns its id.
fn submit_read(st: &mut State) -> Option<u64> {
    submit_read_run(st, 1)
}

/// Submits a READ of up to `n` pages from page 3 of file 5, with as many
/// pool slots as it gets; returns its id.
fn submit_read_run(st: &mut State, n: u32) -> Option<u64> {
    let buf = KBox::new([0u8; abi::MSG_MAX], GFP_KERNEL).ok()?;
    let mut read = |id, run: Option<Run>, b: &mut super::channel::MsgBuf| {
        let run = run.ok_or(EINVAL)?;
        Request::Read {
            file: 5,
            index: 3,
            count: run.n,
            slot: run.first,
        }
        .encode(id, &mut b[..])
        .map_err(|_| EINVAL)
    };
    st.submit(buf, Opcode::Read, n, 1000, &mut read).ok()
}

fn transport_page_slots() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let free = st.slots.free();
    let Some(id) = submit_read(&mut st) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    kunit_expect_eq!(st.slots.free(), free - 1);
    let mut out = [0u8; abi::MSG_MAX];
    let n = st.next_request(&mut out).unwrap_or(0);
    let slot = match Request::decode(&out[..n]) {
        Ok((_, Request::Read { slot, .. })) => slot,
        other => {
            kunit_expect!(false, "read request: {:?}", other);
            return;
        }
    };
    // Lent to the manager while the request is out.
    kunit_expect!(st.slots.manager_may_access(slot, id));
    let mut rb = [0u8; abi::MSG_MAX];
    let rn = read_reply_bytes(id, Grant::ReadWrite, 1, &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Ok(()));
    // Answered: back with the kernel until the caller is done with it.
    kunit_expect!(!st.slots.manager_may_access(slot, id));
    let (_, outcome, s) = st.finish(id);
    kunit_expect_eq!(outcome, Some(Outcome::Done(rn)));
    kunit_expect_eq!(s, Some(Run::one(slot)));
    kunit_expect_eq!(st.slots.free(), free - 1);
    st.slots.finish(slot, id);
    kunit_expect_eq!(st.slots.free(), free);

    // A caller that gives up leaves its slot with the manager until the
    // late reply, which is refused but frees the slot.
    let Some(id2) = submit_read(&mut st) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    kunit_expect!(st.next_request(&mut out).is_some());
    let _ = st.finish(id2);
    kunit_expect_eq!(st.slots.free(), free - 1);
    let rn = read_reply_bytes(id2, Grant::ReadOnly, 1, &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Err(ReplyError::Unknown));
    kunit_expect_eq!(st.slots.free(), free);
}

/// Reserves pool slots (for request 999, recorded in `taken`) until only
/// `left` are free; false (and a failed expectation) if out of memory.
fn take_slots_until(st: &mut State, taken: &mut KVec<u32>, left: usize) -> bool {
    while st.slots.free() > left {
        let Ok(s) = st.slots.reserve(999) else {
            break;
        };
        if taken.push(s, GFP_KERNEL).is_err() {
            kunit_expect!(false, "out of memory");
            return false;
        }
    }
    true
}

/// A READ of several pages lends a run of consecutive slots, which move
/// together: to the manager with the request, back with its reply, and
/// orphaned together when the caller gives up.
fn transport_page_runs() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let free = st.slots.free();
    let n = abi::READ_RUN_MAX;
    let Some(id) = submit_read_run(&mut st, n) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    kunit_expect_eq!(st.slots.free(), free - n as usize);
    let mut out = [0u8; abi::MSG_MAX];
    let len = st.next_request(&mut out).unwrap_or(0);
    let (slot, count) = match Request::decode(&out[..len]) {
        Ok((_, Request::Read { slot, count, .. })) => (slot, count),
        other => {
            kunit_expect!(false, "read request: {:?}", other);
            return;
        }
    };
    kunit_expect_eq!(count, n);
    for i in 0..n {
        kunit_expect!(st.slots.manager_may_access(slot + i, id));
    }
    let mut rb = [0u8; abi::MSG_MAX];
    let rn = read_reply_bytes(id, Grant::ReadOnly, 3, &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Ok(()));
    for i in 0..n {
        kunit_expect!(!st.slots.manager_may_access(slot + i, id));
    }
    let (_, _, run) = st.finish(id);
    kunit_expect_eq!(run, Some(Run { first: slot, n }));
    if let Some(run) = run {
        st.slots.finish_run(run, id);
    }
    kunit_expect_eq!(st.slots.free(), free);

    // Given up on while lent: the whole run waits for the late reply.
    let Some(id2) = submit_read_run(&mut st, n) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    kunit_expect!(st.next_request(&mut out).is_some());
    let _ = st.finish(id2);
    kunit_expect_eq!(st.slots.free(), free - n as usize);
    let rn = read_reply_bytes(id2, Grant::ReadOnly, 1, &mut rb);
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Err(ReplyError::Unknown));
    kunit_expect_eq!(st.slots.free(), free);

    // With few slots free, a run leaves RUN_HEADROOM of them to others,
    // down to a run of one.
    let mut taken = KVec::new();
    if !take_slots_until(&mut st, &mut taken, RUN_HEADROOM + 4) {
        return;
    }
    for want in [4, 1] {
        let Some(id3) = submit_read_run(&mut st, n) else {
            kunit_expect!(false, "submit failed");
            return;
        };
        let len = st.next_request(&mut out).unwrap_or(0);
        match Request::decode(&out[..len]) {
            Ok((_, Request::Read { count, .. })) => kunit_expect_eq!(count, want),
            other => kunit_expect!(false, "read request: {:?}", other),
        }
        let _ = st.finish(id3);
        st.slots.adopt_late(id3);
        // Then with headroom only.
        if !take_slots_until(&mut st, &mut taken, RUN_HEADROOM) {
            return;
        }
    }
    for s in taken.iter() {
        let _ = st.slots.release(*s, 999);
    }
    kunit_expect_eq!(st.slots.free(), free);
}

fn transport_unsent_slot_freed() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let free = st.slots.free();
    let Some(id) = submit_read(&mut st) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    kunit_expect_eq!(st.slots.free(), free - 1);
    // The caller times out before the manager reads the request: the slot
    // is free at once, and the manager is never handed the stale request.
    let _ = st.table.fail(id, abi::errno::ETIMEDOUT);
    let _ = st.finish(id);
    kunit_expect_eq!(st.slots.free(), free);
    let mut out = [0u8; abi::MSG_MAX];
    kunit_expect_eq!(st.next_request(&mut out), None);
}

/// A request the manager's `read(2)` took but could not copy out (a bad
/// buffer) is failed; the manager never saw it, so its pool slot must come
/// back when its caller finishes, not stay lent for good.
fn transport_failed_copy_frees_slot() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let free = st.slots.free();
    let Some(id) = submit_read(&mut st) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    let mut out = [0u8; abi::MSG_MAX];
    let n = st.next_request(&mut out).unwrap_or(0);
    kunit_expect!(n > 0);
    st.fail_request(&out[..n]);
    let (_, outcome, _) = st.finish(id);
    kunit_expect_eq!(outcome, Some(Outcome::Failed(abi::errno::EIO)));
    kunit_expect_eq!(st.slots.free(), free);
}

/// The same, when the caller gave up between the manager's `read(2)`
/// taking the request and the copy failing: the slot the caller left with
/// the manager comes back too (the manager never saw the request, so no
/// late reply will free it).
fn transport_failed_copy_after_caller_left() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let free = st.slots.free();
    let Some(id) = submit_read(&mut st) else {
        kunit_expect!(false, "submit failed");
        return;
    };
    let mut out = [0u8; abi::MSG_MAX];
    let n = st.next_request(&mut out).unwrap_or(0);
    kunit_expect!(n > 0);
    let _ = st.finish(id);
    kunit_expect_eq!(st.slots.free(), free - 1);
    st.fail_request(&out[..n]);
    kunit_expect_eq!(st.slots.free(), free);
}

kunit_module_suite!(
    wfs_upcall_slots,
    [
        transport_page_slots,
        transport_page_runs,
        transport_unsent_slot_freed,
        transport_failed_copy_frees_slot,
        transport_failed_copy_after_caller_left
    ]
);

/// Calls that end before the manager reads them (time-out, fatal signal)
/// must not leave their ids queued: after a stall with the table full and
/// some callers gone, every live request reaches the manager.
fn outbox_stall_keeps_live_requests() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let mut ids = KVec::new();
    for i in 0..MAX_INFLIGHT as u64 {
        match submit(&mut st, Request::Getattr { file: i }) {
            Some(id) => {
                let _ = ids.push(id, GFP_KERNEL);
            }
            None => kunit_expect!(false, "submit {} failed", i),
        }
    }
    kunit_expect!(submit(&mut st, Request::Getattr { file: 999 }).is_none());
    kunit_expect_eq!(st.queued(), MAX_INFLIGHT);
    // Ten callers give up before the manager reads anything: five time
    // out, five are killed (their calls are cancelled).
    for (k, &id) in ids.iter().take(10).enumerate() {
        if k % 2 == 0 {
            let _ = st.table.fail(id, abi::errno::ETIMEDOUT);
        }
        let _ = st.finish(id);
    }
    kunit_expect_eq!(st.queued(), MAX_INFLIGHT - 10);
    // Ten new callers take their places.
    for i in 0..10u64 {
        kunit_expect!(submit(&mut st, Request::Getattr { file: 1000 + i }).is_some());
    }
    kunit_expect_eq!(st.queued(), MAX_INFLIGHT);
    // The manager resumes: it is handed every live request, in order.
    let mut out = [0u8; abi::MSG_MAX];
    let mut files = KVec::new();
    while let Some(n) = st.next_request(&mut out) {
        if let Ok((_, Request::Getattr { file })) = Request::decode(&out[..n]) {
            let _ = files.push(file, GFP_KERNEL);
        }
    }
    kunit_expect_eq!(files.len(), MAX_INFLIGHT);
    kunit_expect_eq!(files.first().copied(), Some(10));
    kunit_expect_eq!(files.last().copied(), Some(1009));
    kunit_expect_eq!(st.queued(), 0);
}

/// A manager error at or past 512 (`ERESTARTSYS`, `EIOCBQUEUED`, ...) is
/// refused as malformed and the call stays pending; 1..=511 completes it.
fn transport_reply_errno_range() {
    let Ok(mut st) = registered() else {
        kunit_expect!(false, "out of memory");
        return;
    };
    let id = submit(&mut st, Request::Getattr { file: 3 }).unwrap_or(0);
    let mut out = [0u8; abi::MSG_MAX];
    kunit_expect!(st.next_request(&mut out).is_some());
    let mut rb = [0u8; abi::MSG_MAX];
    for bad in [512u32, 529, 4095] {
        // Built by hand: the encoder refuses these.
        let rn = reply_bytes(
            Reply {
                id,
                op: Opcode::Getattr,
                error: 5,
                body: None,
            },
            &mut rb,
        );
        rb[abi::HEADER_LEN..abi::HEADER_LEN + 4].copy_from_slice(&bad.to_le_bytes());
        kunit_expect_eq!(st.accept_reply(&rb[..rn]), Err(ReplyError::Malformed));
        kunit_expect!(st.table.is_pending(id));
    }
    let rn = reply_bytes(
        Reply {
            id,
            op: Opcode::Getattr,
            error: abi::MAX_REPLY_ERRNO,
            body: None,
        },
        &mut rb,
    );
    kunit_expect_eq!(st.accept_reply(&rb[..rn]), Ok(()));
}

kunit_module_suite!(
    wfs_upcall_outbox,
    [
        outbox_stall_keeps_live_requests,
        transport_reply_errno_range
    ]
);

// ---------------------------------------------------------------------------
// The open files and the session that counts them
// ---------------------------------------------------------------------------

fn open_here(o: &mut OpenFiles, file: u64, session: u64) -> bool {
    match OpenFiles::room() {
        Ok(room) => o.opened(file, session, room),
        Err(_) => {
            kunit_expect!(false, "out of memory");
            false
        }
    }
}

fn listed(o: &mut OpenFiles, session: u64) -> KVVec<abi::OpenEntry> {
    let mut out = KVVec::new();
    if out.reserve(o.count(), GFP_KERNEL).is_err() {
        kunit_expect!(false, "out of memory");
    }
    kunit_expect_eq!(o.list(session, &mut out), Ok(()));
    out
}

fn opens_adopted_by_a_listing() {
    let mut o = OpenFiles::new();
    // Session 3 answered two opens of file 7, one of file 9; one open of
    // file 8 had no manager (session 0).
    kunit_expect!(open_here(&mut o, 7, 3));
    kunit_expect!(open_here(&mut o, 7, 3));
    kunit_expect!(open_here(&mut o, 9, 3));
    kunit_expect!(open_here(&mut o, 8, 0));
    kunit_expect_eq!(o.count(), 3);
    // Before any listing, a release names the open's own session (0: none).
    kunit_expect_eq!(o.released(9, 3), 3);
    kunit_expect_eq!(o.count(), 2);
    // Too little room: nothing listed, nothing adopted.
    let mut small = KVVec::new();
    kunit_expect_eq!(o.list(5, &mut small), Err(E2BIG));
    kunit_expect_eq!(o.released(7, 3), 3);
    kunit_expect!(open_here(&mut o, 7, 3));
    // Session 5 lists them: file 7 twice, file 8 once, in file order.
    let l = listed(&mut o, 5);
    kunit_expect_eq!(
        l.as_slice(),
        &[
            abi::OpenEntry { file: 7, count: 2 },
            abi::OpenEntry { file: 8, count: 1 }
        ][..]
    );
    // Their releases name session 5 now, whoever answered their OPEN.
    kunit_expect_eq!(o.released(7, 3), 5);
    kunit_expect_eq!(o.released(8, 0), 5);
    // An OPEN session 3 answered after 5 listed is not counted (5 never
    // heard of it): it must be asked again; one 5 answered is.
    kunit_expect!(!open_here(&mut o, 9, 3));
    kunit_expect!(open_here(&mut o, 9, 5));
    kunit_expect_eq!(o.released(9, 5), 5);
    kunit_expect_eq!(o.released(7, 3), 5);
    kunit_expect_eq!(o.count(), 0);
    // A release of a file never counted changes nothing.
    kunit_expect_eq!(o.released(11, 0), 5);
    kunit_expect_eq!(o.count(), 0);
}

kunit_module_suite!(wfs_upcall_opens, [opens_adopted_by_a_listing]);
