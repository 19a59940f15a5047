//! pingpong: N paired rooms exchange messages turn by turn for D seconds, closed loop.
//!
//! The same loop runs against the echo server with the same socket count (two per room) and
//! frame size, twice: as an echo (one frame in, one out) and as fanout pairs (one frame in, one
//! out to each socket of the pair: the relay's I/O without its protocol). The relay's throughput
//! reads as a fraction of the first, its CPU per message against the second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload};

use super::{
    bar, bounded, check_rooms, check_seconds, check_socket_budget, connect_room, sample, settle,
    Common,
};
use crate::error::BenchError;
use crate::exchange::{Exchange, Mode, Next, Outcome};
use crate::identity::Message;
use crate::inbound::{classify, Seen};
use crate::procfs::PeakWatch;
use crate::report::{self, Point, ServerUsage};
use crate::stats::{Errors, SharedLatency};
use crate::ws::Ws;

/// Rooms per run at most: 2 sockets each, within a 20,000-file limit.
pub const MAX_PINGPONG_ROOMS: usize = 9_900;

#[derive(Debug, Clone)]
pub struct Args {
    /// Room counts to measure, in order.
    pub rooms: Vec<usize>,
    pub payload_bytes: usize,
    /// Measurement window.
    pub duration: Duration,
    /// Exchange before the window opens (connection warm-up, allocator growth).
    pub warmup: Duration,
    /// Runs per room count (the report takes medians).
    pub runs: usize,
    /// Pause after set-up before the memory sample.
    pub settle: Duration,
}

impl Args {
    pub fn check(&self) -> Result<(), BenchError> {
        for &r in &self.rooms {
            check_rooms(r, MAX_PINGPONG_ROOMS)?;
            check_socket_budget(2 * r)?;
        }
        check_seconds("--duration", self.duration.as_secs_f64())?;
        check_seconds("--warmup", self.warmup.as_secs_f64())?;
        check_seconds("--settle", self.settle.as_secs_f64())?;
        if self.duration.is_zero() {
            return Err(BenchError::Bound("--duration must be above 0".into()));
        }
        if self.runs == 0 || self.runs > 10 {
            return Err(BenchError::Bound("--runs must be 1..=10".into()));
        }
        if self.payload_bytes == 0
            || self.payload_bytes > stelgano_proto::limits::MAX_CIPHERTEXT_BYTES
        {
            return Err(BenchError::Bound("--payload must be 1..=8192 bytes".into()));
        }
        Ok(())
    }
}

/// Measures every room count `runs` times against the relay and, right after each relay run,
/// against the echo server (as echo, then as fanout pairs) when one is given.
pub async fn run(
    relay: &Common,
    echo: Option<&Common>,
    args: &Args,
) -> Result<Vec<Point>, BenchError> {
    args.check()?;
    let mut points = Vec::new();
    for &rooms in &args.rooms {
        for _ in 0..args.runs {
            points.push(measure(relay, Mode::Relay, rooms, args).await?);
            if let Some(echo) = echo {
                points.push(measure(echo, Mode::Echo, rooms, args).await?);
                points.push(measure(echo, Mode::Fanout, rooms, args).await?);
            }
        }
    }
    Ok(points)
}

/// Both sockets of a room and each party's sender hash (to tell its own copy of a message).
struct Sockets {
    ws: [Ws; 2],
    own: [String; 2],
}

async fn open(
    common: &Common,
    mode: Mode,
    rooms: usize,
    errors: &Arc<Errors>,
    join_latency: &Arc<SharedLatency>,
) -> Vec<Sockets> {
    match mode {
        Mode::Relay => super::open_pairs(common, rooms, join_latency, errors)
            .await
            .into_iter()
            .map(|r| Sockets {
                own: [
                    r.id.parties[0].sender_hash.clone(),
                    r.id.parties[1].sender_hash.clone(),
                ],
                ws: [r.a, r.b],
            })
            .collect(),
        Mode::Echo | Mode::Fanout => {
            let pb = bar(common.progress, rooms as u64, "connecting");
            let c = common.clone();
            let errs = errors.clone();
            let pb2 = pb.clone();
            let opened = bounded(rooms, common.concurrency, move |n| {
                let c = c.clone();
                let errs = errs.clone();
                let pb = pb2.clone();
                async move {
                    let path = match mode {
                        Mode::Fanout => format!("{}{n}", crate::echo::PAIR_PREFIX),
                        _ => "/".to_owned(),
                    };
                    let pair = async {
                        let a = connect_room(&c, &path, 2 * n).await?;
                        let b = connect_room(&c, &path, 2 * n + 1).await?;
                        Ok::<_, super::Fail>([a, b])
                    }
                    .await;
                    pb.inc(1);
                    match pair {
                        Ok(ws) => Some(Sockets {
                            ws,
                            own: [String::new(), String::new()],
                        }),
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
    }
}

/// When the exchange runs and which part of it is measured.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.measure_from && t <= self.end
    }
}

/// What every room task shares.
struct Shared {
    frame: Vec<u8>,
    window: Window,
    mode: Mode,
    read_timeout: Duration,
    latency: SharedLatency,
    errors: Arc<Errors>,
    /// All deliveries so far (for the progress bar), window or not.
    live: AtomicU64,
}

/// Runs one room's exchange; returns its deliveries inside the window.
async fn drive(mut s: Sockets, key: usize, shared: Arc<Shared>) -> u64 {
    let w = shared.window;
    let mut scratch: Vec<u8> = Vec::with_capacity(shared.frame.len());
    let mut ex = Exchange::new(shared.mode);
    let mut counted = 0u64;
    tokio::time::sleep_until(w.start.into()).await;
    loop {
        match ex.next() {
            Next::Done => break,
            Next::Send(p) => {
                let now = Instant::now();
                if now >= w.end {
                    ex.stop();
                    continue;
                }
                // Client frames are masked in place, so each send starts from a fresh copy of the
                // pre-encoded frame; the buffer is reused, nothing is allocated.
                scratch.clear();
                scratch.extend_from_slice(&shared.frame);
                let frame = Frame::text(Payload::BorrowedMut(&mut scratch));
                if s.ws[p.index()].write_frame(frame).await.is_err() {
                    shared.errors.add("write");
                    break;
                }
                ex.sent(p, now);
            }
            Next::Read(p) => {
                let read =
                    tokio::time::timeout(shared.read_timeout, s.ws[p.index()].read_frame()).await;
                let at = Instant::now();
                let seen = match read {
                    Err(_) => {
                        shared.errors.add("timeout");
                        break;
                    }
                    Ok(Err(_)) => {
                        shared.errors.add("closed");
                        break;
                    }
                    Ok(Ok(frame)) => match (frame.opcode, shared.mode) {
                        (OpCode::Text, Mode::Echo | Mode::Fanout) => Seen::Echo,
                        (OpCode::Text, Mode::Relay) => classify(&frame.payload, &s.own[p.index()]),
                        (OpCode::Close, _) => {
                            shared.errors.add("closed");
                            break;
                        }
                        _ => Seen::Unreadable,
                    },
                };
                match ex.seen(p, seen, at) {
                    Outcome::Delivered(latency) => {
                        shared.live.fetch_add(1, Ordering::Relaxed);
                        if w.contains(at) {
                            counted += 1;
                            shared.latency.record(key, latency);
                        }
                    }
                    Outcome::Ignored => {}
                    Outcome::Rejected(reason) => shared.errors.add(&reason),
                    Outcome::Unexpected(what) => shared.errors.add(what),
                }
            }
        }
    }
    counted
}

async fn measure(
    common: &Common,
    mode: Mode,
    rooms: usize,
    args: &Args,
) -> Result<Point, BenchError> {
    let pid = common.server_pid;
    let errors = Arc::new(Errors::default());
    let join_latency = Arc::new(SharedLatency::new(16));
    let before = sample(pid);
    let peak = pid.map(|p| PeakWatch::start(p, Duration::from_millis(250)));

    let opened = open(common, mode, rooms, &errors, &join_latency).await;
    settle(args.settle).await;
    let loaded = sample(pid);
    let sockets = 2 * opened.len();

    let message = Message::random(&mut rand::thread_rng(), args.payload_bytes);
    // A spare moment before the start lets every room task reach its starting line.
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + args.warmup;
    let window = Window {
        start,
        measure_from,
        end: measure_from + args.duration,
    };
    let shared = Arc::new(Shared {
        frame: message.send_frame("s"),
        window,
        mode,
        read_timeout: common.read_timeout,
        latency: SharedLatency::new(64),
        errors: errors.clone(),
        live: AtomicU64::new(0),
    });
    let tasks: Vec<_> = opened
        .into_iter()
        .enumerate()
        .map(|(key, s)| tokio::spawn(drive(s, key, shared.clone())))
        .collect();
    let cpu_probe = tokio::spawn(async move {
        let me = Some(std::process::id());
        tokio::time::sleep_until(measure_from.into()).await;
        let a = (sample(pid), sample(me));
        tokio::time::sleep_until(window.end.into()).await;
        let b = (sample(pid), sample(me));
        (a, b)
    });

    let label = mode.label();
    let total = args.warmup + args.duration;
    let pb = bar(
        common.progress,
        total.as_secs().max(1),
        &format!("{label} {rooms}"),
    );
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let elapsed = start.elapsed();
        pb.set_position(elapsed.as_secs().min(total.as_secs()));
        pb.set_message(format!(
            "{:.0} msgs/s",
            shared.live.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64().max(0.001)
        ));
    }
    pb.finish_and_clear();
    let mut delivered = 0;
    for t in tasks {
        // A room task only fails by panicking; its messages are then simply not counted.
        delivered += t.await.unwrap_or(0);
    }
    let ((cpu_a, me_a), (cpu_b, me_b)) = cpu_probe.await.unwrap_or(((None, None), (None, None)));
    let client_cpu_percent = match (me_a, me_b) {
        (Some(a), Some(b)) => Some(report::cpu_percent(
            b.cpu.saturating_sub(a.cpu),
            args.duration,
        )),
        _ => None,
    };
    let peak = peak.map(PeakWatch::stop);

    let server = match (pid, before, loaded, cpu_a, cpu_b) {
        (Some(pid), Some(before), Some(loaded), Some(a), Some(b)) => {
            let cpu = b.cpu.saturating_sub(a.cpu);
            Some(ServerUsage {
                pid,
                rss_before_bytes: before.rss_bytes,
                rss_loaded_bytes: loaded.rss_bytes,
                rss_peak_bytes: peak.unwrap_or(0).max(loaded.rss_bytes),
                cpu_seconds: cpu.as_secs_f64(),
                cpu_percent: report::cpu_percent(cpu, args.duration),
                cpu_us_per_op: report::cpu_us_per_op(cpu, delivered),
                bytes_per_room: report::bytes_per_room(before.rss_bytes, loaded.rss_bytes, rooms),
            })
        }
        _ => None,
    };
    let latency = shared.latency.collect().summary();
    let joins = join_latency.collect();
    Ok(Point {
        scenario: "pingpong".into(),
        target: label.into(),
        rooms,
        sockets,
        payload_bytes: args.payload_bytes,
        seconds: args.duration.as_secs_f64(),
        delivered,
        msgs_per_s: report::rate(delivered, args.duration),
        latency: Some(latency),
        join_latency: (joins.count() > 0).then(|| joins.summary()),
        joins_per_s: None,
        errors: errors.snapshot(),
        server,
        client_cpu_percent,
    })
}
