//! sTELgano-std-1 on the user's side: cryptography, a typed async client, and the `stelgano` CLI.
//!
//! # Layout
//! - [`crypto`]: the std-1 hashes, the room key, AES-256-GCM sealing, pairing codes.
//! - [`ws`]: the WebSocket upgrade to a relay (shared with the bench).
//! - [`error`]: [`ClientError`], the crate's one error enum, carrying the relay's reasons.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod crypto;
pub mod error;
pub mod ws;

pub use error::ClientError;
