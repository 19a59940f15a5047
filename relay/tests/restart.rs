//! Restarts on the same data directory (PROTOCOL.md §6, §9), black-box over real sockets: rooms,
//! `room_id`, TTL, seats, failure counters, locks and pairing codes survive; the message in
//! flight does not (by design). Time jumps (`helpers::jump`) only after the last restart, because
//! a restarted relay anchors its clock to the real wall clock again.

mod common;
mod helpers;

use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::json;

const MIN: Duration = Duration::from_secs(60);

/// The close every open socket gets when the relay shuts down gracefully.
async fn expect_going_away(p: &mut Peer) {
    match p.recv().await {
        Got::Closed { code, .. } => assert_eq!(code, 1001, "shutdown close code"),
        Got::Json(v) => panic!("expected a close on shutdown, got {v}"),
    }
}

#[tokio::test]
async fn a_restart_keeps_room_id_ttl_and_seats_but_not_the_message() {
    let mut relay = TestRelay::start_with(quiet_timers).await;
    let mut pair = pair(&relay).await;
    let (msg, _) = send(&mut pair.pa, body(64)).await;
    expect_event(&mut pair.pb, "new_message").await;
    let mut pa = relay.ws(&pair.room).await;
    let before = ok(&pa.join(&pair.a).await);
    assert_eq!(before["current_message"]["id"], msg.as_str());

    restart(&mut relay, quiet_timers).await;
    for p in [&mut pair.pa, &mut pair.pb, &mut pa] {
        expect_going_away(p).await;
    }

    assert!(exists(relay.addr, &pair.room).await);
    let mut pa = relay.ws(&pair.room).await;
    let r = ok(&pa.join(&pair.a).await);
    assert_eq!(r["room_id"], before["room_id"]);
    assert_eq!(r["ttl_expires_at"], before["ttl_expires_at"]);
    assert_eq!(r["awaiting_party"], false, "the second seat survives");
    assert!(
        r.get("current_message").is_none(),
        "a message survived: {r}"
    );
    let mut pb = relay.ws(&pair.room).await;
    let r = ok(&pb.join(&pair.b).await);
    assert_eq!(r["room_id"], before["room_id"]);

    // The seats are still bound to their sender hashes, and both are taken.
    let mut x = relay.ws(&pair.room).await;
    let impostor = Who {
        access: pair.a.access.clone(),
        sender: random_hex(),
    };
    assert_error(&x.join(&impostor).await, "invalid_sender");
    let v = x.join(&Who::new()).await;
    assert_eq!(
        v["error"],
        json!({"reason": "unauthorized", "attempts_remaining": 9})
    );

    // The lost message leaves no turn behind: A may send again, and the channel works.
    send(&mut pa, body(8)).await;
    expect_event(&mut pb, "new_message").await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_failure_counters_and_locks() {
    let mut relay = TestRelay::start_with(quiet_timers).await;
    let pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    for _ in 0..3 {
        assert_error(&x.join(&Who::new()).await, "unauthorized");
    }
    drop(x);
    restart(&mut relay, quiet_timers).await;

    let mut pa = relay.ws(&pair.room).await;
    assert_eq!(ok(&pa.join(&pair.a).await)["failed_attempts"], 3);
    // The owner's join started the count again (std-1).
    let mut x = relay.ws(&pair.room).await;
    let v = x.join(&Who::new()).await;
    assert_eq!(v["error"]["attempts_remaining"], 9, "{v}");
    for _ in 0..8 {
        assert_error(&x.join(&Who::new()).await, "unauthorized");
    }
    assert_error(&x.join(&Who::new()).await, "locked");
    drop(x);
    drop(pa);
    restart(&mut relay, quiet_timers).await;

    // Still locked after the restart, for everyone: the right PIN included.
    let mut x = relay.ws(&pair.room).await;
    assert_error(&x.join(&Who::new()).await, "locked");
    let mut pb = relay.ws(&pair.room).await;
    let v = pb.join(&pair.b).await;
    assert_error(&v, "locked");
    assert!(v["error"]["retry_after"].as_u64().unwrap() > 29 * 60, "{v}");

    // The lock deadline itself survived: it ends 30 minutes after it began.
    jump(29 * MIN).await;
    assert_error(&x.join(&Who::new()).await, "locked");
    jump(MIN + Duration::from_secs(5)).await;
    assert_error(&x.join(&Who::new()).await, "unauthorized");
    // B hears of every attempt since it paired: 3 + 10 wrong guesses before the restart, 3
    // refused during the lock after it (its own included), and the last wrong guess.
    assert_eq!(ok(&pb.join(&pair.b).await)["failed_attempts"], 17);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_the_pairing_code_and_its_failures() {
    let mut relay = TestRelay::start_with(quiet_timers).await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &otp).await);
    let mut pb = relay.ws(&room).await;
    for _ in 0..4 {
        assert_error(&pb.join_otp(&b, &random_hex()).await, "otp_invalid");
    }
    drop(pa);
    drop(pb);
    restart(&mut relay, quiet_timers).await;

    // The code is still required, and wrong codes go on counting from four.
    let mut pb = relay.ws(&room).await;
    assert_error(&pb.join(&b).await, "otp_required");
    for _ in 0..5 {
        assert_error(&pb.join_otp(&b, &random_hex()).await, "otp_invalid");
    }
    let v = pb.join_otp(&b, &random_hex()).await;
    assert!(["otp_invalid", "locked"].contains(&reason(&v)), "{v}");
    assert_error(&pb.join_otp(&b, &otp).await, "locked");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_restart_keeps_an_unused_pairing_code_usable() {
    let mut relay = TestRelay::start_with(quiet_timers).await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    let first = ok(&pa.join_otp(&a, &otp).await);
    drop(pa);
    restart(&mut relay, quiet_timers).await;
    let mut pb = relay.ws(&room).await;
    let r = ok(&pb.join_otp(&b, &otp).await);
    assert_eq!(r["room_id"], first["room_id"]);
    assert_eq!(r["awaiting_party"], false);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_restart_does_not_move_an_expiry() {
    let mut relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.free_ttl = Duration::from_secs(3600);
    })
    .await;
    let room = random_hex();
    let a = Who::new();
    let mut p = relay.ws(&room).await;
    let first = ok(&p.join(&a).await);
    drop(p);
    // The new relay has the default 7-day free TTL; the stored deadline is what counts.
    restart(&mut relay, quiet_timers).await;
    let mut p = relay.ws(&room).await;
    let r = ok(&p.join(&a).await);
    assert_eq!(r["ttl_expires_at"], first["ttl_expires_at"]);

    jump(59 * MIN).await;
    p.silent_for(100).await;
    jump(MIN + Duration::from_secs(5)).await;
    expect_event(&mut p, "room_expired").await;
    expect_close(&mut p, 1000, "room_expired").await;
    assert!(!exists(relay.addr, &room).await);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_room_whose_ttl_passed_while_the_relay_was_down_is_gone() {
    // Real time, briefly: a restarted relay's clock is the real wall clock.
    let mut relay = TestRelay::start_with(|c| c.free_ttl = Duration::from_millis(400)).await;
    let room = random_hex();
    let a = Who::new();
    let mut p = relay.ws(&room).await;
    let first = ok(&p.join(&a).await);
    drop(p);
    if let Some(r) = relay.relay.take() {
        r.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    restart(&mut relay, |_| {}).await;

    let mut gone = false;
    for _ in 0..100 {
        if !exists(relay.addr, &room).await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "an expired room outlived the restart");
    let mut p = relay.ws(&room).await;
    let r = ok(&p.join(&a).await);
    assert_ne!(r["room_id"], first["room_id"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn an_expired_room_stays_expired_after_a_restart() {
    let mut relay = TestRelay::start_with(quiet_timers).await;
    let mut pair = pair(&relay).await;
    let r = pair.pa.push("expire_room", json!({})).await;
    expect_event(&mut pair.pa, "room_expired").await;
    assert_eq!(pair.pa.json().await["ref"], r.as_str());
    let (room, room_id, a) = (pair.room.clone(), pair.room_id.clone(), pair.a.clone());
    drop(pair);
    restart(&mut relay, quiet_timers).await;
    assert!(!exists(relay.addr, &room).await);
    let mut p = relay.ws(&room).await;
    let r = ok(&p.join(&a).await);
    assert_ne!(r["room_id"], room_id.as_str());
    assert_eq!(r["awaiting_party"], true);
    relay.shutdown().await;
}
