//! First end-to-end checks of the relay over real sockets: create, pair, exchange.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn create_pair_and_exchange() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let otp = random_hex();
    let (a, b) = (Who::new(), Who::new());

    let mut pa = relay.ws(&room).await;
    let r = pa.join_otp(&a, &otp).await;
    assert_eq!(r["ok"]["awaiting_party"], true, "{r}");
    let room_id = r["ok"]["room_id"].as_str().unwrap().to_owned();

    let mut pb = relay.ws(&room).await;
    let r = pb.join(&b).await;
    assert_eq!(reason(&r), "otp_required", "{r}");
    let r = pb.join_otp(&b, &random_hex()).await;
    assert_eq!(reason(&r), "otp_invalid", "{r}");
    let r = pb.join_otp(&b, &otp).await;
    assert_eq!(r["ok"]["awaiting_party"], false, "{r}");
    assert_eq!(r["ok"]["room_id"], room_id.as_str());
    let paired = pa.json().await;
    assert_eq!(paired["event"], "party_paired", "{paired}");

    let rf = pa.push("send_message", body(200)).await;
    let nm = pa.json().await;
    assert_eq!(nm["event"], "new_message", "{nm}");
    let ok = pa.json().await;
    assert_eq!(ok["ref"], rf.as_str());
    let id = ok["ok"]["message_id"].as_str().unwrap().to_owned();
    assert_eq!(nm["data"]["id"], id.as_str());
    let got = pb.json().await;
    assert_eq!(got["event"], "new_message");
    assert_eq!(got["data"]["sender_hash"], a.sender.as_str());

    let r = pa.call("send_message", body(10)).await;
    assert_eq!(reason(&r), "not_your_turn", "{r}");

    pb.push("read_receipt", json!({"message_id": id})).await;
    assert_eq!(pb.json().await["event"], "message_read");
    assert_eq!(pa.json().await["event"], "message_read");

    relay.shutdown().await;
}

/// A room left holding a message with no socket open costs no actor: it is parked as just its
/// message, and the next join gets the message back.
#[tokio::test]
async fn dead_drop_rooms_park_and_wake() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let (a, b) = (Who::new(), Who::new());
    let mut pa = relay.ws(&room).await;
    pa.join(&a).await;
    let mut pb = relay.ws(&room).await;
    assert_eq!(pb.join(&b).await["ok"]["awaiting_party"], false);
    assert_eq!(pa.json().await["event"], "party_paired");
    let r = pa.push("send_message", body(200)).await;
    assert_eq!(pa.json().await["event"], "new_message");
    let id = pa.json().await;
    assert_eq!(id["ref"], r.as_str());
    let id = id["ok"]["message_id"].as_str().unwrap().to_owned();
    drop(pa);
    drop(pb);

    let r = relay.relay.as_ref().unwrap();
    let mut waited = 0;
    while (r.live_rooms(), r.parked_rooms()) != (0, 1) {
        assert!(
            waited < 200,
            "room did not park: live {} parked {}",
            r.live_rooms(),
            r.parked_rooms()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }

    let mut pb = relay.ws(&room).await;
    let j = pb.join(&b).await;
    assert_eq!(j["ok"]["current_message"]["id"], id.as_str(), "{j}");
    assert_eq!(j["ok"]["current_message"]["sender_hash"], a.sender.as_str());
    assert_eq!(r.parked_rooms(), 0);
    assert_eq!(r.live_rooms(), 1);
    relay.shutdown().await;
}

/// Regression: a receipt sent just before a close frame must count. The socket's writer closes
/// its outbox when it answers the close, possibly before the room reaches the queued receipt;
/// the room used to prune the socket first and drop the receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_sent_right_before_closing_counts() {
    let relay = TestRelay::start().await;
    for i in 0..50 {
        let room = random_hex();
        let (a, b) = (Who::new(), Who::new());
        let mut pa = relay.ws(&room).await;
        pa.join(&a).await;
        let mut pb = relay.ws(&room).await;
        pb.join(&b).await;
        assert_eq!(pa.json().await["event"], "party_paired");
        pa.push("send_message", body(20)).await;
        assert_eq!(pa.json().await["event"], "new_message");
        let id = pa.json().await["ok"]["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        pa.close().await;
        assert_eq!(pb.json().await["event"], "new_message");
        pb.push("read_receipt", json!({"message_id": id})).await;
        pb.close().await;
        let mut again = relay.ws(&room).await;
        let j = again.join(&a).await;
        assert!(
            !j["ok"]["current_message"]["read_at"].is_null(),
            "iteration {i}: {j}"
        );
    }
    relay.shutdown().await;
}

/// A peer that answers nothing (not even pings) is closed with 1001 `idle_timeout` once it has
/// been silent for the idle timeout; the check runs at the relay's ping ticks.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_closed_as_idle() {
    let relay = TestRelay::start_with(|c| {
        c.ping_interval = std::time::Duration::from_secs(10);
        c.idle_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    let mut p = relay.ws(&random_hex()).await;
    assert!(p.join(&Who::new()).await["ok"].is_object());
    p.mute();
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    match p.recv().await {
        Got::Closed { code, reason } => assert_eq!((code, reason.as_str()), (1001, "idle_timeout")),
        other => panic!("expected an idle close, got {other:?}"),
    }
    relay.shutdown().await;
}
