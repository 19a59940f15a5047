//! Expires rooms at their TTL: sleeps until the store's next expiry, then expires each due room,
//! through its actor when one is live (it broadcasts `room_expired` to any open socket and deletes
//! the record), or straight in the store when none is (the index knows only locators and times).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use crate::metrics::Expiry;
use crate::Shared;

/// Longest nap between checks, so a store written behind our back (or a clock step) is noticed.
const MAX_NAP: Duration = Duration::from_secs(60);
/// Rooms expired per store read.
const BATCH: usize = 256;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut last_prune = Instant::now();
    loop {
        let now_ms = shared.clock.now_ms();
        let mut stuck = false;
        match shared.store.due(now_ms, BATCH) {
            Ok(keys) => {
                let mut removed_here = 0u64;
                for key in &keys {
                    match shared.rooms.expire_due(&shared, key, now_ms).await {
                        Ok(true) => removed_here += 1,
                        Ok(false) => {}
                        Err(e) => {
                            warn!(error = %e, "could not expire a room; will retry");
                            stuck = true;
                        }
                    }
                    // Each expiry is a store transaction (about 0.25 ms, more on a big store)
                    // that need not await anything: without a yield, a minute in which 100,000
                    // rooms expire would hold this worker for tens of seconds (docs/SCALING.md).
                    tokio::task::yield_now().await;
                }
                // One flush makes the whole batch's removals durable before they count: a flush
                // per room cost an fsync each, most of a mass expiry's time (docs/SCALING.md).
                if removed_here > 0 {
                    match shared.store.flush().await {
                        Ok(()) => shared.metrics.rooms_expired(Expiry::ttl, removed_here),
                        Err(e) => {
                            warn!(error = %e, "could not flush expired rooms; will retry");
                            stuck = true;
                        }
                    }
                }
                if keys.len() == BATCH && !stuck {
                    continue;
                }
            }
            Err(e) => {
                warn!(error = %e, "store read failed in the sweeper");
                stuck = true;
            }
        }
        if last_prune.elapsed() >= MAX_NAP {
            shared.limits.prune();
            last_prune = Instant::now();
        }
        let mut wake = Instant::now() + MAX_NAP;
        if !stuck {
            if let Ok(Some(next_ms)) = shared.store.next_expiry_ms() {
                // A due entry that is still there after its actor looked is not ours to spin on.
                let at = shared.clock.instant_at(next_ms.max(now_ms + 1));
                wake = wake.min(at);
            }
        } else {
            wake = Instant::now() + Duration::from_secs(1);
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
