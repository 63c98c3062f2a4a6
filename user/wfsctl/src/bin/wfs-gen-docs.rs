//! `wfs-gen-docs`: writes the man pages (section 8) and shell completions
//! of `wfs-manager` and `wfsctl`, generated from the `clap` definitions the
//! two binaries parse their command lines with, for `make install` or a
//! package build.
//!
//! ```text
//! wfs-gen-docs [--man DIR] [--completions DIR] [--shell SHELL]...
//! ```
//!
//! `--man DIR`: `wfs-manager.8`, `wfsctl.8` and `wfsctl-COMMAND.8`;
//! `--completions DIR`: `wfs-manager.bash`, `_wfs-manager`,
//! `wfs-manager.fish` and the same for `wfsctl` (bash, zsh and fish unless
//! `--shell` says which). Prints each file written. Exit status 0, 1 if a
//! file cannot be written, 2 on a usage error.

use std::path::PathBuf;

use clap::Parser;
use wfsctl::docs;

/// Write the man pages and shell completions of wfs-manager and wfsctl.
#[derive(Debug, Parser)]
#[command(name = "wfs-gen-docs", version)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true).args(["man", "completions"]))]
struct Args {
    /// Write the man pages (section 8) into DIR.
    #[arg(long, value_name = "DIR")]
    man: Option<PathBuf>,
    /// Write the shell completion scripts into DIR.
    #[arg(long, value_name = "DIR")]
    completions: Option<PathBuf>,
    /// A shell to write completions for (default: bash, zsh and fish).
    #[arg(long, value_name = "SHELL", requires = "completions")]
    shell: Vec<clap_complete::Shell>,
}

fn main() {
    let args = Args::parse();
    let mut written = Vec::new();
    if let Some(dir) = &args.man {
        match docs::write_man_pages(dir) {
            Ok(f) => written.extend(f),
            Err(e) => fail(&format!("man pages in {}: {e}", dir.display())),
        }
    }
    if let Some(dir) = &args.completions {
        let shells = if args.shell.is_empty() {
            docs::SHELLS.to_vec()
        } else {
            args.shell.clone()
        };
        match docs::write_completions(dir, &shells) {
            Ok(f) => written.extend(f),
            Err(e) => fail(&format!("completions in {}: {e}", dir.display())),
        }
    }
    for f in written {
        println!("{}", f.display());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("wfs-gen-docs: {msg}");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
        assert!(Args::try_parse_from(["wfs-gen-docs"]).is_err());
        let a = Args::try_parse_from([
            "wfs-gen-docs",
            "--man",
            "m",
            "--completions=c",
            "--shell",
            "zsh",
        ])
        .expect("parse");
        assert_eq!(a.man, Some(PathBuf::from("m")));
        assert_eq!(a.shell, [clap_complete::Shell::Zsh]);
    }
}
