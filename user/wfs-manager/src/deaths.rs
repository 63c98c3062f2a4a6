//! The peers' incarnations this host has taken for dead, kept on its disk.
//!
//! An owner that takes a host's incarnation for dead serves that host's
//! pages anew from its disk. If the owner then restarts, its next
//! incarnation must still refuse the dead one: that incarnation may still
//! run, cut off, with dirty data of those pages that it never sent (see
//! `Msg::Orphan` in [`crate::protocol`]), and taking that data now would
//! put older data over what was written since. So each death is written
//! here, and flushed, before the page protocol hears of it; a manager
//! reads the file at start and refuses those incarnations as if it had
//! taken them for dead itself.
//!
//! Beside it, `<state>/<cluster>.<host>.incarnation` names the incarnation
//! the manager last started as ([`swap_incarnation`]): an owner takes an
//! `Orphan` only if it was meant for the incarnation right before its own,
//! since one in between may have served the page without its sender.
//!
//! The file is `<state>/<cluster>.<host>.dead`, one line per death:
//! `HOST INCARNATION` (the incarnation in hexadecimal). It keeps the
//! newest [`PER_HOST`] deaths of each host (a host restarts as a new
//! incarnation each time; only the last few can still be running). It is
//! replaced whole (written beside, flushed, renamed, the directory
//! flushed), so a crash leaves the old list or the new one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Deaths kept per host.
pub const PER_HOST: usize = 16;

/// The deaths this host has declared, as on its disk.
#[derive(Debug)]
pub struct Deaths {
    path: PathBuf,
    /// (host name, incarnation), oldest first.
    list: Vec<(String, u64)>,
}

impl Deaths {
    /// The file for host `host` of cluster `cluster` under directory
    /// `state`.
    pub fn path(state: &Path, cluster: &str, host: &str) -> PathBuf {
        state.join(format!("{cluster}.{host}.dead"))
    }

    /// Reads the list at `path` (none yet if there is no file). A line
    /// that does not parse is an error: the file is this program's, and a
    /// death forgotten could let a dead incarnation's data in.
    pub fn load(path: PathBuf) -> io::Result<Deaths> {
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut list = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let parsed = line.split_once(' ').and_then(|(host, inc)| {
                let inc = u64::from_str_radix(inc, 16).ok()?;
                (crate::config::valid_host_name(host)).then(|| (host.to_string(), inc))
            });
            match parsed {
                Some(d) => list.push(d),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: line {} is not HOST INCARNATION", path.display(), n + 1),
                    ));
                }
            }
        }
        Ok(Deaths { path, list })
    }

    /// Every death on the list, oldest first.
    pub fn entries(&self) -> &[(String, u64)] {
        &self.list
    }

    /// Adds incarnation `incarnation` of `host` and writes the list to
    /// stable storage before returning.
    pub fn record(&mut self, host: &str, incarnation: u64) -> io::Result<()> {
        if self
            .list
            .iter()
            .any(|(h, i)| h == host && *i == incarnation)
        {
            return Ok(());
        }
        self.list.push((host.to_string(), incarnation));
        let of_host = self.list.iter().filter(|(h, _)| h == host).count();
        if of_host > PER_HOST {
            let mut extra = of_host - PER_HOST;
            self.list.retain(|(h, _)| {
                let drop = extra > 0 && h == host;
                if drop {
                    extra -= 1;
                }
                !drop
            });
        }
        self.write()
    }

    /// Writes the list to stable storage.
    fn write(&self) -> io::Result<()> {
        let mut text = String::new();
        for (h, i) in &self.list {
            text.push_str(&format!("{h} {i:x}\n"));
        }
        replace(&self.path, &text)
    }
}

/// Replaces the file at `path` with `text` on stable storage: written
/// beside, flushed, renamed, the directory flushed.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Reads the incarnation this host's manager last started as (none if it
/// never did, or the file is not this program's) and writes `mine` in its
/// place, on stable storage.
pub fn swap_incarnation(
    state: &Path,
    cluster: &str,
    host: &str,
    mine: u64,
) -> io::Result<Option<u64>> {
    let path = state.join(format!("{cluster}.{host}.incarnation"));
    let previous = match fs::read_to_string(&path) {
        Ok(t) => u64::from_str_radix(t.trim(), 16).ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    replace(&path, &format!("{mine:x}\n"))?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wfs-deaths-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn deaths_survive_a_restart_and_only_the_newest_of_each_host_are_kept() {
        let d = dir("keep");
        let path = Deaths::path(&d, "c", "h1");
        let mut a = Deaths::load(path.clone()).unwrap();
        assert!(a.entries().is_empty());
        for i in 0..PER_HOST as u64 + 3 {
            a.record("h2", 0x1000 + i).unwrap();
        }
        a.record("h3", u64::MAX).unwrap();
        a.record("h3", u64::MAX).unwrap();
        let b = Deaths::load(path).unwrap();
        assert_eq!(b.entries(), a.entries());
        let h2: Vec<u64> = b
            .entries()
            .iter()
            .filter(|(h, _)| h == "h2")
            .map(|&(_, i)| i)
            .collect();
        assert_eq!(
            h2,
            (3..PER_HOST as u64 + 3)
                .map(|i| 0x1000 + i)
                .collect::<Vec<_>>()
        );
        assert_eq!(b.entries().last(), Some(&("h3".to_string(), u64::MAX)));
        assert_eq!(b.entries().len(), PER_HOST + 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn each_start_finds_the_incarnation_before_it() {
        let d = dir("inc");
        assert_eq!(swap_incarnation(&d, "c", "h1", 0xa).unwrap(), None);
        assert_eq!(swap_incarnation(&d, "c", "h1", 0xb).unwrap(), Some(0xa));
        assert_eq!(swap_incarnation(&d, "c", "h2", 0xc).unwrap(), None);
        assert_eq!(
            swap_incarnation(&d, "c", "h1", u64::MAX).unwrap(),
            Some(0xb)
        );
        assert_eq!(swap_incarnation(&d, "c", "h1", 1).unwrap(), Some(u64::MAX));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_list() {
        let d = dir("bad");
        fs::create_dir_all(&d).unwrap();
        let path = Deaths::path(&d, "c", "h1");
        fs::write(&path, "h2 1f\nh3 not-hex\n").unwrap();
        let e = Deaths::load(path).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
