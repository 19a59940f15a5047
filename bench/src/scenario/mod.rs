//! Load scenarios and what they share: bounded fan-out, joining rooms, server sampling.
//!
//! # Scenarios
//! - [`pingpong`]: paired rooms exchange messages turn by turn for a fixed time.
//! - [`idle`]: paired rooms held open and silent: relay memory per room.
//! - [`deaddrop`]: rooms left holding one message with no socket: memory per stored message.
//! - [`joins`]: create-and-pair join throughput and latency, with the relay's time floor on.

pub mod deaddrop;
pub mod idle;
pub mod joins;
pub mod pingpong;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload};
use indicatif::{ProgressBar, ProgressStyle};
use stelgano_proto::server::JoinOk;
use stelgano_proto::ServerFrame;

use crate::error::BenchError;
use crate::identity::RoomIdentity;
use crate::procfs;
use crate::stats::{Errors, SharedLatency};
use crate::target::{Sources, Target};
use crate::ws::{self, Ws};

/// Hard ceilings, whatever the flags say.
pub const MAX_ROOMS: usize = 200_000;
pub const MAX_SECONDS: u64 = 600;
pub const MAX_CONCURRENCY: usize = 4_096;
/// File descriptors kept free for the runtime, stdio and the odd file.
const SPARE_FDS: usize = 64;

/// Settings every scenario uses.
#[derive(Debug, Clone)]
pub struct Common {
    pub target: Target,
    pub sources: Sources,
    /// Rooms being set up at once.
    pub concurrency: usize,
    /// Longest wait for any single frame.
    pub read_timeout: Duration,
    /// The relay's pid, for RSS and CPU from /proc.
    pub server_pid: Option<u32>,
    pub progress: bool,
    /// Once this many rooms have failed, the rest of a set-up phase is skipped (a wedged relay
    /// would otherwise cost one read timeout per remaining room).
    pub max_errors: u64,
}

impl Common {
    /// `true` once a phase has seen `max_errors` failures; skipped rooms count as `gave_up`.
    pub fn gave_up(&self, errors: &Errors) -> bool {
        if errors.total() >= self.max_errors {
            errors.add("gave_up");
            return true;
        }
        false
    }
}

impl Default for Common {
    fn default() -> Self {
        let target = Target {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        Common {
            sources: Sources::new(&target, 1),
            target,
            concurrency: 1,
            read_timeout: Duration::from_secs(10),
            server_pid: None,
            progress: false,
            max_errors: 1_000,
        }
    }
}

/// Why one room's work failed; counted by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The relay answered with this error reason.
    Relay(String),
    /// The bench's own view: `connect`, `handshake`, `closed`, `timeout`, ...
    Transport(&'static str),
}

impl Fail {
    pub fn reason(&self) -> &str {
        match self {
            Fail::Relay(r) => r,
            Fail::Transport(t) => t,
        }
    }
}

/// Refuses runs that would hold more sockets than this process may open.
pub fn check_socket_budget(sockets: usize) -> Result<(), BenchError> {
    let limit = procfs::open_files_limit().unwrap_or(1024) as usize;
    if sockets + SPARE_FDS > limit {
        return Err(BenchError::Bound(format!(
            "{sockets} sockets need more than this process's open-file limit of {limit} \
             (keep {SPARE_FDS} spare); lower --rooms"
        )));
    }
    Ok(())
}

pub fn check_rooms(rooms: usize, max: usize) -> Result<(), BenchError> {
    if rooms == 0 || rooms > max {
        return Err(BenchError::Bound(format!(
            "--rooms must be 1..={max}, got {rooms}"
        )));
    }
    Ok(())
}

pub fn check_seconds(what: &str, secs: f64) -> Result<(), BenchError> {
    if !(0.0..=MAX_SECONDS as f64).contains(&secs) {
        return Err(BenchError::Bound(format!(
            "{what} must be 0..={MAX_SECONDS} s"
        )));
    }
    Ok(())
}

/// Runs `f(0..n)` with at most `concurrency` calls in flight, on worker tasks that pull the next
/// index as they finish one (no task per item, so 100,000 items cost `concurrency` tasks).
pub async fn bounded<T, F, Fut>(n: usize, concurrency: usize, f: F) -> Vec<Option<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<T>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.clamp(1, n.max(1)))
        .map(|_| {
            let f = f.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return done;
                    }
                    if let Some(t) = f(i).await {
                        done.push((i, t));
                    }
                }
            })
        })
        .collect();
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for w in workers {
        // A worker only fails by panicking; its rooms then count as not set up.
        if let Ok(done) = w.await {
            for (i, t) in done {
                out[i] = Some(t);
            }
        }
    }
    out
}

/// A progress bar on stderr (indicatif hides it when stderr is not a terminal).
pub fn bar(enabled: bool, len: u64, what: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(what.to_owned());
    pb
}

/// Connects a socket to the room's path from the `n`th source address.
pub async fn connect_room(common: &Common, path: &str, n: usize) -> Result<Ws, Fail> {
    match tokio::time::timeout(
        common.read_timeout,
        ws::connect(&common.target, path, common.sources.pick(n)),
    )
    .await
    {
        Ok(Ok(ws)) => Ok(ws),
        Ok(Err(BenchError::Io(_))) => Err(Fail::Transport("connect")),
        Ok(Err(_)) => Err(Fail::Transport("handshake")),
        Err(_) => Err(Fail::Transport("connect_timeout")),
    }
}

/// Sends one text frame.
pub async fn send_text(ws: &mut Ws, bytes: &[u8]) -> Result<(), Fail> {
    ws.write_frame(Frame::text(Payload::Owned(bytes.to_vec())))
        .await
        .map_err(|_| Fail::Transport("write"))
}

/// Reads the next text frame (control frames are handled by fastwebsockets).
pub async fn read_text(ws: &mut Ws, timeout: Duration) -> Result<Vec<u8>, Fail> {
    let frame = tokio::time::timeout(timeout, ws.read_frame())
        .await
        .map_err(|_| Fail::Transport("timeout"))?
        .map_err(|_| Fail::Transport("closed"))?;
    match frame.opcode {
        OpCode::Text => Ok(frame.payload.to_vec()),
        OpCode::Close => Err(Fail::Transport("closed")),
        _ => Err(Fail::Transport("unexpected_frame")),
    }
}

/// Waits for the reply to `reference`, skipping broadcasts; `Ok` carries the reply's `ok` value.
pub async fn await_reply(
    ws: &mut Ws,
    reference: &str,
    timeout: Duration,
) -> Result<serde_json::Value, Fail> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = read_text(ws, left).await?;
        let text = String::from_utf8(text).map_err(|_| Fail::Transport("unreadable_frame"))?;
        match ServerFrame::parse(&text) {
            Ok(ServerFrame::Reply {
                reference: r,
                result,
            }) if r == reference => {
                return result.map_err(|e| Fail::Relay(e.reason.as_str().to_owned()));
            }
            Ok(_) => continue,
            Err(_) => return Err(Fail::Transport("unreadable_frame")),
        }
    }
}

/// Sends party `index`'s join and waits for its reply; records the join's latency.
pub async fn join(
    ws: &mut Ws,
    id: &RoomIdentity,
    index: usize,
    timeout: Duration,
    latency: &SharedLatency,
    key: usize,
) -> Result<JoinOk, Fail> {
    let t0 = Instant::now();
    send_text(ws, &id.join_frame(index, "j")).await?;
    let ok = await_reply(ws, "j", timeout).await?;
    latency.record(key, t0.elapsed());
    serde_json::from_value(ok).map_err(|_| Fail::Transport("unreadable_join_reply"))
}

/// A room with both seats taken and both sockets open.
pub struct PairedRoom {
    pub id: RoomIdentity,
    pub a: Ws,
    pub b: Ws,
}

impl std::fmt::Debug for PairedRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairedRoom(..)")
    }
}

/// Creates room `n` as party A and claims the second seat as party B with the pairing code.
pub async fn open_pair(
    common: &Common,
    id: RoomIdentity,
    n: usize,
    join_latency: &SharedLatency,
) -> Result<PairedRoom, Fail> {
    let path = id.path();
    let mut a = connect_room(common, &path, 2 * n).await?;
    let created = join(&mut a, &id, 0, common.read_timeout, join_latency, n).await?;
    if !created.awaiting_party {
        // A random room hash that already exists: astronomically unlikely, but say so.
        return Err(Fail::Transport("room_already_paired"));
    }
    let mut b = connect_room(common, &path, 2 * n + 1).await?;
    join(&mut b, &id, 1, common.read_timeout, join_latency, n).await?;
    Ok(PairedRoom { id, a, b })
}

/// Opens `rooms` paired rooms with bounded concurrency; failures are counted in `errors`.
pub async fn open_pairs(
    common: &Common,
    rooms: usize,
    join_latency: &Arc<SharedLatency>,
    errors: &Arc<Errors>,
) -> Vec<PairedRoom> {
    let pb = bar(common.progress, rooms as u64, "pairing");
    let c = common.clone();
    let jl = join_latency.clone();
    let errs = errors.clone();
    let pb2 = pb.clone();
    let opened = bounded(rooms, common.concurrency, move |n| {
        let c = c.clone();
        let jl = jl.clone();
        let errs = errs.clone();
        let pb = pb2.clone();
        async move {
            if c.gave_up(&errs) {
                pb.inc(1);
                return None;
            }
            let id = RoomIdentity::random(&mut rand::thread_rng());
            let r = open_pair(&c, id, n, &jl).await;
            pb.inc(1);
            match r {
                Ok(room) => Some(room),
                Err(f) => {
                    errs.add(f.reason());
                    None
                }
            }
        }
    })
    .await;
    pb.finish_and_clear();
    opened.into_iter().flatten().collect()
}

/// Samples the server if a pid was given; a failed sample is reported once and then ignored.
pub fn sample(pid: Option<u32>) -> Option<procfs::ProcSample> {
    let pid = pid?;
    match procfs::sample(pid) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    }
}

/// Lets the server settle (close handshakes, freed buffers) between phases.
pub async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}
