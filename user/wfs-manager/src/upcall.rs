//! Serving the kernel's requests from `/dev/wfs`.
//!
//! Each worker thread reads one request (the kernel hands each request to
//! exactly one reader), answers it and writes the reply, so requests are
//! served concurrently: a slow one does not hold up the others.
//! [`handle`] is pure apart from the export directory, so it is tested
//! without a kernel.

use std::os::fd::RawFd;
use std::sync::Arc;

use wfs_abi::{MSG_MAX, Reply, ReplyBody, Request, errno};

use crate::export::Export;

/// `ENOSYS`: not served yet (the data path).
const ENOSYS: i32 = 38;

/// Answers one request message; returns the reply's length in `out`, or
/// `None` if the message is not a request at all (nothing to answer).
pub fn handle(export: &Export, msg: &[u8], out: &mut [u8; MSG_MAX]) -> Option<usize> {
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
        Request::Read { .. } | Request::Write { .. } | Request::Upgrade { .. } => Err(ENOSYS),
    };
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

fn serve_one_thread(fd: RawFd, export: &Export) {
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
        let Some(len) = handle(export, &buf[..n as usize], &mut out) else {
            continue;
        };
        // SAFETY: `out` holds `len` valid bytes.
        let w = unsafe { libc::write(fd, out.as_ptr().cast(), len) };
        if w < 0 {
            let err = std::io::Error::last_os_error();
            // ENOENT: the request timed out or its caller was killed in the
            // meantime; nothing is waiting for this answer any more.
            crate::wlog!("upcall: reply refused by the kernel: {err}");
        }
    }
}

/// Starts `workers` threads serving requests read from `fd`.
pub fn serve(fd: RawFd, export: Arc<Export>, workers: usize) {
    for i in 0..workers {
        let export = export.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("upcall-{i}"))
            .spawn(move || serve_one_thread(fd, &export));
        if let Err(e) = spawned {
            crate::wlog!("upcall: cannot start worker {i}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfs_abi::Opcode;

    fn ask(e: &Export, req: Request<'_>) -> Vec<u8> {
        let mut m = [0u8; MSG_MAX];
        let n = req.encode(77, &mut m).unwrap();
        let mut out = [0u8; MSG_MAX];
        let len = handle(e, &m[..n], &mut out).unwrap();
        out[..len].to_vec()
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

        // The data path is not served yet, and says so.
        let r = ask(
            &e,
            Request::Upgrade {
                file: a.file,
                index: 0,
            },
        );
        assert_eq!(Reply::decode(&r).unwrap().error, ENOSYS);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn garbage_gets_no_answer() {
        let e = Export::new(std::path::Path::new("/nonexistent"));
        let mut out = [0u8; MSG_MAX];
        assert_eq!(handle(&e, b"short", &mut out), None);
    }
}
