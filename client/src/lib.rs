//! sTELgano-std-1 on the user's side: cryptography, a typed async client, and the `stelgano` CLI.
//!
//! # Layout
//! - [`crypto`]: the std-1 hashes, the room key, AES-256-GCM sealing, pairing codes.
//! - [`client`]: [`Client`] (connected) → [`Room`] (joined): send, edit, delete, receipts,
//!   typing, expire, and decoded [`Event`]s; [`open`] derives the key while connecting.
//! - [`http`]: the relay URL and the `exists` look-up.
//! - `connection` (private): the reader task that routes replies by `ref`.
//! - [`ws`]: the WebSocket upgrade to a relay (shared with the bench).
//! - [`error`]: [`ClientError`], the crate's one error enum, carrying the relay's reasons.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
mod connection;
pub mod crypto;
pub mod error;
pub mod http;
pub mod ws;

pub use client::{open, Client, Event, JoinInfo, JoinOptions, Message, Room, Undecryptable};
pub use error::ClientError;
pub use http::RelayUrl;
