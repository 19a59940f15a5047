//! The [`Store`] handle: one sled database with a room tree and an expiry index kept in step.
//!
//! Two trees live in the database:
//! - `rooms`: room key (32 bytes) → versioned [`RoomRecord`] value.
//! - `expiry`: `ttl_expires_at_ms` as 8 big-endian bytes ‖ room key → empty. Big-endian makes
//!   sled's byte order the time order, so the earliest expiry is the first key and the due rooms
//!   are a prefix of the tree.
//!
//! Every write that touches both trees is one sled transaction, so a crash leaves either the old
//! pair or the new pair on disk, never a record whose index entry is missing or stale.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{IVec, Transactional};

use crate::record::{self, RoomKey, RoomRecord};
use crate::StoreError;

/// How often sled's background thread writes buffered changes out, in ms (sled's own default,
/// set explicitly so it is visible here). Writes that a reply depends on do not wait for it: the
/// relay calls [`Store::flush`] first.
const FLUSH_EVERY_MS: u64 = 500;

const ROOMS_TREE: &str = "rooms";
const EXPIRY_TREE: &str = "expiry";

/// Length of an expiry index key: 8 bytes of time, then the room key.
const INDEX_KEY_LEN: usize = 8 + 32;

/// Tuning for [`Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Upper bound sled aims for with its in-memory page cache, in bytes. Default: 64 MiB
    /// (sled's own default is 1 GiB, far more than a store of small records needs). Records that
    /// fall out of the cache are read back from disk, so this trades memory for read latency.
    pub cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A cheap, cloneable handle to the durable room store.
///
/// The store is a plain map of room records plus the expiry index; it holds no policy. Each
/// room's actor is the single writer of its own record, and the sweeper removes expired ones.
/// All methods are synchronous except [`Store::flush`]: sled serves them from its cache or
/// its log, and they do not wait for the disk.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    rooms: sled::Tree,
    expiry: sled::Tree,
    /// The number of records in `rooms`, kept here because sled can only count by scanning.
    /// Updated after each committed transaction from what that transaction saw, so it stays
    /// exact under concurrent writers.
    count: Arc<AtomicUsize>,
}

impl fmt::Debug for Store {
    // Counts only: the handle must be safe to log, and keys are room hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("rooms", &self.room_count())
            .finish_non_exhaustive()
    }
}

/// How long [`Store::open`] keeps retrying while the database's lock file is held.
///
/// sled 0.34 releases its lock from a background thread after the last handle drops, so a
/// store that was just closed in this process (a restart in a test, say) can look locked for a
/// few milliseconds. A lock still held after this long belongs to someone else.
const OPEN_LOCK_WAIT: Duration = Duration::from_secs(2);
const OPEN_LOCK_POLL: Duration = Duration::from_millis(10);

fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + OPEN_LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(OPEN_LOCK_POLL);
            }
            other => return Ok(other?),
        }
    }
}

/// sled 0.34 reports a held lock only as an `Other` I/O error with this message.
fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("could not acquire lock")
}

/// Why a transaction gave up before committing.
#[derive(Debug)]
enum Abort {
    /// The record being replaced or removed does not decode, so its index entry cannot be
    /// computed from it; the caller looks the entries up and tries again.
    OldRecordCorrupt,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, config: &StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let sled_config = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .mode(sled::Mode::LowSpace);
        let db = open_waiting_for_lock(&sled_config)?;
        let rooms = db.open_tree(ROOMS_TREE)?;
        let expiry = db.open_tree(EXPIRY_TREE)?;
        // One scan at start-up buys an O(1) `room_count` for the life of the process.
        let count = Arc::new(AtomicUsize::new(rooms.len()));
        Ok(Store {
            db,
            rooms,
            expiry,
            count,
        })
    }

    /// The record stored for `key`, if any.
    pub fn get(&self, key: &RoomKey) -> Result<Option<RoomRecord>, StoreError> {
        match self.rooms.get(key)? {
            Some(bytes) => record::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `rec` under `key`, replacing any previous record, and moves the room's expiry
    /// index entry to `rec.ttl_expires_at_ms` in the same transaction.
    ///
    /// A previous record that does not decode is replaced too, and its index entry is found by
    /// a scan of the index (a slow path that only corruption takes).
    pub fn put(&self, key: &RoomKey, rec: &RoomRecord) -> Result<(), StoreError> {
        let value = record::encode(rec)?;
        let new_index = index_key(rec.ttl_expires_at_ms, key);
        let created = match self.put_tx(key, &value, &new_index, None)? {
            Ok(created) => created,
            Err(Abort::OldRecordCorrupt) => {
                let stale = self.index_keys_of(key)?;
                match self.put_tx(key, &value, &new_index, Some(&stale))? {
                    Ok(created) => created,
                    // Unreachable: with a stale list the transaction does not abort.
                    Err(Abort::OldRecordCorrupt) => {
                        return Err(StoreError::Corrupt("room value does not decode"))
                    }
                }
            }
        };
        if created {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the record for `key` and its index entry. Returns whether there was one.
    pub fn remove(&self, key: &RoomKey) -> Result<bool, StoreError> {
        let removed = match self.remove_tx(key, None)? {
            Ok(removed) => removed,
            Err(Abort::OldRecordCorrupt) => {
                let stale = self.index_keys_of(key)?;
                match self.remove_tx(key, Some(&stale))? {
                    Ok(removed) => removed,
                    Err(Abort::OldRecordCorrupt) => {
                        return Err(StoreError::Corrupt("room value does not decode"))
                    }
                }
            }
        };
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Removes the record for `key` only if it is still due at `now_ms`, checking and removing
    /// in one transaction. Returns whether it was removed.
    ///
    /// [`Store::due`] returns a snapshot; between it and a plain [`Store::remove`] the room's
    /// actor may extend the TTL, and a sweeper would then delete a live room. This is the safe
    /// way to act on `due`. A record that does not decode is reported as
    /// [`StoreError::Corrupt`] and left for the caller to [`Store::remove`] if it chooses.
    pub fn remove_if_due(&self, key: &RoomKey, now_ms: u64) -> Result<bool, StoreError> {
        let res = (&self.rooms, &self.expiry).transaction(|(rooms, expiry)| {
            let Some(old) = rooms.get(key)? else {
                return Ok(false);
            };
            let old = record::decode(&old)
                .map_err(|_| ConflictableTransactionError::Abort(Abort::OldRecordCorrupt))?;
            if old.ttl_expires_at_ms > now_ms {
                return Ok(false);
            }
            rooms.remove(&key[..])?;
            expiry.remove(&index_key(old.ttl_expires_at_ms, key)[..])?;
            Ok(true)
        });
        let removed = match split_abort(res)? {
            Ok(removed) => removed,
            Err(Abort::OldRecordCorrupt) => {
                return Err(StoreError::Corrupt("room value does not decode"))
            }
        };
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Whether a record exists for `key` (without decoding it).
    pub fn contains(&self, key: &RoomKey) -> Result<bool, StoreError> {
        Ok(self.rooms.contains_key(key)?)
    }

    /// Writes every change made so far to disk and fsyncs. Once this returns, those changes
    /// survive a crash. sled does the work on its own thread pool, so this does not block the
    /// async runtime.
    ///
    /// Must be called from within a tokio runtime.
    pub async fn flush(&self) -> Result<(), StoreError> {
        // Not sled's `flush_async`: in 0.34 several of those in flight at once can miss their
        // wake-up and hang for good (see `concurrent_flushes_all_complete`). The blocking flush
        // on tokio's blocking pool has no such problem, and concurrent callers still share
        // fsyncs because sled waits for whatever write makes their changes stable.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|_| StoreError::FlushAborted)??;
        Ok(())
    }

    /// The earliest expiry of any stored room, Unix ms; `None` when the store is empty.
    pub fn next_expiry_ms(&self) -> Result<Option<u64>, StoreError> {
        match self.expiry.first()? {
            Some((k, _)) => parse_index_key(&k).map(|(at, _)| Some(at)),
            None => Ok(None),
        }
    }

    /// Up to `limit` rooms whose expiry is at or before `now_ms`, earliest first. Only index
    /// entries up to `now_ms` are read.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<RoomKey>, StoreError> {
        // The greatest possible key for `now_ms` closes the range, so every room expiring at
        // exactly `now_ms` is inside it and nothing later is visited.
        let end = index_key(now_ms, &[0xff; 32]);
        let mut out = Vec::with_capacity(limit.min(1024));
        for k in self.expiry.range(..=end).keys().take(limit) {
            let (_, room) = parse_index_key(&k?)?;
            out.push(room);
        }
        Ok(out)
    }

    /// The number of stored rooms.
    pub fn room_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The put transaction. Returns whether the key was new, or the abort reason when the old
    /// record does not decode and no `stale` index keys were supplied.
    fn put_tx(
        &self,
        key: &RoomKey,
        value: &[u8],
        new_index: &[u8; INDEX_KEY_LEN],
        stale: Option<&[IVec]>,
    ) -> Result<Result<bool, Abort>, StoreError> {
        let res = (&self.rooms, &self.expiry).transaction(|(rooms, expiry)| {
            let old = rooms.insert(&key[..], value)?;
            if let Some(old) = &old {
                drop_old_index(expiry, key, old, stale, Some(new_index))?;
            }
            expiry.insert(&new_index[..], &[][..])?;
            Ok(old.is_none())
        });
        split_abort(res)
    }

    /// The remove transaction. Returns whether a record was removed, or the abort reason when
    /// the old record does not decode and no `stale` index keys were supplied.
    fn remove_tx(
        &self,
        key: &RoomKey,
        stale: Option<&[IVec]>,
    ) -> Result<Result<bool, Abort>, StoreError> {
        let res = (&self.rooms, &self.expiry).transaction(|(rooms, expiry)| {
            let old = rooms.remove(&key[..])?;
            if let Some(old) = &old {
                drop_old_index(expiry, key, old, stale, None)?;
            }
            Ok(old.is_some())
        });
        split_abort(res)
    }

    /// Every index key that names `key`: a full scan of the index, for the corruption path only.
    fn index_keys_of(&self, key: &RoomKey) -> Result<Vec<IVec>, StoreError> {
        let mut found = Vec::new();
        for k in self.expiry.iter().keys() {
            let k = k?;
            if k.len() == INDEX_KEY_LEN && k[8..] == key[..] {
                found.push(k);
            }
        }
        Ok(found)
    }
}

/// Inside a transaction: removes the index entry of the record `old` that is being replaced
/// or removed, unless it equals `keep` (the entry about to be written).
fn drop_old_index(
    expiry: &TransactionalTree,
    key: &RoomKey,
    old: &IVec,
    stale: Option<&[IVec]>,
    keep: Option<&[u8; INDEX_KEY_LEN]>,
) -> Result<(), ConflictableTransactionError<Abort>> {
    let keep = keep.map(|k| &k[..]);
    match record::decode(old) {
        Ok(old) => {
            let old_index = index_key(old.ttl_expires_at_ms, key);
            if keep != Some(&old_index[..]) {
                expiry.remove(&old_index[..])?;
            }
        }
        Err(_) => match stale {
            Some(stale) => {
                for k in stale {
                    if keep != Some(&k[..]) {
                        expiry.remove(k)?;
                    }
                }
            }
            None => return Err(ConflictableTransactionError::Abort(Abort::OldRecordCorrupt)),
        },
    }
    Ok(())
}

/// Separates a transaction's own abort from sled failures.
fn split_abort<T>(res: Result<T, TransactionError<Abort>>) -> Result<Result<T, Abort>, StoreError> {
    match res {
        Ok(v) => Ok(Ok(v)),
        Err(TransactionError::Abort(a)) => Ok(Err(a)),
        Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
    }
}

fn index_key(expires_at_ms: u64, key: &RoomKey) -> [u8; INDEX_KEY_LEN] {
    let mut out = [0u8; INDEX_KEY_LEN];
    out[..8].copy_from_slice(&expires_at_ms.to_be_bytes());
    out[8..].copy_from_slice(key);
    out
}

fn parse_index_key(k: &[u8]) -> Result<(u64, RoomKey), StoreError> {
    let k: &[u8; INDEX_KEY_LEN] = k
        .try_into()
        .map_err(|_| StoreError::Corrupt("expiry index key has the wrong length"))?;
    let (at, room) = k.split_at(8);
    let mut at_bytes = [0u8; 8];
    at_bytes.copy_from_slice(at);
    let mut room_key = [0u8; 32];
    room_key.copy_from_slice(room);
    Ok((u64::from_be_bytes(at_bytes), room_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Guard, Seat, Tier};
    use proptest::prelude::*;

    fn open(dir: &Path) -> Store {
        Store::open(dir, &StoreConfig::default()).unwrap()
    }

    fn key(n: u8) -> RoomKey {
        [n; 32]
    }

    fn rec(expires: u64) -> RoomRecord {
        RoomRecord {
            room_id: [7; 16],
            created_at_ms: 1_000,
            ttl_expires_at_ms: expires,
            tier: Tier::Paid,
            seats: [
                Some(Seat {
                    access_hash: [1; 32],
                    sender_hash: [2; 32],
                    failed_since_join: 1,
                }),
                None,
            ],
            guesses: Guard {
                failures: 2,
                locked_until_ms: 5_000,
                lockouts: 1,
            },
            pairing_hash: Some([3; 32]),
            pairing: Guard::default(),
        }
    }

    /// Every index entry names a stored, decodable record with that expiry, and every record
    /// has exactly one entry; the cached count matches.
    fn assert_consistent(store: &Store) {
        let mut records = Vec::new();
        for item in store.rooms.iter() {
            let (k, v) = item.unwrap();
            let k: RoomKey = k.as_ref().try_into().unwrap();
            records.push(index_key(record::decode(&v).unwrap().ttl_expires_at_ms, &k));
        }
        let index: Vec<[u8; INDEX_KEY_LEN]> = store
            .expiry
            .iter()
            .keys()
            .map(|k| k.unwrap().as_ref().try_into().unwrap())
            .collect();
        records.sort_unstable();
        assert_eq!(records, index);
        assert_eq!(store.room_count(), records.len());
    }

    #[test]
    fn put_get_contains_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(store.get(&key(1)).unwrap(), None);
        assert!(!store.contains(&key(1)).unwrap());
        assert_eq!(store.room_count(), 0);

        store.put(&key(1), &rec(10_000)).unwrap();
        assert_eq!(store.get(&key(1)).unwrap(), Some(rec(10_000)));
        assert!(store.contains(&key(1)).unwrap());
        assert!(!store.contains(&key(2)).unwrap());
        assert_eq!(store.room_count(), 1);

        // Replacing a record does not change the count.
        let mut changed = rec(10_000);
        changed.guesses.failures = 3;
        store.put(&key(1), &changed).unwrap();
        assert_eq!(store.get(&key(1)).unwrap(), Some(changed));
        assert_eq!(store.room_count(), 1);
        assert_consistent(&store);

        assert!(store.remove(&key(1)).unwrap());
        assert!(!store.remove(&key(1)).unwrap());
        assert_eq!(store.get(&key(1)).unwrap(), None);
        assert_eq!(store.room_count(), 0);
        assert_eq!(store.next_expiry_ms().unwrap(), None);
        assert_consistent(&store);
    }

    #[test]
    fn index_follows_expiry_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&key(1), &rec(500)).unwrap();
        store.put(&key(2), &rec(300)).unwrap();
        assert_eq!(store.next_expiry_ms().unwrap(), Some(300));

        // Extending room 2 past room 1 moves its entry; the old one must be gone.
        store.put(&key(2), &rec(900)).unwrap();
        assert_consistent(&store);
        assert_eq!(store.next_expiry_ms().unwrap(), Some(500));
        assert_eq!(store.due(899, 10).unwrap(), vec![key(1)]);

        // Shortening works the same way.
        store.put(&key(1), &rec(100)).unwrap();
        assert_consistent(&store);
        assert_eq!(store.next_expiry_ms().unwrap(), Some(100));

        store.remove(&key(1)).unwrap();
        assert_consistent(&store);
        assert_eq!(store.next_expiry_ms().unwrap(), Some(900));
    }

    #[test]
    fn due_is_ordered_limited_and_inclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Inserted out of order; two rooms share an expiry.
        for (n, at) in [
            (5u8, 50u64),
            (1, 10),
            (4, 40),
            (3, 30),
            (2, 30),
            (9, u64::MAX),
        ] {
            store.put(&key(n), &rec(at)).unwrap();
        }
        assert_eq!(store.due(9, 10).unwrap(), Vec::<RoomKey>::new());
        assert_eq!(store.due(10, 10).unwrap(), vec![key(1)]);
        assert_eq!(
            store.due(40, 10).unwrap(),
            vec![key(1), key(2), key(3), key(4)]
        );
        assert_eq!(store.due(40, 2).unwrap(), vec![key(1), key(2)]);
        assert_eq!(store.due(40, 0).unwrap(), Vec::<RoomKey>::new());
        assert_eq!(store.due(u64::MAX - 1, 10).unwrap().len(), 5);
        assert_eq!(store.due(u64::MAX, 10).unwrap().len(), 6);
    }

    #[test]
    fn reopen_keeps_records_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("data");
        {
            let store = open(&path);
            for n in 0..50u8 {
                store.put(&key(n), &rec(1_000 + u64::from(n))).unwrap();
            }
            store.remove(&key(0)).unwrap();
            store.put(&key(1), &rec(10)).unwrap();
        }
        let store = open(&path);
        assert_eq!(store.room_count(), 49);
        assert_eq!(store.get(&key(0)).unwrap(), None);
        assert_eq!(store.get(&key(1)).unwrap(), Some(rec(10)));
        assert_eq!(store.get(&key(49)).unwrap(), Some(rec(1_049)));
        assert_eq!(store.next_expiry_ms().unwrap(), Some(10));
        assert_eq!(store.due(1_002, 10).unwrap(), vec![key(1), key(2)]);
        assert_consistent(&store);
    }

    #[test]
    fn rapid_reopen_waits_for_the_previous_lock() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..20u8 {
            let store = open(dir.path());
            assert_eq!(store.room_count(), usize::from(n));
            store.put(&key(n), &rec(u64::from(n))).unwrap();
        }
    }

    #[test]
    fn open_fails_while_another_handle_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _held = open(dir.path());
        let started = Instant::now();
        let err = Store::open(dir.path(), &StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::Sled(sled::Error::Io(ref e)) if is_lock_busy(e)));
        assert!(started.elapsed() >= OPEN_LOCK_WAIT);
    }

    #[tokio::test]
    async fn flush_then_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&key(1), &rec(42)).unwrap();
        // The relay awaits this inside tokio tasks, so the future must be Send.
        fn assert_send<T: Send>(t: T) -> T {
            t
        }
        assert_send(store.flush()).await.unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get(&key(1)).unwrap(), Some(rec(42)));
    }

    /// Room actors flush concurrently before durable replies. sled 0.34's own `flush_async`
    /// can lose a wake-up when several are in flight and hang forever; this guards against
    /// that coming back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..32u8 {
            let store = store.clone();
            tasks.spawn(async move {
                for i in 0..20u64 {
                    store.put(&key(t), &rec(i)).unwrap();
                    store.flush().await.unwrap();
                }
            });
        }
        let all = async {
            while let Some(res) = tasks.join_next().await {
                res.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("concurrent flushes hung");
        assert_consistent(&store);
    }

    #[test]
    fn corrupt_value_is_reported_and_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&key(1), &rec(77)).unwrap();
        store.put(&key(2), &rec(88)).unwrap();

        // A value from some future format version.
        let mut future = record::encode(&rec(77)).unwrap();
        future[0] = 2;
        store.rooms.insert(key(1), future).unwrap();
        assert!(matches!(store.get(&key(1)), Err(StoreError::Corrupt(_))));
        // Garbage after a valid version byte.
        store.rooms.insert(key(2), &[1u8, 0xff, 0xff][..]).unwrap();
        assert!(matches!(store.get(&key(2)), Err(StoreError::Corrupt(_))));
        assert!(store.contains(&key(1)).unwrap());

        // Replacing and removing still clean up the index entries the bad values had.
        store.put(&key(1), &rec(99)).unwrap();
        assert_eq!(store.get(&key(1)).unwrap(), Some(rec(99)));
        assert!(store.remove(&key(2)).unwrap());
        assert_eq!(store.room_count(), 1);
        assert_consistent(&store);
    }

    #[test]
    fn remove_if_due_spares_extended_rooms() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&key(1), &rec(10)).unwrap();
        store.put(&key(2), &rec(20)).unwrap();
        let due = store.due(20, 10).unwrap();
        assert_eq!(due, vec![key(1), key(2)]);
        // Room 2's actor extends it after the sweeper read the index.
        store.put(&key(2), &rec(1_000)).unwrap();
        assert!(store.remove_if_due(&key(1), 20).unwrap());
        assert!(!store.remove_if_due(&key(2), 20).unwrap());
        assert!(!store.remove_if_due(&key(3), 20).unwrap());
        assert_eq!(store.get(&key(2)).unwrap(), Some(rec(1_000)));
        assert_eq!(store.room_count(), 1);
        assert_consistent(&store);

        store.rooms.insert(key(2), &[9u8][..]).unwrap();
        assert!(matches!(
            store.remove_if_due(&key(2), u64::MAX),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn corrupt_index_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.expiry.insert([0u8; 3], &[][..]).unwrap();
        assert!(matches!(
            store.next_expiry_ms(),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.due(u64::MAX, 10),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn concurrent_writers_keep_count_and_index_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        let mut k = [t; 32];
                        k[..4].copy_from_slice(&(i % 50).to_be_bytes());
                        if i % 3 == 2 {
                            store.remove(&k).unwrap();
                        } else {
                            store.put(&k, &rec(u64::from(i * 7 % 31))).unwrap();
                        }
                        // The sweeper may remove anything due at the same time.
                        if i % 10 == 0 {
                            for due in store.due(5, 3).unwrap() {
                                store.remove(&due).unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_consistent(&store);
    }

    #[test]
    fn debug_shows_only_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&[0xab; 32], &rec(1)).unwrap();
        assert_eq!(format!("{store:?}"), "Store { rooms: 1, .. }");
    }

    #[test]
    fn config_default_is_64_mib() {
        assert_eq!(StoreConfig::default().cache_bytes, 64 << 20);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Any sequence of puts and removes over a few keys leaves the trees in step and
        /// `due` equal to a model computed from the records.
        #[test]
        fn random_ops_keep_index_in_step(
            ops in proptest::collection::vec((0u8..6, proptest::option::of(0u64..100)), 1..60),
            now in 0u64..100,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            let mut model = std::collections::BTreeMap::new();
            for (k, op) in ops {
                match op {
                    Some(at) => {
                        store.put(&key(k), &rec(at)).unwrap();
                        model.insert(key(k), at);
                    }
                    None => {
                        prop_assert_eq!(store.remove(&key(k)).unwrap(), model.remove(&key(k)).is_some());
                    }
                }
            }
            assert_consistent(&store);
            let mut expected: Vec<(u64, RoomKey)> =
                model.iter().filter(|(_, &at)| at <= now).map(|(k, &at)| (at, *k)).collect();
            expected.sort_unstable();
            let expected: Vec<RoomKey> = expected.into_iter().map(|(_, k)| k).collect();
            prop_assert_eq!(store.due(now, usize::MAX).unwrap(), expected);
            prop_assert_eq!(store.next_expiry_ms().unwrap(), model.values().min().copied());
        }
    }
}
