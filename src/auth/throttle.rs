//! Brute-force protection: failed sign-ins counted per account and per client address over a
//! sliding window, e-mail conflicts outside an org admin's organization counted per caller, and
//! a semaphore that bounds how many passwords are hashed or verified at once, so that a flood
//! of sign-ins cannot take the CPU from the rest of the API.
//!
//! The counters live in this process: with several server processes, each keeps its own, so
//! an attacker spread over `n` processes gets up to `n` times the configured attempts.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{config::Settings, error::ApiError};

/// Most keys one counter holds; past it, expired keys are dropped and new keys are not counted
/// until there is room again (the per-address counter still bounds each address).
const MAX_KEYS: usize = 100_000;

/// Failures per key over a sliding window; a key with `limit` failures in the window is
/// refused until the oldest of them leaves it.
#[derive(Debug)]
pub struct FailureCounter<K> {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> FailureCounter<K> {
    /// A counter allowing `limit` failures per `window`; a limit of 0 counts nothing.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `key` must wait, if it has used up its failures.
    pub fn retry_after(&self, key: &K) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let now = Instant::now();
        let mut failures = self.lock();
        let times = failures.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.is_empty() {
            failures.remove(key);
            return None;
        }
        (times.len() >= self.limit)
            .then(|| {
                times
                    .front()
                    .map(|t| self.window.saturating_sub(now.duration_since(*t)))
            })
            .flatten()
    }

    /// Counts a failure of `key`.
    pub fn record(&self, key: &K) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= MAX_KEYS && !failures.contains_key(key) {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
            if failures.len() >= MAX_KEYS {
                return;
            }
        }
        let times = failures.entry(key.clone()).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// The key of a client address: the address itself for IPv4, its /64 network for IPv6 (what
/// one client usually holds).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The address of the client that sent `req`: the TCP peer, unless the peer is one of the
/// `trusted` proxies; then the rightmost address of `X-Forwarded-For` that is not a trusted
/// proxy (addresses left of it could be anything the client wrote).
pub fn client_address(req: &actix_web::HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()))
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let mut client = peer;
    for address in forwarded.into_iter().rev() {
        client = address;
        if !trusted.contains(&address) {
            break;
        }
    }
    Some(client)
}

/// 429 `too_many_attempts`, to retry after `wait`.
pub fn too_many_attempts(wait: Duration, detail: &str) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        detail: detail.to_owned(),
    }
}

/// The brute-force guards of one process.
#[derive(Debug)]
pub struct Guards {
    /// Failed sign-ins by normalised e-mail (known or not, so that a 429 tells nothing).
    pub accounts: FailureCounter<String>,
    /// Failed sign-ins by client address.
    pub addresses: FailureCounter<IpAddr>,
    /// E-mail conflicts outside the caller's organization, by caller.
    pub email_probes: FailureCounter<Uuid>,
    /// Bounds the passwords hashed or verified at once.
    pub hashing: Semaphore,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Guards {
    /// The guards `settings` configure.
    pub fn new(settings: &Settings) -> Self {
        let login = &settings.login;
        let window = Duration::from_secs(login.failure_window_seconds);
        Self {
            accounts: FailureCounter::new(login.max_failures_per_account, window),
            addresses: FailureCounter::new(login.max_failures_per_address, window),
            email_probes: FailureCounter::new(
                login.email_probe_limit,
                Duration::from_secs(login.email_probe_window_seconds),
            ),
            hashing: Semaphore::new(login.password_hashing_concurrency),
            trusted_proxies: login.trusted_proxies.clone(),
        }
    }

    /// The client address of `req` (see [`client_address`]).
    pub fn address_of(&self, req: &actix_web::HttpRequest) -> Option<IpAddr> {
        client_address(req, &self.trusted_proxies)
    }

    /// Refuses a sign-in (or a check of the current password) while the account or the
    /// address has used up its failures.
    ///
    /// # Errors
    /// 429 `too_many_attempts` with the wait.
    pub fn check_sign_in(&self, email: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let account = self.accounts.retry_after(&email.to_owned());
        let address = address.and_then(|a| self.addresses.retry_after(&address_key(a)));
        match account.into_iter().chain(address).max() {
            Some(wait) => Err(too_many_attempts(
                wait,
                "Too many failed sign-ins for this account or from this address; try again later.",
            )),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in.
    pub fn sign_in_failed(&self, email: &str, address: Option<IpAddr>) {
        self.accounts.record(&email.to_owned());
        if let Some(address) = address {
            self.addresses.record(&address_key(address));
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn sign_in_succeeded(&self, email: &str) {
        self.accounts.clear(&email.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_limit_until_the_window_passes() {
        let counter = FailureCounter::new(2, Duration::from_millis(200));
        let key = "a".to_owned();
        counter.record(&key);
        assert!(counter.retry_after(&key).is_none());
        counter.record(&key);
        let wait = counter.retry_after(&key).unwrap();
        assert!(wait <= Duration::from_millis(200));
        assert!(counter.retry_after(&"b".to_owned()).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(counter.retry_after(&key).is_none());
        counter.record(&key);
        counter.clear(&key);
        counter.record(&key);
        assert!(counter.retry_after(&key).is_none());
    }

    #[test]
    fn ipv6_addresses_count_by_network() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
