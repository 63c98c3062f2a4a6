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
//! * `null-read on|off`: `{"ok":true}`. For benchmarks only, and only
//!   when the manager was started with `--debug-switches` (otherwise `on`
//!   is answered with an error): READ is answered at once without reading
//!   the page (its contents are garbage), which is the paper's null page
//!   fault.
//! * `disconnect PEER`: `{"ok":true}` (drops the connection to a peer).
//!
//! Anything else, and any failure, is answered with `{"error":"..."}`.
//!
//! Who may talk to it (see `Documentation/security.md`):
//!
//! * The socket is made in a directory of its own, mode 0700 (0750 with
//!   `control_group`, group-owned by that group), and is itself mode 0600
//!   (0660, group-owned by `control_group`). A directory that does not
//!   exist is made; one that exists and holds nothing but the socket is
//!   set to that mode and group (tightened: a stale `/run/wfs` left 0755
//!   becomes 0700); one that holds anything else must already be owned by
//!   the manager's user and give nobody more than that mode would, else
//!   the manager refuses to start and says why. The socket is bound inside
//!   that directory and only then set to its mode, so whatever the umask
//!   let through is never reachable by anybody the directory keeps out.
//! * Every connection's credentials are read (`SO_PEERCRED`): root and the
//!   user the manager runs as may run every command; members of
//!   `control_group` (by their primary group, or a supplementary one from
//!   `/proc/PID/status`) may run the read-only ones ([`required`]:
//!   `status`, `ping`); anybody else is answered `{"error":"permission
//!   denied..."}` before a byte of its command is read. Every refusal is
//!   logged with the client's uid and pid and counted
//!   ([`StatusReport::control_refused`]).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// How long the manager took to handle each kind of page-protocol
    /// message received from a peer, the kinds received at least once
    /// ([`crate::messages`]; empty without an engine, or from a manager
    /// before these).
    #[serde(default)]
    pub messages: Vec<crate::messages::MessageStats>,
    /// Connections to the control socket refused for their credentials
    /// since the manager started.
    #[serde(default)]
    pub control_refused: u64,
}

/// Connections refused for their credentials (this process).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Connections to the control socket refused so far for their
/// credentials.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// What a command needs of its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Changes nothing: root, the manager's user, or a member of
    /// `control_group`.
    ReadOnly,
    /// Changes something (or is not a command the manager knows): root or
    /// the manager's user only.
    Full,
}

/// What the command line `cmd` needs. Every command that changes
/// anything, and anything the manager does not know, needs [`Access::Full`].
pub fn required(cmd: &str) -> Access {
    let line = cmd.trim_end_matches(['\n', '\r']);
    let verb = line.split_once(' ').map_or(line, |(v, _)| v);
    match verb {
        // (`wfsctl status`, `stats` and `wait` only ask for the status.)
        "status" | "ping" => Access::ReadOnly,
        // Evicts pages, drops names, makes READ hand out garbage, drops a
        // peer's connection.
        "invalidate" | "forget" | "null-read" | "disconnect" => Access::Full,
        _ => Access::Full,
    }
}

/// The group whose members may run the read-only commands
/// (`control_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlGroup {
    /// As configured (a name, or a number).
    pub name: String,
    /// Its id.
    pub gid: u32,
}

/// A client's credentials, from `SO_PEERCRED` (as they were when it
/// connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The supplementary groups on the `Groups:` line of a
/// `/proc/PID/status` text (none if it has no such line).
pub fn proc_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the client `cred` is in group `gid`: its primary group, or one
/// of its supplementary groups as `/proc` shows them now.
fn in_group(cred: &PeerCred, gid: u32) -> bool {
    cred.gid == gid
        || std::fs::read_to_string(format!("/proc/{}/status", cred.pid))
            .map(|s| proc_groups(&s).contains(&gid))
            .unwrap_or(false)
}

/// What the client `cred` may do: `Some(Full)`, `Some(ReadOnly)`, or
/// `None` (nothing).
fn access_of(cred: &PeerCred, group: Option<&ControlGroup>) -> Option<Access> {
    // SAFETY: geteuid(2) has no preconditions.
    if cred.uid == 0 || cred.uid == unsafe { libc::geteuid() } {
        Some(Access::Full)
    } else if group.is_some_and(|g| in_group(cred, g.gid)) {
        Some(Access::ReadOnly)
    } else {
        None
    }
}

/// Who may run what, for error messages.
fn who_may(group: Option<&ControlGroup>) -> String {
    match group {
        None => "only root or the manager's own user may use the control socket".into(),
        Some(g) => format!(
            "only root or the manager's own user may use the control socket, and members of group {} (gid {}) its read-only commands (status, ping)",
            g.name, g.gid
        ),
    }
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
    /// Started with `--debug-switches`: `null-read on` is allowed.
    pub debug_switches: bool,
}

/// A running control socket server.
pub struct ControlServer {
    path: PathBuf,
}

/// A control socket that exists but is not served yet.
pub struct BoundControl {
    listener: UnixListener,
    path: PathBuf,
    group: Option<ControlGroup>,
}

impl BoundControl {
    /// Removes the socket without ever serving it.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Serves the socket on a thread from now on.
    pub fn serve(self, status: StatusFn, handlers: Handlers) -> ControlServer {
        let listener = self.listener;
        let group = self.group;
        let spawned = thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(s) => {
                            let status = status.clone();
                            let handlers = handlers.clone();
                            let group = group.clone();
                            let _ = thread::Builder::new()
                                .name("control-client".into())
                                .spawn(move || serve(s, &status, &handlers, group.as_ref()));
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
    /// thread, for root and the manager's user only.
    pub fn start(path: &Path, status: StatusFn) -> Result<ControlServer, String> {
        Ok(ControlServer::bind(path, None)?.serve(status, Handlers::default()))
    }

    /// Creates the socket at `path` (creating its parent directory and
    /// removing a stale socket left by a dead manager) without serving it
    /// yet; connections wait in the backlog until [`BoundControl::serve`].
    /// With `group`, its members may run the read-only commands.
    pub fn bind(path: &Path, group: Option<ControlGroup>) -> Result<BoundControl, String> {
        let p = path.display();
        let gid = group.as_ref().map(|g| g.gid);
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        prepare_dir(dir, path, gid)?;
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
        // Bound with whatever mode the umask lets through (the umask is
        // the whole process's: not changed here), but inside a directory
        // that keeps out everybody the socket's own mode would, so nobody
        // else reaches it before it has that mode.
        let listener =
            UnixListener::bind(path).map_err(|e| format!("cannot bind control socket {p}: {e}"))?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        let set = gid
            .map_or(Ok(()), |g| std::os::unix::fs::chown(path, None, Some(g)))
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)));
        if let Err(e) = set {
            let _ = std::fs::remove_file(path);
            return Err(format!(
                "cannot make control socket {p} mode {mode:04o}{}: {e}",
                gid.map_or(String::new(), |g| format!(" group {g}"))
            ));
        }
        Ok(BoundControl {
            listener,
            path: path.to_path_buf(),
            group,
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
            ("on", _) if !handlers.debug_switches => {
                error_json("null-read on needs a manager started with --debug-switches")
            }
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

/// Makes `dir`, the directory of the control socket `sock`, mode 0700
/// (`gid`: 0750, group `gid`), or checks that it may be used as it is
/// (see the module's documentation).
fn prepare_dir(dir: &Path, sock: &Path, gid: Option<u32>) -> Result<(), String> {
    let d = dir.display();
    let mode: u32 = if gid.is_some() { 0o750 } else { 0o700 };
    // The directories above it: ordinary ones (the group must pass).
    if let Some(up) = dir.parent()
        && !up.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(up)
            .map_err(|e| format!("cannot create {}: {e}", up.display()))?;
    }
    let made = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(format!("cannot create {d}: {e}")),
    };
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot stat {d}: {e}"))?;
    if !m.file_type().is_dir() {
        return Err(format!(
            "{d} (the control socket's directory) is not a directory"
        ));
    }
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    let wanted = |what: &str| {
        format!(
            "{what}; the control socket needs a directory of its own, owned by uid {me}, mode {mode:04o}{} (made so when it does not exist or holds nothing but the socket)",
            gid.map_or(String::new(), |g| format!(", group {g}"))
        )
    };
    if m.uid() != me {
        return Err(wanted(&format!(
            "control socket directory {d} is owned by uid {}",
            m.uid()
        )));
    }
    let have = m.mode() & 0o7777;
    let own = made
        || std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {d}: {e}"))?
            .all(|e| e.is_ok_and(|e| Some(e.file_name().as_os_str()) == sock.file_name()));
    if own {
        if let Some(g) = gid {
            std::os::unix::fs::chown(dir, None, Some(g))
                .map_err(|e| format!("cannot give {d} to group {g}: {e}"))?;
        }
        if have != mode || made {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot make {d} mode {mode:04o}: {e}"))?;
            if !made {
                wlog!("control socket directory {d} was mode {have:04o}; made it {mode:04o}");
            }
        }
        return Ok(());
    }
    // A directory with other things in it: not the manager's to change.
    let group_ok = gid.is_none_or(|g| m.gid() == g && have & 0o010 != 0);
    if have & !mode & 0o7777 != 0 || !group_ok {
        return Err(wanted(&format!(
            "control socket directory {d} holds other files and is mode {have:04o}, group {}",
            m.gid()
        )));
    }
    Ok(())
}

fn error_json(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

/// The credentials of the client at the other end of `stream`
/// (`SO_PEERCRED`: as they were when it connected).
fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
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
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Logs and counts a refused client, and answers it `msg`.
fn refuse(stream: &UnixStream, who: &str, msg: &str) {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    wlog!("control socket: refused {who}: {msg}");
    let mut w = stream;
    let _ =
        w.write_all(format!("{}\n", error_json(&format!("permission denied: {msg}"))).as_bytes());
}

fn serve(stream: UnixStream, status: &StatusFn, handlers: &Handlers, group: Option<&ControlGroup>) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let (who, access) = match peer_cred(&stream) {
        Ok(c) => (
            format!("uid {} gid {} (pid {})", c.uid, c.gid, c.pid),
            access_of(&c, group),
        ),
        Err(e) => (
            format!("a client whose credentials cannot be read ({e})"),
            None,
        ),
    };
    let Some(access) = access else {
        refuse(&stream, &who, &who_may(group));
        return;
    };
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(MAX_COMMAND));
    if reader.read_line(&mut line).is_err() {
        return;
    }
    if access == Access::ReadOnly && required(&line) == Access::Full {
        let cmd = line.trim();
        let verb = cmd.split_once(' ').map_or(cmd, |(v, _)| v);
        let verb: String = verb.chars().take(40).collect();
        refuse(
            &stream,
            &who,
            &format!(
                "{verb:?} needs root or the manager's own user (group {} may run only status and ping)",
                group.map_or("?", |g| g.name.as_str())
            ),
        );
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
            messages: Vec::new(),
            control_refused: 0,
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
        assert!(answer("null-read off", &f, &Handlers::default()).contains("no device"));
        assert_eq!(
            parse_invalidate("downgrade 7 a b").unwrap(),
            (crate::invalidate::Mode::Downgrade, 7, "a b")
        );
        let j = serde_json::to_value(report()).unwrap();
        assert_eq!(j["peers"][0]["state"], "connected");
        assert_eq!(j["peers"][0]["role"], "initiator");
    }

    #[test]
    fn status_answer_carries_percentiles() {
        let f: StatusFn = Arc::new(|| {
            let stats = crate::upcall::Stats::default();
            for us in 1..=100u64 {
                stats.record(4, false, us * 1000);
                stats.costs.record(crate::costs::Stage::Fetch, us * 1000);
            }
            StatusReport {
                upcalls: stats.snapshot(),
                costs: stats.costs.snapshot(),
                ..report()
            }
        });
        let j: serde_json::Value =
            serde_json::from_str(&answer("status", &f, &Handlers::default())).unwrap();
        let read = &j["upcalls"][3];
        let fetch = &j["costs"][2];
        assert_eq!(
            (&read["op"], &fetch["stage"]),
            (&"READ".into(), &"fetch".into())
        );
        for kind in [read, fetch] {
            let ns = |k: &str| kind[k].as_u64().unwrap_or_else(|| panic!("{k} in {kind}"));
            assert_eq!((ns("count"), ns("max_ns")), (100, 100_000));
            assert!(ns("p50_ns").abs_diff(50_000) <= 50, "{kind}");
            assert!(ns("p99_ns").abs_diff(99_000) <= 99, "{kind}");
        }
        // Every kind has them, measured or not.
        let lookup = &j["upcalls"][0];
        assert_eq!(
            (&lookup["p50_ns"], &lookup["p99_ns"]),
            (&0.into(), &0.into())
        );
    }

    #[test]
    fn status_answer_carries_message_times() {
        let f: StatusFn = Arc::new(|| {
            let m = crate::messages::Messages::default();
            for us in [40, 30, 300] {
                m.record(1, us * 1000); // Fetch
            }
            StatusReport {
                messages: m.snapshot(),
                ..report()
            }
        });
        let j: serde_json::Value =
            serde_json::from_str(&answer("status", &f, &Handlers::default())).unwrap();
        let fetch = &j["messages"][0];
        assert_eq!(j["messages"].as_array().map(Vec::len), Some(1), "{j}");
        assert_eq!(fetch["kind"], "Fetch");
        assert_eq!(fetch["count"], 3);
        assert_eq!(fetch["mean_ns"], 123_333);
        assert_eq!(fetch["max_ns"], 300_000);
        let s: StatusReport = serde_json::from_value(j).unwrap();
        assert_eq!(s.messages[0].p99_ns, 300_000);
    }

    #[test]
    fn a_report_without_message_times_still_parses() {
        // What a manager from before the `messages` field answers.
        let mut j = serde_json::to_value(report()).unwrap();
        assert!(j.as_object_mut().unwrap().remove("messages").is_some());
        let s: StatusReport = serde_json::from_value(j).unwrap();
        assert!(s.messages.is_empty());
        assert_eq!(s, report());
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

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn me() -> u32 {
        // SAFETY: geteuid(2) has no preconditions.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn every_command_is_classified() {
        for c in ["status", "status\n", "ping", "ping\r\n"] {
            assert_eq!(required(c), Access::ReadOnly, "{c}");
        }
        for c in [
            "invalidate drop 3 f",
            "forget f",
            "null-read on",
            "null-read off",
            "disconnect h2",
            // What the manager does not know needs everything.
            "",
            "bogus",
            "statusx",
            "status-and-more x",
        ] {
            assert_eq!(required(c), Access::Full, "{c}");
        }
    }

    #[test]
    fn groups_from_proc_status() {
        let text = "Name:\tcat\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nFDSize:\t64\nGroups:\t4 24 27 1000 \nNStgid:\t7\n";
        assert_eq!(proc_groups(text), vec![4, 24, 27, 1000]);
        assert_eq!(proc_groups("Name:\tx\nGroups:\t\n"), Vec::<u32>::new());
        assert_eq!(proc_groups("Name:\tx\n"), Vec::<u32>::new());
        // Our own: what getgroups(2) says.
        let ours = proc_groups(&std::fs::read_to_string("/proc/self/status").unwrap());
        let mut g = vec![0 as libc::gid_t; 256];
        // SAFETY: `g` has room for 256 groups.
        let n = unsafe { libc::getgroups(256, g.as_mut_ptr()) };
        assert!(n >= 0);
        g.truncate(n as usize);
        assert_eq!(ours, g);
        let c = PeerCred {
            pid: std::process::id() as i32,
            uid: 12345,
            gid: 4242,
        };
        assert!(in_group(&c, 4242));
        for gid in g {
            assert!(in_group(&c, gid));
        }
        let grp = ControlGroup {
            name: "g".into(),
            gid: 4242,
        };
        assert_eq!(access_of(&c, Some(&grp)), Some(Access::ReadOnly));
        assert_eq!(access_of(&c, None), None);
        let root = PeerCred { uid: 0, ..c };
        assert_eq!(access_of(&root, None), Some(Access::Full));
        let mine = PeerCred { uid: me(), ..c };
        assert_eq!(access_of(&mine, None), Some(Access::Full));
    }

    #[test]
    fn null_read_needs_debug_switches() {
        let f: StatusFn = Arc::new(report);
        let off = Handlers::default();
        assert!(answer("null-read on", &f, &off).contains("--debug-switches"));
        // (Off is a no-op without it; here there is no device either.)
        assert!(answer("null-read off", &f, &off).contains("no device"));
        let on = Handlers {
            debug_switches: true,
            ..Handlers::default()
        };
        assert!(answer("null-read on", &f, &on).contains("no device"));
    }

    /// The socket is 0600 in a 0700 directory, and a client of another
    /// user is refused before its command is read, whatever the socket's
    /// mode would let it do.
    #[test]
    fn only_root_or_the_managers_user_is_answered() {
        let dir = tmp("creds");
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run").join("m.sock");
        let before = refused();
        let srv = ControlServer::start(&path, Arc::new(report)).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir), 0o755 & !umask());
        assert!(status(&path, Duration::from_secs(5)).is_ok());
        // (Needs root to change user.)
        if me() == 0 {
            let nobody = crate::testkit::query_as(&path, 65534, 65534, &[], "status");
            assert_eq!(
                nobody.unwrap_err().raw_os_error(),
                Some(libc::EACCES),
                "the modes keep nobody out"
            );
            // Another user, let through by the modes (as a careless mode
            // could): refused all the same.
            std::fs::set_permissions(
                path.parent().unwrap(),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let got = crate::testkit::query_as(&path, 65534, 65534, &[], "status").unwrap();
            assert!(got.contains("permission denied"), "nobody got {got:?}");
            assert!(!got.contains("\"host\""), "nobody got the status: {got:?}");
            assert!(refused() > before);
        }
        srv.remove();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn umask() -> u32 {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let m = text.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
        u32::from_str_radix(m.trim(), 8).unwrap()
    }

    /// With `control_group`: 0660 in 0750, both of that group; its members
    /// (by primary or supplementary group) run status and ping only.
    #[test]
    fn control_group_members_run_read_only_commands() {
        let dir = tmp("group");
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run").join("m.sock");
        // A stale, loose directory holding nothing else: tightened.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::set_permissions(
            path.parent().unwrap(),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let gid = 54321;
        let g = ControlGroup {
            name: "wfsctl".into(),
            gid,
        };
        let srv = ControlServer::bind(&path, if me() == 0 { Some(g.clone()) } else { None })
            .unwrap()
            .serve(Arc::new(report), Handlers::default());
        if me() != 0 {
            // (Cannot give files to another group.)
            assert_eq!(mode(path.parent().unwrap()), 0o700);
            srv.remove();
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        use std::os::unix::fs::MetadataExt;
        assert_eq!(mode(&path), 0o660);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
        assert_eq!(std::fs::metadata(&path).unwrap().gid(), gid);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().gid(),
            gid
        );
        let q = |gid: u32, groups: &[u32], cmd: &str| {
            crate::testkit::query_as(&path, 65534, gid, groups, cmd).unwrap()
        };
        for (primary, groups) in [(gid, &[][..]), (65534, &[gid][..])] {
            let s: StatusReport = serde_json::from_str(&q(primary, groups, "status")).unwrap();
            assert_eq!(s, report());
            assert_eq!(q(primary, groups, "ping").trim(), "{\"ok\":true}");
            for cmd in [
                "disconnect h2",
                "forget f",
                "null-read on",
                "invalidate drop 1 f",
                "bogus",
            ] {
                let got = q(primary, groups, cmd);
                assert!(
                    got.contains("permission denied") && got.contains("needs root"),
                    "{cmd}: {got:?}"
                );
            }
        }
        // Not a member: kept out by the modes.
        let e = crate::testkit::query_as(&path, 65534, 65534, &[], "status").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        // Root runs everything (here: refused only for want of a cluster).
        assert!(
            query(&path, "disconnect h2", Duration::from_secs(5))
                .unwrap()
                .contains("no cluster")
        );
        srv.remove();
        // A directory that holds other things and is too loose: refused.
        std::fs::write(dir.join("run").join("other"), b"x").unwrap();
        let e = ControlServer::bind(&path, None).err().unwrap();
        assert!(e.contains("holds other files") && e.contains("0750"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreachable() {
        let e = status(Path::new("/nonexistent/wfs.sock"), Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("cannot reach manager"), "{e}");
    }
}
