//! Our documented rules beyond the spec (docs/PROTOCOL-NOTES.md), black-box over real sockets:
//! `retry_after` on locks, `attempts_remaining` on wrong pairing codes, the per-room socket cap, the
//! typing throttle, over-long refs, and ref-less joins. The spec's own rules are in `protocol.rs`.

mod common;
mod helpers;

use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::json;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_lock_says_how_long_it_has_left() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    for _ in 0..9 {
        assert_error(&x.join(&Who::new()).await, "unauthorized");
    }
    let v = x.join(&Who::new()).await;
    assert_error(&v, "locked");
    let left = v["error"]["retry_after"].as_u64().unwrap();
    assert!((1799..=1800).contains(&left), "{v}");

    jump(20 * MIN).await;
    let v = x.join(&Who::new()).await;
    let left = v["error"]["retry_after"].as_u64().unwrap();
    assert!((599..=600).contains(&left), "{v}");
    relay.shutdown().await;
}

#[tokio::test]
async fn wrong_pairing_codes_count_down_and_the_pairing_lock_says_how_long() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let room = random_hex();
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&Who::new(), &random_hex()).await);
    let b = Who::new();
    let mut pb = relay.ws(&room).await;
    for n in 1..=9u64 {
        let v = pb.join_otp(&b, &random_hex()).await;
        assert_eq!(
            v["error"],
            json!({"reason": "otp_invalid", "attempts_remaining": 10 - n}),
            "wrong code {n}"
        );
    }
    let v = pb.join_otp(&b, &random_hex()).await;
    assert_error(&v, "locked");
    let left = v["error"]["retry_after"].as_u64().unwrap();
    assert!((1799..=1800).contains(&left), "{v}");
    relay.shutdown().await;
}

#[tokio::test]
async fn at_most_16_sockets_join_one_room() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let a = Who::new();
    let mut joined = Vec::new();
    for _ in 0..16 {
        let mut p = relay.ws(&room).await;
        ok(&p.join(&a).await);
        joined.push(p);
    }
    let mut extra = relay.ws(&room).await;
    assert_error(&extra.join(&a).await, "rate_limited");

    // A socket that leaves frees its place (the room learns it asynchronously).
    drop(joined.pop());
    let mut freed = false;
    for _ in 0..100 {
        if extra.join(&a).await.get("ok").is_some() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed socket kept its place");
    relay.shutdown().await;
}

#[tokio::test]
async fn typing_is_forwarded_at_most_every_500_ms_per_socket() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let mut pair = pair(&relay).await;
    for _ in 0..3 {
        pair.pa.push("typing", json!({})).await;
    }
    expect_event(&mut pair.pb, "counterparty_typing").await;
    pair.pb.silent_for(150).await;

    jump(Duration::from_millis(600)).await;
    pair.pa.push("typing", json!({})).await;
    expect_event(&mut pair.pb, "counterparty_typing").await;
    pair.pa.silent_for(50).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn refs_longer_than_64_characters_are_echoed_as_0() {
    let relay = TestRelay::start().await;
    let mut p = relay.ws(&random_hex()).await;
    let fits = "r".repeat(64);
    p.send_raw(&json!({"event": "nope", "ref": fits, "data": {}}).to_string())
        .await;
    assert_eq!(p.json().await["ref"], fits.as_str());
    let long = "r".repeat(65);
    p.send_raw(&json!({"event": "nope", "ref": long, "data": {}}).to_string())
        .await;
    let v = p.json().await;
    assert_eq!(v["ref"], "0", "{v}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_join_without_a_ref_joins_silently() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let a = Who::new();
    let mut p = relay.ws(&room).await;
    p.send_raw(&json!({"event": "join", "data": join_data(&a)}).to_string())
        .await;
    p.silent_for(200).await;
    assert!(exists(relay.addr, &room).await);
    send(&mut p, body(10)).await;
    relay.shutdown().await;
}

/// A socket that stops reading is dropped from its room once 64 frames have queued behind what
/// the kernel holds for it, and closed with 1008 `too_slow` once the frames ahead of the close
/// are out; the room and its other party carry on.
#[tokio::test]
async fn a_socket_that_stops_reading_is_closed_as_too_slow() {
    let relay = TestRelay::start().await;
    let mut pair = pair(&relay).await;
    let (id, _) = send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;

    // From here pb reads nothing. Each edit of the unread message is broadcast to pb: 3,000 of
    // about 11 KB are 32 MB, far more than loopback's socket buffers hold.
    let ciphertext = stelgano_proto::check::b64_encode(&[9u8; 8000]);
    let edit = json!({"message_id": id, "ciphertext": ciphertext, "iv": "AAECAwQFBgcICQoL"});
    const EDITS: usize = 3000;
    for _ in 0..EDITS {
        let r = pair.pa.push("edit_message", edit.clone()).await;
        let mut replied = false;
        while !replied {
            let v = pair.pa.json().await;
            replied = v["ref"] == r.as_str();
            if replied {
                assert!(v["ok"].is_object(), "{v}");
            }
        }
    }

    let mut edits_seen = 0;
    let close = loop {
        match pair.pb.recv().await {
            Got::Json(v) => {
                assert_eq!(v["event"], "message_edited", "{v}");
                edits_seen += 1;
            }
            Got::Closed { code, reason } => break (code, reason),
        }
    };
    assert_eq!(close, (1008, "too_slow".to_owned()));
    assert!(edits_seen < EDITS, "pb got all {edits_seen} edits");

    // The room is unharmed: pb's seat rejoins and finds the message as last edited.
    let mut pb2 = relay.ws(&pair.room).await;
    let r = ok(&pb2.join(&pair.b).await);
    assert_eq!(r["current_message"]["ciphertext"], edit["ciphertext"]);
    relay.shutdown().await;
}
