//! Validation shared by every side: 64-hex hashes, the spec's base64 rules, and timestamps.

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};

/// Standard alphabet; padding optional on input (as browsers' `atob`), but malformed padding is
/// rejected, and so is the URL-safe alphabet.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        // atob ignores stray low bits in the last character; so do we, to accept what it does.
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `true` when `s` is exactly 64 lowercase hex characters.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The 32 bytes a 64-lowercase-hex string stands for.
pub fn hex64(s: &str) -> Option<[u8; 32]> {
    if !is_hex64(s) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
    Some(out)
}

fn nibble(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    }
}

/// 64 lowercase hex characters for 32 bytes.
pub fn to_hex64(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes base64 as the spec allows it; `None` for anything malformed.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    // Padding is all or nothing: once there is a '=', the text must come in whole quanta (as
    // `atob` demands); the engine alone would take "AA=" as if it were unpadded.
    if s.contains('=') && !s.len().is_multiple_of(4) {
        return None;
    }
    LENIENT_B64.decode(s).ok()
}

/// Standard base64 with padding, as clients send it.
pub fn b64_encode(bytes: &[u8]) -> String {
    LENIENT_B64.encode(bytes)
}

/// Milliseconds since the Unix epoch as ISO 8601 UTC with milliseconds
/// (`2026-11-28T10:00:00.000Z`), the protocol's only timestamp format.
pub fn iso_ms(unix_ms: u64) -> String {
    let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an ISO 8601 / RFC 3339 timestamp back into Unix milliseconds.
pub fn parse_iso_ms(s: &str) -> Option<u64> {
    let t = DateTime::parse_from_rfc3339(s).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex64_accepts_lowercase_only() {
        let h = "1ea31d27f2db5216d960d03a9b45f697f25033693b4710be3d74b09dbb61d4ae";
        assert!(is_hex64(h));
        assert!(!is_hex64(&h.to_uppercase()));
        assert!(!is_hex64(&h[..63]));
        assert!(!is_hex64(&format!("{h}0")));
        assert!(!is_hex64(&h.replace('e', "g")));
        let bytes = hex64(h).unwrap();
        assert_eq!(to_hex64(&bytes), h);
    }

    #[test]
    fn base64_rules_of_the_spec() {
        assert_eq!(b64_decode("AAECAwQFBgcICQoL").unwrap().len(), 12);
        // padding is optional on input
        assert_eq!(b64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(b64_decode("aGk").unwrap(), b"hi");
        // url-safe alphabet and broken padding are rejected
        assert!(b64_decode("-_8=").is_none());
        assert!(b64_decode("aGk==").is_none());
        assert!(b64_decode("AA=").is_none());
        assert!(b64_decode("AAAAAA=").is_none());
        assert_eq!(b64_decode("AA==").unwrap(), [0]);
        assert_eq!(b64_decode("AA").unwrap(), [0]);
        assert_eq!(b64_decode("AB==").unwrap(), [0]);
        assert!(b64_decode("a=Gk").is_none());
        assert!(b64_decode("a").is_none());
        assert_eq!(b64_encode(b"hi"), "aGk=");
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_795_860_000_123), "2026-11-28T10:00:00.123Z");
        assert_eq!(
            parse_iso_ms("2026-11-28T10:00:00.123Z"),
            Some(1_795_860_000_123)
        );
    }
}
