//! The WFS per-host manager.
//!
//! The manager registers itself with `wfs.ko` through `/dev/wfs`, keeps a
//! TCP connection to every other host of the cluster and answers `wfsctl`
//! on a unix control socket.
//!
//! Module map:
//!
//! * [`cli`]: the `wfs-manager` command line (`clap` derive), shared with
//!   the man page generator.
//! * [`config`]: the TOML configuration and its validation.
//! * [`device`]: `/dev/wfs`: opening it, `IOC_REGISTER`, `IOC_STATUS`,
//!   errno names.
//! * [`upcall`]: worker threads reading the kernel's requests from
//!   `/dev/wfs` and handing them to the engine.
//! * [`engine`]: the thread that runs the page protocol and the name
//!   service against the kernel, the network and the export directory.
//! * [`commit`]: group commit of the owner's disk writes (one flush per
//!   file per batch, off the engine's lock).
//! * [`export`]: the export directory as LOOKUP, GETATTR and READDIR see it.
//! * [`invalidate`]: taking pages and names away from this host's kernel
//!   (`IOC_INVALIDATE`, `IOC_FORGET`), with dirty pages written home.
//! * [`locks`]: the owner's table of `fcntl` and `flock` locks (pure).
//! * [`lockserv`]: the lock service: the kernel's LOCK requests decided by
//!   each file's owner's table, the messages between managers that carry
//!   them, undoing grants the kernel refused, deaths and deadlines (pure;
//!   run by the [`engine`]).
//! * [`sizes`]: file sizes set by each file's owner: SETSIZE asked of the
//!   owner, and every growth told to every host before it is acknowledged
//!   (pure bookkeeping; run by the [`engine`]).
//! * [`wire`]: framing and encoding of the manager-to-manager protocol.
//!   Pure: no sockets, no threads.
//! * [`cluster`]: peer connections: who dials whom, handshake, heartbeat,
//!   reconnection.
//! * [`protocol`]: the page-ownership protocol between hosts, as a pure
//!   state machine (events in, actions out), proven by the simulation in
//!   `tests/sim.rs`, run by the [`engine`].
//! * [`session`]: a resumable, exactly-once message stream per peer, so
//!   that the protocol survives dropped connections.
//! * [`names`]: LOOKUP across the cluster: a broadcast that finds a file's
//!   one owner, refuses names exported twice, and caches the answer.
//! * [`deaths`]: the peers' incarnations this host took for dead, kept on
//!   disk so that a restarted manager still refuses them.
//! * [`control`]: the control socket and the status report it serves.
//! * [`costs`]: the time spent in each stage of moving a page.
//! * [`latency`]: the distributions (percentiles) of service times.
//! * [`messages`]: the time spent handling each kind of peer message.
//! * [`signals`]: SIGTERM/SIGINT through a self-pipe.
//! * [`log`]: one-line-per-event logging to stderr.
//! * `testkit`: helpers for the workspace's integration tests.

pub mod cli;
pub mod cluster;
pub mod commit;
pub mod config;
pub mod control;
pub mod costs;
pub mod deaths;
pub mod device;
pub mod engine;
pub mod export;
pub mod invalidate;
pub mod latency;
pub mod locks;
pub mod lockserv;
pub mod log;
pub mod manager;
pub mod messages;
pub mod names;
pub mod namespace;
pub mod pool;
pub mod prefetch;
pub mod protocol;
pub mod secure;
pub mod session;
pub mod signals;
pub mod sizes;
#[doc(hidden)]
pub mod testkit;
pub mod upcall;
pub mod views;
pub mod wire;
