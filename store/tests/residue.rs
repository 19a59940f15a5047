//! Burned and expired rooms leave nothing readable in the data directory: no room, access,
//! sender or pairing hash in any file, in any of the forms a careless writer could use.

mod common;

use common::{scan, Fixture, V1Writer};
use stelgano_store::{Store, StoreConfig};

const ROOMS: usize = 25;

#[tokio::test]
async fn removed_rooms_leave_no_hash_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rooms: Vec<Fixture> = (0..ROOMS).map(|_| Fixture::random()).collect();
    {
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        for (i, room) in rooms.iter().enumerate() {
            store
                .put(&room.keys(), &room.record(10_000 + i as u64))
                .unwrap();
        }
        store.flush().await.unwrap();
        // Updates: each one is a new sealed value in sled's log, next to the old one.
        for (i, room) in rooms.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            let mut rec = store.get(&room.keys()).unwrap().unwrap();
            rec.guesses.failures += 1;
            rec.seats[1] = None;
            rec.ttl_expires_at_ms = 500 + i as u64;
            store.put(&room.keys(), &rec).unwrap();
            store.flush().await.unwrap();
        }
        assert_eq!(store.room_count(), Some(ROOMS));
        // Burned rooms go by `remove`; the rest expire and the sweeper takes them.
        for room in rooms.iter().skip(ROOMS / 2) {
            assert!(store.remove(&room.keys().locator()).unwrap());
        }
        let due = store.due(u64::MAX, usize::MAX).unwrap();
        assert_eq!(due.len(), ROOMS / 2);
        for loc in due {
            assert!(store.remove_if_due(&loc, u64::MAX).unwrap());
        }
        assert_eq!(store.room_count(), Some(0));
        store.flush().await.unwrap();
    }
    // Let sled's background threads finish whatever they write on close.
    Store::open(dir.path(), &StoreConfig::default()).unwrap();

    let hits = scan(dir.path(), &rooms);
    assert!(hits.is_empty(), "hashes readable on disk: {hits:#?}");
    // The scan looked at real store files: the locators, which are not secret, are there.
    assert!(
        rooms
            .iter()
            .any(|r| common::found_anywhere(dir.path(), r.keys().locator().as_bytes())),
        "the scan found no locator either, so it did not read the store's log"
    );
}

/// The negative control: the same rooms, written the way format 1 did, and removed, leave
/// their hashes readable. Without this the test above could pass by scanning nothing.
#[test]
fn the_scan_finds_hashes_in_a_format_1_store() {
    let dir = tempfile::tempdir().unwrap();
    let rooms: Vec<Fixture> = (0..ROOMS).map(|_| Fixture::random()).collect();
    let writer = V1Writer::open(dir.path());
    for (i, room) in rooms.iter().enumerate() {
        writer.put(&room.room_hash, &room.record_v1(10_000 + i as u64));
    }
    for (i, room) in rooms.iter().enumerate() {
        writer.remove(&room.room_hash, 10_000 + i as u64);
    }
    writer.close();

    let hits = scan(dir.path(), &rooms);
    for (i, room) in rooms.iter().enumerate() {
        for (which, _) in room.hashes() {
            assert!(
                hits.iter()
                    .any(|h| h.room == i && h.which == which && h.form == "raw"),
                "room {i}: {which} hash not found in the format-1 files"
            );
        }
    }
}

/// The scan recognises each form it claims to, wherever in a nested directory it sits.
#[test]
fn the_scan_finds_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let room = Fixture::random();
    let nested = dir.path().join("a").join("b");
    std::fs::create_dir_all(&nested).unwrap();
    let mut text = b"noise ".to_vec();
    text.extend(hex::encode(room.access[0]).bytes());
    text.extend(format!(" {:?} ", room.sender[1]).bytes());
    text.extend(format!("{:?}", room.pairing_hash).replace(' ', "").bytes());
    text.extend_from_slice(&room.room_hash);
    std::fs::write(nested.join("log"), &text).unwrap();
    let mut found: Vec<(&str, &str)> = scan(dir.path(), std::slice::from_ref(&room))
        .iter()
        .map(|h| (h.which, h.form))
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        vec![
            ("access 0", "hex"),
            ("pairing", "debug, no spaces"),
            ("room", "raw"),
            ("sender 1", "debug"),
        ]
    );
}
