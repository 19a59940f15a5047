//! One live room: an actor task that owns the seats' sockets and does the I/O around the room's
//! decisions ([`core`]).
//!
//! The actor is the single writer of its room's durable record and the only holder of its message
//! (memory only; a restart loses it by design). The way in is a bounded mailbox of [`Command`]s; it
//! answers joins over a oneshot and every other event by writing the reply frame into the
//! requesting socket's outbox, after any broadcast that event caused, so ordering holds by
//! construction. A decision that changes the record is committed to memory only after the store
//! took it; if the store fails, the client gets `internal_error` and the room keeps what is on
//! disk. The actor exits once it has no sockets; a message it holds is parked in the registry until
//! the next join, and the room itself lives on in the store.

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod check;
pub(crate) mod core;
pub(crate) mod guard;
pub(crate) mod registry;
pub(crate) mod sweeper;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;
use stelgano_proto::server::{reply_error, reply_ok, Empty};
use stelgano_proto::{Broadcast, Reason};
use stelgano_store::{Locator, RoomKeys};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

pub(crate) use self::core::Op;
pub(crate) use self::core::Otp;
use self::core::{Effect, JoinDecision, JoinInput, Message, RoomCore, Skip, Write, NEVER_MS};
use crate::error::RelayError;
use crate::metrics::{Expiry, JoinOutcome, Limit, StoreOp};
use crate::socket::outbox::{Outbound, Outbox, Refused};
use crate::Shared;
use stelgano_proto::check::iso_ms;
use stelgano_store::Redeemed;

/// Capacity of a room's mailbox. Senders wait for room (connections with a timeout, see
/// `Rooms::send`), so a burst slows the sockets that cause it instead of growing memory.
pub(crate) const MAILBOX: usize = 64;

/// How soon a TTL expiry that the store refused is tried again.
const EXPIRE_RETRY: Duration = Duration::from_secs(1);

/// What a socket asks of its room.
#[derive(Debug)]
pub(crate) enum Command {
    /// Join (create, rejoin, claim the second seat, or a guess). The reply frame goes to `out`,
    /// held until `deadline` (the time floor); the oneshot says whether the socket is now joined.
    Join(Box<JoinRequest>, oneshot::Sender<bool>),
    /// An event from a joined socket; its reply (if it has a ref) goes to the socket's outbox.
    /// Boxed, like joins, so the mailbox's slots stay small for rooms that sit idle.
    Op(Box<OpRequest>),
    /// The socket closed.
    Leave { conn: u64 },
    /// The sweeper found the room due: expire it if its TTL has passed. The answer is false when
    /// the store could not be used, so the sweeper backs off instead of asking again at once.
    Expire(oneshot::Sender<bool>),
    /// The relay is shutting down: stop now (messages are lost, by design).
    Shutdown,
}

/// A validated join.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    pub conn: u64,
    pub sender: [u8; 32],
    pub access: [u8; 32],
    pub otp: Otp,
    /// The hash of the join's extension secret, only when tokens are enabled.
    pub extension: Option<[u8; 32]>,
    pub ip: IpAddr,
    pub reference: Option<String>,
    pub deadline: Instant,
    pub out: Outbox,
}

/// An event from joined socket `conn`, with the client's ref.
#[derive(Debug)]
pub(crate) struct OpRequest {
    pub conn: u64,
    pub reference: Option<String>,
    pub op: Op,
}

/// How long a socket waits for room in a busy room's mailbox before its request fails.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// A handle to a live room actor; cheap to clone. The only way to reach a room: its methods own
/// the mailbox, the wait for room in it ([`SEND_TIMEOUT`]) and what an exited actor means.
#[derive(Debug, Clone)]
pub(crate) struct RoomHandle {
    pub(crate) generation: u64,
    tx: mpsc::Sender<Command>,
}

/// Why a room did not take or answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The mailbox stayed full for [`SEND_TIMEOUT`]: the room is overloaded.
    Busy,
    /// The actor has exited (or dropped the request while exiting): ask a fresh one.
    Gone,
    /// The actor dropped the request but still runs; trying again may work.
    Dropped,
}

impl RoomHandle {
    pub(crate) fn new(generation: u64, tx: mpsc::Sender<Command>) -> RoomHandle {
        RoomHandle { generation, tx }
    }

    async fn send(&self, cmd: Command) -> Result<(), Unanswered> {
        match self.tx.send_timeout(cmd, SEND_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(Unanswered::Busy),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Unanswered::Gone),
        }
    }

    /// Sends the request `make` builds and waits for the room's answer.
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Unanswered> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        match rx.await {
            Ok(answer) => Ok(answer),
            Err(_) if self.tx.is_closed() => Err(Unanswered::Gone),
            Err(_) => Err(Unanswered::Dropped),
        }
    }

    /// An event of joined socket `conn`; its reply reaches the socket's outbox.
    pub(crate) async fn op(
        &self,
        conn: u64,
        reference: Option<String>,
        op: Op,
    ) -> Result<(), Unanswered> {
        self.send(Command::Op(Box::new(OpRequest {
            conn,
            reference,
            op,
        })))
        .await
    }

    /// Socket `conn` closed. A room that is gone or jammed prunes closed outboxes on its own.
    pub(crate) async fn leave(&self, conn: u64) {
        let _ = self.send(Command::Leave { conn }).await;
    }

    /// Asks the actor to stop now (shutdown), without waiting: an actor whose mailbox is full
    /// stops anyway once its sockets, which are closing too, have left.
    pub(crate) fn stop(&self) {
        let _ = self.tx.try_send(Command::Shutdown);
    }
}

struct Member {
    conn: u64,
    seat: usize,
    out: Outbox,
}

pub(crate) struct RoomActor {
    /// The room's store keys, learnt from the join that started the actor; kept only while the
    /// actor lives.
    keys: RoomKeys,
    locator: Locator,
    generation: u64,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
    core: RoomCore,
    /// The store epoch the record was read under; a newer epoch means the store failed or was
    /// reopened since, so the record is read again before it is trusted.
    epoch: u64,
    members: Vec<Member>,
}

impl RoomActor {
    pub(crate) fn new(
        keys: RoomKeys,
        generation: u64,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Command>,
        message: Option<Message>,
    ) -> Self {
        RoomActor {
            locator: keys.locator(),
            keys,
            generation,
            shared,
            rx,
            core: RoomCore::new(None, message),
            epoch: 0,
            members: Vec::new(),
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
        let keep = self.core.record().is_some() && !self.shared.cancel.is_cancelled();
        match self.core.message.take() {
            Some(message) if keep => {
                self.shared
                    .rooms
                    .park(&self.locator, self.generation, message)
            }
            _ => self.shared.rooms.unregister(&self.locator, self.generation),
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
        self.reload()?;
        if self.core.is_due(self.shared.clock.now_ms()) {
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
            // A room that never expires has no timer (and an instant 8,000 years away would
            // overflow).
            let due = self
                .core
                .record()
                .map(|r| r.ttl_expires_at_ms)
                .filter(|&ms| ms < NEVER_MS);
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
                    // A store that cannot write keeps the room as it is (sockets stay open) and the
                    // expiry is tried again shortly; `armed_for` is unchanged, so the loop keeps
                    // this retry time.
                    if let Err(e) = Box::pin(self.expire(None)).await {
                        warn!(error = %e, "could not expire a room at its TTL; retrying");
                        ttl.as_mut().reset(Instant::now() + EXPIRE_RETRY);
                    }
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

    /// Reads the record from the store (at start, and whenever the store's epoch moved: after a
    /// failure or a reopen, what is on disk is the truth, not what this actor believed).
    fn reload(&mut self) -> Result<(), RelayError> {
        let epoch = self.shared.store.epoch();
        self.core.record = self.shared.store.get(&self.keys)?;
        if self.core.record.is_some() {
            // A record from before ring positions were kept gets one now, so that it can be
            // moved when nodes are added or removed (docs/SCALING.md).
            // Best effort: a failure only leaves the record unplaced until the next open.
            if let Err(e) = self.shared.store.place(&self.keys) {
                warn!(error = %e, "could not record a room's ring position");
            }
        }
        self.epoch = epoch;
        Ok(())
    }

    /// Refuses work while the store cannot write, and re-reads the record after the store
    /// failed or was reopened.
    fn ready(&mut self) -> Result<(), RelayError> {
        if !self.shared.store.is_healthy() {
            return Err(RelayError::StoreUnavailable);
        }
        if self.shared.store.epoch() != self.epoch {
            self.reload()?;
        }
        Ok(())
    }

    /// Stores `write`, flushing first if the reply depends on it, and only then commits it to
    /// the core. On failure the core keeps what it had.
    async fn persist(&mut self, write: Write) -> Result<(), RelayError> {
        let stored = async {
            let t = std::time::Instant::now();
            self.shared.store.put(&self.keys, &write.record)?;
            self.shared.metrics.store(StoreOp::write, t.elapsed());
            if write.durable {
                let t = std::time::Instant::now();
                self.shared.store.flush().await?;
                self.shared.metrics.store(StoreOp::flush, t.elapsed());
            }
            Ok::<(), RelayError>(())
        }
        .await;
        match stored {
            Ok(()) => {
                self.core.commit(write.record);
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "store write failed; the change was not kept and the client gets internal_error");
                Err(e)
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
            Command::Op(request) => Box::pin(self.on_op(*request)).await,
            Command::Leave { conn } => self.members.retain(|m| m.conn != conn),
            // Handled by the loop before it gets here.
            Command::Shutdown => {}
            Command::Expire(done) => {
                if self.ready().is_err() {
                    let _ = done.send(false);
                    return Ok(());
                }
                let expired = if self.core.is_due(self.shared.clock.now_ms()) {
                    Box::pin(self.expire(None)).await
                } else {
                    Ok(())
                };
                if let Err(e) = &expired {
                    warn!(error = %e, "could not expire a room for the sweeper");
                }
                let _ = done.send(expired.is_ok());
            }
        }
        Ok(())
    }

    async fn on_op(&mut self, request: OpRequest) {
        let OpRequest {
            conn,
            reference,
            op,
        } = request;
        let Some(seat) = self.members.iter().find(|m| m.conn == conn).map(|m| m.seat) else {
            // Removed (slow, or the room expired) while the event was queued.
            return;
        };
        let writes_record = matches!(
            op,
            Op::ResetPairing { .. } | Op::ExpireRoom | Op::Redeem { .. }
        );
        if writes_record {
            if let Err(e) = self.ready() {
                return self.reply_to(conn, reference, Some(Err(e)), None);
            }
        }
        let now = self.shared.clock.now_ms();
        let outcome = self
            .core
            .op(seat, conn, op, now, &self.shared.room_policy());
        let mut reply = outcome.reply;
        match outcome.effect {
            Effect::None => {}
            Effect::Write(write) => {
                if let Err(e) = self.persist(*write).await {
                    reply = Some(Err(e));
                }
            }
            Effect::Redeem { token, write } => {
                if let Err(e) = self.redeem(token, *write).await {
                    reply = Some(Err(e));
                }
            }
            Effect::Burn => {
                if let Err(e) = Box::pin(self.expire(Some((conn, reference.clone())))).await {
                    warn!(error = %e, "expire_room failed");
                    reply = Some(Err(RelayError::from(Reason::ExpireFailed)));
                } else {
                    return;
                }
            }
        }
        let ok = matches!(reply, Some(Ok(_)) | None);
        if ok {
            for (frame, skip) in &outcome.broadcasts {
                self.broadcast(frame, *skip);
            }
            if outcome.delivered {
                self.shared.metrics.message();
            }
        }
        let echo = if ok { outcome.echo } else { None };
        self.reply_to(conn, reference, reply, echo);
    }

    /// Sends an event's reply (and the requester's echo of its broadcast) in one outbox item.
    fn reply_to(
        &mut self,
        conn: u64,
        reference: Option<String>,
        result: Option<Result<Vec<u8>, RelayError>>,
        echo: Option<Bytes>,
    ) {
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
            (None, None) => return,
        };
        if let Some(m) = self.members.iter().find(|m| m.conn == conn) {
            let m_out = m.out.clone();
            self.push(&m_out, conn, item);
        }
    }

    /// Decides a join and does its I/O. Every branch writes exactly one reply frame to the
    /// socket, held to the request's deadline, and returns whether the socket joined.
    async fn join(&mut self, req: JoinRequest) -> bool {
        let (
            JoinDecision {
                reply,
                seat,
                paired,
                ..
            },
            created,
        ) = match self.decide_join(&req).await {
            Ok(decided) => decided,
            Err(e) => (JoinDecision::refuse(e, None), false),
        };
        self.shared.metrics.join(match &reply {
            Ok(_) if created => JoinOutcome::created,
            Ok(_) if paired => JoinOutcome::paired,
            Ok(_) => JoinOutcome::rejoined,
            Err(e) => match e.reason() {
                Some(Reason::Unauthorized) => JoinOutcome::wrong_pin,
                Some(Reason::OtpInvalid) => JoinOutcome::wrong_code,
                Some(Reason::OtpRequired) => JoinOutcome::code_required,
                Some(Reason::Locked) => JoinOutcome::locked,
                Some(Reason::RateLimited) => JoinOutcome::rate_limited,
                Some(Reason::InvalidSender | Reason::InvalidAccess) => JoinOutcome::invalid,
                _ => JoinOutcome::failed,
            },
        });
        let reference = req.reference.as_deref();
        let frame = match reply {
            Ok(ok) => reference.map(|r| reply_ok(r, &ok)),
            Err(e) => {
                if e.is_internal() {
                    warn!(error = %e, "join failed");
                }
                reference.map(|r| reply_error(r, &e.to_wire()))
            }
        };
        if paired {
            let frame = Bytes::from(Broadcast::PartyPaired {}.encode());
            self.broadcast(&frame, Skip::Nobody);
        }
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

    /// Decides a join and persists what it changed; the returned decision's write is done.
    /// Also says whether the join created the room.
    async fn decide_join(&mut self, req: &JoinRequest) -> Result<(JoinDecision, bool), RelayError> {
        if self.members.len() >= self.shared.config.max_sockets_per_room
            && !self.members.iter().any(|m| m.conn == req.conn)
        {
            self.shared.metrics.refused(Limit::sockets_per_room);
            return Err(RelayError::from(Reason::RateLimited));
        }
        self.ready()?;
        // A room past its TTL is gone even if its timer has not fired yet (commands go first in
        // the actor's loop): expire it now, so this join sees no room.
        if self.core.is_due(self.shared.clock.now_ms()) {
            Box::pin(self.expire(None)).await?;
        }
        let input = JoinInput {
            sender: req.sender,
            access: req.access,
            otp: req.otp,
            extension: req.extension,
            now_ms: self.shared.clock.now_ms(),
        };
        let limits = &self.shared.limits;
        let metrics = &self.shared.metrics;
        let policy = self.shared.room_policy();
        let created = self.core.record().is_none();
        let mut decision = self.core.decide_join(
            &input,
            &policy,
            &mut || {
                let allowed = limits.allow_create(req.ip);
                if !allowed {
                    metrics.refused(Limit::create);
                }
                allowed
            },
            &mut core::random_room_id,
        );
        let created = created && decision.reply.is_ok();
        if let (Some(old), Some(write)) = (self.core.record(), decision.write.as_ref()) {
            let new = &write.record;
            if new.guesses.locked_until_ms > old.guesses.locked_until_ms
                || new.pairing.locked_until_ms > old.pairing.locked_until_ms
            {
                self.shared.metrics.lock();
            }
        }
        if let Some(mut write) = decision.write.take() {
            match decision.extension {
                // A creating join with a token: the room starts in the extended tier if the
                // token is good, in the free tier otherwise (a join never fails over a token;
                // `redeem_extension` is how a client learns that its token is bad).
                Some(token) => {
                    // Created straight into the extended tier: its life counts from now.
                    let mut fresh = write.record.clone();
                    fresh.ttl_expires_at_ms = input.now_ms;
                    let extended = policy.extend(&fresh, input.now_ms);
                    let at = extended.ttl_expires_at_ms;
                    match self
                        .redeem(
                            token,
                            Write {
                                record: extended,
                                durable: true,
                            },
                        )
                        .await
                    {
                        Ok(()) => {
                            if let Ok(ok) = decision.reply.as_mut() {
                                ok.ttl_expires_at = iso_ms(at);
                            }
                        }
                        Err(e) if e.reason() == Some(Reason::InvalidToken) => {
                            write.durable = true;
                            self.persist(write).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => self.persist(write).await?,
            }
        }
        Ok((decision, created))
    }

    /// Uses up extension token `token`, then stores `write` (the room in the extended tier).
    /// Of two rooms redeeming one token at once, the token store lets exactly one win. The token
    /// is spent durably before the room's new expiry is stored, and put back if that store
    /// fails, so an acknowledged extension always has its token spent and a failed one keeps it.
    async fn redeem(&mut self, token: [u8; 32], write: Write) -> Result<(), RelayError> {
        let Some(tokens) = self.shared.tokens.clone() else {
            return Err(RelayError::from(Reason::MonetizationDisabled));
        };
        let now = self.shared.clock.now_ms();
        let hold = match tokens.redeem(&token, now)? {
            Redeemed::Won(hold) => hold,
            Redeemed::Invalid => return Err(RelayError::from(Reason::InvalidToken)),
        };
        let stored = match tokens.flush().await {
            Ok(()) => self.persist(write).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            warn!(error = %e, "an extension could not be stored; its token is put back");
            if let Err(e) = tokens.restore(hold) {
                warn!(error = %e, "a token could not be put back");
            } else if let Err(e) = tokens.flush().await {
                warn!(error = %e, "a restored token could not be flushed");
            }
            return Err(e);
        }
        self.shared.metrics.extension();
        Ok(())
    }

    /// Burns the room: the record is deleted durably, then `room_expired` goes to every socket,
    /// then (for `expire_room`) the requester's `ok`, then close 1000 `room_expired` to all.
    async fn expire(&mut self, requester: Option<(u64, Option<String>)>) -> Result<(), RelayError> {
        let t = std::time::Instant::now();
        self.shared.store.remove(&self.locator)?;
        self.shared.metrics.store(StoreOp::write, t.elapsed());
        let t = std::time::Instant::now();
        self.shared.store.flush().await?;
        self.shared.metrics.store(StoreOp::flush, t.elapsed());
        let cause = if requester.is_some() {
            Expiry::burned
        } else {
            Expiry::ttl
        };
        self.core.burn();
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
        // Sockets open on the room's path that never joined go too (the spec: every socket
        // of the room), so a page left waiting on a burned room learns of it.
        self.shared.rooms.close_unjoined(&self.locator);
        self.shared.metrics.room_expired(cause);
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
        let e = reply_error("", &RelayError::from(Reason::NotFound).to_wire());
        assert_eq!(
            fill_ref(e, "2"),
            br#"{"ref":"2","error":{"reason":"not_found"}}"#.to_vec()
        );
    }
}
