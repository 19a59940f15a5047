//! Measurement containers: latency histograms (hdrhistogram, microseconds) and error tallies,
//! sharded so that thousands of room tasks can record without fighting over one lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track (longer ones saturate to it): one minute.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Three significant digits: 1 µs resolution up to 1 ms, 1 ms at one second.
const SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts; failure here would be a bug.
        #[allow(clippy::expect_used)]
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG)
            .expect("constant histogram bounds are valid");
        Latency { hist }
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so addition cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            mean_us: self.hist.mean(),
            p50_us: self.hist.value_at_quantile(0.50),
            p99_us: self.hist.value_at_quantile(0.99),
            p999_us: self.hist.value_at_quantile(0.999),
            max_us: self.hist.max(),
        }
    }
}

/// The percentiles the report prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Latency recording shared by many tasks: `shards` histograms behind their own locks; a task
/// always records into the shard its room index picks.
#[derive(Debug)]
pub struct SharedLatency {
    shards: Vec<Mutex<Latency>>,
}

impl SharedLatency {
    pub fn new(shards: usize) -> SharedLatency {
        SharedLatency {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Latency::new()))
                .collect(),
        }
    }

    pub fn record(&self, key: usize, d: Duration) {
        let shard = &self.shards[key % self.shards.len()];
        // A poisoned shard only means another task panicked mid-record; the counts are still
        // usable.
        let mut h = shard.lock().unwrap_or_else(|e| e.into_inner());
        h.record(d);
    }

    pub fn collect(&self) -> Latency {
        let mut all = Latency::new();
        for s in &self.shards {
            all.merge(&s.lock().unwrap_or_else(|e| e.into_inner()));
        }
        all
    }
}

/// Errors by reason: relay error reasons as the relay spelled them, and the bench's own transport
/// failures (`connect`, `handshake`, `closed`, `timeout`, ...).
#[derive(Debug, Default)]
pub struct Errors {
    by_reason: Mutex<BTreeMap<String, u64>>,
    total: AtomicU64,
}

impl Errors {
    pub fn add(&self, reason: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut m = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::new();
        // 1..=1000 µs, once each.
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert!((s.mean_us - 500.5).abs() < 0.5);
    }

    #[test]
    fn empty_histograms_summarise_to_zero_and_extremes_saturate() {
        assert_eq!(Latency::new().summary(), LatencySummary::default());
        let mut l = Latency::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.p50_us, 1);
        // Within hdrhistogram's 3-significant-digit resolution of the one-minute cap.
        assert!(s.max_us >= MAX_LATENCY_US && s.max_us <= MAX_LATENCY_US + MAX_LATENCY_US / 1000);
    }

    #[test]
    fn shards_merge_into_one_histogram() {
        let shared = SharedLatency::new(4);
        for key in 0..100 {
            shared.record(key, Duration::from_micros(100 + key as u64));
        }
        let all = shared.collect();
        assert_eq!(all.count(), 100);
        assert_eq!(all.summary().max_us, 199);
    }

    #[test]
    fn errors_are_tallied_by_reason() {
        let e = Errors::default();
        e.add("timeout");
        e.add("not_your_turn");
        e.add("timeout");
        assert_eq!(e.total(), 3);
        let m = e.snapshot();
        assert_eq!(m["timeout"], 2);
        assert_eq!(m["not_your_turn"], 1);
    }
}
