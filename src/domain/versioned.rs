//! One store for a user's versioned local items (calendar events and tasks; mail next): reads
//! that see or skip tombstones, the version guard of every write, tombstones, the recycle bin's
//! restores, and the change event each write records in its transaction.
//!
//! An item's row carries its id, its user, a `version` bumped by every change, `updated_at`,
//! and the tombstone columns (`deleted_at`, `deleted_by`, `deleted_by_run`). A write succeeds
//! only if the row is still at the version it was read at: otherwise it answers 412 (or 404 if
//! the item went away), and a caller that gave no `If-Match` reads again and starts over
//! ([`with_retries`]).

use std::future::Future;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait, prelude::DateTimeWithTimeZone,
};
use uuid::Uuid;

use crate::{
    domain::{
        access::not_found,
        changes::{self, ItemChange, ItemKind, Origin},
        etag,
        recycle_bin::{self, DeletedBy, Retention},
    },
    error::{ApiError, ApiResult},
};

/// A table of versioned items: its columns, and how to read them off a row.
pub trait Item: EntityTrait<Model: Send + Sync, ActiveModel: Send> {
    /// What the change log calls it.
    const KIND: ItemKind;
    /// What a 404 calls it ("calendar event").
    const NOUN: &'static str;
    /// The primary key.
    const ID: Self::Column;
    /// The owner.
    const USER_ID: Self::Column;
    /// Bumped by every change.
    const VERSION: Self::Column;
    /// When it was created.
    const CREATED_AT: Self::Column;
    /// When it last changed.
    const UPDATED_AT: Self::Column;
    /// When it was deleted (a tombstone); null while it lives.
    const DELETED_AT: Self::Column;
    /// Who deleted it ([`DeletedBy`]).
    const DELETED_BY: Self::Column;
    /// The run that applied its deletion from Microsoft.
    const DELETED_BY_RUN: Self::Column;

    /// A row's id.
    fn id(row: &Self::Model) -> Uuid;
    /// A row's owner.
    fn user_id(row: &Self::Model) -> Uuid;
    /// A row's version.
    fn version(row: &Self::Model) -> i64;
    /// When a row was deleted, if it is a tombstone.
    fn deleted_at(row: &Self::Model) -> Option<DateTimeWithTimeZone>;
}

/// How many times a change without `If-Match` starts over when the item changes under it.
const ATTEMPTS: usize = 4;

/// Runs `attempt` until it does not fail with 412, at most [`ATTEMPTS`] times, when the
/// caller gave no `If-Match` (a concurrent change then makes it read again and start over:
/// the caller asked for no precondition); with `If-Match`, once.
///
/// # Errors
/// What the last attempt answered.
pub async fn with_retries<T, Fut>(
    if_match: Option<&str>,
    mut attempt: impl FnMut() -> Fut,
) -> ApiResult<T>
where
    Fut: Future<Output = ApiResult<T>>,
{
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Err(ApiError::PreconditionFailed) if if_match.is_none() && n < ATTEMPTS => {}
            other => return other,
        }
    }
    Err(ApiError::PreconditionFailed)
}

/// One of a user's items, tombstones included (what the sync engine needs to send a
/// deletion).
///
/// # Errors
/// On database failure.
pub async fn find_including_deleted<E: Item>(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<E::Model>> {
    Ok(E::find()
        .filter(E::ID.eq(id))
        .filter(E::USER_ID.eq(user_id))
        .one(db)
        .await?)
}

/// One of a user's items that is not deleted, or 404.
///
/// # Errors
/// 404 when there is no such item or it is deleted.
pub async fn get<E: Item>(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> ApiResult<E::Model> {
    find_including_deleted::<E>(db, user_id, id)
        .await?
        .filter(|row| E::deleted_at(row).is_none())
        .ok_or_else(|| not_found(E::NOUN))
}

/// One of a user's items in the recycle bin (deleted, and kept by `retention`), or 404.
///
/// # Errors
/// 404 when there is no such item, it is not deleted or it is past retention.
pub async fn get_deleted<E: Item>(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    retention: Retention,
) -> ApiResult<E::Model> {
    find_including_deleted::<E>(db, user_id, id)
        .await?
        .filter(|row| E::deleted_at(row).is_some_and(|at| retention.keeps(at)))
        .ok_or_else(|| not_found(E::NOUN))
}

/// Stores a new item of `user_id` with the fields of `row` (version 1, a new id).
///
/// # Errors
/// On database failure.
pub async fn create<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    mut row: E::ActiveModel,
) -> ApiResult<E::Model>
where
    E::Model: sea_orm::IntoActiveModel<E::ActiveModel>,
{
    let now = Utc::now().fixed_offset();
    row.set(E::ID, Uuid::now_v7().into());
    row.set(E::USER_ID, user_id.into());
    row.set(E::VERSION, 1i64.into());
    row.set(E::CREATED_AT, now.into());
    row.set(E::UPDATED_AT, now.into());
    row.set(E::DELETED_AT, None::<DateTimeWithTimeZone>.into());
    let tx = db.begin().await?;
    let stored = row.insert(&tx).await?;
    changes::item(
        &tx,
        E::KIND,
        ItemChange::Created,
        user_id,
        E::id(&stored),
        E::version(&stored),
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// Writes the fields set in `changes` over `current`, bumping its version, provided it is still
/// at the version read and not deleted; records the change.
///
/// # Errors
/// 412 when the item changed meanwhile; 404 when it was deleted meanwhile.
pub async fn update<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: &E::Model,
    mut changes: E::ActiveModel,
) -> ApiResult<E::Model> {
    let version = E::version(current) + 1;
    changes.set(E::VERSION, version.into());
    changes.set(E::UPDATED_AT, Utc::now().fixed_offset().into());
    let guarded = E::update_many()
        .set(changes)
        .filter(E::DELETED_AT.is_null());
    if !write_guarded::<E>(db, guarded, current, ItemChange::Updated).await? {
        get::<E>(db, E::user_id(current), E::id(current)).await?;
        return Err(ApiError::PreconditionFailed);
    }
    get::<E>(db, E::user_id(current), E::id(current)).await
}

/// Deletes an item as a tombstone deleted here (`deleted_by` `local`): `deleted_at` set,
/// version bumped, the row kept.
///
/// # Errors
/// 412 when the item changed meanwhile; 404 when it was deleted meanwhile.
pub async fn delete<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: &E::Model,
) -> ApiResult<()> {
    let now = Utc::now().fixed_offset();
    let version = E::version(current) + 1;
    let guarded = E::update_many()
        .col_expr(E::DELETED_AT, Some(now).into())
        .col_expr(E::DELETED_BY, Some(DeletedBy::Local.as_str()).into())
        .col_expr(E::DELETED_BY_RUN, None::<Uuid>.into())
        .col_expr(E::UPDATED_AT, now.into())
        .col_expr(E::VERSION, version.into())
        .filter(E::DELETED_AT.is_null());
    if !write_guarded::<E>(db, guarded, current, ItemChange::Deleted).await? {
        get::<E>(db, E::user_id(current), E::id(current)).await?;
        return Err(ApiError::PreconditionFailed);
    }
    Ok(())
}

/// Deletes one of a user's items as a tombstone, honouring `If-Match`; without it, a
/// concurrent change makes it start over rather than fail.
///
/// # Errors
/// 404 when there is no such item (or it is already deleted); 400 for a malformed
/// `If-Match`; 412 when it does not match.
pub async fn delete_checked<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
) -> ApiResult<()> {
    with_retries(if_match, || async {
        let current = get::<E>(db, user_id, id).await?;
        etag::check(if_match, E::version(&current))?;
        delete::<E>(db, &current).await
    })
    .await
}

/// Restores one of a user's items from the recycle bin, honouring `If-Match`; without it, a
/// concurrent change makes it start over rather than fail. The item gets a new version, so
/// that the next run sends it to Microsoft again: created there anew when Microsoft deleted
/// it, or left there when its deletion had not been sent yet.
///
/// # Errors
/// 404 when there is no such item or it is past retention; 409 `not_deleted` when it is not
/// deleted; 400 for a malformed `If-Match`; 412 when it does not match.
pub async fn restore<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    id: Uuid,
    if_match: Option<&str>,
    retention: Retention,
) -> ApiResult<E::Model> {
    for _ in 0..ATTEMPTS {
        let current = restorable::<E>(db, user_id, id, retention).await?;
        etag::check(if_match, E::version(&current))?;
        if restore_if::<E>(db, &current, None).await? {
            return get::<E>(db, user_id, id).await;
        }
        if if_match.is_some() {
            // Gone or restored meanwhile (404, 409) says more than "changed" (412).
            restorable::<E>(db, user_id, id, retention).await?;
            return Err(ApiError::PreconditionFailed);
        }
    }
    Err(ApiError::PreconditionFailed)
}

/// Restores every item of a user still in the recycle bin whose deletion run `run_id` applied
/// (see [`restore`]); an item changed meanwhile is read again, one restored or deleted again by
/// something else is left as it is. Returns the ids restored, in id order.
///
/// # Errors
/// On database failure.
pub async fn restore_run<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    user_id: Uuid,
    run_id: Uuid,
    retention: Retention,
) -> ApiResult<Vec<Uuid>> {
    let of_run = || {
        let mut query = E::find()
            .filter(E::USER_ID.eq(user_id))
            .filter(E::DELETED_BY_RUN.eq(run_id))
            .filter(E::DELETED_AT.is_not_null());
        if let Some(cutoff) = retention.cutoff {
            query = query.filter(E::DELETED_AT.gte(cutoff.fixed_offset()));
        }
        query
    };
    let mut restored = Vec::new();
    let mut after = None;
    loop {
        let mut page = of_run().order_by_asc(E::ID).limit(recycle_bin::PAGE);
        if let Some(after) = after {
            page = page.filter(E::ID.gt(after));
        }
        let rows = page.all(db).await?;
        let last_page = (rows.len() as u64) < recycle_bin::PAGE;
        after = rows.last().map(E::id);
        for mut row in rows {
            for _ in 0..ATTEMPTS {
                if restore_if::<E>(db, &row, Some(run_id)).await? {
                    restored.push(E::id(&row));
                    break;
                }
                match of_run().filter(E::ID.eq(E::id(&row))).one(db).await? {
                    Some(again) => row = again,
                    None => break,
                }
            }
        }
        if last_page {
            return Ok(restored);
        }
    }
}

/// One of a user's items that a restore may bring back: in the recycle bin.
///
/// # Errors
/// 404 when there is no such item or it is past retention; 409 `not_deleted` when it is not
/// deleted.
async fn restorable<E: Item>(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    retention: Retention,
) -> ApiResult<E::Model> {
    let current = find_including_deleted::<E>(db, user_id, id)
        .await?
        .ok_or_else(|| not_found(E::NOUN))?;
    match E::deleted_at(&current) {
        None => Err(recycle_bin::not_deleted(E::NOUN)),
        Some(at) if !retention.keeps(at) => Err(not_found(E::NOUN)),
        Some(_) => Ok(current),
    }
}

/// Brings a tombstone back, provided it is still at the version read, still deleted and, with
/// `run`, still deleted by that run: `deleted_at`, `deleted_by` and `deleted_by_run` cleared,
/// version bumped. Returns whether it was restored.
async fn restore_if<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    current: &E::Model,
    run: Option<Uuid>,
) -> ApiResult<bool> {
    let version = E::version(current) + 1;
    let mut guarded = E::update_many()
        .col_expr(E::DELETED_AT, None::<DateTimeWithTimeZone>.into())
        .col_expr(E::DELETED_BY, None::<String>.into())
        .col_expr(E::DELETED_BY_RUN, None::<Uuid>.into())
        .col_expr(E::UPDATED_AT, Utc::now().fixed_offset().into())
        .col_expr(E::VERSION, version.into())
        .filter(E::DELETED_AT.is_not_null());
    if let Some(run) = run {
        guarded = guarded.filter(E::DELETED_BY_RUN.eq(run));
    }
    write_guarded::<E>(db, guarded, current, ItemChange::Restored).await
}

/// Executes `update` (which moves the row to the next version) on `current`'s row if it is
/// still at the version read, and records `change` in the change log in the same transaction;
/// returns whether it was written.
async fn write_guarded<E: Item>(
    db: &(impl ConnectionTrait + TransactionTrait),
    update: sea_orm::UpdateMany<E>,
    current: &E::Model,
    change: ItemChange,
) -> ApiResult<bool> {
    let tx = db.begin().await?;
    let result = update
        .filter(E::ID.eq(E::id(current)))
        .filter(E::VERSION.eq(E::version(current)))
        .exec(&tx)
        .await?;
    if result.rows_affected != 1 {
        return Ok(false);
    }
    changes::item(
        &tx,
        E::KIND,
        change,
        E::user_id(current),
        E::id(current),
        E::version(current) + 1,
        Origin::Api,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
