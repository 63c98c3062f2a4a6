//! `wfsctl`'s command line, as a `clap` derive definition.
//!
//! Compatible with the hand-written parser it replaced:
//!
//! * options are `--name VALUE` or `--name=VALUE`, before, between or
//!   after the positional arguments; a repeated option: the last wins;
//! * an option's value is the next argument whatever it looks like
//!   (`--control -x` names the socket `-x`);
//! * a positional argument may start with a single `-` (`forget -x`),
//!   but not with `--` (an unknown option: a usage error);
//! * `--downgrade` is `--mode downgrade`; of the two, the last given wins;
//! * exit status 2 for a usage error, 0 for `--help`, `help` and
//!   `--version`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use wfs_manager::config::{DEFAULT_CONTROL, DEFAULT_DEVICE};

/// Parsed `wfsctl` command line.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "wfsctl",
    version,
    about = "Inspect and poke the WFS manager and /dev/wfs",
    long_about = "Inspect and poke the WFS manager (through its control \
        socket) and the kernel module (through /dev/wfs).\n\n\
        The manager answers root (and its own user) every command, members \
        of its control_group only the read-only ones (status, stats, \
        wait), and nobody else.",
    after_help = "Exit status: 0 on success, 1 on a failure, 2 on a usage error.",
    subcommand_required = true,
    arg_required_else_help = true,
    args_override_self = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--control PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ControlOpt {
    /// The manager's control socket.
    #[arg(
        id = "control",
        long = "control",
        value_name = "PATH",
        default_value = DEFAULT_CONTROL,
        allow_hyphen_values = true,
        value_parser = path_parser()
    )]
    pub path: PathBuf,
}

/// `--device PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DeviceOpt {
    /// The WFS device.
    #[arg(
        id = "device",
        long = "device",
        value_name = "PATH",
        default_value = DEFAULT_DEVICE,
        allow_hyphen_values = true,
        value_parser = path_parser()
    )]
    pub path: PathBuf,
}

/// `wfsctl`'s subcommands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// Show the manager's status (host, registration, peers) and the
    /// kernel's; exit 1 if the manager is unreachable.
    Status {
        #[command(flatten)]
        control: ControlOpt,
        #[command(flatten)]
        device: DeviceOpt,
    },
    /// Wait until the manager is registered with the kernel (and, with
    /// --peers, every peer connected); exit 1 on a timeout.
    Wait {
        #[command(flatten)]
        control: ControlOpt,
        /// Also wait for every peer to be connected.
        #[arg(long)]
        peers: bool,
        /// Give up after SECS seconds (fractions allowed).
        #[arg(
            long,
            value_name = "SECS",
            default_value = "30",
            allow_hyphen_values = true,
            value_parser = seconds
        )]
        timeout: f64,
    },
    /// Try IOC_REGISTER on the device and unregister at once (tests of
    /// the kernel's checks).
    ProbeRegister {
        #[command(flatten)]
        device: DeviceOpt,
        /// ABI version to ask for (default: this wfsctl's).
        #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = number::<u32>)]
        abi: Option<u32>,
        /// Registration magic, in hex, with or without 0x (default: the right one).
        #[arg(long, value_name = "HEX", allow_hyphen_values = true, value_parser = hex_u32)]
        magic: Option<u32>,
        /// Switch to this uid (and gid, no supplementary groups) first.
        #[arg(long, value_name = "UID", allow_hyphen_values = true, value_parser = number::<u32>)]
        as_uid: Option<u32>,
        /// Exit 0 iff the result (from open or the ioctl) is this: ok, an
        /// errno name (EBUSY, EPROTO, EPERM, ...) or number.
        #[arg(long, value_name = "ok|ERRNO", allow_hyphen_values = true, value_parser = expect_result)]
        expect: Option<i32>,
    },
    /// Show the kernel's status only; exit 1 if the device cannot be read.
    Kstatus {
        #[command(flatten)]
        device: DeviceOpt,
    },
    /// Show the upcalls the manager served with their service times
    /// (mean, median, 99th percentile, maximum), its protocol counters,
    /// the time of each stage of moving a page (cost lines) and of
    /// handling each kind of peer message received (message lines).
    Stats {
        #[command(flatten)]
        control: ControlOpt,
        /// Print the manager's statistics as one JSON object (upcalls,
        /// protocol, transport, costs, messages; times in nanoseconds)
        /// instead of the text.
        #[arg(long)]
        json: bool,
    },
    /// Have the manager take one page of a file away from this host's
    /// kernel (dirty data is written to the export first).
    Invalidate {
        /// The file's name in the export.
        #[arg(allow_hyphen_values = true, value_parser = positional)]
        name: String,
        /// The page's index in the file.
        #[arg(allow_hyphen_values = true, value_parser = number::<u64>)]
        index: u64,
        /// Same as --mode downgrade.
        #[arg(long, overrides_with = "mode")]
        downgrade: bool,
        /// What to do with the page (default: drop).
        #[arg(
            long,
            value_name = "MODE",
            overrides_with = "downgrade",
            allow_hyphen_values = true
        )]
        mode: Option<InvalidateMode>,
        /// Also print how long the kernel's INVALIDATE ioctl took.
        #[arg(long)]
        time: bool,
        #[command(flatten)]
        control: ControlOpt,
    },
    /// Have this host's kernel forget its cached lookup of NAME.
    Forget {
        /// The file's name in the export.
        #[arg(allow_hyphen_values = true, value_parser = positional)]
        name: String,
        #[command(flatten)]
        control: ControlOpt,
    },
    /// Benchmarks only: have the manager answer READ without reading the
    /// page (the manager must run with --debug-switches to take `on`).
    NullRead {
        /// on or off.
        #[arg(value_name = "on|off", allow_hyphen_values = true)]
        state: OnOff,
        #[command(flatten)]
        control: ControlOpt,
    },
    /// Close the manager's connection to PEER (it is made again).
    Disconnect {
        /// The peer's host name.
        #[arg(allow_hyphen_values = true, value_parser = positional)]
        peer: String,
        #[command(flatten)]
        control: ControlOpt,
    },
    /// Write a new key pair: PATH (private, mode 0600) and PATH.pub; print
    /// the public key for the peers' cluster.toml.
    Keygen {
        /// Where to write the private key (e.g. /etc/wfs/host.key).
        #[arg(allow_hyphen_values = true, value_parser = positional_path())]
        path: PathBuf,
    },
    /// Print a shell completion script for wfsctl on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `invalidate --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvalidateMode {
    /// Remove the page from this host.
    Drop,
    /// Keep a clean read-only copy.
    Downgrade,
}

impl InvalidateMode {
    /// The word the control socket takes.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidateMode::Drop => "drop",
            InvalidateMode::Downgrade => "downgrade",
        }
    }
}

/// `null-read on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Turn it on.
    On,
    /// Turn it off.
    Off,
}

impl OnOff {
    /// The word the control socket takes.
    pub fn as_str(self) -> &'static str {
        match self {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
    }
}

/// `invalidate`'s mode: `--downgrade`, or `--mode`, else drop. (Of
/// `--downgrade` and `--mode`, clap keeps only the last given.)
pub fn invalidate_mode(downgrade: bool, mode: Option<InvalidateMode>) -> InvalidateMode {
    if downgrade {
        InvalidateMode::Downgrade
    } else {
        mode.unwrap_or(InvalidateMode::Drop)
    }
}

/// Any path, taken as it is (an empty one too).
fn path_parser() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

/// A positional argument: anything but an unknown `--option`.
fn positional(s: &str) -> Result<String, String> {
    if s.starts_with("--") {
        Err(format!("unexpected argument {s:?} (not an option here)"))
    } else {
        Ok(s.to_string())
    }
}

/// A positional path: anything but an unknown `--option`.
fn positional_path() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().try_map(|s: OsString| {
        if s.as_encoded_bytes().starts_with(b"--") {
            Err(format!("unexpected argument {s:?} (not an option here)"))
        } else {
            Ok(PathBuf::from(s))
        }
    })
}

/// A number, as Rust's `FromStr` reads it.
fn number<T: FromStr>(s: &str) -> Result<T, String> {
    if s.starts_with("--") {
        return Err(format!("unexpected argument {s:?} (not an option here)"));
    }
    s.parse().map_err(|_| format!("bad number {s:?}"))
}

/// `--timeout`: seconds, not negative, finite.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t >= 0.0 && t.is_finite() => Ok(t),
        _ => Err(format!("bad number of seconds {s:?}")),
    }
}

/// `--magic`: hex, with or without `0x`.
fn hex_u32(s: &str) -> Result<u32, String> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u32::from_str_radix(hex, 16).map_err(|_| format!("bad hex {s:?}"))
}

/// `--expect`: `ok` (0) or an errno, by name or number.
fn expect_result(s: &str) -> Result<i32, String> {
    if s.eq_ignore_ascii_case("ok") {
        return Ok(0);
    }
    wfs_manager::device::errno_from_name(s).ok_or_else(|| format!("unknown result {s:?}"))
}

/// Parses `wfsctl`'s arguments (without the program name).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(
        std::iter::once(OsString::from("wfsctl")).chain(args.into_iter().map(Into::into)),
    )
}

/// The [`clap::Command`] behind [`Cli`], for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn ok(a: &[&str]) -> Command {
        parse(a).unwrap_or_else(|e| panic!("{a:?}: {e}")).command
    }

    fn usage_error(a: &[&str]) {
        match parse(a) {
            Ok(c) => panic!("{a:?} parsed: {c:?}"),
            Err(e) => assert_eq!(e.exit_code(), 2, "{a:?}: {e}"),
        }
    }

    fn ctl(p: &str) -> ControlOpt {
        ControlOpt { path: p.into() }
    }

    fn dev(p: &str) -> DeviceOpt {
        DeviceOpt { path: p.into() }
    }

    fn default_ctl() -> ControlOpt {
        ctl(DEFAULT_CONTROL)
    }

    fn wait(peers: bool, timeout: f64) -> Command {
        Command::Wait {
            control: default_ctl(),
            peers,
            timeout,
        }
    }

    fn probe(abi: Option<u32>, as_uid: Option<u32>, expect: i32, device: &str) -> Command {
        Command::ProbeRegister {
            device: dev(device),
            abi,
            magic: None,
            as_uid,
            expect: Some(expect),
        }
    }

    /// `invalidate NAME INDEX` as the command it runs (mode resolved).
    fn inval(a: &[&str]) -> (String, u64, InvalidateMode, bool, PathBuf) {
        match ok(a) {
            Command::Invalidate {
                name,
                index,
                downgrade,
                mode,
                time,
                control,
            } => (
                name,
                index,
                invalidate_mode(downgrade, mode),
                time,
                control.path,
            ),
            c => panic!("{a:?}: {c:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_command_has_help() {
        let cmd = command();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        assert_eq!(
            names,
            [
                "status",
                "wait",
                "probe-register",
                "kstatus",
                "stats",
                "invalidate",
                "forget",
                "null-read",
                "disconnect",
                "keygen",
                "completions",
            ]
        );
        for n in names {
            for h in ["--help", "-h"] {
                let e = parse([n, h]).expect_err(n);
                assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{n} {h}");
                assert_eq!(e.exit_code(), 0, "{n} {h}");
            }
            let e = parse(["help", n]).expect_err(n);
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "help {n}");
        }
        for a in [&["--help"][..], &["-h"], &["help"]] {
            let e = parse(a).expect_err("help");
            assert_eq!(e.kind(), ErrorKind::DisplayHelp);
            assert_eq!(e.exit_code(), 0);
        }
        let e = parse(["--version"]).expect_err("version");
        assert_eq!(e.kind(), ErrorKind::DisplayVersion);
        assert_eq!(e.exit_code(), 0);
    }

    /// Every way the repository runs wfsctl (tests/qemu, bench, tools,
    /// the documentation), and what it means.
    #[test]
    fn repository_invocations() {
        // status, stats, kstatus (no options anywhere in the repository).
        assert_eq!(
            ok(&["status"]),
            Command::Status {
                control: default_ctl(),
                device: dev(DEFAULT_DEVICE)
            }
        );
        assert_eq!(
            ok(&["stats"]),
            Command::Stats {
                control: default_ctl(),
                json: false
            }
        );
        assert_eq!(
            ok(&["stats", "--json"]),
            Command::Stats {
                control: default_ctl(),
                json: true
            }
        );
        assert_eq!(
            ok(&["kstatus"]),
            Command::Kstatus {
                device: dev(DEFAULT_DEVICE)
            }
        );
        // wait
        assert_eq!(ok(&["wait", "--timeout", "60"]), wait(false, 60.0));
        assert_eq!(
            ok(&["wait", "--peers", "--timeout", "90"]),
            wait(true, 90.0)
        );
        assert_eq!(
            ok(&["wait", "--peers", "--timeout", "60"]),
            wait(true, 60.0)
        );
        assert_eq!(
            ok(&["wait", "--peers", "--timeout", "30"]),
            wait(true, 30.0)
        );
        assert_eq!(ok(&["wait", "--peers"]), wait(true, 30.0));
        assert_eq!(ok(&["wait"]), wait(false, 30.0));
        // probe-register (module_lifecycle.sh, cluster_basic.sh)
        assert_eq!(
            ok(&["probe-register", "--expect", "EBUSY"]),
            probe(None, None, libc::EBUSY, DEFAULT_DEVICE)
        );
        assert_eq!(
            ok(&["probe-register", "--expect", "ok"]),
            probe(None, None, 0, DEFAULT_DEVICE)
        );
        assert_eq!(
            ok(&["probe-register", "--abi", "999", "--expect", "EPROTO"]),
            probe(Some(999), None, libc::EPROTO, DEFAULT_DEVICE)
        );
        assert_eq!(
            ok(&["probe-register", "--as-uid", "65534", "--expect", "EACCES"]),
            probe(None, Some(65534), libc::EACCES, DEFAULT_DEVICE)
        );
        assert_eq!(
            ok(&[
                "probe-register",
                "--device",
                "/tmp/wfs-open",
                "--as-uid",
                "65534",
                "--expect",
                "EPERM"
            ]),
            probe(None, Some(65534), libc::EPERM, "/tmp/wfs-open")
        );
        // invalidate (invalidate.sh, helpers/lib.sh, bench/guest.sh)
        let d = PathBuf::from(DEFAULT_CONTROL);
        use InvalidateMode::{Downgrade, Drop};
        assert_eq!(
            inval(&["invalidate", "f", "1"]),
            ("f".into(), 1, Drop, false, d.clone())
        );
        assert_eq!(
            inval(&["invalidate", "f", "9", "--mode", "downgrade"]),
            ("f".into(), 9, Downgrade, false, d.clone())
        );
        assert_eq!(
            inval(&["invalidate", "f", "0", "--downgrade"]),
            ("f".into(), 0, Downgrade, false, d.clone())
        );
        assert_eq!(
            inval(&["invalidate", "nosuchfile", "0"]),
            ("nosuchfile".into(), 0, Drop, false, d.clone())
        );
        assert_eq!(
            inval(&["invalidate", "bench", "17", "--time"]),
            ("bench".into(), 17, Drop, true, d.clone())
        );
        // forget, disconnect, null-read, keygen
        assert_eq!(
            ok(&["forget", "g"]),
            Command::Forget {
                name: "g".into(),
                control: default_ctl()
            }
        );
        assert_eq!(
            ok(&["forget", "a/b"]),
            Command::Forget {
                name: "a/b".into(),
                control: default_ctl()
            }
        );
        assert_eq!(
            ok(&["disconnect", "h2"]),
            Command::Disconnect {
                peer: "h2".into(),
                control: default_ctl()
            }
        );
        for (w, s) in [("on", OnOff::On), ("off", OnOff::Off)] {
            assert_eq!(
                ok(&["null-read", w]),
                Command::NullRead {
                    state: s,
                    control: default_ctl()
                }
            );
            assert_eq!(s.as_str(), w);
        }
        assert_eq!(
            ok(&["keygen", "/etc/wfs/host.key"]),
            Command::Keygen {
                path: "/etc/wfs/host.key".into()
            }
        );
    }

    /// What the hand-written parser accepted beyond the repository's uses.
    #[test]
    fn old_parser_forms() {
        // --opt=value and --opt value, options before, between and after
        // the positional arguments.
        let want = (
            "f".to_string(),
            3,
            InvalidateMode::Downgrade,
            true,
            PathBuf::from("/s"),
        );
        for a in [
            &[
                "invalidate",
                "f",
                "3",
                "--downgrade",
                "--time",
                "--control",
                "/s",
            ][..],
            &[
                "invalidate",
                "--control=/s",
                "f",
                "--time",
                "3",
                "--mode=downgrade",
            ],
            &[
                "invalidate",
                "--time",
                "--mode",
                "downgrade",
                "--control",
                "/s",
                "f",
                "3",
            ],
        ] {
            assert_eq!(inval(a), want, "{a:?}");
        }
        // Of --downgrade and --mode, the last wins.
        assert_eq!(
            inval(&["invalidate", "f", "1", "--mode", "drop", "--downgrade"]).2,
            InvalidateMode::Downgrade
        );
        assert_eq!(
            inval(&["invalidate", "f", "1", "--downgrade", "--mode", "drop"]).2,
            InvalidateMode::Drop
        );
        // A repeated option: the last wins; a repeated flag is fine.
        assert_eq!(
            ok(&[
                "wait",
                "--timeout",
                "5",
                "--peers",
                "--timeout=0.5",
                "--peers"
            ]),
            wait(true, 0.5)
        );
        assert_eq!(
            ok(&["status", "--device=/d", "--control", "/c"]),
            Command::Status {
                control: ctl("/c"),
                device: dev("/d")
            }
        );
        // An option's value is the next argument, whatever it is.
        assert_eq!(
            ok(&["stats", "--control", "--peers"]),
            Command::Stats {
                control: ctl("--peers"),
                json: false
            }
        );
        assert_eq!(
            ok(&["stats", "--control="]),
            Command::Stats {
                control: ctl(""),
                json: false
            }
        );
        assert_eq!(
            ok(&["stats", "--json", "--control", "--json", "--json"]),
            Command::Stats {
                control: ctl("--json"),
                json: true
            }
        );
        // Positional arguments may start with one '-'.
        assert_eq!(
            ok(&["forget", "-x", "--control", "/c"]),
            Command::Forget {
                name: "-x".into(),
                control: ctl("/c")
            }
        );
        assert_eq!(
            ok(&["disconnect", "--control", "/c", "-"]),
            Command::Disconnect {
                peer: "-".into(),
                control: ctl("/c")
            }
        );
        // --magic: hex, 0x optional; --expect: names any case, numbers.
        match ok(&[
            "probe-register",
            "--magic",
            "0xDEADbeef",
            "--abi=7",
            "--expect=ebusy",
        ]) {
            Command::ProbeRegister {
                magic, abi, expect, ..
            } => {
                assert_eq!(magic, Some(0xdead_beef));
                assert_eq!(abi, Some(7));
                assert_eq!(expect, Some(libc::EBUSY));
            }
            c => panic!("{c:?}"),
        }
        match ok(&[
            "probe-register",
            "--magic=57",
            "--expect",
            "OK",
            "--expect",
            "5",
        ]) {
            Command::ProbeRegister { magic, expect, .. } => {
                assert_eq!(magic, Some(0x57));
                assert_eq!(expect, Some(5));
            }
            c => panic!("{c:?}"),
        }
        // Every mode is one the manager takes.
        for m in InvalidateMode::value_variants() {
            assert!(wfs_manager::invalidate::Mode::parse(m.as_str()).is_some());
        }
        assert_eq!(wait(false, 0.0), ok(&["wait", "--timeout", "0"]));
    }

    #[test]
    fn usage_errors() {
        for a in [
            &[][..],
            &["bogus"],
            &["status", "--bogus"],
            &["status", "extra"],
            &["stats", "--time"],
            &["stats", "--device", "/d"],
            &["stats", "--json=1"],
            &["stats", "--json", "x"],
            &["kstatus", "--control", "/c"],
            &["wait", "--timeout"],
            &["wait", "--timeout", "-1"],
            &["wait", "--timeout", "inf"],
            &["wait", "--timeout", "NaN"],
            &["wait", "--timeout", "soon"],
            &["wait", "--peers=1"],
            &["probe-register", "--abi", "x"],
            &["probe-register", "--magic", "xyz"],
            &["probe-register", "--as-uid", "-1"],
            &["probe-register", "--expect", "EWHAT"],
            &["invalidate", "f"],
            &["invalidate", "f", "x"],
            &["invalidate", "f", "-1"],
            &["invalidate", "f", "1", "2"],
            &["invalidate", "f", "1", "--mode", "evict"],
            &["invalidate", "f", "1", "--mode"],
            &["invalidate", "f", "1", "--bogus"],
            &["invalidate", "--bogus", "1"],
            &["forget"],
            &["forget", "a", "b"],
            &["forget", "--bogus"],
            &["null-read"],
            &["null-read", "maybe"],
            &["null-read", "on", "off"],
            &["disconnect"],
            &["keygen"],
            &["keygen", "--bogus"],
            &["keygen", "a", "b"],
            &["completions"],
            &["completions", "csh"],
        ] {
            usage_error(a);
        }
    }
}
