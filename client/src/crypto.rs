//! sTELgano-std-1 cryptography (CRYPTO.md): normalisation, the public hashes, the PBKDF2 room key,
//! AES-256-GCM sealing, and pairing codes.
//!
//! Everything secret (the normalised number, the hashes that grant access, the key) is wiped from
//! memory when its value is dropped.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use stelgano_proto::check::{b64_decode, b64_encode, to_hex64};
use stelgano_proto::limits::{IV_BYTES, MAX_CIPHERTEXT_BYTES};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::ClientError;

/// Salt of `room_hash` (the extra `e` in "stelegano" is part of the standard).
pub const ROOM_SALT: &str = "stelegano-room-v1-2026";
/// Salt of `access_hash`.
pub const ACCESS_SALT: &str = "stelegano-access-v1-2026";
/// Salt of `sender_hash`.
pub const SENDER_SALT: &str = "stelegano-sender-v1-2026";
/// Appended to `room_hash` to form the PBKDF2 salt.
pub const ENC_SALT: &str = "stelegano-enc-v1-2026";
/// PBKDF2-HMAC-SHA256 iterations for the room key.
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Crockford base32: the characters a pairing code is made of.
pub const OTP_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a pairing code.
pub const OTP_LEN: usize = 8;
/// AES-GCM appends a 16-byte tag to every ciphertext.
pub const TAG_BYTES: usize = 16;
/// The longest plaintext (UTF-8 bytes) whose ciphertext the relay accepts.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_CIPHERTEXT_BYTES - TAG_BYTES;

/// Keeps only the ASCII digits of a phone number as typed (`"+1 (415) 555-0123"` → `"14155550123"`).
/// Non-ASCII digits are dropped, not converted.
pub fn normalise_phone(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Uppercases a pairing code and keeps only characters of [`OTP_ALPHABET`], in order.
pub fn normalise_otp(code: &str) -> String {
    code.chars()
        .flat_map(char::to_uppercase)
        .filter(|c| c.is_ascii() && OTP_ALPHABET.contains(&(*c as u8)))
        .collect()
}

/// A normalised code shown as `XXXX-XXXX`.
pub fn format_otp(normalised: &str) -> String {
    if normalised.len() == OTP_LEN && normalised.is_ascii() {
        format!("{}-{}", &normalised[..4], &normalised[4..])
    } else {
        normalised.to_owned()
    }
}

/// A fresh pairing code (normalised, 8 characters): `OTP_ALPHABET[b & 31]` for 8 random bytes.
pub fn new_pairing_code() -> String {
    let mut bytes = [0u8; OTP_LEN];
    OsRng.fill_bytes(&mut bytes);
    let code = bytes
        .iter()
        .map(|b| OTP_ALPHABET[usize::from(b & 31)] as char)
        .collect();
    bytes.zeroize();
    code
}

/// SHA-256 of the concatenation of `parts` as 64 lowercase hex. Feeding the parts one by one
/// avoids building a temporary string that would hold the PIN.
fn h(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    to_hex64(&hasher.finalize().into())
}

/// `H(n ":" ROOM_SALT)` for a normalised number `n`.
pub fn room_hash(normalised_phone: &str) -> String {
    h(&[normalised_phone, ":", ROOM_SALT])
}

/// `H(n ":" PIN ":" ACCESS_SALT)`; the PIN exactly as typed.
pub fn access_hash(normalised_phone: &str, pin: &str) -> String {
    h(&[normalised_phone, ":", pin, ":", ACCESS_SALT])
}

/// `H(n ":" access_hash ":" room_hash ":" SENDER_SALT)`.
pub fn sender_hash(normalised_phone: &str, access_hash: &str, room_hash: &str) -> String {
    h(&[
        normalised_phone,
        ":",
        access_hash,
        ":",
        room_hash,
        ":",
        SENDER_SALT,
    ])
}

/// `H(normalise_otp(code))`.
pub fn otp_hash(code: &str) -> String {
    h(&[&normalise_otp(code)])
}

/// The hash under which the relay stores an extension token: SHA-256 of the 64-hex secret's text.
pub fn token_hash(secret_hex: &str) -> String {
    h(&[secret_hex])
}

/// The public identity of one party in one channel: what the relay sees, derived from the number
/// and the PIN.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Identity {
    normalised_phone: String,
    room_hash: String,
    access_hash: String,
    sender_hash: String,
}

impl Identity {
    /// Derives the hashes from a phone number as typed and a PIN as typed. Fails on a number with
    /// no digits or an empty PIN.
    pub fn derive(phone: &str, pin: &str) -> Result<Identity, ClientError> {
        let n = normalise_phone(phone);
        if n.is_empty() {
            return Err(ClientError::Input(
                "the steg number has no digits; type it in international form, e.g. +14155550123"
                    .to_owned(),
            ));
        }
        if pin.is_empty() {
            return Err(ClientError::Input("the PIN is empty".to_owned()));
        }
        Ok(Identity::from_parts(phone, pin))
    }

    /// The derivation on any strings, without the checks of [`Identity::derive`] (the formulas
    /// are defined for every input; `stelgano derive` uses this to reproduce any vector).
    pub fn from_parts(phone: &str, pin: &str) -> Identity {
        let n = normalise_phone(phone);
        let room = room_hash(&n);
        let access = access_hash(&n, pin);
        let sender = sender_hash(&n, &access, &room);
        Identity {
            normalised_phone: n,
            room_hash: room,
            access_hash: access,
            sender_hash: sender,
        }
    }

    /// The number, digits only.
    pub fn normalised_phone(&self) -> &str {
        &self.normalised_phone
    }

    pub fn room_hash(&self) -> &str {
        &self.room_hash
    }

    pub fn access_hash(&self) -> &str {
        &self.access_hash
    }

    pub fn sender_hash(&self) -> &str {
        &self.sender_hash
    }

    /// The room key (PBKDF2, 600,000 iterations: about a second of CPU; run it off the async
    /// executor, e.g. with `spawn_blocking`).
    pub fn derive_key(&self) -> RoomKey {
        RoomKey::derive(&self.normalised_phone, &self.room_hash)
    }
}

/// Hashes grant access to a channel, so even debug output leaves them out.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity { .. }")
    }
}

/// A message sealed for the wire: standard base64 with padding, as CRYPTO.md specifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// base64(ciphertext ‖ tag).
    pub ciphertext: String,
    /// base64 of the 12-byte IV.
    pub iv: String,
}

/// The AES-256-GCM key of a channel; zeroed when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RoomKey {
    bytes: [u8; 32],
}

impl RoomKey {
    /// `PBKDF2-HMAC-SHA256(n, room_hash ‖ ENC_SALT, 600000, 32)`, as every deployed client does.
    pub fn derive(normalised_phone: &str, room_hash: &str) -> RoomKey {
        RoomKey::derive_with_salt_prefix(normalised_phone, room_hash)
    }

    /// The same derivation with any salt prefix in place of `room_hash` (older documents of the
    /// protocol used the relay's `room_id`; kept to check a generic implementation).
    pub fn derive_with_salt_prefix(normalised_phone: &str, prefix: &str) -> RoomKey {
        let mut salt = Zeroizing::new(Vec::with_capacity(prefix.len() + ENC_SALT.len()));
        salt.extend_from_slice(prefix.as_bytes());
        salt.extend_from_slice(ENC_SALT.as_bytes());
        let mut key = RoomKey { bytes: [0u8; 32] };
        pbkdf2::pbkdf2_hmac::<Sha256>(
            normalised_phone.as_bytes(),
            &salt,
            PBKDF2_ITERATIONS,
            &mut key.bytes,
        );
        key
    }

    /// The key as 64 lowercase hex, for `stelgano derive --show-key` only.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(to_hex64(&self.bytes))
    }

    fn cipher(&self) -> Aes256Gcm {
        // Built per operation so the only long-lived copy of the key is `bytes`; the aes crate
        // wipes the expanded schedule when the cipher drops.
        Aes256Gcm::new((&self.bytes).into())
    }

    /// Encrypts UTF-8 text with a fresh random 96-bit IV.
    pub fn encrypt(&self, plaintext: &str) -> Result<Sealed, ClientError> {
        let mut iv = [0u8; IV_BYTES];
        OsRng.fill_bytes(&mut iv);
        self.encrypt_with_iv(plaintext, iv)
    }

    /// Encryption with a caller-chosen IV, only for reproducing the spec's fixed-IV vectors: an IV
    /// used twice with one key breaks GCM.
    pub(crate) fn encrypt_with_iv(
        &self,
        plaintext: &str,
        iv: [u8; IV_BYTES],
    ) -> Result<Sealed, ClientError> {
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(ClientError::TooLong {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_BYTES,
            });
        }
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&iv), plaintext.as_bytes())
            .map_err(|_| ClientError::Decrypt("encryption failed"))?;
        Ok(Sealed {
            ciphertext: b64_encode(&sealed),
            iv: b64_encode(&iv),
        })
    }

    /// Decrypts a wire message; any tampering, a wrong key, or malformed fields is an error.
    pub fn decrypt(&self, ciphertext_b64: &str, iv_b64: &str) -> Result<String, ClientError> {
        let iv = b64_decode(iv_b64).ok_or(ClientError::Decrypt("the IV is not valid base64"))?;
        if iv.len() != IV_BYTES {
            return Err(ClientError::Decrypt("the IV is not 12 bytes"));
        }
        let sealed = b64_decode(ciphertext_b64)
            .ok_or(ClientError::Decrypt("the ciphertext is not valid base64"))?;
        if sealed.len() < TAG_BYTES {
            return Err(ClientError::Decrypt(
                "the ciphertext is shorter than its tag",
            ));
        }
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(&iv), sealed.as_slice())
            .map_err(|_| {
                ClientError::Decrypt(
                    "authentication failed (wrong key for this channel, or the bytes were altered)",
                )
            })?;
        String::from_utf8(plain).map_err(|e| {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            ClientError::Decrypt("the plaintext is not UTF-8 text")
        })
    }
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomKey { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../tests/vectors.json")).unwrap()
    }

    fn key_from_hex(hex_key: &str) -> RoomKey {
        let mut key = RoomKey { bytes: [0u8; 32] };
        hex::decode_to_slice(hex_key, &mut key.bytes).unwrap();
        key
    }

    /// The fixed-IV encryptions need the crate-private `encrypt_with_iv`; the rest of the
    /// vectors are checked through the public API in `tests/vectors.rs`.
    #[test]
    fn fixed_iv_encryptions_match_the_vectors() {
        let v = vectors();
        let iv: [u8; 12] = hex::decode(v["fixed_encryption_inputs"]["iv_hex"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let vs = v["vectors"].as_array().unwrap();
        assert!(!vs.is_empty());
        for vector in vs {
            let key = key_from_hex(vector["aes_key_hex"].as_str().unwrap());
            let fixed = &vector["fixed_iv_encryption"];
            let sealed = key
                .encrypt_with_iv(fixed["plaintext_utf8"].as_str().unwrap(), iv)
                .unwrap();
            assert_eq!(sealed.iv, fixed["iv_b64"].as_str().unwrap());
            assert_eq!(
                sealed.ciphertext,
                fixed["ciphertext_with_tag_b64"].as_str().unwrap()
            );
            assert_eq!(
                hex::encode(b64_decode(&sealed.ciphertext).unwrap()),
                fixed["ciphertext_with_tag_hex"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn pairing_codes_use_the_alphabet() {
        for _ in 0..200 {
            let code = new_pairing_code();
            assert_eq!(code.len(), OTP_LEN);
            assert_eq!(normalise_otp(&code), code);
            assert_eq!(normalise_otp(&format_otp(&code)), code);
        }
    }

    #[test]
    fn rejects_unusable_input() {
        assert!(Identity::derive("+ () -", "1234").is_err());
        assert!(Identity::derive("+14155550123", "").is_err());
        assert_eq!(
            format!("{:?}", Identity::derive("1", "2").unwrap()),
            "Identity { .. }"
        );
    }

    #[test]
    fn too_long_plaintext_is_refused_before_encrypting() {
        let key = key_from_hex(&"11".repeat(32));
        assert!(key.encrypt(&"x".repeat(MAX_PLAINTEXT_BYTES)).is_ok());
        assert!(matches!(
            key.encrypt(&"x".repeat(MAX_PLAINTEXT_BYTES + 1)),
            Err(ClientError::TooLong { .. })
        ));
    }
}
