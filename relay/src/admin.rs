//! Extension-token administration: minting and counting tokens, whether or not a relay is
//! running on the data directory, and the relay's side of that (a Unix socket only its owner
//! can reach, and the sweep of expired tokens).
//!
//! sled locks its database for one process, so while a relay runs, `stelgano-relay tokens`
//! cannot open the token store itself. The relay therefore listens on
//! `<data_dir>/admin/admin.sock`, in a directory of mode 0700: whoever can reach it could read
//! the data directory anyway. Secrets are made by the command, never by the relay, and only
//! their hashes cross the socket: the relay never sees a secret until someone redeems it.
//!
//! The socket speaks one JSON line each way per connection, bounded in size and time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stelgano_proto::check::{hex64, to_hex64};
use stelgano_store::{new_secret, token_hash, TokenCounts, TokenStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tracing::{debug, info, warn};

use crate::error::RelayError;
use crate::Shared;

/// Most tokens one `mint` makes.
pub const MAX_MINT: u32 = 10_000;
/// Longest a token may stay redeemable, in days.
pub const MAX_DAYS: u32 = 3_650;
/// How often the relay removes unused tokens past their redeem-by time.
const SWEEP_EVERY: Duration = Duration::from_secs(3_600);
/// Largest request line: 10,000 hashes of 66 characters and some JSON.
const MAX_REQUEST: u64 = 1 << 20;
/// A client of the admin socket has this long for its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the admin socket lives inside a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin").join("admin.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    /// Add these token hashes (64-hex), redeemable until `redeem_by_ms`.
    Add {
        hashes: Vec<String>,
        redeem_by_ms: u64,
    },
    Counts,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Added { added: usize },
    Counts(Counts),
    Error { error: String },
}

/// Token counts by state, as `tokens list` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub unused: u64,
    pub expired: u64,
    pub redeemed: u64,
    pub swept: u64,
}

impl From<TokenCounts> for Counts {
    fn from(c: TokenCounts) -> Self {
        Counts {
            unused: c.unused,
            expired: c.expired,
            redeemed: c.redeemed,
            swept: c.swept,
        }
    }
}

/// Mints `count` tokens redeemable for `days` days and returns their secrets, the only copy
/// there will ever be. Goes through the running relay's admin socket if there is one, else
/// opens the token store directly.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let secrets = stelgano_relay::admin::mint(dir.path(), 3, 30).await?;
/// assert_eq!(secrets.len(), 3);
/// let counts = stelgano_relay::admin::counts(dir.path()).await?;
/// assert_eq!(counts.unused, 3);
/// # Ok(()) }
/// ```
pub async fn mint(data_dir: &Path, count: u32, days: u32) -> Result<Vec<String>, RelayError> {
    if count == 0 || count > MAX_MINT {
        return Err(RelayError::Admin(format!(
            "--count must be 1 to {MAX_MINT}, not {count}"
        )));
    }
    if days == 0 || days > MAX_DAYS {
        return Err(RelayError::Admin(format!(
            "--days must be 1 to {MAX_DAYS}, not {days}"
        )));
    }
    let secrets: Vec<String> = (0..count).map(|_| new_secret()).collect();
    let hashes: Vec<[u8; 32]> = secrets.iter().map(|s| token_hash(s)).collect();
    let redeem_by_ms = crate::Clock::new()
        .now_ms()
        .saturating_add(u64::from(days) * 86_400_000);
    let request = Request::Add {
        hashes: hashes.iter().map(to_hex64).collect(),
        redeem_by_ms,
    };
    let added = match ask_relay(data_dir, &request).await? {
        Some(Reply::Added { added }) => added,
        Some(other) => return Err(unexpected(other)),
        None => {
            let dir = data_dir.to_owned();
            blocking(move || TokenStore::open(&dir)?.add(&hashes, redeem_by_ms)).await?
        }
    };
    if added != secrets.len() {
        // Only a 1-in-2^256 collision with an existing token could do this.
        return Err(RelayError::Admin(format!(
            "only {added} of {} tokens were new; mint again",
            secrets.len()
        )));
    }
    Ok(secrets)
}

/// Token counts by state, from the running relay or the store itself.
pub async fn counts(data_dir: &Path) -> Result<Counts, RelayError> {
    match ask_relay(data_dir, &Request::Counts).await? {
        Some(Reply::Counts(c)) => Ok(c),
        Some(other) => Err(unexpected(other)),
        None => {
            let dir = data_dir.to_owned();
            let now = crate::Clock::new().now_ms();
            blocking(move || TokenStore::open(&dir)?.counts(now))
                .await
                .map(Counts::from)
        }
    }
}

fn unexpected(reply: Reply) -> RelayError {
    match reply {
        Reply::Error { error } => RelayError::Admin(format!("the relay refused: {error}")),
        _ => RelayError::Admin("the relay gave an unexpected answer".into()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, stelgano_store::StoreError> + Send + 'static,
) -> Result<T, RelayError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| match e {
            stelgano_store::StoreError::Busy { .. } => RelayError::Admin(
                "the token store is in use by a relay that does not accept extension tokens \
                 (or has no admin socket); stop it, or run it with --extension-tokens"
                    .into(),
            ),
            e => e.into(),
        }),
        Err(_) => Err(RelayError::Admin("the token store task failed".into())),
    }
}

/// Sends `request` to the relay running on `data_dir`, if one is listening. `Ok(None)`: no relay
/// answers there (no socket, or a stale one).
#[cfg(unix)]
async fn ask_relay(data_dir: &Path, request: &Request) -> Result<Option<Reply>, RelayError> {
    let path = socket_path(data_dir);
    let stream = match tokio::net::UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)
        .map_err(|e| RelayError::Admin(format!("cannot encode the request: {e}")))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    let mut answer = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        BufReader::new(read)
            .take(MAX_REQUEST)
            .read_line(&mut answer),
    )
    .await;
    match read {
        Ok(Ok(_)) => serde_json::from_str(&answer)
            .map(Some)
            .map_err(|_| RelayError::Admin("the relay gave an unreadable answer".into())),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(RelayError::Admin("the relay did not answer in time".into())),
    }
}

#[cfg(not(unix))]
async fn ask_relay(_: &Path, _: &Request) -> Result<Option<Reply>, RelayError> {
    Ok(None)
}

/// The relay's admin socket, bound before the relay reports itself started (so a `tokens`
/// command run right after start finds it). `None`, with a warning, when it cannot be made:
/// then tokens can be minted only while the relay is stopped.
#[cfg(unix)]
pub(crate) fn bind(data_dir: &Path) -> Option<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let path = socket_path(data_dir);
    let dir = path.parent()?;
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)));
    if let Err(e) = made {
        warn!(error = %e, "no admin socket (tokens can be minted only while the relay is stopped)");
        return None;
    }
    // This process holds the store's lock, so a socket file left here is a crashed relay's.
    let _ = std::fs::remove_file(&path);
    match tokio::net::UnixListener::bind(&path) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(error = %e, "no admin socket (tokens can be minted only while the relay is stopped)");
            None
        }
    }
}

/// Serves the admin socket until shutdown, then removes the socket file.
#[cfg(unix)]
pub(crate) async fn serve(
    shared: Arc<Shared>,
    tokens: TokenStore,
    listener: tokio::net::UnixListener,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let tokens = tokens.clone();
                let clock = shared.clock;
                shared.tasks.spawn(async move {
                    if let Err(e) = answer(stream, &tokens, clock).await {
                        debug!(error = %e, "admin request failed");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_file(socket_path(&shared.config.data_dir));
}

#[cfg(not(unix))]
pub(crate) fn bind(_: &Path) -> Option<()> {
    None
}

#[cfg(not(unix))]
pub(crate) async fn serve(_: Arc<Shared>, _: TokenStore, _: ()) {}

#[cfg(unix)]
async fn answer(
    stream: tokio::net::UnixStream,
    tokens: &TokenStore,
    clock: crate::Clock,
) -> Result<(), RelayError> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let got = tokio::time::timeout(
        REQUEST_TIMEOUT,
        BufReader::new(read).take(MAX_REQUEST).read_line(&mut line),
    )
    .await;
    let reply = match got {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(request, tokens, clock).await,
            Err(_) => Reply::Error {
                error: "not a request this relay understands".into(),
            },
        },
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => Reply::Error {
            error: "request timed out".into(),
        },
    };
    let mut out = serde_json::to_vec(&reply)
        .map_err(|e| RelayError::Admin(format!("cannot encode the reply: {e}")))?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await?;
    Ok(())
}

async fn handle(request: Request, tokens: &TokenStore, clock: crate::Clock) -> Reply {
    let tokens = tokens.clone();
    let run = move || match request {
        Request::Add {
            hashes,
            redeem_by_ms,
        } => {
            if hashes.len() > MAX_MINT as usize {
                return Reply::Error {
                    error: format!("at most {MAX_MINT} tokens at a time"),
                };
            }
            let Some(parsed) = hashes
                .iter()
                .map(|h| hex64(h))
                .collect::<Option<Vec<[u8; 32]>>>()
            else {
                return Reply::Error {
                    error: "a token hash is not 64 lowercase hex".into(),
                };
            };
            match tokens.add(&parsed, redeem_by_ms) {
                Ok(added) => Reply::Added { added },
                Err(e) => Reply::Error {
                    error: e.to_string(),
                },
            }
        }
        Request::Counts => match tokens.counts(clock.now_ms()) {
            Ok(c) => Reply::Counts(c.into()),
            Err(e) => Reply::Error {
                error: e.to_string(),
            },
        },
    };
    tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|_| Reply::Error {
            error: "the token store task failed".into(),
        })
}

/// Removes unused tokens past their redeem-by time: at start, then every hour.
pub(crate) async fn sweep(shared: Arc<Shared>, tokens: TokenStore) {
    loop {
        let now = shared.clock.now_ms();
        let t = tokens.clone();
        match tokio::task::spawn_blocking(move || t.sweep(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(tokens = n, "expired unused extension tokens removed"),
            Ok(Err(e)) => warn!(error = %e, "token sweep failed"),
            Err(_) => warn!("token sweep task failed"),
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
