//! Blind extension tokens: the hashes of operator-minted secrets that are still unused, in a sled
//! database of their own, never linked to a room.
//!
//! A token is minted as a 32-byte random secret (64 lowercase hex, CRYPTO.md); only its SHA-256,
//! taken over the hex text, is stored here, with the time after which it can no longer be
//! redeemed. Redeeming removes the entry: sled's `remove` hands the old value to exactly one
//! caller, so of two rooms redeeming one token at once exactly one wins, and a used token is
//! simply unknown afterwards.
//!
//! Why a database of its own (`<data_dir>/tokens/`) rather than a tree beside the room records:
//! sled writes one log per database, and a token removed in the same batch as a room's record
//! update would sit next to that room's locator in the log for as long as the segment lives,
//! which links the token (and whoever it was sold to) to the room. Two databases share no log.
//!
//! Trees:
//! - `unused`: SHA-256(secret) (32 bytes) → `[version = 1][redeem-by, Unix ms, 8 bytes BE]`.
//! - `meta`: aggregate counters only (`redeemed`, `swept`), 8 bytes BE each.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::open_waiting_for_lock;
use crate::StoreError;

/// The token database's directory inside the data directory.
pub const TOKENS_DIR: &str = "tokens";

const UNUSED_TREE: &str = "unused";
const META_TREE: &str = "meta";
const REDEEMED_KEY: &[u8] = b"redeemed";
const SWEPT_KEY: &[u8] = b"swept";
const VALUE_VERSION: u8 = 1;

/// What redeeming a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// The token was unused and valid; it is used now (and gone from the store).
    Won(TokenHold),
    /// No such unused token: never minted, already used, or past its redeem-by time.
    Invalid,
}

/// What is needed to put a redeemed token back if the room's extension then fails to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHold {
    hash: [u8; 32],
    redeem_by_ms: u64,
}

/// Counts of tokens by state: nothing else about them is ever shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// Minted, not used, still redeemable.
    pub unused: u64,
    /// Minted, not used, past their redeem-by time, not yet swept.
    pub expired: u64,
    /// Used (an aggregate count; which token or room is not kept).
    pub redeemed: u64,
    /// Expired unused tokens the sweep removed (an aggregate count).
    pub swept: u64,
}

/// A cheap, cloneable handle to the token database.
#[derive(Clone)]
pub struct TokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    unused: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for TokenStore {
    // Counts only: the handle must be safe to log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("unused", &self.inner.unused.len())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a token secret's text, as stored (and as the spec's vectors give it).
pub fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new token secret: 32 random bytes as 64 lowercase hex (CRYPTO.md).
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

impl TokenStore {
    /// Opens (creating if needed) the token database in `data_dir/tokens/`. While another
    /// process holds it (a running relay), this fails with [`StoreError::Busy`] after a short
    /// wait.
    pub fn open(data_dir: &Path) -> Result<TokenStore, StoreError> {
        let dir = data_dir.join(TOKENS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let config = sled::Config::new()
            .path(&dir)
            // A few thousand 41-byte entries: the smallest cache sled takes is plenty.
            .cache_capacity(1024 * 1024)
            .mode(sled::Mode::LowSpace);
        let db = open_waiting_for_lock(&config).map_err(|e| match e {
            StoreError::Sled(sled::Error::Io(io)) if crate::store::is_lock_busy(&io) => {
                StoreError::Busy { path: dir.clone() }
            }
            other => other,
        })?;
        let unused = db.open_tree(UNUSED_TREE)?;
        let meta = db.open_tree(META_TREE)?;
        Ok(TokenStore {
            inner: Arc::new(Inner { db, unused, meta }),
        })
    }

    /// Adds unused tokens by hash, redeemable until `redeem_by_ms`, and makes them durable.
    /// Returns how many were new (a hash already present keeps its own redeem-by time).
    pub fn add(&self, hashes: &[[u8; 32]], redeem_by_ms: u64) -> Result<usize, StoreError> {
        let value = encode(redeem_by_ms);
        let mut added = 0;
        for h in hashes {
            let r = self.inner.unused.compare_and_swap(
                &h[..],
                None as Option<&[u8]>,
                Some(&value[..]),
            )?;
            if r.is_ok() {
                added += 1;
            }
        }
        self.inner.db.flush()?;
        Ok(added)
    }

    /// Uses up the token with this hash if it is unused and redeemable at `now_ms`. The removal
    /// is atomic (one winner) but not yet flushed: call [`TokenStore::flush`] before relying on
    /// it, and [`TokenStore::restore`] if what the token paid for could not be stored.
    pub fn redeem(&self, hash: &[u8; 32], now_ms: u64) -> Result<Redeemed, StoreError> {
        let Some(old) = self.inner.unused.remove(&hash[..])? else {
            return Ok(Redeemed::Invalid);
        };
        match decode(&old) {
            Some(redeem_by_ms) if now_ms <= redeem_by_ms => {
                self.bump(REDEEMED_KEY, 1)?;
                Ok(Redeemed::Won(TokenHold {
                    hash: *hash,
                    redeem_by_ms,
                }))
            }
            // Expired (the sweep would have removed it anyway) or unreadable: not a token.
            _ => Ok(Redeemed::Invalid),
        }
    }

    /// Puts back a token that [`TokenStore::redeem`] handed out, when the extension it paid for
    /// could not be stored, so the holder can try again.
    pub fn restore(&self, hold: TokenHold) -> Result<(), StoreError> {
        self.inner
            .unused
            .insert(&hold.hash[..], &encode(hold.redeem_by_ms)[..])?;
        self.bump(REDEEMED_KEY, -1)?;
        Ok(())
    }

    /// Writes every change made so far to disk and fsyncs, on tokio's blocking pool.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || inner.db.flush()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Sled(e)),
            Err(_) => Err(StoreError::FlushAborted),
        }
    }

    /// Removes unused tokens whose redeem-by time is before `now_ms`; returns how many. A full
    /// scan: tokens are few (operators mint them by hand), and this runs rarely.
    pub fn sweep(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut swept = 0;
        for entry in self.inner.unused.iter() {
            let (k, v) = entry?;
            if decode(&v).is_none_or(|by| by < now_ms) {
                // Only if unchanged, so a token redeemed meanwhile is not counted twice.
                if self
                    .inner
                    .unused
                    .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                    .is_ok()
                {
                    swept += 1;
                }
            }
        }
        if swept > 0 {
            self.bump(SWEPT_KEY, swept as i64)?;
            self.inner.db.flush()?;
        }
        Ok(swept)
    }

    /// Counts by state at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> Result<TokenCounts, StoreError> {
        let mut c = TokenCounts {
            redeemed: self.counter(REDEEMED_KEY)?,
            swept: self.counter(SWEPT_KEY)?,
            ..TokenCounts::default()
        };
        for v in self.inner.unused.iter().values() {
            match decode(&v?) {
                Some(by) if by >= now_ms => c.unused += 1,
                _ => c.expired += 1,
            }
        }
        Ok(c)
    }

    fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .meta
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    fn bump(&self, key: &[u8], by: i64) -> Result<(), StoreError> {
        self.inner.meta.update_and_fetch(key, |old| {
            let n = old
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map_or(0, u64::from_be_bytes);
            Some(n.saturating_add_signed(by).to_be_bytes().to_vec())
        })?;
        Ok(())
    }
}

fn encode(redeem_by_ms: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = VALUE_VERSION;
    out[1..].copy_from_slice(&redeem_by_ms.to_be_bytes());
    out
}

fn decode(v: &[u8]) -> Option<u64> {
    let (&version, rest) = v.split_first()?;
    if version != VALUE_VERSION {
        return None;
    }
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> TokenStore {
        TokenStore::open(dir).unwrap()
    }

    #[test]
    fn secrets_are_64_lowercase_hex_and_hash_as_the_spec_says() {
        let s = new_secret();
        assert_eq!(s.len(), 64);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(s, new_secret());
        // The spec's vector: SHA-256 over the hex text, not the raw bytes.
        let h = token_hash(&"a".repeat(64));
        assert_eq!(
            hex::encode(h),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"
        );
    }

    #[test]
    fn a_token_redeems_once_and_not_after_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(dir.path());
        let a = token_hash("a");
        let b = token_hash("b");
        assert_eq!(t.add(&[a, b, a], 1_000).unwrap(), 2);
        assert!(matches!(t.redeem(&a, 1_000).unwrap(), Redeemed::Won(_)));
        assert_eq!(t.redeem(&a, 1_000).unwrap(), Redeemed::Invalid);
        assert_eq!(t.redeem(&b, 1_001).unwrap(), Redeemed::Invalid);
        assert_eq!(t.redeem(&token_hash("c"), 0).unwrap(), Redeemed::Invalid);
        let c = t.counts(0).unwrap();
        assert_eq!((c.unused, c.expired, c.redeemed), (0, 0, 1));
    }

    #[test]
    fn restore_puts_a_token_back() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(dir.path());
        let a = token_hash("a");
        t.add(&[a], 5_000).unwrap();
        let Redeemed::Won(hold) = t.redeem(&a, 0).unwrap() else {
            panic!("not won")
        };
        t.restore(hold).unwrap();
        assert_eq!(t.counts(0).unwrap().redeemed, 0);
        assert!(matches!(t.redeem(&a, 5_000).unwrap(), Redeemed::Won(_)));
    }

    #[test]
    fn sweep_removes_only_expired_tokens_and_counts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let t = open(dir.path());
            t.add(&[token_hash("old")], 100).unwrap();
            t.add(&[token_hash("new")], 10_000).unwrap();
            let c = t.counts(200).unwrap();
            assert_eq!((c.unused, c.expired), (1, 1));
            assert_eq!(t.sweep(200).unwrap(), 1);
            assert_eq!(t.sweep(200).unwrap(), 0);
        }
        let t = open(dir.path());
        let c = t.counts(200).unwrap();
        assert_eq!((c.unused, c.expired, c.swept), (1, 0, 1));
    }

    #[test]
    fn one_winner_among_racing_redeemers() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(dir.path());
        let hashes: Vec<[u8; 32]> = (0..200).map(|i| token_hash(&i.to_string())).collect();
        t.add(&hashes, u64::MAX).unwrap();
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for h in &hashes {
                        if matches!(t.redeem(h, 0).unwrap(), Redeemed::Won(_)) {
                            wins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 200);
        assert_eq!(t.counts(0).unwrap().redeemed, 200);
    }

    #[test]
    fn a_second_open_reports_busy() {
        let dir = tempfile::tempdir().unwrap();
        let _t = open(dir.path());
        assert!(matches!(
            TokenStore::open(dir.path()),
            Err(StoreError::Busy { .. })
        ));
    }
}
