//! Every sTELgano-std-1 vector (tests/vectors.json, a copy of the spec's vectors.json) reproduced
//! bit-exactly through the public API.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use stelgano_client::crypto::{self, Identity, RoomKey};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors.json")).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} missing"))
}

#[test]
fn constants_match() {
    let v = vectors();
    let c = &v["constants"];
    assert_eq!(s(c, "ROOM_SALT"), crypto::ROOM_SALT);
    assert_eq!(s(c, "ACCESS_SALT"), crypto::ACCESS_SALT);
    assert_eq!(s(c, "SENDER_SALT"), crypto::SENDER_SALT);
    assert_eq!(s(c, "ENC_SALT"), crypto::ENC_SALT);
    assert_eq!(s(c, "OTP_ALPHABET").as_bytes(), crypto::OTP_ALPHABET);
    assert_eq!(
        c["PBKDF2_ITERATIONS"].as_u64().unwrap(),
        u64::from(crypto::PBKDF2_ITERATIONS)
    );
}

#[test]
fn hashes_keys_and_decryption_match_every_vector() {
    let v = vectors();
    let all = v["vectors"].as_array().unwrap();
    assert!(!all.is_empty());
    for vector in all {
        let label = s(vector, "label");
        let id = Identity::derive(s(vector, "raw_phone_input"), s(vector, "pin")).unwrap();
        assert_eq!(
            hex::encode(s(vector, "pin").as_bytes()),
            s(vector, "pin_utf8_hex"),
            "{label}"
        );
        assert_eq!(
            id.normalised_phone(),
            s(vector, "normalised_phone"),
            "{label}"
        );
        assert_eq!(id.room_hash(), s(vector, "room_hash"), "{label}");
        assert_eq!(id.access_hash(), s(vector, "access_hash"), "{label}");
        assert_eq!(id.sender_hash(), s(vector, "sender_hash"), "{label}");
        assert_eq!(
            crypto::normalise_otp(s(vector, "otp_input")),
            s(vector, "otp_normalised"),
            "{label}"
        );
        assert_eq!(
            crypto::otp_hash(s(vector, "otp_input")),
            s(vector, "otp_hash"),
            "{label}"
        );
        assert_eq!(
            id.normalised_phone(),
            s(vector, "pbkdf2_password_utf8"),
            "{label}"
        );
        assert_eq!(
            format!("{}{}", id.room_hash(), crypto::ENC_SALT),
            s(vector, "pbkdf2_salt_utf8"),
            "{label}"
        );
        let key = id.derive_key();
        assert_eq!(key.to_hex().as_str(), s(vector, "aes_key_hex"), "{label}");

        let d = &vector["decrypt_vector"];
        assert_eq!(
            key.decrypt(s(d, "ciphertext_with_tag_b64"), s(d, "iv_b64"))
                .unwrap(),
            s(d, "plaintext_utf8"),
            "{label}"
        );
        let fixed = &vector["fixed_iv_encryption"];
        assert_eq!(
            key.decrypt(s(fixed, "ciphertext_with_tag_b64"), s(fixed, "iv_b64"))
                .unwrap(),
            s(fixed, "plaintext_utf8"),
            "{label}"
        );
    }
}

#[test]
fn normalisation_edge_cases() {
    let v = vectors();
    for case in v["normalise_phone_only"].as_array().unwrap() {
        assert_eq!(
            crypto::normalise_phone(s(case, "input")),
            s(case, "normalised")
        );
    }
    for case in v["normalise_otp_only"].as_array().unwrap() {
        let n = crypto::normalise_otp(s(case, "input"));
        assert_eq!(n, s(case, "normalised"));
        assert_eq!(
            crypto::otp_hash(s(case, "input")),
            s(case, "sha256_hex_of_normalised")
        );
        assert_eq!(crypto::format_otp(&n), s(case, "formatted_for_display"));
    }
}

#[test]
fn extension_token_hashes() {
    let v = vectors();
    for case in v["extension_token_hash"].as_array().unwrap() {
        assert_eq!(
            crypto::token_hash(s(case, "extension_secret")),
            s(case, "token_hash")
        );
    }
}

#[test]
fn key_with_an_arbitrary_salt_prefix() {
    let v = vectors();
    for case in v["key_with_arbitrary_salt_prefix"].as_array().unwrap() {
        assert_eq!(
            format!("{}{}", s(case, "room_id_argument"), crypto::ENC_SALT),
            s(case, "pbkdf2_salt_utf8")
        );
        let key = RoomKey::derive_with_salt_prefix(
            s(case, "normalised_phone"),
            s(case, "room_id_argument"),
        );
        assert_eq!(key.to_hex().as_str(), s(case, "aes_key_hex"));
    }
}
