//! The relay's typed configuration, with every default in one place (the spec's, or ours where marked).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use stelgano_proto::limits;

/// Everything an operator can tune. `Config::default()` is what `stelgano-relay` runs with when no
/// flag is given; the binary maps each flag (and `STELGANO_<FLAG>` env var) onto one field.
/// `Debug` shows the settings with the metrics token redacted.
///
/// ```
/// use std::time::Duration;
/// use stelgano_relay::Config;
/// let config = Config {
///     free_ttl: Duration::from_secs(30 * 24 * 3600),
///     extension_tokens: true,
///     ..Config::default()
/// };
/// config.validate()?;
/// # Ok::<(), stelgano_relay::config::ConfigError>(())
/// ```
#[derive(Clone)]
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

    /// Serve Prometheus metrics at `/metrics` on the main listener to requests carrying
    /// `Authorization: Bearer <this>` (others get 401). Also required on `metrics_listen`
    /// when both are set. `None` and no `metrics_listen`: no metrics anywhere.
    pub metrics_token: Option<String>,
    /// Serve `/metrics` on this separate address too (e.g. loopback or a private network).
    pub metrics_listen: Option<SocketAddr>,
    /// Where the panic route `/x` sends the browser; `None` = the built-in neutral page `gone`
    /// (ours), which neither names nor explains the app.
    pub panic_url: Option<String>,
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
            metrics_token: None,
            metrics_listen: None,
            panic_url: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = Settings::from_config(self);
        if shown.metrics_token.is_some() {
            shown.metrics_token = Some("<redacted>".into());
        }
        f.debug_tuple("Config").field(&shown).finish()
    }
}

/// A setting with a value it cannot take: names the setting as an operator writes it (flag,
/// `STELGANO_` variable or config-file key) and the value given.
///
/// ```
/// use stelgano_relay::Config;
/// let e = Config { max_failures: 0, ..Config::default() }.validate().unwrap_err();
/// assert_eq!(e.to_string(), "max_failures = 0: must be 1 to 1000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name in the config file (the flag is the same with `-` for `_`).
    pub setting: String,
    /// The value that was given.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.setting, self.why)
        } else {
            write!(f, "{} = {}: {}", self.setting, self.value, self.why)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn new(setting: &str, value: impl std::fmt::Display, why: &str) -> ConfigError {
        ConfigError {
            setting: setting.to_owned(),
            value: value.to_string(),
            why: why.to_owned(),
        }
    }
}

impl Config {
    /// Rejects values the relay cannot run with, naming the setting and the value. The library
    /// checks every `Config` it starts with; the binary checks before starting, too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secs = |d: Duration| d.as_secs_f64();
        let at_least_one = |name: &str, n: u64| {
            if n == 0 {
                Err(ConfigError::new(name, n, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        at_least_one("max_sockets_per_room", self.max_sockets_per_room as u64)?;
        at_least_one("max_connections", self.max_connections as u64)?;
        at_least_one("max_ciphertext_bytes", self.max_ciphertext_bytes as u64)?;
        if self.max_failures == 0 || self.max_failures > 1_000 {
            return Err(ConfigError::new(
                "max_failures",
                self.max_failures,
                "must be 1 to 1000",
            ));
        }
        if self.max_ws_message_bytes < 1024 || self.max_ws_message_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::new(
                "max_ws_message_bytes",
                self.max_ws_message_bytes,
                "must be 1024 to 16777216",
            ));
        }
        if self.store_cache_bytes < 1024 * 1024 {
            return Err(ConfigError::new(
                "store_cache_mb",
                self.store_cache_bytes / (1024 * 1024),
                "must be at least 1",
            ));
        }
        if self.first_lock.is_zero() {
            return Err(ConfigError::new("lock_minutes", 0, "must be at least 1"));
        }
        if self.max_lock < self.first_lock {
            return Err(ConfigError::new(
                "max_lock_minutes",
                self.max_lock.as_secs() / 60,
                "must not be shorter than lock_minutes",
            ));
        }
        for (name, d) in [
            ("lock_decay_hours", self.lock_decay),
            ("handshake_timeout_secs", self.handshake_timeout),
            ("idle_timeout_secs", self.idle_timeout),
            ("ping_interval_secs", self.ping_interval),
            ("join_deadline_secs", self.join_deadline),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(name, 0, "must be more than 0"));
            }
        }
        if let Some(t) = &self.metrics_token {
            if t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    "metrics_token",
                    "<redacted>",
                    "must be 16 to 256 printable ASCII characters without spaces",
                ));
            }
        }
        if self.ping_interval > self.idle_timeout {
            return Err(ConfigError::new(
                "ping_interval_secs",
                secs(self.ping_interval),
                "must not be longer than idle_timeout_secs, or idle sockets close before their ping",
            ));
        }
        Ok(())
    }
}

/// The relay's settings as an operator writes them: the flags of `stelgano-relay`, the
/// `STELGANO_<FLAG>` environment variables and the keys of a `--config` TOML file are all this
/// one struct (flag `--lock-minutes` = variable `STELGANO_LOCK_MINUTES` = key `lock_minutes`).
/// Every field is optional: what is not set anywhere keeps its value from [`Config::default`],
/// the one place defaults are defined.
///
/// ```
/// use stelgano_relay::config::Settings;
/// let file = Settings::from_toml("lock_minutes = 5\nfree_ttl_hours = 0\n")?;
/// let config = file.to_config()?;
/// assert_eq!(config.first_lock.as_secs(), 300);
/// assert!(config.free_ttl.is_zero()); // rooms never expire
/// assert!(Settings::from_toml("lock_minuts = 5").is_err()); // unknown keys are named
/// # Ok::<(), stelgano_relay::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on.
    #[arg(long, env = "STELGANO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the durable store (created on first run).
    #[arg(long, env = "STELGANO_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Store page cache, in MiB.
    #[arg(long, env = "STELGANO_STORE_CACHE_MB")]
    pub store_cache_mb: Option<u64>,
    /// Largest decoded ciphertext of a message, in bytes.
    #[arg(long, env = "STELGANO_MAX_CIPHERTEXT_BYTES")]
    pub max_ciphertext_bytes: Option<usize>,
    /// Largest WebSocket message, in bytes (larger: the socket is closed with 1009).
    #[arg(long, env = "STELGANO_MAX_WS_MESSAGE_BYTES")]
    pub max_ws_message_bytes: Option<usize>,
    /// Sockets one room may have joined at once.
    #[arg(long, env = "STELGANO_MAX_SOCKETS_PER_ROOM")]
    pub max_sockets_per_room: Option<usize>,
    /// Wrong PINs (or pairing codes) before a room locks.
    #[arg(long, env = "STELGANO_MAX_FAILURES")]
    pub max_failures: Option<u32>,
    /// First lock, in minutes; each further lock of the same room doubles it.
    #[arg(long, env = "STELGANO_LOCK_MINUTES")]
    pub lock_minutes: Option<u64>,
    /// Ceiling for escalated locks, in minutes.
    #[arg(long, env = "STELGANO_MAX_LOCK_MINUTES")]
    pub max_lock_minutes: Option<u64>,
    /// Hours without a wrong or refused attempt after which a room's lock escalation drops one level.
    #[arg(long, env = "STELGANO_LOCK_DECAY_HOURS")]
    pub lock_decay_hours: Option<u64>,
    /// Time floor for every join reply, in milliseconds.
    #[arg(long, env = "STELGANO_JOIN_FLOOR_MS")]
    pub join_floor_ms: Option<u64>,
    /// Random extra delay of up to this many milliseconds on every join reply.
    #[arg(long, env = "STELGANO_JOIN_JITTER_MS")]
    pub join_jitter_ms: Option<u64>,
    /// Lifetime of a free room, in hours (0 = free rooms never expire).
    #[arg(long, env = "STELGANO_FREE_TTL_HOURS")]
    pub free_ttl_hours: Option<u64>,
    /// What an extension token adds to a room's life, in hours (0 = extended rooms never expire).
    #[arg(long, env = "STELGANO_EXTENDED_TTL_HOURS")]
    pub extended_ttl_hours: Option<u64>,
    /// Accept extension tokens minted with `stelgano-relay tokens mint`.
    #[arg(long, env = "STELGANO_EXTENSION_TOKENS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub extension_tokens: Option<bool>,
    /// WebSocket upgrades and room look-ups per IP per minute (0 = unlimited).
    #[arg(long, env = "STELGANO_UPGRADES_PER_MIN")]
    pub upgrades_per_min: Option<u32>,
    /// Room creations plus seat claims per IP per minute (0 = unlimited).
    #[arg(long, env = "STELGANO_ROOM_CREATE_PER_MIN")]
    pub room_create_per_min: Option<u32>,
    /// Take client IPs from the last X-Forwarded-For hop (only behind a trusted proxy).
    #[arg(long, env = "STELGANO_TRUST_FORWARDED_FOR", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_forwarded_for: Option<bool>,
    /// Open connections at once (HTTP and WebSocket); more wait in the backlog.
    #[arg(long, env = "STELGANO_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a client has for its request headers and the WebSocket handshake.
    #[arg(long, env = "STELGANO_HANDSHAKE_TIMEOUT_SECS")]
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds without any frame from a client (pongs count) before its socket is closed.
    #[arg(long, env = "STELGANO_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds between the relay's pings on each socket.
    #[arg(long, env = "STELGANO_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Seconds an upgraded WebSocket has to join a room; then it is closed (1008 join_timeout).
    #[arg(long, env = "STELGANO_JOIN_DEADLINE_SECS")]
    pub join_deadline_secs: Option<u64>,
    /// Open WebSockets per client IP (IPv6: per /64); more are refused with 429 (0 = unlimited).
    #[arg(long, env = "STELGANO_MAX_SOCKETS_PER_IP")]
    pub max_sockets_per_ip: Option<usize>,
    /// The relay is reached over TLS (directly or via a proxy): send HSTS on pages.
    #[arg(long, env = "STELGANO_HSTS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub hsts: Option<bool>,
    /// Serve Prometheus metrics at /metrics to requests with `Authorization: Bearer TOKEN`
    /// (16 or more characters; better given by environment or file than as a flag).
    #[arg(long, env = "STELGANO_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Also serve /metrics on this address (and nothing else there).
    #[arg(long, env = "STELGANO_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Where the Panic button lands (absolute URL or a path); default: a built-in neutral page
    /// that neither names nor explains the app.
    #[arg(long, env = "STELGANO_PANIC_URL")]
    pub panic_url: Option<String>,
}

/// `a` overlaid with what `b` sets (each field: `b`'s if set, else `a`'s).
macro_rules! overlay {
    ($a:expr, $b:expr, $($f:ident),* $(,)?) => {
        Settings { $($f: $b.$f.clone().or_else(|| $a.$f.clone())),* }
    };
}

/// The same field list, for the conversions below.
macro_rules! with_fields {
    ($m:ident, $a:expr, $b:expr) => {
        $m!(
            $a,
            $b,
            listen,
            data_dir,
            store_cache_mb,
            max_ciphertext_bytes,
            max_ws_message_bytes,
            max_sockets_per_room,
            max_failures,
            lock_minutes,
            max_lock_minutes,
            lock_decay_hours,
            join_floor_ms,
            join_jitter_ms,
            free_ttl_hours,
            extended_ttl_hours,
            extension_tokens,
            upgrades_per_min,
            room_create_per_min,
            trust_forwarded_for,
            max_connections,
            handshake_timeout_secs,
            idle_timeout_secs,
            ping_interval_secs,
            join_deadline_secs,
            max_sockets_per_ip,
            hsts,
            metrics_token,
            metrics_listen,
            panic_url
        )
    };
}

const MIB: u64 = 1024 * 1024;

impl Settings {
    /// Reads a TOML config file. An unknown key is an error that names it.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            setting: "config file".into(),
            value: String::new(),
            why: e.message().to_owned(),
        })
    }

    /// These settings with `over`'s on top (file, then environment and flags).
    pub fn overlaid_with(&self, over: &Settings) -> Settings {
        with_fields!(overlay, self, over)
    }

    /// Every setting of `config`, in operator units.
    pub fn from_config(c: &Config) -> Settings {
        let mins = |d: Duration| d.as_secs() / 60;
        let hours = |d: Duration| d.as_secs() / 3600;
        Settings {
            listen: Some(c.listen),
            data_dir: Some(c.data_dir.clone()),
            store_cache_mb: Some(c.store_cache_bytes / MIB),
            max_ciphertext_bytes: Some(c.max_ciphertext_bytes),
            max_ws_message_bytes: Some(c.max_ws_message_bytes),
            max_sockets_per_room: Some(c.max_sockets_per_room),
            max_failures: Some(c.max_failures),
            lock_minutes: Some(mins(c.first_lock)),
            max_lock_minutes: Some(mins(c.max_lock)),
            lock_decay_hours: Some(hours(c.lock_decay)),
            join_floor_ms: Some(c.join_floor.as_millis() as u64),
            join_jitter_ms: Some(c.join_jitter.as_millis() as u64),
            free_ttl_hours: Some(hours(c.free_ttl)),
            extended_ttl_hours: Some(hours(c.extended_ttl)),
            extension_tokens: Some(c.extension_tokens),
            upgrades_per_min: Some(c.upgrades_per_min),
            room_create_per_min: Some(c.room_creates_per_min),
            trust_forwarded_for: Some(c.trust_forwarded_for),
            max_connections: Some(c.max_connections),
            handshake_timeout_secs: Some(c.handshake_timeout.as_secs()),
            idle_timeout_secs: Some(c.idle_timeout.as_secs()),
            ping_interval_secs: Some(c.ping_interval.as_secs()),
            join_deadline_secs: Some(c.join_deadline.as_secs()),
            max_sockets_per_ip: Some(c.max_sockets_per_ip),
            hsts: Some(c.hsts),
            metrics_token: c.metrics_token.clone(),
            metrics_listen: c.metrics_listen,
            panic_url: c.panic_url.clone(),
        }
    }

    /// The [`Config`] these settings describe: [`Config::default`] where a setting is unset,
    /// checked with [`Config::validate`].
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let secs = |v: Option<u64>, mul: u64, default: Duration| {
            v.map_or(default, |n| Duration::from_secs(n.saturating_mul(mul)))
        };
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let c = Config {
            listen: self.listen.unwrap_or(d.listen),
            data_dir: self.data_dir.clone().unwrap_or(d.data_dir),
            store_cache_bytes: self
                .store_cache_mb
                .map_or(d.store_cache_bytes, |mb| mb.saturating_mul(MIB)),
            max_ciphertext_bytes: self.max_ciphertext_bytes.unwrap_or(d.max_ciphertext_bytes),
            max_ws_message_bytes: self.max_ws_message_bytes.unwrap_or(d.max_ws_message_bytes),
            max_sockets_per_room: self.max_sockets_per_room.unwrap_or(d.max_sockets_per_room),
            max_failures: self.max_failures.unwrap_or(d.max_failures),
            first_lock: secs(self.lock_minutes, 60, d.first_lock),
            max_lock: secs(self.max_lock_minutes, 60, d.max_lock),
            lock_decay: secs(self.lock_decay_hours, 3600, d.lock_decay),
            join_floor: ms(self.join_floor_ms, d.join_floor),
            join_jitter: ms(self.join_jitter_ms, d.join_jitter),
            free_ttl: secs(self.free_ttl_hours, 3600, d.free_ttl),
            extended_ttl: secs(self.extended_ttl_hours, 3600, d.extended_ttl),
            extension_tokens: self.extension_tokens.unwrap_or(d.extension_tokens),
            upgrades_per_min: self.upgrades_per_min.unwrap_or(d.upgrades_per_min),
            room_creates_per_min: self.room_create_per_min.unwrap_or(d.room_creates_per_min),
            trust_forwarded_for: self.trust_forwarded_for.unwrap_or(d.trust_forwarded_for),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            handshake_timeout: secs(self.handshake_timeout_secs, 1, d.handshake_timeout),
            idle_timeout: secs(self.idle_timeout_secs, 1, d.idle_timeout),
            ping_interval: secs(self.ping_interval_secs, 1, d.ping_interval),
            join_deadline: secs(self.join_deadline_secs, 1, d.join_deadline),
            max_sockets_per_ip: self.max_sockets_per_ip.unwrap_or(d.max_sockets_per_ip),
            hsts: self.hsts.unwrap_or(d.hsts),
            metrics_token: self.metrics_token.clone().or(d.metrics_token),
            metrics_listen: self.metrics_listen.or(d.metrics_listen),
            panic_url: self
                .panic_url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .or(d.panic_url),
        };
        c.validate()?;
        Ok(c)
    }

    /// These settings as TOML (what `--print-config` shows), the metrics token redacted.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.metrics_token.is_some() {
            shown.metrics_token = Some("<redacted>".into());
        }
        toml::to_string(&shown).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_settings_and_validate() {
        let d = Config::default();
        d.validate().unwrap();
        let s = Settings::from_config(&d);
        let back = s.to_config().unwrap();
        assert_eq!(Settings::from_config(&back), s);
        // Unset settings are the defaults.
        assert_eq!(Settings::default().to_config().unwrap().listen, d.listen);
    }

    #[test]
    fn the_file_is_overridden_by_environment_and_flags() {
        let file =
            Settings::from_toml("lock_minutes = 5\nmax_failures = 3\nhsts = true\n").unwrap();
        let cli = Settings {
            max_failures: Some(7),
            ..Settings::default()
        };
        let c = file.overlaid_with(&cli).to_config().unwrap();
        assert_eq!(c.first_lock, Duration::from_secs(300));
        assert_eq!(c.max_failures, 7);
        assert!(c.hsts);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Settings::from_toml("lock_minuts = 5\n").unwrap_err();
        assert!(e.to_string().contains("lock_minuts"), "{e}");
        let e = Settings {
            max_failures: Some(0),
            ..Settings::default()
        }
        .to_config()
        .unwrap_err();
        assert_eq!(
            (e.setting.as_str(), e.value.as_str()),
            ("max_failures", "0")
        );
        let e = Settings {
            lock_minutes: Some(60),
            max_lock_minutes: Some(30),
            ..Settings::default()
        }
        .to_config()
        .unwrap_err();
        assert_eq!(e.setting, "max_lock_minutes");
        let e = Settings {
            ping_interval_secs: Some(100),
            ..Settings::default()
        }
        .to_config()
        .unwrap_err();
        assert!(e.to_string().starts_with("ping_interval_secs = 100"), "{e}");
    }

    #[test]
    fn print_config_is_toml_that_reads_back() {
        let s = Settings::from_config(&Config::default());
        let text = s.to_toml();
        assert!(text.contains("lock_minutes = 30"), "{text}");
        assert_eq!(Settings::from_toml(&text).unwrap(), s);
        let secret = Settings {
            metrics_token: Some("a-very-secret-token".into()),
            ..Settings::default()
        };
        assert!(!secret.to_toml().contains("a-very-secret"));
        assert!(secret.to_toml().contains("<redacted>"));
        let config = Config {
            metrics_token: Some("a-very-secret-token".into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("a-very-secret"));
    }
}
