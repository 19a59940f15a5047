//! One socket's outgoing side: frames go straight to the kernel from whoever produces them, and a
//! bounded queue with a writer task takes over only when the kernel cannot take them at once.
//!
//! Why not a channel to a writer task: on the relay's hot path (a message delivered to two
//! sockets) that costs two task wake-ups, often on the other core, per message. Here the room
//! actor writes each frame with one non-blocking `try_write` while holding the socket's queue
//! lock (never across an `.await`); the lock is what keeps frames from producers on different
//! tasks in one order. When the kernel's send buffer is full, when a frame must wait (a join reply
//! under the time floor) or when a close is due, items queue and the writer task sends them, in
//! order, before anything new goes direct again.
//!
//! Overflow policy: the queue holds at most [`QUEUE`] items. The room never waits on it: a full
//! queue means the peer stopped reading, and the room closes the socket (1008 `too_slow`). The
//! socket's own reader waits for space instead, which stops it reading until its peer catches up.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// Most items a socket may have queued. The protocol is turn-based and the kernel's send buffer
/// takes ordinary traffic directly, so a healthy socket queues nothing; 64 absorbs a burst of
/// replies to a client that pipelines while its peer is slow.
pub(crate) const QUEUE: usize = 64;
/// A queued write that cannot complete in this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Something to send to a socket.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame.
    Text(Bytes),
    /// Two text frames in one write: a sender's own `new_message` and the `ok` that follows it.
    Pair(Box<(Bytes, Bytes)>),
    /// A text frame not to be sent before the instant (a join reply under the time floor);
    /// everything pushed after it waits behind it.
    Held(Box<(Instant, Bytes)>),
    /// A keep-alive ping.
    Ping,
    /// Answer to a client ping.
    Pong(Vec<u8>),
    /// Echo of the client's close frame; nothing is sent after it.
    CloseEcho(Vec<u8>),
    /// Close with this code and reason; nothing is sent after it.
    Close { code: u16, reason: &'static str },
}

impl Outbound {
    /// Items that may skip the queue when it is empty.
    fn is_immediate(&self) -> bool {
        matches!(
            self,
            Outbound::Text(_) | Outbound::Pair(_) | Outbound::Ping | Outbound::Pong(_)
        )
    }

    fn is_close(&self) -> bool {
        matches!(self, Outbound::Close { .. } | Outbound::CloseEcho(_))
    }
}

/// Why an item was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full: the peer is not reading.
    Full,
    /// The socket is closing or closed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// A close is queued; nothing more is taken.
    Closing,
    /// The writer has stopped; the socket is gone.
    Done,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<Outbound>,
    /// What the kernel did not take of a direct write; sent before any queued item.
    rest: Option<Vec<u8>>,
    /// The writer task holds the send order: while set, nothing goes direct.
    busy: bool,
    phase: Phase,
}

/// The write half of the socket a WebSocket runs on: the client's own TCP connection, or (when
/// a host server hands over an upgraded connection that is not plain TCP, e.g. its own TLS)
/// one end of a Unix socket pair bridged to it (see `connection::serve`). Both take
/// non-blocking writes from any thread, which is what lets the room write without a task.
#[derive(Debug)]
pub(crate) enum WriteIo {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    #[cfg(unix)]
    Unix(tokio::net::unix::OwnedWriteHalf),
}

impl WriteIo {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            WriteIo::Tcp(w) => w.try_write_vectored(bufs),
            #[cfg(unix)]
            WriteIo::Unix(w) => w.try_write_vectored(bufs),
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteIo::Tcp(w) => w.try_write(buf),
            #[cfg(unix)]
            WriteIo::Unix(w) => w.try_write(buf),
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            WriteIo::Tcp(w) => w.writable().await,
            #[cfg(unix)]
            WriteIo::Unix(w) => w.writable().await,
        }
    }

    /// Shuts the write direction (the peer reads end-of-stream after our close frame).
    fn shutdown_write(&self) {
        let _ = match self {
            WriteIo::Tcp(w) => {
                socket2::SockRef::from(w.as_ref()).shutdown(std::net::Shutdown::Write)
            }
            #[cfg(unix)]
            WriteIo::Unix(w) => {
                socket2::SockRef::from(w.as_ref()).shutdown(std::net::Shutdown::Write)
            }
        };
    }
}

#[derive(Debug)]
struct Inner {
    io: WriteIo,
    queue: Mutex<Queue>,
    /// Wakes the writer task (work queued, or the socket is to close).
    work: Notify,
    /// Wakes the socket's reader when the queue has room again.
    space: Notify,
    /// Set when the socket is finished; the read side stops at its next poll (see [`Gate`]).
    stopped: AtomicBool,
    reader: AtomicWaker,
    /// Frames received so far (counted by the reader); the writer checks it at each ping tick to
    /// spot an idle peer.
    seen: AtomicU64,
}

/// A socket's outgoing side; cheap to clone (the room keeps one per member).
#[derive(Debug, Clone)]
pub(crate) struct Outbox(Arc<Inner>);

/// The read side's view of the outbox: tells the reader to stop once the socket is finished
/// (closed by the room, by the relay's shutdown, by an idle timeout or by a failed write).
#[derive(Debug, Clone)]
pub(crate) struct Gate(Arc<Inner>);

impl Gate {
    /// `Ready` once the socket is finished; registers the waker otherwise. Cheap: one atomic
    /// load when nothing happened, so it can sit in front of every read.
    pub(crate) fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.reader.register(cx.waker());
        if self.0.stopped.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Counts a frame from the client (for idle detection).
    pub(crate) fn saw_frame(&self) {
        self.0.seen.fetch_add(1, Ordering::Relaxed);
    }
}

impl Outbox {
    pub(crate) fn new(io: WriteIo) -> Outbox {
        Outbox(Arc::new(Inner {
            io,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                rest: None,
                busy: false,
                phase: Phase::Open,
            }),
            work: Notify::new(),
            space: Notify::new(),
            stopped: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            seen: AtomicU64::new(0),
        }))
    }

    pub(crate) fn gate(&self) -> Gate {
        Gate(self.0.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // matters more than losing the socket; carry on with what is there.
        self.0.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `item` now if nothing is ahead of it and the kernel takes it, else queues it for the
    /// writer task. Never waits.
    pub(crate) fn try_push(&self, item: Outbound) -> Result<(), Refused> {
        self.offer(item).map_err(|(why, _)| why)
    }

    /// As [`try_push`](Self::try_push), but waits for room in the queue. For the socket's own
    /// reader: a client that sends faster than it reads is simply not read from meanwhile.
    pub(crate) async fn push(&self, mut item: Outbound) -> Result<(), Refused> {
        loop {
            // Registered before the attempt, so a wake-up between the two is not lost.
            let space = self.0.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            match self.offer(item) {
                Ok(()) => return Ok(()),
                Err((Refused::Full, back)) => item = back,
                Err((why, _)) => return Err(why),
            }
            space.await;
        }
    }

    fn offer(&self, item: Outbound) -> Result<(), (Refused, Outbound)> {
        let mut q = self.lock();
        if q.phase != Phase::Open {
            return Err((Refused::Closed, item));
        }
        if !q.busy && item.is_immediate() {
            match write_direct(&self.0.io, &item) {
                Ok(None) => return Ok(()),
                Ok(Some(rest)) => {
                    q.rest = Some(rest);
                    q.busy = true;
                    self.0.work.notify_one();
                    return Ok(());
                }
                Err(_) => {
                    // The connection is broken: finish the socket (the writer sees the phase).
                    q.phase = Phase::Closing;
                    q.items.clear();
                    q.busy = true;
                    drop(q);
                    self.0.work.notify_one();
                    self.stop_reader();
                    return Err((Refused::Closed, item));
                }
            }
        }
        if q.items.len() >= QUEUE {
            return Err((Refused::Full, item));
        }
        if item.is_close() {
            q.phase = Phase::Closing;
        }
        q.items.push_back(item);
        if !q.busy {
            q.busy = true;
            self.0.work.notify_one();
        }
        Ok(())
    }

    /// No more items after what is queued: the writer sends those and stops. For a socket whose
    /// reader has ended.
    pub(crate) fn finish(&self) {
        let mut q = self.lock();
        if q.phase == Phase::Open {
            q.phase = Phase::Closing;
        }
        if !q.busy {
            q.busy = true;
            drop(q);
            self.0.work.notify_one();
        }
    }

    /// Closes the socket as soon as what the kernel already has is out: whatever is queued is
    /// dropped, the close frame goes next, and the reader stops. For a peer that is too slow
    /// (1008), the relay's shutdown (1001) or an idle peer (1001).
    pub(crate) fn kill(&self, code: u16, reason: &'static str) {
        let mut q = self.lock();
        if q.phase == Phase::Done {
            return;
        }
        q.items.clear();
        q.items.push_back(Outbound::Close { code, reason });
        q.phase = Phase::Closing;
        q.busy = true;
        drop(q);
        self.0.work.notify_one();
        self.stop_reader();
    }

    /// True once the writer has stopped: the socket is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().phase == Phase::Done
    }

    fn stop_reader(&self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.reader.wake();
    }
}

/// Builds the header of an unmasked (server-to-client) frame with FIN set.
fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The frames of an item as slices: up to two frames, header and payload each.
struct Encoded<'a> {
    heads: [([u8; 10], usize); 2],
    bodies: [&'a [u8]; 2],
    frames: usize,
    /// A `Close` has no bytes to borrow: its body (code, then reason) is built here, and stands
    /// in for `bodies[0]` when set.
    close_body: Vec<u8>,
}

impl<'a> Encoded<'a> {
    fn of(item: &'a Outbound) -> Encoded<'a> {
        let mut e = Encoded {
            heads: [([0; 10], 0); 2],
            bodies: [&[], &[]],
            frames: 1,
            close_body: Vec::new(),
        };
        match item {
            Outbound::Text(t) => e.set(0, TEXT, t),
            Outbound::Held(h) => e.set(0, TEXT, &h.1),
            Outbound::Pair(p) => {
                e.set(0, TEXT, &p.0);
                e.set(1, TEXT, &p.1);
                e.frames = 2;
            }
            Outbound::Ping => e.set(0, PING, &[]),
            Outbound::Pong(p) => e.set(0, PONG, p),
            Outbound::CloseEcho(p) => e.set(0, CLOSE, p),
            Outbound::Close { code, reason } => {
                let mut body = code.to_be_bytes().to_vec();
                body.extend_from_slice(reason.as_bytes());
                e.heads[0] = header(CLOSE, body.len());
                e.close_body = body;
            }
        }
        e
    }

    fn set(&mut self, i: usize, opcode: u8, body: &'a [u8]) {
        self.heads[i] = header(opcode, body.len());
        self.bodies[i] = body;
    }

    /// The item as up to four slices (header and body per frame), without allocating: this
    /// runs for every frame the relay sends.
    fn slices(&self) -> ([IoSlice<'_>; 4], usize) {
        let mut v = [IoSlice::new(&[]); 4];
        let mut n = 0;
        for i in 0..self.frames {
            let (h, len) = &self.heads[i];
            v[n] = IoSlice::new(&h[..*len]);
            n += 1;
            let body: &[u8] = if self.close_body.is_empty() {
                self.bodies[i]
            } else {
                &self.close_body
            };
            if !body.is_empty() {
                v[n] = IoSlice::new(body);
                n += 1;
            }
        }
        (v, n)
    }

    fn to_vec(&self) -> Vec<u8> {
        let (all, n) = self.slices();
        let slices = &all[..n];
        let mut v = Vec::with_capacity(slices.iter().map(|s| s.len()).sum());
        for s in slices {
            v.extend_from_slice(s);
        }
        v
    }
}

/// One non-blocking vectored write of the whole item. `Ok(None)`: all sent; `Ok(Some(rest))`:
/// the kernel took only part (or nothing) and `rest` is what is left.
fn write_direct(io: &WriteIo, item: &Outbound) -> io::Result<Option<Vec<u8>>> {
    let enc = Encoded::of(item);
    let (all, count) = enc.slices();
    let slices = &all[..count];
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let n = match io.try_write_vectored(slices) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if n == total {
        return Ok(None);
    }
    let mut rest = Vec::with_capacity(total - n);
    let mut skip = n;
    for s in slices {
        if skip >= s.len() {
            skip -= s.len();
            continue;
        }
        rest.extend_from_slice(&s[skip..]);
        skip = 0;
    }
    Ok(Some(rest))
}

/// Writes all of `buf`, waiting for the socket as needed, within [`WRITE_TIMEOUT`].
async fn write_all(io: &WriteIo, buf: &[u8]) -> io::Result<()> {
    let work = async {
        let mut off = 0;
        while off < buf.len() {
            io.writable().await?;
            match io.try_write(&buf[off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    timeout(WRITE_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// How often to ping and when a silent peer counts as gone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub ping_every: Duration,
    pub idle_after: Duration,
}

/// The socket's writer task: sends what queued, pings on an interval and closes idle peers
/// (1001 `idle_timeout`), closes with 1001 `going_away` on the relay's shutdown. Ends after a
/// close frame or a failed write; then the read side is told to stop and the write side is shut.
pub(crate) async fn run_writer(outbox: Outbox, shutdown: CancellationToken, live: Liveness) {
    let inner = &outbox.0;
    let every = live.ping_every;
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    let mut last_count = inner.seen.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    let mut shutting = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if !shutting => {
                shutting = true;
                outbox.kill(1001, "going_away");
            }
            _ = inner.work.notified() => {}
            _ = ping.tick() => {
                let count = inner.seen.load(Ordering::Relaxed);
                if count != last_count {
                    last_count = count;
                    quiet_since = Instant::now();
                    let _ = outbox.try_push(Outbound::Ping);
                } else if quiet_since.elapsed() >= live.idle_after {
                    outbox.kill(1001, "idle_timeout");
                } else {
                    let _ = outbox.try_push(Outbound::Ping);
                }
            }
        }
        if !drain(&outbox, &shutdown).await {
            break;
        }
    }
    {
        let mut q = outbox.lock();
        q.phase = Phase::Done;
        q.items.clear();
        q.rest = None;
    }
    outbox.stop_reader();
    // Anyone waiting for room learns the socket is gone.
    inner.space.notify_one();
    // The client reads our close (or learns the connection is over) from the FIN.
    inner.io.shutdown_write();
}

/// Sends everything queued, in order. `false` once the socket is finished.
async fn drain(outbox: &Outbox, shutdown: &CancellationToken) -> bool {
    let inner = &outbox.0;
    loop {
        let next = {
            let mut q = outbox.lock();
            if let Some(rest) = q.rest.take() {
                Err(rest)
            } else if let Some(item) = q.items.pop_front() {
                Ok(item)
            } else {
                q.busy = false;
                return q.phase == Phase::Open;
            }
        };
        inner.space.notify_one();
        let item = match next {
            Err(rest) => {
                if write_all(&inner.io, &rest).await.is_err() {
                    return false;
                }
                continue;
            }
            Ok(item) => item,
        };
        if let Outbound::Held(h) = &item {
            if h.0 > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(h.0) => {}
                    // The close that shutdown queues goes out without waiting for the floor.
                    _ = shutdown.cancelled() => continue,
                }
            }
        }
        let closing = item.is_close();
        if write_all(&inner.io, &Encoded::of(&item).to_vec())
            .await
            .is_err()
            || closing
        {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_the_shortest_length_form() {
        assert_eq!(header(TEXT, 5), ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2));
        let (h, n) = header(TEXT, 126);
        assert_eq!((&h[..n], n), (&[0x81, 126, 0, 126][..], 4));
        let (h, n) = header(PONG, 65_536);
        assert_eq!(&h[..n], &[0x8A, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_pair_is_two_frames_in_order() {
        let item = Outbound::Pair(Box::new((Bytes::from("ab"), Bytes::from("c"))));
        assert_eq!(
            Encoded::of(&item).to_vec(),
            vec![0x81, 2, b'a', b'b', 0x81, 1, b'c']
        );
        let close = Outbound::Close {
            code: 1008,
            reason: "x",
        };
        assert_eq!(
            Encoded::of(&close).to_vec(),
            vec![0x88, 3, 0x03, 0xF0, b'x']
        );
        assert_eq!(Encoded::of(&Outbound::Ping).to_vec(), vec![0x89, 0]);
    }
}
