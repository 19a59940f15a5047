//! The registry of live room actors: room hash → handle, spawning actors on demand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use stelgano_store::RoomKey;
use tokio::sync::{mpsc, oneshot};

use crate::error::RelayError;
use crate::room::{Command, RoomActor, RoomHandle, MAILBOX};
use crate::Shared;

/// How long a socket waits for room in a busy room's mailbox before its request fails.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Live rooms. An actor unregisters itself with its generation on exit, so a late exit can never
/// remove the newer actor that a join started for the same room in the meantime.
#[derive(Debug, Default)]
pub struct Rooms {
    map: DashMap<RoomKey, RoomHandle>,
    next_generation: AtomicU64,
}

impl Rooms {
    /// Number of live room actors.
    pub fn live(&self) -> usize {
        self.map.len()
    }

    /// The live actor for `key`, started if there is none. The entry lock is held only while
    /// spawning (which does not block), never across an await.
    fn handle(&self, shared: &Arc<Shared>, key: &RoomKey) -> RoomHandle {
        self.map
            .entry(*key)
            .or_insert_with(|| {
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::channel(MAILBOX);
                let actor = RoomActor::new(*key, generation, shared.clone(), rx);
                shared.tasks.spawn(actor.run());
                RoomHandle { generation, tx }
            })
            .clone()
    }

    pub(crate) fn unregister(&self, key: &RoomKey, generation: u64) {
        self.map.remove_if(key, |_, h| h.generation == generation);
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
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    self.unregister(key, handle.generation);
                    continue;
                }
            }
            match rx.await {
                Ok(answer) => return Ok((answer, handle)),
                Err(_) => self.unregister(key, handle.generation),
            }
        }
        Err(RelayError::Busy)
    }
}
