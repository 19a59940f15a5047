//! Client WebSocket connections bound to a chosen local source address.
//!
//! `stelgano_client::ws::connect` takes a URL and lets the kernel pick the source address; the
//! bench needs to pick it (127.0.0.x round-robin) to keep tens of thousands of sockets within the
//! ephemeral port range, so it binds a `TcpSocket` itself and hands the stream to fastwebsockets'
//! client handshake.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use fastwebsockets::{handshake, WebSocket};
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::error::BenchError;
use crate::target::Target;

/// One client WebSocket.
pub type Ws = WebSocket<TokioIo<Upgraded>>;

/// Runs hyper's connection driver (needed until the upgrade completes) on the tokio runtime.
struct Spawner;

impl<F> hyper::rt::Executor<F> for Spawner
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Opens `ws://target{path}` from `source` (port chosen by the kernel).
pub async fn connect(target: &Target, path: &str, source: IpAddr) -> Result<Ws, BenchError> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target.addr).await?;
    // Latency is what we measure: never let Nagle hold a small frame back.
    stream.set_nodelay(true)?;
    let request = Request::builder()
        .method("GET")
        .uri(path)
        .header(HOST, target.host_header())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())?;
    let (mut ws, _response) = handshake::client(&Spawner, request, stream).await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws.set_max_message_size(stelgano_proto::limits::MAX_WS_MESSAGE_BYTES);
    Ok(ws)
}
