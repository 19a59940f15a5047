//! An axum site that mounts the relay under `/stelgano` next to a route of its own: the shape
//! docs/EMBEDDING.md walks through. Run it with
//! `cargo run -p stelgano-relay --example embed_axum -- --listen 127.0.0.1:3000 --data-dir ./site-data`
//! and open http://127.0.0.1:3000/stelgano/ (the host's own page is at /).

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use stelgano_relay::config::Settings;
use stelgano_relay::{ClientAddr, Embedded};

/// The host site: its own page at /, the relay under /stelgano. Takes the relay's settings
/// (`--data-dir`, the limits, …); `--listen` is the site's address.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    settings: Settings,
}

/// Hands each request's client address to the relay, whose per-IP limits count against it.
async fn client_addr(
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(ClientAddr(addr));
    next.run(req).await
}

/// The site: any router of the host's, with the relay's service on the prefix and below it.
fn site(relay: &Embedded) -> Router {
    let stelgano = relay.service("/stelgano");
    Router::new()
        .route("/", get(|| async { "The host's own page." }))
        // The bare prefix (redirected to the prefix with a slash), the relay's front page, and
        // everything below it.
        .route_service("/stelgano", stelgano.clone())
        .route_service("/stelgano/", stelgano.clone())
        .route_service("/stelgano/{*rest}", stelgano)
        .layer(middleware::from_fn(client_addr))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.settings.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embed_axum: invalid setting {e}");
            return ExitCode::from(2);
        }
    };
    let listen = config.listen;
    let relay = match Embedded::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("embed_axum: the relay did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("embed_axum: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        eprintln!("host site on http://{addr}/, the relay under http://{addr}/stelgano/");
    }
    let app = site(&relay).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    relay.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_axum: {e}");
            ExitCode::FAILURE
        }
    }
}
