//! How long this manager takes to handle each kind of page-protocol
//! message it receives from a peer (`wfsctl stats`, the `message` lines).
//!
//! A message's time is its service time here: from the engine taking it
//! in (the session has delivered it, in order) until the core has handled
//! it and the engine has carried out everything that caused (messages
//! handed to connections, grants written to the kernel, disk reads,
//! pages taken from the kernel and what they in turn caused). It is not
//! the network's time, nor the time the message waited in the engine's
//! queue. A message the engine or the core refuses counts too (it was
//! handled, by refusing it).
//!
//! The cost is two clock reads and one record per message; a kind's
//! histogram is made at its first message, to 2 significant digits
//! (within 1%, about 37 KB each, [`crate::latency`]): there are some
//! twenty kinds, and the exact longest time is kept beside.

use serde::{Deserialize, Serialize};

use crate::latency::Timed;
use crate::protocol::Msg;

/// Significant digits of the message kinds' histograms.
const SIGFIG: u8 = 2;

/// The kinds, in [`kind`]'s order: `wfsctl stats` lists them so.
pub const KINDS: [&str; 22] = [
    "WhereIs",
    "Fetch",
    "Data",
    "Absent",
    "Done",
    "Put",
    "PutAck",
    "Failed",
    "Returned",
    "Recover",
    "Recovered",
    "Released",
    "Leaving",
    "Holding",
    "Orphan",
    "Share",
    "Kept",
    "Revoke",
    "Revoked",
    "Upgrade",
    "Upgraded",
    "Stale",
];

/// `m`'s kind: its index in [`KINDS`].
pub fn kind(m: &Msg) -> usize {
    match m {
        Msg::WhereIs { .. } => 0,
        Msg::Fetch { .. } => 1,
        Msg::Data { .. } => 2,
        Msg::Absent { .. } => 3,
        Msg::Done { .. } => 4,
        Msg::Put { .. } => 5,
        Msg::PutAck { .. } => 6,
        Msg::Failed { .. } => 7,
        Msg::Returned { .. } => 8,
        Msg::Recover { .. } => 9,
        Msg::Recovered { .. } => 10,
        Msg::Released { .. } => 11,
        Msg::Leaving { .. } => 12,
        Msg::Holding { .. } => 13,
        Msg::Orphan { .. } => 14,
        Msg::Share { .. } => 15,
        Msg::Kept { .. } => 16,
        Msg::Revoke { .. } => 17,
        Msg::Revoked { .. } => 18,
        Msg::Upgrade { .. } => 19,
        Msg::Upgraded { .. } => 20,
        Msg::Stale { .. } => 21,
    }
}

/// What `wfsctl stats` shows of one message kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStats {
    /// The kind, as the protocol names it (`Fetch`, `Data`, ...).
    pub kind: String,
    /// Messages of it handled.
    pub count: u64,
    /// Mean handling time, nanoseconds.
    pub mean_ns: u64,
    /// Longest handling time, nanoseconds.
    pub max_ns: u64,
    /// Median handling time, nanoseconds, to 2 significant digits.
    pub p50_ns: u64,
    /// 99th percentile of the handling time, nanoseconds, likewise.
    pub p99_ns: u64,
}

/// The handling times of every kind, shared with the status report.
pub struct Messages {
    kinds: [Timed; KINDS.len()],
}

impl Default for Messages {
    fn default() -> Messages {
        Messages {
            kinds: std::array::from_fn(|_| Timed::with_sigfig(SIGFIG)),
        }
    }
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.snapshot()).finish()
    }
}

impl Messages {
    /// Adds one message of kind `kind` ([`kind`]) handled in `ns`
    /// nanoseconds (a kind out of range is ignored).
    pub fn record(&self, kind: usize, ns: u64) {
        if let Some(c) = self.kinds.get(kind) {
            c.record(ns);
        }
    }

    /// Every kind received at least once, in [`KINDS`] order.
    pub fn snapshot(&self) -> Vec<MessageStats> {
        self.kinds
            .iter()
            .zip(KINDS)
            .filter_map(|(c, name)| {
                let t = c.now();
                (t.count > 0).then(|| MessageStats {
                    kind: name.to_string(),
                    count: t.count,
                    mean_ns: t.mean_ns(),
                    max_ns: t.max_ns,
                    p50_ns: t.p.p50_ns,
                    p99_ns: t.p.p99_ns,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{PageId, Txn};

    #[test]
    fn kinds_are_named_as_the_protocol_names_them() {
        let page = PageId { file: 1, index: 2 };
        let txn: Txn = 7;
        for (m, name) in [
            (Msg::Done { txn, page }, "Done"),
            (Msg::Stale { txn, page }, "Stale"),
            (Msg::Released { page }, "Released"),
            (Msg::Leaving { incarnation: 3 }, "Leaving"),
        ] {
            assert_eq!(KINDS[kind(&m)], name);
            assert!(format!("{m:?}").starts_with(name), "{m:?}");
        }
    }

    #[test]
    fn reports_the_kinds_received_with_their_percentiles() {
        let m = Messages::default();
        assert!(m.snapshot().is_empty());
        // Data recorded first, but listed after Fetch (protocol order).
        for us in 1..=100u64 {
            m.record(kind_of("Data"), us * 1000);
        }
        for ns in [4000, 5000, 300_000] {
            m.record(kind_of("Fetch"), ns);
        }
        m.record(KINDS.len(), 7); // no such kind: ignored
        let s = m.snapshot();
        let kinds: Vec<&str> = s.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["Fetch", "Data"]);
        let (fetch, data) = (&s[0], &s[1]);
        assert_eq!((fetch.count, data.count), (3, 100));
        assert_eq!((fetch.max_ns, data.max_ns), (300_000, 100_000));
        assert_eq!((fetch.mean_ns, data.mean_ns), (103_000, 50_500));
        assert!(data.p50_ns.abs_diff(50_000) <= 500, "{data:?}");
        assert!(data.p99_ns.abs_diff(99_000) <= 990, "{data:?}");
        assert!(fetch.p50_ns.abs_diff(5000) <= 50, "{fetch:?}");
        for k in &s {
            assert!(0 < k.p50_ns && k.p50_ns <= k.p99_ns, "{k:?}");
            assert!(k.p99_ns <= k.max_ns, "{k:?}");
        }
    }

    fn kind_of(name: &str) -> usize {
        KINDS.iter().position(|&k| k == name).unwrap()
    }
}
