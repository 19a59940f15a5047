//! Store health: while the store cannot write, rooms refuse work (`internal_error`), `/healthz`
//! answers 503, and this task tries to bring the store back (reopening it if sled cannot go on)
//! about once a second, so the relay recovers by itself once the disk takes writes again.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::Shared;

/// How often a failed store is retried.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
        if shared.store.is_healthy() {
            failing = false;
            continue;
        }
        if !failing {
            warn!("the store cannot write: refusing room work and retrying every second");
            failing = true;
        }
        let store = shared.store.clone();
        match tokio::task::spawn_blocking(move || store.recover()).await {
            Ok(Ok(())) => {
                info!("the store writes again; room work resumes");
                failing = false;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "store still failing"),
            Err(_) => return,
        }
    }
}
