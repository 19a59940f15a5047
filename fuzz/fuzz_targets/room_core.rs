//! Fuzz target: sequences of commands against one room's core (relay/src/room/core.rs), the
//! room's decisions with no I/O. The input is a session, two bytes a step (joins by the owners,
//! strangers and a claimant with a right or wrong code, sends, receipts, edits, deletes, a pairing
//! reset, a burn, time passing, a store that refuses the next write).
//!
//! Checked after every step (relay/src/room/check.rs): a locked room lets no join through, the
//! right PIN included, and reports every refused attempt; at most one message, and a turn is
//! never taken twice; counters go down only by their documented resets; seats are never lost or
//! swapped; a write the store refused changes nothing; no panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stelgano_relay::fuzzing::room_session;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = room_session(data) {
        panic!("room invariant broken: {broken}");
    }
});
