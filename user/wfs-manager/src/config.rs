//! The manager's TOML configuration.
//!
//! ```toml
//! cluster = "wfs-vm"              # cluster name, checked in the handshake
//! host = "h1"                     # this host's name
//! listen = "10.0.0.1:7070"        # listen address (also this host's identity)
//! export = "/export"              # export directory (must exist)
//! device = "/dev/wfs"             # optional
//! control = "/run/wfs/manager.sock"  # optional: the control socket
//!                                 # (wfsctl's), mode 0600 in a directory
//!                                 # of its own made mode 0700; only root
//!                                 # (and the manager's user) is answered
//! control_group = "wfsadm"        # optional: a group (name or number)
//!                                 # whose members may run the control
//!                                 # socket's read-only commands (wfsctl
//!                                 # status, stats, wait); then the socket
//!                                 # is 0660 and its directory 0750, both
//!                                 # of that group
//! grant = "read-write"            # optional: what READ grants ("read-only"
//!                                 # makes every first write send UPGRADE)
//! failure_timeout = 10            # optional: seconds a peer may stay
//!                                 # disconnected before it is taken for
//!                                 # dead (1 to 3600; default 10)
//! lease = 15                      # optional: seconds this host keeps a
//!                                 # peer's pages without an answer from
//!                                 # it (1 to 3600; default failure_timeout
//!                                 # + 5, the heartbeat time-out)
//! state = "/var/lib/wfs"          # optional: where this host keeps what
//!                                 # must survive its manager (the peers'
//!                                 # incarnations it took for dead)
//! coherence = "single"            # optional: how this host, as their
//!                                 # owner, keeps its files' pages coherent:
//!                                 # "single" (one copy) or "mrsw" (read
//!                                 # copies on many hosts, one writer)
//!
//! [[file]]                        # optional, any number: a file this
//! name = "matrix.dat"             # host exports that differs from
//! coherence = "mrsw"              # `coherence`
//!
//! [[place]]                       # optional, any number: where files
//! names = "*.db*"                 # made through /wfs under a name that
//! host = "h2"                     # matches `names` (a shell pattern: *
//!                                 # ? [a-z]) are made, whichever host
//!                                 # makes them (the first rule that
//!                                 # matches; none: the maker's own host).
//!                                 # Every host should list the same.
//!                                 # (Or inline, as a top-level key:
//!                                 # place = [{ names = "*.db", host = "h2" }])
//!
//! key_file = "/etc/wfs/host.key" # optional: this host's private key
//!                                 # (`wfsctl keygen`; mode 0600)
//! transport = "noise"             # optional: "noise" (authenticated and
//!                                 # encrypted, the default) or "plain"
//!                                 # (neither: trusted networks only; see
//!                                 # Documentation/security.md)
//!
//! root_squash = true              # optional: root on other hosts is
//!                                 # taken as nobody (65534) for this
//!                                 # host's files, as NFS's root_squash
//!                                 # (the default); false trusts it
//!
//! [[peer]]
//! name = "h2"
//! addr = "10.0.0.2:7070"
//! public_key = "base64..."        # its key.pub (unused with "plain")
//! ```
//!
//! Unknown keys are rejected, and so are an unknown `control_group`,
//! duplicate peer names, a peer named
//! like this host, unparsable addresses, a missing export directory, an
//! unknown coherence, `[[file]]` entries with a name that is not one
//! path component or that repeats, and `[[place]]` rules whose pattern does
//! not parse or holds a `/`, or whose host is neither this one nor a peer.
//! With the noise transport, every peer needs a `public_key` (two peers
//! may not share one, nor share this host's), and the key file must exist,
//! hold a key and be readable by its owner only.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wfs_abi::Grant;

use crate::protocol::Coherence;

/// Default path of the device node.
pub const DEFAULT_DEVICE: &str = "/dev/wfs";
/// Default path of the control socket.
pub const DEFAULT_CONTROL: &str = "/run/wfs/manager.sock";
/// Default of `failure_timeout`.
pub const DEFAULT_FAILURE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Default of `state`.
pub const DEFAULT_STATE: &str = "/var/lib/wfs";
/// Default of `key_file`.
pub const DEFAULT_KEY_FILE: &str = "/etc/wfs/host.key";
/// Longest host or cluster name.
pub const MAX_NAME: usize = 255;

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: String,
    host: String,
    listen: String,
    export: PathBuf,
    device: Option<PathBuf>,
    control: Option<PathBuf>,
    control_group: Option<String>,
    grant: Option<String>,
    failure_timeout: Option<u64>,
    lease: Option<u64>,
    state: Option<PathBuf>,
    coherence: Option<String>,
    key_file: Option<PathBuf>,
    transport: Option<String>,
    root_squash: Option<bool>,
    #[serde(default)]
    file: Vec<RawFile>,
    #[serde(default)]
    place: Vec<RawPlace>,
    #[serde(default)]
    peer: Vec<RawPeer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlace {
    names: String,
    host: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    coherence: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: String,
    addr: String,
    public_key: Option<String>,
}

/// One other host of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its host name.
    pub name: String,
    /// Its listen address.
    pub addr: SocketAddr,
    /// Its public key (none with the plain transport).
    pub public_key: Option<crate::secure::Key>,
}

/// How managers talk to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Noise sessions: each peer proves it holds its listed key, and every
    /// frame is encrypted and authenticated ([`crate::secure`]).
    Noise(crate::secure::KeyPair),
    /// Frames as they are, to and from whoever claims a peer's name.
    Plain,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Cluster name.
    pub cluster: String,
    /// This host's name.
    pub host: String,
    /// This host's listen address.
    pub listen: SocketAddr,
    /// Export directory.
    pub export: PathBuf,
    /// Device node.
    pub device: PathBuf,
    /// Control socket path.
    pub control: PathBuf,
    /// The group whose members may run the control socket's read-only
    /// commands (`control_group`).
    pub control_group: Option<crate::control::ControlGroup>,
    /// What a READ reply grants.
    pub grant: Grant,
    /// How long a peer may stay disconnected before its manager is taken
    /// for dead (see `Documentation/failures.md`).
    pub failure_timeout: std::time::Duration,
    /// How long this host keeps the pages of a peer's files without an
    /// answer from it before it fences itself (see
    /// `Documentation/failures.md`).
    pub lease: std::time::Duration,
    /// Directory of what this host keeps across its manager's restarts
    /// ([`crate::deaths`]).
    pub state: PathBuf,
    /// The other hosts, in file order.
    pub peers: Vec<Peer>,
    /// How this host keeps the pages of the files it exports coherent
    /// (`Documentation/mrsw.md`).
    pub coherence: Coherence,
    /// Exported files kept otherwise, by name.
    pub files: Vec<(String, Coherence)>,
    /// Placement rules, in file order: files made under a name matching
    /// the pattern are made at the named host (this one or a peer).
    pub placement: Vec<(glob::Pattern, String)>,
    /// How this host talks to its peers.
    pub transport: Transport,
    /// Whether root on other hosts is taken as `nobody` for this host's
    /// files (`root_squash`, default true).
    pub root_squash: bool,
}

/// The group `name` (or number) of `control_group`.
fn group(name: &str) -> Result<crate::control::ControlGroup, ConfigError> {
    let gid = match name.parse::<u32>() {
        Ok(gid) => gid,
        Err(_) => match gid_of(name) {
            Ok(Some(gid)) => gid,
            Ok(None) => return err(format!("control_group: no group named {name:?}")),
            Err(e) => return err(format!("control_group: cannot look up group {name:?}: {e}")),
        },
    };
    Ok(crate::control::ControlGroup {
        name: name.to_string(),
        gid,
    })
}

/// The id of the group called `name` (getgrnam_r), `None` if there is no
/// such group.
pub fn gid_of(name: &str) -> std::io::Result<Option<u32>> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return Ok(None);
    };
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid value to be written over.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `cname` is a C string; `grp`, `buf` (of the length
        // given) and `found` are valid for writes.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(grp.gr_gid)),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            // (Some libcs say "no such group" with these.)
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// A coherence as written.
fn coherence(what: &str, s: &str) -> Result<Coherence, ConfigError> {
    match s {
        "single" => Ok(Coherence::Single),
        "mrsw" => Ok(Coherence::Mrsw),
        other => Err(ConfigError(format!(
            "{what} {other:?} is invalid; expected \"single\" or \"mrsw\""
        ))),
    }
}

/// A configuration error, with a message meant for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Checks a host or cluster name: 1..=255 bytes of `[A-Za-z0-9._-]`.
pub fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

/// The id of host `name` in the page protocol: the same on every host
/// (a 16-bit FNV-1a hash of the name), so messages can name a third host.
pub fn host_id(name: &str) -> crate::protocol::HostId {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name.as_bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ (h & 0xffff)) as u16
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>().map_err(|e| {
        ConfigError(format!(
            "{what}: cannot parse address {s:?} ({e}); expected IP:PORT"
        ))
    })
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines; keep it on one.
            let msg = e.to_string();
            let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigError(format!("invalid configuration: {msg}"))
        })?;
        if !valid_host_name(&raw.cluster) {
            return err(format!(
                "cluster name {:?} is invalid (1..={MAX_NAME} characters of A-Z a-z 0-9 . _ -)",
                raw.cluster
            ));
        }
        if !valid_host_name(&raw.host) {
            return err(format!(
                "host name {:?} is invalid (1..={MAX_NAME} characters of A-Z a-z 0-9 . _ -)",
                raw.host
            ));
        }
        let listen = parse_addr("listen", &raw.listen)?;
        let transport = match raw.transport.as_deref() {
            None | Some("noise") => {
                let path = raw
                    .key_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE));
                Transport::Noise(crate::secure::KeyPair::load(&path).map_err(ConfigError)?)
            }
            Some("plain") => Transport::Plain,
            Some(t) => {
                return err(format!(
                    "transport {t:?} is invalid; expected \"noise\" or \"plain\""
                ));
            }
        };
        let mut keys = HashSet::new();
        if let Transport::Noise(me) = &transport {
            keys.insert(me.public);
        }
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        let mut peers = Vec::new();
        for p in raw.peer {
            if !valid_host_name(&p.name) {
                return err(format!(
                    "peer name {:?} is invalid (1..={MAX_NAME} characters of A-Z a-z 0-9 . _ -)",
                    p.name
                ));
            }
            if p.name == raw.host {
                return err(format!(
                    "peer {:?} has the same name as this host; list only the other hosts",
                    p.name
                ));
            }
            if !names.insert(p.name.clone()) {
                return err(format!("duplicate peer name {:?}", p.name));
            }
            if host_id(&p.name) == host_id(&raw.host)
                || peers
                    .iter()
                    .any(|q: &Peer| host_id(&q.name) == host_id(&p.name))
            {
                return err(format!(
                    "peer {:?}: its host id {} (a hash of the name) is taken by another host; rename one of them",
                    p.name,
                    host_id(&p.name)
                ));
            }
            let addr = parse_addr(&format!("peer {:?} addr", p.name), &p.addr)?;
            if addr == listen {
                return err(format!(
                    "peer {:?} has this host's own listen address {addr}",
                    p.name
                ));
            }
            if !addrs.insert(addr) {
                return err(format!("peer {:?}: duplicate peer address {addr}", p.name));
            }
            let public_key = match (&transport, &p.public_key) {
                // (Kept in the file for a return to "noise", unused.)
                (Transport::Plain, _) => None,
                (Transport::Noise(_), None) => {
                    return err(format!(
                        "peer {:?} has no public_key (the noise transport authenticates every peer; copy its key.pub here)",
                        p.name
                    ));
                }
                (Transport::Noise(_), Some(k)) => {
                    let k = crate::secure::decode_key(k)
                        .map_err(|e| ConfigError(format!("peer {:?}: public_key: {e}", p.name)))?;
                    if !keys.insert(k) {
                        return err(format!(
                            "peer {:?}: its public_key is this host's or another peer's",
                            p.name
                        ));
                    }
                    Some(k)
                }
            };
            peers.push(Peer {
                name: p.name,
                addr,
                public_key,
            });
        }
        match std::fs::metadata(&raw.export) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return err(format!(
                    "export {} is not a directory",
                    raw.export.display()
                ));
            }
            Err(e) => {
                return err(format!(
                    "export directory {} does not exist or is not accessible: {e}",
                    raw.export.display()
                ));
            }
        }
        let grant = match raw.grant.as_deref() {
            None | Some("read-write") => Grant::ReadWrite,
            Some("read-only") => Grant::ReadOnly,
            Some(g) => {
                return err(format!(
                    "grant {g:?} is invalid; expected \"read-write\" or \"read-only\""
                ));
            }
        };
        let failure_timeout = match raw.failure_timeout {
            None => DEFAULT_FAILURE_TIMEOUT,
            Some(s @ 1..=3600) => std::time::Duration::from_secs(s),
            Some(s) => {
                return err(format!(
                    "failure_timeout {s} is out of range; expected 1 to 3600 seconds"
                ));
            }
        };
        let lease = match raw.lease {
            // As long as a peer waits for this host at least (heartbeat
            // time-out, then failure time-out): a cut that short fences
            // nothing.
            None => failure_timeout + crate::cluster::DEAD_AFTER,
            Some(s @ 1..=3600) => std::time::Duration::from_secs(s),
            Some(s) => {
                return err(format!(
                    "lease {s} is out of range; expected 1 to 3600 seconds"
                ));
            }
        };
        let default_coherence = match raw.coherence.as_deref() {
            None => Coherence::Single,
            Some(c) => coherence("coherence", c)?,
        };
        let names_of_peers = names;
        let mut files = Vec::new();
        let mut names = HashSet::new();
        for f in raw.file {
            let one_component = !f.name.is_empty()
                && f.name != "."
                && f.name != ".."
                && !f.name.contains('/')
                && !f.name.contains('\0')
                && f.name.len() <= wfs_abi::NAME_MAX;
            if !one_component {
                return err(format!(
                    "file {:?}: a name in the export directory is one path component",
                    f.name
                ));
            }
            if !names.insert(f.name.clone()) {
                return err(format!("file {:?} is listed twice", f.name));
            }
            let c = coherence(&format!("file {:?}: coherence", f.name), &f.coherence)?;
            files.push((f.name, c));
        }
        let mut placement = Vec::new();
        for r in raw.place {
            // (`glob`: the shell's patterns, well kept, and no `/` in a
            // name to match.)
            let pattern = glob::Pattern::new(&r.names)
                .map_err(|e| ConfigError(format!("place {:?}: not a pattern: {e}", r.names)))?;
            if r.names.contains('/') {
                return err(format!(
                    "place {:?}: a pattern matches one name in /wfs, without '/'",
                    r.names
                ));
            }
            if r.host != raw.host && !names_of_peers.contains(&r.host) {
                return err(format!(
                    "place {:?}: host {:?} is neither this host nor a peer",
                    r.names, r.host
                ));
            }
            placement.push((pattern, r.host));
        }
        Ok(Config {
            placement,
            grant,
            failure_timeout,
            lease,
            coherence: default_coherence,
            files,
            cluster: raw.cluster,
            host: raw.host,
            listen,
            export: raw.export,
            device: raw.device.unwrap_or_else(|| PathBuf::from(DEFAULT_DEVICE)),
            control: raw
                .control
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL)),
            state: raw.state.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE)),
            control_group: raw.control_group.map(|g| group(&g)).transpose()?,
            peers,
            transport,
            root_squash: raw.root_squash.unwrap_or(true),
        })
    }

    /// Whether this host dials `peer` (true) or waits for it (false).
    ///
    /// The rule, the same on both sides so that every pair of hosts has
    /// exactly one connection: the host whose name sorts lower (byte-wise)
    /// initiates; the other only accepts.
    pub fn initiates_to(&self, peer: &str) -> bool {
        initiator_rule(&self.host, peer)
    }

    /// The configured peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }
}

/// The host the first of `rules` that matches `name` names, if any (a
/// name that is not UTF-8 matches none).
pub fn placement_for<'a>(rules: &'a [(glob::Pattern, String)], name: &[u8]) -> Option<&'a str> {
    let name = std::str::from_utf8(name).ok()?;
    rules
        .iter()
        .find(|(p, _)| p.matches(name))
        .map(|(_, h)| h.as_str())
}

/// True iff host `a` must initiate the connection to host `b`.
pub fn initiator_rule(a: &str, b: &str) -> bool {
    a.as_bytes() < b.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> String {
        std::env::temp_dir().to_str().unwrap().to_string()
    }

    fn good() -> String {
        format!(
            r#"
cluster = "wfs-vm"
host = "h1"
listen = "10.0.0.1:7070"
export = "{}"
transport = "plain"

[[peer]]
name = "h2"
addr = "10.0.0.2:7070"

[[peer]]
name = "h3"
addr = "10.0.0.3:7070"
"#,
            tmpdir()
        )
    }

    /// The example `make install` puts in /etc/wfs (dist/cluster.toml)
    /// is a configuration the manager takes, as written and with each of
    /// its optional keys and sections given (uncommented).
    #[test]
    fn the_installed_example_parses() {
        // (Its private key where `wfsctl keygen` would have put it, and
        // an export directory that exists.)
        let dir = crate::testkit::TestDir::new("config-example");
        let (_, key) = key_in(&dir, "h1");
        let text = include_str!("../../../dist/cluster.toml")
            .replace("\"/etc/wfs/host.key\"", &format!("\"{}\"", key.display()))
            .replace("\"/export\"", &format!("\"{}\"", dir.export().display()));
        assert!(text.contains(&key.display().to_string()));
        let text = text.as_str();
        let c = Config::parse(text).unwrap();
        assert_eq!((c.host.as_str(), c.peers.len()), ("h1", 1));
        // `# key = value` and `# [[section]]` lines, uncommented (but
        // for the control group, which must exist on this host; prose
        // that only looks like a key is no TOML line).
        let key = |r: &str| {
            r.split_once(" = ").is_some_and(|(k, _)| {
                k != "control_group"
                    && !k.is_empty()
                    && k.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
                    && toml::from_str::<toml::Table>(r).is_ok()
            })
        };
        let given: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(r) if r.starts_with("[[") || key(r) => r,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(given.contains("\n[[place]]\n") && given.contains("\ncoherence = \"single\""));
        let c = Config::parse(&given).unwrap_or_else(|e| panic!("{e}\n{given}"));
        assert_eq!(c.placement.len(), 1);
    }

    #[test]
    fn root_squash_is_on_unless_turned_off() {
        assert!(Config::parse(&good()).unwrap().root_squash);
        let with = |v: &str| Config::parse(&format!("root_squash = {v}\n{}", good()));
        assert!(with("true").unwrap().root_squash);
        assert!(!with("false").unwrap().root_squash);
        // Only a boolean: "no" is not a way of saying false.
        assert!(with("\"no\"").is_err());
        assert!(with("0").is_err());
    }

    /// A fresh key pair with its private key file in a new directory.
    fn key_in(dir: &crate::testkit::TestDir, name: &str) -> (crate::secure::KeyPair, PathBuf) {
        (dir.key(name), dir.key_file(name))
    }

    #[test]
    fn noise_transport_needs_a_private_key_file_and_every_peers_public_key() {
        let dir = crate::testkit::TestDir::new("config-keys");
        let (me, file) = key_in(&dir, "h1");
        let (h2, _) = key_in(&dir, "h2");
        let (h3, _) = key_in(&dir, "h3");
        let keyed = |h2k: &str, h3k: &str| {
            good()
                .replace(
                    "transport = \"plain\"",
                    &format!("key_file = \"{}\"", file.display()),
                )
                .replace(
                    "addr = \"10.0.0.2:7070\"",
                    &format!("addr = \"10.0.0.2:7070\"\npublic_key = \"{h2k}\""),
                )
                .replace(
                    "addr = \"10.0.0.3:7070\"",
                    &format!("addr = \"10.0.0.3:7070\"\npublic_key = \"{h3k}\""),
                )
        };
        let enc = crate::secure::encode_key;
        let c = Config::parse(&keyed(&enc(&h2.public), &enc(&h3.public))).unwrap();
        assert_eq!(c.transport, Transport::Noise(me.clone()));
        assert_eq!(c.peers[0].public_key, Some(h2.public));
        assert_eq!(c.peers[1].public_key, Some(h3.public));
        // Explicitly "noise": the same.
        let text = keyed(&enc(&h2.public), &enc(&h3.public));
        let e = Config::parse(&format!("transport = \"noise\"\n{text}")).unwrap();
        assert_eq!(e, c);
        // A peer without a key; a key that is not one; one key twice; this
        // host's own key as a peer's.
        let e = parse_err(&keyed(&enc(&h2.public), "").replace("public_key = \"\"\n", ""));
        assert!(e.contains("peer \"h3\" has no public_key"), "{e}");
        let e = parse_err(&keyed(&enc(&h2.public), "bm90IGEga2V5"));
        assert!(e.contains("a key is 32 bytes, not 9"), "{e}");
        let e = parse_err(&keyed(&enc(&h2.public), "!!"));
        assert!(e.contains("not a base64 key"), "{e}");
        let e = parse_err(&keyed(&enc(&h2.public), &enc(&h2.public)));
        assert!(e.contains("this host's or another peer's"), "{e}");
        let e = parse_err(&keyed(&enc(&me.public), &enc(&h3.public)));
        assert!(e.contains("this host's or another peer's"), "{e}");
        // Keys with the plain transport: left in place for a return to
        // "noise" (`transport = "plain"` prepended, as a test does), unused.
        let c = Config::parse(&format!(
            "transport = \"plain\"\n{}",
            keyed(&enc(&h2.public), &enc(&h3.public))
        ))
        .unwrap();
        assert_eq!(c.transport, Transport::Plain);
        assert_eq!(c.peers[0].public_key, None);
        let e = parse_err(&good().replace("\"plain\"", "\"tls\""));
        assert!(e.contains("transport \"tls\" is invalid"), "{e}");
        // The key file: missing; readable by others; not a key.
        let text = keyed(&enc(&h2.public), &enc(&h3.public));
        let missing = dir.path.join("nope.key");
        let e =
            parse_err(&text.replace(&file.display().to_string(), &missing.display().to_string()));
        assert!(
            e.contains("cannot read key") && e.contains("wfsctl keygen"),
            "{e}"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = parse_err(&text);
        assert!(e.contains("has mode 644: others may read it"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&file, "garbage\n").unwrap();
        let e = parse_err(&text);
        assert!(e.contains("not a base64 key"), "{e}");
        // A symbolic link to a key is not a key file.
        let link = dir.path.join("link.key");
        std::os::unix::fs::symlink(dir.key_file("h2"), &link).unwrap();
        let e = parse_err(&text.replace(&file.display().to_string(), &link.display().to_string()));
        assert!(e.contains("is not a regular file"), "{e}");
    }

    fn parse_err(text: &str) -> String {
        match Config::parse(text) {
            Ok(c) => panic!("accepted bad config: {c:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn good_config() {
        let c = Config::parse(&good()).unwrap();
        assert_eq!(c.cluster, "wfs-vm");
        assert_eq!(c.host, "h1");
        assert_eq!(c.listen, "10.0.0.1:7070".parse().unwrap());
        assert_eq!(c.export, PathBuf::from(tmpdir()));
        assert_eq!(c.device, PathBuf::from("/dev/wfs"));
        assert_eq!(c.control, PathBuf::from("/run/wfs/manager.sock"));
        assert_eq!(c.control_group, None);
        assert_eq!(c.grant, Grant::ReadWrite);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[0].name, "h2");
        assert_eq!(c.peers[1].addr, "10.0.0.3:7070".parse().unwrap());
        assert!(c.initiates_to("h2"));
        assert_eq!(c.peer("h3").unwrap().name, "h3");
        assert!(c.peer("h4").is_none());
    }

    #[test]
    fn optional_fields_and_no_peers() {
        let text = format!(
            "cluster = \"c\"\nhost = \"a\"\nlisten = \"[::1]:1\"\nexport = \"{}\"\ndevice = \"/dev/x\"\ncontrol = \"/tmp/c.sock\"\ntransport = \"plain\"\n",
            tmpdir()
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.device, PathBuf::from("/dev/x"));
        assert_eq!(c.control, PathBuf::from("/tmp/c.sock"));
        assert!(c.peers.is_empty());
        assert_eq!(c.listen, "[::1]:1".parse().unwrap());
    }

    #[test]
    fn coherence_per_cluster_and_per_file() {
        let c = Config::parse(&good()).unwrap();
        assert_eq!(c.coherence, Coherence::Single);
        assert!(c.files.is_empty());
        let text = good().replacen(
            "\n\n",
            "\ncoherence = \"mrsw\"\n\n[[file]]\nname = \"log\"\ncoherence = \"single\"\n\n[[file]]\nname = \"matrix.dat\"\ncoherence = \"mrsw\"\n\n",
            1,
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.coherence, Coherence::Mrsw);
        assert_eq!(
            c.files,
            vec![
                ("log".to_string(), Coherence::Single),
                ("matrix.dat".to_string(), Coherence::Mrsw)
            ]
        );
        let bad = |extra: &str| parse_err(&good().replacen("\n\n", &format!("\n{extra}\n\n"), 1));
        assert!(bad("coherence = \"ivy\"").contains("coherence \"ivy\" is invalid"));
        let e = bad("[[file]]\nname = \"a/b\"\ncoherence = \"mrsw\"");
        assert!(e.contains("one path component"), "{e}");
        let e = bad("[[file]]\nname = \"..\"\ncoherence = \"mrsw\"");
        assert!(e.contains("one path component"), "{e}");
        let e = bad(
            "[[file]]\nname = \"x\"\ncoherence = \"mrsw\"\n[[file]]\nname = \"x\"\ncoherence = \"single\"",
        );
        assert!(e.contains("listed twice"), "{e}");
        let e = bad("[[file]]\nname = \"x\"\ncoherence = \"many\"");
        assert!(
            e.contains("file \"x\": coherence \"many\" is invalid"),
            "{e}"
        );
        let e = bad("[[file]]\nname = \"x\"");
        assert!(e.contains("coherence"), "{e}");
    }

    #[test]
    fn grant_policy() {
        let c = Config::parse(&good().replacen("\n\n", "\ngrant = \"read-only\"\n\n", 1)).unwrap();
        assert_eq!(c.grant, Grant::ReadOnly);
        assert_eq!(c.failure_timeout, DEFAULT_FAILURE_TIMEOUT);
        let c = Config::parse(&good().replacen("\n\n", "\nfailure_timeout = 3\n\n", 1)).unwrap();
        assert_eq!(c.failure_timeout, std::time::Duration::from_secs(3));
        for bad in ["0", "3601", "-1", "\"10\""] {
            let text = good().replacen("\n\n", &format!("\nfailure_timeout = {bad}\n\n"), 1);
            assert!(Config::parse(&text).is_err(), "failure_timeout = {bad}");
        }
        // The lease is the failure time-out and the heartbeat's unless set.
        assert_eq!(c.lease, std::time::Duration::from_secs(3 + 5));
        let c = Config::parse(&good().replacen("\n\n", "\nfailure_timeout = 8\nlease = 5\n\n", 1))
            .unwrap();
        assert_eq!(c.lease, std::time::Duration::from_secs(5));
        assert_eq!(c.state, PathBuf::from(DEFAULT_STATE));
        let c = Config::parse(&good().replacen("\n\n", "\nstate = \"/srv/wfs\"\n\n", 1)).unwrap();
        assert_eq!(c.state, PathBuf::from("/srv/wfs"));
        for bad in ["0", "3601", "\"5\""] {
            let text = good().replacen(
                "\n\n",
                &format!("\nfailure_timeout = 8\nlease = {bad}\n\n"),
                1,
            );
            assert!(Config::parse(&text).is_err(), "lease = {bad}");
        }
        let e = parse_err(&good().replacen("\n\n", "\ngrant = \"write\"\n\n", 1));
        assert!(e.contains("grant \"write\" is invalid"), "{e}");
    }

    #[test]
    fn control_group() {
        let g = |v: &str| {
            Config::parse(&format!(
                "cluster = \"c\"\nhost = \"a\"\nlisten = \"127.0.0.1:1\"\nexport = \"{}\"\ncontrol_group = \"{v}\"\ntransport = \"plain\"\n",
                tmpdir()
            ))
        };
        let c = g("root").unwrap();
        assert_eq!(
            c.control_group,
            Some(crate::control::ControlGroup {
                name: "root".into(),
                gid: 0
            })
        );
        assert_eq!(g("4242").unwrap().control_group.unwrap().gid, 4242);
        let e = g("no-such-group-wfs").unwrap_err().to_string();
        assert!(e.contains("no group named \"no-such-group-wfs\""), "{e}");
        assert!(gid_of("no-such-group-wfs").unwrap().is_none());
        assert_eq!(gid_of("root").unwrap(), Some(0));
    }

    #[test]
    fn unknown_fields() {
        let e = parse_err(&format!("{}\nbogus = 1\n", good()));
        assert!(e.contains("bogus"), "{e}");
        let e = parse_err(&good().replace(
            "addr = \"10.0.0.3:7070\"",
            "addr = \"10.0.0.3:7070\"\nport = 3",
        ));
        assert!(e.contains("port"), "{e}");
        // A misspelt table name is an unknown field too.
        let e = parse_err(&good().replace("[[peer]]", "[[peers]]"));
        assert!(e.contains("peers"), "{e}");
    }

    #[test]
    fn missing_fields() {
        for key in ["cluster", "host", "listen", "export"] {
            let text: String = good()
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} =")))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = parse_err(&text);
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = parse_err(&good().replace("name = \"h2\"\n", ""));
        assert!(e.contains("name"), "{e}");
    }

    #[test]
    fn wrong_types() {
        let e = parse_err(&good().replace("host = \"h1\"", "host = 1"));
        assert!(e.contains("invalid"), "{e}");
        let e = parse_err("this is not toml");
        assert!(e.contains("invalid configuration"), "{e}");
    }

    #[test]
    fn duplicate_peer_names() {
        let text = good().replace("name = \"h3\"", "name = \"h2\"");
        assert!(parse_err(&text).contains("duplicate peer name \"h2\""));
    }

    #[test]
    fn duplicate_peer_addrs() {
        let text = good().replace("10.0.0.3:7070", "10.0.0.2:7070");
        assert!(parse_err(&text).contains("duplicate peer address"));
    }

    #[test]
    fn peer_named_like_host() {
        let text = good().replace("name = \"h3\"", "name = \"h1\"");
        assert!(parse_err(&text).contains("same name as this host"));
    }

    #[test]
    fn peer_with_own_address() {
        let text = good().replace("10.0.0.3:7070", "10.0.0.1:7070");
        assert!(parse_err(&text).contains("own listen address"));
    }

    #[test]
    fn bad_addresses() {
        for bad in [
            "10.0.0.2",
            "nohost:7070",
            "10.0.0.2:notaport",
            "10.0.0.2:70000",
            "",
        ] {
            let text = good().replace("10.0.0.2:7070", bad);
            let e = parse_err(&text);
            assert!(
                e.contains("peer \"h2\" addr") && e.contains("cannot parse"),
                "{bad}: {e}"
            );
        }
        let e = parse_err(&good().replace("10.0.0.1:7070", "10.0.0.1"));
        assert!(e.contains("listen") && e.contains("cannot parse"), "{e}");
    }

    #[test]
    fn bad_names() {
        for bad in ["", "h 1", "h/1", "é"] {
            let e = parse_err(&good().replace("host = \"h1\"", &format!("host = \"{bad}\"")));
            assert!(e.contains("host name"), "{bad}: {e}");
            let e =
                parse_err(&good().replace("cluster = \"wfs-vm\"", &format!("cluster = \"{bad}\"")));
            assert!(e.contains("cluster name"), "{bad}: {e}");
            let e = parse_err(&good().replace("name = \"h2\"", &format!("name = \"{bad}\"")));
            assert!(e.contains("peer name"), "{bad}: {e}");
        }
        let long = "x".repeat(MAX_NAME + 1);
        let e = parse_err(&good().replace("host = \"h1\"", &format!("host = \"{long}\"")));
        assert!(e.contains("host name"), "{e}");
    }

    #[test]
    fn missing_export() {
        let text = good().replace(&tmpdir(), "/nonexistent/wfs-export-dir");
        let e = parse_err(&text);
        assert!(
            e.contains("export directory /nonexistent/wfs-export-dir does not exist"),
            "{e}"
        );
    }

    #[test]
    fn export_not_a_directory() {
        let text = good().replace(
            &format!("export = \"{}\"", tmpdir()),
            "export = \"/proc/self/status\"",
        );
        assert!(parse_err(&text).contains("is not a directory"));
    }

    #[test]
    fn load_reports_path() {
        let e = Config::load(Path::new("/nonexistent/wfs.toml")).unwrap_err();
        assert!(e.0.contains("cannot read /nonexistent/wfs.toml"), "{e}");
    }

    #[test]
    fn placement_rules() {
        // Inline (as a top-level key) or as tables; the first match wins.
        let text = format!(
            "place = [{{ names = \"*.db\", host = \"h2\" }}, {{ names = \"*\", host = \"h1\" }}]\n{}",
            good()
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(placement_for(&c.placement, b"x.db"), Some("h2"));
        assert_eq!(placement_for(&c.placement, b"x.db-journal"), Some("h1"));
        assert_eq!(
            placement_for(&c.placement, b"\xff"),
            None,
            "not UTF-8: no rule"
        );
        let text = format!(
            "{}\n[[place]]\nnames = \"log-[0-9]*\"\nhost = \"h3\"\n",
            good()
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(placement_for(&c.placement, b"log-7"), Some("h3"));
        assert_eq!(placement_for(&c.placement, b"log-x"), None);
        assert_eq!(Config::parse(&good()).unwrap().placement.len(), 0);
        for (rule, why) in [
            (
                "names = \"*.db\"\nhost = \"h9\"",
                "neither this host nor a peer",
            ),
            ("names = \"[x\"\nhost = \"h2\"", "not a pattern"),
            ("names = \"d/*\"\nhost = \"h2\"", "without '/'"),
            (
                "names = \"*\"\nhost = \"h2\"\nowner = \"h2\"",
                "unknown field",
            ),
        ] {
            let e = parse_err(&format!("{}\n[[place]]\n{rule}\n", good()));
            assert!(e.contains(why), "{rule}: {e}");
        }
    }

    #[test]
    fn initiator_rule_is_antisymmetric() {
        assert!(initiator_rule("h1", "h2"));
        assert!(!initiator_rule("h2", "h1"));
        assert!(!initiator_rule("h1", "h1"));
        assert!(initiator_rule("a", "b"));
        assert!(initiator_rule("h10", "h2")); // byte-wise, not numeric
        for (a, b) in [("x", "y"), ("node-1", "node-10"), ("B", "a")] {
            assert_ne!(initiator_rule(a, b), initiator_rule(b, a));
        }
    }
}
