//! nginx's consistent-hash ring (`hash $room consistent;` in an upstream block), reproduced so
//! that the relay's tooling knows which node nginx sends each room to.
//!
//! What nginx 1.22 does (`ngx_http_upstream_hash_module.c`), as this module repeats it:
//! - Each server of the upstream block, in the order written, is split into host and port at
//!   its last `:` when only digits follow it (`unix:` paths have no port). It gets 160 points
//!   per unit of weight; point `j` is the CRC32 of `host ‖ NUL ‖ port ‖ p` where `p` is the
//!   previous point of that server as 4 little-endian bytes (zero for the first).
//! - All points are sorted by value and equal values collapse to the first one. glibc's qsort,
//!   which nginx calls, merge-sorts here and so keeps config order among equals; so does the
//!   stable sort below.
//! - A request's key is hashed with CRC32; its point is the first one at or above that value,
//!   wrapping to the first point past the top. The server of that point gets the request.
//!
//! nginx then skips a server that is marked failed and walks on to the next point, which would
//! re-route a room to a node without its record. The deployment in docs/SCALING.md turns that
//! off (`max_fails=0`, `proxy_next_upstream off`), so the first choice is the only one and this
//! ring is the whole story. Only weight 1 and literal `address:port` servers are supported: a
//! name resolving to several addresses shares its points among them round-robin.

use crate::RelayError;

/// Points per server (per unit of weight) in nginx's ring.
const POINTS_PER_SERVER: u32 = 160;

/// Upper bound on the servers of one ring: far more than a deployment of this relay needs, and
/// it keeps a mistyped list from costing much.
pub const MAX_SERVERS: usize = 1024;

/// The ring for one list of upstream servers.
#[derive(Debug, Clone)]
pub struct Ring {
    servers: Vec<String>,
    /// (point, index into `servers`), sorted by point, points unique.
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// The ring nginx builds for these servers, written exactly as in the upstream block
    /// (`127.0.0.2:8080`), in the same order.
    pub fn new<S: AsRef<str>>(servers: &[S]) -> Result<Ring, RelayError> {
        if servers.is_empty() {
            return Err(RelayError::Nodes("the node list is empty".into()));
        }
        if servers.len() > MAX_SERVERS {
            return Err(RelayError::Nodes(format!(
                "at most {MAX_SERVERS} nodes are supported"
            )));
        }
        let servers: Vec<String> = servers.iter().map(|s| s.as_ref().to_owned()).collect();
        for (i, s) in servers.iter().enumerate() {
            if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c == ',') {
                return Err(RelayError::Nodes(format!("bad node name {s:?}")));
            }
            if servers[..i].contains(s) {
                return Err(RelayError::Nodes(format!("node {s} is listed twice")));
            }
        }
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER as usize);
        for (idx, server) in servers.iter().enumerate() {
            let (host, port) = split_server(server);
            let mut base = crc32fast::Hasher::new();
            base.update(host.as_bytes());
            base.update(&[0]);
            base.update(port.as_bytes());
            let mut prev = 0u32;
            for _ in 0..POINTS_PER_SERVER {
                let mut h = base.clone();
                h.update(&prev.to_le_bytes());
                prev = h.finalize();
                points.push((prev, idx));
            }
        }
        // Stable, so among equal points the server written first comes first and is kept.
        points.sort_by_key(|&(point, _)| point);
        points.dedup_by_key(|&mut (point, _)| point);
        Ok(Ring { servers, points })
    }

    /// A comma-separated list, as the `nodes` subcommand takes it.
    pub fn parse(list: &str) -> Result<Ring, RelayError> {
        let servers: Vec<&str> = list.split(',').map(str::trim).collect();
        Ring::new(&servers)
    }

    /// The servers, in config order.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The index of `server` in the list, if it is in it.
    pub fn index_of(&self, server: &str) -> Option<usize> {
        self.servers.iter().position(|s| s == server)
    }

    /// The index of the server that gets a key whose CRC32 is `position`.
    pub fn owner(&self, position: u32) -> usize {
        let at = self.points.partition_point(|&(point, _)| point < position);
        // Past the last point the ring wraps to the first, as nginx's `hash % number` does.
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |&(_, idx)| idx)
    }

    /// The server that gets a key whose CRC32 is `position`.
    pub fn owner_name(&self, position: u32) -> &str {
        &self.servers[self.owner(position)]
    }

    /// The server nginx sends `key` to (for a room, the 64-character hex room hash).
    pub fn owner_of_key(&self, key: &str) -> &str {
        self.owner_name(crc32fast::hash(key.as_bytes()))
    }
}

/// Splits a server as nginx does for its points: `unix:` paths have no port; otherwise the part
/// after the last `:` is the port if it is all digits.
fn split_server(server: &str) -> (&str, &str) {
    if server.len() >= 5 && server[..5].eq_ignore_ascii_case("unix:") {
        return (&server[5..], "");
    }
    if let Some(colon) = server.rfind(':') {
        let port = &server[colon + 1..];
        if port.bytes().all(|b| b.is_ascii_digit()) {
            return (&server[..colon], port);
        }
    }
    (server, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_split_like_nginx() {
        assert_eq!(split_server("127.0.0.2:8080"), ("127.0.0.2", "8080"));
        assert_eq!(split_server("[::1]:80"), ("[::1]", "80"));
        assert_eq!(split_server("relay.example"), ("relay.example", ""));
        assert_eq!(split_server("UNIX:/run/r.sock"), ("/run/r.sock", ""));
        assert_eq!(split_server("a:b"), ("a:b", ""));
        // An empty port is all digits too: nginx splits it off the same way.
        assert_eq!(split_server("host:"), ("host", ""));
    }

    #[test]
    fn first_points_are_the_chained_crc32() {
        let ring = Ring::new(&["127.0.0.1:80"]).unwrap();
        let mut first = b"127.0.0.1\x0080".to_vec();
        first.extend_from_slice(&[0, 0, 0, 0]);
        let p0 = crc32fast::hash(&first);
        let mut second = b"127.0.0.1\x0080".to_vec();
        second.extend_from_slice(&p0.to_le_bytes());
        let p1 = crc32fast::hash(&second);
        assert!(ring.points.iter().any(|&(p, _)| p == p0));
        assert!(ring.points.iter().any(|&(p, _)| p == p1));
        assert_eq!(ring.points.len(), 160);
    }

    #[test]
    fn lookup_takes_the_first_point_at_or_above_and_wraps() {
        let ring = Ring::new(&["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]).unwrap();
        let (lo, lo_idx) = ring.points[0];
        let (hi, _) = *ring.points.last().unwrap();
        assert_eq!(ring.owner(lo), lo_idx);
        assert_eq!(ring.owner(0), lo_idx);
        assert_eq!(ring.owner(hi.saturating_add(1)), lo_idx);
        assert_eq!(
            ring.owner(u32::MAX),
            if hi == u32::MAX {
                ring.points.last().unwrap().1
            } else {
                lo_idx
            }
        );
        let (p5, idx5) = ring.points[5];
        assert_eq!(ring.owner(p5), idx5);
        assert_eq!(ring.owner(ring.points[4].0 + 1), idx5);
    }

    #[test]
    fn adding_a_node_moves_about_a_quarter_and_only_to_it() {
        let old = Ring::new(&["127.0.0.2:9000", "127.0.0.3:9000", "127.0.0.4:9000"]).unwrap();
        let new = Ring::new(&[
            "127.0.0.2:9000",
            "127.0.0.3:9000",
            "127.0.0.4:9000",
            "127.0.0.5:9000",
        ])
        .unwrap();
        let n = 20_000u32;
        let mut moved = 0;
        for i in 0..n {
            let pos = crc32fast::hash(&i.to_le_bytes());
            if old.owner_name(pos) != new.owner_name(pos) {
                moved += 1;
                assert_eq!(new.owner_name(pos), "127.0.0.5:9000");
            }
        }
        let share = f64::from(moved) / f64::from(n);
        assert!((0.15..0.35).contains(&share), "{share}");
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(Ring::parse("").is_err());
        assert!(Ring::parse("a:1,a:1").is_err());
        assert!(Ring::parse("a:1,,b:1").is_err());
        assert!(Ring::parse("a:1, b:1").is_ok());
        assert_eq!(Ring::parse("a:1").unwrap().owner_of_key("x"), "a:1");
    }
}
