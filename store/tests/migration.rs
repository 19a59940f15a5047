//! Opening a data directory that holds a format-1 database migrates every readable record into
//! format 2 and deletes the format-1 files, so none of their hashes stay readable.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{scan, Fixture, GuardV1, V1Writer};
use stelgano_store::{Guard, Migration, Store, StoreConfig};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn format_1_store_is_migrated_and_its_files_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let live: Vec<Fixture> = (0..12).map(|_| Fixture::random()).collect();
    let burned: Vec<Fixture> = (0..5).map(|_| Fixture::random()).collect();
    let garbage = Fixture::random();

    let writer = V1Writer::open(dir.path());
    let mut expected = Vec::new();
    for (i, room) in live.iter().enumerate() {
        let mut rec = room.record_v1(50_000 + i as u64);
        if i == 0 {
            rec.guesses = GuardV1 {
                failures: 3,
                locked_until_ms: 70_000,
                lockouts: 2,
            };
        }
        writer.put(&room.room_hash, &rec);
        expected.push(rec);
    }
    for room in &burned {
        writer.put(&room.room_hash, &room.record_v1(1));
        writer.remove(&room.room_hash, 1);
    }
    // One value that does not decode and one key that is no room hash: skipped, not fatal.
    writer.put_raw(&garbage.room_hash, &[1, 0xff, 0xff]);
    writer.put_raw(b"short key", &[1]);
    writer.close();
    assert!(dir.path().join("db").is_file());

    let before = now_ms();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let after = now_ms();
    assert_eq!(
        store.migration(),
        Some(Migration {
            migrated: live.len(),
            skipped: 2
        })
    );
    assert_eq!(counted(&store), live.len());

    for (i, (room, v1)) in live.iter().zip(&expected).enumerate() {
        let rec = store.get(&room.keys()).unwrap().expect("migrated record");
        assert_eq!(rec.room_id, v1.room_id);
        assert_eq!(rec.ttl_expires_at_ms, v1.ttl_expires_at_ms);
        assert_eq!(rec.seats, v1.seats);
        assert_eq!(rec.pairing_hash, v1.pairing_hash);
        assert_eq!(rec.pairing, Guard::default());
        if i == 0 {
            assert_eq!(rec.guesses.failures, 3);
            assert_eq!(rec.guesses.locked_until_ms, 70_000);
            assert_eq!(rec.guesses.level, 2);
            // Format 1 had no last-attempt time; decay starts at the migration.
            assert!((before..=after).contains(&rec.guesses.last_attempt_ms));
        } else {
            assert_eq!(rec.guesses, Guard::default());
        }
        assert_eq!(
            store.expires_at(&room.keys().locator()).unwrap(),
            Some(v1.ttl_expires_at_ms)
        );
    }
    for room in &burned {
        assert_eq!(store.get(&room.keys()).unwrap(), None);
    }
    assert_eq!(store.next_expiry_ms().unwrap(), Some(50_000));
    assert_eq!(store.due(u64::MAX, usize::MAX).unwrap().len(), live.len());

    // Nothing of format 1 is left beside the new database.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["store-v2".to_string()]);

    // No hash of any room, migrated, burned before migration, or garbage, is readable.
    drop(store);
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let all: Vec<Fixture> = live
        .iter()
        .chain(&burned)
        .chain(std::iter::once(&garbage))
        .cloned()
        .collect();
    let hits = scan(dir.path(), &all);
    assert!(
        hits.is_empty(),
        "hashes readable after migration: {hits:#?}"
    );

    // A second open has nothing to migrate and still has the records.
    assert_eq!(store.migration(), None);
    assert_eq!(counted(&store), live.len());
    assert!(store.get(&live[5].keys()).unwrap().is_some());
}

#[test]
fn residue_of_an_interrupted_deletion_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    // A `conf` and a snapshot without `db`: what a crash mid-deletion could leave.
    std::fs::write(dir.path().join("conf"), b"segment_size: 524288\n").unwrap();
    std::fs::write(dir.path().join("snap.0000000000001234"), b"x").unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    assert_eq!(store.migration(), Some(Migration::default()));
    assert!(!dir.path().join("conf").exists());
    assert!(!dir.path().join("snap.0000000000001234").exists());
}

/// The room count, once the walk that follows an open (or a recovery's reopen) has finished.
fn counted(store: &Store) -> usize {
    store
        .wait_for_count(std::time::Duration::from_secs(10))
        .expect("the room count never finished")
}
