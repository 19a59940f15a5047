//! The registry of rooms in memory: room hash → a live actor's handle, or a parked message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use stelgano_store::RoomKey;
use tokio::sync::{mpsc, oneshot};

use crate::error::RelayError;
use crate::room::{Command, Message, RoomActor, RoomHandle, MAILBOX};
use crate::Shared;

/// How long a socket waits for room in a busy room's mailbox before its request fails.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

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
pub struct Rooms {
    map: DashMap<RoomKey, Slot>,
    next_generation: AtomicU64,
}

impl Rooms {
    /// Number of rooms with a running actor (at least one socket joined, or work in progress).
    pub fn live(&self) -> usize {
        self.map
            .iter()
            .filter(|e| matches!(e.value(), Slot::Live(_)))
            .count()
    }

    /// Number of rooms holding a message with no actor running.
    pub fn parked(&self) -> usize {
        self.map
            .iter()
            .filter(|e| matches!(e.value(), Slot::Parked(_)))
            .count()
    }

    /// The live actor for `key`, started (with the parked message, if any) when there is none.
    /// The entry lock is held only while spawning (which does not block), never across an await.
    fn handle(&self, shared: &Arc<Shared>, key: &RoomKey) -> RoomHandle {
        let mut slot = self.map.entry(*key).or_insert(Slot::Vacant);
        if let Slot::Live(handle) = &*slot {
            return handle.clone();
        }
        let message = match std::mem::replace(&mut *slot, Slot::Vacant) {
            Slot::Parked(message) => Some(*message),
            _ => None,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(MAILBOX);
        let actor = RoomActor::new(*key, generation, shared.clone(), rx, message);
        shared.tasks.spawn(actor.run());
        let handle = RoomHandle { generation, tx };
        *slot = Slot::Live(handle.clone());
        handle
    }

    /// Tells every live actor to stop (shutdown). Best effort: an actor whose mailbox is full
    /// stops anyway once its sockets, which are closing too, have left.
    pub(crate) fn stop_all(&self) {
        for entry in self.map.iter() {
            if let Slot::Live(handle) = entry.value() {
                let _ = handle.tx.try_send(Command::Shutdown);
            }
        }
    }

    /// The actor of `generation` is gone and the room holds nothing in memory.
    pub(crate) fn unregister(&self, key: &RoomKey, generation: u64) {
        self.map.remove_if(
            key,
            |_, slot| matches!(slot, Slot::Live(h) if h.generation == generation),
        );
    }

    /// The actor of `generation` is gone but the room holds `message`: keep just the message.
    pub(crate) fn park(&self, key: &RoomKey, generation: u64, message: Message) {
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
        key: &RoomKey,
        mut make: impl FnMut(oneshot::Sender<T>) -> Command,
    ) -> Result<(T, RoomHandle), RelayError> {
        for _ in 0..4 {
            let handle = self.handle(shared, key);
            let (tx, rx) = oneshot::channel();
            match handle.tx.send_timeout(make(tx), SEND_TIMEOUT).await {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(RelayError::Busy),
                // The actor has exited: it parked or unregistered itself before closing its
                // mailbox, so this only clears the slot of an actor that died without doing so.
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    self.unregister(key, handle.generation);
                    continue;
                }
            }
            match rx.await {
                Ok(answer) => return Ok((answer, handle)),
                // Dropped unanswered by an exiting actor: retry on the slot it left.
                Err(_) if handle.tx.is_closed() => self.unregister(key, handle.generation),
                Err(_) => tokio::task::yield_now().await,
            }
        }
        Err(RelayError::Busy)
    }
}
