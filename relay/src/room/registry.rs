//! The registry of rooms in memory: a room's store locator → a live actor's handle, or a parked
//! message. Keyed by locator, not room hash, so nothing here needs the hash once a join is done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use stelgano_store::{Locator, RoomKeys};
use tokio::sync::{mpsc, oneshot};

use crate::error::RelayError;
use crate::room::core::Message;
use crate::room::{Command, RoomActor, RoomHandle, Unanswered, MAILBOX};
use crate::socket::outbox::{Outbound, Outbox};
use crate::Shared;

/// A room the registry knows about.
#[derive(Debug)]
enum Slot {
    /// An actor is running the room.
    Live(RoomHandle),
    /// No socket is open and no actor runs, but the room holds a message (a dead drop). Parking
    /// keeps such a room down to its message, instead of a task and channels per room.
    Parked(Box<Message>),
    /// Only while the entry lock is held, between taking a parked message and storing the handle.
    Vacant,
}

/// Rooms in memory. An actor leaves with its generation, so a late exit can never remove or
/// overwrite the newer actor that a join started for the same room in the meantime.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    map: DashMap<Locator, Slot>,
    next_generation: AtomicU64,
    /// Sockets open on a room's path that have not joined (yet), so a burn or an expiry can
    /// close them too. Bounded by the connection cap and the join deadline; a socket leaves
    /// this list when it joins or closes.
    unjoined: DashMap<Locator, Vec<(u64, Outbox)>>,
}

impl Rooms {
    /// Number of rooms with a running actor (at least one socket joined, or work in progress).
    pub(crate) fn live(&self) -> usize {
        self.map
            .iter()
            .filter(|e| matches!(e.value(), Slot::Live(_)))
            .count()
    }

    /// Number of rooms holding a message with no actor running.
    pub(crate) fn parked(&self) -> usize {
        self.map
            .iter()
            .filter(|e| matches!(e.value(), Slot::Parked(_)))
            .count()
    }

    /// The live actor for `key`, started (with the parked message, if any) when there is none.
    /// The entry lock is held only while spawning (which does not block), never across an await.
    fn handle(&self, shared: &Arc<Shared>, keys: &RoomKeys) -> RoomHandle {
        let mut slot = self.map.entry(keys.locator()).or_insert(Slot::Vacant);
        if let Slot::Live(handle) = &*slot {
            return handle.clone();
        }
        let message = match std::mem::replace(&mut *slot, Slot::Vacant) {
            Slot::Parked(message) => Some(*message),
            _ => None,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(MAILBOX);
        let actor = RoomActor::new(keys.clone(), generation, shared.clone(), rx, message);
        shared.tasks.spawn(actor.run());
        let handle = RoomHandle::new(generation, tx);
        *slot = Slot::Live(handle.clone());
        handle
    }

    /// Tells every live actor to stop (shutdown). Best effort: an actor whose mailbox is full
    /// stops anyway once its sockets, which are closing too, have left.
    pub(crate) fn stop_all(&self) {
        for entry in self.map.iter() {
            if let Slot::Live(handle) = entry.value() {
                handle.stop();
            }
        }
    }

    /// Socket `conn`, open on the room at `key`, has not joined.
    pub(crate) fn watch_unjoined(&self, key: &Locator, conn: u64, out: &Outbox) {
        self.unjoined
            .entry(*key)
            .or_default()
            .push((conn, out.clone()));
    }

    /// Socket `conn` joined or closed.
    pub(crate) fn unwatch_unjoined(&self, key: &Locator, conn: u64) {
        if let Entry::Occupied(mut e) = self.unjoined.entry(*key) {
            e.get_mut().retain(|(c, _)| *c != conn);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    /// The room at `key` is gone: close its sockets that never joined (1000 `room_expired`).
    pub(crate) fn close_unjoined(&self, key: &Locator) {
        if let Some((_, sockets)) = self.unjoined.remove(key) {
            for (_, out) in sockets {
                // A full or closed outbox means the socket is going anyway.
                let _ = out.try_push(Outbound::Close {
                    code: 1000,
                    reason: "room_expired",
                });
            }
        }
    }

    /// The actor of `generation` is gone and the room holds nothing in memory.
    pub(crate) fn unregister(&self, key: &Locator, generation: u64) {
        self.map.remove_if(
            key,
            |_, slot| matches!(slot, Slot::Live(h) if h.generation == generation),
        );
    }

    /// The actor of `generation` is gone but the room holds `message`: keep just the message.
    pub(crate) fn park(&self, key: &Locator, generation: u64, message: Message) {
        if let Some(mut slot) = self.map.get_mut(key) {
            if matches!(&*slot, Slot::Live(h) if h.generation == generation) {
                *slot = Slot::Parked(Box::new(message));
            }
        }
    }

    /// Sends a request built by `make` and waits for its answer, with the handle that answered.
    /// An actor that was exiting drops the request unanswered; then the stale entry is cleared
    /// and the request goes to a fresh actor (a few tries, then `Busy`).
    pub(crate) async fn request<T>(
        &self,
        shared: &Arc<Shared>,
        keys: &RoomKeys,
        mut make: impl FnMut(oneshot::Sender<T>) -> Command,
    ) -> Result<(T, RoomHandle), RelayError> {
        for _ in 0..4 {
            let handle = self.handle(shared, keys);
            match handle.ask(&mut make).await {
                Ok(answer) => return Ok((answer, handle)),
                Err(Unanswered::Busy) => return Err(RelayError::Busy),
                // The actor has exited: it parked or unregistered itself before closing its
                // mailbox, so this only clears the slot of an actor that died without doing
                // so; the request goes to a fresh actor.
                Err(Unanswered::Gone) => self.unregister(&keys.locator(), handle.generation),
                Err(Unanswered::Dropped) => tokio::task::yield_now().await,
            }
        }
        Err(RelayError::Busy)
    }

    /// Expires the room at `locator` if it is still due at `now_ms` (the sweeper's way in). A
    /// live actor owns its record, so it is asked to do it; otherwise the record is removed here,
    /// under the registry's entry lock so that no join can start an actor for the room in
    /// between, and a parked message goes with it. Returns whether a record was removed here:
    /// such a removal is not yet flushed, and the caller flushes once for a whole batch before it
    /// counts them (a live actor flushes and counts its own expiry).
    pub(crate) async fn expire_due(
        &self,
        shared: &Arc<Shared>,
        locator: &Locator,
        now_ms: u64,
    ) -> Result<bool, RelayError> {
        for _ in 0..4 {
            // The entry lock is held only for the synchronous store call, never across an await:
            // the match ends (and the entry is dropped) before anything is awaited.
            let live = match self.map.entry(*locator) {
                Entry::Occupied(e) => match e.get() {
                    Slot::Live(handle) => Ok(handle.clone()),
                    _ => {
                        let removed = shared.store.remove_if_due(locator, now_ms)?;
                        if removed {
                            e.remove();
                        }
                        Err(removed)
                    }
                },
                Entry::Vacant(_) => Err(shared.store.remove_if_due(locator, now_ms)?),
            };
            let handle = match live {
                Ok(handle) => handle,
                Err(removed) => {
                    if removed {
                        self.close_unjoined(locator);
                    }
                    return Ok(removed);
                }
            };
            match handle.ask(Command::Expire).await {
                Ok(true) => return Ok(false),
                Ok(false) => return Err(RelayError::StoreUnavailable),
                Err(Unanswered::Busy) => return Err(RelayError::Busy),
                Err(Unanswered::Gone) => self.unregister(locator, handle.generation),
                Err(Unanswered::Dropped) => tokio::task::yield_now().await,
            }
        }
        Err(RelayError::Busy)
    }
}
