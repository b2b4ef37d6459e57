//! Idempotency keys (the IETF httpapi draft "The Idempotency-Key HTTP Header Field"): a POST
//! that creates something and carries `Idempotency-Key` is performed once per caller and key;
//! the same request sent again within [`RETENTION`] gets the first response back.
//!
//! A record is keyed by the caller (a user, or an API key) and the key. It holds the request's
//! fingerprint (SHA-256 of its method, path and body bytes), and, once the request is over, the
//! response's status, headers and body, encrypted with the service's cipher (a response may
//! carry a secret: an API key's). While the request is in flight the record has no status and
//! a lease ([`IN_FLIGHT_LEASE`]); a request whose process died leaves a record whose lease
//! expires, and the key can be used again then. Records expire after [`RETENTION`] and the
//! retention pass deletes them.

use chrono::{DateTime, TimeDelta, Utc};
use entity::idempotency_keys;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TryInsertResult,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    crypto::Cipher,
    error::{ApiError, ApiResult},
};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The response header that marks a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// How long a key's first response is kept and replayed.
pub const RETENTION: TimeDelta = TimeDelta::hours(24);

/// How long a request in flight holds its key: past this, its process is taken for dead and
/// the key may be used again.
pub const IN_FLIGHT_LEASE: TimeDelta = TimeDelta::minutes(5);

/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// The pattern of a key (printable ASCII, not only spaces), as the OpenAPI document states it.
pub const KEY_PATTERN: &str = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$";

/// Validates the value of an `Idempotency-Key` header: 1 to 255 printable ASCII characters
/// (space included, not only spaces). The key is the value as sent.
///
/// # Errors
/// 400 `invalid_idempotency_key`.
pub fn parse_key(value: &[u8]) -> ApiResult<String> {
    let printable = value.iter().all(|b| (0x20..=0x7e).contains(b));
    let blank = value.iter().all(|b| *b == b' ');
    if !printable || blank || value.len() > MAX_KEY_LEN {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "`Idempotency-Key` must be 1 to 255 printable ASCII characters.",
        ));
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// The fingerprint of a request: SHA-256 (hex) of its method, path with query string, and
/// body bytes. The same key sent with another fingerprint is another request.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    // Lengths first, so that no two different requests hash the same bytes.
    for part in [method.as_bytes(), path_and_query.as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A response kept to be replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// Status code.
    pub status: u16,
    /// The headers kept (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

mod base64_bytes {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A key this request holds while it is in flight.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The caller.
    pub principal_id: Uuid,
    /// The key.
    pub key: String,
    /// This request's token: only the holder completes or releases the record.
    pub token: Uuid,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Begin {
    /// The key is this request's: perform it, then [`complete`] or [`release`].
    Started(Claim),
    /// The same request was performed: answer its response again.
    Replay(StoredResponse),
    /// The same request is being performed: answer 409.
    InFlight,
    /// The key was used for another request: answer 422.
    Reused,
}

fn response_context(principal_id: Uuid, key: &str) -> String {
    format!("idempotency_keys:{principal_id}:{key}:response")
}

fn record_filter(principal_id: Uuid, key: &str) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(idempotency_keys::Column::PrincipalId.eq(principal_id))
        .add(idempotency_keys::Column::Key.eq(key))
}

/// Claims `key` for a request of `principal_id` with `fingerprint`, or tells what became of
/// the request that claimed it first.
///
/// # Errors
/// On database failure, or when a stored response cannot be decrypted.
pub async fn begin(
    db: &impl ConnectionTrait,
    cipher: &Cipher,
    principal_id: Uuid,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> ApiResult<Begin> {
    let token = Uuid::now_v7();
    let claim = Claim {
        principal_id,
        key: key.to_owned(),
        token,
    };
    let fresh = || idempotency_keys::ActiveModel {
        principal_id: Set(principal_id),
        key: Set(key.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        token: Set(token),
        locked_until: Set(Some((now + IN_FLIGHT_LEASE).fixed_offset())),
        status: Set(None),
        response: Set(None),
        created_at: Set(now.fixed_offset()),
        expires_at: Set((now + RETENTION).fixed_offset()),
    };
    // A record may vanish between the insert and the read (its request failed and released
    // it): then try again.
    for _ in 0..3 {
        let inserted = idempotency_keys::Entity::insert(fresh())
            .on_conflict_do_nothing_on([
                idempotency_keys::Column::PrincipalId,
                idempotency_keys::Column::Key,
            ])
            .exec_without_returning(db)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(1)) {
            return Ok(Begin::Started(claim));
        }
        let Some(record) = idempotency_keys::Entity::find()
            .filter(record_filter(principal_id, key))
            .one(db)
            .await?
        else {
            continue;
        };
        let expired = record.expires_at <= now;
        let abandoned = record.status.is_none() && record.locked_until.is_none_or(|t| t <= now);
        if expired || abandoned {
            // Take the record over, unless another request just did.
            let taken = idempotency_keys::Entity::update_many()
                .set(fresh())
                .filter(record_filter(principal_id, key))
                .filter(idempotency_keys::Column::Token.eq(record.token))
                .exec(db)
                .await?
                .rows_affected;
            if taken == 1 {
                return Ok(Begin::Started(claim));
            }
            continue;
        }
        if record.fingerprint != fingerprint {
            return Ok(Begin::Reused);
        }
        return match (record.status, record.response) {
            (Some(_), Some(sealed)) => {
                let plain = cipher.decrypt(&sealed, &response_context(principal_id, key))?;
                let stored = serde_json::from_slice(&plain).map_err(anyhow::Error::from)?;
                Ok(Begin::Replay(stored))
            }
            _ => Ok(Begin::InFlight),
        };
    }
    Ok(Begin::InFlight)
}

/// Stores the response of the request that holds `claim`, to be replayed.
///
/// # Errors
/// On database or encryption failure.
pub async fn complete(
    db: &impl ConnectionTrait,
    cipher: &Cipher,
    claim: &Claim,
    response: &StoredResponse,
) -> ApiResult<()> {
    let plain = serde_json::to_vec(response).map_err(anyhow::Error::from)?;
    let sealed = cipher.encrypt(&plain, &response_context(claim.principal_id, &claim.key))?;
    idempotency_keys::Entity::update_many()
        .col_expr(
            idempotency_keys::Column::Status,
            Expr::value(i32::from(response.status)),
        )
        .col_expr(idempotency_keys::Column::Response, Expr::value(sealed))
        .col_expr(
            idempotency_keys::Column::LockedUntil,
            Expr::value(Option::<DateTime<chrono::FixedOffset>>::None),
        )
        .filter(record_filter(claim.principal_id, &claim.key))
        .filter(idempotency_keys::Column::Token.eq(claim.token))
        .exec(db)
        .await?;
    Ok(())
}

/// Frees the key `claim` holds (its request failed in a way worth retrying): the next request
/// with it is performed anew.
///
/// # Errors
/// On database failure.
pub async fn release(db: &impl ConnectionTrait, claim: &Claim) -> ApiResult<()> {
    idempotency_keys::Entity::delete_many()
        .filter(record_filter(claim.principal_id, &claim.key))
        .filter(idempotency_keys::Column::Token.eq(claim.token))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes the records that expired before `now`, `batch` at a time; returns how many.
///
/// # Errors
/// On database failure.
pub async fn purge_expired(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    batch: u64,
) -> ApiResult<u64> {
    use sea_orm::sea_query::Query;
    let mut purged = 0;
    loop {
        // Keys of the batch, compared as a pair: the primary key is (principal, key).
        let expired = Query::select()
            .columns([
                idempotency_keys::Column::PrincipalId,
                idempotency_keys::Column::Key,
            ])
            .from(idempotency_keys::Entity)
            .and_where(idempotency_keys::Column::ExpiresAt.lte(now.fixed_offset()))
            .limit(batch)
            .to_owned();
        let deleted = idempotency_keys::Entity::delete_many()
            .filter(
                Expr::tuple([
                    Expr::col(idempotency_keys::Column::PrincipalId),
                    Expr::col(idempotency_keys::Column::Key),
                ])
                .in_subquery(expired),
            )
            .exec(db)
            .await?
            .rows_affected;
        purged += deleted;
        if deleted < batch {
            return Ok(purged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_printable_ascii_characters() {
        assert_eq!(parse_key(b"a").unwrap(), "a");
        assert_eq!(
            parse_key(b"\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").unwrap(),
            "\"8e03978e-40d5-43e8-bc93-6894a57f9324\""
        );
        assert!(parse_key(&[b'k'; 255]).is_ok());
        for bad in [
            &b""[..],
            b"   ",
            &[b'k'; 256],
            b"a\tb",
            "é".as_bytes(),
            b"a\x7fb",
        ] {
            assert_eq!(
                parse_key(bad).unwrap_err().code(),
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fingerprints_tell_method_path_and_body_apart() {
        let one = fingerprint("POST", "/a", b"{}");
        assert_eq!(one, fingerprint("POST", "/a", b"{}"));
        assert_ne!(one, fingerprint("POST", "/b", b"{}"));
        assert_ne!(one, fingerprint("PUT", "/a", b"{}"));
        assert_ne!(one, fingerprint("POST", "/a", b"{ }"));
        assert_ne!(
            fingerprint("POST", "/a\n", b"x"),
            fingerprint("POST", "/a", b"\nx")
        );
    }
}
