//! The accept loop and the HTTP surface: admission, routing, and the WebSocket upgrade.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use stelgano_proto::check::hex64;
use stelgano_store::RoomKeys;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::metrics::Limit;
use crate::Shared;

pub(crate) mod web;

type Body = Full<Bytes>;
type Permit = Arc<Mutex<Option<OwnedSemaphorePermit>>>;

/// Accepts connections until shutdown. A permit of the connection cap is taken *before* accept,
/// so at the cap new clients wait in the kernel's backlog instead of costing memory here.
pub(crate) async fn run(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    while let Some((stream, peer, permit)) = accept(&listener, &permits, &shared).await {
        let _ = stream.set_nodelay(true);
        shared
            .tasks
            .spawn(serve_http(stream, peer, shared.clone(), permit));
    }
}

/// The next connection with a permit of `permits` taken before it is accepted; `None` at
/// shutdown.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    shared: &Shared,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            _ = shared.cancel.cancelled() => return None,
            p = permits.clone().acquire_owned() => p.ok()?,
        };
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return None,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => return Some((stream, peer, permit)),
            Err(e) => {
                // Usually EMFILE/ENFILE: back off briefly rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    // The permit moves into the WebSocket task if this connection upgrades.
    let permit: Permit = Arc::new(Mutex::new(Some(permit)));
    let svc_shared = shared.clone();
    let svc_permit = permit.clone();
    let service = service_fn(move |req| {
        let shared = svc_shared.clone();
        let permit = svc_permit.clone();
        async move {
            let path = req.uri().path().to_owned();
            Ok::<_, Infallible>(route(req, &path, peer, shared, permit))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.handshake_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shared.cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "http connection ended with an error");
    }
}

/// Answers one request. `path` is the request's path below the relay's mount point (every URL
/// the relay answers with is relative, so it needs no more of the mount point than that).
fn route<B>(
    req: Request<B>,
    path: &str,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Permit,
) -> Response<Body> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match segments.as_slice() {
        ["healthz"] if get => {
            if shared.store.is_healthy() {
                plain(StatusCode::OK, "ok")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "store cannot write")
            }
        }
        ["x"] if get => panic_redirect(shared.config.panic_url.as_deref()),
        ["api", "config"] if get => api_config(&shared),
        // On the public listener only with a token: otherwise there is no such page.
        ["metrics"] if get && shared.config.metrics_token.is_some() => metrics(&req, &shared),
        // The reference client's page-step beacons: answered, and nothing is recorded.
        ["api", "funnel"] if req.method() == Method::POST => {
            let mut r = Response::new(Body::default());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        ["api", "room", hash, "exists"] if get => {
            exists(hash, client_ip(&req, peer, &shared), &shared)
        }
        ["room", hash, "ws"] if get => {
            let hash = (*hash).to_owned();
            upgrade(req, &hash, peer, shared, permit)
        }
        ["api", "funnel"] => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            r
        }
        ["healthz"]
        | ["x"]
        | ["api", "config"]
        | ["api", "room", _, "exists"]
        | ["room", _, "ws"] => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ if get => crate::http::web::serve(path, shared.config.hsts)
            .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "not found")),
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `GET /api/config` in the shape the reference client reads (PROTOCOL.md §1): whether
/// extension tokens are accepted and the two TTLs in whole days (0: rooms of that tier never
/// expire). No payment provider, so no price; never a country.
fn api_config(shared: &Shared) -> Response<Body> {
    let days = |d: std::time::Duration| d.as_secs() / 86_400;
    let body = serde_json::json!({
        "monetization_enabled": shared.tokens.is_some(),
        "free_ttl_days": days(shared.config.free_ttl),
        "paid_ttl_days": days(shared.config.extended_ttl),
        "price_cents": 0,
        "currency": "",
        "cf_country": null,
    });
    let mut r = json(StatusCode::OK, "");
    *r.body_mut() = Body::new(Bytes::from(body.to_string()));
    r
}

/// `GET /metrics`: the Prometheus text exposition, to a request with the right bearer token
/// when one is configured (401 otherwise). The token is compared as SHA-256 digests in constant
/// time, so neither its length nor a matching prefix shows in the timing.
fn metrics<B>(req: &Request<B>, shared: &Shared) -> Response<Body> {
    if let Some(token) = &shared.config.metrics_token {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let (a, b) = (
            Sha256::digest(given.as_bytes()),
            Sha256::digest(token.as_bytes()),
        );
        if !bool::from(a.ct_eq(&b)) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let text = shared.metrics.encode(crate::metrics::Snapshot {
        live_rooms: shared.rooms.live(),
        parked_rooms: shared.rooms.parked(),
        stored_rooms: shared.store.room_count(),
        store_healthy: shared.store.is_healthy(),
    });
    let mut r = respond(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        "",
    );
    *r.body_mut() = Body::new(Bytes::from(text));
    r
}

/// The separate metrics listener (`--metrics-listen`): `/metrics` and nothing else, a few
/// connections at a time, until shutdown.
pub(crate) async fn run_metrics(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(8));
    while let Some((stream, _, permit)) = accept(&listener, &permits, &shared).await {
        let svc_shared = shared.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let shared = svc_shared.clone();
            async move {
                let r = if req.uri().path() == "/metrics" && req.method() == Method::GET {
                    metrics(&req, &shared)
                } else {
                    plain(StatusCode::NOT_FOUND, "not found")
                };
                Ok::<_, Infallible>(r)
            }
        });
        let timeout = shared.config.handshake_timeout;
        let cancel = shared.cancel.clone();
        shared.tasks.spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

fn exists(hash: &str, ip: IpAddr, shared: &Shared) -> Response<Body> {
    let Some(key) = hex64(hash) else {
        return json(StatusCode::BAD_REQUEST, r#"{"error":"invalid_room_hash"}"#);
    };
    if let Err(wait) = shared.limits.allow_lookup(ip) {
        shared.metrics.refused(Limit::lookup);
        return too_many(wait);
    }
    let now = shared.clock.now_ms();
    let locator = RoomKeys::derive(&key).locator();
    match shared.store.expires_at(&locator) {
        Ok(expires) => {
            let live = expires.is_some_and(|at| at > now);
            json(
                StatusCode::OK,
                if live {
                    r#"{"exists":true}"#
                } else {
                    r#"{"exists":false}"#
                },
            )
        }
        Err(e) => {
            warn!(error = %e, "store read failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal_error"}"#,
            )
        }
    }
}

fn upgrade<B>(
    mut req: Request<B>,
    hash: &str,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Permit,
) -> Response<Body> {
    let Some(key) = hex64(hash) else {
        return plain(StatusCode::BAD_REQUEST, "invalid room hash");
    };
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        let mut r = plain(StatusCode::UPGRADE_REQUIRED, "websocket upgrade required");
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        return r;
    }
    let ip = client_ip(&req, peer, &shared);
    // The open-socket cap is checked first so that a refusal does not also spend one of the
    // client's upgrades. Its Retry-After is the join deadline: by then every socket of this
    // client that never joined has been closed.
    let Some(slot) = shared
        .limits
        .open_socket(ip, shared.config.max_sockets_per_ip)
    else {
        debug!("upgrade refused: the client has too many sockets open");
        shared.metrics.refused(Limit::sockets_per_ip);
        return too_many(shared.config.join_deadline);
    };
    if let Err(wait) = shared.limits.allow_upgrade(ip) {
        shared.metrics.refused(Limit::upgrade);
        return too_many(wait);
    }
    // Taken before fastwebsockets builds the reply: the relay wants the raw upgraded socket
    // (see `connection::serve`), not fastwebsockets' wrapper around it.
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (response, _) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(e) => {
            debug!(error = %e, "bad websocket handshake");
            return plain(StatusCode::BAD_REQUEST, "bad websocket handshake");
        }
    };
    let permit = permit.lock().ok().and_then(|mut p| p.take());
    shared.tasks.spawn(crate::socket::serve(
        shared.clone(),
        RoomKeys::derive(&key),
        ip,
        on_upgrade,
        permit,
        slot,
    ));
    response.map(|_| Body::default())
}

/// The client's address for rate limits: the TCP peer, or (only when the operator trusts a proxy
/// in front) the last `X-Forwarded-For` hop, which is the one that proxy appended.
fn client_ip<B>(req: &Request<B>, peer: SocketAddr, shared: &Shared) -> IpAddr {
    if shared.config.trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

fn too_many(wait: std::time::Duration) -> Response<Body> {
    let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "rate limited");
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, "application/json", body)
}

fn respond(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The client's address, for a host server that mounts the relay ([`RelayService`]) to put in
/// each request's extensions: the relay's per-IP limits count against it. Without it (and
/// without `trust_forwarded_for`), every client of the host shares one budget.
///
/// ```
/// use stelgano_relay::ClientAddr;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ClientAddr("203.0.113.7:50000".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The relay as a `tower` service, for mounting under `prefix` in a host's own HTTP server (see
/// docs/EMBEDDING.md). It answers every path below the prefix: the pages of the browser client,
/// `/api/…`, the room WebSockets (upgraded through the host's server), `/healthz`. A request
/// for the bare prefix is redirected to the prefix with a slash, so the pages' relative URLs
/// resolve below it; any other path gets 404. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use stelgano_relay::{Config, Embedded};
/// let relay = Embedded::start(Config { data_dir: dir.path().into(), ..Config::default() }).await?;
/// let service = relay.service("/stelgano");
/// let ok = service.handle(http::Request::get("/stelgano/healthz").body(())?);
/// assert_eq!(ok.status(), 200);
/// let bare = service.handle(http::Request::get("/stelgano").body(())?);
/// assert_eq!(bare.status(), 308); // to /stelgano/
/// let outside = service.handle(http::Request::get("/other").body(())?);
/// assert_eq!(outside.status(), 404);
/// relay.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RelayService {
    shared: Arc<Shared>,
    prefix: Arc<str>,
}

impl RelayService {
    pub(crate) fn new(shared: Arc<Shared>, prefix: &str) -> RelayService {
        RelayService {
            shared,
            prefix: Arc::from(prefix.trim_end_matches('/')),
        }
    }

    /// Answers one request (what `call` does).
    pub fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let full = req.uri().path();
        let prefix = &*self.prefix;
        let path = if prefix.is_empty() {
            full.to_owned()
        } else if full == prefix {
            let mut location = format!("{prefix}/");
            if let Some(q) = req.uri().query() {
                location.push('?');
                location.push_str(q);
            }
            let mut r = plain(StatusCode::PERMANENT_REDIRECT, "moved");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        } else if let Some(rest) = full.strip_prefix(prefix).filter(|r| r.starts_with('/')) {
            rest.to_owned()
        } else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let peer = req
            .extensions()
            .get::<ClientAddr>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |a| a.0);
        // The host's server owns the connection and its limits; no permit of ours is held.
        let permit: Permit = Arc::new(Mutex::new(None));
        route(req, &path, peer, self.shared.clone(), permit)
    }
}

impl<B> tower_service::Service<Request<B>> for RelayService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.handle(req)))
    }
}

/// The panic route's redirect. The default target is relative (`gone`), so it resolves next to
/// `/x` wherever the client is mounted; an operator's URL that is not a valid header value falls
/// back to it rather than failing the one request that must never fail.
fn panic_redirect(panic_url: Option<&str>) -> Response<Body> {
    let location = panic_url
        .and_then(|u| HeaderValue::from_str(u).ok())
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_PANIC_TARGET));
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::default())
        .unwrap_or_default()
}

/// The built-in neutral page (`client/web/gone.html`), relative to the panic route.
const DEFAULT_PANIC_TARGET: &str = "gone";
