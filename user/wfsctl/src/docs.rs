//! Man pages and shell completions for `wfs-manager` and `wfsctl`,
//! generated from the same `clap` definitions their binaries parse with
//! ([`wfs_manager::cli`], [`crate::cli`]). Run by `wfs-gen-docs`.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The manual section: system administration tools and daemons.
pub const SECTION: &str = "8";

/// The shells completions are written for by default.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The two programs' commands, with their binaries' names.
fn commands() -> [(clap::Command, &'static str); 2] {
    [
        (wfs_manager::cli::command(), "wfs-manager"),
        (crate::cli::command(), "wfsctl"),
    ]
}

/// Writes `wfs-manager.8`, `wfsctl.8` and one `wfsctl-COMMAND.8` per
/// subcommand into `dir` (made if missing); returns the files written.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (cmd, _) in commands() {
        // No page for the `help` subcommand (`--help` covers it); build()
        // gives each subcommand its display name (`wfsctl-status`).
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        write_pages(cmd, dir, &mut written)?;
    }
    Ok(written)
}

fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd).section(SECTION).manual("WFS");
    written.push(man.generate_to(dir)?);
    Ok(())
}

/// Writes completion scripts for both programs and each of `shells` into
/// `dir` (made if missing), named as each shell looks for them
/// (`wfsctl.bash`, `_wfsctl`, `wfsctl.fish`, ...); returns the files
/// written.
pub fn write_completions(dir: &Path, shells: &[Shell]) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (mut cmd, bin) in commands() {
        for &shell in shells {
            written.push(clap_complete::generate_to(shell, &mut cmd, bin, dir)?);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wfs-gen-docs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn man_pages_are_roff() {
        let dir = scratch("man");
        let files = write_man_pages(&dir).expect("write man pages");
        let mut names: Vec<String> = files
            .iter()
            .filter_map(|f| Some(f.file_name()?.to_str()?.to_string()))
            .collect();
        names.sort();
        let mut want: Vec<String> = ["wfs-manager", "wfsctl"]
            .iter()
            .map(|n| format!("{n}.8"))
            .chain(
                crate::cli::command()
                    .get_subcommands()
                    .map(|s| format!("wfsctl-{}.8", s.get_name())),
            )
            .collect();
        want.sort();
        assert_eq!(names, want);
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read man page");
            assert!(text.contains(".TH "), "{}: no .TH", f.display());
            assert!(text.contains(".SH NAME"), "{}: no NAME", f.display());
            assert!(
                text.contains(".SH SYNOPSIS"),
                "{}: no SYNOPSIS",
                f.display()
            );
        }
        let manager = std::fs::read_to_string(dir.join("wfs-manager.8")).expect("wfs-manager.8");
        assert!(manager.contains(".TH wfs-manager 8"), "{manager}");
        assert!(manager.contains("\\-\\-config"), "{manager}");
        let ctl = std::fs::read_to_string(dir.join("wfsctl.8")).expect("wfsctl.8");
        assert!(ctl.contains("wfsctl\\-invalidate(8)"), "{ctl}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn completions_are_written() {
        let dir = scratch("completions");
        let files = write_completions(&dir, &SHELLS).expect("write completions");
        assert_eq!(files.len(), 2 * SHELLS.len());
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read completion");
            assert!(!text.is_empty(), "{}", f.display());
        }
        let bash = std::fs::read_to_string(dir.join("wfsctl.bash")).expect("wfsctl.bash");
        assert!(bash.contains("probe-register") && bash.contains("--downgrade"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
