//! joins: how many rooms per second the relay can create and pair, and how long each join takes,
//! with the relay's join time floor as configured (by default 500 ms + jitter on every reply).
//!
//! Each room: A connects and creates it, B connects and claims the second seat with the pairing
//! code, both close. Throughput is joins (two per room) over the wall time of the phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastwebsockets::Frame;

use super::{bar, bounded, check_rooms, check_socket_budget, open_pair, sample, Common};
use crate::error::BenchError;
use crate::identity::RoomIdentity;
use crate::procfs::PeakWatch;
use crate::report::{self, Point, ServerUsage};
use crate::stats::{Errors, SharedLatency};

/// Rooms in one joins run at most.
pub const MAX_JOIN_ROOMS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Args {
    pub rooms: Vec<usize>,
    pub runs: usize,
}

pub async fn run(common: &Common, args: &Args) -> Result<Vec<Point>, BenchError> {
    for &r in &args.rooms {
        check_rooms(r, MAX_JOIN_ROOMS)?;
    }
    check_socket_budget(2 * common.concurrency)?;
    let mut points = Vec::new();
    for &rooms in &args.rooms {
        for _ in 0..args.runs.clamp(1, 10) {
            points.push(measure(common, rooms).await);
        }
    }
    Ok(points)
}

async fn measure(common: &Common, rooms: usize) -> Point {
    let pid = common.server_pid;
    let errors = Arc::new(Errors::default());
    let join_latency = Arc::new(SharedLatency::new(16));
    let before = sample(pid);
    let peak = pid.map(|p| PeakWatch::start(p, Duration::from_millis(250)));
    let t0 = Instant::now();
    let pb = bar(common.progress, rooms as u64, "joins");
    let (c, errs, jl, pb2) = (
        common.clone(),
        errors.clone(),
        join_latency.clone(),
        pb.clone(),
    );
    let paired = bounded(rooms, common.concurrency, move |n| {
        let (c, errs, jl, pb) = (c.clone(), errs.clone(), jl.clone(), pb2.clone());
        async move {
            if c.gave_up(&errs) {
                pb.inc(1);
                return None;
            }
            let id = RoomIdentity::random(&mut rand::thread_rng());
            let r = open_pair(&c, id, n, &jl).await;
            pb.inc(1);
            match r {
                Ok(mut room) => {
                    let _ = room.a.write_frame(Frame::close(1000, b"")).await;
                    let _ = room.b.write_frame(Frame::close(1000, b"")).await;
                    Some(())
                }
                Err(e) => {
                    errs.add(e.reason());
                    None
                }
            }
        }
    })
    .await;
    pb.finish_and_clear();
    let wall = t0.elapsed();
    let after = sample(pid);
    let peak = peak.map(PeakWatch::stop);
    let joins = join_latency.collect();
    let ok_rooms = paired.iter().flatten().count();
    let server = match (pid, before, after) {
        (Some(pid), Some(before), Some(after)) => {
            let cpu = after.cpu.saturating_sub(before.cpu);
            Some(ServerUsage {
                pid,
                rss_before_bytes: before.rss_bytes,
                rss_loaded_bytes: after.rss_bytes,
                rss_peak_bytes: peak.unwrap_or(0).max(after.rss_bytes),
                cpu_seconds: cpu.as_secs_f64(),
                cpu_percent: report::cpu_percent(cpu, wall),
                cpu_us_per_op: report::cpu_us_per_op(cpu, joins.count()),
                bytes_per_room: None,
            })
        }
        _ => None,
    };
    Point {
        scenario: "joins".into(),
        target: "relay".into(),
        rooms,
        sockets: 2 * common.concurrency.min(rooms),
        seconds: wall.as_secs_f64(),
        delivered: ok_rooms as u64,
        join_latency: Some(joins.summary()),
        joins_per_s: report::rate(joins.count(), wall),
        errors: errors.snapshot(),
        server,
        ..Point::default()
    }
}
