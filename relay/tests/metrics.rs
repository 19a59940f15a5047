//! `/metrics` after real traffic: off unless configured, a bearer token compared in constant time
//! on the public listener, the separate listener, every series an operator alerts on, and no
//! label or value that carries a hash or an address.
#![allow(clippy::unwrap_used)]

mod common;
mod helpers;

use std::net::SocketAddr;

use common::{random_hex, TestRelay, Who};
use helpers::{assert_error, expect_event, ok, pair, raw_http};
use serde_json::json;

const TOKEN: &str = "test-metrics-token-0123456789";

async fn scrape(addr: SocketAddr, auth: Option<&str>) -> (u16, String) {
    let header = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = raw_http(
        addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"),
    )
    .await;
    (status, body)
}

/// The value of an unlabelled series, or of one with exactly these labels.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_real_traffic_and_carry_no_hash_or_address() {
    let relay = TestRelay::start_with(|c| {
        c.metrics_token = Some(TOKEN.into());
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let mut p = pair(&relay).await;
    let text = helpers::raw_body("QUJD", "AAAAAAAAAAAAAAAA");
    helpers::send(&mut p.pa, text).await;
    expect_event(&mut p.pb, "new_message").await;
    let stranger = Who::new();
    let mut g = relay.ws(&p.room).await;
    assert_error(&g.join(&stranger).await, "unauthorized");
    let r = p.pa.push("expire_room", json!({})).await;
    expect_event(&mut p.pa, "room_expired").await;
    assert_eq!(ok(&p.pa.json().await), json!({}), "{r}");
    // A second room stays, so the gauges have something to count.
    let mut q = relay.ws(&random_hex()).await;
    ok(&q.join(&Who::new()).await);

    // The public listener: no token, a wrong one, the right one.
    assert_eq!(scrape(relay.addr, None).await.0, 401);
    assert_eq!(
        scrape(relay.addr, Some("not-the-token-at-all")).await.0,
        401
    );
    let (status, body) = scrape(relay.addr, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    // The separate listener, which asks for the token too when one is set.
    let maddr = relay.relay.as_ref().unwrap().metrics_addr().unwrap();
    assert_eq!(scrape(maddr, None).await.0, 401);
    let (status, body2) = scrape(maddr, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let (status, _, _) = raw_http(
        maddr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404, "the metrics listener serves nothing else");

    for b in [&body, &body2] {
        assert_eq!(value(b, "stelgano_joins_total{outcome=\"created\"}"), 2.0);
        assert_eq!(value(b, "stelgano_joins_total{outcome=\"paired\"}"), 1.0);
        assert_eq!(value(b, "stelgano_joins_total{outcome=\"wrong_pin\"}"), 1.0);
        assert_eq!(value(b, "stelgano_messages_total"), 1.0);
        assert_eq!(
            value(b, "stelgano_rooms_expired_total{cause=\"burned\"}"),
            1.0
        );
        assert_eq!(value(b, "stelgano_stored_rooms"), 1.0);
        assert!(value(b, "stelgano_connections_total") >= 4.0);
        assert!(value(b, "stelgano_open_sockets") >= 1.0);
        assert!(value(b, "stelgano_store_seconds_count{op=\"flush\"}") >= 3.0);
        assert_eq!(value(b, "stelgano_store_healthy"), 1.0);
        assert!(value(b, "stelgano_process_resident_memory_bytes") > 1e6);
        assert!(value(b, "stelgano_process_open_fds") > 3.0);
        // Aggregates only: nothing a client sent, nothing about where it came from.
        for secret in [
            p.room.as_str(),
            p.a.access.as_str(),
            p.a.sender.as_str(),
            p.b.access.as_str(),
            stranger.access.as_str(),
            p.room_id.as_str(),
            "127.0.0.1",
        ] {
            assert!(!b.contains(secret), "metrics carry {secret}");
        }
        assert!(!b.contains(TOKEN));
    }
    // Every series the shipped dashboard and the documented alerts query exists.
    let docs = [
        include_str!("../../docs/grafana-dashboard.json"),
        include_str!("../../docs/OPERATIONS.md"),
    ];
    for doc in docs {
        for name in doc
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("stelgano_") && *w != "stelgano_relay")
        {
            // A family with no sample yet still has its HELP line.
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum")
                .trim_end_matches("_total");
            assert!(
                body.contains(&format!("# HELP {base} ")),
                "the docs query {name}, which the relay does not export"
            );
        }
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn without_configuration_there_are_no_metrics() {
    let relay = TestRelay::start().await;
    assert_eq!(scrape(relay.addr, None).await.0, 404);
    assert_eq!(scrape(relay.addr, Some(TOKEN)).await.0, 404);
    relay.shutdown().await;
    // A token too short to be one is refused at start, named but not shown.
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::test_config(&dir);
    c.metrics_token = Some("short".into());
    let e = stelgano_relay::Relay::start(c)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("metrics_token") && !e.contains("short"), "{e}");
}
