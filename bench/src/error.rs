//! The bench's one error type: what can stop a run before it produces a report.

use std::io;

/// Why a bench command could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target URL is malformed or not on this machine's loopback.
    #[error("bad target {url:?}: {why}")]
    Target { url: String, why: &'static str },
    /// A bound the run must respect (rooms, sockets, seconds) would be exceeded.
    #[error("refusing to run: {0}")]
    Bound(String),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] fastwebsockets::WebSocketError),
    #[error("http: {0}")]
    Http(#[from] hyper::http::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading `/proc/PID/*` failed or gave text we do not understand.
    #[error("/proc sampling of pid {pid}: {why}")]
    Proc { pid: u32, why: String },
    #[error("plot: {0}")]
    Plot(String),
    /// The growth command's store or relay process failed.
    #[error("growth: {0}")]
    Growth(String),
    #[error("store: {0}")]
    Store(#[from] stelgano_store::StoreError),
    /// The spawned echo server did not come up.
    #[error("echo server: {0}")]
    Echo(String),
}
