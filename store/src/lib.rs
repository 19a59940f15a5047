//! The relay's durable lockout/TTL store: sealed per-room records in one sled database.
//!
//! The relay is ephemeral by design: messages live only in memory and are gone when a room's
//! actor stops. What must survive a restart is much smaller: that a room exists and when it
//! expires, its tier, who holds its seats (as hashes), how many wrong PINs and pairing codes
//! it has seen, and until when it is locked. Without that, a restart would wipe every lockout.
//!
//! **The store never holds message content**: no ciphertext, no IVs, no plaintext, no client
//! addresses. A [`RoomRecord`] has no field that could carry them.
//!
//! **Nothing on disk identifies a room without its room hash** (format 2). sled is
//! log-structured: a removed value's bytes stay in its files until some later compaction, if
//! ever. So the design does not rely on deletion. A record is keyed by its [`Locator`], a
//! one-way hash of the room hash, and its value is sealed with AES-256-GCM under a key also
//! derived from the room hash ([`RoomKeys`]); only the version byte and the expiry stay in
//! clear, for the sweeper. Once a room is burned or expires and its hash is forgotten, what sled
//! still keeps of it is a locator and ciphertext, from which no room, access, sender or pairing
//! hash can be read. A format-1 database (hashes in clear) found in the data directory is
//! migrated and its files deleted on open.
//!
//! Beside each record the store keeps its position on nginx's consistent-hash ring (a CRC32 of
//! the room hash's hex form), so that a deployment of several relays can move records to a new
//! owner by ring position without any room hash (docs/SCALING.md).
//!
//! An expiry index ordered by time lets the sweeper find due rooms ([`Store::due`]) and sleep
//! until the next one ([`Store::next_expiry_ms`]) without scanning the store.
//!
//! sled 0.34 keeps failing after one I/O error. The store notices ([`Store::is_healthy`],
//! [`Store::epoch`]) and [`Store::recover`] reopens the database once writes work again.
//!
//! # Layout
//! - [`store`](crate::Store): the [`Store`] handle, its [`StoreConfig`], the trees, the
//!   transactions that keep them in step, health and recovery.
//! - `keys`: [`RoomKeys`] and [`Locator`], what the store derives from a room hash.
//! - `record`: [`RoomRecord`] and its parts, and the sealed format-2 encoding.
//! - `migrate`: reading a format-1 database into format 2 ([`Migration`]).
//! - `tokens`: [`TokenStore`], the unused extension tokens, in a database of their own.
//! - `error`: [`StoreError`], the crate's one error type.
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod count;
mod error;
mod keys;
mod migrate;
mod record;
mod store;
mod tokens;

pub use error::StoreError;
pub use keys::{ring_position, Locator, RoomKeys};
pub use migrate::Migration;
pub use record::{Guard, RoomKey, RoomRecord, Seat, Tier};
pub use store::{Inserted, SealedRecord, Store, StoreConfig, MAX_SEALED_LEN};
pub use tokens::{
    new_secret, token_hash, Redeemed, TokenCounts, TokenHold, TokenStore, TOKENS_DIR,
};

/// Hooks for the cargo-fuzz targets under `fuzz/`: the stored-value codec, reachable only with
/// the `fuzzing` feature so the store's public API does not grow.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::{RoomKeys, RoomRecord, StoreError};

    /// Seals a record as the store writes it.
    pub fn seal(keys: &RoomKeys, rec: &RoomRecord) -> Result<Vec<u8>, StoreError> {
        crate::record::seal(keys, rec)
    }

    /// Opens a stored value as the store reads it.
    pub fn open(keys: &RoomKeys, bytes: &[u8]) -> Result<RoomRecord, StoreError> {
        crate::record::open(keys, bytes)
    }

    /// The clear expiry header of a stored value.
    pub fn header_expiry(bytes: &[u8]) -> Result<u64, StoreError> {
        crate::record::header_expiry(bytes)
    }
}
