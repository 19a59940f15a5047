//! The durable per-room record and its versioned on-disk encoding.
//!
//! A stored value is one format-version byte followed by the bincode 2 encoding (standard
//! configuration: little-endian, variable-length integers) of a [`RoomRecord`]. The version byte
//! lets a later release change the layout and still read, or at least recognise, old values;
//! anything this release does not understand decodes to [`StoreError::Corrupt`], never a panic.

use std::fmt;

use bincode::{Decode, Encode};

use crate::StoreError;

/// A room's key in the store: the 32 bytes of its `room_hash`.
pub type RoomKey = [u8; 32];

/// The format version written in front of every value by this release.
pub(crate) const FORMAT_V1: u8 = 1;

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
    /// How many lockouts have happened so far.
    pub lockouts: u32,
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

/// The bincode configuration of format version 1. Changing it changes the bytes on disk, so it
/// may only change together with a new format version.
fn v1_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a record as a versioned value.
pub(crate) fn encode(rec: &RoomRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(FORMAT_V1);
    bincode::encode_into_std_write(rec, &mut out, v1_config())
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a versioned value. Every byte must be accounted for: trailing bytes mean the value
/// was not written by this encoder, so they are corruption too.
pub(crate) fn decode(bytes: &[u8]) -> Result<RoomRecord, StoreError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(StoreError::Corrupt("empty room value"))?;
    if version != FORMAT_V1 {
        return Err(StoreError::Corrupt("unknown room value format version"));
    }
    let (rec, used) = bincode::decode_from_slice::<RoomRecord, _>(body, v1_config())
        .map_err(|_| StoreError::Corrupt("room value does not decode"))?;
    if used != body.len() {
        return Err(StoreError::Corrupt("trailing bytes after room value"));
    }
    Ok(rec)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn guard() -> impl Strategy<Value = Guard> {
        (any::<u32>(), any::<u64>(), any::<u32>()).prop_map(
            |(failures, locked_until_ms, lockouts)| Guard {
                failures,
                locked_until_ms,
                lockouts,
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

    proptest! {
        #[test]
        fn round_trip(rec in room_record()) {
            let bytes = encode(&rec).unwrap();
            prop_assert_eq!(bytes[0], FORMAT_V1);
            prop_assert_eq!(decode(&bytes).unwrap(), rec);
        }

        #[test]
        fn any_bytes_decode_or_report_corrupt(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            match decode(&bytes) {
                // bincode accepts some non-minimal varints, so only the record, not the
                // bytes, must survive another round.
                Ok(rec) => prop_assert_eq!(decode(&encode(&rec).unwrap()).unwrap(), rec),
                Err(StoreError::Corrupt(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }

        #[test]
        fn every_truncation_is_corrupt(rec in room_record()) {
            let bytes = encode(&rec).unwrap();
            for len in 0..bytes.len() {
                prop_assert!(matches!(decode(&bytes[..len]), Err(StoreError::Corrupt(_))));
            }
        }
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let mut bytes = encode(&RoomRecord::default()).unwrap();
        for v in [0u8, 2, 0xff] {
            bytes[0] = v;
            assert!(matches!(decode(&bytes), Err(StoreError::Corrupt(_))));
        }
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let mut bytes = encode(&RoomRecord::default()).unwrap();
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn debug_redacts_secrets() {
        let rec = RoomRecord {
            room_id: [0xab; 16],
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
        };
        let shown = format!("{rec:?}");
        // Debug prints arrays as decimal bytes.
        for secret in ["171", "205", "239", "153"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("failed_since_join: 3"));
    }
}
