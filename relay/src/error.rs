//! The relay's one error enum, and the one function that maps it onto the wire's error reasons.

use stelgano_proto::{ErrorBody, Reason};
use stelgano_store::StoreError;

/// Every way a request can fail: a protocol outcome the client is told as is (a wrong PIN, not
/// your turn: one of the wire's reasons, PROTOCOL.md §7, with its counts), or an internal fault
/// (the store, an overloaded room), which reaches the wire only as `internal_error`, never with
/// its details. The reasons are listed once, in `stelgano_proto::Reason`.
///
/// ```
/// use stelgano_proto::Reason;
/// use stelgano_relay::RelayError;
/// let e = RelayError::from(Reason::NotYourTurn);
/// assert_eq!(e.reason(), Some(Reason::NotYourTurn));
/// assert_eq!(RelayError::locked(60).to_wire().retry_after, Some(60));
/// assert_eq!(RelayError::Busy.to_wire().reason, Reason::InternalError);
/// ```
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A protocol outcome, sent to the client exactly as this error body.
    #[error("{}", .0.reason.as_str())]
    Refused(ErrorBody),
    #[error("room could not take the request in time")]
    Busy,
    #[error("the store cannot write at the moment")]
    StoreUnavailable,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Token administration (`stelgano-relay tokens`) failed; never a network answer.
    #[error("{0}")]
    Admin(String),
    /// Node tooling (`stelgano-relay nodes`: the ring, moving records) failed; never a network
    /// answer.
    #[error("{0}")]
    Nodes(String),
}

impl From<Reason> for RelayError {
    fn from(reason: Reason) -> Self {
        RelayError::Refused(ErrorBody::new(reason))
    }
}

impl RelayError {
    /// `locked`, lifting in `retry_after_s` seconds.
    pub fn locked(retry_after_s: u64) -> Self {
        RelayError::Refused(ErrorBody {
            reason: Reason::Locked,
            attempts_remaining: None,
            retry_after: Some(retry_after_s),
        })
    }

    /// `unauthorized` (a wrong PIN), with the guesses left before the room locks.
    pub fn unauthorized(attempts_remaining: u32) -> Self {
        RelayError::Refused(ErrorBody {
            reason: Reason::Unauthorized,
            attempts_remaining: Some(attempts_remaining),
            retry_after: None,
        })
    }

    /// `otp_invalid` (a wrong pairing code), with the tries left before the pairing locks.
    pub fn otp_invalid(attempts_remaining: u32) -> Self {
        RelayError::Refused(ErrorBody {
            reason: Reason::OtpInvalid,
            attempts_remaining: Some(attempts_remaining),
            retry_after: None,
        })
    }

    /// The wire reason this error is told as (`None`: an internal fault).
    pub fn reason(&self) -> Option<Reason> {
        match self {
            RelayError::Refused(body) => Some(body.reason),
            _ => None,
        }
    }

    /// The error object sent to the client. This is the only place reasons are chosen.
    pub fn to_wire(&self) -> ErrorBody {
        match self {
            RelayError::Refused(body) => body.clone(),
            RelayError::Busy
            | RelayError::StoreUnavailable
            | RelayError::Store(_)
            | RelayError::Io(_)
            | RelayError::Admin(_)
            | RelayError::Nodes(_) => ErrorBody::new(Reason::InternalError),
        }
    }

    /// Internal faults are worth a log line (without any room detail); protocol outcomes are not.
    pub fn is_internal(&self) -> bool {
        !matches!(self, RelayError::Refused(_))
    }
}

/// Why a relay did not start ([`crate::Relay::start`], [`crate::Embedded::start`]): its own
/// type, apart from the errors a request can meet on the wire.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use stelgano_relay::{Config, Relay, StartError};
/// let bad = Config { max_sockets_per_room: 0, ..Config::default() };
/// assert!(matches!(Relay::start(bad).await, Err(StartError::Config(_))));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting the relay cannot run with, named with its value.
    #[error("invalid setting {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The store (or the token store) could not be opened: in use by another relay, unreadable,
    /// or a directory that cannot be created.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_travel_with_their_reasons() {
        let e = RelayError::unauthorized(3).to_wire();
        assert_eq!(e.reason, Reason::Unauthorized);
        assert_eq!(e.attempts_remaining, Some(3));
        let e = RelayError::locked(60).to_wire();
        assert_eq!((e.reason, e.retry_after), (Reason::Locked, Some(60)));
        assert_eq!(RelayError::Busy.to_wire().reason, Reason::InternalError);
        assert_eq!(
            RelayError::from(Reason::NotYourTurn).to_string(),
            "not_your_turn"
        );
    }
}
