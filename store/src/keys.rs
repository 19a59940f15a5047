//! What the store derives from a room hash: the record's locator and the key that seals it.
//!
//! Neither the room hash nor anything that identifies the room without it reaches the disk: the
//! sled key is a one-way [`Locator`], and the value is AES-256-GCM under a seal key that only a
//! client presenting the room hash lets the relay compute. Once a room is gone and its hash is
//! forgotten, whatever bytes of it sled's log still holds are unreadable.

use std::fmt;

use sha2::{Digest, Sha256};

/// Domain separation for the locator, so it can never equal the seal key or a protocol hash.
const LOCATOR_DOMAIN: &[u8] = b"stelgano/store/locator/v2";
const SEAL_DOMAIN: &[u8] = b"stelgano/store/seal/v2";

/// Where a room's record lives in the store: SHA-256("stelgano/store/locator/v2" ‖ room_hash).
///
/// It names a record without revealing the room hash, so it may be kept by the sweeper and
/// written to disk. `Debug` still redacts it: a locator in a log line would let anyone holding
/// a room hash find that room in the logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locator([u8; 32]);

impl Locator {
    /// The locator's 32 bytes, as stored.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Locator {
        Locator(bytes)
    }
}

impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Locator(<redacted>)")
    }
}

/// Everything the store needs to find and open one room's record, derived from its room hash.
///
/// The relay builds one while a client presents the room hash and may keep it as long as the
/// room is live; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct RoomKeys {
    locator: Locator,
    seal: [u8; 32],
    ring: u32,
}

impl RoomKeys {
    /// Derives the locator and the seal key of the room with this hash.
    pub fn derive(room_hash: &[u8; 32]) -> RoomKeys {
        RoomKeys {
            locator: Locator(domain_hash(LOCATOR_DOMAIN, room_hash)),
            seal: domain_hash(SEAL_DOMAIN, room_hash),
            ring: ring_position(room_hash),
        }
    }

    /// The room's position on nginx's consistent-hash ring: the CRC32 of the room hash as it
    /// appears in the room's URLs (64 lowercase hex characters), which is the key nginx hashes.
    ///
    /// Stored beside the record so that records can be moved between nodes by ring position
    /// without the room hash. 32 bits of a CRC say nothing about the hash that the locator
    /// beside them does not already settle.
    pub fn ring_position(&self) -> u32 {
        self.ring
    }

    /// The room's locator.
    pub fn locator(&self) -> Locator {
        self.locator
    }

    pub(crate) fn seal_key(&self) -> &[u8; 32] {
        &self.seal
    }
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKeys(<redacted>)")
    }
}

/// CRC32 (IEEE) of the lowercase hex form of `room_hash`: what nginx's `hash $room consistent`
/// computes for a room's URL.
pub fn ring_position(room_hash: &[u8; 32]) -> u32 {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 64];
    for (i, b) in room_hash.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(b >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    crc32fast::hash(&hex)
}

fn domain_hash(domain: &[u8], room_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update(room_hash);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_and_seal_key_differ_and_are_deterministic() {
        let a = RoomKeys::derive(&[5; 32]);
        let b = RoomKeys::derive(&[5; 32]);
        let c = RoomKeys::derive(&[6; 32]);
        assert_eq!(a.locator(), b.locator());
        assert_eq!(a.seal_key(), b.seal_key());
        assert_ne!(a.locator(), c.locator());
        assert_ne!(a.locator().as_bytes(), a.seal_key());
        assert_ne!(a.locator().as_bytes(), &[5; 32]);
    }

    #[test]
    fn locator_is_the_documented_hash() {
        let mut h = Sha256::new();
        h.update(b"stelgano/store/locator/v2");
        h.update([9u8; 32]);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(RoomKeys::derive(&[9; 32]).locator().as_bytes(), &want);
    }

    #[test]
    fn ring_position_is_the_crc32_of_the_lowercase_hex() {
        // The CRC32 check value: crc32("123456789") = 0xcbf43926, so the crate is the IEEE one.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        let hash = [0xab; 32];
        let hex = "ab".repeat(32);
        assert_eq!(ring_position(&hash), crc32fast::hash(hex.as_bytes()));
        assert_eq!(
            RoomKeys::derive(&hash).ring_position(),
            ring_position(&hash)
        );
    }

    #[test]
    fn debug_is_redacted() {
        let keys = RoomKeys::derive(&[0xab; 32]);
        let shown = format!("{keys:?} {:?}", keys.locator());
        assert_eq!(shown, "RoomKeys(<redacted>) Locator(<redacted>)");
    }
}
