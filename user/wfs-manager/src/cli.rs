//! The manager's command line, as a `clap` derive definition.
//!
//! It lives in the library (not in `main.rs`) so that the man page and
//! completion generator (`wfsctl`'s `wfs-gen-docs`) builds the same
//! [`clap::Command`] that `wfs-manager` parses with.
//!
//! ```text
//! wfs-manager --config PATH [--no-device] [--debug-switches]
//! ```
//!
//! Compatible with the hand-written parser it replaced: `--config PATH`,
//! `--config=PATH` and `-c PATH`, options in any order, each at most
//! meaningful once (a repeated one: the last wins), a path that starts
//! with `-` taken as the path. Usage errors exit 2, `--help` and
//! `--version` exit 0.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use clap::builder::{OsStringValueParser, TypedValueParser};

/// Parsed command line of `wfs-manager`.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "wfs-manager",
    version,
    about = "WFS per-host manager daemon",
    long_about = "WFS per-host manager daemon.\n\n\
        Registers with wfs.ko through the device (/dev/wfs), keeps a \
        connection to every other host of the cluster, serves the page \
        protocol and answers wfsctl on a unix control socket. Logs go to \
        stderr, one line per event: WFS_LOG chooses which (a tracing \
        filter: WFS_LOG=debug, WFS_LOG=wfs_manager::engine=trace; info \
        by default), and WFS_TRACE=1 adds every input and output of the \
        page protocol. SIGTERM or SIGINT hand this host's pages back to \
        their owners and exit 0.",
    after_help = "Exit status: 0 after a clean shutdown, 1 on a failure \
        (configuration, device, socket), 2 on a usage error.",
    args_override_self = true
)]
pub struct Args {
    /// The cluster configuration (TOML).
    #[arg(
        short = 'c',
        long,
        value_name = "PATH",
        allow_hyphen_values = true,
        value_parser = path_parser()
    )]
    pub config: PathBuf,
    /// Skip /dev/wfs entirely: no kernel registration (host-side tests).
    #[arg(long)]
    pub no_device: bool,
    /// Allow the control socket's `null-read on` (READ hands out garbage:
    /// benchmarks only).
    #[arg(long)]
    pub debug_switches: bool,
}

/// Any path, taken as it is (an empty one too, as the hand-written parser
/// did: loading it then fails with a configuration error, exit 1).
pub fn path_parser() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

/// Parses the arguments (without the program name).
pub fn parse<I, T>(args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Args::try_parse_from(
        std::iter::once(OsString::from("wfs-manager")).chain(args.into_iter().map(Into::into)),
    )
}

/// Prints what a failed parse of `cmd`'s command line says (help and
/// version on stdout, a usage error on stderr) and returns the exit code:
/// 0 for help and version, 2 for a usage error. A usage error always
/// carries a usage line under the lower-case `usage:` heading of the
/// hand-written parsers clap replaced (scripts and tests look for it);
/// the rest is clap's message.
pub fn report(e: &clap::Error, cmd: &mut clap::Command) -> i32 {
    use std::io::{IsTerminal, Write};
    if !e.use_stderr() {
        // Help, version: nothing to do if stdout is gone.
        let _ = e.print();
        return e.exit_code();
    }
    let ansi = std::io::stderr().is_terminal();
    let render = |s: clap::builder::StyledStr| {
        let s = if ansi {
            s.ansi().to_string()
        } else {
            s.to_string()
        };
        s.replacen("Usage:", "usage:", 1)
    };
    let mut text = render(e.render());
    if !text.contains("usage:") {
        let usage = render(cmd.render_usage());
        match text.find("\nFor more information") {
            Some(i) => text.insert_str(i + 1, &format!("{usage}\n\n")),
            None => text.push_str(&format!("\n{usage}\n")),
        }
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
    e.exit_code()
}

/// The [`clap::Command`] behind [`Args`], for man pages and completions.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn args(config: &str, no_device: bool, debug_switches: bool) -> Args {
        Args {
            config: config.into(),
            no_device,
            debug_switches,
        }
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn accepted() {
        let ok = |a: &[&str]| parse(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        assert_eq!(ok(&["--config", "/x"]), args("/x", false, false));
        assert_eq!(ok(&["--no-device", "--config=/y"]), args("/y", true, false));
        assert_eq!(
            ok(&["--config", "/z", "--debug-switches"]),
            args("/z", false, true)
        );
        assert_eq!(ok(&["-c", "/w"]), args("/w", false, false));
        // The last of a repeated option wins; flags may repeat.
        assert_eq!(
            ok(&[
                "--config",
                "/a",
                "--no-device",
                "--config=/b",
                "--no-device"
            ]),
            args("/b", true, false)
        );
        // The value after --config is the path, whatever it looks like.
        assert_eq!(ok(&["--config", "-odd"]), args("-odd", false, false));
        assert_eq!(ok(&["--config="]), args("", false, false));
        // The repository's invocations (tests/qemu/*.sh, tools/wfs-vm,
        // the testkit, README.md, Documentation/testing.md).
        assert_eq!(
            ok(&["--config", "/etc/wfs/cluster.toml"]),
            args("/etc/wfs/cluster.toml", false, false)
        );
        assert_eq!(
            ok(&["--config", "/tmp/ro.toml"]),
            args("/tmp/ro.toml", false, false)
        );
        assert_eq!(
            ok(&["--config", "cluster.toml"]),
            args("cluster.toml", false, false)
        );
        assert_eq!(
            ok(&["--config", "/etc/wfs/cluster.toml", "--debug-switches"]),
            args("/etc/wfs/cluster.toml", false, true)
        );
        assert_eq!(
            ok(&["--config", "/t/h1.toml", "--no-device", "--debug-switches"]),
            args("/t/h1.toml", true, true)
        );
    }

    #[test]
    fn usage_errors() {
        for a in [
            &[][..],
            &["--config"],
            &["--config", "/x", "--bogus"],
            &["--config", "/x", "extra"],
            &["--no-device"],
            &["--no-device=yes", "--config", "/x"],
        ] {
            let e = parse(a).expect_err(&format!("{a:?} parsed"));
            assert_eq!(e.exit_code(), 2, "{a:?}: {e}");
        }
    }

    #[test]
    fn help_and_version_exit_0() {
        for a in ["--help", "-h", "--version", "-V"] {
            let e = parse([a]).expect_err(a);
            assert!(
                matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion),
                "{a}: {e}"
            );
            assert_eq!(e.exit_code(), 0, "{a}");
        }
        // Help anywhere on the line, as before.
        let e = parse(["--config", "/x", "--help"]).expect_err("help");
        assert_eq!(e.exit_code(), 0);
    }
}
