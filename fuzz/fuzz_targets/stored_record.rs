//! Fuzz target: decoding a stored room value (store format 2: version, clear expiry, nonce,
//! AES-256-GCM sealed record) as the store reads it back from disk, where bytes may be torn,
//! corrupt, or from another room.
//!
//! The input is a value's bytes, tried under a fixed room's keys. Checked: no panic; a value
//! that opens has a clear expiry equal to its sealed one; any value this room's keys sealed
//! opens to the same record, and with a single byte changed anywhere it no longer opens; it
//! never opens under another room's keys.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stelgano_store::fuzzing::{header_expiry, open, seal};
use stelgano_store::{Guard, RoomKeys, RoomRecord, Seat, Tier};

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let keys = RoomKeys::derive(&[0x42; 32]);
    let other = RoomKeys::derive(&[0x43; 32]);

    // Arbitrary bytes as a stored value.
    let expiry = header_expiry(data);
    if let Ok(rec) = open(&keys, data) {
        assert_eq!(
            expiry.ok(),
            Some(rec.ttl_expires_at_ms),
            "clear and sealed expiry differ"
        );
    }

    // A record built from the input, sealed, must round-trip and resist tampering.
    let rec = RoomRecord {
        room_id: [data.first().copied().unwrap_or(0); 16],
        created_at_ms: u64_at(data, 0),
        ttl_expires_at_ms: u64_at(data, 8),
        tier: if u64_at(data, 16) % 2 == 0 {
            Tier::Free
        } else {
            Tier::Paid
        },
        seats: [
            Some(Seat {
                access_hash: [1; 32],
                sender_hash: [2; 32],
                failed_since_join: u64_at(data, 24) as u32,
            }),
            (u64_at(data, 32) % 2 == 0).then(|| Seat {
                access_hash: [3; 32],
                sender_hash: [4; 32],
                failed_since_join: u64_at(data, 40) as u32,
            }),
        ],
        guesses: Guard {
            failures: u64_at(data, 48) as u32,
            locked_until_ms: u64_at(data, 56),
            level: u64_at(data, 64) as u32,
            last_attempt_ms: u64_at(data, 72),
        },
        pairing_hash: (u64_at(data, 80) % 2 == 0).then_some([5; 32]),
        pairing: Guard::default(),
    };
    let sealed = seal(&keys, &rec).expect("a record always seals");
    assert_eq!(open(&keys, &sealed).ok().as_ref(), Some(&rec), "round trip");
    assert!(
        open(&other, &sealed).is_err(),
        "opened under another room's keys"
    );
    let at = (u64_at(data, 88) as usize) % sealed.len();
    let mut torn = sealed.clone();
    torn[at] ^= 1 | data.get(96).copied().unwrap_or(0);
    assert!(open(&keys, &torn).is_err(), "a changed byte still opened");
});
