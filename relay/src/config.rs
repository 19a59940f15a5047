//! The relay's typed configuration, with every default in one place (the spec's, or ours where marked).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use stelgano_proto::limits;

/// Everything an operator can tune. `Config::default()` is what `stelgano-relay` runs with when no
/// flag is given; the binary maps each flag (and `STELGANO_<FLAG>` env var) onto one field.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the durable store; created on first run.
    pub data_dir: PathBuf,
    /// sled page-cache size in bytes (sled's own default is 1 GiB, far more than a lockout store
    /// needs). Memory for rooms at rest grows with this: at 100,000 rooms, 64 MiB cost about
    /// 1.6 KB per dead-drop room and 8 MiB about 1.0 KB (docs/BENCHMARKS.md). Joins on rooms that
    /// fell out of the cache read the OS page cache instead, well inside the join time floor.
    pub store_cache_bytes: u64,

    /// Largest decoded ciphertext (`message_too_large` above it).
    pub max_ciphertext_bytes: usize,
    /// Largest WebSocket message, summed over fragments; larger closes the socket with 1009.
    pub max_ws_message_bytes: usize,
    /// Sockets one room may have joined at once (both parties, several tabs each).
    pub max_sockets_per_room: usize,

    /// Wrong PINs (or wrong pairing codes) before a lock.
    pub max_failures: u32,
    /// First lock; each further lock of the same room doubles it (ours).
    pub first_lock: Duration,
    /// Ceiling for escalated locks.
    pub max_lock: Duration,
    /// Each full span this long with no wrong or refused attempt lowers a room's escalation
    /// level by one (ours).
    pub lock_decay: Duration,

    /// Every join reply waits at least this long after the join arrived...
    pub join_floor: Duration,
    /// ...plus a uniformly random extra of up to this much.
    pub join_jitter: Duration,

    /// Lifetime of a free room; zero = free rooms never expire.
    pub free_ttl: Duration,
    /// What an extension token adds to a room's life (to the later of now and its expiry,
    /// floored to the hour); zero = extended rooms never expire.
    pub extended_ttl: Duration,
    /// Accept extension tokens (`redeem_extension`, or `extension_secret` on a creating join).
    /// Off: `redeem_extension` answers `monetization_disabled` and `/api/config` says so.
    /// Tokens are minted by the operator (`stelgano-relay tokens mint`).
    pub extension_tokens: bool,

    /// WebSocket upgrades and `exists` look-ups per IP per minute; 0 = unlimited.
    pub upgrades_per_min: u32,
    /// Room creations plus seat claims per IP per minute; 0 = unlimited.
    pub room_creates_per_min: u32,
    /// Take the client IP from the last `X-Forwarded-For` hop (only behind a trusted proxy).
    pub trust_forwarded_for: bool,

    /// Open connections (HTTP and WebSocket) at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Time a client has to send its request headers and finish the WebSocket handshake.
    pub handshake_timeout: Duration,
    /// A WebSocket with no frame from the client (pongs included) for this long is closed.
    pub idle_timeout: Duration,
    /// How often the relay pings an open WebSocket (keeps NATs open, detects dead peers).
    pub ping_interval: Duration,
    /// A WebSocket with no successful join this long after its upgrade is closed (1008
    /// `join_timeout`), so sockets that only answer pings cannot sit on the connection cap (ours).
    pub join_deadline: Duration,
    /// Open WebSockets per client IP (IPv6: per /64, as the rate limits count); more are refused
    /// with 429. 0 = unlimited (ours).
    pub max_sockets_per_ip: usize,

    /// Set when the relay is served over TLS (directly or by a proxy): pages then carry HSTS.
    pub hsts: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./stelgano-data"),
            store_cache_bytes: 8 * 1024 * 1024,
            max_ciphertext_bytes: limits::MAX_CIPHERTEXT_BYTES,
            max_ws_message_bytes: limits::MAX_WS_MESSAGE_BYTES,
            max_sockets_per_room: 16,
            max_failures: limits::MAX_FAILURES,
            first_lock: limits::FIRST_LOCK,
            max_lock: limits::MAX_LOCK,
            lock_decay: Duration::from_secs(24 * 3600),
            join_floor: limits::JOIN_FLOOR,
            join_jitter: limits::JOIN_JITTER,
            free_ttl: limits::FREE_TTL,
            extended_ttl: limits::EXTENDED_TTL,
            extension_tokens: false,
            upgrades_per_min: limits::UPGRADES_PER_MIN,
            room_creates_per_min: limits::ROOM_CREATES_PER_MIN,
            trust_forwarded_for: false,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            ping_interval: Duration::from_secs(30),
            join_deadline: Duration::from_secs(30),
            max_sockets_per_ip: 64,
            hsts: false,
        }
    }
}
