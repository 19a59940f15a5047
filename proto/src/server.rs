//! Frames the relay sends: replies `{"ref","ok"|"error"}` and broadcasts `{"event","data"}`.
//!
//! The relay encodes with [`reply_ok`], [`reply_error`] and [`Broadcast::encode`]; clients read any
//! frame with [`ServerFrame::parse`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::reason::Reason;

/// A message as carried by `new_message` and by `current_message` in a join reply (§4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePayload {
    pub id: String,
    pub sender_hash: String,
    pub ciphertext: String,
    pub iv: String,
    pub read_at: Option<String>,
    pub inserted_at: String,
}

/// A borrowed view of a [`MessagePayload`] with the same wire shape, so the relay can encode a
/// `new_message` without copying the ciphertext first.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MessageRef<'a> {
    pub id: &'a str,
    pub sender_hash: &'a str,
    pub ciphertext: &'a str,
    pub iv: &'a str,
    pub read_at: Option<&'a str>,
    pub inserted_at: &'a str,
}

impl MessageRef<'_> {
    /// The `new_message` broadcast carrying this message.
    pub fn encode_new_message(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Frame<'a> {
            event: &'static str,
            data: &'a MessageRef<'a>,
        }
        let mut out = Vec::with_capacity(160 + self.ciphertext.len());
        // Serialising borrowed strings into a Vec cannot fail.
        let _ = serde_json::to_writer(
            &mut out,
            &Frame {
                event: "new_message",
                data: self,
            },
        );
        out
    }
}

/// JSON text of `value`, written into a buffer sized for a typical frame up front.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // Serialising the protocol's plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out
}

/// `ok` of a successful `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinOk {
    pub room_id: String,
    pub ttl_expires_at: String,
    pub awaiting_party: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_message: Option<MessagePayload>,
    /// Ours: guesses since this seat's last successful join; omitted when 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
}

/// `ok` of `send_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOk {
    pub message_id: String,
}

/// `ok` of `redeem_extension`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlOk {
    pub ttl_expires_at: String,
}

/// `ok: {}` of edit, delete, expire and reset_pairing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The `error` object of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub reason: Reason,
    /// Present on `unauthorized` (a wrong PIN): guesses left before the room locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// Ours, present on `locked`: whole seconds until the lock lifts. An extra field a compatible
    /// client ignores; lets a client say "for how long".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    pub fn new(reason: Reason) -> Self {
        ErrorBody {
            reason,
            attempts_remaining: None,
            retry_after: None,
        }
    }
}

impl From<Reason> for ErrorBody {
    fn from(reason: Reason) -> Self {
        ErrorBody::new(reason)
    }
}

/// Every broadcast of the protocol (§5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum Broadcast {
    NewMessage(MessagePayload),
    MessageRead {
        message_id: String,
    },
    MessageEdited {
        message_id: String,
        ciphertext: String,
        iv: String,
    },
    MessageDeleted {
        message_id: String,
    },
    CounterpartyTyping {},
    RoomExpired {},
    TtlExtended {
        ttl_expires_at: String,
    },
    PartyPaired {},
}

impl Broadcast {
    /// The frame's JSON text.
    pub fn encode(&self) -> Vec<u8> {
        to_json(self)
    }

    /// The wire name of the broadcast.
    pub fn name(&self) -> &'static str {
        match self {
            Broadcast::NewMessage(_) => "new_message",
            Broadcast::MessageRead { .. } => "message_read",
            Broadcast::MessageEdited { .. } => "message_edited",
            Broadcast::MessageDeleted { .. } => "message_deleted",
            Broadcast::CounterpartyTyping {} => "counterparty_typing",
            Broadcast::RoomExpired {} => "room_expired",
            Broadcast::TtlExtended { .. } => "ttl_extended",
            Broadcast::PartyPaired {} => "party_paired",
        }
    }
}

#[derive(Serialize)]
struct OkFrame<'a, T: Serialize> {
    #[serde(rename = "ref")]
    reference: &'a str,
    ok: &'a T,
}

#[derive(Serialize)]
struct ErrFrame<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    error: &'a ErrorBody,
}

/// `{"ref": reference, "ok": ok}` as JSON text.
pub fn reply_ok<T: Serialize>(reference: &str, ok: &T) -> Vec<u8> {
    to_json(&OkFrame { reference, ok })
}

/// `{"ref": reference, "error": error}` as JSON text.
pub fn reply_error(reference: &str, error: &ErrorBody) -> Vec<u8> {
    to_json(&ErrFrame { reference, error })
}

/// Any frame the relay sends, as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    Reply {
        reference: String,
        result: Result<Value, ErrorBody>,
    },
    Broadcast(Broadcast),
    /// A broadcast this version does not know (forward compatibility).
    Unknown {
        event: String,
        data: Value,
    },
}

/// A frame that is not one the relay sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame(pub String);

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected frame from relay: {}", self.0)
    }
}

impl std::error::Error for BadFrame {}

impl ServerFrame {
    pub fn parse(text: &str) -> Result<ServerFrame, BadFrame> {
        let bad = |why: &str| BadFrame(why.to_owned());
        let mut v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let obj = v.as_object_mut().ok_or_else(|| bad("not an object"))?;
        if let Some(r) = obj.remove("ref") {
            let reference = match r {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let result = if let Some(ok) = obj.remove("ok") {
                Ok(ok)
            } else if let Some(err) = obj.remove("error") {
                Err(serde_json::from_value(err).map_err(|e| bad(&e.to_string()))?)
            } else {
                return Err(bad("reply without ok or error"));
            };
            return Ok(ServerFrame::Reply { reference, result });
        }
        let event = match obj.get("event") {
            Some(Value::String(e)) => e.clone(),
            _ => return Err(bad("neither ref nor event")),
        };
        match serde_json::from_value::<Broadcast>(v.clone()) {
            Ok(b) => Ok(ServerFrame::Broadcast(b)),
            Err(_) => Ok(ServerFrame::Unknown {
                event,
                data: v.get("data").cloned().unwrap_or(Value::Null),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shapes_match_the_spec() {
        assert_eq!(
            String::from_utf8(reply_error("0", &Reason::InvalidEncoding.into())).unwrap(),
            r#"{"ref":"0","error":{"reason":"invalid_encoding"}}"#
        );
        let e = ErrorBody {
            reason: Reason::Unauthorized,
            attempts_remaining: Some(9),
            retry_after: None,
        };
        assert_eq!(
            String::from_utf8(reply_error("4", &e)).unwrap(),
            r#"{"ref":"4","error":{"reason":"unauthorized","attempts_remaining":9}}"#
        );
        assert_eq!(
            String::from_utf8(reply_ok("2", &Empty {})).unwrap(),
            r#"{"ref":"2","ok":{}}"#
        );
        assert_eq!(
            String::from_utf8(Broadcast::RoomExpired {}.encode()).unwrap(),
            r#"{"event":"room_expired","data":{}}"#
        );
        assert_eq!(
            String::from_utf8(
                Broadcast::MessageRead {
                    message_id: "m".into()
                }
                .encode()
            )
            .unwrap(),
            r#"{"event":"message_read","data":{"message_id":"m"}}"#
        );
        let join = JoinOk {
            room_id: "r".into(),
            ttl_expires_at: "t".into(),
            awaiting_party: true,
            current_message: None,
            failed_attempts: None,
        };
        assert_eq!(
            String::from_utf8(reply_ok("1", &join)).unwrap(),
            r#"{"ref":"1","ok":{"room_id":"r","ttl_expires_at":"t","awaiting_party":true}}"#
        );
    }

    fn s() -> impl Strategy<Value = String> {
        ".{0,40}"
    }

    fn payload() -> impl Strategy<Value = MessagePayload> {
        (s(), s(), s(), s(), proptest::option::of(s()), s()).prop_map(|(a, b, c, d, e, f)| {
            MessagePayload {
                id: a,
                sender_hash: b,
                ciphertext: c,
                iv: d,
                read_at: e,
                inserted_at: f,
            }
        })
    }

    fn broadcast() -> impl Strategy<Value = Broadcast> {
        prop_oneof![
            payload().prop_map(Broadcast::NewMessage),
            s().prop_map(|m| Broadcast::MessageRead { message_id: m }),
            (s(), s(), s()).prop_map(|(m, c, i)| Broadcast::MessageEdited {
                message_id: m,
                ciphertext: c,
                iv: i
            }),
            s().prop_map(|m| Broadcast::MessageDeleted { message_id: m }),
            Just(Broadcast::CounterpartyTyping {}),
            Just(Broadcast::RoomExpired {}),
            s().prop_map(|t| Broadcast::TtlExtended { ttl_expires_at: t }),
            Just(Broadcast::PartyPaired {}),
        ]
    }

    proptest! {
        #[test]
        fn the_borrowed_payload_encodes_like_the_owned_one(p in payload()) {
            let r = MessageRef {
                id: &p.id,
                sender_hash: &p.sender_hash,
                ciphertext: &p.ciphertext,
                iv: &p.iv,
                read_at: p.read_at.as_deref(),
                inserted_at: &p.inserted_at,
            };
            prop_assert_eq!(r.encode_new_message(), Broadcast::NewMessage(p.clone()).encode());
        }

        #[test]
        fn broadcasts_round_trip(b in broadcast()) {
            let text = String::from_utf8(b.encode()).unwrap();
            prop_assert_eq!(ServerFrame::parse(&text).unwrap(), ServerFrame::Broadcast(b));
        }

        #[test]
        fn errors_round_trip(i in 0usize..22, n in proptest::option::of(0u32..11), r in "[a-z0-9]{1,8}") {
            let body = ErrorBody { reason: Reason::ALL[i], attempts_remaining: n, retry_after: None };
            let text = String::from_utf8(reply_error(&r, &body)).unwrap();
            prop_assert_eq!(
                ServerFrame::parse(&text).unwrap(),
                ServerFrame::Reply { reference: r, result: Err(body) }
            );
        }

        #[test]
        fn join_ok_round_trips(p in proptest::option::of(payload()), f in proptest::option::of(1u32..100), a: bool) {
            let ok = JoinOk { room_id: "id".into(), ttl_expires_at: "t".into(), awaiting_party: a, current_message: p, failed_attempts: f };
            let text = String::from_utf8(reply_ok("1", &ok)).unwrap();
            match ServerFrame::parse(&text).unwrap() {
                ServerFrame::Reply { result: Ok(v), .. } => {
                    prop_assert_eq!(serde_json::from_value::<JoinOk>(v).unwrap(), ok);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
