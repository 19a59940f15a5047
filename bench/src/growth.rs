//! growth: what one relay node holds as its store grows (docs/SCALING.md). For each room count it
//! fills a data directory with sealed room records, starts the real `stelgano-relay` binary on it
//! and measures the size on disk, the start time, the RSS, the join latency of rooms not touched
//! since the start, and the sweeper's cost when a large share of the rooms expires in one minute,
//! with the join latency measured again while that sweep runs.
//!
//! The records are written through `stelgano_store` exactly as the relay stores them: room `i` has
//! room hash SHA-256(`i` as 8 big-endian bytes), both seats taken, and access hash = sender hash =
//! the room hash, so a join with that hash rejoins seat 0. The expiring rooms are `0..E`; the
//! untouched rooms the probes join are drawn from `E..N`. A filled directory is kept (with a
//! marker file) and reused by later runs: the expiring records are rewritten every run, so a run
//! always starts from N rooms of which E expire in the same minute.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stelgano_proto::check::to_hex64;
use stelgano_store::{Guard, RoomKeys, RoomRecord, Seat, Store, StoreConfig, Tier};

use crate::error::BenchError;
use crate::identity::{PartyKeys, RoomIdentity};
use crate::plot::{Chart, Series};
use crate::procfs::{self, PeakWatch};
use crate::scenario::{bar, connect_room, join, Common};
use crate::stats::{Errors, LatencySummary, SharedLatency};
use crate::target::{Sources, Target};

/// Largest store one run may build.
pub const MAX_GROWTH_ROOMS: usize = 2_000_000;
/// The marker that says a directory was filled by this command, and with how many rooms.
const MARKER: &str = "bench-growth-filled";
/// Expiry of the rooms that must not expire during a run (year 2096).
const LATER_MS: u64 = 4_000_000_000_000;
/// sled cache while filling: larger than the relay's, only to fill faster.
const FILL_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Puts timed before the expiring rooms' expiry time is chosen.
const CALIBRATION_PUTS: usize = 2_000;
/// Longest wait for the relay to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a sweep may take after the last room fell due before the run gives up waiting.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(600);
/// A sweep whose counter has not moved for this long after the last room fell due is over.
const STALL: Duration = Duration::from_secs(30);
/// How often the relay's expiry counter is read during the sweep.
const METRICS_EVERY: Duration = Duration::from_millis(100);

/// What a growth run does.
#[derive(Debug, Clone)]
pub struct Args {
    pub relay_bin: PathBuf,
    /// Filled stores live in `data_root/rooms-N/`.
    pub data_root: PathBuf,
    pub rooms: Vec<usize>,
    /// Rooms that expire in the same minute: min(this, N / 2).
    pub expiring: usize,
    /// The expiring rooms' expiry times spread evenly over this window.
    pub spread: Duration,
    /// From the end of the writes to the first expiry: covers both starts and the quiet probes.
    pub lead: Duration,
    /// Joins of untouched rooms before the sweep.
    pub samples: usize,
    /// Probe joins per second, in both phases (one at a time, paced).
    pub probe_rate: f64,
    /// Drop the kernel's page cache before the first start (needs root), so it reads from disk.
    pub drop_caches: bool,
    pub read_timeout: Duration,
    pub progress: bool,
}

impl Args {
    pub fn check(&self) -> Result<(), BenchError> {
        for &n in &self.rooms {
            if !(100..=MAX_GROWTH_ROOMS).contains(&n) {
                return Err(BenchError::Bound(format!(
                    "--rooms must be 100..={MAX_GROWTH_ROOMS}, got {n}"
                )));
            }
        }
        if self.expiring == 0 || self.samples == 0 {
            return Err(BenchError::Bound(
                "--expiring and --samples must be at least 1".into(),
            ));
        }
        if !(1.0..=1_000.0).contains(&self.probe_rate) {
            return Err(BenchError::Bound("--probe-rate must be 1..=1000".into()));
        }
        if !self.relay_bin.is_file() {
            return Err(BenchError::Growth(format!(
                "no relay binary at {} (build it: cargo build --release -p stelgano-relay)",
                self.relay_bin.display()
            )));
        }
        Ok(())
    }
}

/// The sweep of the rooms that expire in the same minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepSummary {
    /// Rooms the relay counted as expired by TTL during the run.
    pub expired: u64,
    /// From the first room falling due to the relay's counter reaching `expired`.
    pub seconds: f64,
    /// How long after the last room fell due the sweep finished (0: it kept up).
    pub lag_seconds: f64,
    /// Relay CPU time over the sweep, the probe joins' included.
    pub cpu_seconds: f64,
    /// The probes' share of it: the quiet phase's CPU rate times the sweep's length.
    pub probe_cpu_seconds: f64,
    /// (cpu − probe cpu) / expired.
    pub cpu_us_per_expiry: Option<f64>,
    /// Largest gap between the rooms due by a moment and those expired by it, over the sweep.
    pub max_backlog: u64,
}

/// One room count's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GrowthPoint {
    pub rooms: usize,
    pub expiring: usize,
    /// Wall time to fill the store; `None` when a filled store was reused.
    pub fill_seconds: Option<f64>,
    pub disk_bytes: u64,
    pub disk_bytes_per_room: f64,
    /// Spawn → "listening", with the page cache dropped first (`None` without --drop-caches).
    pub start_cold_seconds: Option<f64>,
    /// Spawn → "listening", files in the page cache.
    pub start_warm_seconds: f64,
    /// Spawn → the relay's count of stored rooms known (it counts in the background, serving).
    pub counted_seconds: f64,
    pub rss_after_start_bytes: u64,
    pub rss_after_probes_bytes: u64,
    pub rss_peak_sweep_bytes: u64,
    /// `join` → reply, rooms untouched since the start, before the sweep.
    pub quiet_join: LatencySummary,
    /// The same while the sweep runs.
    pub sweep_join: LatencySummary,
    /// `true` when the first room fell due before the quiet probes were done (raise --lead).
    pub quiet_cut_short: bool,
    pub sweep: SweepSummary,
    pub errors: BTreeMap<String, u64>,
}

/// The room hash of prefilled room `i`.
pub fn room_hash(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_be_bytes()).into()
}

fn record(i: u64, expires_ms: u64) -> RoomRecord {
    let h = room_hash(i);
    let seat = Seat {
        access_hash: h,
        sender_hash: h,
        failed_since_join: 0,
    };
    RoomRecord {
        room_id: h[..16].try_into().unwrap_or([0; 16]),
        created_at_ms: 1_700_000_000_000,
        ttl_expires_at_ms: expires_ms,
        tier: Tier::Free,
        seats: [Some(seat.clone()), Some(seat)],
        guesses: Guard::default(),
        pairing_hash: None,
        pairing: Guard::default(),
    }
}

/// The identity a probe joins prefilled room `i` with (seat 0; the pairing code is not looked at
/// on a rejoin).
pub fn identity(i: u64) -> RoomIdentity {
    let hex = to_hex64(&room_hash(i));
    let party = PartyKeys {
        access_hash: hex.clone(),
        sender_hash: hex.clone(),
    };
    RoomIdentity {
        room_hash: hex.clone(),
        parties: [party.clone(), party],
        otp_hash: hex,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Bytes of every file under `p`.
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(p) {
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            total += if md.is_dir() {
                dir_size(&e.path())
            } else {
                md.len()
            };
        }
    }
    total
}

/// Makes sure `dir` holds `n` prefilled rooms; returns the fill time if it filled it now.
fn ensure_filled(dir: &Path, n: usize, progress: bool) -> Result<Option<Duration>, BenchError> {
    let marker = dir.join(MARKER);
    if dir.exists() {
        return match std::fs::read_to_string(&marker) {
            Ok(s) if s.trim() == n.to_string() => Ok(None),
            _ => Err(BenchError::Growth(format!(
                "{} exists but was not filled by a growth run of {n} rooms; remove it",
                dir.display()
            ))),
        };
    }
    let t = Instant::now();
    let store = Store::open(
        dir,
        &StoreConfig {
            cache_bytes: FILL_CACHE_BYTES,
        },
    )?;
    let pb = bar(progress, n as u64, "fill");
    let done = AtomicU64::new(0);
    // Two writers on disjoint halves: sled transactions on different keys run side by side.
    std::thread::scope(|s| -> Result<(), BenchError> {
        let halves: Vec<_> = [0..n / 2, n / 2..n]
            .into_iter()
            .map(|range| {
                let (store, pb, done) = (&store, &pb, &done);
                s.spawn(move || -> Result<(), BenchError> {
                    for i in range {
                        let i = i as u64;
                        store.put(&RoomKeys::derive(&room_hash(i)), &record(i, LATER_MS))?;
                        if done.fetch_add(1, Ordering::Relaxed) % 1024 == 0 {
                            pb.set_position(done.load(Ordering::Relaxed));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in halves {
            h.join()
                .map_err(|_| BenchError::Growth("a fill thread panicked".into()))??;
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    flush(&store)?;
    drop(store);
    std::fs::write(&marker, n.to_string())?;
    Ok(Some(t.elapsed()))
}

fn flush(store: &Store) -> Result<(), BenchError> {
    // `Store::flush` is async (it runs sled's flush on tokio's blocking pool); this runs on a
    // blocking thread of the bench's runtime, which may wait on it.
    tokio::runtime::Handle::current().block_on(store.flush())?;
    Ok(())
}

/// Rewrites rooms `0..e` to expire within `spread` of a moment `lead` after the writes end;
/// returns that first expiry time (Unix ms).
fn write_expiring(
    dir: &Path,
    e: usize,
    spread: Duration,
    lead: Duration,
    progress: bool,
) -> Result<u64, BenchError> {
    let store = Store::open(dir, &StoreConfig::default())?;
    let put = |i: usize, at: u64| -> Result<(), BenchError> {
        let i = i as u64;
        store.put(&RoomKeys::derive(&room_hash(i)), &record(i, at))?;
        Ok(())
    };
    // Time some puts to learn how long the rest will take, then choose the minute. The first
    // ones warm sled's cache and are not timed: they are far slower and would inflate the guess.
    let calib = CALIBRATION_PUTS.min(e / 2);
    for i in 0..calib {
        put(i, LATER_MS)?;
    }
    let t = Instant::now();
    for i in calib..2 * calib {
        put(i, LATER_MS)?;
    }
    let per_put = t.elapsed().as_secs_f64() / calib.max(1) as f64;
    // With a margin: the writes slow down as the cache churns.
    let writes = Duration::from_secs_f64(per_put * e as f64 * 1.5);
    let first_due = now_ms() + (writes + lead).as_millis() as u64;
    let spread_ms = spread.as_millis().max(1) as u64;
    let pb = bar(progress, e as u64, "expiring");
    for i in 0..e {
        // Evenly over the window, in an order unrelated to the key order.
        let slot = (i as u64).wrapping_mul(7_919) % e as u64;
        put(i, first_due + slot * spread_ms / e as u64)?;
        if i % 1024 == 0 {
            pb.set_position(i as u64);
        }
    }
    pb.finish_and_clear();
    flush(&store)?;
    if now_ms() + 1_000 > first_due {
        return Err(BenchError::Growth(
            "writing the expiring rooms took longer than planned; raise --lead".into(),
        ));
    }
    Ok(first_due)
}

/// The relay as a child process, stopped (SIGTERM, then SIGKILL) when dropped.
struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    token: String,
}

impl RelayProcess {
    /// Starts the relay on `data_dir`; returns it and the time from spawn to its "listening" line.
    fn start(bin: &Path, data_dir: &Path) -> Result<(RelayProcess, Duration), BenchError> {
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let t = Instant::now();
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--log", "info"])
            // The probes measure the store, not the join time floor or the per-IP limits.
            .args(["--join-floor-ms", "0", "--join-jitter-ms", "0"])
            .args(["--upgrades-per-min", "0", "--room-create-per-min", "0"])
            .args(["--max-sockets-per-ip", "0"])
            .arg("--data-dir")
            .arg(data_dir)
            // Through the environment, so it is not on the command line for `ps` to show.
            .env("STELGANO_METRICS_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| BenchError::Growth("relay has no stderr".into()))?;
        let (tx, rx) = mpsc::channel();
        // Reads the log for the relay's whole life, so a full pipe never blocks it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("open http://").nth(1) {
                    let word = rest.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(word.trim_end_matches(';').parse::<SocketAddr>().ok());
                } else if line.contains("ERROR") || line.contains("cannot start") {
                    eprintln!("relay: {line}");
                }
            }
        });
        let addr = rx.recv_timeout(START_TIMEOUT).ok().flatten();
        let elapsed = t.elapsed();
        match addr {
            Some(addr) => Ok((RelayProcess { child, addr, token }, elapsed)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(BenchError::Growth(
                    "the relay did not say where it listens".into(),
                ))
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and a wait for the graceful shutdown (which flushes the store).
    fn stop(mut self) -> Result<(), BenchError> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(BenchError::Growth(
            "the relay did not stop within 60 s".into(),
        ))
    }

    /// The relay's count of rooms expired by TTL, from its /metrics.
    fn ttl_expired(&self) -> Result<u64, BenchError> {
        parse_ttl_expired(&self.metrics()?)
            .ok_or_else(|| BenchError::Growth("no ttl expiry counter in /metrics".into()))
    }

    /// Waits until the relay's `stelgano_stored_rooms` is a number; returns how long that took.
    fn wait_counted(&self) -> Result<Duration, BenchError> {
        let t = Instant::now();
        while t.elapsed() < START_TIMEOUT {
            let text = self.metrics()?;
            let known = text
                .lines()
                .find_map(|l| l.strip_prefix("stelgano_stored_rooms "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| !v.is_nan());
            if known {
                return Ok(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BenchError::Growth(
            "the relay never finished counting its rooms".into(),
        ))
    }

    /// The text of the relay's /metrics.
    fn metrics(&self) -> Result<String, BenchError> {
        let mut s = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.addr, self.token
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        // Already gone is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `stelgano_rooms_expired_total{cause="ttl"}` from a Prometheus text exposition.
pub fn parse_ttl_expired(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("stelgano_rooms_expired_total{cause=\"ttl\"}"))?;
    let v: f64 = line.split_whitespace().last()?.parse().ok()?;
    Some(v as u64)
}

fn drop_page_cache() -> Result<(), BenchError> {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| {
        BenchError::Growth(format!(
            "--drop-caches: cannot write /proc/sys/vm/drop_caches ({e}); run as root or leave it out"
        ))
    })
}

/// Joins rooms `ids` one at a time at `rate` per second until `stop` says so; records each join's
/// latency into `phase(now)`'s histogram, or drops it when `phase` says `None`.
async fn probe<F>(
    common: &Common,
    ids: &mut impl Iterator<Item = u64>,
    rate: f64,
    errors: &Errors,
    mut phase: F,
) where
    F: FnMut(usize) -> Option<Arc<SharedLatency>>,
{
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut next = tokio::time::Instant::now();
    let mut n = 0usize;
    loop {
        let Some(latency) = phase(n) else { return };
        let Some(i) = ids.next() else { return };
        let id = identity(i);
        match connect_room(common, &id.path(), n).await {
            Ok(mut ws) => {
                if let Err(f) = join(&mut ws, &id, 0, common.read_timeout, &latency, n).await {
                    errors.add(f.reason());
                }
                let _ = ws
                    .write_frame(fastwebsockets::Frame::close(1000, b""))
                    .await;
            }
            Err(f) => errors.add(f.reason()),
        }
        n += 1;
        next += every;
        tokio::time::sleep_until(next).await;
    }
}

/// Measures one room count.
pub async fn measure(args: &Args, n: usize) -> Result<GrowthPoint, BenchError> {
    let dir = args.data_root.join(format!("rooms-{n}"));
    let e = args.expiring.min(n / 2);
    let (d, p) = (dir.clone(), args.progress);
    let fill = tokio::task::spawn_blocking(move || ensure_filled(&d, n, p))
        .await
        .map_err(|_| BenchError::Growth("the fill panicked".into()))??;
    let (d, spread, lead) = (dir.clone(), args.spread, args.lead);
    let first_due = tokio::task::spawn_blocking(move || write_expiring(&d, e, spread, lead, p))
        .await
        .map_err(|_| BenchError::Growth("the expiring writes panicked".into()))??;
    let disk = dir_size(&dir);

    // A first start from disk (if asked), stopped at once, then the start the probes use.
    let mut start_cold = None;
    if args.drop_caches {
        drop_page_cache()?;
        let (bin, d) = (args.relay_bin.clone(), dir.clone());
        let (relay, took) = tokio::task::spawn_blocking(move || RelayProcess::start(&bin, &d))
            .await
            .map_err(|_| BenchError::Growth("start panicked".into()))??;
        start_cold = Some(took);
        tokio::task::spawn_blocking(move || relay.stop())
            .await
            .map_err(|_| BenchError::Growth("stop panicked".into()))??;
    }
    let (bin, d) = (args.relay_bin.clone(), dir.clone());
    let (relay, start_warm) = tokio::task::spawn_blocking(move || RelayProcess::start(&bin, &d))
        .await
        .map_err(|_| BenchError::Growth("start panicked".into()))??;
    let relay = Arc::new(relay);
    let pid = relay.pid();
    let rss_after_start = procfs::sample(pid)?.rss_bytes;
    // The probes start once the count is done, so that the quiet phase's CPU rate (the sweep's
    // baseline) does not include it.
    let r = relay.clone();
    let counted = start_warm
        + tokio::task::spawn_blocking(move || r.wait_counted())
            .await
            .map_err(|_| BenchError::Growth("metrics read panicked".into()))??;

    let target = Target { addr: relay.addr };
    let common = Common {
        sources: Sources::new(&target, 8),
        target,
        concurrency: 1,
        read_timeout: args.read_timeout,
        server_pid: Some(pid),
        progress: false,
        max_errors: 1_000,
    };
    let mut untouched: Vec<u64> = (e as u64..n as u64).collect();
    untouched.shuffle(&mut rand::thread_rng());
    let mut ids = untouched.into_iter();
    let errors = Errors::default();

    // Quiet phase: `samples` joins, ending early if the minute is near. Its CPU rate is the
    // baseline the sweep's CPU is measured against (the probes run in both phases).
    let quiet = Arc::new(SharedLatency::new(1));
    let mut cut_short = false;
    let stop_quiet_ms = first_due.saturating_sub(500);
    let q = quiet.clone();
    let (quiet_cpu0, quiet_t0) = (procfs::sample(pid)?.cpu, Instant::now());
    probe(&common, &mut ids, args.probe_rate, &errors, |k| {
        if k >= args.samples {
            return None;
        }
        if now_ms() >= stop_quiet_ms {
            cut_short = true;
            return None;
        }
        Some(q.clone())
    })
    .await;
    let quiet_cpu_rate = procfs::sample(pid)?
        .cpu
        .saturating_sub(quiet_cpu0)
        .as_secs_f64()
        / quiet_t0.elapsed().as_secs_f64().max(1e-3);
    let rss_after_probes = procfs::sample(pid)?.rss_bytes;

    // Read the counter before the first room falls due, then probe while it climbs.
    let r = relay.clone();
    let base = tokio::task::spawn_blocking(move || r.ttl_expired())
        .await
        .map_err(|_| BenchError::Growth("metrics read panicked".into()))??;
    let wait = first_due.saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let cpu0 = procfs::sample(pid)?.cpu;
    let peak = PeakWatch::start(pid, Duration::from_millis(250));
    let sweeping = Arc::new(SharedLatency::new(1));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (relay, done) = (relay.clone(), done.clone());
        let spread_ms = args.spread.as_millis() as u64;
        tokio::task::spawn_blocking(move || {
            let r = watch_sweep(&relay, base, e as u64, first_due, spread_ms);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let s = sweeping.clone();
    let d2 = done.clone();
    probe(&common, &mut ids, args.probe_rate, &errors, |_| {
        (!d2.load(Ordering::SeqCst)).then(|| s.clone())
    })
    .await;
    // The probes stop early only if the untouched rooms run out: still wait for the sweep.
    let watched = watcher
        .await
        .map_err(|_| BenchError::Growth("the sweep watcher panicked".into()))??;
    let cpu = procfs::sample(pid)?.cpu.saturating_sub(cpu0).as_secs_f64();
    let rss_peak = peak.stop();
    let relay = Arc::try_unwrap(relay)
        .map_err(|_| BenchError::Growth("relay handle still shared".into()))?;
    tokio::task::spawn_blocking(move || relay.stop())
        .await
        .map_err(|_| BenchError::Growth("stop panicked".into()))??;

    let spread_s = args.spread.as_secs_f64();
    Ok(GrowthPoint {
        rooms: n,
        expiring: e,
        fill_seconds: fill.map(|d| d.as_secs_f64()),
        disk_bytes: disk,
        disk_bytes_per_room: disk as f64 / n as f64,
        start_cold_seconds: start_cold.map(|d| d.as_secs_f64()),
        start_warm_seconds: start_warm.as_secs_f64(),
        counted_seconds: counted.as_secs_f64(),
        rss_after_start_bytes: rss_after_start,
        rss_after_probes_bytes: rss_after_probes,
        rss_peak_sweep_bytes: rss_peak,
        quiet_join: quiet.collect().summary(),
        sweep_join: sweeping.collect().summary(),
        quiet_cut_short: cut_short,
        sweep: {
            let extra = (cpu - quiet_cpu_rate * watched.seconds).max(0.0);
            SweepSummary {
                expired: watched.swept,
                seconds: watched.seconds,
                lag_seconds: (watched.seconds - spread_s).max(0.0),
                cpu_seconds: cpu,
                probe_cpu_seconds: quiet_cpu_rate * watched.seconds,
                cpu_us_per_expiry: (watched.swept > 0).then(|| extra * 1e6 / watched.swept as f64),
                max_backlog: watched.max_backlog,
            }
        },
        errors: errors.snapshot(),
    })
}

/// What the sweep watcher saw.
struct Watched {
    swept: u64,
    seconds: f64,
    max_backlog: u64,
}

/// Reads the relay's expiry counter until all `e` rooms are counted, or nothing moved for
/// `STALL` after the last fell due.
fn watch_sweep(
    relay: &RelayProcess,
    base: u64,
    e: u64,
    first_due: u64,
    spread_ms: u64,
) -> Result<Watched, BenchError> {
    let last_due = first_due + spread_ms;
    let give_up = Instant::now() + Duration::from_millis(spread_ms) + SWEEP_TIMEOUT;
    let (mut max_backlog, mut last, mut moved) = (0u64, 0u64, Instant::now());
    loop {
        let swept = relay.ttl_expired()?.saturating_sub(base);
        let now = now_ms();
        let since = now.saturating_sub(first_due);
        let due = (e * since / spread_ms.max(1)).min(e);
        max_backlog = max_backlog.max(due.saturating_sub(swept));
        if swept != last {
            (last, moved) = (swept, Instant::now());
        }
        let stalled = now > last_due && moved.elapsed() > STALL;
        if swept >= e || stalled || Instant::now() > give_up {
            if swept < e {
                eprintln!("growth: the sweep stopped at {swept} of {e} rooms");
            }
            return Ok(Watched {
                swept,
                seconds: since as f64 / 1_000.0,
                max_backlog,
            });
        }
        std::thread::sleep(METRICS_EVERY);
    }
}

/// Runs every room count in turn.
pub async fn run(args: &Args) -> Result<Vec<GrowthPoint>, BenchError> {
    args.check()?;
    std::fs::create_dir_all(&args.data_root)?;
    let mut points = Vec::new();
    for &n in &args.rooms {
        if args.progress {
            eprintln!("growth: {n} rooms");
        }
        points.push(measure(args, n).await?);
    }
    Ok(points)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1_048_576.0
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// The table docs/SCALING.md quotes.
pub fn table(points: &[GrowthPoint]) -> String {
    let mut out = String::new();
    out.push_str(
        "rooms      disk MiB  B/room  start cold/warm s  counted s  RSS start/probes/sweep MiB  \
         join p50/p99 ms quiet | sweeping   sweep: expired in s (lag)  cpu µs/expiry  backlog\n",
    );
    for p in points {
        let cold = p
            .start_cold_seconds
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"));
        out.push_str(&format!(
            "{:<10} {:>8.1} {:>7.0}  {:>8} / {:<6.2}  {:>8.2}  {:>6.1} / {:>6.1} / {:>6.1}      \
             {:>5.2} / {:<6.2} | {:>5.2} / {:<6.2}  {:>7} in {:>5.1} ({:.1})     {:>8.1}  {:>7}{}\n",
            p.rooms,
            mib(p.disk_bytes),
            p.disk_bytes_per_room,
            cold,
            p.start_warm_seconds,
            p.counted_seconds,
            mib(p.rss_after_start_bytes),
            mib(p.rss_after_probes_bytes),
            mib(p.rss_peak_sweep_bytes),
            ms(p.quiet_join.p50_us),
            ms(p.quiet_join.p99_us),
            ms(p.sweep_join.p50_us),
            ms(p.sweep_join.p99_us),
            p.sweep.expired,
            p.sweep.seconds,
            p.sweep.lag_seconds,
            p.sweep.cpu_us_per_expiry.unwrap_or(0.0),
            p.sweep.max_backlog,
            if p.quiet_cut_short {
                "  (quiet phase cut short)"
            } else {
                ""
            },
        ));
        if !p.errors.is_empty() {
            out.push_str(&format!("           errors: {:?}\n", p.errors));
        }
    }
    out
}

fn series(name: &str, points: &[GrowthPoint], f: impl Fn(&GrowthPoint) -> Option<f64>) -> Series {
    Series {
        name: name.to_owned(),
        points: points
            .iter()
            .filter_map(|p| f(p).map(|y| (p.rooms as f64, y)))
            .collect(),
    }
}

/// Charts of every figure against the room count.
pub fn charts(points: &[GrowthPoint]) -> Vec<Chart> {
    vec![
        Chart {
            file_stem: "growth-start".into(),
            title: "Relay start on a store of N rooms".into(),
            y_label: "seconds".into(),
            series: vec![
                series("page cache dropped", points, |p| p.start_cold_seconds),
                series("files cached", points, |p| Some(p.start_warm_seconds)),
                series("files cached, rooms counted", points, |p| {
                    Some(p.counted_seconds)
                }),
            ],
        },
        Chart {
            file_stem: "growth-memory".into(),
            title: "Relay RSS and store size".into(),
            y_label: "MiB".into(),
            series: vec![
                series("RSS after start", points, |p| {
                    Some(mib(p.rss_after_start_bytes))
                }),
                series("RSS peak during sweep", points, |p| {
                    Some(mib(p.rss_peak_sweep_bytes))
                }),
                series("size on disk", points, |p| Some(mib(p.disk_bytes))),
            ],
        },
        Chart {
            file_stem: "growth-join".into(),
            title: "Join of a room untouched since start (no time floor)".into(),
            y_label: "ms".into(),
            series: vec![
                series("p50 quiet", points, |p| Some(ms(p.quiet_join.p50_us))),
                series("p99 quiet", points, |p| Some(ms(p.quiet_join.p99_us))),
                series("p50 during sweep", points, |p| {
                    Some(ms(p.sweep_join.p50_us))
                }),
                series("p99 during sweep", points, |p| {
                    Some(ms(p.sweep_join.p99_us))
                }),
            ],
        },
        Chart {
            file_stem: "growth-sweep".into(),
            title: "Sweeper: relay CPU per expired room".into(),
            y_label: "µs".into(),
            series: vec![series("CPU per expiry", points, |p| {
                p.sweep.cpu_us_per_expiry
            })],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ttl_counter_from_an_exposition() {
        let text = "# HELP x\nstelgano_rooms_expired_total{cause=\"burned\"} 3\n\
                    stelgano_rooms_expired_total{cause=\"ttl\"} 1234\n# EOF\n";
        assert_eq!(parse_ttl_expired(text), Some(1234));
        assert_eq!(parse_ttl_expired("nothing"), None);
    }

    #[test]
    fn probe_identities_rejoin_the_prefilled_seat() {
        let id = identity(7);
        let rec = record(7, LATER_MS);
        let seat = rec.seats[0].as_ref().map(|s| to_hex64(&s.access_hash));
        assert_eq!(seat.as_deref(), Some(id.parties[0].access_hash.as_str()));
        assert!(!format!("{id:?}").contains(&id.room_hash));
    }
}
