//! stelgano-bench: load scenarios against a relay on this machine, bare WebSocket baselines,
//! and reports (table, JSON, charts).
//!
//! # Layout
//! - [`cli`]: flags and the top-level run; `main.rs` only builds the runtime.
//! - [`target`]: the loopback-only target URL and the source addresses sockets bind to.
//! - [`ws`]: client WebSockets bound to a chosen source address.
//! - [`echo`]: the baselines: echo (one frame in, one out) and fanout pairs (one in, two out).
//! - [`identity`]: random room hashes, pairing codes and pre-encoded frames.
//! - [`inbound`]: a cheap classification of relay frames for the hot loop.
//! - [`exchange`]: the turn-based exchange of one room as a state machine.
//! - [`scenario`]: pingpong, idle, deaddrop, joins, and what they share.
//! - [`growth`]: a relay process on stores of growing size: disk, start, RSS, joins, the sweep.
//! - [`stats`]: latency histograms and error tallies; [`procfs`]: server RSS and CPU.
//! - [`report`]: report math, JSON and table; [`plot`]: charts.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod echo;
pub mod error;
pub mod exchange;
pub mod growth;
pub mod identity;
pub mod inbound;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod target;
pub mod ws;

pub use error::BenchError;
