//! The `wfsctl` crate's library: its command line ([`cli`]), shared by the
//! `wfsctl` binary and whatever generates its man pages and completions.

pub mod cli;
