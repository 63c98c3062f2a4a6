// SPDX-License-Identifier: GPL-2.0

//! The upcall channel: `/dev/wfs`.
//!
//! The kernel sends requests to the registered manager through this
//! character device and the manager answers them (and, later, invalidates
//! pages). It replaces Chunk's signals and custom system calls, and allows
//! many requests in flight.
//!
//! - [`abi`]: the wire format shared with the manager (one source file).
//! - [`table`]: the outstanding-request table.
//! - [`channel`]: registration state shared by the device and the file
//!   system.
//! - [`device`]: the misc device and its ioctls.
//! - [`opens`]: the files this host has open, and which manager counts
//!   them.

// The ABI file is shared with userspace, which needs its items public and
// uses some the kernel does not.
#[allow(dead_code, unreachable_pub)]
pub(crate) mod abi;
pub(crate) mod channel;
pub(crate) mod device;
pub(crate) mod opens;
pub(crate) mod table;

#[cfg(CONFIG_KUNIT)]
mod tests;
