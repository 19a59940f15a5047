//! Shared harness for the relay's integration tests: a real relay on 127.0.0.1:0 and a small
//! WebSocket peer that speaks raw protocol frames.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, WebSocket};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rand::RngCore;
use serde_json::{json, Value};
use stelgano_relay::{Config, Relay};
use tempfile::TempDir;

/// A relay on an ephemeral port with its own data directory.
pub struct TestRelay {
    pub relay: Option<Relay>,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

/// Test defaults: no time floor and no rate limits unless a test asks for them. The join
/// deadline is far off too: suites that jump the clock by hours keep unjoined sockets (a guesser
/// that never gets in) across the jump; tests of the deadline set their own.
pub fn test_config(dir: &TempDir) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        join_floor: Duration::ZERO,
        join_jitter: Duration::ZERO,
        upgrades_per_min: 0,
        room_creates_per_min: 0,
        max_sockets_per_ip: 0,
        join_deadline: Duration::from_secs(400 * 24 * 3600),
        store_cache_bytes: 8 * 1024 * 1024,
        ..Config::default()
    }
}

impl TestRelay {
    pub async fn start() -> TestRelay {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir);
        tweak(&mut config);
        let relay = Relay::start(config).await.unwrap();
        TestRelay {
            addr: relay.local_addr(),
            relay: Some(relay),
            dir,
        }
    }

    /// Stops the relay and starts a new one on the same data directory (a restart).
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut Config)) {
        if let Some(relay) = self.relay.take() {
            relay.shutdown().await;
        }
        let mut config = test_config(&self.dir);
        tweak(&mut config);
        let relay = Relay::start(config).await.unwrap();
        self.addr = relay.local_addr();
        self.relay = Some(relay);
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn ws(&self, room: &str) -> Peer {
        Peer::connect(self.addr, room).await
    }

    pub async fn shutdown(mut self) {
        if let Some(relay) = self.relay.take() {
            relay.shutdown().await;
        }
    }
}

pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One party's identity for a room: random access and sender hashes.
#[derive(Clone, Debug)]
pub struct Who {
    pub access: String,
    pub sender: String,
}

impl Who {
    pub fn new() -> Who {
        Who {
            access: random_hex(),
            sender: random_hex(),
        }
    }

    /// The hashes a std-1 client derives from a steg number and a PIN (the client crate's own
    /// crypto, so a guesser's hashes are exactly what a real client would send).
    pub fn from_pin(phone: &str, pin: &str) -> Who {
        let id = stelgano_client::crypto::Identity::from_parts(phone, pin);
        Who {
            access: id.access_hash().to_owned(),
            sender: id.sender_hash().to_owned(),
        }
    }
}

/// A raw protocol peer.
pub struct Peer {
    ws: WebSocket<TokioIo<Upgraded>>,
    next_ref: u64,
}

/// What `Peer::recv` can see.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Closed { code: u16, reason: String },
}

impl Peer {
    pub async fn connect(addr: SocketAddr, room: &str) -> Peer {
        let ws = stelgano_client::ws::connect(&format!("ws://{addr}/room/{room}/ws"))
            .await
            .unwrap();
        Peer { ws, next_ref: 1 }
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .write_frame(Frame::text(text.as_bytes().to_vec().into()))
            .await
            .unwrap();
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .write_frame(Frame::binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }

    /// Sends `{"event","ref","data"}` and returns the ref used.
    pub async fn push(&mut self, event: &str, data: Value) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        let frame = json!({"event": event, "ref": r, "data": data});
        self.send_raw(&frame.to_string()).await;
        r
    }

    /// Next frame, or a close; panics after 5 s of silence (tests never wait longer).
    pub async fn recv(&mut self) -> Got {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.ws.read_frame())
                .await
                .expect("no frame within 5 s")
                .expect("socket error");
            match frame.opcode {
                OpCode::Text => {
                    return Got::Json(serde_json::from_slice(&frame.payload).unwrap());
                }
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

    pub async fn json(&mut self) -> Value {
        match self.recv().await {
            Got::Json(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Sends an event and returns its reply (skipping nothing: the reply must be next).
    pub async fn call(&mut self, event: &str, data: Value) -> Value {
        let r = self.push(event, data).await;
        let v = self.json().await;
        assert_eq!(v["ref"], r, "expected the reply to {event}, got {v}");
        v
    }

    pub async fn join(&mut self, who: &Who) -> Value {
        self.call(
            "join",
            json!({"sender_hash": who.sender, "access_hash": who.access}),
        )
        .await
    }

    pub async fn join_otp(&mut self, who: &Who, otp: &str) -> Value {
        self.call(
            "join",
            json!({"sender_hash": who.sender, "access_hash": who.access, "otp_hash": otp}),
        )
        .await
    }

    /// Asserts nothing arrives for `ms` milliseconds.
    pub async fn silent_for(&mut self, ms: u64) {
        if let Ok(Ok(frame)) =
            tokio::time::timeout(Duration::from_millis(ms), self.ws.read_frame()).await
        {
            if frame.opcode == OpCode::Text || frame.opcode == OpCode::Close {
                panic!(
                    "expected silence, got {:?} {}",
                    frame.opcode,
                    String::from_utf8_lossy(&frame.payload)
                );
            }
        }
    }
}

pub fn reason(v: &Value) -> &str {
    v["error"]["reason"].as_str().unwrap_or("")
}

/// A valid message body: `n` bytes of ciphertext and a 12-byte IV, base64.
pub fn body(n: usize) -> Value {
    let ct = stelgano_proto::check::b64_encode(&vec![0x5a; n]);
    json!({"ciphertext": ct, "iv": "AAECAwQFBgcICQoL"})
}

/// Minimal HTTP/1.1 GET over a raw socket: (status, headers lowercased, body).
pub async fn http_get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

impl Peer {
    /// Sends a close frame and waits for the relay's answer to it.
    pub async fn close(mut self) {
        self.ws
            .write_frame(Frame::close(1000, b"logout"))
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.ws.read_frame()).await {
                Ok(Ok(f)) if f.opcode == OpCode::Close => return,
                Ok(Ok(_)) => continue,
                _ => return,
            }
        }
    }
}

impl Peer {
    /// Stops answering pings (to play a dead peer).
    pub fn mute(&mut self) {
        self.ws.set_auto_pong(false);
    }
}

/// The non-panicking side of `Peer`, for tests that kill the relay under load: a reply that never
/// comes is an unacknowledged operation there, not a failure.
impl Peer {
    /// Connects, or `None` when nobody answers on `addr` (the relay is down).
    pub async fn try_connect(addr: SocketAddr, room: &str) -> Option<Peer> {
        let url = format!("ws://{addr}/room/{room}/ws");
        let ws = tokio::time::timeout(Duration::from_secs(5), stelgano_client::ws::connect(&url))
            .await
            .ok()?
            .ok()?;
        Some(Peer { ws, next_ref: 1 })
    }

    /// Sends an event and waits for the reply to it, passing over broadcasts. `None` when the
    /// socket fails or closes, or 5 s pass, before the reply arrives.
    pub async fn try_call(&mut self, event: &str, data: Value) -> Option<Value> {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        let frame = json!({"event": event, "ref": r, "data": data});
        self.ws
            .write_frame(Frame::text(frame.to_string().into_bytes().into()))
            .await
            .ok()?;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout_at(until, self.ws.read_frame())
                .await
                .ok()?
                .ok()?;
            match frame.opcode {
                OpCode::Text => {
                    let v: Value = serde_json::from_slice(&frame.payload).ok()?;
                    if v["ref"] == r.as_str() {
                        return Some(v);
                    }
                }
                OpCode::Close => return None,
                _ => {}
            }
        }
    }

    /// `join` through [`Peer::try_call`], with a pairing code hash when `otp` is given.
    pub async fn try_join(&mut self, who: &Who, otp: Option<&str>) -> Option<Value> {
        let mut data = json!({"sender_hash": who.sender, "access_hash": who.access});
        if let Some(otp) = otp {
            data["otp_hash"] = json!(otp);
        }
        self.try_call("join", data).await
    }
}
