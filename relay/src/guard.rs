//! Lockout policy: counting failures against a `Guard` and escalating repeated locks (ours).

use std::time::Duration;

use stelgano_store::Guard;

/// The numbers behind every lock, taken from the relay's config.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    pub max_failures: u32,
    pub first_lock: Duration,
    pub max_lock: Duration,
}

/// What one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Still open; this many failures remain before a lock.
    Remaining(u32),
    /// This failure locked the guard for this long.
    Locked { for_ms: u64 },
}

/// Milliseconds left on the guard's lock, if it is locked at `now_ms`.
pub fn locked_for(guard: &Guard, now_ms: u64) -> Option<u64> {
    (guard.locked_until_ms > now_ms).then(|| guard.locked_until_ms - now_ms)
}

/// Counts one failure at `now_ms`. The failure that reaches the limit locks; the counter restarts
/// from zero for the next window, and each further lock of the same guard lasts twice as long as
/// the one before, up to the policy's ceiling, so guessing stays bounded over a room's whole life.
pub fn strike(guard: &mut Guard, now_ms: u64, policy: &LockPolicy) -> Strike {
    guard.failures = guard.failures.saturating_add(1);
    if guard.failures < policy.max_failures.max(1) {
        return Strike::Remaining(policy.max_failures - guard.failures);
    }
    let factor = 1u32.checked_shl(guard.lockouts.min(31)).unwrap_or(u32::MAX);
    let lock = policy
        .first_lock
        .checked_mul(factor)
        .unwrap_or(policy.max_lock)
        .min(policy.max_lock);
    let for_ms = lock.as_millis() as u64;
    guard.failures = 0;
    guard.lockouts = guard.lockouts.saturating_add(1);
    guard.locked_until_ms = now_ms.saturating_add(for_ms);
    Strike::Locked { for_ms }
}

/// Seconds for a `retry_after` field, rounded up so a client never retries a moment too early.
pub fn ms_to_retry_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockPolicy = LockPolicy {
        max_failures: 10,
        first_lock: Duration::from_secs(30 * 60),
        max_lock: Duration::from_secs(24 * 3600),
    };

    #[test]
    fn ten_failures_lock_for_thirty_minutes() {
        let mut g = Guard::default();
        for n in 1..10 {
            assert_eq!(strike(&mut g, 0, &POLICY), Strike::Remaining(10 - n));
            assert_eq!(locked_for(&g, 0), None);
        }
        assert_eq!(
            strike(&mut g, 1000, &POLICY),
            Strike::Locked { for_ms: 1_800_000 }
        );
        assert_eq!(locked_for(&g, 1000), Some(1_800_000));
        assert_eq!(locked_for(&g, 1_801_000), None);
    }

    #[test]
    fn repeated_locks_double_up_to_the_ceiling() {
        let mut g = Guard::default();
        let mut seen = Vec::new();
        for _ in 0..8 {
            loop {
                if let Strike::Locked { for_ms } = strike(&mut g, 0, &POLICY) {
                    seen.push(for_ms / 60_000);
                    break;
                }
            }
        }
        assert_eq!(seen, [30, 60, 120, 240, 480, 960, 1440, 1440]);
    }

    #[test]
    fn retry_seconds_round_up() {
        assert_eq!(ms_to_retry_secs(1), 1);
        assert_eq!(ms_to_retry_secs(1000), 1);
        assert_eq!(ms_to_retry_secs(1001), 2);
    }
}
