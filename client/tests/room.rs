//! The typed client against a real relay: joins, every event, and the relay's reasons as errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::TestRelay;
use stelgano_client::crypto::{self, Identity};
use stelgano_client::http::room_exists;
use stelgano_client::{Client, ClientError, Event, JoinOptions, RelayUrl, Room};
use stelgano_proto::Reason;

const PHONE: &str = "+44 20 7946 0101";

/// The next event other than typing notices, within a few seconds.
async fn next(room: &mut Room) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), room.next_event())
            .await
            .expect("no event within 10 s")
            .expect("the event stream ended");
        if e != Event::Typing {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parties_use_every_operation() {
    let relay = TestRelay::start().await;
    let url = RelayUrl::parse(&relay.url).unwrap();
    let a_id = Identity::derive(PHONE, "1111").unwrap();
    let b_id = Identity::derive(PHONE, "2222").unwrap();
    // Both parties derive the same key from the number alone; derive once, clone for the other.
    let key = a_id.derive_key();

    assert!(!room_exists(&url, a_id.room_hash(), Duration::from_secs(5))
        .await
        .unwrap());
    let code = crypto::new_pairing_code();
    let mut a = Client::connect(&url, a_id.clone())
        .await
        .unwrap()
        .join(
            key.clone(),
            JoinOptions {
                pairing_code: Some(code.clone()),
                ..JoinOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(a.info().awaiting_party);
    assert!(a.current().is_none() && a.my_turn());
    assert!(room_exists(&url, a_id.room_hash(), Duration::from_secs(5))
        .await
        .unwrap());

    // Without the code the second seat is not handed out.
    let err = Client::connect(&url, b_id.clone())
        .await
        .unwrap()
        .join(key.clone(), JoinOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::OtpRequired), "{err}");

    let mut b = Client::connect(&url, b_id.clone())
        .await
        .unwrap()
        .join(
            key.clone(),
            JoinOptions {
                pairing_code: Some(crypto::format_otp(&code).to_lowercase()),
                ..JoinOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(!b.info().awaiting_party);
    assert_eq!(next(&mut a).await, Event::PartyPaired);
    assert!(!a.info().awaiting_party);

    // Send: the sender's own sockets get the message too, marked as theirs.
    let id = a.send("draft ✓").await.unwrap();
    match next(&mut a).await {
        Event::Message(m) => assert!(m.mine && m.id == id && m.text.as_deref() == Ok("draft ✓")),
        other => panic!("{other:?}"),
    }
    match next(&mut b).await {
        Event::Message(m) => assert!(!m.mine && m.id == id && m.text.as_deref() == Ok("draft ✓")),
        other => panic!("{other:?}"),
    }
    assert!(!a.my_turn() && b.my_turn());
    let err = a.send("again").await.unwrap_err();
    assert_eq!(err.reason(), Some(Reason::NotYourTurn));
    assert!(err.to_string().contains("not your turn"), "{err}");

    // Typing reaches only the other party.
    a.typing().await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), b.next_event())
            .await
            .unwrap(),
        Some(Event::Typing)
    );

    a.edit(&id, "final").await.unwrap();
    assert_eq!(
        next(&mut b).await,
        Event::Edited {
            message_id: id.clone(),
            text: Ok("final".to_owned())
        }
    );
    assert_eq!(b.current().unwrap().text.as_deref(), Ok("final"));
    next(&mut a).await;

    b.read_receipt(&id).await.unwrap();
    assert_eq!(
        next(&mut a).await,
        Event::Read {
            message_id: id.clone()
        }
    );
    assert!(a.current().unwrap().read);
    let err = a.edit(&id, "too late").await.unwrap_err();
    assert_eq!(err.reason(), Some(Reason::NotEditable));
    let err = a.delete(&id).await.unwrap_err();
    assert_eq!(err.reason(), Some(Reason::NotDeletable));

    // Reply, then delete it while unread.
    next(&mut b).await;
    let reply = b.send("reply").await.unwrap();
    next(&mut b).await;
    next(&mut a).await;
    b.delete(&reply).await.unwrap();
    assert_eq!(next(&mut a).await, Event::Deleted { message_id: reply });
    assert!(a.current().is_none());

    // A rejoin sees the current message, decrypted.
    b.send("waiting for you").await.unwrap();
    a.close().await;
    let a2 = Client::connect(&url, a_id.clone())
        .await
        .unwrap()
        .join(key.clone(), JoinOptions::default())
        .await
        .unwrap();
    let m = a2.current().unwrap();
    assert!(!m.mine && !m.read);
    assert_eq!(m.text.as_deref(), Ok("waiting for you"));

    // Burn: both get room_expired, then the relay closes with room_expired.
    let mut a2 = a2;
    a2.expire().await.unwrap();
    let mut saw = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(10), b.next_event()).await {
        saw.push(e);
    }
    assert!(saw.contains(&Event::Expired), "{saw:?}");
    assert!(
        matches!(saw.last(), Some(Event::Closed { code: 1000, reason }) if reason == "room_expired"),
        "{saw:?}"
    );
    let err = b.send("anyone?").await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
    assert!(!room_exists(&url, a_id.room_hash(), Duration::from_secs(5))
        .await
        .unwrap());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reasons_arrive_as_errors() {
    let relay = TestRelay::start().await;
    let url = RelayUrl::parse(&relay.url).unwrap();
    let owner = Identity::derive(PHONE, "1111").unwrap();
    let key = owner.derive_key();
    // No pairing code: the second seat is open to anyone.
    let room = Client::connect(&url, owner.clone())
        .await
        .unwrap()
        .join(key.clone(), JoinOptions::default())
        .await
        .unwrap();
    room.close().await;
    let second = Identity::derive(PHONE, "2222").unwrap();
    Client::connect(&url, second)
        .await
        .unwrap()
        .join(key.clone(), JoinOptions::default())
        .await
        .unwrap()
        .close()
        .await;
    let guesser = Identity::derive(PHONE, "3333").unwrap();
    let err = Client::connect(&url, guesser)
        .await
        .unwrap()
        .join(key.clone(), JoinOptions::default())
        .await
        .unwrap_err();
    match &err {
        ClientError::Server(body) => {
            assert_eq!(body.reason, Reason::Unauthorized);
            assert_eq!(body.attempts_remaining, Some(9));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("9 attempts remaining"), "{err}");

    // A bad room address never reaches the protocol: the upgrade is refused with 400.
    let err = match stelgano_client::ws::connect(&format!("{}/room/NOTHEX/ws", relay.url)).await {
        Err(e) => e,
        Ok(_) => panic!("upgraded with a bad room hash"),
    };
    assert!(matches!(err, ClientError::Http { status: 400 }), "{err}");
    relay.stop().await;
}
