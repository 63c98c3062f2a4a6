//! The manager-to-manager wire protocol: framing and frame encoding.
//!
//! Every frame on the wire is
//!
//! | size | field |
//! |---|---|
//! | 4 | `len`: u32 LE, length of everything after this field (>= 2) |
//! | 2 | `type`: u16 LE frame type |
//! | len - 2 | payload |
//!
//! `len` is at most [`MAX_FRAME`]; a larger or smaller value, or a payload
//! that does not have exactly the shape its type calls for, is a protocol
//! error that closes the connection. Strings are a u16 LE byte length
//! followed by that many bytes of UTF-8. All integers are little-endian.
//!
//! Frame types of protocol version 12:
//!
//! * `HELLO` (1), initiator to acceptor, first frame: magic `b"WFSP"`,
//!   version u16, cluster name (string), host name (string), incarnation
//!   u64 (a number that changes every time the manager starts, so the peer
//!   knows a restarted manager from a reconnected one).
//! * `HELLO_ACK` (2), acceptor's answer: version u16, host name (string),
//!   incarnation u64.
//! * `REFUSE` (3), acceptor's answer when it refuses: reason (string); the
//!   acceptor closes the connection right after it.
//! * `PING` (4) / `PONG` (5): heartbeat, a u64 sequence number echoed back.
//!
//! * `PAGE` (0x100): one frame of the session between two managers
//!   ([`crate::session`]): seq u64, ack u64, then a message tag u8 (0: a
//!   bare acknowledgement) and the message's fields: a page-protocol
//!   message ([`crate::protocol::Msg`], tags 1-15 and 22-28), a name-service
//!   message ([`crate::names::NameMsg`], tags 16-21 and 38-46), a view's
//!   ([`crate::views::ViewMsg`], tags 29-30), a lock's
//!   ([`crate::lockserv::LockMsg`], tags 31-32) or a size's
//!   ([`crate::sizes::SizeMsg`], tags 33-37 and 47-48). A file's `info`
//!   is file u64, size u64, mode u32, mtime, ctime, uid u32, gid u32,
//!   root_squash u8 (0/1; version 19 on); a time is sec i64, nsec u32
//!   (below 1,000,000,000):
//!
//!   | tag | message | fields after the tag |
//!   |---|---|---|
//!   | 1 | WhereIs | txn u64, file u64, index u64, access u8 (0 read, 1 write, 2 prefetch) |
//!   | 2 | Fetch | txn, file, index, to u16, incarnation u64, epoch u64 |
//!   | 3 | Data | txn, file, index, dirty u8 (0/1), access u8 (0/1), epoch u64, owner incarnation u64, len u32, len bytes |
//!   | 4 | Absent | txn, file, index |
//!   | 5 | Done | txn, file, index |
//!   | 6 | Put | file, index, epoch u64, seq u64, home u8 (0/1), len u32, len bytes |
//!   | 7 | PutAck | file, index, seq u64, error i32 (0, or an errno) |
//!   | 8 | Failed | txn, file, index, error i32 (an errno) |
//!   | 9 | Returned | txn, file, index |
//!   | 10 | Recover | dead u16, incarnation u64, left u8 (0/1) |
//!   | 11 | Recovered | dead u16, incarnation u64 |
//!   | 12 | Released | file, index |
//!   | 13 | Leaving | incarnation u64 |
//!   | 14 | Holding | last u8 (0/1), count u32 (at most 4096), count × (file, index, epoch u64, held u8 (0 read-only, 1 writable)) |
//!   | 15 | Orphan | file, index, epoch u64, seq u64, owner incarnation u64, len u32, len bytes |
//!   | 16 | Lookup | id u64, name (string) |
//!   | 17 | Answer | id u64, found u8 (0/1), then if 1: info |
//!   | 18 | List | id u64 |
//!   | 19 | Listed | id u64, count u32 (at most 4096), count names (strings), last u8 (0/1): one part of a listing |
//!   | 20 | NameOf | id u64, file u64 |
//!   | 21 | Named | id u64, found u8 (0/1), then if 1: name (string) |
//!   | 38 | Reserve | id u64, name (string), stamp u64 |
//!   | 39 | Reserved | id u64, state u8 (0 granted, 1 refused, 2 exists), then if 2: owner u16, info |
//!   | 40 | Forget | id u64, name (string), made u8 (0/1), then if 1: info; gone u64 (version 16 on) |
//!   | 41 | Forgot | id u64 |
//!   | 42 | Unlink | id u64, file u64, name (string) |
//!   | 43 | Unlinked | id u64, error i32 (0, or an errno) |
//!   | 44 | Release | name (string), stamp u64 |
//!   | 45 | Make | id u64, name (string), mode u32, excl u8 (0/1), uid u32, gid u32 (version 20 on), within_ms u32 |
//!   | 46 | Made | id u64, kind u8: 0 owner u16 + info; 1 errno i32 |
//!   | 49 | Rename | id u64, file u64, target u64 (0: none), noreplace u8 (0/1), from (string), to (string) |
//!   | 50 | Renamed | id u64, error i32 (0, or an errno) |
//!   | 51 | Open | id u64 (0: no answer wanted), file u64 |
//!   | 52 | Opened | id u64, error i32 (0, or an errno) |
//!   | 53 | Close | file u64 |
//!   | 54 | SetTimes | id u64, file u64, sec i64, nsec u32 (< 10^9) |
//!   | 55 | TimesSet | id u64, errno i32 |
//!   | 22 | Share | txn, file, index |
//!   | 23 | Kept | txn, file, index |
//!   | 24 | Revoke | txn, file, index |
//!   | 25 | Revoked | txn, file, index |
//!   | 26 | Upgrade | txn, file, index |
//!   | 27 | Upgraded | txn, file, index, epoch u64 |
//!   | 28 | Stale | txn, file, index |
//!   | 29 | Peek | id u64, file, index ([`crate::views::ViewMsg`]) |
//!   | 30 | Peeked | id u64, file, index, error i32 (0, or an errno), then if 0: len u32, len bytes |
//!   | 31 | LockAsk | id u64, file u64, owner u64, kind u8, op u8, mode u8, start u64, end u64, pid u32, wait_ms u32, prior |
//!   | 32 | LockAnswer | id u64, error i32 (0, or an errno), then if 0: found u8 (0/1), then if 1: host u16, kind u8, mode u8, start u64, end u64, pid u32; then prior |
//!   | 33 | SizeSet | id u64, file u64, size u64, grow u8 (0 exactly, 1 at least) |
//!   | 34 | SizeAnswer | id u64, error i32 (0, or an errno), then if 0: size u64 |
//!   | 35 | SizeIs | id u64, file u64, size u64 |
//!   | 36 | SizeIsAck | id u64 |
//!   | 37 | SizeCut | id u64, file u64, size u64 |
//!   | 47 | SizeTimes | file u64, mtime, ctime, mode u32, uid u32, gid u32, root_squash u8 (0/1) (the last four: version 19 on) |
//!   | 48 | SizeStat | id u64, file u64 |
//!
//!   In lock messages, `kind` is 1 POSIX, 2 OFD, 3 `flock`; `op` is 1 get
//!   (`F_GETLK`), 2 set (`F_SETLK`), 3 wait (`F_SETLKW`), 4 unlock; `mode`
//!   is 1 read, 2 write, and 0 with unlock only. A range is `start..end`,
//!   `end` exclusive, `u64::MAX` for "to the end of the file" (a last
//!   byte of the kernel's `OFFSET_MAX`); any other end is at most
//!   `i64::MAX` (a last byte below it, plus one), and the range is not
//!   empty. A LockAnswer's lock (`found` 1) is a `Get`'s
//!   conflicting lock: its holder's host, kind, mode, range and pid.
//!   `prior` is count u16 (at most 4096), count × (mode u8, start u64, end
//!   u64): what a lock owner held on the range before a grant. It is empty
//!   but in a LockAnswer that grants (so that the asker can undo the grant
//!   if its kernel refuses it) and in the LockAsk unlock that undoes one
//!   (the owner gives those locks back).
//!
//!   A size is at most `i64::MAX` ([`wfs_abi::SIZE_MAX`], the kernel's
//!   largest file); a larger one is refused, as is a negative error.
//!
//! Types from 0x101 on are reserved for the page protocol.
//!
//! This module is pure: it does no I/O other than through the `Read` and
//! `Write` it is handed.

use std::fmt;
use std::io::{self, Read, Write};

use crate::locks::{Kind, Mode, Range};
use crate::lockserv::{Holder, LockMsg, Op, valid_range};
use crate::names::{FileInfo, NameMsg};
use crate::protocol::{Access, HOLDING_PART, Held, Msg, PageData, PageId};
use crate::session;
use crate::sizes::SizeMsg;
use crate::views::ViewMsg;
use wfs_abi::Time;

/// A message of the session between two managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// The page protocol.
    Page(Msg),
    /// The name service.
    Name(NameMsg),
    /// Views' pages.
    View(ViewMsg),
    /// Locks, decided by their files' owners.
    Lock(LockMsg),
    /// Sizes, set by their files' owners.
    Size(SizeMsg),
}

/// Magic at the start of every HELLO.
pub const MAGIC: [u8; 4] = *b"WFSP";
/// Version of this protocol.
pub const PROTOCOL_VERSION: u16 = 20;
/// Largest value of the length field (type + payload), 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;
/// Size of the length field.
pub const LEN_BYTES: usize = 4;
/// Room [`Frame::encode`] starts with for a frame's fields (besides the
/// page a message may carry): a frame is encoded without growing its
/// buffer.
const ENCODE_FIELDS: usize = 128;
/// Most pieces of a lock message's prior (what a lock owner held before a
/// grant); the encoder cuts a longer one there (so much as undone by an
/// unlock), the decoder refuses it.
pub const MAX_PRIOR: usize = 4096;
/// Longest string the encoder emits; longer ones are cut (at a character
/// boundary). Names are far shorter; this only bounds REFUSE reasons.
pub const MAX_STRING: usize = 1024;

/// Frame type of HELLO.
pub const T_HELLO: u16 = 1;
/// Frame type of HELLO_ACK.
pub const T_HELLO_ACK: u16 = 2;
/// Frame type of REFUSE.
pub const T_REFUSE: u16 = 3;
/// Frame type of PING.
pub const T_PING: u16 = 4;
/// Frame type of PONG.
pub const T_PONG: u16 = 5;
/// Frame type of PAGE.
pub const T_PAGE: u16 = 0x100;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// First frame of a connection, sent by the initiator.
    Hello {
        /// Protocol version (always [`PROTOCOL_VERSION`] once decoded).
        version: u16,
        /// The sender's cluster name.
        cluster: String,
        /// The sender's host name.
        host: String,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// The acceptor's welcome.
    HelloAck {
        /// Protocol version the acceptor speaks.
        version: u16,
        /// The acceptor's host name.
        host: String,
        /// The acceptor's incarnation.
        incarnation: u64,
    },
    /// The acceptor's refusal.
    Refuse {
        /// Why, for the log.
        reason: String,
    },
    /// Heartbeat request.
    Ping {
        /// Sequence number, echoed in the PONG.
        seq: u64,
    },
    /// Heartbeat answer.
    Pong {
        /// The PING's sequence number.
        seq: u64,
    },
    /// A frame of the session between the two managers.
    Page(session::Frame<PeerMsg>),
}

/// Why a frame could not be read or decoded.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed the connection cleanly, between frames.
    Closed,
    /// An I/O error (including a read time-out and EOF inside a frame).
    Io(io::Error),
    /// The length field exceeds [`MAX_FRAME`].
    Oversized(u32),
    /// The length field is too small to hold even the type.
    TooShort(u32),
    /// A frame type this version does not know.
    UnknownType(u16),
    /// A HELLO without the magic.
    BadMagic,
    /// A HELLO of another protocol version.
    Version(u16),
    /// The payload does not have the shape its type calls for.
    Malformed(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Closed => write!(f, "connection closed"),
            WireError::Io(e) => write!(f, "I/O error: {e}"),
            WireError::Oversized(n) => {
                write!(f, "oversized frame ({n} bytes, max {MAX_FRAME})")
            }
            WireError::TooShort(n) => write!(f, "malformed frame: length {n} < 2"),
            WireError::UnknownType(t) => write!(f, "malformed frame: unknown type {t}"),
            WireError::BadMagic => write!(f, "bad magic in HELLO"),
            WireError::Version(v) => write!(
                f,
                "unsupported protocol version {v} (this host speaks {PROTOCOL_VERSION})"
            ),
            WireError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

impl WireError {
    /// True for a read time-out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, WireError::Io(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut)
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = cut(s, MAX_STRING);
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over a payload.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Malformed(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    /// A flag, 0 or 1: `short` if it is missing, `bad` if it is neither.
    fn flag(&mut self, short: &'static str, bad: &'static str) -> Result<bool, WireError> {
        match self.u8(short)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Malformed(bad)),
        }
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn access(&mut self, what: &'static str) -> Result<Access, WireError> {
        match self.u8(what)? {
            0 => Ok(Access::Read),
            1 => Ok(Access::Write),
            2 => Ok(Access::Prefetch),
            _ => Err(WireError::Malformed(
                "access is not 0 (read), 1 (write) or 2 (prefetch)",
            )),
        }
    }
    fn page(&mut self) -> Result<PageId, WireError> {
        Ok(PageId {
            file: self.u64("PAGE message too short for its file")?,
            index: self.u64("PAGE message too short for its index")?,
        })
    }
    fn bytes(&mut self) -> Result<PageData, WireError> {
        let n = self.u32("PAGE message too short for its data length")? as usize;
        Ok(PageData::new(
            self.take(n, "PAGE message data truncated")?.to_vec(),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        let n = self.u16(what)? as usize;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| WireError::Malformed("string is not UTF-8"))
    }
    fn end(&self) -> Result<(), WireError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed("trailing bytes after payload"))
        }
    }
}

impl Frame {
    /// The frame's type number.
    pub fn frame_type(&self) -> u16 {
        match self {
            Frame::Hello { .. } => T_HELLO,
            Frame::HelloAck { .. } => T_HELLO_ACK,
            Frame::Refuse { .. } => T_REFUSE,
            Frame::Ping { .. } => T_PING,
            Frame::Pong { .. } => T_PONG,
            Frame::Page(_) => T_PAGE,
        }
    }

    /// A HELLO of this protocol version.
    pub fn hello(cluster: &str, host: &str, incarnation: u64) -> Frame {
        Frame::Hello {
            version: PROTOCOL_VERSION,
            cluster: cluster.to_string(),
            host: host.to_string(),
            incarnation,
        }
    }

    /// The payload alone (no length, no type).
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut p = Vec::new();
        self.put_payload(&mut p);
        p
    }

    /// Appends the payload to `p`.
    fn put_payload(&self, p: &mut Vec<u8>) {
        match self {
            Frame::Hello {
                version,
                cluster,
                host,
                incarnation,
            } => {
                p.extend_from_slice(&MAGIC);
                p.extend_from_slice(&version.to_le_bytes());
                put_str(p, cluster);
                put_str(p, host);
                p.extend_from_slice(&incarnation.to_le_bytes());
            }
            Frame::HelloAck {
                version,
                host,
                incarnation,
            } => {
                p.extend_from_slice(&version.to_le_bytes());
                put_str(p, host);
                p.extend_from_slice(&incarnation.to_le_bytes());
            }
            Frame::Refuse { reason } => put_str(p, reason),
            Frame::Ping { seq } | Frame::Pong { seq } => p.extend_from_slice(&seq.to_le_bytes()),
            Frame::Page(f) => {
                p.extend_from_slice(&f.seq.to_le_bytes());
                p.extend_from_slice(&f.ack.to_le_bytes());
                match &f.msg {
                    None => p.push(0),
                    Some(PeerMsg::Page(m)) => put_msg(p, m),
                    Some(PeerMsg::Name(m)) => put_name_msg(p, m),
                    Some(PeerMsg::View(m)) => put_view_msg(p, m),
                    Some(PeerMsg::Lock(m)) => put_lock_msg(p, m),
                    Some(PeerMsg::Size(m)) => put_size_msg(p, m),
                }
            }
        }
    }

    /// The whole frame as it goes on the wire. The payload is encoded in
    /// place behind the length and type (a page's data is copied once),
    /// into a buffer the size of the largest page message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode_into(&mut out);
        out
    }

    /// About the encoded size: the page it carries, if any, and room for
    /// the fields (a longer list grows the buffer).
    pub fn size_hint(&self) -> usize {
        let page = match self {
            Frame::Page(session::Frame {
                msg:
                    Some(PeerMsg::Page(
                        Msg::Data { data, .. } | Msg::Put { data, .. } | Msg::Orphan { data, .. },
                    )),
                ..
            }) => data.len(),
            Frame::Page(session::Frame {
                msg: Some(PeerMsg::View(ViewMsg::Peeked { data: Ok(data), .. })),
                ..
            }) => data.len(),
            _ => 0,
        };
        LEN_BYTES + 2 + ENCODE_FIELDS + page
    }

    /// Appends the whole frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; LEN_BYTES]);
        out.extend_from_slice(&self.frame_type().to_le_bytes());
        self.put_payload(out);
        let len = (out.len() - start - LEN_BYTES) as u32;
        out[start..start + LEN_BYTES].copy_from_slice(&len.to_le_bytes());
    }

    /// Decodes the payload of a frame of type `ty`.
    pub fn decode(ty: u16, payload: &[u8]) -> Result<Frame, WireError> {
        let mut c = Cur { b: payload };
        let f = match ty {
            T_HELLO => {
                let magic = c.take(4, "HELLO too short for magic")?;
                if magic != MAGIC {
                    return Err(WireError::BadMagic);
                }
                let version = c.u16("HELLO too short for version")?;
                if version != PROTOCOL_VERSION {
                    // The rest of the layout belongs to that version.
                    return Err(WireError::Version(version));
                }
                let cluster = c.string("HELLO cluster name truncated")?;
                let host = c.string("HELLO host name truncated")?;
                let incarnation = c.u64("HELLO too short for incarnation")?;
                Frame::Hello {
                    version,
                    cluster,
                    host,
                    incarnation,
                }
            }
            T_HELLO_ACK => {
                let version = c.u16("HELLO_ACK too short for version")?;
                let host = c.string("HELLO_ACK host name truncated")?;
                let incarnation = c.u64("HELLO_ACK too short for incarnation")?;
                Frame::HelloAck {
                    version,
                    host,
                    incarnation,
                }
            }
            T_REFUSE => Frame::Refuse {
                reason: c.string("REFUSE reason truncated")?,
            },
            T_PING => Frame::Ping {
                seq: c.u64("PING too short")?,
            },
            T_PONG => Frame::Pong {
                seq: c.u64("PONG too short")?,
            },
            T_PAGE => {
                let seq = c.u64("PAGE too short for seq")?;
                let ack = c.u64("PAGE too short for ack")?;
                let msg = match c.u8("PAGE too short for its message tag")? {
                    0 => None,
                    tag @ (1..=15 | 22..=28) => Some(PeerMsg::Page(get_msg(tag, &mut c)?)),
                    tag @ (16..=21 | 38..=46 | 49..=55) => {
                        Some(PeerMsg::Name(get_name_msg(tag, &mut c)?))
                    }
                    tag @ 29..=30 => Some(PeerMsg::View(get_view_msg(tag, &mut c)?)),
                    tag @ 31..=32 => Some(PeerMsg::Lock(get_lock_msg(tag, &mut c)?)),
                    tag @ (33..=37 | 47..=48) => Some(PeerMsg::Size(get_size_msg(tag, &mut c)?)),
                    _ => return Err(WireError::Malformed("PAGE message tag unknown")),
                };
                if (seq == 0) != msg.is_none() {
                    return Err(WireError::Malformed(
                        "PAGE seq 0 goes with a bare ack, only",
                    ));
                }
                Frame::Page(session::Frame { seq, ack, msg })
            }
            other => return Err(WireError::UnknownType(other)),
        };
        c.end()?;
        Ok(f)
    }
}

fn put_page(p: &mut Vec<u8>, txn: Option<u64>, page: &PageId) {
    if let Some(t) = txn {
        p.extend_from_slice(&t.to_le_bytes());
    }
    p.extend_from_slice(&page.file.to_le_bytes());
    p.extend_from_slice(&page.index.to_le_bytes());
}

fn put_bytes(p: &mut Vec<u8>, data: &[u8]) {
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
}

/// Encodes a page-protocol message, tag first.
fn put_msg(p: &mut Vec<u8>, m: &Msg) {
    match m {
        Msg::WhereIs { txn, page, access } => {
            p.push(1);
            put_page(p, Some(*txn), page);
            p.push(access_byte(*access));
        }
        Msg::Fetch {
            txn,
            page,
            to,
            incarnation,
            epoch,
        } => {
            p.push(2);
            put_page(p, Some(*txn), page);
            p.extend_from_slice(&to.to_le_bytes());
            p.extend_from_slice(&incarnation.to_le_bytes());
            p.extend_from_slice(&epoch.to_le_bytes());
        }
        Msg::Data {
            txn,
            page,
            data,
            dirty,
            epoch,
            owner,
            access,
        } => {
            p.push(3);
            put_page(p, Some(*txn), page);
            p.push(u8::from(*dirty));
            p.push(access_byte(*access));
            p.extend_from_slice(&epoch.to_le_bytes());
            p.extend_from_slice(&owner.to_le_bytes());
            put_bytes(p, data);
        }
        Msg::Absent { txn, page } => {
            p.push(4);
            put_page(p, Some(*txn), page);
        }
        Msg::Done { txn, page } => {
            p.push(5);
            put_page(p, Some(*txn), page);
        }
        Msg::Put {
            page,
            epoch,
            seq,
            data,
            home,
        } => {
            p.push(6);
            put_page(p, None, page);
            p.extend_from_slice(&epoch.to_le_bytes());
            p.extend_from_slice(&seq.to_le_bytes());
            p.push(u8::from(*home));
            put_bytes(p, data);
        }
        Msg::PutAck { page, seq, error } => {
            p.push(7);
            put_page(p, None, page);
            p.extend_from_slice(&seq.to_le_bytes());
            p.extend_from_slice(&error.to_le_bytes());
        }
        Msg::Failed { txn, page, error } => {
            p.push(8);
            put_page(p, Some(*txn), page);
            p.extend_from_slice(&error.to_le_bytes());
        }
        Msg::Returned { txn, page } => {
            p.push(9);
            put_page(p, Some(*txn), page);
        }
        Msg::Released { page } => {
            p.push(12);
            put_page(p, None, page);
        }
        Msg::Leaving { incarnation } => {
            p.push(13);
            p.extend_from_slice(&incarnation.to_le_bytes());
        }
        Msg::Orphan {
            page,
            epoch,
            seq,
            owner,
            data,
        } => {
            p.push(15);
            put_page(p, None, page);
            p.extend_from_slice(&epoch.to_le_bytes());
            p.extend_from_slice(&seq.to_le_bytes());
            p.extend_from_slice(&owner.to_le_bytes());
            put_bytes(p, data);
        }
        Msg::Holding { pages, last } => {
            p.push(14);
            p.push(u8::from(*last));
            p.extend_from_slice(&(pages.len() as u32).to_le_bytes());
            for (page, epoch, held) in pages {
                put_page(p, None, page);
                p.extend_from_slice(&epoch.to_le_bytes());
                p.push(match held {
                    Held::Read => 0,
                    Held::Write => 1,
                });
            }
        }
        Msg::Recover {
            dead,
            incarnation,
            left,
        } => {
            p.push(10);
            p.extend_from_slice(&dead.to_le_bytes());
            p.extend_from_slice(&incarnation.to_le_bytes());
            p.push(u8::from(*left));
        }
        Msg::Recovered { dead, incarnation } => {
            p.push(11);
            p.extend_from_slice(&dead.to_le_bytes());
            p.extend_from_slice(&incarnation.to_le_bytes());
        }
        Msg::Share { txn, page } => {
            p.push(22);
            put_page(p, Some(*txn), page);
        }
        Msg::Kept { txn, page } => {
            p.push(23);
            put_page(p, Some(*txn), page);
        }
        Msg::Revoke { txn, page } => {
            p.push(24);
            put_page(p, Some(*txn), page);
        }
        Msg::Revoked { txn, page } => {
            p.push(25);
            put_page(p, Some(*txn), page);
        }
        Msg::Upgrade { txn, page } => {
            p.push(26);
            put_page(p, Some(*txn), page);
        }
        Msg::Upgraded { txn, page, epoch } => {
            p.push(27);
            put_page(p, Some(*txn), page);
            p.extend_from_slice(&epoch.to_le_bytes());
        }
        Msg::Stale { txn, page } => {
            p.push(28);
            put_page(p, Some(*txn), page);
        }
    }
}

/// An [`Access`] on the wire: 0 read, 1 write, 2 prefetch.
fn access_byte(a: Access) -> u8 {
    match a {
        Access::Read => 0,
        Access::Write => 1,
        Access::Prefetch => 2,
    }
}

/// Decodes the page-protocol message with tag `tag`.
fn get_msg(tag: u8, c: &mut Cur<'_>) -> Result<Msg, WireError> {
    let txn = |c: &mut Cur<'_>| c.u64("PAGE message too short for its transaction");
    Ok(match tag {
        1 => Msg::WhereIs {
            txn: txn(c)?,
            page: c.page()?,
            access: c.access("WHERE_IS too short for its access")?,
        },
        2 => Msg::Fetch {
            txn: txn(c)?,
            page: c.page()?,
            to: c.u16("FETCH too short for its destination")?,
            incarnation: c.u64("FETCH too short for its incarnation")?,
            epoch: c.u64("FETCH too short for its epoch")?,
        },
        3 => {
            let txn = txn(c)?;
            let page = c.page()?;
            let dirty = c.flag(
                "DATA too short for its dirty flag",
                "DATA dirty flag is not 0 or 1",
            )?;
            let access = c.access("DATA too short for its access")?;
            if access == Access::Prefetch {
                // (What a page is given as: read or write.)
                return Err(WireError::Malformed("DATA access is not 0 or 1"));
            }
            Msg::Data {
                txn,
                page,
                dirty,
                access,
                epoch: c.u64("DATA too short for its epoch")?,
                owner: c.u64("DATA too short for its owner's incarnation")?,
                data: c.bytes()?,
            }
        }
        4 => Msg::Absent {
            txn: txn(c)?,
            page: c.page()?,
        },
        5 => Msg::Done {
            txn: txn(c)?,
            page: c.page()?,
        },
        6 => Msg::Put {
            page: c.page()?,
            epoch: c.u64("PUT too short for its epoch")?,
            seq: c.u64("PUT too short for its sequence number")?,
            home: c.flag(
                "PUT too short for its home flag",
                "PUT home flag is not 0 or 1",
            )?,
            data: c.bytes()?,
        },
        15 => Msg::Orphan {
            page: c.page()?,
            epoch: c.u64("ORPHAN too short for its epoch")?,
            seq: c.u64("ORPHAN too short for its sequence number")?,
            owner: c.u64("ORPHAN too short for its owner's incarnation")?,
            data: c.bytes()?,
        },
        7 => Msg::PutAck {
            page: c.page()?,
            seq: c.u64("PUT_ACK too short for its sequence number")?,
            error: c.u32("PUT_ACK too short for its error")? as i32,
        },
        8 => Msg::Failed {
            txn: txn(c)?,
            page: c.page()?,
            error: c.u32("FAILED too short for its error")? as i32,
        },
        9 => Msg::Returned {
            txn: txn(c)?,
            page: c.page()?,
        },
        10 => Msg::Recover {
            dead: c.u16("RECOVER too short for its host")?,
            incarnation: c.u64("RECOVER too short for its incarnation")?,
            left: c.flag(
                "RECOVER too short for its left flag",
                "RECOVER left flag is not 0 or 1",
            )?,
        },
        11 => Msg::Recovered {
            dead: c.u16("RECOVERED too short for its host")?,
            incarnation: c.u64("RECOVERED too short for its incarnation")?,
        },
        12 => Msg::Released { page: c.page()? },
        13 => Msg::Leaving {
            incarnation: c.u64("LEAVING too short for its incarnation")?,
        },
        14 => {
            let last = c.flag(
                "HOLDING too short for its last flag",
                "HOLDING last flag is not 0 or 1",
            )?;
            let n = c.u32("HOLDING too short for its count")? as usize;
            if n > HOLDING_PART {
                return Err(WireError::Malformed("HOLDING lists too many pages"));
            }
            let mut pages = Vec::with_capacity(n);
            for _ in 0..n {
                let page = c.page()?;
                let epoch = c.u64("HOLDING too short for an epoch")?;
                let held = match c.u8("HOLDING too short for a copy's kind")? {
                    0 => Held::Read,
                    1 => Held::Write,
                    _ => return Err(WireError::Malformed("HOLDING copy kind is not 0 or 1")),
                };
                pages.push((page, epoch, held));
            }
            Msg::Holding { pages, last }
        }
        22 => Msg::Share {
            txn: txn(c)?,
            page: c.page()?,
        },
        23 => Msg::Kept {
            txn: txn(c)?,
            page: c.page()?,
        },
        24 => Msg::Revoke {
            txn: txn(c)?,
            page: c.page()?,
        },
        25 => Msg::Revoked {
            txn: txn(c)?,
            page: c.page()?,
        },
        26 => Msg::Upgrade {
            txn: txn(c)?,
            page: c.page()?,
        },
        27 => Msg::Upgraded {
            txn: txn(c)?,
            page: c.page()?,
            epoch: c.u64("UPGRADED too short for its epoch")?,
        },
        28 => Msg::Stale {
            txn: txn(c)?,
            page: c.page()?,
        },
        _ => return Err(WireError::Malformed("PAGE message tag unknown")),
    })
}

/// Encodes a view's message, tag first.
fn put_view_msg(p: &mut Vec<u8>, m: &ViewMsg) {
    match m {
        ViewMsg::Peek { id, page } => {
            p.push(29);
            put_page(p, Some(*id), page);
        }
        ViewMsg::Peeked { id, page, data } => {
            p.push(30);
            put_page(p, Some(*id), page);
            match data {
                Ok(d) => {
                    p.extend_from_slice(&0i32.to_le_bytes());
                    put_bytes(p, d);
                }
                Err(e) => p.extend_from_slice(&e.to_le_bytes()),
            }
        }
    }
}

/// Decodes a view's message after its tag (29 or 30).
fn get_view_msg(tag: u8, c: &mut Cur<'_>) -> Result<ViewMsg, WireError> {
    let id = c.u64("VIEW message too short for its id")?;
    let page = c.page()?;
    Ok(if tag == 29 {
        ViewMsg::Peek { id, page }
    } else {
        let error = c.u32("PEEKED too short for its error")? as i32;
        let data = match error {
            0 => Ok(c.bytes()?),
            e if e > 0 => Err(e),
            _ => return Err(WireError::Malformed("PEEKED error is negative")),
        };
        ViewMsg::Peeked { id, page, data }
    })
}

fn kind_byte(k: Kind) -> u8 {
    match k {
        Kind::Posix => 1,
        Kind::Ofd => 2,
        Kind::Flock => 3,
    }
}

fn mode_byte(m: Mode) -> u8 {
    match m {
        Mode::Read => 1,
        Mode::Write => 2,
    }
}

fn put_range(p: &mut Vec<u8>, r: Range) {
    p.extend_from_slice(&r.start.to_le_bytes());
    p.extend_from_slice(&r.end.to_le_bytes());
}

/// Encodes a prior: its count, then each piece's mode and range (at most
/// [`MAX_PRIOR`] of them).
fn put_prior(p: &mut Vec<u8>, prior: &[(Mode, Range)]) {
    let prior = &prior[..prior.len().min(MAX_PRIOR)];
    p.extend_from_slice(&(prior.len() as u16).to_le_bytes());
    for &(m, r) in prior {
        p.push(mode_byte(m));
        put_range(p, r);
    }
}

/// Encodes a lock message, tag first.
fn put_lock_msg(p: &mut Vec<u8>, m: &LockMsg) {
    match m {
        LockMsg::Ask {
            id,
            file,
            owner,
            kind,
            op,
            range,
            pid,
            wait_ms,
            prior,
        } => {
            p.push(31);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            p.extend_from_slice(&owner.to_le_bytes());
            let (op, mode) = match op {
                Op::Get(m) => (1, mode_byte(*m)),
                Op::Set(m) => (2, mode_byte(*m)),
                Op::Wait(m) => (3, mode_byte(*m)),
                Op::Unlock => (4, 0),
            };
            p.extend_from_slice(&[kind_byte(*kind), op, mode]);
            put_range(p, *range);
            p.extend_from_slice(&pid.to_le_bytes());
            p.extend_from_slice(&wait_ms.to_le_bytes());
            put_prior(p, prior);
        }
        LockMsg::Answer { id, result, prior } => {
            p.push(32);
            p.extend_from_slice(&id.to_le_bytes());
            match result {
                Err(e) => p.extend_from_slice(&e.to_le_bytes()),
                Ok(found) => {
                    p.extend_from_slice(&0i32.to_le_bytes());
                    match found {
                        None => p.push(0),
                        Some(h) => {
                            p.push(1);
                            p.extend_from_slice(&h.host.to_le_bytes());
                            p.extend_from_slice(&[kind_byte(h.kind), mode_byte(h.mode)]);
                            put_range(p, h.range);
                            p.extend_from_slice(&h.pid.to_le_bytes());
                        }
                    }
                }
            }
            put_prior(p, prior);
        }
    }
}

/// Decodes a lock message after its tag (31 or 32).
fn get_lock_msg(tag: u8, c: &mut Cur<'_>) -> Result<LockMsg, WireError> {
    let id = c.u64("LOCK message too short for its id")?;
    let kind = |c: &mut Cur<'_>| match c.u8("LOCK message too short for its kind")? {
        1 => Ok(Kind::Posix),
        2 => Ok(Kind::Ofd),
        3 => Ok(Kind::Flock),
        _ => Err(WireError::Malformed("LOCK kind is not 1, 2 or 3")),
    };
    let mode = |m: u8| match m {
        1 => Ok(Mode::Read),
        2 => Ok(Mode::Write),
        _ => Err(WireError::Malformed("LOCK mode is not 1 or 2")),
    };
    let range = |c: &mut Cur<'_>| {
        let r = Range {
            start: c.u64("LOCK message too short for its start")?,
            end: c.u64("LOCK message too short for its end")?,
        };
        if !valid_range(r) {
            return Err(WireError::Malformed(
                "LOCK range is empty or past the largest offset",
            ));
        }
        Ok(r)
    };
    let prior = |c: &mut Cur<'_>| {
        let n = c.u16("LOCK message too short for its prior's count")? as usize;
        if n > MAX_PRIOR {
            return Err(WireError::Malformed("LOCK prior has too many pieces"));
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let m = mode(c.u8("LOCK message too short for its prior's mode")?)?;
            v.push((m, range(c)?));
        }
        Ok(v)
    };
    if tag == 31 {
        let file = c.u64("LOCK_ASK too short for its file")?;
        let owner = c.u64("LOCK_ASK too short for its owner")?;
        let kind = kind(c)?;
        let op = c.u8("LOCK_ASK too short for its op")?;
        let m = c.u8("LOCK_ASK too short for its mode")?;
        let op = match op {
            1 => Op::Get(mode(m)?),
            2 => Op::Set(mode(m)?),
            3 => Op::Wait(mode(m)?),
            4 if m == 0 => Op::Unlock,
            4 => return Err(WireError::Malformed("LOCK_ASK unlock with a mode")),
            _ => return Err(WireError::Malformed("LOCK_ASK op is not 1 to 4")),
        };
        return Ok(LockMsg::Ask {
            id,
            file,
            owner,
            kind,
            op,
            range: range(c)?,
            pid: c.u32("LOCK_ASK too short for its pid")?,
            wait_ms: c.u32("LOCK_ASK too short for its wait")?,
            prior: prior(c)?,
        });
    }
    let result = match c.u32("LOCK_ANSWER too short for its error")? as i32 {
        0 => match c.u8("LOCK_ANSWER too short for its found flag")? {
            0 => Ok(None),
            1 => Ok(Some(Holder {
                host: c.u16("LOCK_ANSWER too short for its holder's host")?,
                kind: kind(c)?,
                mode: mode(c.u8("LOCK_ANSWER too short for its mode")?)?,
                range: range(c)?,
                pid: c.u32("LOCK_ANSWER too short for its pid")?,
            })),
            _ => return Err(WireError::Malformed("LOCK_ANSWER found flag is not 0 or 1")),
        },
        e if e > 0 => Err(e),
        _ => return Err(WireError::Malformed("LOCK_ANSWER error is negative")),
    };
    Ok(LockMsg::Answer {
        id,
        result,
        prior: prior(c)?,
    })
}

/// Encodes a size message, tag first.
fn put_size_msg(p: &mut Vec<u8>, m: &SizeMsg) {
    match m {
        SizeMsg::Set {
            id,
            file,
            size,
            grow,
        } => {
            p.push(33);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            p.extend_from_slice(&size.to_le_bytes());
            p.push(u8::from(*grow));
        }
        SizeMsg::Answer { id, result } => {
            p.push(34);
            p.extend_from_slice(&id.to_le_bytes());
            match result {
                Ok(size) => {
                    p.extend_from_slice(&0i32.to_le_bytes());
                    p.extend_from_slice(&size.to_le_bytes());
                }
                Err(e) => p.extend_from_slice(&e.to_le_bytes()),
            }
        }
        SizeMsg::Is { id, file, size } => {
            p.push(35);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            p.extend_from_slice(&size.to_le_bytes());
        }
        SizeMsg::IsAck { id } => {
            p.push(36);
            p.extend_from_slice(&id.to_le_bytes());
        }
        SizeMsg::Cut { id, file, size } => {
            p.push(37);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            p.extend_from_slice(&size.to_le_bytes());
        }
        SizeMsg::Stat { id, file } => {
            p.push(48);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
        }
        SizeMsg::Times {
            file,
            mtime,
            ctime,
            perm,
        } => {
            p.push(47);
            p.extend_from_slice(&file.to_le_bytes());
            for t in [mtime, ctime] {
                put_time(p, t);
            }
            for v in [perm.mode, perm.uid, perm.gid] {
                p.extend_from_slice(&v.to_le_bytes());
            }
            p.push(u8::from(perm.root_squash));
        }
    }
}

/// Decodes a size message after its tag (33 to 37, 47, 48).
fn get_size_msg(tag: u8, c: &mut Cur<'_>) -> Result<SizeMsg, WireError> {
    if tag == 47 {
        const SHORT: &str = "SIZE_TIMES too short";
        return Ok(SizeMsg::Times {
            file: c.u64(SHORT)?,
            mtime: get_time(c, SHORT)?,
            ctime: get_time(c, SHORT)?,
            perm: crate::names::Perm {
                mode: c.u32(SHORT)?,
                uid: c.u32(SHORT)?,
                gid: c.u32(SHORT)?,
                root_squash: c.flag(SHORT, "SIZE_TIMES root_squash is not 0 or 1")?,
            },
        });
    }
    let id = c.u64("SIZE message too short for its id")?;
    let size = |c: &mut Cur<'_>| {
        let s = c.u64("SIZE message too short for its size")?;
        if s > wfs_abi::SIZE_MAX {
            return Err(WireError::Malformed("SIZE past the largest file"));
        }
        Ok(s)
    };
    Ok(match tag {
        33 => SizeMsg::Set {
            id,
            file: c.u64("SIZE_SET too short for its file")?,
            size: size(c)?,
            grow: match c.u8("SIZE_SET too short for its grow flag")? {
                0 => false,
                1 => true,
                _ => return Err(WireError::Malformed("SIZE_SET grow flag is not 0 or 1")),
            },
        },
        34 => SizeMsg::Answer {
            id,
            result: match c.u32("SIZE_ANSWER too short for its error")? as i32 {
                0 => Ok(size(c)?),
                e if e > 0 => Err(e),
                _ => return Err(WireError::Malformed("SIZE_ANSWER error is negative")),
            },
        },
        35 => SizeMsg::Is {
            id,
            file: c.u64("SIZE_IS too short for its file")?,
            size: size(c)?,
        },
        36 => SizeMsg::IsAck { id },
        48 => SizeMsg::Stat {
            id,
            file: c.u64("SIZE_STAT too short for its file")?,
        },
        37 => SizeMsg::Cut {
            id,
            file: c.u64("SIZE_CUT too short for its file")?,
            size: size(c)?,
        },
        _ => return Err(WireError::Malformed("PAGE message tag unknown")),
    })
}

/// Longest name the name service carries.
const MAX_NAME_BYTES: usize = wfs_abi::NAME_MAX;
/// Most names in one LISTED message.
pub const MAX_LISTED: usize = crate::names::LISTED_NAMES;

fn put_name(p: &mut Vec<u8>, name: &[u8]) {
    let name = &name[..name.len().min(MAX_NAME_BYTES)];
    p.extend_from_slice(&(name.len() as u16).to_le_bytes());
    p.extend_from_slice(name);
}

/// Encodes a name-service message, tag first.
fn put_name_msg(p: &mut Vec<u8>, m: &NameMsg) {
    match m {
        NameMsg::Lookup { id, name } => {
            p.push(16);
            p.extend_from_slice(&id.to_le_bytes());
            put_name(p, name);
        }
        NameMsg::Answer { id, found } => {
            p.push(17);
            p.extend_from_slice(&id.to_le_bytes());
            match found {
                None => p.push(0),
                Some(f) => {
                    p.push(1);
                    put_file_info(p, f);
                }
            }
        }
        NameMsg::List { id } => {
            p.push(18);
            p.extend_from_slice(&id.to_le_bytes());
        }
        NameMsg::Listed { id, names, last } => {
            p.push(19);
            p.extend_from_slice(&id.to_le_bytes());
            // (The engine sends listings in parts that fit.)
            let names = &names[..names.len().min(MAX_LISTED)];
            p.extend_from_slice(&(names.len() as u32).to_le_bytes());
            for n in names {
                put_name(p, n);
            }
            p.push(u8::from(*last));
        }
        NameMsg::NameOf { id, file } => {
            p.push(20);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
        }
        NameMsg::Named { id, name } => {
            p.push(21);
            p.extend_from_slice(&id.to_le_bytes());
            match name {
                None => p.push(0),
                Some(n) => {
                    p.push(1);
                    put_name(p, n);
                }
            }
        }
        NameMsg::Reserve { id, name, at } => {
            p.push(38);
            p.extend_from_slice(&id.to_le_bytes());
            put_name(p, name);
            p.extend_from_slice(&at.to_le_bytes());
        }
        NameMsg::Reserved { id, found, refused } => {
            p.push(39);
            p.extend_from_slice(&id.to_le_bytes());
            match found {
                None => p.push(u8::from(*refused)),
                Some((owner, f)) => {
                    p.push(2);
                    p.extend_from_slice(&owner.to_le_bytes());
                    put_file_info(p, f);
                }
            }
        }
        NameMsg::Forget {
            id,
            name,
            made,
            gone,
        } => {
            p.push(40);
            p.extend_from_slice(&id.to_le_bytes());
            put_name(p, name);
            match made {
                None => p.push(0),
                Some(f) => {
                    p.push(1);
                    put_file_info(p, f);
                }
            }
            p.extend_from_slice(&gone.to_le_bytes());
        }
        NameMsg::Release { name, at } => {
            p.push(44);
            put_name(p, name);
            p.extend_from_slice(&at.to_le_bytes());
        }
        NameMsg::Forgot { id } => {
            p.push(41);
            p.extend_from_slice(&id.to_le_bytes());
        }
        NameMsg::Unlink { id, file, name } => {
            p.push(42);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            put_name(p, name);
        }
        NameMsg::Unlinked { id, error } => {
            p.push(43);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&error.to_le_bytes());
        }
        NameMsg::Rename {
            id,
            file,
            target,
            noreplace,
            from,
            to,
        } => {
            p.push(49);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            p.extend_from_slice(&target.to_le_bytes());
            p.push(u8::from(*noreplace));
            put_name(p, from);
            put_name(p, to);
        }
        NameMsg::Renamed { id, error } => {
            p.push(50);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&error.to_le_bytes());
        }
        NameMsg::Open { id, file } => {
            p.push(51);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
        }
        NameMsg::Opened { id, error } => {
            p.push(52);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&error.to_le_bytes());
        }
        NameMsg::Close { file } => {
            p.push(53);
            p.extend_from_slice(&file.to_le_bytes());
        }
        NameMsg::SetTimes {
            id,
            file,
            sec,
            nsec,
        } => {
            p.push(54);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&file.to_le_bytes());
            p.extend_from_slice(&sec.to_le_bytes());
            p.extend_from_slice(&nsec.to_le_bytes());
        }
        NameMsg::TimesSet { id, error } => {
            p.push(55);
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&error.to_le_bytes());
        }
        NameMsg::Make {
            id,
            name,
            mode,
            excl,
            uid,
            gid,
            within_ms,
        } => {
            p.push(45);
            p.extend_from_slice(&id.to_le_bytes());
            put_name(p, name);
            p.extend_from_slice(&mode.to_le_bytes());
            p.push(u8::from(*excl));
            p.extend_from_slice(&uid.to_le_bytes());
            p.extend_from_slice(&gid.to_le_bytes());
            p.extend_from_slice(&within_ms.to_le_bytes());
        }
        NameMsg::Made { id, made } => {
            p.push(46);
            p.extend_from_slice(&id.to_le_bytes());
            match made {
                Ok((owner, f)) => {
                    p.push(0);
                    p.extend_from_slice(&owner.to_le_bytes());
                    put_file_info(p, f);
                }
                Err(e) => {
                    p.push(1);
                    p.extend_from_slice(&e.to_le_bytes());
                }
            }
        }
    }
}

fn put_file_info(p: &mut Vec<u8>, f: &FileInfo) {
    p.extend_from_slice(&f.file.to_le_bytes());
    p.extend_from_slice(&f.size.to_le_bytes());
    p.extend_from_slice(&f.mode.to_le_bytes());
    put_time(p, &f.mtime);
    put_time(p, &f.ctime);
    p.extend_from_slice(&f.uid.to_le_bytes());
    p.extend_from_slice(&f.gid.to_le_bytes());
    p.push(u8::from(f.root_squash));
}

fn put_time(p: &mut Vec<u8>, t: &Time) {
    p.extend_from_slice(&t.sec.to_le_bytes());
    p.extend_from_slice(&t.nsec.to_le_bytes());
}

fn get_time(c: &mut Cur<'_>, what: &'static str) -> Result<Time, WireError> {
    let t = Time {
        sec: c.u64(what)? as i64,
        nsec: c.u32(what)?,
    };
    if t.nsec >= wfs_abi::NSEC_PER_SEC {
        return Err(WireError::Malformed(
            "a file time's nanoseconds are a second or more",
        ));
    }
    Ok(t)
}

fn get_file_info(c: &mut Cur<'_>, what: &'static str) -> Result<FileInfo, WireError> {
    let file = c.u64(what)?;
    let size = c.u64(what)?;
    let mode = c.u32(what)?;
    let mtime = get_time(c, what)?;
    let ctime = get_time(c, what)?;
    let uid = c.u32(what)?;
    let gid = c.u32(what)?;
    let root_squash = c.flag(what, "a file's root_squash is not 0 or 1")?;
    Ok(FileInfo {
        file,
        size,
        mode,
        mtime,
        ctime,
        uid,
        gid,
        root_squash,
    })
}

/// Decodes the name-service message with tag `tag`.
fn get_name_msg(tag: u8, c: &mut Cur<'_>) -> Result<NameMsg, WireError> {
    let id = |c: &mut Cur<'_>| c.u64("NAME message too short for its id");
    let name = |c: &mut Cur<'_>| -> Result<Vec<u8>, WireError> {
        let n = c.u16("NAME message too short for a name length")? as usize;
        if n > MAX_NAME_BYTES {
            return Err(WireError::Malformed("NAME message name too long"));
        }
        Ok(c.take(n, "NAME message name truncated")?.to_vec())
    };
    Ok(match tag {
        16 => NameMsg::Lookup {
            id: id(c)?,
            name: name(c)?,
        },
        17 => {
            let id = id(c)?;
            let found = match c.u8("ANSWER too short for its found flag")? {
                0 => None,
                1 => Some(get_file_info(c, "ANSWER too short for its file")?),
                _ => return Err(WireError::Malformed("ANSWER found flag is not 0 or 1")),
            };
            NameMsg::Answer { id, found }
        }
        18 => NameMsg::List { id: id(c)? },
        19 => {
            let id = id(c)?;
            let count = c.u32("LISTED too short for its count")? as usize;
            if count > MAX_LISTED {
                return Err(WireError::Malformed("LISTED carries too many names"));
            }
            let mut names = Vec::with_capacity(count);
            for _ in 0..count {
                names.push(name(c)?);
            }
            let last = match c.u8("LISTED too short for its last flag")? {
                0 => false,
                1 => true,
                _ => return Err(WireError::Malformed("LISTED last flag not 0 or 1")),
            };
            NameMsg::Listed { id, names, last }
        }
        20 => NameMsg::NameOf {
            id: id(c)?,
            file: c.u64("NAME_OF too short for its file")?,
        },
        21 => {
            let id = id(c)?;
            let name = match c.u8("NAMED too short for its found flag")? {
                0 => None,
                1 => Some(name(c)?),
                _ => return Err(WireError::Malformed("NAMED found flag is not 0 or 1")),
            };
            NameMsg::Named { id, name }
        }
        38 => NameMsg::Reserve {
            id: id(c)?,
            name: name(c)?,
            at: c.u64("RESERVE too short for its stamp")?,
        },
        39 => {
            let id = id(c)?;
            let (found, refused) = match c.u8("RESERVED too short for its state")? {
                0 => (None, false),
                1 => (None, true),
                2 => {
                    let owner = c.u16("RESERVED too short for its owner")?;
                    let f = get_file_info(c, "RESERVED too short for its file")?;
                    (Some((owner, f)), false)
                }
                _ => return Err(WireError::Malformed("RESERVED state is not 0, 1 or 2")),
            };
            NameMsg::Reserved { id, found, refused }
        }
        40 => {
            let id = id(c)?;
            let name = name(c)?;
            let made = match c.u8("FORGET too short for its made flag")? {
                0 => None,
                1 => Some(get_file_info(c, "FORGET too short for its file")?),
                _ => return Err(WireError::Malformed("FORGET made flag is not 0 or 1")),
            };
            let gone = c.u64("FORGET too short for the file gone")?;
            NameMsg::Forget {
                id,
                name,
                made,
                gone,
            }
        }
        44 => NameMsg::Release {
            name: name(c)?,
            at: c.u64("RELEASE too short for its stamp")?,
        },
        41 => NameMsg::Forgot { id: id(c)? },
        42 => NameMsg::Unlink {
            id: id(c)?,
            file: c.u64("UNLINK too short for its file")?,
            name: name(c)?,
        },
        43 => NameMsg::Unlinked {
            id: id(c)?,
            error: c.u32("UNLINKED too short for its errno")? as i32,
        },
        49 => NameMsg::Rename {
            id: id(c)?,
            file: c.u64("RENAME too short for its file")?,
            target: c.u64("RENAME too short for its target")?,
            noreplace: c.flag(
                "RENAME too short for its noreplace flag",
                "RENAME noreplace flag is not 0 or 1",
            )?,
            from: name(c)?,
            to: name(c)?,
        },
        50 => NameMsg::Renamed {
            id: id(c)?,
            error: c.u32("RENAMED too short for its errno")? as i32,
        },
        51 => NameMsg::Open {
            id: id(c)?,
            file: c.u64("OPEN too short for its file")?,
        },
        52 => NameMsg::Opened {
            id: id(c)?,
            error: c.u32("OPENED too short for its errno")? as i32,
        },
        53 => NameMsg::Close {
            file: c.u64("CLOSE too short for its file")?,
        },
        54 => {
            let id = id(c)?;
            let file = c.u64("SETTIMES too short for its file")?;
            let sec = c.u64("SETTIMES too short for its seconds")? as i64;
            let nsec = c.u32("SETTIMES too short for its nanoseconds")?;
            if nsec > wfs_abi::NSEC_MAX {
                return Err(WireError::Malformed("SETTIMES nanoseconds past a second"));
            }
            NameMsg::SetTimes {
                id,
                file,
                sec,
                nsec,
            }
        }
        55 => NameMsg::TimesSet {
            id: id(c)?,
            error: c.u32("TIMESSET too short for its errno")? as i32,
        },
        45 => NameMsg::Make {
            id: id(c)?,
            name: name(c)?,
            mode: c.u32("MAKE too short for its mode")?,
            excl: c.flag(
                "MAKE too short for its excl flag",
                "MAKE excl flag is not 0 or 1",
            )?,
            uid: c.u32("MAKE too short for its uid")?,
            gid: c.u32("MAKE too short for its gid")?,
            within_ms: c.u32("MAKE too short for its time limit")?,
        },
        46 => {
            let id = id(c)?;
            let made = match c.u8("MADE too short for its kind")? {
                0 => Ok((
                    c.u16("MADE too short for its owner")?,
                    get_file_info(c, "MADE too short for its file")?,
                )),
                1 => Err(c.u32("MADE too short for its errno")? as i32),
                _ => return Err(WireError::Malformed("MADE kind is not 0 or 1")),
            };
            NameMsg::Made { id, made }
        }
        _ => return Err(WireError::Malformed("PAGE message tag unknown")),
    })
}

/// Checks a length field.
fn check_len(len: u32) -> Result<usize, WireError> {
    if len as usize > MAX_FRAME {
        return Err(WireError::Oversized(len));
    }
    if len < 2 {
        return Err(WireError::TooShort(len));
    }
    Ok(len as usize)
}

/// Splits the first complete frame off `buf`, for callers that buffer
/// bytes themselves. Returns `Ok(None)` if `buf` does not hold a whole
/// frame yet, else the frame and the number of bytes it used.
pub fn split_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    if buf.len() < LEN_BYTES {
        return Ok(None);
    }
    let len = check_len(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))?;
    if buf.len() < LEN_BYTES + len {
        return Ok(None);
    }
    let ty = u16::from_le_bytes([buf[4], buf[5]]);
    let f = Frame::decode(ty, &buf[LEN_BYTES + 2..LEN_BYTES + len])?;
    Ok(Some((f, LEN_BYTES + len)))
}

/// Reads one frame. EOF before its first byte is [`WireError::Closed`].
/// The length is checked before anything else is read, so an oversized
/// frame costs no memory.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Frame, WireError> {
    let mut lb = [0u8; LEN_BYTES];
    let mut got = 0;
    while got < LEN_BYTES {
        match r.read(&mut lb[got..]) {
            Ok(0) if got == 0 => return Err(WireError::Closed),
            Ok(0) => {
                return Err(WireError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a frame length",
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    let len = check_len(u32::from_le_bytes(lb))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a frame")
        } else {
            e
        }
    })?;
    let ty = u16::from_le_bytes([body[0], body[1]]);
    Frame::decode(ty, &body[2..])
}

/// Whether `buf` begins with a whole PAGE frame, which [`read_frame`]
/// takes from a reader holding it without a system call.
pub fn page_frame_buffered(buf: &[u8]) -> bool {
    let Some((len, rest)) = buf.split_first_chunk::<LEN_BYTES>() else {
        return false;
    };
    let len = u32::from_le_bytes(*len) as usize;
    len >= 2 && rest.len() >= len && u16::from_le_bytes([rest[0], rest[1]]) == T_PAGE
}

/// Writes one frame in a single `write_all`.
pub fn write_frame<W: Write>(w: &mut W, f: &Frame) -> io::Result<()> {
    w.write_all(&f.encode())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_part_of_a_listing_of_the_longest_names_fits_a_frame() {
        let names: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| format!("{i:0>255}").into_bytes())
            .collect();
        for names in crate::names::listing_parts(names) {
            let f = Frame::Page(crate::session::Frame {
                seq: 1,
                ack: 0,
                msg: Some(PeerMsg::Name(NameMsg::Listed {
                    id: 1,
                    names,
                    last: false,
                })),
            });
            assert!(f.encode().len() <= MAX_FRAME);
        }
    }

    #[test]
    fn the_largest_message_of_each_kind_fits_a_frame() {
        let page = PageId {
            file: u64::MAX,
            index: u64::MAX,
        };
        let txn = u64::MAX;
        let data = vec![0xa5; wfs_abi::PAGE_SIZE];
        // Names come from the kernel's LOOKUPs and the export directory:
        // at most NAME_MAX bytes (Linux's limit, which the kernel checks).
        let name = vec![b'n'; wfs_abi::NAME_MAX];
        let page_msgs = [
            Msg::Data {
                txn,
                page,
                data: data.clone().into(),
                dirty: true,
                epoch: u64::MAX,
                owner: u64::MAX,
                access: Access::Write,
            },
            Msg::Put {
                page,
                epoch: u64::MAX,
                seq: u64::MAX,
                data: data.into(),
                home: true,
            },
            Msg::Orphan {
                page,
                epoch: u64::MAX,
                seq: u64::MAX,
                owner: u64::MAX,
                data: vec![0x5a; wfs_abi::PAGE_SIZE].into(),
            },
            Msg::Holding {
                pages: vec![(page, u64::MAX, Held::Write); HOLDING_PART],
                last: true,
            },
        ];
        let name_msgs = [
            NameMsg::Lookup {
                id: u64::MAX,
                name: name.clone(),
            },
            NameMsg::Named {
                id: u64::MAX,
                name: Some(name),
            },
        ];
        let msgs = page_msgs
            .into_iter()
            .map(PeerMsg::Page)
            .chain(name_msgs.into_iter().map(PeerMsg::Name))
            .chain([PeerMsg::View(ViewMsg::Peeked {
                id: u64::MAX,
                page,
                data: Ok(vec![0x5a; wfs_abi::PAGE_SIZE].into()),
            })]);
        for msg in msgs {
            let f = Frame::Page(session::Frame {
                seq: u64::MAX,
                ack: u64::MAX,
                msg: Some(msg),
            });
            let len = f.encode().len();
            assert!(len <= MAX_FRAME, "{len} bytes: {f:?}");
            assert_eq!(read_frame(&mut Cursor::new(f.encode())).unwrap(), f);
        }
    }

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::hello("wfs-vm", "h1", 7),
            Frame::Hello {
                version: PROTOCOL_VERSION,
                cluster: String::new(),
                host: "x".repeat(255),
                incarnation: u64::MAX,
            },
            Frame::HelloAck {
                version: 1,
                host: "h2".into(),
                incarnation: 0,
            },
            Frame::Refuse {
                reason: "cluster name mismatch".into(),
            },
            Frame::Refuse {
                reason: String::new(),
            },
            Frame::Ping { seq: 0 },
            Frame::Ping { seq: u64::MAX },
            Frame::Pong { seq: 12345 },
        ]
    }

    fn raw(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 2) as u32).to_le_bytes().to_vec();
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip() {
        for f in all_frames() {
            let b = f.encode();
            assert_eq!(
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                b.len() - 4
            );
            assert_eq!(read_frame(&mut Cursor::new(&b)).unwrap(), f);
            assert_eq!(split_frame(&b).unwrap(), Some((f.clone(), b.len())));
        }
    }

    #[test]
    fn hello_layout() {
        let b = Frame::hello("cl", "h1", 7).encode();
        let mut want = raw(
            T_HELLO,
            &[
                b'W',
                b'F',
                b'S',
                b'P',
                PROTOCOL_VERSION as u8,
                0,
                2,
                0,
                b'c',
                b'l',
                2,
                0,
                b'h',
                b'1',
                7,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
        );
        assert_eq!(b, want);
        want = raw(T_HELLO_ACK, &[1, 0, 1, 0, b'z', 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Frame::HelloAck {
                version: 1,
                host: "z".into(),
                incarnation: 1,
            }
            .encode(),
            want
        );
        assert_eq!(
            Frame::Ping { seq: 258 }.encode(),
            raw(T_PING, &[2, 1, 0, 0, 0, 0, 0, 0])
        );
    }

    #[test]
    fn stream_of_frames() {
        let mut b = Vec::new();
        for f in all_frames() {
            b.extend_from_slice(&f.encode());
        }
        let mut c = Cursor::new(&b);
        for f in all_frames() {
            assert_eq!(read_frame(&mut c).unwrap(), f);
        }
        assert!(matches!(read_frame(&mut c), Err(WireError::Closed)));
        // The same through split_frame, fed byte by byte.
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &byte in &b {
            buf.push(byte);
            while let Some((f, n)) = split_frame(&buf).unwrap() {
                out.push(f);
                buf.drain(..n);
            }
        }
        assert_eq!(out, all_frames());
        assert!(buf.is_empty());
    }

    #[test]
    fn truncated_frames() {
        for f in all_frames() {
            let b = f.encode();
            for n in 1..b.len() {
                let r = read_frame(&mut Cursor::new(&b[..n]));
                assert!(
                    matches!(&r, Err(WireError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof),
                    "{f:?} cut at {n}: {r:?}"
                );
                assert_eq!(split_frame(&b[..n]).unwrap(), None);
            }
        }
        assert!(matches!(
            read_frame(&mut Cursor::new(&[] as &[u8])),
            Err(WireError::Closed)
        ));
    }

    #[test]
    fn oversized() {
        let len = (MAX_FRAME + 1) as u32;
        let mut b = len.to_le_bytes().to_vec();
        b.extend_from_slice(&T_PING.to_le_bytes());
        assert!(matches!(
            read_frame(&mut Cursor::new(&b)),
            Err(WireError::Oversized(n)) if n == len
        ));
        assert!(matches!(split_frame(&b), Err(WireError::Oversized(_))));
        let b = u32::MAX.to_le_bytes();
        assert!(matches!(
            read_frame(&mut Cursor::new(&b)),
            Err(WireError::Oversized(u32::MAX))
        ));
        // Exactly MAX_FRAME passes the length check (and then fails on
        // content, since no frame of this version is that long).
        let mut b = (MAX_FRAME as u32).to_le_bytes().to_vec();
        b.extend_from_slice(&T_REFUSE.to_le_bytes());
        b.resize(4 + MAX_FRAME, 0);
        assert!(matches!(
            read_frame(&mut Cursor::new(&b)),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn too_short_length() {
        for len in [0u32, 1] {
            let mut b = len.to_le_bytes().to_vec();
            b.extend_from_slice(&[0, 0]);
            assert!(matches!(
                read_frame(&mut Cursor::new(&b)),
                Err(WireError::TooShort(n)) if n == len
            ));
            assert!(matches!(split_frame(&b), Err(WireError::TooShort(_))));
        }
    }

    fn page_frames() -> Vec<Frame> {
        let page = PageId { file: 9, index: 3 };
        let msgs = vec![
            Msg::WhereIs {
                txn: 1,
                page,
                access: Access::Read,
            },
            Msg::WhereIs {
                txn: 1,
                page,
                access: Access::Write,
            },
            Msg::Fetch {
                txn: 2,
                page,
                to: 4,
                incarnation: 0x1234_5678_9abc,
                epoch: 5,
            },
            Msg::Data {
                txn: 3,
                page,
                data: vec![7; 4096].into(),
                dirty: true,
                epoch: 6,
                owner: u64::MAX,
                access: Access::Write,
            },
            Msg::Data {
                txn: 3,
                page,
                data: vec![8; 4096].into(),
                dirty: false,
                epoch: 7,
                owner: 1,
                access: Access::Read,
            },
            Msg::Absent { txn: 4, page },
            Msg::Done { txn: 5, page },
            Msg::Returned { txn: 6, page },
            Msg::Released { page },
            Msg::Leaving { incarnation: 9 },
            Msg::Holding {
                pages: vec![],
                last: true,
            },
            Msg::Holding {
                pages: vec![
                    (page, 3, Held::Write),
                    (PageId { file: 1, index: 2 }, u64::MAX, Held::Read),
                ],
                last: false,
            },
            Msg::Recover {
                dead: 3,
                incarnation: u64::MAX - 1,
                left: false,
            },
            Msg::Recover {
                dead: 1,
                incarnation: 4,
                left: true,
            },
            Msg::Recovered {
                dead: 2,
                incarnation: 7,
            },
            Msg::Put {
                page,
                epoch: 7,
                seq: 8,
                data: vec![1, 2, 3].into(),
                home: true,
            },
            Msg::Orphan {
                page,
                epoch: 9,
                seq: 10,
                owner: 11,
                data: vec![4, 5, 6].into(),
            },
            Msg::PutAck {
                page,
                seq: 8,
                error: 28,
            },
            Msg::Failed {
                txn: 9,
                page,
                error: 5,
            },
            Msg::Share { txn: 10, page },
            Msg::Kept { txn: 11, page },
            Msg::Revoke { txn: 12, page },
            Msg::Revoked { txn: 13, page },
            Msg::Upgrade { txn: 14, page },
            Msg::Upgraded {
                txn: 15,
                page,
                epoch: u64::MAX,
            },
            Msg::Stale { txn: 16, page },
        ];
        let info = FileInfo {
            file: 9,
            size: 65536,
            mode: 0o644,
            mtime: Time {
                sec: i64::MIN,
                nsec: 999_999_999,
            },
            ctime: Time {
                sec: 1_764_000_000,
                nsec: 1,
            },
            uid: u32::MAX,
            gid: 65534,
            root_squash: true,
        };
        let msgs = msgs.into_iter().map(PeerMsg::Page).chain(
            [
                NameMsg::Lookup {
                    id: 1,
                    name: b"shared".to_vec(),
                },
                NameMsg::Answer { id: 1, found: None },
                NameMsg::Answer {
                    id: 2,
                    found: Some(info),
                },
                NameMsg::List { id: 3 },
                NameMsg::NameOf { id: 4, file: 77 },
                NameMsg::Named { id: 5, name: None },
                NameMsg::Reserve {
                    id: 6,
                    name: b"x-journal".to_vec(),
                    at: u64::MAX,
                },
                NameMsg::Reserved {
                    id: 7,
                    found: None,
                    refused: false,
                },
                NameMsg::Reserved {
                    id: 7,
                    found: None,
                    refused: true,
                },
                NameMsg::Reserved {
                    id: 8,
                    found: Some((
                        7,
                        FileInfo {
                            file: 1,
                            size: 2,
                            mode: 0o600,
                            ..info
                        },
                    )),
                    refused: false,
                },
                NameMsg::Forget {
                    id: 9,
                    name: vec![b'f'; 255],
                    made: None,
                    gone: u64::MAX,
                },
                NameMsg::Forget {
                    id: 0,
                    name: b"m".to_vec(),
                    made: Some(FileInfo {
                        file: u64::MAX,
                        size: 0,
                        mode: 0o7777,
                        ..info
                    }),
                    gone: 0,
                },
                NameMsg::Release {
                    name: b"r".to_vec(),
                    at: 3,
                },
                NameMsg::Forgot { id: 10 },
                NameMsg::Unlink {
                    id: 11,
                    file: u64::MAX,
                    name: b"u".to_vec(),
                },
                NameMsg::Unlinked {
                    id: 12,
                    error: libc::EBUSY,
                },
                NameMsg::Make {
                    id: 13,
                    name: b"p.db".to_vec(),
                    mode: 0o640,
                    excl: true,
                    uid: 1000,
                    gid: 65534,
                    within_ms: 29_000,
                },
                NameMsg::Made {
                    id: 14,
                    made: Ok((
                        7,
                        FileInfo {
                            file: 9,
                            size: 0,
                            mode: 0o100640,
                            mtime: Time::default(),
                            ctime: Time { sec: -1, nsec: 0 },
                            uid: 1000,
                            gid: 0,
                            root_squash: false,
                        },
                    )),
                },
                NameMsg::Made {
                    id: 15,
                    made: Err(libc::EEXIST),
                },
                NameMsg::Rename {
                    id: 16,
                    file: u64::MAX,
                    target: 0,
                    noreplace: true,
                    from: b"a.tmp".to_vec(),
                    to: b"a".to_vec(),
                },
                NameMsg::Rename {
                    id: 17,
                    file: 5,
                    target: u64::MAX,
                    noreplace: false,
                    from: vec![b'f'; 255],
                    to: vec![b't'; 255],
                },
                NameMsg::Renamed {
                    id: 18,
                    error: libc::EXDEV,
                },
                NameMsg::Open {
                    id: 19,
                    file: u64::MAX,
                },
                NameMsg::Open { id: 0, file: 7 },
                NameMsg::Opened {
                    id: 20,
                    error: libc::ENOENT,
                },
                NameMsg::Close { file: 8 },
                NameMsg::SetTimes {
                    id: 21,
                    file: 9,
                    sec: -2,
                    nsec: 999_999_999,
                },
                NameMsg::TimesSet {
                    id: 21,
                    error: libc::EROFS,
                },
                NameMsg::Named {
                    id: 6,
                    name: Some(b"shared".to_vec()),
                },
                NameMsg::Listed {
                    id: 3,
                    names: vec![b"a".to_vec(), b"bc".to_vec()],
                    last: false,
                },
                NameMsg::Listed {
                    id: 4,
                    names: vec![],
                    last: true,
                },
            ]
            .into_iter()
            .map(PeerMsg::Name),
        );
        let view = PageId { file: 9, index: 3 };
        let msgs = msgs.chain(
            [
                ViewMsg::Peek { id: 1, page: view },
                ViewMsg::Peeked {
                    id: 1,
                    page: view,
                    data: Ok(vec![0xa5; wfs_abi::PAGE_SIZE].into()),
                },
                ViewMsg::Peeked {
                    id: u64::MAX,
                    page: view,
                    data: Err(2),
                },
            ]
            .into_iter()
            .map(PeerMsg::View),
        );
        let msgs = msgs.chain(lock_msgs().into_iter().map(PeerMsg::Lock));
        let msgs = msgs.chain(size_msgs().into_iter().map(PeerMsg::Size));
        let mut v: Vec<Frame> = msgs
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                Frame::Page(session::Frame {
                    seq: i as u64 + 1,
                    ack: 40 + i as u64,
                    msg: Some(m),
                })
            })
            .collect();
        v.push(Frame::Page(session::Frame {
            seq: 0,
            ack: 77,
            msg: None,
        }));
        v
    }

    /// Every shape of size message.
    fn size_msgs() -> Vec<SizeMsg> {
        vec![
            SizeMsg::Set {
                id: 1,
                file: u64::MAX,
                size: 0,
                grow: false,
            },
            SizeMsg::Set {
                id: u64::MAX,
                file: 2,
                size: wfs_abi::SIZE_MAX,
                grow: true,
            },
            SizeMsg::Answer {
                id: 3,
                result: Ok(wfs_abi::SIZE_MAX),
            },
            SizeMsg::Answer {
                id: 4,
                result: Ok(0),
            },
            SizeMsg::Answer {
                id: 5,
                result: Err(wfs_abi::errno::EOPNOTSUPP),
            },
            SizeMsg::Is {
                id: 6,
                file: 7,
                size: 65536,
            },
            SizeMsg::IsAck { id: u64::MAX },
            SizeMsg::Stat { id: 13, file: 14 },
            SizeMsg::Times {
                file: 12,
                mtime: Time {
                    sec: i64::MIN,
                    nsec: 999_999_999,
                },
                ctime: Time {
                    sec: i64::MAX,
                    nsec: 0,
                },
                perm: crate::names::Perm {
                    mode: 0o4755,
                    uid: u32::MAX,
                    gid: 7,
                    root_squash: true,
                },
            },
            SizeMsg::Cut {
                id: 8,
                file: 9,
                size: 0,
            },
            SizeMsg::Cut {
                id: 10,
                file: 11,
                size: wfs_abi::SIZE_MAX,
            },
        ]
    }

    #[test]
    fn size_messages_have_the_documented_layout() {
        let f = |m| {
            Frame::Page(session::Frame {
                seq: 1,
                ack: 0,
                msg: Some(PeerMsg::Size(m)),
            })
            .encode_payload()[16..]
                .to_vec()
        };
        let le = |vs: &[u64]| -> Vec<u8> { vs.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let mut want = vec![33];
        want.extend(le(&[1, 2, 3]));
        want.push(1);
        assert_eq!(
            f(SizeMsg::Set {
                id: 1,
                file: 2,
                size: 3,
                grow: true
            }),
            want
        );
        want[25] = 0;
        assert_eq!(
            f(SizeMsg::Set {
                id: 1,
                file: 2,
                size: 3,
                grow: false
            }),
            want
        );
        let mut want = vec![34];
        want.extend(le(&[4]));
        want.extend_from_slice(&0i32.to_le_bytes());
        want.extend(le(&[5]));
        assert_eq!(
            f(SizeMsg::Answer {
                id: 4,
                result: Ok(5)
            }),
            want
        );
        let mut want = vec![34];
        want.extend(le(&[4]));
        want.extend_from_slice(&95i32.to_le_bytes());
        assert_eq!(
            f(SizeMsg::Answer {
                id: 4,
                result: Err(95)
            }),
            want
        );
        let mut want = vec![35];
        want.extend(le(&[6, 7, 8]));
        assert_eq!(
            f(SizeMsg::Is {
                id: 6,
                file: 7,
                size: 8
            }),
            want
        );
        let mut want = vec![36];
        want.extend(le(&[9]));
        assert_eq!(f(SizeMsg::IsAck { id: 9 }), want);
        let mut want = vec![37];
        want.extend(le(&[6, 7, 8]));
        assert_eq!(
            f(SizeMsg::Cut {
                id: 6,
                file: 7,
                size: 8
            }),
            want
        );
        let mut want = vec![48];
        want.extend(le(&[5, 6]));
        assert_eq!(f(SizeMsg::Stat { id: 5, file: 6 }), want);
        let mut want = vec![47];
        want.extend(le(&[7, 8]));
        want.extend_from_slice(&9u32.to_le_bytes());
        want.extend_from_slice(&(-1i64).to_le_bytes());
        want.extend_from_slice(&10u32.to_le_bytes());
        for v in [0o640u32, 1000, 100] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.push(1);
        assert_eq!(
            f(SizeMsg::Times {
                file: 7,
                mtime: Time { sec: 8, nsec: 9 },
                ctime: Time { sec: -1, nsec: 10 },
                perm: crate::names::Perm {
                    mode: 0o640,
                    uid: 1000,
                    gid: 100,
                    root_squash: true,
                },
            }),
            want
        );
    }

    #[test]
    fn size_messages_refuse_nonsense() {
        let page = |payload: &[u8]| Frame::decode(T_PAGE, payload);
        let frame = |m| {
            Frame::Page(session::Frame {
                seq: 1,
                ack: 0,
                msg: Some(PeerMsg::Size(m)),
            })
            .encode_payload()
        };
        let bad = |p: &[u8]| matches!(page(p), Err(WireError::Malformed(_)));
        // After the 16-byte session header and the tag: id, file, size.
        let set = frame(SizeMsg::Set {
            id: 1,
            file: 2,
            size: 3,
            grow: true,
        });
        assert!(page(&set).is_ok());
        let (size_at, grow_at) = (17 + 16, 17 + 24);
        for g in [2u8, 255] {
            let mut p = set.clone();
            p[grow_at] = g;
            assert!(bad(&p), "grow {g}");
        }
        let is = frame(SizeMsg::Is {
            id: 1,
            file: 2,
            size: 3,
        });
        for msg in [&set, &is] {
            for size in [wfs_abi::SIZE_MAX + 1, u64::MAX] {
                let mut p = msg.clone();
                p[size_at..size_at + 8].copy_from_slice(&size.to_le_bytes());
                assert!(bad(&p), "{size}");
            }
            let mut p = msg.clone();
            p[size_at..size_at + 8].copy_from_slice(&wfs_abi::SIZE_MAX.to_le_bytes());
            assert!(page(&p).is_ok());
        }
        // An answer: a negative error, a size past the largest file, a
        // size after an error, or none after success.
        let answer = |error: i32, rest: &[u8]| {
            let mut p = frame(SizeMsg::IsAck { id: 1 });
            p[16] = 34;
            p.extend_from_slice(&error.to_le_bytes());
            p.extend_from_slice(rest);
            page(&p)
        };
        assert!(answer(0, &7u64.to_le_bytes()).is_ok());
        assert!(answer(95, &[]).is_ok());
        for (error, rest) in [
            (-95, vec![]),
            (i32::MIN, vec![]),
            (0, (wfs_abi::SIZE_MAX + 1).to_le_bytes().to_vec()),
            (0, vec![]),
            (0, vec![0; 7]),
            (95, 7u64.to_le_bytes().to_vec()),
        ] {
            assert!(
                matches!(answer(error, &rest), Err(WireError::Malformed(_))),
                "{error} {rest:?}"
            );
        }
        // Times with nanoseconds of a second or more, or cut short.
        let times = frame(SizeMsg::Times {
            file: 1,
            mtime: Time { sec: 2, nsec: 3 },
            ctime: Time { sec: 4, nsec: 5 },
            perm: crate::names::Perm::default(),
        });
        assert!(page(&times).is_ok());
        for at in [17 + 16, 17 + 28] {
            for nsec in [wfs_abi::NSEC_PER_SEC, u32::MAX] {
                let mut p = times.clone();
                p[at..at + 4].copy_from_slice(&nsec.to_le_bytes());
                assert!(bad(&p), "{at} {nsec}");
            }
        }
        assert!(bad(&times[..times.len() - 1]));
        // A root_squash byte other than 0 or 1.
        let mut p = times.clone();
        *p.last_mut().unwrap() = 2;
        assert!(bad(&p));
        // An acknowledgement with anything after its id.
        let mut p = frame(SizeMsg::IsAck { id: 1 });
        assert!(page(&p).is_ok());
        p.push(0);
        assert!(bad(&p));
    }

    /// Every shape of lock message.
    fn lock_msgs() -> Vec<LockMsg> {
        let ask_with = |op, kind, range, prior| LockMsg::Ask {
            id: 3,
            file: u64::MAX,
            owner: 0x1234_5678_9abc,
            kind,
            op,
            range,
            pid: 4242,
            wait_ms: u32::MAX,
            prior,
        };
        let ask = |op, kind, range| ask_with(op, kind, range, Vec::new());
        let some = Range { start: 5, end: 10 };
        let last = Range {
            start: 0,
            end: i64::MAX as u64,
        };
        let prior = vec![
            (Mode::Read, Range { start: 5, end: 7 }),
            (Mode::Write, Range { start: 8, end: 10 }),
        ];
        let holder = |kind, mode, range| Holder {
            host: 7,
            kind,
            mode,
            range,
            pid: u32::MAX,
        };
        vec![
            ask(Op::Get(Mode::Read), Kind::Posix, some),
            ask(Op::Set(Mode::Write), Kind::Ofd, last),
            ask(Op::Wait(Mode::Read), Kind::Flock, Range::ALL),
            ask(Op::Unlock, Kind::Posix, Range::ALL),
            LockMsg::Answer {
                id: 1,
                result: Ok(None),
                prior: Vec::new(),
            },
            LockMsg::Answer {
                id: u64::MAX,
                result: Ok(Some(holder(Kind::Posix, Mode::Write, some))),
                prior: Vec::new(),
            },
            LockMsg::Answer {
                id: 2,
                result: Ok(Some(holder(Kind::Ofd, Mode::Read, Range::ALL))),
                prior: Vec::new(),
            },
            LockMsg::Answer {
                id: 2,
                result: Err(wfs_abi::errno::EAGAIN),
                prior: Vec::new(),
            },
            // A grant with what was held before, and the undo's unlock.
            LockMsg::Answer {
                id: 4,
                result: Ok(None),
                prior: prior.clone(),
            },
            ask_with(Op::Unlock, Kind::Ofd, some, prior),
            ask_with(
                Op::Unlock,
                Kind::Flock,
                Range::ALL,
                vec![(Mode::Write, Range::ALL), (Mode::Read, last)],
            ),
        ]
    }

    #[test]
    fn lock_messages_have_the_documented_layout() {
        let f = |m| {
            Frame::Page(session::Frame {
                seq: 1,
                ack: 0,
                msg: Some(PeerMsg::Lock(m)),
            })
            .encode_payload()[16..]
                .to_vec()
        };
        let ask = f(LockMsg::Ask {
            id: 1,
            file: 2,
            owner: 3,
            kind: Kind::Ofd,
            op: Op::Wait(Mode::Write),
            range: Range { start: 4, end: 5 },
            pid: 6,
            wait_ms: 7,
            prior: Vec::new(),
        });
        let mut want = vec![31];
        for v in [1u64, 2, 3] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&[2, 3, 2]);
        for v in [4u64, 5] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&6u32.to_le_bytes());
        want.extend_from_slice(&7u32.to_le_bytes());
        want.extend_from_slice(&0u16.to_le_bytes());
        assert_eq!(ask, want);
        // The undo's unlock: no mode, and the prior at the end.
        let undo = f(LockMsg::Ask {
            id: 1,
            file: 2,
            owner: 3,
            kind: Kind::Posix,
            op: Op::Unlock,
            range: Range { start: 4, end: 9 },
            pid: 0,
            wait_ms: 0,
            prior: vec![
                (Mode::Read, Range { start: 4, end: 6 }),
                (Mode::Write, Range { start: 7, end: 8 }),
            ],
        });
        let mut want = vec![31];
        for v in [1u64, 2, 3] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&[1, 4, 0]);
        for v in [4u64, 9] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&2u16.to_le_bytes());
        for (m, s, e) in [(1u8, 4u64, 6u64), (2, 7, 8)] {
            want.push(m);
            want.extend_from_slice(&s.to_le_bytes());
            want.extend_from_slice(&e.to_le_bytes());
        }
        assert_eq!(undo, want);
        let answer = f(LockMsg::Answer {
            id: 1,
            result: Ok(Some(Holder {
                host: 9,
                kind: Kind::Posix,
                mode: Mode::Read,
                range: Range::ALL,
                pid: 8,
            })),
            prior: Vec::new(),
        });
        let mut want = vec![32];
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&0i32.to_le_bytes());
        want.push(1);
        want.extend_from_slice(&9u16.to_le_bytes());
        want.extend_from_slice(&[1, 1]);
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&u64::MAX.to_le_bytes());
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(&0u16.to_le_bytes());
        assert_eq!(answer, want);
        // A grant, with what was held before; an error, with no prior.
        let grant = f(LockMsg::Answer {
            id: 1,
            result: Ok(None),
            prior: vec![(Mode::Read, Range::ALL)],
        });
        let mut want = vec![32];
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&0i32.to_le_bytes());
        want.push(0);
        want.extend_from_slice(&1u16.to_le_bytes());
        want.push(1);
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(grant, want);
        let error = f(LockMsg::Answer {
            id: 1,
            result: Err(11),
            prior: Vec::new(),
        });
        let mut want = vec![32];
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&11i32.to_le_bytes());
        want.extend_from_slice(&0u16.to_le_bytes());
        assert_eq!(error, want);
        // The longest prior goes whole (in a frame far below MAX_FRAME); a
        // longer one is cut there.
        let full: Vec<(Mode, Range)> = (0..MAX_PRIOR as u64)
            .map(|i| {
                let m = if i % 2 == 0 { Mode::Read } else { Mode::Write };
                (m, Range::new(2 * i, 2 * i + 1).expect("range"))
            })
            .collect();
        for m in [
            LockMsg::Answer {
                id: 5,
                result: Ok(None),
                prior: full.clone(),
            },
            LockMsg::Ask {
                id: 6,
                file: 2,
                owner: 3,
                kind: Kind::Posix,
                op: Op::Unlock,
                range: Range::ALL,
                pid: 0,
                wait_ms: 0,
                prior: full.clone(),
            },
        ] {
            let frame = Frame::Page(session::Frame {
                seq: 1,
                ack: 0,
                msg: Some(PeerMsg::Lock(m)),
            });
            let b = frame.encode();
            assert!(b.len() < MAX_FRAME / 8);
            assert_eq!(read_frame(&mut Cursor::new(&b)).unwrap(), frame);
        }
        let mut long = full.clone();
        long.push((Mode::Read, Range::ALL));
        let cut = f(LockMsg::Answer {
            id: 1,
            result: Ok(None),
            prior: long,
        });
        assert_eq!(cut.len(), 1 + 8 + 4 + 1 + 2 + MAX_PRIOR * 17);
        assert_eq!(cut[14..16], (MAX_PRIOR as u16).to_le_bytes());
    }

    #[test]
    fn lock_messages_refuse_nonsense() {
        let page = |payload: &[u8]| Frame::decode(T_PAGE, payload);
        let frame = |m| {
            Frame::Page(session::Frame {
                seq: 1,
                ack: 0,
                msg: Some(PeerMsg::Lock(m)),
            })
            .encode_payload()
        };
        let ask = frame(LockMsg::Ask {
            id: 1,
            file: 2,
            owner: 3,
            kind: Kind::Posix,
            op: Op::Set(Mode::Read),
            range: Range { start: 4, end: 5 },
            pid: 6,
            wait_ms: 7,
            prior: Vec::new(),
        });
        assert!(page(&ask).is_ok());
        // Offsets after the 16-byte session header and the tag.
        let (kind, op, mode, start, end) = (17 + 24, 17 + 25, 17 + 26, 17 + 27, 17 + 35);
        let bad = |at: usize, bytes: &[u8]| {
            let mut p = ask.clone();
            p[at..at + bytes.len()].copy_from_slice(bytes);
            page(&p)
        };
        for (at, bytes) in [
            (kind, &[0u8][..]),
            (kind, &[4]),
            (op, &[0]),
            (op, &[5]),
            (mode, &[0]),
            (mode, &[3]),
        ] {
            assert!(
                matches!(bad(at, bytes), Err(WireError::Malformed(_))),
                "{at} {bytes:?}"
            );
        }
        // An unlock carries no mode.
        let mut p = ask.clone();
        p[op] = 4;
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        p[mode] = 0;
        assert!(page(&p).is_ok());
        // Empty, reversed, and past the largest offset.
        for (s, e) in [
            (4u64, 4u64),
            (5, 4),
            (0, i64::MAX as u64 + 1),
            (i64::MAX as u64 + 1, u64::MAX),
        ] {
            let mut p = ask.clone();
            p[start..start + 8].copy_from_slice(&s.to_le_bytes());
            p[end..end + 8].copy_from_slice(&e.to_le_bytes());
            assert!(matches!(page(&p), Err(WireError::Malformed(_))), "{s} {e}");
        }
        // An answer with a negative error, a found flag not 0 or 1, or a
        // holder of no mode.
        let answer = |error: i32, rest: &[u8]| {
            let mut p = frame(LockMsg::Answer {
                id: 1,
                result: Ok(None),
                prior: Vec::new(),
            });
            p.truncate(17 + 8);
            p.extend_from_slice(&error.to_le_bytes());
            p.extend_from_slice(rest);
            page(&p)
        };
        assert!(answer(0, &[0, 0, 0]).is_ok());
        assert!(answer(11, &[0, 0]).is_ok());
        // (The prior's count is not optional.)
        assert!(matches!(answer(0, &[0]), Err(WireError::Malformed(_))));
        assert!(matches!(answer(11, &[]), Err(WireError::Malformed(_))));
        assert!(matches!(answer(-11, &[0, 0]), Err(WireError::Malformed(_))));
        assert!(matches!(
            answer(0, &[2, 0, 0]),
            Err(WireError::Malformed(_))
        ));
        let mut holder = vec![1, 9, 0, 1, 1];
        holder.extend_from_slice(&0u64.to_le_bytes());
        holder.extend_from_slice(&1u64.to_le_bytes());
        holder.extend_from_slice(&5u32.to_le_bytes());
        holder.extend_from_slice(&[0, 0]);
        assert!(answer(0, &holder).is_ok());
        holder[4] = 3;
        assert!(matches!(answer(0, &holder), Err(WireError::Malformed(_))));
        // A prior: a piece of no mode, an empty or reversed range, one past
        // the largest offset, too many pieces, or fewer than counted.
        let piece = |mode: u8, s: u64, e: u64| {
            let mut v = vec![mode];
            v.extend_from_slice(&s.to_le_bytes());
            v.extend_from_slice(&e.to_le_bytes());
            v
        };
        let with_prior = |count: u16, pieces: &[Vec<u8>]| {
            let mut rest = vec![0];
            rest.extend_from_slice(&count.to_le_bytes());
            for p in pieces {
                rest.extend_from_slice(p);
            }
            answer(0, &rest)
        };
        assert!(with_prior(2, &[piece(1, 0, 4), piece(2, 4, u64::MAX)]).is_ok());
        for bad in [
            piece(0, 0, 4),
            piece(3, 0, 4),
            piece(1, 4, 4),
            piece(1, 5, 4),
            piece(2, 0, i64::MAX as u64 + 1),
        ] {
            assert!(
                matches!(
                    with_prior(1, std::slice::from_ref(&bad)),
                    Err(WireError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            with_prior(2, &[piece(1, 0, 4)]),
            Err(WireError::Malformed(_))
        ));
        let many = vec![piece(1, 0, 4); MAX_PRIOR + 1];
        assert!(with_prior(MAX_PRIOR as u16, &many[..MAX_PRIOR]).is_ok());
        assert!(matches!(
            with_prior(MAX_PRIOR as u16 + 1, &many),
            Err(WireError::Malformed(_))
        ));
        // An ask's prior likewise.
        let mut p = ask.clone();
        let at = p.len() - 2;
        p[at..].copy_from_slice(&1u16.to_le_bytes());
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        p.extend_from_slice(&piece(2, 4, 5));
        assert!(page(&p).is_ok());
        let m = p.len() - 17;
        p[m] = 0;
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
    }

    /// Decodes `bytes` as one frame: refused, or a frame that encodes and
    /// decodes to itself. Never a panic (a count in a payload that claims
    /// more than the frame holds must not be allocated either).
    fn decodes_or_refuses(bytes: &[u8]) -> bool {
        match read_frame(&mut Cursor::new(bytes)) {
            Ok(f) => {
                let again = f.encode();
                assert!(again.len() <= LEN_BYTES + MAX_FRAME);
                assert_eq!(read_frame(&mut Cursor::new(&again)).unwrap(), f);
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn random_and_mutated_frames_decode_to_themselves_or_are_refused_never_panic() {
        // A seeded generator (xorshift64*): the same 120,000 frames on
        // every run, so a failure is reproducible by its index.
        let mut state = 0x5eed_f00d_cafe_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let corpus: Vec<Vec<u8>> = all_frames()
            .iter()
            .chain(page_frames().iter())
            .map(Frame::encode)
            .collect();
        let tags: Vec<[u8; 2]> = corpus.iter().map(|c| [c[4], c[5]]).collect();
        let with_len = |mut body: Vec<u8>| {
            let mut out = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
            out.append(&mut body);
            out
        };
        let (mut decoded, mut refused) = (0u32, 0u32);
        for i in 0..120_000u64 {
            let r = next();
            let pick = &corpus[(r % corpus.len() as u64) as usize];
            let bytes = match i % 5 {
                // Random payloads under every frame type.
                0 => {
                    let tag = tags[(r % tags.len() as u64) as usize];
                    let len = (next() % 96) as usize;
                    let mut body = tag.to_vec();
                    body.extend((0..len).map(|_| next() as u8));
                    with_len(body)
                }
                // Bits flipped in a real frame's payload (its length kept).
                1 => {
                    let mut b = pick.clone();
                    for _ in 0..=(next() % 4) {
                        let at = LEN_BYTES + (next() as usize % (b.len() - LEN_BYTES));
                        b[at] ^= 1 << (next() % 8);
                    }
                    b
                }
                // Cut short, or lengthened with garbage, length fixed up.
                2 => {
                    let mut body = pick[LEN_BYTES..].to_vec();
                    if next() % 2 == 0 {
                        body.truncate(2 + (next() as usize % (body.len() - 1)));
                    } else {
                        body.extend((0..=(next() % 64)).map(|_| next() as u8));
                    }
                    with_len(body)
                }
                // A run of bytes overwritten with big numbers (counts and
                // lengths inside the payload that claim too much).
                3 => {
                    let mut b = pick.clone();
                    let at = LEN_BYTES + 2 + (next() as usize % (b.len() - LEN_BYTES - 1).max(1));
                    for x in b.iter_mut().skip(at).take(8) {
                        *x = if next() % 3 == 0 { 0xff } else { next() as u8 };
                    }
                    b
                }
                // A real frame under another frame type's tag.
                _ => {
                    let mut b = pick.clone();
                    let tag = tags[(next() % tags.len() as u64) as usize];
                    b[4..6].copy_from_slice(&tag);
                    b
                }
            };
            if decodes_or_refuses(&bytes) {
                decoded += 1;
            } else {
                refused += 1;
            }
        }
        // (Both outcomes happen often: the generator reaches the decoders'
        // insides, not only their first check.)
        assert!(
            decoded > 5_000 && refused > 20_000,
            "{decoded} decoded, {refused} refused"
        );
    }

    #[test]
    fn page_frames_roundtrip() {
        for f in page_frames() {
            let b = f.encode();
            assert_eq!(read_frame(&mut Cursor::new(&b)).unwrap(), f, "{f:?}");
            // Every truncation of the payload, and one trailing byte, is
            // refused.
            for cut in 6..b.len() {
                let mut t = b[..cut].to_vec();
                t[..4].copy_from_slice(&((cut - 4) as u32).to_le_bytes());
                assert!(
                    read_frame(&mut Cursor::new(&t)).is_err(),
                    "{f:?} cut at {cut}"
                );
            }
            let mut long = b.clone();
            long.push(0);
            long[..4].copy_from_slice(&((b.len() - 3) as u32).to_le_bytes());
            assert!(read_frame(&mut Cursor::new(&long)).is_err());
        }
    }

    #[test]
    fn page_frames_refuse_nonsense() {
        let page = |payload: &[u8]| Frame::decode(T_PAGE, payload);
        let mut ack_only = Vec::new();
        ack_only.extend_from_slice(&0u64.to_le_bytes());
        ack_only.extend_from_slice(&5u64.to_le_bytes());
        ack_only.push(0);
        assert!(page(&ack_only).is_ok());
        // A message needs a sequence number, a bare ack must not have one.
        let mut bad = ack_only.clone();
        bad[0] = 1;
        assert!(matches!(page(&bad), Err(WireError::Malformed(_))));
        // Unknown tag.
        let mut bad = ack_only.clone();
        bad[0] = 1;
        bad[16] = 99;
        assert!(matches!(page(&bad), Err(WireError::Malformed(_))));
        // A dirty flag that is neither 0 nor 1.
        let data = Frame::Page(session::Frame {
            seq: 1,
            ack: 0,
            msg: Some(PeerMsg::Page(Msg::Data {
                txn: 1,
                page: PageId { file: 1, index: 1 },
                data: vec![].into(),
                dirty: false,
                epoch: 1,
                owner: 3,
                access: Access::Write,
            })),
        });
        let mut p = data.encode_payload();
        p[17 + 24] = 2;
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        // An access that is neither read (0) nor write (1).
        let mut p = data.encode_payload();
        p[17 + 25] = 2;
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        // Tags past the last message's.
        for tag in [38, 255] {
            let mut bad = ack_only.clone();
            bad[0] = 1;
            bad[16] = tag;
            bad.extend_from_slice(&[0; 24]);
            assert!(matches!(page(&bad), Err(WireError::Malformed(_))), "{tag}");
        }
        // A data length beyond the payload.
        let mut p = data.encode_payload();
        let n = p.len();
        p[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        // A name longer than any file name, and a LISTED claiming more
        // names than it may carry.
        let mut p = ack_only.clone();
        p[0] = 1;
        p[16] = 16;
        p.extend_from_slice(&1u64.to_le_bytes());
        p.extend_from_slice(&256u16.to_le_bytes());
        p.extend_from_slice(&[b'a'; 256]);
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        let mut p = ack_only.clone();
        p[0] = 1;
        p[16] = 19;
        p.extend_from_slice(&1u64.to_le_bytes());
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        // A HOLDING with more pages than a part may list (its pages are not
        // even read), and one whose last flag is not 0 or 1.
        let mut p = ack_only.clone();
        p[0] = 1;
        p[16] = 14;
        p.push(1);
        p.extend_from_slice(&(HOLDING_PART as u32 + 1).to_le_bytes());
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        let mut p = ack_only.clone();
        p[0] = 1;
        p[16] = 14;
        p.push(2);
        p.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
        // A PEEKED whose error is negative.
        let mut p = ack_only.clone();
        p[0] = 1;
        p[16] = 30;
        p.extend_from_slice(&[0; 24]);
        p.extend_from_slice(&(-5i32).to_le_bytes());
        assert!(matches!(page(&p), Err(WireError::Malformed(_))));
    }

    #[test]
    fn unknown_type() {
        for ty in [0u16, 6, 0x101, 0xffff] {
            let b = raw(ty, &[]);
            assert!(matches!(
                read_frame(&mut Cursor::new(&b)),
                Err(WireError::UnknownType(t)) if t == ty
            ));
        }
    }

    #[test]
    fn bad_hello() {
        let dec = |p: &[u8]| Frame::decode(T_HELLO, p);
        // This version's HELLO: magic, version, then `rest`.
        let v = |rest: &[u8]| {
            let mut b = b"WFSP".to_vec();
            b.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
            b.extend_from_slice(rest);
            b
        };
        assert!(matches!(dec(b"WFS"), Err(WireError::Malformed(_))));
        assert!(matches!(dec(b"XFSP\x01\x00"), Err(WireError::BadMagic)));
        assert!(matches!(dec(b"WFSP\x02"), Err(WireError::Malformed(_))));
        assert!(matches!(dec(b"WFSP\x01\x00"), Err(WireError::Version(1))));
        assert!(matches!(
            dec(b"WFSP\x00\x00\x01\x00c\x01\x00h"),
            Err(WireError::Version(0))
        ));
        // Name length pointing past the payload.
        assert!(matches!(
            dec(&v(b"\x05\x00ab")),
            Err(WireError::Malformed(_))
        ));
        // Missing host.
        assert!(matches!(
            dec(&v(b"\x01\x00c")),
            Err(WireError::Malformed(_))
        ));
        // No incarnation.
        assert!(matches!(
            dec(&v(b"\x01\x00c\x01\x00h")),
            Err(WireError::Malformed(_))
        ));
        // Trailing garbage.
        assert!(matches!(
            dec(&v(b"\x01\x00c\x01\x00h\x07\0\0\0\0\0\0\0X")),
            Err(WireError::Malformed(_))
        ));
        // Not UTF-8.
        assert!(matches!(
            dec(&v(b"\x01\x00\xff\x01\x00h\x07\0\0\0\0\0\0\0")),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(
            dec(&v(b"\x01\x00c\x01\x00h\x07\0\0\0\0\0\0\0")).unwrap(),
            Frame::hello("c", "h", 7)
        );
    }

    #[test]
    fn bad_fixed_payloads() {
        for ty in [T_PING, T_PONG] {
            assert!(matches!(
                Frame::decode(ty, &[0; 7]),
                Err(WireError::Malformed(_))
            ));
            assert!(matches!(
                Frame::decode(ty, &[0; 9]),
                Err(WireError::Malformed(_))
            ));
        }
        assert!(matches!(
            Frame::decode(T_HELLO_ACK, &[1]),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(T_HELLO_ACK, &[1, 0, 3, 0, b'a']),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(T_REFUSE, &[]),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Frame::decode(T_REFUSE, &[0, 0, 0]),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn long_strings_are_cut_at_char_boundaries() {
        let reason = "é".repeat(MAX_STRING); // 2 bytes each
        let f = Frame::Refuse { reason };
        match read_frame(&mut Cursor::new(f.encode())).unwrap() {
            Frame::Refuse { reason } => {
                assert_eq!(reason.len(), MAX_STRING);
                assert!(reason.chars().all(|c| c == 'é'));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("abc", 5), "abc");
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let n = (x >> 60) as usize + 6;
            let mut b = Vec::with_capacity(n);
            let mut y = x;
            for _ in 0..n {
                y = y.wrapping_mul(6364136223846793005).wrapping_add(7);
                b.push((y >> 56) as u8);
            }
            // Keep the length small and consistent most of the time so the
            // payload decoders get exercised.
            if x & 1 == 0 {
                let l = (n - 4) as u32;
                b[..4].copy_from_slice(&l.to_le_bytes());
                b[4] = (x >> 8) as u8 % 6;
                b[5] = 0;
            }
            let _ = read_frame(&mut Cursor::new(&b));
            let _ = split_frame(&b);
        }
    }

    #[test]
    fn error_messages() {
        assert!(
            WireError::Oversized(5_000_000)
                .to_string()
                .contains("oversized")
        );
        assert!(WireError::Version(9).to_string().contains("version 9"));
        assert!(WireError::Io(io::Error::from(io::ErrorKind::WouldBlock)).is_timeout());
        assert!(!WireError::Closed.is_timeout());
    }
}
