//! Measures what rooms cost the store: disk bytes and resident memory per room.
//!
//! Run in release mode, as its own process so the RSS figures are the store's:
//!
//! ```text
//! cargo run --release -p stelgano-store --example footprint -- [ROOMS] [CACHE_MIB]
//! ```
//!
//! Defaults: 100000 rooms, the default cache (64 MiB). Prints numbers only, never keys.
//!
//! On the 2-core development machine (Nov 2026), 100000 rooms with both seats taken:
//! about 980 B/room on disk and about 2 KB/room of RSS with the default cache, the same with a
//! 256 MiB cache (so 64 MiB does not bind at this size: sled's cache accounting undercounts what
//! it keeps resident). An 8 MiB cache gives about 950 B/room RSS and 790 B/room on disk, but
//! puts are about 4 times slower. One put plus flush: p50 well under 1 ms.
//!
//! Those figures are of format 1. Format 2 adds 36 bytes to each value (clear expiry, nonce and
//! tag) and an AES-GCM seal per put; they have not been measured again in release mode.

use std::path::Path;
use std::time::Instant;

use stelgano_store::{Guard, RoomKey, RoomKeys, RoomRecord, Seat, Store, StoreConfig, Tier};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let rooms: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let mut config = StoreConfig::default();
    if let Some(mib) = args.next() {
        config.cache_bytes = mib.parse::<u64>()? << 20;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let dir = tempfile::tempdir()?;

    let rss_start = rss_kib()?;
    let store = Store::open(dir.path(), &config)?;
    let rss_opened = rss_kib()?;

    let now_ms = 1_780_000_000_000u64;
    let started = Instant::now();
    for n in 0..rooms {
        store.put(
            &RoomKeys::derive(&room_key(n)),
            &realistic_record(n, now_ms),
        )?;
    }
    let put_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    runtime.block_on(store.flush())?;
    let flush_secs = started.elapsed().as_secs_f64();
    let rss_filled = rss_kib()?;

    // What a durable reply pays in steady state: one record changed, then a flush.
    let mut latencies = Vec::with_capacity(200);
    for n in 0..200u64 {
        let mut rec = realistic_record(n, now_ms);
        rec.guesses.failures += 1;
        let started = Instant::now();
        store.put(&RoomKeys::derive(&room_key(n)), &rec)?;
        runtime.block_on(store.flush())?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    let put_flush_p50 = latencies[latencies.len() / 2];
    let put_flush_p99 = latencies[latencies.len() * 99 / 100];

    let (apparent, allocated) = dir_bytes(dir.path())?;

    // A restart: how long opening a full store takes, and what it costs in memory before any
    // record is read.
    drop(store);
    let started = Instant::now();
    let store = Store::open(dir.path(), &config)?;
    let reopen_secs = started.elapsed().as_secs_f64();
    // The count runs in the background after an open; wait for it.
    let reopened_count = store
        .wait_for_count(std::time::Duration::from_secs(600))
        .ok_or("the room count did not finish")?;
    let started = Instant::now();
    let due = store.due(now_ms + 3_600_000, usize::MAX)?.len();
    let due_secs = started.elapsed().as_secs_f64();

    let per_room = |bytes: u64| bytes as f64 / rooms.max(1) as f64;
    println!("rooms                    {rooms}");
    println!("cache_bytes              {}", config.cache_bytes);
    println!(
        "put                      {put_secs:.2} s ({:.1} us/room)",
        put_secs * 1e6 / rooms.max(1) as f64
    );
    println!("flush after bulk load    {flush_secs:.3} s");
    println!("put+flush, one room      p50 {put_flush_p50:.2} ms, p99 {put_flush_p99:.2} ms");
    println!(
        "disk apparent            {apparent} B ({:.0} B/room)",
        per_room(apparent)
    );
    println!(
        "disk allocated           {allocated} B ({:.0} B/room)",
        per_room(allocated)
    );
    println!("rss at start             {rss_start} KiB");
    println!("rss after open (empty)   {rss_opened} KiB");
    println!(
        "rss after {rooms} puts    {rss_filled} KiB (+{:.0} B/room over the empty store)",
        per_room(rss_filled.saturating_sub(rss_opened) * 1024)
    );
    println!("reopen                   {reopen_secs:.2} s, {reopened_count} rooms counted");
    println!("due within the hour      {due} rooms in {due_secs:.3} s");
    println!("rss at end               {} KiB", rss_kib()?);
    Ok(())
}

/// Spreads keys over the key space the way hashes would, so sled's tree looks like production.
fn room_key(n: u64) -> RoomKey {
    let mut key = [0u8; 32];
    let mut x = n;
    for chunk in key.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    key
}

/// A room as the relay keeps it most of the time: both seats taken, a few failures on record,
/// expiring at a spread of times over the next week.
fn realistic_record(n: u64, now_ms: u64) -> RoomRecord {
    let key = room_key(n);
    let seat = |salt: u8| Seat {
        access_hash: key.map(|b| b ^ salt),
        sender_hash: key.map(|b| b.wrapping_add(salt)),
        failed_since_join: u32::from(salt % 3),
    };
    RoomRecord {
        room_id: key[..16].try_into().unwrap_or_default(),
        created_at_ms: now_ms - (n % 86_400_000),
        ttl_expires_at_ms: now_ms + (n * 7_919) % (7 * 86_400_000),
        tier: match n % 10 {
            0 => Tier::Paid,
            _ => Tier::Free,
        },
        seats: [Some(seat(1)), Some(seat(2))],
        guesses: Guard {
            failures: (n % 4) as u32,
            locked_until_ms: match n % 50 {
                0 => now_ms + 60_000,
                _ => 0,
            },
            level: (n % 2) as u32,
            last_attempt_ms: match n % 4 {
                0 => 0,
                _ => now_ms - 60_000,
            },
        },
        pairing_hash: None,
        pairing: Guard::default(),
    }
}

fn rss_kib() -> Result<u64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmRSS line")?
        .parse()?)
}

/// Apparent (file lengths) and allocated (blocks) bytes under `dir`.
fn dir_bytes(dir: &Path) -> Result<(u64, u64), Error> {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = dir_bytes(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}
