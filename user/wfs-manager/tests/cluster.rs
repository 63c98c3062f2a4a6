//! End-to-end tests: real `wfs-manager` processes (with `--no-device`) on
//! 127.0.0.1, observed through their control sockets and logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wfs_manager::cluster::{PeerState, Role};
use wfs_manager::secure;
use wfs_manager::testkit::{Node, TestDir, free_port, read_until_closed, wait_until};
use wfs_manager::wire::{self, Frame};

const BIN: &str = env!("CARGO_BIN_EXE_wfs-manager");
const T: Duration = Duration::from_secs(20);

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// Connects to a manager's listen port and sends raw bytes; returns the
/// first frame it answers with, if any, before it closes.
fn raw_exchange(port: u16, bytes: &[u8]) -> Result<Frame, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).map_err(|e| e.to_string())?;
    wire::read_frame(&mut s).map_err(|e| e.to_string())
}

/// After the manager closes the connection, reads until EOF (bounded).
fn closed_by_peer(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // PINGs or a REFUSE may come first
            Err(e) => {
                return e.kind() == std::io::ErrorKind::ConnectionReset;
            }
        }
    }
}

/// Dials the manager on `port` holding the key of `me` (from `dir`) and
/// completes the key exchange with `peer`'s key: the stream, a reader of
/// what comes back, and the sealer of what goes.
fn keyed_dial(
    dir: &TestDir,
    port: u16,
    me: &str,
    peer: &str,
) -> (TcpStream, secure::RecordReader<TcpStream>, secure::Sealer) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (sealer, opener) = secure::initiate(&mut s, "test", &dir.key(me), &dir.key(peer).public)
        .unwrap_or_else(|e| panic!("key exchange: {e}"));
    let r = opener.reader(s.try_clone().unwrap(), 65536);
    (s, r, sealer)
}

/// [`keyed_dial`], then HELLO as `me`, answered by HELLO_ACK.
fn keyed_hello(dir: &TestDir, port: u16, me: &str, peer: &str) -> (TcpStream, secure::Sealer) {
    let (mut s, mut r, sealer) = keyed_dial(dir, port, me, peer);
    sealer
        .write_to(&mut s, Frame::hello("test", me, 7).encode())
        .unwrap();
    assert!(matches!(
        wire::read_frame(&mut r),
        Ok(Frame::HelloAck {
            version: wire::PROTOCOL_VERSION,
            ..
        })
    ));
    (s, sealer)
}

fn connected(a: &Node, b: &str) -> bool {
    a.peer_state(b) == Some(PeerState::Connected)
}

#[test]
fn three_managers() {
    let dir = TestDir::new("cluster");
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let mut a = Node::new(bin(), &dir, "a", "test", pa, &[("b", pb), ("c", pc)]);
    let mut b = Node::new(bin(), &dir, "b", "test", pb, &[("a", pa), ("c", pc)]);
    let mut c = Node::new(bin(), &dir, "c", "test", pc, &[("a", pa), ("b", pb)]);
    // Start in the "wrong" order so that dialers have to retry.
    c.start();
    b.start();
    a.start();
    let all =
        |a: &Node, b: &Node, c: &Node| a.all_connected() && b.all_connected() && c.all_connected();
    wait_until(T, "all three connected", &[&a, &b, &c], || all(&a, &b, &c));

    // Roles follow the name order; status carries everything wfsctl needs.
    let sa = a.status().unwrap();
    assert_eq!(sa.host, "a");
    assert_eq!(sa.cluster, "test");
    assert!(!sa.registered);
    assert_eq!(sa.device, None);
    assert_eq!(sa.abi_version, wfs_abi::ABI_VERSION);
    assert_eq!(sa.pid as i32, a.pid());
    assert_eq!(sa.peers.len(), 2);
    assert!(sa.peers.iter().all(|p| p.role == Role::Initiator));
    assert_eq!(sa.peers[0].addr, format!("127.0.0.1:{pb}"));
    let sc = c.status().unwrap();
    assert!(sc.peers.iter().all(|p| p.role == Role::Acceptor));
    let sb = b.status().unwrap();
    assert_eq!(sb.peers[0].role, Role::Acceptor);
    assert_eq!(sb.peers[1].role, Role::Initiator);
    for (n, peers) in [(&a, ["b", "c"]), (&b, ["a", "c"]), (&c, ["a", "b"])] {
        let log = n.log_text();
        for p in peers {
            assert!(
                log.contains(&format!("wfs-manager[{}]: peer {p} connected (", n.name)),
                "{log}"
            );
        }
    }

    // --- raw protocol abuse against b; b must survive all of it, and
    // tell nothing (no REFUSE: it names the cluster and the host) -------
    let mut bad_magic = Frame::hello("test", "a", 7).encode();
    bad_magic[6] = b'X';
    let mut bad_version = Frame::hello("test", "a", 7).encode();
    bad_version[10] = 99;
    let abuse: Vec<Vec<u8>> = vec![
        // A plain HELLO from a configured peer (that should wait, even).
        Frame::hello("test", "c", 7).encode(),
        Frame::hello("test", "a", 7).encode(),
        bad_magic,
        bad_version,
        // An oversized length, an HTTP request, a truncated frame.
        u32::MAX.to_le_bytes().to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        vec![10, 0, 0, 0, 1, 0, b'W'],
    ];
    let refused_before = b.status().unwrap().transport.unwrap().handshakes_refused;
    for bytes in &abuse {
        let mut s = TcpStream::connect(("127.0.0.1", pb)).unwrap();
        s.write_all(bytes).unwrap();
        // (b may have closed the connection already, on what it read:
        // then there is nothing to shut down.)
        match s.shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() != std::io::ErrorKind::NotConnected => panic!("shutdown: {e}"),
            _ => {}
        }
        assert_eq!(read_until_closed(s), b"", "b answered {bytes:?}");
    }
    wait_until(T, "b counts every refused key exchange", &[&b], || {
        b.status().unwrap().transport.unwrap().handshakes_refused
            == refused_before + abuse.len() as u64
    });
    assert!(
        b.log_text().contains("key exchange refused"),
        "{}",
        b.log_text()
    );
    // An impostor holding a's key (stolen, say), completing the handshake
    // and then sending an oversized frame: that connection (which replaced
    // a's) is dropped, and the real `a` reconnects.
    let (mut s, sealer) = keyed_hello(&dir, pb, "a", "b");
    // (The dialer's first frame makes the connection count.)
    sealer
        .write_to(&mut s, Frame::Ping { seq: 1 }.encode())
        .unwrap();
    sealer
        .write_to(
            &mut s,
            ((wire::MAX_FRAME + 1) as u32).to_le_bytes().to_vec(),
        )
        .unwrap();
    assert!(closed_by_peer(s));
    wait_until(T, "b logs the oversized frame", &[&b], || {
        b.log_text().contains("oversized frame")
    });
    wait_until(T, "a and b connected again", &[&a, &b], || {
        connected(&a, "b") && connected(&b, "a")
    });
    // The same with a record altered on the way: closed, logged, counted.
    let (mut s, sealer) = keyed_hello(&dir, pb, "a", "b");
    let mut ping = sealer.seal(Frame::Ping { seq: 1 }.encode());
    let last = ping.len() - 1;
    ping[last] ^= 0x80;
    s.write_all(&ping).unwrap();
    assert!(closed_by_peer(s));
    wait_until(T, "b counts the altered record", &[&b], || {
        b.status().unwrap().transport.unwrap().records_rejected == 1
    });
    assert!(b.log_text().contains(secure::TAMPERED), "{}", b.log_text());
    assert!(b.status().is_some(), "b must survive bad frames");
    wait_until(T, "a and b connected again", &[&a, &b], || {
        connected(&a, "b") && connected(&b, "a")
    });

    // --- a manager of another cluster is refused -------------------------
    // (With a's own key: the cluster name is part of the key exchange.)
    let mut wrong = Node::new(bin(), &dir, "a", "other-cluster", free_port(), &[("b", pb)]);
    wrong.start();
    wait_until(T, "wrong-cluster manager refused", &[&wrong, &b], || {
        wrong.log_text().contains("key exchange failed")
    });
    let sw = wrong.status().unwrap();
    assert_ne!(sw.peers[0].state, PeerState::Connected);
    let reason = sw.peers[0].reason.clone().unwrap();
    assert!(reason.contains("key exchange failed"), "{reason}");
    assert!(
        !reason.contains("test"),
        "the refusal told the cluster's name: {reason}"
    );
    wait_until(T, "b logs the refusal", &[&b], || {
        b.log_text().contains("does not open with this host's key")
    });
    // The real a is not disturbed.
    assert!(connected(&b, "a"));
    wrong.kill9();

    // --- a host that is not a configured peer is refused -----------------
    let mut stranger = Node::new(bin(), &dir, "a1", "test", free_port(), &[("b", pb)]);
    stranger.start();
    wait_until(T, "b logs the stranger", &[&stranger, &b], || {
        b.log_text().contains("is not a configured peer's")
    });
    assert_ne!(stranger.peer_state("b"), Some(PeerState::Connected));
    stranger.kill9();

    // --- a stopped (not dead) peer is detected by the heartbeat ----------
    c.signal(libc::SIGSTOP);
    wait_until(T, "a and b notice c is unresponsive", &[&a, &b], || {
        !connected(&a, "c") && !connected(&b, "c")
    });
    assert!(a.log_text().contains("no heartbeat"), "{}", a.log_text());
    c.signal(libc::SIGCONT);
    wait_until(
        Duration::from_secs(30),
        "c back after SIGCONT",
        &[&a, &b, &c],
        || all(&a, &b, &c),
    );

    // --- a killed peer is shown disconnected, and reconnects -------------
    b.kill9();
    wait_until(T, "a and c see b gone", &[&a, &c], || {
        !connected(&a, "b") && !connected(&c, "b")
    });
    // a dials b, so it shows "connecting"; c waits for b: "disconnected".
    assert_eq!(a.peer_state("b"), Some(PeerState::Connecting));
    assert_eq!(c.peer_state("b"), Some(PeerState::Disconnected));
    assert!(c.log_text().contains("wfs-manager[c]: peer b disconnected"));
    assert!(a.log_text().contains("wfs-manager[a]: peer b disconnected"));
    b.start(); // same port: SO_REUSEADDR
    wait_until(T, "b reconnected after restart", &[&a, &b, &c], || {
        all(&a, &b, &c)
    });
    assert!(b.log_text().contains("removed stale control socket"));

    // --- SIGTERM: exit 0, control socket removed --------------------------
    for n in [&mut a, &mut b, &mut c] {
        n.signal(libc::SIGTERM);
        let st = n.wait_exit(Duration::from_secs(10));
        assert_eq!(st.code(), Some(0), "{}: {st:?}\n{}", n.name, n.log_text());
        assert!(
            !n.control.exists(),
            "{}: control socket left behind",
            n.name
        );
        let log = n.log_text();
        assert!(
            log.contains(&format!("wfs-manager[{}]: exiting", n.name)),
            "{log}"
        );
    }
}

#[test]
fn the_plain_transport_takes_frames_as_they_are_and_says_why_it_refuses() {
    // `transport = "plain"` (trusted networks): no keys; a HELLO is taken
    // at its word, and a refusal says why (it names the cluster and the
    // host: one reason the default is "noise").
    let dir = TestDir::new("plain");
    let (pa, pb) = (free_port(), free_port());
    let mut a = Node::new(bin(), &dir, "a", "test", pa, &[("b", pb)]).plain();
    let mut b = Node::new(bin(), &dir, "b", "test", pb, &[("a", pa)]).plain();
    b.start();
    a.start();
    wait_until(T, "a and b connected", &[&a, &b], || {
        connected(&a, "b") && connected(&b, "a")
    });
    assert_eq!(b.status().unwrap().transport.unwrap().transport, "plain");
    // Another cluster, a host that must not dial, bad magic, a version
    // this manager does not speak.
    let mut bad_magic = Frame::hello("test", "a", 7).encode();
    bad_magic[6] = b'X';
    let mut bad_version = Frame::hello("test", "a", 7).encode();
    bad_version[10] = 99;
    let mut stranger = Node::new(bin(), &dir, "a0", "test", free_port(), &[("b", pb)]).plain();
    stranger.start();
    for (bytes, why) in [
        (
            Frame::hello("other", "a", 7).encode(),
            "cluster name mismatch",
        ),
        (
            Frame::hello("test", "a1", 7).encode(),
            "not a configured peer",
        ),
        (bad_magic, "magic"),
        (bad_version, "version 99"),
    ] {
        match raw_exchange(pb, &bytes) {
            Ok(Frame::Refuse { reason }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    wait_until(T, "a0, not a peer of b, refused", &[&stranger, &b], || {
        stranger.peer_state("b") == Some(PeerState::Refused)
    });
    stranger.kill9();
    // An impostor claiming to be `a` gets in: that is what "plain" means.
    let mut s = TcpStream::connect(("127.0.0.1", pb)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    wire::write_frame(&mut s, &Frame::hello("test", "a", 7)).unwrap();
    assert!(matches!(
        wire::read_frame(&mut s),
        Ok(Frame::HelloAck { .. })
    ));
    wire::write_frame(&mut s, &Frame::Ping { seq: 1 }).unwrap();
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    assert!(closed_by_peer(s));
    wait_until(T, "b logs the oversized frame", &[&b], || {
        b.log_text().contains("oversized frame")
    });
    wait_until(T, "a and b connected again", &[&a, &b], || {
        connected(&a, "b") && connected(&b, "a")
    });
}

#[test]
fn sigint_exits_cleanly() {
    let dir = TestDir::new("sigint");
    let mut a = Node::new(bin(), &dir, "solo", "test", free_port(), &[]);
    a.start();
    wait_until(T, "solo answers", &[&a], || a.status().is_some());
    a.signal(libc::SIGINT);
    let st = a.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0));
    assert!(!a.control.exists());
    assert!(a.log_text().contains("received SIGINT"));
}

/// Runs the manager to completion (it must fail fast) and returns
/// (exit code, stderr).
fn run_failing(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st.code().unwrap_or(-1), err);
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wfs-manager {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn startup_errors() {
    let dir = TestDir::new("errors");
    let cfg = |name: &str, body: &str| {
        let p = dir.path.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let export = dir.export();
    let base = format!(
        "cluster = \"t\"\nhost = \"a\"\nlisten = \"127.0.0.1:{}\"\nexport = \"{}\"\ncontrol = \"{}\"\nstate = \"{}\"\ntransport = \"plain\"\n",
        free_port(),
        export.display(),
        dir.path.join("ctl").join("m.sock").display(),
        dir.path.join("state").display()
    );

    let (code, err) = run_failing(&[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("required arguments were not provided") && err.contains("--config <PATH>"),
        "{err}"
    );

    let (code, err) = run_failing(&["--config", "/nonexistent/x.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/x.toml"), "{err}");

    let bad = cfg("bad.toml", &format!("{base}typo = 1\n"));
    let (code, err) = run_failing(&["--config", &bad, "--no-device"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("config error") && err.contains("typo"),
        "{err}"
    );

    // No device node: the operator is pointed at the module.
    let nodev = cfg(
        "nodev.toml",
        &format!("{base}device = \"/nonexistent/wfs\"\n"),
    );
    let (code, err) = run_failing(&["--config", &nodev]);
    assert_eq!(code, 1);
    assert!(
        err.contains("wfs-manager[a]: cannot open /nonexistent/wfs")
            && err.contains("is wfs.ko loaded?"),
        "{err}"
    );

    // A device that is not wfs.
    let null = cfg("null.toml", &format!("{base}device = \"/dev/null\"\n"));
    let (code, err) = run_failing(&["--config", &null]);
    assert_eq!(code, 1);
    assert!(err.contains("ENOTTY"), "{err}");

    // Listen address in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let inuse = cfg(
        "inuse.toml",
        &format!(
            "cluster = \"t\"\nhost = \"a\"\nlisten = \"127.0.0.1:{port}\"\nexport = \"{}\"\ncontrol = \"{}\"\nstate = \"{}\"\ntransport = \"plain\"\n",
            export.display(),
            dir.path.join("ctl2").join("m.sock").display(),
            dir.path.join("state").display()
        ),
    );
    let (code, err) = run_failing(&["--config", &inuse, "--no-device"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot listen on"), "{err}");

    // A state directory that cannot be written: the manager must not
    // run without remembering whom it took for dead.
    let nostate = cfg(
        "nostate.toml",
        &format!(
            "cluster = \"t\"\nhost = \"a\"\nlisten = \"127.0.0.1:{}\"\nexport = \"{}\"\ncontrol = \"{}\"\nstate = \"/proc/wfs-state\"\ntransport = \"plain\"\n",
            free_port(),
            export.display(),
            dir.path.join("ctl3").join("m.sock").display()
        ),
    );
    let (code, err) = run_failing(&["--config", &nostate, "--no-device"]);
    let nostate_err = err;
    // A key file others may read: refused at start-up, with the remedy.
    let key = dir.key_file("a");
    dir.key("a");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let open_key = cfg(
        "openkey.toml",
        &base.replace(
            "transport = \"plain\"",
            &format!("key_file = \"{}\"", key.display()),
        ),
    );
    let (kcode, kerr) = run_failing(&["--config", &open_key, "--no-device"]);
    assert_eq!(kcode, 1);
    assert!(
        kerr.contains("has mode 640: others may read it; chmod 600 it"),
        "{kerr}"
    );
    let err = nostate_err;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot keep this host's state in /proc/wfs-state"),
        "{err}"
    );
    assert!(!dir.path.join("ctl2").join("m.sock").exists());
}

#[test]
fn control_socket_in_use() {
    let dir = TestDir::new("ctlbusy");
    let mut a = Node::new(bin(), &dir, "a", "test", free_port(), &[]);
    a.start();
    wait_until(T, "a answers", &[&a], || a.status().is_some());
    // A second manager with the same control path must not steal it.
    let mut text = std::fs::read_to_string(&a.config).unwrap();
    text = text.replace(
        &format!("127.0.0.1:{}", a.port),
        &format!("127.0.0.1:{}", free_port()),
    );
    let p = dir.path.join("second.toml");
    std::fs::write(&p, text).unwrap();
    let (code, err) = run_failing(&["--config", p.to_str().unwrap(), "--no-device"]);
    assert_eq!(code, 1);
    assert!(err.contains("in use by another running manager"), "{err}");
    assert!(a.status().is_some(), "first manager still answers");
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

#[test]
fn a_flood_of_connections_takes_a_bounded_number_of_threads() {
    // (Every accepted connection used to get a thread of its own until its
    // handshake timed out: anyone who could reach the port could make the
    // manager start thousands.)
    let dir = TestDir::new("flood");
    let (pa, pb) = (free_port(), free_port());
    let mut a = Node::new(bin(), &dir, "a", "test", pa, &[("b", pb)]);
    let mut b = Node::new(bin(), &dir, "b", "test", pb, &[("a", pa)]);
    a.start();
    wait_until(T, "a answers", &[&a], || a.status().is_some());
    let before = threads(a.pid());
    // Connections that never say who they are.
    let flood: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", pa)).ok())
        .collect();
    assert_eq!(flood.len(), 60);
    wait_until(T, "a closes what is over its limit", &[&a], || {
        a.log_text().contains("closing new ones")
    });
    let during = threads(a.pid());
    // At most 2 × 1 peer + 8 connections at once.
    assert!(
        during <= before + 10,
        "{before} threads before the flood, {during} during it"
    );
    // The real peer still gets in, once the flood is gone.
    drop(flood);
    b.start();
    wait_until(T, "a and b connected", &[&a, &b], || {
        connected(&a, "b") && connected(&b, "a")
    });
}
