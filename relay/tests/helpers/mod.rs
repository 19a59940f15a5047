//! Helpers for the black-box protocol suites (protocol, lockout, restart, http): raw HTTP requests,
//! raw WebSocket frames, pairing and sending shortcuts, and format checks for ids and timestamps.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode};
use serde_json::{json, Value};
use stelgano_relay::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;

/// Timers that would otherwise fire while a paused-time test jumps minutes or days ahead.
pub fn quiet_timers(c: &mut Config) {
    c.idle_timeout = Duration::from_secs(400 * 24 * 3600);
    c.ping_interval = Duration::from_secs(400 * 24 * 3600);
}

/// One HTTP/1.1 request over a fresh TCP connection; reads the head and, when the answer is not a
/// `101`, the body up to `Content-Length` (or end of stream). Returns (status, lowercased head, body).
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            let n = s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let head = head.to_lowercase();
                if head.starts_with("http/1.1 101") {
                    break;
                }
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if len.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("no complete HTTP answer within 5 s");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

/// A WebSocket upgrade request for `path`; returns the status and the lowercased head.
pub async fn upgrade(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let (status, head, _) = raw_http(addr, &req).await;
    (status, head)
}

/// The value of header `name` (lowercase) in a lowercased head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// `GET /api/room/{room}/exists`, expecting `200` with a boolean.
pub async fn exists(addr: SocketAddr, room: &str) -> bool {
    let (status, _, body) = http_get(addr, &format!("/api/room/{room}/exists"), "").await;
    assert_eq!(status, 200, "exists answered {status}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["exists"].as_bool().unwrap()
}

/// Frames arriving within `ms` milliseconds (replies, broadcasts and a close, in order).
pub async fn frames_for(peer: &mut Peer, ms: u64) -> Vec<Got> {
    let mut out = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(until, peer.recv()).await {
            Ok(g @ Got::Closed { .. }) => {
                out.push(g);
                return out;
            }
            Ok(g) => out.push(g),
            Err(_) => return out,
        }
    }
}

/// Asserts that the next frame is a close with `code` and `reason`.
pub async fn expect_close(peer: &mut Peer, code: u16, why: &str) {
    match peer.recv().await {
        Got::Closed { code: c, reason: r } => {
            assert_eq!((c, r.as_str()), (code, why), "unexpected close")
        }
        Got::Json(v) => panic!("expected close {code} {why:?}, got frame {v}"),
    }
}

/// Asserts that the next frame is the broadcast `event` and returns its data.
pub async fn expect_event(peer: &mut Peer, event: &str) -> Value {
    let v = peer.json().await;
    assert_eq!(v["event"], event, "expected broadcast {event}, got {v}");
    assert!(v.get("ref").is_none(), "a broadcast carries no ref: {v}");
    v["data"].clone()
}

/// Asserts `v` is the reply to `r` with an error `why`.
pub fn assert_error(v: &Value, why: &str) {
    assert_eq!(reason(v), why, "expected error {why}, got {v}");
    assert!(v.get("ok").is_none(), "an error reply has no ok: {v}");
}

/// Asserts `v` is a successful reply and returns its `ok` value.
pub fn ok(v: &Value) -> Value {
    assert!(v.get("error").is_none(), "expected ok, got {v}");
    assert!(v.get("ok").is_some(), "expected ok, got {v}");
    v["ok"].clone()
}

/// A room created by `a` with pairing code `otp` and then claimed by `b`; both sockets joined, and
/// the creator's `party_paired` already consumed. Returns (room hash, room_id, a's peer, b's peer).
pub struct Pair {
    pub room: String,
    pub room_id: String,
    pub a: Who,
    pub b: Who,
    pub pa: Peer,
    pub pb: Peer,
}

pub async fn pair(relay: &TestRelay) -> Pair {
    pair_as(relay, &random_hex(), Who::new(), Who::new(), &random_hex()).await
}

/// [`pair`] with given identities: `room` created by `a` with pairing code hash `otp`, then
/// claimed by `b` (e.g. `Who::from_pin` for a room whose PINs a test means to guess).
pub async fn pair_as(relay: &TestRelay, room: &str, a: Who, b: Who, otp: &str) -> Pair {
    let room = room.to_owned();
    let mut pa = relay.ws(&room).await;
    let r = ok(&pa.join_otp(&a, otp).await);
    let room_id = r["room_id"].as_str().unwrap().to_owned();
    let mut pb = relay.ws(&room).await;
    let r = ok(&pb.join_otp(&b, otp).await);
    assert_eq!(r["awaiting_party"], false, "{r}");
    expect_event(&mut pa, "party_paired").await;
    Pair {
        room,
        room_id,
        a,
        b,
        pa,
        pb,
    }
}

/// Sends a message and checks the sender's side: its own `new_message` first, then `ok`. Returns
/// (the message id, the `new_message` data).
pub async fn send(peer: &mut Peer, data: Value) -> (String, Value) {
    let r = peer.push("send_message", data).await;
    let nm = peer.json().await;
    assert_eq!(nm["event"], "new_message", "sender's first frame: {nm}");
    let reply = peer.json().await;
    assert_eq!(reply["ref"], r.as_str(), "then the reply: {reply}");
    let id = ok(&reply)["message_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply["ok"],
        json!({"message_id": id}),
        "send's ok is {{message_id}}"
    );
    assert_eq!(nm["data"]["id"], id.as_str(), "{nm} vs {reply}");
    (id, nm["data"].clone())
}

/// A message body with explicit ciphertext and IV strings.
pub fn raw_body(ciphertext: &str, iv: &str) -> Value {
    json!({"ciphertext": ciphertext, "iv": iv})
}

/// A join frame's data for `who`.
pub fn join_data(who: &Who) -> Value {
    json!({"sender_hash": who.sender, "access_hash": who.access})
}

/// A random UUID v4 in its canonical lowercase form.
pub fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    lens == [8, 4, 4, 4, 12]
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && parts[2].starts_with('4')
        && parts[3].starts_with(['8', '9', 'a', 'b'])
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, returning Unix milliseconds.
pub fn iso(s: &str) -> u64 {
    let b = s.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "not an ISO 8601 UTC timestamp with ms: {s:?}");
    stelgano_proto::check::parse_iso_ms(s).unwrap()
}

/// Unix milliseconds now, by the wall clock (tests without paused time).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A WebSocket to `room` driven frame by frame (fragments, oversized messages).
pub async fn raw_ws(addr: SocketAddr, room: &str) -> stelgano_client::ws::WsStream {
    stelgano_client::ws::connect(&format!("ws://{addr}/room/{room}/ws"))
        .await
        .unwrap()
}

/// Sends `text` as one message split into `parts` fragments.
pub async fn send_fragmented(ws: &mut stelgano_client::ws::WsStream, text: &[u8], parts: usize) {
    let size = text.len().div_ceil(parts);
    let chunks: Vec<&[u8]> = text.chunks(size).collect();
    let last = chunks.len() - 1;
    for (i, c) in chunks.into_iter().enumerate() {
        let op = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        ws.write_frame(Frame::new(i == last, op, None, c.to_vec().into()))
            .await
            .unwrap();
    }
}

/// The next text frame (as JSON) or close (code, reason) on a raw WebSocket.
pub async fn raw_recv(ws: &mut stelgano_client::ws::WsStream) -> Got {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.read_frame())
            .await
            .expect("no frame within 5 s")
            .expect("socket error");
        match frame.opcode {
            OpCode::Text => return Got::Json(serde_json::from_slice(&frame.payload).unwrap()),
            OpCode::Close => {
                let p = &frame.payload;
                let code = if p.len() >= 2 {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    1005
                };
                let reason = String::from_utf8_lossy(p.get(2..).unwrap_or(&[])).into_owned();
                return Got::Closed { code, reason };
            }
            _ => continue,
        }
    }
}

/// Moves tokio's clock (and with it the relay's wall clock) `d` ahead at once, then lets time run
/// on. Suites that run in real time jump only here, at the moments they choose, so nothing else
/// (the harness's receive timeouts, the relay's idle timers) is advanced behind their back. Needs
/// the current-thread runtime of `#[tokio::test]` and a clock that is not already paused.
pub async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

/// `TestRelay::restart`, but tolerant of sled releasing its file lock a moment after the old
/// relay's store is dropped (its flusher thread still holds it; spacejam/sled#1289). Under load
/// an immediate reopen fails with `WouldBlock`, so the start is retried for up to 2 s.
pub async fn restart(relay: &mut TestRelay, tweak: impl Fn(&mut Config)) {
    if let Some(old) = relay.relay.take() {
        old.shutdown().await;
    }
    let mut last = None;
    for _ in 0..40 {
        let mut config = test_config(&relay.dir);
        tweak(&mut config);
        match stelgano_relay::Relay::start(config).await {
            Ok(new) => {
                relay.addr = new.local_addr();
                relay.relay = Some(new);
                return;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the relay did not restart on its data directory: {last:?}");
}

/// A host site in axum with the relay mounted under `prefix` (docs/EMBEDDING.md): its own page
/// at `/`, the relay on the prefix, the prefix with a slash and below it, each request carrying
/// its client's address. Serves until the test ends; returns the site's address.
pub async fn mount_in_axum(relay: &stelgano_relay::Embedded, prefix: &str) -> SocketAddr {
    use axum::extract::{ConnectInfo, Request};
    use axum::middleware::{self, Next};
    use axum::response::Response;

    async fn client_addr(
        ConnectInfo(addr): ConnectInfo<SocketAddr>,
        mut req: Request,
        next: Next,
    ) -> Response {
        req.extensions_mut()
            .insert(stelgano_relay::ClientAddr(addr));
        next.run(req).await
    }

    let s = relay.service(prefix);
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the host's own page" }))
        .route_service(prefix, s.clone())
        .route_service(&format!("{prefix}/"), s.clone())
        .route_service(&format!("{prefix}/{{*rest}}"), s)
        .layer(middleware::from_fn(client_addr));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// Spawns `cmd` (a relay binary or an example) with its log piped, and waits up to 20 s for the
/// log line that names its address: the first whitespace-delimited word after `marker`, up to a
/// `/`. Returns the child and that address, or `None` (the child killed) if it never came.
pub fn spawn_until_listening(
    cmd: &mut std::process::Command,
    marker: &'static str,
) -> Option<(std::process::Child, SocketAddr)> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the log for the child's whole life, so a full pipe never blocks it.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker).nth(1) {
                let word = rest.split_whitespace().next().unwrap_or("");
                let addr = word.split('/').next().unwrap_or("");
                let _ = tx.send(addr.parse::<SocketAddr>().ok());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)).ok().flatten() {
        Some(addr) => Some((child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// `stelgano-relay SUBCOMMAND ARGS… --data-dir DIR` as an operator runs it: (success, stdout,
/// stderr).
pub fn relay_cmd(sub: &str, data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stelgano-relay"))
        .arg(sub)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
