//! Sockets that never join and sockets piled up by one client, over real sockets: the join
//! deadline (1008 `join_timeout`), the per-IP cap on open WebSockets (429 with Retry-After), and
//! the attack they answer together (idle sockets filling `--max-connections`).

mod common;
mod helpers;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use helpers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A socket is reaped well within this after its deadline (the close itself is immediate; the
/// slack is for a loaded test box).
const SLACK: Duration = Duration::from_secs(2);

/// Pings often enough that a socket which answers them never counts as idle, while one that
/// does not would be closed as idle long before its join deadline.
fn pinged(c: &mut stelgano_relay::Config, deadline: Duration) {
    c.join_deadline = deadline;
    c.ping_interval = Duration::from_millis(250);
    c.idle_timeout = Duration::from_secs(1);
}

#[tokio::test]
async fn a_silent_socket_that_answers_pings_is_closed_at_the_join_deadline() {
    let deadline = Duration::from_secs(2);
    let relay = TestRelay::start_with(|c| pinged(c, deadline)).await;
    let start = Instant::now();
    // `recv` answers the relay's pings (fastwebsockets' auto-pong) while it waits.
    let mut p = relay.ws(&random_hex()).await;
    let got = tokio::time::timeout(deadline + SLACK, frames_for(&mut p, 10_000))
        .await
        .expect("the socket outlived its join deadline");
    let waited = start.elapsed();
    match got.as_slice() {
        [Got::Closed { code, reason }] => {
            assert_eq!((*code, reason.as_str()), (1008, "join_timeout"))
        }
        other => panic!("expected only a close, got {other:?}"),
    }
    // Not closed as idle (1 s) before the deadline: its pongs kept it alive until then.
    assert!(
        waited >= deadline,
        "closed after {waited:?}, before the deadline"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_socket_whose_joins_keep_failing_is_still_reaped() {
    let deadline = Duration::from_secs(2);
    let relay = TestRelay::start_with(|c| pinged(c, deadline)).await;
    let pair = pair(&relay).await;
    let start = Instant::now();
    let mut guesser = relay.ws(&pair.room).await;
    let (code, reason) = loop {
        assert!(start.elapsed() < deadline + SLACK, "never reaped");
        guesser.push("join", join_data(&Who::new())).await;
        match guesser.recv().await {
            Got::Json(v) => assert_error(&v, "unauthorized"),
            Got::Closed { code, reason } => break (code, reason),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!((code, reason.as_str()), (1008, "join_timeout"));
    assert!(start.elapsed() >= deadline);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_joined_socket_is_not_closed_by_the_join_deadline() {
    let deadline = Duration::from_secs(1);
    let relay = TestRelay::start_with(|c| pinged(c, deadline)).await;
    let mut pair = pair(&relay).await;
    // Well past the deadline, with pings answered, neither side hears anything...
    let quiet = (deadline + Duration::from_secs(1)).as_millis() as u64;
    tokio::join!(pair.pa.silent_for(quiet), pair.pb.silent_for(quiet));
    // ...and the channel still works both ways.
    let (id, _) = send(&mut pair.pa, body(16)).await;
    let got = expect_event(&mut pair.pb, "new_message").await;
    assert_eq!(got["id"], id.as_str());
    send(&mut pair.pb, body(16)).await;
    expect_event(&mut pair.pa, "new_message").await;
    relay.shutdown().await;
}

/// A WebSocket upgrade that stays open (or not, if refused): the status, the lowercased head and
/// the connection, which holds the socket until dropped.
async fn hold_upgrade(addr: SocketAddr, forwarded: Option<&str>) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let xff = forwarded
        .map(|ip| format!("X-Forwarded-For: {ip}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /room/{}/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{xff}\r\n",
        random_hex()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so that nothing after the head (a WebSocket frame) is consumed.
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("no answer to the upgrade within 5 s")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, s)
}

/// Retries an upgrade (real time, up to 3 s) until it is accepted: the relay learns of a closed
/// socket asynchronously.
async fn upgrade_when_allowed(addr: SocketAddr, forwarded: Option<&str>) -> TcpStream {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, head, s) = hold_upgrade(addr, forwarded).await;
        if status == 101 {
            return s;
        }
        assert_eq!(status, 429, "{head}");
        assert!(Instant::now() < until, "a closed socket kept its place");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_socket_past_the_per_ip_cap_is_refused_until_one_closes() {
    const CAP: usize = 4;
    let relay = TestRelay::start_with(|c| c.max_sockets_per_ip = CAP).await;
    let mut open = Vec::new();
    for i in 0..CAP {
        let (status, head, s) = hold_upgrade(relay.addr, None).await;
        assert_eq!(status, 101, "socket {i}: {head}");
        open.push(s);
    }
    // Refused however often it is tried, and refusals take no place of their own.
    for _ in 0..3 {
        let (status, head, _) = hold_upgrade(relay.addr, None).await;
        assert_eq!(status, 429, "{head}");
        let retry: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
        assert!(retry >= 1, "{head}");
    }
    // The HTTP side is not capped: it holds no socket.
    let (status, _, _) = http_get(relay.addr, "/healthz", "").await;
    assert_eq!(status, 200);

    // One closes (the client just goes away): the place comes back, once.
    drop(open.pop());
    open.push(upgrade_when_allowed(relay.addr, None).await);
    let (status, head, _) = hold_upgrade(relay.addr, None).await;
    assert_eq!(status, 429, "{head}");

    // A socket that ends on the relay's side (a close frame from the client) gives its place
    // back too.
    let mut s = open.pop().unwrap();
    // A masked close frame, code 1000, no reason.
    s.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    open.push(upgrade_when_allowed(relay.addr, None).await);
    drop(open);
    relay.shutdown().await;
}

#[tokio::test]
async fn the_cap_counts_the_forwarded_client_ip_behind_a_trusted_proxy() {
    let relay = TestRelay::start_with(|c| {
        c.max_sockets_per_ip = 2;
        c.trust_forwarded_for = true;
    })
    .await;
    let one = Some("203.0.113.7");
    let two = Some("198.51.100.9");
    let mut open = Vec::new();
    for _ in 0..2 {
        let (status, head, s) = hold_upgrade(relay.addr, one).await;
        assert_eq!(status, 101, "{head}");
        open.push(s);
    }
    let (status, head, _) = hold_upgrade(relay.addr, one).await;
    assert_eq!(status, 429, "{head}");
    // Another client behind the same proxy (same TCP peer) has its own count.
    let (status, head, s) = hold_upgrade(relay.addr, two).await;
    assert_eq!(status, 101, "{head}");
    open.push(s);
    drop(open);
    relay.shutdown().await;
}

#[tokio::test]
async fn idle_sockets_that_never_join_no_longer_lock_out_a_real_client() {
    // The observed attack: 100 sockets that answer pings but never join, against
    // `--max-connections 100`. All from one IP, so the per-IP cap is lifted to see the deadline
    // alone do the work.
    const CAP: usize = 100;
    let deadline = Duration::from_secs(2);
    let relay = TestRelay::start_with(|c| {
        pinged(c, deadline);
        c.max_connections = CAP;
        c.max_sockets_per_ip = 0;
    })
    .await;
    let start = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..CAP {
        let mut p = relay.ws(&random_hex()).await;
        // Each one reads (and so answers pings) until the relay closes it.
        idle.push(tokio::spawn(async move {
            loop {
                if let Got::Closed { code, reason } = p.recv().await {
                    return (code, reason);
                }
            }
        }));
    }
    let filled = start.elapsed();

    // The relay is full: a new client's request waits in the backlog, unanswered.
    let mut waiting = TcpStream::connect(relay.addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    if filled + Duration::from_millis(500) < deadline {
        let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
        assert!(early.is_err(), "the relay answered while full");
    }

    // Once the deadline passes, the idle sockets are closed with join_timeout...
    for task in idle {
        let (code, reason) = tokio::time::timeout(deadline + SLACK * 2, task)
            .await
            .expect("an idle socket outlived its join deadline")
            .unwrap();
        assert_eq!((code, reason.as_str()), (1008, "join_timeout"));
    }
    assert!(start.elapsed() >= deadline);
    // ...the waiting request is answered...
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buf))
        .await
        .expect("the waiting client got no answer after the deadline")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    drop(waiting);
    // ...and a real client creates and pairs a room.
    let pair = pair(&relay).await;
    drop(pair);
    relay.shutdown().await;
}
