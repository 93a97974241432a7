//! A token bucket and the headers each provider reports it with. Every request takes a token
//! before the provider's handler runs; an empty bucket answers 429. Providers differ only in the
//! headers ([`HeaderStyle`]), so the bucket is written once.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a provider reports its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderStyle {
    /// Hetzner: `RateLimit-Limit`, `RateLimit-Remaining`, and `RateLimit-Reset`, the unix time
    /// at which the bucket is full again, on every answer.
    Hetzner,
    /// DigitalOcean: `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (unix time of
    /// the next free request) on every answer, and `retry-after` (seconds) on a 429.
    DigitalOcean,
    /// Scaleway: no rate headers at all, not even on a 429.
    None,
}

/// A token bucket: `limit` tokens, refilled at `refill_per_sec`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    style: HeaderStyle,
    limit: u32,
    refill: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket of `limit` tokens refilled at `refill_per_sec` (0: never refilled).
    pub fn new(style: HeaderStyle, limit: u32, refill_per_sec: f64) -> RateLimit {
        RateLimit {
            style,
            limit,
            refill: refill_per_sec,
            tokens: f64::from(limit),
            last: Instant::now(),
        }
    }

    /// Resizes the bucket and sets its fill, for tests that want it nearly empty.
    pub fn set(&mut self, limit: u32, refill_per_sec: f64, remaining: u32) {
        *self = RateLimit {
            tokens: f64::from(remaining),
            ..RateLimit::new(self.style, limit, refill_per_sec)
        };
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.refill > 0.0 {
            self.tokens = (self.tokens + dt * self.refill).min(f64::from(self.limit));
        }
    }

    /// Takes a token; `false` when the bucket is empty (the request is answered 429).
    pub fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until `tokens` more are in the bucket (an hour when it never refills).
    fn secs_until(&self, tokens: f64) -> u64 {
        if tokens <= 0.0 {
            0
        } else if self.refill > 0.0 {
            (tokens / self.refill).ceil() as u64
        } else {
            3600
        }
    }

    /// The headers of an answer; `limited` says whether it is a 429.
    pub fn headers(&mut self, limited: bool) -> Vec<(&'static str, String)> {
        self.refill();
        let remaining = self.tokens.floor().max(0.0) as u64;
        let now = unix_now();
        match self.style {
            HeaderStyle::None => vec![],
            HeaderStyle::Hetzner => {
                let full = self.secs_until(f64::from(self.limit) - self.tokens);
                vec![
                    ("RateLimit-Limit", self.limit.to_string()),
                    ("RateLimit-Remaining", remaining.to_string()),
                    ("RateLimit-Reset", (now + full).to_string()),
                ]
            }
            HeaderStyle::DigitalOcean => {
                let next = self.secs_until(1.0 - self.tokens);
                let mut h = vec![
                    ("ratelimit-limit", self.limit.to_string()),
                    ("ratelimit-remaining", remaining.to_string()),
                    ("ratelimit-reset", (now + next).to_string()),
                ];
                if limited {
                    h.push(("retry-after", next.max(1).to_string()));
                }
                h
            }
        }
    }
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a [(&str, String)], k: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn hetzner_reports_when_the_bucket_is_full() {
        let mut b = RateLimit::new(HeaderStyle::Hetzner, 10, 1.0);
        assert!(b.take());
        let h = b.headers(false);
        assert_eq!(get(&h, "RateLimit-Limit"), Some("10"));
        assert_eq!(get(&h, "RateLimit-Remaining"), Some("9"));
        let reset: u64 = get(&h, "RateLimit-Reset").unwrap().parse().unwrap();
        assert!((unix_now()..=unix_now() + 2).contains(&reset), "{reset}");
    }

    #[test]
    fn digitalocean_says_retry_after_on_a_429_only() {
        let mut b = RateLimit::new(HeaderStyle::DigitalOcean, 2, 0.5);
        assert!(b.take() && b.take() && !b.take());
        let ok = b.headers(false);
        assert_eq!(get(&ok, "ratelimit-remaining"), Some("0"));
        assert_eq!(get(&ok, "retry-after"), None);
        let limited = b.headers(true);
        assert_eq!(get(&limited, "retry-after"), Some("2"));
        let reset: u64 = get(&limited, "ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > unix_now());
    }

    #[test]
    fn scaleway_sends_nothing_and_a_zero_refill_stays_empty() {
        let mut b = RateLimit::new(HeaderStyle::None, 1, 0.0);
        assert!(b.take() && !b.take());
        assert!(b.headers(true).is_empty());
        b.set(5, 1000.0, 0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(b.take());
    }
}
