//! The number of stored rooms, counted once per open by a background thread while writers go on,
//! so that opening a large store does not wait for a scan of every record.
//!
//! sled can only count a tree by walking it (4 s for a million records on a 2-core box, most of a
//! start). The walk goes in key order, a chunk at a time, under a lock that writers which change
//! the number of rooms also take around their transaction. A change to a key the walk has passed
//! is added to the count; a change to a key ahead of it is left for the walk to see. Either way
//! every room is counted exactly once, so the count is exact when the walk ends; until then
//! [`RoomCount::get`] says it is not known.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::keys::Locator;
use crate::StoreError;

/// Keys read per hold of the lock: short enough that a writer waits about a millisecond.
const CHUNK: usize = 256;

/// Where the walk is.
#[derive(Debug, Default)]
struct Walk {
    /// The last key counted; `None` before the first chunk.
    after: Option<[u8; 32]>,
    done: bool,
}

/// The count and the walk that establishes it.
#[derive(Debug, Default)]
pub(crate) struct RoomCount {
    /// Rooms at or before the walk's position, plus changes there since; exact once `done`.
    value: AtomicUsize,
    done: AtomicBool,
    /// Set when the database is closed: the walk stops and lets go of its tree.
    abandoned: AtomicBool,
    walk: Mutex<Walk>,
}

impl RoomCount {
    /// A count whose walk has not started; [`RoomCount::start_walk`] starts it.
    pub(crate) fn new() -> Arc<RoomCount> {
        Arc::new(RoomCount::default())
    }

    /// The number of rooms, once the walk has finished.
    pub(crate) fn get(&self) -> Option<usize> {
        self.done
            .load(Ordering::Acquire)
            .then(|| self.value.load(Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, Walk> {
        // A panic elsewhere while holding it leaves a consistent `Walk` (it is only ever
        // assigned whole), so a poisoned lock is still usable.
        self.walk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `write` (a transaction on the room at `loc` that returns its result and whether it
    /// added (+1) or removed (−1) a room) and keeps the count in step with it.
    pub(crate) fn change<T>(
        &self,
        loc: &Locator,
        write: impl FnOnce() -> Result<(T, i8), StoreError>,
    ) -> Result<T, StoreError> {
        if self.done.load(Ordering::Acquire) {
            let (t, delta) = write()?;
            self.apply(delta);
            return Ok(t);
        }
        let walk = self.lock();
        let (t, delta) = write()?;
        let passed = walk.done || walk.after.is_some_and(|a| loc.as_bytes() <= &a);
        if passed {
            self.apply(delta);
        }
        Ok(t)
    }

    fn apply(&self, delta: i8) {
        match delta {
            1 => {
                self.value.fetch_add(1, Ordering::Relaxed);
            }
            -1 => {
                self.value.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Stops the walk (the database is closing).
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    /// Counts `rooms` on a thread of its own. A read error leaves the count unknown for this
    /// open (the store's own health checks report the failure).
    pub(crate) fn start_walk(self: &Arc<Self>, rooms: &sled::Tree) {
        let (count, tree) = (Arc::clone(self), rooms.clone());
        let spawned = std::thread::Builder::new()
            .name("store-count".into())
            .spawn(move || {
                let _ = count.walk_all(&tree);
            });
        if spawned.is_err() {
            // No thread to spare: count here instead (a slower open, the same count).
            let _ = self.walk_all(rooms);
        }
    }

    /// Walks the whole tree, a chunk per hold of the lock.
    pub(crate) fn walk_all(&self, rooms: &sled::Tree) -> Result<(), StoreError> {
        loop {
            if self.abandoned.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut walk = self.lock();
            let from = match walk.after {
                None => Bound::Unbounded,
                Some(a) => Bound::Excluded(a.to_vec()),
            };
            let mut n = 0usize;
            let mut last = None;
            for key in rooms
                .range::<Vec<u8>, _>((from, Bound::Unbounded))
                .keys()
                .take(CHUNK)
            {
                let key = key?;
                n += 1;
                last = Some(key);
            }
            self.value.fetch_add(n, Ordering::Relaxed);
            match last {
                Some(k) if n == CHUNK => {
                    let after: [u8; 32] = k
                        .as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("room key has the wrong length"))?;
                    walk.after = Some(after);
                }
                _ => {
                    walk.done = true;
                    self.done.store(true, Ordering::Release);
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(i: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        // Spread over the key space, so writes land both behind and ahead of the walk.
        k[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        k[4..8].copy_from_slice(&i.to_be_bytes());
        k
    }

    /// Inserts or removes key `i` through `change`, as the store's transactions do.
    fn toggle(count: &RoomCount, tree: &sled::Tree, i: u32) {
        let k = key(i);
        count
            .change(&Locator::from_bytes(k), || {
                let existed = tree.remove(k)?.is_some();
                if existed {
                    Ok(((), -1))
                } else {
                    tree.insert(k, &[1u8][..])?;
                    Ok(((), 1))
                }
            })
            .unwrap();
    }

    #[test]
    fn the_walk_is_exact_while_writers_add_and_remove_rooms() {
        for round in 0..5u32 {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let tree = db.open_tree("rooms").unwrap();
            for i in 0..20_000 {
                tree.insert(key(i), &[1u8][..]).unwrap();
            }
            let count = RoomCount::new();
            assert_eq!(count.get(), None);
            std::thread::scope(|s| {
                let walker = {
                    let (count, tree) = (&count, &tree);
                    s.spawn(move || count.walk_all(tree).unwrap())
                };
                // Two writers toggling keys old and new while the walk runs.
                for w in 0..2u32 {
                    let (count, tree) = (&count, &tree);
                    s.spawn(move || {
                        for j in 0..3_000u32 {
                            toggle(count, tree, (j * 7 + w + round) % 26_000);
                        }
                    });
                }
                walker.join().unwrap();
            });
            assert_eq!(count.get(), Some(tree.len()), "round {round}");
            // Once counted, changes still count.
            toggle(&count, &tree, 30_000);
            assert_eq!(count.get(), Some(tree.len()));
        }
    }

    #[test]
    fn an_abandoned_walk_stops_and_stays_unknown() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("rooms").unwrap();
        for i in 0..1_000 {
            tree.insert(key(i), &[1u8][..]).unwrap();
        }
        let count = RoomCount::new();
        count.abandon();
        count.walk_all(&tree).unwrap();
        assert_eq!(count.get(), None);
    }
}
