//! stelgano-relay: the sTELgano-std-1 relay — an in-memory ephemeral dead drop with a minimal
//! durable lockout store.
//!
//! Run it with its own listener ([`Relay::start`]) or mount it in a site of your own
//! ([`Embedded::start`], [`Embedded::service`]; docs/EMBEDDING.md). Configure it with a
//! [`Config`] (every default in [`Config::default`]; [`config::Settings`] reads the same settings
//! from flags, `STELGANO_*` variables and a TOML file). Extension tokens are minted with
//! [`admin::mint`]. That is the whole public API.
//!
//! ```no_run
//! # async fn run() -> Result<(), stelgano_relay::StartError> {
//! use stelgano_relay::{Config, Relay};
//! let relay = Relay::start(Config {
//!     data_dir: "./stelgano-data".into(),
//!     ..Config::default()
//! })
//! .await?;
//! println!("listening on {}", relay.local_addr());
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout (by role)
//! - `http`: the accept loop with the connection cap, HTTP routing, the WebSocket upgrade, the
//!   embeddable service, and `http::web` (the browser client, embedded in the binary).
//! - `socket`: one WebSocket — its frame reader (`socket::frames`), a reader that validates
//!   every event, and the socket's single outbox (`socket::outbox`: replies and broadcasts in one
//!   order; join replies held to the floor).
//! - `room`: one live room — its decisions without I/O (`room::core`), the actor that does the
//!   I/O around them and owns the one message, the registry of rooms (`room::registry`), the
//!   lock policy (`room::guard`) and TTL expiry (`room::sweeper`).
//! - `health` (store recovery), `admin` (extension tokens), `ratelimit`, `metrics`, `clock`,
//!   [`config`], `error`.
//! - [`ring`]: nginx's consistent-hash ring, reproduced; [`nodes`]: moving records between
//!   nodes when the node list changes (`stelgano-relay nodes`, docs/SCALING.md).
//!
//! Message content lives only in room actors' memory; the store (`stelgano-store`) holds room
//! existence, seats, counters, locks and TTLs.

// No unwrap on the network path; tests may.
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
// Only what embedders need is public; everything else says so in its visibility.
#![deny(unreachable_pub)]

pub mod admin;
mod clock;
pub mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod http;
mod metrics;
pub mod nodes;
mod ratelimit;
pub mod ring;
mod room;
mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stelgano_store::{Store, StoreConfig, TokenStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use clock::Clock;
pub use config::Config;
pub use error::{RelayError, StartError};
pub use http::{ClientAddr, RelayService};

/// What every task of one relay shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub store: Store,
    /// The unused extension tokens; `None` when tokens are disabled.
    pub tokens: Option<TokenStore>,
    pub clock: Clock,
    pub limits: ratelimit::Limiters,
    pub rooms: room::registry::Rooms,
    pub metrics: metrics::Metrics,
    /// The root of shutdown: the accept loop, sockets, rooms and the sweeper all watch it.
    pub cancel: CancellationToken,
    /// Every task the relay starts, so shutdown can wait for all of them.
    pub tasks: TaskTracker,
}

impl Shared {
    pub(crate) fn room_policy(&self) -> room::core::Policy {
        room::core::Policy {
            lock: room::guard::LockPolicy {
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
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use stelgano_relay::{Config, Relay};
/// let relay = Relay::start(Config {
///     listen: "127.0.0.1:0".parse()?,
///     data_dir: dir.path().to_path_buf(),
///     ..Config::default()
/// })
/// .await?;
/// assert!(relay.local_addr().port() != 0);
/// relay.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    embedded: Embedded,
}

impl Relay {
    /// Checks `config` ([`Config::validate`]), binds the listener, opens the store (creating the
    /// data directory) and starts serving.
    pub async fn start(config: Config) -> Result<Relay, StartError> {
        config.validate()?;
        // Bound first: a port in use fails before the store is touched.
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let embedded = Embedded::start(config).await?;
        let shared = embedded.shared.clone();
        shared.tasks.spawn(http::run(listener, shared.clone()));
        info!(%addr, "relay listening");
        Ok(Relay { addr, embedded })
    }

    /// The address the relay listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the separate metrics listener, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.embedded.metrics_addr
    }

    /// The relay's store. For tests and tooling that inspect or fault it; not for serving.
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.embedded.shared.store
    }

    /// Number of live room actors (rooms with an open socket or a message).
    pub fn live_rooms(&self) -> usize {
        self.embedded.shared.rooms.live()
    }

    /// Number of dead-drop rooms: holding a message with no socket open and no actor running.
    pub fn parked_rooms(&self) -> usize {
        self.embedded.shared.rooms.parked()
    }

    /// Graceful shutdown: stop accepting, close every socket with 1001, stop the room actors (their
    /// messages are gone, by design), and flush the store.
    pub async fn shutdown(self) {
        self.embedded.shutdown().await;
    }
}

/// A relay without a listener of its own, for mounting inside a host's HTTP server: its store,
/// room actors, sweeper, health checks (and, if configured, token admin socket and metrics
/// listener) run; requests reach it through [`Embedded::service`]. `config.listen` is not used.
///
/// ```no_run
/// # async fn host() -> Result<(), stelgano_relay::StartError> {
/// let relay = stelgano_relay::Embedded::start(stelgano_relay::Config::default()).await?;
/// let service = relay.service("/stelgano"); // a tower::Service; mount it in axum or hyper
/// # drop(service);
/// relay.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Embedded {
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
}

/// Logs the number of stored rooms once the store has counted them (in the background, after
/// opening: a large store starts serving before its count is known).
async fn report_room_count(shared: Arc<Shared>) {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(rooms) = shared.store.room_count() {
            info!(
                rooms,
                seconds = started.elapsed().as_secs_f64(),
                "stored rooms counted"
            );
            return;
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}

impl Embedded {
    /// Checks `config`, opens the store (creating the data directory) and starts the relay's
    /// background work.
    pub async fn start(config: Config) -> Result<Embedded, StartError> {
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
        let metrics_listener = match config.metrics_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let shared = Arc::new(Shared {
            limits: ratelimit::Limiters::new(config.upgrades_per_min, config.room_creates_per_min),
            config,
            store,
            tokens,
            clock: Clock::new(),
            rooms: room::registry::Rooms::default(),
            metrics: metrics::Metrics::default(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(room::sweeper::run(shared.clone()));
        shared.tasks.spawn(health::run(shared.clone()));
        shared.tasks.spawn(report_room_count(shared.clone()));
        if let Some(l) = metrics_listener {
            shared.tasks.spawn(http::run_metrics(l, shared.clone()));
        }
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
        Ok(Embedded {
            metrics_addr,
            shared,
        })
    }

    /// The relay as a `tower` service answering every path below `prefix` (e.g. `"/stelgano"`;
    /// `""` for the whole site). Put each client's address in the request's extensions as
    /// [`ClientAddr`] so the per-IP limits work. Cheap to clone.
    pub fn service(&self, prefix: &str) -> RelayService {
        RelayService::new(self.shared.clone(), prefix)
    }

    /// The address of the separate metrics listener, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Graceful shutdown: close every socket with 1001, stop the room actors (their messages are
    /// gone, by design), and flush the store. Requests that still arrive get errors.
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
        let (connections, messages, rooms_expired) = self.shared.metrics.totals();
        info!(connections, messages, rooms_expired, "relay stopped");
    }
}
