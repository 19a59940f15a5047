//! The relay binary at `--log trace` writes no hash (room, access, sender, pairing code), no
//! ciphertext and no IV, in any spelling, while whole rooms go through it: created with a pairing
//! code, paired, a message sent and read, a pairing code replaced, wrong PINs until a lock, a
//! burn, a socket reaped for not joining, a bad handshake and an `exists` look-up.
#![cfg(unix)]

mod common;
mod helpers;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::json;

/// The relay binary, its stderr collected line by line on a thread.
struct Relay {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Relay {
    fn start() -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("store"))
            .args([
                "--log",
                "trace",
                "--join-floor-ms",
                "0",
                "--join-jitter-ms",
                "0",
            ])
            .args(["--upgrades-per-min", "0", "--room-create-per-min", "0"])
            .args(["--max-failures", "3", "--join-deadline-secs", "1"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut relay = Relay {
            child,
            lines,
            log: Vec::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            dir,
        };
        // The relay names its address in its log: "open http://ADDR in a browser".
        loop {
            let line = relay
                .lines
                .recv_timeout(Duration::from_secs(20))
                .expect("the relay did not log its address within 20 s");
            relay.log.push(line.clone());
            if let Some(rest) = line.split("open http://").nth(1) {
                relay.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return relay;
            }
        }
    }

    /// SIGTERM, then the whole log once the process has exited.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(code) = self.child.try_wait().unwrap() {
                assert!(code.success(), "the relay exited with {code}");
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "the relay did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The pipe closes with the process, which ends the reading thread.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.log.push(line);
        }
        self.log
    }

    /// The harness's helpers take a `TestRelay`; this one stands for the binary (no in-process
    /// relay behind it).
    fn as_test_relay(&self) -> TestRelay {
        TestRelay {
            relay: None,
            addr: self.addr,
            dir: tempfile::tempdir_in(self.dir.path()).unwrap(),
        }
    }
}

/// Every way a 32-byte hash could show up in a log line: hex either case, and the decimal
/// `Debug` form of the bytes with and without spaces, also without brackets so that a hash
/// inside a longer key (an index entry) is caught.
fn spellings(hex: &str) -> Vec<String> {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let arr: [u8; 32] = bytes.try_into().unwrap();
    let spaced = format!("{arr:?}");
    let tight = spaced.replace(' ', "");
    let inner_spaced = spaced.trim_matches(['[', ']']).to_owned();
    let inner_tight = tight.trim_matches(['[', ']']).to_owned();
    vec![
        hex.to_lowercase(),
        hex.to_uppercase(),
        spaced,
        tight,
        inner_spaced,
        inner_tight,
    ]
}

/// A new party, its hashes noted.
fn who(hashes: &mut Vec<String>) -> Who {
    let w = Who::new();
    hashes.push(w.access.clone());
    hashes.push(w.sender.clone());
    w
}

/// Reads frames until the broadcast `event` (skipping any other broadcast before it).
async fn until_event(p: &mut Peer, event: &str) {
    for _ in 0..20 {
        if let Got::Json(v) = p.recv().await {
            if v["event"] == event {
                return;
            }
        }
    }
    panic!("no {event}");
}

#[tokio::test]
async fn no_hash_ciphertext_or_iv_reaches_the_log_at_trace_level() {
    let relay = Relay::start();
    let t = relay.as_test_relay();
    // Every hash the relay sees: room hashes, access and sender hashes, pairing-code hashes.
    let mut hashes: Vec<String> = Vec::new();

    // A socket that never joins, reaped by the 1 s join deadline while the rest goes on.
    let idle_room = random_hex();
    hashes.push(idle_room.clone());
    let mut idle = t.ws(&idle_room).await;

    // Room 1: created with a pairing code, paired, a message sent and read, wrong PINs until it
    // locks, then burned.
    let (room1, otp1) = (random_hex(), random_hex());
    hashes.extend([room1.clone(), otp1.clone()]);
    let (a, b) = (who(&mut hashes), who(&mut hashes));
    let mut pa = t.ws(&room1).await;
    ok(&pa.join_otp(&a, &otp1).await);
    let mut pb = t.ws(&room1).await;
    ok(&pb.join_otp(&b, &otp1).await);
    expect_event(&mut pa, "party_paired").await;
    let (id, _) = send(&mut pa, body(48)).await;
    expect_event(&mut pb, "new_message").await;
    pb.push("read_receipt", json!({"message_id": id})).await;
    expect_event(&mut pa, "message_read").await;
    let mut x = t.ws(&room1).await;
    for n in 1..=3 {
        let v = x.join(&who(&mut hashes)).await;
        assert_error(&v, if n < 3 { "unauthorized" } else { "locked" });
    }
    pa.push("expire_room", json!({})).await;
    until_event(&mut pa, "room_expired").await;

    // Room 2: its pairing code replaced before the second party uses it; then a message left in
    // the dead drop, and an `exists` look-up.
    let (room2, otp_old, otp_new) = (random_hex(), random_hex(), random_hex());
    hashes.extend([room2.clone(), otp_old.clone(), otp_new.clone()]);
    let (c, d) = (who(&mut hashes), who(&mut hashes));
    let mut pc = t.ws(&room2).await;
    ok(&pc.join_otp(&c, &otp_old).await);
    ok(&pc.call("reset_pairing", json!({"otp_hash": otp_new})).await);
    let mut pd = t.ws(&room2).await;
    assert_error(&pd.join_otp(&d, &otp_old).await, "otp_invalid");
    ok(&pd.join_otp(&d, &otp_new).await);
    expect_event(&mut pc, "party_paired").await;
    send(&mut pd, body(100)).await;
    expect_event(&mut pc, "new_message").await;
    assert!(exists(t.addr, &room2).await);

    // A handshake the relay turns down (logged at debug), naming room 2 in its path.
    let (status, _, _) = raw_http(
        t.addr,
        &format!(
            "GET /room/{room2}/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 8\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 400);

    expect_close(&mut idle, 1008, "join_timeout").await;
    drop((pa, pb, x, pc, pd, idle));

    let log = relay.stop();
    let text = log.join("\n");
    // Not vacuous: trace really was on, and the relay logged its own events while serving.
    assert!(text.contains("relay listening"), "{text}");
    assert!(
        text.contains("bad websocket handshake"),
        "no debug line: {text}"
    );
    assert!(
        text.contains("no join within the deadline"),
        "no debug line: {text}"
    );
    assert!(text.contains("socket ended"), "no trace line: {text}");
    assert!(text.contains("relay stopped"), "{text}");

    assert_eq!(hashes.len(), 20, "3 rooms, 3 pairing codes, 7 parties");
    let mut forbidden: Vec<String> = hashes.iter().flat_map(|h| spellings(h)).collect();
    // The message bodies and the IV, as sent.
    for n in [48, 100] {
        forbidden.push(body(n)["ciphertext"].as_str().unwrap().to_owned());
    }
    forbidden.push("AAECAwQFBgcICQoL".to_owned());
    for f in &forbidden {
        for line in &log {
            assert!(!line.contains(f.as_str()), "{f:?} is in the log: {line}");
        }
    }
}
