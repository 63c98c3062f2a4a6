//! The control socket: a unix stream socket that `wfsctl` talks to.
//!
//! Protocol: the client connects, sends one command on one line
//! (`status\n`), and the manager answers with one line of JSON and closes
//! the connection. Commands:
//!
//! * `status`: a [`StatusReport`].
//! * `ping`: `{"ok":true}`.
//! * `invalidate drop|downgrade INDEX NAME`: an
//!   [`Outcome`](crate::invalidate::Outcome) (the name is the rest of the
//!   line).
//! * `forget NAME`: `{"ok":true}`.
//! * `null-read on|off`: `{"ok":true}`. For benchmarks only: READ is
//!   answered at once without reading the page (its contents are garbage),
//!   which is the paper's null page fault.
//!
//! Anything else, and any failure, is answered with `{"error":"..."}`.
//!
//! Who may talk to it: the socket is mode 0600, in a directory the manager
//! makes mode 0700 (one that exists is left as it is), and each client's
//! credentials are checked (`SO_PEERCRED`): only root, or the user the
//! manager runs as, is answered; anybody else gets `{"error":"permission
//! denied..."}` and is logged, before a byte of its command is read.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::PeerSnapshot;
use crate::wlog;

/// Longest command line accepted.
pub const MAX_COMMAND: u64 = 4096;
/// Time a client gets to send its command.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// This host's name.
    pub host: String,
    /// Cluster name.
    pub cluster: String,
    /// Process id of the manager.
    pub pid: u32,
    /// Address the manager listens on.
    pub listen: String,
    /// Device path, or `None` when started with `--no-device`.
    pub device: Option<String>,
    /// Whether the manager holds a registration with the kernel.
    pub registered: bool,
    /// ABI version (the kernel's answer when registered, else the
    /// manager's own).
    pub abi_version: u32,
    /// Session number from the kernel (0 if not registered).
    pub session: u64,
    /// Kernel limit: requests in flight.
    pub max_inflight: u32,
    /// Kernel limit: netmem pool slots.
    pub pool_slots: u32,
    /// Kernel request time-out, milliseconds.
    pub timeout_ms: u32,
    /// Every configured peer.
    pub peers: Vec<PeerSnapshot>,
    /// The transport, and what it refused (none from a manager without
    /// a cluster).
    #[serde(default)]
    pub transport: Option<crate::cluster::TransportStats>,
    /// Upcalls served, by request type (empty without a device).
    #[serde(default)]
    pub upcalls: Vec<crate::upcall::OpStats>,
    /// The page protocol's counters (none without an engine).
    #[serde(default)]
    pub protocol: Option<crate::engine::ProtocolStats>,
    /// Where the manager's time went, by stage ([`crate::costs`]; empty
    /// without a device).
    #[serde(default)]
    pub costs: Vec<crate::costs::StageStats>,
}

/// Produces the current status.
pub type StatusFn = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// The manager's handlers of the commands that act on the kernel
/// (`invalidate`, `forget`, `null-read`: without a device those fail) and
/// on the cluster (`disconnect`).
#[derive(Clone, Default)]
pub struct Handlers {
    /// Takes pages and names from the kernel.
    pub inval: Option<Arc<crate::invalidate::Invalidator>>,
    /// The peer connections.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The page protocol's engine (evictions, its name cache).
    pub engine: Option<crate::engine::Handle>,
}

/// A running control socket server.
pub struct ControlServer {
    path: PathBuf,
}

/// A control socket that exists but is not served yet.
pub struct BoundControl {
    listener: UnixListener,
    path: PathBuf,
}

impl BoundControl {
    /// Removes the socket without ever serving it.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Serves the socket on a thread from now on.
    pub fn serve(self, status: StatusFn, handlers: Handlers) -> ControlServer {
        let listener = self.listener;
        let spawned = thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(s) => {
                            let status = status.clone();
                            let handlers = handlers.clone();
                            let _ = thread::Builder::new()
                                .name("control-client".into())
                                .spawn(move || serve(s, &status, &handlers));
                        }
                        Err(e) => {
                            wlog!("control socket accept failed: {e}");
                            thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            wlog!("cannot start control thread: {e}");
        }
        ControlServer { path: self.path }
    }
}

impl ControlServer {
    /// Creates the socket at `path` (creating its parent directory and
    /// removing a stale socket left by a dead manager) and serves it on a
    /// thread.
    pub fn start(path: &Path, status: StatusFn) -> Result<ControlServer, String> {
        Ok(ControlServer::bind(path)?.serve(status, Handlers::default()))
    }

    /// Creates the socket at `path` (creating its parent directory and
    /// removing a stale socket left by a dead manager) without serving it
    /// yet; connections wait in the backlog until [`BoundControl::serve`].
    pub fn bind(path: &Path) -> Result<BoundControl, String> {
        let p = path.display();
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            // (Made 0700, the directories above it too; one that exists
            // is not touched.)
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(format!(
                        "control socket {p} is in use by another running manager"
                    ));
                }
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove stale control socket {p}: {e}"))?;
                wlog!("removed stale control socket {p}");
            }
            Ok(_) => return Err(format!("{p} exists and is not a socket; not touching it")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot stat {p}: {e}")),
        }
        let listener =
            UnixListener::bind(path).map_err(|e| format!("cannot bind control socket {p}: {e}"))?;
        // (Whatever the umask let through; the credentials check below is
        // the gate, this keeps others from even connecting.)
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            let _ = std::fs::remove_file(path);
            return Err(format!("cannot make control socket {p} mode 0600: {e}"));
        }
        Ok(BoundControl {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file (on exit).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Answers one command line.
pub fn answer(cmd: &str, status: &StatusFn, handlers: &Handlers) -> String {
    let inval = &handlers.inval;
    let line = cmd.trim_end_matches(['\n', '\r']);
    let (verb, args) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "status" if args.is_empty() => {
            serde_json::to_string(&status()).unwrap_or_else(|e| error_json(&e.to_string()))
        }
        "ping" if args.is_empty() => "{\"ok\":true}".to_string(),
        "invalidate" => match (parse_invalidate(args), &handlers.engine) {
            (Err(e), _) => error_json(&e),
            (Ok(_), None) => error_json("this manager has no device"),
            (Ok((mode, index, name)), Some(engine)) => match engine.evict(name, index, mode) {
                Ok(o) => serde_json::to_string(&o).unwrap_or_else(|e| error_json(&e.to_string())),
                Err(e) => error_json(&e),
            },
        },
        "forget" => match inval {
            _ if args.is_empty() => error_json("forget needs a name"),
            None => error_json("this manager has no device"),
            Some(inv) => match inv.forget(args) {
                Ok(()) => {
                    // The manager forgets it too: the next LOOKUP asks its
                    // owner again (for its size now, say).
                    if let Some(e) = &handlers.engine {
                        e.forget_name(args.as_bytes());
                    }
                    "{\"ok\":true}".to_string()
                }
                Err(e) => error_json(&e),
            },
        },
        "null-read" => match (args, inval) {
            ("on" | "off", Some(inv)) => {
                inv.set_null_read(args == "on");
                "{\"ok\":true}".to_string()
            }
            ("on" | "off", None) => error_json("this manager has no device"),
            _ => error_json("usage: null-read on|off"),
        },
        "disconnect" => match &handlers.cluster {
            _ if args.is_empty() => error_json("disconnect needs a peer name"),
            None => error_json("this manager has no cluster"),
            Some(cl) => match cl.disconnect(args) {
                Ok(()) => "{\"ok\":true}".to_string(),
                Err(e) => error_json(&e),
            },
        },
        "" => error_json("empty command"),
        _ => error_json(&format!("unknown command {:?}", line.trim())),
    }
}

/// Parses `drop|downgrade INDEX NAME`.
fn parse_invalidate(args: &str) -> Result<(crate::invalidate::Mode, u64, &str), String> {
    let mut it = args.splitn(3, ' ');
    let usage = "usage: invalidate drop|downgrade INDEX NAME";
    let mode = it
        .next()
        .and_then(crate::invalidate::Mode::parse)
        .ok_or(usage)?;
    let index = it.next().and_then(|i| i.parse().ok()).ok_or(usage)?;
    let name = it.next().filter(|n| !n.is_empty()).ok_or(usage)?;
    Ok((mode, index, name))
}

fn error_json(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

/// The process id and user of the client at the other end of `stream`
/// (`SO_PEERCRED`: as they were when it connected).
fn peer_cred(stream: &UnixStream) -> io::Result<(i32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of a `ucred` and a
    // `socklen_t`, and `len` says how large `cred` is.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid, cred.uid))
}

/// Whether user `uid` may use the control socket: root, or the user the
/// manager runs as.
fn may_control(uid: u32) -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

fn serve(stream: UnixStream, status: &StatusFn, handlers: &Handlers) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let refused = match peer_cred(&stream) {
        Ok((_, uid)) if may_control(uid) => None,
        Ok((pid, uid)) => Some(format!("uid {uid} (pid {pid})")),
        Err(e) => Some(format!("a client whose credentials cannot be read ({e})")),
    };
    if let Some(who) = refused {
        wlog!("control socket: refused {who}: only root or the manager's own user may use it");
        let mut w = &stream;
        let msg = error_json(
            "permission denied: only root or the manager's own user may use the control socket",
        );
        let _ = w.write_all(format!("{msg}\n").as_bytes());
        return;
    }
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(MAX_COMMAND));
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut out = answer(&line, status, handlers);
    out.push('\n');
    let mut w = &stream;
    let _ = w.write_all(out.as_bytes());
}

/// Sends `cmd` to the manager at `path` and returns its one-line answer.
pub fn query(path: &Path, cmd: &str, timeout: Duration) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    BufReader::new(s.take(16 << 20)).read_line(&mut out)?;
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "manager closed the connection without answering",
        ));
    }
    Ok(out)
}

/// Asks the manager at `path` for its status.
pub fn status(path: &Path, timeout: Duration) -> Result<StatusReport, String> {
    let line = query(path, "status", timeout)
        .map_err(|e| format!("cannot reach manager at {}: {e}", path.display()))?;
    serde_json::from_str(&line).map_err(|e| {
        format!(
            "bad answer from manager at {}: {e}: {}",
            path.display(),
            line.trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PeerState, Role};

    fn report() -> StatusReport {
        StatusReport {
            host: "h1".into(),
            cluster: "c".into(),
            pid: 57,
            listen: "127.0.0.1:7070".into(),
            device: Some("/dev/wfs".into()),
            registered: true,
            abi_version: 1,
            session: 3,
            max_inflight: 64,
            pool_slots: 256,
            timeout_ms: 5000,
            transport: None,
            peers: vec![PeerSnapshot {
                name: "h2".into(),
                addr: "10.0.0.2:7070".into(),
                role: Role::Initiator,
                state: PeerState::Connected,
                reason: None,
                remote: Some("10.0.0.2:7070".into()),
                health: None,
            }],
            upcalls: Vec::new(),
            protocol: None,
            costs: Vec::new(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wfs-ctl-{}-{name}", std::process::id()))
    }

    #[test]
    fn answers() {
        let f: StatusFn = Arc::new(report);
        let s: StatusReport =
            serde_json::from_str(&answer("status\n", &f, &Handlers::default())).unwrap();
        assert_eq!(s, report());
        assert_eq!(answer("ping", &f, &Handlers::default()), "{\"ok\":true}");
        assert!(answer("bogus", &f, &Handlers::default()).contains("unknown command"));
        assert!(answer("", &f, &Handlers::default()).contains("empty command"));
        // Commands on the kernel: checked first, then refused without a
        // device.
        for bad in [
            "invalidate",
            "invalidate evict 0 f",
            "invalidate drop x f",
            "invalidate drop 1",
            "invalidate drop 1 ",
        ] {
            assert!(
                answer(bad, &f, &Handlers::default()).contains("usage: invalidate"),
                "{bad}"
            );
        }
        assert!(answer("invalidate drop 3 a name", &f, &Handlers::default()).contains("no device"));
        assert!(answer("forget", &f, &Handlers::default()).contains("needs a name"));
        assert!(answer("forget x", &f, &Handlers::default()).contains("no device"));
        assert!(answer("null-read maybe", &f, &Handlers::default()).contains("usage: null-read"));
        assert!(answer("null-read on", &f, &Handlers::default()).contains("no device"));
        assert_eq!(
            parse_invalidate("downgrade 7 a b").unwrap(),
            (crate::invalidate::Mode::Downgrade, 7, "a b")
        );
        let j = serde_json::to_value(report()).unwrap();
        assert_eq!(j["peers"][0]["state"], "connected");
        assert_eq!(j["peers"][0]["role"], "initiator");
    }

    #[test]
    fn server_round_trip_and_stale_socket() {
        let dir = tmp("srv");
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("m.sock");
        let srv = ControlServer::start(&path, Arc::new(report)).unwrap();
        assert_eq!(status(&path, Duration::from_secs(5)).unwrap(), report());
        assert!(
            query(&path, "nope", Duration::from_secs(5))
                .unwrap()
                .contains("error")
        );
        // A second server on the same live socket is refused.
        let e = ControlServer::start(&path, Arc::new(report)).err().unwrap();
        assert!(e.contains("in use"), "{e}");
        srv.remove();
        assert!(!path.exists());
        // A stale socket file (nobody listening) is replaced.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let srv = ControlServer::start(&path, Arc::new(report)).unwrap();
        assert!(status(&path, Duration::from_secs(5)).is_ok());
        srv.remove();
        // A regular file is left alone.
        std::fs::write(&path, b"x").unwrap();
        let e = ControlServer::start(&path, Arc::new(report)).err().unwrap();
        assert!(e.contains("not a socket"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The socket is 0600 in a 0700 directory, and a client of another
    /// user is refused before its command is read, whatever the socket's
    /// mode would let it do.
    #[test]
    fn only_root_or_the_managers_user_is_answered() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp("creds");
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run").join("m.sock");
        let srv = ControlServer::start(&path, Arc::new(report)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(may_control(0));
        // SAFETY: geteuid(2) has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert!(may_control(me));
        assert!(status(&path, Duration::from_secs(5)).is_ok());
        assert!(!may_control(if me == 65534 { 65533 } else { 65534 }));
        // Another user, let through by the modes (as a group or a careless
        // mode could): refused all the same. (Needs root to change user.)
        if me == 0 {
            for d in [&dir, path.parent().unwrap()] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // A child that becomes nobody and asks for the status; it
            // prints what it got on a pipe.
            let (r, w) = {
                let mut fds = [0; 2];
                // SAFETY: `fds` has room for two descriptors.
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                (fds[0], fds[1])
            };
            // SAFETY: the child only calls async-signal-safe functions
            // (setgid, setuid, socket, connect, write, read, _exit) on
            // memory prepared before the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above; every buffer is the child's own copy.
                unsafe {
                    let mut out = [0u8; 512];
                    let mut n: isize = 0;
                    if libc::setgid(65534) == 0 && libc::setuid(65534) == 0 {
                        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                        let mut addr: libc::sockaddr_un = std::mem::zeroed();
                        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
                        for (i, b) in p.as_bytes().iter().enumerate().take(107) {
                            addr.sun_path[i] = *b as libc::c_char;
                        }
                        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                        if libc::connect(s, (&addr as *const libc::sockaddr_un).cast(), len) == 0 {
                            libc::write(s, b"status\n".as_ptr().cast(), 7);
                            n = libc::read(s, out.as_mut_ptr().cast(), out.len());
                        }
                    }
                    if n > 0 {
                        libc::write(w, out.as_ptr().cast(), n as usize);
                    }
                    libc::_exit(0);
                }
            }
            // SAFETY: `w` is ours to close.
            unsafe { libc::close(w) };
            let mut got = String::new();
            // SAFETY: `r` is an open pipe that this `File` now owns.
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(r) };
            f.read_to_string(&mut got).unwrap();
            let mut st = 0;
            // SAFETY: `pid` is our child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            assert!(got.contains("permission denied"), "nobody got {got:?}");
            assert!(!got.contains("\"host\""), "nobody got the status: {got:?}");
        }
        srv.remove();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreachable() {
        let e = status(Path::new("/nonexistent/wfs.sock"), Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("cannot reach manager"), "{e}");
    }
}
