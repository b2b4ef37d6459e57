//! Password hashing with Argon2id (PHC strings).

use anyhow::anyhow;
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

/// Hashes a password with Argon2id and a random salt.
///
/// # Errors
/// Only if the system's random generator fails.
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow!("Failed to hash a password: {e}"))
}

/// Whether `password` matches the stored PHC `hash`. A malformed hash never matches.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified against when the e-mail is unknown, so that the
/// response time does not tell whether an account exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash(&crate::crypto::random_key_base64()).unwrap_or_else(|_| String::from("invalid"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = super::hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &hash));
        assert!(!super::verify("wrong horse", &hash));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
