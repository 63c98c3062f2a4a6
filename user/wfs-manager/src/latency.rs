//! Distributions of service times, for the percentiles of `wfsctl stats`
//! (its upcall table, `cost` and `message` lines): one histogram per
//! request type, per stage and per page-protocol message kind
//! ([`crate::upcall::Stats`], [`crate::costs::Costs`],
//! [`crate::messages::Messages`]).
//!
//! Each is an HdrHistogram from the
//! [`hdrhistogram`](https://crates.io/crates/hdrhistogram) crate, in
//! nanoseconds, from 1 ns to [`MAX_NS`] (one hour), to 3 significant
//! digits: a time reads back within 0.1% of what was recorded (exactly
//! below 2048 ns). A longer time counts as [`MAX_NS`] (the exact longest
//! is kept beside, as `max_ns`); recording never fails and never panics.
//! The message kinds keep 2 digits ([`Latency::with_sigfig`]: within 1%,
//! about 37 KB each), there being some twenty of them.
//!
//! The counts live in a fixed array (about 270 KB, made at a kind's first
//! time and never grown), so a record is an index computation and an add,
//! without allocation, under a mutex of its own kind held for just that:
//! the counters beside it stay lock-free atomics, and the only other
//! taker of the lock is a status query reading the percentiles.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

/// The longest time a histogram tells apart, nanoseconds (one hour).
pub const MAX_NS: u64 = 3_600_000_000_000;

/// Significant decimal digits of each recorded time.
const SIGFIG: u8 = 3;

/// The distribution of one kind's times.
pub struct Latency {
    /// Made at the first record (a kind never seen costs nothing).
    hist: Mutex<Option<Histogram<u64>>>,
    /// Significant decimal digits it keeps.
    sigfig: u8,
}

/// The times of one kind (a request type, a stage, a message kind): how
/// many, their sum, the exact longest, and their distribution.
#[derive(Debug, Default)]
pub struct Timed {
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    latency: Latency,
}

/// What a [`Timed`] holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimedNow {
    /// How many times were recorded.
    pub count: u64,
    /// Their sum, nanoseconds.
    pub total_ns: u64,
    /// The exact longest, nanoseconds.
    pub max_ns: u64,
    /// Their percentiles, none above `max_ns`.
    pub p: Percentiles,
}

impl TimedNow {
    /// The mean, nanoseconds (0 when nothing was recorded).
    pub fn mean_ns(&self) -> u64 {
        self.total_ns.checked_div(self.count).unwrap_or(0)
    }
}

impl Timed {
    /// Its distribution to `sigfig` significant digits ([`Latency::with_sigfig`]).
    pub fn with_sigfig(sigfig: u8) -> Timed {
        Timed {
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            latency: Latency::with_sigfig(sigfig),
        }
    }

    /// Adds one time of `ns` nanoseconds.
    pub fn record(&self, ns: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        self.latency.record(ns);
    }

    /// What it holds now.
    pub fn now(&self) -> TimedNow {
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        TimedNow {
            count: self.count.load(Ordering::Relaxed),
            total_ns: self.total_ns.load(Ordering::Relaxed),
            max_ns,
            p: self.latency.percentiles().at_most(max_ns),
        }
    }
}

impl Default for Latency {
    /// To 3 significant digits (about 270 KB once made).
    fn default() -> Latency {
        Latency::with_sigfig(SIGFIG)
    }
}

/// What `wfsctl stats` shows of a distribution, nanoseconds (0 when
/// nothing was recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// The median.
    pub p50_ns: u64,
    /// The 99th percentile.
    pub p99_ns: u64,
    /// The longest, to the histogram's precision.
    pub max_ns: u64,
}

impl Percentiles {
    /// With no percentile above `max_ns`, the exact longest time: a
    /// histogram reads a time back as the top of its bucket, up to 0.1%
    /// above it.
    pub fn at_most(self, max_ns: u64) -> Percentiles {
        Percentiles {
            p50_ns: self.p50_ns.min(max_ns),
            p99_ns: self.p99_ns.min(max_ns),
            max_ns: self.max_ns.min(max_ns),
        }
    }
}

impl Latency {
    /// To `sigfig` significant digits (1 to 5): at 2, a time reads back
    /// within 1% of what was recorded (exactly below 256 ns), and the
    /// counts take about 37 KB instead of 270 KB.
    pub fn with_sigfig(sigfig: u8) -> Latency {
        Latency {
            hist: Mutex::new(None),
            sigfig: sigfig.clamp(1, 5),
        }
    }

    /// Adds one time of `ns` nanoseconds (past [`MAX_NS`]: as
    /// [`MAX_NS`]).
    pub fn record(&self, ns: u64) {
        let mut h = self.hist.lock().unwrap_or_else(PoisonError::into_inner);
        if h.is_none() {
            // Only fails for bounds out of its range, which these are not;
            // should it, the kind simply has no percentiles.
            *h = Histogram::new_with_bounds(1, MAX_NS, self.sigfig).ok();
        }
        if let Some(h) = h.as_mut() {
            h.saturating_record(ns.min(MAX_NS));
        }
    }

    /// The percentiles of everything recorded so far.
    pub fn percentiles(&self) -> Percentiles {
        let h = self.hist.lock().unwrap_or_else(PoisonError::into_inner);
        match h.as_ref() {
            Some(h) if !h.is_empty() => Percentiles {
                p50_ns: h.value_at_quantile(0.5),
                p99_ns: h.value_at_quantile(0.99),
                max_ns: h.max(),
            },
            _ => Percentiles::default(),
        }
    }

    /// Times recorded.
    pub fn len(&self) -> u64 {
        let h = self.hist.lock().unwrap_or_else(PoisonError::into_inner);
        h.as_ref().map_or(0, |h| h.len())
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("len", &self.len())
            .field("sigfig", &self.sigfig)
            .field("percentiles", &self.percentiles())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the histogram's precision (3 significant digits).
    fn near(got: u64, want: u64) -> bool {
        got.abs_diff(want) <= want / 1000 + 1
    }

    #[test]
    fn percentiles_of_known_times() {
        let l = Latency::default();
        assert_eq!(l.percentiles(), Percentiles::default());
        assert!(l.is_empty());
        for us in 1..=100u64 {
            l.record(us * 1000);
        }
        let p = l.percentiles();
        assert!(near(p.p50_ns, 50_000), "{p:?}");
        assert!(near(p.p99_ns, 99_000), "{p:?}");
        assert!(near(p.max_ns, 100_000), "{p:?}");
        assert_eq!(l.len(), 100);
        // 6000 ns reads back as the top of its bucket, 6003 ns.
        let l = Latency::default();
        l.record(6000);
        assert_eq!(l.percentiles().p99_ns, 6003);
        let p = l.percentiles().at_most(6000);
        assert_eq!((p.p50_ns, p.p99_ns, p.max_ns), (6000, 6000, 6000));
    }

    #[test]
    fn short_times_are_exact() {
        let l = Latency::default();
        for ns in [0, 1, 7, 2047] {
            l.record(ns);
        }
        assert_eq!(l.percentiles().p50_ns, 1);
        assert_eq!(l.percentiles().max_ns, 2047);
    }

    #[test]
    fn times_out_of_range_are_clamped_not_fatal() {
        let l = Latency::default();
        l.record(u64::MAX);
        l.record(MAX_NS + 1);
        l.record(5);
        let p = l.percentiles();
        assert_eq!(l.len(), 3);
        assert!(near(p.max_ns, MAX_NS), "{p:?}");
        assert!(near(p.p99_ns, MAX_NS), "{p:?}");
        assert!(near(p.p50_ns, MAX_NS), "{p:?}");
    }

    #[test]
    fn two_digits_are_within_one_percent() {
        let l = Latency::with_sigfig(2);
        for us in 1..=100u64 {
            l.record(us * 1000);
        }
        let p = l.percentiles();
        assert!(p.p50_ns.abs_diff(50_000) <= 500, "{p:?}");
        assert!(p.p99_ns.abs_diff(99_000) <= 990, "{p:?}");
        assert!(p.max_ns.abs_diff(100_000) <= 1000, "{p:?}");
        // 6000 ns reads back as the top of its (coarser) bucket.
        let l = Latency::with_sigfig(2);
        l.record(6000);
        assert_eq!(l.percentiles().p99_ns, 6015);
        l.record(255);
        assert_eq!(l.percentiles().p50_ns, 255);
    }

    #[test]
    fn a_poisoned_lock_still_records() {
        let l = std::sync::Arc::new(Latency::default());
        let l2 = l.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.hist.lock();
            panic!("poison");
        })
        .join();
        l.record(10);
        assert_eq!(l.percentiles().max_ns, 10);
    }
}
