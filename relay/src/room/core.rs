//! A room's decisions with no I/O: state and one command in, an outcome out (the reply, the
//! broadcasts, and what must be persisted before the reply may go).
//!
//! The actor in `room/mod.rs` owns a [`RoomCore`] and does the store and socket work around it.
//! Changes to the durable record are never made here in place: a decision carries the record it
//! wants stored ([`Write`]), and the actor commits it to the core only once the store has taken it
//! (and, where the reply depends on it, flushed it). A write that fails leaves the core as it was,
//! so nothing the store did not persist is ever acknowledged or believed. The message is memory
//! only, so message events change it directly.

use bytes::Bytes;
use stelgano_proto::check::{iso_ms, to_hex64};
use stelgano_proto::server::{reply_ok, Empty, JoinOk, MessageRef, SendOk, TtlOk};
use stelgano_proto::{Broadcast, MessagePayload, Reason};
use stelgano_store::{Guard, RoomRecord, Seat, Tier};
use subtle::ConstantTimeEq;

use crate::error::RelayError;
use crate::room::guard::{self, LockPolicy, Strike};

/// The expiry of a room that never expires (an operator's TTL of 0): the last millisecond of
/// the year 9999. Every client can parse it as a date and none will reach it, where a `null`
/// would break clients that expect a date.
pub(crate) const NEVER_MS: u64 = 253_402_300_799_999;

const HOUR_MS: u64 = 3_600_000;

/// The numbers a room's decisions depend on, from the relay's config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub lock: LockPolicy,
    /// Lifetime of a new room; 0 = no expiry.
    pub free_ttl_ms: u64,
    /// Lifetime an extension token adds; 0 = no expiry.
    pub extended_ttl_ms: u64,
}

impl Policy {
    /// The expiry of a room created at `now_ms` in the free tier.
    pub(crate) fn free_expiry(&self, now_ms: u64) -> u64 {
        if self.free_ttl_ms == 0 {
            return NEVER_MS;
        }
        now_ms.saturating_add(self.free_ttl_ms).min(NEVER_MS)
    }

    /// The expiry after a token is redeemed at `now_ms` on a room expiring at `current_ms`:
    /// the extended TTL added to the later of the two, floored to the whole hour so the stored
    /// time does not encode the moment of redemption (PROTOCOL.md §3). The hour is rounded up
    /// instead when flooring would not move the expiry at all (an extended TTL under an hour).
    pub(crate) fn extended_expiry(&self, now_ms: u64, current_ms: u64) -> u64 {
        if self.extended_ttl_ms == 0 || current_ms >= NEVER_MS {
            return NEVER_MS;
        }
        let base = now_ms.max(current_ms);
        let t = base.saturating_add(self.extended_ttl_ms);
        let floored = t - t % HOUR_MS;
        let at = if floored > base {
            floored
        } else {
            floored.saturating_add(HOUR_MS)
        };
        at.min(NEVER_MS)
    }

    /// `record` moved to the extended tier at `now_ms`.
    pub(crate) fn extend(&self, record: &RoomRecord, now_ms: u64) -> RoomRecord {
        let mut rec = record.clone();
        rec.tier = Tier::Paid;
        rec.ttl_expires_at_ms = self.extended_expiry(now_ms, rec.ttl_expires_at_ms);
        rec
    }
}

/// The pairing code a join carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Otp {
    /// None given: absent, null or empty.
    Absent,
    /// Given, but not 64 lowercase hex: a wrong code when one is needed, none when creating.
    Malformed,
    /// A well-formed code hash.
    Hash([u8; 32]),
}

impl Otp {
    fn hash(self) -> Option<[u8; 32]> {
        match self {
            Otp::Hash(h) => Some(h),
            Otp::Absent | Otp::Malformed => None,
        }
    }
}

/// The room's one message. Kept compact: a parked room (no socket) costs little more than this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) id: uuid::Uuid,
    pub(crate) sender: [u8; 32],
    /// Exactly as the client sent it (the relay forwards strings unchanged).
    pub(crate) ciphertext: Box<str>,
    /// A 12-byte IV is always 16 base64 characters, padded or not; kept inline.
    pub(crate) iv: [u8; 16],
    pub(crate) read_at_ms: Option<u64>,
    pub(crate) inserted_at_ms: u64,
}

impl Message {
    fn iv(&self) -> &str {
        // Always ASCII: built only from a validated base64 string.
        std::str::from_utf8(&self.iv).unwrap_or_default()
    }

    /// The `new_message` frame, encoded straight from the message's fields.
    fn new_message_frame(&self) -> Vec<u8> {
        let id = self.id.hyphenated().to_string();
        let sender = to_hex64(&self.sender);
        let read_at = self.read_at_ms.map(iso_ms);
        MessageRef {
            id: &id,
            sender_hash: &sender,
            ciphertext: &self.ciphertext,
            iv: self.iv(),
            read_at: read_at.as_deref(),
            inserted_at: &iso_ms(self.inserted_at_ms),
        }
        .encode_new_message()
    }

    fn payload(&self) -> MessagePayload {
        MessagePayload {
            id: self.id.hyphenated().to_string(),
            sender_hash: to_hex64(&self.sender),
            ciphertext: self.ciphertext.to_string(),
            iv: self.iv().to_owned(),
            read_at: self.read_at_ms.map(iso_ms),
            inserted_at: iso_ms(self.inserted_at_ms),
        }
    }
}

/// The IV text as stored; `None` unless it is the 16 base64 characters a 12-byte IV takes (the
/// connection has already checked that, so this only guards the invariant).
fn iv_text(iv: &str) -> Option<[u8; 16]> {
    iv.as_bytes().try_into().ok()
}

/// A validated join, as the core sees it.
#[derive(Debug, Clone)]
pub(crate) struct JoinInput {
    pub sender: [u8; 32],
    pub access: [u8; 32],
    pub otp: Otp,
    /// The hash of an extension secret sent with the join, when tokens are enabled: a creating
    /// join redeems it (see [`JoinDecision::extension`]).
    pub extension: Option<[u8; 32]>,
    pub now_ms: u64,
}

/// A validated event from a joined socket (encoding and size were checked by the connection).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Send {
        ciphertext: String,
        iv: String,
    },
    ReadReceipt {
        message_id: String,
    },
    Edit {
        message_id: String,
        ciphertext: String,
        iv: String,
    },
    Delete {
        message_id: String,
    },
    Typing,
    ExpireRoom,
    ResetPairing {
        otp: Option<[u8; 32]>,
    },
    /// `redeem_extension`; `None`: the secret was not 64 lowercase hex.
    Redeem {
        token: Option<[u8; 32]>,
    },
}

/// A record the decision needs stored before its reply goes out.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub record: RoomRecord,
    /// Flush (fsync) before replying. Only counts of attempts refused during a lock skip it: the
    /// lock itself is on disk already, and a flush per refused attempt would let a guesser make
    /// the relay fsync as fast as it can send.
    pub durable: bool,
}

/// What a join decided.
#[derive(Debug)]
pub(crate) struct JoinDecision {
    pub reply: Result<JoinOk, RelayError>,
    /// The seat the socket now holds (on success).
    pub seat: Option<usize>,
    pub write: Option<Write>,
    /// The second seat was claimed: `party_paired` to the room once the write is in.
    pub paired: bool,
    /// The join creates the room and carried this extension token: the actor redeems it and,
    /// if it wins, stores the room in the extended tier instead ([`Policy::extend`]).
    pub extension: Option<[u8; 32]>,
}

impl JoinDecision {
    pub(crate) fn refuse(e: RelayError, write: Option<Write>) -> Self {
        JoinDecision {
            reply: Err(e),
            seat: None,
            write,
            paired: false,
            extension: None,
        }
    }
}

/// Who a broadcast skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    Nobody,
    /// Every socket of this seat (typing goes to the other party only).
    Seat(usize),
    /// This one socket (it gets the frame with its reply instead).
    Conn(u64),
}

/// What an event from a joined socket asks the actor to do besides replying.
#[derive(Debug)]
pub(crate) enum Effect {
    None,
    /// Store this record; the reply stands only if that works.
    Write(Box<Write>),
    /// Burn the room (`expire_room`): the actor deletes the record durably, then
    /// [`RoomCore::burn`]s, broadcasts and closes.
    Burn,
    /// Use up this extension token, then store the record; the reply and broadcast stand only
    /// if both work (an unknown or used token: `invalid_token`).
    Redeem {
        token: [u8; 32],
        write: Box<Write>,
    },
}

/// What an event from a joined socket decided.
#[derive(Debug)]
pub(crate) struct OpOutcome {
    /// `None`: the event has no reply (receipts, typing, and burns, whose reply the actor sends).
    /// `Some(Ok(frame))` is encoded with an empty ref for the caller to fill.
    pub reply: Option<Result<Vec<u8>, RelayError>>,
    pub broadcasts: Vec<(Bytes, Skip)>,
    /// The requester's own copy of a broadcast, sent together with its reply.
    pub echo: Option<Bytes>,
    pub effect: Effect,
    /// A new message was accepted (for the aggregate counter).
    pub delivered: bool,
}

impl OpOutcome {
    fn reply(r: Result<Vec<u8>, RelayError>) -> Self {
        OpOutcome {
            reply: Some(r),
            broadcasts: Vec::new(),
            echo: None,
            effect: Effect::None,
            delivered: false,
        }
    }

    fn silent() -> Self {
        OpOutcome {
            reply: None,
            broadcasts: Vec::new(),
            echo: None,
            effect: Effect::None,
            delivered: false,
        }
    }
}

/// A room's state: its durable record as last stored (`None`: no such room) and its message.
#[derive(Debug, Default, Clone)]
pub(crate) struct RoomCore {
    pub(crate) record: Option<RoomRecord>,
    pub(crate) message: Option<Message>,
}

impl RoomCore {
    pub(crate) fn new(record: Option<RoomRecord>, message: Option<Message>) -> Self {
        RoomCore { record, message }
    }

    pub(crate) fn record(&self) -> Option<&RoomRecord> {
        self.record.as_ref()
    }

    /// The store took `record`: it is now what the room is.
    pub(crate) fn commit(&mut self, record: RoomRecord) {
        self.record = Some(record);
    }

    /// The record is gone from the store: the room and its message are gone too.
    pub(crate) fn burn(&mut self) {
        self.record = None;
        self.message = None;
    }

    /// Whether the room's TTL has passed at `now_ms`.
    pub(crate) fn is_due(&self, now_ms: u64) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| r.ttl_expires_at_ms <= now_ms)
    }

    /// Decides a join (PROTOCOL.md §3). `allow_create` is asked, and spends a token of the
    /// per-IP limit, only when the join would create the room or claim its second seat;
    /// `new_room_id` only when it creates.
    pub(crate) fn decide_join(
        &self,
        input: &JoinInput,
        policy: &Policy,
        allow_create: &mut dyn FnMut() -> bool,
        new_room_id: &mut dyn FnMut() -> [u8; 16],
    ) -> JoinDecision {
        let now = input.now_ms;
        let Some(old) = self.record.as_ref() else {
            // Case 1: no such room, so this join creates it.
            if !allow_create() {
                return JoinDecision::refuse(RelayError::from(Reason::RateLimited), None);
            }
            let record = RoomRecord {
                room_id: new_room_id(),
                created_at_ms: now,
                ttl_expires_at_ms: policy.free_expiry(now),
                tier: Tier::Free,
                seats: [
                    Some(Seat {
                        access_hash: input.access,
                        sender_hash: input.sender,
                        failed_since_join: 0,
                    }),
                    None,
                ],
                guesses: Guard::default(),
                pairing_hash: input.otp.hash(),
                pairing: Guard::default(),
            };
            return JoinDecision {
                reply: Ok(join_ok(&record, None, None)),
                seat: Some(0),
                write: Some(Write {
                    record,
                    durable: true,
                }),
                paired: false,
                extension: input.extension,
            };
        };
        let mut rec = old.clone();

        // A locked room lets nobody in, the right PIN included: the relay cannot tell an owner
        // from a guesser who guessed right. The attempt is counted for the owners to see.
        if let Some(left) = guard::locked_for(&rec.guesses, now) {
            guard::touch(&mut rec.guesses, now, &policy.lock);
            for seat in rec.seats.iter_mut().flatten() {
                seat.failed_since_join = seat.failed_since_join.saturating_add(1);
            }
            return JoinDecision::refuse(
                RelayError::locked(guard::ms_to_retry_secs(left)),
                Some(Write {
                    record: rec,
                    durable: false,
                }),
            );
        }

        // Compare against both seats without an early exit, so timing does not tell which matched.
        let mut matched = None;
        for (i, seat) in rec.seats.iter().enumerate() {
            let hit = match seat {
                Some(s) => s.access_hash.ct_eq(&input.access),
                None => subtle::Choice::from(0),
            };
            if bool::from(hit) {
                matched = Some(i);
            }
        }

        if let Some(i) = matched {
            // Case 2: a seat owner. The wrong-guess count starts again (std-1); the escalation
            // level does not, so owners joining cannot shorten the next lock.
            let Some(seat) = rec.seats[i].as_mut() else {
                return JoinDecision::refuse(RelayError::from(Reason::InvalidAccess), None);
            };
            if !bool::from(seat.sender_hash.ct_eq(&input.sender)) {
                return JoinDecision::refuse(RelayError::from(Reason::InvalidSender), None);
            }
            let failed = std::mem::take(&mut seat.failed_since_join);
            let had_failures = rec.guesses.failures > 0;
            rec.guesses.failures = 0;
            let current = self.message.as_ref().map(Message::payload);
            let ok = join_ok(&rec, current, (failed > 0).then_some(failed));
            return JoinDecision {
                reply: Ok(ok),
                seat: Some(i),
                write: (failed > 0 || had_failures).then_some(Write {
                    record: rec,
                    durable: true,
                }),
                paired: false,
                extension: None,
            };
        }

        if rec.seats[1].is_none() {
            // Case 3: claiming the second seat.
            if let Some(left) = guard::locked_for(&rec.pairing, now) {
                return JoinDecision::refuse(
                    RelayError::locked(guard::ms_to_retry_secs(left)),
                    None,
                );
            }
            if let Some(expected) = rec.pairing_hash {
                // A code that is not even well formed is a wrong code (it counts), not a
                // missing one.
                let right = match input.otp {
                    Otp::Absent => {
                        return JoinDecision::refuse(RelayError::from(Reason::OtpRequired), None)
                    }
                    Otp::Malformed => false,
                    Otp::Hash(given) => bool::from(expected.ct_eq(&given)),
                };
                if !right {
                    let strike = guard::strike(&mut rec.pairing, now, &policy.lock);
                    let e = match strike {
                        Strike::Remaining(n) => RelayError::otp_invalid(n),
                        Strike::Locked { for_ms } => {
                            RelayError::locked(guard::ms_to_retry_secs(for_ms))
                        }
                    };
                    return JoinDecision::refuse(
                        e,
                        Some(Write {
                            record: rec,
                            durable: true,
                        }),
                    );
                }
            }
            if !allow_create() {
                return JoinDecision::refuse(RelayError::from(Reason::RateLimited), None);
            }
            rec.seats[1] = Some(Seat {
                access_hash: input.access,
                sender_hash: input.sender,
                failed_since_join: 0,
            });
            rec.pairing_hash = None;
            rec.pairing = Guard::default();
            let current = self.message.as_ref().map(Message::payload);
            return JoinDecision {
                reply: Ok(join_ok(&rec, current, None)),
                seat: Some(1),
                write: Some(Write {
                    record: rec,
                    durable: true,
                }),
                paired: true,
                extension: None,
            };
        }

        // Case 4: both seats taken and this access hash is neither: a wrong PIN.
        let strike = guard::strike(&mut rec.guesses, now, &policy.lock);
        for seat in rec.seats.iter_mut().flatten() {
            seat.failed_since_join = seat.failed_since_join.saturating_add(1);
        }
        let e = match strike {
            Strike::Remaining(n) => RelayError::unauthorized(n),
            Strike::Locked { for_ms } => RelayError::locked(guard::ms_to_retry_secs(for_ms)),
        };
        JoinDecision::refuse(
            e,
            Some(Write {
                record: rec,
                durable: true,
            }),
        )
    }

    /// Decides an event of a socket joined to `seat` (socket `conn`). Message events take effect
    /// at once (memory only); record changes come back as an [`Effect`] for the actor to persist.
    pub(crate) fn op(
        &mut self,
        seat: usize,
        conn: u64,
        op: Op,
        now_ms: u64,
        policy: &Policy,
    ) -> OpOutcome {
        let Some(sender) = self
            .record
            .as_ref()
            .and_then(|r| r.seats.get(seat)?.as_ref())
            .map(|s| s.sender_hash)
        else {
            return OpOutcome::reply(Err(RelayError::from(Reason::NotJoined)));
        };
        match op {
            Op::Send { ciphertext, iv } => {
                if self.message.as_ref().is_some_and(|m| m.sender == sender) {
                    return OpOutcome::reply(Err(RelayError::from(Reason::NotYourTurn)));
                }
                let Some(iv) = iv_text(&iv) else {
                    return OpOutcome::reply(Err(RelayError::from(Reason::InvalidEncoding)));
                };
                let msg = Message {
                    id: uuid::Uuid::new_v4(),
                    sender,
                    ciphertext: ciphertext.into_boxed_str(),
                    iv,
                    read_at_ms: None,
                    inserted_at_ms: now_ms,
                };
                let frame = Bytes::from(msg.new_message_frame());
                let ok = reply_ok(
                    "",
                    &SendOk {
                        message_id: msg.id.hyphenated().to_string(),
                    },
                );
                self.message = Some(msg);
                // Every socket gets the new message; the sender's goes out with its `ok`, in
                // one write, so it cannot be split from it or overtaken.
                OpOutcome {
                    reply: Some(Ok(ok)),
                    broadcasts: vec![(frame.clone(), Skip::Conn(conn))],
                    echo: Some(frame),
                    effect: Effect::None,
                    delivered: true,
                }
            }
            Op::ReadReceipt { message_id } => {
                let mut out = OpOutcome::silent();
                if let Some(m) = self.message.as_mut() {
                    if is_id(m, &message_id) && m.read_at_ms.is_none() && m.sender != sender {
                        m.read_at_ms = Some(now_ms);
                        let frame = Bytes::from(Broadcast::MessageRead { message_id }.encode());
                        out.broadcasts.push((frame, Skip::Nobody));
                    }
                }
                out
            }
            Op::Edit {
                message_id,
                ciphertext,
                iv,
            } => {
                let m = match own_unread(&mut self.message, &message_id, &sender) {
                    Ok(m) => m,
                    Err(Unchangeable::Missing) => {
                        return OpOutcome::reply(Err(RelayError::from(Reason::NotFound)))
                    }
                    Err(Unchangeable::Read) => {
                        return OpOutcome::reply(Err(RelayError::from(Reason::NotEditable)))
                    }
                };
                let Some(iv_bytes) = iv_text(&iv) else {
                    return OpOutcome::reply(Err(RelayError::from(Reason::InvalidEncoding)));
                };
                let frame = Bytes::from(
                    Broadcast::MessageEdited {
                        message_id,
                        ciphertext: ciphertext.clone(),
                        iv,
                    }
                    .encode(),
                );
                m.ciphertext = ciphertext.into_boxed_str();
                m.iv = iv_bytes;
                let mut out = OpOutcome::reply(Ok(reply_ok("", &Empty {})));
                out.broadcasts.push((frame, Skip::Nobody));
                out
            }
            Op::Delete { message_id } => {
                match own_unread(&mut self.message, &message_id, &sender) {
                    Ok(_) => {}
                    Err(Unchangeable::Missing) => {
                        return OpOutcome::reply(Err(RelayError::from(Reason::NotFound)))
                    }
                    Err(Unchangeable::Read) => {
                        return OpOutcome::reply(Err(RelayError::from(Reason::NotDeletable)))
                    }
                }
                self.message = None;
                let frame = Bytes::from(Broadcast::MessageDeleted { message_id }.encode());
                let mut out = OpOutcome::reply(Ok(reply_ok("", &Empty {})));
                out.broadcasts.push((frame, Skip::Nobody));
                out
            }
            Op::Typing => {
                let frame = Bytes::from_static(br#"{"event":"counterparty_typing","data":{}}"#);
                let mut out = OpOutcome::silent();
                out.broadcasts.push((frame, Skip::Seat(seat)));
                out
            }
            Op::ExpireRoom => {
                let mut out = OpOutcome::silent();
                out.effect = Effect::Burn;
                out
            }
            Op::ResetPairing { otp } => {
                let Some(rec) = self.record.as_ref().filter(|r| r.seats[1].is_none()) else {
                    return OpOutcome::reply(Err(RelayError::from(Reason::NotFound)));
                };
                let Some(otp) = otp else {
                    return OpOutcome::reply(Err(RelayError::from(Reason::InvalidToken)));
                };
                let mut rec = rec.clone();
                rec.pairing_hash = Some(otp);
                rec.pairing = Guard::default();
                let mut out = OpOutcome::reply(Ok(reply_ok("", &Empty {})));
                out.effect = Effect::Write(Box::new(Write {
                    record: rec,
                    durable: true,
                }));
                out
            }
            Op::Redeem { token } => {
                let (Some(token), Some(rec)) = (token, self.record.as_ref()) else {
                    return OpOutcome::reply(Err(RelayError::from(Reason::InvalidToken)));
                };
                let rec = policy.extend(rec, now_ms);
                let at = iso_ms(rec.ttl_expires_at_ms);
                let frame = Bytes::from(
                    Broadcast::TtlExtended {
                        ttl_expires_at: at.clone(),
                    }
                    .encode(),
                );
                // Both parties hear of it; the requester's copy goes with its reply.
                OpOutcome {
                    reply: Some(Ok(reply_ok("", &TtlOk { ttl_expires_at: at }))),
                    broadcasts: vec![(frame.clone(), Skip::Conn(conn))],
                    echo: Some(frame),
                    effect: Effect::Redeem {
                        token,
                        write: Box::new(Write {
                            record: rec,
                            durable: true,
                        }),
                    },
                    delivered: false,
                }
            }
        }
    }
}

/// Why a message cannot be edited or deleted.
enum Unchangeable {
    /// Not the current message, or not the requester's.
    Missing,
    /// Already read.
    Read,
}

/// The current message, if it is `message_id`, was sent by `sender` and is still unread: the
/// one rule edit and delete share.
fn own_unread<'m>(
    message: &'m mut Option<Message>,
    message_id: &str,
    sender: &[u8; 32],
) -> Result<&'m mut Message, Unchangeable> {
    let m = message
        .as_mut()
        .filter(|m| is_id(m, message_id) && &m.sender == sender)
        .ok_or(Unchangeable::Missing)?;
    if m.read_at_ms.is_some() {
        return Err(Unchangeable::Read);
    }
    Ok(m)
}

/// Whether a client's `message_id` names message `m` (ids are UUIDs; anything else names nothing).
fn is_id(m: &Message, message_id: &str) -> bool {
    uuid::Uuid::try_parse(message_id).is_ok_and(|id| id == m.id)
}

fn join_ok(rec: &RoomRecord, current: Option<MessagePayload>, failed: Option<u32>) -> JoinOk {
    JoinOk {
        room_id: uuid::Uuid::from_bytes(rec.room_id).to_string(),
        ttl_expires_at: iso_ms(rec.ttl_expires_at_ms),
        awaiting_party: rec.seats[1].is_none(),
        current_message: current,
        failed_attempts: failed,
    }
}

/// A random UUID v4 for a new room.
pub(crate) fn random_room_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::check::policy;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;

    /// A party: its access and sender hashes.
    #[derive(Clone, Copy)]
    struct Who {
        access: [u8; 32],
        sender: [u8; 32],
    }

    const A: Who = Who {
        access: [1; 32],
        sender: [2; 32],
    };
    const B: Who = Who {
        access: [3; 32],
        sender: [4; 32],
    };
    const OTP: [u8; 32] = [9; 32];

    fn input(w: Who, otp: Option<[u8; 32]>, now_ms: u64) -> JoinInput {
        JoinInput {
            sender: w.sender,
            access: w.access,
            otp: otp.map_or(Otp::Absent, Otp::Hash),
            extension: None,
            now_ms,
        }
    }

    fn stranger(n: u8) -> Who {
        Who {
            access: [100u8.wrapping_add(n); 32],
            sender: [200u8.wrapping_add(n); 32],
        }
    }

    /// Decides a join and commits its write, as the actor does when the store takes it.
    fn join(core: &mut RoomCore, w: Who, otp: Option<[u8; 32]>, now_ms: u64) -> JoinDecision {
        let mut d = core.decide_join(&input(w, otp, now_ms), &policy(), &mut || true, &mut || {
            [7; 16]
        });
        if let Some(write) = d.write.take() {
            core.commit(write.record.clone());
            d.write = Some(write);
        }
        d
    }

    fn paired(now_ms: u64) -> RoomCore {
        let mut core = RoomCore::default();
        assert_eq!(join(&mut core, A, Some(OTP), now_ms).seat, Some(0));
        assert_eq!(join(&mut core, B, Some(OTP), now_ms).seat, Some(1));
        core
    }

    fn reason(d: &JoinDecision) -> &'static str {
        match &d.reply {
            Ok(_) => "ok",
            Err(e) => e.to_wire().reason.as_str(),
        }
    }

    #[test]
    fn creating_writes_durably_and_takes_seat_one() {
        let mut core = RoomCore::default();
        let d = join(&mut core, A, Some(OTP), 1_000);
        assert_eq!(d.seat, Some(0));
        assert!(d.write.as_ref().is_some_and(|w| w.durable));
        let ok = d.reply.unwrap();
        assert!(ok.awaiting_party);
        assert_eq!(
            core.record().unwrap().ttl_expires_at_ms,
            1_000 + 7 * 24 * HOUR
        );
    }

    #[test]
    fn a_refused_creation_writes_nothing() {
        let core = RoomCore::default();
        let d = core.decide_join(&input(A, None, 0), &policy(), &mut || false, &mut || {
            [7; 16]
        });
        assert_eq!(reason(&d), "rate_limited");
        assert!(d.write.is_none() && d.seat.is_none());
    }

    #[test]
    fn a_lock_refuses_the_right_pin_and_counts_the_attempt() {
        let mut core = paired(0);
        for n in 1..10 {
            assert_eq!(
                reason(&join(&mut core, stranger(n), None, 0)),
                "unauthorized"
            );
        }
        let d = join(&mut core, stranger(10), None, 0);
        assert!(matches!(
            d.reply,
            Err(ref e) if e.to_wire() == RelayError::locked(1800).to_wire()
        ));
        // Both owners, right PIN and all, are refused; each refusal is written (not flushed).
        for w in [A, B] {
            let d = join(&mut core, w, None, 10 * MIN);
            assert!(matches!(
                d.reply,
                Err(ref e) if e.to_wire() == RelayError::locked(1200).to_wire()
            ));
            assert!(d.seat.is_none());
            assert!(d.write.as_ref().is_some_and(|w| !w.durable));
        }
        // Once the lock is over, an owner gets in and hears of 10 guesses and 2 refusals.
        let d = join(&mut core, A, None, 30 * MIN);
        assert_eq!(d.seat, Some(0));
        assert_eq!(d.reply.unwrap().failed_attempts, Some(12));
        let d = join(&mut core, B, None, 30 * MIN);
        assert_eq!(d.reply.unwrap().failed_attempts, Some(12));
        // The level survives the owners' joins: the next lock lasts an hour.
        let mut last = None;
        for n in 0..10 {
            last = Some(join(&mut core, stranger(n), None, 31 * MIN));
        }
        assert!(matches!(
            last.unwrap().reply,
            Err(ref e) if e.to_wire() == RelayError::locked(3600).to_wire()
        ));
    }

    #[test]
    fn an_owner_join_resets_the_count_but_not_the_level() {
        let mut core = paired(0);
        for n in 0..5 {
            join(&mut core, stranger(n), None, 0);
        }
        assert_eq!(core.record().unwrap().guesses.failures, 5);
        let d = join(&mut core, A, None, 0);
        assert!(d.write.as_ref().is_some_and(|w| w.durable));
        assert_eq!(core.record().unwrap().guesses.failures, 0);
        // A rejoin with nothing to reset writes nothing.
        assert!(join(&mut core, A, None, 0).write.is_none());
        let d = join(&mut core, stranger(9), None, 0);
        assert!(matches!(
            d.reply,
            Err(ref e) if e.to_wire() == RelayError::unauthorized(9).to_wire()
        ));
    }

    #[test]
    fn a_wrong_sender_with_the_right_access_hash_is_refused_and_not_counted() {
        let mut core = paired(0);
        let d = join(
            &mut core,
            Who {
                access: A.access,
                sender: [0xee; 32],
            },
            None,
            0,
        );
        assert_eq!(reason(&d), "invalid_sender");
        assert!(d.write.is_none());
    }

    #[test]
    fn pairing_needs_the_code_and_locks_after_ten_wrong_ones() {
        let mut core = RoomCore::default();
        join(&mut core, A, Some(OTP), 0);
        assert_eq!(reason(&join(&mut core, B, None, 0)), "otp_required");
        for n in 1..10u32 {
            let d = join(&mut core, B, Some([n as u8 + 20; 32]), 0);
            assert!(matches!(
                d.reply,
                Err(ref e) if e.to_wire() == RelayError::otp_invalid(10 - n).to_wire()
            ));
        }
        assert_eq!(reason(&join(&mut core, B, Some([77; 32]), 0)), "locked");
        // The right code is refused too while the pairing is locked.
        assert_eq!(reason(&join(&mut core, B, Some(OTP), 0)), "locked");
        // The creator is not locked out by the pairing lock.
        assert_eq!(join(&mut core, A, None, 0).seat, Some(0));
        let d = join(&mut core, B, Some(OTP), 30 * MIN);
        assert_eq!(d.seat, Some(1));
        assert!(d.paired);
        assert!(!d.reply.unwrap().awaiting_party);
    }

    fn send(core: &mut RoomCore, seat: usize) -> OpOutcome {
        core.op(
            seat,
            seat as u64,
            Op::Send {
                ciphertext: "AAAA".into(),
                iv: "AAAAAAAAAAAAAAAA".into(),
            },
            0,
            &policy(),
        )
    }

    #[test]
    fn the_turn_rule_and_one_message() {
        let mut core = paired(0);
        assert!(matches!(send(&mut core, 0).reply, Some(Ok(_))));
        assert!(matches!(
            send(&mut core, 0).reply,
            Some(Err(ref e)) if e.reason() == Some(Reason::NotYourTurn)
        ));
        let first = core.message.as_ref().unwrap().id;
        assert!(matches!(send(&mut core, 1).reply, Some(Ok(_))));
        assert_ne!(core.message.as_ref().unwrap().id, first);
        assert_eq!(core.message.as_ref().unwrap().sender, B.sender);
    }

    #[test]
    fn a_malformed_pairing_code_is_a_wrong_one_and_counts() {
        let mut core = RoomCore::default();
        join(&mut core, A, Some(OTP), 0);
        let mut i = input(B, None, 0);
        i.otp = Otp::Malformed;
        let d = core.decide_join(&i, &policy(), &mut || true, &mut || [7; 16]);
        assert!(matches!(
            d.reply,
            Err(ref e) if e.to_wire() == RelayError::otp_invalid(9).to_wire()
        ));
        assert_eq!(d.write.unwrap().record.pairing.failures, 1);
        // Creating with a malformed code makes a room with no pairing code.
        let mut i = input(A, None, 0);
        i.otp = Otp::Malformed;
        let d = RoomCore::default().decide_join(&i, &policy(), &mut || true, &mut || [7; 16]);
        assert_eq!(d.write.unwrap().record.pairing_hash, None);
    }

    #[test]
    fn extensions_move_the_expiry_to_a_whole_hour_and_zero_means_never() {
        let p = policy();
        let year = 365 * 24 * HOUR;
        let now = 1_700_000_123_456;
        let at = p.extended_expiry(now, now + 7 * 24 * HOUR);
        assert_eq!(at % HOUR, 0);
        assert!(at <= now + 7 * 24 * HOUR + year && at > now + 7 * 24 * HOUR + year - HOUR);
        // An expiry already past counts from now.
        let at = p.extended_expiry(now, 5);
        assert!(at <= now + year && at > now + year - HOUR);
        let never = Policy {
            extended_ttl_ms: 0,
            free_ttl_ms: 0,
            ..p
        };
        assert_eq!(never.free_expiry(now), NEVER_MS);
        assert_eq!(never.extended_expiry(now, now), NEVER_MS);
        assert_eq!(p.extended_expiry(now, NEVER_MS), NEVER_MS);
        assert_eq!(iso_ms(NEVER_MS), "9999-12-31T23:59:59.999Z");
        // Shorter than an hour still moves the expiry forward.
        let short = Policy {
            extended_ttl_ms: 60_000,
            ..p
        };
        assert!(short.extended_expiry(now, now) > now);
    }

    #[test]
    fn redeem_needs_a_token_and_writes_the_extended_record() {
        let mut core = paired(0);
        let out = core.op(0, 0, Op::Redeem { token: None }, 0, &policy());
        assert!(matches!(out.reply, Some(Err(ref e)) if e.reason() == Some(Reason::InvalidToken)));
        let out = core.op(
            0,
            0,
            Op::Redeem {
                token: Some([1; 32]),
            },
            0,
            &policy(),
        );
        let Effect::Redeem { token, write } = out.effect else {
            panic!("no redeem effect")
        };
        assert_eq!(token, [1; 32]);
        assert_eq!(write.record.tier, Tier::Paid);
        assert!(out.echo.is_some() && out.broadcasts.len() == 1);
        assert_eq!(core.record().unwrap().tier, Tier::Free);
    }

    #[test]
    fn reset_pairing_is_a_durable_write_and_only_while_a_seat_is_open() {
        let mut core = RoomCore::default();
        join(&mut core, A, Some(OTP), 0);
        let out = core.op(0, 0, Op::ResetPairing { otp: Some([5; 32]) }, 0, &policy());
        assert!(
            matches!(out.effect, Effect::Write(ref w) if w.durable && w.record.pairing_hash == Some([5; 32]))
        );
        // Not committed by the core itself: the actor commits after the store took it.
        assert_eq!(core.record().unwrap().pairing_hash, Some(OTP));
        let mut core = paired(0);
        let out = core.op(0, 0, Op::ResetPairing { otp: Some([5; 32]) }, 0, &policy());
        assert!(matches!(out.reply, Some(Err(ref e)) if e.reason() == Some(Reason::NotFound)));
    }
}
