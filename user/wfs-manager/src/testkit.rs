//! Helpers for the integration tests of this workspace: temporary
//! directories, free ports, and real `wfs-manager` processes started with
//! `--no-device`. Not part of the manager proper.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::PeerState;
use crate::control::{self, StatusReport};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A temporary directory, removed on drop.
pub struct TestDir {
    /// Its path.
    pub path: PathBuf,
}

impl TestDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> TestDir {
        let path = std::env::temp_dir().join(format!(
            "wfs-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("export")).expect("create test dir");
        TestDir { path }
    }

    /// The (empty) export directory inside it.
    pub fn export(&self) -> PathBuf {
        self.path.join("export")
    }
}

impl TestDir {
    /// The key pair of host `name` in this directory's cluster, made on
    /// first use (`keys/NAME.key`, mode 0600, and `keys/NAME.key.pub`).
    pub fn key(&self, name: &str) -> crate::secure::KeyPair {
        let dir = self.path.join("keys");
        let _ = std::fs::create_dir_all(&dir);
        let path = self.key_file(name);
        if let Ok(k) = crate::secure::KeyPair::load(&path) {
            return k;
        }
        let k = crate::secure::KeyPair::generate().expect("key pair");
        k.write(&path).expect("write key");
        k
    }

    /// Where [`TestDir::key`] keeps host `name`'s private key.
    pub fn key_file(&self, name: &str) -> PathBuf {
        self.path.join("keys").join(format!("{name}.key"))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A port that was free a moment ago (bound on 127.0.0.1:0, then closed).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Reads from `s` until the other side closes it; returns what arrived.
/// Panics if it stays open 10 s without a byte (not closed is not
/// "nothing said").
pub fn read_until_closed(mut s: std::net::TcpStream) -> Vec<u8> {
    use std::io::Read as _;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the connection stayed open ({e}) after {got:?}"),
        }
    }
}

/// One manager process (or its configuration, while not running).
pub struct Node {
    /// Host name.
    pub name: String,
    /// Cluster name written to its configuration.
    pub cluster: String,
    /// Listen port on 127.0.0.1.
    pub port: u16,
    /// Configured peers: (name, port).
    pub peers: Vec<(String, u16)>,
    /// Control socket path.
    pub control: PathBuf,
    /// Log file (the process's stderr, appended across restarts).
    pub log: PathBuf,
    /// Configuration file.
    pub config: PathBuf,
    /// The running process.
    pub child: Option<Child>,
    /// Arguments given to the manager after `--config PATH --no-device`.
    pub args: Vec<String>,
    bin: PathBuf,
    /// Its private key file and its peers' public keys (`None`: the plain
    /// transport, see [`Node::plain`]).
    keys: Option<(PathBuf, Vec<crate::secure::Key>)>,
    export: PathBuf,
}

impl Node {
    /// Describes a node; nothing runs yet.
    pub fn new(
        bin: &Path,
        dir: &TestDir,
        name: &str,
        cluster: &str,
        port: u16,
        peers: &[(&str, u16)],
    ) -> Node {
        let tag = format!("{name}-{port}");
        dir.key(name);
        let keys = Some((
            dir.key_file(name),
            peers.iter().map(|(n, _)| dir.key(n).public).collect(),
        ));
        Node {
            name: name.to_string(),
            cluster: cluster.to_string(),
            port,
            peers: peers.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            control: dir.path.join(format!("ctl-{tag}")).join("manager.sock"),
            log: dir.path.join(format!("{tag}.log")),
            config: dir.path.join(format!("{tag}.toml")),
            child: None,
            args: Vec::new(),
            bin: bin.to_path_buf(),
            keys,
            export: dir.export(),
        }
        .write_config()
    }

    /// The same node with `transport = "plain"`: no keys, no encryption.
    pub fn plain(mut self) -> Node {
        self.keys = None;
        self.write_config()
    }

    fn write_config(self) -> Node {
        let export = &self.export;
        let mut t = String::new();
        let _ = writeln!(t, "cluster = \"{}\"", self.cluster);
        let _ = writeln!(t, "host = \"{}\"", self.name);
        let _ = writeln!(t, "listen = \"127.0.0.1:{}\"", self.port);
        let _ = writeln!(t, "export = \"{}\"", export.display());
        let _ = writeln!(t, "device = \"/nonexistent/wfs\"");
        let _ = writeln!(t, "control = \"{}\"", self.control.display());
        let state = self
            .control
            .parent()
            .unwrap_or(Path::new("."))
            .join("state");
        let _ = writeln!(t, "state = \"{}\"", state.display());
        match &self.keys {
            Some((key, _)) => {
                let _ = writeln!(t, "key_file = \"{}\"", key.display());
            }
            None => {
                let _ = writeln!(t, "transport = \"plain\"");
            }
        }
        for (i, (n, p)) in self.peers.iter().enumerate() {
            let _ = writeln!(t, "\n[[peer]]\nname = \"{n}\"\naddr = \"127.0.0.1:{p}\"");
            if let Some((_, keys)) = &self.keys {
                let _ = writeln!(
                    t,
                    "public_key = \"{}\"",
                    crate::secure::encode_key(&keys[i])
                );
            }
        }
        std::fs::write(&self.config, t).expect("write config");
        self
    }

    /// Starts the manager with `--no-device`, stderr appended to the log.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("--no-device")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn wfs-manager");
        self.child = Some(child);
    }

    /// Process id of the running manager.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("not running").id() as i32
    }

    /// Sends `sig` to the manager.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits (bounded) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("not running");
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the manager with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The status, if the manager answers.
    pub fn status(&self) -> Option<StatusReport> {
        control::status(&self.control, Duration::from_secs(2)).ok()
    }

    /// State of `peer` as this manager sees it.
    pub fn peer_state(&self, peer: &str) -> Option<PeerState> {
        self.status()?
            .peers
            .into_iter()
            .find(|p| p.name == peer)
            .map(|p| p.state)
    }

    /// True iff every configured peer is connected.
    pub fn all_connected(&self) -> bool {
        self.status()
            .map(|s| s.peers.iter().all(|p| p.state == PeerState::Connected))
            .unwrap_or(false)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        // WFS_TEST_LOGS=1 cargo test -- --nocapture shows every log.
        if std::env::var_os("WFS_TEST_LOGS").is_some() {
            eprintln!(
                "--- log of {} ({}):\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// Sends `cmd` to the control socket at `path` from a child process that
/// runs as user `uid`, primary group `gid` and supplementary groups
/// `groups` (the caller must be root), and returns its one-line answer,
/// or the error of its `connect` (`EACCES` when the modes keep it out).
pub fn query_as(
    path: &Path,
    uid: u32,
    gid: u32,
    groups: &[u32],
    cmd: &str,
) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // Everything the child needs is made before the fork: it only makes
    // async-signal-safe calls (setgroups, setgid, setuid, socket, connect,
    // write, read, _exit) on its own copy of this memory.
    let p = path.as_os_str().as_encoded_bytes();
    assert!(p.len() < 108, "socket path too long");
    // SAFETY: an all-zero sockaddr_un is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, b) in p.iter().enumerate() {
        addr.sun_path[i] = *b as libc::c_char;
    }
    let line = format!("{cmd}\n");
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: see above; the child ends with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: as above; every buffer is the child's own copy. What it
        // writes on the pipe: b'C' and the errno of connect (4 bytes), or
        // b'U' and the errno of changing user, or b'A' and the answer.
        unsafe {
            libc::close(r);
            let errno = || *libc::__errno_location();
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                let e = errno().to_le_bytes();
                libc::write(w, b"U".as_ptr().cast(), 1);
                libc::write(w, e.as_ptr().cast(), 4);
                libc::_exit(1);
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::connect(s, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
                let e = errno().to_le_bytes();
                libc::write(w, b"C".as_ptr().cast(), 1);
                libc::write(w, e.as_ptr().cast(), 4);
                libc::_exit(0);
            }
            libc::write(w, b"A".as_ptr().cast(), 1);
            libc::write(s, line.as_ptr().cast(), line.len());
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(s, buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    break;
                }
                libc::write(w, buf.as_ptr().cast(), n as usize);
            }
            libc::_exit(0);
        }
    }
    // SAFETY: `w` is ours to close; `r` is an open pipe that the `File`
    // now owns.
    let mut f = unsafe {
        libc::close(w);
        std::fs::File::from_raw_fd(r)
    };
    let mut got = Vec::new();
    f.read_to_end(&mut got)?;
    let mut st = 0;
    // SAFETY: `pid` is our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    let errno = |b: &[u8]| {
        let e = i32::from_le_bytes(b.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
        std::io::Error::from_raw_os_error(e)
    };
    match got.split_first() {
        Some((b'A', rest)) => Ok(String::from_utf8_lossy(rest).into_owned()),
        Some((b'C', rest)) => Err(errno(rest)),
        Some((b'U', rest)) => panic!("cannot become uid {uid} gid {gid}: {}", errno(rest)),
        _ => panic!("the child as uid {uid} said nothing"),
    }
}

/// Polls `cond` every 50 ms until it holds; panics after `timeout` with
/// `what` and the given logs.
pub fn wait_until(timeout: Duration, what: &str, logs: &[&Node], mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() > end {
            let mut msg = format!("timed out after {timeout:?} waiting for: {what}\n");
            for n in logs {
                let _ = writeln!(
                    msg,
                    "--- {} status: {:?}\n--- {} log:\n{}",
                    n.name,
                    n.status(),
                    n.name,
                    n.log_text()
                );
            }
            panic!("{msg}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
