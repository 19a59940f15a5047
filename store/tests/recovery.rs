//! A store whose writes fail says so (`is_healthy`, `epoch`) and recovers by itself once they
//! work again, with what was written before intact. Failures are injected (feature
//! `fault-injection`, enabled for this crate's own tests).

mod common;

use common::Fixture;
use stelgano_store::{Store, StoreConfig, StoreError};

#[tokio::test]
async fn failed_writes_mark_unhealthy_and_recover_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let other = store.clone();
    let (a, b) = (Fixture::random(), Fixture::random());
    store.put(&a.keys(), &a.record(1_000)).unwrap();
    store.flush().await.unwrap();
    assert!(store.is_healthy());
    let epoch0 = store.epoch();

    store.set_fail_writes(true);
    assert!(matches!(
        store.put(&b.keys(), &b.record(2_000)),
        Err(StoreError::Injected)
    ));
    assert!(!store.is_healthy());
    assert!(!other.is_healthy(), "every clone sees the failure");
    let epoch1 = store.epoch();
    assert!(epoch1 > epoch0);
    assert!(matches!(store.flush().await, Err(StoreError::Injected)));
    assert!(matches!(
        store.remove(&a.keys().locator()),
        Err(StoreError::Injected)
    ));
    assert!(matches!(
        store.remove_if_due(&a.keys().locator(), u64::MAX),
        Err(StoreError::Injected)
    ));
    assert!(store.epoch() > epoch1, "each failure bumps the epoch");

    // Recovery keeps failing while writes do, and stays unhealthy.
    for _ in 0..3 {
        assert!(matches!(store.recover(), Err(StoreError::Injected)));
        assert!(!store.is_healthy());
    }
    let epoch2 = store.epoch();

    store.set_fail_writes(false);
    let recovering = other.clone();
    tokio::task::spawn_blocking(move || recovering.recover())
        .await
        .unwrap()
        .unwrap();
    assert!(store.is_healthy());
    assert!(other.is_healthy());
    assert!(store.epoch() > epoch2, "the reopen bumps the epoch");

    // What was written before is intact; what failed was not half-written.
    assert_eq!(store.get(&a.keys()).unwrap(), Some(a.record(1_000)));
    assert_eq!(store.get(&b.keys()).unwrap(), None);
    assert_eq!(counted(&store), 1);

    // Writes work again, through every clone.
    other.put(&b.keys(), &b.record(2_000)).unwrap();
    store.flush().await.unwrap();
    assert_eq!(counted(&store), 2);
    assert!(store.remove(&a.keys().locator()).unwrap());
    assert_eq!(store.due(u64::MAX, 10).unwrap(), vec![b.keys().locator()]);
    let epoch3 = store.epoch();
    assert!(store.is_healthy());

    // And they were durable: a restart sees them.
    drop((store, other));
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    assert_eq!(store.get(&a.keys()).unwrap(), None);
    assert!(store.get(&b.keys()).unwrap().is_some());
    assert_eq!(counted(&store), 1);
    assert!(epoch3 > 0);
}

#[test]
fn reads_are_not_injected() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    let a = Fixture::random();
    store.put(&a.keys(), &a.record(7)).unwrap();
    store.set_fail_writes(true);
    assert!(store.get(&a.keys()).unwrap().is_some());
    assert_eq!(store.expires_at(&a.keys().locator()).unwrap(), Some(7));
    assert_eq!(store.next_expiry_ms().unwrap(), Some(7));
    assert!(store.is_healthy(), "reads alone do not count as failures");
}

/// The room count, once the walk that follows an open (or a recovery's reopen) has finished.
fn counted(store: &Store) -> usize {
    store
        .wait_for_count(std::time::Duration::from_secs(10))
        .expect("the room count never finished")
}
