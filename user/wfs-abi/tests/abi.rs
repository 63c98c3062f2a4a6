//! Tests of the shared upcall ABI (`rust/upcall/abi.rs`).
//!
//! Malformed messages are built by hand, byte by byte, so that these tests do
//! not depend on the encoders they check.

use wfs_abi::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A raw header: len, opcode, flags, id, all little-endian.
fn hdr(len: u32, opcode: u16, flags: u16, id: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&opcode.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&id.to_le_bytes());
    v
}

/// A raw message: header with the right length plus `body`.
fn msg(opcode: u16, id: u64, body: &[u8]) -> Vec<u8> {
    let mut v = hdr((HEADER_LEN + body.len()) as u32, opcode, 0, id);
    v.extend_from_slice(body);
    v
}

fn enc_req(r: &Request<'_>, id: u64) -> Vec<u8> {
    let mut b = [0u8; MSG_MAX];
    let n = r.encode(id, &mut b).expect("encode request");
    assert_eq!(n, r.encoded_len());
    b[..n].to_vec()
}

fn enc_reply(r: &Reply<'_>) -> Vec<u8> {
    let mut b = [0u8; MSG_MAX];
    let n = r.encode(&mut b).expect("encode reply");
    b[..n].to_vec()
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}
fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn all_requests() -> Vec<Request<'static>> {
    vec![
        Request::Lookup { name: b"file.txt" },
        Request::Lookup { name: b"x" },
        Request::Lookup {
            name: &[b'n'; NAME_MAX],
        },
        Request::Getattr { file: 42 },
        Request::Getattr { file: u64::MAX },
        Request::Readdir { cookie: 0 },
        Request::Readdir { cookie: 7 },
        Request::Read {
            file: 1,
            index: 2,
            count: 1,
            slot: 3,
        },
        Request::Read {
            file: u64::MAX,
            index: u64::MAX - 1,
            count: READ_RUN_MAX,
            slot: u32::MAX,
        },
        Request::Read {
            file: 4,
            index: 0,
            count: 7,
            slot: 100,
        },
        Request::Write {
            file: 9,
            index: 8,
            count: 1,
            slot: 0,
        },
        Request::Upgrade {
            file: 5,
            index: 1 << 40,
        },
        Request::View {
            file: 6,
            index: 3,
            count: 1,
            slot: 2,
        },
        Request::Write {
            file: u64::MAX,
            index: u64::MAX,
            count: 1,
            slot: u32::MAX,
        },
        Request::Lock(lock_args()),
        Request::Lock(LockArgs {
            kind: LockKind::Flock,
            cmd: LockCmd::Wait,
            mode: LockMode::Write,
            start: 0,
            end: LOCK_END_MAX,
            ..lock_args()
        }),
        Request::Lock(LockArgs {
            kind: LockKind::Ofd,
            cmd: LockCmd::Get,
            mode: LockMode::Read,
            start: 7,
            end: 7,
            ..lock_args()
        }),
        Request::Setsize {
            file: 11,
            size: 0,
            grow: false,
        },
        Request::Setsize {
            file: u64::MAX,
            size: SIZE_MAX,
            grow: true,
        },
        Request::Setsize {
            file: 12,
            size: 4097,
            grow: true,
        },
        Request::Create {
            name: b"x.db-journal",
            mode: 0o644,
            excl: false,
            uid: 0,
            gid: 0,
        },
        Request::Create {
            name: &[b'c'; NAME_MAX],
            mode: 0o7777,
            excl: true,
            uid: u32::MAX - 1,
            gid: 65534,
        },
        Request::Unlink {
            file: 13,
            name: b"x.db-journal",
        },
        Request::Rename {
            file: 14,
            target: 0,
            noreplace: false,
            from: b"x.tmp",
            to: b"x",
        },
        Request::Rename {
            file: u64::MAX,
            target: 15,
            noreplace: true,
            from: &[b'f'; NAME_MAX],
            to: &[b't'; NAME_MAX],
        },
        Request::Open { file: 16 },
        Request::Release {
            file: u64::MAX,
            session: 17,
        },
        Request::Settimes {
            file: 18,
            sec: i64::MIN,
            nsec: NSEC_MAX,
        },
    ]
}

fn lock_args() -> LockArgs {
    LockArgs {
        file: 0x0102_0304_0506_0708,
        owner: u64::MAX - 3,
        start: 100,
        end: 199,
        pid: 4242,
        wait_ms: 7000,
        kind: LockKind::Posix,
        cmd: LockCmd::Set,
        mode: LockMode::Unlock,
    }
}

fn all_ok_replies() -> Vec<Reply<'static>> {
    let attr = Attr {
        file: 0x1122_3344_5566_7788,
        size: 12345,
        mode: 0o644,
        mtime: Time {
            sec: 1_764_000_000,
            nsec: 999_999_999,
        },
        ctime: Time { sec: -2, nsec: 5 },
        uid: 65534,
        gid: 100,
        root_squash: true,
    };
    vec![
        Reply {
            id: 1,
            op: Opcode::Lookup,
            error: 0,
            body: Some(ReplyBody::Attr(attr)),
        },
        Reply {
            id: 2,
            op: Opcode::Getattr,
            error: 0,
            body: Some(ReplyBody::Attr(Attr::default())),
        },
        Reply {
            id: 3,
            op: Opcode::Readdir,
            error: 0,
            body: Some(ReplyBody::Dirent {
                next: 4,
                file: 77,
                name: b"some-name",
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
            op: Opcode::Readdir,
            error: 0,
            body: Some(ReplyBody::Dirent {
                next: 9,
                file: 1,
                name: &[b'z'; NAME_MAX],
            }),
        },
        Reply {
            id: 6,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant: Grant::ReadOnly,
                pages: 1,
                ahead: 0,
            }),
        },
        Reply {
            id: 7,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant: Grant::ReadWrite,
                pages: READ_RUN_MAX,
                ahead: 5,
            }),
        },
        Reply {
            id: 8,
            op: Opcode::Upgrade,
            error: 0,
            body: Some(ReplyBody::Grant(Grant::ReadWrite)),
        },
        Reply {
            id: 9,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Pages {
                grant: Grant::Dirty,
                pages: 3,
                ahead: u32::MAX,
            }),
        },
        Reply {
            id: 10,
            op: Opcode::Upgrade,
            error: 0,
            body: Some(ReplyBody::Grant(Grant::Refault)),
        },
        Reply {
            id: u64::MAX,
            op: Opcode::Write,
            error: 0,
            body: Some(ReplyBody::Done),
        },
        Reply {
            id: 12,
            op: Opcode::View,
            error: 0,
            body: Some(ReplyBody::Grant(Grant::ReadOnly)),
        },
        Reply {
            id: 13,
            op: Opcode::Upgrade,
            error: 0,
            body: Some(ReplyBody::Grant(Grant::Dirty)),
        },
        Reply {
            id: 14,
            op: Opcode::Lock,
            error: 0,
            body: Some(ReplyBody::Done),
        },
        Reply {
            id: 15,
            op: Opcode::Lock,
            error: 0,
            body: Some(ReplyBody::Lock(LockInfo::NONE)),
        },
        Reply {
            id: 16,
            op: Opcode::Lock,
            error: 0,
            body: Some(ReplyBody::Lock(LockInfo {
                mode: LockMode::Write,
                start: 0,
                end: LOCK_END_MAX,
                pid: -77,
            })),
        },
        Reply {
            id: 17,
            op: Opcode::Setsize,
            error: 0,
            body: Some(ReplyBody::Done),
        },
    ]
}

#[test]
fn a_view_is_answered_read_only() {
    for g in [2u32, 3, 4] {
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le32(g));
        assert_eq!(
            Reply::decode(&msg(0x8007, 1, &body)),
            Err(DecodeError::BadField),
            "grant {g}"
        );
        let grant = [Grant::ReadWrite, Grant::Dirty, Grant::Refault][g as usize - 2];
        let r = Reply {
            id: 1,
            op: Opcode::View,
            error: 0,
            body: Some(ReplyBody::Grant(grant)),
        };
        assert_eq!(r.encode(&mut [0u8; MSG_MAX]), Err(DecodeError::BadField));
    }
}

const ALL_OPS: [Opcode; 15] = [
    Opcode::Lookup,
    Opcode::Getattr,
    Opcode::Readdir,
    Opcode::Read,
    Opcode::Write,
    Opcode::Upgrade,
    Opcode::View,
    Opcode::Lock,
    Opcode::Setsize,
    Opcode::Create,
    Opcode::Unlink,
    Opcode::Rename,
    Opcode::Open,
    Opcode::Release,
    Opcode::Settimes,
];

// ---------------------------------------------------------------------------
// Constants and ioctl numbers
// ---------------------------------------------------------------------------

#[test]
fn constants() {
    assert_eq!(ABI_VERSION, 16);
    assert_eq!(LOCK_END_MAX, i64::MAX as u64);
    assert_eq!(SIZE_MAX, i64::MAX as u64);
    assert_eq!(Size::LEN, 24);
    assert_eq!(READ_RUN_MAX, 16);
    assert_eq!(Grant::Dirty as u32, 3);
    assert_eq!(Grant::Refault as u32, 4);
    assert_eq!(SCRATCH_SLOTS, 8);
    assert_eq!(NO_SLOT, u32::MAX);
    assert_eq!((inval::DROP, inval::DOWNGRADE), (1, 2));
    assert_eq!(
        [
            page_flags::PRESENT,
            page_flags::DIRTY,
            page_flags::WRITABLE,
            page_flags::CONTENTS
        ],
        [1, 2, 4, 8]
    );
    assert_eq!(Invalidate::LEN, 32);
    assert_eq!(Forget::LEN, 264);
    assert_eq!(&REGISTER_MAGIC.to_be_bytes(), b"WFS1");
    assert_eq!(PAGE_SIZE, 4096);
    assert_eq!(NAME_MAX, 255);
    assert_eq!(HEADER_LEN, 16);
    assert_eq!(MSG_MAX, 16 + 64 + 2 * 255);
    assert_eq!(REPLY_BIT, 0x8000);
    assert_eq!(IOC_MAGIC, b'W');
    assert_eq!(Register::LEN, 32);
    assert_eq!(Status::LEN, 32);
}

/// Linux's asm-generic `_IOC` computed from scratch: dir in bits 30..31,
/// size in bits 16..29, type in 8..15, nr in 0..7.
fn linux_ioc(dir: u32, ty: u8, nr: u8, size: u32) -> u32 {
    assert!(size < (1 << 14));
    (dir << 30) | (size << 16) | ((ty as u32) << 8) | nr as u32
}
const LINUX_IOC_WRITE: u32 = 1;
const LINUX_IOC_READ: u32 = 2;

#[test]
fn ioctl_numbers() {
    assert_eq!(IOC_REGISTER, 0xC020_5701);
    assert_eq!(IOC_STATUS, 0x8020_5702);
    assert_eq!(
        IOC_REGISTER,
        linux_ioc(LINUX_IOC_READ | LINUX_IOC_WRITE, b'W', 1, 32)
    );
    assert_eq!(IOC_STATUS, linux_ioc(LINUX_IOC_READ, b'W', 2, 32));
    // The sizes in the numbers are the encoded block sizes.
    assert_eq!((IOC_REGISTER >> 16) & 0x3fff, Register::LEN as u32);
    assert_eq!((IOC_STATUS >> 16) & 0x3fff, Status::LEN as u32);
    // Register is read+write, status read-only (from the caller's view).
    assert_eq!(IOC_REGISTER >> 30, 3);
    assert_eq!(IOC_STATUS >> 30, 2);
    assert_eq!(
        IOC_INVALIDATE,
        linux_ioc(LINUX_IOC_READ | LINUX_IOC_WRITE, b'W', 3, 32)
    );
    assert_eq!(IOC_FORGET, linux_ioc(LINUX_IOC_WRITE, b'W', 4, 264));
    assert_eq!(IOC_SIZE, linux_ioc(LINUX_IOC_WRITE, b'W', 5, 24));
    assert_eq!(IOC_SIZE, 0x4018_5705);
    assert_eq!(
        IOC_OPENS,
        linux_ioc(LINUX_IOC_READ | LINUX_IOC_WRITE, b'W', 6, 16)
    );
    assert_eq!(IOC_OPENS, 0xc010_5706);
}

#[test]
fn invalidate_block() {
    let inv = Invalidate {
        file: 0x0102_0304_0506_0708,
        index: 9,
        mode: inval::DOWNGRADE,
        slot: 70,
        flags: page_flags::PRESENT | page_flags::DIRTY,
        reserved: 0,
    };
    let mut b = [0u8; Invalidate::LEN];
    inv.encode(&mut b);
    assert_eq!(&b[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&b[16..24], &[2, 0, 0, 0, 70, 0, 0, 0]);
    assert_eq!(Invalidate::decode(&b), Ok(inv));
    assert_eq!(Invalidate::decode(&b[..31]), Err(DecodeError::Short));
}

#[test]
fn size_block() {
    let s = Size {
        file: 0x0102_0304_0506_0708,
        size: 0x1_0000_0001,
        cut: false,
    };
    let mut b = [0xffu8; Size::LEN];
    s.encode(&mut b);
    assert_eq!(&b[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&b[8..16], &[1, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&b[16..], &[0; 8]);
    assert_eq!(Size::decode(&b), Ok(s));
    assert_eq!(Size::decode(&b[..23]), Err(DecodeError::Short));
    // A cut: flag 1.
    let cut = Size { cut: true, ..s };
    cut.encode(&mut b);
    assert_eq!(&b[16..], &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Size::decode(&b), Ok(cut));
    // An unknown flag, or a reserved field that is not zero: refused.
    b[16] = 2;
    assert_eq!(Size::decode(&b), Err(DecodeError::BadField));
    b[16] = 1;
    b[20] = 1;
    assert_eq!(Size::decode(&b), Err(DecodeError::BadField));
    let largest = Size {
        file: 1,
        size: SIZE_MAX,
        cut: false,
    };
    largest.encode(&mut b);
    assert_eq!(Size::decode(&b), Ok(largest));
    // A size past the kernel's largest file is refused.
    b[8..16].copy_from_slice(&le64(SIZE_MAX + 1));
    assert_eq!(Size::decode(&b), Err(DecodeError::BadField));
    b[8..16].copy_from_slice(&le64(u64::MAX));
    assert_eq!(Size::decode(&b), Err(DecodeError::BadField));
}

#[test]
fn forget_block() {
    let mut b = [0xffu8; Forget::LEN];
    Forget::encode(b"some file", &mut b).unwrap();
    assert_eq!(&b[..8], &[9, 0, 0, 0, 0, 0, 0, 0]);
    assert!(b[17..].iter().all(|&c| c == 0));
    assert_eq!(Forget::decode(&b), Ok(&b"some file"[..]));
    assert_eq!(Forget::decode(&b[..263]), Err(DecodeError::Short));
    let long = [b'x'; NAME_MAX + 1];
    assert_eq!(Forget::encode(&long, &mut b), Err(DecodeError::BadField));
    Forget::encode(&long[..NAME_MAX], &mut b).unwrap();
    assert_eq!(Forget::decode(&b), Ok(&long[..NAME_MAX]));
    // Bad names, lengths and reserved bits are refused.
    for name in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        Forget::encode(name, &mut b).unwrap();
        assert_eq!(Forget::decode(&b), Err(DecodeError::BadName), "{name:?}");
    }
    Forget::encode(b"ok", &mut b).unwrap();
    b[0] = 0;
    b[1] = 1; // 256 bytes
    assert_eq!(Forget::decode(&b), Err(DecodeError::BadField));
    Forget::encode(b"ok", &mut b).unwrap();
    b[4] = 1;
    assert_eq!(Forget::decode(&b), Err(DecodeError::BadField));
}

// ---------------------------------------------------------------------------
// REGISTER / STATUS blocks
// ---------------------------------------------------------------------------

#[test]
fn register_request_defaults() {
    let r = Register::request();
    assert_eq!(r.magic, REGISTER_MAGIC);
    assert_eq!(r.abi_version, ABI_VERSION);
    assert_eq!(r.flags, 0);
    assert_eq!(r.max_inflight, 0);
    assert_eq!(r.pool_slots, 0);
    assert_eq!(r.timeout_ms, 0);
    assert_eq!(r.session, 0);
    let mut b = [0xffu8; Register::LEN];
    r.encode(&mut b);
    let mut want = Vec::new();
    want.extend_from_slice(&le32(0x5746_5331));
    want.extend_from_slice(&le32(16));
    want.extend_from_slice(&[0u8; 24]);
    assert_eq!(&b[..], &want[..]);
}

#[test]
fn register_round_trip_and_layout() {
    let r = Register {
        magic: 0x0102_0304,
        abi_version: 0x0506_0708,
        flags: 0x090a_0b0c,
        max_inflight: 64,
        pool_slots: 1024,
        timeout_ms: 30_000,
        session: 0x1122_3344_5566_7788,
    };
    let mut b = [0u8; Register::LEN];
    r.encode(&mut b);
    assert_eq!(&b[0..4], &[4, 3, 2, 1]);
    assert_eq!(&b[4..8], &[8, 7, 6, 5]);
    assert_eq!(&b[8..12], &[0x0c, 0x0b, 0x0a, 0x09]);
    assert_eq!(&b[12..16], &le32(64));
    assert_eq!(&b[16..20], &le32(1024));
    assert_eq!(&b[20..24], &le32(30_000));
    assert_eq!(&b[24..32], &le64(0x1122_3344_5566_7788));
    assert_eq!(Register::decode(&b), Ok(r));
    // A longer buffer decodes its first 32 bytes.
    let mut long = b.to_vec();
    long.extend_from_slice(&[0xee; 8]);
    assert_eq!(Register::decode(&long), Ok(r));
}

#[test]
fn register_short() {
    let b = [0u8; Register::LEN];
    for n in 0..Register::LEN {
        assert_eq!(
            Register::decode(&b[..n]),
            Err(DecodeError::Short),
            "len {n}"
        );
    }
}

#[test]
fn status_round_trip_and_layout() {
    let s = Status {
        abi_version: 1,
        registered: 1,
        manager_pid: 4321,
        inflight: 3,
        session: 99,
        mounts: 2,
        pool_free: 0,
    };
    let mut b = [0u8; Status::LEN];
    s.encode(&mut b);
    assert_eq!(&b[0..4], &le32(1));
    assert_eq!(&b[4..8], &le32(1));
    assert_eq!(&b[8..12], &le32(4321));
    assert_eq!(&b[12..16], &le32(3));
    assert_eq!(&b[16..24], &le64(99));
    assert_eq!(&b[24..28], &le32(2));
    assert_eq!(&b[28..32], &le32(0));
    assert_eq!(Status::decode(&b), Ok(s));
    assert_eq!(Status::decode(&[0u8; 32]), Ok(Status::default()));
    for n in 0..Status::LEN {
        assert_eq!(Status::decode(&b[..n]), Err(DecodeError::Short), "len {n}");
    }
}

// ---------------------------------------------------------------------------
// Names, opcodes, errors
// ---------------------------------------------------------------------------

#[test]
fn names() {
    assert!(valid_name(b"a"));
    assert!(valid_name(b"..."));
    assert!(valid_name(b".hidden"));
    assert!(valid_name(b"with space"));
    assert!(valid_name(&[b'x'; NAME_MAX]));
    assert!(valid_name("ünïcödé".as_bytes()));
    assert!(!valid_name(b""));
    assert!(!valid_name(b"."));
    assert!(!valid_name(b".."));
    assert!(!valid_name(b"a/b"));
    assert!(!valid_name(b"/"));
    assert!(!valid_name(b"a\0b"));
    assert!(!valid_name(&[b'x'; NAME_MAX + 1]));
}

#[test]
fn opcodes() {
    for (i, op) in ALL_OPS.iter().enumerate() {
        assert_eq!(*op as u16, i as u16 + 1);
        assert_eq!(Opcode::from_u16(i as u16 + 1), Ok(*op));
    }
    for bad in [0u16, 16, 17, 0xff, 0x8001, 0xffff] {
        assert_eq!(Opcode::from_u16(bad), Err(DecodeError::UnknownOpcode(bad)));
    }
}

#[test]
fn decode_error_errnos() {
    assert_eq!(DecodeError::Short.errno(), errno::EINVAL);
    assert_eq!(DecodeError::BadLength.errno(), errno::EINVAL);
    assert_eq!(DecodeError::UnknownOpcode(9).errno(), errno::EINVAL);
    assert_eq!(DecodeError::BadMagic.errno(), errno::EPROTO);
    assert_eq!(DecodeError::BadName.errno(), errno::EINVAL);
    assert_eq!(DecodeError::BadField.errno(), errno::EINVAL);
}

#[test]
fn errno_values_match_linux() {
    assert_eq!(errno::EPERM, 1);
    assert_eq!(errno::ENOENT, 2);
    assert_eq!(errno::EIO, 5);
    assert_eq!(errno::EBUSY, 16);
    assert_eq!(errno::EINVAL, 22);
    assert_eq!(errno::EFBIG, 27);
    assert_eq!(errno::EAGAIN, 11);
    assert_eq!(errno::EDEADLK, 35);
    assert_eq!(errno::ENAMETOOLONG, 36);
    assert_eq!(errno::ENOLCK, 37);
    assert_eq!(errno::ENOSYS, 38);
    assert_eq!(errno::EPROTO, 71);
    assert_eq!(errno::EOPNOTSUPP, 95);
    assert_eq!(errno::ETIMEDOUT, 110);
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

#[test]
fn header_decode() {
    let b = msg(3, 0xdead_beef, &le64(5));
    let h = Header::decode(&b).unwrap();
    assert_eq!(
        h,
        Header {
            len: 24,
            opcode: 3,
            flags: 0,
            id: 0xdead_beef
        }
    );
    // Short.
    for n in 0..HEADER_LEN {
        assert_eq!(Header::decode(&b[..n]), Err(DecodeError::Short), "len {n}");
    }
    // len disagrees with buffer.
    let mut bad = b.clone();
    bad[0] = 23;
    assert_eq!(Header::decode(&bad), Err(DecodeError::BadLength));
    bad[0] = 25;
    assert_eq!(Header::decode(&bad), Err(DecodeError::BadLength));
    // len below the header size.
    let tiny = hdr(8, 1, 0, 0);
    assert_eq!(Header::decode(&tiny), Err(DecodeError::BadLength));
    // len above MSG_MAX, even if the buffer matches.
    let mut big = hdr((MSG_MAX + 1) as u32, 1, 0, 0);
    big.resize(MSG_MAX + 1, 0);
    assert_eq!(Header::decode(&big), Err(DecodeError::BadLength));
    // Exactly MSG_MAX is fine for the header.
    let mut max = hdr(MSG_MAX as u32, 1, 0, 0);
    max.resize(MSG_MAX, 0);
    assert!(Header::decode(&max).is_ok());
    // Flags must be zero.
    let mut fl = hdr(16, 2, 1, 0);
    assert_eq!(Header::decode(&fl), Err(DecodeError::BadField));
    fl = hdr(16, 2, 0x8000, 0);
    assert_eq!(Header::decode(&fl), Err(DecodeError::BadField));
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[test]
fn request_round_trip_every_variant() {
    for (i, r) in all_requests().iter().enumerate() {
        let id = 1000 + i as u64;
        let b = enc_req(r, id);
        let h = Header::decode(&b).unwrap();
        assert_eq!(h.len as usize, b.len());
        assert_eq!(h.opcode, r.opcode() as u16);
        assert_eq!(h.id, id);
        assert_eq!(Request::decode(&b), Ok((id, *r)), "{r:?}");
    }
}

#[test]
fn request_layouts() {
    assert_eq!(
        enc_req(&Request::Lookup { name: b"ab" }, 5),
        msg(1, 5, &[2, 0, b'a', b'b'])
    );
    assert_eq!(
        enc_req(&Request::Getattr { file: 0x0102 }, 6),
        msg(2, 6, &le64(0x0102))
    );
    assert_eq!(
        enc_req(&Request::Readdir { cookie: 3 }, 7),
        msg(3, 7, &le64(3))
    );
    let rw = |file: u64, index: u64, count: u32, slot: u32| {
        let mut v = Vec::new();
        v.extend_from_slice(&le64(file));
        v.extend_from_slice(&le64(index));
        v.extend_from_slice(&le32(count));
        v.extend_from_slice(&le32(slot));
        v
    };
    assert_eq!(
        enc_req(
            &Request::Read {
                file: 1,
                index: 2,
                count: 3,
                slot: 4
            },
            8
        ),
        msg(4, 8, &rw(1, 2, 3, 4))
    );
    assert_eq!(
        enc_req(
            &Request::Read {
                file: 1,
                index: 2,
                count: READ_RUN_MAX,
                slot: 4
            },
            8
        ),
        msg(4, 8, &rw(1, 2, 16, 4))
    );
    assert_eq!(
        enc_req(
            &Request::Write {
                file: 5,
                index: 6,
                count: 1,
                slot: 8
            },
            9
        ),
        msg(5, 9, &rw(5, 6, 1, 8))
    );
    assert_eq!(
        enc_req(
            &Request::View {
                file: 12,
                index: 13,
                count: 1,
                slot: 14
            },
            11
        ),
        msg(7, 11, &rw(12, 13, 1, 14))
    );
    let mut up = le64(10).to_vec();
    up.extend_from_slice(&le64(11));
    assert_eq!(
        enc_req(
            &Request::Upgrade {
                file: 10,
                index: 11
            },
            10
        ),
        msg(6, 10, &up)
    );
    for grow in [false, true] {
        let mut size = le64(0x0a0b).to_vec();
        size.extend_from_slice(&le64(SIZE_MAX));
        size.extend_from_slice(&le32(u32::from(grow)));
        size.extend_from_slice(&le32(0));
        assert_eq!(
            enc_req(
                &Request::Setsize {
                    file: 0x0a0b,
                    size: SIZE_MAX,
                    grow
                },
                12
            ),
            msg(9, 12, &size)
        );
    }
}

#[test]
fn a_size_past_the_largest_file_is_refused() {
    let mut b = [0xAAu8; MSG_MAX];
    let body = |size: u64, grow: u32, pad: u32| {
        let mut body = le64(1).to_vec();
        body.extend_from_slice(&le64(size));
        body.extend_from_slice(&le32(grow));
        body.extend_from_slice(&le32(pad));
        msg(9, 1, &body)
    };
    for size in [SIZE_MAX + 1, u64::MAX] {
        let grow = true;
        assert_eq!(
            Request::Setsize {
                file: 1,
                size,
                grow
            }
            .encode(1, &mut b),
            Err(DecodeError::BadField),
            "{size}"
        );
        assert_eq!(
            Request::decode(&body(size, 1, 0)),
            Err(DecodeError::BadField),
            "{size}"
        );
    }
    assert!(b.iter().all(|&x| x == 0xAA), "a refused encode wrote");
    // The intent is 0 (exactly) or 1 (at least); the padding is zero.
    assert!(Request::decode(&body(1, 0, 0)).is_ok());
    for (grow, pad) in [(2, 0), (u32::MAX, 0), (0, 1), (1, 0x100)] {
        assert_eq!(
            Request::decode(&body(1, grow, pad)),
            Err(DecodeError::BadField),
            "{grow} {pad}"
        );
    }
    // SETSIZE is answered Done or an errno: no other body.
    for body in [
        ReplyBody::Attr(Attr::default()),
        ReplyBody::Grant(Grant::ReadWrite),
        ReplyBody::Lock(LockInfo::NONE),
    ] {
        let r = Reply {
            id: 1,
            op: Opcode::Setsize,
            error: 0,
            body: Some(body),
        };
        assert_eq!(r.encode(&mut b), Err(DecodeError::BadField), "{body:?}");
    }
    // A Done with bytes after it is refused.
    assert_eq!(
        Reply::decode(&msg(0x8009, 1, &[0, 0, 0, 0, 0])),
        Err(DecodeError::BadLength)
    );
    assert_eq!(
        Reply::decode(&msg(0x8009, 1, &[0, 0, 0, 0])),
        Ok(Reply {
            id: 1,
            op: Opcode::Setsize,
            error: 0,
            body: Some(ReplyBody::Done)
        })
    );
}

#[test]
fn request_encoded_len() {
    assert_eq!(Request::Lookup { name: b"abc" }.encoded_len(), 16 + 2 + 3);
    assert_eq!(Request::Getattr { file: 0 }.encoded_len(), 24);
    assert_eq!(Request::Readdir { cookie: 0 }.encoded_len(), 24);
    let rw = Request::Read {
        file: 0,
        index: 0,
        count: 1,
        slot: 0,
    };
    assert_eq!(rw.encoded_len(), 40);
    let run = Request::Read {
        file: 0,
        index: 0,
        count: READ_RUN_MAX,
        slot: 0,
    };
    assert_eq!(run.encoded_len(), 40);
    let w = Request::Write {
        file: 0,
        index: 0,
        count: 1,
        slot: 0,
    };
    assert_eq!(w.encoded_len(), 40);
    let v = Request::View {
        file: 0,
        index: 0,
        count: 1,
        slot: 0,
    };
    assert_eq!(v.encoded_len(), 40);
    assert_eq!(Request::Upgrade { file: 0, index: 0 }.encoded_len(), 32);
    let set = Request::Setsize {
        file: 0,
        size: 0,
        grow: true,
    };
    assert_eq!(set.encoded_len(), 40);
    assert_eq!(Request::Lock(lock_args()).encoded_len(), 60);
}

#[test]
fn lock_layout() {
    let a = LockArgs {
        kind: LockKind::Ofd,
        cmd: LockCmd::Wait,
        mode: LockMode::Read,
        ..lock_args()
    };
    let mut body = Vec::new();
    body.extend_from_slice(&le64(a.file));
    body.extend_from_slice(&le64(a.owner));
    body.extend_from_slice(&le64(100));
    body.extend_from_slice(&le64(199));
    body.extend_from_slice(&le32(4242));
    body.extend_from_slice(&le32(7000));
    body.extend_from_slice(&[2, 3, 1, 0]);
    assert_eq!(enc_req(&Request::Lock(a), 9), msg(8, 9, &body));
    let info = LockInfo {
        mode: LockMode::Read,
        start: 5,
        end: 6,
        pid: -1,
    };
    let r = Reply {
        id: 9,
        op: Opcode::Lock,
        error: 0,
        body: Some(ReplyBody::Lock(info)),
    };
    let mut want = Vec::new();
    want.extend_from_slice(&le32(0));
    want.extend_from_slice(&le64(5));
    want.extend_from_slice(&le64(6));
    want.extend_from_slice(&le32(u32::MAX));
    want.extend_from_slice(&le32(1));
    assert_eq!(enc_reply(&r), msg(8 | REPLY_BIT, 9, &want));
}

#[test]
fn malformed_lock_requests_and_answers_are_refused() {
    let mut b = [0u8; MSG_MAX];
    let bad = [
        // Reversed range.
        LockArgs {
            start: 10,
            end: 9,
            ..lock_args()
        },
        // Past OFFSET_MAX.
        LockArgs {
            end: LOCK_END_MAX + 1,
            ..lock_args()
        },
        // A test of an unlock.
        LockArgs {
            cmd: LockCmd::Get,
            mode: LockMode::Unlock,
            ..lock_args()
        },
        // flock of part of a file, and a flock test.
        LockArgs {
            kind: LockKind::Flock,
            mode: LockMode::Read,
            ..lock_args()
        },
        LockArgs {
            kind: LockKind::Flock,
            cmd: LockCmd::Get,
            mode: LockMode::Read,
            start: 0,
            end: LOCK_END_MAX,
            ..lock_args()
        },
    ];
    for a in bad {
        assert_eq!(
            Request::Lock(a).encode(1, &mut b),
            Err(DecodeError::BadField),
            "{a:?}"
        );
    }
    // The same refused when decoding, and bad enum bytes and padding.
    let good = enc_req(&Request::Lock(lock_args()), 1);
    let p = HEADER_LEN;
    let mut m = good.clone();
    m[p + 16..p + 24].copy_from_slice(&le64(500));
    assert_eq!(Request::decode(&m), Err(DecodeError::BadField));
    for (off, v) in [
        (40, 0u8),
        (40, 4),
        (41, 0),
        (41, 4),
        (42, 0),
        (42, 4),
        (43, 1),
    ] {
        let mut m = good.clone();
        m[p + off] = v;
        assert_eq!(Request::decode(&m), Err(DecodeError::BadField), "{off} {v}");
    }
    // A conflict answer past OFFSET_MAX, or with an unknown mode.
    let mut r = enc_reply(&Reply {
        id: 1,
        op: Opcode::Lock,
        error: 0,
        body: Some(ReplyBody::Lock(LockInfo {
            mode: LockMode::Write,
            start: 0,
            end: 1,
            pid: 3,
        })),
    });
    let q = HEADER_LEN + 4;
    let mut m = r.clone();
    m[q + 8..q + 16].copy_from_slice(&le64(LOCK_END_MAX + 1));
    assert_eq!(Reply::decode(&m), Err(DecodeError::BadField));
    r[q + 20] = 4;
    assert_eq!(Reply::decode(&r), Err(DecodeError::BadField));
}

#[test]
fn request_encode_errors() {
    // Buffer too small, for every variant and every shorter size.
    for r in all_requests() {
        let need = r.encoded_len();
        let mut b = vec![0u8; need];
        for n in 0..need {
            assert_eq!(
                r.encode(1, &mut b[..n]),
                Err(DecodeError::Short),
                "{r:?} {n}"
            );
        }
    }
    // Invalid names.
    let mut b = [0u8; MSG_MAX];
    for name in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
        assert_eq!(
            Request::Lookup { name }.encode(1, &mut b),
            Err(DecodeError::BadName),
            "{name:?}"
        );
    }
    let long = [b'a'; NAME_MAX + 1];
    assert_eq!(
        Request::Lookup { name: &long }.encode(1, &mut b),
        Err(DecodeError::BadName)
    );
    // A name so long the message would exceed MSG_MAX.
    let huge = [b'a'; 1000];
    let mut big = vec![0u8; 2000];
    assert_eq!(
        Request::Lookup { name: &huge }.encode(1, &mut big),
        Err(DecodeError::BadName)
    );
}

#[test]
fn request_decode_every_prefix_fails() {
    for r in all_requests() {
        let b = enc_req(&r, 3);
        for n in 0..b.len() {
            assert!(Request::decode(&b[..n]).is_err(), "{r:?} prefix {n}");
        }
    }
}

#[test]
fn request_decode_short_header() {
    assert_eq!(Request::decode(&[]), Err(DecodeError::Short));
    assert_eq!(Request::decode(&[24, 0, 0, 0, 2]), Err(DecodeError::Short));
}

#[test]
fn request_decode_unknown_opcodes() {
    for op in [0u16, 16, 100, 0x7fff] {
        let b = msg(op, 1, &le64(0));
        assert_eq!(Request::decode(&b), Err(DecodeError::UnknownOpcode(op)));
    }
    // A reply opcode is not a request.
    for op in ALL_OPS {
        let raw = op as u16 | REPLY_BIT;
        let b = msg(raw, 1, &le64(0));
        assert_eq!(Request::decode(&b), Err(DecodeError::UnknownOpcode(raw)));
    }
}

#[test]
fn request_decode_bad_lengths() {
    // Fixed-size requests with one byte too few / too many (header len
    // consistent with the buffer).
    for (op, n) in [(2u16, 8usize), (3, 8), (4, 24), (5, 24), (6, 16), (9, 24)] {
        let mut body = vec![0u8; n - 1];
        assert_eq!(
            Request::decode(&msg(op, 1, &body)),
            Err(DecodeError::BadLength),
            "op {op} short"
        );
        body.resize(n + 1, 1);
        assert_eq!(
            Request::decode(&msg(op, 1, &body)),
            Err(DecodeError::BadLength),
            "op {op} long"
        );
    }
    // Header len disagreeing with the buffer.
    let mut b = enc_req(&Request::Getattr { file: 1 }, 1);
    b.push(0);
    assert_eq!(Request::decode(&b), Err(DecodeError::BadLength));
    // Lookup: name length field disagreeing with the message.
    assert_eq!(
        Request::decode(&msg(1, 1, &[3, 0, b'a', b'b'])),
        Err(DecodeError::BadLength)
    );
    assert_eq!(
        Request::decode(&msg(1, 1, &[1, 0, b'a', b'b'])),
        Err(DecodeError::BadLength)
    );
    // Lookup without even the name length.
    assert_eq!(Request::decode(&msg(1, 1, &[])), Err(DecodeError::Short));
    assert_eq!(Request::decode(&msg(1, 1, &[0])), Err(DecodeError::Short));
}

#[test]
fn request_decode_bad_names() {
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b".".to_vec(),
        b"..".to_vec(),
        b"a/b".to_vec(),
        b"\0".to_vec(),
        b"ab\0".to_vec(),
    ];
    cases.push(vec![b'q'; NAME_MAX + 1]);
    for name in cases {
        let mut body = (name.len() as u16).to_le_bytes().to_vec();
        body.extend_from_slice(&name);
        assert_eq!(
            Request::decode(&msg(1, 1, &body)),
            Err(DecodeError::BadName),
            "{name:?}"
        );
    }
}

#[test]
fn request_decode_zero_count() {
    for op in [4u16, 5, 7] {
        let mut body = le64(1).to_vec();
        body.extend_from_slice(&le64(2));
        body.extend_from_slice(&le32(0));
        body.extend_from_slice(&le32(3));
        assert_eq!(
            Request::decode(&msg(op, 1, &body)),
            Err(DecodeError::BadField)
        );
    }
}

/// A raw READ (4), WRITE (5) or VIEW (7) request with the given count.
fn raw_rw(op: u16, count: u32) -> Vec<u8> {
    let mut body = le64(1).to_vec();
    body.extend_from_slice(&le64(2));
    body.extend_from_slice(&le32(count));
    body.extend_from_slice(&le32(3));
    msg(op, 1, &body)
}

#[test]
fn request_read_count_limits() {
    // A READ asks for 1 to READ_RUN_MAX pages, and no more.
    for count in [0, READ_RUN_MAX + 1, READ_RUN_MAX + 2, 1 << 16, u32::MAX] {
        assert_eq!(
            Request::decode(&raw_rw(4, count)),
            Err(DecodeError::BadField),
            "decode count {count}"
        );
        let r = Request::Read {
            file: 1,
            index: 2,
            count,
            slot: 3,
        };
        let mut b = [0xAAu8; MSG_MAX];
        assert_eq!(
            r.encode(1, &mut b),
            Err(DecodeError::BadField),
            "encode count {count}"
        );
        assert!(b.iter().all(|&x| x == 0xAA), "count {count} wrote");
    }
    for count in 1..=READ_RUN_MAX {
        let r = Request::Read {
            file: 1,
            index: 2,
            count,
            slot: 3,
        };
        let b = raw_rw(4, count);
        assert_eq!(Request::decode(&b), Ok((1, r)), "decode count {count}");
        assert_eq!(enc_req(&r, 1), b, "encode count {count}");
    }
}

#[test]
fn request_write_and_view_count_is_one() {
    for op in [5u16, 7] {
        for count in [0, 2, 3, READ_RUN_MAX, READ_RUN_MAX + 1, u32::MAX] {
            assert_eq!(
                Request::decode(&raw_rw(op, count)),
                Err(DecodeError::BadField),
                "op {op} decode count {count}"
            );
        }
        let one = raw_rw(op, 1);
        let (id, ok) = Request::decode(&one).unwrap();
        assert_eq!(ok.opcode() as u16, op);
        assert_eq!(enc_req(&ok, id), one, "op {op}");
    }
    for count in [0, 2, READ_RUN_MAX, u32::MAX] {
        for r in [
            Request::Write {
                file: 1,
                index: 2,
                count,
                slot: 3,
            },
            Request::View {
                file: 1,
                index: 2,
                count,
                slot: 3,
            },
        ] {
            let mut b = [0xAAu8; MSG_MAX];
            assert_eq!(r.encode(1, &mut b), Err(DecodeError::BadField), "{r:?}");
            assert!(b.iter().all(|&x| x == 0xAA), "{r:?} wrote");
        }
    }
}

#[test]
fn request_decode_nonzero_flags() {
    let mut b = enc_req(&Request::Readdir { cookie: 1 }, 1);
    b[6] = 1;
    assert_eq!(Request::decode(&b), Err(DecodeError::BadField));
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

#[test]
fn reply_round_trip_every_variant() {
    for r in all_ok_replies() {
        let b = enc_reply(&r);
        let h = Header::decode(&b).unwrap();
        assert_eq!(h.opcode, r.op as u16 | REPLY_BIT);
        assert_eq!(h.id, r.id);
        assert_eq!(h.len as usize, b.len());
        assert_eq!(&b[16..20], &[0, 0, 0, 0]);
        assert_eq!(Reply::decode(&b), Ok(r), "{r:?}");
    }
}

#[test]
fn reply_error_round_trip_every_opcode() {
    for op in ALL_OPS {
        for e in [
            errno::EPERM,
            errno::ENOENT,
            errno::EIO,
            errno::EBUSY,
            errno::ENAMETOOLONG,
            errno::ETIMEDOUT,
            MAX_REPLY_ERRNO,
        ] {
            let r = Reply {
                id: 77,
                op,
                error: e,
                body: None,
            };
            let b = enc_reply(&r);
            assert_eq!(b.len(), HEADER_LEN + 4);
            assert_eq!(&b[16..20], &le32(e as u32));
            assert_eq!(Reply::decode(&b), Ok(r));
        }
    }
}

#[test]
fn reply_layouts() {
    let r = Reply {
        id: 3,
        op: Opcode::Getattr,
        error: 0,
        body: Some(ReplyBody::Attr(Attr {
            file: 1,
            size: 2,
            mode: 0o755,
            mtime: Time { sec: 7, nsec: 8 },
            ctime: Time { sec: -9, nsec: 10 },
            uid: 1000,
            gid: 1001,
            root_squash: true,
        })),
    };
    let mut body = le32(0).to_vec();
    body.extend_from_slice(&le64(1));
    body.extend_from_slice(&le64(2));
    body.extend_from_slice(&le32(0o755));
    body.extend_from_slice(&le32(8));
    body.extend_from_slice(&le64(7));
    body.extend_from_slice(&(-9i64).to_le_bytes());
    body.extend_from_slice(&le32(10));
    body.extend_from_slice(&le32(ATTR_ROOT_SQUASH));
    body.extend_from_slice(&le32(1000));
    body.extend_from_slice(&le32(1001));
    assert_eq!(enc_reply(&r), msg(0x8002, 3, &body));
    // An attr of the old length (ABI 14, 48 bytes) is refused.
    let short = msg(0x8002, 3, &body[..body.len() - 8]);
    assert_eq!(Reply::decode(&short), Err(DecodeError::BadLength));

    // A time's nanoseconds below a second, both ways.
    for (m, c) in [(NSEC_PER_SEC, 0), (0, NSEC_PER_SEC), (u32::MAX, 0)] {
        let bad = Reply {
            body: Some(ReplyBody::Attr(Attr {
                mtime: Time { sec: 1, nsec: m },
                ctime: Time { sec: 1, nsec: c },
                ..Attr::default()
            })),
            ..r
        };
        assert_eq!(bad.encode(&mut [0u8; 128]), Err(DecodeError::BadField));
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le64(1));
        body.extend_from_slice(&le64(2));
        body.extend_from_slice(&le32(0o755));
        body.extend_from_slice(&le32(m));
        body.extend_from_slice(&le64(1));
        body.extend_from_slice(&le64(1));
        body.extend_from_slice(&le32(c));
        body.extend_from_slice(&le32(0));
        body.extend_from_slice(&le32(0));
        body.extend_from_slice(&le32(0));
        assert_eq!(
            Reply::decode(&msg(0x8002, 3, &body)),
            Err(DecodeError::BadField)
        );
    }

    let r = Reply {
        id: 4,
        op: Opcode::Readdir,
        error: 0,
        body: Some(ReplyBody::Dirent {
            next: 5,
            file: 6,
            name: b"xy",
        }),
    };
    let mut body = le32(0).to_vec();
    body.extend_from_slice(&le64(5));
    body.extend_from_slice(&le64(6));
    body.extend_from_slice(&[2, 0, b'x', b'y']);
    assert_eq!(enc_reply(&r), msg(0x8003, 4, &body));

    let r = Reply {
        id: 5,
        op: Opcode::Upgrade,
        error: 0,
        body: Some(ReplyBody::Grant(Grant::ReadWrite)),
    };
    let mut body = le32(0).to_vec();
    body.extend_from_slice(&le32(2));
    assert_eq!(enc_reply(&r), msg(0x8006, 5, &body));

    let r = Reply {
        id: 8,
        op: Opcode::Read,
        error: 0,
        body: Some(ReplyBody::Pages {
            grant: Grant::Dirty,
            pages: 9,
            ahead: 0x0102_0304,
        }),
    };
    let mut body = le32(0).to_vec();
    body.extend_from_slice(&le32(3));
    body.extend_from_slice(&le32(9));
    body.extend_from_slice(&le32(0x0102_0304));
    assert_eq!(enc_reply(&r), msg(0x8004, 8, &body));

    let r = Reply {
        id: 9,
        op: Opcode::View,
        error: 0,
        body: Some(ReplyBody::Grant(Grant::ReadOnly)),
    };
    let mut body = le32(0).to_vec();
    body.extend_from_slice(&le32(1));
    assert_eq!(enc_reply(&r), msg(0x8007, 9, &body));

    let r = Reply {
        id: 6,
        op: Opcode::Write,
        error: 0,
        body: Some(ReplyBody::Done),
    };
    assert_eq!(enc_reply(&r), msg(0x8005, 6, &le32(0)));

    let r = Reply {
        id: 7,
        op: Opcode::Lookup,
        error: errno::ENOENT,
        body: None,
    };
    assert_eq!(enc_reply(&r), msg(0x8001, 7, &le32(2)));
}

#[test]
fn reply_encode_errors() {
    let mut b = [0u8; MSG_MAX];
    // Error and body must agree.
    let with_body = Reply {
        id: 1,
        op: Opcode::Read,
        error: errno::EIO,
        body: Some(ReplyBody::Pages {
            grant: Grant::ReadOnly,
            pages: 1,
            ahead: 0,
        }),
    };
    assert_eq!(with_body.encode(&mut b), Err(DecodeError::BadField));
    let with_grant = Reply {
        op: Opcode::Upgrade,
        body: Some(ReplyBody::Grant(Grant::ReadOnly)),
        ..with_body
    };
    assert_eq!(with_grant.encode(&mut b), Err(DecodeError::BadField));
    let no_body = Reply {
        id: 1,
        op: Opcode::Read,
        error: 0,
        body: None,
    };
    assert_eq!(no_body.encode(&mut b), Err(DecodeError::BadField));
    // Too small a buffer.
    for r in all_ok_replies() {
        let need = enc_reply(&r).len();
        let mut small = vec![0u8; need];
        for n in 0..need {
            assert_eq!(
                r.encode(&mut small[..n]),
                Err(DecodeError::Short),
                "{r:?} {n}"
            );
        }
    }
    // Bad directory entry names.
    for name in [&b"."[..], b"..", b"a/b", b"\0"] {
        let r = Reply {
            id: 1,
            op: Opcode::Readdir,
            error: 0,
            body: Some(ReplyBody::Dirent {
                next: 0,
                file: 0,
                name,
            }),
        };
        assert_eq!(r.encode(&mut b), Err(DecodeError::BadName), "{name:?}");
    }
    let long = [b'a'; NAME_MAX + 1];
    let r = Reply {
        id: 1,
        op: Opcode::Readdir,
        error: 0,
        body: Some(ReplyBody::Dirent {
            next: 0,
            file: 0,
            name: &long,
        }),
    };
    assert_eq!(r.encode(&mut b), Err(DecodeError::BadName));
    let huge = [b'a'; 1000];
    let r = Reply {
        id: 1,
        op: Opcode::Readdir,
        error: 0,
        body: Some(ReplyBody::Dirent {
            next: 0,
            file: 0,
            name: &huge,
        }),
    };
    let mut big = vec![0u8; 2000];
    assert_eq!(r.encode(&mut big), Err(DecodeError::BadName));
}

#[test]
fn reply_decode_every_prefix_fails() {
    for r in all_ok_replies() {
        let b = enc_reply(&r);
        for n in 0..b.len() {
            assert!(Reply::decode(&b[..n]).is_err(), "{r:?} prefix {n}");
        }
    }
    let e = enc_reply(&Reply {
        id: 1,
        op: Opcode::Write,
        error: errno::EIO,
        body: None,
    });
    for n in 0..e.len() {
        assert!(Reply::decode(&e[..n]).is_err(), "error reply prefix {n}");
    }
}

#[test]
fn reply_decode_opcodes() {
    // Missing REPLY_BIT: a request opcode is not a reply.
    for op in ALL_OPS {
        let b = msg(op as u16, 1, &le32(errno::EIO as u32));
        assert_eq!(
            Reply::decode(&b),
            Err(DecodeError::UnknownOpcode(op as u16))
        );
    }
    // Unknown opcode with the reply bit set.
    for op in [0u16, 16, 0x7fff] {
        let b = msg(op | REPLY_BIT, 1, &le32(errno::EIO as u32));
        assert_eq!(Reply::decode(&b), Err(DecodeError::UnknownOpcode(op)));
    }
}

#[test]
fn reply_decode_error_with_body() {
    for op in ALL_OPS {
        let mut body = le32(errno::ENOENT as u32).to_vec();
        body.push(0);
        assert_eq!(
            Reply::decode(&msg(op as u16 | REPLY_BIT, 1, &body)),
            Err(DecodeError::BadLength),
            "{op:?}"
        );
        // A full, well-formed body behind an error is still refused.
        let mut body = le32(errno::EIO as u32).to_vec();
        body.extend_from_slice(&[0u8; 24]);
        assert_eq!(
            Reply::decode(&msg(op as u16 | REPLY_BIT, 1, &body)),
            Err(DecodeError::BadLength),
            "{op:?}"
        );
    }
}

#[test]
fn reply_decode_error_range() {
    // 512 and up are the kernel's own: ERESTARTSYS (512), EIOCBQUEUED
    // (529), which would reach a BUG_ON in fs/read_write.c, up to 4095.
    for bad in [-1i32, -22, i32::MIN, 512, 516, 529, 4095, 4096, i32::MAX] {
        let b = msg(0x8001, 1, &le32(bad as u32));
        assert_eq!(Reply::decode(&b), Err(DecodeError::BadField), "{bad}");
    }
    for good in 1..=MAX_REPLY_ERRNO {
        let b = msg(0x8001, 1, &le32(good as u32));
        assert_eq!(Reply::decode(&b).unwrap().error, good);
    }
    assert_eq!(MAX_REPLY_ERRNO, 511);
}

#[test]
fn reply_decode_bad_body_lengths() {
    let ok = le32(0);
    let with = |extra: &[u8]| {
        let mut v = ok.to_vec();
        v.extend_from_slice(extra);
        v
    };
    // Attr bodies must be exactly 24 bytes.
    for op in [0x8001u16, 0x8002] {
        for n in [0usize, 4, 23, 25, 32] {
            assert_eq!(
                Reply::decode(&msg(op, 1, &with(&vec![0u8; n]))),
                Err(DecodeError::BadLength),
                "op {op:#x} n {n}"
            );
        }
    }
    // Grant bodies (UPGRADE, VIEW) must be exactly 4 bytes.
    for op in [0x8006u16, 0x8007] {
        for n in [0usize, 3, 5, 8, 12] {
            let mut body = vec![0u8; n];
            if n >= 4 {
                body[0] = 1;
            }
            if n >= 8 {
                body[4] = 1;
            }
            assert_eq!(
                Reply::decode(&msg(op, 1, &with(&body))),
                Err(DecodeError::BadLength),
                "op {op:#x} n {n}"
            );
        }
    }
    // READ's pages bodies must be exactly 12 bytes: a bare grant is too
    // short, even a valid one.
    for n in [0usize, 3, 4, 8, 11, 13, 16] {
        let mut body = vec![0u8; n];
        if n >= 4 {
            body[0] = 1;
        }
        if n >= 8 {
            body[4] = 1;
        }
        assert_eq!(
            Reply::decode(&msg(0x8004, 1, &with(&body))),
            Err(DecodeError::BadLength),
            "READ n {n}"
        );
    }
    // Write replies carry nothing.
    assert_eq!(
        Reply::decode(&msg(0x8005, 1, &with(&[0]))),
        Err(DecodeError::BadLength)
    );
    // Readdir: name length disagreeing with the message.
    let mut d = le64(1).to_vec();
    d.extend_from_slice(&le64(2));
    d.extend_from_slice(&[3, 0, b'a', b'b']);
    assert_eq!(
        Reply::decode(&msg(0x8003, 1, &with(&d))),
        Err(DecodeError::BadLength)
    );
    let mut d = le64(1).to_vec();
    d.extend_from_slice(&le64(2));
    d.extend_from_slice(&[1, 0, b'a', b'b']);
    assert_eq!(
        Reply::decode(&msg(0x8003, 1, &with(&d))),
        Err(DecodeError::BadLength)
    );
    // Readdir without the name length field at all.
    let d = le64(1);
    assert_eq!(
        Reply::decode(&msg(0x8003, 1, &with(&d))),
        Err(DecodeError::Short)
    );
}

#[test]
fn reply_decode_bad_grant() {
    for g in [0u32, 4, 5, 0xffff_ffff] {
        // UPGRADE: a bare grant; a refault, 4, answers an UPGRADE only.
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le32(g));
        if g != 4 {
            assert_eq!(
                Reply::decode(&msg(0x8006, 1, &body)),
                Err(DecodeError::BadField),
                "grant {g} UPGRADE"
            );
        }
        // READ: grant, pages, ahead, with a valid count of pages.
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le32(g));
        body.extend_from_slice(&le32(1));
        body.extend_from_slice(&le32(0));
        assert_eq!(
            Reply::decode(&msg(0x8004, 1, &body)),
            Err(DecodeError::BadField),
            "grant {g} READ"
        );
    }
}

#[test]
fn reply_decode_bad_dirent_names() {
    for name in [&b"."[..], b"..", b"a/b", b"x\0y"] {
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le64(1));
        body.extend_from_slice(&le64(2));
        body.extend_from_slice(&(name.len() as u16).to_le_bytes());
        body.extend_from_slice(name);
        assert_eq!(
            Reply::decode(&msg(0x8003, 1, &body)),
            Err(DecodeError::BadName),
            "{name:?}"
        );
    }
}

#[test]
fn reply_decode_attr_flags() {
    let body = |flags: u32| {
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le64(1));
        body.extend_from_slice(&le64(2));
        body.extend_from_slice(&le32(3));
        body.extend_from_slice(&le32(4));
        body.extend_from_slice(&le64(5));
        body.extend_from_slice(&le64(6));
        body.extend_from_slice(&le32(7));
        body.extend_from_slice(&le32(flags));
        body.extend_from_slice(&le32(u32::MAX));
        body.extend_from_slice(&le32(0));
        body
    };
    let want = |root_squash| {
        Some(ReplyBody::Attr(Attr {
            file: 1,
            size: 2,
            mode: 3,
            mtime: Time { sec: 5, nsec: 4 },
            ctime: Time { sec: 6, nsec: 7 },
            uid: u32::MAX,
            gid: 0,
            root_squash,
        }))
    };
    let m = msg(0x8001, 9, &body(0));
    assert_eq!(Reply::decode(&m).unwrap().body, want(false));
    let m = msg(0x8001, 9, &body(ATTR_ROOT_SQUASH));
    assert_eq!(Reply::decode(&m).unwrap().body, want(true));
    // Every other bit of the flags word is refused: a newer manager's
    // promise this kernel would not keep.
    for bit in 1..32 {
        assert_eq!(
            Reply::decode(&msg(0x8001, 9, &body(1 << bit))),
            Err(DecodeError::BadField),
            "bit {bit}"
        );
    }
}

#[test]
fn reply_decode_nonzero_flags() {
    let mut b = enc_reply(&all_ok_replies()[0]);
    b[7] = 0x80;
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadField));
}

#[test]
fn requests_and_replies_do_not_mix() {
    for r in all_requests() {
        assert!(Reply::decode(&enc_req(&r, 1)).is_err(), "{r:?}");
    }
    for r in all_ok_replies() {
        assert!(Request::decode(&enc_reply(&r)).is_err(), "{r:?}");
    }
}

// ---------------------------------------------------------------------------
// Mutation fuzzing: no input may panic, and whatever decodes re-encodes.
// ---------------------------------------------------------------------------

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn mutation_fuzz() {
    let mut seeds: Vec<Vec<u8>> = all_requests().iter().map(|r| enc_req(r, 5)).collect();
    seeds.extend(all_ok_replies().iter().map(enc_reply));
    let mut rng = Lcg(0x5746_5331);
    let mut decoded = 0;
    for round in 0..40_000 {
        let mut b = seeds[round % seeds.len()].clone();
        match rng.next() % 4 {
            0 => {
                let i = rng.next() as usize % b.len();
                b[i] = rng.next() as u8;
            }
            1 => {
                let n = rng.next() as usize % (b.len() + 1);
                b.truncate(n);
            }
            2 => {
                let n = rng.next() as usize % 8;
                for _ in 0..n {
                    b.push(rng.next() as u8);
                }
                // Keep the length field consistent half of the time.
                if rng.next().is_multiple_of(2) && b.len() >= 4 {
                    let l = (b.len() as u32).to_le_bytes();
                    b[..4].copy_from_slice(&l);
                }
            }
            _ => {
                // Flip a byte in the body, keeping the header intact.
                if b.len() > HEADER_LEN {
                    let i = HEADER_LEN + rng.next() as usize % (b.len() - HEADER_LEN);
                    b[i] ^= 1 << (rng.next() % 8);
                }
            }
        }
        if let Ok((id, r)) = Request::decode(&b) {
            decoded += 1;
            assert_eq!(enc_req(&r, id), b, "request re-encode {r:?}");
        }
        if let Ok(r) = Reply::decode(&b) {
            decoded += 1;
            let again = enc_reply(&r);
            assert_eq!(Reply::decode(&again), Ok(r));
        }
        let _ = Header::decode(&b);
        let _ = Register::decode(&b);
        let _ = Status::decode(&b);
    }
    assert!(decoded > 100, "fuzz decoded too few ({decoded})");
}

/// The encoders refuse exactly what the decoders refuse, and write nothing
/// when they do.
#[test]
fn encoders_refuse_what_decoders_refuse() {
    let mut b = [0xAAu8; MSG_MAX];
    for op in [
        Request::Read {
            file: 1,
            index: 0,
            count: 0,
            slot: 0,
        },
        Request::Read {
            file: 1,
            index: 0,
            count: READ_RUN_MAX + 1,
            slot: 0,
        },
        Request::Write {
            file: 1,
            index: 0,
            count: 0,
            slot: 0,
        },
        Request::Write {
            file: 1,
            index: 0,
            count: 2,
            slot: 0,
        },
        Request::View {
            file: 1,
            index: 0,
            count: 0,
            slot: 0,
        },
        Request::View {
            file: 1,
            index: 0,
            count: 2,
            slot: 0,
        },
    ] {
        assert_eq!(op.encode(1, &mut b), Err(DecodeError::BadField), "{op:?}");
    }
    assert_eq!(
        Request::Lookup { name: b"a/b" }.encode(1, &mut b),
        Err(DecodeError::BadName)
    );
    // A body that does not belong to the opcode.
    let mismatched = [
        (Opcode::Write, ReplyBody::Attr(Attr::default())),
        (Opcode::Lookup, ReplyBody::Grant(Grant::ReadOnly)),
        (Opcode::Read, ReplyBody::Done),
        // A READ is answered with pages, never with a bare grant.
        (Opcode::Read, ReplyBody::Grant(Grant::ReadOnly)),
        (Opcode::Read, ReplyBody::Grant(Grant::ReadWrite)),
        (Opcode::Read, ReplyBody::Grant(Grant::Dirty)),
        // And pages answer nothing but a READ.
        (
            Opcode::Upgrade,
            ReplyBody::Pages {
                grant: Grant::ReadWrite,
                pages: 1,
                ahead: 0,
            },
        ),
        (
            Opcode::View,
            ReplyBody::Pages {
                grant: Grant::ReadOnly,
                pages: 1,
                ahead: 0,
            },
        ),
        (
            Opcode::Write,
            ReplyBody::Pages {
                grant: Grant::Dirty,
                pages: 1,
                ahead: 0,
            },
        ),
        // Pages out of 1..=READ_RUN_MAX, or a refault, in a READ's answer.
        (
            Opcode::Read,
            ReplyBody::Pages {
                grant: Grant::ReadOnly,
                pages: 0,
                ahead: 0,
            },
        ),
        (
            Opcode::Read,
            ReplyBody::Pages {
                grant: Grant::ReadOnly,
                pages: READ_RUN_MAX + 1,
                ahead: 0,
            },
        ),
        (
            Opcode::Read,
            ReplyBody::Pages {
                grant: Grant::Refault,
                pages: 1,
                ahead: 0,
            },
        ),
        (
            Opcode::Getattr,
            ReplyBody::Dirent {
                next: 0,
                file: 0,
                name: b"",
            },
        ),
    ];
    for (op, body) in mismatched {
        let r = Reply {
            id: 1,
            op,
            error: 0,
            body: Some(body),
        };
        assert_eq!(
            r.encode(&mut b),
            Err(DecodeError::BadField),
            "{op:?} {body:?}"
        );
    }
    // Errors outside 1..=511.
    for error in [-5, 512, 529, 4095, 4096, i32::MIN] {
        let r = Reply {
            id: 1,
            op: Opcode::Read,
            error,
            body: None,
        };
        assert_eq!(r.encode(&mut b), Err(DecodeError::BadField), "{error}");
    }
    assert!(
        b.iter().all(|&x| x == 0xAA),
        "a refused encode wrote into the buffer"
    );
}

#[test]
fn a_refault_answers_only_an_upgrade() {
    let read = Reply {
        id: 1,
        op: Opcode::Read,
        error: 0,
        body: Some(ReplyBody::Pages {
            grant: Grant::Refault,
            pages: 1,
            ahead: 0,
        }),
    };
    let mut b = [0u8; 64];
    assert_eq!(read.encode(&mut b), Err(DecodeError::BadField));
    let bare = Reply {
        body: Some(ReplyBody::Grant(Grant::Refault)),
        ..read
    };
    assert_eq!(bare.encode(&mut b), Err(DecodeError::BadField));
    // The UPGRADE's reply decodes; its bytes as a READ's do not (a bare
    // grant is too short for a READ's answer).
    let upgrade = Reply {
        op: Opcode::Upgrade,
        ..bare
    };
    let n = upgrade.encode(&mut b).unwrap();
    assert_eq!(Reply::decode(&b[..n]), Ok(upgrade));
    let mut as_read = b[..n].to_vec();
    let op = (Opcode::Read as u16 | REPLY_BIT).to_le_bytes();
    as_read[4..6].copy_from_slice(&op);
    assert_eq!(Reply::decode(&as_read), Err(DecodeError::BadLength));
    // Given the pages body a READ's answer calls for, the refault is
    // still refused.
    as_read[0..4].copy_from_slice(&le32((HEADER_LEN + 16) as u32));
    as_read.extend_from_slice(&le32(1));
    as_read.extend_from_slice(&le32(0));
    assert_eq!(&as_read[20..24], &le32(4));
    assert_eq!(Reply::decode(&as_read), Err(DecodeError::BadField));
    // With grant 3 in its place the same message is a valid READ answer.
    as_read[20..24].copy_from_slice(&le32(3));
    assert_eq!(
        Reply::decode(&as_read).unwrap().body,
        Some(ReplyBody::Pages {
            grant: Grant::Dirty,
            pages: 1,
            ahead: 0
        })
    );
}

// ---------------------------------------------------------------------------
// READ replies: runs of pages
// ---------------------------------------------------------------------------

/// A raw successful READ reply: error 0, grant, pages, ahead.
fn raw_pages(id: u64, grant: u32, pages: u32, ahead: u32) -> Vec<u8> {
    let mut body = le32(0).to_vec();
    body.extend_from_slice(&le32(grant));
    body.extend_from_slice(&le32(pages));
    body.extend_from_slice(&le32(ahead));
    msg(0x8004, id, &body)
}

fn pages_reply(grant: Grant, pages: u32, ahead: u32) -> Reply<'static> {
    Reply {
        id: 42,
        op: Opcode::Read,
        error: 0,
        body: Some(ReplyBody::Pages {
            grant,
            pages,
            ahead,
        }),
    }
}

#[test]
fn read_reply_pages_round_trip() {
    let grants = [
        (Grant::ReadOnly, 1u32),
        (Grant::ReadWrite, 2),
        (Grant::Dirty, 3),
    ];
    for (grant, g) in grants {
        for pages in 1..=READ_RUN_MAX {
            for ahead in [0, 1, READ_RUN_MAX, 0x8000_0000, u32::MAX] {
                let r = pages_reply(grant, pages, ahead);
                let b = enc_reply(&r);
                assert_eq!(b, raw_pages(42, g, pages, ahead), "{r:?}");
                assert_eq!(Reply::decode(&b), Ok(r), "{r:?}");
            }
        }
    }
    // The hint is carried as it is, all 32 bits of it.
    let r = pages_reply(Grant::ReadOnly, READ_RUN_MAX, u32::MAX);
    let b = enc_reply(&r);
    assert_eq!(&b[28..32], &[0xff; 4]);
    match Reply::decode(&b).unwrap().body {
        Some(ReplyBody::Pages { ahead, .. }) => assert_eq!(ahead, u32::MAX),
        other => panic!("not pages: {other:?}"),
    }
}

#[test]
fn read_reply_pages_layout() {
    let r = Reply {
        id: 0x0102_0304_0506_0708,
        op: Opcode::Read,
        error: 0,
        body: Some(ReplyBody::Pages {
            grant: Grant::ReadWrite,
            pages: 0x0b,
            ahead: 0xa1b2_c3d4,
        }),
    };
    let b = enc_reply(&r);
    // Header (16), error (4), then the 12-byte body.
    assert_eq!(b.len(), HEADER_LEN + 4 + 12);
    assert_eq!(b.len(), 32);
    assert_eq!(&b[0..4], &le32(32));
    assert_eq!(&b[4..6], &0x8004u16.to_le_bytes());
    assert_eq!(&b[6..8], &[0, 0]);
    assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&b[16..20], &[0, 0, 0, 0]);
    // grant u32 LE at body offset 0, pages at 4, ahead at 8.
    assert_eq!(&b[20..24], &[2, 0, 0, 0]);
    assert_eq!(&b[24..28], &[0x0b, 0, 0, 0]);
    assert_eq!(&b[28..32], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(Reply::decode(&b), Ok(r));
    // Fields are read from those offsets, not elsewhere.
    let mut m = b.clone();
    m[24] = 5;
    m[28..32].copy_from_slice(&le32(7));
    m[20] = 1;
    assert_eq!(
        Reply::decode(&m).unwrap().body,
        Some(ReplyBody::Pages {
            grant: Grant::ReadOnly,
            pages: 5,
            ahead: 7
        })
    );
    // The high bytes of grant and pages count too.
    let mut m = b.clone();
    m[23] = 1;
    assert_eq!(Reply::decode(&m), Err(DecodeError::BadField));
    let mut m = b.clone();
    m[27] = 1;
    assert_eq!(Reply::decode(&m), Err(DecodeError::BadField));
}

#[test]
fn read_reply_pages_out_of_range() {
    for pages in [0, READ_RUN_MAX + 1, READ_RUN_MAX + 2, 0x100, u32::MAX] {
        for g in [1u32, 2, 3] {
            assert_eq!(
                Reply::decode(&raw_pages(1, g, pages, 0)),
                Err(DecodeError::BadField),
                "decode grant {g} pages {pages}"
            );
        }
        for grant in [Grant::ReadOnly, Grant::ReadWrite, Grant::Dirty] {
            let r = pages_reply(grant, pages, 0);
            let mut b = [0xAAu8; MSG_MAX];
            assert_eq!(r.encode(&mut b), Err(DecodeError::BadField), "encode {r:?}");
            assert!(b.iter().all(|&x| x == 0xAA), "{r:?} wrote");
        }
    }
    // The bounds themselves are fine.
    for pages in [1, READ_RUN_MAX] {
        let b = raw_pages(1, 1, pages, 0);
        assert!(Reply::decode(&b).is_ok(), "pages {pages}");
    }
}

#[test]
fn read_reply_refault_refused() {
    assert_eq!(
        Reply::decode(&raw_pages(1, 4, 1, 0)),
        Err(DecodeError::BadField)
    );
    for pages in [1, READ_RUN_MAX] {
        assert_eq!(
            Reply::decode(&raw_pages(1, 4, pages, 3)),
            Err(DecodeError::BadField),
            "pages {pages}"
        );
        let r = pages_reply(Grant::Refault, pages, 3);
        let mut b = [0xAAu8; MSG_MAX];
        assert_eq!(r.encode(&mut b), Err(DecodeError::BadField), "{r:?}");
        assert!(b.iter().all(|&x| x == 0xAA), "{r:?} wrote");
    }
}

#[test]
fn read_reply_bare_grant_refused() {
    // ABI 5's READ answer, a bare grant, is no longer one.
    for grant in [Grant::ReadOnly, Grant::ReadWrite, Grant::Dirty] {
        let r = Reply {
            id: 1,
            op: Opcode::Read,
            error: 0,
            body: Some(ReplyBody::Grant(grant)),
        };
        let mut b = [0xAAu8; MSG_MAX];
        assert_eq!(r.encode(&mut b), Err(DecodeError::BadField), "{r:?}");
        assert!(b.iter().all(|&x| x == 0xAA), "{r:?} wrote");
        let mut body = le32(0).to_vec();
        body.extend_from_slice(&le32(grant as u32));
        assert_eq!(
            Reply::decode(&msg(0x8004, 1, &body)),
            Err(DecodeError::BadLength),
            "{grant:?}"
        );
    }
}

#[test]
fn create_and_unlink_layout() {
    let c = Request::Create {
        name: b"ab",
        mode: 0o640,
        excl: true,
        uid: 1000,
        gid: 100,
    };
    let mut body = Vec::new();
    body.extend_from_slice(&le32(0o640));
    body.extend_from_slice(&le32(CREATE_EXCL));
    body.extend_from_slice(&le32(1000));
    body.extend_from_slice(&le32(100));
    body.extend_from_slice(&2u16.to_le_bytes());
    body.extend_from_slice(b"ab");
    assert_eq!(enc_req(&c, 5), msg(10, 5, &body));
    let u = Request::Unlink {
        file: 0x1122,
        name: b"ab",
    };
    let mut body = Vec::new();
    body.extend_from_slice(&le64(0x1122));
    body.extend_from_slice(&2u16.to_le_bytes());
    body.extend_from_slice(b"ab");
    assert_eq!(enc_req(&u, 6), msg(11, 6, &body));
    let r = Request::Rename {
        file: 0x1122,
        target: 0x3344,
        noreplace: true,
        from: b"ab",
        to: b"cde",
    };
    let mut body = Vec::new();
    body.extend_from_slice(&le64(0x1122));
    body.extend_from_slice(&le64(0x3344));
    body.extend_from_slice(&le32(RENAME_NOREPLACE));
    body.extend_from_slice(&2u16.to_le_bytes());
    body.extend_from_slice(&3u16.to_le_bytes());
    body.extend_from_slice(b"abcde");
    assert_eq!(enc_req(&r, 7), msg(12, 7, &body));
    // Both names must be valid, the lengths must add up, and the flags
    // word holds RENAME_NOREPLACE at most.
    let good = msg(12, 7, &body);
    assert_eq!(Request::decode(&good), Ok((7, r)));
    let mut bad = good.clone();
    bad[HEADER_LEN + 16] = 2;
    assert_eq!(Request::decode(&bad), Err(DecodeError::BadField));
    let mut bad = good.clone();
    bad[HEADER_LEN + 22] = 2;
    assert_eq!(Request::decode(&bad), Err(DecodeError::BadLength));
    let mut bad = good.clone();
    bad[HEADER_LEN + 20] = 0;
    bad[HEADER_LEN + 22] = 5;
    assert_eq!(Request::decode(&bad), Err(DecodeError::BadName));
    let mut bad = good.clone();
    bad[HEADER_LEN + 24 + 2] = b'/';
    assert_eq!(Request::decode(&bad), Err(DecodeError::BadName));
    for (from, to) in [(&b".."[..], &b"a"[..]), (b"a", b"")] {
        let r = Request::Rename {
            file: 1,
            target: 0,
            noreplace: false,
            from,
            to,
        };
        assert_eq!(r.encode(1, &mut [0u8; MSG_MAX]), Err(DecodeError::BadName));
    }
    // CREATE is answered with attributes, UNLINK and RENAME with nothing.
    for (op, body, ok) in [
        (Opcode::Rename, ReplyBody::Done, true),
        (Opcode::Rename, ReplyBody::Attr(Attr::default()), false),
        (Opcode::Create, ReplyBody::Attr(Attr::default()), true),
        (Opcode::Create, ReplyBody::Done, false),
        (Opcode::Unlink, ReplyBody::Done, true),
        (Opcode::Unlink, ReplyBody::Attr(Attr::default()), false),
    ] {
        let r = Reply {
            id: 1,
            op,
            error: 0,
            body: Some(body),
        };
        assert_eq!(r.encode(&mut [0u8; MSG_MAX]).is_ok(), ok, "{op:?} {body:?}");
    }
}

#[test]
fn open_release_and_settimes_carry_a_file_and_are_answered_with_nothing() {
    let release = [&le64(0x1122)[..], &le64(0x33)].concat();
    let settimes = [
        &le64(0x1122)[..],
        &le64(-2i64 as u64),
        &le32(NSEC_MAX),
        &le32(0),
    ]
    .concat();
    for (op, code, r, body) in [
        (
            Opcode::Open,
            13u16,
            Request::Open { file: 0x1122 },
            le64(0x1122).to_vec(),
        ),
        (
            Opcode::Release,
            14,
            Request::Release {
                file: 0x1122,
                session: 0x33,
            },
            release,
        ),
        (
            Opcode::Settimes,
            15,
            Request::Settimes {
                file: 0x1122,
                sec: -2,
                nsec: NSEC_MAX,
            },
            settimes,
        ),
    ] {
        let good = msg(code, 9, &body);
        assert_eq!(enc_req(&r, 9), good);
        assert_eq!(Request::decode(&good), Ok((9, r)));
        // Their length exactly.
        let mut long = good.clone();
        long.push(0);
        long[0] += 1;
        assert_eq!(Request::decode(&long), Err(DecodeError::BadLength));
        for (body, ok) in [
            (ReplyBody::Done, true),
            (ReplyBody::Attr(Attr::default()), false),
        ] {
            let reply = Reply {
                id: 1,
                op,
                error: 0,
                body: Some(body),
            };
            assert_eq!(reply.encode(&mut [0u8; MSG_MAX]).is_ok(), ok, "{op:?}");
        }
    }
}

#[test]
fn settimes_with_nanoseconds_past_a_second_or_padding_is_refused() {
    let mut buf = [0u8; MSG_MAX];
    let past = Request::Settimes {
        file: 1,
        sec: 0,
        nsec: NSEC_MAX + 1,
    };
    assert_eq!(past.encode(1, &mut buf), Err(DecodeError::BadField));
    let good = enc_req(
        &Request::Settimes {
            file: 1,
            sec: 5,
            nsec: 6,
        },
        1,
    );
    let mut m = good.clone();
    m[HEADER_LEN + 16..HEADER_LEN + 20].copy_from_slice(&le32(NSEC_MAX + 1));
    assert_eq!(Request::decode(&m), Err(DecodeError::BadField));
    let mut m = good.clone();
    m[HEADER_LEN + 20] = 1;
    assert_eq!(Request::decode(&m), Err(DecodeError::BadField));
    let mut short = good.clone();
    short.truncate(good.len() - 4);
    short[0] -= 4;
    assert_eq!(Request::decode(&short), Err(DecodeError::BadLength));
}

#[test]
fn malformed_create_and_unlink_requests_are_refused() {
    let good = enc_req(
        &Request::Create {
            name: b"n",
            mode: 0o600,
            excl: false,
            uid: 0,
            gid: 0,
        },
        1,
    );
    assert!(Request::decode(&good).is_ok());
    // A flag that is not O_EXCL.
    let mut m = good.clone();
    m[HEADER_LEN + 4] = 2;
    assert_eq!(Request::decode(&m), Err(DecodeError::BadField));
    // A file type in the mode.
    let mut m = good.clone();
    m[HEADER_LEN + 1] = 0x81;
    assert_eq!(Request::decode(&m), Err(DecodeError::BadField));
    // No user or group id (ABI 16's owner of the new file).
    for at in [8, 12] {
        let mut m = good.clone();
        m[HEADER_LEN + at..HEADER_LEN + at + 4].copy_from_slice(&le32(u32::MAX));
        assert_eq!(Request::decode(&m), Err(DecodeError::BadField), "at {at}");
    }
    // ABI 15's CREATE, without the ids: too short for ABI 16's.
    let mut m = good[..HEADER_LEN + 8].to_vec();
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(b"n");
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(Request::decode(&m), Err(DecodeError::Short));
    // A name length past the message.
    let mut m = good.clone();
    m[HEADER_LEN + 16] = 2;
    assert_eq!(Request::decode(&m), Err(DecodeError::BadLength));
    // Names the namespace cannot hold.
    for bad in [&b"."[..], b"a/b", b"a\0"] {
        let mut m = good.clone();
        m.truncate(HEADER_LEN + 18);
        m.extend_from_slice(bad);
        m[HEADER_LEN + 16] = bad.len() as u8;
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(Request::decode(&m), Err(DecodeError::BadName), "{bad:?}");
    }
}

#[test]
fn opens_blocks_round_trip_and_refuse_bad_fields() {
    let o = Opens {
        buf: 0x7fff_0000_1000,
        cap: OPENS_MAX,
        count: 3,
    };
    let mut b = [0u8; Opens::LEN];
    o.encode(&mut b);
    assert_eq!(&b[..8], &le64(0x7fff_0000_1000));
    assert_eq!(&b[8..12], &le32(OPENS_MAX));
    assert_eq!(&b[12..], &le32(3));
    assert_eq!(Opens::decode(&b), Ok(o));
    assert_eq!(Opens::decode(&b[..15]), Err(DecodeError::Short));
    b[8..12].copy_from_slice(&le32(OPENS_MAX + 1));
    assert_eq!(Opens::decode(&b), Err(DecodeError::BadField));

    let e = OpenEntry {
        file: u64::MAX,
        count: 2,
    };
    let mut b = [0xffu8; OpenEntry::LEN];
    e.encode(&mut b);
    assert_eq!(
        &b[..],
        &[&le64(u64::MAX)[..], &le32(2), &le32(0)].concat()[..]
    );
    assert_eq!(OpenEntry::decode(&b), Ok(e));
    let mut zero = b;
    zero[8..12].copy_from_slice(&le32(0));
    assert_eq!(OpenEntry::decode(&zero), Err(DecodeError::BadField));
    let mut pad = b;
    pad[15] = 1;
    assert_eq!(OpenEntry::decode(&pad), Err(DecodeError::BadField));
}
