//! Fuzz target: the relay's client-frame reader (`relay/src/frames.rs`) and the reassembly of
//! fragmented messages behind it, fed arbitrary bytes in arbitrary read chunks.
//!
//! Input layout: byte 0 picks the payload limit, byte 1 seeds the read sizes (0: one read of
//! everything, as far as the reader takes it; bit 7: every other poll is `Pending` first), the
//! rest is the stream. Checked: no panic; the frames and the final outcome are the same as an
//! independent one-shot reading of the whole stream, so they cannot depend on how the bytes
//! were cut; no frame or message is above the limit; control frames are short and final; the
//! two failures close with the documented 1009 `message_too_big` and 1002 `protocol_error`.

#![no_main]

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use stelgano_relay::fuzzing::frames::{close_payload_ok, Frame, FrameReader, Next, OpCode};
use stelgano_relay::fuzzing::{Assembler, CLOSE_PROTOCOL, CLOSE_TOO_BIG};
use tokio::io::{AsyncRead, ReadBuf};

/// Limits around every length boundary of the framing: 7-bit, 16-bit and 64-bit lengths, the
/// control-frame cap, and the relay's default of 64 KiB.
const LIMITS: [usize; 8] = [0, 1, 125, 126, 1000, 65_535, 65_536, 70_000];

/// A stream that hands out its bytes in the sizes `cuts` asks for, optionally returning
/// `Pending` (and waking itself) before every read.
struct Chunked<'a> {
    rest: &'a [u8],
    cuts: Cuts,
    stall: bool,
    stalled: bool,
}

/// A tiny xorshift generator: the read sizes come from the input, reproducibly.
struct Cuts {
    state: u32,
    most: usize,
}

impl Cuts {
    fn next(&mut self) -> usize {
        if self.most == 0 {
            return usize::MAX;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.most
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.stall && !self.stalled {
            self.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.stalled = false;
        let n = self.cuts.next().min(self.rest.len()).min(buf.remaining());
        let (head, tail) = self.rest.split_at(n);
        buf.put_slice(head);
        self.rest = tail;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future whose only waits are `Chunked`'s stalls, which wake at once.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    let mut polls = 0u32;
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        polls += 1;
        assert!(polls < 1_000_000, "the reader never finished");
    }
}

/// How a reading ends, comparable between the reader and the model.
#[derive(Debug, PartialEq, Eq)]
enum End {
    TooLarge,
    Protocol,
    Ended,
}

fn read_all(stream: &[u8], max: usize, seed: u8) -> (Vec<Frame>, End) {
    let mut src = Chunked {
        rest: stream,
        cuts: Cuts {
            state: u32::from(seed).wrapping_mul(0x9E37_79B9) | 1,
            most: usize::from(seed & 0x7F),
        },
        stall: seed & 0x80 != 0,
        stalled: false,
    };
    let mut reader = FrameReader::new(max);
    let mut frames = Vec::new();
    let end = run(async {
        loop {
            match reader.next(&mut src).await {
                Next::Frame(f) => frames.push(f),
                Next::TooLarge => return End::TooLarge,
                Next::Protocol => return End::Protocol,
                Next::Ended => return End::Ended,
            }
        }
    });
    (frames, end)
}

/// RFC 6455 §5.2 read straight off the whole stream, written apart from the reader: the checks
/// in the order the reader makes them (a header's first two bytes, then its length, then the
/// payload), so both must agree on every input.
fn model(stream: &[u8], max: usize) -> (Vec<Frame>, End) {
    let mut frames = Vec::new();
    let mut at = stream;
    loop {
        let [b0, b1, ..] = *at else {
            return (frames, End::Ended);
        };
        let opcode = match b0 & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return (frames, End::Protocol),
        };
        let fin = b0 >> 7 == 1;
        if (b0 >> 4) & 0x7 != 0 || b1 >> 7 == 0 {
            return (frames, End::Protocol);
        }
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        if at.len() < 2 + ext {
            return (frames, End::Ended);
        }
        let len: u128 = if ext == 0 {
            u128::from(b1 & 0x7F)
        } else {
            at[2..2 + ext]
                .iter()
                .fold(0u128, |n, b| (n << 8) | u128::from(*b))
        };
        if len >= 1 << 63 {
            return (frames, End::Protocol);
        }
        let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
        if control && (!fin || len > 125) {
            return (frames, End::Protocol);
        }
        if len > max as u128 {
            return (frames, End::TooLarge);
        }
        let body = 2 + ext + 4;
        let total = body + len as usize;
        if at.len() < total {
            return (frames, End::Ended);
        }
        let mask = &at[2 + ext..body];
        let payload = at[body..total]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        frames.push(Frame {
            fin,
            opcode,
            payload,
        });
        at = &at[total..];
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, seed, stream @ ..] = data else {
        return;
    };
    let max = LIMITS[usize::from(pick & 7)];

    let (frames, end) = read_all(stream, max, *seed);
    let expected = model(stream, max);
    assert_eq!(
        (&frames, &end),
        (&expected.0, &expected.1),
        "reader and model disagree"
    );

    // What the relay does with the frames: data frames are reassembled under the same limit,
    // control frames are answered on their own.
    let mut messages = Assembler::new(max);
    let mut closed = match end {
        End::TooLarge => Some(CLOSE_TOO_BIG),
        End::Protocol => Some(CLOSE_PROTOCOL),
        End::Ended => None,
    };
    for f in frames {
        assert!(f.payload.len() <= max, "a frame above the limit");
        match f.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                assert!(
                    f.fin && f.payload.len() <= 125,
                    "a long or fragmented control frame"
                );
                if f.opcode == OpCode::Close {
                    let _ = close_payload_ok(&f.payload);
                }
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                let before = messages.pending();
                let len = f.payload.len();
                match messages.push(f.opcode, f.fin, f.payload) {
                    Ok(Some((op, message))) => {
                        assert!(message.len() <= max, "a message above the limit");
                        assert_ne!(op, OpCode::Continuation);
                        assert_eq!(message.len(), before + len, "fragments lost or added");
                        assert_eq!(messages.pending(), 0);
                    }
                    Ok(None) => assert!(messages.pending() <= max),
                    Err(close) => {
                        // The socket is closed here; later frames are never read.
                        closed = Some(close);
                        break;
                    }
                }
            }
        }
    }
    if let Some(close) = closed {
        assert!(
            close == (1009, "message_too_big") || close == (1002, "protocol_error"),
            "an undocumented close: {close:?}"
        );
    }
});
