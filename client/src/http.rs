//! Plain HTTP look-ups against the relay (`GET /api/room/{room_hash}/exists`), and the URLs the
//! client builds from a relay base URL.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::HOST;
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::error::ClientError;
use crate::ws::Target;

/// Largest answer body read from a look-up; the real one is a few bytes.
const MAX_BODY: usize = 4096;

/// The relay a user names, as `ws://HOST:PORT[/prefix]` without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl(String);

impl RelayUrl {
    /// Accepts `ws://` and `http://` (mapped to `ws://`), or a bare `HOST:PORT`.
    pub fn parse(url: &str) -> Result<RelayUrl, ClientError> {
        let url = url.trim();
        let normalised = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if url.contains("://") {
            url.to_owned()
        } else {
            format!("ws://{url}")
        };
        let normalised = normalised.trim_end_matches('/').to_owned();
        let target = Target::parse(&normalised)?;
        if target.path.contains('?') {
            return Err(ClientError::InvalidUrl {
                url: url.to_owned(),
                why: "a relay URL takes no query string".to_owned(),
            });
        }
        Ok(RelayUrl(normalised))
    }

    /// `ws://…/room/{room_hash}/ws`.
    pub fn room_socket(&self, room_hash: &str) -> String {
        format!("{}/room/{room_hash}/ws", self.0)
    }

    /// `ws://…/api/room/{room_hash}/exists` (fetched over plain HTTP).
    fn exists_url(&self, room_hash: &str) -> String {
        format!("{}/api/room/{room_hash}/exists", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Asks the relay whether a room exists, so that joining never creates a room by accident.
pub async fn room_exists(
    relay: &RelayUrl,
    room_hash: &str,
    timeout: Duration,
) -> Result<bool, ClientError> {
    let work = async {
        let url = relay.exists_url(room_hash);
        let target = Target::parse(&url)?;
        let stream = crate::ws::open(&target).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(format!("HTTP handshake failed: {e}")))?;
        // The driver ends by itself when the response is read and `sender` drops.
        tokio::spawn(conn);
        let request = Request::get(target.path.as_str())
            .header(HOST, target.authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::InvalidUrl {
                url: relay.to_string(),
                why: e.to_string(),
            })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Protocol(format!("HTTP request failed: {e}")))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ClientError::Http { status });
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(format!("HTTP body: {e}")))?
            .to_bytes();
        #[derive(serde::Deserialize)]
        struct Exists {
            exists: bool,
        }
        let parsed: Exists = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("exists answer: {e}")))?;
        Ok(parsed.exists)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout {
            what: "the relay's room look-up".to_owned(),
            after: timeout,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls() {
        let h = "ab".repeat(32);
        for given in [
            "ws://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "127.0.0.1:8080",
        ] {
            let r = RelayUrl::parse(given).unwrap();
            assert_eq!(
                r.room_socket(&h),
                format!("ws://127.0.0.1:8080/room/{h}/ws")
            );
        }
        let r = RelayUrl::parse("ws://relay.example/stelgano/").unwrap();
        assert_eq!(
            r.exists_url("x"),
            "ws://relay.example/stelgano/api/room/x/exists"
        );
        let r = RelayUrl::parse("https://relay.example/").unwrap();
        assert_eq!(r.room_socket("x"), "wss://relay.example/room/x/ws");
        assert!(RelayUrl::parse("ws://relay.example/?a=b").is_err());
    }
}
