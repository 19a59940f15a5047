//! Where the load goes: a `ws://` base URL that must be on loopback, and the local source
//! addresses the client sockets are spread over.
//!
//! Every connection this tool makes targets 127.0.0.0/8 or ::1: the bench is for measuring a relay
//! on the same box, never for sending load anywhere else.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::BenchError;

/// A relay (or echo server) to connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `ws://HOST:PORT` (an optional trailing `/` is allowed; a path is not, since the bench
    /// builds room paths itself). HOST is a loopback IP or `localhost`.
    pub fn parse(url: &str) -> Result<Target, BenchError> {
        let bad = |why| BenchError::Target {
            url: url.to_owned(),
            why,
        };
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| bad("only ws:// URLs are supported"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(bad("give the base URL without a path"));
        }
        let addr = if let Some(port) = authority.strip_prefix("localhost:") {
            let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        } else {
            authority
                .parse::<SocketAddr>()
                .map_err(|_| bad("expected HOST:PORT with a numeric IP"))?
        };
        if !addr.ip().is_loopback() {
            return Err(bad("the bench only targets loopback (127.0.0.0/8 or ::1)"));
        }
        Ok(Target { addr })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        self.addr.to_string()
    }
}

/// Local addresses client sockets bind to before connecting, used round-robin so that large runs
/// do not exhaust one address's ephemeral ports (connections that just closed sit in TIME_WAIT).
#[derive(Debug, Clone)]
pub struct Sources {
    ips: Vec<IpAddr>,
}

impl Sources {
    /// `count` addresses 127.0.0.1 ..= 127.0.0.count for an IPv4 target; just ::1 for IPv6.
    pub fn new(target: &Target, count: u8) -> Sources {
        let ips = match target.addr {
            SocketAddr::V4(_) => (1..=count.max(1))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect(),
            SocketAddr::V6(_) => vec![target.addr.ip()],
        };
        Sources { ips }
    }

    /// The source address for the `n`th socket.
    pub fn pick(&self, n: usize) -> IpAddr {
        self.ips[n % self.ips.len()]
    }

    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_only() {
        assert_eq!(
            Target::parse("ws://127.0.0.1:8080").unwrap().addr,
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            Target::parse("ws://127.9.0.3:1/").unwrap().addr,
            "127.9.0.3:1".parse().unwrap()
        );
        assert_eq!(
            Target::parse("ws://localhost:9").unwrap().addr,
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(Target::parse("ws://[::1]:80").is_ok());
        for bad in [
            "ws://10.0.0.1:80",
            "ws://192.168.1.1:80",
            "ws://8.8.8.8:80",
            "wss://127.0.0.1:80",
            "http://127.0.0.1:80",
            "ws://127.0.0.1:80/room",
            "ws://example.com:80",
            "ws://127.0.0.1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_rotate_over_loopback_addresses() {
        let t = Target::parse("ws://127.0.0.1:8080").unwrap();
        let s = Sources::new(&t, 3);
        let picked: Vec<String> = (0..4).map(|n| s.pick(n).to_string()).collect();
        assert_eq!(picked, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        assert_eq!(Sources::new(&t, 0).len(), 1);
        let t6 = Target::parse("ws://[::1]:8080").unwrap();
        assert_eq!(Sources::new(&t6, 8).pick(5).to_string(), "::1");
    }
}
