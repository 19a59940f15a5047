//! Lockouts (PROTOCOL.md §3 join cases 3 and 4, reset_pairing), black-box over real sockets: the
//! wrong-PIN countdown and lock, its expiry, escalation and decay, a lock that refuses the owners
//! too, `failed_attempts` counting every attempt, and the pairing-code lock. Time jumps with
//! `helpers::jump`.

mod common;
mod helpers;

use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::{json, Value};

const MIN: Duration = Duration::from_secs(60);

/// A stranger's wrong PIN: a fresh access hash against a full room, on the given socket.
async fn guess(p: &mut Peer) -> Value {
    p.join(&Who::new()).await
}

/// Guesses until the room locks; returns how many guesses that took (at most `max`).
async fn guess_until_locked(p: &mut Peer, max: u32) -> u32 {
    for n in 1..=max {
        let v = guess(p).await;
        match reason(&v) {
            "locked" => return n,
            "unauthorized" => {}
            _ => panic!("guess {n}: {v}"),
        }
    }
    panic!("no lock after {max} guesses")
}

#[tokio::test]
async fn wrong_pins_count_down_then_lock_at_the_tenth() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    for n in 1..=9u64 {
        let v = guess(&mut x).await;
        assert_eq!(
            v["error"],
            json!({"reason": "unauthorized", "attempts_remaining": 10 - n}),
            "guess {n}: {v}"
        );
    }
    let v = guess(&mut x).await;
    assert_error(&v, "locked");
    // While locked every guess is `locked`, from any socket, even with an otp_hash.
    let v = guess(&mut x).await;
    assert_error(&v, "locked");
    let mut y = relay.ws(&pair.room).await;
    let w = Who::new();
    let v = y.join_otp(&w, &random_hex()).await;
    assert_error(&v, "locked");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_lock_refuses_the_owners_too_and_they_hear_of_every_attempt() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let mut pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    for _ in 0..9 {
        assert_error(&guess(&mut x).await, "unauthorized");
    }
    assert_error(&guess(&mut x).await, "locked");

    // The relay cannot tell an owner from a guesser who guessed right: both owners are refused
    // while the room is locked, with the time left.
    let mut pa = relay.ws(&pair.room).await;
    let v = pa.join(&pair.a).await;
    assert_error(&v, "locked");
    let retry = v["error"]["retry_after"].as_u64().unwrap();
    assert!((29 * 60..=30 * 60).contains(&retry), "{v}");
    let mut pb = relay.ws(&pair.room).await;
    assert_error(&pb.join(&pair.b).await, "locked");

    // Sockets that joined before the lock carry on.
    send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;

    // After the lock, each owner hears of the 10 guesses and the 2 refused joins.
    jump(30 * MIN + Duration::from_secs(1)).await;
    let r = ok(&pa.join(&pair.a).await);
    assert_eq!(r["failed_attempts"], 12, "{r}");
    assert_eq!(r["room_id"], pair.room_id.as_str());
    assert_eq!(r["awaiting_party"], false);
    let r = ok(&pb.join(&pair.b).await);
    assert_eq!(r["failed_attempts"], 12, "{r}");

    // Reported once: the next join of that seat says nothing.
    let mut pa2 = relay.ws(&pair.room).await;
    let r = ok(&pa2.join(&pair.a).await);
    assert!(r.get("failed_attempts").is_none(), "{r}");
    relay.shutdown().await;
}

#[tokio::test]
async fn locks_escalate_across_a_restart_and_decay_only_after_quiet_days() {
    let mut relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.max_failures = 3;
        c.first_lock = 10 * MIN;
        c.max_lock = 1000 * MIN;
    })
    .await;
    let tweak = |c: &mut stelgano_relay::Config| {
        quiet_timers(c);
        c.max_failures = 3;
        c.first_lock = 10 * MIN;
        c.max_lock = 1000 * MIN;
    };
    let pair = pair(&relay).await;
    let room = pair.room.clone();
    drop(pair);
    // Guesses until the lock; returns the lock's length in minutes (from `retry_after`).
    async fn lock_minutes(relay: &TestRelay, room: &str) -> u64 {
        let mut x = relay.ws(room).await;
        for _ in 0..2 {
            assert_error(&guess(&mut x).await, "unauthorized");
        }
        let v = guess(&mut x).await;
        assert_error(&v, "locked");
        v["error"]["retry_after"].as_u64().unwrap().div_ceil(60)
    }
    assert_eq!(lock_minutes(&relay, &room).await, 10);
    jump(11 * MIN).await;
    assert_eq!(lock_minutes(&relay, &room).await, 20);

    // The level is on disk: after a restart the next lock is longer again.
    restart(&mut relay, tweak).await;
    let mut x = relay.ws(&room).await;
    assert_error(&guess(&mut x).await, "locked");
    drop(x);
    jump(32 * MIN).await;
    assert_eq!(lock_minutes(&relay, &room).await, 40);

    // Under a day of quiet: no decay.
    jump(41 * MIN + 23 * 60 * MIN).await;
    assert_eq!(lock_minutes(&relay, &room).await, 80);

    // Two full quiet days: two levels fewer (level 4 → 2), so 40 minutes.
    jump(81 * MIN + 48 * 60 * MIN).await;
    assert_eq!(lock_minutes(&relay, &room).await, 40);
    relay.shutdown().await;
}

#[tokio::test]
async fn failed_attempts_counts_per_seat_since_its_last_join() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    for _ in 0..3 {
        assert_error(&guess(&mut x).await, "unauthorized");
    }
    let mut pa = relay.ws(&pair.room).await;
    assert_eq!(ok(&pa.join(&pair.a).await)["failed_attempts"], 3);
    let r = ok(&pa.join(&pair.a).await);
    assert!(r.get("failed_attempts").is_none(), "{r}");
    for _ in 0..2 {
        assert_error(&guess(&mut x).await, "unauthorized");
    }
    let mut pa2 = relay.ws(&pair.room).await;
    assert_eq!(ok(&pa2.join(&pair.a).await)["failed_attempts"], 2);
    // B has not joined since the pairing: all five guesses.
    let mut pb = relay.ws(&pair.room).await;
    assert_eq!(ok(&pb.join(&pair.b).await)["failed_attempts"], 5);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_lock_lasts_30_minutes_and_the_next_one_60() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    assert_eq!(guess_until_locked(&mut x, 10).await, 10);

    jump(29 * MIN).await;
    assert_error(&guess(&mut x).await, "locked");
    jump(MIN + Duration::from_secs(1)).await;
    let v = guess(&mut x).await;
    assert_error(&v, "unauthorized");
    assert!(
        v["error"]["attempts_remaining"].as_u64().unwrap() >= 1,
        "{v}"
    );

    // Second lock of the same room: twice as long.
    let n = guess_until_locked(&mut x, 10).await;
    assert!(n <= 10, "{n}");
    jump(59 * MIN).await;
    assert_error(&guess(&mut x).await, "locked");
    jump(MIN + Duration::from_secs(1)).await;
    assert_error(&guess(&mut x).await, "unauthorized");

    // Between locks the owners get in as usual.
    let mut pa = relay.ws(&pair.room).await;
    ok(&pa.join(&pair.a).await);
    relay.shutdown().await;
}

#[tokio::test]
async fn escalation_doubles_up_to_the_configured_ceiling() {
    let relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.max_failures = 3;
        c.first_lock = 10 * MIN;
        c.max_lock = 15 * MIN;
    })
    .await;
    let pair = pair(&relay).await;
    let mut x = relay.ws(&pair.room).await;
    // A configured failure budget: the third wrong PIN locks.
    let v = guess(&mut x).await;
    assert_eq!(v["error"]["attempts_remaining"], 2, "{v}");
    assert_eq!(guess_until_locked(&mut x, 3).await, 2);

    for (lock, label) in [(10, "first"), (15, "second (20 capped)"), (15, "third")] {
        if label != "first" {
            guess_until_locked(&mut x, 3).await;
        }
        jump((lock - 1) * MIN).await;
        let v = guess(&mut x).await;
        assert_eq!(reason(&v), "locked", "{label} lock ended early: {v}");
        jump(MIN + Duration::from_secs(1)).await;
        let v = guess(&mut x).await;
        assert_eq!(reason(&v), "unauthorized", "{label} lock did not end: {v}");
    }
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Pairing codes

/// A room created by `a` with pairing code `otp`; the second seat still open.
async fn open_room(relay: &TestRelay) -> (String, String, Who, Peer) {
    let room = random_hex();
    let otp = random_hex();
    let a = Who::new();
    let mut pa = relay.ws(&room).await;
    ok(&pa.join_otp(&a, &otp).await);
    (room, otp, a, pa)
}

/// Wrong codes until the pairing locks: nine `otp_invalid`, and the tenth either `otp_invalid`
/// or `locked` (the spec says the lock comes "at 10 pairing failures").
async fn lock_pairing(p: &mut Peer, b: &Who) {
    for n in 1..=9 {
        let v = p.join_otp(b, &random_hex()).await;
        assert_eq!(reason(&v), "otp_invalid", "wrong code {n}: {v}");
    }
    let v = p.join_otp(b, &random_hex()).await;
    assert!(
        ["otp_invalid", "locked"].contains(&reason(&v)),
        "wrong code 10: {v}"
    );
}

#[tokio::test]
async fn ten_wrong_pairing_codes_lock_the_pairing_for_30_minutes() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let (room, otp, a, mut pa) = open_room(&relay).await;
    let b = Who::new();
    let mut pb = relay.ws(&room).await;
    lock_pairing(&mut pb, &b).await;

    // Locked: even the right code, and for any claimant.
    let v = pb.join_otp(&b, &otp).await;
    assert_error(&v, "locked");
    let mut pc = relay.ws(&room).await;
    assert_error(&pc.join_otp(&Who::new(), &otp).await, "locked");
    // The creator is not affected.
    let mut pa2 = relay.ws(&room).await;
    assert_eq!(ok(&pa2.join(&a).await)["awaiting_party"], true);

    jump(29 * MIN).await;
    assert_error(&pb.join_otp(&b, &otp).await, "locked");
    jump(MIN + Duration::from_secs(1)).await;
    let r = ok(&pb.join_otp(&b, &otp).await);
    assert_eq!(r["awaiting_party"], false);
    expect_event(&mut pa, "party_paired").await;

    // Pairing failures are not wrong PINs: the guessers' budget is untouched.
    let mut x = relay.ws(&room).await;
    let v = guess(&mut x).await;
    assert_eq!(v["error"]["attempts_remaining"], 9, "{v}");
    relay.shutdown().await;
}

#[tokio::test]
async fn reset_pairing_clears_the_pairing_lock_and_failures() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let (room, _, _, mut pa) = open_room(&relay).await;
    let b = Who::new();
    let mut pb = relay.ws(&room).await;
    lock_pairing(&mut pb, &b).await;

    let fresh = random_hex();
    ok(&pa.call("reset_pairing", json!({"otp_hash": fresh})).await);
    // No waiting: the lock is gone with the old code.
    let r = ok(&pb.join_otp(&b, &fresh).await);
    assert_eq!(r["awaiting_party"], false);
    relay.shutdown().await;
}

#[tokio::test]
async fn reset_pairing_restarts_the_failure_count() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let (room, _, _, mut pa) = open_room(&relay).await;
    let b = Who::new();
    let mut pb = relay.ws(&room).await;
    for _ in 0..9 {
        assert_error(&pb.join_otp(&b, &random_hex()).await, "otp_invalid");
    }
    let fresh = random_hex();
    ok(&pa.call("reset_pairing", json!({"otp_hash": fresh})).await);
    // Nine more wrong codes would be 18 without the reset: still no lock.
    for n in 0..9 {
        let v = pb.join_otp(&b, &random_hex()).await;
        assert_eq!(reason(&v), "otp_invalid", "wrong code {n} after reset: {v}");
    }
    ok(&pb.join_otp(&b, &fresh).await);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_correct_code_before_the_lock_still_claims_the_seat() {
    let relay = TestRelay::start_with(quiet_timers).await;
    let (room, otp, _, mut pa) = open_room(&relay).await;
    let b = Who::new();
    let mut pb = relay.ws(&room).await;
    for _ in 0..9 {
        assert_error(&pb.join_otp(&b, &random_hex()).await, "otp_invalid");
    }
    ok(&pb.join_otp(&b, &otp).await);
    expect_event(&mut pa, "party_paired").await;
    relay.shutdown().await;
}
