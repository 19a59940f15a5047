//! The sTELgano-std-1 wire protocol, defined once for the relay, the client and the bench.
//!
//! # Layout
//! - [`limits`]: the protocol's default limits as constants.
//! - [`reason`]: every error reason string of the spec, as one enum.
//! - [`check`]: validation of hashes, base64 and timestamps, shared so all sides agree.
//! - [`client`]: frames a client sends (`{"event","ref","data"}`): typed data, lenient parsing
//!   for the relay, encoding for clients.
//! - [`server`]: frames the relay sends (replies and broadcasts): typed payloads, encoding for the
//!   relay, parsing for clients.

pub mod check;
pub mod client;
pub mod limits;
pub mod reason;
pub mod server;

pub use client::{ClientEvent, Inbound, ParseError};
pub use reason::Reason;
pub use server::{Broadcast, ErrorBody, MessagePayload, ServerFrame};
