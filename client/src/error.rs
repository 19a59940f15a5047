//! The crate's one error type: transport failures, the relay's reasons, and local mistakes.

use std::time::Duration;

use stelgano_proto::{ErrorBody, Reason};

/// Everything that can go wrong talking to a relay or handling a channel's secrets.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay URL cannot be used.
    #[error("invalid relay URL {url:?}: {why}")]
    InvalidUrl { url: String, why: String },
    /// The TCP connection could not be opened.
    #[error("cannot reach the relay at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS connection to a `wss://` relay failed (certificate, name, handshake).
    #[error("TLS with the relay failed: {0}")]
    Tls(String),
    /// The relay answered an HTTP request (the WebSocket upgrade, or a look-up) with an error status.
    #[error("{}", http_message(*status))]
    Http { status: u16 },
    /// The WebSocket failed after the upgrade.
    #[error("connection to the relay failed: {0}")]
    WebSocket(#[from] fastwebsockets::WebSocketError),
    /// The relay refused a request; the body carries its reason and any extra fields.
    #[error("{}", describe(.0))]
    Server(ErrorBody),
    /// The relay closed the socket.
    #[error("{}", closed_message(*code, reason))]
    Closed { code: u16, reason: String },
    /// The relay sent a frame this client cannot read.
    #[error("unexpected frame from the relay: {0}")]
    Protocol(String),
    /// No answer within the allotted time.
    #[error("timed out after {} s waiting for {what}", .after.as_secs())]
    Timeout { what: String, after: Duration },
    /// A ciphertext failed authentication (wrong key, or the bytes were altered), or was malformed.
    #[error("a message could not be decrypted: {0}")]
    Decrypt(&'static str),
    /// A plaintext exceeds what the protocol can carry.
    #[error("message too long: {len} bytes of text, at most {max} fit in one message")]
    TooLong { len: usize, max: usize },
    /// Input given to the client was unusable (empty number, empty PIN, bad pairing code, ...).
    #[error("{0}")]
    Input(String),
    /// Reading from the terminal failed.
    #[error("cannot read from the terminal: {0}")]
    Terminal(#[source] std::io::Error),
}

impl ClientError {
    /// The relay's reason, when the relay refused the request.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            ClientError::Server(body) => Some(body.reason),
            _ => None,
        }
    }
}

impl From<ErrorBody> for ClientError {
    fn from(body: ErrorBody) -> Self {
        ClientError::Server(body)
    }
}

fn http_message(status: u16) -> String {
    match status {
        400 => "the relay rejected the room address (HTTP 400)".to_owned(),
        404 | 426 => format!("no sTELgano relay at that URL (HTTP {status})"),
        429 => {
            "the relay is limiting connections from this address; try again in a minute (HTTP 429)"
                .to_owned()
        }
        s => format!("the relay answered HTTP {s}"),
    }
}

fn closed_message(code: u16, reason: &str) -> String {
    match reason {
        "room_expired" => "the channel has expired or was burned; it no longer exists".to_owned(),
        "" => format!("the relay closed the connection (code {code})"),
        r => format!("the relay closed the connection (code {code}: {r})"),
    }
}

/// A human sentence for each of the relay's reasons.
pub fn describe(body: &ErrorBody) -> String {
    let base = match body.reason {
        Reason::InvalidRoom => "the relay rejected the room address",
        Reason::InvalidSender => {
            "the relay rejected this device's sender identity for this channel"
        }
        Reason::InvalidAccess => "the relay rejected the access hash",
        Reason::NotFound => "no such message (it was replaced, deleted, or is not yours)",
        Reason::Locked => "this channel is locked after too many wrong attempts",
        Reason::Unauthorized => "wrong PIN for this number",
        Reason::NotJoined => "not joined to the channel",
        Reason::NotYourTurn => {
            "not your turn: your last message has not been answered yet (edit or delete it instead)"
        }
        Reason::MessageTooLarge => "message too large for the relay",
        Reason::InvalidEncoding => "the relay could not read the request",
        Reason::SendFailed => "the relay could not deliver the message",
        Reason::NotEditable => "the message was already read and can no longer be edited",
        Reason::NotDeletable => "the message was already read and can no longer be deleted",
        Reason::ExpireFailed => "the relay could not expire the channel",
        Reason::InvalidToken => "invalid or already used token or code",
        Reason::PaymentPending => "payment pending",
        Reason::MonetizationDisabled => "extensions are not offered by this relay",
        Reason::OtpRequired => {
            "this channel is waiting for its second party: a pairing code is needed"
        }
        Reason::OtpInvalid => "incorrect pairing code",
        Reason::InvalidTopic => "the relay does not know this request",
        Reason::InternalError => "the relay had an internal error",
        Reason::RateLimited => "too many new channels from this address; wait a minute and retry",
    };
    let mut s = base.to_owned();
    if let Some(n) = body.attempts_remaining {
        let plural = if n == 1 { "" } else { "s" };
        s.push_str(&format!(
            " ({n} attempt{plural} remaining before the channel locks)"
        ));
    }
    if body.reason == Reason::Locked {
        match body.retry_after {
            Some(secs) => s.push_str(&format!("; try again in {}", human_duration(secs))),
            None => s.push_str("; try again later"),
        }
    }
    s
}

/// "29 min 5 s", "2 h 0 min", "12 s".
pub fn human_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_says_for_how_long_and_unauthorized_counts_down() {
        let locked = ErrorBody {
            reason: Reason::Locked,
            attempts_remaining: None,
            retry_after: Some(1745),
        };
        assert!(describe(&locked).ends_with("try again in 29 min 5 s"));
        let wrong = ErrorBody {
            reason: Reason::Unauthorized,
            attempts_remaining: Some(1),
            retry_after: None,
        };
        assert_eq!(
            describe(&wrong),
            "wrong PIN for this number (1 attempt remaining before the channel locks)"
        );
        assert_eq!(human_duration(7200), "2 h 0 min");
    }
}
