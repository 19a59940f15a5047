//! Aggregate counters of the relay (no per-room or per-client detail, by design).

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters, logged at shutdown; never keyed by room or address.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    pub connections_open: AtomicU64,
    pub messages: AtomicU64,
    pub rooms_expired: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// Extension tokens redeemed (with `redeem_extension` or on a creating join).
    pub extensions: AtomicU64,
}

impl Metrics {
    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    pub fn room_expired(&self) {
        self.rooms_expired.fetch_add(1, Ordering::Relaxed);
    }

    pub fn slow_consumer(&self, n: usize) {
        self.slow_consumers.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn extension(&self) {
        self.extensions.fetch_add(1, Ordering::Relaxed);
    }

    pub fn opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}
