//! `wfs-manager`'s exit codes for its command line, run as a process:
//! usage errors exit 2, help and version 0, a configuration it cannot
//! read 1.

use std::process::{Command, Output};

fn manager(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfs-manager"))
        .args(args)
        .output()
        .expect("run wfs-manager")
}

#[test]
fn exit_codes() {
    for a in [
        &[][..],
        &["--config"],
        &["--no-device"],
        &["--config", "/x", "--bogus"],
    ] {
        let o = manager(a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("usage: "), "{a:?}: {err}");
    }
    for a in [&["--help"][..], &["-h"], &["--version"]] {
        let o = manager(a);
        assert_eq!(o.status.code(), Some(0), "{a:?}");
        assert!(!o.stdout.is_empty(), "{a:?}: nothing on stdout");
    }
    for a in [
        &["--config", "/nonexistent/cluster.toml", "--no-device"][..],
        &["-c", "/nonexistent/cluster.toml"],
        &["--config=/nonexistent/cluster.toml", "--debug-switches"],
    ] {
        assert_eq!(manager(a).status.code(), Some(1), "{a:?}");
    }
}
