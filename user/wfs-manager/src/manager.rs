//! Start-up and shut-down of the manager process.

use std::sync::Arc;

use wfs_abi::ABI_VERSION;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::control::{ControlServer, StatusReport};
use crate::device::{self, Device};
use crate::protocol::Coherence;
use crate::signals::{self, Signals};
use crate::wlog;

pub use crate::cli::Args;

/// Parses the arguments (without the program name): [`crate::cli::parse`].
pub fn parse_args(args: &[String]) -> Result<Args, clap::Error> {
    crate::cli::parse(args)
}

/// The first kernel ABI whose UPGRADE may be answered "refault", which
/// read replication needs. (Today's kernels register only a manager of
/// their own ABI, so this guards a future kernel that takes older ones.)
const MRSW_ABI: u32 = 4;

/// How long a manager stopped with SIGTERM or SIGINT waits for the pages
/// it hands back to reach their owners' disks.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Threads reading kernel requests.
const UPCALL_WORKERS: usize = 4;

/// A number that differs every time a manager starts (time and pid), so
/// peers tell a restarted manager from a reconnected one.
fn incarnation() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 40)
}

/// The mount points of WFS in this mount namespace.
fn wfs_mounts() -> Vec<std::path::PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            // The kernel escapes space, tab, newline and backslash as \ooo.
            (fstype == "wfs").then(|| unescape_mount_path(dir))
        })
        .collect()
}

fn unescape_mount_path(s: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(
                    d.iter()
                        .fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out).into()
}

/// Writes back, through this manager, the pages a manager that died left
/// dirty in the kernel (their grants were revoked with it, the data kept):
/// `syncfs` on every WFS mount. Their owners take the data only if nobody
/// was served the page since; either way (unless the write failed: then
/// the kernel keeps the page dirty and writes it again) the engine then
/// takes each page out of the kernel, so that no copy this manager never
/// granted stays readable. Runs on its own thread: the WRITEs it causes
/// are served by the upcall workers.
fn flush_left_pages() -> bool {
    let mut ok = true;
    for dir in wfs_mounts() {
        let Ok(f) = std::fs::File::open(&dir) else {
            ok = false;
            continue;
        };
        // SAFETY: syncfs on a descriptor `f` keeps open for the call.
        let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
        if rc != 0 {
            ok = false;
            wlog!(
                "syncfs {}: {} (pages a dead manager left dirty may stay)",
                dir.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    ok
}

/// Runs the manager; returns the process exit code.
pub fn run(argv: &[String]) -> i32 {
    // Events go to stderr from now on, filtered by WFS_LOG and WFS_TRACE.
    crate::log::init();
    let args = match parse_args(argv) {
        Ok(a) => a,
        // Help and version go to stdout (exit 0), usage errors to stderr
        // (exit 2).
        Err(e) => return crate::cli::report(&e, &mut crate::cli::command()),
    };
    let cfg = match Config::load(&args.config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            wlog!("config error: {e}");
            return 1;
        }
    };
    crate::log::set_host(&cfg.host);

    // Signals first, so a SIGTERM during start-up is not lost.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            wlog!("cannot install signal handlers: {e}");
            return 1;
        }
    };

    // The registration lives as long as `dev`: closing the descriptor
    // unregisters in the kernel.
    let dev: Option<Device> = if args.no_device {
        wlog!("--no-device: not registering with the kernel");
        None
    } else {
        match device::register(&cfg.device) {
            Ok(d) => {
                wlog!(
                    "registered with {}: abi {} session {} max_inflight {} pool_slots {} timeout_ms {}",
                    cfg.device.display(),
                    d.reg.abi_version,
                    d.reg.session,
                    d.reg.max_inflight,
                    d.reg.pool_slots,
                    d.reg.timeout_ms
                );
                if d.reg.abi_version != ABI_VERSION {
                    wlog!(
                        "warning: kernel answered abi {} (manager speaks {ABI_VERSION})",
                        d.reg.abi_version
                    );
                }
                // Read replication needs UPGRADE's "refault" answer (ABI 4).
                let mrsw = cfg.coherence == Coherence::Mrsw
                    || cfg.files.iter().any(|(_, c)| *c == Coherence::Mrsw);
                if mrsw && d.reg.abi_version < MRSW_ABI {
                    wlog!(
                        "coherence \"mrsw\" needs a kernel of abi {MRSW_ABI} or later (this one answered abi {}); not starting",
                        d.reg.abi_version
                    );
                    return 1;
                }
                Some(d)
            }
            Err(e) => {
                wlog!("{e}");
                return 1;
            }
        }
    };

    // What the kernel has open now is this manager's to count: asked
    // before any OPEN is answered (the upcall workers start later).
    // A listing that failed may still have made those opens this
    // manager's (a copy-out fault): not knowing them, it would take its
    // own later opens of the same files off its counts. So it stops.
    let open_files = match dev.as_ref().map(|d| device::ioctl_opens(d.fd())) {
        Some(Ok(files)) => files,
        Some(Err(e)) => {
            wlog!("cannot list the files this host has open (IOC_OPENS): errno {e}; not starting");
            return 1;
        }
        None => Vec::new(),
    };
    wlog!(
        "starting: cluster {} listen {} control {} peers [{}] pid {}; transport {}",
        cfg.cluster,
        cfg.listen,
        cfg.control.display(),
        cfg.peers
            .iter()
            .map(|p| format!(
                "{} {} ({})",
                p.name,
                p.addr,
                if cfg.initiates_to(&p.name) {
                    "we dial"
                } else {
                    "it dials"
                }
            ))
            .collect::<Vec<_>>()
            .join(", "),
        std::process::id(),
        match &cfg.transport {
            crate::config::Transport::Noise(k) => format!(
                "noise (authenticated, encrypted), public key {}",
                crate::secure::encode_key(&k.public)
            ),
            crate::config::Transport::Plain =>
                "PLAIN: peers are not authenticated and frames travel in the clear (trusted networks only)".to_string(),
        }
    );

    // Claim the control socket before touching the network, so that a
    // second manager started by mistake with the same configuration stops
    // here instead of disturbing the first one's peer connections.
    let bound = match ControlServer::bind(&cfg.control, cfg.control_group.clone()) {
        Ok(b) => b,
        Err(e) => {
            wlog!("{e}");
            return 1;
        }
    };

    // What serves the kernel: the export, the pool of page slots mapped
    // from /dev/wfs, and the invalidator; the engine runs the page protocol
    // and the name service over them and the cluster.
    // (The export directory is opened once, here: every name in it is
    // resolved beneath it with no symbolic link followed, which a kernel
    // without openat2 cannot do; the manager then stops.)
    let export = match dev
        .as_ref()
        .map(|_| crate::export::Export::checked(&cfg.export, cfg.grant))
        .transpose()
    {
        Ok(e) => e.map(|e| {
            e.set_root_squash(cfg.root_squash);
            Arc::new(e)
        }),
        Err(e) => {
            wlog!("{e}");
            return 1;
        }
    };
    let served = dev.as_ref().zip(export).map(|(d, export)| {
        let pool = match crate::pool::Pool::map(d.fd(), d.reg.pool_slots) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                wlog!("cannot map the netmem pool: {e}; page requests will fail");
                None
            }
        };
        let inval = Arc::new(crate::invalidate::Invalidator::new(
            d.fd(),
            d.reg.pool_slots,
            pool.clone(),
            export.clone(),
        ));
        (export, pool, inval)
    });
    let stats = Arc::new(crate::upcall::Stats::default());
    let counters = Arc::new(crate::engine::Counters::default());
    let incarnation = incarnation();
    let deaths_file = crate::deaths::Deaths::path(&cfg.state, &cfg.cluster, &cfg.host);
    // What must survive this manager: the deaths it declares, and which
    // incarnation it is. A state directory that cannot be written stops it
    // here, before it recovers or serves anything.
    // (The incarnation's file, written at each start, is in the same
    // directory as the deaths'.)
    let state = crate::deaths::Deaths::load(deaths_file.clone()).and_then(|d| {
        crate::deaths::swap_incarnation(&cfg.state, &cfg.cluster, &cfg.host, incarnation)
            .map(|p| (d, p))
    });
    let (deaths, previous) = match state {
        Ok(s) => s,
        Err(e) => {
            wlog!(
                "cannot keep this host's state in {} ({e}); state in the configuration must name a directory this manager can write, holding only its files",
                cfg.state.display()
            );
            bound.remove();
            return 1;
        }
    };
    // The engine exists before the cluster, which reports to it; it
    // handles no network event before it has the cluster.
    let engine = match (dev.as_ref(), served.as_ref()) {
        (Some(d), Some((export, Some(pool), inval))) => {
            Some(crate::engine::Handle::new(crate::engine::Engine::new(
                &cfg,
                d.fd(),
                crate::engine::Parts {
                    export: export.clone(),
                    pool: pool.clone(),
                    inval: inval.clone(),
                    stats: stats.clone(),
                    counters: counters.clone(),
                    read_deadline: crate::engine::READ_DEADLINE,
                    kernel_timeout: std::time::Duration::from_millis(u64::from(d.reg.timeout_ms)),
                    kernel_session: d.reg.session,
                    open_files: open_files.clone(),
                    incarnation,
                    previous,
                    deaths,
                },
            )))
        }
        _ => None,
    };
    let with_engine = engine.is_some();
    let started = match &engine {
        Some(h) => h.attach(|sink| Cluster::start_with(cfg.clone(), incarnation, Some(sink))),
        None => Cluster::start_with(cfg.clone(), incarnation, None),
    };
    let cluster = match started {
        Ok(c) => c,
        Err(e) => {
            wlog!("cannot listen on {}: {e}", cfg.listen);
            bound.remove();
            return 1;
        }
    };
    if let Some(h) = &engine
        && let Err(e) = h.start_ticker().and_then(|()| h.start_committer())
    {
        wlog!("cannot start the engine's threads: {e}");
        return 1;
    }

    let reg = dev.as_ref().map(|d| d.reg);
    let status = {
        let cfg = cfg.clone();
        let cluster = cluster.clone();
        let stats = stats.clone();
        let counters = counters.clone();
        let has_device = dev.is_some();
        let engine = engine.clone();
        let device = dev.as_ref().map(|d| d.path.display().to_string());
        Arc::new(move || StatusReport {
            host: cfg.host.clone(),
            cluster: cfg.cluster.clone(),
            pid: std::process::id(),
            listen: cluster.local_addr().to_string(),
            device: device.clone(),
            registered: reg.is_some(),
            abi_version: reg.map(|r| r.abi_version).unwrap_or(ABI_VERSION),
            session: reg.map(|r| r.session).unwrap_or(0),
            max_inflight: reg.map(|r| r.max_inflight).unwrap_or(0),
            pool_slots: reg.map(|r| r.pool_slots).unwrap_or(0),
            timeout_ms: reg.map(|r| r.timeout_ms).unwrap_or(0),
            transport: Some(cluster.transport_stats()),
            peers: {
                let mut peers = cluster.snapshot();
                if let Some(h) = &engine {
                    for (name, health) in h.peer_health() {
                        if let Some(p) = peers.iter_mut().find(|p| p.name == name) {
                            p.health = Some(health);
                        }
                    }
                }
                peers
            },
            upcalls: if has_device {
                stats.snapshot()
            } else {
                Vec::new()
            },
            control_refused: crate::control::refused(),
            protocol: with_engine.then(|| counters.snapshot()),
            costs: if has_device {
                stats.costs.snapshot()
            } else {
                Vec::new()
            },
            messages: if with_engine {
                counters.messages.snapshot()
            } else {
                Vec::new()
            },
        })
    };
    let leaver = engine.clone();
    let control = bound.serve(
        status,
        crate::control::Handlers {
            inval: served.as_ref().map(|s| s.2.clone()),
            cluster: Some(cluster.clone()),
            engine: leaver.clone(),
            debug_switches: args.debug_switches,
        },
    );
    if args.debug_switches {
        wlog!("--debug-switches: the control socket's null-read may be turned on");
    }
    if let (Some(d), Some((export, pool, _))) = (dev.as_ref(), served) {
        let server = match (engine, pool) {
            (Some(h), pool) => crate::upcall::Server::Engine(h.upcall_sink(), export, pool),
            (None, pool) => {
                // (The single-host server counts them in the export.)
                for &(file, count) in &open_files {
                    for _ in 0..count {
                        if let Err(e) = export.opened(file) {
                            wlog!("open file {file:#x} is not in the export: errno {e}");
                            break;
                        }
                    }
                }
                crate::upcall::Server::Local(export, pool, d.reg.session)
            }
        };
        crate::upcall::serve(d.fd(), server, stats.clone(), UPCALL_WORKERS);
        wlog!(
            "serving upcalls with {UPCALL_WORKERS} workers from {}",
            cfg.export.display()
        );
        if let Some(h) = leaver.clone() {
            let _ = std::thread::Builder::new()
                .name("flush-left".into())
                .spawn(move || h.left_pages_flushed(flush_left_pages()));
        }
    }
    wlog!(
        "ready: listening on {}, control socket {}",
        cluster.local_addr(),
        control.path().display()
    );

    let sig = signals.wait();
    wlog!("received {}, shutting down", signals::name(sig));
    if sig == signals::RESTART {
        // Taken for dead by a peer: nothing to hand back (its pages were
        // served anew); the kernel revokes this session's grants when the
        // device closes, and a new incarnation starts in this process.
        cluster.shutdown();
        control.remove();
        drop(dev);
        return restart(argv);
    }
    if let Some(h) = &leaver {
        h.leave(LEAVE_TIMEOUT);
    }
    cluster.shutdown();
    control.remove();
    drop(dev);
    wlog!("exiting");
    0
}

/// Replaces this process with a new run of the manager, same arguments
/// (a new incarnation); returns the exit code if that fails.
fn restart(argv: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    wlog!("restarting as a new incarnation");
    let e = std::process::Command::new("/proc/self/exe")
        .args(argv)
        .exec();
    wlog!("cannot restart: {e}");
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths() {
        assert_eq!(
            unescape_mount_path("/wfs"),
            std::path::PathBuf::from("/wfs")
        );
        assert_eq!(
            unescape_mount_path("/a\\040b\\134c\\9"),
            std::path::PathBuf::from("/a b\\c\\9")
        );
    }
}
