//! Per-IP admission limits: rates of WebSocket upgrades, `exists` look-ups and room creations
//! (governor), and the number of WebSockets open at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The per-IP limiters; `None` where the operator set the limit to 0 (unlimited). Look-ups have
/// the upgrades' quota but their own buckets, so a client's look-up before it connects does not
/// eat into its connections.
#[derive(Debug)]
pub(crate) struct Limiters {
    upgrades: Option<DefaultKeyedRateLimiter<IpAddr>>,
    lookups: Option<DefaultKeyedRateLimiter<IpAddr>>,
    creates: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    sockets: Arc<OpenSockets>,
}

/// Open WebSockets per IP bucket. Only buckets with a socket open have an entry, so the map is
/// bounded by the connection cap, not by how many clients ever came.
#[derive(Debug, Default)]
struct OpenSockets(Mutex<HashMap<IpAddr, usize>>);

impl OpenSockets {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map holds plain counts: a panic elsewhere cannot leave one half-written.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One open WebSocket's place in its IP's count, given back when dropped: however the socket
/// ends (closed, reaped, failed handshake, a panicking task), the count cannot leak.
#[derive(Debug)]
#[must_use = "the place is given back as soon as the slot is dropped"]
pub(crate) struct SocketSlot(Option<(Arc<OpenSockets>, IpAddr)>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let Some((sockets, key)) = self.0.take() else {
            return;
        };
        let mut map = sockets.lock();
        if let Some(n) = map.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&key);
            }
        }
    }
}

fn per_minute(n: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// IPv6 clients usually hold a whole /64, so they are limited per /64, not per address;
/// IPv4-mapped IPv6 addresses count as the IPv4 address they are.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

impl Limiters {
    pub(crate) fn new(upgrades_per_min: u32, creates_per_min: u32) -> Self {
        Limiters {
            upgrades: per_minute(upgrades_per_min),
            lookups: per_minute(upgrades_per_min),
            creates: per_minute(creates_per_min),
            clock: DefaultClock::default(),
            sockets: Arc::default(),
        }
    }

    /// Takes a place for one more open WebSocket from `ip`, or `None` when it already has `max`
    /// open (0 = unlimited, nothing counted). Counted per bucket like the rates, so an IPv6
    /// client cannot step around the cap by using more addresses of its /64.
    pub(crate) fn open_socket(&self, ip: IpAddr, max: usize) -> Option<SocketSlot> {
        if max == 0 {
            return Some(SocketSlot(None));
        }
        let key = bucket(ip);
        let mut map = self.sockets.lock();
        let n = map.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SocketSlot(Some((self.sockets.clone(), key))))
    }

    /// How many IP buckets have a socket open.
    #[cfg(test)]
    fn socket_buckets(&self) -> usize {
        self.sockets.lock().len()
    }

    /// `Err(wait)` when `ip` has used its upgrades for now.
    pub(crate) fn allow_upgrade(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check(&self.upgrades, ip)
    }

    /// `Err(wait)` when `ip` has used its `exists` look-ups for now.
    pub(crate) fn allow_lookup(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check(&self.lookups, ip)
    }

    fn check(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<IpAddr>>,
        ip: IpAddr,
    ) -> Result<(), Duration> {
        match limiter {
            None => Ok(()),
            Some(l) => l
                .check_key(&bucket(ip))
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Counts one room creation or seat claim for `ip`.
    pub(crate) fn allow_create(&self, ip: IpAddr) -> bool {
        self.creates
            .as_ref()
            .is_none_or(|l| l.check_key(&bucket(ip)).is_ok())
    }

    /// Forgets IPs whose buckets are full again, so the maps do not grow with every visitor.
    pub(crate) fn prune(&self) {
        for l in [&self.upgrades, &self.lookups, &self.creates]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_zero_means_unlimited() {
        let l = Limiters::new(2, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.allow_upgrade(a).is_ok());
        assert!(l.allow_upgrade(a).is_ok());
        let wait = l.allow_upgrade(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(l.allow_upgrade(b).is_ok());
        for _ in 0..100 {
            assert!(l.allow_create(a));
        }
    }

    #[test]
    fn open_sockets_are_capped_per_ip_and_given_back_on_drop() {
        let l = Limiters::new(0, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = l.open_socket(a, 2).unwrap();
        let second = l.open_socket(a, 2).unwrap();
        assert!(l.open_socket(a, 2).is_none());
        let other = l.open_socket(b, 2).unwrap();
        drop(first);
        let third = l.open_socket(a, 2).unwrap();
        assert!(l.open_socket(a, 2).is_none());
        assert_eq!(l.socket_buckets(), 2);
        drop((second, third, other));
        assert_eq!(
            l.socket_buckets(),
            0,
            "an IP with nothing open keeps no entry"
        );
        // 0 is unlimited and counts nothing.
        let many: Vec<_> = (0..100).map(|_| l.open_socket(a, 0).unwrap()).collect();
        assert_eq!(l.socket_buckets(), 0);
        drop(many);
        // A /64 shares one count.
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2::2".parse().unwrap();
        let _x = l.open_socket(x, 1).unwrap();
        assert!(l.open_socket(y, 1).is_none());
    }

    #[test]
    fn ipv6_is_limited_per_slash_64() {
        let x: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(bucket(x), bucket(y));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(bucket(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
