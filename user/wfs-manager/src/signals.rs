//! SIGTERM and SIGINT through a self-pipe: the handler only writes the
//! signal number into a pipe, and [`Signals::wait`] reads it back in
//! ordinary code. The manager's own request to restart ([`RESTART`])
//! comes the same way.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; `b` is a live byte. A full
        // pipe (EAGAIN) just drops the byte, which is fine: one is enough.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// What [`Signals::wait`] returns for [`request_restart`] (no signal has
/// number 0).
pub const RESTART: i32 = 0;

/// Asks the manager to restart as a new incarnation: [`Signals::wait`]
/// returns [`RESTART`].
pub fn request_restart() {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = RESTART as u8;
        // SAFETY: write(2) of one live byte to the self-pipe's write end.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// The read end of the self-pipe.
pub struct Signals {
    read_fd: libc::c_int,
}

impl Signals {
    /// Installs handlers for SIGTERM and SIGINT. Call once.
    pub fn install() -> io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 returns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // The write end must never block inside the handler.
        // SAFETY: plain fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(fds[1], libc::F_GETFL);
            libc::fcntl(fds[1], libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        WRITE_FD.store(fds[1], Ordering::Relaxed);
        for sig in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: a zeroed sigaction is valid; the handler only calls
            // async-signal-safe functions.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Signals { read_fd: fds[0] })
    }

    /// Blocks until SIGTERM or SIGINT arrives; returns its number.
    pub fn wait(&self) -> i32 {
        loop {
            let mut b = 0u8;
            // SAFETY: reads one byte into a live local.
            let n = unsafe { libc::read(self.read_fd, (&mut b as *mut u8).cast(), 1) };
            if n == 1 {
                return b as i32;
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The pipe cannot close while we hold the read end; treat any
            // other failure as a request to stop rather than spin.
            return libc::SIGTERM;
        }
    }
}

/// The signal's name, for the log.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        RESTART => "a request to restart",
        _ => "signal",
    }
}
