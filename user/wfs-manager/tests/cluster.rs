//! End-to-end tests: real `wfs-manager` processes (with `--no-device`) on
//! 127.0.0.1, observed through their control sockets and logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wfs_manager::cluster::{PeerState, Role};
use wfs_manager::testkit::{Node, TestDir, free_port, wait_until};
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

    // --- raw protocol abuse against b; b must survive all of it ---------

    // A configured peer that should wait, not dial (c > b).
    match raw_exchange(pb, &Frame::hello("test", "c", 7).encode()) {
        Ok(Frame::Refuse { reason }) => assert!(reason.contains("must not initiate"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Bad magic.
    let mut hello = Frame::hello("test", "a", 7).encode();
    hello[6] = b'X';
    match raw_exchange(pb, &hello) {
        Ok(Frame::Refuse { reason }) => assert!(reason.contains("magic"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Unsupported version.
    let mut hello = Frame::hello("test", "a", 7).encode();
    hello[10] = 99;
    match raw_exchange(pb, &hello) {
        Ok(Frame::Refuse { reason }) => assert!(reason.contains("version 99"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // An oversized frame before the handshake: closed, logged.
    let mut s = TcpStream::connect(("127.0.0.1", pb)).unwrap();
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    assert!(closed_by_peer(s));
    // Plain garbage (an HTTP request reads as a huge length).
    let mut s = TcpStream::connect(("127.0.0.1", pb)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(closed_by_peer(s));
    // A truncated frame then EOF.
    let mut s = TcpStream::connect(("127.0.0.1", pb)).unwrap();
    s.write_all(&[10, 0, 0, 0, 1, 0, b'W']).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_peer(s));
    // An impostor claiming to be `a`, completing the handshake and then
    // sending an oversized frame: that connection (which replaced a's)
    // is dropped, and the real `a` reconnects.
    let mut s = TcpStream::connect(("127.0.0.1", pb)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    wire::write_frame(&mut s, &Frame::hello("test", "a", 7)).unwrap();
    assert!(matches!(
        wire::read_frame(&mut s),
        Ok(Frame::HelloAck {
            version: wire::PROTOCOL_VERSION,
            ..
        })
    ));
    // (The dialer's first frame makes the connection count.)
    wire::write_frame(&mut s, &Frame::Ping { seq: 1 }).unwrap();
    s.write_all(&((wire::MAX_FRAME + 1) as u32).to_le_bytes())
        .unwrap();
    assert!(closed_by_peer(s));
    wait_until(T, "b logs the oversized frame", &[&b], || {
        b.log_text().contains("oversized frame")
    });
    assert!(
        b.log_text().contains("refused peer c ("),
        "{}",
        b.log_text()
    );
    assert!(b.log_text().contains("bad magic"), "{}", b.log_text());
    assert!(b.status().is_some(), "b must survive bad frames");
    wait_until(T, "a and b connected again", &[&a, &b], || {
        connected(&a, "b") && connected(&b, "a")
    });

    // --- a manager of another cluster is refused -------------------------
    let mut wrong = Node::new(bin(), &dir, "a", "other-cluster", free_port(), &[("b", pb)]);
    wrong.start();
    wait_until(T, "wrong-cluster manager refused", &[&wrong, &b], || {
        wrong.peer_state("b") == Some(PeerState::Refused)
    });
    let sw = wrong.status().unwrap();
    let reason = sw.peers[0].reason.clone().unwrap();
    assert!(reason.contains("cluster name mismatch"), "{reason}");
    wait_until(T, "b logs the refusal", &[&b], || {
        b.log_text().lines().any(|l| {
            l.starts_with("wfs-manager[b]: refused peer a (") && l.contains("cluster name mismatch")
        })
    });
    assert!(
        wrong.log_text().contains("refused us"),
        "{}",
        wrong.log_text()
    );
    // The real a is not disturbed.
    assert!(connected(&b, "a"));
    wrong.kill9();

    // --- a host that is not a configured peer is refused -----------------
    let mut stranger = Node::new(bin(), &dir, "a1", "test", free_port(), &[("b", pb)]);
    stranger.start();
    wait_until(T, "stranger refused", &[&stranger, &b], || {
        stranger.peer_state("b") == Some(PeerState::Refused)
    });
    wait_until(T, "b logs the stranger", &[&b], || {
        b.log_text().contains("refused peer a1 (")
    });
    assert!(
        b.log_text()
            .contains("host \"a1\" is not a configured peer"),
        "{}",
        b.log_text()
    );
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
        "cluster = \"t\"\nhost = \"a\"\nlisten = \"127.0.0.1:{}\"\nexport = \"{}\"\ncontrol = \"{}\"\nstate = \"{}\"\n",
        free_port(),
        export.display(),
        dir.path.join("ctl").join("m.sock").display(),
        dir.path.join("state").display()
    );

    let (code, err) = run_failing(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("--config is required"), "{err}");

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
            "cluster = \"t\"\nhost = \"a\"\nlisten = \"127.0.0.1:{port}\"\nexport = \"{}\"\ncontrol = \"{}\"\nstate = \"{}\"\n",
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
            "cluster = \"t\"\nhost = \"a\"\nlisten = \"127.0.0.1:{}\"\nexport = \"{}\"\ncontrol = \"{}\"\nstate = \"/proc/wfs-state\"\n",
            free_port(),
            export.display(),
            dir.path.join("ctl3").join("m.sock").display()
        ),
    );
    let (code, err) = run_failing(&["--config", &nostate, "--no-device"]);
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
