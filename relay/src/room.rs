//! One live room: an actor task that owns the seats' sockets and the one current message.
//!
//! The actor is the single writer of its room's durable record and the only holder of its message
//! (memory only; a restart loses it by design). The way in is a bounded mailbox of [`Command`]s; it
//! answers joins over a oneshot and every other event by writing the reply frame into the
//! requesting socket's outbox, after any broadcast that event caused, so ordering holds by
//! construction. The actor exits once it has no sockets; a message it holds is parked in the
//! registry until the next join, and the room itself lives on in the store.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use rand::RngCore;
use serde::Serialize;
use std::time::Duration;
use stelgano_proto::check::{iso_ms, to_hex64};
use stelgano_proto::server::{reply_error, reply_ok, Empty, JoinOk, MessageRef, SendOk};
use stelgano_proto::{Broadcast, MessagePayload};
use stelgano_store::{Guard, RoomKey, RoomRecord, Seat, Tier};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::RelayError;
use crate::guard::{self, Strike};
use crate::outbox::{Outbound, Outbox, Refused};
use crate::Shared;

/// Capacity of a room's mailbox. Senders wait for room (connections with a timeout, see
/// `Rooms::send`), so a burst slows the sockets that cause it instead of growing memory.
pub const MAILBOX: usize = 64;

/// What a socket asks of its room.
#[derive(Debug)]
pub enum Command {
    /// Join (create, rejoin, claim the second seat, or a guess). The reply frame goes to `out`,
    /// held until `deadline` (the time floor); the oneshot says whether the socket is now joined.
    Join(Box<JoinRequest>, oneshot::Sender<bool>),
    /// An event from a joined socket; its reply (if it has a ref) goes to the socket's outbox.
    /// Boxed, like joins, so the mailbox's slots stay small for rooms that sit idle.
    Op(Box<OpRequest>),
    /// The socket closed.
    Leave { conn: u64 },
    /// The sweeper found the room due: expire it if its TTL has passed.
    Expire(oneshot::Sender<()>),
    /// The relay is shutting down: stop now (messages are lost, by design).
    Shutdown,
}

/// A validated join.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub conn: u64,
    pub sender: [u8; 32],
    pub access: [u8; 32],
    pub otp: Option<[u8; 32]>,
    pub ip: IpAddr,
    pub reference: Option<String>,
    pub deadline: Instant,
    pub out: Outbox,
}

/// An event from joined socket `conn`, with the client's ref.
#[derive(Debug)]
pub struct OpRequest {
    pub conn: u64,
    pub reference: Option<String>,
    pub op: Op,
}

/// A validated event from a joined socket (encoding and size were checked by the connection).
#[derive(Debug)]
pub enum Op {
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
}

/// A handle to a live room actor; cheap to clone.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    pub(crate) generation: u64,
    pub(crate) tx: mpsc::Sender<Command>,
}

struct Member {
    conn: u64,
    seat: usize,
    out: Outbox,
}

/// The room's one message. Kept compact: a parked room (no socket) costs little more than this.
#[derive(Debug)]
pub(crate) struct Message {
    id: uuid::Uuid,
    sender: [u8; 32],
    /// Exactly as the client sent it (the relay forwards strings unchanged).
    ciphertext: Box<str>,
    /// A 12-byte IV is always 16 base64 characters, padded or not; kept inline.
    iv: [u8; 16],
    read_at_ms: Option<u64>,
    inserted_at_ms: u64,
}

/// The IV text as stored; `None` unless it is the 16 base64 characters a 12-byte IV takes (the
/// connection has already checked that, so this only guards the invariant).
fn iv_text(iv: &str) -> Option<[u8; 16]> {
    iv.as_bytes().try_into().ok()
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

pub(crate) struct RoomActor {
    key: RoomKey,
    generation: u64,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    record: Option<RoomRecord>,
    message: Option<Message>,
    members: Vec<Member>,
    /// The requester's own copy of a broadcast its event caused, sent together with its reply.
    echo: Option<Bytes>,
}

/// Who a broadcast skips.
#[derive(Debug, Clone, Copy)]
enum Skip {
    Nobody,
    /// Every socket of this seat (typing goes to the other party only).
    Seat(usize),
    /// This one socket (it gets the frame with its reply instead).
    Conn(u64),
}

impl RoomActor {
    pub(crate) fn new(
        key: RoomKey,
        generation: u64,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
        message: Option<Message>,
    ) -> Self {
        RoomActor {
            key,
            generation,
            shared,
            rx,
            record: None,
            message,
            members: Vec::new(),
            echo: None,
        }
    }

    /// Runs the room until it is idle or the relay shuts down, then leaves the registry: a room
    /// still holding a message (a dead drop with no socket open) is parked there as just its
    /// message, and the next actor for the room takes it back. Commands still queued at exit are
    /// dropped unanswered; their senders see the closed oneshot and retry on a fresh actor (only
    /// joins and sweeps can be queued then, and both are safe to repeat).
    pub(crate) async fn run(mut self) {
        if let Err(e) = self.run_inner().await {
            warn!(error = %e, "room actor stopped on an internal error");
        }
        let keep = self.record.is_some() && !self.shared.cancel.is_cancelled();
        match self.message.take() {
            Some(message) if keep => self.shared.rooms.park(&self.key, self.generation, message),
            _ => self.shared.rooms.unregister(&self.key, self.generation),
        }
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        let (code, reason) = if self.shared.cancel.is_cancelled() {
            (1001, "going_away")
        } else {
            (1011, "internal_error")
        };
        for m in self.members.drain(..) {
            m.out.kill(code, reason);
        }
    }

    async fn run_inner(&mut self) -> Result<(), RelayError> {
        self.record = self.shared.store.get(&self.key)?;
        let now = self.shared.clock.now_ms();
        if self
            .record
            .as_ref()
            .is_some_and(|r| r.ttl_expires_at_ms <= now)
        {
            Box::pin(self.expire(None)).await?;
        }
        // The TTL timer lives across iterations: re-arming it per command would cost a timer
        // operation per message. There is no shutdown branch here: watching the relay-wide
        // token cost a lock shared by every room on every message; shutdown arrives as a
        // `Shutdown` command instead (and every socket leaves anyway).
        let ttl = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(ttl);
        let mut armed_for: Option<u64> = None;
        loop {
            let due = self.record.as_ref().map(|r| r.ttl_expires_at_ms);
            if due != armed_for {
                if let Some(ms) = due {
                    ttl.as_mut().reset(self.shared.clock.instant_at(ms));
                }
                armed_for = due;
            }
            tokio::select! {
                biased;
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown) | None => return Ok(()),
                    Some(cmd) => self.handle(cmd).await?,
                },
                _ = &mut ttl, if armed_for.is_some() => {
                    debug!("room reached its TTL");
                    Box::pin(self.expire(None)).await?;
                }
            }
            // A socket whose writer has gone is pruned here in case its Leave was lost, but only
            // once the mailbox is empty: its last events (a receipt sent just before closing) may
            // still be queued, and they count.
            if self.rx.is_empty() {
                self.members.retain(|m| !m.out.is_closed());
            }
            if self.members.is_empty() {
                return Ok(());
            }
        }
    }

    async fn handle(&mut self, cmd: Command) -> Result<(), RelayError> {
        match cmd {
            Command::Join(req, respond_to) => {
                // Boxed, as are expiries: rare and large, they would otherwise size the future
                // every idle room keeps in memory.
                let joined = Box::pin(self.join(*req)).await;
                // The connection may have gone while we worked; then there is no one to tell.
                let _ = respond_to.send(joined);
            }
            Command::Op(request) => {
                let OpRequest {
                    conn,
                    reference,
                    op,
                } = *request;
                let Some(idx) = self.members.iter().position(|m| m.conn == conn) else {
                    // Removed (slow, or the room expired) while the event was queued.
                    return Ok(());
                };
                let result = self.op(idx, reference.clone(), op).await;
                let echo = self.echo.take();
                let reply = match (reference, result) {
                    (Some(r), Some(result)) => {
                        let frame = match result {
                            Ok(ok) => ok,
                            Err(e) => {
                                if e.is_internal() {
                                    warn!(error = %e, "room event failed");
                                }
                                reply_error(&r, &e.to_wire())
                            }
                        };
                        Some(Bytes::from(fill_ref(frame, &r)))
                    }
                    _ => None,
                };
                let item = match (echo, reply) {
                    (Some(echo), Some(reply)) => Outbound::Pair(Box::new((echo, reply))),
                    (Some(frame), None) | (None, Some(frame)) => Outbound::Text(frame),
                    (None, None) => return Ok(()),
                };
                if let Some(m) = self.members.iter().find(|m| m.conn == conn) {
                    let m_out = m.out.clone();
                    self.push(&m_out, conn, item);
                }
            }
            Command::Leave { conn } => self.members.retain(|m| m.conn != conn),
            // Handled by the loop before it gets here.
            Command::Shutdown => {}
            Command::Expire(done) => {
                let now = self.shared.clock.now_ms();
                if self
                    .record
                    .as_ref()
                    .is_some_and(|r| r.ttl_expires_at_ms <= now)
                {
                    Box::pin(self.expire(None)).await?;
                }
                let _ = done.send(());
            }
        }
        Ok(())
    }

    /// Decides a join. Every branch writes exactly one reply frame to the socket, held to the
    /// request's deadline, and returns whether the socket joined.
    async fn join(&mut self, req: JoinRequest) -> bool {
        let result = self.decide_join(&req).await;
        let reference = req.reference.as_deref();
        let (frame, seat) = match result {
            Ok((ok, seat)) => (reference.map(|r| reply_ok(r, &ok)), Some(seat)),
            Err(e) => {
                if e.is_internal() {
                    warn!(error = %e, "join failed");
                }
                (reference.map(|r| reply_error(r, &e.to_wire())), None)
            }
        };
        if let Some(frame) = frame {
            let held = Outbound::Held(Box::new((req.deadline, Bytes::from(frame))));
            if req.out.try_push(held).is_err() {
                req.out.kill(1008, "too_slow");
                return false;
            }
        }
        let Some(seat) = seat else { return false };
        self.members.retain(|m| m.conn != req.conn);
        self.members.push(Member {
            conn: req.conn,
            seat,
            out: req.out,
        });
        true
    }

    async fn decide_join(&mut self, req: &JoinRequest) -> Result<(JoinOk, usize), RelayError> {
        let cfg = &self.shared.config;
        if self.members.len() >= cfg.max_sockets_per_room
            && !self.members.iter().any(|m| m.conn == req.conn)
        {
            return Err(RelayError::RateLimited);
        }
        let now = self.shared.clock.now_ms();
        let policy = self.shared.lock_policy();
        let Some(rec) = self.record.as_mut() else {
            // Case 1: no such room, so this join creates it.
            if !self.shared.limits.allow_create(req.ip) {
                return Err(RelayError::RateLimited);
            }
            let mut room_id = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut room_id);
            // UUID v4 layout: version nibble 4, variant bits 10.
            room_id[6] = (room_id[6] & 0x0f) | 0x40;
            room_id[8] = (room_id[8] & 0x3f) | 0x80;
            let rec = RoomRecord {
                room_id,
                created_at_ms: now,
                ttl_expires_at_ms: now.saturating_add(cfg.free_ttl.as_millis() as u64),
                tier: Tier::Free,
                seats: [
                    Some(Seat {
                        access_hash: req.access,
                        sender_hash: req.sender,
                        failed_since_join: 0,
                    }),
                    None,
                ],
                guesses: Guard::default(),
                pairing_hash: req.otp,
                pairing: Guard::default(),
            };
            self.shared.store.put(&self.key, &rec)?;
            self.shared.store.flush().await?;
            let ok = join_ok(&rec, None, None);
            self.record = Some(rec);
            return Ok((ok, 0));
        };

        // Compare against both seats without an early exit, so timing does not tell which matched.
        let mut matched = None;
        for (i, seat) in rec.seats.iter().enumerate() {
            let hit = match seat {
                Some(s) => s.access_hash.ct_eq(&req.access),
                None => subtle::Choice::from(0),
            };
            if bool::from(hit) {
                matched = Some(i);
            }
        }

        if let Some(i) = matched {
            // Case 2: a seat owner. Guesses never lock the owner out (ours).
            let Some(seat) = rec.seats[i].as_mut() else {
                return Err(RelayError::InvalidAccess);
            };
            if !bool::from(seat.sender_hash.ct_eq(&req.sender)) {
                return Err(RelayError::InvalidSender);
            }
            let failed = std::mem::take(&mut seat.failed_since_join);
            if failed > 0 {
                self.shared.store.put(&self.key, rec)?;
            }
            let current = self.message.as_ref().map(Message::payload);
            return Ok((join_ok(rec, current, (failed > 0).then_some(failed)), i));
        }

        if rec.seats[1].is_none() {
            // Case 3: claiming the second seat.
            if let Some(left) = guard::locked_for(&rec.pairing, now) {
                return Err(RelayError::Locked {
                    retry_after_s: guard::ms_to_retry_secs(left),
                });
            }
            if let Some(expected) = rec.pairing_hash {
                let Some(given) = req.otp else {
                    return Err(RelayError::OtpRequired);
                };
                if !bool::from(expected.ct_eq(&given)) {
                    let strike = guard::strike(&mut rec.pairing, now, &policy);
                    self.shared.store.put(&self.key, rec)?;
                    self.shared.store.flush().await?;
                    return Err(match strike {
                        Strike::Remaining(n) => RelayError::OtpInvalid {
                            attempts_remaining: n,
                        },
                        Strike::Locked { for_ms } => RelayError::Locked {
                            retry_after_s: guard::ms_to_retry_secs(for_ms),
                        },
                    });
                }
            }
            if !self.shared.limits.allow_create(req.ip) {
                return Err(RelayError::RateLimited);
            }
            rec.seats[1] = Some(Seat {
                access_hash: req.access,
                sender_hash: req.sender,
                failed_since_join: 0,
            });
            rec.pairing_hash = None;
            rec.pairing = Guard::default();
            self.shared.store.put(&self.key, rec)?;
            self.shared.store.flush().await?;
            let current = self.message.as_ref().map(Message::payload);
            let ok = join_ok(rec, current, None);
            let paired = Bytes::from(Broadcast::PartyPaired {}.encode());
            self.broadcast(&paired, Skip::Nobody);
            return Ok((ok, 1));
        }

        // Case 4: both seats taken and this access hash is neither: a wrong PIN.
        if let Some(left) = guard::locked_for(&rec.guesses, now) {
            return Err(RelayError::Locked {
                retry_after_s: guard::ms_to_retry_secs(left),
            });
        }
        let strike = guard::strike(&mut rec.guesses, now, &policy);
        for seat in rec.seats.iter_mut().flatten() {
            seat.failed_since_join = seat.failed_since_join.saturating_add(1);
        }
        self.shared.store.put(&self.key, rec)?;
        self.shared.store.flush().await?;
        Err(match strike {
            Strike::Remaining(n) => RelayError::Unauthorized {
                attempts_remaining: n,
            },
            Strike::Locked { for_ms } => RelayError::Locked {
                retry_after_s: guard::ms_to_retry_secs(for_ms),
            },
        })
    }

    /// Runs one event of member `idx`. `None` means the event has no reply (receipts, typing);
    /// `Some(Ok(frame))` carries the encoded reply with an empty ref that the caller fills.
    async fn op(
        &mut self,
        idx: usize,
        reference: Option<String>,
        op: Op,
    ) -> Option<Result<Vec<u8>, RelayError>> {
        let seat = self.members[idx].seat;
        let conn = self.members[idx].conn;
        let Some(sender) = self
            .record
            .as_ref()
            .and_then(|r| r.seats[seat].as_ref())
            .map(|s| s.sender_hash)
        else {
            return Some(Err(RelayError::NotJoined));
        };
        let now = self.shared.clock.now_ms();
        match op {
            Op::Send { ciphertext, iv } => {
                if self.message.as_ref().is_some_and(|m| m.sender == sender) {
                    return Some(Err(RelayError::NotYourTurn));
                }
                let Some(iv) = iv_text(&iv) else {
                    return Some(Err(RelayError::InvalidEncoding));
                };
                let msg = Message {
                    id: uuid::Uuid::new_v4(),
                    sender,
                    ciphertext: ciphertext.into_boxed_str(),
                    iv,
                    read_at_ms: None,
                    inserted_at_ms: now,
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
                self.broadcast(&frame, Skip::Conn(conn));
                self.echo = Some(frame);
                self.shared.metrics.message();
                Some(Ok(ok))
            }
            Op::ReadReceipt { message_id } => {
                if let Some(m) = self.message.as_mut() {
                    if is_id(m, &message_id) && m.read_at_ms.is_none() && m.sender != sender {
                        m.read_at_ms = Some(now);
                        let frame = Bytes::from(Broadcast::MessageRead { message_id }.encode());
                        self.broadcast(&frame, Skip::Nobody);
                    }
                }
                None
            }
            Op::Edit {
                message_id,
                ciphertext,
                iv,
            } => {
                let m = match own_unread(&mut self.message, &message_id, &sender) {
                    Ok(m) => m,
                    Err(Unchangeable::Missing) => return Some(Err(RelayError::NotFound)),
                    Err(Unchangeable::Read) => return Some(Err(RelayError::NotEditable)),
                };
                let Some(iv_bytes) = iv_text(&iv) else {
                    return Some(Err(RelayError::InvalidEncoding));
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
                self.broadcast(&frame, Skip::Nobody);
                Some(Ok(reply_ok("", &Empty {})))
            }
            Op::Delete { message_id } => {
                match own_unread(&mut self.message, &message_id, &sender) {
                    Ok(_) => {}
                    Err(Unchangeable::Missing) => return Some(Err(RelayError::NotFound)),
                    Err(Unchangeable::Read) => return Some(Err(RelayError::NotDeletable)),
                }
                self.message = None;
                let frame = Bytes::from(Broadcast::MessageDeleted { message_id }.encode());
                self.broadcast(&frame, Skip::Nobody);
                Some(Ok(reply_ok("", &Empty {})))
            }
            Op::Typing => {
                let frame = Bytes::from_static(br#"{"event":"counterparty_typing","data":{}}"#);
                self.broadcast(&frame, Skip::Seat(seat));
                None
            }
            Op::ExpireRoom => match Box::pin(self.expire(Some((conn, reference)))).await {
                Ok(()) => None,
                Err(e) => {
                    warn!(error = %e, "expire_room failed");
                    Some(Err(RelayError::ExpireFailed))
                }
            },
            Op::ResetPairing { otp } => {
                let Some(rec) = self.record.as_mut().filter(|r| r.seats[1].is_none()) else {
                    return Some(Err(RelayError::NotFound));
                };
                let Some(otp) = otp else {
                    return Some(Err(RelayError::InvalidToken));
                };
                rec.pairing_hash = Some(otp);
                rec.pairing = Guard::default();
                if let Err(e) = self.shared.store.put(&self.key, rec) {
                    return Some(Err(e.into()));
                }
                if let Err(e) = self.shared.store.flush().await {
                    return Some(Err(e.into()));
                }
                Some(Ok(reply_ok("", &Empty {})))
            }
        }
    }

    /// Burns the room: `room_expired` to every socket, then (for `expire_room`) the requester's
    /// `ok`, then close 1000 `room_expired` to all, and the record is deleted durably.
    async fn expire(&mut self, requester: Option<(u64, Option<String>)>) -> Result<(), RelayError> {
        self.shared.store.remove(&self.key)?;
        self.shared.store.flush().await?;
        self.record = None;
        self.message = None;
        let frame = Bytes::from(Broadcast::RoomExpired {}.encode());
        self.broadcast(&frame, Skip::Nobody);
        if let Some((conn, Some(r))) = requester {
            if let Some(m) = self.members.iter().find(|m| m.conn == conn) {
                let _ = m
                    .out
                    .try_push(Outbound::Text(Bytes::from(reply_ok(&r, &Empty {}))));
            }
        }
        for m in std::mem::take(&mut self.members) {
            // A full or closed outbox means the socket is going anyway.
            let _ = m.out.try_push(Outbound::Close {
                code: 1000,
                reason: "room_expired",
            });
        }
        self.shared.metrics.room_expired();
        Ok(())
    }

    /// Sends `frame` to every member but the skipped ones. A member whose outbox is full
    /// is too slow for the room: it is dropped and its socket closed, so one stuck reader never
    /// holds up the room or grows memory.
    fn broadcast(&mut self, frame: &Bytes, skip: Skip) {
        let mut slow = Vec::new();
        for m in &self.members {
            match skip {
                Skip::Seat(seat) if m.seat == seat => continue,
                Skip::Conn(conn) if m.conn == conn => continue,
                _ => {}
            }
            if let Err(Refused::Full) = m.out.try_push(Outbound::Text(frame.clone())) {
                slow.push(m.conn);
            }
            // Closed: the socket is going; its Leave (or the idle prune) removes it.
        }
        if !slow.is_empty() {
            self.drop_slow(&slow);
        }
    }

    fn push(&mut self, out: &Outbox, conn: u64, item: Outbound) {
        if let Err(Refused::Full) = out.try_push(item) {
            self.drop_slow(&[conn]);
        }
    }

    fn drop_slow(&mut self, conns: &[u64]) {
        self.members.retain(|m| {
            if conns.contains(&m.conn) {
                m.out.kill(1008, "too_slow");
                false
            } else {
                true
            }
        });
        self.shared.metrics.slow_consumer(conns.len());
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

/// Replies are encoded with an empty ref (`{"ref":"",...}`) where the ref is not at hand; this
/// puts the real one in. Cheaper than threading the ref through every branch.
fn fill_ref(frame: Vec<u8>, reference: &str) -> Vec<u8> {
    const EMPTY: &[u8] = br#"{"ref":"""#;
    if !frame.starts_with(EMPTY) {
        return frame;
    }
    #[derive(Serialize)]
    struct R<'a>(&'a str);
    let quoted = serde_json::to_vec(&R(reference)).unwrap_or_else(|_| b"\"0\"".to_vec());
    let mut out = Vec::with_capacity(frame.len() + quoted.len());
    out.extend_from_slice(br#"{"ref":"#);
    out.extend_from_slice(&quoted);
    out.extend_from_slice(&frame[EMPTY.len()..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_ref_replaces_the_empty_ref() {
        let f = reply_ok("", &Empty {});
        assert_eq!(fill_ref(f, "7\"x"), br#"{"ref":"7\"x","ok":{}}"#.to_vec());
        let e = reply_error("", &RelayError::NotFound.to_wire());
        assert_eq!(
            fill_ref(e, "2"),
            br#"{"ref":"2","error":{"reason":"not_found"}}"#.to_vec()
        );
    }
}
