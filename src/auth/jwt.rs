//! The API's access tokens: HS256 JWTs with expiry, issuer and audience checked and the
//! algorithm pinned (a token claiming another algorithm is refused).

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `iss` of every token this service issues.
pub const ISSUER: &str = "m365-sync";
/// `aud` of every token this service issues.
pub const AUDIENCE: &str = "m365-sync-api";

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
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
        validation.leeway = 30;
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

    /// Issues a token for `user_id`.
    ///
    /// # Errors
    /// Only if signing fails.
    pub fn issue(&self, user_id: Uuid) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iat: now,
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
    /// When the signature, algorithm, expiry, issuer or audience is wrong.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|t| t.claims)
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
        assert_eq!(keys.verify(&keys.issue(id).unwrap()).unwrap().sub, id);
    }

    #[test]
    fn tokens_with_another_key_algorithm_issuer_or_expired_are_refused() {
        let keys = keys();
        let other = JwtKeys::new(
            &SecretString::from("another-secret-another-secret-xx".to_owned()),
            60,
        );
        assert!(keys.verify(&other.issue(Uuid::now_v7()).unwrap()).is_err());

        let now = Utc::now().timestamp();
        let claims = |iss: &str, exp: i64| Claims {
            sub: Uuid::now_v7(),
            iat: now,
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
    }
}
