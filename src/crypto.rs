//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per value, and random tokens.
//!
//! A stored value is `nonce || ciphertext+tag`. Each value is bound to where it is stored by
//! the associated data (for example `azure_app_settings:global:client_secret`), so a
//! ciphertext copied into another row or column does not decrypt.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, Generate, KeyInit, Payload},
};
use anyhow::{Context, anyhow, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

const NONCE_LEN: usize = 12;

/// Encrypts and decrypts secrets stored in the database.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([REDACTED])")
    }
}

impl Cipher {
    /// Builds a cipher from the base64 encoding of a 32-byte key.
    ///
    /// # Errors
    /// When the key is not base64 of exactly 32 bytes.
    pub fn from_base64_key(key: &SecretString) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(key.expose_secret().trim())
            .context("the encryption key must be base64")?;
        if bytes.len() != 32 {
            bail!("the encryption key must be 32 bytes (base64 of 32 random bytes)");
        }
        let aead = Aes256Gcm::new_from_slice(&bytes).map_err(|_| anyhow!("invalid key length"))?;
        Ok(Self { aead })
    }

    /// Encrypts `plaintext`, bound to `context`.
    ///
    /// # Errors
    /// Only if the AEAD refuses the input (never for inputs of sane size).
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
        let nonce = Nonce::generate();
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        let ciphertext = self
            .aead
            .encrypt(&nonce, payload)
            .map_err(|_| anyhow!("Failed to encrypt a secret"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a value produced by [`Cipher::encrypt`] with the same `context`.
    ///
    /// # Errors
    /// When the value was tampered with, was encrypted under another key or context, or is
    /// too short.
    pub fn decrypt(&self, stored: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
        if stored.len() < NONCE_LEN {
            bail!("encrypted value is too short");
        }
        let (nonce, ciphertext) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| anyhow!("bad nonce"))?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        self.aead
            .decrypt(&nonce, payload)
            .map_err(|_| anyhow!("Failed to decrypt a secret (wrong key or corrupted value)"))
    }
}

/// A fresh random 32-byte key, base64-encoded.
pub fn random_key_base64() -> String {
    STANDARD.encode(random_bytes::<32>())
}

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::from_base64_key(&SecretString::from(random_key_base64())).unwrap()
    }

    #[test]
    fn round_trips_and_never_stores_the_plaintext() {
        let cipher = cipher();
        let stored = cipher.encrypt(b"client-secret-value", "ctx").unwrap();
        assert!(!stored.windows(6).any(|w| w == b"client"));
        assert_eq!(
            cipher.decrypt(&stored, "ctx").unwrap(),
            b"client-secret-value"
        );
    }

    #[test]
    fn refuses_another_context_another_key_or_tampering() {
        let cipher = cipher();
        let mut stored = cipher.encrypt(b"value", "a").unwrap();
        assert!(cipher.decrypt(&stored, "b").is_err());
        assert!(self::cipher().decrypt(&stored, "a").is_err());
        stored[NONCE_LEN] ^= 1;
        assert!(cipher.decrypt(&stored, "a").is_err());
    }

    #[test]
    fn rejects_keys_of_the_wrong_size() {
        assert!(Cipher::from_base64_key(&SecretString::from(STANDARD.encode([0u8; 16]))).is_err());
        assert!(Cipher::from_base64_key(&SecretString::from("not base64!".to_owned())).is_err());
    }
}
