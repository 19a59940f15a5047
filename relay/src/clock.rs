//! Wall-clock time for durable deadlines, advanced by tokio's clock so paused-time tests move it too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// "Now" in Unix milliseconds. Anchored once to `SystemTime` and then advanced by tokio's monotonic
/// `Instant`: a test that pauses and advances tokio time advances this clock (lockouts, TTLs), and in
/// production a wall-clock step (NTP) cannot make a lock end early.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    anchor_ms: u64,
    anchor: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let anchor_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            anchor_ms,
            anchor: Instant::now(),
        }
    }

    /// Current Unix time in milliseconds.
    pub(crate) fn now_ms(&self) -> u64 {
        self.anchor_ms + self.anchor.elapsed().as_millis() as u64
    }

    /// The tokio instant at which Unix time `ms` is reached (now, if it is already past).
    pub(crate) fn instant_at(&self, ms: u64) -> Instant {
        let now_ms = self.now_ms();
        Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let clock = Clock::new();
        let t0 = clock.now_ms();
        tokio::time::advance(Duration::from_secs(1800)).await;
        assert_eq!(clock.now_ms() - t0, 1_800_000);
        let at = clock.instant_at(t0 + 1_800_500);
        assert_eq!(at - Instant::now(), Duration::from_millis(500));
    }
}
