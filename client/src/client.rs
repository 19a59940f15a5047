//! The typed async client: [`Client::connect`] opens the room's socket, [`Client::join`] turns it
//! into a [`Room`]; plaintext goes in and comes out, every hash and cipher stays inside.

use std::time::Duration;

use serde_json::Value;
use stelgano_proto::client::{
    EditData, JoinData, MessageIdData, RedeemData, ResetPairingData, SendData,
};
use stelgano_proto::server::{JoinOk, SendOk, TtlOk};
use stelgano_proto::{Broadcast, ClientEvent, MessagePayload};
use subtle::ConstantTimeEq;

use crate::connection::{Connection, Incoming};
use crate::crypto::{self, Identity, RoomKey};
use crate::error::ClientError;
use crate::http::RelayUrl;
use crate::ws;

/// Default wait for the TCP connect plus the WebSocket upgrade.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default wait for any reply (joins take at least the relay's 0.5 s time floor).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message's text is unavailable: it failed to decrypt (never shown, not even partly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecryptable(pub &'static str);

impl std::fmt::Display for Undecryptable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A decrypted message of the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// Sent by this party (same `sender_hash`).
    pub mine: bool,
    pub text: Result<String, Undecryptable>,
    /// Read by its recipient.
    pub read: bool,
    /// When the relay received it (ISO 8601).
    pub inserted_at: String,
}

/// What happens in the room, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new message (yours too: the relay echoes it to the sender's sockets).
    Message(Message),
    /// The current message was read by its recipient.
    Read {
        message_id: String,
    },
    Edited {
        message_id: String,
        text: Result<String, Undecryptable>,
    },
    Deleted {
        message_id: String,
    },
    /// The other party is typing.
    Typing,
    /// The second party joined with the pairing code.
    PartyPaired,
    TtlExtended {
        ttl_expires_at: String,
    },
    /// The channel was burned or reached its expiry; the relay closes the socket next.
    Expired,
    /// This consumer fell behind and `count` events were dropped.
    Missed {
        count: u64,
    },
    /// A broadcast this client does not know.
    Unknown {
        event: String,
    },
    /// The socket closed; the last event.
    Closed {
        code: u16,
        reason: String,
    },
}

/// Options of a join.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// The pairing code: the creator's fresh code, or the code the second party was given.
    pub pairing_code: Option<String>,
    /// An extension token secret (64 hex) to create the room directly in the extended tier.
    pub extension_secret: Option<String>,
}

/// What the relay said on joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInfo {
    /// Kept for compatibility only; std-1 keys never use it.
    pub room_id: String,
    pub ttl_expires_at: String,
    /// Only one seat is taken so far.
    pub awaiting_party: bool,
    /// Wrong-PIN guesses against this channel since this seat's last visit (ours; 0 if none).
    pub failed_attempts: u32,
}

/// A connected socket to one room, not yet joined.
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    identity: Identity,
}

impl Client {
    /// Opens the socket of `identity`'s room on the relay at `relay` (`ws://HOST:PORT`).
    pub async fn connect(relay: &RelayUrl, identity: Identity) -> Result<Client, ClientError> {
        let url = relay.room_socket(identity.room_hash());
        let ws = tokio::time::timeout(CONNECT_TIMEOUT, ws::connect(&url))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("a connection to {relay}"),
                after: CONNECT_TIMEOUT,
            })??;
        Ok(Client {
            conn: Connection::start(ws, REQUEST_TIMEOUT),
            identity,
        })
    }

    /// Joins (creating the room if it does not exist, claiming the second seat with a pairing
    /// code, or rejoining an own seat). The relay's refusal comes back as [`ClientError::Server`].
    pub async fn join(mut self, key: RoomKey, options: JoinOptions) -> Result<Room, ClientError> {
        let data = JoinData {
            sender_hash: Some(self.identity.sender_hash().to_owned()),
            access_hash: Some(self.identity.access_hash().to_owned()),
            otp_hash: options.pairing_code.as_deref().map(crypto::otp_hash),
            extension_secret: options.extension_secret,
            country_iso: None,
        };
        let reply = self.conn.request(&ClientEvent::Join(data)).await?;
        let ok: JoinOk = parse_ok(reply, "join")?;
        let mut room = Room {
            conn: self.conn,
            identity: self.identity,
            key,
            info: JoinInfo {
                room_id: ok.room_id,
                ttl_expires_at: ok.ttl_expires_at,
                awaiting_party: ok.awaiting_party,
                failed_attempts: ok.failed_attempts.unwrap_or(0),
            },
            current: None,
        };
        room.current = ok.current_message.map(|m| room.decode(m));
        Ok(room)
    }
}

/// Derives the room key (on a blocking thread) while connecting, then joins: the usual way in.
pub async fn open(
    relay: &RelayUrl,
    identity: Identity,
    options: JoinOptions,
) -> Result<Room, ClientError> {
    let for_key = identity.clone();
    let key = tokio::task::spawn_blocking(move || for_key.derive_key());
    let client = Client::connect(relay, identity).await?;
    let key = key
        .await
        .map_err(|e| ClientError::Protocol(format!("key derivation task failed: {e}")))?;
    client.join(key, options).await
}

fn parse_ok<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("{what} reply: {e}")))
}

/// A joined channel.
#[derive(Debug)]
pub struct Room {
    conn: Connection,
    identity: Identity,
    key: RoomKey,
    info: JoinInfo,
    current: Option<Message>,
}

impl Room {
    /// The join reply.
    pub fn info(&self) -> &JoinInfo {
        &self.info
    }

    /// The room's one message as this client last saw it (from the join reply and the events
    /// read since with [`Room::next_event`]).
    pub fn current(&self) -> Option<&Message> {
        self.current.as_ref()
    }

    /// `true` when this party may send: the room is empty or its message is the other party's.
    pub fn my_turn(&self) -> bool {
        !self.current.as_ref().is_some_and(|m| m.mine)
    }

    fn is_mine(&self, sender_hash: &str) -> bool {
        sender_hash
            .as_bytes()
            .ct_eq(self.identity.sender_hash().as_bytes())
            .into()
    }

    fn decode(&self, m: MessagePayload) -> Message {
        Message {
            mine: self.is_mine(&m.sender_hash),
            text: self.open_text(&m.ciphertext, &m.iv),
            read: m.read_at.is_some(),
            inserted_at: m.inserted_at,
            id: m.id,
        }
    }

    fn open_text(&self, ciphertext: &str, iv: &str) -> Result<String, Undecryptable> {
        self.key.decrypt(ciphertext, iv).map_err(|e| match e {
            ClientError::Decrypt(why) => Undecryptable(why),
            _ => Undecryptable("decryption failed"),
        })
    }

    /// Encrypts and sends a message; returns its id. Refused with `not_your_turn` while the room
    /// holds this party's own message.
    pub async fn send(&mut self, text: &str) -> Result<String, ClientError> {
        let sealed = self.key.encrypt(text)?;
        let reply = self
            .conn
            .request(&ClientEvent::SendMessage(SendData {
                ciphertext: Some(sealed.ciphertext),
                iv: Some(sealed.iv),
            }))
            .await?;
        let ok: SendOk = parse_ok(reply, "send_message")?;
        Ok(ok.message_id)
    }

    /// Replaces the text of this party's unread message.
    pub async fn edit(&mut self, message_id: &str, text: &str) -> Result<(), ClientError> {
        let sealed = self.key.encrypt(text)?;
        self.conn
            .request(&ClientEvent::EditMessage(EditData {
                message_id: Some(message_id.to_owned()),
                ciphertext: Some(sealed.ciphertext),
                iv: Some(sealed.iv),
            }))
            .await?;
        Ok(())
    }

    /// Deletes this party's unread message.
    pub async fn delete(&mut self, message_id: &str) -> Result<(), ClientError> {
        self.conn
            .request(&ClientEvent::DeleteMessage(MessageIdData {
                message_id: Some(message_id.to_owned()),
            }))
            .await?;
        Ok(())
    }

    /// Marks the other party's message read (the relay sends no reply; a `Read` event follows).
    pub async fn read_receipt(&mut self, message_id: &str) -> Result<(), ClientError> {
        self.conn
            .notify(&ClientEvent::ReadReceipt(MessageIdData {
                message_id: Some(message_id.to_owned()),
            }))
            .await
    }

    /// Tells the other party this one is typing (no reply).
    pub async fn typing(&mut self) -> Result<(), ClientError> {
        self.conn.notify(&ClientEvent::Typing).await
    }

    /// Burns the channel now, for both parties.
    pub async fn expire(&mut self) -> Result<(), ClientError> {
        self.conn.request(&ClientEvent::ExpireRoom).await?;
        Ok(())
    }

    /// Replaces the pairing code while the second seat is still open.
    pub async fn reset_pairing(&mut self, code: &str) -> Result<(), ClientError> {
        self.conn
            .request(&ClientEvent::ResetPairing(ResetPairingData {
                otp_hash: Some(crypto::otp_hash(code)),
            }))
            .await?;
        Ok(())
    }

    /// Redeems an extension token (the 64-hex secret the operator handed out): the channel's
    /// expiry moves by the relay's extended TTL. Returns the new expiry (ISO 8601). A relay
    /// that takes no tokens answers `monetization_disabled`; an unknown or used token,
    /// `invalid_token`.
    pub async fn redeem(&mut self, secret: &str) -> Result<String, ClientError> {
        let reply = self
            .conn
            .request(&ClientEvent::RedeemExtension(RedeemData {
                extension_secret: Some(secret.trim().to_owned()),
                country_iso: None,
            }))
            .await?;
        let ok: TtlOk = parse_ok(reply, "redeem_extension")?;
        self.info.ttl_expires_at.clone_from(&ok.ttl_expires_at);
        Ok(ok.ttl_expires_at)
    }

    /// The next event, decrypted; `None` after [`Event::Closed`].
    pub async fn next_event(&mut self) -> Option<Event> {
        let incoming = match self.conn.next().await? {
            Ok(incoming) => incoming,
            Err(count) => return Some(Event::Missed { count }),
        };
        let event = match incoming {
            Incoming::Broadcast(b) => self.apply(b),
            Incoming::Unknown(event) => Event::Unknown { event },
            Incoming::Closed { code, reason } => Event::Closed { code, reason },
        };
        Some(event)
    }

    /// Decodes a broadcast and keeps [`Room::current`] in step with it.
    fn apply(&mut self, b: Broadcast) -> Event {
        match b {
            Broadcast::NewMessage(m) => {
                let m = self.decode(m);
                self.current = Some(m.clone());
                Event::Message(m)
            }
            Broadcast::MessageRead { message_id } => {
                if let Some(m) = self.current.as_mut().filter(|m| m.id == message_id) {
                    m.read = true;
                }
                Event::Read { message_id }
            }
            Broadcast::MessageEdited {
                message_id,
                ciphertext,
                iv,
            } => {
                let text = self.open_text(&ciphertext, &iv);
                if let Some(m) = self.current.as_mut().filter(|m| m.id == message_id) {
                    m.text = text.clone();
                }
                Event::Edited { message_id, text }
            }
            Broadcast::MessageDeleted { message_id } => {
                if self.current.as_ref().is_some_and(|m| m.id == message_id) {
                    self.current = None;
                }
                Event::Deleted { message_id }
            }
            Broadcast::CounterpartyTyping {} => Event::Typing,
            Broadcast::RoomExpired {} => {
                self.current = None;
                Event::Expired
            }
            Broadcast::TtlExtended { ttl_expires_at } => {
                self.info.ttl_expires_at.clone_from(&ttl_expires_at);
                Event::TtlExtended { ttl_expires_at }
            }
            Broadcast::PartyPaired {} => {
                self.info.awaiting_party = false;
                Event::PartyPaired
            }
        }
    }

    /// Leaves without burning the channel: close code 1000, reason `logout` (as the browser does).
    pub async fn close(self) {
        self.conn.close(1000, "logout").await;
    }
}
