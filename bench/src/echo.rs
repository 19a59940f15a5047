//! The baseline: a bare fastwebsockets echo server on the same hyper stack as the relay.
//!
//! It upgrades any path, and echoes every text or binary frame unchanged. Pingpong against it
//! measures what one box can push through WebSockets with no protocol work at all, so the relay's
//! throughput can be quoted as a fraction of that limit.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use fastwebsockets::{upgrade, OpCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::BenchError;

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
                tokio::spawn(async move {
                    let conn = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handle))
                        .with_upgrades();
                    // A peer that hangs up mid-handshake is not our concern.
                    let _ = conn.await;
                });
            }
        }
    }
}

async fn handle(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    if !upgrade::is_upgrade_request(&req) {
        return Ok(status(StatusCode::UPGRADE_REQUIRED));
    }
    match upgrade::upgrade(&mut req) {
        Ok((response, fut)) => {
            tokio::spawn(async move {
                if let Ok(ws) = fut.await {
                    echo(ws).await;
                }
            });
            Ok(response)
        }
        Err(_) => Ok(status(StatusCode::BAD_REQUEST)),
    }
}

async fn echo(mut ws: fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>) {
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

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    r
}
