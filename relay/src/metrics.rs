//! Aggregate counters of the relay, exported in the Prometheus text format when the operator
//! turns metrics on. Nothing here is ever keyed by room, hash, address, country or time: every
//! label is one of a fixed set of words defined in this file, so no value a client sends can
//! become a series.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a join ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum JoinOutcome {
    created,
    rejoined,
    paired,
    wrong_pin,
    wrong_code,
    code_required,
    locked,
    rate_limited,
    invalid,
    failed,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Limit {
    upgrade,
    lookup,
    create,
    sockets_per_ip,
    sockets_per_room,
}

/// Why a room went away.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Expiry {
    burned,
    ttl,
}

/// Which store operation a latency is of.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum StoreOp {
    write,
    flush,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: JoinOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: Limit,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: Expiry,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: StoreOp,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 3.3 s: sled writes are microseconds, fsyncs milliseconds.
    Histogram::new(exponential_buckets(0.000_05, 3.0, 11))
}

/// Process-wide counters. Cheap to update (atomics); the registry is only read by a scrape.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    connections: Counter,
    open_sockets: Gauge,
    joins: Family<OutcomeLabel, Counter>,
    messages: Counter,
    locks: Counter,
    refused: Family<LimitLabel, Counter>,
    expiries: Family<CauseLabel, Counter>,
    slow_consumers: Counter,
    extensions: Counter,
    store_latency: Family<OpLabel, Histogram, fn() -> Histogram>,
    // Set at each scrape from the registry of rooms and the store.
    live_rooms: Gauge,
    parked_rooms: Gauge,
    /// NaN while the store's count after start-up is still under way.
    stored_rooms: Gauge<f64, AtomicU64>,
    store_healthy: Gauge,
    rss_bytes: Gauge,
    cpu_seconds: Gauge<f64, AtomicU64>,
    open_fds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("stelgano");
        let m = Metrics {
            registry: Registry::default(),
            connections: Counter::default(),
            open_sockets: Gauge::default(),
            joins: Family::default(),
            messages: Counter::default(),
            locks: Counter::default(),
            refused: Family::default(),
            expiries: Family::default(),
            slow_consumers: Counter::default(),
            extensions: Counter::default(),
            store_latency: Family::new_with_constructor(latency_histogram),
            live_rooms: Gauge::default(),
            parked_rooms: Gauge::default(),
            stored_rooms: Gauge::default(),
            store_healthy: Gauge::default(),
            rss_bytes: Gauge::default(),
            cpu_seconds: Gauge::default(),
            open_fds: Gauge::default(),
        };
        registry.register(
            "connections",
            "WebSocket connections accepted",
            m.connections.clone(),
        );
        registry.register(
            "open_sockets",
            "WebSockets open now",
            m.open_sockets.clone(),
        );
        registry.register("joins", "Joins by outcome", m.joins.clone());
        registry.register(
            "messages",
            "Messages relayed (accepted send_message)",
            m.messages.clone(),
        );
        registry.register(
            "locks",
            "Locks started (rooms and pairings)",
            m.locks.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a limit, by limit",
            m.refused.clone(),
        );
        registry.register("rooms_expired", "Rooms gone, by cause", m.expiries.clone());
        registry.register(
            "slow_consumer_closes",
            "Sockets closed for not keeping up",
            m.slow_consumers.clone(),
        );
        registry.register(
            "extensions",
            "Extension tokens redeemed",
            m.extensions.clone(),
        );
        registry.register(
            "store_seconds",
            "Store write and flush latency",
            m.store_latency.clone(),
        );
        registry.register(
            "live_rooms",
            "Rooms with a running actor",
            m.live_rooms.clone(),
        );
        registry.register(
            "parked_rooms",
            "Rooms holding a message with no socket open",
            m.parked_rooms.clone(),
        );
        registry.register(
            "stored_rooms",
            "Rooms in the durable store (NaN while the count that follows start-up runs)",
            m.stored_rooms.clone(),
        );
        registry.register(
            "store_healthy",
            "1 while the store can write, 0 while it is failing",
            m.store_healthy.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size",
            m.rss_bytes.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time used",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            m.open_fds.clone(),
        );
        // Every label value starts at 0, so each series exists from the first scrape and a
        // `rate()` over it works before the first event.
        use JoinOutcome as J;
        for outcome in [
            J::created,
            J::rejoined,
            J::paired,
            J::wrong_pin,
            J::wrong_code,
            J::code_required,
            J::locked,
            J::rate_limited,
            J::invalid,
            J::failed,
        ] {
            drop(m.joins.get_or_create(&OutcomeLabel { outcome }));
        }
        use Limit as L;
        for limit in [
            L::upgrade,
            L::lookup,
            L::create,
            L::sockets_per_ip,
            L::sockets_per_room,
        ] {
            drop(m.refused.get_or_create(&LimitLabel { limit }));
        }
        for cause in [Expiry::burned, Expiry::ttl] {
            drop(m.expiries.get_or_create(&CauseLabel { cause }));
        }
        for op in [StoreOp::write, StoreOp::flush] {
            drop(m.store_latency.get_or_create(&OpLabel { op }));
        }
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub(crate) fn message(&self) {
        self.messages.inc();
    }

    pub(crate) fn room_expired(&self, cause: Expiry) {
        self.rooms_expired(cause, 1);
    }

    pub(crate) fn rooms_expired(&self, cause: Expiry, n: u64) {
        self.expiries.get_or_create(&CauseLabel { cause }).inc_by(n);
    }

    pub(crate) fn slow_consumer(&self, n: usize) {
        self.slow_consumers.inc_by(n as u64);
    }

    pub(crate) fn extension(&self) {
        self.extensions.inc();
    }

    pub(crate) fn opened(&self) {
        self.connections.inc();
        self.open_sockets.inc();
    }

    pub(crate) fn closed(&self) {
        self.open_sockets.dec();
    }

    pub(crate) fn join(&self, outcome: JoinOutcome) {
        self.joins.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub(crate) fn lock(&self) {
        self.locks.inc();
    }

    pub(crate) fn refused(&self, limit: Limit) {
        self.refused.get_or_create(&LimitLabel { limit }).inc();
    }

    pub(crate) fn store(&self, op: StoreOp, took: Duration) {
        self.store_latency
            .get_or_create(&OpLabel { op })
            .observe(took.as_secs_f64());
    }

    /// Totals for the shutdown log line.
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        let expired = [Expiry::burned, Expiry::ttl]
            .iter()
            .map(|&cause| self.expiries.get_or_create(&CauseLabel { cause }).get())
            .sum();
        (self.connections.get(), self.messages.get(), expired)
    }

    /// The text exposition, with the gauges that are read rather than counted set first.
    pub(crate) fn encode(&self, now: Snapshot) -> String {
        self.live_rooms.set(now.live_rooms as i64);
        self.parked_rooms.set(now.parked_rooms as i64);
        self.stored_rooms
            .set(now.stored_rooms.map_or(f64::NAN, |n| n as f64));
        self.store_healthy.set(i64::from(now.store_healthy));
        let p = process();
        self.rss_bytes.set(p.rss_bytes as i64);
        self.cpu_seconds.set(p.cpu_seconds);
        self.open_fds.set(p.open_fds as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// What a scrape reads from the relay at that moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub live_rooms: usize,
    pub parked_rooms: usize,
    /// `None` while the store is still counting its rooms after start-up.
    pub stored_rooms: Option<usize>,
    pub store_healthy: bool,
}

#[derive(Debug, Default)]
struct Process {
    rss_bytes: u64,
    cpu_seconds: f64,
    open_fds: u64,
}

/// This process's memory, CPU time and descriptors from /proc (zeros where there is none).
fn process() -> Process {
    let mut p = Process::default();
    #[cfg(target_os = "linux")]
    {
        // Pages: the second field of statm is the resident set; Linux pages here are 4 KiB
        // unless the kernel says otherwise, which it does not expose without libc.
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            if let Some(rss) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
            {
                p.rss_bytes = rss * 4096;
            }
        }
        // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                p.cpu_seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            p.open_fds = dir.count() as u64;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_series_and_only_fixed_labels() {
        let m = Metrics::default();
        m.opened();
        m.join(JoinOutcome::created);
        m.join(JoinOutcome::wrong_pin);
        m.refused(Limit::upgrade);
        m.room_expired(Expiry::burned);
        m.store(StoreOp::flush, Duration::from_millis(3));
        let text = m.encode(Snapshot {
            live_rooms: 2,
            parked_rooms: 1,
            stored_rooms: Some(5),
            store_healthy: true,
        });
        for series in [
            "stelgano_connections_total 1",
            "stelgano_open_sockets 1",
            "stelgano_joins_total{outcome=\"created\"} 1",
            "stelgano_joins_total{outcome=\"wrong_pin\"} 1",
            "stelgano_rate_limited_total{limit=\"upgrade\"} 1",
            "stelgano_rooms_expired_total{cause=\"burned\"} 1",
            "stelgano_store_seconds_count{op=\"flush\"} 1",
            "stelgano_live_rooms 2",
            "stelgano_stored_rooms 5",
            "stelgano_store_healthy 1",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        assert_eq!(m.totals(), (1, 0, 1));
    }
}
