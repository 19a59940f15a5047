//! The [`Store`] handle: one sled database of sealed room records with an expiry index kept in
//! step, and the health tracking that lets it recover from write failures.
//!
//! Three trees live in the database (in `<dir>/store-v2/`):
//! - `rooms`: [`Locator`] (32 bytes) → sealed [`RoomRecord`] (see `record`).
//! - `expiry`: `ttl_expires_at_ms` as 8 big-endian bytes ‖ locator → empty. Big-endian makes
//!   sled's byte order the time order, so the earliest expiry is the first key and the due rooms
//!   are a prefix of the tree.
//! - `probe`: one fixed key that [`Store::recover`] writes to prove that writes work again.
//! - `ring`: locator → the room's position on nginx's consistent-hash ring (4 big-endian bytes,
//!   [`RoomKeys::ring_position`]), so that records can be moved between nodes
//!   ([`Store::for_each_sealed`], [`Store::insert_sealed`], [`Store::remove_sealed`]) without
//!   the room hash. Written with the record; a record stored before this tree existed gets its
//!   entry when the room is next opened ([`Store::place`]).
//!
//! Nothing in any tree is a room, access, sender or pairing hash, so nothing sled's log keeps
//! after a removal identifies a room once its hash is forgotten.
//!
//! Every write that touches both trees is one sled transaction, so a crash leaves either the old
//! pair or the new pair on disk, never a record whose index entry is missing or stale.
//!
//! sled 0.34 makes an I/O failure sticky: every later write fails too. So the open database
//! sits behind a lock that [`Store::recover`] can swap for a freshly opened one, for every clone
//! of the handle at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{IVec, Transactional};

use crate::count::RoomCount;
use crate::keys::{Locator, RoomKeys};
use crate::migrate::{self, Migration};
use crate::record::{self, RoomRecord};
use crate::StoreError;

/// How often sled's background thread writes buffered changes out, in ms (sled's own default,
/// set explicitly so it is visible here). Writes that a reply depends on do not wait for it: the
/// relay calls [`Store::flush`] first.
const FLUSH_EVERY_MS: u64 = 500;

/// The format-2 database's directory inside the data directory. A new name rather than the
/// data directory itself, so a format-1 database there can be read while this one is written.
const V2_DIR: &str = "store-v2";

const ROOMS_TREE: &str = "rooms";
const EXPIRY_TREE: &str = "expiry";
const PROBE_TREE: &str = "probe";
const PROBE_KEY: &[u8] = b"probe";
const RING_TREE: &str = "ring";

/// Bound on a sealed value accepted by [`Store::insert_sealed`]: far above any record the relay
/// writes (a few hundred bytes), so a damaged move bundle cannot make the store hold megabytes.
pub const MAX_SEALED_LEN: usize = 16 * 1024;

/// Length of an expiry index key: 8 bytes of time, then the locator.
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
/// The store is a plain map of sealed room records plus the expiry index; it holds no policy.
/// Each room's actor is the single writer of its own record, and the sweeper removes expired
/// ones. All methods are synchronous except [`Store::flush`]: sled serves them from its cache
/// or its log, and they do not wait for the disk.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// What every clone of a [`Store`] shares.
struct Shared {
    /// The open database; `None` only while [`Store::recover`] has closed a failed one and not
    /// yet opened its replacement. The lock is held only to clone or swap the `Arc`, never
    /// while sled works and never across an `.await`.
    current: RwLock<Option<Arc<Inner>>>,
    /// The epoch shifted left by one, with the low bit set while unhealthy. One word, so a
    /// recovery can mark the store healthy only if no failure came in meanwhile (a
    /// compare-and-swap), without a lock on the write path.
    state: AtomicU64,
    /// One recovery at a time: two would race to reopen the same directory.
    recovering: Mutex<()>,
    v2_dir: PathBuf,
    cache_bytes: u64,
    migration: Option<Migration>,
    #[cfg(feature = "fault-injection")]
    fail_writes: AtomicBool,
}

/// One open sled database and its trees.
pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    rooms: sled::Tree,
    expiry: sled::Tree,
    probe: sled::Tree,
    ring: sled::Tree,
    /// The number of records in `rooms`, kept here because sled can only count by scanning:
    /// counted in the background after opening, and updated with each committed transaction
    /// from what that transaction saw, so it stays exact under concurrent writers.
    count: Arc<RoomCount>,
    /// Set once a write through this database failed: sled's error is sticky, so recovery must
    /// replace the database rather than retry on it.
    failed: AtomicBool,
}

impl fmt::Debug for Store {
    // Counts and health only: the handle must be safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rooms = match self.room_count() {
            Some(n) => n.to_string(),
            None => "counting".to_owned(),
        };
        f.debug_struct("Store")
            .field("rooms", &format_args!("{rooms}"))
            .finish_non_exhaustive()
    }
}

/// How long opening keeps retrying while the database's lock file is held.
///
/// sled 0.34 releases its lock from a background thread after the last handle drops, so a
/// store that was just closed in this process (a restart in a test, or a recovery) can look
/// locked for a few milliseconds. A lock still held after this long belongs to someone else.
pub(crate) const OPEN_LOCK_WAIT: Duration = Duration::from_secs(2);
pub(crate) const OPEN_LOCK_POLL: Duration = Duration::from_millis(10);

pub(crate) fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, StoreError> {
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
pub(crate) fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("could not acquire lock")
}

/// Why a transaction gave up before committing.
#[derive(Debug)]
enum Abort {
    /// The record being replaced or removed has no readable header, so its index entry cannot
    /// be computed from it; the caller looks the entries up and tries again.
    OldHeaderCorrupt,
}

const UNHEALTHY: u64 = 1;

/// One stored record as the store holds it: its locator, its ring position (`None` for a
/// record stored before ring positions were kept and not opened since) and its sealed bytes.
/// What a move carries from one node to another; nothing in it reads back to the room hash.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// Where the record lives.
    pub locator: Locator,
    /// Its position on nginx's consistent-hash ring.
    pub ring: Option<u32>,
    /// The sealed value, exactly as stored.
    pub value: Vec<u8>,
}

impl SealedRecord {
    /// A record read back from a move bundle.
    pub fn from_parts(locator: [u8; 32], ring: u32, value: Vec<u8>) -> SealedRecord {
        SealedRecord {
            locator: Locator::from_bytes(locator),
            ring: Some(ring),
            value,
        }
    }

    /// The expiry from the record's clear header, Unix ms.
    pub fn expires_at_ms(&self) -> Result<u64, StoreError> {
        record::header_expiry(&self.value)
    }
}

impl fmt::Debug for SealedRecord {
    // A locator in a log would let anyone holding a room hash find the room there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedRecord")
            .field("len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// What [`Store::insert_sealed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record was stored.
    New,
    /// The very same bytes were already stored: an import run twice.
    AlreadyThere,
}

fn locator_of(k: &[u8]) -> Result<Locator, StoreError> {
    let bytes: [u8; 32] = k
        .try_into()
        .map_err(|_| StoreError::Corrupt("room key has the wrong length"))?;
    Ok(Locator::from_bytes(bytes))
}

impl Store {
    /// Opens (creating if needed) the store in `dir`; the database itself lives in
    /// `dir/store-v2/`. A format-1 database directly in `dir` is migrated into it and then
    /// deleted; [`Store::migration`] tells what that did.
    pub fn open(dir: &Path, config: &StoreConfig) -> Result<Store, StoreError> {
        let v2_dir = dir.join(V2_DIR);
        std::fs::create_dir_all(&v2_dir).map_err(|source| StoreError::Io {
            path: v2_dir.clone(),
            source,
        })?;
        let inner = Inner::open(&v2_dir, config.cache_bytes)?;
        let migration = if migrate::v1_present(dir)? {
            Some(migrate::migrate_v1(dir, &inner, config.cache_bytes)?)
        } else {
            None
        };
        Ok(Store {
            shared: Arc::new(Shared {
                current: RwLock::new(Some(Arc::new(inner))),
                state: AtomicU64::new(0),
                recovering: Mutex::new(()),
                v2_dir,
                cache_bytes: config.cache_bytes,
                migration,
                #[cfg(feature = "fault-injection")]
                fail_writes: AtomicBool::new(false),
            }),
        })
    }

    /// What opening did to a format-1 database found in the data directory; `None` if there
    /// was none. Counts only.
    pub fn migration(&self) -> Option<Migration> {
        self.shared.migration
    }

    /// The record of the room `keys` belongs to, if any. A value that does not open under
    /// `keys` (tampered, truncated, another format) is [`StoreError::Corrupt`].
    pub fn get(&self, keys: &RoomKeys) -> Result<Option<RoomRecord>, StoreError> {
        self.read(|inner| match inner.rooms.get(keys.locator().as_bytes())? {
            Some(bytes) => record::open(keys, &bytes).map(Some),
            None => Ok(None),
        })
    }

    /// Seals `rec` under `keys` and stores it, replacing any previous record, and moves the
    /// room's expiry index entry to `rec.ttl_expires_at_ms` in the same transaction.
    ///
    /// A previous value whose header does not read is replaced too, and its index entry is
    /// found by a scan of the index (a slow path that only corruption takes).
    pub fn put(&self, keys: &RoomKeys, rec: &RoomRecord) -> Result<(), StoreError> {
        self.write(|inner| inner.put(keys, rec))
    }

    /// Removes the record at `loc` and its index entry. Returns whether there was one.
    ///
    /// Needs no seal key: the index entry is found from the value's clear header.
    pub fn remove(&self, loc: &Locator) -> Result<bool, StoreError> {
        self.write(|inner| inner.remove(loc))
    }

    /// Removes the record at `loc` only if it is still due at `now_ms`, checking and removing
    /// in one transaction. Returns whether it was removed.
    ///
    /// [`Store::due`] returns a snapshot; between it and a plain [`Store::remove`] the room's
    /// actor may extend the TTL, and a sweeper would then delete a live room. This is the safe
    /// way to act on `due`. A value whose header does not read is reported as
    /// [`StoreError::Corrupt`] and left for the caller to [`Store::remove`] if it chooses.
    pub fn remove_if_due(&self, loc: &Locator, now_ms: u64) -> Result<bool, StoreError> {
        self.write(|inner| inner.remove_if_due(loc, now_ms))
    }

    /// The expiry of the record at `loc`, Unix ms, from its clear header; `None` if there is no
    /// record. Enough to tell whether a room exists without its seal key.
    pub fn expires_at(&self, loc: &Locator) -> Result<Option<u64>, StoreError> {
        self.read(|inner| match inner.rooms.get(loc.as_bytes())? {
            Some(bytes) => record::header_expiry(&bytes).map(Some),
            None => Ok(None),
        })
    }

    /// Up to `limit` rooms whose expiry is at or before `now_ms`, earliest first. Only index
    /// entries up to `now_ms` are read.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<Locator>, StoreError> {
        self.read(|inner| {
            // The greatest possible key for `now_ms` closes the range, so every room expiring
            // at exactly `now_ms` is inside it and nothing later is visited.
            let end = index_key(now_ms, &Locator::from_bytes([0xff; 32]));
            let mut out = Vec::with_capacity(limit.min(1024));
            for k in inner.expiry.range(..=end).keys().take(limit) {
                let (_, loc) = parse_index_key(&k?)?;
                out.push(loc);
            }
            Ok(out)
        })
    }

    /// The earliest expiry of any stored room, Unix ms; `None` when the store is empty.
    pub fn next_expiry_ms(&self) -> Result<Option<u64>, StoreError> {
        self.read(|inner| match inner.expiry.first()? {
            Some((k, _)) => parse_index_key(&k).map(|(at, _)| Some(at)),
            None => Ok(None),
        })
    }

    /// Gives the record of the room `keys` belongs to its ring entry if it has none (a record
    /// written before the `ring` tree existed). Returns whether it wrote one. The relay calls
    /// this when it opens a room, the only time it holds the room hash of an old record.
    pub fn place(&self, keys: &RoomKeys) -> Result<bool, StoreError> {
        let loc = keys.locator();
        // The common case, a record written by this version, costs one read and no write.
        let placed = self.read(|inner| Ok(inner.ring.contains_key(loc.as_bytes())?))?;
        if placed {
            return Ok(false);
        }
        self.write(|inner| {
            let pos = keys.ring_position().to_be_bytes();
            let res = (&inner.rooms, &inner.ring).transaction(|(rooms, ring)| {
                if rooms.get(loc.as_bytes())?.is_none() || ring.get(loc.as_bytes())?.is_some() {
                    return Ok(false);
                }
                ring.insert(&loc.as_bytes()[..], &pos[..])?;
                Ok(true)
            });
            match split_abort::<bool>(res)? {
                Ok(wrote) => Ok(wrote),
                Err(Abort::OldHeaderCorrupt) => Ok(false),
            }
        })
    }

    /// Calls `f` with every stored record as sealed bytes, with its ring position if it has
    /// one, in locator order. Nothing is opened: this needs no room hash and reads no seat,
    /// lock or TTL beyond the clear header. For moving records between nodes.
    pub fn for_each_sealed<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(SealedRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let inner = self.current().ok_or(StoreError::Unhealthy)?;
        for item in inner.rooms.iter() {
            let (k, v) = item.map_err(StoreError::from)?;
            let locator = locator_of(&k)?;
            let ring = match inner.ring.get(&k).map_err(StoreError::from)? {
                Some(pos) => Some(u32::from_be_bytes(
                    <[u8; 4]>::try_from(pos.as_ref())
                        .map_err(|_| StoreError::Corrupt("ring entry has the wrong length"))?,
                )),
                None => None,
            };
            f(SealedRecord {
                locator,
                ring,
                value: v.to_vec(),
            })?;
        }
        Ok(())
    }

    /// Stores a record moved here from another node: its sealed bytes, its expiry index entry
    /// (from the clear header) and its ring entry, in one transaction. The same bytes already
    /// there is [`Inserted::AlreadyThere`] (a repeated import); a different record under that
    /// locator is refused, as is a record without a ring position or with an unreadable header.
    pub fn insert_sealed(&self, rec: &SealedRecord) -> Result<Inserted, StoreError> {
        let ring_pos = rec.ring.ok_or(StoreError::Move(
            "a record without a ring position cannot be placed",
        ))?;
        if rec.value.len() > MAX_SEALED_LEN {
            return Err(StoreError::Move("sealed record is too large"));
        }
        let at = record::header_expiry(&rec.value)?;
        let loc = rec.locator;
        let index = index_key(at, &loc);
        let inserted = self.write(|inner| {
            inner.count.change(&loc, || {
                let res = (&inner.rooms, &inner.expiry, &inner.ring).transaction(
                    |(rooms, expiry, ring)| {
                        if let Some(old) = rooms.get(loc.as_bytes())? {
                            return Ok(if old.as_ref() == rec.value.as_slice() {
                                Some(Inserted::AlreadyThere)
                            } else {
                                None
                            });
                        }
                        rooms.insert(&loc.as_bytes()[..], rec.value.as_slice())?;
                        expiry.insert(&index[..], &[][..])?;
                        ring.insert(&loc.as_bytes()[..], &ring_pos.to_be_bytes()[..])?;
                        Ok(Some(Inserted::New))
                    },
                );
                // An old header that does not read counts as "a different record".
                let v: Option<Inserted> = split_abort(res)?.unwrap_or_default();
                Ok((v, i8::from(v == Some(Inserted::New))))
            })
        })?;
        match inserted {
            Some(Inserted::New) => Ok(Inserted::New),
            Some(Inserted::AlreadyThere) => Ok(Inserted::AlreadyThere),
            None => Err(StoreError::Move(
                "a different record is already stored for that room",
            )),
        }
    }

    /// Removes a record that was moved to another node, with its index and ring entries, but
    /// only if what is stored is still exactly `rec`'s bytes: a record that changed since it
    /// was exported is refused, so a newer seat or lock is never dropped. Returns false if
    /// there was no record.
    pub fn remove_sealed(&self, rec: &SealedRecord) -> Result<bool, StoreError> {
        let loc = rec.locator;
        let removed = self.write(|inner| {
            inner.count.change(&loc, || {
                let res = (&inner.rooms, &inner.expiry, &inner.ring).transaction(
                    |(rooms, expiry, ring)| {
                        let Some(old) = rooms.get(loc.as_bytes())? else {
                            return Ok(Some(false));
                        };
                        if old.as_ref() != rec.value.as_slice() {
                            return Ok(None);
                        }
                        let at = record::header_expiry(&old).map_err(|_| {
                            ConflictableTransactionError::Abort(Abort::OldHeaderCorrupt)
                        })?;
                        rooms.remove(&loc.as_bytes()[..])?;
                        expiry.remove(&index_key(at, &loc)[..])?;
                        ring.remove(&loc.as_bytes()[..])?;
                        Ok(Some(true))
                    },
                );
                match split_abort(res)? {
                    Ok(v) => Ok((v, -i8::from(v == Some(true)))),
                    Err(Abort::OldHeaderCorrupt) => {
                        Err(StoreError::Corrupt("room value header does not read"))
                    }
                }
            })
        })?;
        match removed {
            Some(true) => Ok(true),
            Some(false) => Ok(false),
            None => Err(StoreError::Move(
                "the stored record changed since it was exported",
            )),
        }
    }

    /// Writes every change made so far to disk and fsyncs. Once this returns, those changes
    /// survive a crash. The work runs on tokio's blocking pool, so this does not block the
    /// async runtime.
    ///
    /// Must be called from within a tokio runtime.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let inner = self.writable()?;
        // Not sled's `flush_async`: in 0.34 several of those in flight at once can miss their
        // wake-up and hang for good (see `concurrent_flushes_all_complete`). The blocking flush
        // on tokio's blocking pool has no such problem, and concurrent callers still share
        // fsyncs because sled waits for whatever write makes their changes stable.
        let flushing = Arc::clone(&inner);
        let res = match tokio::task::spawn_blocking(move || flushing.db.flush()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Sled(e)),
            Err(_) => Err(StoreError::FlushAborted),
        };
        if res.is_err() {
            self.note_failure(Some(&inner));
        }
        res
    }

    /// The number of stored rooms; `None` while the count that follows an open is under way
    /// (about a second per 200,000 rooms, in the background) or while a recovery has no
    /// database open.
    pub fn room_count(&self) -> Option<usize> {
        self.current().and_then(|inner| inner.count.get())
    }

    /// Blocks until [`Store::room_count`] is known, for at most `timeout` (tools and tests that
    /// open a store and want its count; the relay never waits for it).
    pub fn wait_for_count(&self, timeout: Duration) -> Option<usize> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(n) = self.room_count() {
                return Some(n);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// false from the first failed write/flush until `recover` succeeds.
    ///
    /// A sled error on a read counts too: in sled 0.34 it means the database is failing.
    pub fn is_healthy(&self) -> bool {
        self.shared.state.load(Ordering::SeqCst) & UNHEALTHY == 0
    }

    /// Bumped on every failure and every reopen: a caller that cached a record under an older epoch
    /// must re-read it (what is on disk may differ from what it believed).
    pub fn epoch(&self) -> u64 {
        self.shared.state.load(Ordering::SeqCst) >> 1
    }

    /// Blocking (the relay calls it from spawn_blocking about once a second while unhealthy): if the
    /// underlying sled Db has failed, drop it and reopen the same directory (waiting for sled's lock as
    /// open already does), recount rooms, then probe with a real write + flush of a small probe key in a
    /// separate tree; on success mark healthy (and bump epoch if it reopened). Err while it still fails.
    ///
    /// Reopening waits for every operation still holding the failed database to finish; one
    /// that holds on past the lock wait makes this attempt fail, and the next one try again.
    /// A failure that lands while the probe runs leaves the store unhealthy and returns
    /// [`StoreError::Unhealthy`].
    pub fn recover(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self
            .shared
            .recovering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let inner = match self.current() {
            Some(inner) if !inner.failed.load(Ordering::SeqCst) => inner,
            stale => {
                // Close first: sled's directory lock lets only one database be open, and the
                // old one lets go only when its last handle drops.
                *self.write_current() = None;
                drop(stale);
                let fresh = match Inner::open(&self.shared.v2_dir, self.shared.cache_bytes) {
                    Ok(fresh) => Arc::new(fresh),
                    Err(e) => {
                        self.note_failure(None);
                        return Err(e);
                    }
                };
                *self.write_current() = Some(Arc::clone(&fresh));
                self.shared.state.fetch_add(2, Ordering::SeqCst);
                fresh
            }
        };
        let before = self.shared.state.load(Ordering::SeqCst);
        if let Err(e) = self.check_injected().and_then(|()| inner.probe()) {
            self.note_failure(Some(&inner));
            return Err(e);
        }
        match self.shared.state.compare_exchange(
            before,
            before & !UNHEALTHY,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => Ok(()),
            Err(_) => Err(StoreError::Unhealthy),
        }
    }

    /// While `fail` is set, every write (put, remove, remove_if_due, flush, recover) fails with
    /// [`StoreError::Injected`] and counts as a failure of the database, as a failing disk
    /// would; `recover` then reopens the database, as it must after a real failure.
    #[cfg(feature = "fault-injection")]
    pub fn set_fail_writes(&self, fail: bool) {
        self.shared.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Drops the ring entry of the record at `loc`, as a record stored before ring positions
    /// were kept would lack it (feature `fault-injection`, for tests of the move tooling).
    #[cfg(feature = "fault-injection")]
    pub fn forget_ring_position(&self, loc: &Locator) -> Result<(), StoreError> {
        self.write(|inner| {
            inner.ring.remove(loc.as_bytes())?;
            Ok(())
        })
    }

    fn check_injected(&self) -> Result<(), StoreError> {
        #[cfg(feature = "fault-injection")]
        if self.shared.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Injected);
        }
        Ok(())
    }

    fn current(&self) -> Option<Arc<Inner>> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn write_current(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<Inner>>> {
        self.shared
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The open database for a write, or the reason there is none to write to.
    fn writable(&self) -> Result<Arc<Inner>, StoreError> {
        let inner = self.current();
        if let Err(e) = self.check_injected() {
            self.note_failure(inner.as_deref());
            return Err(e);
        }
        inner.ok_or(StoreError::Unhealthy)
    }

    fn write<T>(&self, op: impl FnOnce(&Inner) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let inner = self.writable()?;
        let res = op(&inner);
        if matches!(res, Err(StoreError::Sled(_))) {
            self.note_failure(Some(&inner));
        }
        res
    }

    fn read<T>(&self, op: impl FnOnce(&Inner) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let inner = self.current().ok_or(StoreError::Unhealthy)?;
        let res = op(&inner);
        if matches!(res, Err(StoreError::Sled(_))) {
            self.note_failure(Some(&inner));
        }
        res
    }

    /// Marks the store unhealthy and bumps the epoch; marks `inner` failed so that recovery
    /// replaces it.
    fn note_failure(&self, inner: Option<&Inner>) {
        if let Some(inner) = inner {
            inner.failed.store(true, Ordering::SeqCst);
        }
        // Infallible: the closure always returns Some.
        let _ = self
            .shared
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                Some(((s >> 1).wrapping_add(1) << 1) | UNHEALTHY)
            });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The count's walk holds a handle on the `rooms` tree, which keeps the database open;
        // a recovery that reopens the directory must not wait for a whole walk.
        self.count.abandon();
    }
}

impl Inner {
    fn open(dir: &Path, cache_bytes: u64) -> Result<Inner, StoreError> {
        let sled_config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .mode(sled::Mode::LowSpace);
        let db = open_waiting_for_lock(&sled_config)?;
        let rooms = db.open_tree(ROOMS_TREE)?;
        let expiry = db.open_tree(EXPIRY_TREE)?;
        let probe = db.open_tree(PROBE_TREE)?;
        let ring = db.open_tree(RING_TREE)?;
        // One walk per open buys an O(1) `room_count` for the life of the database; it runs in
        // the background so that opening a large store does not wait for it.
        let count = RoomCount::new();
        count.start_walk(&rooms);
        Ok(Inner {
            db,
            rooms,
            expiry,
            probe,
            ring,
            count,
            failed: AtomicBool::new(false),
        })
    }

    /// A real write and fsync, touching no room.
    fn probe(&self) -> Result<(), StoreError> {
        let n = self
            .probe
            .get(PROBE_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        self.probe
            .insert(PROBE_KEY, &n.wrapping_add(1).to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn put(&self, keys: &RoomKeys, rec: &RoomRecord) -> Result<(), StoreError> {
        let loc = keys.locator();
        let value = record::seal(keys, rec)?;
        let new_index = index_key(rec.ttl_expires_at_ms, &loc);
        self.count.change(&loc, || {
            let created = match self.put_tx(&loc, &value, &new_index, keys.ring_position(), None)? {
                Ok(created) => created,
                Err(Abort::OldHeaderCorrupt) => {
                    let stale = self.index_keys_of(&loc)?;
                    match self.put_tx(
                        &loc,
                        &value,
                        &new_index,
                        keys.ring_position(),
                        Some(&stale),
                    )? {
                        Ok(created) => created,
                        // Unreachable: with a stale list the transaction does not abort.
                        Err(Abort::OldHeaderCorrupt) => {
                            return Err(StoreError::Corrupt("room value header does not read"))
                        }
                    }
                }
            };
            Ok(((), i8::from(created)))
        })
    }

    fn remove(&self, loc: &Locator) -> Result<bool, StoreError> {
        self.count.change(loc, || {
            let removed = match self.remove_tx(loc, None)? {
                Ok(removed) => removed,
                Err(Abort::OldHeaderCorrupt) => {
                    let stale = self.index_keys_of(loc)?;
                    match self.remove_tx(loc, Some(&stale))? {
                        Ok(removed) => removed,
                        Err(Abort::OldHeaderCorrupt) => {
                            return Err(StoreError::Corrupt("room value header does not read"))
                        }
                    }
                }
            };
            Ok((removed, -i8::from(removed)))
        })
    }

    fn remove_if_due(&self, loc: &Locator, now_ms: u64) -> Result<bool, StoreError> {
        self.count.change(loc, || {
            let res =
                (&self.rooms, &self.expiry, &self.ring).transaction(|(rooms, expiry, ring)| {
                    let Some(old) = rooms.get(loc.as_bytes())? else {
                        return Ok(false);
                    };
                    let at = record::header_expiry(&old).map_err(|_| {
                        ConflictableTransactionError::Abort(Abort::OldHeaderCorrupt)
                    })?;
                    if at > now_ms {
                        return Ok(false);
                    }
                    rooms.remove(&loc.as_bytes()[..])?;
                    expiry.remove(&index_key(at, loc)[..])?;
                    ring.remove(&loc.as_bytes()[..])?;
                    Ok(true)
                });
            let removed = match split_abort(res)? {
                Ok(removed) => removed,
                Err(Abort::OldHeaderCorrupt) => {
                    return Err(StoreError::Corrupt("room value header does not read"))
                }
            };
            Ok((removed, -i8::from(removed)))
        })
    }

    /// The put transaction. Returns whether the locator was new, or the abort reason when the
    /// old value's header does not read and no `stale` index keys were supplied.
    fn put_tx(
        &self,
        loc: &Locator,
        value: &[u8],
        new_index: &[u8; INDEX_KEY_LEN],
        ring_pos: u32,
        stale: Option<&[IVec]>,
    ) -> Result<Result<bool, Abort>, StoreError> {
        let res = (&self.rooms, &self.expiry, &self.ring).transaction(|(rooms, expiry, ring)| {
            let old = rooms.insert(&loc.as_bytes()[..], value)?;
            if let Some(old) = &old {
                drop_old_index(expiry, loc, old, stale, Some(new_index))?;
            }
            expiry.insert(&new_index[..], &[][..])?;
            ring.insert(&loc.as_bytes()[..], &ring_pos.to_be_bytes()[..])?;
            Ok(old.is_none())
        });
        split_abort(res)
    }

    /// The remove transaction. Returns whether a record was removed, or the abort reason when
    /// the old value's header does not read and no `stale` index keys were supplied.
    fn remove_tx(
        &self,
        loc: &Locator,
        stale: Option<&[IVec]>,
    ) -> Result<Result<bool, Abort>, StoreError> {
        let res = (&self.rooms, &self.expiry, &self.ring).transaction(|(rooms, expiry, ring)| {
            let old = rooms.remove(&loc.as_bytes()[..])?;
            if let Some(old) = &old {
                drop_old_index(expiry, loc, old, stale, None)?;
            }
            ring.remove(&loc.as_bytes()[..])?;
            Ok(old.is_some())
        });
        split_abort(res)
    }

    /// Every index key that names `loc`: a full scan of the index, for the corruption path only.
    fn index_keys_of(&self, loc: &Locator) -> Result<Vec<IVec>, StoreError> {
        let mut found = Vec::new();
        for k in self.expiry.iter().keys() {
            let k = k?;
            if k.len() == INDEX_KEY_LEN && k[8..] == loc.as_bytes()[..] {
                found.push(k);
            }
        }
        Ok(found)
    }
}

/// Inside a transaction: removes the index entry of the value `old` that is being replaced
/// or removed, unless it equals `keep` (the entry about to be written).
fn drop_old_index(
    expiry: &TransactionalTree,
    loc: &Locator,
    old: &IVec,
    stale: Option<&[IVec]>,
    keep: Option<&[u8; INDEX_KEY_LEN]>,
) -> Result<(), ConflictableTransactionError<Abort>> {
    let keep = keep.map(|k| &k[..]);
    match record::header_expiry(old) {
        Ok(at) => {
            let old_index = index_key(at, loc);
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
            None => return Err(ConflictableTransactionError::Abort(Abort::OldHeaderCorrupt)),
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

fn index_key(expires_at_ms: u64, loc: &Locator) -> [u8; INDEX_KEY_LEN] {
    let mut out = [0u8; INDEX_KEY_LEN];
    out[..8].copy_from_slice(&expires_at_ms.to_be_bytes());
    out[8..].copy_from_slice(loc.as_bytes());
    out
}

fn parse_index_key(k: &[u8]) -> Result<(u64, Locator), StoreError> {
    let k: &[u8; INDEX_KEY_LEN] = k
        .try_into()
        .map_err(|_| StoreError::Corrupt("expiry index key has the wrong length"))?;
    let (at, loc) = k.split_at(8);
    let mut at_bytes = [0u8; 8];
    at_bytes.copy_from_slice(at);
    let mut loc_bytes = [0u8; 32];
    loc_bytes.copy_from_slice(loc);
    Ok((u64::from_be_bytes(at_bytes), Locator::from_bytes(loc_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The room count, once the walk that follows an open has finished.
    fn counted(store: &Store) -> usize {
        store
            .wait_for_count(Duration::from_secs(10))
            .expect("the room count never finished")
    }

    use crate::record::{Guard, Seat, Tier};
    use proptest::prelude::*;

    fn open(dir: &Path) -> Store {
        Store::open(dir, &StoreConfig::default()).unwrap()
    }

    fn keys(n: u8) -> RoomKeys {
        RoomKeys::derive(&[n; 32])
    }

    fn loc(n: u8) -> Locator {
        keys(n).locator()
    }

    fn inner(store: &Store) -> Arc<Inner> {
        store.current().unwrap()
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
                level: 1,
                last_attempt_ms: 4_000,
            },
            pairing_hash: Some([3; 32]),
            pairing: Guard::default(),
        }
    }

    /// Every index entry names a stored record with that expiry in its header, and every record
    /// has exactly one entry; the cached count matches.
    fn assert_consistent(store: &Store) {
        let inner = inner(store);
        let mut records = Vec::new();
        for item in inner.rooms.iter() {
            let (k, v) = item.unwrap();
            let loc = Locator::from_bytes(k.as_ref().try_into().unwrap());
            records.push(index_key(record::header_expiry(&v).unwrap(), &loc));
        }
        let index: Vec<[u8; INDEX_KEY_LEN]> = inner
            .expiry
            .iter()
            .keys()
            .map(|k| k.unwrap().as_ref().try_into().unwrap())
            .collect();
        records.sort_unstable();
        assert_eq!(records, index);
        assert_eq!(counted(store), records.len());
        // Every ring entry names a stored record (records written by `put` all have one).
        for k in inner.ring.iter().keys() {
            assert!(inner.rooms.contains_key(k.unwrap()).unwrap());
        }
    }

    fn ring_of(store: &Store, n: u8) -> Option<u32> {
        inner(store)
            .ring
            .get(loc(n).as_bytes())
            .unwrap()
            .map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap()))
    }

    fn sealed(store: &Store) -> Vec<SealedRecord> {
        let mut out = Vec::new();
        store
            .for_each_sealed(|r| {
                out.push(r);
                Ok::<(), StoreError>(())
            })
            .unwrap();
        out
    }

    #[test]
    fn ring_entries_follow_put_remove_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(10)).unwrap();
        store.put(&keys(2), &rec(20)).unwrap();
        assert_eq!(ring_of(&store, 1), Some(keys(1).ring_position()));
        store.remove(&loc(1)).unwrap();
        assert_eq!(ring_of(&store, 1), None);
        assert!(store.remove_if_due(&loc(2), 20).unwrap());
        assert_eq!(ring_of(&store, 2), None);
        assert_eq!(inner(&store).ring.len(), 0);
    }

    #[test]
    fn place_fills_a_missing_ring_entry_only_for_a_stored_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert!(!store.place(&keys(1)).unwrap());
        assert_eq!(ring_of(&store, 1), None);
        store.put(&keys(1), &rec(10)).unwrap();
        // A record from before the ring tree: no entry.
        inner(&store).ring.remove(loc(1).as_bytes()).unwrap();
        assert_eq!(sealed(&store)[0].ring, None);
        assert!(store.place(&keys(1)).unwrap());
        assert!(!store.place(&keys(1)).unwrap());
        assert_eq!(sealed(&store)[0].ring, Some(keys(1).ring_position()));
    }

    #[test]
    fn a_sealed_record_moves_with_its_index_and_ring_and_still_opens() {
        let from_dir = tempfile::tempdir().unwrap();
        let to_dir = tempfile::tempdir().unwrap();
        let from = open(from_dir.path());
        let to = open(to_dir.path());
        from.put(&keys(1), &rec(500)).unwrap();
        from.put(&keys(2), &rec(300)).unwrap();
        let all = sealed(&from);
        assert_eq!(all.len(), 2);
        let moving = all.iter().find(|r| r.locator == loc(2)).unwrap().clone();
        assert_eq!(moving.expires_at_ms().unwrap(), 300);
        assert_eq!(to.insert_sealed(&moving).unwrap(), Inserted::New);
        assert_eq!(to.insert_sealed(&moving).unwrap(), Inserted::AlreadyThere);
        assert_eq!(to.get(&keys(2)).unwrap(), Some(rec(300)));
        assert_eq!(to.next_expiry_ms().unwrap(), Some(300));
        assert_eq!(ring_of(&to, 2), Some(keys(2).ring_position()));
        assert_eq!(counted(&to), 1);
        assert_consistent(&to);

        assert!(from.remove_sealed(&moving).unwrap());
        assert!(!from.remove_sealed(&moving).unwrap());
        assert_eq!(from.get(&keys(2)).unwrap(), None);
        assert_eq!(counted(&from), 1);
        assert_consistent(&from);
    }

    #[test]
    fn moves_refuse_conflicts_changes_and_unplaced_records() {
        let a_dir = tempfile::tempdir().unwrap();
        let b_dir = tempfile::tempdir().unwrap();
        let a = open(a_dir.path());
        let b = open(b_dir.path());
        a.put(&keys(1), &rec(500)).unwrap();
        b.put(&keys(1), &rec(600)).unwrap();
        let exported = sealed(&a).remove(0);
        // Another record for the same room on the target is never overwritten.
        assert!(matches!(
            b.insert_sealed(&exported),
            Err(StoreError::Move(_))
        ));
        assert_eq!(b.get(&keys(1)).unwrap(), Some(rec(600)));
        // A record that changed after export is not dropped.
        a.put(&keys(1), &rec(700)).unwrap();
        assert!(matches!(
            a.remove_sealed(&exported),
            Err(StoreError::Move(_))
        ));
        assert_eq!(a.get(&keys(1)).unwrap(), Some(rec(700)));
        // Without a ring position a record cannot be placed anywhere.
        let unplaced = SealedRecord {
            ring: None,
            ..exported.clone()
        };
        assert!(matches!(
            b.insert_sealed(&unplaced),
            Err(StoreError::Move(_))
        ));
        let huge = SealedRecord {
            value: vec![2; MAX_SEALED_LEN + 1],
            ..exported
        };
        assert!(matches!(b.insert_sealed(&huge), Err(StoreError::Move(_))));
        assert_consistent(&a);
        assert_consistent(&b);
    }

    #[test]
    fn put_get_expires_at_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(store.get(&keys(1)).unwrap(), None);
        assert_eq!(store.expires_at(&loc(1)).unwrap(), None);
        assert_eq!(counted(&store), 0);

        store.put(&keys(1), &rec(10_000)).unwrap();
        assert_eq!(store.get(&keys(1)).unwrap(), Some(rec(10_000)));
        assert_eq!(store.expires_at(&loc(1)).unwrap(), Some(10_000));
        assert_eq!(store.expires_at(&loc(2)).unwrap(), None);
        assert_eq!(counted(&store), 1);

        // Replacing a record does not change the count.
        let mut changed = rec(10_000);
        changed.guesses.failures = 3;
        store.put(&keys(1), &changed).unwrap();
        assert_eq!(store.get(&keys(1)).unwrap(), Some(changed));
        assert_eq!(counted(&store), 1);
        assert_consistent(&store);

        assert!(store.remove(&loc(1)).unwrap());
        assert!(!store.remove(&loc(1)).unwrap());
        assert_eq!(store.get(&keys(1)).unwrap(), None);
        assert_eq!(counted(&store), 0);
        assert_eq!(store.next_expiry_ms().unwrap(), None);
        assert_consistent(&store);
        assert!(store.is_healthy());
        assert_eq!(store.epoch(), 0);
    }

    #[test]
    fn database_lives_in_store_v2_and_keys_are_locators() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(5)).unwrap();
        assert!(dir.path().join("store-v2").join("db").is_file());
        assert!(!dir.path().join("db").exists());
        let inner = inner(&store);
        let stored: Vec<IVec> = inner.rooms.iter().keys().map(|k| k.unwrap()).collect();
        assert_eq!(stored, vec![IVec::from(&loc(1).as_bytes()[..])]);
        assert!(store.migration().is_none());
    }

    #[test]
    fn a_value_moved_to_another_locator_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(5)).unwrap();
        let inner = inner(&store);
        let value = inner.rooms.get(loc(1).as_bytes()).unwrap().unwrap();
        inner.rooms.insert(loc(2).as_bytes(), value).unwrap();
        // The locator is bound into the tag, so room 2's keys cannot open room 1's value even
        // if they could decrypt it; the original stays readable where it belongs.
        assert!(matches!(store.get(&keys(2)), Err(StoreError::Corrupt(_))));
        assert!(store.get(&keys(1)).unwrap().is_some());
    }

    #[test]
    fn index_follows_expiry_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(500)).unwrap();
        store.put(&keys(2), &rec(300)).unwrap();
        assert_eq!(store.next_expiry_ms().unwrap(), Some(300));

        // Extending room 2 past room 1 moves its entry; the old one must be gone.
        store.put(&keys(2), &rec(900)).unwrap();
        assert_consistent(&store);
        assert_eq!(store.next_expiry_ms().unwrap(), Some(500));
        assert_eq!(store.due(899, 10).unwrap(), vec![loc(1)]);

        // Shortening works the same way.
        store.put(&keys(1), &rec(100)).unwrap();
        assert_consistent(&store);
        assert_eq!(store.next_expiry_ms().unwrap(), Some(100));

        store.remove(&loc(1)).unwrap();
        assert_consistent(&store);
        assert_eq!(store.next_expiry_ms().unwrap(), Some(900));
    }

    #[test]
    fn due_is_ordered_limited_and_inclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Inserted out of order; two rooms share an expiry, so their order is the locators'.
        for (n, at) in [
            (5u8, 50u64),
            (1, 10),
            (4, 40),
            (3, 30),
            (2, 30),
            (9, u64::MAX),
        ] {
            store.put(&keys(n), &rec(at)).unwrap();
        }
        let mut at_30 = [loc(2), loc(3)];
        at_30.sort_unstable();
        assert_eq!(store.due(9, 10).unwrap(), Vec::<Locator>::new());
        assert_eq!(store.due(10, 10).unwrap(), vec![loc(1)]);
        assert_eq!(
            store.due(40, 10).unwrap(),
            vec![loc(1), at_30[0], at_30[1], loc(4)]
        );
        assert_eq!(store.due(40, 2).unwrap(), vec![loc(1), at_30[0]]);
        assert_eq!(store.due(40, 0).unwrap(), Vec::<Locator>::new());
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
                store.put(&keys(n), &rec(1_000 + u64::from(n))).unwrap();
            }
            store.remove(&loc(0)).unwrap();
            store.put(&keys(1), &rec(10)).unwrap();
        }
        let store = open(&path);
        assert_eq!(counted(&store), 49);
        assert_eq!(store.get(&keys(0)).unwrap(), None);
        assert_eq!(store.get(&keys(1)).unwrap(), Some(rec(10)));
        assert_eq!(store.get(&keys(49)).unwrap(), Some(rec(1_049)));
        assert_eq!(store.next_expiry_ms().unwrap(), Some(10));
        assert_eq!(store.due(1_002, 10).unwrap(), vec![loc(1), loc(2)]);
        assert_consistent(&store);
    }

    #[test]
    fn rapid_reopen_waits_for_the_previous_lock() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..20u8 {
            let store = open(dir.path());
            assert_eq!(counted(&store), usize::from(n));
            store.put(&keys(n), &rec(u64::from(n))).unwrap();
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

    #[test]
    fn recover_on_a_healthy_store_probes_without_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(42)).unwrap();
        let before = inner(&store);
        store.recover().unwrap();
        store.recover().unwrap();
        assert!(Arc::ptr_eq(&before, &inner(&store)));
        assert!(store.is_healthy());
        assert_eq!(store.epoch(), 0);
        assert_eq!(store.get(&keys(1)).unwrap(), Some(rec(42)));
        // The probe touches no room.
        assert_eq!(counted(&store), 1);
        assert_consistent(&store);
    }

    #[test]
    fn recover_reopens_a_failed_database_for_every_clone() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let other = store.clone();
        store.put(&keys(1), &rec(42)).unwrap();
        let before = inner(&store);
        // What a sled error on a write does, without a failing disk.
        store.note_failure(Some(&before));
        assert!(!other.is_healthy());
        assert_eq!(other.epoch(), 1);
        drop(before);
        store.recover().unwrap();
        assert!(other.is_healthy());
        assert_eq!(other.epoch(), 2);
        assert_eq!(other.get(&keys(1)).unwrap(), Some(rec(42)));
        assert_eq!(counted(&other), 1);
        other.put(&keys(2), &rec(43)).unwrap();
        assert_eq!(counted(&store), 2);
    }

    #[test]
    fn a_failure_during_the_probe_keeps_the_store_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.note_failure(None);
        let before = store.shared.state.load(Ordering::SeqCst);
        // A failure between the probe's start and its end.
        store.note_failure(None);
        let res = store.shared.state.compare_exchange(
            before,
            before & !UNHEALTHY,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        assert!(res.is_err());
        assert!(!store.is_healthy());
        store.recover().unwrap();
        assert!(store.is_healthy());
    }

    #[tokio::test]
    async fn flush_then_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(42)).unwrap();
        // The relay awaits this inside tokio tasks, so the future must be Send.
        fn assert_send<T: Send>(t: T) -> T {
            t
        }
        assert_send(store.flush()).await.unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get(&keys(1)).unwrap(), Some(rec(42)));
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
                    store.put(&keys(t), &rec(i)).unwrap();
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
        assert!(store.is_healthy());
    }

    #[test]
    fn corrupt_value_is_reported_and_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let inner = inner(&store);
        store.put(&keys(1), &rec(77)).unwrap();
        store.put(&keys(2), &rec(88)).unwrap();
        store.put(&keys(3), &rec(99)).unwrap();

        // A value from some future format version.
        let mut future = inner
            .rooms
            .get(loc(1).as_bytes())
            .unwrap()
            .unwrap()
            .to_vec();
        future[0] = 3;
        inner.rooms.insert(loc(1).as_bytes(), future).unwrap();
        assert!(matches!(store.get(&keys(1)), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            store.expires_at(&loc(1)),
            Err(StoreError::Corrupt(_))
        ));
        // A header that reads, then garbage.
        inner
            .rooms
            .insert(loc(2).as_bytes(), &[2u8, 0, 0, 0, 0, 0, 0, 0, 88, 0xff][..])
            .unwrap();
        assert!(matches!(store.get(&keys(2)), Err(StoreError::Corrupt(_))));
        assert_eq!(store.expires_at(&loc(2)).unwrap(), Some(88));
        // Too short for a header.
        inner
            .rooms
            .insert(loc(3).as_bytes(), &[2u8, 0][..])
            .unwrap();

        // Replacing and removing still clean up the index entries the bad values had.
        store.put(&keys(1), &rec(99)).unwrap();
        assert_eq!(store.get(&keys(1)).unwrap(), Some(rec(99)));
        assert!(store.remove(&loc(2)).unwrap());
        assert!(store.remove(&loc(3)).unwrap());
        assert_eq!(counted(&store), 1);
        assert_consistent(&store);
        // Corruption is not a failure of the database.
        assert!(store.is_healthy());
    }

    #[test]
    fn remove_if_due_spares_extended_rooms() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put(&keys(1), &rec(10)).unwrap();
        store.put(&keys(2), &rec(20)).unwrap();
        let due = store.due(20, 10).unwrap();
        assert_eq!(due, vec![loc(1), loc(2)]);
        // Room 2's actor extends it after the sweeper read the index.
        store.put(&keys(2), &rec(1_000)).unwrap();
        assert!(store.remove_if_due(&loc(1), 20).unwrap());
        assert!(!store.remove_if_due(&loc(2), 20).unwrap());
        assert!(!store.remove_if_due(&loc(3), 20).unwrap());
        assert_eq!(store.get(&keys(2)).unwrap(), Some(rec(1_000)));
        assert_eq!(counted(&store), 1);
        assert_consistent(&store);

        inner(&store)
            .rooms
            .insert(loc(2).as_bytes(), &[9u8][..])
            .unwrap();
        assert!(matches!(
            store.remove_if_due(&loc(2), u64::MAX),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn corrupt_index_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        inner(&store).expiry.insert([0u8; 3], &[][..]).unwrap();
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
                        let mut h = [t; 32];
                        h[..4].copy_from_slice(&(i % 50).to_be_bytes());
                        let k = RoomKeys::derive(&h);
                        if i % 3 == 2 {
                            store.remove(&k.locator()).unwrap();
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
        store.put(&RoomKeys::derive(&[0xab; 32]), &rec(1)).unwrap();
        counted(&store);
        assert_eq!(format!("{store:?}"), "Store { rooms: 1, .. }");
    }

    #[test]
    fn config_default_is_64_mib() {
        assert_eq!(StoreConfig::default().cache_bytes, 64 << 20);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Any sequence of puts and removes over a few rooms leaves the trees in step and
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
                        store.put(&keys(k), &rec(at)).unwrap();
                        model.insert(loc(k), at);
                    }
                    None => {
                        prop_assert_eq!(store.remove(&loc(k)).unwrap(), model.remove(&loc(k)).is_some());
                    }
                }
            }
            assert_consistent(&store);
            let mut expected: Vec<(u64, Locator)> =
                model.iter().filter(|(_, &at)| at <= now).map(|(k, &at)| (at, *k)).collect();
            expected.sort_unstable();
            let expected: Vec<Locator> = expected.into_iter().map(|(_, k)| k).collect();
            prop_assert_eq!(store.due(now, usize::MAX).unwrap(), expected);
            prop_assert_eq!(store.next_expiry_ms().unwrap(), model.values().min().copied());
        }
    }
}
