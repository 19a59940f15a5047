//! Fuzz target: what the relay does with a text frame before a room sees it — the client-event
//! parser (`Inbound::parse` in proto/src/client.rs) and the reader's checks on a join and on a
//! message body (`check_join`, `check_body` in relay/src/connection.rs).
//!
//! The input is the frame's payload. Checked: no panic; refs (and the ref of a parse error) are
//! at most 64 characters, so a client cannot make the relay echo a payload; what parsed, encoded
//! again, parses the same; a join passes only with 64-lowercase-hex hashes that stand for the
//! bytes passed on, and fails in the spec's order; a body passes or fails exactly as the spec's
//! rules read (both valid base64, ciphertext at most the limit, IV 12 bytes), at the relay's
//! default limit and at a small one that puts the reader's length shortcut within reach.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stelgano_proto::check::{b64_decode, hex64, is_hex64, to_hex64};
use stelgano_proto::client::JoinData;
use stelgano_proto::limits::{IV_BYTES, MAX_CIPHERTEXT_BYTES, MAX_REF_CHARS};
use stelgano_proto::{ClientEvent, Inbound, Reason};
use stelgano_relay::fuzzing::{check_body, check_join};

fuzz_target!(|data: &[u8]| {
    // The relay answers `invalid_encoding` to text that is not UTF-8 before parsing anything.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inbound = match Inbound::parse(text) {
        Ok(inbound) => inbound,
        Err(e) => {
            assert!(
                e.reply_ref.chars().count() <= MAX_REF_CHARS,
                "echoed ref too long"
            );
            return;
        }
    };
    if let Some(r) = &inbound.reference {
        assert!(r.chars().count() <= MAX_REF_CHARS, "ref too long");
    }

    // Every parsed event has a wire form a client could have sent.
    let reference = inbound.reference.as_deref().unwrap_or("r");
    let again = Inbound::parse(&inbound.event.encode(reference)).expect("re-encoded frame parses");
    assert_eq!(again.reference.as_deref(), Some(reference));
    assert_eq!(again.event, inbound.event, "re-encoding changed the event");

    match &inbound.event {
        ClientEvent::Join(d) => join(d),
        ClientEvent::SendMessage(d) => body(text, &d.ciphertext, &d.iv),
        ClientEvent::EditMessage(d) => body(text, &d.ciphertext, &d.iv),
        ClientEvent::ResetPairing(d) => {
            if let Some(otp) = d.otp_hash.as_deref() {
                hash_matches(otp, hex64(otp));
            }
        }
        _ => {}
    }
});

/// A hash string and what the relay made of it agree: bytes exactly when it is 64 lowercase
/// hex, and then the very bytes it spells.
fn hash_matches(text: &str, bytes: Option<[u8; 32]>) {
    match bytes {
        Some(b) => {
            assert!(
                is_hex64(text),
                "accepted a hash that is not 64 lowercase hex"
            );
            assert_eq!(to_hex64(&b), text, "hash bytes differ from the hash text");
        }
        None => assert!(!is_hex64(text), "refused a 64-lowercase-hex hash"),
    }
}

fn join(d: &JoinData) {
    let valid = |h: &Option<String>| h.as_deref().is_some_and(is_hex64);
    match check_join(d) {
        Ok(h) => {
            hash_matches(d.sender_hash.as_deref().unwrap_or_default(), Some(h.sender));
            hash_matches(d.access_hash.as_deref().unwrap_or_default(), Some(h.access));
            match d.otp_hash.as_deref() {
                // Absent, null and empty: no code at all.
                None | Some("") => assert!(h.otp.is_none() && !h.otp_malformed),
                Some(o) => {
                    hash_matches(o, h.otp);
                    assert_eq!(
                        h.otp_malformed,
                        h.otp.is_none(),
                        "a given code is a hash or malformed"
                    );
                }
            }
        }
        Err(e) => match e.reason() {
            Some(Reason::InvalidSender) => assert!(!valid(&d.sender_hash)),
            Some(Reason::InvalidAccess) => {
                assert!(valid(&d.sender_hash) && !valid(&d.access_hash))
            }
            _ => panic!("a join failed with {e:?}"),
        },
    }
}

/// The spec's body rules, read directly: `None` when they accept.
fn expected_body(ct: &Option<String>, iv: &Option<String>, max: usize) -> Option<&'static str> {
    let (Some(ct), Some(iv)) = (ct, iv) else {
        return Some("invalid_encoding");
    };
    let (Some(ct), Some(iv)) = (b64_decode(ct), b64_decode(iv)) else {
        return Some("invalid_encoding");
    };
    if ct.len() > max {
        return Some("message_too_large");
    }
    if iv.len() != IV_BYTES {
        return Some("invalid_encoding");
    }
    None
}

fn body(text: &str, ct: &Option<String>, iv: &Option<String>) {
    for max in [MAX_CIPHERTEXT_BYTES, text.len() % 64] {
        let got = match check_body(ct.clone(), iv.clone(), max) {
            Ok((c, i)) => {
                // The strings are forwarded exactly as they came.
                assert_eq!((Some(&c), Some(&i)), (ct.as_ref(), iv.as_ref()));
                None
            }
            Err(e) => match e.reason() {
                Some(Reason::InvalidEncoding) => Some("invalid_encoding"),
                Some(Reason::MessageTooLarge) => Some("message_too_large"),
                _ => panic!("a body failed with {e:?}"),
            },
        };
        assert_eq!(got, expected_body(ct, iv, max), "max {max}");
    }
}
