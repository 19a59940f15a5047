//! Per-IP admission limits (governor): WebSocket upgrades, `exists` look-ups, room creations.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The per-IP limiters; `None` where the operator set the limit to 0 (unlimited). Look-ups have
/// the upgrades' quota but their own buckets, so a client's look-up before it connects does not
/// eat into its connections.
#[derive(Debug)]
pub struct Limiters {
    upgrades: Option<DefaultKeyedRateLimiter<IpAddr>>,
    lookups: Option<DefaultKeyedRateLimiter<IpAddr>>,
    creates: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
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
    pub fn new(upgrades_per_min: u32, creates_per_min: u32) -> Self {
        Limiters {
            upgrades: per_minute(upgrades_per_min),
            lookups: per_minute(upgrades_per_min),
            creates: per_minute(creates_per_min),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `ip` has used its upgrades for now.
    pub fn allow_upgrade(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check(&self.upgrades, ip)
    }

    /// `Err(wait)` when `ip` has used its `exists` look-ups for now.
    pub fn allow_lookup(&self, ip: IpAddr) -> Result<(), Duration> {
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
    pub fn allow_create(&self, ip: IpAddr) -> bool {
        self.creates
            .as_ref()
            .is_none_or(|l| l.check_key(&bucket(ip)).is_ok())
    }

    /// Forgets IPs whose buckets are full again, so the maps do not grow with every visitor.
    pub fn prune(&self) {
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
    fn ipv6_is_limited_per_slash_64() {
        let x: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(bucket(x), bucket(y));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(bucket(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
