//! The relay's one error enum, and the one function that maps it onto the wire's error reasons.

use stelgano_proto::{ErrorBody, Reason};
use stelgano_store::StoreError;

/// Every way a request can fail: expected protocol outcomes (a wrong PIN, not your turn) and
/// internal faults (the store, an overloaded room). Internal faults reach the wire only as
/// `internal_error`, never with their details.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("sender hash is not 64 lowercase hex, or does not match the seat")]
    InvalidSender,
    #[error("access hash is not 64 lowercase hex")]
    InvalidAccess,
    #[error("not the current message, or not yours")]
    NotFound,
    #[error("locked for {retry_after_s} s")]
    Locked { retry_after_s: u64 },
    #[error("wrong PIN ({attempts_remaining} attempts remaining)")]
    Unauthorized { attempts_remaining: u32 },
    #[error("join first")]
    NotJoined,
    #[error("the current message is yours")]
    NotYourTurn,
    #[error("ciphertext too large")]
    MessageTooLarge,
    #[error("not valid JSON / base64 / IV")]
    InvalidEncoding,
    #[error("the message was already read")]
    NotEditable,
    #[error("the message was already read")]
    NotDeletable,
    #[error("the message could not be delivered")]
    SendFailed,
    #[error("the room could not be expired")]
    ExpireFailed,
    #[error("invalid or used token")]
    InvalidToken,
    #[error("extension tokens are disabled")]
    MonetizationDisabled,
    #[error("this room needs a pairing code")]
    OtpRequired,
    #[error("wrong pairing code ({attempts_remaining} attempts remaining)")]
    OtpInvalid { attempts_remaining: u32 },
    #[error("unknown event")]
    InvalidTopic,
    #[error("rate limited")]
    RateLimited,
    #[error("room could not take the request in time")]
    Busy,
    #[error("the store cannot write at the moment")]
    StoreUnavailable,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A `Config` the relay cannot run with (`Relay::start`); never a network answer.
    #[error("invalid setting {0}")]
    Config(#[from] crate::config::ConfigError),
    /// Token administration (`stelgano-relay tokens`) failed; never a network answer.
    #[error("{0}")]
    Admin(String),
    /// Node tooling (`stelgano-relay nodes`: the ring, moving records) failed; never a network
    /// answer.
    #[error("{0}")]
    Nodes(String),
}

impl RelayError {
    /// The error object sent to the client. This is the only place reasons are chosen.
    pub fn to_wire(&self) -> ErrorBody {
        let reason = match self {
            RelayError::InvalidSender => Reason::InvalidSender,
            RelayError::InvalidAccess => Reason::InvalidAccess,
            RelayError::NotFound => Reason::NotFound,
            RelayError::Locked { retry_after_s } => {
                return ErrorBody {
                    reason: Reason::Locked,
                    attempts_remaining: None,
                    retry_after: Some(*retry_after_s),
                }
            }
            RelayError::Unauthorized { attempts_remaining } => {
                return ErrorBody {
                    reason: Reason::Unauthorized,
                    attempts_remaining: Some(*attempts_remaining),
                    retry_after: None,
                }
            }
            RelayError::OtpInvalid { attempts_remaining } => {
                return ErrorBody {
                    reason: Reason::OtpInvalid,
                    attempts_remaining: Some(*attempts_remaining),
                    retry_after: None,
                }
            }
            RelayError::NotJoined => Reason::NotJoined,
            RelayError::NotYourTurn => Reason::NotYourTurn,
            RelayError::MessageTooLarge => Reason::MessageTooLarge,
            RelayError::InvalidEncoding => Reason::InvalidEncoding,
            RelayError::NotEditable => Reason::NotEditable,
            RelayError::NotDeletable => Reason::NotDeletable,
            RelayError::SendFailed => Reason::SendFailed,
            RelayError::ExpireFailed => Reason::ExpireFailed,
            RelayError::InvalidToken => Reason::InvalidToken,
            RelayError::MonetizationDisabled => Reason::MonetizationDisabled,
            RelayError::OtpRequired => Reason::OtpRequired,
            RelayError::InvalidTopic => Reason::InvalidTopic,
            RelayError::RateLimited => Reason::RateLimited,
            RelayError::Busy
            | RelayError::StoreUnavailable
            | RelayError::Store(_)
            | RelayError::Io(_)
            | RelayError::Admin(_)
            | RelayError::Nodes(_)
            | RelayError::Config(_) => Reason::InternalError,
        };
        ErrorBody::new(reason)
    }

    /// Internal faults are worth a log line (without any room detail); protocol outcomes are not.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            RelayError::Busy
                | RelayError::StoreUnavailable
                | RelayError::Store(_)
                | RelayError::Io(_)
                | RelayError::Admin(_)
                | RelayError::Nodes(_)
                | RelayError::Config(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_travel_with_their_reasons() {
        let e = RelayError::Unauthorized {
            attempts_remaining: 3,
        }
        .to_wire();
        assert_eq!(e.reason, Reason::Unauthorized);
        assert_eq!(e.attempts_remaining, Some(3));
        let e = RelayError::Locked { retry_after_s: 60 }.to_wire();
        assert_eq!((e.reason, e.retry_after), (Reason::Locked, Some(60)));
        assert_eq!(RelayError::Busy.to_wire().reason, Reason::InternalError);
    }
}
