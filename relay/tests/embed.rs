//! The relay mounted in a host's axum site under `/stelgano`, as docs/EMBEDDING.md and
//! `examples/embed_axum.rs` show: the host's own route keeps working, the relay's pages and API
//! answer below the prefix, and a whole room (create, pair, message, read, burn) runs through
//! it with the Rust client, its WebSockets upgraded by the host's server.
#![allow(clippy::unwrap_used)]

mod common;
mod helpers;

use std::time::Duration;

use helpers::{header, raw_http};
use stelgano_client::crypto::{self, Identity};
use stelgano_client::http::room_exists;
use stelgano_client::{Client, Event, JoinOptions, RelayUrl, Room};
use stelgano_relay::Embedded;

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

fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_room_runs_through_a_host_site_under_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Embedded::start(common::test_config(&dir)).await.unwrap();
    let addr = helpers::mount_in_axum(&relay, "/stelgano").await;

    // The host's own route, the prefix's redirect, the relay's pages and API below it.
    let (status, _, body) = raw_http(addr, &get_req("/")).await;
    assert_eq!((status, body.as_str()), (200, "the host's own page"));
    let (status, head, _) = raw_http(addr, &get_req("/stelgano?x=1")).await;
    assert_eq!(status, 308);
    assert_eq!(header(&head, "location"), Some("/stelgano/?x=1"));
    let (status, head, body) = raw_http(addr, &get_req("/stelgano/")).await;
    assert_eq!(status, 200);
    assert!(header(&head, "content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("<html"), "{body}");
    let (status, _, body) = raw_http(addr, &get_req("/stelgano/api/config")).await;
    assert_eq!(status, 200);
    assert!(body.contains("free_ttl_days"), "{body}");
    let (status, _, body) = raw_http(addr, &get_req("/stelgano/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // Outside the prefix the host decides (here: its 404).
    let (status, _, _) = raw_http(addr, &get_req("/healthz")).await;
    assert_eq!(status, 404);

    // A whole room through the prefix.
    let url = RelayUrl::parse(&format!("ws://{addr}/stelgano")).unwrap();
    let phone = "+1 415 555 0177";
    let a_id = Identity::derive(phone, "1357").unwrap();
    let b_id = Identity::derive(phone, "2468").unwrap();
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
    assert!(room_exists(&url, a_id.room_hash(), Duration::from_secs(5))
        .await
        .unwrap());
    let mut b = Client::connect(&url, b_id)
        .await
        .unwrap()
        .join(
            key,
            JoinOptions {
                pairing_code: Some(code),
                ..JoinOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(next(&mut a).await, Event::PartyPaired);
    let id = a.send("through the host").await.unwrap();
    next(&mut a).await;
    match next(&mut b).await {
        Event::Message(m) => assert_eq!(m.text.as_deref(), Ok("through the host")),
        other => panic!("{other:?}"),
    }
    b.read_receipt(&id).await.unwrap();
    assert_eq!(next(&mut a).await, Event::Read { message_id: id });
    b.expire().await.unwrap();
    assert!(!room_exists(&url, a_id.room_hash(), Duration::from_secs(5))
        .await
        .unwrap());
    relay.shutdown().await;
}

/// `examples/embed_axum.rs` as a user runs it: its own page at `/`, the relay under
/// `/stelgano`, a room created through it. `cargo test --workspace` builds the example; a
/// narrower `cargo test` that did not build it skips loudly (and fails under
/// `STELGANO_REQUIRE_SYSTEM_DEPS=1`, as in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_serves_its_site_and_the_relay() {
    use std::process::Command;

    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("embed_axum"))
        .unwrap();
    if !example.is_file() {
        let why = format!(
            "{} is not built (cargo test --workspace builds it)",
            example.display()
        );
        if std::env::var("STELGANO_REQUIRE_SYSTEM_DEPS").is_ok_and(|v| v == "1") {
            panic!("{why}");
        }
        eprintln!("\n*** SKIP: the embedding example: {why} ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&example);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--join-floor-ms",
        "0",
        "--data-dir",
    ])
    .arg(dir.path());
    let (mut child, addr) = helpers::spawn_until_listening(&mut cmd, "host site on http://")
        .expect("the example did not say where it listens");
    let (status, _, body) = raw_http(addr, &get_req("/")).await;
    assert_eq!((status, body.as_str()), (200, "The host's own page."));
    let (status, _, body) = raw_http(addr, &get_req("/stelgano/api/config")).await;
    assert_eq!(status, 200, "{body}");
    let url = RelayUrl::parse(&format!("ws://{addr}/stelgano")).unwrap();
    let id = Identity::derive("+1 415 555 0166", "8080").unwrap();
    let room = Client::connect(&url, id.clone())
        .await
        .unwrap()
        .join(id.derive_key(), JoinOptions::default())
        .await
        .unwrap();
    assert!(room.info().awaiting_party);
    assert!(room_exists(&url, id.room_hash(), Duration::from_secs(5))
        .await
        .unwrap());
    room.close().await;
    let _ = child.kill();
    let _ = child.wait();
}
