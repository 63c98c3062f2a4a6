//! Logging: one line per event on stderr, prefixed `wfs-manager[HOST]: `.

use std::io::Write;
use std::sync::OnceLock;

static HOST: OnceLock<String> = OnceLock::new();

/// Sets the host name used in the prefix. Only the first call counts.
pub fn set_host(host: &str) {
    let _ = HOST.set(host.to_string());
}

/// The prefix of every line, without the trailing space.
pub fn prefix() -> String {
    match HOST.get() {
        Some(h) => format!("wfs-manager[{h}]:"),
        None => "wfs-manager:".to_string(),
    }
}

/// Writes one log line (in a single write, so lines of concurrent threads
/// never interleave).
pub fn line(msg: std::fmt::Arguments<'_>) {
    let s = format!("{} {}\n", prefix(), msg);
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// `wlog!("peer {} connected", name)`: logs one line.
#[macro_export]
macro_rules! wlog {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!($($arg)*))
    };
}
