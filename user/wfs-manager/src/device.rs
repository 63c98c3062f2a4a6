//! `/dev/wfs`: opening it and its ioctls.
//!
//! The manager registers with [`register`] and keeps the returned
//! [`Device`] (and so the file descriptor) for its whole life: closing the
//! descriptor unregisters it in the kernel. Reading and writing upcall
//! messages on that descriptor is the job of a later `upcall` module.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use wfs_abi::{
    ABI_VERSION, Forget, IOC_FORGET, IOC_INVALIDATE, IOC_OPENS, IOC_REGISTER, IOC_SIZE, IOC_STATUS,
    Invalidate, OPENS_MAX, OpenEntry, Opens, Register, Size, Status,
};

/// Opens the device read-write, close-on-exec.
pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Issues `IOC_REGISTER` with `req`; returns the kernel's answer or the
/// errno.
pub fn ioctl_register(fd: RawFd, req: &Register) -> Result<Register, i32> {
    let mut buf = [0u8; Register::LEN];
    req.encode(&mut buf);
    // SAFETY: IOC_REGISTER reads and writes exactly Register::LEN bytes
    // (the size is encoded in the request number) and `buf` is that big
    // and lives across the call.
    let rc = unsafe { libc::ioctl(fd, IOC_REGISTER as _, buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Register::decode(&buf).map_err(|_| libc::EPROTO)
}

/// Issues `IOC_STATUS`; returns the kernel's status or the errno.
pub fn ioctl_status(fd: RawFd) -> Result<Status, i32> {
    let mut buf = [0u8; Status::LEN];
    // SAFETY: IOC_STATUS writes exactly Status::LEN bytes into `buf`.
    let rc = unsafe { libc::ioctl(fd, IOC_STATUS as _, buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Status::decode(&buf).map_err(|_| libc::EPROTO)
}

/// Issues `IOC_INVALIDATE` with `req`; returns the kernel's answer (its
/// `flags` filled in) or the errno.
pub fn ioctl_invalidate(fd: RawFd, req: &Invalidate) -> Result<Invalidate, i32> {
    let mut buf = [0u8; Invalidate::LEN];
    req.encode(&mut buf);
    // SAFETY: IOC_INVALIDATE reads and writes exactly Invalidate::LEN
    // bytes of `buf`, which lives across the call.
    let rc = unsafe { libc::ioctl(fd, IOC_INVALIDATE as _, buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Invalidate::decode(&buf).map_err(|_| libc::EPROTO)
}

/// Issues `IOC_FORGET` for `name`; returns the errno on failure.
pub fn ioctl_forget(fd: RawFd, name: &[u8]) -> Result<(), i32> {
    let mut buf = [0u8; Forget::LEN];
    Forget::encode(name, &mut buf).map_err(|_| libc::ENAMETOOLONG)?;
    // SAFETY: IOC_FORGET reads exactly Forget::LEN bytes of `buf`.
    let rc = unsafe { libc::ioctl(fd, IOC_FORGET as _, buf.as_ptr()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Issues `IOC_OPENS`: the files this host's kernel has open, with how
/// many opens each, which become this manager's to count (their RELEASEs
/// name its session). Asked once, after registering and before any OPEN
/// is answered. Returns the errno on failure.
pub fn ioctl_opens(fd: RawFd) -> Result<Vec<(u64, u32)>, i32> {
    let mut cap: u32 = 256;
    loop {
        let mut list = vec![0u8; cap as usize * OpenEntry::LEN];
        let mut buf = [0u8; Opens::LEN];
        Opens {
            buf: list.as_mut_ptr() as u64,
            cap,
            count: 0,
        }
        .encode(&mut buf);
        // SAFETY: IOC_OPENS reads and writes exactly Opens::LEN bytes of
        // `buf`, and writes at most `cap` entries of OpenEntry::LEN bytes
        // into `list`; both live across the call.
        let rc = unsafe { libc::ioctl(fd, IOC_OPENS as _, buf.as_mut_ptr()) };
        let answer = Opens::decode(&buf).map_err(|_| libc::EIO)?;
        if rc < 0 {
            let e = last_errno();
            // (More files than room: ask again with room for them.)
            if e == libc::E2BIG && answer.count > cap && answer.count <= OPENS_MAX {
                cap = answer.count.max(cap * 2).min(OPENS_MAX);
                continue;
            }
            return Err(e);
        }
        return list
            .chunks_exact(OpenEntry::LEN)
            .take(answer.count as usize)
            .map(|c| {
                OpenEntry::decode(c)
                    .map(|e| (e.file, e.count))
                    .map_err(|_| libc::EIO)
            })
            .collect();
    }
}

/// Issues `IOC_SIZE`: file `file` is `size` bytes long at its owner (the
/// kernel grows a cached inode that is shorter, never shrinks one); with
/// `cut`, it was cut to exactly that (a cached inode takes that size).
/// Returns the errno on failure; `EFBIG` for a size past
/// [`wfs_abi::SIZE_MAX`], which the kernel would refuse.
pub fn ioctl_size(fd: RawFd, file: u64, size: u64, cut: bool) -> Result<(), i32> {
    if size > wfs_abi::SIZE_MAX {
        return Err(libc::EFBIG);
    }
    let mut buf = [0u8; Size::LEN];
    Size { file, size, cut }.encode(&mut buf);
    // SAFETY: IOC_SIZE reads exactly Size::LEN bytes of `buf`, which lives
    // across the call.
    let rc = unsafe { libc::ioctl(fd, IOC_SIZE as _, buf.as_ptr()) };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Opens `path` and reads its status.
pub fn read_status(path: &Path) -> Result<Status, io::Error> {
    let f = open(path)?;
    ioctl_status(f.as_raw_fd()).map_err(io::Error::from_raw_os_error)
}

/// A registered device. Dropping it unregisters.
#[derive(Debug)]
pub struct Device {
    file: File,
    /// Path it was opened at.
    pub path: PathBuf,
    /// The kernel's answer to the registration.
    pub reg: Register,
}

impl Device {
    /// The file descriptor (for the future upcall loop).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The file itself.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Opens `path` and registers as this host's manager, with a message fit
/// for the operator on failure.
pub fn register(path: &Path) -> Result<Device, String> {
    let file = open(path).map_err(|e| open_error(path, &e))?;
    match ioctl_register(file.as_raw_fd(), &Register::request()) {
        Ok(reg) => Ok(Device {
            file,
            path: path.to_path_buf(),
            reg,
        }),
        Err(e) => {
            // On EPROTO, say which version the kernel speaks if it tells.
            let kernel_abi = if e == libc::EPROTO {
                ioctl_status(file.as_raw_fd()).ok().map(|s| s.abi_version)
            } else {
                None
            };
            Err(register_error(path, e, kernel_abi))
        }
    }
}

/// The operator's message for a failed open.
pub fn open_error(path: &Path, e: &io::Error) -> String {
    let p = path.display();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => format!(
            "cannot open {p}: {} (is wfs.ko loaded?)",
            describe_errno(e.raw_os_error().unwrap_or(0))
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "cannot open {p}: {} (needs CAP_SYS_ADMIN; run as root)",
            describe_errno(e.raw_os_error().unwrap_or(0))
        ),
        Some(n) => format!("cannot open {p}: {}", describe_errno(n)),
        None => format!("cannot open {p}: {e}"),
    }
}

/// The operator's message for a failed `IOC_REGISTER`.
pub fn register_error(path: &Path, errno: i32, kernel_abi: Option<u32>) -> String {
    let p = path.display();
    let what = describe_errno(errno);
    match errno {
        libc::EBUSY => format!(
            "cannot register with {p}: {what}: another manager is registered (see `wfsctl kstatus`)"
        ),
        libc::EPROTO => match kernel_abi {
            Some(k) => format!(
                "cannot register with {p}: {what}: ABI version mismatch (manager speaks abi {ABI_VERSION}, kernel abi {k})"
            ),
            None => format!(
                "cannot register with {p}: {what}: ABI version mismatch (manager speaks abi {ABI_VERSION})"
            ),
        },
        libc::EPERM | libc::EACCES => {
            format!("cannot register with {p}: {what}: needs CAP_SYS_ADMIN")
        }
        libc::ENOTTY | libc::EINVAL => format!(
            "cannot register with {p}: {what}: the device does not accept IOC_REGISTER (is it the wfs device?)"
        ),
        _ => format!("cannot register with {p}: {what}"),
    }
}

const ERRNO_NAMES: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EBADF, "EBADF"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::EFBIG, "EFBIG"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EROFS, "EROFS"),
    (libc::EPIPE, "EPIPE"),
    (libc::ERANGE, "ERANGE"),
    (libc::ENAMETOOLONG, "ENAMETOOLONG"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::EPROTO, "EPROTO"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::ECONNREFUSED, "ECONNREFUSED"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ESHUTDOWN, "ESHUTDOWN"),
    (libc::EALREADY, "EALREADY"),
];

/// The symbolic name of an errno (`"EBUSY"`), or `"E<n>"` if unknown.
pub fn errno_name(e: i32) -> String {
    ERRNO_NAMES
        .iter()
        .find(|(n, _)| *n == e)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("E{e}"))
}

/// Parses an errno name (`EBUSY`, case-insensitive) or number.
pub fn errno_from_name(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    if let Some(rest) = up.strip_prefix('E')
        && let Ok(n) = rest.parse::<i32>()
    {
        return Some(n);
    }
    ERRNO_NAMES.iter().find(|(_, n)| *n == up).map(|(e, _)| *e)
}

/// The C library's text for an errno (`"Device or resource busy"`).
pub fn strerror(e: i32) -> String {
    let s = io::Error::from_raw_os_error(e).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `"EBUSY (Device or resource busy)"`.
pub fn describe_errno(e: i32) -> String {
    format!("{} ({})", errno_name(e), strerror(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::EBUSY), "EBUSY");
        assert_eq!(errno_name(libc::EPROTO), "EPROTO");
        assert_eq!(errno_name(9999), "E9999");
        assert_eq!(errno_from_name("ebusy"), Some(libc::EBUSY));
        assert_eq!(errno_from_name("EPERM"), Some(libc::EPERM));
        assert_eq!(errno_from_name("71"), Some(71));
        assert_eq!(errno_from_name("E9999"), Some(9999));
        assert_eq!(errno_from_name("EWHATEVER"), None);
        for (e, _) in ERRNO_NAMES {
            assert_eq!(errno_from_name(&errno_name(*e)), Some(*e));
        }
        assert_eq!(
            describe_errno(libc::EBUSY),
            "EBUSY (Device or resource busy)"
        );
        // The ABI's errno numbers agree with the C library's.
        assert_eq!(wfs_abi::errno::EBUSY, libc::EBUSY);
        assert_eq!(wfs_abi::errno::EPROTO, libc::EPROTO);
        assert_eq!(wfs_abi::errno::EPERM, libc::EPERM);
        assert_eq!(wfs_abi::errno::ETIMEDOUT, libc::ETIMEDOUT);
        assert_eq!(wfs_abi::errno::ENAMETOOLONG, libc::ENAMETOOLONG);
        assert_eq!(wfs_abi::errno::EOPNOTSUPP, libc::EOPNOTSUPP);
    }

    #[test]
    fn messages() {
        let p = Path::new("/dev/wfs");
        assert!(register_error(p, libc::EBUSY, None).contains("another manager is registered"));
        assert!(register_error(p, libc::EPROTO, Some(2)).contains("ABI version mismatch"));
        assert!(register_error(p, libc::EPROTO, Some(2)).contains("kernel abi 2"));
        assert!(register_error(p, libc::EPERM, None).contains("needs CAP_SYS_ADMIN"));
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(open_error(p, &e).contains("is wfs.ko loaded?"));
        let e = io::Error::from_raw_os_error(libc::ENODEV);
        assert!(open_error(p, &e).contains("is wfs.ko loaded?"));
    }

    #[test]
    fn missing_device() {
        let e = register(Path::new("/nonexistent/wfs")).unwrap_err();
        assert!(
            e.contains("ENOENT") && e.contains("is wfs.ko loaded?"),
            "{e}"
        );
        assert!(read_status(Path::new("/nonexistent/wfs")).is_err());
    }

    #[test]
    fn not_a_wfs_device() {
        // /dev/null rejects unknown ioctls with ENOTTY.
        if let Ok(f) = open(Path::new("/dev/null")) {
            assert_eq!(ioctl_status(f.as_raw_fd()), Err(libc::ENOTTY));
            assert_eq!(
                ioctl_register(f.as_raw_fd(), &Register::request()),
                Err(libc::ENOTTY)
            );
            assert_eq!(ioctl_size(f.as_raw_fd(), 1, 4096, false), Err(libc::ENOTTY));
            assert_eq!(
                ioctl_size(f.as_raw_fd(), 1, wfs_abi::SIZE_MAX + 1, false),
                Err(libc::EFBIG)
            );
        }
    }
}
