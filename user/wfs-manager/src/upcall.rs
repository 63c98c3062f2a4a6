//! Serving the kernel's requests from `/dev/wfs`.
//!
//! Each worker thread reads one request (the kernel hands each request to
//! exactly one reader) and hands it to the engine ([`crate::engine`]),
//! which answers it when the page protocol says so; requests are answered
//! out of order, so a slow one does not hold up the others. A manager
//! without an engine ([`Server::Local`]) answers from its export alone
//! (SETSIZE grows the export's file, CREATE and UNLINK make and remove
//! its files), and refuses LOCK with `ENOSYS`: its
//! kernel then locks on its own host only (as FUSE's `no_lock`).
//! [`handle`] is pure apart from the export directory, so it is tested
//! without a kernel.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use wfs_abi::{MSG_MAX, Reply, ReplyBody, Request, errno};

use crate::costs::{Costs, Stage, nanos_between, nanos_since};
use crate::export::Export;
use crate::latency::Timed;
use crate::pool::{Pool, lent_page};

/// A kernel request, as an upcall worker hands it over.
#[derive(Debug)]
pub struct Upcall {
    /// When the worker read it.
    pub started: Instant,
    /// The request as read from `/dev/wfs`; the engine decodes it.
    pub msg: Vec<u8>,
}

/// Where the workers hand requests ([`Server::Engine`]).
pub type UpcallSink = Arc<dyn Fn(Upcall) + Send + Sync>;

/// Counters of one request type.
#[derive(Debug, Default)]
struct OpCounters {
    /// Their times, count and distribution.
    times: Timed,
    errors: AtomicU64,
}

/// What `wfsctl stats` shows of one request type: how many were served,
/// how many were answered with an errno, and the manager's service time
/// (from reading the request to writing the reply): mean, percentiles and
/// maximum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    /// Request type (`LOOKUP`, `READ`...).
    pub op: String,
    /// Requests served.
    pub count: u64,
    /// Of those, answered with an errno.
    pub errors: u64,
    /// Mean service time, nanoseconds.
    pub mean_ns: u64,
    /// Longest service time, nanoseconds.
    pub max_ns: u64,
    /// Median service time, nanoseconds, to 3 significant digits
    /// ([`crate::latency`]; 0 from a manager without percentiles).
    #[serde(default)]
    pub p50_ns: u64,
    /// 99th percentile of the service time, nanoseconds, likewise.
    #[serde(default)]
    pub p99_ns: u64,
}

/// Upcall statistics, shared by the workers.
#[derive(Debug, Default)]
pub struct Stats {
    ops: [OpCounters; 15],
    /// The time of each stage of moving a page ([`crate::costs`]).
    pub costs: Costs,
}

/// The request types by opcode, from 1.
const OP_NAMES: [&str; 15] = [
    "LOOKUP", "GETATTR", "READDIR", "READ", "WRITE", "UPGRADE", "VIEW", "LOCK", "SETSIZE",
    "CREATE", "UNLINK", "RENAME", "OPEN", "RELEASE", "SETTIMES",
];

impl Stats {
    pub(crate) fn record(&self, op: u16, error: bool, ns: u64) {
        let Some(c) = (op as usize).checked_sub(1).and_then(|i| self.ops.get(i)) else {
            return;
        };
        if error {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        c.times.record(ns);
    }

    /// A snapshot, one entry per request type.
    pub fn snapshot(&self) -> Vec<OpStats> {
        self.ops
            .iter()
            .zip(OP_NAMES)
            .map(|(c, name)| {
                let t = c.times.now();
                OpStats {
                    op: name.to_string(),
                    count: t.count,
                    errors: c.errors.load(Ordering::Relaxed),
                    mean_ns: t.mean_ns(),
                    max_ns: t.max_ns,
                    p50_ns: t.p.p50_ns,
                    p99_ns: t.p.p99_ns,
                }
            })
            .collect()
    }
}

/// Answers one request message, for a manager registered as kernel
/// session `session`; returns the reply's length in `out`, or `None` if
/// the message is not a request at all (nothing to answer).
pub fn handle(
    export: &Export,
    pool: Option<&Pool>,
    session: u64,
    msg: &[u8],
    out: &mut [u8; MSG_MAX],
) -> Option<usize> {
    let (id, req) = match Request::decode(msg) {
        Ok(r) => r,
        Err(e) => {
            crate::wlog!("upcall: undecodable request ({e:?}), {} bytes", msg.len());
            return None;
        }
    };
    let op = req.opcode();
    let name_buf: Vec<u8>;
    let result: Result<ReplyBody<'_>, i32> = match req {
        Request::Lookup { name } => export.lookup(name).map(ReplyBody::Attr),
        Request::Getattr { file } => export.getattr(file).map(ReplyBody::Attr),
        Request::Readdir { cookie } => match export.entry(cookie) {
            Ok(Some((next, file, name))) => {
                name_buf = name;
                Ok(ReplyBody::Dirent {
                    next,
                    file,
                    name: &name_buf,
                })
            }
            Ok(None) => Ok(ReplyBody::Dirent {
                next: 0,
                file: 0,
                name: b"",
            }),
            Err(e) => Err(e),
        },
        // (A view's page, as the export has it, is read-only.)
        Request::Read {
            file,
            index,
            count,
            slot,
        }
        | Request::View {
            file,
            index,
            count,
            slot,
        } => {
            // SAFETY: The kernel lent `slot` with this request, which only
            // this worker handles.
            unsafe { lent_page(pool, count, slot) }
        }
        .and_then(|page| {
            let view = op == wfs_abi::Opcode::View;
            let grant = || {
                if view {
                    wfs_abi::Grant::ReadOnly
                } else {
                    export.read_grant(file, index)
                }
            };
            // (A READ is answered with its first page only: the pages after
            // it are fetched ahead only of another host's files, by the
            // engine.)
            let body = |g| {
                if view {
                    ReplyBody::Grant(g)
                } else {
                    ReplyBody::Pages {
                        grant: g,
                        pages: 1,
                        ahead: 0,
                    }
                }
            };
            if export.null_read() && !view {
                return Ok(body(grant()));
            }
            let _page = export.lock_page(file, index);
            export.read_page(file, index, page).map(|()| body(grant()))
        }),
        Request::Write {
            file,
            index,
            count,
            slot,
        } => {
            // SAFETY: The kernel lent `slot` with this request, which only
            // this worker handles.
            unsafe { lent_page(pool, count, slot) }
        }
        .and_then(|page| {
            let _page = export.lock_page(file, index);
            export
                .write_page(file, index, page)
                .map(|()| ReplyBody::Done)
        }),
        Request::Upgrade { file, index } => export.upgrade(file, index).map(ReplyBody::Grant),
        // No owner to decide: the kernel locks on this host alone.
        Request::Lock(_) => Err(libc::ENOSYS),
        // This host owns every file: the export grows it.
        // (A growth whose flush failed fails with its errno.)
        Request::Setsize { file, size, grow } => export
            .set_size(file, size, grow)
            .and_then(|r| r.result())
            .map(|_| ReplyBody::Done),
        // This host owns every file, and is the only one to make names.
        // (Its callers are this host's: never squashed.)
        Request::Create {
            name,
            mode,
            excl,
            uid,
            gid,
        } => export
            .create(name, mode, excl, (uid, gid))
            .map(|(a, _)| ReplyBody::Attr(a)),
        Request::Unlink { file, name } => export.unlink(file, name).map(|()| ReplyBody::Done),
        Request::Open { file } => export.opened(file).map(|()| ReplyBody::Done),
        // (An open an earlier manager counted is none of this one's.)
        Request::Release { session: s, .. } if s != session => Err(errno::ESTALE),
        Request::Release { file, .. } => {
            export.released(file);
            Ok(ReplyBody::Done)
        }
        Request::Settimes { file, sec, nsec } => {
            export.set_mtime(file, sec, nsec).map(|()| ReplyBody::Done)
        }
        Request::Rename {
            file,
            noreplace,
            from,
            to,
            ..
        } => {
            // (No other host holds pages of a file it replaces.)
            let target = match export.lookup(to) {
                Ok(_) if noreplace => Err(errno::EEXIST),
                Ok(a) => Ok(Some(a.file)),
                Err(_) => Ok(None),
            };
            // (A target this host has open is kept under its hidden name.)
            target
                .and_then(|t| {
                    let _held = t.map(|t| export.keep_held(t, to)).transpose()?;
                    export.rename(file, from, to, t)
                })
                .map(|_| ReplyBody::Done)
        }
    };
    // (Every file is this host's: root is never squashed for it here.)
    let result = result.map(|b| match b {
        ReplyBody::Attr(a) => ReplyBody::Attr(export.for_kernel(a)),
        b => b,
    });
    let reply = match result {
        Ok(body) => Reply {
            id,
            op,
            error: 0,
            body: Some(body),
        },
        Err(error) => Reply {
            id,
            op,
            error,
            body: None,
        },
    };
    match reply.encode(out) {
        Ok(n) => Some(n),
        Err(e) => {
            crate::wlog!("upcall: cannot encode reply to {op:?}: {e:?}");
            let fallback = Reply {
                id,
                op,
                error: errno::EIO,
                body: None,
            };
            fallback.encode(out).ok()
        }
    }
}

/// Where a worker sends what it reads.
#[derive(Clone)]
pub enum Server {
    /// Answers every request itself, from the export (single host), for
    /// a manager registered as the kernel session it names.
    Local(Arc<Export>, Option<Arc<Pool>>, u64),
    /// Hands requests to the engine; `export` answers only the benchmark's
    /// null READ.
    Engine(UpcallSink, Arc<Export>, Option<Arc<Pool>>),
}

fn serve_one_thread(fd: RawFd, server: &Server, stats: &Stats) {
    let mut buf = [0u8; MSG_MAX];
    let mut out = [0u8; MSG_MAX];
    loop {
        // SAFETY: `buf` is valid for MSG_MAX bytes; `fd` stays open for the
        // life of the process (the manager keeps its Device).
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            crate::wlog!("upcall: read from /dev/wfs failed: {err}; worker stops");
            return;
        }
        let started = Instant::now();
        let msg = &buf[..n as usize];
        let read = matches!(Request::decode(msg), Ok((_, Request::Read { .. })));
        let (export, pool, session) = match server {
            // The benchmark's null READ is answered here, at once; every
            // other request goes to the engine.
            Server::Engine(engine, export, pool) if !(read && export.null_read()) => {
                engine(Upcall {
                    started,
                    msg: msg.to_vec(),
                });
                if read {
                    stats.costs.since(Stage::Worker, started);
                }
                continue;
            }
            Server::Engine(_, export, pool) => (export, pool, 0),
            Server::Local(export, pool, session) => (export, pool, *session),
        };
        let Some(len) = handle(export, pool.as_deref(), session, msg, &mut out) else {
            continue;
        };
        let written = match Reply::decode(&out[..len]) {
            Ok(reply) => write_reply(fd, &out[..len], reply.op, reply.error != 0, started, stats),
            Err(_) => write_all_once(fd, &out[..len]),
        };
        if let Err(err) = written {
            // ENOENT: the request timed out or its caller was killed in the
            // meantime; nothing is waiting for this answer any more.
            crate::wlog!("upcall: reply refused by the kernel: {err}");
            // (An open counted that never happened: no RELEASE comes.)
            if let Ok((_, Request::Open { file })) = Request::decode(msg)
                && Reply::decode(&out[..len]).is_ok_and(|r| r.error == 0)
            {
                export.released(file);
            }
        }
    }
}

/// Writes the reply `out` (to a request of type `op` read at `started`;
/// `error`: it carries an errno) to `/dev/wfs` on `fd`, counting it in
/// `stats`: its service time and,
/// for a READ, the manager's time before the write ([`Stage::Answer`])
/// and the write's ([`Stage::Reply`]). Returns what `write(2)` did.
pub(crate) fn write_reply(
    fd: RawFd,
    out: &[u8],
    op: wfs_abi::Opcode,
    error: bool,
    started: Instant,
    stats: &Stats,
) -> std::io::Result<usize> {
    let read = op == wfs_abi::Opcode::Read;
    let writing = Instant::now();
    if read {
        stats
            .costs
            .record(Stage::Answer, nanos_between(started, writing));
    }
    let w = write_all_once(fd, out);
    if read {
        stats.costs.since(Stage::Reply, writing);
    }
    stats.record(op as u16, error, nanos_since(started));
    w
}

/// One `write(2)` of `out` to `fd` (a message to `/dev/wfs` goes whole or
/// not at all): its length, or the error as `write` left it.
fn write_all_once(fd: RawFd, out: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `out` is valid for `out.len()` bytes; `fd` stays open for the
    // life of the process (the manager keeps its Device).
    let w = unsafe { libc::write(fd, out.as_ptr().cast(), out.len()) };
    usize::try_from(w).map_err(|_| std::io::Error::last_os_error())
}

/// Starts `workers` threads serving requests read from `fd` through
/// `server`, counting in `stats`.
pub fn serve(fd: RawFd, server: Server, stats: Arc<Stats>, workers: usize) {
    for i in 0..workers {
        let server = server.clone();
        let stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("upcall-{i}"))
            .spawn(move || serve_one_thread(fd, &server, &stats));
        if let Err(e) = spawned {
            crate::wlog!("upcall: cannot start worker {i}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfs_abi::{Grant, Opcode};

    fn ask(e: &Export, req: Request<'_>) -> Vec<u8> {
        let mut m = [0u8; MSG_MAX];
        let n = req.encode(77, &mut m).unwrap();
        let mut out = [0u8; MSG_MAX];
        let len = handle(e, Some(&POOL_FOR_TESTS), SESSION, &m[..n], &mut out).unwrap();
        out[..len].to_vec()
    }

    /// The kernel session the tests' manager registered as.
    const SESSION: u64 = 3;

    static POOL_FOR_TESTS: std::sync::LazyLock<Pool> =
        std::sync::LazyLock::new(|| Pool::for_tests(4 + wfs_abi::SCRATCH_SLOTS));

    #[test]
    fn counts_only_its_own_sessions_opens_and_sets_times() {
        let d = std::env::temp_dir().join(format!("wfs-upcall-opens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), vec![2u8; 4096]).unwrap();
        let e = Export::new(&d);
        let file = e.lookup(b"f").unwrap().file;
        let error = |r: Vec<u8>| Reply::decode(&r).unwrap().error;
        assert_eq!(error(ask(&e, Request::Open { file })), 0);
        // A RELEASE of an open an earlier manager counted: ESTALE, and the
        // open this one counted still keeps the file past its unlink.
        let stale = Request::Release {
            file,
            session: SESSION + 1,
        };
        assert_eq!(error(ask(&e, stale)), errno::ESTALE);
        assert_eq!(error(ask(&e, Request::Unlink { file, name: b"f" })), 0);
        let hidden = d.join(String::from_utf8(crate::export::gone_name(file)).unwrap());
        assert_eq!(std::fs::read(&hidden).unwrap(), vec![2u8; 4096]);
        let own = Request::Release {
            file,
            session: SESSION,
        };
        assert_eq!(error(ask(&e, own)), 0);
        assert!(!hidden.exists(), "removed at its last close");

        // SETTIMES sets the export file's modification time.
        std::fs::write(d.join("g"), b"g").unwrap();
        let g = e.lookup(b"g").unwrap().file;
        let set = Request::Settimes {
            file: g,
            sec: 1_234_567_890,
            nsec: 42,
        };
        assert_eq!(error(ask(&e, set)), 0);
        assert_eq!(
            e.getattr(g).unwrap().mtime,
            crate::export::time(1_234_567_890, 42)
        );
        let gone = Request::Settimes {
            file: file ^ 1,
            sec: 0,
            nsec: 0,
        };
        assert_eq!(error(ask(&e, gone)), errno::ENOENT);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A symbolic link in the export reaches the kernel as an errno in a
    /// reply (the name does not exist), never its target's data, never a
    /// panic: to a file outside the export or inside it, or put in place
    /// of a file after its LOOKUP.
    #[test]
    fn a_symbolic_link_in_the_export_is_an_error_reply() {
        let d = std::env::temp_dir().join(format!("wfs-upcall-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("inner"), b"inner").unwrap();
        std::fs::write(d.join("f"), b"f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).unwrap();
        std::os::unix::fs::symlink("inner", d.join("in")).unwrap();
        let e = Export::new(&d);
        let error = |r: Vec<u8>| Reply::decode(&r).unwrap().error;
        for name in [&b"passwd"[..], b"in"] {
            assert_eq!(error(ask(&e, Request::Lookup { name })), errno::ENOENT);
        }
        let file = e.lookup(b"f").unwrap().file;
        std::fs::remove_file(d.join("f")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("f")).unwrap();
        let read = Request::Read {
            file,
            index: 0,
            count: 1,
            slot: 0,
        };
        assert_eq!(error(ask(&e, read)), errno::ENOENT);
        assert_eq!(error(ask(&e, Request::Getattr { file })), errno::ENOENT);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn answers_lookup_getattr_readdir() {
        let d = std::env::temp_dir().join(format!("wfs-upcall-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), vec![1u8; 4096]).unwrap();
        let e = Export::new(&d);

        let r = ask(&e, Request::Lookup { name: b"f" });
        let r = Reply::decode(&r).unwrap();
        assert_eq!((r.id, r.op, r.error), (77, Opcode::Lookup, 0));
        let Some(ReplyBody::Attr(a)) = r.body else {
            panic!("{r:?}")
        };
        assert_eq!(a.size, 4096);
        // This host's own file (the export squashes other hosts' root, by
        // default): root here is not squashed.
        assert!(e.lookup(b"f").unwrap().root_squash);
        assert!(!a.root_squash);

        let r = ask(&e, Request::Lookup { name: b"nope" });
        assert_eq!(Reply::decode(&r).unwrap().error, errno::ENOENT);

        let r = ask(&e, Request::Getattr { file: a.file });
        assert_eq!(Reply::decode(&r).unwrap().body, Some(ReplyBody::Attr(a)));

        let r = ask(&e, Request::Readdir { cookie: 0 });
        let r = Reply::decode(&r).unwrap();
        assert_eq!(
            r.body,
            Some(ReplyBody::Dirent {
                next: 1,
                file: a.file,
                name: b"f"
            })
        );
        let r = ask(&e, Request::Readdir { cookie: 1 });
        assert_eq!(
            Reply::decode(&r).unwrap().body,
            Some(ReplyBody::Dirent {
                next: 0,
                file: 0,
                name: b""
            })
        );

        // READ fills the lent slot; a slot outside the pool is refused.
        let read_run = |slot, count| Request::Read {
            file: a.file,
            index: 0,
            count,
            slot,
        };
        let read = |slot| read_run(slot, 1);
        let pages = |grant| {
            Some(ReplyBody::Pages {
                grant,
                pages: 1,
                ahead: 0,
            })
        };
        let r = ask(&e, read(2));
        assert_eq!(Reply::decode(&r).unwrap().body, pages(Grant::ReadWrite));
        // A READ of several pages is answered with the first: the export
        // has nothing fetched ahead. A run that leaves the pool is refused.
        let r = ask(&e, read_run(2, 2));
        assert_eq!(Reply::decode(&r).unwrap().body, pages(Grant::ReadWrite));
        let r = ask(&e, read_run(2, 3));
        assert_eq!(Reply::decode(&r).unwrap().error, errno::EINVAL);
        // SAFETY: the test is the only user of slot 2 now.
        assert!(
            unsafe { POOL_FOR_TESTS.page(2) }
                .unwrap()
                .iter()
                .all(|&b| b == 1)
        );
        let r = ask(&e, read(4));
        assert_eq!(Reply::decode(&r).unwrap().error, errno::EINVAL);
        // (Nor a scratch slot, the manager's own.)
        let r = ask(&e, read(4 + wfs_abi::SCRATCH_SLOTS - 1));
        assert_eq!(Reply::decode(&r).unwrap().error, errno::EINVAL);

        // WRITE stores the lent slot's page in the file.
        // SAFETY: the test is the only user of slot 3 now.
        unsafe { POOL_FOR_TESTS.page(3) }.unwrap().fill(9);
        let write = |index| Request::Write {
            file: a.file,
            index,
            count: 1,
            slot: 3,
        };
        let r = ask(&e, write(0));
        assert_eq!(Reply::decode(&r).unwrap().body, Some(ReplyBody::Done));
        assert_eq!(std::fs::read(d.join("f")).unwrap(), vec![9u8; 4096]);
        // Files never grow.
        let r = ask(&e, write(1));
        assert_eq!(Reply::decode(&r).unwrap().error, errno::EFBIG);

        // UPGRADE grants writing to a page of the file, nothing past it.
        let upgrade = |index| Request::Upgrade {
            file: a.file,
            index,
        };
        let r = ask(&e, upgrade(0));
        assert_eq!(
            Reply::decode(&r).unwrap().body,
            Some(ReplyBody::Grant(Grant::ReadWrite))
        );
        let r = ask(&e, upgrade(1));
        assert_eq!(Reply::decode(&r).unwrap().error, errno::EFBIG);

        // An export configured for read-only grants makes writers upgrade.
        let ro = Export::with_grant(&d, Grant::ReadOnly);
        let r = ask(&ro, read(2));
        assert_eq!(Reply::decode(&r).unwrap().body, pages(Grant::ReadOnly));

        // No engine, no owner to decide locks: ENOSYS (the kernel locks on
        // its own host).
        let lock = wfs_abi::LockArgs {
            file: a.file,
            owner: 1,
            start: 0,
            end: wfs_abi::LOCK_END_MAX,
            pid: 1,
            wait_ms: 1000,
            kind: wfs_abi::LockKind::Flock,
            cmd: wfs_abi::LockCmd::Set,
            mode: wfs_abi::LockMode::Write,
        };
        let r = ask(&e, Request::Lock(lock));
        let r = Reply::decode(&r).unwrap();
        assert_eq!((r.op, r.error, r.body), (Opcode::Lock, libc::ENOSYS, None));

        // SETSIZE: this host owns the file; the export grows it (then
        // pages past the old end may be written), and refuses a shrink.
        let setsize = |size, grow| {
            let r = ask(
                &e,
                Request::Setsize {
                    file: a.file,
                    size,
                    grow,
                },
            );
            let r = Reply::decode(&r).unwrap();
            assert_eq!(r.op, Opcode::Setsize);
            match r.body {
                Some(ReplyBody::Done) => Ok(()),
                None => Err(r.error),
                Some(b) => panic!("{b:?}"),
            }
        };
        assert_eq!(setsize(3 * 4096, true), Ok(()));
        assert_eq!(std::fs::metadata(d.join("f")).unwrap().len(), 3 * 4096);
        let r = ask(&e, write(1));
        assert_eq!(Reply::decode(&r).unwrap().body, Some(ReplyBody::Done));
        let r = ask(&e, upgrade(2));
        assert_eq!(Reply::decode(&r).unwrap().error, 0);
        assert_eq!(setsize(4096, true), Ok(()), "long enough");
        assert_eq!(setsize(3 * 4096, false), Ok(()), "as long");
        assert_eq!(setsize(4096, false), Err(libc::EOPNOTSUPP));
        assert_eq!(std::fs::metadata(d.join("f")).unwrap().len(), 3 * 4096);

        // CREATE and UNLINK: the export makes and removes the file.
        let create = |name: &'static [u8], excl| {
            let r = ask(
                &e,
                Request::Create {
                    name,
                    mode: 0o600,
                    excl,
                    uid: 1000,
                    gid: 100,
                },
            );
            let r = Reply::decode(&r).unwrap();
            assert_eq!(r.op, Opcode::Create);
            match r.body {
                Some(ReplyBody::Attr(a)) => Ok(a),
                None => Err(r.error),
                Some(b) => panic!("{b:?}"),
            }
        };
        let n = create(b"n", true).unwrap();
        assert_eq!(
            (n.file, n.size, n.mode, n.uid, n.gid),
            (crate::export::id_in(&d, b"n"), 0, 0o600, 1000, 100),
            "the creator's file"
        );
        assert!(d.join("n").exists());
        assert_eq!(create(b"n", true), Err(libc::EEXIST));
        assert_eq!(create(b"f", false).map(|x| x.size), Ok(3 * 4096));
        let unlink = |file, name: &'static [u8]| {
            let r = ask(&e, Request::Unlink { file, name });
            Reply::decode(&r).unwrap().error
        };
        assert_eq!(unlink(n.file, b"n"), 0);
        assert!(!d.join("n").exists());
        assert_eq!(unlink(n.file, b"n"), libc::ENOENT);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stats_count_and_time() {
        let s = Stats::default();
        s.record(4, false, 2_000);
        s.record(4, true, 6_000);
        s.record(1, false, 1_000);
        s.record(7, false, 3_000);
        s.record(0, false, 1); // not an opcode: ignored
        s.record(8, true, 500);
        s.record(9, false, 1);
        s.record(10, false, 1);
        s.record(13, false, 1);
        s.record(15, false, 1);
        s.record(16, false, 1); // not an opcode: ignored
        s.record(99, false, 1);
        let snap = s.snapshot();
        let read = snap.iter().find(|o| o.op == "READ").unwrap();
        assert_eq!((read.count, read.errors), (2, 1));
        assert_eq!((read.mean_ns, read.max_ns), (4_000, 6_000));
        let view = snap.iter().find(|o| o.op == "VIEW").unwrap();
        assert_eq!((view.count, view.mean_ns), (1, 3_000));
        let lock = snap.iter().find(|o| o.op == "LOCK").unwrap();
        assert_eq!((lock.count, lock.errors), (1, 1));
        let setsize = snap.iter().find(|o| o.op == "SETSIZE").unwrap();
        assert_eq!((setsize.count, setsize.errors), (1, 0));
        let create = snap.iter().find(|o| o.op == "CREATE").unwrap();
        assert_eq!(create.count, 1);
        let open = snap.iter().find(|o| o.op == "OPEN").unwrap();
        assert_eq!(open.count, 1);
        assert_eq!(snap.len(), 15);
        assert_eq!(snap.iter().map(|o| o.count).sum::<u64>(), 9);
        // (6000 ns reads back from the histogram as 6003 ns, no more than
        // the longest.)
        assert_eq!((read.p50_ns, read.p99_ns), (2_000, 6_000));
        assert_eq!((lock.p50_ns, lock.p99_ns), (500, 500));
        let rename = snap.iter().find(|o| o.op == "RENAME").unwrap();
        assert_eq!((rename.count, rename.p50_ns, rename.p99_ns), (0, 0, 0));
    }

    #[test]
    fn stats_percentiles_and_their_json() {
        let s = Stats::default();
        for us in 1..=100u64 {
            s.record(1, false, us * 1000);
        }
        s.record(5, false, u64::MAX); // beyond the histogram: clamped
        let snap = s.snapshot();
        let lookup = &snap[0];
        assert_eq!((lookup.op.as_str(), lookup.count), ("LOOKUP", 100));
        assert_eq!(lookup.max_ns, 100_000);
        assert!(lookup.p50_ns.abs_diff(50_000) <= 50, "{lookup:?}");
        assert!(lookup.p99_ns.abs_diff(99_000) <= 99, "{lookup:?}");
        let write = &snap[4];
        assert_eq!((write.op.as_str(), write.max_ns), ("WRITE", u64::MAX));
        assert!(write.p99_ns.abs_diff(crate::latency::MAX_NS) <= crate::latency::MAX_NS / 1000);
        let v = serde_json::to_value(lookup).unwrap();
        for k in ["count", "mean_ns", "p50_ns", "p99_ns", "max_ns"] {
            assert!(v[k].is_u64(), "{k} in {v}");
        }
        assert_eq!(v["p50_ns"].as_u64(), Some(lookup.p50_ns));
        // What an older manager sends still reads, without percentiles.
        let old: OpStats =
            serde_json::from_str(r#"{"op":"READ","count":1,"errors":0,"mean_ns":5,"max_ns":5}"#)
                .unwrap();
        assert_eq!((old.p50_ns, old.p99_ns), (0, 0));
    }

    #[test]
    fn garbage_gets_no_answer() {
        let e = Export::new(std::path::Path::new("/nonexistent"));
        let mut out = [0u8; MSG_MAX];
        assert_eq!(handle(&e, None, SESSION, b"short", &mut out), None);
    }
}
