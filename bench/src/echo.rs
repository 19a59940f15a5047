//! The baselines: bare fastwebsockets servers on the same hyper stack as the relay.
//!
//! Any path but `/pair/...` is an echo: every text or binary frame comes back unchanged on the
//! socket it came in on (one frame in, one out). Two sockets that open the same `/pair/KEY` path
//! form a pair, and every data frame either of them sends is written to the partner and back to
//! the sender: one frame in and a write to each of two sockets, the least I/O a relay that tells
//! both parties of a message can do. Pingpong against them measures what one box can push through
//! WebSockets with no protocol work at all, so the relay's throughput and CPU per message can be
//! quoted against those limits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use fastwebsockets::{upgrade, Frame, OpCode, Payload, Role, WebSocketWrite};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

use crate::error::BenchError;

/// The path prefix that asks for a fanout pair instead of an echo.
pub const PAIR_PREFIX: &str = "/pair/";

/// Binds `listen` (loopback only) and returns the listener, so callers can learn the port before
/// serving.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener, BenchError> {
    if !listen.ip().is_loopback() {
        return Err(BenchError::Target {
            url: listen.to_string(),
            why: "the echo server listens on loopback only",
        });
    }
    Ok(TcpListener::bind(listen).await?)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BenchError> {
    tokio::pin!(shutdown);
    let pairs = Pairs::default();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    // Out of file descriptors or a reset before accept: keep serving the rest.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let pairs = pairs.clone();
                tokio::spawn(async move {
                    let conn = http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |req| handle(req, pairs.clone())),
                        )
                        .with_upgrades();
                    // A peer that hangs up mid-handshake is not our concern.
                    let _ = conn.await;
                });
            }
        }
    }
}

async fn handle(
    mut req: Request<Incoming>,
    pairs: Pairs,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    if !upgrade::is_upgrade_request(&req) {
        return Ok(status(StatusCode::UPGRADE_REQUIRED));
    }
    let pair_key = req
        .uri()
        .path()
        .strip_prefix(PAIR_PREFIX)
        .map(str::to_owned);
    match upgrade::upgrade(&mut req) {
        Ok((response, fut)) => {
            tokio::spawn(async move {
                if let Ok(ws) = fut.await {
                    match pair_key {
                        Some(key) => fanout(ws, key, pairs).await,
                        None => echo(ws).await,
                    }
                }
            });
            Ok(response)
        }
        Err(_) => Ok(status(StatusCode::BAD_REQUEST)),
    }
}

type Upgraded = fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

async fn echo(mut ws: Upgraded) {
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws.set_max_message_size(stelgano_proto::limits::MAX_WS_MESSAGE_BYTES);
    loop {
        let Ok(frame) = ws.read_frame().await else {
            return;
        };
        let echoed = match frame.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await.is_ok(),
            OpCode::Close => false,
            _ => true,
        };
        if !echoed {
            return;
        }
    }
}

/// One socket's writing side, shared with its partner's reading task.
type Writer = tokio::sync::Mutex<WebSocketWrite<OwnedWriteHalf>>;

/// The two sides of a pair; each is set once, when its socket arrives.
#[derive(Default)]
struct Pair {
    sides: [OnceLock<Arc<Writer>>; 2],
}

/// Pairs with one side still to come, by path key. A pair leaves the map when its second side
/// arrives (a later socket on the same path starts a new pair) or its first side leaves.
#[derive(Clone, Default)]
struct Pairs(Arc<Mutex<HashMap<String, Arc<Pair>>>>);

impl Pairs {
    /// Places `writer` in the pair named `key`; returns the pair and this socket's side.
    fn join(&self, key: String, writer: Arc<Writer>) -> (Arc<Pair>, usize) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pair = map.entry(key.clone()).or_default().clone();
        // A pair in the map has its first side set or none; sides are set only here, under the
        // map lock.
        let side = usize::from(pair.sides[0].get().is_some());
        let _ = pair.sides[side].set(writer);
        if side == 1 {
            map.remove(&key);
        }
        (pair, side)
    }

    /// Forgets a pair whose second side never came.
    fn leave(&self, key: &str, pair: &Arc<Pair>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(key).is_some_and(|p| Arc::ptr_eq(p, pair)) {
            map.remove(key);
        }
    }
}

async fn fanout(ws: Upgraded, key: String, pairs: Pairs) {
    // Straight onto the TCP socket's two halves, as the relay does: a shared split stream would
    // add a lock to every read and write, and the baseline is meant to be the least work.
    let Ok(parts) = ws
        .into_inner()
        .into_inner()
        .downcast::<TokioIo<TcpStream>>()
    else {
        return;
    };
    // Bytes that came with the upgrade request would belong to the first frame; a pair client
    // waits for the 101 before sending, so such a peer is simply dropped.
    if !parts.read_buf.is_empty() {
        return;
    }
    let (read, write) = parts.io.into_inner().into_split();
    let (mut rx, tx) = fastwebsockets::after_handshake_split(read, write, Role::Server);
    rx.set_max_message_size(stelgano_proto::limits::MAX_WS_MESSAGE_BYTES);
    let own = Arc::new(Writer::new(tx));
    let (pair, side) = pairs.join(key.clone(), own.clone());
    let partner = &pair.sides[1 - side];
    loop {
        let frame = rx
            .read_frame(&mut |f: Frame<'_>| {
                let own = own.clone();
                let f = Frame::new(f.fin, f.opcode, None, Payload::Owned(f.payload.to_vec()));
                async move { own.lock().await.write_frame(f).await }
            })
            .await;
        let Ok(frame) = frame else { break };
        match frame.opcode {
            OpCode::Text | OpCode::Binary => {
                // The partner first, then the sender's own copy: the relay's order.
                if let Some(p) = partner.get() {
                    let copy =
                        Frame::new(true, frame.opcode, None, Payload::Borrowed(&frame.payload));
                    if p.lock().await.write_frame(copy).await.is_err() {
                        break;
                    }
                }
                let copy = Frame::new(true, frame.opcode, None, Payload::Borrowed(&frame.payload));
                if own.lock().await.write_frame(copy).await.is_err() {
                    break;
                }
            }
            OpCode::Close => break,
            _ => {}
        }
    }
    pairs.leave(&key, &pair);
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    r
}
