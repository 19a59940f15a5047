//! One WebSocket: reads and validates client frames, forwards them to the room, writes replies.
//!
//! Two tasks per socket. The reader (this module's `serve`) parses frames and validates every
//! field before anything reaches the room. The writer owns the socket's write half and drains one
//! bounded outbox, fed by the reader (local replies, pongs) and by the room actor (broadcasts and
//! replies), so everything a socket receives is in one order. Join replies sit in the outbox as
//! `Held` items: the writer waits out the time floor there, which delays what queues behind them
//! (nothing may reach a socket before its join reply) without blocking the reader or the room.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rand::Rng;
use stelgano_proto::check::{b64_decode, hex64};
use stelgano_proto::client::{EditData, SendData};
use stelgano_proto::limits::{FALLBACK_REF, IV_BYTES};
use stelgano_proto::server::reply_error;
use stelgano_proto::{ClientEvent, Inbound};
use stelgano_store::RoomKey;
use tokio::io::{BufWriter, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::error::RelayError;
use crate::room::{Command, JoinRequest, Op, OpRequest, RoomHandle};
use crate::rooms::SEND_TIMEOUT;
use crate::Shared;

/// Capacity of a socket's outbox. The room never waits on it: a socket whose outbox is full is
/// too slow to keep up and is closed (the room counts it). The protocol is turn-based, so a
/// healthy socket holds a handful of frames at most; 64 leaves room for a burst of typing.
pub const OUTBOX: usize = 64;
/// A write that cannot complete in this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Typing indicators are forwarded at most this often per socket; more are dropped silently
/// (they have no reply), so one client cannot flood its partner's outbox.
const TYPING_EVERY: Duration = Duration::from_millis(500);

type Io = TokioIo<Upgraded>;

/// Something for the writer to send.
#[derive(Debug)]
pub enum Outbound {
    /// A text frame, sent as soon as the writer reaches it.
    Text(Bytes),
    /// Two text frames written together: a sender's own `new_message` and the `ok` that must
    /// follow it, as one item so they leave in one write.
    Pair(Box<(Bytes, Bytes)>),
    /// A text frame not to be sent before the instant (a join reply under the time floor).
    Held(Box<(Instant, Bytes)>),
    /// Answer to a client ping.
    Pong(Vec<u8>),
    /// Echo of the client's close frame; the writer stops after it.
    CloseEcho(Vec<u8>),
    /// Close the socket with this code and reason; the writer stops after it.
    Close { code: u16, reason: &'static str },
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

enum State {
    Unjoined,
    Joined { handle: RoomHandle },
}

/// Serves one upgraded socket until it closes. `permit` is this socket's share of the
/// connection cap and is held for its whole life.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    key: RoomKey,
    ip: IpAddr,
    upgrade: UpgradeFut,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let _permit = permit;
    let ws = match timeout(shared.config.handshake_timeout, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!(error = %e, "websocket upgrade failed");
            return;
        }
        Err(_) => {
            debug!("websocket upgrade timed out");
            return;
        }
    };
    // The session runs in its own allocation, sized for what a live socket holds, instead of
    // inside this future, whose layout also has room for the handshake's state.
    Box::pin(session(shared, key, ip, ws)).await;
}

async fn session(shared: Arc<Shared>, key: RoomKey, ip: IpAddr, ws: fastwebsockets::WebSocket<Io>) {
    shared.metrics.opened();
    // The read half stays reachable outside fastwebsockets so that after refusing an oversized
    // frame the relay can drain the unread rest before closing (see `linger`).
    let raw_read = Arc::new(std::sync::Mutex::new(None));
    let (mut read, write) = ws.split(|io| {
        let (r, w) = tokio::io::split(io);
        if let Ok(mut slot) = raw_read.lock() {
            *slot = Some(r);
        }
        (
            SharedRead(raw_read.clone()),
            BufWriter::with_capacity(1024, w),
        )
    });
    // Frames count against the limit one by one here; `assemble` bounds the sum over fragments.
    read.set_max_message_size(shared.config.max_ws_message_bytes.saturating_add(1));
    let (out_tx, out_rx) = mpsc::channel(OUTBOX);
    // A child of the relay's shutdown token: one future per task covers both ends of a socket.
    let kill = shared.cancel.child_token();
    let seen = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_loop(
        write,
        out_rx,
        kill.clone(),
        shared.cancel.clone(),
        Liveness {
            seen: seen.clone(),
            ping_every: shared.config.ping_interval,
            idle_after: shared.config.idle_timeout,
        },
    ));
    let mut reader = Reader {
        conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        shared: shared.clone(),
        key,
        ip,
        out: out_tx,
        kill: kill.clone(),
        state: State::Unjoined,
        last_typing: None,
        seen,
    };
    let ending = reader.run(&mut read).await;
    if let State::Joined { handle } = &reader.state {
        let leave = Command::Leave { conn: reader.conn };
        // If the room is gone or jammed, it prunes closed outboxes on its own.
        let _ = handle.tx.send_timeout(leave, SEND_TIMEOUT).await;
    }
    drop(reader);
    // The writer ends once every outbox sender is gone (ours just dropped; the room's with
    // Leave) or it sent a close; a stuck writer is bounded by WRITE_TIMEOUT.
    let _ = writer.await;
    if ending == Ending::Linger {
        linger(SharedRead(raw_read)).await;
    }
    shared.metrics.closed();
}

/// How the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Done,
    /// The client's data was cut off mid-message: drain it before closing.
    Linger,
}

/// The socket's read half, shared between fastwebsockets and `linger`. The lock is only taken
/// inside `poll_read` (never across an await) and is uncontended: one reader at a time.
struct SharedRead(Arc<std::sync::Mutex<Option<ReadHalf<Io>>>>);

impl tokio::io::AsyncRead for SharedRead {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_mut() {
            Some(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// After a close for an oversized frame, reads and discards what the client still sends (for up
/// to 2 s or 1 MiB). Closing a TCP socket with unread data makes the kernel send a reset, which
/// would destroy the close frame before the client reads it; draining first lets the client see
/// 1009 and close cleanly.
async fn linger(mut read: SharedRead) {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut budget: usize = 1 << 20;
    let mut scratch = vec![0u8; 8192];
    while budget > 0 {
        match tokio::time::timeout_at(deadline, read.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
            _ => return,
        }
    }
}

struct Reader {
    conn: u64,
    shared: Arc<Shared>,
    key: RoomKey,
    ip: IpAddr,
    out: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    state: State,
    last_typing: Option<Instant>,
    /// Frames received so far; the writer reads it at each ping to spot an idle peer.
    seen: Arc<AtomicU64>,
}

impl Reader {
    async fn run(&mut self, read: &mut WebSocketRead<SharedRead>) -> Ending {
        let max = self.shared.config.max_ws_message_bytes;
        // Created once: polling a fresh `cancelled()` per frame would take the token's lock
        // and re-register a waiter every time.
        let kill = self.kill.clone();
        let killed = kill.cancelled();
        tokio::pin!(killed);
        let out = self.out.clone();
        let mut obligated = move |frame: Frame<'_>| {
            let item = match frame.opcode {
                OpCode::Close => Outbound::CloseEcho(frame.payload.to_vec()),
                _ => Outbound::Pong(frame.payload.to_vec()),
            };
            let out = out.clone();
            async move {
                out.send(item)
                    .await
                    .map_err(|_| std::io::Error::other("socket writer is gone"))
            }
        };
        let mut partial: Option<(OpCode, Vec<u8>)> = None;
        loop {
            // Idle peers are found by the writer at its ping ticks (see `Liveness`), so there is
            // no timer to arm per frame here. Cancelling `read_frame` can lose a partial frame;
            // it only happens when the socket is being torn down anyway.
            let next = tokio::select! {
                biased;
                _ = &mut killed => return Ending::Done,
                r = read.read_frame(&mut obligated) => r,
            };
            self.seen.fetch_add(1, Ordering::Relaxed);
            let frame = match next {
                Err(WebSocketError::FrameTooLarge) => {
                    self.close(1009, "message_too_big").await;
                    return Ending::Linger;
                }
                Err(e) => {
                    debug!(error = %e, "websocket read ended");
                    return Ending::Done;
                }
                Ok(frame) => frame,
            };
            match frame.opcode {
                OpCode::Close => return Ending::Done,
                OpCode::Ping | OpCode::Pong => continue,
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    match assemble(&mut partial, frame.opcode, frame.fin, frame.payload, max) {
                        Assembled::More => continue,
                        Assembled::TooBig => {
                            self.close(1009, "message_too_big").await;
                            return Ending::Linger;
                        }
                        Assembled::Bad => {
                            self.close(1002, "protocol_error").await;
                            return Ending::Linger;
                        }
                        // Boxed: handling a frame takes more state than waiting for one, and
                        // this future sits idle in memory for every open socket.
                        Assembled::Done(OpCode::Text, bytes) => {
                            Box::pin(self.on_text(&bytes)).await
                        }
                        Assembled::Done(_, _) => {
                            self.reply_err(FALLBACK_REF, RelayError::InvalidEncoding)
                                .await
                        }
                    }
                }
            }
        }
    }

    async fn close(&self, code: u16, reason: &'static str) {
        let _ = self.out.send(Outbound::Close { code, reason }).await;
    }

    async fn send(&self, item: Outbound) {
        // Fails only when the writer is gone, and then the socket is closing anyway.
        let _ = self.out.send(item).await;
    }

    async fn reply_err(&self, reference: &str, e: RelayError) {
        let frame = reply_error(reference, &e.to_wire());
        self.send(Outbound::Text(Bytes::from(frame))).await;
    }

    async fn on_text(&mut self, bytes: &[u8]) {
        let parsed = std::str::from_utf8(bytes)
            .map_err(|_| FALLBACK_REF.to_owned())
            .and_then(|text| Inbound::parse(text).map_err(|e| e.reply_ref));
        let inbound = match parsed {
            Ok(inbound) => inbound,
            Err(reference) => {
                return self
                    .reply_err(&reference, RelayError::InvalidEncoding)
                    .await
            }
        };
        let Inbound { reference, event } = inbound;
        if let ClientEvent::Join(data) = event {
            return self.join(reference, data).await;
        }
        if let ClientEvent::Unknown(_) = event {
            if let Some(r) = reference {
                self.reply_err(&r, RelayError::InvalidTopic).await;
            }
            return;
        }
        let State::Joined { handle } = &self.state else {
            if let Some(r) = reference {
                self.reply_err(&r, RelayError::NotJoined).await;
            }
            return;
        };
        let handle = handle.clone();
        let op = match self.room_op(event) {
            Ok(Some(op)) => op,
            Ok(None) => return,
            Err(e) => {
                if let Some(r) = reference {
                    self.reply_err(&r, e).await;
                }
                return;
            }
        };
        let is_send = matches!(op, Op::Send { .. });
        let cmd = Command::Op(Box::new(OpRequest {
            conn: self.conn,
            reference: reference.clone(),
            op,
        }));
        if handle.tx.send_timeout(cmd, SEND_TIMEOUT).await.is_err() {
            if let Some(r) = reference {
                let e = if is_send {
                    RelayError::SendFailed
                } else {
                    RelayError::Busy
                };
                self.reply_err(&r, e).await;
            }
        }
    }

    /// Validates a joined socket's event into a room operation. `Ok(None)`: nothing to do.
    fn room_op(&mut self, event: ClientEvent) -> Result<Option<Op>, RelayError> {
        let max = self.shared.config.max_ciphertext_bytes;
        Ok(Some(match event {
            ClientEvent::SendMessage(SendData { ciphertext, iv }) => {
                let (ciphertext, iv) = check_body(ciphertext, iv, max)?;
                Op::Send { ciphertext, iv }
            }
            ClientEvent::EditMessage(EditData {
                message_id,
                ciphertext,
                iv,
            }) => {
                let (ciphertext, iv) = check_body(ciphertext, iv, max)?;
                Op::Edit {
                    message_id: message_id.unwrap_or_default(),
                    ciphertext,
                    iv,
                }
            }
            ClientEvent::ReadReceipt(d) => match d.message_id {
                Some(message_id) => Op::ReadReceipt { message_id },
                None => return Ok(None),
            },
            ClientEvent::DeleteMessage(d) => Op::Delete {
                message_id: d.message_id.unwrap_or_default(),
            },
            ClientEvent::Typing => {
                let now = Instant::now();
                if self
                    .last_typing
                    .is_some_and(|t| now.duration_since(t) < TYPING_EVERY)
                {
                    return Ok(None);
                }
                self.last_typing = Some(now);
                Op::Typing
            }
            ClientEvent::ExpireRoom => Op::ExpireRoom,
            ClientEvent::ResetPairing(d) => Op::ResetPairing {
                otp: d.otp_hash.as_deref().and_then(hex64),
            },
            ClientEvent::RedeemExtension(_) => return Err(RelayError::MonetizationDisabled),
            // Handled before a room is involved.
            ClientEvent::Join(_) | ClientEvent::Unknown(_) => return Ok(None),
        }))
    }

    async fn join(&mut self, reference: Option<String>, data: stelgano_proto::client::JoinData) {
        let cfg = &self.shared.config;
        let jitter_ms = cfg.join_jitter.as_millis() as u64;
        let jitter = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rand::thread_rng().gen_range(0..=jitter_ms))
        };
        let deadline = Instant::now() + cfg.join_floor + jitter;

        // A join on a joined socket goes to the same room (the path names it): the actor swaps
        // the membership if the new join succeeds and keeps the old one if it fails.
        let checked = match (
            data.sender_hash.as_deref().and_then(hex64),
            data.access_hash.as_deref().and_then(hex64),
        ) {
            (None, _) => Err(RelayError::InvalidSender),
            (_, None) => Err(RelayError::InvalidAccess),
            (Some(sender), Some(access)) => Ok((sender, access)),
        };
        let (sender, access) = match checked {
            Ok(pair) => pair,
            Err(e) => return self.held_error(reference, deadline, e).await,
        };
        let req = JoinRequest {
            conn: self.conn,
            sender,
            access,
            otp: data.otp_hash.as_deref().and_then(hex64),
            ip: self.ip,
            reference: reference.clone(),
            deadline,
            out: self.out.clone(),
            kill: self.kill.clone(),
        };
        let shared = self.shared.clone();
        let answer = shared
            .rooms
            .request(&shared, &self.key, |tx| {
                Command::Join(Box::new(req.clone()), tx)
            })
            .await;
        match answer {
            Ok((true, handle)) => self.state = State::Joined { handle },
            Ok((false, _)) => {}
            Err(e) => self.held_error(reference, deadline, e).await,
        }
    }

    async fn held_error(&self, reference: Option<String>, until: Instant, e: RelayError) {
        if let Some(r) = reference {
            let text = Bytes::from(reply_error(&r, &e.to_wire()));
            self.send(Outbound::Held(Box::new((until, text)))).await;
        }
    }
}

/// The spec's checks on a message body: both valid base64 (`invalid_encoding`), ciphertext at
/// most `max` bytes decoded (`message_too_large`), IV exactly 12 bytes (ours, `invalid_encoding`).
fn check_body(
    ciphertext: Option<String>,
    iv: Option<String>,
    max: usize,
) -> Result<(String, String), RelayError> {
    let (Some(ciphertext), Some(iv)) = (ciphertext, iv) else {
        return Err(RelayError::InvalidEncoding);
    };
    // Base64 never shrinks below 3/4 of its length; past this it is too large whatever it holds.
    if ciphertext.len() > (max / 3 + 2) * 4 + 4 {
        return if ciphertext
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            Err(RelayError::MessageTooLarge)
        } else {
            Err(RelayError::InvalidEncoding)
        };
    }
    let ct = b64_decode(&ciphertext).ok_or(RelayError::InvalidEncoding)?;
    let iv_bytes = b64_decode(&iv).ok_or(RelayError::InvalidEncoding)?;
    if ct.len() > max {
        return Err(RelayError::MessageTooLarge);
    }
    if iv_bytes.len() != IV_BYTES {
        return Err(RelayError::InvalidEncoding);
    }
    Ok((ciphertext, iv))
}

enum Assembled {
    More,
    Done(OpCode, Vec<u8>),
    TooBig,
    Bad,
}

/// Reassembles fragmented messages, bounding the total (fastwebsockets bounds single frames only).
fn assemble(
    partial: &mut Option<(OpCode, Vec<u8>)>,
    opcode: OpCode,
    fin: bool,
    payload: Payload<'_>,
    max: usize,
) -> Assembled {
    match (opcode, partial.as_mut()) {
        (OpCode::Continuation, None) => Assembled::Bad,
        (OpCode::Continuation, Some((_, buf))) => {
            if buf.len() + payload.len() > max {
                return Assembled::TooBig;
            }
            buf.extend_from_slice(&payload);
            if fin {
                match partial.take() {
                    Some((op, buf)) => Assembled::Done(op, buf),
                    None => Assembled::Bad,
                }
            } else {
                Assembled::More
            }
        }
        (_, Some(_)) => Assembled::Bad,
        (op, None) => {
            if payload.len() > max {
                return Assembled::TooBig;
            }
            if fin {
                Assembled::Done(op, payload.to_vec())
            } else {
                *partial = Some((op, payload.to_vec()));
                Assembled::More
            }
        }
    }
}

/// How the writer tells a live peer from an idle one without a timer per frame: the reader
/// counts frames in `seen` (pongs included); at each ping tick the writer checks whether the
/// count moved, and closes the socket once it has stood still for `idle_after`.
struct Liveness {
    seen: Arc<AtomicU64>,
    ping_every: Duration,
    idle_after: Duration,
}

/// Owns the write half: sends what the outbox holds, in order, batching whatever is queued into
/// one flush; pings on an interval and closes idle peers (1001); closes with 1001 on shutdown and
/// 1008 when the room dropped this socket for being too slow.
async fn write_loop(
    mut ws: WebSocketWrite<BufWriter<WriteHalf<Io>>>,
    mut rx: mpsc::Receiver<Outbound>,
    kill: CancellationToken,
    shutdown: CancellationToken,
    live: Liveness,
) {
    let every = live.ping_every;
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    let mut last_count = live.seen.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    let killed = kill.cancelled();
    tokio::pin!(killed);
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut killed => {
                // `kill` is a child of `shutdown`: tell the two apart for the close code.
                let (code, reason) = if shutdown.is_cancelled() {
                    (1001, "going_away")
                } else {
                    (1008, "too_slow")
                };
                let _ = write_close(&mut ws, code, reason).await;
                break;
            }
            item = rx.recv() => item,
            _ = ping.tick() => {
                let count = live.seen.load(Ordering::Relaxed);
                if count != last_count {
                    last_count = count;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= live.idle_after {
                    let _ = write_close(&mut ws, 1001, "idle_timeout").await;
                    break;
                }
                let frame = Frame::new(true, OpCode::Ping, None, Payload::Borrowed(&[]));
                if write(&mut ws, frame).await.is_err() || flush(&mut ws).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let Some(mut item) = item else { break };
        let mut done = false;
        loop {
            match write_item(&mut ws, item, &shutdown).await {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    done = true;
                    break;
                }
            }
            match rx.try_recv() {
                Ok(next) => item = next,
                Err(_) => break,
            }
        }
        if flush(&mut ws).await.is_err() || done {
            break;
        }
    }
    // Whoever still holds an outbox sender learns the socket is gone from the closed channel.
    rx.close();
    kill.cancel();
}

/// Writes one item; `Ok(false)` when the socket is finished after it.
async fn write_item(
    ws: &mut WebSocketWrite<BufWriter<WriteHalf<Io>>>,
    item: Outbound,
    shutdown: &CancellationToken,
) -> Result<bool, WebSocketError> {
    match item {
        Outbound::Text(text) => {
            write(ws, Frame::text(Payload::Borrowed(&text))).await?;
            Ok(true)
        }
        Outbound::Pair(pair) => {
            write(ws, Frame::text(Payload::Borrowed(&pair.0))).await?;
            write(ws, Frame::text(Payload::Borrowed(&pair.1))).await?;
            Ok(true)
        }
        // Boxed: waiting out a time floor takes a timer, which idle sockets need not carry.
        Outbound::Held(held) => Box::pin(write_held(ws, *held, shutdown)).await,
        Outbound::Pong(payload) => {
            write(ws, Frame::pong(Payload::Borrowed(&payload))).await?;
            Ok(true)
        }
        Outbound::CloseEcho(payload) => {
            write(ws, Frame::close_raw(Payload::Borrowed(&payload))).await?;
            Ok(false)
        }
        Outbound::Close { code, reason } => {
            write_close(ws, code, reason).await?;
            Ok(false)
        }
    }
}

/// Writes a held join reply once its time floor has passed.
async fn write_held(
    ws: &mut WebSocketWrite<BufWriter<WriteHalf<Io>>>,
    (until, text): (Instant, Bytes),
    shutdown: &CancellationToken,
) -> Result<bool, WebSocketError> {
    if until > Instant::now() {
        // Whatever queued behind this reply must not overtake it, so it goes out first.
        flush(ws).await?;
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = shutdown.cancelled() => return Ok(true),
        }
    }
    write(ws, Frame::text(Payload::Borrowed(&text))).await?;
    Ok(true)
}

async fn write(
    ws: &mut WebSocketWrite<BufWriter<WriteHalf<Io>>>,
    frame: Frame<'_>,
) -> Result<(), WebSocketError> {
    timeout(WRITE_TIMEOUT, ws.write_frame(frame))
        .await
        .map_err(|_| WebSocketError::ConnectionClosed)?
}

async fn flush(ws: &mut WebSocketWrite<BufWriter<WriteHalf<Io>>>) -> Result<(), WebSocketError> {
    timeout(WRITE_TIMEOUT, ws.flush())
        .await
        .map_err(|_| WebSocketError::ConnectionClosed)?
}

async fn write_close(
    ws: &mut WebSocketWrite<BufWriter<WriteHalf<Io>>>,
    code: u16,
    reason: &str,
) -> Result<(), WebSocketError> {
    write(ws, Frame::close(code, reason.as_bytes())).await?;
    flush(ws).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_checks_follow_the_spec_order() {
        let iv = Some("AAECAwQFBgcICQoL".to_owned());
        let ok = check_body(Some("aGVsbG8=".into()), iv.clone(), 8192);
        assert!(ok.is_ok());
        assert!(matches!(
            check_body(Some("-_-_".into()), iv.clone(), 8192),
            Err(RelayError::InvalidEncoding)
        ));
        assert!(matches!(
            check_body(Some("aGVsbG8=".into()), Some("aGk=".into()), 8192),
            Err(RelayError::InvalidEncoding)
        ));
        assert!(matches!(
            check_body(None, iv.clone(), 8192),
            Err(RelayError::InvalidEncoding)
        ));
        let big = stelgano_proto::check::b64_encode(&[7u8; 8193]);
        assert!(matches!(
            check_body(Some(big), iv.clone(), 8192),
            Err(RelayError::MessageTooLarge)
        ));
        let max = stelgano_proto::check::b64_encode(&[7u8; 8192]);
        assert!(check_body(Some(max), iv, 8192).is_ok());
    }
}
