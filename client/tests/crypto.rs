//! AES-256-GCM round trips, fresh IVs, and tamper detection.
#![allow(clippy::unwrap_used)]

use stelgano_client::crypto::{Identity, RoomKey};
use stelgano_client::ClientError;
use stelgano_proto::check::{b64_decode, b64_encode};

fn key() -> RoomKey {
    // One PBKDF2 run shared by the assertions below would need a static; a derivation per test
    // is fine because each test derives once.
    Identity::derive("+44 20 7946 0958", "0000")
        .unwrap()
        .derive_key()
}

#[test]
fn round_trips_and_uses_a_fresh_iv_each_time() {
    let key = key();
    for text in ["", "hi", "café 🔒 N=1", &"z".repeat(4000)] {
        let a = key.encrypt(text).unwrap();
        let b = key.encrypt(text).unwrap();
        assert_ne!(a.iv, b.iv, "an IV was reused");
        assert_eq!(b64_decode(&a.iv).unwrap().len(), 12);
        assert_eq!(b64_decode(&a.ciphertext).unwrap().len(), text.len() + 16);
        assert_eq!(key.decrypt(&a.ciphertext, &a.iv).unwrap(), text);
        assert_eq!(key.decrypt(&b.ciphertext, &b.iv).unwrap(), text);
    }
}

#[test]
fn any_flipped_bit_fails_with_a_clear_error() {
    let key = key();
    let sealed = key.encrypt("meet at noon").unwrap();
    let bytes = b64_decode(&sealed.ciphertext).unwrap();
    for bit in 0..bytes.len() * 8 {
        let mut tampered = bytes.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        let err = key.decrypt(&b64_encode(&tampered), &sealed.iv).unwrap_err();
        assert!(matches!(err, ClientError::Decrypt(_)), "bit {bit}: {err}");
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }
    let mut iv = b64_decode(&sealed.iv).unwrap();
    iv[0] ^= 0x80;
    assert!(matches!(
        key.decrypt(&sealed.ciphertext, &b64_encode(&iv)),
        Err(ClientError::Decrypt(_))
    ));
}

#[test]
fn another_channels_key_cannot_read_it() {
    let key = key();
    let other = Identity::derive("+44 20 7946 0959", "0000")
        .unwrap()
        .derive_key();
    let sealed = key.encrypt("secret").unwrap();
    assert!(matches!(
        other.decrypt(&sealed.ciphertext, &sealed.iv),
        Err(ClientError::Decrypt(_))
    ));
}

#[test]
fn malformed_fields_are_errors_not_panics() {
    let key = key();
    let sealed = key.encrypt("x").unwrap();
    for (c, iv) in [
        ("***", sealed.iv.as_str()),
        (sealed.ciphertext.as_str(), "AAEC"),
        ("AAAA", sealed.iv.as_str()),
        (sealed.ciphertext.as_str(), "-_-_-_-_-_-_-_-_"),
    ] {
        assert!(
            matches!(key.decrypt(c, iv), Err(ClientError::Decrypt(_))),
            "{c} {iv}"
        );
    }
}
