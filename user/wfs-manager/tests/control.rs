//! The control socket of a real `wfs-manager` (`--no-device`): its modes,
//! who may connect, what a `control_group` member may run, and the
//! `--debug-switches` gate of `null-read`. The clients that are not root
//! are forked children that changed user (so the parts that need them run
//! only as root).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wfs_manager::control::{self, StatusReport};
use wfs_manager::testkit::{Node, TestDir, free_port, query_as, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_wfs-manager");
const T: Duration = Duration::from_secs(20);
/// A group nobody is in (numeric: no /etc/group entry needed).
const GROUP: u32 = 54_322;
const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn ask(n: &Node, cmd: &str) -> String {
    control::query(&n.control, cmd, Duration::from_secs(5)).unwrap()
}

/// A node whose configuration starts with `extra` (top-level keys).
fn node(dir: &TestDir, name: &str, extra: &str) -> Node {
    let n = Node::new(Path::new(BIN), dir, name, "test", free_port(), &[]);
    let text = std::fs::read_to_string(&n.config).unwrap();
    std::fs::write(&n.config, format!("{extra}{text}")).unwrap();
    n
}

#[test]
fn only_root_reaches_the_default_socket() {
    let dir = TestDir::new("ctlmodes");
    // (The test directory must let nobody pass, as /run does.)
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut a = node(&dir, "a", "");
    a.start();
    wait_until(T, "a answers", &[&a], || a.status().is_some());
    assert_eq!(mode(&a.control), 0o600);
    assert_eq!(mode(a.control.parent().unwrap()), 0o700);
    if is_root() {
        let e = query_as(&a.control, NOBODY, NOBODY, &[], "status").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
        // Even a member of a group (there is none configured).
        let e = query_as(&a.control, NOBODY, GROUP, &[], "status").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    }
    // Root runs everything: here, null-read needs --debug-switches.
    assert!(a.status().is_some());
    let got = ask(&a, "null-read on");
    assert!(
        got.contains("error") && got.contains("--debug-switches"),
        "{got}"
    );
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!a.control.exists());
}

#[test]
fn a_control_group_member_runs_read_only_commands() {
    if !is_root() {
        // (Only root can give the socket to a group it is not in, and
        // become another user.)
        return;
    }
    let dir = TestDir::new("ctlgroup");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut a = node(&dir, "a", &format!("control_group = \"{GROUP}\"\n"));
    a.start();
    wait_until(T, "a answers", &[&a], || a.status().is_some());
    let sock = a.control.clone();
    let sdir = sock.parent().unwrap();
    assert_eq!(mode(&sock), 0o660);
    assert_eq!(mode(sdir), 0o750);
    assert_eq!(std::fs::metadata(&sock).unwrap().gid(), GROUP);
    assert_eq!(std::fs::metadata(sdir).unwrap().gid(), GROUP);
    // A member by its primary group, and one by a supplementary group.
    for (gid, groups) in [(GROUP, &[][..]), (NOBODY, &[GROUP][..])] {
        let s: StatusReport =
            serde_json::from_str(&query_as(&sock, NOBODY, gid, groups, "status").unwrap()).unwrap();
        assert_eq!(s.host, "a");
        assert_eq!(
            query_as(&sock, NOBODY, gid, groups, "ping").unwrap().trim(),
            "{\"ok\":true}"
        );
        for cmd in [
            "disconnect b",
            "forget x",
            "null-read on",
            "invalidate drop 0 x",
        ] {
            let got = query_as(&sock, NOBODY, gid, groups, cmd).unwrap();
            let v: serde_json::Value = serde_json::from_str(&got).unwrap();
            let e = v["error"].as_str().unwrap_or_default();
            assert!(
                e.starts_with("permission denied") && e.contains("needs root"),
                "{cmd}: {got}"
            );
        }
    }
    // Not a member: the modes keep it out.
    let e = query_as(&sock, NOBODY, NOBODY, &[], "status").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // Root still runs everything (no such peer: not a permission error).
    let got = ask(&a, "disconnect nosuch");
    assert!(
        got.contains("error") && !got.contains("permission denied"),
        "{got}"
    );
    // The refusals were logged, with who, and counted.
    assert_eq!(a.status().unwrap().control_refused, 8);
    let log = a.log_text();
    assert!(
        log.contains("control socket: refused uid 65534 gid 54322 (pid ")
            && log.contains("\"disconnect\" needs root"),
        "{log}"
    );
}

#[test]
fn null_read_needs_debug_switches() {
    let dir = TestDir::new("ctldebug");
    let mut a = node(&dir, "a", "");
    a.args = vec!["--debug-switches".into()];
    a.start();
    wait_until(T, "a answers", &[&a], || a.status().is_some());
    // Let through; refused only for want of a device.
    let got = ask(&a, "null-read on");
    assert!(got.contains("no device"), "{got}");
    assert!(
        a.log_text().contains("--debug-switches"),
        "{}",
        a.log_text()
    );
}

#[test]
fn an_unknown_control_group_is_a_config_error() {
    let dir = TestDir::new("ctlnogroup");
    let a = node(&dir, "a", "control_group = \"no-such-group-wfs\"\n");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&a.config)
        .arg("--no-device")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("config error") && err.contains("no group named \"no-such-group-wfs\""),
        "{err}"
    );
}

#[test]
fn a_shared_loose_directory_is_refused() {
    let dir = TestDir::new("ctlshared");
    let mut a = node(&dir, "a", "");
    // The socket straight in the test directory (configs, logs, export:
    // not the manager's to tighten), which is 0755.
    let text = std::fs::read_to_string(&a.config).unwrap().replace(
        &a.control.display().to_string(),
        &dir.path.join("m.sock").display().to_string(),
    );
    std::fs::write(&a.config, text).unwrap();
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    a.start();
    let st = a.wait_exit(T);
    assert_eq!(st.code(), Some(1));
    let log = a.log_text();
    assert!(
        log.contains("holds other files and is mode 0755")
            && log.contains("needs a directory of its own"),
        "{log}"
    );
}
