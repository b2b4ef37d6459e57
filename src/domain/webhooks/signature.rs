//! Standard Webhooks signatures (standardwebhooks.com): an endpoint's secret is `whsec_`
//! followed by the base64 of its key; a message is signed as
//! `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), and `webhook-signature`
//! carries one such signature per secret in use, separated by spaces.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes of a new secret's key.
const KEY_BYTES: usize = 32;

/// A fresh endpoint secret.
pub fn new_secret() -> String {
    format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(crate::crypto::random_bytes::<KEY_BYTES>())
    )
}

/// The HMAC key of a secret.
///
/// # Errors
/// When the secret is not `whsec_` followed by base64.
pub fn key_of(secret: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|_| anyhow::anyhow!("a webhook secret must be `whsec_` followed by base64"))
}

/// The `v1,...` signature of one message with one secret.
///
/// # Errors
/// When the secret is malformed.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> anyhow::Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_of(secret)?)
        .map_err(|_| anyhow::anyhow!("invalid webhook key"))?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header of a message: one signature per secret, space-separated.
///
/// # Errors
/// When a secret is malformed.
pub fn header(secrets: &[String], id: &str, timestamp: i64, body: &str) -> anyhow::Result<String> {
    let signatures = secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_the_specifications_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_prefixed_random_keys() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(SECRET_PREFIX));
        assert_ne!(a, b);
        assert_eq!(key_of(&a).unwrap().len(), KEY_BYTES);
        let both = header(&[a.clone(), b.clone()], "id", 1, "{}").unwrap();
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.starts_with(&sign(&a, "id", 1, "{}").unwrap()));
    }
}
