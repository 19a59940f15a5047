//! idle: N paired rooms (two sockets each) held open and silent: relay memory per room, and the
//! CPU an idle relay spends on them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{check_rooms, check_seconds, check_socket_budget, open_pairs, sample, settle, Common};
use crate::error::BenchError;
use crate::procfs::PeakWatch;
use crate::report::{self, Point, ServerUsage};
use crate::stats::{Errors, SharedLatency};

#[derive(Debug, Clone)]
pub struct Args {
    pub rooms: Vec<usize>,
    /// Pause after set-up before the memory sample.
    pub settle: Duration,
    /// How long the rooms are held silent while CPU is measured.
    pub hold: Duration,
    pub runs: usize,
}

pub async fn run(common: &Common, args: &Args) -> Result<Vec<Point>, BenchError> {
    for &r in &args.rooms {
        check_rooms(r, super::pingpong::MAX_PINGPONG_ROOMS)?;
        check_socket_budget(2 * r)?;
    }
    check_seconds("--settle", args.settle.as_secs_f64())?;
    check_seconds("--hold", args.hold.as_secs_f64())?;
    let mut points = Vec::new();
    for &rooms in &args.rooms {
        for _ in 0..args.runs.clamp(1, 10) {
            points.push(measure(common, rooms, args).await);
        }
    }
    Ok(points)
}

async fn measure(common: &Common, rooms: usize, args: &Args) -> Point {
    let pid = common.server_pid;
    let errors = Arc::new(Errors::default());
    let join_latency = Arc::new(SharedLatency::new(16));
    let before = sample(pid);
    let peak = pid.map(|p| PeakWatch::start(p, Duration::from_millis(250)));
    let opened = open_pairs(common, rooms, &join_latency, &errors).await;
    settle(args.settle).await;
    let loaded = sample(pid);
    let t0 = Instant::now();
    settle(args.hold).await;
    let held = sample(pid);
    let wall = t0.elapsed();
    let sockets = 2 * opened.len();
    drop(opened);
    let peak = peak.map(PeakWatch::stop);
    let server = match (pid, before, loaded, held) {
        (Some(pid), Some(before), Some(loaded), Some(held)) => {
            let cpu = held.cpu.saturating_sub(loaded.cpu);
            Some(ServerUsage {
                pid,
                rss_before_bytes: before.rss_bytes,
                rss_loaded_bytes: loaded.rss_bytes,
                rss_peak_bytes: peak.unwrap_or(0).max(held.rss_bytes),
                cpu_seconds: cpu.as_secs_f64(),
                cpu_percent: report::cpu_percent(cpu, wall),
                cpu_us_per_op: None,
                bytes_per_room: report::bytes_per_room(before.rss_bytes, loaded.rss_bytes, rooms),
            })
        }
        _ => None,
    };
    let joins = join_latency.collect();
    Point {
        scenario: "idle".into(),
        target: "relay".into(),
        rooms,
        sockets,
        seconds: args.hold.as_secs_f64(),
        join_latency: (joins.count() > 0).then(|| joins.summary()),
        errors: errors.snapshot(),
        server,
        ..Point::default()
    }
}
