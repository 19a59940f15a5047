//! stelgano-relay: the sTELgano-std-1 relay — an in-memory ephemeral dead drop with a minimal
//! durable lockout store.
//!
//! # Layout
//! - [`server`]: accept loop with the connection cap, HTTP routing, rate limits, WebSocket upgrade.
//! - [`connection`]: one socket — a reader that validates every frame and a writer that owns the
//!   socket's single outbox (replies and broadcasts in one order; join replies held to the floor).
//! - [`room`]: one live room — the actor that owns the seats' sockets and the one message.
//! - [`rooms`]: the registry of live room actors (room hash → handle, with generations).
//! - [`guard`]: the lockout policy (failures, locks, escalation).
//! - [`sweeper`]: TTL expiry driven by the store's expiry index.
//! - [`health`]: watches the store; while it cannot write, the relay refuses work and retries it.
//! - [`admin`]: extension tokens: minting and counting (`stelgano-relay tokens`), the relay's
//!   admin socket and the sweep of expired tokens.
//! - [`ring`]: nginx's consistent-hash ring, reproduced; [`nodes`]: moving records between
//!   nodes when the node list changes (`stelgano-relay nodes`, docs/SCALING.md).
//! - [`ratelimit`], [`metrics`], [`clock`], [`config`], [`error`], [`web`] (the embedded browser client).
//!
//! Message content lives only in room actors' memory; the store (`stelgano-store`) holds room
//! existence, seats, counters, locks and TTLs.

// No unwrap on the network path; tests may.
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod clock;
pub mod config;
pub mod connection;
pub mod error;
pub mod frames;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod nodes;
pub mod outbox;
pub mod ratelimit;
pub mod ring;
pub mod room;
pub mod rooms;
pub mod server;
pub mod sweeper;
pub mod web;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use stelgano_store::{Store, StoreConfig, TokenStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use clock::Clock;
pub use config::Config;
pub use error::RelayError;

/// What every task of one relay shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub store: Store,
    /// The unused extension tokens; `None` when tokens are disabled.
    pub tokens: Option<TokenStore>,
    pub clock: Clock,
    pub limits: ratelimit::Limiters,
    pub rooms: rooms::Rooms,
    pub metrics: metrics::Metrics,
    /// The root of shutdown: the accept loop, sockets, rooms and the sweeper all watch it.
    pub cancel: CancellationToken,
    /// Every task the relay starts, so shutdown can wait for all of them.
    pub tasks: TaskTracker,
}

impl Shared {
    pub fn room_policy(&self) -> room::core::Policy {
        room::core::Policy {
            lock: guard::LockPolicy {
                max_failures: self.config.max_failures,
                first_lock: self.config.first_lock,
                max_lock: self.config.max_lock,
                decay: self.config.lock_decay,
            },
            free_ttl_ms: self.config.free_ttl.as_millis() as u64,
            extended_ttl_ms: self.config.extended_ttl.as_millis() as u64,
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Checks `config` ([`Config::validate`]), opens the store (creating the data directory),
    /// binds the listener and starts serving.
    pub async fn start(config: Config) -> Result<Relay, RelayError> {
        config.validate()?;
        let store = Store::open(
            &config.data_dir,
            &StoreConfig {
                cache_bytes: config.store_cache_bytes,
            },
        )?;
        if let Some(m) = store.migration() {
            info!(
                migrated = m.migrated,
                skipped = m.skipped,
                "store format 1 migrated to format 2; the old files are deleted"
            );
        }
        let (tokens, admin_socket) = if config.extension_tokens {
            let tokens = TokenStore::open(&config.data_dir)?;
            (Some(tokens), admin::bind(&config.data_dir))
        } else {
            (None, None)
        };
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            limits: ratelimit::Limiters::new(config.upgrades_per_min, config.room_creates_per_min),
            config,
            store,
            tokens,
            clock: Clock::new(),
            rooms: rooms::Rooms::default(),
            metrics: metrics::Metrics::default(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(server::run(listener, shared.clone()));
        shared.tasks.spawn(sweeper::run(shared.clone()));
        shared.tasks.spawn(health::run(shared.clone()));
        if let Some(tokens) = &shared.tokens {
            if let Some(listener) = admin_socket {
                shared
                    .tasks
                    .spawn(admin::serve(shared.clone(), tokens.clone(), listener));
            }
            shared
                .tasks
                .spawn(admin::sweep(shared.clone(), tokens.clone()));
        }
        info!(%addr, rooms = shared.store.room_count(), "relay listening");
        Ok(Relay { addr, shared })
    }

    /// The address the relay listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's store. For tests and tooling that inspect or fault it; not for serving.
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Number of live room actors (rooms with an open socket or a message).
    pub fn live_rooms(&self) -> usize {
        self.shared.rooms.live()
    }

    /// Number of dead-drop rooms: holding a message with no socket open and no actor running.
    pub fn parked_rooms(&self) -> usize {
        self.shared.rooms.parked()
    }

    /// Graceful shutdown: stop accepting, close every socket with 1001, stop the room actors (their
    /// messages are gone, by design), and flush the store.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        self.shared.rooms.stop_all();
        self.shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within 10 s");
        }
        if let Err(e) = self.shared.store.flush().await {
            tracing::warn!(error = %e, "final store flush failed");
        }
        if let Some(tokens) = &self.shared.tokens {
            if let Err(e) = tokens.flush().await {
                tracing::warn!(error = %e, "final token store flush failed");
            }
        }
        let m = &self.shared.metrics;
        info!(
            connections = m.connections_total.load(Ordering::Relaxed),
            messages = m.messages.load(Ordering::Relaxed),
            rooms_expired = m.rooms_expired.load(Ordering::Relaxed),
            slow_consumers = m.slow_consumers.load(Ordering::Relaxed),
            extensions = m.extensions.load(Ordering::Relaxed),
            "relay stopped"
        );
    }
}
