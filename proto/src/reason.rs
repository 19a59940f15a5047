//! The complete list of error reasons of sTELgano-std-1 (PROTOCOL.md §7); strings are exact.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An error reason as it appears in `{"error":{"reason": ...}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    InvalidRoom,
    InvalidSender,
    InvalidAccess,
    NotFound,
    Locked,
    Unauthorized,
    NotJoined,
    NotYourTurn,
    MessageTooLarge,
    InvalidEncoding,
    SendFailed,
    NotEditable,
    NotDeletable,
    ExpireFailed,
    InvalidToken,
    PaymentPending,
    MonetizationDisabled,
    OtpRequired,
    OtpInvalid,
    InvalidTopic,
    InternalError,
    RateLimited,
}

impl Reason {
    /// Every reason, in the order of the spec's list.
    pub const ALL: [Reason; 22] = [
        Reason::InvalidRoom,
        Reason::InvalidSender,
        Reason::InvalidAccess,
        Reason::NotFound,
        Reason::Locked,
        Reason::Unauthorized,
        Reason::NotJoined,
        Reason::NotYourTurn,
        Reason::MessageTooLarge,
        Reason::InvalidEncoding,
        Reason::SendFailed,
        Reason::NotEditable,
        Reason::NotDeletable,
        Reason::ExpireFailed,
        Reason::InvalidToken,
        Reason::PaymentPending,
        Reason::MonetizationDisabled,
        Reason::OtpRequired,
        Reason::OtpInvalid,
        Reason::InvalidTopic,
        Reason::InternalError,
        Reason::RateLimited,
    ];

    /// The exact wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidRoom => "invalid_room",
            Reason::InvalidSender => "invalid_sender",
            Reason::InvalidAccess => "invalid_access",
            Reason::NotFound => "not_found",
            Reason::Locked => "locked",
            Reason::Unauthorized => "unauthorized",
            Reason::NotJoined => "not_joined",
            Reason::NotYourTurn => "not_your_turn",
            Reason::MessageTooLarge => "message_too_large",
            Reason::InvalidEncoding => "invalid_encoding",
            Reason::SendFailed => "send_failed",
            Reason::NotEditable => "not_editable",
            Reason::NotDeletable => "not_deletable",
            Reason::ExpireFailed => "expire_failed",
            Reason::InvalidToken => "invalid_token",
            Reason::PaymentPending => "payment_pending",
            Reason::MonetizationDisabled => "monetization_disabled",
            Reason::OtpRequired => "otp_required",
            Reason::OtpInvalid => "otp_invalid",
            Reason::InvalidTopic => "invalid_topic",
            Reason::InternalError => "internal_error",
            Reason::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the spec's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReason(pub String);

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown error reason {:?}", self.0)
    }
}

impl std::error::Error for UnknownReason {}

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_as_str_agree_for_every_reason() {
        for r in Reason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(r.as_str().parse::<Reason>().unwrap(), r);
        }
    }
}
