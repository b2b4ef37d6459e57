//! Verifying webhooks signed per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>): each request carries `webhook-id`,
//! `webhook-timestamp` (seconds since the epoch) and `webhook-signature`, a space-separated
//! list of `v1,<base64>` signatures, one of which must be the base64 of
//! HMAC-SHA256(key, `{id}.{timestamp}.{body}`), where the key is the base64 after the
//! `whsec_` of the endpoint's secret. Timestamps more than five minutes away from now are
//! refused, so a captured request cannot be replayed later.
//!
//! ```
//! use m365_sync_sdk::webhooks::Webhook;
//!
//! let webhook = Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let body = br#"{"test": 2432232314}"#;
//! let signature = webhook.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! assert!(webhook
//!     .verify_at("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &signature, body, 1614265330)
//!     .is_ok());
//! ```

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a webhook's timestamp may be from now, in seconds (either way).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// What the secret of an endpoint starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a webhook is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The secret is not `whsec_` (optional) followed by base64.
    InvalidSecret,
    /// A header is missing (`webhook-id`, `webhook-timestamp` or `webhook-signature`).
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    InvalidTimestamp,
    /// The timestamp is more than five minutes in the past.
    TooOld,
    /// The timestamp is more than five minutes in the future.
    TooNew,
    /// No `v1` signature matches.
    NoMatchingSignature,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidSecret => f.write_str("the webhook secret is not `whsec_` + base64"),
            Self::MissingHeader(name) => write!(f, "the `{name}` header is missing"),
            Self::InvalidTimestamp => f.write_str("`webhook-timestamp` is not a number"),
            Self::TooOld => f.write_str("the webhook's timestamp is too old"),
            Self::TooNew => f.write_str("the webhook's timestamp is too far in the future"),
            Self::NoMatchingSignature => f.write_str("no signature matches"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The verifier of one endpoint's secret.
#[derive(Clone)]
pub struct Webhook {
    key: Vec<u8>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook([REDACTED])")
    }
}

impl Webhook {
    /// A verifier of `secret` (`whsec_` + base64; the prefix may be left out).
    ///
    /// # Errors
    /// [`VerifyError::InvalidSecret`] when what follows the prefix is not base64 of a key.
    pub fn new(secret: &str) -> Result<Self, VerifyError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| VerifyError::InvalidSecret)?;
        if key.is_empty() {
            return Err(VerifyError::InvalidSecret);
        }
        Ok(Self { key })
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this never fails.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value (`v1,<base64>`) of a message: what a sender sends.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Verifies a webhook's headers and raw body (the bytes received, before any parsing)
    /// against the current time.
    ///
    /// # Errors
    /// See [`VerifyError`].
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.verify_at(id, timestamp, signatures, body, now)
    }

    /// [`Webhook::verify`] as if now were `now` (seconds since the epoch).
    ///
    /// # Errors
    /// See [`VerifyError`].
    pub fn verify_at(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let sent: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::InvalidTimestamp)?;
        if sent < now.saturating_sub(TOLERANCE_SECONDS) {
            return Err(VerifyError::TooOld);
        }
        if sent > now.saturating_add(TOLERANCE_SECONDS) {
            return Err(VerifyError::TooNew);
        }
        let expected = self.mac(id, timestamp.trim(), body);
        let matches = signatures
            .split(' ')
            .filter_map(|candidate| candidate.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            // `verify_slice` compares in constant time.
            .any(|tag| expected.clone().verify_slice(&tag).is_ok());
        if matches {
            Ok(())
        } else {
            Err(VerifyError::NoMatchingSignature)
        }
    }

    /// Verifies a webhook from its request headers (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) and raw body.
    ///
    /// # Errors
    /// See [`VerifyError`].
    pub fn verify_headers(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let get = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(VerifyError::MissingHeader(name))
        };
        self.verify(
            get("webhook-id")?,
            get("webhook-timestamp")?,
            get("webhook-signature")?,
            body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference vector of the Standard Webhooks libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn webhook() -> Webhook {
        Webhook::new(SECRET).unwrap()
    }

    #[test]
    fn signs_the_reference_vector() {
        assert_eq!(webhook().sign(ID, TIMESTAMP, BODY), SIGNATURE);
        let bare = Webhook::new(SECRET.trim_start_matches("whsec_")).unwrap();
        assert_eq!(bare.sign(ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn accepts_the_reference_vector_among_other_signatures() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            webhook().verify_at(ID, &ts, SIGNATURE, BODY, TIMESTAMP),
            Ok(())
        );
        let several = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,{} {SIGNATURE}",
            &SIGNATURE[3..]
        );
        assert_eq!(
            webhook().verify_at(ID, &ts, &several, BODY, TIMESTAMP + 299),
            Ok(())
        );
    }

    #[test]
    fn refuses_tampering_stale_or_future_timestamps_and_bad_input() {
        let ts = TIMESTAMP.to_string();
        let w = webhook();
        let refused = |id: &str, ts: &str, sig: &str, body: &[u8], now: i64| {
            w.verify_at(id, ts, sig, body, now).unwrap_err()
        };
        assert_eq!(
            refused(ID, &ts, SIGNATURE, br#"{"test": 2432232315}"#, TIMESTAMP),
            VerifyError::NoMatchingSignature
        );
        assert_eq!(
            refused("msg_other", &ts, SIGNATURE, BODY, TIMESTAMP),
            VerifyError::NoMatchingSignature
        );
        assert_eq!(
            refused(ID, &ts, &SIGNATURE.replace("v1,", "v2,"), BODY, TIMESTAMP),
            VerifyError::NoMatchingSignature
        );
        assert_eq!(
            refused(ID, &ts, &SIGNATURE[..8], BODY, TIMESTAMP),
            VerifyError::NoMatchingSignature
        );
        assert_eq!(
            refused(ID, &ts, "v1,", BODY, TIMESTAMP),
            VerifyError::NoMatchingSignature
        );
        assert_eq!(
            refused(ID, &ts, SIGNATURE, BODY, TIMESTAMP + 301),
            VerifyError::TooOld
        );
        assert_eq!(
            refused(ID, &ts, SIGNATURE, BODY, TIMESTAMP - 301),
            VerifyError::TooNew
        );
        assert_eq!(
            refused(ID, "hello", SIGNATURE, BODY, TIMESTAMP),
            VerifyError::InvalidTimestamp
        );
        assert_eq!(
            Webhook::new("whsec_!!").unwrap_err(),
            VerifyError::InvalidSecret
        );
        assert_eq!(Webhook::new("").unwrap_err(), VerifyError::InvalidSecret);
    }

    #[test]
    fn reads_the_three_headers() {
        let w = webhook();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("webhook-id", ID.parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        assert_eq!(
            w.verify_headers(&headers, BODY),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
        headers.insert("webhook-signature", w.sign(ID, now, BODY).parse().unwrap());
        assert_eq!(w.verify_headers(&headers, BODY), Ok(()));
    }
}
