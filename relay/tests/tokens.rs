//! Room lifetimes and extension tokens over real sockets (PROTOCOL.md §1, §3): minting through
//! the running relay and with it stopped, redeeming (the TTL moves and is floored to the hour;
//! a token works once; one winner under concurrency), tokens on a creating join, `kill -9`,
//! nothing in the data directory linking a token to a room, `/api/config` and `/api/funnel`,
//! TTL 0, burns closing sockets that never joined, and malformed pairing codes.
#![allow(clippy::unwrap_used)]

mod common;
mod helpers;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::{random_hex, reason, Peer, TestRelay, Who};
use helpers::{assert_error, expect_close, expect_event, iso, ok, pair, raw_http, unix_ms_now};
use serde_json::{json, Value};
use stelgano_relay::admin;
use stelgano_store::{token_hash, RoomKeys};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

async fn with_tokens() -> TestRelay {
    TestRelay::start_with(|c| c.extension_tokens = true).await
}

async fn redeem(peer: &mut Peer, secret: &str) -> Value {
    peer.call("redeem_extension", json!({ "extension_secret": secret }))
        .await
}

/// `redeem_extension` with its echo: the requester's own `ttl_extended` comes first, then the
/// reply. Returns the reply.
async fn redeem_ok(peer: &mut Peer, secret: &str) -> Value {
    let r = peer
        .push("redeem_extension", json!({ "extension_secret": secret }))
        .await;
    let echo = expect_event(peer, "ttl_extended").await;
    let reply = peer.json().await;
    assert_eq!(reply["ref"], r.as_str(), "{reply}");
    let at = ok(&reply)["ttl_expires_at"].clone();
    assert_eq!(echo["ttl_expires_at"], at, "the echo and the reply agree");
    reply
}

#[tokio::test]
async fn a_minted_token_moves_the_ttl_to_a_whole_hour_once() {
    let relay = with_tokens().await;
    // The relay holds the token store: minting goes through its admin socket.
    let secrets = admin::mint(relay.dir.path(), 3, 30).await.unwrap();
    assert_eq!(secrets.len(), 3);
    let c = admin::counts(relay.dir.path()).await.unwrap();
    assert_eq!((c.unused, c.redeemed), (3, 0));

    let mut p = pair(&relay).await;
    let before = iso(ok(&p.pa.join(&p.a).await)["ttl_expires_at"]
        .as_str()
        .unwrap());
    let t0 = unix_ms_now();
    let reply = redeem_ok(&mut p.pa, &secrets[0]).await;
    let at = iso(reply["ok"]["ttl_expires_at"].as_str().unwrap());
    assert_eq!(at % HOUR, 0, "floored to the hour: {reply}");
    let want = before.max(t0) + 365 * DAY;
    assert!(
        at <= want + 1000 && at > want - HOUR,
        "not the old expiry + 365 days, floored: {at} vs {want}"
    );
    // The other party hears of it.
    let other = expect_event(&mut p.pb, "ttl_extended").await;
    assert_eq!(other["ttl_expires_at"], reply["ok"]["ttl_expires_at"]);
    // A rejoin reports the new expiry.
    let r = ok(&p.pb.join(&p.b).await);
    assert_eq!(r["ttl_expires_at"], reply["ok"]["ttl_expires_at"]);

    // Used: refused, here and in another room.
    assert_error(&redeem(&mut p.pa, &secrets[0]).await, "invalid_token");
    let mut q = pair(&relay).await;
    assert_error(&redeem(&mut q.pa, &secrets[0]).await, "invalid_token");
    // Never minted, and not even a secret's shape.
    assert_error(&redeem(&mut q.pa, &random_hex()).await, "invalid_token");
    assert_error(&redeem(&mut q.pa, "not-a-secret").await, "invalid_token");
    assert_error(
        &q.pa.call("redeem_extension", json!({})).await,
        "invalid_token",
    );
    // A second token extends again, from the extended expiry.
    let again = redeem_ok(&mut p.pa, &secrets[1]).await;
    let at2 = iso(again["ok"]["ttl_expires_at"].as_str().unwrap());
    assert!(
        at2 >= at + 365 * DAY - HOUR && at2.is_multiple_of(HOUR),
        "{again}"
    );

    let c = admin::counts(relay.dir.path()).await.unwrap();
    assert_eq!((c.unused, c.redeemed), (1, 2));
    relay.shutdown().await;
}

#[tokio::test]
async fn with_tokens_off_redeem_is_monetization_disabled_and_secrets_on_joins_are_ignored() {
    let relay = TestRelay::start().await;
    let mut p = pair(&relay).await;
    assert_error(
        &redeem(&mut p.pa, &random_hex()).await,
        "monetization_disabled",
    );
    // The reference client sends its stored secret on every join: the join still works.
    let room = random_hex();
    let who = Who::new();
    let mut s = relay.ws(&room).await;
    let r = s
        .call(
            "join",
            json!({"sender_hash": who.sender, "access_hash": who.access,
                   "extension_secret": random_hex()}),
        )
        .await;
    let at = iso(ok(&r)["ttl_expires_at"].as_str().unwrap());
    assert!(at < unix_ms_now() + 8 * DAY, "a free room: {r}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_creating_join_with_a_good_token_starts_extended_and_with_a_bad_one_free() {
    let relay = with_tokens().await;
    let secrets = admin::mint(relay.dir.path(), 1, 1).await.unwrap();
    let join = |who: &Who, secret: &str| json!({"sender_hash": who.sender, "access_hash": who.access, "extension_secret": secret});
    let who = Who::new();
    let mut a = relay.ws(&random_hex()).await;
    let t0 = unix_ms_now();
    let r = a.call("join", join(&who, &secrets[0])).await;
    let at = iso(ok(&r)["ttl_expires_at"].as_str().unwrap());
    assert!(
        at.is_multiple_of(HOUR) && at > t0 + 365 * DAY - HOUR && at <= t0 + 365 * DAY + 1000,
        "created extended: {r}"
    );
    // The token is spent: a second creating join with it makes a free room, and still joins.
    let mut b = relay.ws(&random_hex()).await;
    let r = b.call("join", join(&who, &secrets[0])).await;
    let at = iso(ok(&r)["ttl_expires_at"].as_str().unwrap());
    assert!(at < unix_ms_now() + 8 * DAY, "created free: {r}");
    let c = admin::counts(relay.dir.path()).await.unwrap();
    assert_eq!((c.unused, c.redeemed), (0, 1));
    relay.shutdown().await;
}

/// Many tokens, each redeemed by two rooms at the same moment on a multi-threaded runtime:
/// exactly one of each pair wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rooms_redeeming_one_token_at_once_have_exactly_one_winner() {
    let relay = with_tokens().await;
    const N: usize = 40;
    let secrets = admin::mint(relay.dir.path(), N as u32, 1).await.unwrap();
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let room = random_hex();
        let who = Who::new();
        let mut peer = relay.ws(&room).await;
        ok(&peer.join(&who).await);
        rooms.push(peer);
    }
    let mut wins = [0usize; 2];
    for secret in &secrets {
        let mut tasks = Vec::new();
        for mut peer in rooms.drain(..) {
            let secret = secret.clone();
            tasks.push(tokio::spawn(async move {
                let r = peer
                    .push("redeem_extension", json!({ "extension_secret": secret }))
                    .await;
                let first = peer.json().await;
                (peer, r, first)
            }));
        }
        let mut won = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            let (mut peer, r, reply) = t.await.unwrap();
            if reply.get("event").is_some() {
                // The winner's echo came first; its reply follows.
                assert_eq!(reply["event"], "ttl_extended");
                let answer = peer.json().await;
                assert_eq!(answer["ref"], r.as_str());
                ok(&answer);
                won += 1;
                wins[i] += 1;
            } else {
                assert_error(&reply, "invalid_token");
            }
            rooms.push(peer);
        }
        assert_eq!(won, 1, "one token, two redeemers: exactly one winner");
    }
    assert_eq!(wins[0] + wins[1], N);
    let c = admin::counts(relay.dir.path()).await.unwrap();
    assert_eq!((c.unused, c.redeemed), (0, N as u64));
    relay.shutdown().await;
}

/// The relay binary as a child, killed with SIGKILL on drop.
struct ChildRelay {
    child: Child,
    addr: SocketAddr,
}

impl ChildRelay {
    fn start(data_dir: &Path) -> ChildRelay {
        for _ in 0..20 {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"));
            cmd.args(["--listen", "127.0.0.1:0", "--extension-tokens"])
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--join-floor-ms", "0", "--join-jitter-ms", "0"]);
            if let Some((child, addr)) = helpers::spawn_until_listening(&mut cmd, "open http://") {
                return ChildRelay { child, addr };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the relay binary did not start");
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `stelgano-relay tokens …` as an operator runs it.
fn tokens_cmd(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    helpers::relay_cmd("tokens", data_dir, args)
}

fn is_secret(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn token_state_survives_kill_dash_nine_and_the_cli_mints_with_the_relay_up_or_down() {
    let dir = tempfile::tempdir().unwrap();
    // Relay down: the command opens the token store itself. Secrets alone on stdout.
    let (ok_, stdout, stderr) = tokens_cmd(dir.path(), &["mint", "--count", "3", "--days", "7"]);
    assert!(ok_, "{stderr}");
    let offline: Vec<&str> = stdout.lines().collect();
    assert_eq!(offline.len(), 3, "{stdout}");
    assert!(offline.iter().all(|s| is_secret(s)), "{stdout}");
    // Bad counts are refused with a clear message.
    let (ok_, _, stderr) = tokens_cmd(dir.path(), &["mint", "--count", "0", "--days", "7"]);
    assert!(!ok_ && stderr.contains("--count"), "{stderr}");

    let relay = ChildRelay::start(dir.path());
    // Relay up: through its admin socket.
    let (ok_, stdout, stderr) = tokens_cmd(dir.path(), &["mint", "--count", "2", "--days", "7"]);
    assert!(ok_, "{stderr}");
    let online: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(online.len(), 2);

    let room = random_hex();
    let who = Who::new();
    let mut p = Peer::connect(relay.addr, &room).await;
    ok(&p.join(&who).await);
    let reply = redeem_ok(&mut p, offline[0]).await;
    let extended = reply["ok"]["ttl_expires_at"].clone();
    let reply = redeem_ok(&mut p, &online[0]).await;
    let extended_twice = reply["ok"]["ttl_expires_at"].clone();
    assert_ne!(extended, extended_twice);
    drop(p);
    // Acknowledged, then killed with no shutdown path.
    relay.kill();

    let relay = ChildRelay::start(dir.path());
    let mut p = Peer::connect(relay.addr, &room).await;
    let r = ok(&p.join(&who).await);
    assert_eq!(
        r["ttl_expires_at"], extended_twice,
        "the extension survived"
    );
    assert_error(&redeem(&mut p, offline[0]).await, "invalid_token");
    assert_error(&redeem(&mut p, &online[0]).await, "invalid_token");
    redeem_ok(&mut p, &online[1]).await;
    let (ok_, stdout, stderr) = tokens_cmd(dir.path(), &["list"]);
    assert!(ok_, "{stderr}");
    assert!(
        stdout.contains("unused\t2") && stdout.contains("redeemed\t3"),
        "{stdout}"
    );
    relay.kill();
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn nothing_on_disk_links_a_token_to_the_room_that_used_it() {
    let relay = with_tokens().await;
    let secrets = admin::mint(relay.dir.path(), 4, 3).await.unwrap();
    let mut p = pair(&relay).await;
    redeem_ok(&mut p.pa, &secrets[0]).await;
    let _ = expect_event(&mut p.pb, "ttl_extended").await;
    let room_hash = p.room.clone();
    let room_id = p.room_id.clone();
    // Stopped, but its data directory kept for inspection.
    let TestRelay { relay: r, dir, .. } = relay;
    r.unwrap().shutdown().await;
    let dir = dir.path().to_owned();

    let locator = RoomKeys::derive(&stelgano_proto::check::hex64(&room_hash).unwrap()).locator();
    let room_marks: Vec<Vec<u8>> = vec![
        room_hash.as_bytes().to_vec(),
        stelgano_proto::check::hex64(&room_hash).unwrap().to_vec(),
        locator.as_bytes().to_vec(),
        room_id.as_bytes().to_vec(),
        uuid::Uuid::parse_str(&room_id).unwrap().as_bytes().to_vec(),
    ];
    let token = token_hash(&secrets[0]);
    let token_marks: Vec<Vec<u8>> = vec![
        token.to_vec(),
        stelgano_proto::check::to_hex64(&token).into_bytes(),
        secrets[0].as_bytes().to_vec(),
    ];
    let token_files = files(&dir.join(stelgano_store::TOKENS_DIR));
    let room_files = files(&dir.join("store-v2"));
    assert!(!token_files.is_empty() && !room_files.is_empty());
    for (name, bytes) in &token_files {
        for m in &room_marks {
            assert!(!contains(bytes, m), "{name} names the room");
        }
        // The secret itself is never stored anywhere.
        assert!(
            !contains(bytes, secrets[0].as_bytes()),
            "{name} holds a secret"
        );
    }
    for (name, bytes) in &room_files {
        for m in &token_marks {
            assert!(!contains(bytes, m), "{name} names the token");
        }
    }
    // Control: the token database does hold unused tokens' hashes (the scan can see them).
    let unused = token_hash(&secrets[1]);
    assert!(token_files.iter().any(|(_, b)| contains(b, &unused)));
}

#[tokio::test]
async fn api_config_and_funnel_answer_as_the_reference_client_expects() {
    let relay = with_tokens().await;
    let (status, head, body) = raw_http(
        relay.addr,
        "GET /api/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{head}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"monetization_enabled": true, "free_ttl_days": 7, "paid_ttl_days": 365,
               "price_cents": 0, "currency": "", "cf_country": null})
    );
    let (status, head, body) = raw_http(
        relay.addr,
        "POST /api/funnel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 38\r\nConnection: close\r\n\r\n{\"step\":\"landing\",\"campaign\":\"test1\"}",
    )
    .await;
    assert_eq!(status, 204, "{head}");
    assert!(body.is_empty());
    let (status, _, _) = raw_http(
        relay.addr,
        "GET /api/funnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    relay.shutdown().await;

    let relay = TestRelay::start_with(|c| {
        c.free_ttl = Duration::ZERO;
        c.extended_ttl = Duration::from_secs(30 * 86_400);
    })
    .await;
    let (_, _, body) = raw_http(
        relay.addr,
        "GET /api/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["monetization_enabled"], false);
    assert_eq!(
        (v["free_ttl_days"].clone(), v["paid_ttl_days"].clone()),
        (json!(0), json!(30))
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_ttl_of_zero_means_the_room_never_expires() {
    let mut relay = TestRelay::start_with(|c| c.free_ttl = Duration::ZERO).await;
    let room = random_hex();
    let who = Who::new();
    let mut p = relay.ws(&room).await;
    let r = ok(&p.join(&who).await);
    assert_eq!(r["ttl_expires_at"], "9999-12-31T23:59:59.999Z", "{r}");
    drop(p);
    // Ten years on, after a restart, it is still there.
    helpers::restart(&mut relay, |c| c.free_ttl = Duration::ZERO).await;
    helpers::jump(Duration::from_secs(10 * 365 * 86_400)).await;
    assert!(helpers::exists(relay.addr, &room).await);
    let mut p = relay.ws(&room).await;
    let r = ok(&p.join(&who).await);
    assert_eq!(r["ttl_expires_at"], "9999-12-31T23:59:59.999Z");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_burn_closes_sockets_that_never_joined() {
    let relay = TestRelay::start().await;
    let mut p = pair(&relay).await;
    // Opened on the room's path, never joined (a page still deriving its key, or a watcher).
    let mut idle = relay.ws(&p.room).await;
    let mut other_room = relay.ws(&random_hex()).await;
    idle.silent_for(100).await;
    let r = p.pa.push("expire_room", json!({})).await;
    expect_event(&mut p.pa, "room_expired").await;
    assert_eq!(ok(&p.pa.json().await), json!({}), "{r}");
    expect_close(&mut idle, 1000, "room_expired").await;
    // Only that room's sockets: one open on another room stays.
    other_room.silent_for(300).await;
    assert_eq!(
        reason(&other_room.call("typing_x", json!({})).await),
        "invalid_topic"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_malformed_pairing_code_is_a_wrong_code_and_counts() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let otp = random_hex();
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &otp).await);
    let mut pb = relay.ws(&room).await;
    for (n, bad) in ["nope", "ABCD", &otp.to_uppercase()].iter().enumerate() {
        let r = pb.join_otp(&b, bad).await;
        assert_error(&r, "otp_invalid");
        assert_eq!(r["error"]["attempts_remaining"], 9 - n as u64, "{r}");
    }
    // Absent or empty: the code is required, and that does not count.
    assert_error(&pb.join(&b).await, "otp_required");
    assert_error(&pb.join_otp(&b, "").await, "otp_required");
    let r = pb.join_otp(&b, &random_hex()).await;
    assert_eq!(r["error"]["attempts_remaining"], 6, "{r}");
    ok(&pb.join_otp(&b, &otp).await);
    relay.shutdown().await;
}
