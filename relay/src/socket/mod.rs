//! One WebSocket: reads and validates client frames, forwards them to the room, writes replies.
//!
//! The reader (this module's `serve`) parses frames (see `frames`) and validates every
//! field before anything reaches the room. Everything the socket sends goes through its
//! [`Outbox`]: replies from the reader, broadcasts and replies from the room actor, and pings
//! from the outbox's writer task, in one order. Join replies are `Held` items: the writer waits
//! out the time floor there, which delays what queues behind them (nothing may reach a socket
//! before its join reply) without blocking the reader or the room.

pub(crate) mod frames;
pub(crate) mod outbox;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rand::Rng;
use stelgano_proto::check::{b64_decode, hex64};
use stelgano_proto::client::{EditData, JoinData, SendData};
use stelgano_proto::limits::{FALLBACK_REF, IV_BYTES};
use stelgano_proto::server::reply_error;
use stelgano_proto::{ClientEvent, Inbound, Reason};
use stelgano_store::RoomKeys;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tracing::{debug, trace};

use self::frames::{FrameReader, Next, OpCode};
use self::outbox::Outbound;
use self::outbox::{Gate, Liveness, Outbox, WriteIo};
use crate::error::RelayError;
use crate::ratelimit::SocketSlot;
use crate::room::{Command, JoinRequest, Op, Otp, RoomHandle};
use crate::Shared;

/// Typing indicators are forwarded at most this often per socket; more are dropped silently
/// (they have no reply), so one client cannot flood its partner's outbox.
const TYPING_EVERY: Duration = Duration::from_millis(500);

/// The close for a frame or a message over `--max-ws-message-bytes` (PROTOCOL-NOTES).
pub(crate) const CLOSE_TOO_BIG: (u16, &str) = (1009, "message_too_big");
/// The close for broken framing or fragmentation (PROTOCOL-NOTES).
pub(crate) const CLOSE_PROTOCOL: (u16, &str) = (1002, "protocol_error");

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

enum State {
    Unjoined,
    Joined { handle: RoomHandle },
}

/// Serves one upgraded socket until it closes. `permit` is this socket's share of the
/// connection cap and `slot` its place in its IP's open-socket count; both are held for its
/// whole life.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    keys: RoomKeys,
    ip: IpAddr,
    upgrade: OnUpgrade,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    slot: SocketSlot,
) {
    let _permit = permit;
    let _slot = slot;
    let upgraded = match timeout(shared.config.handshake_timeout, upgrade).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => {
            debug!(error = %e, "websocket upgrade failed");
            return;
        }
        Err(_) => {
            debug!("websocket upgrade timed out");
            return;
        }
    };
    // The socket itself is what lets the room write to it without a task in between (see
    // `outbox`). On the relay's own listener, and in a host server that serves plain TCP with
    // hyper directly, the upgraded connection is that TCP socket.
    let (source, write) = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            // What hyper read past the handshake (often the client's first frame) is a view into
            // hyper's whole read buffer: only a copy is kept, and the view is dropped now rather
            // than at the end of this function, which lives as long as the socket.
            let early = if parts.read_buf.is_empty() {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(&parts.read_buf)
            };
            drop(parts.read_buf);
            let source = Source {
                early,
                io: ReadIo::Tcp(read),
            };
            (source, WriteIo::Tcp(write))
        }
        // A host server's own connection type (its TLS, or a wrapper such as hyper-util's
        // protocol sniffing): bridged to a Unix socket pair by one copying task, so the rest of
        // the relay still writes to a socket.
        Err(upgraded) => match bridge(upgraded, &shared) {
            Some(halves) => halves,
            None => return,
        },
    };
    // The session runs in its own allocation, sized for what a live socket holds, instead of
    // inside this future, whose layout also has room for the handshake's state.
    Box::pin(session(shared, keys, ip, source, Outbox::new(write))).await;
}

/// Connects an upgraded connection of any type to one end of a Unix socket pair and returns the
/// other end's halves. The copying task ends when either side closes.
#[cfg(unix)]
fn bridge(upgraded: hyper::upgrade::Upgraded, shared: &Shared) -> Option<(Source, WriteIo)> {
    let (near, far) = match tokio::net::UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => {
            debug!(error = %e, "no socket pair for an embedded websocket");
            return None;
        }
    };
    shared.tasks.spawn(async move {
        let mut client = TokioIo::new(upgraded);
        let mut far = far;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut far).await;
    });
    let (read, write) = near.into_split();
    let source = Source {
        early: Bytes::new(),
        io: ReadIo::Unix(read),
    };
    Some((source, WriteIo::Unix(write)))
}

#[cfg(not(unix))]
fn bridge(_: hyper::upgrade::Upgraded, _: &Shared) -> Option<(Source, WriteIo)> {
    debug!("upgraded connection is not a TCP stream");
    None
}

async fn session(shared: Arc<Shared>, keys: RoomKeys, ip: IpAddr, source: Source, out: Outbox) {
    shared.metrics.opened();
    let mut read = GatedRead {
        source,
        gate: out.gate(),
    };
    // Frames count against the limit one by one here; `assemble` bounds the sum over fragments.
    let mut frames = FrameReader::new(shared.config.max_ws_message_bytes);
    let writer = tokio::spawn(outbox::run_writer(
        out.clone(),
        shared.cancel.clone(),
        Liveness {
            ping_every: shared.config.ping_interval,
            idle_after: shared.config.idle_timeout,
        },
    ));
    let join_by = Instant::now() + shared.config.join_deadline;
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let locator = keys.locator();
    shared.rooms.watch_unjoined(&locator, conn, &out);
    let mut reader = Reader {
        conn,
        shared: shared.clone(),
        keys,
        ip,
        join_by,
        gate: out.gate(),
        out,
        state: State::Unjoined,
        last_typing: None,
    };
    let ending = reader.run(&mut frames, &mut read).await;
    shared.rooms.unwatch_unjoined(&locator, conn);
    let joined = matches!(reader.state, State::Joined { .. });
    if let State::Joined { handle } = &reader.state {
        handle.leave(reader.conn).await;
    }
    // The writer sends what is queued (a close, if the reader queued one) and stops; a stuck
    // writer is bounded by its write timeout.
    reader.out.finish();
    drop(reader);
    let _ = writer.await;
    if ending == Ending::Linger {
        // The gate is closed by now; what is left is drained from the socket itself.
        linger(read.source).await;
    }
    shared.metrics.closed();
    trace!(joined, "socket ended");
}

/// How the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Done,
    /// The client's data was cut off mid-message: drain it before closing.
    Linger,
}

/// The socket's read side: bytes hyper read past the handshake (if any), then the socket.
struct Source {
    early: Bytes,
    io: ReadIo,
}

/// The read half of the socket (see `outbox::WriteIo`).
enum ReadIo {
    Tcp(OwnedReadHalf),
    #[cfg(unix)]
    Unix(tokio::net::unix::OwnedReadHalf),
}

impl tokio::io::AsyncRead for Source {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            let head = self.early.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        match &mut self.io {
            ReadIo::Tcp(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            #[cfg(unix)]
            ReadIo::Unix(r) => std::pin::Pin::new(r).poll_read(cx, buf),
        }
    }
}

/// The read side as the reader sees it: reads fail once the outbox has finished the socket,
/// which is how the reader learns of it (closed by the room, by shutdown, as idle, or broken).
struct GatedRead {
    source: Source,
    gate: Gate,
}

impl tokio::io::AsyncRead for GatedRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let stopped = || std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        if self.gate.is_stopped() {
            return Poll::Ready(Err(stopped()));
        }
        match std::pin::Pin::new(&mut self.source).poll_read(cx, buf) {
            Poll::Pending if self.gate.poll_stopped(cx).is_ready() => Poll::Ready(Err(stopped())),
            other => other,
        }
    }
}

/// After a close the client did not ask for (an oversized or malformed frame, no join in time),
/// reads and discards what the client still sends (for up to 2 s or 1 MiB). Closing a TCP socket
/// with unread data makes the kernel send a reset, which would destroy the close frame before the
/// client reads it; draining first lets the client see the close code and close cleanly.
async fn linger(mut read: Source) {
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
    /// The room's store keys (derived from the hash in the path, which is not kept).
    keys: RoomKeys,
    ip: IpAddr,
    /// Until a join succeeds, the socket is closed at this instant (`join_timeout`).
    join_by: Instant,
    out: Outbox,
    /// Counts frames for the writer's idle check.
    gate: Gate,
    state: State,
    last_typing: Option<Instant>,
}

impl Reader {
    async fn run(&mut self, frames: &mut FrameReader, read: &mut GatedRead) -> Ending {
        let max = self.shared.config.max_ws_message_bytes;
        let mut partial: Option<(OpCode, Vec<u8>)> = None;
        loop {
            // Idle peers are found by the writer at its ping ticks, so there is no timer to arm
            // per frame here; a socket the outbox has finished fails its next read (the gate).
            let next = match self.state {
                // Answering pings is not enough to keep a socket: until it joins, it holds a
                // place under the connection cap that a real client could use.
                State::Unjoined => {
                    match tokio::time::timeout_at(self.join_by, frames.next(read)).await {
                        Ok(next) => next,
                        Err(_) => {
                            debug!("socket closed: no join within the deadline");
                            self.close((1008, "join_timeout")).await;
                            return Ending::Linger;
                        }
                    }
                }
                State::Joined { .. } => frames.next(read).await,
            };
            self.gate.saw_frame();
            let frame = match next {
                Next::Frame(frame) => frame,
                Next::TooLarge => {
                    self.close(CLOSE_TOO_BIG).await;
                    return Ending::Linger;
                }
                Next::Protocol => {
                    self.close(CLOSE_PROTOCOL).await;
                    return Ending::Linger;
                }
                Next::Ended => return Ending::Done,
            };
            match frame.opcode {
                OpCode::Close => {
                    // Echo a well-formed close (RFC 6455 §5.5.1); fail a malformed one.
                    let item = if frames::close_payload_ok(&frame.payload) {
                        Outbound::CloseEcho(frame.payload)
                    } else {
                        Outbound::Close {
                            code: CLOSE_PROTOCOL.0,
                            reason: CLOSE_PROTOCOL.1,
                        }
                    };
                    self.send(item).await;
                    return Ending::Done;
                }
                OpCode::Ping => self.send(Outbound::Pong(frame.payload)).await,
                OpCode::Pong => {}
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    match assemble(&mut partial, frame.opcode, frame.fin, frame.payload, max) {
                        Assembled::More => continue,
                        Assembled::TooBig => {
                            self.close(CLOSE_TOO_BIG).await;
                            return Ending::Linger;
                        }
                        Assembled::Bad => {
                            self.close(CLOSE_PROTOCOL).await;
                            return Ending::Linger;
                        }
                        // Boxed: handling a frame takes more state than waiting for one, and
                        // this future sits idle in memory for every open socket.
                        Assembled::Done(OpCode::Text, bytes) => {
                            Box::pin(self.on_text(&bytes)).await
                        }
                        Assembled::Done(_, _) => {
                            self.reply_err(FALLBACK_REF, RelayError::from(Reason::InvalidEncoding))
                                .await
                        }
                    }
                }
            }
        }
    }

    async fn close(&self, (code, reason): (u16, &'static str)) {
        let _ = self.out.push(Outbound::Close { code, reason }).await;
    }

    async fn send(&self, item: Outbound) {
        // Fails only when the socket is closing anyway.
        let _ = self.out.push(item).await;
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
                    .reply_err(&reference, RelayError::from(Reason::InvalidEncoding))
                    .await
            }
        };
        let Inbound { reference, event } = inbound;
        if let ClientEvent::Join(data) = event {
            return self.join(reference, data).await;
        }
        if let ClientEvent::Unknown(_) = event {
            if let Some(r) = reference {
                self.reply_err(&r, RelayError::from(Reason::InvalidTopic))
                    .await;
            }
            return;
        }
        let State::Joined { handle } = &self.state else {
            if let Some(r) = reference {
                self.reply_err(&r, RelayError::from(Reason::NotJoined))
                    .await;
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
        if handle.op(self.conn, reference.clone(), op).await.is_err() {
            if let Some(r) = reference {
                let e = if is_send {
                    RelayError::from(Reason::SendFailed)
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
            ClientEvent::RedeemExtension(d) => {
                if self.shared.tokens.is_none() {
                    return Err(RelayError::from(Reason::MonetizationDisabled));
                }
                Op::Redeem {
                    token: extension_token(d.extension_secret.as_deref()),
                }
            }
            // Handled before a room is involved.
            ClientEvent::Join(_) | ClientEvent::Unknown(_) => return Ok(None),
        }))
    }

    async fn join(&mut self, reference: Option<String>, data: JoinData) {
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
        let JoinHashes {
            sender,
            access,
            otp,
        } = match check_join(&data) {
            Ok(hashes) => hashes,
            Err(e) => {
                self.shared
                    .metrics
                    .join(crate::metrics::JoinOutcome::invalid);
                return self.held_error(reference, deadline, e).await;
            }
        };
        // With tokens disabled a secret is ignored: the reference client sends a stored one on
        // every join, and its join must not fail over it.
        let extension = if self.shared.tokens.is_some() {
            extension_token(data.extension_secret.as_deref())
        } else {
            None
        };
        let req = JoinRequest {
            conn: self.conn,
            sender,
            access,
            otp,
            extension,
            ip: self.ip,
            reference: reference.clone(),
            deadline,
            out: self.out.clone(),
        };
        let shared = self.shared.clone();
        let answer = shared
            .rooms
            .request(&shared, &self.keys, |tx| {
                Command::Join(Box::new(req.clone()), tx)
            })
            .await;
        match answer {
            Ok((true, handle)) => {
                self.shared
                    .rooms
                    .unwatch_unjoined(&self.keys.locator(), self.conn);
                self.state = State::Joined { handle };
            }
            Ok((false, _)) => {}
            Err(e) => {
                self.shared
                    .metrics
                    .join(crate::metrics::JoinOutcome::failed);
                self.held_error(reference, deadline, e).await
            }
        }
    }

    async fn held_error(&self, reference: Option<String>, until: Instant, e: RelayError) {
        if let Some(r) = reference {
            let text = Bytes::from(reply_error(&r, &e.to_wire()));
            self.send(Outbound::Held(Box::new((until, text)))).await;
        }
    }
}

/// A join's hashes as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinHashes {
    pub sender: [u8; 32],
    pub access: [u8; 32],
    /// The pairing code: absent (missing, null or empty), malformed (not 64 lowercase hex), or
    /// a hash; the room decides whether one was needed.
    pub otp: Otp,
}

/// The token store's key for an extension secret: its SHA-256, for a secret that is 64
/// lowercase hex (CRYPTO.md); anything else names no token.
pub(crate) fn extension_token(secret: Option<&str>) -> Option<[u8; 32]> {
    let secret = secret?;
    hex64(secret)?;
    Some(stelgano_store::token_hash(secret))
}

/// The spec's checks on a join, in its order: `invalid_sender` before `invalid_access`.
pub(crate) fn check_join(data: &JoinData) -> Result<JoinHashes, RelayError> {
    let sender = data.sender_hash.as_deref().and_then(hex64);
    let access = data.access_hash.as_deref().and_then(hex64);
    match (sender, access) {
        (None, _) => Err(RelayError::from(Reason::InvalidSender)),
        (_, None) => Err(RelayError::from(Reason::InvalidAccess)),
        (Some(sender), Some(access)) => Ok(JoinHashes {
            sender,
            access,
            otp: match data.otp_hash.as_deref() {
                None | Some("") => Otp::Absent,
                Some(text) => hex64(text).map_or(Otp::Malformed, Otp::Hash),
            },
        }),
    }
}

/// The spec's checks on a message body: both valid base64 (`invalid_encoding`), ciphertext at
/// most `max` bytes decoded (`message_too_large`), IV exactly 12 bytes (ours, `invalid_encoding`).
pub(crate) fn check_body(
    ciphertext: Option<String>,
    iv: Option<String>,
    max: usize,
) -> Result<(String, String), RelayError> {
    let (Some(ciphertext), Some(iv)) = (ciphertext, iv) else {
        return Err(RelayError::from(Reason::InvalidEncoding));
    };
    // Decoded whatever its length: the spec puts encoding errors before size errors (a long
    // ciphertext that is not base64, or comes with a bad IV, is `invalid_encoding`), and the
    // text is already bounded by the WebSocket message limit.
    let ct = b64_decode(&ciphertext).ok_or(RelayError::from(Reason::InvalidEncoding))?;
    let iv_bytes = b64_decode(&iv).ok_or(RelayError::from(Reason::InvalidEncoding))?;
    if ct.len() > max {
        return Err(RelayError::from(Reason::MessageTooLarge));
    }
    if iv_bytes.len() != IV_BYTES {
        return Err(RelayError::from(Reason::InvalidEncoding));
    }
    Ok((ciphertext, iv))
}

pub(crate) enum Assembled {
    More,
    Done(OpCode, Vec<u8>),
    TooBig,
    Bad,
}

/// Reassembles fragmented messages, bounding the total (the frame reader bounds single frames).
pub(crate) fn assemble(
    partial: &mut Option<(OpCode, Vec<u8>)>,
    opcode: OpCode,
    fin: bool,
    payload: Vec<u8>,
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
                Assembled::Done(op, payload)
            } else {
                *partial = Some((op, payload));
                Assembled::More
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_checks_sender_then_access_and_tells_a_bad_otp_from_none() {
        let h = "1ea31d27f2db5216d960d03a9b45f697f25033693b4710be3d74b09dbb61d4ae";
        let join = |s: &str, a: &str, o: Option<&str>| JoinData {
            sender_hash: Some(s.into()),
            access_hash: Some(a.into()),
            otp_hash: o.map(Into::into),
            ..JoinData::default()
        };
        let ok = check_join(&join(h, h, Some("nope"))).unwrap();
        assert_eq!(stelgano_proto::check::to_hex64(&ok.sender), h);
        assert_eq!(ok.otp, Otp::Malformed);
        assert_eq!(check_join(&join(h, h, Some(""))).unwrap().otp, Otp::Absent);
        assert_eq!(check_join(&join(h, h, None)).unwrap().otp, Otp::Absent);
        assert_eq!(
            check_join(&join(h, h, Some(h))).unwrap().otp,
            Otp::Hash(ok.sender)
        );
        let upper = h.to_uppercase();
        assert!(matches!(
            check_join(&join(&upper, "x", None)),
            Err(ref e) if e.reason() == Some(Reason::InvalidSender)
        ));
        assert!(matches!(
            check_join(&join(h, &upper, None)),
            Err(ref e) if e.reason() == Some(Reason::InvalidAccess)
        ));
        assert!(matches!(
            check_join(&JoinData::default()),
            Err(ref e) if e.reason() == Some(Reason::InvalidSender)
        ));
    }

    /// Found by the `client_event` fuzz target: a length shortcut answered `message_too_large`
    /// for a long ciphertext before its base64 and the IV's were checked.
    #[test]
    fn a_long_body_with_bad_base64_is_invalid_encoding() {
        let iv = Some("AAECAwQFBgcICQoL".to_owned());
        let long = stelgano_proto::check::b64_encode(&[7u8; 8200]);
        assert!(matches!(
            check_body(Some(long.clone()), Some("not base64!".into()), 8192),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        // Base64's alphabet, but a length no base64 text has.
        assert!(matches!(
            check_body(Some("A".repeat(10_933)), iv.clone(), 8192),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        assert!(matches!(
            check_body(Some(format!("AA=={long}")), iv.clone(), 8192),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        // The fuzzer's own input, at the limit it ran with.
        assert!(matches!(
            check_body(
                Some("aGVsbG8gd29ybGQ=".into()),
                Some("AAECAwQFBgcICQd2\u{7f}".into()),
                2
            ),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        assert!(matches!(
            check_body(Some(long), iv, 8192),
            Err(ref e) if e.reason() == Some(Reason::MessageTooLarge)
        ));
    }

    #[test]
    fn body_checks_follow_the_spec_order() {
        let iv = Some("AAECAwQFBgcICQoL".to_owned());
        let ok = check_body(Some("aGVsbG8=".into()), iv.clone(), 8192);
        assert!(ok.is_ok());
        assert!(matches!(
            check_body(Some("-_-_".into()), iv.clone(), 8192),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        assert!(matches!(
            check_body(Some("aGVsbG8=".into()), Some("aGk=".into()), 8192),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        assert!(matches!(
            check_body(None, iv.clone(), 8192),
            Err(ref e) if e.reason() == Some(Reason::InvalidEncoding)
        ));
        let big = stelgano_proto::check::b64_encode(&[7u8; 8193]);
        assert!(matches!(
            check_body(Some(big), iv.clone(), 8192),
            Err(ref e) if e.reason() == Some(Reason::MessageTooLarge)
        ));
        let max = stelgano_proto::check::b64_encode(&[7u8; 8192]);
        assert!(check_body(Some(max), iv, 8192).is_ok());
    }
}
