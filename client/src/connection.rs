//! One WebSocket to the relay: a reader task that routes replies to their requests by `ref` and
//! fans broadcasts out, and a shared writer for requests.
//!
//! The reader runs on its own so pings are answered and broadcasts are collected even while the
//! caller is busy elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fastwebsockets::{
    FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError, WebSocketWrite,
};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use stelgano_proto::server::BadFrame;
use stelgano_proto::{Broadcast, ClientEvent, ErrorBody, ServerFrame};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::ws::WsStream;

type WsRead = FragmentCollectorRead<ReadHalf<TokioIo<Upgraded>>>;
type WsWrite = WebSocketWrite<WriteHalf<TokioIo<Upgraded>>>;
type Reply = Result<Value, ErrorBody>;

/// Broadcasts kept for a consumer that is not reading; beyond this the oldest are dropped and
/// the consumer is told how many it missed (a slow reader must never stall replies).
const EVENT_BUFFER: usize = 256;
/// How long `close` waits for the relay to answer a close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the reader task hands to the consumer.
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    Broadcast(Broadcast),
    /// A broadcast this version does not know.
    Unknown(String),
    /// The socket is gone; always the last item.
    Closed {
        code: u16,
        reason: String,
    },
}

/// Requests waiting for their reply, and why the socket closed once it has.
#[derive(Default)]
struct Pending {
    waiting: HashMap<String, oneshot::Sender<Reply>>,
    closed: Option<(u16, String)>,
}

fn lock(p: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // The map stays consistent even if a holder panicked: every operation on it is one call.
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A live socket to one room's URL.
pub(crate) struct Connection {
    write: Arc<tokio::sync::Mutex<WsWrite>>,
    pending: Arc<Mutex<Pending>>,
    incoming: broadcast::Receiver<Incoming>,
    reader: JoinHandle<()>,
    next_ref: u64,
    timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("next_ref", &self.next_ref)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Takes over an upgraded socket and starts its reader task.
    pub(crate) fn start(ws: WsStream, timeout: Duration) -> Connection {
        let (read, write) = ws.split(tokio::io::split);
        let write = Arc::new(tokio::sync::Mutex::new(write));
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (tx, incoming) = broadcast::channel(EVENT_BUFFER);
        let reader = tokio::spawn(read_loop(
            FragmentCollectorRead::new(read),
            Arc::clone(&write),
            Arc::clone(&pending),
            tx,
        ));
        Connection {
            write,
            pending,
            incoming,
            reader,
            next_ref: 1,
            timeout,
        }
    }

    fn closed_error(&self) -> ClientError {
        let (code, reason) = lock(&self.pending)
            .closed
            .clone()
            .unwrap_or((1006, String::new()));
        ClientError::Closed { code, reason }
    }

    async fn write_text(&self, text: String) -> Result<(), ClientError> {
        let mut w = self.write.lock().await;
        w.write_frame(Frame::text(Payload::Owned(text.into_bytes())))
            .await
            .map_err(|e| match e {
                WebSocketError::ConnectionClosed => self.closed_error(),
                e => ClientError::WebSocket(e),
            })
    }

    /// Sends an event that gets a reply and waits for it.
    pub(crate) async fn request(&mut self, event: &ClientEvent) -> Result<Value, ClientError> {
        let reference = self.next_ref.to_string();
        self.next_ref += 1;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.pending);
            if let Some((code, reason)) = p.closed.clone() {
                return Err(ClientError::Closed { code, reason });
            }
            p.waiting.insert(reference.clone(), tx);
        }
        if let Err(e) = self.write_text(event.encode(&reference)).await {
            lock(&self.pending).waiting.remove(&reference);
            return Err(e);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(body))) => Err(ClientError::Server(body)),
            // The reader dropped the sender: the socket closed before the reply came.
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                lock(&self.pending).waiting.remove(&reference);
                Err(ClientError::Timeout {
                    what: format!("the relay's answer to {}", event.name()),
                    after: self.timeout,
                })
            }
        }
    }

    /// Sends an event the relay never answers (`read_receipt`, `typing`).
    pub(crate) async fn notify(&mut self, event: &ClientEvent) -> Result<(), ClientError> {
        let reference = self.next_ref.to_string();
        self.next_ref += 1;
        self.write_text(event.encode(&reference)).await
    }

    /// The next item from the reader; `None` once the socket closed and everything was delivered.
    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, u64>> {
        match self.incoming.recv().await {
            Ok(item) => Some(Ok(item)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Closes the socket with a close frame (`code`, `reason`) and waits briefly for the relay's.
    pub(crate) async fn close(mut self, code: u16, reason: &str) {
        {
            let mut w = self.write.lock().await;
            // A failure means the socket is already gone, which is what we want anyway.
            let _ = w.write_frame(Frame::close(code, reason.as_bytes())).await;
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut self.reader).await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_loop(
    mut read: WsRead,
    write: Arc<tokio::sync::Mutex<WsWrite>>,
    pending: Arc<Mutex<Pending>>,
    tx: broadcast::Sender<Incoming>,
) {
    // Pongs and the answer to a close frame are written through the shared writer.
    let mut obligated = |frame: Frame<'static>| {
        let write = Arc::clone(&write);
        async move { write.lock().await.write_frame(frame).await }
    };
    let (code, reason) = loop {
        let frame = match read.read_frame(&mut obligated).await {
            Ok(frame) => frame,
            Err(e) => break (1006, e.to_string()),
        };
        match frame.opcode {
            OpCode::Text => {
                let text = String::from_utf8_lossy(&frame.payload);
                match ServerFrame::parse(&text) {
                    Ok(ServerFrame::Reply { reference, result }) => {
                        // A reply whose requester gave up (timed out) is dropped.
                        if let Some(waiter) = lock(&pending).waiting.remove(&reference) {
                            let _ = waiter.send(result);
                        }
                    }
                    // No receiver just means nobody listens for events right now.
                    Ok(ServerFrame::Broadcast(b)) => {
                        let _ = tx.send(Incoming::Broadcast(b));
                    }
                    Ok(ServerFrame::Unknown { event, .. }) => {
                        let _ = tx.send(Incoming::Unknown(event));
                    }
                    Err(BadFrame(why)) => break (1002, format!("unreadable frame: {why}")),
                }
            }
            OpCode::Close => {
                let p = &frame.payload[..];
                break if p.len() >= 2 {
                    (
                        u16::from_be_bytes([p[0], p[1]]),
                        String::from_utf8_lossy(&p[2..]).into_owned(),
                    )
                } else {
                    (1005, String::new())
                };
            }
            // The relay speaks JSON text only; anything else is ignored.
            _ => {}
        }
    };
    {
        let mut p = lock(&pending);
        p.closed = Some((code, reason.clone()));
        // Dropping the senders wakes every waiting request with "closed".
        p.waiting.clear();
    }
    let _ = tx.send(Incoming::Closed { code, reason });
}
