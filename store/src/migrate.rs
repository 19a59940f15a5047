//! One-way migration from format 1 (records in clear under raw room hashes) to format 2.
//!
//! A format-1 store is a sled database directly in the data directory, with a `rooms` tree of
//! room hash → `[1][bincode RoomRecord v1]`. Its key is the room hash itself, so each record
//! can be sealed under [`RoomKeys::derive`] of its own key. Once every record is in the new
//! database and flushed, the old files are deleted whole: sled's log would otherwise keep the
//! hashes readable for good.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bincode::{Decode, Encode};

use crate::keys::RoomKeys;
use crate::record::{self, Guard, RoomRecord, Seat, Tier};
use crate::store::{open_waiting_for_lock, Inner, OPEN_LOCK_POLL, OPEN_LOCK_WAIT};
use crate::StoreError;

const FORMAT_V1: u8 = 1;
const V1_ROOMS_TREE: &str = "rooms";

/// What a migration from format 1 did, for the relay to log as aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Migration {
    /// Records rewritten sealed into the format-2 database.
    pub migrated: usize,
    /// Records that did not decode (or had a malformed key) and were dropped.
    pub skipped: usize,
}

/// The format-1 record, exactly as release 1 encoded it.
#[derive(Encode, Decode)]
struct RoomRecordV1 {
    room_id: [u8; 16],
    created_at_ms: u64,
    ttl_expires_at_ms: u64,
    tier: Tier,
    seats: [Option<Seat>; 2],
    guesses: GuardV1,
    pairing_hash: Option<[u8; 32]>,
    pairing: GuardV1,
}

#[derive(Encode, Decode)]
struct GuardV1 {
    failures: u32,
    locked_until_ms: u64,
    lockouts: u32,
}

impl GuardV1 {
    /// Format 1 did not record when the last attempt was. Where the guard has any history, the
    /// migration time stands in for it: decay then starts now, which never lowers protection.
    fn upgrade(self, now_ms: u64) -> Guard {
        let active = self.failures > 0 || self.lockouts > 0 || self.locked_until_ms > 0;
        Guard {
            failures: self.failures,
            locked_until_ms: self.locked_until_ms,
            level: self.lockouts,
            last_attempt_ms: if active { now_ms } else { 0 },
        }
    }
}

fn decode_v1(bytes: &[u8], now_ms: u64) -> Option<RoomRecord> {
    let (&version, body) = bytes.split_first()?;
    if version != FORMAT_V1 {
        return None;
    }
    let (v1, used) =
        bincode::decode_from_slice::<RoomRecordV1, _>(body, record::bincode_config()).ok()?;
    if used != body.len() {
        return None;
    }
    Some(RoomRecord {
        room_id: v1.room_id,
        created_at_ms: v1.created_at_ms,
        ttl_expires_at_ms: v1.ttl_expires_at_ms,
        tier: v1.tier,
        seats: v1.seats,
        guesses: v1.guesses.upgrade(now_ms),
        pairing_hash: v1.pairing_hash,
        pairing: v1.pairing.upgrade(now_ms),
    })
}

/// Whether `dir` holds (what is left of) a format-1 database.
pub(crate) fn v1_present(dir: &Path) -> Result<bool, StoreError> {
    Ok(!v1_files(dir)?.is_empty())
}

/// Moves every format-1 record in `dir` into `into`, flushes it, and deletes the format-1 files.
pub(crate) fn migrate_v1(
    dir: &Path,
    into: &Inner,
    cache_bytes: u64,
) -> Result<Migration, StoreError> {
    let mut report = Migration::default();
    // Only a `db` file holds records; a `conf` or snapshot alone is residue of an interrupted
    // deletion, and opening it would just create an empty database to delete again.
    if dir.join("db").is_file() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace);
        let old = open_waiting_for_lock(&config)?;
        let has_rooms = old
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == V1_ROOMS_TREE.as_bytes());
        if has_rooms {
            let rooms = old.open_tree(V1_ROOMS_TREE)?;
            for item in rooms.iter() {
                let (key, value) = item?;
                let room_hash: Option<[u8; 32]> = key.as_ref().try_into().ok();
                match room_hash.and_then(|h| decode_v1(&value, now_ms).map(|r| (h, r))) {
                    Some((room_hash, rec)) => {
                        into.put(&RoomKeys::derive(&room_hash), &rec)?;
                        report.migrated += 1;
                    }
                    None => report.skipped += 1,
                }
            }
        }
        // The new copy must be on disk before the only other copy goes.
        into.db.flush()?;
        drop(old);
        wait_for_release(&dir.join("db"));
    }
    for path in v1_files(dir)? {
        let res = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path, source }),
        }
    }
    Ok(report)
}

/// The format-1 files and directories in `dir`: `conf`, `db`, `blobs/`, `snap.*`.
fn v1_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "conf" || name == "db" || name == "blobs" || name.starts_with("snap.") {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Waits (up to the open timeout) until sled's threads have let go of the old database, so
/// none of them writes a file after the deletion. Deleting anyway after the timeout is still
/// right: a late file is caught by the residue sweep of the next open.
fn wait_for_release(db_file: &Path) {
    use fs2::FileExt;
    let deadline = Instant::now() + OPEN_LOCK_WAIT;
    let Ok(file) = std::fs::File::open(db_file) else {
        return;
    };
    while file.try_lock_exclusive().is_err() && Instant::now() < deadline {
        std::thread::sleep(OPEN_LOCK_POLL);
    }
    // Dropping `file` releases the lock if it was taken.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_value_upgrades_with_level_and_conservative_last_attempt() {
        let v1 = RoomRecordV1 {
            room_id: [1; 16],
            created_at_ms: 10,
            ttl_expires_at_ms: 20,
            tier: Tier::Paid,
            seats: [None, None],
            guesses: GuardV1 {
                failures: 2,
                locked_until_ms: 30,
                lockouts: 3,
            },
            pairing_hash: Some([4; 32]),
            pairing: GuardV1 {
                failures: 0,
                locked_until_ms: 0,
                lockouts: 0,
            },
        };
        let mut bytes = vec![FORMAT_V1];
        bytes.extend(bincode::encode_to_vec(&v1, record::bincode_config()).unwrap());
        let rec = decode_v1(&bytes, 99).unwrap();
        assert_eq!(
            rec.guesses,
            Guard {
                failures: 2,
                locked_until_ms: 30,
                level: 3,
                last_attempt_ms: 99
            }
        );
        assert_eq!(rec.pairing, Guard::default());
        assert_eq!(rec.pairing_hash, Some([4; 32]));
        assert_eq!(rec.ttl_expires_at_ms, 20);

        assert!(decode_v1(&bytes[..bytes.len() - 1], 99).is_none());
        bytes[0] = 2;
        assert!(decode_v1(&bytes, 99).is_none());
        assert!(decode_v1(&[], 99).is_none());
    }
}
