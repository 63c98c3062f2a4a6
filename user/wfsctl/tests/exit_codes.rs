//! `wfsctl`'s exit codes and output streams, run as a process: usage
//! errors exit 2 on stderr, help and version exit 0 on stdout, a failure
//! exits 1.

use std::process::{Command, Output};

fn wfsctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfsctl"))
        .args(args)
        .output()
        .expect("run wfsctl")
}

#[test]
fn exit_codes() {
    for a in [
        &[][..],
        &["bogus"],
        &["status", "--bogus"],
        &["invalidate", "f", "x"],
        &["invalidate", "f", "1", "--mode", "evict"],
        &["null-read", "maybe"],
        &["keygen"],
    ] {
        let o = wfsctl(a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("usage: "), "{a:?}: {err}");
    }
    for a in [
        &["--help"][..],
        &["help"],
        &["--version"],
        &["status", "--help"],
        &["help", "invalidate"],
        &["completions", "bash"],
    ] {
        let o = wfsctl(a);
        assert_eq!(o.status.code(), Some(0), "{a:?}");
        assert!(!o.stdout.is_empty(), "{a:?}: nothing on stdout");
    }
    // Parsed, then failed: no manager there.
    let o = wfsctl(&["forget", "a/b", "--control", "/nonexistent/wfs.sock"]);
    assert_eq!(o.status.code(), Some(1));
    let o = wfsctl(&[
        "wait",
        "--peers",
        "--timeout=0",
        "--control",
        "/nonexistent/wfs.sock",
    ]);
    assert_eq!(o.status.code(), Some(1));
}
