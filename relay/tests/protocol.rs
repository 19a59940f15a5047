//! The room protocol (PROTOCOL.md §2–§5, §7, §8), black-box over real sockets: frames and their
//! errors, every event and its rules, broadcasts and their order, and the per-IP creation limit.
//! Lockouts live in `lockout.rs`, durability in `restart.rs`, the HTTP routes in `http.rs`.

mod common;
mod helpers;

use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::{json, Value};
use stelgano_proto::check::b64_encode;

const INVALID_ENCODING_0: &str = r#"{"ref":"0","error":{"reason":"invalid_encoding"}}"#;

fn invalid_encoding_0() -> Value {
    serde_json::from_str(INVALID_ENCODING_0).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------------------------
// §2 Frames

#[tokio::test]
async fn binary_and_non_json_frames_get_invalid_encoding_and_the_socket_stays_usable() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let a = Who::new();
    let mut p = relay.ws(&room).await;

    p.send_binary(b"\x00\x01binary").await;
    assert_eq!(p.json().await, invalid_encoding_0(), "binary frame");
    // Text that is not a JSON object: not JSON at all, and JSON of every other kind.
    for text in [
        "not json",
        "{\"event\":",
        "[1,2]",
        "42",
        "\"join\"",
        "null",
        "true",
    ] {
        p.send_raw(text).await;
        assert_eq!(p.json().await, invalid_encoding_0(), "text {text:?}");
    }
    // Still usable: a join works, and after it a binary frame is again only an error.
    let r = ok(&p.join(&a).await);
    assert_eq!(r["awaiting_party"], true);
    p.send_binary(b"{}").await;
    assert_eq!(p.json().await, invalid_encoding_0(), "binary after join");
    p.send_raw("]").await;
    assert_eq!(p.json().await, invalid_encoding_0(), "garbage after join");
    send(&mut p, body(16)).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn unknown_events_get_invalid_topic() {
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    ok(&p.join(&Who::new()).await);
    for name in ["nope", "JOIN", "send", ""] {
        let v = p.call(name, json!({})).await;
        assert_error(&v, "invalid_topic");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn every_event_before_join_gets_not_joined() {
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    let id = uuid_like();
    let cases = [
        ("send_message", body(16)),
        (
            "edit_message",
            json!({"message_id": id, "ciphertext": "AAAA", "iv": "AAECAwQFBgcICQoL"}),
        ),
        ("delete_message", json!({"message_id": id})),
        ("expire_room", json!({})),
        ("reset_pairing", json!({"otp_hash": random_hex()})),
        ("redeem_extension", json!({"extension_secret": "x"})),
    ];
    for (event, data) in cases {
        let v = p.call(event, data).await;
        assert_error(&v, "not_joined");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn typing_and_read_receipt_with_a_ref_before_join_get_not_joined() {
    // §2: "Before a successful join on this socket, every other event gets not_joined (if it has a
    // ref)"; typing and read_receipt are only exempt from replies once joined.
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    let v = p.call("typing", json!({})).await;
    assert_error(&v, "not_joined");
    let v = p
        .call("read_receipt", json!({"message_id": uuid_like()}))
        .await;
    assert_error(&v, "not_joined");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_failed_join_leaves_the_socket_not_joined() {
    let relay = TestRelay::start().await;
    let pair = pair(&relay).await;
    let mut p = relay.ws(&pair.room).await;
    let v = p.join(&Who::new()).await;
    assert_error(&v, "unauthorized");
    let v = p.call("send_message", body(16)).await;
    assert_error(&v, "not_joined");
    let v = p.call("expire_room", json!({})).await;
    assert_error(&v, "not_joined");
    // A bad join (invalid sender) does not join either.
    let v = p
        .call(
            "join",
            json!({"sender_hash": "x", "access_hash": pair.a.access}),
        )
        .await;
    assert_error(&v, "invalid_sender");
    let v = p
        .call("delete_message", json!({"message_id": uuid_like()}))
        .await;
    assert_error(&v, "not_joined");
    relay.shutdown().await;
}

#[tokio::test]
async fn events_without_a_ref_get_no_reply() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let mut stranger = relay.ws(&pair.room).await;

    // Not joined, no ref: ignored.
    stranger
        .send_raw(&json!({"event": "send_message", "data": body(16)}).to_string())
        .await;
    stranger.silent_for(200).await;

    // Joined, no ref: unknown events and invalid frames get nothing back.
    let pa = &mut pair.pa;
    pa.send_raw(&json!({"event": "nope", "data": {}}).to_string())
        .await;
    pa.send_raw(
        &json!({"event": "send_message", "data": {"ciphertext": "***", "iv": "x"}}).to_string(),
    )
    .await;
    pa.send_raw(
        &json!({"event": "delete_message", "data": {"message_id": uuid_like()}}).to_string(),
    )
    .await;
    pa.silent_for(200).await;

    // A valid send without a ref may be delivered, but never answered with a reply.
    pa.send_raw(&json!({"event": "send_message", "data": body(16)}).to_string())
        .await;
    for g in frames_for(pa, 300).await {
        match g {
            Got::Json(v) => assert!(v.get("ref").is_none(), "a reply to a ref-less event: {v}"),
            Got::Closed { code, reason } => panic!("closed {code} {reason}"),
        }
    }
    // And the socket still answers events that have one.
    let v = pa.call("nope", json!({})).await;
    assert_error(&v, "invalid_topic");
    relay.shutdown().await;
}

#[tokio::test]
async fn refs_are_echoed_verbatim() {
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    let a = Who::new();
    let frame = json!({"event": "join", "ref": "my-ref:7", "data": join_data(&a)});
    p.send_raw(&frame.to_string()).await;
    let v = p.json().await;
    assert_eq!(v["ref"], "my-ref:7", "{v}");
    ok(&v);
    let frame = json!({"event": "nope", "ref": "Z", "data": {}});
    p.send_raw(&frame.to_string()).await;
    let v = p.json().await;
    assert_eq!(v, json!({"ref": "Z", "error": {"reason": "invalid_topic"}}));
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 join

#[tokio::test]
async fn join_checks_sender_hash_then_access_hash() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let mut p = relay.ws(&room).await;
    let good = random_hex();
    let bad = [
        json!(good.to_uppercase()),
        json!(&good[..63]),
        json!(format!("{good}0")),
        json!(format!("{}z", &good[..63])),
        json!(""),
        json!(42),
        Value::Null,
    ];
    for b in &bad {
        let v = p
            .call(
                "join",
                json!({"sender_hash": b, "access_hash": random_hex()}),
            )
            .await;
        assert_error(&v, "invalid_sender");
        let v = p
            .call(
                "join",
                json!({"sender_hash": random_hex(), "access_hash": b}),
            )
            .await;
        assert_error(&v, "invalid_access");
        // Both wrong: the sender is checked first.
        let v = p
            .call("join", json!({"sender_hash": b, "access_hash": b}))
            .await;
        assert_error(&v, "invalid_sender");
    }
    let v = p.call("join", json!({"access_hash": random_hex()})).await;
    assert_error(&v, "invalid_sender");
    let v = p.call("join", json!({"sender_hash": random_hex()})).await;
    assert_error(&v, "invalid_access");
    // None of this created the room.
    assert!(!exists(relay.addr, &room).await);
    relay.shutdown().await;
}

#[tokio::test]
async fn creating_a_room_replies_room_id_ttl_and_awaiting_party() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let mut p = relay.ws(&room).await;
    let before = unix_ms_now();
    let r = ok(&p.join(&Who::new()).await);
    let after = unix_ms_now();
    assert_eq!(
        keys(&r),
        ["awaiting_party", "room_id", "ttl_expires_at"],
        "{r}"
    );
    assert_eq!(r["awaiting_party"], true);
    let room_id = r["room_id"].as_str().unwrap();
    assert!(is_uuid_v4(room_id), "room_id {room_id:?}");
    let ttl = iso(r["ttl_expires_at"].as_str().unwrap());
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        ttl + 1000 >= before + week && ttl <= after + week + 1000,
        "ttl_expires_at is not now + 7 days: {r}"
    );
    assert!(exists(relay.addr, &room).await);

    // Another new room gets another room_id.
    let mut q = relay.ws(&random_hex()).await;
    let r2 = ok(&q.join(&Who::new()).await);
    assert_ne!(r2["room_id"], r["room_id"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn rejoining_a_seat_keeps_room_id_and_ttl() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let a = Who::new();
    let mut p1 = relay.ws(&room).await;
    let r1 = ok(&p1.join(&a).await);
    // Same seat from a second socket (a second tab) while the first stays open, then again.
    let mut p2 = relay.ws(&room).await;
    let r2 = ok(&p2.join(&a).await);
    assert_eq!(r2, r1, "only one seat is taken, no message: the same reply");
    drop(p1);
    drop(p2);
    let mut p3 = relay.ws(&room).await;
    let r3 = ok(&p3.join(&a).await);
    assert_eq!(r3, r1);
    assert!(r3.get("current_message").is_none(), "{r3}");
    assert!(r3.get("failed_attempts").is_none(), "{r3}");
    relay.shutdown().await;
}

#[tokio::test]
async fn country_iso_and_extension_secret_are_accepted_on_join() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    let r = ok(&pa
        .call(
            "join",
            json!({"sender_hash": a.sender, "access_hash": a.access, "country_iso": "DE",
                   "extension_secret": "not-a-token"}),
        )
        .await);
    assert_eq!(r["awaiting_party"], true);
    let mut pb = relay.ws(&room).await;
    let r = ok(&pb
        .call(
            "join",
            json!({"sender_hash": b.sender, "access_hash": b.access, "country_iso": "NL"}),
        )
        .await);
    assert_eq!(r["awaiting_party"], false);
    relay.shutdown().await;
}

#[tokio::test]
async fn without_a_valid_otp_the_second_seat_is_open_to_anyone() {
    let relay = TestRelay::start().await;
    for otp in [
        json!("1234"),
        json!(random_hex().to_uppercase()),
        Value::Null,
    ] {
        let room = random_hex();
        let (a, b) = (Who::new(), Who::new());
        let mut pa = relay.ws(&room).await;
        let r = ok(&pa
            .call(
                "join",
                json!({"sender_hash": a.sender, "access_hash": a.access, "otp_hash": otp}),
            )
            .await);
        let room_id = r["room_id"].clone();
        let mut pb = relay.ws(&room).await;
        let r = ok(&pb.join(&b).await);
        assert_eq!(r["awaiting_party"], false, "otp {otp}: {r}");
        assert_eq!(r["room_id"], room_id);
        expect_event(&mut pa, "party_paired").await;
        // Now A's rejoin says the party is there.
        let mut pa2 = relay.ws(&room).await;
        let r = ok(&pa2.join(&a).await);
        assert_eq!(r["awaiting_party"], false);
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn otp_required_never_counts_as_a_failure() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &otp).await);
    let mut pb = relay.ws(&room).await;
    for _ in 0..15 {
        let v = pb.join(&b).await;
        assert_error(&v, "otp_required");
    }
    let r = ok(&pb.join_otp(&b, &otp).await);
    assert_eq!(r["awaiting_party"], false);
    relay.shutdown().await;
}

#[tokio::test]
async fn pairing_notifies_only_the_other_party_and_the_code_is_single_use() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa1 = relay.ws(&room).await;
    let r = ok(&pa1.join_otp(&a, &otp).await);
    let room_id = r["room_id"].clone();
    let ttl = r["ttl_expires_at"].clone();
    let mut pa2 = relay.ws(&room).await;
    ok(&pa2.join(&a).await);

    let mut pb = relay.ws(&room).await;
    let r = ok(&pb.join_otp(&b, &otp).await);
    assert_eq!(r["room_id"], room_id);
    assert_eq!(r["ttl_expires_at"], ttl);
    assert_eq!(r["awaiting_party"], false);
    expect_event(&mut pa1, "party_paired").await;
    expect_event(&mut pa2, "party_paired").await;
    pb.silent_for(150).await;

    // One use: the code does not open a third seat.
    let mut pc = relay.ws(&room).await;
    let v = pc.join_otp(&Who::new(), &otp).await;
    assert_error(&v, "unauthorized");
    // B's later rejoin needs no code and is not a claim.
    let mut pb2 = relay.ws(&room).await;
    let r = ok(&pb2.join(&b).await);
    assert_eq!(r["awaiting_party"], false);
    pa1.silent_for(100).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_seat_is_bound_to_the_sender_hash_it_was_claimed_with() {
    let relay = TestRelay::start().await;
    let pair = pair(&relay).await;
    for who in [&pair.a, &pair.b] {
        let mut p = relay.ws(&pair.room).await;
        let impostor = Who {
            access: who.access.clone(),
            sender: random_hex(),
        };
        let v = p.join(&impostor).await;
        assert_error(&v, "invalid_sender");
        // The socket is still unjoined, and the right pair still works.
        let v = p.call("send_message", body(16)).await;
        assert_error(&v, "not_joined");
        ok(&p.join(who).await);
    }
    relay.shutdown().await;
}

/// Sends one join per (peer, identity) from separate tasks at once and returns the replies.
async fn race_joins(peers: Vec<(Peer, Who)>) -> Vec<Value> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(peers.len()));
    let tasks: Vec<_> = peers
        .into_iter()
        .map(|(mut p, w)| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                p.join(&w).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_to_a_new_room_create_exactly_one_room() {
    let relay = TestRelay::start().await;

    // Eight strangers race for one new room (no pairing code): one creates, one claims the
    // second seat, the rest are wrong PINs against that same room.
    let room = random_hex();
    let mut peers = Vec::new();
    for _ in 0..8 {
        peers.push((relay.ws(&room).await, Who::new()));
    }
    let replies = race_joins(peers).await;
    let oks: Vec<&Value> = replies.iter().filter(|v| v.get("ok").is_some()).collect();
    assert_eq!(oks.len(), 2, "{replies:?}");
    assert_eq!(
        oks[0]["ok"]["room_id"], oks[1]["ok"]["room_id"],
        "two rooms were created: {replies:?}"
    );
    let awaiting: Vec<bool> = oks
        .iter()
        .map(|v| v["ok"]["awaiting_party"].as_bool().unwrap())
        .collect();
    assert!(
        awaiting.contains(&true) && awaiting.contains(&false),
        "{replies:?}"
    );
    for v in replies.iter().filter(|v| v.get("ok").is_none()) {
        assert_error(v, "unauthorized");
    }

    // The same identity racing from eight tabs: one room, one room_id.
    let room = random_hex();
    let a = Who::new();
    let mut peers = Vec::new();
    for _ in 0..8 {
        peers.push((relay.ws(&room).await, a.clone()));
    }
    let replies = race_joins(peers).await;
    let first = ok(&replies[0]);
    for v in &replies {
        assert_eq!(ok(v)["room_id"], first["room_id"], "{replies:?}");
        assert_eq!(ok(v)["awaiting_party"], true);
    }
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 send_message, §4 payload

#[tokio::test]
async fn the_sender_gets_its_own_new_message_before_its_ok_and_everyone_gets_the_payload() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let mut pa2 = relay.ws(&pair.room).await;
    ok(&pa2.join(&pair.a).await);

    let data = body(300);
    let (id, payload) = send(&mut pair.pa, data.clone()).await;
    assert!(is_uuid_v4(&id), "message id {id:?}");
    assert_eq!(
        keys(&payload),
        [
            "ciphertext",
            "id",
            "inserted_at",
            "iv",
            "read_at",
            "sender_hash"
        ],
        "{payload}"
    );
    assert_eq!(payload["sender_hash"], pair.a.sender.as_str());
    assert_eq!(payload["ciphertext"], data["ciphertext"]);
    assert_eq!(payload["iv"], data["iv"]);
    assert_eq!(payload["read_at"], Value::Null);
    let inserted = iso(payload["inserted_at"].as_str().unwrap());
    assert!(inserted.abs_diff(unix_ms_now()) < 5_000);

    // The sender's other socket and the other party receive the same broadcast.
    assert_eq!(expect_event(&mut pa2, "new_message").await, payload);
    assert_eq!(expect_event(&mut pair.pb, "new_message").await, payload);

    // The current message is in the reply of a later join.
    let mut pb2 = relay.ws(&pair.room).await;
    let r = ok(&pb2.join(&pair.b).await);
    assert_eq!(r["current_message"], payload, "{r}");
    assert_eq!(r["awaiting_party"], false);
    relay.shutdown().await;
}

#[tokio::test]
async fn the_turn_rule_blocks_a_second_message_until_the_other_party_answers() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;
    let v = pair.pa.call("send_message", body(10)).await;
    assert_error(&v, "not_your_turn");
    // Another socket of the same sender is the same sender.
    let mut pa2 = relay.ws(&pair.room).await;
    ok(&pa2.join(&pair.a).await);
    let v = pa2.call("send_message", body(10)).await;
    assert_error(&v, "not_your_turn");

    // B answers without reading; then it is A's turn again (and not B's).
    send(&mut pair.pb, body(20)).await;
    expect_event(&mut pair.pa, "new_message").await;
    expect_event(&mut pa2, "new_message").await;
    let v = pair.pb.call("send_message", body(10)).await;
    assert_error(&v, "not_your_turn");
    send(&mut pair.pa, body(30)).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_new_message_replaces_the_old_one() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (m1, _) = send(&mut pair.pa, body(11)).await;
    expect_event(&mut pair.pb, "new_message").await;
    let (m2, p2) = send(&mut pair.pb, body(22)).await;
    expect_event(&mut pair.pa, "new_message").await;
    assert_ne!(m1, m2);

    let mut pa2 = relay.ws(&pair.room).await;
    let r = ok(&pa2.join(&pair.a).await);
    assert_eq!(
        r["current_message"], p2,
        "only the newest message is held: {r}"
    );

    // The old message is gone: its author can neither edit nor delete it.
    let v = pair
        .pa
        .call(
            "edit_message",
            json!({"message_id": m1, "ciphertext": "AAAA", "iv": "AAECAwQFBgcICQoL"}),
        )
        .await;
    assert_error(&v, "not_found");
    let v = pair
        .pa
        .call("delete_message", json!({"message_id": m1}))
        .await;
    assert_error(&v, "not_found");
    // A receipt for it does nothing.
    pair.pa
        .push("read_receipt", json!({"message_id": m1}))
        .await;
    pair.pa.silent_for(150).await;
    pair.pb.silent_for(50).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_message_sent_before_pairing_is_in_the_claim_reply() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    ok(&pa.join(&a).await);
    let (_, payload) = send(&mut pa, body(40)).await;
    let mut pb = relay.ws(&room).await;
    let r = ok(&pb.join(&b).await);
    assert_eq!(r["awaiting_party"], false);
    assert_eq!(r["current_message"], payload);
    relay.shutdown().await;
}

#[tokio::test]
async fn send_rejects_bad_base64_and_bad_ivs_with_invalid_encoding() {
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    ok(&p.join(&Who::new()).await);
    let iv = "AAECAwQFBgcICQoL";
    // These six bytes are "++++////" in the standard alphabet and "----____" in the URL-safe one.
    assert_eq!(
        b64_encode(&[0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff]),
        "++++////"
    );
    let ten = b64_encode(&[7u8; 10]);
    assert!(ten.ends_with("=="));
    let cases = [
        raw_body("***", iv),
        raw_body("----____", iv),
        raw_body("--__", iv),
        raw_body(&format!("{ten}="), iv),     // one '=' too many
        raw_body("AA=A", iv),                 // padding in the middle
        raw_body("A", iv),                    // impossible length
        raw_body("AAAA", "AAECAwQFBgcICQo-"), // URL-safe IV
        raw_body("AAAA", "not base64!"),
        raw_body("AAAA", &b64_encode(&[1u8; 11])), // 11-byte IV
        raw_body("AAAA", &b64_encode(&[1u8; 13])), // 13-byte IV
        raw_body("AAAA", &b64_encode(&[1u8; 16])), // 16-byte IV
        raw_body("AAAA", ""),                      // empty IV
        json!({"iv": iv}),
        json!({"ciphertext": "AAAA"}),
        json!({"ciphertext": 12, "iv": iv}),
        json!({}),
    ];
    for data in cases {
        let v = p.call("send_message", data).await;
        assert_error(&v, "invalid_encoding");
    }
    // Nothing was stored; the socket is fine and it is still this sender's turn.
    send(&mut p, raw_body("++++////", iv)).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn incomplete_padding_is_malformed_padding() {
    // §2: padding may be left out entirely (as atob allows), but malformed padding is
    // invalid_encoding. atob rejects "AA=" and "BwcHBwcHBwcHBw=" (a '=' in a length that is
    // not a multiple of 4); the relay accepts them as if they were unpadded.
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    ok(&p.join(&Who::new()).await);
    let iv = "AAECAwQFBgcICQoL";
    let ten = b64_encode(&[7u8; 10]);
    for ct in [
        "AA=".to_owned(),
        "AAAAAA=".to_owned(),
        format!("{}=", &ten[..ten.len() - 2]),
    ] {
        let v = p.call("send_message", raw_body(&ct, iv)).await;
        assert_error(&v, "invalid_encoding");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn ciphertext_of_8192_bytes_is_accepted_and_8193_is_too_large() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let v = pair.pa.call("send_message", body(8193)).await;
    assert_error(&v, "message_too_large");
    pair.pb.silent_for(100).await;
    let (_, payload) = send(&mut pair.pa, body(8192)).await;
    assert_eq!(
        stelgano_proto::check::b64_decode(payload["ciphertext"].as_str().unwrap())
            .unwrap()
            .len(),
        8192
    );
    assert_eq!(expect_event(&mut pair.pb, "new_message").await, payload);
    relay.shutdown().await;
}

#[tokio::test]
async fn unpadded_base64_is_accepted_and_forwarded_exactly_as_received() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let padded = b64_encode(&[0x42; 10]);
    let unpadded = padded.trim_end_matches('=').to_owned();
    assert_ne!(padded, unpadded);
    let data = raw_body(&unpadded, "AAECAwQFBgcICQoL");
    let (_, payload) = send(&mut pair.pa, data).await;
    assert_eq!(payload["ciphertext"], unpadded.as_str());
    let got = expect_event(&mut pair.pb, "new_message").await;
    assert_eq!(got["ciphertext"], unpadded.as_str());
    assert_eq!(got["iv"], "AAECAwQFBgcICQoL");
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 read_receipt

#[tokio::test]
async fn a_read_receipt_marks_the_message_read_and_tells_every_socket_without_a_reply() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let mut pa2 = relay.ws(&pair.room).await;
    ok(&pa2.join(&pair.a).await);
    let (id, _) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pa2, "new_message").await;
    expect_event(&mut pair.pb, "new_message").await;

    // With a ref, and still no reply: only the broadcast.
    pair.pb
        .push("read_receipt", json!({"message_id": id}))
        .await;
    for p in [&mut pair.pb, &mut pair.pa, &mut pa2] {
        let d = expect_event(p, "message_read").await;
        assert_eq!(d, json!({"message_id": id}));
    }
    pair.pb.silent_for(150).await;

    // The held message now carries read_at.
    let mut pb2 = relay.ws(&pair.room).await;
    let r = ok(&pb2.join(&pair.b).await);
    let read_at = iso(r["current_message"]["read_at"].as_str().unwrap());
    assert!(read_at.abs_diff(unix_ms_now()) < 5_000);

    // A second receipt, or one for an unknown id, does nothing.
    pair.pb
        .push("read_receipt", json!({"message_id": id}))
        .await;
    pair.pb
        .push("read_receipt", json!({"message_id": uuid_like()}))
        .await;
    pair.pb.silent_for(150).await;
    pair.pa.silent_for(50).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_read_receipt_from_the_author_is_ignored() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (id, _) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;
    pair.pa
        .push("read_receipt", json!({"message_id": id}))
        .await;
    pair.pa.silent_for(150).await;
    pair.pb.silent_for(50).await;
    // Still unread, so still editable by its author.
    let r = pair
        .pa
        .push(
            "edit_message",
            json!({"message_id": id, "ciphertext": "AAAA", "iv": "AAECAwQFBgcICQoL"}),
        )
        .await;
    let frames = [pair.pa.json().await, pair.pa.json().await];
    let reply = frames.iter().find(|v| v["ref"] == r.as_str()).unwrap();
    ok(reply);
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 edit_message, delete_message

/// Reads two frames from `p`: the reply to `r` and the broadcast `event`, in either order.
async fn reply_and_event(p: &mut Peer, r: &str, event: &str) -> (Value, Value) {
    let (x, y) = (p.json().await, p.json().await);
    let (reply, bc) = if x.get("ref").is_some() {
        (x, y)
    } else {
        (y, x)
    };
    assert_eq!(reply["ref"], r, "{reply}");
    assert_eq!(bc["event"], event, "{bc}");
    (reply, bc["data"].clone())
}

#[tokio::test]
async fn the_author_edits_an_unread_message_and_everyone_sees_it() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (id, before) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;

    let edit = json!({"message_id": id, "ciphertext": b64_encode(&[9u8; 33]),
                      "iv": b64_encode(&[3u8; 12])});
    let r = pair.pa.push("edit_message", edit.clone()).await;
    let (reply, data) = reply_and_event(&mut pair.pa, &r, "message_edited").await;
    assert_eq!(ok(&reply), json!({}));
    assert_eq!(
        data, edit,
        "message_edited carries {{message_id, ciphertext, iv}}"
    );
    assert_eq!(expect_event(&mut pair.pb, "message_edited").await, edit);

    let mut pb2 = relay.ws(&pair.room).await;
    let r = ok(&pb2.join(&pair.b).await);
    let cur = &r["current_message"];
    assert_eq!(cur["id"], id.as_str());
    assert_eq!(cur["ciphertext"], edit["ciphertext"]);
    assert_eq!(cur["iv"], edit["iv"]);
    assert_eq!(cur["sender_hash"], before["sender_hash"]);
    assert_eq!(cur["read_at"], Value::Null);

    // An edit is not a new message: the turn is unchanged.
    let v = pair.pa.call("send_message", body(10)).await;
    assert_error(&v, "not_your_turn");
    relay.shutdown().await;
}

#[tokio::test]
async fn edit_is_only_for_the_author_of_the_current_unread_message() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (id, _) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;
    let with =
        |mid: &str, ct: &str, iv: &str| json!({"message_id": mid, "ciphertext": ct, "iv": iv});
    let iv = "AAECAwQFBgcICQoL";

    // Not the author, or not the current message.
    let v = pair.pb.call("edit_message", with(&id, "AAAA", iv)).await;
    assert_error(&v, "not_found");
    let v = pair
        .pa
        .call("edit_message", with(&uuid_like(), "AAAA", iv))
        .await;
    assert_error(&v, "not_found");

    // The same validation as send.
    let v = pair.pa.call("edit_message", with(&id, "--__", iv)).await;
    assert_error(&v, "invalid_encoding");
    let v = pair
        .pa
        .call("edit_message", with(&id, "AAAA", &b64_encode(&[0; 11])))
        .await;
    assert_error(&v, "invalid_encoding");
    let big = b64_encode(&[0; 8193]);
    let v = pair.pa.call("edit_message", with(&id, &big, iv)).await;
    assert_error(&v, "message_too_large");
    pair.pb.silent_for(100).await;

    // Once read: not_editable.
    pair.pb
        .push("read_receipt", json!({"message_id": id}))
        .await;
    expect_event(&mut pair.pb, "message_read").await;
    expect_event(&mut pair.pa, "message_read").await;
    let v = pair.pa.call("edit_message", with(&id, "AAAA", iv)).await;
    assert_error(&v, "not_editable");
    pair.pb.silent_for(100).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn the_author_deletes_an_unread_message_and_the_room_holds_none() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (id, _) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;

    let r = pair
        .pa
        .push("delete_message", json!({"message_id": id}))
        .await;
    let (reply, data) = reply_and_event(&mut pair.pa, &r, "message_deleted").await;
    assert_eq!(ok(&reply), json!({}));
    assert_eq!(data, json!({"message_id": id}));
    assert_eq!(
        expect_event(&mut pair.pb, "message_deleted").await,
        json!({"message_id": id})
    );

    let mut pb2 = relay.ws(&pair.room).await;
    let r = ok(&pb2.join(&pair.b).await);
    assert!(r.get("current_message").is_none(), "{r}");

    // With no current message the author may send again.
    send(&mut pair.pa, body(12)).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn delete_is_only_for_the_author_of_the_current_unread_message() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (id, _) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;

    let v = pair
        .pb
        .call("delete_message", json!({"message_id": id}))
        .await;
    assert_error(&v, "not_found");
    let v = pair
        .pa
        .call("delete_message", json!({"message_id": uuid_like()}))
        .await;
    assert_error(&v, "not_found");

    pair.pb
        .push("read_receipt", json!({"message_id": id}))
        .await;
    expect_event(&mut pair.pb, "message_read").await;
    expect_event(&mut pair.pa, "message_read").await;
    let v = pair
        .pa
        .call("delete_message", json!({"message_id": id}))
        .await;
    assert_error(&v, "not_deletable");

    // Still there.
    let mut pb2 = relay.ws(&pair.room).await;
    let r = ok(&pb2.join(&pair.b).await);
    assert_eq!(r["current_message"]["id"], id.as_str());
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 typing

#[tokio::test]
async fn typing_reaches_only_the_other_party() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let mut pa2 = relay.ws(&pair.room).await;
    ok(&pa2.join(&pair.a).await);
    let mut pb2 = relay.ws(&pair.room).await;
    ok(&pb2.join(&pair.b).await);

    // With a ref: still no reply.
    pair.pa.push("typing", json!({})).await;
    assert_eq!(
        expect_event(&mut pair.pb, "counterparty_typing").await,
        json!({})
    );
    assert_eq!(
        expect_event(&mut pb2, "counterparty_typing").await,
        json!({})
    );
    pair.pa.silent_for(150).await;
    pa2.silent_for(50).await;

    // Without a ref, the other way round.
    pair.pb
        .send_raw(&json!({"event": "typing", "data": {}}).to_string())
        .await;
    expect_event(&mut pair.pa, "counterparty_typing").await;
    expect_event(&mut pa2, "counterparty_typing").await;
    pair.pb.silent_for(150).await;
    pb2.silent_for(50).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn typing_with_nobody_on_the_other_seat_goes_nowhere() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let a = Who::new();
    let mut pa = relay.ws(&room).await;
    ok(&pa.join(&a).await);
    let mut pa2 = relay.ws(&room).await;
    ok(&pa2.join(&a).await);
    pa.push("typing", json!({})).await;
    pa.silent_for(150).await;
    pa2.silent_for(50).await;
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 expire_room

#[tokio::test]
async fn expire_room_broadcasts_replies_closes_and_forgets_the_room() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let mut pa2 = relay.ws(&pair.room).await;
    ok(&pa2.join(&pair.a).await);
    send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;
    expect_event(&mut pa2, "new_message").await;

    // B burns the channel: room_expired, then the ok, then the close.
    let r = pair.pb.push("expire_room", json!({})).await;
    assert_eq!(expect_event(&mut pair.pb, "room_expired").await, json!({}));
    let reply = pair.pb.json().await;
    assert_eq!(reply, json!({"ref": r, "ok": {}}));
    expect_close(&mut pair.pb, 1000, "room_expired").await;
    for p in [&mut pair.pa, &mut pa2] {
        assert_eq!(expect_event(p, "room_expired").await, json!({}));
        expect_close(p, 1000, "room_expired").await;
    }
    assert!(!exists(relay.addr, &pair.room).await);

    // The next join creates a new room: new room_id, first seat, no message.
    let mut pb = relay.ws(&pair.room).await;
    let r = ok(&pb.join(&pair.b).await);
    assert_ne!(r["room_id"], pair.room_id.as_str());
    assert_eq!(r["awaiting_party"], true);
    assert!(r.get("current_message").is_none(), "{r}");
    // And the old creator is now only a claimant of the second seat (no pairing code).
    let mut pa = relay.ws(&pair.room).await;
    let r2 = ok(&pa.join(&pair.a).await);
    assert_eq!(r2["awaiting_party"], false);
    assert_eq!(r2["room_id"], r["room_id"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn either_party_may_expire_even_before_pairing() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let a = Who::new();
    let mut pa = relay.ws(&room).await;
    let r1 = ok(&pa.join_otp(&a, &random_hex()).await);
    let r = pa.push("expire_room", json!({})).await;
    expect_event(&mut pa, "room_expired").await;
    assert_eq!(pa.json().await, json!({"ref": r, "ok": {}}));
    expect_close(&mut pa, 1000, "room_expired").await;
    assert!(!exists(relay.addr, &room).await);
    let mut pa = relay.ws(&room).await;
    let r2 = ok(&pa.join(&a).await);
    assert_ne!(r2["room_id"], r1["room_id"]);
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 reset_pairing

#[tokio::test]
async fn reset_pairing_replaces_the_code_while_the_seat_is_open() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let (old, new) = (random_hex(), random_hex());
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &old).await);

    for bad in [
        json!("abc"),
        json!(new.to_uppercase()),
        json!(7),
        Value::Null,
    ] {
        let v = pa.call("reset_pairing", json!({"otp_hash": bad})).await;
        assert_error(&v, "invalid_token");
    }
    let v = pa.call("reset_pairing", json!({})).await;
    assert_error(&v, "invalid_token");

    let v = pa.call("reset_pairing", json!({"otp_hash": new})).await;
    assert_eq!(ok(&v), json!({}));
    let mut pb = relay.ws(&room).await;
    let v = pb.join_otp(&b, &old).await;
    assert_error(&v, "otp_invalid");
    ok(&pb.join_otp(&b, &new).await);
    expect_event(&mut pa, "party_paired").await;

    // Paired: nothing to reset, for either party.
    let v = pa
        .call("reset_pairing", json!({"otp_hash": random_hex()}))
        .await;
    assert_error(&v, "not_found");
    let v = pb
        .call("reset_pairing", json!({"otp_hash": random_hex()}))
        .await;
    assert_error(&v, "not_found");
    relay.shutdown().await;
}

#[tokio::test]
async fn reset_pairing_sets_a_code_on_a_room_created_without_one() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let otp = random_hex();
    let mut pa = relay.ws(&room).await;
    ok(&pa.join(&a).await);
    ok(&pa.call("reset_pairing", json!({"otp_hash": otp})).await);
    let mut pb = relay.ws(&room).await;
    let v = pb.join(&b).await;
    assert_error(&v, "otp_required");
    ok(&pb.join_otp(&b, &otp).await);
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 redeem_extension

#[tokio::test]
async fn redeem_extension_is_monetization_disabled() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    for data in [
        json!({"extension_secret": "secret"}),
        json!({"extension_secret": random_hex(), "country_iso": "FR"}),
        json!({}),
    ] {
        let v = pair.pa.call("redeem_extension", data).await;
        assert_error(&v, "monetization_disabled");
    }
    pair.pb.silent_for(100).await;
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §3 per-IP room-creation limit, §3.5 time floor

#[tokio::test]
async fn room_creations_over_the_per_ip_limit_are_rate_limited() {
    let relay = TestRelay::start_with(|c| c.room_creates_per_min = 1).await;
    let (r1, r2) = (random_hex(), random_hex());
    let a = Who::new();
    let mut p1 = relay.ws(&r1).await;
    ok(&p1.join(&a).await);
    let mut p2 = relay.ws(&r2).await;
    let v = p2.join(&Who::new()).await;
    assert_error(&v, "rate_limited");
    assert!(
        !exists(relay.addr, &r2).await,
        "a refused creation made a room"
    );
    // Rejoining an existing seat is not a creation.
    let mut p3 = relay.ws(&r1).await;
    ok(&p3.join(&a).await);
    relay.shutdown().await;
}

#[tokio::test]
async fn seat_claims_count_against_the_per_ip_creation_limit() {
    let relay = TestRelay::start_with(|c| c.room_creates_per_min = 1).await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &otp).await);
    let mut pb = relay.ws(&room).await;
    let v = pb.join_otp(&b, &otp).await;
    assert_error(&v, "rate_limited");
    pa.silent_for(100).await;
    // The seat is still open (and the code unused): A's rejoin still awaits a party.
    let mut pa2 = relay.ws(&room).await;
    assert_eq!(ok(&pa2.join(&a).await)["awaiting_party"], true);
    relay.shutdown().await;
}

/// The spec's floor and jitter, which the test config turns off.
fn with_floor(c: &mut stelgano_relay::Config) {
    quiet_timers(c);
    let d = stelgano_relay::Config::default();
    assert_eq!(d.join_floor, Duration::from_millis(500));
    assert_eq!(d.join_jitter, Duration::from_millis(125));
    c.join_floor = d.join_floor;
    c.join_jitter = d.join_jitter;
}

/// A join and the (paused-clock) time its reply took.
async fn timed_join(p: &mut Peer, data: Value) -> (Value, Duration) {
    let t = tokio::time::Instant::now();
    let v = p.call("join", data).await;
    (v, t.elapsed())
}

fn assert_floor(label: &str, v: &Value, took: Duration) {
    // On a paused clock the delay is exact: 500 ms plus a jitter of at most 125 ms.
    assert!(
        took >= Duration::from_millis(500),
        "{label}: reply after {took:?}, before the 500 ms floor: {v}"
    );
    assert!(
        took <= Duration::from_millis(625),
        "{label}: reply after {took:?}, past floor + jitter: {v}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_join_reply_waits_for_the_time_floor() {
    let relay = TestRelay::start_with(with_floor).await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let with = |w: &Who, otp: &str| json!({"sender_hash": w.sender, "access_hash": w.access, "otp_hash": otp});
    let mut pa = relay.ws(&room).await;
    let mut pb = relay.ws(&room).await;
    let mut px = relay.ws(&room).await;

    let mut seen = Vec::new();
    let (v, t) = timed_join(&mut pa, with(&a, &otp)).await;
    assert_eq!(ok(&v)["awaiting_party"], true);
    assert_floor("create", &v, t);
    seen.push(t);
    let cases = [
        (
            "invalid_sender",
            json!({"sender_hash": "x", "access_hash": a.access}),
        ),
        (
            "invalid_access",
            json!({"sender_hash": a.sender, "access_hash": "x"}),
        ),
        ("otp_required", join_data(&b)),
        ("otp_invalid", with(&b, &random_hex())),
        (
            "invalid_sender",
            json!({"sender_hash": random_hex(), "access_hash": a.access}),
        ),
    ];
    for (want, data) in cases {
        let (v, t) = timed_join(&mut px, data).await;
        assert_error(&v, want);
        assert_floor(want, &v, t);
        seen.push(t);
    }
    let (v, t) = timed_join(&mut pb, with(&b, &otp)).await;
    assert_eq!(ok(&v)["awaiting_party"], false);
    assert_floor("claim", &v, t);
    seen.push(t);
    expect_event(&mut pa, "party_paired").await;
    let (v, t) = timed_join(&mut px, join_data(&Who::new())).await;
    assert_error(&v, "unauthorized");
    assert_floor("unauthorized", &v, t);
    seen.push(t);
    let (v, t) = timed_join(&mut px, join_data(&a)).await;
    assert_eq!(ok(&v)["awaiting_party"], false);
    assert_floor("rejoin", &v, t);
    seen.push(t);
    // The extra delay is random: nine replies do not all wait the same time.
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 1, "no jitter: {seen:?}");

    // Other events are not held: on a paused clock a send takes no time at all.
    let t = tokio::time::Instant::now();
    send(&mut pa, body(10)).await;
    assert!(
        t.elapsed() < Duration::from_millis(5),
        "send: {:?}",
        t.elapsed()
    );
    relay.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_join_waits_for_the_time_floor_too() {
    let relay = TestRelay::start_with(|c| {
        with_floor(c);
        c.room_creates_per_min = 1;
    })
    .await;
    let mut p = relay.ws(&random_hex()).await;
    let (v, t) = timed_join(&mut p, join_data(&Who::new())).await;
    assert_floor("create", &v, t);
    let mut q = relay.ws(&random_hex()).await;
    let (v, t) = timed_join(&mut q, join_data(&Who::new())).await;
    assert_error(&v, "rate_limited");
    assert_floor("rate_limited", &v, t);
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// §8 WebSocket message limit

fn oversized_frame(limit: usize) -> String {
    json!({"event": "send_message", "ref": "10",
           "data": {"ciphertext": "A".repeat(limit + 4), "iv": "AAECAwQFBgcICQoL"}})
    .to_string()
}

#[tokio::test]
async fn a_websocket_message_just_under_the_limit_is_an_ordinary_frame() {
    let relay = TestRelay::start().await;
    let limit = stelgano_relay::Config::default().max_ws_message_bytes;
    assert_eq!(limit, 64 * 1024);
    let mut p = relay.ws(&random_hex()).await;
    ok(&p.join(&Who::new()).await);
    // Valid base64 decoding to far more than 8192 bytes: an error reply, not a close.
    let data = json!({"ciphertext": "A".repeat(limit - 200), "iv": "AAECAwQFBgcICQoL"});
    let frame = json!({"event": "send_message", "ref": "9", "data": data}).to_string();
    assert!(frame.len() <= limit);
    p.send_raw(&frame).await;
    assert_error(&p.json().await, "message_too_large");
    send(&mut p, body(10)).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_closes_with_1009() {
    let relay = TestRelay::start().await;
    let limit = stelgano_relay::Config::default().max_ws_message_bytes;
    let mut p = relay.ws(&random_hex()).await;
    ok(&p.join(&Who::new()).await);
    p.send_raw(&oversized_frame(limit)).await;
    match p.recv().await {
        Got::Closed { code, .. } => assert_eq!(code, 1009),
        Got::Json(v) => panic!("expected close 1009, got {v}"),
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn a_fragmented_message_over_the_limit_closes_with_1009() {
    let relay = TestRelay::start().await;
    let limit = stelgano_relay::Config::default().max_ws_message_bytes;
    // Each fragment is well under the limit; their sum is over it.
    let mut ws = raw_ws(relay.addr, &random_hex()).await;
    send_fragmented(&mut ws, oversized_frame(limit).as_bytes(), 4).await;
    match raw_recv(&mut ws).await {
        Got::Closed { code, .. } => assert_eq!(code, 1009),
        Got::Json(v) => panic!("expected close 1009 for fragments, got {v}"),
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn a_fragmented_message_under_the_limit_is_reassembled() {
    let relay = TestRelay::start_with(|c| c.max_ws_message_bytes = 1024).await;
    let a = Who::new();
    let mut ws = raw_ws(relay.addr, &random_hex()).await;
    let frame = json!({"event": "join", "ref": "f", "data": join_data(&a)}).to_string();
    send_fragmented(&mut ws, frame.as_bytes(), 5).await;
    match raw_recv(&mut ws).await {
        Got::Json(v) => {
            assert_eq!(v["ref"], "f");
            ok(&v);
        }
        g => panic!("{g:?}"),
    }
    // A configured limit applies: about 1250 bytes in three fragments is over 1024.
    let pad = "A".repeat(1200);
    let frame = json!({"event": "typing", "ref": "g", "data": {"pad": pad}}).to_string();
    send_fragmented(&mut ws, frame.as_bytes(), 3).await;
    match raw_recv(&mut ws).await {
        Got::Closed { code, .. } => assert_eq!(code, 1009),
        Got::Json(v) => panic!("expected close 1009, got {v}"),
    }
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------

/// A random, well-formed message id that names no message.
fn uuid_like() -> String {
    let h = random_hex();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Control frames: a ping is answered with a pong carrying its payload, and a ping between the
/// fragments of a message does not disturb the reassembly (RFC 6455 §5.4, §5.5.2).
#[tokio::test]
async fn pings_get_pongs_even_between_fragments() {
    use fastwebsockets::{Frame, OpCode};
    let relay = TestRelay::start().await;
    let mut ws = raw_ws(relay.addr, &random_hex()).await;
    ws.set_auto_pong(false);
    let ping = |p: &[u8]| Frame::new(true, OpCode::Ping, None, p.to_vec().into());
    ws.write_frame(ping(b"are you there")).await.unwrap();
    let pong = ws.read_frame().await.unwrap();
    assert_eq!(pong.opcode, OpCode::Pong);
    assert_eq!(&pong.payload[..], b"are you there");

    let text = br#"{"event":"typing","ref":"7","data":{}}"#;
    let (a, b) = text.split_at(10);
    let first = Frame::new(false, OpCode::Text, None, a.to_vec().into());
    ws.write_frame(first).await.unwrap();
    ws.write_frame(ping(b"mid")).await.unwrap();
    let last = Frame::new(true, OpCode::Continuation, None, b.to_vec().into());
    ws.write_frame(last).await.unwrap();
    let pong = ws.read_frame().await.unwrap();
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (OpCode::Pong, &b"mid"[..])
    );
    match raw_recv(&mut ws).await {
        Got::Json(v) => {
            assert_eq!(v["ref"], "7", "{v}");
            assert_error(&v, "not_joined");
        }
        other => panic!("expected the reply to the reassembled message, got {other:?}"),
    }
    relay.shutdown().await;
}
