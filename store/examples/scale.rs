//! Bounded store-scale measurements for docs/SCALING.md: fills a store with N sealed records,
//! then reports its size on disk, the time to open it and the process RSS after opening, the
//! latency of reading records not touched since the open, and the cost of sweeping 100,000
//! records (or N, if fewer) that expire in the same minute, the way the relay's sweeper does
//! (`due` in batches of 256, then `remove_if_due` each).
//!
//! `cargo run --release -p stelgano-store --example scale -- fill N DIR` (DIR must not exist),
//! then `… -- measure N DIR` in a fresh process, so that the RSS is that of opening the store,
//! not of filling it.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use stelgano_store::{Guard, RoomKeys, RoomRecord, Seat, Store, StoreConfig, Tier};

const SWEEP: u64 = 100_000;
const BATCH: usize = 256;
/// Far in the future: records that must not be swept.
const LATER_MS: u64 = 4_000_000_000_000;
/// The minute in which the swept records expire.
const MINUTE_MS: u64 = 2_000_000_000_000;

fn room_hash(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_be_bytes()).into()
}

fn record(i: u64, expires: u64) -> RoomRecord {
    let h = room_hash(i);
    RoomRecord {
        room_id: [h[0]; 16],
        created_at_ms: 1_700_000_000_000,
        ttl_expires_at_ms: expires,
        tier: Tier::Free,
        seats: [
            Some(Seat {
                access_hash: h,
                sender_hash: h,
                failed_since_join: 0,
            }),
            Some(Seat {
                access_hash: h,
                sender_hash: h,
                failed_since_join: 0,
            }),
        ],
        guesses: Guard::default(),
        pairing_hash: None,
        pairing: Guard::default(),
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(p) {
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                total += dir_size(&e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: scale fill|measure N DIR";
    let mode = args.next().ok_or(usage)?;
    let n: u64 = args.next().ok_or(usage)?.parse()?;
    let dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let config = StoreConfig::default();
    let sweep = SWEEP.min(n);

    if mode == "fill" {
        if dir.exists() {
            return Err("DIR must not exist".into());
        }
        let t = Instant::now();
        let store = Store::open(&dir, &config)?;
        for i in 0..n {
            // Every (n / sweep)-th record expires within the one minute; the rest much later.
            let expires = if i % (n / sweep) == 0 && i / (n / sweep) < sweep {
                MINUTE_MS + (i * 7919) % 60_000
            } else {
                LATER_MS
            };
            store.put(&RoomKeys::derive(&room_hash(i)), &record(i, expires))?;
        }
        store.flush().await?;
        drop(store);
        std::thread::sleep(Duration::from_millis(200));
        println!(
            "rooms={n} fill_s={:.1} disk_mib={:.1} bytes_per_room={}",
            t.elapsed().as_secs_f64(),
            dir_size(&dir) as f64 / 1_048_576.0,
            dir_size(&dir) / n
        );
        return Ok(());
    }

    let rss_before = rss_kib();
    let t = Instant::now();
    let store = Store::open(&dir, &config)?;
    let open = t.elapsed();
    let rss_open = rss_kib();
    // The room count runs in the background after the open: time it separately.
    let t = Instant::now();
    let counted = store
        .wait_for_count(Duration::from_secs(600))
        .ok_or("the room count did not finish")?;
    let count_time = t.elapsed();
    assert_eq!(counted as u64, n);

    // Reads of records not touched since the open, spread over the whole store.
    let mut reads = Vec::new();
    for k in 0..1000u64 {
        let i = (k * 2_654_435_761) % n;
        let keys = RoomKeys::derive(&room_hash(i));
        let t = Instant::now();
        let rec = store.get(&keys)?;
        reads.push(t.elapsed());
        assert!(rec.is_some());
    }
    reads.sort_unstable();

    // The sweep: every record of that minute is due at its end.
    let now = MINUTE_MS + 60_000;
    let t = Instant::now();
    let mut removed = 0u64;
    let mut longest_batch = Duration::ZERO;
    loop {
        let b = Instant::now();
        let due = store.due(now, BATCH)?;
        for loc in &due {
            if store.remove_if_due(loc, now)? {
                removed += 1;
            }
        }
        longest_batch = longest_batch.max(b.elapsed());
        if due.len() < BATCH {
            break;
        }
    }
    store.flush().await?;
    let sweep_time = t.elapsed();
    assert_eq!(removed, sweep);

    println!(
        "rooms={n} open_ms={} count_ms={} rss_mib_before_open={:.1} rss_mib_after_open={:.1} cold_get_us_p50={} cold_get_us_p99={} sweep_rooms={removed} sweep_s={:.2} sweep_longest_batch_ms={}",
        open.as_millis(),
        count_time.as_millis(),
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        pct(&reads, 0.5).as_micros(),
        pct(&reads, 0.99).as_micros(),
        sweep_time.as_secs_f64(),
        longest_batch.as_millis(),
    );
    Ok(())
}
