//! Hooks for the cargo-fuzz targets under `fuzz/`: the reader's pure checks, reachable only with
//! the `fuzzing` feature so the relay's public API does not grow.

use stelgano_proto::client::JoinData;

use crate::socket::{self, Assembled};

/// The WebSocket frame reader, for the `frame_reader` target.
pub mod frames {
    pub use crate::socket::frames::{close_payload_ok, Frame, FrameReader, Next, OpCode};
}
use crate::error::RelayError;
use crate::socket::frames::OpCode;

/// The reader's close for a frame or message over the limit.
pub const CLOSE_TOO_BIG: Close = socket::CLOSE_TOO_BIG;
/// The reader's close for broken framing or fragmentation.
pub const CLOSE_PROTOCOL: Close = socket::CLOSE_PROTOCOL;

/// A close the reader sends: code and reason.
pub type Close = (u16, &'static str);

/// A whole data message: its first frame's opcode and the payload.
pub type Message = (OpCode, Vec<u8>);

/// A join's hashes as the reader passes them to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinHashes {
    pub sender: [u8; 32],
    pub access: [u8; 32],
    /// The pairing code's bytes when it is 64 lowercase hex.
    pub otp: Option<[u8; 32]>,
    /// A pairing code was given but is not 64 lowercase hex (a wrong code, when one is needed).
    pub otp_malformed: bool,
}

/// [`socket::check_join`].
pub fn check_join(data: &JoinData) -> Result<JoinHashes, RelayError> {
    socket::check_join(data).map(|h| JoinHashes {
        sender: h.sender,
        access: h.access,
        otp: match h.otp {
            crate::room::Otp::Hash(b) => Some(b),
            _ => None,
        },
        otp_malformed: h.otp == crate::room::Otp::Malformed,
    })
}

/// [`socket::check_body`]: a send or edit's ciphertext and IV as the reader checks them.
pub fn check_body(
    ciphertext: Option<String>,
    iv: Option<String>,
    max: usize,
) -> Result<(String, String), RelayError> {
    socket::check_body(ciphertext, iv, max)
}

/// The reader's reassembly of fragmented data messages, with the close each failure gets.
#[derive(Debug)]
pub struct Assembler {
    partial: Option<(OpCode, Vec<u8>)>,
    max: usize,
}

impl Assembler {
    pub fn new(max: usize) -> Assembler {
        Assembler { partial: None, max }
    }

    /// Feeds one data frame: `Ok(Some(message))` when one is complete, `Ok(None)` while a
    /// fragmented one is open, `Err(close)` when the socket is to be closed.
    pub fn push(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: Vec<u8>,
    ) -> Result<Option<Message>, Close> {
        match socket::assemble(&mut self.partial, opcode, fin, payload, self.max) {
            Assembled::More => Ok(None),
            Assembled::Done(op, bytes) => Ok(Some((op, bytes))),
            Assembled::TooBig => Err(CLOSE_TOO_BIG),
            Assembled::Bad => Err(CLOSE_PROTOCOL),
        }
    }

    /// Bytes held for an unfinished fragmented message.
    pub fn pending(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, b)| b.len())
    }
}

/// Runs the room core through the session that `data` encodes (two bytes a step, see
/// `room::check::Step::from_bytes`), checking the room's invariants after every step; the
/// first one broken is the error.
pub fn room_session(data: &[u8]) -> Result<(), String> {
    let mut steps = vec![crate::room::check::Step::Owner(0)];
    steps.extend(crate::room::check::Step::from_bytes(data));
    crate::room::check::run(&steps)
}
