//! Connections to the other managers of the cluster.
//!
//! # Who connects to whom
//!
//! Every pair of hosts shares exactly one TCP connection. To avoid two
//! connections racing each other, the rule is deterministic and the same on
//! both sides: **the host whose name sorts lower (byte-wise) initiates the
//! connection; the other only accepts it** (see
//! [`crate::config::initiator_rule`]). An initiator dials with a back-off
//! of 100 ms doubling up to 2 s, forever, and dials again whenever the
//! connection drops. An acceptor refuses a HELLO from a configured peer
//! that should have been waiting for it.
//!
//! # Handshake
//!
//! The initiator sends HELLO (magic, protocol version, cluster, host). The
//! acceptor checks magic, version, that the cluster name is its own, that
//! the host is one of its configured peers and that this host is the one
//! that should initiate; it answers HELLO_ACK (its name and version), or
//! REFUSE with a reason and closes. The initiator checks HELLO_ACK in turn
//! and answers with REFUSE and a reason (an incarnation it took for dead,
//! another version, another name) or with the connection's first frame (a
//! PING); only then does the acceptor count the connection as up, so a host
//! never counts a peer that is about to refuse it (towards a majority, say).
//! A new connection from a peer that is still considered connected replaces
//! the old one (the peer restarted).
//!
//! # Sessions
//!
//! Both HELLO and HELLO_ACK carry the sender's *incarnation*, a number
//! drawn anew every time a manager starts. After a handshake the cluster
//! reports the connection to the manager's engine ([`NetEvent::Up`]), hands
//! it every `PAGE` frame that arrives on it, and reports its end
//! ([`NetEvent::Down`]). The engine writes on one connection at a time
//! ([`Cluster::send_on`]), so nothing it sends for a connection that has
//! since been replaced lands on the new one ahead of its resend.
//!
//! # Liveness
//!
//! Both sides send PING every [`HEARTBEAT_INTERVAL`] and answer PING with
//! PONG; a connection on which nothing arrives for [`DEAD_AFTER`] is
//! closed. A malformed or oversized frame closes the connection, with a log
//! line.
//!
//! # Writing
//!
//! Nothing that sends on a connection waits for the network. When nothing
//! waits to be written, the sender writes its frame itself, as far as the
//! socket's buffer takes it without waiting (`MSG_DONTWAIT`: no switch to
//! another thread on the common path); otherwise, and for the rest of a
//! frame written in part, the frame goes into the connection's outbox
//! (`Outbox`), whose writer thread writes the frames one by one, with the
//! heartbeat's PINGs between them (a PONG or a bare acknowledgement goes
//! ahead of waiting frames). A peer that stops reading
//! (its manager stopped with `SIGSTOP`, a dead link) makes a write block,
//! and one that blocks for [`WRITE_TIMEOUT`] closes the connection, its
//! outbox with it. What the engine sent on a closed connection stays in
//! its session and is sent again on the next one. An outbox holds no more
//! than its session: every frame in it is one the peer has not
//! acknowledged (or a bare acknowledgement, a PONG), and the engine takes
//! a peer that does not catch up with its acknowledgements for its
//! failure time-out for dead.
//!
//! # Batches
//!
//! A connection's reader takes in what has arrived through a buffer of
//! `READ_BUFFER` bytes, one system call for many frames, and hands each
//! `PAGE` frame over with `more` set when the next one is in the buffer
//! already (up to `HOLD_FRAMES` in a row): the engine then handles them
//! together, and the frames they cause, held until it is done
//! ([`Cluster::send_all_on`]), go out a connection at a time in one write.
//!
//! Threads: one accept thread (at most [`Cluster::max_incoming`]
//! connections accepted at a time), one thread per incoming handshake
//! (which then reads that connection), one dialer thread per peer this
//! host initiates to (which also reads its connection), and one writer
//! thread per live connection. All sockets are blocking with time-outs.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Config, Peer, Transport};
use crate::secure::{self, Opener, RecordReader, Sealer};
use crate::session;
use crate::wire::{self, Frame, PROTOCOL_VERSION, PeerMsg, WireError};
use crate::wlog;

/// How often a PING is sent on every connection.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// A connection on which nothing arrived for this long is dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// Bytes a connection's reader takes from its socket at once: some
/// sixteen page messages.
const READ_BUFFER: usize = 64 * 1024;
/// Frames a connection's reader hands over in a row with `more` at most.
const HOLD_FRAMES: usize = 64;
/// Bytes of frames [`Cluster::send_all_on`] writes together, about: it
/// starts a new write once one reaches this size.
const BATCH_BYTES: usize = 256 * 1024;
/// Time allowed for the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// First reconnection delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Time allowed for any single write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the cluster tells the engine about peer `peer` (an index into the
/// configuration's peers) and its connection `conn`.
#[derive(Debug)]
pub enum NetEvent {
    /// A connection completed its handshake; the peer runs incarnation
    /// `incarnation`. `since`: when this host sent its part of the
    /// handshake that the peer heard and accepted (a lease renewal): its
    /// HELLO if it dialed, else its HELLO_ACK, which the dialer answered
    /// with its first frame rather than REFUSE.
    Up {
        peer: usize,
        conn: u64,
        incarnation: u64,
        since: Instant,
    },
    /// The peer answered a PING this host sent at `since`: it heard from
    /// this host at or after then (a lease renewal).
    Renewed { peer: usize, since: Instant },
    /// The peer refused this host (`reason`), in a handshake or after it.
    Refused { peer: usize, reason: String },
    /// A session frame arrived on it; `more`: another is in already (the
    /// reader takes it without waiting), so the sink may hold this one and
    /// handle both together.
    Frame {
        peer: usize,
        conn: u64,
        frame: session::Frame<PeerMsg>,
        more: bool,
    },
    /// It is gone.
    Down { peer: usize, conn: u64 },
}

/// Where the cluster reports [`NetEvent`]s.
pub type EventSink = Box<dyn Fn(NetEvent) + Send + Sync>;

/// State of one peer, as reported by `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Not connected; this host is dialing it (or, as acceptor, has not
    /// heard from it yet).
    Connecting,
    /// Handshake done, heartbeat alive.
    Connected,
    /// The last handshake was refused (by either side); retrying.
    Refused,
    /// Was connected, the connection dropped; waiting for the peer to dial
    /// again (acceptor side).
    Disconnected,
}

impl PeerState {
    /// Lower-case name, as in the status report.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connecting => "connecting",
            PeerState::Connected => "connected",
            PeerState::Refused => "refused",
            PeerState::Disconnected => "disconnected",
        }
    }
}

/// Which side of the connection this host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// This host dials the peer.
    Initiator,
    /// This host waits for the peer to dial.
    Acceptor,
}

/// A peer as the page protocol sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHealth {
    /// `alive`, `suspected` (no connection, not yet taken for dead),
    /// `dead` (its incarnation taken for dead, no new one yet), `rejoined`
    /// (a new incarnation after a dead one) or `unknown` (never heard of).
    pub state: String,
    /// Its manager's current (or last) incarnation.
    pub incarnation: Option<u64>,
    /// Pages of this host's files it holds, as this host's directory says.
    pub pages: u64,
    /// Read-only copies of this host's pages it holds (read replication),
    /// as this host's directory says.
    #[serde(default)]
    pub read_copies: u64,
}

/// A peer's state as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSnapshot {
    /// Peer name.
    pub name: String,
    /// Configured address.
    pub addr: String,
    /// Which side this host is.
    pub role: Role,
    /// Current state.
    pub state: PeerState,
    /// Why it is not connected (last error or refusal), if known.
    pub reason: Option<String>,
    /// What the page protocol makes of it (managers with an engine).
    #[serde(default)]
    pub health: Option<PeerHealth>,
    /// Remote address of the live connection.
    pub remote: Option<String>,
}

struct ConnHandle {
    id: u64,
    stream: TcpStream,
    outbox: Arc<Outbox>,
    remote: SocketAddr,
}

/// Frames waiting to be written to one connection. See "Writing" in the
/// module documentation.
struct Outbox {
    queue: Mutex<OutQueue>,
    wake: Condvar,
    /// The connection (written by one thread at a time; shut down by
    /// whoever finds it broken).
    stream: TcpStream,
    /// Seals frames for the wire, as they are written (in the order they
    /// go: a frame pushed ahead of others is sealed after them).
    sealer: Sealer,
}

struct OutQueue {
    /// What is left of a frame written in part, sealed (goes before
    /// anything).
    partial: Option<Vec<u8>>,
    /// Encoded frames, whole, not sealed yet.
    frames: VecDeque<Vec<u8>>,
    /// A thread is writing to the connection (the writer, or a sender
    /// writing without waiting).
    busy: bool,
    /// The connection is gone: nothing more is written.
    closed: bool,
    /// When the writer thread sends the next PING: from then on, senders
    /// queue their frames instead of writing them, so that it goes next.
    next_ping: Instant,
}

impl OutQueue {
    fn idle(&self) -> bool {
        self.partial.is_none() && self.frames.is_empty()
    }
}

/// What a write that must not wait got done.
enum Sent {
    /// All of it.
    All,
    /// The first this many bytes; the socket's buffer is full.
    Part(usize),
}

impl Outbox {
    fn new(stream: TcpStream, sealer: Sealer) -> Outbox {
        Outbox {
            queue: Mutex::new(OutQueue {
                partial: None,
                frames: VecDeque::new(),
                busy: false,
                closed: false,
                next_ping: Instant::now(),
            }),
            wake: Condvar::new(),
            stream,
            sealer,
        }
    }

    /// Queues `frame` last. Fails if the connection is closed.
    fn push(&self, frame: &Frame) -> io::Result<()> {
        self.queue(frame, false)
    }

    /// Queues `frames` last, in order, written together (one system call
    /// where the socket takes them at once). Fails if the connection is
    /// closed.
    fn push_all(&self, frames: &[Frame]) -> io::Result<()> {
        // (In writes of BATCH_BYTES or so: a PONG or a bare acknowledgement
        // waits for one at most.)
        let hint: usize = frames.iter().map(Frame::size_hint).sum();
        let mut buf = Vec::with_capacity(hint.min(BATCH_BYTES));
        for f in frames {
            f.encode_into(&mut buf);
            if buf.len() >= BATCH_BYTES {
                self.queue_encoded(std::mem::take(&mut buf), false)?;
            }
        }
        if !buf.is_empty() {
            self.queue_encoded(buf, false)?;
        }
        Ok(())
    }

    /// Queues `frame` ahead of every whole frame waiting (a PONG, a bare
    /// acknowledgement: they must not wait behind data).
    fn push_first(&self, frame: &Frame) -> io::Result<()> {
        self.queue(frame, true)
    }

    /// Whether everything queued has been written.
    fn written(&self) -> bool {
        let q = lock(&self.queue);
        q.idle() && !q.busy
    }

    /// When nothing waits and nobody writes, the caller writes `frame`
    /// itself, as far as the socket takes it without waiting (no thread
    /// switch on the common path); the writer thread writes the rest, and
    /// whatever waits.
    fn queue(&self, frame: &Frame, first: bool) -> io::Result<()> {
        self.queue_encoded(frame.encode(), first)
    }

    /// [`Outbox::queue`] for whole frames already encoded into `buf`.
    fn queue_encoded(&self, buf: Vec<u8>, first: bool) -> io::Result<()> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection closed",
            ));
        }
        if q.busy || !q.idle() || Instant::now() >= q.next_ping {
            if first {
                q.frames.push_front(buf);
            } else {
                q.frames.push_back(buf);
            }
            drop(q);
            self.wake.notify_all();
            return Ok(());
        }
        q.busy = true;
        drop(q);
        let buf = self.sealer.seal(buf);
        let sent = self.send_now(&buf);
        let mut q = lock(&self.queue);
        q.busy = false;
        match sent {
            Ok(Sent::All) => {}
            Ok(Sent::Part(n)) => q.partial = Some(buf[n..].to_vec()),
            Err(e) => {
                drop(q);
                self.close();
                return Err(e);
            }
        }
        let waiting = !q.idle();
        drop(q);
        if waiting {
            self.wake.notify_all();
        }
        Ok(())
    }

    /// Writes `buf` without waiting for room in the socket's buffer.
    fn send_now(&self, buf: &[u8]) -> io::Result<Sent> {
        use std::os::fd::AsRawFd;
        let fd = self.stream.as_raw_fd();
        let mut done = 0;
        while done < buf.len() {
            let rest = &buf[done..];
            // SAFETY: `rest` is a live slice of `rest.len()` bytes that
            // `send` only reads, and `fd` is the socket `self.stream` owns
            // for as long as `self` lives.
            let n = unsafe {
                libc::send(
                    fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n > 0 {
                done += n.unsigned_abs();
                continue;
            }
            if n == 0 {
                // (No progress: the writer thread takes the rest.)
                return Ok(Sent::Part(done));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => return Ok(Sent::Part(done)),
                _ => return Err(e),
            }
        }
        Ok(Sent::All)
    }

    /// Closes the connection: the writer stops, the reader sees the end.
    fn close(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_all();
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The writer thread: writes what waits, in order, one frame at a time
    /// (what is left of one written in part first), and a PING every
    /// [`HEARTBEAT_INTERVAL`] between two of them (the first at once: its
    /// answer renews the lease even on a connection shorter than the
    /// interval), each noted in `pings` with when it went. Ends when the
    /// connection closes or a write fails or blocks for [`WRITE_TIMEOUT`]
    /// (which closes it).
    fn write_loop(&self, pings: &Mutex<VecDeque<(u64, Instant)>>) {
        use std::io::Write as _;
        let mut seq = 0u64;
        loop {
            let next = {
                let mut q = lock(&self.queue);
                let next = loop {
                    if q.closed {
                        return;
                    }
                    let now = Instant::now();
                    if !q.busy {
                        if let Some(rest) = q.partial.take() {
                            break Some((rest, true));
                        }
                        if now >= q.next_ping {
                            break None;
                        }
                        if let Some(f) = q.frames.pop_front() {
                            break Some((f, false));
                        }
                    }
                    let wait = q
                        .next_ping
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1));
                    q = self
                        .wake
                        .wait_timeout(q, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                };
                q.busy = true;
                if next.is_none() {
                    q.next_ping = Instant::now() + HEARTBEAT_INTERVAL;
                }
                next
            };
            let frame = match next {
                Some((f, true)) => f,
                Some((f, false)) => self.sealer.seal(f),
                None => {
                    seq += 1;
                    let mut p = lock(pings);
                    // (Answers that never come must not pile up.)
                    if p.len() >= 64 {
                        p.pop_front();
                    }
                    p.push_back((seq, Instant::now()));
                    self.sealer.seal(Frame::Ping { seq }.encode())
                }
            };
            let wrote = (&self.stream).write_all(&frame);
            lock(&self.queue).busy = false;
            self.wake.notify_all();
            if wrote.is_err() {
                // (The reader notices and reports the connection down.)
                self.close();
                return;
            }
        }
    }
}

struct PeerSlot {
    peer: Peer,
    role: Role,
    state: PeerState,
    reason: Option<String>,
    conn: Option<ConnHandle>,
    /// When the peer last said something it may take as a lease renewal
    /// (a HELLO, a HELLO_ACK or a PING).
    heard: Option<Instant>,
    /// Its incarnations this host refuses (taken for dead).
    refused: std::collections::BTreeSet<u64>,
}

/// The set of peer connections.
pub struct Cluster {
    cfg: Arc<Config>,
    local_addr: SocketAddr,
    slots: Mutex<Vec<PeerSlot>>,
    shutdown: AtomicBool,
    next_id: AtomicU64,
    incarnation: u64,
    events: Option<EventSink>,
    /// Connections accepted and not closed (each has a thread): at most
    /// [`Cluster::max_incoming`].
    incoming: Arc<AtomicUsize>,
    /// Key exchanges refused, as acceptor.
    handshakes_refused: AtomicU64,
    /// Connections closed on a record that did not open.
    records_rejected: AtomicU64,
}

/// Counts an accepted connection until its thread ends.
struct Incoming(Arc<AtomicUsize>);

impl Drop for Incoming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread must not take the whole manager down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket whose reads end at a deadline while it has one: the whole
/// handshake (key exchange, HELLO, HELLO_ACK, the dialer's first frame)
/// must be done by then, so a dialer that trickles bytes cannot hold one
/// of the few incoming slots longer than [`HANDSHAKE_TIMEOUT`].
struct Deadlined {
    stream: TcpStream,
    deadline: Option<Instant>,
}

impl io::Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the handshake took too long",
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        (&self.stream).read(buf)
    }
}

impl io::Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.stream).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection past its key exchange (if any): the socket, and how frames
/// go through it.
struct Link {
    stream: TcpStream,
    sealer: Sealer,
    reader: RecordReader<Deadlined>,
}

impl Link {
    /// Authenticates the connection `stream` as the dialer to peer `peer`
    /// or, with `peer` `None`, as the acceptor of any peer's; returns the
    /// link and (acceptor) the index of the peer whose key the dialer
    /// holds. With the plain transport, nothing is exchanged.
    fn establish(
        cfg: &Config,
        stream: TcpStream,
        peer: Option<&Peer>,
    ) -> Result<(Link, Option<usize>), secure::HandshakeError> {
        let mut timed = Deadlined {
            stream: stream.try_clone()?,
            deadline: Some(Instant::now() + HANDSHAKE_TIMEOUT),
        };
        let (idx, sealer, opener) = match (&cfg.transport, peer) {
            (Transport::Plain, _) => (None, Sealer::plain(), Opener::plain()),
            (Transport::Noise(me), Some(p)) => {
                let key = p.public_key.ok_or_else(|| {
                    secure::HandshakeError::Refused(format!("no public key for {}", p.name))
                })?;
                let (s, o) = secure::initiate(&mut timed, &cfg.cluster, me, &key)?;
                (None, s, o)
            }
            (Transport::Noise(me), None) => {
                let (i, s, o) = secure::respond(&mut timed, &cfg.cluster, me, |k| {
                    cfg.peers.iter().position(|p| p.public_key == Some(*k))
                })?;
                (Some(i), s, o)
            }
        };
        let reader = opener.reader(timed, READ_BUFFER);
        Ok((
            Link {
                stream,
                sealer,
                reader,
            },
            idx,
        ))
    }

    /// Writes `frame` (handshake frames: before the outbox exists).
    fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.sealer.write_to(&mut self.stream, frame.encode())
    }

    /// Reads the next frame.
    fn receive(&mut self) -> Result<Frame, WireError> {
        wire::read_frame(&mut self.reader)
    }

    /// Sends REFUSE with `reason` and closes.
    fn refuse(&mut self, reason: &str) {
        let _ = self.send(&Frame::Refuse {
            reason: reason.to_string(),
        });
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// What this host refused on its connections, for `wfsctl stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportStats {
    /// `noise` or `plain`.
    pub transport: String,
    /// Connections closed in the key exchange: no listed key, another
    /// cluster, garbage.
    pub handshakes_refused: u64,
    /// Connections closed because a record did not open (altered,
    /// replayed, dropped or reordered).
    pub records_rejected: u64,
}

enum DialError {
    /// The peer (or whoever answered) refused us.
    Refused(String),
    /// Anything else: connect failure, I/O, bad answer.
    Other(String),
}

impl Cluster {
    /// Binds the listen address and starts the accept and dialer threads.
    ///
    /// `TcpListener::bind` sets `SO_REUSEADDR` on Unix, so a restarted
    /// manager can bind again while old connections sit in TIME_WAIT.
    pub fn start(cfg: Arc<Config>) -> io::Result<Arc<Cluster>> {
        Self::start_with(cfg, 0, None)
    }

    /// Like [`Cluster::start`], for a manager of incarnation `incarnation`
    /// whose engine hears of connections and session frames on `events`.
    pub fn start_with(
        cfg: Arc<Config>,
        incarnation: u64,
        events: Option<EventSink>,
    ) -> io::Result<Arc<Cluster>> {
        let listener = TcpListener::bind(cfg.listen)?;
        let local_addr = listener.local_addr()?;
        let slots = cfg
            .peers
            .iter()
            .map(|p| PeerSlot {
                peer: p.clone(),
                role: if cfg.initiates_to(&p.name) {
                    Role::Initiator
                } else {
                    Role::Acceptor
                },
                state: PeerState::Connecting,
                reason: None,
                conn: None,
                heard: None,
                refused: std::collections::BTreeSet::new(),
            })
            .collect();
        let cl = Arc::new(Cluster {
            cfg,
            local_addr,
            slots: Mutex::new(slots),
            shutdown: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            incarnation,
            events,
            incoming: Arc::new(AtomicUsize::new(0)),
            handshakes_refused: AtomicU64::new(0),
            records_rejected: AtomicU64::new(0),
        });
        {
            let cl = cl.clone();
            thread::Builder::new()
                .name("accept".into())
                .spawn(move || cl.accept_loop(listener))?;
        }
        for (idx, p) in cl.cfg.peers.iter().enumerate() {
            if cl.cfg.initiates_to(&p.name) {
                let cl2 = cl.clone();
                thread::Builder::new()
                    .name(format!("dial-{}", p.name))
                    .spawn(move || cl2.dial_loop(idx))?;
            }
        }
        Ok(cl)
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What this host refused on its connections.
    pub fn transport_stats(&self) -> TransportStats {
        TransportStats {
            transport: match self.cfg.transport {
                Transport::Noise(_) => "noise",
                Transport::Plain => "plain",
            }
            .to_string(),
            handshakes_refused: self.handshakes_refused.load(Ordering::Relaxed),
            records_rejected: self.records_rejected.load(Ordering::Relaxed),
        }
    }

    /// Current state of every peer, in configuration order.
    pub fn snapshot(&self) -> Vec<PeerSnapshot> {
        lock(&self.slots)
            .iter()
            .map(|s| PeerSnapshot {
                name: s.peer.name.clone(),
                addr: s.peer.addr.to_string(),
                role: s.role,
                state: s.state,
                reason: s.reason.clone(),
                remote: s.conn.as_ref().map(|c| c.remote.to_string()),
                health: None,
            })
            .collect()
    }

    /// Sends `frame` to peer number `peer` on connection `conn` only: if
    /// that connection is gone, the frame is not sent (the engine sends it
    /// again when it hears of the next one). Queues it in the connection's
    /// outbox without waiting.
    pub fn send_on(&self, peer: usize, conn: u64, frame: &Frame) -> io::Result<()> {
        self.outbox(peer, conn)?.push(frame)
    }

    /// Like [`Cluster::send_on`] for several frames, in order, written
    /// together.
    pub fn send_all_on(&self, peer: usize, conn: u64, frames: &[Frame]) -> io::Result<()> {
        self.outbox(peer, conn)?.push_all(frames)
    }

    /// Like [`Cluster::send_on`], ahead of the frames waiting (a bare
    /// acknowledgement: it must not wait behind data, and one overtaken by
    /// a later one is ignored).
    pub fn send_first_on(&self, peer: usize, conn: u64, frame: &Frame) -> io::Result<()> {
        self.outbox(peer, conn)?.push_first(frame)
    }

    /// Whether everything sent on connection `conn` to peer `peer` has
    /// been written (false if it is gone).
    pub fn written(&self, peer: usize, conn: u64) -> bool {
        self.outbox(peer, conn).is_ok_and(|o| o.written())
    }

    fn outbox(&self, peer: usize, conn: u64) -> io::Result<Arc<Outbox>> {
        let slots = lock(&self.slots);
        match slots.get(peer).and_then(|s| s.conn.as_ref()) {
            Some(c) if c.id == conn => Ok(c.outbox.clone()),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "not connected")),
        }
    }

    /// Closes connection `conn` to peer number `peer` (if it is still the
    /// current one); the peer dials again, or is dialed.
    pub fn close(&self, peer: usize, conn: u64) {
        let slots = lock(&self.slots);
        if let Some(c) = slots.get(peer).and_then(|s| s.conn.as_ref())
            && c.id == conn
        {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }

    /// Closes the live connection to peer `name` (`wfsctl disconnect`):
    /// both sides notice and the initiator dials again, as after any
    /// dropped connection.
    pub fn disconnect(&self, name: &str) -> Result<(), String> {
        let slots = lock(&self.slots);
        let slot = slots
            .iter()
            .find(|s| s.peer.name == name)
            .ok_or_else(|| format!("{name:?} is not a configured peer"))?;
        let conn = slot
            .conn
            .as_ref()
            .ok_or_else(|| format!("peer {name:?} is not connected"))?;
        wlog!("closing the connection to peer {name} on request");
        let _ = conn.stream.shutdown(Shutdown::Both);
        Ok(())
    }

    fn event(&self, e: NetEvent) {
        if let Some(sink) = &self.events {
            sink(e);
        }
    }

    /// Stops reconnecting and closes every connection.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let mut slots = lock(&self.slots);
        for s in slots.iter_mut() {
            if let Some(c) = s.conn.take() {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
        // Wake the accept thread so that it sees the flag and drops the
        // listening socket.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_millis(200));
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, waking early on shutdown. Returns false if stopping.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.stopping() {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(Duration::from_millis(50)));
        }
        false
    }

    /// Refuses incarnation `incarnation` of peer `idx` from now on (it was
    /// taken for dead): its handshakes are answered with REFUSE, saying so.
    pub fn refuse_incarnation(&self, idx: usize, incarnation: u64) {
        if let Some(s) = lock(&self.slots).get_mut(idx) {
            s.refused.insert(incarnation);
        }
    }

    /// When anything last arrived from peer `idx` that it may renew its
    /// lease with (a handshake or a PING): it has heard nothing from this
    /// host after that which it could take as a renewal.
    pub fn heard(&self, idx: usize) -> Option<Instant> {
        lock(&self.slots).get(idx).and_then(|s| s.heard)
    }

    fn mark_heard(&self, idx: usize) {
        if let Some(s) = lock(&self.slots).get_mut(idx) {
            s.heard = Some(Instant::now());
        }
    }

    fn refuses(&self, idx: usize, incarnation: u64) -> bool {
        lock(&self.slots)
            .get(idx)
            .is_some_and(|s| s.refused.contains(&incarnation))
    }

    fn set_state(&self, idx: usize, state: PeerState, reason: Option<String>) {
        let mut slots = lock(&self.slots);
        let s = &mut slots[idx];
        if s.conn.is_none() {
            s.state = state;
            s.reason = reason;
        }
    }

    // -- initiator side ---------------------------------------------------

    fn dial_loop(self: Arc<Self>, idx: usize) {
        let peer = self.cfg.peers[idx].clone();
        let mut backoff = BACKOFF_MIN;
        let mut last_error: Option<String> = None;
        while !self.stopping() {
            match self.dial_once(idx, &peer) {
                Ok((link, incarnation, since)) => {
                    last_error = None;
                    backoff = BACKOFF_MIN;
                    let remote = peer.addr;
                    self.run_connection(idx, link, remote, incarnation, since, None);
                    // Dropped: dial again right away (after the minimum delay).
                }
                Err(DialError::Refused(reason)) => {
                    if last_error.as_deref() != Some(reason.as_str()) {
                        wlog!("peer {} ({}) refused us: {reason}", peer.name, peer.addr);
                        last_error = Some(reason.clone());
                        self.event(NetEvent::Refused {
                            peer: idx,
                            reason: reason.clone(),
                        });
                    }
                    self.set_state(idx, PeerState::Refused, Some(reason));
                }
                Err(DialError::Other(e)) => {
                    if last_error.as_deref() != Some(e.as_str()) {
                        wlog!(
                            "cannot connect to peer {} ({}): {e}; retrying",
                            peer.name,
                            peer.addr
                        );
                        last_error = Some(e.clone());
                    }
                    // Keep showing a refusal until a dial gets further.
                    let state = {
                        let slots = lock(&self.slots);
                        slots[idx].state
                    };
                    if state != PeerState::Refused {
                        self.set_state(idx, PeerState::Connecting, Some(e));
                    }
                }
            }
            if !self.sleep(backoff) {
                break;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn dial_once(&self, idx: usize, peer: &Peer) -> Result<(Link, u64, Instant), DialError> {
        let other = |e: io::Error| DialError::Other(e.to_string());
        let s = TcpStream::connect_timeout(&peer.addr, CONNECT_TIMEOUT).map_err(other)?;
        s.set_nodelay(true).map_err(other)?;
        s.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(other)?;
        s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(other)?;
        let since = Instant::now();
        let (mut link, _) = Link::establish(&self.cfg, s, Some(peer)).map_err(|e| {
            // (An acceptor that does not know this host's key closes
            // without a word.)
            DialError::Other(format!(
                "key exchange failed: {e} (does {} list this host's public key, and this host its?)",
                peer.name
            ))
        })?;
        let hello = Frame::hello(&self.cfg.cluster, &self.cfg.host, self.incarnation);
        link.send(&hello).map_err(other)?;
        match link.receive() {
            Ok(Frame::HelloAck {
                version,
                host,
                incarnation,
            }) => {
                // The acceptor waits for this host's word: REFUSE, with
                // why, or the connection's first frame.
                let (why, err) = if version != PROTOCOL_VERSION {
                    let why = format!(
                        "peer answered with protocol version {version} (this host speaks {PROTOCOL_VERSION})"
                    );
                    (why.clone(), DialError::Refused(why))
                } else if host != peer.name {
                    let why = format!(
                        "the manager at {} says it is {host:?}, not {:?}",
                        peer.addr, peer.name
                    );
                    (why.clone(), DialError::Refused(why))
                } else if self.refuses(idx, incarnation) {
                    (
                        taken_for_dead(incarnation),
                        DialError::Other(format!(
                            "its incarnation {incarnation:#x} was taken for dead: refused until its manager restarts"
                        )),
                    )
                } else {
                    self.mark_heard(idx);
                    return Ok((link, incarnation, since));
                };
                link.refuse(&why);
                Err(err)
            }
            Ok(Frame::Refuse { reason }) => Err(DialError::Refused(reason)),
            Ok(f) => Err(DialError::Other(format!(
                "unexpected frame type {} in handshake",
                f.frame_type()
            ))),
            Err(WireError::Closed) => Err(DialError::Other(
                "connection closed during handshake".into(),
            )),
            Err(e) => {
                self.note_read_error(&e);
                Err(DialError::Other(format!("handshake failed: {e}")))
            }
        }
    }

    // -- acceptor side ----------------------------------------------------

    /// Most accepted connections at once: each peer's (two while one
    /// replaces another) and a few more. Connections that never say who
    /// they are (a port scan, a flood) cannot take more threads than that:
    /// beyond it they are closed at once, and the handshake's deadline frees
    /// the slots they hold.
    pub fn max_incoming(&self) -> usize {
        2 * self.cfg.peers.len() + 8
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut refused = 0u64;
        for conn in listener.incoming() {
            if self.stopping() {
                break;
            }
            match conn {
                Ok(stream) => {
                    if self.incoming.fetch_add(1, Ordering::SeqCst) >= self.max_incoming() {
                        self.incoming.fetch_sub(1, Ordering::SeqCst);
                        refused += 1;
                        // (Once, then every 1000th: a flood must not fill
                        // the log either.)
                        if refused % 1000 == 1 {
                            wlog!(
                                "{} connections open already, the most there may be; closing new ones ({refused} so far)",
                                self.max_incoming()
                            );
                        }
                        drop(stream);
                        continue;
                    }
                    let guard = Incoming(self.incoming.clone());
                    let cl = self.clone();
                    let _ = thread::Builder::new()
                        .name("incoming".into())
                        .spawn(move || {
                            let _guard = guard;
                            cl.handle_incoming(stream)
                        });
                }
                Err(e) => {
                    wlog!("accept failed: {e}");
                    // E.g. EMFILE: do not spin.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn refuse(&self, link: &mut Link, who: &str, remote: SocketAddr, reason: &str) {
        wlog!("refused peer {who} ({remote}): {reason}");
        link.refuse(reason);
    }

    /// Counts a record that did not open; says whether `e` is one.
    fn note_read_error(&self, e: &WireError) -> bool {
        let tampered = matches!(e, WireError::Io(e)
            if e.kind() == io::ErrorKind::InvalidData && e.to_string() == secure::TAMPERED);
        if tampered {
            self.records_rejected.fetch_add(1, Ordering::Relaxed);
        }
        tampered
    }

    /// Checks a HELLO; returns the peer's slot index or the refusal reason.
    pub fn check_hello(&self, cluster: &str, host: &str) -> Result<usize, String> {
        if cluster != self.cfg.cluster {
            return Err(format!(
                "cluster name mismatch: peer is in {cluster:?}, this host ({}) is in {:?}",
                self.cfg.host, self.cfg.cluster
            ));
        }
        let idx = match self.cfg.peers.iter().position(|p| p.name == host) {
            Some(i) => i,
            None => {
                return Err(format!(
                    "host {host:?} is not a configured peer of {:?}",
                    self.cfg.host
                ));
            }
        };
        if !crate::config::initiator_rule(host, &self.cfg.host) {
            return Err(format!(
                "host {host:?} must not initiate: the host whose name sorts lower ({:?}) connects",
                self.cfg.host
            ));
        }
        Ok(idx)
    }

    fn handle_incoming(self: Arc<Self>, stream: TcpStream) {
        let remote = match stream.peer_addr() {
            Ok(a) => a,
            Err(_) => return,
        };
        let setup = stream
            .set_nodelay(true)
            .and_then(|_| stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
            .and_then(|_| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
        if let Err(e) = setup {
            wlog!("connection from {remote}: {e}");
            return;
        }
        let (mut link, keyed) = match Link::establish(&self.cfg, stream, None) {
            Ok(l) => l,
            Err(secure::HandshakeError::Io(e))
                if e.kind() == io::ErrorKind::UnexpectedEof && !self.stopping() =>
            {
                // (A port probe, or a dialer that gave up.)
                self.handshakes_refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                if !self.stopping() {
                    // Nothing is said to the other side: no reason, no
                    // name. (Logged the first 100 times, then every
                    // 1000th: a flood must not fill the log.)
                    let n = self.handshakes_refused.fetch_add(1, Ordering::Relaxed) + 1;
                    if n <= 100 || n.is_multiple_of(1000) {
                        wlog!(
                            "connection from {remote}: key exchange refused: {e}; closed ({n} so far)"
                        );
                    }
                }
                return;
            }
        };
        let hello = match link.receive() {
            Ok(f) => f,
            Err(WireError::Closed) => return, // a port probe, or our own wake-up
            Err(e @ (WireError::BadMagic | WireError::Version(_))) => {
                self.refuse(&mut link, "?", remote, &e.to_string());
                return;
            }
            Err(e) => {
                self.note_read_error(&e);
                wlog!("connection from {remote}: bad handshake: {e}; closing");
                link.refuse(&format!("bad handshake: {e}"));
                return;
            }
        };
        if self.stopping() {
            return;
        }
        let (cluster, host, incarnation) = match hello {
            Frame::Hello {
                cluster,
                host,
                incarnation,
                ..
            } => (cluster, host, incarnation),
            other => {
                let reason = format!("expected HELLO, got frame type {}", other.frame_type());
                self.refuse(&mut link, "?", remote, &reason);
                return;
            }
        };
        if let Some(k) = keyed
            && self.cfg.peers[k].name != host
        {
            // (Not this name's key: the peer whose key it is lies. Nothing
            // of what it claims touches another peer's state.)
            let owner = self.cfg.peers[k].name.clone();
            let reason = format!("the key of {owner} says it is {host:?}");
            self.refuse(&mut link, &owner, remote, &reason);
            return;
        }
        let idx = match self.check_hello(&cluster, &host) {
            Ok(i) => i,
            Err(reason) => {
                if let Some(i) = self.cfg.peers.iter().position(|p| p.name == host) {
                    self.set_state(i, PeerState::Refused, Some(reason.clone()));
                }
                self.refuse(&mut link, &host, remote, &reason);
                return;
            }
        };
        if self.refuses(idx, incarnation) {
            let reason = taken_for_dead(incarnation);
            self.refuse(&mut link, &host, remote, &reason);
            return;
        }
        let ack = Frame::HelloAck {
            version: PROTOCOL_VERSION,
            host: self.cfg.host.clone(),
            incarnation: self.incarnation,
        };
        let since = Instant::now();
        if let Err(e) = link.send(&ack) {
            wlog!("peer {host} ({remote}): cannot send HELLO_ACK: {e}");
            return;
        }
        // The dialer's answer to HELLO_ACK: REFUSE if it took this host's
        // incarnation for dead, else its first frame (its writer starts
        // with a PING). Until then the connection is no connection: a host
        // cut off from most of the cluster must not count a peer that is
        // about to refuse it towards a majority (and take the hosts still
        // out of its reach for dead in between).
        match link.receive() {
            Ok(Frame::Refuse { reason }) => {
                wlog!("peer {host} ({remote}) refused us: {reason}");
                self.set_state(idx, PeerState::Refused, Some(reason.clone()));
                self.event(NetEvent::Refused { peer: idx, reason });
            }
            Ok(first) => {
                self.mark_heard(idx);
                self.run_connection(idx, link, remote, incarnation, since, Some(first));
            }
            Err(WireError::Closed) => {
                wlog!("peer {host} ({remote}) closed the connection after HELLO_ACK");
            }
            Err(e) => {
                self.note_read_error(&e);
                wlog!("peer {host} ({remote}): no answer to HELLO_ACK: {e}; closing");
                let _ = link.stream.shutdown(Shutdown::Both);
            }
        }
    }

    // -- both sides -------------------------------------------------------

    /// Runs an established connection until it drops; `first`, a frame
    /// already read from it (the acceptor's wait for the dialer's word).
    fn run_connection(
        &self,
        idx: usize,
        link: Link,
        remote: SocketAddr,
        incarnation: u64,
        since: Instant,
        mut first: Option<Frame>,
    ) {
        let name = self.cfg.peers[idx].name.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let Link {
            stream,
            sealer,
            mut reader,
        } = link;
        // (From here on, the heartbeat's time-out alone: set below.)
        reader.get_mut().deadline = None;
        let clones = stream
            .set_read_timeout(Some(DEAD_AFTER))
            .and_then(|_| stream.try_clone())
            .and_then(|a| stream.try_clone().map(|b| (a, b)));
        let (ctl, wr) = match clones {
            Ok(c) => c,
            Err(e) => {
                wlog!("peer {name} ({remote}): {e}");
                return;
            }
        };
        let outbox = Arc::new(Outbox::new(wr, sealer));
        // The writer runs before anyone can send (the engine sends what the
        // peer has not acknowledged as soon as it hears of the connection).
        // PINGs sent and not answered yet, with when they were sent.
        let pings: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
        let spawned = {
            let outbox = outbox.clone();
            let pings = pings.clone();
            thread::Builder::new()
                .name(format!("write-{name}"))
                .spawn(move || outbox.write_loop(&pings))
        };
        if let Err(e) = spawned {
            wlog!("peer {name} ({remote}): cannot start its writer: {e}");
            outbox.close();
        }

        {
            let mut slots = lock(&self.slots);
            if self.stopping() {
                outbox.close();
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            let s = &mut slots[idx];
            if let Some(old) = s.conn.take() {
                wlog!(
                    "peer {name}: new connection ({remote}) replaces the old one ({})",
                    old.remote
                );
                let _ = old.stream.shutdown(Shutdown::Both);
            }
            s.conn = Some(ConnHandle {
                id,
                stream: ctl,
                outbox: outbox.clone(),
                remote,
            });
            s.state = PeerState::Connected;
            s.reason = None;
        }
        wlog!("peer {name} connected ({remote})");
        self.event(NetEvent::Up {
            peer: idx,
            conn: id,
            incarnation,
            since,
        });

        // (The reader is buffered: one read(2) takes in every frame that
        // has arrived, not two per frame, its length, then the rest.)
        // Frames handed over in a row with `more`.
        let mut held = 0;
        let why = loop {
            let next = match first.take() {
                Some(f) => Ok(f),
                None => wire::read_frame(&mut reader),
            };
            match next {
                Ok(Frame::Ping { seq }) => {
                    self.mark_heard(idx);
                    if let Err(e) = outbox.push_first(&Frame::Pong { seq }) {
                        break format!("write failed: {e}");
                    }
                }
                Ok(Frame::Pong { seq }) => {
                    let sent = {
                        let mut p = lock(&pings);
                        let mut sent = None;
                        while let Some(&(s, t)) = p.front() {
                            if s > seq {
                                break;
                            }
                            p.pop_front();
                            if s == seq {
                                sent = Some(t);
                            }
                        }
                        sent
                    };
                    if let Some(since) = sent {
                        self.event(NetEvent::Renewed { peer: idx, since });
                    }
                }
                Ok(Frame::Refuse { reason }) => {
                    wlog!("peer {name} ({remote}) refused us: {reason}");
                    self.event(NetEvent::Refused {
                        peer: idx,
                        reason: reason.clone(),
                    });
                    break reason;
                }
                Ok(Frame::Page(frame)) if self.events.is_some() => {
                    // (Not too many held: the first ones wait for the rest.)
                    let more = reader.buffer().is_ok_and(wire::page_frame_buffered)
                        && held + 1 < HOLD_FRAMES;
                    held = if more { held + 1 } else { 0 };
                    self.event(NetEvent::Frame {
                        peer: idx,
                        conn: id,
                        frame,
                        more,
                    })
                }
                Ok(f) => {
                    let why = format!(
                        "protocol error: unexpected frame type {} after handshake",
                        f.frame_type()
                    );
                    wlog!("peer {name} ({remote}): {why}; closing");
                    break why;
                }
                Err(WireError::Closed) => break "connection closed by peer".to_string(),
                Err(e) if e.is_timeout() => {
                    break format!("no heartbeat for {}s", DEAD_AFTER.as_secs());
                }
                Err(e @ WireError::Io(_)) => {
                    if self.note_read_error(&e) {
                        wlog!("peer {name} ({remote}): {e}; closing connection");
                    }
                    break e.to_string();
                }
                Err(e) => {
                    wlog!("peer {name} ({remote}): {e}; closing connection");
                    break e.to_string();
                }
            }
        };
        outbox.close();
        let _ = stream.shutdown(Shutdown::Both);
        self.event(NetEvent::Down {
            peer: idx,
            conn: id,
        });
        let current = {
            let mut slots = lock(&self.slots);
            let s = &mut slots[idx];
            if s.conn.as_ref().map(|c| c.id) == Some(id) {
                s.conn = None;
                s.state = match s.role {
                    Role::Initiator => PeerState::Connecting,
                    Role::Acceptor => PeerState::Disconnected,
                };
                s.reason = Some(why.clone());
                true
            } else {
                false
            }
        };
        if current && !self.stopping() {
            wlog!("peer {name} disconnected ({remote}): {why}");
        }
    }
}

/// The reason a host gives when it refuses a peer's incarnation it has
/// taken for dead (the peer's manager must restart to rejoin).
pub fn taken_for_dead(incarnation: u64) -> String {
    format!("{TAKEN_FOR_DEAD}: incarnation {incarnation:#x}; restart its manager to rejoin")
}

/// How a refusal says the refused incarnation was taken for dead.
pub const TAKEN_FOR_DEAD: &str = "taken for dead";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::fd::AsRawFd;

    /// The key pair of test host `name` (the same in the whole test
    /// process) and its private key file.
    fn key(name: &str) -> (secure::KeyPair, std::path::PathBuf) {
        static KEYS: Mutex<Vec<(String, secure::KeyPair, std::path::PathBuf)>> =
            Mutex::new(Vec::new());
        let mut keys = lock(&KEYS);
        if let Some((_, k, p)) = keys.iter().find(|(n, _, _)| n == name) {
            return (k.clone(), p.clone());
        }
        let dir = std::env::temp_dir().join(format!("wfs-cluster-keys-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.key"));
        let _ = std::fs::remove_file(&path);
        let mut public = path.clone().into_os_string();
        public.push(".pub");
        let _ = std::fs::remove_file(public);
        let k = secure::KeyPair::generate().unwrap();
        k.write(&path).unwrap();
        keys.push((name.to_string(), k.clone(), path.clone()));
        (k, path)
    }

    /// Host `host` of cluster `c` with peers `peers`, with keys
    /// ([`key`]) or the plain transport.
    fn cfg_with(host: &str, peers: &[&str], plain: bool) -> Arc<Config> {
        let mut text = format!(
            "cluster = \"c\"\nhost = \"{host}\"\nlisten = \"127.0.0.1:0\"\nexport = \"/tmp\"\n"
        );
        if plain {
            text.push_str("transport = \"plain\"\n");
        } else {
            text.push_str(&format!("key_file = \"{}\"\n", key(host).1.display()));
        }
        for (i, p) in peers.iter().enumerate() {
            // Unused, closed ports: nothing dials successfully.
            text.push_str(&format!(
                "[[peer]]\nname = \"{p}\"\naddr = \"127.0.0.1:{}\"\n",
                9 + i
            ));
            if !plain {
                text.push_str(&format!(
                    "public_key = \"{}\"\n",
                    secure::encode_key(&key(p).0.public)
                ));
            }
        }
        Arc::new(Config::parse(&text).unwrap())
    }

    fn cfg(host: &str, peers: &[&str]) -> Arc<Config> {
        cfg_with(host, peers, false)
    }

    #[test]
    fn hello_checks() {
        let cl = Cluster::start(cfg("m", &["a", "z"])).unwrap();
        assert_eq!(cl.check_hello("c", "a"), Ok(0));
        let e = cl.check_hello("other", "a").unwrap_err();
        assert!(e.contains("cluster name mismatch"), "{e}");
        let e = cl.check_hello("c", "q").unwrap_err();
        assert!(e.contains("not a configured peer"), "{e}");
        let e = cl.check_hello("c", "z").unwrap_err();
        assert!(e.contains("must not initiate"), "{e}");
        let snap = cl.snapshot();
        assert_eq!(snap[0].role, Role::Acceptor);
        assert_eq!(snap[1].role, Role::Initiator);
        cl.shutdown();
    }

    #[test]
    fn listener_reuses_address() {
        let cl = Cluster::start(cfg("m", &[])).unwrap();
        // Bind a second socket on a fresh port the same way and check the
        // option std sets.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a live c_int of the right size.
        let rc = unsafe {
            libc::getsockopt(
                l.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(v, 1, "std's TcpListener::bind must set SO_REUSEADDR");
        cl.shutdown();
    }

    #[test]
    fn acceptor_handshake_over_tcp_with_the_plain_transport() {
        let cl = Cluster::start(cfg_with("m", &["a", "z"], true)).unwrap();
        let addr = cl.local_addr();
        // Wrong cluster: REFUSE.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        wire::write_frame(&mut s, &Frame::hello("nope", "a", 1)).unwrap();
        match wire::read_frame(&mut s).unwrap() {
            Frame::Refuse { reason } => assert!(reason.contains("cluster"), "{reason}"),
            f => panic!("{f:?}"),
        }
        // Right: HELLO_ACK, then PING answered with PONG.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        wire::write_frame(&mut s, &Frame::hello("c", "a", 1)).unwrap();
        assert_eq!(
            wire::read_frame(&mut s).unwrap(),
            Frame::HelloAck {
                version: PROTOCOL_VERSION,
                host: "m".into(),
                incarnation: 0,
            }
        );
        wire::write_frame(&mut s, &Frame::Ping { seq: 77 }).unwrap();
        loop {
            match wire::read_frame(&mut s).unwrap() {
                Frame::Pong { seq } => {
                    assert_eq!(seq, 77);
                    break;
                }
                Frame::Ping { .. } => {}
                f => panic!("{f:?}"),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while cl.snapshot()[0].state != PeerState::Connected {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(20));
        }
        // Oversized frame: the connection is closed, the manager lives on.
        s.write_all_frame_len(u32::MAX);
        let deadline = Instant::now() + Duration::from_secs(5);
        while cl.snapshot()[0].state != PeerState::Disconnected {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            cl.snapshot()[0]
                .reason
                .as_ref()
                .unwrap()
                .contains("oversized")
        );
        cl.shutdown();
    }

    #[test]
    fn a_peer_that_reads_nothing_never_makes_a_sender_wait_and_loses_its_connection_within_the_write_timeout()
     {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: EventSink = Box::new(move |e| {
            if let NetEvent::Up { conn, .. } = e {
                let _ = lock(&tx).send(conn);
            }
        });
        let cl = Cluster::start_with(cfg("m", &["a"]), 0, Some(sink)).unwrap();
        // Peer "a" dials, shakes hands, and then reads nothing.
        let _s = shake_hands_as(&cl, "a");
        let conn = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let big = big_frame();
        // 25 MiB: far more than the socket buffers take.
        for _ in 0..100 {
            let t = Instant::now();
            cl.send_on(0, conn, &big).unwrap();
            assert!(
                t.elapsed() < Duration::from_millis(500),
                "a send waited {:?} for a peer that reads nothing",
                t.elapsed()
            );
        }
        // The writer blocks, for the write time-out at most: then the
        // connection is closed (the slot is free for the peer's next dial)
        // and what waited goes with it.
        let deadline = Instant::now() + WRITE_TIMEOUT + Duration::from_secs(5);
        while cl.snapshot()[0].state != PeerState::Disconnected {
            assert!(Instant::now() < deadline, "{:?}", cl.snapshot()[0]);
            thread::sleep(Duration::from_millis(20));
        }
        assert!(cl.send_on(0, conn, &Frame::Ping { seq: 1 }).is_err());
        cl.shutdown();
    }

    fn big_frame() -> Frame {
        // About 256 KiB.
        Frame::Page(session::Frame {
            seq: 1,
            ack: 0,
            msg: Some(PeerMsg::Name(crate::names::NameMsg::Listed {
                id: 1,
                names: vec![vec![b'x'; 255]; 1000],
                last: false,
            })),
        })
    }

    #[test]
    fn a_burst_sent_as_a_connection_comes_up_all_arrives() {
        // The engine sends what the peer has not acknowledged as soon as it
        // hears of a connection: 70 frames of 256 KiB here. (The writer
        // used to start after that, and a full outbox closed the
        // connection before anything was written, again on every
        // connection.)
        let cell: Arc<std::sync::OnceLock<Arc<Cluster>>> = Arc::default();
        let sink: EventSink = {
            let cell = cell.clone();
            Box::new(move |e| {
                if let (NetEvent::Up { peer, conn, .. }, Some(cl)) = (e, cell.get()) {
                    for seq in 0..70 {
                        let _ = cl.send_on(peer, conn, &big_frame());
                        // Frames that go ahead of waiting ones never land
                        // inside one written in part.
                        let _ = cl.send_first_on(peer, conn, &Frame::Pong { seq });
                    }
                }
            })
        };
        let cl = Cluster::start_with(cfg("m", &["a"]), 0, Some(sink)).unwrap();
        assert!(cell.set(cl.clone()).is_ok());
        let mut s = shake_hands_as(&cl, "a");
        let (mut got, mut pongs) = (0, 0);
        while got < 70 || pongs < 70 {
            match s.receive() {
                Ok(f @ Frame::Page(_)) => {
                    assert_eq!(f, big_frame());
                    got += 1;
                }
                Ok(Frame::Pong { .. }) => pongs += 1,
                Ok(_) => {}
                Err(e) => panic!("after {got} frames and {pongs} PONGs: {e}"),
            }
        }
        cl.shutdown();
    }

    fn page_frame(seq: u64) -> Frame {
        Frame::Page(session::Frame {
            seq,
            ack: 0,
            msg: Some(PeerMsg::Name(crate::names::NameMsg::Listed {
                id: seq,
                names: vec![b"n".to_vec()],
                last: true,
            })),
        })
    }

    #[test]
    fn frames_that_arrived_together_are_handed_over_together_and_sent_together_arrive_in_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: EventSink = Box::new(move |e| match e {
            NetEvent::Up { conn, .. } => {
                let _ = lock(&tx).send((conn, 0, false));
            }
            NetEvent::Frame { frame, more, .. } => {
                let _ = lock(&tx).send((0, frame.seq, more));
            }
            _ => {}
        });
        let cl = Cluster::start_with(cfg("m", &["a"]), 0, Some(sink)).unwrap();
        let mut s = shake_hands_as(&cl, "a");
        let (conn, _, _) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // Ten frames in one write: read in at once, each but the last
        // handed over with `more` (the one after it is in already).
        let mut burst = Vec::new();
        for seq in 1..=10 {
            page_frame(seq).encode_into(&mut burst);
        }
        s.sealer.write_to(&mut s.stream, burst).unwrap();
        let got: Vec<(u64, bool)> = (0..10)
            .map(|_| {
                let (_, seq, more) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
                (seq, more)
            })
            .collect();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        assert!(!got[9].1, "the last of a burst is not held: {got:?}");
        assert!(got.iter().any(|g| g.1), "none held: {got:?}");
        // And three sent together arrive whole, in order.
        let three: Vec<Frame> = (1..=3).map(page_frame).collect();
        cl.send_all_on(0, conn, &three).unwrap();
        let mut back = Vec::new();
        while back.len() < 3 {
            if let f @ Frame::Page(_) = s.receive().unwrap() {
                back.push(f);
            }
        }
        assert_eq!(back, three);
        // Frames of 256 KiB, more than one write's worth, with a PONG sent
        // meanwhile: all arrive whole and in order, the PONG between two.
        let big: Vec<Frame> = (0..6).map(|_| big_frame()).collect();
        cl.send_all_on(0, conn, &big).unwrap();
        cl.send_first_on(0, conn, &Frame::Pong { seq: 9 }).unwrap();
        let (mut got, mut pong) = (0, false);
        while got < big.len() || !pong {
            match s.receive().unwrap() {
                f @ Frame::Page(_) => {
                    assert_eq!(f, big_frame());
                    got += 1;
                }
                Frame::Pong { seq: 9 } => pong = true,
                _ => {}
            }
        }
        cl.shutdown();
    }

    #[test]
    fn only_a_whole_page_frame_counts_as_buffered() {
        let f = page_frame(1).encode();
        assert!(wire::page_frame_buffered(&f));
        assert!(!wire::page_frame_buffered(&f[..f.len() - 1]));
        assert!(!wire::page_frame_buffered(&f[..3]));
        assert!(!wire::page_frame_buffered(&Frame::Ping { seq: 1 }.encode()));
    }

    /// Dials `cl` as its peer `host` (incarnation 1): HELLO, and its
    /// HELLO_ACK read; this side has not answered yet.
    /// Dials `cl` holding the key of `host` (a peer of `cl`, or not):
    /// the key exchange done.
    fn dial_as(cl: &Cluster, host: &str) -> Result<Link, secure::HandshakeError> {
        let s = TcpStream::connect(cl.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let me = cfg(host, &[cl.cfg.host.as_str()]);
        Link::establish(&me, s, Some(&me.peers[0])).map(|(l, _)| l)
    }

    /// Dials `cl` as its peer `host`, with `host`'s key, and says HELLO as
    /// `name`; returns the link and the answer.
    fn hello_as_named(cl: &Cluster, host: &str, name: &str) -> (Link, Frame) {
        let mut l = dial_as(cl, host).unwrap();
        l.send(&Frame::hello("c", name, 1)).unwrap();
        let answer = l.receive().unwrap();
        (l, answer)
    }

    fn hello_as(cl: &Cluster, host: &str) -> Link {
        let (l, answer) = hello_as_named(cl, host, host);
        assert!(matches!(answer, Frame::HelloAck { .. }), "{answer:?}");
        l
    }

    /// Dials `cl` as its peer `host` and completes the handshake: HELLO,
    /// HELLO_ACK, and this side's first frame (a PING).
    fn shake_hands_as(cl: &Cluster, host: &str) -> Link {
        let mut s = hello_as(cl, host);
        s.send(&Frame::Ping { seq: 0 }).unwrap();
        s
    }

    /// Events of the kinds `Up` and `Refused`, as (kind, peer) pairs.
    fn up_and_refused() -> (EventSink, std::sync::mpsc::Receiver<(&'static str, usize)>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: EventSink = Box::new(move |e| {
            let seen = match e {
                NetEvent::Up { peer, .. } => ("up", peer),
                NetEvent::Refused { peer, .. } => ("refused", peer),
                _ => return,
            };
            let _ = lock(&tx).send(seen);
        });
        (sink, rx)
    }

    #[test]
    fn an_acceptor_counts_a_connection_up_only_once_the_dialer_answered_its_hello_ack() {
        let (sink, rx) = up_and_refused();
        let cl = Cluster::start_with(cfg("m", &["a"]), 0, Some(sink)).unwrap();
        // A dialer that took this host's incarnation for dead refuses it
        // right after HELLO_ACK: the engine hears a refusal, never a
        // connection (a host cut off from most of the cluster counted it
        // towards a majority and took the hosts still out of reach for
        // dead in between).
        let mut s = hello_as(&cl, "a");
        // Not up while the dialer has not answered.
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        assert_eq!(cl.snapshot()[0].state, PeerState::Connecting);
        let reason = taken_for_dead(0);
        s.send(&Frame::Refuse { reason }).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            ("refused", 0)
        );
        let snap = &cl.snapshot()[0];
        assert_eq!(snap.state, PeerState::Refused);
        assert!(snap.reason.as_ref().unwrap().contains(TAKEN_FOR_DEAD));
        // A dialer that answers with its first frame: up.
        let _s = shake_hands_as(&cl, "a");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), ("up", 0));
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        cl.shutdown();
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_dialer_without_a_listed_key_is_closed_on_without_a_word_and_counted() {
        let cl = Cluster::start(cfg("m", &["a"])).unwrap();
        // A host whose key m does not list.
        match dial_as(&cl, "stranger") {
            Err(secure::HandshakeError::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a stranger's key was accepted"),
        }
        // A plain HELLO, and garbage: nothing comes back, not even a
        // REFUSE (which would name the cluster and the host).
        for bytes in [
            Frame::hello("c", "a", 1).encode(),
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            vec![0xff; 200],
            // The size of a real first message, random: it reaches the
            // key exchange itself, which cannot open it.
            [&[0u8, 96][..], &[0x5a; 96][..]].concat(),
        ] {
            let mut s = TcpStream::connect(cl.local_addr()).unwrap();
            s.write_all(&bytes).unwrap();
            assert_eq!(crate::testkit::read_until_closed(s), Vec::<u8>::new());
        }
        wait_for("five refusals counted", || {
            cl.transport_stats().handshakes_refused == 5
        });
        assert_eq!(cl.snapshot()[0].state, PeerState::Connecting);
        assert_eq!(cl.transport_stats().transport, "noise");
        // The holder of a's key gets in.
        let _s = shake_hands_as(&cl, "a");
        wait_for("a connected", || {
            cl.snapshot()[0].state == PeerState::Connected
        });
        cl.shutdown();
    }

    #[test]
    fn a_dialer_that_trickles_its_handshake_loses_its_slot_at_the_deadline() {
        let cl = Cluster::start(cfg("m", &["a"])).unwrap();
        let mut s = TcpStream::connect(cl.local_addr()).unwrap();
        let t = Instant::now();
        // A byte a second, each well within a read's time-out: the
        // handshake's deadline ends it all the same.
        let mut closed = false;
        for _ in 0..(2 * HANDSHAKE_TIMEOUT.as_secs()) {
            if s.write_all(&[0]).is_err() {
                closed = true;
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
        if !closed {
            assert_eq!(crate::testkit::read_until_closed(s), Vec::<u8>::new());
        }
        assert!(
            t.elapsed() < HANDSHAKE_TIMEOUT + Duration::from_secs(3),
            "held {:?}",
            t.elapsed()
        );
        wait_for("the trickle counted", || {
            cl.transport_stats().handshakes_refused == 1
        });
        cl.shutdown();
    }

    #[test]
    fn a_key_that_claims_another_peers_name_is_refused() {
        let cl = Cluster::start(cfg("m", &["a", "b"])).unwrap();
        let (_l, answer) = hello_as_named(&cl, "b", "a");
        match answer {
            Frame::Refuse { reason } => {
                assert!(reason.contains("the key of b says it is \"a\""), "{reason}")
            }
            f => panic!("{f:?}"),
        }
        assert_eq!(cl.snapshot()[0].state, PeerState::Connecting);
        cl.shutdown();
    }

    #[test]
    fn a_replayed_or_altered_record_closes_the_connection_and_is_not_handed_over() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: EventSink = Box::new(move |e| match e {
            NetEvent::Frame { frame, .. } => {
                let _ = lock(&tx).send(Some(frame.seq));
            }
            NetEvent::Down { .. } => {
                let _ = lock(&tx).send(None);
            }
            _ => {}
        });
        let cl = Cluster::start_with(cfg("m", &["a"]), 0, Some(sink)).unwrap();
        // Replayed: the same sealed record twice. The first arrives, the
        // second closes the connection.
        let mut s = shake_hands_as(&cl, "a");
        let sealed = s.sealer.seal(page_frame(1).encode());
        s.stream.write_all(&sealed).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Some(1));
        s.stream.write_all(&sealed).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), None);
        assert_eq!(cl.transport_stats().records_rejected, 1);
        // Altered: one bit of the ciphertext flipped. Nothing arrives.
        let mut s = shake_hands_as(&cl, "a");
        let mut sealed = s.sealer.seal(page_frame(2).encode());
        sealed[10] ^= 1;
        s.stream.write_all(&sealed).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), None);
        assert_eq!(cl.transport_stats().records_rejected, 2);
        // A record of an earlier connection, replayed on a new one.
        let mut s = shake_hands_as(&cl, "a");
        s.stream.write_all(&sealed).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), None);
        assert_eq!(cl.transport_stats().records_rejected, 3);
        // A replayed key exchange gets an answer, and no further: the
        // replayer cannot seal its HELLO (it lacks the ephemeral key).
        let mut first = Vec::new();
        {
            let s = TcpStream::connect(cl.local_addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let me = cfg("a", &["m"]);
            // Record what the real dialer sends first.
            struct Tap<'a>(&'a TcpStream, &'a mut Vec<u8>);
            impl io::Write for Tap<'_> {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    self.1.extend_from_slice(b);
                    (&mut &*self.0).write(b)
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            impl io::Read for Tap<'_> {
                fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                    io::Read::read(&mut &*self.0, b)
                }
            }
            let me_key = match &me.transport {
                Transport::Noise(k) => k.clone(),
                Transport::Plain => unreachable!(),
            };
            let _ = secure::initiate(
                &mut Tap(&s, &mut first),
                "c",
                &me_key,
                me.peers[0].public_key.as_ref().unwrap(),
            )
            .unwrap();
        }
        let mut s = TcpStream::connect(cl.local_addr()).unwrap();
        s.write_all(&first).unwrap();
        s.write_all(&sealed).unwrap();
        let answer = crate::testkit::read_until_closed(s);
        assert!(!answer.is_empty(), "the key exchange is answered");
        wait_for("the replayed exchange's record rejected", || {
            cl.transport_stats().records_rejected == 4
        });
        assert_ne!(cl.snapshot()[0].state, PeerState::Connected);
        cl.shutdown();
    }

    trait RawLen {
        fn write_all_frame_len(&mut self, len: u32);
    }
    impl RawLen for TcpStream {
        fn write_all_frame_len(&mut self, len: u32) {
            use std::io::Write;
            self.write_all(&len.to_le_bytes()).unwrap();
        }
    }
}
