//! Reads client-to-server WebSocket frames (RFC 6455 §5) with no buffer held while a socket is
//! idle.
//!
//! fastwebsockets (which still does the handshake) keeps a fixed 8 KiB read buffer per socket
//! for the socket's life: 16 KiB per paired room, all of the idle-room memory budget. Here each
//! read lands in a scratch array on the polling thread's stack, only the bytes of an unfinished
//! frame are kept on the heap, and the buffer is released as soon as it is empty. Frames are
//! checked as strictly as the RFC asks of a server: reserved bits clear, known opcodes, client
//! frames masked, control frames short and unfragmented, no 64-bit length with its top bit set.
//!
//! Its items are `pub` (in a private module) so that the `fuzzing` feature can hand them to the
//! `frame_reader` fuzz target; nothing else outside the crate sees them.
#![allow(unreachable_pub)]

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Frame opcodes a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// One frame, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

/// What the next read produced.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// A frame longer than the limit was announced (its payload is not read).
    TooLarge,
    /// The client broke the framing rules; the connection is to be failed with 1002.
    Protocol,
    /// The stream ended or failed.
    Ended,
}

/// Bytes read per poll at most; they sit on the thread's stack only for the poll.
const SCRATCH: usize = 8192;

/// A socket's frame reader.
#[derive(Debug)]
pub struct FrameReader {
    /// Bytes received but not yet part of a returned frame; empty (unallocated) when idle.
    buf: Vec<u8>,
    /// Where the unparsed bytes in `buf` start.
    start: usize,
    /// Largest payload accepted in one frame.
    max_payload: usize,
}

enum Parsed {
    Frame(Frame),
    Need,
    TooLarge,
    Bad,
}

impl FrameReader {
    pub fn new(max_payload: usize) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            max_payload,
        }
    }

    /// Reads until one whole frame is in, then returns it.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Next {
        loop {
            match self.parse() {
                Parsed::Frame(f) => return Next::Frame(f),
                Parsed::TooLarge => return Next::TooLarge,
                Parsed::Bad => return Next::Protocol,
                Parsed::Need => {}
            }
            match poll_fn(|cx| self.fill(cx, io)).await {
                Ok(0) | Err(_) => return Next::Ended,
                Ok(_) => {}
            }
        }
    }

    fn fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<io::Result<usize>> {
        let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH];
        let mut rb = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(io).poll_read(cx, &mut rb))?;
        let got = rb.filled();
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(got);
        Poll::Ready(Ok(got.len()))
    }

    fn parse(&mut self) -> Parsed {
        let b = &self.buf[self.start..];
        if b.len() < 2 {
            return Parsed::Need;
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Parsed::Bad;
        }
        let Some(opcode) = OpCode::from_bits(b[0] & 0x0F) else {
            return Parsed::Bad;
        };
        // Every client frame must be masked (RFC 6455 §5.1).
        if b[1] & 0x80 == 0 {
            return Parsed::Bad;
        }
        let (len, head) = match b[1] & 0x7F {
            126 => match b.get(2..4) {
                Some(n) => (u64::from(u16::from_be_bytes([n[0], n[1]])), 4),
                None => return Parsed::Need,
            },
            127 => match b.get(2..10) {
                Some(n) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(n);
                    let len = u64::from_be_bytes(a);
                    if len >> 63 != 0 {
                        return Parsed::Bad;
                    }
                    (len, 10)
                }
                None => return Parsed::Need,
            },
            n => (u64::from(n), 2),
        };
        if opcode.is_control() && (!fin || len > 125) {
            return Parsed::Bad;
        }
        if len > self.max_payload as u64 {
            return Parsed::TooLarge;
        }
        let len = len as usize;
        let body = head + 4;
        if b.len() < body + len {
            return Parsed::Need;
        }
        let mask = [b[head], b[head + 1], b[head + 2], b[head + 3]];
        let payload = if self.start == 0 && self.buf.len() == body + len {
            // The usual case: the buffer holds exactly this frame; reuse its allocation.
            let mut all = std::mem::take(&mut self.buf);
            all.drain(..body);
            all
        } else {
            let p = b[body..body + len].to_vec();
            self.start += body + len;
            if self.start == self.buf.len() {
                self.buf = Vec::new();
                self.start = 0;
            }
            p
        };
        let mut payload = payload;
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        Parsed::Frame(Frame {
            fin,
            opcode,
            payload,
        })
    }
}

/// Checks a close frame's payload: empty, or a permitted code and a UTF-8 reason (RFC 6455
/// §5.5.1, §7.4).
pub fn close_payload_ok(payload: &[u8]) -> bool {
    match payload {
        [] => true,
        [_] => false,
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            allowed && std::str::from_utf8(reason).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut v = vec![first];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        v
    }

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Next> {
        let mut r = FrameReader::new(max);
        let mut src: &[u8] = &bytes;
        let mut out = Vec::new();
        loop {
            let n = r.next(&mut src).await;
            let end = !matches!(n, Next::Frame(_));
            out.push(n);
            if end {
                return out;
            }
        }
    }

    fn frame(n: &Next) -> &Frame {
        match n {
            Next::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_of_every_length_form_unmask_and_leave_no_buffer() {
        let mut bytes = masked(0x81, b"hello");
        bytes.extend(masked(0x82, &[7u8; 300]));
        bytes.extend(masked(0x01, &[1u8; 70_000]));
        bytes.extend(masked(0x80, b"!"));
        let got = read_all(bytes, 100_000).await;
        assert_eq!(got.len(), 5);
        assert_eq!(
            frame(&got[0]),
            &Frame {
                fin: true,
                opcode: OpCode::Text,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(frame(&got[1]).payload, vec![7u8; 300]);
        assert_eq!(frame(&got[1]).opcode, OpCode::Binary);
        assert!(!frame(&got[2]).fin);
        assert_eq!(frame(&got[2]).payload.len(), 70_000);
        assert_eq!(frame(&got[3]).opcode, OpCode::Continuation);
        assert!(matches!(got[4], Next::Ended));

        let mut r = FrameReader::new(1000);
        let bytes = masked(0x81, b"x");
        let mut src: &[u8] = &bytes;
        assert!(matches!(r.next(&mut src).await, Next::Frame(_)));
        assert_eq!(r.buf.capacity(), 0, "an idle reader holds no buffer");
    }

    #[tokio::test]
    async fn a_frame_split_across_reads_is_reassembled() {
        use tokio::io::AsyncWriteExt;
        let bytes = masked(0x81, &[b'a'; 200]);
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(3) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut r = FrameReader::new(1000);
        let f = match r.next(&mut rx).await {
            Next::Frame(f) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!(f.payload, vec![b'a'; 200]);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn broken_framing_is_a_protocol_error() {
        let unmasked = vec![0x81, 0x01, b'x'];
        let rsv = masked(0xC1, b"x");
        let opcode = masked(0x83, b"x");
        let long_ping = masked(0x89, &[0u8; 126]);
        let fragmented_ping = masked(0x09, b"x");
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        for bytes in [unmasked, rsv, opcode, long_ping, fragmented_ping, huge] {
            let got = read_all(bytes.clone(), 1000).await;
            assert!(matches!(got[..], [Next::Protocol]), "{bytes:x?}: {got:?}");
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_its_payload() {
        let got = read_all(masked(0x81, &[0u8; 1001])[..8].to_vec(), 1000).await;
        assert!(matches!(got[..], [Next::TooLarge]), "{got:?}");
        let got = read_all(masked(0x81, &[0u8; 1000]), 1000).await;
        assert!(matches!(got[..], [Next::Frame(_), Next::Ended]), "{got:?}");
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest::proptest! {
        /// Whatever bytes arrive, the reader ends in a frame, a refusal or the end of the stream;
        /// it never panics and never returns more payload than the limit.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let got = block_on(read_all(bytes, 64));
            for n in &got {
                if let Next::Frame(f) = n {
                    proptest::prop_assert!(f.payload.len() <= 64);
                }
            }
        }

        /// Valid frames come back exactly, however the stream is cut into reads.
        #[test]
        fn frames_survive_any_split(
            payloads in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..400), 1..5),
            cut in 1usize..64,
        ) {
            use tokio::io::AsyncWriteExt;
            let mut bytes = Vec::new();
            for p in &payloads {
                bytes.extend(masked(0x82, p));
            }
            let got = block_on(async move {
                let (mut tx, mut rx) = tokio::io::duplex(cut);
                let writer = tokio::spawn(async move {
                    for chunk in bytes.chunks(cut) {
                        tx.write_all(chunk).await.unwrap();
                    }
                });
                let mut r = FrameReader::new(1000);
                let mut out = Vec::new();
                while let Next::Frame(f) = r.next(&mut rx).await {
                    out.push(f.payload);
                }
                writer.await.unwrap();
                out
            });
            proptest::prop_assert_eq!(got, payloads);
        }
    }

    #[test]
    fn close_payloads_are_checked() {
        assert!(close_payload_ok(&[]));
        assert!(!close_payload_ok(&[3]));
        assert!(close_payload_ok(&[0x03, 0xE8, b'o', b'k']));
        assert!(!close_payload_ok(&1005u16.to_be_bytes()));
        assert!(!close_payload_ok(&999u16.to_be_bytes()));
        assert!(close_payload_ok(&4000u16.to_be_bytes()));
        assert!(!close_payload_ok(&[0x03, 0xE8, 0xFF]));
    }
}
