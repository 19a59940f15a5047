//! `wss://` relays: the CLI as separate processes through a TLS-terminating proxy in front of a
//! real relay, trusting the proxy's private certificate only when told to (`STELGANO_CA_FILE`).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Party, TestRelay};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, pki_types};

/// Accepts TLS for `localhost` with a fresh self-signed certificate and forwards each connection
/// to `backend` in the clear, as a reverse proxy would. Returns its address and the certificate
/// as PEM.
async fn tls_proxy(backend: SocketAddr) -> (SocketAddr, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = certified.cert.pem();
    let key = pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here; that is fine.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, pem)
}

#[tokio::test]
async fn the_cli_talks_to_a_relay_behind_tls() {
    let relay = TestRelay::start().await;
    let (proxy, pem) = tls_proxy(relay.relay.local_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("proxy-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let ca = ca.to_str().unwrap();
    let url = format!("wss://localhost:{}", proxy.port());
    let alice = Party::new("+44 20 7946 0958", "alice-7201");
    let bob = Party::new("+442079460958", "bob-1187");

    // The proxy's certificate is not one the public roots vouch for: a clear refusal.
    let refused = alice.run_env(&url, &["create"], None, &[]).await;
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("TLS"), "{refused:?}");

    let trust = [("STELGANO_CA_FILE", ca)];
    common::exchange(&url, &trust, &alice, &bob, "over TLS").await;

    // An https:// relay URL means the same as wss://.
    let https = format!("https://localhost:{}", proxy.port());
    let reply = bob
        .run_env(&https, &["send", "still TLS"], None, &trust)
        .await;
    reply.ok();
    let read = alice
        .run_env(&https, &["read", "--wait", "--timeout", "60"], None, &trust)
        .await;
    assert!(read.stdout.contains("still TLS"), "{read:?}");
    relay.stop().await;
}
