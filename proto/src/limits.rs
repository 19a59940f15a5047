//! Default limits of sTELgano-std-1 (PROTOCOL.md §8); the relay makes each one configurable.

use std::time::Duration;

/// Largest decoded ciphertext (ciphertext plus GCM tag) a message may carry.
pub const MAX_CIPHERTEXT_BYTES: usize = 8_192;
/// An AES-GCM IV is exactly 96 bits (ours: the relay enforces it).
pub const IV_BYTES: usize = 12;
/// Largest WebSocket message the relay accepts (ours); larger ones close the socket with 1009.
pub const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;
/// Failures (wrong PIN or wrong pairing code) before a lock.
pub const MAX_FAILURES: u32 = 10;
/// Length of the first lock; repeated locks of one room double it (ours).
pub const FIRST_LOCK: Duration = Duration::from_secs(30 * 60);
/// Ceiling for escalated locks (ours).
pub const MAX_LOCK: Duration = Duration::from_secs(24 * 60 * 60);
/// Every join reply waits at least this long after the join arrived.
pub const JOIN_FLOOR: Duration = Duration::from_millis(500);
/// Plus a uniformly random extra delay of up to this much.
pub const JOIN_JITTER: Duration = Duration::from_millis(125);
/// Lifetime of a free room.
pub const FREE_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Lifetime added by an extension token.
pub const EXTENDED_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// WebSocket upgrades (and `exists` look-ups) per IP per minute.
pub const UPGRADES_PER_MIN: u32 = 30;
/// Room creations plus seat claims per IP per minute (ours; the public service uses 3).
pub const ROOM_CREATES_PER_MIN: u32 = 10;
/// Ref used when a frame cannot be parsed far enough to find its own.
pub const FALLBACK_REF: &str = "0";
/// Longest `ref` the relay echoes (ours: a ref is the client's label, not a payload).
pub const MAX_REF_CHARS: usize = 64;
