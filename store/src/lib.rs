//! The relay's durable lockout/TTL store: per-room records in one sled database.
//!
//! The relay is ephemeral by design: messages live only in memory and are gone when a room's
//! actor stops. What must survive a restart is much smaller: that a room exists and when it
//! expires, its tier, who holds its seats (as hashes), how many wrong PINs and pairing codes
//! it has seen, and until when it is locked. Without that, a restart would wipe every lockout.
//!
//! **The store never holds message content**: no ciphertext, no IVs, no plaintext, no client
//! addresses. A [`RoomRecord`] has no field that could carry them.
//!
//! Values are bincode 2 behind a one-byte format version; an expiry index ordered by time lets
//! the sweeper find due rooms ([`Store::due`]) and sleep until the next one
//! ([`Store::next_expiry_ms`]) without scanning the store.
//!
//! # Layout
//! - [`store`](crate::Store): the [`Store`] handle, its [`StoreConfig`], the two trees and the
//!   transactions that keep them in step.
//! - `record`: [`RoomRecord`] and its parts, and their versioned encoding.
//! - `error`: [`StoreError`], the crate's one error type.
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod record;
mod store;

pub use error::StoreError;
pub use record::{Guard, RoomKey, RoomRecord, Seat, Tier};
pub use store::{Store, StoreConfig};
