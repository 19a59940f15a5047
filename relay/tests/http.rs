//! The relay's HTTP surface (PROTOCOL.md §1), black-box over real sockets: the WebSocket route and
//! its refusals, the `exists` look-up, the health check, the panic route and unknown paths.

mod common;
mod helpers;

use common::*;
use helpers::*;
use serde_json::Value;

#[tokio::test]
async fn websocket_upgrade_on_a_valid_room_hash_is_101() {
    let relay = TestRelay::start().await;
    let (status, head) = upgrade(relay.addr, &format!("/room/{}/ws", random_hex())).await;
    assert_eq!(status, 101, "{head}");
    assert_eq!(header(&head, "upgrade"), Some("websocket"), "{head}");
    relay.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrade_on_a_bad_room_hash_is_400() {
    let relay = TestRelay::start().await;
    let good = random_hex();
    let bad = [
        good.to_uppercase(),         // upper case
        good[..63].to_owned(),       // 63 characters
        format!("{good}0"),          // 65 characters
        format!("{}g", &good[..63]), // not hex
        format!("{}A", &good[..63]), // one upper-case digit
        String::from("room"),        // nonsense
    ];
    for room in &bad {
        let (status, head) = upgrade(relay.addr, &format!("/room/{room}/ws")).await;
        assert_eq!(status, 400, "room hash {room:?}: {head}");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn the_websocket_path_without_an_upgrade_is_426() {
    let relay = TestRelay::start().await;
    let (status, head, _) = http_get(relay.addr, &format!("/room/{}/ws", random_hex()), "").await;
    assert_eq!(status, 426, "{head}");
    relay.shutdown().await;
}

#[tokio::test]
async fn upgrades_over_the_per_ip_limit_get_429_with_retry_after() {
    let relay = TestRelay::start_with(|c| c.upgrades_per_min = 2).await;
    let room = random_hex();
    // Two upgrades are within the limit and stay open while the third is refused.
    let _p1 = relay.ws(&room).await;
    let _p2 = relay.ws(&room).await;
    let (status, head) = upgrade(relay.addr, &format!("/room/{room}/ws")).await;
    assert_eq!(status, 429, "{head}");
    let retry: u64 = header(&head, "retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {head}"))
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not delta-seconds: {head}"));
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The typed client sees the same refusal.
    match stelgano_client::ws::connect(&format!("ws://{}/room/{room}/ws", relay.addr)).await {
        Err(stelgano_client::ClientError::Http { status }) => assert_eq!(status, 429),
        Err(e) => panic!("expected HTTP 429, got {e}"),
        Ok(_) => panic!("a fourth upgrade within the minute was accepted"),
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn exists_is_false_then_true_and_never_cached() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    let path = format!("/api/room/{room}/exists");

    let (status, head, body) = http_get(relay.addr, &path, "").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "cache-control"), Some("no-store"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, serde_json::json!({"exists": false}));
    assert!(
        header(&head, "content-type").is_some_and(|t| t.starts_with("application/json")),
        "{head}"
    );

    // Looking a room up must not create it.
    assert!(!exists(relay.addr, &room).await);

    let mut p = relay.ws(&room).await;
    ok(&p.join(&Who::new()).await);
    let (status, head, body) = http_get(relay.addr, &path, "").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "cache-control"), Some("no-store"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, serde_json::json!({"exists": true}));

    // A room stays existing after its last socket leaves.
    drop(p);
    assert!(exists(relay.addr, &room).await);
    relay.shutdown().await;
}

#[tokio::test]
async fn exists_with_a_bad_hash_is_400_json() {
    let relay = TestRelay::start().await;
    let good = random_hex();
    for room in [
        good.to_uppercase(),
        good[..10].to_owned(),
        format!("{good}ab"),
    ] {
        let (status, head, body) =
            http_get(relay.addr, &format!("/api/room/{room}/exists"), "").await;
        assert_eq!(status, 400, "{room}: {head}");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("400 body is not JSON ({e}): {body:?}"));
        assert_eq!(v, serde_json::json!({"error": "invalid_room_hash"}));
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn exists_is_rate_limited_per_ip_like_upgrades() {
    let relay = TestRelay::start_with(|c| c.upgrades_per_min = 2).await;
    let room = random_hex();
    let path = format!("/api/room/{room}/exists");
    for _ in 0..2 {
        let (status, head, _) = http_get(relay.addr, &path, "").await;
        assert_eq!(status, 200, "{head}");
    }
    let (status, head, _) = http_get(relay.addr, &path, "").await;
    assert_eq!(status, 429, "{head}");
    assert!(header(&head, "retry-after").is_some(), "{head}");
    relay.shutdown().await;
}

#[tokio::test]
async fn healthz_is_200_ok() {
    let relay = TestRelay::start().await;
    let (status, head, body) = http_get(relay.addr, "/healthz", "").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "ok");
    relay.shutdown().await;
}

#[tokio::test]
async fn the_panic_route_redirects_to_the_neutral_page() {
    let relay = TestRelay::start().await;
    let (status, head, _) = http_get(relay.addr, "/x", "").await;
    assert_eq!(status, 302, "{head}");
    // Relative, so it resolves next to the panic route wherever the client is mounted.
    assert_eq!(header(&head, "location"), Some("gone"), "{head}");
    assert_eq!(header(&head, "cache-control"), Some("no-store"), "{head}");
    let (status, head, body) = http_get(relay.addr, "/gone", "").await;
    assert_eq!(status, 200, "{head}");
    let lower = body.to_lowercase();
    for word in ["stelgano", "channel", "message", "encrypt", "panic"] {
        assert!(
            !lower.contains(word),
            "the neutral page says {word:?}: {body}"
        );
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn the_panic_route_honours_the_operators_url() {
    let relay =
        TestRelay::start_with(|c| c.panic_url = Some("https://example.org/news".into())).await;
    let (status, head, _) = http_get(relay.addr, "/x", "").await;
    assert_eq!(status, 302, "{head}");
    assert_eq!(
        header(&head, "location"),
        Some("https://example.org/news"),
        "{head}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let relay = TestRelay::start().await;
    let room = random_hex();
    for path in [
        "/nope".to_owned(),
        format!("/room/{room}"),
        format!("/room/{room}/ws/extra"),
        format!("/api/room/{room}"),
        format!("/api/room/{room}/other"),
        "/api".to_owned(),
        "/healthz/more".to_owned(),
        "/x/y".to_owned(),
    ] {
        let (status, head, _) = http_get(relay.addr, &path, "").await;
        assert_eq!(status, 404, "{path}: {head}");
    }
    relay.shutdown().await;
}
