//! The WFS kernel<->manager upcall ABI, as seen from userspace.
//!
//! The definitions live in `rust/upcall/abi.rs`, which is also compiled into
//! `wfs.ko`; this crate only re-exports them so that the manager and
//! `wfsctl` can never drift from the kernel. The crate is `no_std` (outside
//! of its tests) so that any accidental use of `std` in the shared file is
//! caught here too.

#![cfg_attr(not(test), no_std)]

// The shared file is linted by the kernel build with its own settings; two
// purely stylistic clippy lints (which differ between editions) are
// silenced here rather than edited in the shared source.
#[path = "../../../rust/upcall/abi.rs"]
mod abi;

pub use abi::*;
