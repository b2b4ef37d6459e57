//! The API's access tokens: HS256 JWTs with expiry, issuer and audience checked and the
//! algorithm pinned (a token claiming another algorithm is refused). `nbf` and `iat` may not
//! lie in the future beyond a small leeway, and a token may not live longer than the configured
//! lifetime. Each token carries its user's token generation (`gen`), which the extractor
//! compares with the user's current one: raising it revokes every token issued before.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `iss` of every token this service issues.
pub const ISSUER: &str = "m365-sync";
/// `aud` of every token this service issues.
pub const AUDIENCE: &str = "m365-sync-api";

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Why a token is refused beyond what [`jsonwebtoken`] checks.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signature, algorithm, expiry, `nbf`, issuer, audience or shape.
    #[error(transparent)]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// Issued in the future, or living longer than this service issues tokens for.
    #[error("the token's issue time or lifetime is not one this service issues")]
    Lifetime,
}

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch (the issue time in tokens this service issues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The user's token generation when the token was issued (0 in tokens issued before
    /// generations existed).
    #[serde(default, rename = "gen")]
    pub generation: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_seconds: u64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys from the configured secret; tokens live `ttl_seconds`.
    pub fn new(secret: &SecretString, ttl_seconds: u64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl_seconds,
        }
    }

    /// Lifetime of new tokens, in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// Issues a token for `user_id` of token generation `generation`.
    ///
    /// # Errors
    /// Only if signing fails.
    pub fn issue(&self, user_id: Uuid, generation: i64) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iat: now,
            nbf: Some(now),
            generation,
            exp: now + i64::try_from(self.ttl_seconds).unwrap_or(i64::MAX / 2),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies a token and returns its claims.
    ///
    /// # Errors
    /// When the signature, algorithm, expiry, `nbf`, issuer or audience is wrong, when it was
    /// issued in the future, or when it lives longer than the configured lifetime.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        let leeway = LEEWAY_SECONDS as i64;
        let ttl = i64::try_from(self.ttl_seconds).unwrap_or(i64::MAX / 2);
        let now = Utc::now().timestamp();
        if claims.iat > now + leeway || claims.exp.saturating_sub(claims.iat) > ttl + leeway {
            return Err(TokenError::Lifetime);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            &SecretString::from("0123456789abcdef0123456789abcdef".to_owned()),
            60,
        )
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = keys();
        let id = Uuid::now_v7();
        assert_eq!(keys.verify(&keys.issue(id, 3).unwrap()).unwrap().sub, id);
    }

    #[test]
    fn tokens_with_another_key_algorithm_issuer_or_expired_are_refused() {
        let keys = keys();
        let other = JwtKeys::new(
            &SecretString::from("another-secret-another-secret-xx".to_owned()),
            60,
        );
        assert!(
            keys.verify(&other.issue(Uuid::now_v7(), 0).unwrap())
                .is_err()
        );

        let now = Utc::now().timestamp();
        let claims = |iss: &str, exp: i64| Claims {
            sub: Uuid::now_v7(),
            iat: now,
            nbf: None,
            generation: 0,
            exp,
            iss: iss.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        let secret = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims(ISSUER, now + 60),
            &secret,
        )
        .unwrap();
        assert!(keys.verify(&hs384).is_err(), "algorithm is pinned");
        let wrong_iss = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims("x", now + 60),
            &secret,
        )
        .unwrap();
        assert!(keys.verify(&wrong_iss).is_err(), "issuer is checked");
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(ISSUER, now - 120),
            &secret,
        )
        .unwrap();
        assert!(keys.verify(&expired).is_err(), "expiry is checked");
        let sign = |claims: &Claims| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &secret).unwrap()
        };
        let mut future = claims(ISSUER, now + 600);
        future.iat = now + 300;
        assert!(keys.verify(&sign(&future)).is_err(), "iat in the future");
        let mut not_yet = claims(ISSUER, now + 60);
        not_yet.nbf = Some(now + 300);
        assert!(keys.verify(&sign(&not_yet)).is_err(), "nbf in the future");
        let long = claims(ISSUER, now + 86_400);
        assert!(
            keys.verify(&sign(&long)).is_err(),
            "lifetime beyond the configured one"
        );
        assert!(keys.verify(&sign(&claims(ISSUER, now + 60))).is_ok());
    }
}
