//! Where the manager's time goes: how long each stage of moving a page
//! takes, summed per stage, so that `make bench` can take a fault apart
//! (`wfsctl stats`, the `cost` lines; Documentation/benchmarks.md).
//!
//! The stages are the parts of a fault that happen in this manager or
//! between two of them:
//!
//! * [`Stage::Invalidate`]: one INVALIDATE ioctl (a page taken out of, or
//!   downgraded in, this host's kernel), as the manager waited for it.
//! * [`Stage::DiskRead`]: one page read from the export (the owner's
//!   `pread`).
//! * [`Stage::Fetch`]: at a requester, from a `WhereIs` sent to a page's
//!   `Data` for the same transaction received: the network both ways, both
//!   sessions and whatever the other side did.
//! * [`Stage::Serve`]: at the host that sends a page, from the `WhereIs`
//!   (or the owner's `Fetch`) received to the `Data` for its transaction
//!   handed to the connection.
//! * [`Stage::Answer`]: a READ, from its upcall read from `/dev/wfs` to
//!   its reply ready to be written: everything the manager did for it,
//!   waiting for the page included.
//! * [`Stage::Reply`]: the `write(2)` of a READ's reply: the kernel takes
//!   the reply and wakes the faulting task. On one CPU the woken task often
//!   runs (finishes its fault, and goes on) before the write returns, so
//!   this stage can hold some of the program's time: the READ line of the
//!   upcall statistics, which ends after the write, has it too.
//! * [`Stage::Worker`]: a READ, from its upcall read to the worker thread
//!   that read it back at `/dev/wfs` for the next request: the manager's
//!   whole turn on the CPU for it, what it did after the reply included
//!   (on one CPU the faulting task waits for that too). A READ handed to
//!   another thread already in the engine counts only the hand-over.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::latency::Timed;
use crate::protocol::{HostId, Txn};

/// A stage of moving a page; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// An INVALIDATE ioctl.
    Invalidate,
    /// A page read from the export.
    DiskRead,
    /// `WhereIs` sent → `Data` received.
    Fetch,
    /// `WhereIs` or `Fetch` received → `Data` sent.
    Serve,
    /// A READ's upcall read → its reply ready.
    Answer,
    /// A READ's reply written.
    Reply,
    /// A READ's upcall read → its worker reading again.
    Worker,
}

impl Stage {
    const ALL: [Stage; 7] = [
        Stage::Invalidate,
        Stage::DiskRead,
        Stage::Fetch,
        Stage::Serve,
        Stage::Answer,
        Stage::Reply,
        Stage::Worker,
    ];

    /// Its name in `wfsctl stats`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Invalidate => "invalidate",
            Stage::DiskRead => "disk_read",
            Stage::Fetch => "fetch",
            Stage::Serve => "serve",
            Stage::Answer => "answer",
            Stage::Reply => "reply",
            Stage::Worker => "worker",
        }
    }
}

/// What `wfsctl stats` shows of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStats {
    /// The stage's name ([`Stage::name`]).
    pub stage: String,
    /// Times it was measured.
    pub count: u64,
    /// Their sum, nanoseconds.
    pub total_ns: u64,
    /// The longest, nanoseconds.
    pub max_ns: u64,
    /// The median, nanoseconds, to 3 significant digits
    /// ([`crate::latency`]; 0 from a manager without percentiles).
    #[serde(default)]
    pub p50_ns: u64,
    /// The 99th percentile, nanoseconds, likewise.
    #[serde(default)]
    pub p99_ns: u64,
}

/// The sums of every stage, shared with the status report.
#[derive(Debug, Default)]
pub struct Costs {
    stages: [Timed; Stage::ALL.len()],
}

impl Costs {
    /// Adds one measurement of `stage`.
    pub fn record(&self, stage: Stage, ns: u64) {
        self.stages[stage as usize].record(ns);
    }

    /// Adds the time since `since` to `stage`.
    pub fn since(&self, stage: Stage, since: Instant) {
        self.record(stage, nanos_since(since));
    }

    /// The sums now, one entry per stage.
    pub fn snapshot(&self) -> Vec<StageStats> {
        Stage::ALL
            .iter()
            .map(|&s| {
                let t = self.stages[s as usize].now();
                StageStats {
                    stage: s.name().to_string(),
                    count: t.count,
                    total_ns: t.total_ns,
                    max_ns: t.max_ns,
                    p50_ns: t.p.p50_ns,
                    p99_ns: t.p.p99_ns,
                }
            })
            .collect()
    }
}

/// Nanoseconds since `t`.
pub fn nanos_since(t: Instant) -> u64 {
    nanos_between(t, Instant::now())
}

/// Nanoseconds from `a` to `b` (0 if `b` is earlier).
pub fn nanos_between(a: Instant, b: Instant) -> u64 {
    u64::try_from(b.saturating_duration_since(a).as_nanos()).unwrap_or(u64::MAX)
}

/// Transactions under way past this many are not timed (a peer that never
/// answers must not grow the tables without bound).
const MAX_OPEN: usize = 4096;

/// The start times of the page transactions under way, for
/// [`Stage::Fetch`] and [`Stage::Serve`]. Only the engine's thread uses
/// it.
#[derive(Debug, Default)]
pub struct Timers {
    /// This host's transactions: when their `WhereIs` went out.
    fetching: HashMap<Txn, Instant>,
    /// Other hosts' transactions this host is to send a page for, by the
    /// host the page goes to.
    serving: HashMap<(HostId, Txn), Instant>,
}

impl Timers {
    /// A `WhereIs` of this host's transaction `txn` went out (the first
    /// one counts).
    pub fn asked(&mut self, txn: Txn) {
        if self.fetching.len() < MAX_OPEN {
            self.fetching.entry(txn).or_insert_with(Instant::now);
        }
    }

    /// An answer to transaction `txn` came: its page (`costs` gets the
    /// time since it was asked for), or another answer (`costs` is
    /// `None`: a `Failed`, a `Stale`), which ends the timing.
    pub fn answered(&mut self, txn: Txn, costs: Option<&Costs>) {
        if let (Some(t), Some(c)) = (self.fetching.remove(&txn), costs) {
            c.since(Stage::Fetch, t);
        }
    }

    /// This host is to send a page to `to` for its transaction `txn`.
    /// Returns whether that started a timer (the first such request).
    pub fn to_serve(&mut self, to: HostId, txn: Txn) -> bool {
        if self.serving.len() < MAX_OPEN && !self.serving.contains_key(&(to, txn)) {
            self.serving.insert((to, txn), Instant::now());
            return true;
        }
        false
    }

    /// Whether a page is timed as to be sent to `to` for `txn`.
    pub fn serving(&self, to: HostId, txn: Txn) -> bool {
        self.serving.contains_key(&(to, txn))
    }

    /// Stops the timing of this host's transaction `txn`, an answer to
    /// which came: its start, for [`Timers::fetched`] or
    /// [`Timers::unanswered`].
    pub fn take_fetch(&mut self, txn: Txn) -> Option<Instant> {
        self.fetching.remove(&txn)
    }

    /// The page of `txn`, timed since `started`, came.
    pub fn fetched(started: Instant, costs: &Costs) {
        costs.since(Stage::Fetch, started);
    }

    /// The answer to `txn` was refused: its timing goes on from
    /// `started`.
    pub fn unanswered(&mut self, txn: Txn, started: Instant) {
        self.fetching.entry(txn).or_insert(started);
    }

    /// A message for transaction `txn` went to `to`: if it is the page
    /// (`costs` given), the time since the request came is added.
    pub fn served(&mut self, to: HostId, txn: Txn, costs: Option<&Costs>) {
        if let (Some(t), Some(c)) = (self.serving.remove(&(to, txn)), costs) {
            c.since(Stage::Serve, t);
        }
    }

    /// Forgets the transactions that started before `before`: answered
    /// in some other way (a page forwarded, refused, gone with a host), or
    /// never.
    pub fn prune(&mut self, before: Instant) {
        self.fetching.retain(|_, t| *t >= before);
        self.serving.retain(|_, t| *t >= before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_sum_and_keep_their_longest() {
        let c = Costs::default();
        c.record(Stage::Fetch, 300);
        c.record(Stage::Fetch, 100);
        c.record(Stage::Invalidate, 50);
        let s = c.snapshot();
        let by = |n: &str| s.iter().find(|x| x.stage == n).cloned();
        let f = by("fetch").expect("fetch");
        assert_eq!((f.count, f.total_ns, f.max_ns), (2, 400, 300));
        let i = by("invalidate").expect("invalidate");
        assert_eq!((i.count, i.total_ns), (1, 50));
        assert_eq!(by("serve").map(|x| x.count), Some(0));
        assert_eq!(s.len(), 7);
        assert_eq!((f.p50_ns, f.p99_ns), (100, 300));
        assert_eq!(by("serve").map(|x| (x.p50_ns, x.p99_ns)), Some((0, 0)));
    }

    #[test]
    fn stage_percentiles() {
        let c = Costs::default();
        for us in 1..=100u64 {
            c.record(Stage::DiskRead, us * 1000);
        }
        c.record(Stage::Reply, u64::MAX);
        let s = c.snapshot();
        let d = &s[Stage::DiskRead as usize];
        assert_eq!(
            (d.stage.as_str(), d.count, d.max_ns),
            ("disk_read", 100, 100_000)
        );
        assert!(d.p50_ns.abs_diff(50_000) <= 50, "{d:?}");
        assert!(d.p99_ns.abs_diff(99_000) <= 99, "{d:?}");
        let v = serde_json::to_value(d).unwrap();
        assert_eq!(v["p99_ns"].as_u64(), Some(d.p99_ns));
        assert_eq!(s[Stage::Reply as usize].max_ns, u64::MAX);
    }

    #[test]
    fn a_transaction_is_timed_once_from_its_first_request() {
        let c = Costs::default();
        let mut t = Timers::default();
        t.asked(7);
        t.asked(7);
        t.answered(8, Some(&c));
        assert_eq!(c.snapshot()[Stage::Fetch as usize].count, 0);
        t.answered(7, Some(&c));
        t.answered(7, Some(&c));
        assert_eq!(c.snapshot()[Stage::Fetch as usize].count, 1);
        // An answer that is not the page ends the timing unrecorded.
        t.asked(9);
        t.answered(9, None);
        t.answered(9, Some(&c));
        assert_eq!(c.snapshot()[Stage::Fetch as usize].count, 1);
    }

    #[test]
    fn serving_is_timed_per_requester_and_bounded() {
        let c = Costs::default();
        let mut t = Timers::default();
        t.to_serve(2, 5);
        t.to_serve(3, 5);
        t.served(2, 5, Some(&c));
        t.served(2, 5, Some(&c));
        assert_eq!(c.snapshot()[Stage::Serve as usize].count, 1);
        t.prune(Instant::now() + std::time::Duration::from_secs(1));
        t.served(3, 5, Some(&c));
        assert_eq!(c.snapshot()[Stage::Serve as usize].count, 1);
        for txn in 0..(MAX_OPEN as u64 + 10) {
            t.to_serve(4, txn);
            t.asked(txn);
        }
        assert_eq!(t.serving.len(), MAX_OPEN);
        assert_eq!(t.fetching.len(), MAX_OPEN);
        t.prune(Instant::now() - std::time::Duration::from_secs(60));
        assert_eq!(t.fetching.len(), MAX_OPEN);
        t.prune(Instant::now() + std::time::Duration::from_secs(1));
        assert!(t.fetching.is_empty() && t.serving.is_empty());
    }
}
