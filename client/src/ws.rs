//! Opening a connection to the relay: TCP (`ws://`) or TLS over TCP (`wss://`), and the HTTP/1.1
//! WebSocket upgrade on top.
//!
//! Shared by the typed client and the bench, so it stays small and its signature stable.

use bytes::Bytes;
use fastwebsockets::{handshake, WebSocket, WebSocketError};
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};

use crate::error::ClientError;

/// A client WebSocket after a successful upgrade.
pub type WsStream = WebSocket<TokioIo<Upgraded>>;

/// Runs hyper's connection driver on the ambient tokio runtime.
#[derive(Debug, Clone, Copy)]
struct TokioExecutor;

impl<F> hyper::rt::Executor<F> for TokioExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// Where a `ws://` / `wss://` (or `http://` / `https://`) URL points: the TCP address, whether
/// to speak TLS, the `Host` header and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub authority: String,
    pub path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |why: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("ws") | Some("http") => false,
            Some("wss") | Some("https") => true,
            _ => return Err(bad("the scheme must be ws://, wss://, http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        // IPv6 literals come bracketed ("[::1]"); TCP wants them bare.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
            authority: authority.as_str().to_owned(),
            path,
        })
    }
}

/// Any byte stream to the relay: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The environment variable naming a PEM file of extra CA certificates to trust for `wss://`
/// (a self-hosted relay with a private CA); the public web's roots are always trusted.
pub const CA_FILE_ENV: &str = "STELGANO_CA_FILE";

/// TLS settings, built once: Mozilla's roots plus any from [`CA_FILE_ENV`].
fn tls_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let made = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = std::env::var_os(CA_FILE_ENV) {
            use pki_types::pem::PemObject;
            let shown = std::path::Path::new(&path).display().to_string();
            let certs = pki_types::CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("{CA_FILE_ENV}={shown}: {e}"))?;
            let mut added = 0;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{CA_FILE_ENV}={shown}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{CA_FILE_ENV}={shown}: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("{CA_FILE_ENV}={shown}: no certificate in the file"));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    made.clone().map_err(ClientError::Tls)
}

/// Opens the byte stream to `target`: TCP, then TLS when the URL said `wss://` or `https://`
/// (the certificate must be valid for the URL's host).
pub(crate) async fn open(target: &Target) -> Result<Box<dyn Io>, ClientError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| ClientError::Connect {
            addr: target.authority.clone(),
            source,
        })?;
    // Frames are small and interactive; Nagle would only add latency.
    stream
        .set_nodelay(true)
        .map_err(|source| ClientError::Connect {
            addr: target.authority.clone(),
            source,
        })?;
    if !target.tls {
        return Ok(Box::new(stream));
    }
    let name = pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| ClientError::Tls(format!("{}: {e}", target.host)))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, stream)
        .await
        .map_err(|e| ClientError::Tls(format!("{}: {e}", target.authority)))?;
    Ok(Box::new(tls))
}

/// Opens a WebSocket to `url` (for the relay: `ws://HOST:PORT/room/{room_hash}/ws`, or `wss://`
/// behind TLS).
///
/// `http://` and `https://` are taken as `ws://` and `wss://`. A refused upgrade reports the
/// HTTP status ([`ClientError::Http`]), so callers can tell a bad room hash (400) from the
/// per-IP upgrade limit (429).
pub async fn connect(url: &str) -> Result<WsStream, ClientError> {
    let target = Target::parse(url)?;
    let stream = open(&target).await?;
    let request = Request::builder()
        .method("GET")
        .uri(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .map_err(|e| ClientError::InvalidUrl {
            url: url.to_owned(),
            why: e.to_string(),
        })?;
    match handshake::client(&TokioExecutor, request, stream).await {
        Ok((ws, _response)) => Ok(ws),
        Err(WebSocketError::InvalidStatusCode(status)) => Err(ClientError::Http { status }),
        Err(e) => Err(ClientError::WebSocket(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relay_urls() {
        let t = Target::parse("ws://127.0.0.1:8080/room/ab/ws").unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path, "/room/ab/ws");
        let t = Target::parse("http://example.org").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("ws://[::1]:9/x").unwrap();
        assert_eq!(t.host, "::1");
        let t = Target::parse("wss://example.org/s").unwrap();
        assert_eq!((t.port, t.tls, t.path.as_str()), (443, true, "/s"));
        assert!(!Target::parse("ws://example.org/").unwrap().tls);
        assert!(Target::parse("ftp://example.org/").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    /// A one-connection hyper server that upgrades and echoes one text frame back.
    async fn echo_once() -> std::net::SocketAddr {
        use fastwebsockets::{upgrade, Frame, OpCode};
        use hyper::body::Incoming;
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = service_fn(|mut req: Request<Incoming>| async move {
                assert_eq!(req.uri().path(), "/room/abc/ws");
                let (resp, fut) = upgrade::upgrade(&mut req).unwrap();
                tokio::spawn(async move {
                    let mut ws = fut.await.unwrap();
                    let frame = ws.read_frame().await.unwrap();
                    assert_eq!(frame.opcode, OpCode::Text);
                    let echoed = frame.payload.to_vec();
                    ws.write_frame(Frame::text(echoed.into())).await.unwrap();
                });
                Ok::<_, std::convert::Infallible>(resp)
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await
                .unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn connects_and_exchanges_a_frame() {
        use fastwebsockets::{Frame, OpCode};
        let addr = echo_once().await;
        let mut ws = connect(&format!("ws://{addr}/room/abc/ws")).await.unwrap();
        ws.write_frame(Frame::text(b"hi".to_vec().into()))
            .await
            .unwrap();
        let frame = ws.read_frame().await.unwrap();
        assert_eq!(frame.opcode, OpCode::Text);
        assert_eq!(&frame.payload[..], b"hi");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let Err(err) = connect(&format!("ws://{addr}/")).await else {
            panic!("connected to a closed port");
        };
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    }
}
