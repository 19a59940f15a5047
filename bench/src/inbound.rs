//! A cheap look at frames from the relay: just enough to drive the exchange loop.
//!
//! The full [`stelgano_proto::ServerFrame::parse`] builds a `serde_json::Value` tree per frame; the
//! load generator shares the CPU with the relay it measures, so on the hot path it borrows the
//! few fields it needs and skips the rest.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// What a frame from the relay means to a party in the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A `new_message` broadcast; `own` when its `sender_hash` is this party's.
    NewMessage { own: bool },
    /// A reply with `ok`.
    Ok,
    /// A reply with `error`; the reason string.
    Error(String),
    /// Any other broadcast (`party_paired`, ...).
    Other,
    /// The echo server's copy of what this party sent.
    Echo,
    /// Not JSON, or neither a reply nor a broadcast.
    Unreadable,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ok: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<PeekError<'a>>,
    #[serde(default, borrow)]
    data: Option<PeekData<'a>>,
}

#[derive(Deserialize)]
struct PeekError<'a> {
    #[serde(borrow)]
    reason: Cow<'a, str>,
}

#[derive(Deserialize)]
struct PeekData<'a> {
    #[serde(default, borrow)]
    sender_hash: Option<Cow<'a, str>>,
}

/// Classifies one text frame for the party whose sender hash is `own_sender`.
pub fn classify(text: &[u8], own_sender: &str) -> Seen {
    let Ok(peek) = serde_json::from_slice::<Peek<'_>>(text) else {
        return Seen::Unreadable;
    };
    if let Some(err) = peek.error {
        return Seen::Error(err.reason.into_owned());
    }
    if peek.ok.is_some() {
        return Seen::Ok;
    }
    match peek.event.as_deref() {
        Some("new_message") => {
            let own = peek
                .data
                .and_then(|d| d.sender_hash)
                .is_some_and(|s| s == own_sender);
            Seen::NewMessage { own }
        }
        Some(_) => Seen::Other,
        None => Seen::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stelgano_proto::server::{reply_error, reply_ok, SendOk};
    use stelgano_proto::{Broadcast, ErrorBody, MessagePayload, Reason};

    fn message_from(sender: &str) -> Vec<u8> {
        Broadcast::NewMessage(MessagePayload {
            id: "m".into(),
            sender_hash: sender.into(),
            ciphertext: "AAAA".into(),
            iv: "AAAAAAAAAAAAAAAA".into(),
            read_at: None,
            inserted_at: "2026-11-28T10:00:00.000Z".into(),
        })
        .encode()
    }

    #[test]
    fn reads_what_the_relay_encodes() {
        let me = "a".repeat(64);
        let them = "b".repeat(64);
        assert_eq!(
            classify(&message_from(&me), &me),
            Seen::NewMessage { own: true }
        );
        assert_eq!(
            classify(&message_from(&them), &me),
            Seen::NewMessage { own: false }
        );
        let ok = reply_ok(
            "1",
            &SendOk {
                message_id: "x".into(),
            },
        );
        assert_eq!(classify(&ok, &me), Seen::Ok);
        let err = reply_error("1", &ErrorBody::new(Reason::NotYourTurn));
        assert_eq!(classify(&err, &me), Seen::Error("not_your_turn".into()));
        assert_eq!(
            classify(&Broadcast::PartyPaired {}.encode(), &me),
            Seen::Other
        );
        assert_eq!(classify(b"nope", &me), Seen::Unreadable);
        assert_eq!(classify(b"{}", &me), Seen::Unreadable);
    }
}
