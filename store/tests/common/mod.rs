//! Shared helpers of the store's integration tests: room fixtures with random hashes, a
//! format-1 writer, and the residue scan that looks for hashes in a data directory's files.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use bincode::{Decode, Encode};
use stelgano_store::{Guard, RoomKeys, RoomRecord, Seat, Tier};

/// One room's secrets, all random.
#[derive(Clone)]
pub struct Fixture {
    pub room_id: [u8; 16],
    pub room_hash: [u8; 32],
    pub access: [[u8; 32]; 2],
    pub sender: [[u8; 32]; 2],
    pub pairing_hash: [u8; 32],
}

impl Fixture {
    pub fn random() -> Fixture {
        Fixture {
            room_id: rand::random(),
            room_hash: rand::random(),
            access: [rand::random(), rand::random()],
            sender: [rand::random(), rand::random()],
            pairing_hash: rand::random(),
        }
    }

    pub fn keys(&self) -> RoomKeys {
        RoomKeys::derive(&self.room_hash)
    }

    /// Every hash of the room, labelled for failure messages (the label, never the bytes).
    pub fn hashes(&self) -> Vec<(&'static str, [u8; 32])> {
        vec![
            ("room", self.room_hash),
            ("access 0", self.access[0]),
            ("access 1", self.access[1]),
            ("sender 0", self.sender[0]),
            ("sender 1", self.sender[1]),
            ("pairing", self.pairing_hash),
        ]
    }

    /// A record with both seats taken and the pairing hash still set, as the relay could hold
    /// between a join and the pairing code's burn.
    pub fn record(&self, expires_at_ms: u64) -> RoomRecord {
        let seat = |i: usize| Seat {
            access_hash: self.access[i],
            sender_hash: self.sender[i],
            failed_since_join: 0,
        };
        RoomRecord {
            room_id: self.room_id,
            created_at_ms: 1_000,
            ttl_expires_at_ms: expires_at_ms,
            tier: Tier::Free,
            seats: [Some(seat(0)), Some(seat(1))],
            guesses: Guard::default(),
            pairing_hash: Some(self.pairing_hash),
            pairing: Guard::default(),
        }
    }
}

/// A hash found in a file: which room, which hash, in what form, in which file.
#[derive(Debug)]
pub struct Hit {
    pub room: usize,
    pub which: &'static str,
    pub form: &'static str,
    pub file: String,
}

/// Reads every file under `dir` and reports every hash of `rooms` found in it as raw bytes,
/// lowercase hex, or Rust's `Debug` form of the array (with and without spaces).
pub fn scan(dir: &Path, rooms: &[Fixture]) -> Vec<Hit> {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    assert!(
        !files.is_empty(),
        "nothing to scan under the data directory"
    );
    let mut needles = Vec::new();
    for (room, fixture) in rooms.iter().enumerate() {
        for (which, hash) in fixture.hashes() {
            let debug = format!("{hash:?}");
            needles.push((room, which, "raw", hash.to_vec()));
            needles.push((room, which, "hex", hex::encode(hash).into_bytes()));
            needles.push((room, which, "debug", debug.clone().into_bytes()));
            needles.push((
                room,
                which,
                "debug, no spaces",
                debug.replace(' ', "").into_bytes(),
            ));
        }
    }
    // Candidates by their first four bytes, so each file is read once rather than once per
    // needle (hundreds of needles over megabytes of log are too slow in a debug build).
    let mut by_prefix: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, (_, _, _, needle)) in needles.iter().enumerate() {
        by_prefix.entry(&needle[..PREFIX]).or_default().push(i);
    }
    let mut hits = Vec::new();
    for (path, bytes) in &files {
        let mut seen = vec![false; needles.len()];
        for at in 0..bytes.len().saturating_sub(PREFIX - 1) {
            let Some(candidates) = by_prefix.get(&bytes[at..at + PREFIX]) else {
                continue;
            };
            for &i in candidates {
                let needle = &needles[i].3;
                if !seen[i] && bytes[at..].starts_with(needle) {
                    seen[i] = true;
                    let (room, which, form, _) = needles[i];
                    hits.push(Hit {
                        room,
                        which,
                        form,
                        file: path.clone(),
                    });
                }
            }
        }
    }
    hits
}

const PREFIX: usize = 4;

/// Whether `needle` occurs anywhere in any file under `dir`.
pub fn found_anywhere(dir: &Path, needle: &[u8]) -> bool {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    files.iter().any(|(_, bytes)| contains(bytes, needle))
}

fn collect_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            collect_files(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The format-1 record, as release 1 encoded it (its `Guard` had `lockouts`).
#[derive(Encode, Decode, Clone)]
pub struct RoomRecordV1 {
    pub room_id: [u8; 16],
    pub created_at_ms: u64,
    pub ttl_expires_at_ms: u64,
    pub tier: Tier,
    pub seats: [Option<Seat>; 2],
    pub guesses: GuardV1,
    pub pairing_hash: Option<[u8; 32]>,
    pub pairing: GuardV1,
}

#[derive(Encode, Decode, Clone, Copy, Default)]
pub struct GuardV1 {
    pub failures: u32,
    pub locked_until_ms: u64,
    pub lockouts: u32,
}

impl Fixture {
    pub fn record_v1(&self, expires_at_ms: u64) -> RoomRecordV1 {
        let rec = self.record(expires_at_ms);
        RoomRecordV1 {
            room_id: rec.room_id,
            created_at_ms: rec.created_at_ms,
            ttl_expires_at_ms: rec.ttl_expires_at_ms,
            tier: rec.tier,
            seats: rec.seats,
            guesses: GuardV1::default(),
            pairing_hash: rec.pairing_hash,
            pairing: GuardV1::default(),
        }
    }
}

/// A format-1 database written the way release 1 wrote it: sled directly in the data
/// directory, room hash → `[1][bincode record]`, and `expires_at BE ‖ room hash` → empty.
pub struct V1Writer {
    db: sled::Db,
    rooms: sled::Tree,
    expiry: sled::Tree,
}

impl V1Writer {
    pub fn open(dir: &Path) -> V1Writer {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            .open()
            .unwrap();
        let rooms = db.open_tree("rooms").unwrap();
        let expiry = db.open_tree("expiry").unwrap();
        V1Writer { db, rooms, expiry }
    }

    pub fn put(&self, room_hash: &[u8; 32], rec: &RoomRecordV1) {
        let mut value = vec![1u8];
        value.extend(bincode::encode_to_vec(rec, bincode::config::standard()).unwrap());
        self.put_raw(room_hash, &value);
        let mut index = rec.ttl_expires_at_ms.to_be_bytes().to_vec();
        index.extend_from_slice(room_hash);
        self.expiry.insert(index, &[][..]).unwrap();
    }

    pub fn put_raw(&self, key: &[u8], value: &[u8]) {
        self.rooms.insert(key, value).unwrap();
    }

    pub fn remove(&self, room_hash: &[u8; 32], expires_at_ms: u64) {
        self.rooms.remove(room_hash).unwrap();
        let mut index = expires_at_ms.to_be_bytes().to_vec();
        index.extend_from_slice(room_hash);
        self.expiry.remove(index).unwrap();
    }

    /// Flushes and closes. sled lets go of the directory lock a moment later, from a
    /// background thread; `Store::open` waits for that.
    pub fn close(self) {
        self.db.flush().unwrap();
    }
}
