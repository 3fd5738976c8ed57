//! The per-IP handshake rate limit (`handshake_rate_per_ip`, `handshake_burst_per_ip`): a token
//! bucket per client address, in a bounded table touched once per upgrade request.
//!
//! The table is split into shards (a short lock on one shard per request) of at most
//! `handshake_rate_max_ips / SHARDS` addresses each. When a shard is full, it first drops the
//! addresses whose bucket has refilled (they are no different from an address never seen;
//! looked for at most once a second per shard), and otherwise one address picked at random,
//! which starts again with a full bucket: memory stays bounded whatever the number of
//! addresses, at the price of leniency towards an attacker who controls more addresses than
//! the table holds.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

/// Shards of the table.
const SHARDS: usize = 16;

/// Shortest time between two sweeps of one shard for refilled buckets.
const SWEEP_EVERY_MS: u64 = 1000;

/// One address's bucket.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// One shard of the table: its buckets, when it was last swept, how many it evicted.
#[derive(Default)]
struct Shard {
    buckets: IndexMap<IpAddr, Bucket>,
    last_sweep_ms: u64,
    evictions: u64,
}

/// Token buckets per client address, shared by every core.
pub(crate) struct HandshakeRate {
    per_ms: f64,
    burst: f64,
    per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    started: Instant,
}

impl HandshakeRate {
    /// `per_second` upgrades per address on average, up to `burst` at once, for at most
    /// `max_ips` addresses at a time.
    pub fn new(per_second: f64, burst: u32, max_ips: usize) -> HandshakeRate {
        HandshakeRate {
            per_ms: per_second / 1000.0,
            burst: f64::from(burst.max(1)),
            per_shard: max_ips.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            started: Instant::now(),
        }
    }

    /// Takes one token from `ip`'s bucket; when it is empty, how long until one is back.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take_at(ip, self.started.elapsed().as_millis() as u64)
    }

    fn take_at(&self, ip: IpAddr, now_ms: u64) -> Result<(), Duration> {
        let shard = &self.shards[self.hasher.hash_one(ip) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = shard.buckets.get_mut(&ip) {
            let tokens = (bucket.tokens + now_ms.saturating_sub(bucket.at_ms) as f64 * self.per_ms).min(self.burst);
            *bucket = Bucket {
                tokens,
                at_ms: now_ms.max(bucket.at_ms),
            };
            if tokens < 1.0 {
                // Less a rounding error, so that 0.998 tokens at 2 per ms is 1 ms away, not 2.
                let wait_ms = ((1.0 - tokens) / self.per_ms - 1e-6).ceil();
                return Err(Duration::from_millis(wait_ms.max(1.0) as u64));
            }
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if shard.buckets.len() >= self.per_shard {
            self.make_room(&mut shard, now_ms);
        }
        let fresh = Bucket {
            tokens: self.burst - 1.0,
            at_ms: now_ms,
        };
        shard.buckets.insert(ip, fresh);
        Ok(())
    }

    /// Frees at least one entry of a full shard (see the module documentation).
    fn make_room(&self, shard: &mut Shard, now_ms: u64) {
        if now_ms.saturating_sub(shard.last_sweep_ms) >= SWEEP_EVERY_MS {
            shard.last_sweep_ms = now_ms;
            let (per_ms, burst) = (self.per_ms, self.burst);
            shard
                .buckets
                .retain(|_, b| b.tokens + now_ms.saturating_sub(b.at_ms) as f64 * per_ms < burst);
        }
        if shard.buckets.len() >= self.per_shard {
            shard.evictions += 1;
            let victim = self.hasher.hash_one(shard.evictions) as usize % shard.buckets.len();
            shard.buckets.swap_remove_index(victim);
        }
    }

    /// Addresses held (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().buckets.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_burst_then_the_rate_and_a_retry_time() {
        let rate = HandshakeRate::new(2.0, 3, 1000);
        for _ in 0..3 {
            assert_eq!(rate.take_at(ip(1), 0), Ok(()));
        }
        assert_eq!(rate.take_at(ip(1), 0), Err(Duration::from_millis(500)));
        assert_eq!(rate.take_at(ip(2), 0), Ok(()), "another address has its own bucket");
        assert_eq!(rate.take_at(ip(1), 499), Err(Duration::from_millis(1)));
        assert_eq!(rate.take_at(ip(1), 500), Ok(()));
        assert!(rate.take_at(ip(1), 500).is_err());
        // Idle long enough, the bucket is full again, but never above the burst.
        for _ in 0..3 {
            assert_eq!(rate.take_at(ip(1), 60_000), Ok(()));
        }
        assert!(rate.take_at(ip(1), 60_000).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_evicts_refilled_buckets_first() {
        let rate = HandshakeRate::new(1.0, 1, 64);
        for n in 0..10_000 {
            let _ = rate.take_at(ip(n), 0);
        }
        assert!(rate.held() <= 64, "{} addresses held", rate.held());
        // A full shard drops the refilled buckets, not the one still being drained.
        let rate = HandshakeRate::new(1.0, 1, SHARDS * 2);
        let mut shard = Shard::default();
        shard.buckets.insert(ip(1), Bucket { tokens: 0.0, at_ms: 0 });
        shard.buckets.insert(
            ip(2),
            Bucket {
                tokens: 0.0,
                at_ms: 4_500,
            },
        );
        rate.make_room(&mut shard, 5_000);
        assert_eq!(shard.buckets.keys().copied().collect::<Vec<_>>(), [ip(2)]);
        // With nothing refilled, one entry goes anyway.
        shard.buckets.insert(
            ip(3),
            Bucket {
                tokens: 0.0,
                at_ms: 5_000,
            },
        );
        rate.make_room(&mut shard, 5_100);
        assert_eq!(shard.buckets.len(), 1);
    }
}
