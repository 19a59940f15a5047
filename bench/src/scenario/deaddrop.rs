//! deaddrop: N rooms each left holding one message with no socket open: relay memory per stored
//! message.
//!
//! Each room costs one connection: create the room, send one message, wait for its `ok`, close.
//! The second seat stays open (nobody pairs), as when a first message waits for a partner. A few
//! rooms are then checked from the other side (a pairing join must return the stored message),
//! after the memory sample so the check does not disturb it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastwebsockets::Frame;

use super::{
    bar, bounded, check_rooms, check_seconds, connect_room, join, sample, send_text, settle,
    Common, Fail,
};
use crate::error::BenchError;
use crate::identity::{Message, RoomIdentity};
use crate::procfs::PeakWatch;
use crate::report::{self, Point, ServerUsage};
use crate::stats::{Errors, SharedLatency};

#[derive(Debug, Clone)]
pub struct Args {
    pub rooms: Vec<usize>,
    pub payload_bytes: usize,
    pub settle: Duration,
    /// Rooms re-opened afterwards to check the message is really held.
    pub verify: usize,
    pub runs: usize,
}

pub async fn run(common: &Common, args: &Args) -> Result<Vec<Point>, BenchError> {
    for &r in &args.rooms {
        check_rooms(r, super::MAX_ROOMS)?;
    }
    check_seconds("--settle", args.settle.as_secs_f64())?;
    super::check_socket_budget(common.concurrency)?;
    let mut points = Vec::new();
    for &rooms in &args.rooms {
        for _ in 0..args.runs.clamp(1, 10) {
            points.push(measure(common, rooms, args).await);
        }
    }
    Ok(points)
}

/// Creates the room, leaves one message in it, closes.
async fn drop_one(
    common: &Common,
    id: &RoomIdentity,
    frame: &[u8],
    n: usize,
    jl: &SharedLatency,
) -> Result<(), Fail> {
    let mut ws = connect_room(common, &id.path(), n).await?;
    join(&mut ws, id, 0, common.read_timeout, jl, n).await?;
    send_text(&mut ws, frame).await?;
    super::await_reply(&mut ws, "s", common.read_timeout).await?;
    // A polite close; the relay keeps the room and its message either way.
    let _ = ws.write_frame(Frame::close(1000, b"")).await;
    Ok(())
}

/// Pairs into the room as party B; the join reply must carry the stored message.
async fn check_one(
    common: &Common,
    id: &RoomIdentity,
    n: usize,
    jl: &SharedLatency,
) -> Result<(), Fail> {
    let mut ws = connect_room(common, &id.path(), n).await?;
    let ok = join(&mut ws, id, 1, common.read_timeout, jl, n).await?;
    if ok.current_message.is_none() {
        return Err(Fail::Transport("message_missing"));
    }
    let _ = ws.write_frame(Frame::close(1000, b"")).await;
    Ok(())
}

async fn measure(common: &Common, rooms: usize, args: &Args) -> Point {
    let pid = common.server_pid;
    let errors = Arc::new(Errors::default());
    let join_latency = Arc::new(SharedLatency::new(16));
    let message = Message::random(&mut rand::thread_rng(), args.payload_bytes);
    let frame = Arc::new(message.send_frame("s"));
    let before = sample(pid);
    let peak = pid.map(|p| PeakWatch::start(p, Duration::from_millis(250)));
    let t0 = Instant::now();
    let pb = bar(common.progress, rooms as u64, "dead drops");
    let (c, errs, jl, pb2, f) = (
        common.clone(),
        errors.clone(),
        join_latency.clone(),
        pb.clone(),
        frame.clone(),
    );
    let made = bounded(rooms, common.concurrency, move |n| {
        let (c, errs, jl, pb, f) = (c.clone(), errs.clone(), jl.clone(), pb2.clone(), f.clone());
        async move {
            if c.gave_up(&errs) {
                pb.inc(1);
                return None;
            }
            let id = RoomIdentity::random(&mut rand::thread_rng());
            let r = drop_one(&c, &id, &f, n, &jl).await;
            pb.inc(1);
            match r {
                Ok(()) => Some(id),
                Err(e) => {
                    errs.add(e.reason());
                    None
                }
            }
        }
    })
    .await;
    pb.finish_and_clear();
    let setup = t0.elapsed();
    settle(args.settle).await;
    let loaded = sample(pid);
    let peak = peak.map(PeakWatch::stop);

    let stored: Vec<RoomIdentity> = made.into_iter().flatten().collect();
    for (i, id) in stored.iter().take(args.verify).enumerate() {
        if let Err(e) = check_one(common, id, rooms + i, &join_latency).await {
            errors.add(e.reason());
        }
    }
    let server = match (pid, before, loaded) {
        (Some(pid), Some(before), Some(loaded)) => {
            let cpu = loaded.cpu.saturating_sub(before.cpu);
            Some(ServerUsage {
                pid,
                rss_before_bytes: before.rss_bytes,
                rss_loaded_bytes: loaded.rss_bytes,
                rss_peak_bytes: peak.unwrap_or(0).max(loaded.rss_bytes),
                cpu_seconds: cpu.as_secs_f64(),
                cpu_percent: report::cpu_percent(cpu, setup + args.settle),
                cpu_us_per_op: report::cpu_us_per_op(cpu, stored.len() as u64),
                bytes_per_room: report::bytes_per_room(before.rss_bytes, loaded.rss_bytes, rooms),
            })
        }
        _ => None,
    };
    let joins = join_latency.collect();
    Point {
        scenario: "deaddrop".into(),
        target: "relay".into(),
        rooms,
        sockets: 0,
        payload_bytes: args.payload_bytes,
        seconds: setup.as_secs_f64(),
        delivered: stored.len() as u64,
        join_latency: (joins.count() > 0).then(|| joins.summary()),
        joins_per_s: report::rate(stored.len() as u64, setup),
        errors: errors.snapshot(),
        server,
        ..Point::default()
    }
}
