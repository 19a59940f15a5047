//! Lockout policy (ours, revised December 2026): counting failures against a `Guard`, locks that
//! escalate, and an escalation level that decays only after a quiet day.
//!
//! A lock is absolute: the relay cannot tell an owner from a guesser who guessed right, so while a
//! guard is locked nothing it guards is let in (PROTOCOL.md §3 join, case 4). The functions here
//! are pure; the room decides what to count and persists the guard.

use std::time::Duration;

use stelgano_store::Guard;

/// The numbers behind every lock, taken from the relay's config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockPolicy {
    /// Failures that lock (the one that reaches this count locks).
    pub max_failures: u32,
    /// The first lock; each further lock doubles, up to `max_lock`.
    pub first_lock: Duration,
    /// The ceiling for escalated locks.
    pub max_lock: Duration,
    /// Every full span of this long with no wrong or refused attempt lowers the level by one.
    pub decay: Duration,
}

/// What one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strike {
    /// Still open; this many failures remain before a lock.
    Remaining(u32),
    /// This failure locked the guard for this long.
    Locked { for_ms: u64 },
}

/// Milliseconds left on the guard's lock, if it is locked at `now_ms`.
pub(crate) fn locked_for(guard: &Guard, now_ms: u64) -> Option<u64> {
    (guard.locked_until_ms > now_ms).then(|| guard.locked_until_ms - now_ms)
}

/// The escalation level at `now_ms`, after the decay earned by quiet time since the last attempt.
pub(crate) fn level_at(guard: &Guard, now_ms: u64, policy: &LockPolicy) -> u32 {
    let decay_ms = (policy.decay.as_millis() as u64).max(1);
    let quiet_spans = now_ms.saturating_sub(guard.last_attempt_ms) / decay_ms;
    guard
        .level
        .saturating_sub(u32::try_from(quiet_spans).unwrap_or(u32::MAX))
}

/// Records an attempt at `now_ms` (wrong, or refused while locked): the decay earned so far is
/// kept, and the quiet time starts again from here. Without settling the level first, a new
/// attempt would bring back levels that had already decayed.
pub(crate) fn touch(guard: &mut Guard, now_ms: u64, policy: &LockPolicy) {
    guard.level = level_at(guard, now_ms, policy);
    guard.last_attempt_ms = guard.last_attempt_ms.max(now_ms);
}

/// Counts one failure at `now_ms`. The failure that reaches the limit locks for
/// `first_lock × 2^level` (capped), raises the level, and restarts the count for the next window.
pub(crate) fn strike(guard: &mut Guard, now_ms: u64, policy: &LockPolicy) -> Strike {
    touch(guard, now_ms, policy);
    let max = policy.max_failures.max(1);
    guard.failures = guard.failures.saturating_add(1);
    if guard.failures < max {
        return Strike::Remaining(max - guard.failures);
    }
    let for_ms = lock_ms(guard.level, policy);
    guard.failures = 0;
    guard.level = guard.level.saturating_add(1);
    guard.locked_until_ms = now_ms.saturating_add(for_ms);
    Strike::Locked { for_ms }
}

/// How long a lock at escalation `level` lasts.
pub(crate) fn lock_ms(level: u32, policy: &LockPolicy) -> u64 {
    let factor = 1u32.checked_shl(level.min(31)).unwrap_or(u32::MAX);
    let lock = policy
        .first_lock
        .checked_mul(factor)
        .unwrap_or(policy.max_lock)
        .min(policy.max_lock);
    lock.as_millis() as u64
}

/// Seconds for a `retry_after` field, rounded up so a client never retries a moment too early.
pub(crate) fn ms_to_retry_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const POLICY: LockPolicy = LockPolicy {
        max_failures: 10,
        first_lock: Duration::from_secs(30 * 60),
        max_lock: Duration::from_secs(24 * 3600),
        decay: Duration::from_secs(24 * 3600),
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
    fn the_level_decays_one_step_per_quiet_day_and_only_then() {
        let mut g = Guard {
            level: 3,
            last_attempt_ms: 10 * HOUR,
            ..Guard::default()
        };
        assert_eq!(level_at(&g, 10 * HOUR + 24 * HOUR - 1, &POLICY), 3);
        assert_eq!(level_at(&g, 34 * HOUR, &POLICY), 2);
        assert_eq!(level_at(&g, 82 * HOUR, &POLICY), 0);
        // An attempt 23 h into the quiet keeps the level and restarts the clock.
        touch(&mut g, 33 * HOUR, &POLICY);
        assert_eq!(level_at(&g, 56 * HOUR, &POLICY), 3);
        assert_eq!(level_at(&g, 57 * HOUR, &POLICY), 2);
        // Decay already earned is kept when the next attempt comes.
        touch(&mut g, 57 * HOUR, &POLICY);
        assert_eq!(g.level, 2);
        assert_eq!(level_at(&g, 57 * HOUR + 23 * HOUR, &POLICY), 2);
    }

    #[test]
    fn a_lock_after_decay_is_shorter_again() {
        let mut g = Guard::default();
        for _ in 0..3 {
            while !matches!(strike(&mut g, 0, &POLICY), Strike::Locked { .. }) {}
        }
        assert_eq!(g.level, 3);
        // Two quiet days: level 1, so the next lock lasts 60 minutes.
        let later = 48 * HOUR;
        let mut last = Strike::Remaining(0);
        for _ in 0..10 {
            last = strike(&mut g, later, &POLICY);
        }
        assert_eq!(last, Strike::Locked { for_ms: HOUR });
    }

    #[test]
    fn retry_seconds_round_up() {
        assert_eq!(ms_to_retry_secs(1), 1);
        assert_eq!(ms_to_retry_secs(1000), 1);
        assert_eq!(ms_to_retry_secs(1001), 2);
    }
}
