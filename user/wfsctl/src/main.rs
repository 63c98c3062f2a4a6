//! `wfsctl`: inspect and poke the WFS manager and `/dev/wfs`.
//!
//! ```text
//! wfsctl status [--control PATH] [--device PATH]
//! wfsctl wait [--control PATH] [--peers] [--timeout SECS]
//! wfsctl probe-register [--device PATH] [--abi N] [--magic HEX] [--as-uid UID] [--expect ok|EBUSY|EPROTO|EPERM|...]
//! wfsctl kstatus [--device PATH]
//! wfsctl stats [--control PATH] [--json]
//! wfsctl invalidate NAME INDEX [--downgrade | --mode drop|downgrade] [--time] [--control PATH]
//! wfsctl forget NAME [--control PATH]
//! wfsctl null-read on|off [--control PATH]
//! wfsctl disconnect PEER [--control PATH]
//! wfsctl keygen PATH
//! wfsctl completions bash|elvish|fish|powershell|zsh
//! wfsctl help [COMMAND]    (or --help after any command)
//! ```
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.
//!
//! The command line is parsed with `clap` (derive API) from the definition
//! in [`wfsctl::cli`] (this crate's library), which the man page and
//! completion generator `wfs-gen-docs` reads too, so `--help`, the man
//! pages and the completions never disagree with the parser.
//!
//! The manager answers root (and its own user) every command, members of
//! its `control_group` only the read-only ones (`status`, `stats`,
//! `wait`), and nobody else (`Documentation/security.md`).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use wfs_abi::{ABI_VERSION, REGISTER_MAGIC, Register, Status};
use wfs_manager::cluster::PeerState;
use wfs_manager::control::{self, StatusReport};
use wfs_manager::device;
use wfs_manager::invalidate::Outcome;
use wfsctl::cli::{self, Command};

const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    // Like any filter-friendly CLI tool: when the reader of our output goes
    // away (`wfsctl status | grep -q ...`), die quietly of SIGPIPE instead of
    // reporting a failed write.
    // SAFETY: Setting a signal's disposition to SIG_DFL has no memory-safety
    // preconditions; no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        // Usage errors: stderr, exit 2; --help, --version: stdout, exit 0.
        Err(e) => std::process::exit(wfs_manager::cli::report(&e, &mut cli::command())),
    };
    std::process::exit(run(cli.command));
}

/// Runs one command; returns the exit code.
fn run(command: Command) -> i32 {
    match command {
        Command::Status { control, device } => cmd_status(&control.path, &device.path),
        Command::Stats { control, json } => cmd_stats(&control.path, json),
        Command::Wait {
            control,
            peers,
            timeout,
        } => cmd_wait(&control.path, peers, timeout),
        Command::ProbeRegister {
            device,
            abi,
            magic,
            as_uid,
            expect,
        } => cmd_probe(
            &device.path,
            &Register {
                magic: magic.unwrap_or(REGISTER_MAGIC),
                abi_version: abi.unwrap_or(ABI_VERSION),
                ..Register::request()
            },
            as_uid,
            expect.unwrap_or(0),
        ),
        Command::Kstatus { device } => cmd_kstatus(&device.path),
        Command::Invalidate {
            name,
            index,
            downgrade,
            mode,
            time,
            control,
        } => cmd_invalidate(
            &control.path,
            &name,
            index,
            cli::invalidate_mode(downgrade, mode),
            time,
        ),
        Command::Forget { name, control } => ask_one(&control.path, "forget", &name),
        Command::NullRead { state, control } => ask_one(&control.path, "null-read", state.as_str()),
        Command::Disconnect { peer, control } => ask_one(&control.path, "disconnect", &peer),
        Command::Keygen { path } => cmd_keygen(&path),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli::command(), "wfsctl", &mut std::io::stdout());
            0
        }
    }
}

/// `wfsctl keygen PATH`: a new key pair for this host's manager.
fn cmd_keygen(path: &Path) -> i32 {
    let written = wfs_manager::secure::KeyPair::generate().and_then(|k| {
        let public = k.write(path)?;
        Ok((k, public))
    });
    match written {
        Ok((k, public)) => {
            eprintln!(
                "wfsctl: wrote {} (private, mode 0600: key_file in cluster.toml) and {} (public: each peer's public_key for this host)",
                path.display(),
                public.display()
            );
            println!("{}", wfs_manager::secure::encode_key(&k.public));
            0
        }
        Err(e) => {
            eprintln!("wfsctl: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------------------
// status / kstatus
// ---------------------------------------------------------------------------

/// `registered: ...` line.
fn registered_line(s: &StatusReport) -> String {
    if s.registered {
        format!(
            "registered: yes (abi {}, session {}, pid {})",
            s.abi_version, s.session, s.pid
        )
    } else if s.device.is_none() {
        format!("registered: no (--no-device, pid {})", s.pid)
    } else {
        format!("registered: no (pid {})", s.pid)
    }
}

/// `peer NAME ADDR STATE[ (reason)]` line.
fn peer_line(p: &wfs_manager::cluster::PeerSnapshot) -> String {
    let mut l = match (&p.state, &p.reason) {
        (PeerState::Connected, _) | (_, None) => {
            format!("peer {} {} {}", p.name, p.addr, p.state.as_str())
        }
        (_, Some(r)) => format!("peer {} {} {} ({r})", p.name, p.addr, p.state.as_str()),
    };
    if let Some(h) = &p.health {
        l.push_str(&format!("; {}", h.state));
        if let Some(i) = h.incarnation {
            l.push_str(&format!(" (incarnation {i:#x})"));
        }
        l.push_str(&format!(", holds {} of this host's pages", h.pages));
    }
    l
}

fn print_report(s: &StatusReport) {
    println!(
        "manager: host {} cluster {} listen {} pid {}",
        s.host, s.cluster, s.listen, s.pid
    );
    println!("{}", registered_line(s));
    if s.registered {
        println!(
            "limits: max_inflight {} pool_slots {} timeout_ms {}",
            s.max_inflight, s.pool_slots, s.timeout_ms
        );
    }
    for p in &s.peers {
        println!("{}", peer_line(p));
    }
    if let Some(l) = read_copies_line(s) {
        println!("{l}");
    }
    if s.control_refused > 0 {
        println!(
            "control socket: {} connection(s) refused for their credentials (see the manager's log)",
            s.control_refused
        );
    }
}

/// `read-only copies of this host's pages: NAME N, ...`: what each peer
/// holds of them as read copies (read replication), as this host's
/// directory says; `None` without peers.
fn read_copies_line(s: &StatusReport) -> Option<String> {
    let each: Vec<String> = s
        .peers
        .iter()
        .filter_map(|p| Some(format!("{} {}", p.name, p.health.as_ref()?.read_copies)))
        .collect();
    (!each.is_empty())
        .then(|| format!("read-only copies of this host's pages: {}", each.join(", ")))
}

/// `kernel: ...` line(s) for a status block.
fn kernel_lines(st: &Status) -> Vec<String> {
    let mut v = vec![if st.registered != 0 {
        format!(
            "kernel: manager registered pid {} session {} inflight {} mounts {} pool_free {}",
            st.manager_pid, st.session, st.inflight, st.mounts, st.pool_free
        )
    } else {
        format!(
            "kernel: no manager registered session {} inflight {} mounts {} pool_free {}",
            st.session, st.inflight, st.mounts, st.pool_free
        )
    }];
    if st.abi_version != ABI_VERSION {
        v.push(format!(
            "kernel: abi version {} differs from wfsctl's {ABI_VERSION}",
            st.abi_version
        ));
    }
    v
}

/// Prints the kernel's view; returns false if it could not be read.
fn print_kernel(dev: &Path, absent_is_ok: bool) -> bool {
    let d = dev.display();
    match device::open(dev) {
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            if absent_is_ok
                && (errno == libc::ENOENT || errno == libc::ENODEV || errno == libc::ENXIO)
            {
                println!("kernel: {d} not present, skipped (is wfs.ko loaded?)");
                return true;
            }
            println!("kernel: {}", device::open_error(dev, &e));
            false
        }
        Ok(f) => match device::ioctl_status(f.as_raw_fd()) {
            Ok(st) => {
                for l in kernel_lines(&st) {
                    println!("{l}");
                }
                true
            }
            Err(e) => {
                println!(
                    "kernel: IOC_STATUS on {d} failed: {}",
                    device::describe_errno(e)
                );
                false
            }
        },
    }
}

fn cmd_status(ctl: &Path, dev: &Path) -> i32 {
    let mut code = 0;
    match control::status(ctl, QUERY_TIMEOUT) {
        Ok(s) => print_report(&s),
        Err(e) => {
            eprintln!("wfsctl: {e}");
            println!("manager: unreachable ({})", ctl.display());
            code = 1;
        }
    }
    print_kernel(dev, true);
    code
}

/// Nanoseconds as the microseconds of `wfsctl stats`.
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The `stats` table: one line per request type. (The percentiles come
/// after the older columns, which scripts read by position.)
fn stats_lines(s: &StatusReport) -> Vec<String> {
    let mut v = vec![format!(
        "{:<8} {:>10} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "upcall", "count", "errors", "mean_us", "max_us", "p50_us", "p99_us"
    )];
    for o in &s.upcalls {
        v.push(format!(
            "{:<8} {:>10} {:>8} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            o.op,
            o.count,
            o.errors,
            us(o.mean_ns),
            us(o.max_ns),
            us(o.p50_ns),
            us(o.p99_ns)
        ));
    }
    if let Some(p) = &s.protocol {
        v.push(format!(
            "peer messages: sent {}, received {}, sent again after a reconnection {}; connections {}",
            p.sent, p.received, p.resent, p.connections
        ));
        v.push(format!(
            "pages: in {}, out {}, home after their READ gave up {}, failed (owner's disk read) {}; invalidations retried while busy {}",
            p.pages_in, p.pages_out, p.pages_home, p.pages_failed, p.busy_retries
        ));
        v.push(format!(
            "failures: peers taken for dead {}, pages lost with them {}; fenced off a peer's pages {} times",
            p.peers_dead, p.pages_lost, p.fencings
        ));
        v.push(format!(
            "owner's disk: pages written {} in {} flushes (fdatasync)",
            p.disk_writes, p.disk_syncs
        ));
        v.push(format!(
            "read replication: read-only copies in {}, upgrades granted in place {}, refaulted {}",
            p.read_copies, p.upgrades, p.refaults
        ));
        v.push(format!(
            "prefetch: pages fetched ahead of a sequential scan {}, READs answered from them {}, dropped unread {}",
            p.prefetched, p.prefetch_hits, p.prefetch_unread
        ));
        v.push(format!("views: pages read for a view {}", p.views));
        v.push(format!(
            "locks: asked {}, granted {}, refused (held, deadlock) {}, failed (owner gone, too long) {}, grants undone (request given up) {}; waits at this owner {}",
            p.locks, p.locks_granted, p.locks_refused, p.locks_failed, p.locks_undone, p.lock_waits
        ));
        v.push(format!(
            "sizes: asked {}, done {}, refused {}, failed (owner gone, disk, too long) {}; shrinks of this owner's files {}; new sizes sent to peers {}, heard from owners {}; times asked of owners {}",
            p.sizes, p.sizes_done, p.sizes_refused, p.sizes_failed, p.shrinks, p.sizes_told, p.sizes_heard, p.times_asked
        ));
        v.push(format!(
            "names: created {} (failed, exists included {}; made at another host by a placement rule {}), unlinked {} (failed {}), renamed {} (failed, EXDEV included {}); opened {} (failed {}; closes of an earlier manager's opens ignored {}); files of this owner kept open after their name went {}; times set {}",
            p.creates, p.creates_failed, p.creates_placed, p.unlinks, p.unlinks_failed, p.renames, p.renames_failed, p.opens, p.opens_failed, p.releases_stale, p.files_kept, p.times_set
        ));
        v.push(format!(
            "from peers: refused (what no correct peer sends) {}, dropped (not in the protocol's state) {}",
            p.refused_from_peers, p.unexpected_from_peers
        ));
    }
    if let Some(t) = &s.transport {
        v.push(format!(
            "transport: {}; key exchanges refused {}, connections closed on a record that failed authentication {}",
            t.transport, t.handshakes_refused, t.records_rejected
        ));
    }
    for c in &s.costs {
        v.push(format!(
            "cost {} count {} mean_us {:.1} total_us {:.1} max_us {:.1} p50_us {:.1} p99_us {:.1}",
            c.stage,
            c.count,
            us(c.total_ns.checked_div(c.count).unwrap_or(0)),
            us(c.total_ns),
            us(c.max_ns),
            us(c.p50_ns),
            us(c.p99_ns)
        ));
    }
    for m in &s.messages {
        v.push(format!(
            "message {} count {} mean_us {:.1} max_us {:.1} p50_us {:.1} p99_us {:.1}",
            m.kind,
            m.count,
            us(m.mean_ns),
            us(m.max_ns),
            us(m.p50_ns),
            us(m.p99_ns)
        ));
    }
    v
}

/// `wfsctl stats --json`: what `stats` shows, as the manager sent it
/// (times in nanoseconds), one JSON object on one line.
fn stats_json(s: &StatusReport) -> serde_json::Result<String> {
    let mut m = serde_json::Map::new();
    m.insert("upcalls".into(), serde_json::to_value(&s.upcalls)?);
    m.insert("protocol".into(), serde_json::to_value(&s.protocol)?);
    m.insert("transport".into(), serde_json::to_value(&s.transport)?);
    m.insert("costs".into(), serde_json::to_value(&s.costs)?);
    m.insert("messages".into(), serde_json::to_value(&s.messages)?);
    serde_json::to_string(&serde_json::Value::Object(m))
}

/// `wfsctl stats`: upcalls served by the manager, with their service time
/// (from reading the request to writing the reply), and its counters; as
/// text, or with `json` as JSON.
fn cmd_stats(ctl: &Path, json: bool) -> i32 {
    let s = match control::status(ctl, QUERY_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wfsctl: {e}");
            return 1;
        }
    };
    if json {
        match stats_json(&s) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("wfsctl: {e}");
                return 1;
            }
        }
    } else {
        for l in stats_lines(&s) {
            println!("{l}");
        }
    }
    0
}

/// Sends one command to the manager; prints its error and returns `None`
/// if it fails.
fn ask_manager(path: &Path, cmd: &str) -> Option<serde_json::Value> {
    let line = match control::query(path, cmd, QUERY_TIMEOUT) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wfsctl: cannot reach manager at {}: {e}", path.display());
            return None;
        }
    };
    match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(v) => match v.get("error").and_then(|e| e.as_str()) {
            Some(e) => {
                eprintln!("wfsctl: {e}");
                None
            }
            None => Some(v),
        },
        Err(e) => {
            eprintln!("wfsctl: bad answer from manager: {e}: {}", line.trim());
            None
        }
    }
}

/// The line `wfsctl invalidate` prints for an outcome.
fn outcome_line(name: &str, index: u64, o: &Outcome) -> String {
    if !o.present {
        return format!("page {index} of {name}: not cached");
    }
    let mut s = format!(
        "page {index} of {name}: {}, {}",
        if o.dirty { "dirty" } else { "clean" },
        if o.writable {
            "read-write"
        } else {
            "read-only"
        }
    );
    if o.written {
        s.push_str("; dirty data written to the export");
    }
    s
}

/// `wfsctl invalidate NAME INDEX`: the manager takes the page away from
/// this host's kernel.
fn cmd_invalidate(
    ctl: &Path,
    name: &str,
    index: u64,
    mode: cli::InvalidateMode,
    time: bool,
) -> i32 {
    let mode = mode.as_str();
    let Some(v) = ask_manager(ctl, &format!("invalidate {mode} {index} {name}")) else {
        return 1;
    };
    match serde_json::from_value::<Outcome>(v) {
        Ok(out) if time => {
            println!(
                "{} (INVALIDATE ioctl {:.1} us)",
                outcome_line(name, index, &out),
                out.ioctl_ns as f64 / 1000.0
            );
            0
        }
        Ok(out) => {
            println!("{}", outcome_line(name, index, &out));
            0
        }
        Err(e) => {
            eprintln!("wfsctl: bad answer from manager: {e}");
            1
        }
    }
}

/// Sends "VERB ARG" to the manager, which answers ok or an error:
///
/// * `wfsctl forget NAME`: the kernel forgets its cached lookup of NAME;
/// * `wfsctl disconnect PEER`: the manager closes its connection to PEER;
///   the cluster connects again and the page protocol carries on (tests
///   of dropped connections);
/// * `wfsctl null-read on|off`: for benchmarks, the manager answers READ
///   without reading the page (the paper's null page fault). A manager
///   takes `on` only when started with `--debug-switches`.
fn ask_one(ctl: &Path, verb: &str, arg: &str) -> i32 {
    match ask_manager(ctl, &format!("{verb} {arg}")) {
        Some(_) => 0,
        None => 1,
    }
}

fn cmd_kstatus(dev: &Path) -> i32 {
    if print_kernel(dev, false) { 0 } else { 1 }
}

// ---------------------------------------------------------------------------
// wait
// ---------------------------------------------------------------------------

/// What is still missing for `wait`, or an empty list when ready.
fn missing(s: &StatusReport, peers: bool) -> Vec<String> {
    let mut m = Vec::new();
    // Without a device (--no-device) there is nothing to register.
    if !s.registered && s.device.is_some() {
        m.push("manager not registered with the kernel".to_string());
    }
    if peers {
        for p in &s.peers {
            if p.state != PeerState::Connected {
                m.push(match &p.reason {
                    Some(r) => format!("peer {} {} ({r})", p.name, p.state.as_str()),
                    None => format!("peer {} {}", p.name, p.state.as_str()),
                });
            }
        }
    }
    m
}

fn cmd_wait(ctl: &Path, peers: bool, timeout_secs: f64) -> i32 {
    let timeout = Duration::from_secs_f64(timeout_secs);
    let start = Instant::now();
    loop {
        let what = match control::status(ctl, QUERY_TIMEOUT) {
            Ok(s) => {
                let m = missing(&s, peers);
                if m.is_empty() {
                    let n = s.peers.len();
                    let reg = if s.registered {
                        format!("registered (session {})", s.session)
                    } else {
                        "not registered (--no-device)".to_string()
                    };
                    if peers {
                        println!("ready: {reg}, {n}/{n} peers connected");
                    } else {
                        println!("ready: {reg}");
                    }
                    return 0;
                }
                m.join("; ")
            }
            Err(e) => e,
        };
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            eprintln!(
                "wfsctl: timed out after {:.1}s; still missing: {what}",
                elapsed.as_secs_f64()
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(200).min(timeout - elapsed));
    }
}

// ---------------------------------------------------------------------------
// probe-register
// ---------------------------------------------------------------------------

/// Drops to `uid` (and gid `uid`, no supplementary groups). For a non-zero
/// uid this also clears every capability.
fn drop_to_uid(uid: u32) -> Result<(), String> {
    let last = || std::io::Error::last_os_error();
    // SAFETY: plain syscalls; setgroups gets an empty list.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("setgroups: {}", last()));
        }
        if libc::setgid(uid) != 0 {
            return Err(format!("setgid({uid}): {}", last()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid({uid}): {}", last()));
        }
    }
    Ok(())
}

/// Result of one registration attempt: `Ok(reply)` or the errno.
fn probe(dev: &Path, req: &Register) -> (Result<Register, i32>, &'static str) {
    let f = match device::open(dev) {
        Ok(f) => f,
        Err(e) => return (Err(e.raw_os_error().unwrap_or(libc::EIO)), "open"),
    };
    let r = device::ioctl_register(f.as_raw_fd(), req);
    // Closing the descriptor right away unregisters on success.
    drop(f);
    (r, "ioctl")
}

/// `wfsctl probe-register`: `req` (as root, or as `as_uid`); exit 0 iff
/// the result is `want` (0: ok, or an errno).
fn cmd_probe(dev: &Path, req: &Register, as_uid: Option<u32>, want: i32) -> i32 {
    if let Some(uid) = as_uid
        && let Err(e) = drop_to_uid(uid)
    {
        eprintln!("wfsctl: cannot switch to uid {uid}: {e}");
        return 1;
    }
    let (res, stage) = probe(dev, req);
    let got = match res {
        Ok(r) => {
            println!("register: ok");
            println!(
                "session {} max_inflight {} pool_slots {} timeout_ms {} abi {}",
                r.session, r.max_inflight, r.pool_slots, r.timeout_ms, r.abi_version
            );
            0
        }
        Err(e) => {
            if stage == "open" {
                println!(
                    "register: {} [open {} failed]",
                    device::describe_errno(e),
                    dev.display()
                );
            } else {
                println!("register: {}", device::describe_errno(e));
            }
            e
        }
    };
    if got == want {
        0
    } else {
        let name = |e: i32| {
            if e == 0 {
                "ok".to_string()
            } else {
                device::errno_name(e)
            }
        };
        eprintln!("wfsctl: expected {}, got {}", name(want), name(got));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfs_manager::cluster::{PeerSnapshot, Role};

    fn report(registered: bool, device: bool) -> StatusReport {
        StatusReport {
            host: "h1".into(),
            cluster: "c".into(),
            pid: 57,
            listen: "10.0.0.1:7070".into(),
            device: device.then(|| "/dev/wfs".to_string()),
            registered,
            abi_version: 1,
            session: 3,
            max_inflight: 64,
            pool_slots: 256,
            timeout_ms: 5000,
            transport: None,
            peers: vec![
                PeerSnapshot {
                    name: "h2".into(),
                    addr: "10.0.0.2:7070".into(),
                    role: Role::Initiator,
                    state: PeerState::Connected,
                    reason: None,
                    remote: None,
                    health: Some(wfs_manager::cluster::PeerHealth {
                        state: "rejoined".into(),
                        incarnation: Some(0xab),
                        pages: 3,
                        read_copies: 2,
                    }),
                },
                PeerSnapshot {
                    name: "h3".into(),
                    addr: "10.0.0.3:7070".into(),
                    role: Role::Initiator,
                    state: PeerState::Refused,
                    reason: Some("cluster name mismatch".into()),
                    remote: None,
                    health: None,
                },
            ],
            upcalls: Vec::new(),
            protocol: None,
            costs: Vec::new(),
            messages: Vec::new(),
            control_refused: 0,
        }
    }

    #[test]
    fn stats_table() {
        let mut r = report(true, true);
        r.upcalls = vec![wfs_manager::upcall::OpStats {
            op: "READ".into(),
            count: 12,
            errors: 1,
            mean_ns: 40_250,
            max_ns: 310_000,
            p50_ns: 31_007,
            p99_ns: 309_759,
        }];
        assert_eq!(
            stats_lines(&r),
            vec![
                "upcall        count   errors      mean_us       max_us       p50_us       p99_us",
                "READ             12        1         40.2        310.0         31.0        309.8"
            ]
        );
        // What the scripts read keeps its place: the count is the second
        // field (tests/qemu's stat_of), the mean the fourth
        // (tools/bench-report.py).
        let f: Vec<String> = stats_lines(&r)[1]
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            (f[0].as_str(), f[1].as_str(), f[3].as_str()),
            ("READ", "12", "40.2")
        );
        r.protocol = Some(wfs_manager::engine::ProtocolStats {
            sent: 5,
            received: 6,
            resent: 1,
            connections: 2,
            pages_in: 3,
            pages_out: 4,
            pages_home: 1,
            pages_failed: 2,
            pages_lost: 7,
            peers_dead: 1,
            fencings: 3,
            busy_retries: 0,
            disk_writes: 9,
            disk_syncs: 4,
            read_copies: 5,
            upgrades: 2,
            refaults: 1,
            prefetched: 8,
            prefetch_hits: 6,
            prefetch_unread: 2,
            views: 4,
            locks: 9,
            locks_granted: 5,
            locks_refused: 2,
            locks_failed: 1,
            locks_undone: 1,
            lock_waits: 3,
            sizes: 6,
            sizes_done: 3,
            sizes_refused: 2,
            shrinks: 5,
            sizes_failed: 1,
            sizes_told: 8,
            sizes_heard: 4,
            times_asked: 11,
            creates: 7,
            creates_placed: 4,
            creates_failed: 2,
            unlinks: 3,
            unlinks_failed: 1,
            renames: 6,
            renames_failed: 2,
            opens: 12,
            opens_failed: 1,
            files_kept: 2,
            times_set: 5,
            releases_stale: 3,
            refused_from_peers: 4,
            unexpected_from_peers: 2,
        });
        r.transport = Some(wfs_manager::cluster::TransportStats {
            transport: "noise".into(),
            handshakes_refused: 3,
            records_rejected: 1,
        });
        r.costs = vec![wfs_manager::costs::StageStats {
            stage: "fetch".into(),
            count: 4,
            total_ns: 2_000_500,
            max_ns: 900_000,
            p50_ns: 450_100,
            p99_ns: 899_800,
        }];
        assert_eq!(
            stats_lines(&r)[2..],
            [
                "peer messages: sent 5, received 6, sent again after a reconnection 1; connections 2",
                "pages: in 3, out 4, home after their READ gave up 1, failed (owner's disk read) 2; invalidations retried while busy 0",
                "failures: peers taken for dead 1, pages lost with them 7; fenced off a peer's pages 3 times",
                "owner's disk: pages written 9 in 4 flushes (fdatasync)",
                "read replication: read-only copies in 5, upgrades granted in place 2, refaulted 1",
                "prefetch: pages fetched ahead of a sequential scan 8, READs answered from them 6, dropped unread 2",
                "views: pages read for a view 4",
                "locks: asked 9, granted 5, refused (held, deadlock) 2, failed (owner gone, too long) 1, grants undone (request given up) 1; waits at this owner 3",
                "sizes: asked 6, done 3, refused 2, failed (owner gone, disk, too long) 1; shrinks of this owner's files 5; new sizes sent to peers 8, heard from owners 4; times asked of owners 11",
                "names: created 7 (failed, exists included 2; made at another host by a placement rule 4), unlinked 3 (failed 1), renamed 6 (failed, EXDEV included 2); opened 12 (failed 1; closes of an earlier manager's opens ignored 3); files of this owner kept open after their name went 2; times set 5",
                "from peers: refused (what no correct peer sends) 4, dropped (not in the protocol's state) 2",
                "transport: noise; key exchanges refused 3, connections closed on a record that failed authentication 1",
                "cost fetch count 4 mean_us 500.1 total_us 2000.5 max_us 900.0 p50_us 450.1 p99_us 899.8"
            ]
        );
        let j: serde_json::Value = serde_json::from_str(&stats_json(&r).unwrap()).unwrap();
        assert_eq!(j["upcalls"][0]["op"], "READ");
        assert_eq!(j["upcalls"][0]["p50_ns"], 31_007);
        assert_eq!(j["upcalls"][0]["p99_ns"], 309_759);
        assert_eq!(j["upcalls"][0]["max_ns"], 310_000);
        assert_eq!(j["costs"][0]["p99_ns"], 899_800);
        assert_eq!(j["protocol"]["creates"], 7);
        assert_eq!(j["transport"]["transport"], "noise");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stats_json(&report(false, false)).unwrap())
                .unwrap(),
            serde_json::json!({"upcalls": [], "protocol": null, "transport": null, "costs": [], "messages": []})
        );
    }

    #[test]
    fn stats_message_lines() {
        let mut r = report(true, true);
        let msg = |kind: &str, count, mean_ns, max_ns, p50_ns, p99_ns| {
            wfs_manager::messages::MessageStats {
                kind: kind.into(),
                count,
                mean_ns,
                max_ns,
                p50_ns,
                p99_ns,
            }
        };
        r.messages = vec![
            msg("Fetch", 12, 40_120, 300_200, 35_000, 300_200),
            msg("Data", 3, 9_960, 20_000, 8_060, 19_900),
        ];
        r.costs = vec![wfs_manager::costs::StageStats {
            stage: "serve".into(),
            count: 1,
            total_ns: 1000,
            max_ns: 1000,
            p50_ns: 1000,
            p99_ns: 1000,
        }];
        // After the table and the cost lines, one line per kind received.
        assert_eq!(
            stats_lines(&r)[1..],
            [
                "cost serve count 1 mean_us 1.0 total_us 1.0 max_us 1.0 p50_us 1.0 p99_us 1.0",
                "message Fetch count 12 mean_us 40.1 max_us 300.2 p50_us 35.0 p99_us 300.2",
                "message Data count 3 mean_us 10.0 max_us 20.0 p50_us 8.1 p99_us 19.9"
            ]
        );
        let j: serde_json::Value = serde_json::from_str(&stats_json(&r).unwrap()).unwrap();
        assert_eq!(j["messages"][0]["kind"], "Fetch");
        assert_eq!(j["messages"][0]["count"], 12);
        assert_eq!(j["messages"][1]["kind"], "Data");
        assert_eq!(j["messages"][1]["p50_ns"], 8_060);
        assert_eq!(j["messages"][1]["p99_ns"], 19_900);
        assert_eq!(j["messages"][1]["max_ns"], 20_000);
        assert_eq!(j["messages"][1]["mean_ns"], 9_960);
    }

    #[test]
    fn formats() {
        let r = report(true, true);
        assert_eq!(
            registered_line(&r),
            "registered: yes (abi 1, session 3, pid 57)"
        );
        assert_eq!(
            registered_line(&report(false, false)),
            "registered: no (--no-device, pid 57)"
        );
        assert_eq!(
            peer_line(&r.peers[0]),
            "peer h2 10.0.0.2:7070 connected; rejoined (incarnation 0xab), holds 3 of this host's pages"
        );
        assert_eq!(
            peer_line(&r.peers[1]),
            "peer h3 10.0.0.3:7070 refused (cluster name mismatch)"
        );
        // (h3 has no health: never heard of.)
        assert_eq!(
            read_copies_line(&r).as_deref(),
            Some("read-only copies of this host's pages: h2 2")
        );
        let st = Status {
            abi_version: ABI_VERSION,
            registered: 1,
            manager_pid: 57,
            inflight: 2,
            session: 3,
            mounts: 1,
            pool_free: 60,
        };
        assert_eq!(
            kernel_lines(&st),
            vec!["kernel: manager registered pid 57 session 3 inflight 2 mounts 1 pool_free 60"]
        );
        let st = Status {
            registered: 0,
            abi_version: ABI_VERSION + 1,
            ..st
        };
        assert_eq!(
            kernel_lines(&st),
            vec![
                "kernel: no manager registered session 3 inflight 2 mounts 1 pool_free 60"
                    .to_string(),
                format!(
                    "kernel: abi version {} differs from wfsctl's {ABI_VERSION}",
                    ABI_VERSION + 1
                )
            ]
        );
        let page = |present, dirty, writable, written| Outcome {
            present,
            dirty,
            writable,
            written,
            ioctl_ns: 0,
        };
        assert_eq!(
            outcome_line("f", 3, &page(false, false, false, false)),
            "page 3 of f: not cached"
        );
        assert_eq!(
            outcome_line("f", 0, &page(true, false, false, false)),
            "page 0 of f: clean, read-only"
        );
        assert_eq!(
            outcome_line("f", 1, &page(true, true, true, true)),
            "page 1 of f: dirty, read-write; dirty data written to the export"
        );
    }

    #[test]
    fn wait_conditions() {
        assert!(missing(&report(true, true), false).is_empty());
        assert!(missing(&report(false, false), false).is_empty());
        assert_eq!(
            missing(&report(false, true), false),
            vec!["manager not registered with the kernel"]
        );
        assert_eq!(
            missing(&report(true, true), true),
            vec!["peer h3 refused (cluster name mismatch)"]
        );
    }
}
