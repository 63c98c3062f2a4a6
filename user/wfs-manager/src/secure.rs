//! Authenticated, encrypted connections between managers.
//!
//! # Why Noise, through `snow`
//!
//! Every host has a static Curve25519 key pair and `cluster.toml` lists the
//! public key of each peer: the set of keys *is* the cluster, as in
//! WireGuard. That is exactly what the Noise protocol framework's `IK`
//! pattern authenticates, with no certificate authority, no names to
//! verify and no X.509 parser on a path anyone on the network can reach;
//! mutual TLS (`rustls`) would need a CA or self-signed certificates
//! pinned by hand to express the same thing. `snow` is the well-kept Rust
//! implementation of Noise (used by libp2p, among others); this module only
//! frames its messages on a TCP stream.
//!
//! # The handshake
//!
//! `Noise_IK_25519_ChaChaPoly_BLAKE2s`, with the prologue `WFS\0` + the
//! cluster name: the dialer (who knows whom it dials) sends the first
//! message, which carries its static key encrypted; the acceptor finds that
//! key among its peers' or closes the connection, and answers. Each message
//! goes as a 2-byte big-endian length and the message. A dialer that does
//! not hold a listed key, or dials for another cluster, or sends anything
//! else, gets the connection closed without a word (no reason, no name;
//! the time the acceptor takes to refuse is not hidden). A replayed first message gets an answer that only the holder of
//! the first message's ephemeral key can use: the acceptor counts a
//! connection as a peer's only once a frame from it decrypts (its HELLO).
//!
//! # Records
//!
//! After the handshake, the byte stream of frames is cut into *records* of
//! at most [`MAX_PLAIN`] bytes, each sent as a 2-byte big-endian length and
//! its ChaCha20-Poly1305 ciphertext, under a nonce that counts records in
//! each direction. A record that is altered, replayed, dropped or reordered
//! fails to decrypt, and the connection is closed (the session layer sends
//! again what was lost on the next one).
//!
//! # Plain transport
//!
//! `transport = "plain"` in `cluster.toml` turns all of this off: frames go
//! as they are, and a peer is who it says it is. For trusted networks only
//! (`Documentation/security.md`).

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use snow::resolvers::CryptoResolver as _;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Bytes of a key (private or public).
pub const KEY_LEN: usize = 32;
/// Largest Noise message.
const MAX_MESSAGE: usize = 65535;
/// Bytes of a record's authentication tag.
const TAG: usize = 16;
/// Most plaintext bytes in one record.
pub const MAX_PLAIN: usize = MAX_MESSAGE - TAG;
/// Longest handshake message accepted (IK's are 96 and 48 bytes).
const MAX_HANDSHAKE: usize = 256;

/// A key as 32 bytes.
pub type Key = [u8; KEY_LEN];

/// A key as written in files and `cluster.toml`: standard base64.
pub fn encode_key(key: &Key) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Parses a key written by [`encode_key`].
pub fn decode_key(text: &str) -> Result<Key, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not a base64 key: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("a key is {KEY_LEN} bytes, not {}", b.len()))
}

/// This host's static key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key (never printed: see the `Debug` implementation).
    pub private: Key,
    /// The public key that peers list.
    pub public: Key,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair {{ public: {} }}", encode_key(&self.public))
    }
}

fn curve25519() -> Result<Box<dyn snow::types::Dh>, String> {
    snow::resolvers::DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .ok_or_else(|| "no Curve25519 in snow's resolver".to_string())
}

impl KeyPair {
    /// A new random key pair (the operating system's random source).
    pub fn generate() -> Result<KeyPair, String> {
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(|e| format!("{e}"))?;
        let kp = snow::Builder::new(params)
            .generate_keypair()
            .map_err(|e| format!("cannot make a key pair: {e}"))?;
        Ok(KeyPair {
            private: kp.private.try_into().map_err(|_| "bad private key")?,
            public: kp.public.try_into().map_err(|_| "bad public key")?,
        })
    }

    /// The pair of private key `private`.
    pub fn from_private(private: Key) -> Result<KeyPair, String> {
        let mut dh = curve25519()?;
        dh.set(&private);
        let public = dh.pubkey().try_into().map_err(|_| "bad public key")?;
        Ok(KeyPair { private, public })
    }

    /// Reads a private key file (as [`KeyPair::write`] makes it). Refuses a
    /// file that is not a regular file, or that others than its owner may
    /// read or write, or that belongs to another user than this process's
    /// (unless root's): a key others could read is a key others have.
    pub fn load(path: &Path) -> Result<KeyPair, String> {
        let shown = path.display();
        // (Opened once, without following a link, and checked through the
        // descriptor: nothing can swap the file between check and read.)
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => format!("key {shown} is not a regular file (a symbolic link)"),
                _ => {
                    format!("cannot read key {shown}: {e} (make one with `wfsctl keygen {shown}`)")
                }
            })?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read key {shown}: {e}"))?;
        if !meta.file_type().is_file() {
            return Err(format!("key {shown} is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "key {shown} has mode {mode:03o}: others may read it; chmod 600 it (and make a new one if others did)"
            ));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me && meta.uid() != 0 {
            return Err(format!(
                "key {shown} belongs to uid {}, not to this process's ({me}) or root",
                meta.uid()
            ));
        }
        let mut text = String::new();
        (&mut file)
            .take(256)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read key {shown}: {e}"))?;
        // (Not the decoder's own message: it would quote the file's bytes.)
        let private = decode_key(&text)
            .map_err(|_| format!("key {shown}: not a base64 key of {KEY_LEN} bytes"))?;
        KeyPair::from_private(private)
    }

    /// Writes the private key to `path` (a new file, mode 0600) and the
    /// public key to `path.pub` (mode 0644). Refuses to replace either.
    pub fn write(&self, path: &Path) -> Result<std::path::PathBuf, String> {
        let public_path = {
            let mut p = path.as_os_str().to_owned();
            p.push(".pub");
            std::path::PathBuf::from(p)
        };
        for p in [path, public_path.as_path()] {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(format!("{} exists; not replacing a key", p.display()));
            }
        }
        let put = |p: &Path, mode: u32, text: String| -> Result<(), String> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            // (The umask may have taken bits away, never added them; set
            // the mode exactly.)
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .and_then(|_| f.write_all(text.as_bytes()))
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", p.display()))
        };
        put(path, 0o600, format!("{}\n", encode_key(&self.private)))?;
        put(
            &public_path,
            0o644,
            format!("{}\n", encode_key(&self.public)),
        )?;
        Ok(public_path)
    }
}

/// Why a handshake failed. Nothing of it is told to the other side.
#[derive(Debug)]
pub enum HandshakeError {
    /// The connection failed or timed out.
    Io(io::Error),
    /// The other side is not who it must be, or spoke garbage.
    Refused(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Refused(why) => f.write_str(why),
        }
    }
}

impl From<io::Error> for HandshakeError {
    fn from(e: io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

fn builder<'a>(prologue: &'a [u8], me: &'a KeyPair) -> Result<snow::Builder<'a>, HandshakeError> {
    let refused = |e: snow::Error| HandshakeError::Refused(format!("noise: {e}"));
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(refused)?;
    snow::Builder::new(params)
        .prologue(prologue)
        .map_err(refused)?
        .local_private_key(&me.private)
        .map_err(refused)
}

/// The prologue both sides mix in: a handshake for another cluster fails.
fn prologue(cluster: &str) -> Vec<u8> {
    let mut p = b"WFS\0".to_vec();
    p.extend_from_slice(cluster.as_bytes());
    p
}

fn send_message<W: Write>(w: &mut W, msg: &[u8]) -> io::Result<()> {
    let len =
        u16::try_from(msg.len()).map_err(|_| io::Error::other("handshake message too long"))?;
    let mut buf = len.to_be_bytes().to_vec();
    buf.extend_from_slice(msg);
    w.write_all(&buf)?;
    w.flush()
}

fn receive_message<R: Read>(r: &mut R, max: usize) -> Result<Vec<u8>, HandshakeError> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Err(HandshakeError::Refused(format!(
            "handshake message of {len} bytes (at most {max})"
        )));
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg)?;
    Ok(msg)
}

/// Dials side: authenticates the peer whose public key is `peer` on
/// `stream` (connected, with time-outs set), as cluster `cluster`'s host
/// `me`. Returns the sealing and opening halves of the connection.
pub fn initiate<S: Read + Write>(
    stream: &mut S,
    cluster: &str,
    me: &KeyPair,
    peer: &Key,
) -> Result<(Sealer, Opener), HandshakeError> {
    let refused = |e: snow::Error| HandshakeError::Refused(format!("noise: {e}"));
    let pro = prologue(cluster);
    let mut hs = builder(&pro, me)?
        .remote_public_key(peer)
        .map_err(refused)?
        .build_initiator()
        .map_err(refused)?;
    let mut buf = [0u8; MAX_HANDSHAKE];
    let n = hs.write_message(&[], &mut buf).map_err(refused)?;
    send_message(stream, &buf[..n])?;
    let answer = receive_message(stream, MAX_HANDSHAKE)?;
    hs.read_message(&answer, &mut buf)
        .map_err(|_| HandshakeError::Refused("the peer's answer does not prove its key".into()))?;
    halves(hs)
}

/// Accepting side: authenticates a dialer on `stream` whose static key is
/// one `known` accepts (it returns the peer's index). Returns that index
/// and the connection's halves. The dialer is proven to hold its key only
/// once a record from it opens.
pub fn respond<S: Read + Write>(
    stream: &mut S,
    cluster: &str,
    me: &KeyPair,
    known: impl Fn(&Key) -> Option<usize>,
) -> Result<(usize, Sealer, Opener), HandshakeError> {
    let refused = |e: snow::Error| HandshakeError::Refused(format!("noise: {e}"));
    let pro = prologue(cluster);
    let mut hs = builder(&pro, me)?.build_responder().map_err(refused)?;
    let first = receive_message(stream, MAX_HANDSHAKE)?;
    let mut buf = [0u8; MAX_HANDSHAKE];
    hs.read_message(&first, &mut buf).map_err(|_| {
        HandshakeError::Refused(
            "its handshake does not open with this host's key (another cluster, another key, or not WFS)"
                .into(),
        )
    })?;
    let theirs: Key = hs
        .get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| HandshakeError::Refused("no static key in its handshake".into()))?;
    let idx = known(&theirs).ok_or_else(|| {
        HandshakeError::Refused(format!(
            "its key {} is not a configured peer's",
            encode_key(&theirs)
        ))
    })?;
    let n = hs.write_message(&[], &mut buf).map_err(refused)?;
    send_message(stream, &buf[..n])?;
    let (sealer, opener) = halves(hs)?;
    Ok((idx, sealer, opener))
}

fn halves(hs: snow::HandshakeState) -> Result<(Sealer, Opener), HandshakeError> {
    let state = Arc::new(
        hs.into_stateless_transport_mode()
            .map_err(|e| HandshakeError::Refused(format!("noise: {e}")))?,
    );
    Ok((
        Sealer {
            cipher: Some(state.clone()),
            nonce: AtomicU64::new(0),
        },
        Opener {
            cipher: Some(state),
            nonce: 0,
        },
    ))
}

/// The sending half of a connection: turns the bytes of frames into what
/// goes on the wire. Whoever calls [`Sealer::seal`] must write its result
/// before anyone seals again (the nonce counts records in order).
pub struct Sealer {
    cipher: Option<Arc<snow::StatelessTransportState>>,
    nonce: AtomicU64,
}

impl Sealer {
    /// The half of a plain connection: bytes go as they are.
    pub fn plain() -> Sealer {
        Sealer {
            cipher: None,
            nonce: AtomicU64::new(0),
        }
    }

    /// What to write for the frame bytes `plain`.
    pub fn seal(&self, plain: Vec<u8>) -> Vec<u8> {
        let Some(cipher) = &self.cipher else {
            return plain;
        };
        let records = plain.len().div_ceil(MAX_PLAIN).max(1);
        let mut out = Vec::with_capacity(plain.len() + records * (2 + TAG));
        for chunk in plain.chunks(MAX_PLAIN) {
            let at = out.len();
            out.resize(at + 2 + chunk.len() + TAG, 0);
            let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
            // (Cannot fail: the chunk fits a message and the buffer fits the
            // chunk and its tag; a nonce cannot run out in 2^64 records.)
            let n = cipher
                .write_message(nonce, chunk, &mut out[at + 2..])
                .unwrap_or(0);
            let len = u16::try_from(n).unwrap_or(u16::MAX);
            out[at..at + 2].copy_from_slice(&len.to_be_bytes());
            out.truncate(at + 2 + n);
        }
        out
    }

    /// Seals `plain` and writes it to `w`.
    pub fn write_to<W: Write>(&self, w: &mut W, plain: Vec<u8>) -> io::Result<()> {
        w.write_all(&self.seal(plain))?;
        w.flush()
    }
}

/// The receiving half of a connection, before it has a reader.
pub struct Opener {
    cipher: Option<Arc<snow::StatelessTransportState>>,
    nonce: u64,
}

impl Opener {
    /// The half of a plain connection.
    pub fn plain() -> Opener {
        Opener {
            cipher: None,
            nonce: 0,
        }
    }

    /// A buffered reader of frame bytes from `inner`, taking up to
    /// `capacity` bytes of the wire at a time.
    pub fn reader<R: Read>(self, inner: R, capacity: usize) -> RecordReader<R> {
        RecordReader {
            inner,
            // (Room for a whole record at least.)
            buf: vec![0; capacity.max(2 + MAX_MESSAGE)],
            start: 0,
            end: 0,
            opener: self,
            plain: Vec::new(),
            pos: 0,
            failed: false,
        }
    }
}

/// Why a record did not open.
pub const TAMPERED: &str =
    "a record failed authentication (altered, replayed, dropped or out of order)";

/// Reads the frame bytes of a connection: as they are on a plain one,
/// opened record by record on an encrypted one.
pub struct RecordReader<R> {
    inner: R,
    /// Bytes of the wire, `start..end` not taken yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    opener: Opener,
    /// Opened bytes, `pos..` not read yet.
    plain: Vec<u8>,
    pos: usize,
    /// A record failed to open: nothing more is read (every later record
    /// would open under the wrong nonce or be an attacker's).
    failed: bool,
}

fn tampered() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TAMPERED)
}

impl<R: Read> RecordReader<R> {
    /// The stream read from.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The frame bytes at hand without waiting: on an encrypted
    /// connection, every whole record that has arrived is opened first.
    pub fn buffer(&mut self) -> io::Result<&[u8]> {
        if self.opener.cipher.is_none() {
            return Ok(&self.buf[self.start..self.end]);
        }
        if self.failed {
            return Err(tampered());
        }
        while let Some(len) = self.whole_record() {
            self.open_record(len)?;
        }
        Ok(&self.plain[self.pos..])
    }

    /// Reads what the wire has (waiting for something), after what is
    /// buffered. Returns the bytes read (0: the end of the stream).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The length of the record at the head of the buffer, if all of it
    /// is there.
    fn whole_record(&self) -> Option<usize> {
        let (len, rest) = self.buf[self.start..self.end].split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        (rest.len() >= len).then_some(len)
    }

    /// Opens the record of `len` bytes at the head of the buffer.
    fn open_record(&mut self, len: usize) -> io::Result<()> {
        let Some(cipher) = &self.opener.cipher else {
            return Ok(());
        };
        let body = self.start + 2..self.start + 2 + len;
        self.start = body.end;
        if len < TAG {
            self.failed = true;
            return Err(tampered());
        }
        if self.pos == self.plain.len() {
            self.plain.clear();
            self.pos = 0;
        }
        let at = self.plain.len();
        self.plain.resize(at + len - TAG, 0);
        match cipher.read_message(self.opener.nonce, &self.buf[body], &mut self.plain[at..]) {
            Ok(n) => {
                self.plain.truncate(at + n);
                self.opener.nonce += 1;
                Ok(())
            }
            Err(_) => {
                self.plain.truncate(at);
                self.failed = true;
                Err(tampered())
            }
        }
    }
}

impl<R: Read> Read for RecordReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.opener.cipher.is_none() {
            if self.start == self.end && self.fill()? == 0 {
                return Ok(0);
            }
            let n = out.len().min(self.end - self.start);
            out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        if self.failed {
            return Err(tampered());
        }
        while self.pos == self.plain.len() {
            match self.whole_record() {
                Some(len) => self.open_record(len)?,
                None => {
                    if self.fill()? == 0 {
                        if self.start < self.end {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the connection ended inside a record",
                            ));
                        }
                        return Ok(0);
                    }
                }
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// Two ends of a loopback connection with their key exchange done:
    /// (dialer's stream, sealer, reader), (acceptor's ...).
    /// One end of a connection: its stream, sealer and reader.
    type End = (TcpStream, Sealer, RecordReader<TcpStream>);

    fn pair() -> (End, End) {
        let a = KeyPair::generate().unwrap();
        let b = KeyPair::generate().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (a_public, b_public) = (a.public, b.public);
        let acceptor = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let (idx, seal, open) =
                respond(&mut s, "t", &b, |k| (*k == a_public).then_some(7)).unwrap();
            assert_eq!(idx, 7);
            let r = open.reader(s.try_clone().unwrap(), 1024);
            (s, seal, r)
        });
        let mut s = TcpStream::connect(addr).unwrap();
        let (seal, open) = initiate(&mut s, "t", &a, &b_public).unwrap();
        let r = open.reader(s.try_clone().unwrap(), 1024);
        ((s, seal, r), acceptor.join().unwrap())
    }

    #[test]
    fn keys_round_trip_and_a_private_key_gives_its_public_key() {
        let k = KeyPair::generate().unwrap();
        assert_eq!(decode_key(&encode_key(&k.public)).unwrap(), k.public);
        assert_eq!(KeyPair::from_private(k.private).unwrap(), k);
        assert_ne!(KeyPair::generate().unwrap(), k);
        assert!(
            decode_key("AAAA")
                .unwrap_err()
                .contains("a key is 32 bytes, not 3")
        );
        // The private key is never printed.
        let shown = format!("{k:?}");
        assert!(!shown.contains(&encode_key(&k.private)), "{shown}");
        assert!(shown.contains(&encode_key(&k.public)), "{shown}");
    }

    #[test]
    fn a_key_file_is_made_private_and_not_replaced() {
        let dir = crate::testkit::TestDir::new("secure-keys");
        let path = dir.path.join("host.key");
        let k = KeyPair::generate().unwrap();
        let public = k.write(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&public), 0o644);
        assert_eq!(KeyPair::load(&path).unwrap(), k);
        assert_eq!(
            decode_key(&std::fs::read_to_string(&public).unwrap()).unwrap(),
            k.public
        );
        let e = KeyPair::generate().unwrap().write(&path).unwrap_err();
        assert!(e.contains("exists; not replacing a key"), "{e}");
        assert_eq!(KeyPair::load(&path).unwrap(), k);
        for bad in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            let e = KeyPair::load(&path).unwrap_err();
            assert!(e.contains("others may read it"), "{bad:o}: {e}");
        }
    }

    #[test]
    fn frames_of_any_size_cross_sealed_and_arrive_whole() {
        let ((mut a, a_seal, mut a_read), (mut b, b_seal, mut b_read)) = pair();
        // Sizes around a record's: nothing, one byte, a record's worth,
        // one more, several records.
        let sizes = [
            0,
            1,
            MAX_PLAIN - 1,
            MAX_PLAIN,
            MAX_PLAIN + 1,
            3 * MAX_PLAIN + 17,
            200_000,
        ];
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        for m in &msgs {
            a_seal.write_to(&mut a, m.clone()).unwrap();
        }
        for m in &msgs {
            let mut got = vec![0u8; m.len()];
            b_read.read_exact(&mut got).unwrap();
            assert_eq!(&got, m);
        }
        // The other way, read a byte at a time for the first.
        b_seal.write_to(&mut b, b"hello".to_vec()).unwrap();
        let mut one = [0u8; 1];
        let mut got = Vec::new();
        for _ in 0..5 {
            a_read.read_exact(&mut one).unwrap();
            got.push(one[0]);
        }
        assert_eq!(got, b"hello");
        // A sealed record is not its plaintext.
        let sealed = a_seal.seal(b"secret page".to_vec());
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(sealed.len(), 2 + 11 + TAG);
    }

    #[test]
    fn what_has_arrived_is_opened_without_waiting() {
        let ((mut a, a_seal, _), (_b, _, mut b_read)) = pair();
        // Two records in one write: one read(2) takes both in.
        let mut both = a_seal.seal(b"one".to_vec());
        both.extend(a_seal.seal(b"two".to_vec()));
        a.write_all(&both).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut first = [0u8; 1];
        b_read.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"o");
        // The second is opened too, though nobody read it yet.
        assert_eq!(b_read.buffer().unwrap(), b"netwo");
        // And a record that has come in part is left for later.
        let third = a_seal.seal(b"three".to_vec());
        a.write_all(&third[..4]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut rest = [0u8; 5];
        b_read.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"netwo");
        a.write_all(&third[4..]).unwrap();
        b_read.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"three");
    }

    #[test]
    fn a_record_that_is_altered_replayed_or_dropped_does_not_open() {
        let ((mut a, a_seal, _), (_b, _, mut b_read)) = pair();
        let r1 = a_seal.seal(b"first".to_vec());
        let r2 = a_seal.seal(b"second".to_vec());
        let r3 = a_seal.seal(b"third".to_vec());
        a.write_all(&r1).unwrap();
        let mut got = [0u8; 5];
        b_read.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"first");
        // r2 dropped: r3 does not open in its place.
        a.write_all(&r3).unwrap();
        let e = b_read.read(&mut got).unwrap_err();
        assert_eq!(e.to_string(), TAMPERED);
        let _ = r2;
        // Replayed, and altered, on fresh connections.
        let ((mut a, a_seal, _), (_b, _, mut b_read)) = pair();
        let r1 = a_seal.seal(b"first".to_vec());
        a.write_all(&r1).unwrap();
        a.write_all(&r1).unwrap();
        b_read.read_exact(&mut got).unwrap();
        assert_eq!(b_read.read(&mut got).unwrap_err().to_string(), TAMPERED);
        let ((mut a, a_seal, _), (_b, _, mut b_read)) = pair();
        let mut r1 = a_seal.seal(b"first".to_vec());
        r1[3] ^= 4;
        a.write_all(&r1).unwrap();
        assert_eq!(b_read.read(&mut got).unwrap_err().to_string(), TAMPERED);
        // A forged record between two real ones, opened by `buffer()` (the
        // batching path): the failure sticks, and the real record after it
        // is not handed over.
        let ((mut a, a_seal, _), (_b, _, mut b_read)) = pair();
        let mut three = a_seal.seal(b"one".to_vec());
        three.extend([0, 20]);
        three.extend([0x77; 20]);
        three.extend(a_seal.seal(b"two".to_vec()));
        a.write_all(&three).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut one = [0u8; 3];
        b_read.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"one");
        assert_eq!(b_read.buffer().unwrap_err().to_string(), TAMPERED);
        assert_eq!(b_read.buffer().unwrap_err().to_string(), TAMPERED);
        assert_eq!(b_read.read(&mut one).unwrap_err().to_string(), TAMPERED);
        // The connection cut inside a record is no clean end.
        let ((mut a, a_seal, _), (_b, _, mut b_read)) = pair();
        let r = a_seal.seal(b"cut short".to_vec());
        a.write_all(&r[..r.len() - 3]).unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let e = b_read.read(&mut got).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    }
}
