//! The `wfsctl` crate's library: its command line ([`cli`]), shared by the
//! `wfsctl` binary and the `wfs-gen-docs` generator
//! (`src/bin/wfs-gen-docs.rs`), and the man pages and shell completions
//! that generator writes for both `wfsctl` and `wfs-manager` ([`docs`],
//! from [`cli`] and `wfs_manager::cli`).

pub mod cli;
pub mod docs;
