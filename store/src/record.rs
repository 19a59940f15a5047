//! The durable per-room record and its sealed on-disk encoding (format version 2).
//!
//! A stored value is
//! `[version = 2][ttl_expires_at_ms, 8 bytes BE][nonce, 12 bytes][AES-256-GCM ciphertext + tag]`,
//! where the plaintext is the bincode 2 encoding (standard configuration: little-endian,
//! variable-length integers) of a [`RoomRecord`], the key is the room's seal key, and the
//! associated data is the 9-byte clear header followed by the record's locator.
//!
//! The expiry stays in clear so that the sweeper, which never learns room hashes, can index,
//! find and remove due records. Binding the header and the locator into the tag means a header
//! cannot be edited, and a value cannot be moved under another locator, without the record
//! failing to open; and the decrypted record's own expiry must equal the header's. Anything
//! this release does not understand opens to [`StoreError::Corrupt`], never a panic.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bincode::{Decode, Encode};

use crate::keys::{Locator, RoomKeys};
use crate::StoreError;

/// A room hash: the 32 bytes the relay derives [`RoomKeys`] from. Kept as a name for callers
/// written against format 1, where it was the store's key.
pub type RoomKey = [u8; 32];

/// The format version written in front of every value by this release.
pub(crate) const FORMAT_V2: u8 = 2;

/// Version byte and expiry: the part of a value anyone can read.
pub(crate) const HEADER_LEN: usize = 1 + 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Everything the relay must remember about a room across restarts: identity, times, tier,
/// seats, failure counters and lock deadlines. Never message content.
///
/// `PartialEq` compares the hashes in ordinary (variable) time; it is for tests and bookkeeping.
/// Where a hash presented by a client is checked against a stored one, use `subtle`.
///
/// `Debug` redacts `room_id` and every hash, so a record may appear in a log line.
#[derive(Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct RoomRecord {
    /// The room's UUID v4 bytes; fixed for the room's life.
    pub room_id: [u8; 16],
    /// When the room was created, Unix ms.
    pub created_at_ms: u64,
    /// When the room expires, Unix ms. The store indexes records by this field.
    pub ttl_expires_at_ms: u64,
    /// The room's tier.
    pub tier: Tier,
    /// The two seats; `None` is an open seat.
    pub seats: [Option<Seat>; 2],
    /// Wrong-PIN guesses against the room as a whole (never against one seat).
    pub guesses: Guard,
    /// The pairing code's hash (`otp_hash`) while the second seat is open.
    pub pairing_hash: Option<[u8; 32]>,
    /// Wrong pairing codes.
    pub pairing: Guard,
}

/// One occupied seat.
///
/// `Debug` redacts both hashes.
#[derive(Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct Seat {
    /// The seat's access hash.
    pub access_hash: [u8; 32],
    /// The seat's sender hash.
    pub sender_hash: [u8; 32],
    /// Failed attempts on this seat since its holder last joined.
    pub failed_since_join: u32,
}

/// A failure counter with its lockout state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode)]
pub struct Guard {
    /// Failures counted towards the next lockout.
    pub failures: u32,
    /// Locked until this Unix ms; 0 means never locked.
    pub locked_until_ms: u64,
    /// The escalation level: how far the lockout durations have escalated.
    pub level: u32,
    /// The last wrong or refused attempt, Unix ms (0: none), from which the level decays.
    pub last_attempt_ms: u64,
}

/// A room's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, Decode)]
pub enum Tier {
    /// The default tier.
    #[default]
    Free,
    /// A paid room.
    Paid,
}

/// Stands in for a secret-bearing field in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for RoomRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomRecord")
            .field("room_id", &Redacted)
            .field("created_at_ms", &self.created_at_ms)
            .field("ttl_expires_at_ms", &self.ttl_expires_at_ms)
            .field("tier", &self.tier)
            .field("seats", &self.seats)
            .field("guesses", &self.guesses)
            .field(
                "pairing_hash",
                &self.pairing_hash.as_ref().map(|_| Redacted),
            )
            .field("pairing", &self.pairing)
            .finish()
    }
}

impl fmt::Debug for Seat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seat")
            .field("access_hash", &Redacted)
            .field("sender_hash", &Redacted)
            .field("failed_since_join", &self.failed_since_join)
            .finish()
    }
}

/// The bincode configuration of the sealed plaintext. Changing it changes what is on disk, so it
/// may only change together with a new format version.
pub(crate) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Seals a record into a version-2 value under `keys`.
pub(crate) fn seal(keys: &RoomKeys, rec: &RoomRecord) -> Result<Vec<u8>, StoreError> {
    seal_with_header(keys, rec, rec.ttl_expires_at_ms)
}

/// [`seal`] with the clear expiry given separately; only tests pass one that differs.
fn seal_with_header(
    keys: &RoomKeys,
    rec: &RoomRecord,
    header_expiry_ms: u64,
) -> Result<Vec<u8>, StoreError> {
    let plain = bincode::encode_to_vec(rec, bincode_config())
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    let header = header(header_expiry_ms);
    // Random rather than counted: a counter would need state that survives restarts and
    // reopenings. A room is written a few hundred times at most, far below the birthday bound
    // of 96-bit nonces under its own key.
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher(keys)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plain,
                aad: &aad(&header, &keys.locator()),
            },
        )
        .map_err(|_| StoreError::Encode("sealing failed".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a version-2 value stored under `keys.locator()`. Every byte must be accounted for.
pub(crate) fn open(keys: &RoomKeys, bytes: &[u8]) -> Result<RoomRecord, StoreError> {
    let expiry = header_expiry(bytes)?;
    let rest = &bytes[HEADER_LEN..];
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(StoreError::Corrupt("room value too short"));
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let mut nonce_bytes = [0u8; NONCE_LEN];
    nonce_bytes.copy_from_slice(nonce);
    let mut header_bytes = [0u8; HEADER_LEN];
    header_bytes.copy_from_slice(&bytes[..HEADER_LEN]);
    let plain = cipher(keys)
        .decrypt(
            &Nonce::from(nonce_bytes),
            Payload {
                msg: sealed,
                aad: &aad(&header_bytes, &keys.locator()),
            },
        )
        .map_err(|_| StoreError::Corrupt("room value does not open"))?;
    let (rec, used) = bincode::decode_from_slice::<RoomRecord, _>(&plain, bincode_config())
        .map_err(|_| StoreError::Corrupt("room value does not decode"))?;
    if used != plain.len() {
        return Err(StoreError::Corrupt("trailing bytes after room value"));
    }
    if rec.ttl_expires_at_ms != expiry {
        return Err(StoreError::Corrupt(
            "room value header disagrees with record",
        ));
    }
    Ok(rec)
}

/// The clear expiry of a version-2 value, read without the seal key.
pub(crate) fn header_expiry(bytes: &[u8]) -> Result<u64, StoreError> {
    let (&version, rest) = bytes
        .split_first()
        .ok_or(StoreError::Corrupt("empty room value"))?;
    if version != FORMAT_V2 {
        return Err(StoreError::Corrupt("unknown room value format version"));
    }
    let at: [u8; 8] = rest
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(StoreError::Corrupt("room value too short"))?;
    Ok(u64::from_be_bytes(at))
}

fn header(expiry_ms: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = FORMAT_V2;
    out[1..].copy_from_slice(&expiry_ms.to_be_bytes());
    out
}

fn aad(header: &[u8; HEADER_LEN], locator: &Locator) -> [u8; HEADER_LEN + 32] {
    let mut out = [0u8; HEADER_LEN + 32];
    out[..HEADER_LEN].copy_from_slice(header);
    out[HEADER_LEN..].copy_from_slice(locator.as_bytes());
    out
}

fn cipher(keys: &RoomKeys) -> Aes256Gcm {
    Aes256Gcm::new(&(*keys.seal_key()).into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn guard() -> impl Strategy<Value = Guard> {
        (any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(
            |(failures, locked_until_ms, level, last_attempt_ms)| Guard {
                failures,
                locked_until_ms,
                level,
                last_attempt_ms,
            },
        )
    }

    fn seat() -> impl Strategy<Value = Seat> {
        (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u32>()).prop_map(
            |(access_hash, sender_hash, failed_since_join)| Seat {
                access_hash,
                sender_hash,
                failed_since_join,
            },
        )
    }

    /// Any record at all, including extreme integers, so varint edges are covered.
    pub(crate) fn room_record() -> impl Strategy<Value = RoomRecord> {
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            any::<u64>(),
            prop_oneof![Just(Tier::Free), Just(Tier::Paid)],
            proptest::option::of(seat()),
            proptest::option::of(seat()),
            guard(),
            proptest::option::of(any::<[u8; 32]>()),
            guard(),
        )
            .prop_map(
                |(room_id, created, expires, tier, s0, s1, guesses, pairing_hash, pairing)| {
                    RoomRecord {
                        room_id,
                        created_at_ms: created,
                        ttl_expires_at_ms: expires,
                        tier,
                        seats: [s0, s1],
                        guesses,
                        pairing_hash,
                        pairing,
                    }
                },
            )
    }

    fn keys(n: u8) -> RoomKeys {
        RoomKeys::derive(&[n; 32])
    }

    proptest! {
        #[test]
        fn round_trip(rec in room_record(), room in any::<[u8; 32]>()) {
            let keys = RoomKeys::derive(&room);
            let bytes = seal(&keys, &rec).unwrap();
            prop_assert_eq!(bytes[0], FORMAT_V2);
            prop_assert_eq!(header_expiry(&bytes).unwrap(), rec.ttl_expires_at_ms);
            prop_assert_eq!(open(&keys, &bytes).unwrap(), rec);
        }

        #[test]
        fn any_bytes_open_to_corrupt(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(matches!(open(&keys(1), &bytes), Err(StoreError::Corrupt(_))));
        }

        #[test]
        fn any_flipped_bit_is_corrupt(rec in room_record(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let keys = keys(3);
            let mut bytes = seal(&keys, &rec).unwrap();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(matches!(open(&keys, &bytes), Err(StoreError::Corrupt(_))));
        }

        #[test]
        fn every_truncation_is_corrupt(rec in room_record()) {
            let keys = keys(4);
            let bytes = seal(&keys, &rec).unwrap();
            for len in 0..bytes.len() {
                prop_assert!(matches!(open(&keys, &bytes[..len]), Err(StoreError::Corrupt(_))));
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_corrupt() {
        let keys = keys(2);
        let bytes = seal(&keys, &sample()).unwrap();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0xff;
            assert!(
                matches!(open(&keys, &tampered), Err(StoreError::Corrupt(_))),
                "byte {i}"
            );
        }
    }

    #[test]
    fn wrong_seal_key_is_corrupt() {
        let bytes = seal(&keys(1), &sample()).unwrap();
        assert!(matches!(
            open(&keys(2), &bytes),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn header_record_expiry_mismatch_is_corrupt() {
        let keys = keys(1);
        let rec = sample();
        let bytes = seal_with_header(&keys, &rec, rec.ttl_expires_at_ms + 1).unwrap();
        // The tag is fine (the header was sealed as written); only the cross-check catches it.
        assert_eq!(header_expiry(&bytes).unwrap(), rec.ttl_expires_at_ms + 1);
        assert!(matches!(
            open(&keys, &bytes),
            Err(StoreError::Corrupt(
                "room value header disagrees with record"
            ))
        ));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let keys = keys(1);
        let a = seal(&keys, &sample()).unwrap();
        let b = seal(&keys, &sample()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let keys = keys(1);
        let mut bytes = seal(&keys, &RoomRecord::default()).unwrap();
        for v in [0u8, 1, 3, 0xff] {
            bytes[0] = v;
            assert!(matches!(open(&keys, &bytes), Err(StoreError::Corrupt(_))));
            assert!(matches!(header_expiry(&bytes), Err(StoreError::Corrupt(_))));
        }
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let keys = keys(1);
        let mut bytes = seal(&keys, &RoomRecord::default()).unwrap();
        bytes.push(0);
        assert!(matches!(open(&keys, &bytes), Err(StoreError::Corrupt(_))));
    }

    fn sample() -> RoomRecord {
        RoomRecord {
            room_id: [0xab; 16],
            ttl_expires_at_ms: 77_000,
            seats: [
                Some(Seat {
                    access_hash: [0xcd; 32],
                    sender_hash: [0xef; 32],
                    failed_since_join: 3,
                }),
                None,
            ],
            pairing_hash: Some([0x99; 32]),
            ..RoomRecord::default()
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?}", sample());
        // Debug prints arrays as decimal bytes.
        for secret in ["171", "205", "239", "153"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("failed_since_join: 3"));
    }
}
