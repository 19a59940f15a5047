//! TTL expiry (PROTOCOL.md §6), black-box over real sockets: at `ttl_expires_at` a room expires
//! exactly as with `expire_room`, whether or not a socket is open. Time jumps with `helpers::jump`.

mod common;
mod helpers;

use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);

/// Polls `exists` (real time, up to 3 s) until it reports `want`: the sweeper runs on its own task.
async fn wait_exists(relay: &TestRelay, room: &str, want: bool) {
    for _ in 0..150 {
        if exists(relay.addr, room).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("exists never became {want}");
}

#[tokio::test]
async fn a_room_with_open_sockets_expires_at_its_ttl() {
    let relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.free_ttl = HOUR;
    })
    .await;
    let mut pair = pair(&relay).await;
    let before = unix_ms_now();
    let mut pa2 = relay.ws(&pair.room).await;
    let r = ok(&pa2.join(&pair.a).await);
    let ttl = iso(r["ttl_expires_at"].as_str().unwrap());
    assert!(
        ttl <= before + 3_600_000 && ttl + 5_000 >= before + 3_600_000,
        "ttl_expires_at is not creation + free_ttl: {r}"
    );
    send(&mut pair.pa, body(10)).await;
    expect_event(&mut pair.pb, "new_message").await;
    expect_event(&mut pa2, "new_message").await;

    jump(59 * MIN).await;
    pair.pa.silent_for(100).await;
    assert!(exists(relay.addr, &pair.room).await);

    jump(MIN + Duration::from_secs(5)).await;
    for p in [&mut pair.pa, &mut pair.pb, &mut pa2] {
        assert_eq!(expect_event(p, "room_expired").await, json!({}));
        expect_close(p, 1000, "room_expired").await;
    }
    assert!(!exists(relay.addr, &pair.room).await);

    // Gone for good: the same identities now make a new room.
    let mut pb = relay.ws(&pair.room).await;
    let r = ok(&pb.join(&pair.b).await);
    assert_ne!(r["room_id"], pair.room_id.as_str());
    assert_eq!(r["awaiting_party"], true);
    assert!(r.get("current_message").is_none(), "{r}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_room_without_sockets_expires_at_its_ttl() {
    let relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.free_ttl = HOUR;
    })
    .await;
    let room = random_hex();
    let a = Who::new();
    let mut p = relay.ws(&room).await;
    let first = ok(&p.join(&a).await);
    drop(p);

    jump(HOUR - MIN).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(exists(relay.addr, &room).await, "expired early");
    jump(MIN + Duration::from_secs(5)).await;
    wait_exists(&relay, &room, false).await;

    let mut p = relay.ws(&room).await;
    let r = ok(&p.join(&a).await);
    assert_ne!(r["room_id"], first["room_id"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn rooms_expire_in_the_order_of_their_deadlines() {
    let relay = TestRelay::start_with(|c| {
        quiet_timers(c);
        c.free_ttl = HOUR;
    })
    .await;
    let (early, late) = (random_hex(), random_hex());
    let mut p = relay.ws(&early).await;
    ok(&p.join(&Who::new()).await);
    drop(p);
    jump(30 * MIN).await;
    let mut q = relay.ws(&late).await;
    ok(&q.join(&Who::new()).await);

    jump(31 * MIN).await;
    wait_exists(&relay, &early, false).await;
    assert!(
        exists(relay.addr, &late).await,
        "the later room expired with the earlier one"
    );
    q.silent_for(100).await;

    jump(30 * MIN).await;
    expect_event(&mut q, "room_expired").await;
    expect_close(&mut q, 1000, "room_expired").await;
    assert!(!exists(relay.addr, &late).await);
    relay.shutdown().await;
}
