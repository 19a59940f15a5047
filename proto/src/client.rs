//! Frames a client sends: `{"event": NAME, "ref": STRING, "data": OBJECT}`.
//!
//! The relay parses them leniently ([`Inbound::parse`]): a field of the wrong JSON type reads as
//! absent, so the relay answers with the spec's validation reason (`invalid_sender`, ...) rather
//! than a generic parse error. Clients build them with [`ClientEvent::encode`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::limits::MAX_REF_CHARS;

/// `data` of `join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinData {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub sender_hash: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_hash: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub otp_hash: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_secret: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub country_iso: Option<String>,
}

/// `data` of `send_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendData {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub ciphertext: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub iv: Option<String>,
}

/// `data` of `edit_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditData {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub ciphertext: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub iv: Option<String>,
}

/// `data` of `read_receipt` and `delete_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageIdData {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
}

/// `data` of `reset_pairing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPairingData {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub otp_hash: Option<String>,
}

/// `data` of `redeem_extension`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemData {
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension_secret: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub country_iso: Option<String>,
}

/// An event of the protocol with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    Join(JoinData),
    SendMessage(SendData),
    ReadReceipt(MessageIdData),
    EditMessage(EditData),
    DeleteMessage(MessageIdData),
    Typing,
    ExpireRoom,
    ResetPairing(ResetPairingData),
    RedeemExtension(RedeemData),
    /// An event name the protocol does not have (answered with `invalid_topic`).
    Unknown(String),
}

/// A parsed client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The client's ref, echoed in the reply; `None` means "send no reply".
    pub reference: Option<String>,
    pub event: ClientEvent,
}

/// Why a frame could not be read as a client frame; the relay answers
/// `{"ref": ..., "error": {"reason": "invalid_encoding"}}` with [`ParseError::reply_ref`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The frame's own ref when it could be found, else `"0"`.
    pub reply_ref: String,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(default, deserialize_with = "lenient")]
    event: Option<String>,
    #[serde(default, rename = "ref", deserialize_with = "lenient_ref")]
    reference: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

impl ClientEvent {
    /// The wire name of the event.
    pub fn name(&self) -> &str {
        match self {
            ClientEvent::Join(_) => "join",
            ClientEvent::SendMessage(_) => "send_message",
            ClientEvent::ReadReceipt(_) => "read_receipt",
            ClientEvent::EditMessage(_) => "edit_message",
            ClientEvent::DeleteMessage(_) => "delete_message",
            ClientEvent::Typing => "typing",
            ClientEvent::ExpireRoom => "expire_room",
            ClientEvent::ResetPairing(_) => "reset_pairing",
            ClientEvent::RedeemExtension(_) => "redeem_extension",
            ClientEvent::Unknown(name) => name,
        }
    }

    /// `read_receipt` and `typing` never get a reply.
    pub fn expects_reply(&self) -> bool {
        !matches!(self, ClientEvent::ReadReceipt(_) | ClientEvent::Typing)
    }

    /// The frame a client sends for this event.
    pub fn encode(&self, reference: &str) -> String {
        #[derive(Serialize)]
        struct Out<'a, T: Serialize> {
            event: &'a str,
            #[serde(rename = "ref")]
            reference: &'a str,
            data: &'a T,
        }
        fn out<T: Serialize>(event: &str, reference: &str, data: &T) -> String {
            serde_json::to_string(&Out {
                event,
                reference,
                data,
            })
            .unwrap_or_default()
        }
        let empty = serde_json::Map::new();
        match self {
            ClientEvent::Join(d) => out("join", reference, d),
            ClientEvent::SendMessage(d) => out("send_message", reference, d),
            ClientEvent::ReadReceipt(d) => out("read_receipt", reference, d),
            ClientEvent::EditMessage(d) => out("edit_message", reference, d),
            ClientEvent::DeleteMessage(d) => out("delete_message", reference, d),
            ClientEvent::Typing => out("typing", reference, &empty),
            ClientEvent::ExpireRoom => out("expire_room", reference, &empty),
            ClientEvent::ResetPairing(d) => out("reset_pairing", reference, d),
            ClientEvent::RedeemExtension(d) => out("redeem_extension", reference, d),
            ClientEvent::Unknown(name) => out(name, reference, &empty),
        }
    }
}

impl Inbound {
    /// Parses one text frame. Anything that is not a JSON object with a string `event` is a
    /// [`ParseError`]; wrongly typed data fields read as absent.
    pub fn parse(text: &str) -> Result<Inbound, ParseError> {
        let fallback = || ParseError {
            reply_ref: crate::limits::FALLBACK_REF.to_owned(),
        };
        // serde would also read a JSON array into a struct; the protocol wants an object.
        if !text.trim_start().starts_with('{') {
            return Err(fallback());
        }
        let raw: RawFrame<'_> = serde_json::from_str(text).map_err(|_| fallback())?;
        let Some(name) = raw.event else {
            return Err(ParseError {
                reply_ref: raw.reference.unwrap_or_else(|| fallback().reply_ref),
            });
        };
        let event = match name.as_str() {
            "join" => ClientEvent::Join(data(raw.data)),
            "send_message" => ClientEvent::SendMessage(data(raw.data)),
            "read_receipt" => ClientEvent::ReadReceipt(data(raw.data)),
            "edit_message" => ClientEvent::EditMessage(data(raw.data)),
            "delete_message" => ClientEvent::DeleteMessage(data(raw.data)),
            "typing" => ClientEvent::Typing,
            "expire_room" => ClientEvent::ExpireRoom,
            "reset_pairing" => ClientEvent::ResetPairing(data(raw.data)),
            "redeem_extension" => ClientEvent::RedeemExtension(data(raw.data)),
            _ => ClientEvent::Unknown(name),
        };
        Ok(Inbound {
            reference: raw.reference,
            event,
        })
    }
}

/// Typed `data`; missing, `null` or not an object reads as all fields absent.
fn data<T: for<'de> Deserialize<'de> + Default>(raw: Option<&RawValue>) -> T {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default()
}

/// A string field; any other JSON type reads as absent.
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// Refs are strings; a numeric ref is accepted as its decimal text. Overlong refs read as
/// absent-but-present (`"0"`) so a client cannot make the relay echo a payload.
fn lenient_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if s.chars().count() <= MAX_REF_CHARS => Some(s),
        Value::String(_) => Some(crate::limits::FALLBACK_REF.to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_join() {
        let f = Inbound::parse(
            r#"{"event":"join","ref":"1","data":{"sender_hash":"a","access_hash":"b","country_iso":"KE"}}"#,
        )
        .unwrap();
        assert_eq!(f.reference.as_deref(), Some("1"));
        match f.event {
            ClientEvent::Join(d) => {
                assert_eq!(d.sender_hash.as_deref(), Some("a"));
                assert_eq!(d.access_hash.as_deref(), Some("b"));
                assert_eq!(d.otp_hash, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_objects_are_invalid_encoding_with_ref_zero() {
        for bad in ["", "[]", "[1,2]", "\"x\"", "12", "{", "nope", "null"] {
            assert_eq!(Inbound::parse(bad).unwrap_err().reply_ref, "0", "{bad}");
        }
        let e = Inbound::parse(r#"{"ref":"7","data":{}}"#).unwrap_err();
        assert_eq!(e.reply_ref, "7");
    }

    #[test]
    fn wrong_types_read_as_absent() {
        let f =
            Inbound::parse(r#"{"event":"send_message","ref":3,"data":{"ciphertext":5,"iv":null}}"#)
                .unwrap();
        assert_eq!(f.reference.as_deref(), Some("3"));
        assert_eq!(f.event, ClientEvent::SendMessage(SendData::default()));
        let f = Inbound::parse(r#"{"event":"typing"}"#).unwrap();
        assert_eq!(f.reference, None);
        assert_eq!(f.event, ClientEvent::Typing);
        let f = Inbound::parse(r#"{"event":"delete_message","ref":"1","data":[1]}"#).unwrap();
        assert_eq!(
            f.event,
            ClientEvent::DeleteMessage(MessageIdData::default())
        );
    }

    #[test]
    fn unknown_events_keep_their_name() {
        let f = Inbound::parse(r#"{"event":"phx_join","ref":"9","data":{}}"#).unwrap();
        assert_eq!(f.event, ClientEvent::Unknown("phx_join".into()));
    }

    fn opt() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(".{0,80}")
    }

    fn event() -> impl Strategy<Value = ClientEvent> {
        prop_oneof![
            (opt(), opt(), opt(), opt(), opt()).prop_map(|(a, b, c, d, e)| ClientEvent::Join(
                JoinData {
                    sender_hash: a,
                    access_hash: b,
                    otp_hash: c,
                    extension_secret: d,
                    country_iso: e
                }
            )),
            (opt(), opt()).prop_map(|(c, i)| ClientEvent::SendMessage(SendData {
                ciphertext: c,
                iv: i
            })),
            opt().prop_map(|m| ClientEvent::ReadReceipt(MessageIdData { message_id: m })),
            (opt(), opt(), opt()).prop_map(|(m, c, i)| ClientEvent::EditMessage(EditData {
                message_id: m,
                ciphertext: c,
                iv: i
            })),
            opt().prop_map(|m| ClientEvent::DeleteMessage(MessageIdData { message_id: m })),
            Just(ClientEvent::Typing),
            Just(ClientEvent::ExpireRoom),
            opt().prop_map(|o| ClientEvent::ResetPairing(ResetPairingData { otp_hash: o })),
            (opt(), opt()).prop_map(|(s, c)| ClientEvent::RedeemExtension(RedeemData {
                extension_secret: s,
                country_iso: c
            })),
            "[a-z_]{1,20}"
                .prop_filter("not a known event", |n| ![
                    "join",
                    "send_message",
                    "read_receipt",
                    "edit_message",
                    "delete_message",
                    "typing",
                    "expire_room",
                    "reset_pairing",
                    "redeem_extension"
                ]
                .contains(&n.as_str()))
                .prop_map(ClientEvent::Unknown),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(ev in event(), r in "[0-9a-z]{1,12}") {
            let text = ev.encode(&r);
            let back = Inbound::parse(&text).unwrap();
            prop_assert_eq!(back.reference.as_deref(), Some(r.as_str()));
            prop_assert_eq!(back.event, ev);
        }

        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Inbound::parse(&s);
        }
    }
}
