//! `stelgano-relay`: parses flags (each also read from `STELGANO_<FLAG>`), sets up logging, runs
//! the relay until SIGINT/SIGTERM, then shuts it down gracefully; or, with `tokens`, mints and
//! counts extension tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use stelgano_relay::{Config, Relay};
use tracing_subscriber::EnvFilter;

/// The sTELgano relay: 1:1 dead-drop messaging. Holds at most one encrypted message per room, in
/// memory only; keeps room existence, seats, lockouts and TTLs in a small durable store.
///
/// Every flag can also be set with an environment variable named STELGANO_ plus the flag in
/// upper case with underscores (e.g. --join-floor-ms is STELGANO_JOIN_FLOOR_MS).
#[derive(Debug, Parser)]
#[command(name = "stelgano-relay", version, about, long_about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Address and port to listen on.
    #[arg(long, env = "STELGANO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Directory of the durable store (created on first run).
    #[arg(
        long,
        env = "STELGANO_DATA_DIR",
        default_value = "./stelgano-data",
        global = true
    )]
    data_dir: PathBuf,

    /// Store page cache, in MiB.
    #[arg(long, env = "STELGANO_STORE_CACHE_MB", default_value_t = 8)]
    store_cache_mb: u64,

    /// Largest decoded ciphertext of a message, in bytes.
    #[arg(long, env = "STELGANO_MAX_CIPHERTEXT_BYTES", default_value_t = 8192)]
    max_ciphertext_bytes: usize,

    /// Largest WebSocket message, in bytes (larger: the socket is closed with 1009).
    #[arg(long, env = "STELGANO_MAX_WS_MESSAGE_BYTES", default_value_t = 65536)]
    max_ws_message_bytes: usize,

    /// Sockets one room may have joined at once.
    #[arg(long, env = "STELGANO_MAX_SOCKETS_PER_ROOM", default_value_t = 16)]
    max_sockets_per_room: usize,

    /// Wrong PINs (or pairing codes) before a room locks.
    #[arg(long, env = "STELGANO_MAX_FAILURES", default_value_t = 10)]
    max_failures: u32,

    /// First lock, in minutes; each further lock of the same room doubles it.
    #[arg(long, env = "STELGANO_LOCK_MINUTES", default_value_t = 30)]
    lock_minutes: u64,

    /// Ceiling for escalated locks, in minutes.
    #[arg(long, env = "STELGANO_MAX_LOCK_MINUTES", default_value_t = 1440)]
    max_lock_minutes: u64,

    /// Hours without a wrong or refused attempt after which a room's lock escalation drops one level.
    #[arg(long, env = "STELGANO_LOCK_DECAY_HOURS", default_value_t = 24)]
    lock_decay_hours: u64,

    /// Time floor for every join reply, in milliseconds.
    #[arg(long, env = "STELGANO_JOIN_FLOOR_MS", default_value_t = 500)]
    join_floor_ms: u64,

    /// Random extra delay of up to this many milliseconds on every join reply.
    #[arg(long, env = "STELGANO_JOIN_JITTER_MS", default_value_t = 125)]
    join_jitter_ms: u64,

    /// Lifetime of a free room, in hours (0 = free rooms never expire).
    #[arg(long, env = "STELGANO_FREE_TTL_HOURS", default_value_t = 168)]
    free_ttl_hours: u64,

    /// What an extension token adds to a room's life, in hours (0 = extended rooms never expire).
    #[arg(long, env = "STELGANO_EXTENDED_TTL_HOURS", default_value_t = 8760)]
    extended_ttl_hours: u64,

    /// Accept extension tokens minted with `stelgano-relay tokens mint`.
    #[arg(long, env = "STELGANO_EXTENSION_TOKENS")]
    extension_tokens: bool,

    /// WebSocket upgrades and room look-ups per IP per minute (0 = unlimited).
    #[arg(long, env = "STELGANO_UPGRADES_PER_MIN", default_value_t = 30)]
    upgrades_per_min: u32,

    /// Room creations plus seat claims per IP per minute (0 = unlimited).
    #[arg(long, env = "STELGANO_ROOM_CREATE_PER_MIN", default_value_t = 10)]
    room_create_per_min: u32,

    /// Take client IPs from the last X-Forwarded-For hop (only behind a trusted proxy).
    #[arg(long, env = "STELGANO_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,

    /// Open connections at once (HTTP and WebSocket); more wait in the backlog.
    #[arg(long, env = "STELGANO_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,

    /// Seconds a client has for its request headers and the WebSocket handshake.
    #[arg(long, env = "STELGANO_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    handshake_timeout_secs: u64,

    /// Seconds without any frame from a client (pongs count) before its socket is closed.
    #[arg(long, env = "STELGANO_IDLE_TIMEOUT_SECS", default_value_t = 90)]
    idle_timeout_secs: u64,

    /// Seconds between the relay's pings on each socket.
    #[arg(long, env = "STELGANO_PING_INTERVAL_SECS", default_value_t = 30)]
    ping_interval_secs: u64,

    /// Seconds an upgraded WebSocket has to join a room; then it is closed (1008 join_timeout).
    #[arg(long, env = "STELGANO_JOIN_DEADLINE_SECS", default_value_t = 30)]
    join_deadline_secs: u64,

    /// Open WebSockets per client IP (IPv6: per /64); more are refused with 429 (0 = unlimited).
    #[arg(long, env = "STELGANO_MAX_SOCKETS_PER_IP", default_value_t = 64)]
    max_sockets_per_ip: usize,

    /// The relay is reached over TLS (directly or via a proxy): send HSTS on pages.
    #[arg(long, env = "STELGANO_HSTS")]
    hsts: bool,

    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "stelgano_relay=debug".
    #[arg(long, env = "STELGANO_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extension tokens: mint new ones, or count them by state. Works while the relay runs
    /// (through its admin socket in the data directory) and while it is stopped.
    Tokens {
        #[command(subcommand)]
        action: Tokens,
    },
}

#[derive(Debug, Subcommand)]
enum Tokens {
    /// Mint tokens: prints each secret once on stdout, one per line, and nothing else there.
    /// Only their hashes are stored; hand each secret to one user.
    Mint {
        /// How many tokens to mint (1 to 10,000).
        #[arg(long)]
        count: u32,
        /// How many days each token can be redeemed for (1 to 3,650).
        #[arg(long)]
        days: u32,
    },
    /// Count tokens by state (unused, expired, redeemed, swept). Nothing else is kept.
    List,
}

impl Args {
    fn config(&self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            store_cache_bytes: self.store_cache_mb.saturating_mul(1024 * 1024),
            max_ciphertext_bytes: self.max_ciphertext_bytes,
            max_ws_message_bytes: self.max_ws_message_bytes,
            max_sockets_per_room: self.max_sockets_per_room.max(1),
            max_failures: self.max_failures.max(1),
            first_lock: Duration::from_secs(self.lock_minutes * 60),
            max_lock: Duration::from_secs(self.max_lock_minutes * 60),
            lock_decay: Duration::from_secs(self.lock_decay_hours.max(1) * 3600),
            join_floor: Duration::from_millis(self.join_floor_ms),
            join_jitter: Duration::from_millis(self.join_jitter_ms),
            free_ttl: Duration::from_secs(self.free_ttl_hours.saturating_mul(3600)),
            extended_ttl: Duration::from_secs(self.extended_ttl_hours.saturating_mul(3600)),
            extension_tokens: self.extension_tokens,
            upgrades_per_min: self.upgrades_per_min,
            room_creates_per_min: self.room_create_per_min,
            trust_forwarded_for: self.trust_forwarded_for,
            max_connections: self.max_connections.max(1),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            ping_interval: Duration::from_secs(self.ping_interval_secs.max(1)),
            join_deadline: Duration::from_secs(self.join_deadline_secs.max(1)),
            max_sockets_per_ip: self.max_sockets_per_ip,
            hsts: self.hsts,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Tokens { action }) = &args.command {
        return tokens(action, &args.data_dir).await;
    }
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish();
    // Set as the default by hand rather than with `.init()`, which would also install the `log`
    // bridge: sled logs keys and values (room, access, sender and pairing hashes) through `log`
    // at trace level. With no `log` logger installed those records go nowhere, whatever the
    // filter; only the relay's own `tracing` events, which carry no hash, are written.
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("stelgano-relay: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }

    let relay = match Relay::start(args.config()).await {
        Ok(relay) => relay,
        Err(e) => {
            eprintln!("stelgano-relay: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "open http://{} in a browser; data in {}",
        relay.local_addr(),
        args.data_dir.display()
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    relay.shutdown().await;
    ExitCode::SUCCESS
}

/// `stelgano-relay tokens …`: secrets alone on stdout (so they can be piped), the rest on stderr.
async fn tokens(action: &Tokens, data_dir: &std::path::Path) -> ExitCode {
    use std::io::Write;
    match action {
        Tokens::Mint { count, days } => {
            match stelgano_relay::admin::mint(data_dir, *count, *days).await {
                Ok(secrets) => {
                    let mut out = std::io::stdout().lock();
                    for s in &secrets {
                        if writeln!(out, "{s}").is_err() {
                            return ExitCode::FAILURE;
                        }
                    }
                    eprintln!(
                        "minted {} token(s), redeemable for {days} day(s); the secrets above are the only copy",
                        secrets.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("stelgano-relay tokens mint: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Tokens::List => match stelgano_relay::admin::counts(data_dir).await {
            Ok(c) => {
                println!("unused\t{}", c.unused);
                println!("expired\t{}", c.expired);
                println!("redeemed\t{}", c.redeemed);
                println!("swept\t{}", c.swept);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stelgano-relay tokens list: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
