//! Burned or expired means gone from the disk (PROTOCOL.md §9, ours): rooms are created, paired,
//! guessed at, locked, then burned or left to expire through the real relay; after a clean stop
//! every file of the data directory is scanned for every hash those rooms ever had, in every form
//! a log-structured store or a debug print could leave it: zero hits. Live rooms of the same run
//! are scanned too, as a reminder that the guarantee is "nothing readable", not "nothing there".

mod common;
mod helpers;

use std::path::Path;
use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

/// Every hash of one room, as 32-byte arrays.
struct Hashes(Vec<[u8; 32]>);

fn bytes_of(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// The forms a hash can take in a file: raw bytes, lowercase and uppercase hex, and Rust's
/// decimal debug form of the array (sled's trace lines), with and without spaces.
fn forms(h: &[u8; 32]) -> Vec<Vec<u8>> {
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    let debug = format!("{h:?}");
    vec![
        h.to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        debug.clone().into_bytes(),
        debug.replace(' ', "").into_bytes(),
    ]
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// How many (file, hash, form) hits there are for `hashes` under `dir`.
fn scan(dir: &Path, hashes: &[[u8; 32]]) -> usize {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(!files.is_empty(), "nothing to scan in {}", dir.display());
    let mut hits = 0;
    for f in files {
        let data = std::fs::read(&f).unwrap();
        for h in hashes {
            for form in forms(h) {
                if data.windows(form.len()).any(|w| w == form.as_slice()) {
                    hits += 1;
                    eprintln!("found a hash in {}", f.display());
                }
            }
        }
    }
    hits
}

/// A paired room that saw wrong PINs and a lock, a reset pairing code before pairing, and a
/// message; returns its peers and every hash it had.
async fn busy_room(relay: &TestRelay) -> (Pair, Hashes) {
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let first_code = random_hex();
    let code = random_hex();
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &first_code).await);
    ok(&pa.call("reset_pairing", json!({"otp_hash": code})).await);
    let mut pb = relay.ws(&room).await;
    assert_error(&pb.join_otp(&b, &random_hex()).await, "otp_invalid");
    let r = ok(&pb.join_otp(&b, &code).await);
    let room_id = r["room_id"].as_str().unwrap().to_owned();
    expect_event(&mut pa, "party_paired").await;
    send(&mut pa, body(40)).await;
    expect_event(&mut pb, "new_message").await;
    let mut x = relay.ws(&room).await;
    let mut strangers = Vec::new();
    for _ in 0..3 {
        let w = Who::new();
        let v = x.join(&w).await;
        assert!(["unauthorized", "locked"].contains(&reason(&v)), "{v}");
        strangers.push(w);
    }
    let mut all = vec![
        bytes_of(&room),
        bytes_of(&a.access),
        bytes_of(&a.sender),
        bytes_of(&b.access),
        bytes_of(&b.sender),
        bytes_of(&first_code),
        bytes_of(&code),
    ];
    for w in &strangers {
        all.push(bytes_of(&w.access));
    }
    let pair = Pair {
        room,
        room_id,
        a,
        b,
        pa,
        pb,
    };
    (pair, Hashes(all))
}

#[tokio::test]
async fn burned_and_expired_rooms_leave_no_hash_in_the_data_directory() {
    let mut relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.max_failures = 3;
        c.free_ttl = HOUR;
    })
    .await;
    let mut gone = Vec::new();
    let mut live = Vec::new();
    // Burned by a party.
    for _ in 0..10 {
        let (mut pair, hashes) = busy_room(&relay).await;
        let r = pair.pa.push("expire_room", json!({})).await;
        expect_event(&mut pair.pa, "room_expired").await;
        assert_eq!(pair.pa.json().await, json!({"ref": r, "ok": {}}));
        gone.extend(hashes.0);
    }
    // Expired at their TTL: half with sockets open, half parked with a message.
    let mut open = Vec::new();
    for i in 0..10 {
        let (pair, hashes) = busy_room(&relay).await;
        gone.extend(hashes.0);
        if i % 2 == 0 {
            open.push(pair);
        }
    }
    // Created after the others, so still live once they expire.
    jump(HOUR / 2).await;
    for _ in 0..5 {
        let (pair, hashes) = busy_room(&relay).await;
        live.extend(hashes.0);
        drop(pair);
    }
    jump(HOUR / 2 + Duration::from_secs(5)).await;
    for mut pair in open {
        expect_event(&mut pair.pa, "room_expired").await;
    }
    // The sweeper runs on its own task: wait until only the live rooms are left.
    for _ in 0..300 {
        if relay.relay.as_ref().unwrap().store().room_count() == Some(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(relay.relay.as_ref().unwrap().store().room_count(), Some(5));
    let dir = relay.dir.path().to_path_buf();
    if let Some(r) = relay.relay.take() {
        r.shutdown().await;
    }
    // sled releases its files from a background thread; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(scan(&dir, &gone), 0, "a burned or expired room left a hash");
    // Live records are sealed too: no hash of a live room is readable either.
    assert_eq!(scan(&dir, &live), 0, "a live room's hash is readable");
    // The scan itself works: a file holding the hashes is found.
    let control = dir.join("control");
    std::fs::write(&control, format!("{:?} {}", gone[0], hex_of(&gone[1]))).unwrap();
    assert_eq!(scan(&dir, &gone[..2]), 2, "the scan missed planted hashes");
}

fn hex_of(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
