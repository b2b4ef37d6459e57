//! Cursor pagination: `?limit=` (default 50, max 500) and an opaque `?cursor=`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size.
pub const MAX_LIMIT: u64 = 500;

/// Query parameters of every list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page (an id in unpadded base64url).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// A validated page request: items come in id order, after `after`.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    /// Page size.
    pub limit: u64,
    /// Last id of the previous page.
    pub after: Option<Uuid>,
}

impl PageParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// 400 `invalid_query` for a limit out of range or a cursor this server did not issue.
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`limit` must be between 1 and 500.",
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "`cursor` is not a cursor this server issued.",
                )
            })?),
        };
        Ok(PageRequest { limit, after })
    }
}

fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// Most bytes of large fields (descriptions, attendees...) one page holds: a page of large
/// items ends early, with a cursor, rather than make a response, and the server, hold more.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Rows read per query while a page fills.
const CHUNK: u64 = 50;

/// Fills a page in id order, `CHUNK` rows at a time: at most `page.limit` rows and
/// [`PAGE_BYTES`] of their `weight` (at least one row); returns them and whether more follow.
/// `fetch(after, n)` reads the next `n` rows after the id `after`.
///
/// # Errors
/// What `fetch` fails with.
pub async fn fill_page<R, Fut>(
    page: PageRequest,
    mut fetch: impl FnMut(Option<Uuid>, u64) -> Fut,
    id: impl Fn(&R) -> Uuid,
    weight: impl Fn(&R) -> usize,
) -> Result<(Vec<R>, bool), ApiError>
where
    Fut: std::future::Future<Output = Result<Vec<R>, ApiError>>,
{
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let mut rows: Vec<R> = Vec::new();
    let mut bytes = 0;
    let mut after = page.after;
    loop {
        let wanted = (limit + 1 - rows.len()).min(CHUNK as usize);
        let chunk = fetch(after, wanted as u64).await?;
        let last_chunk = chunk.len() < wanted;
        for row in chunk {
            if rows.len() == limit || (!rows.is_empty() && bytes + weight(&row) > PAGE_BYTES) {
                return Ok((rows, true));
            }
            bytes += weight(&row);
            after = Some(id(&row));
            rows.push(row);
        }
        if last_chunk {
            return Ok((rows, false));
        }
    }
}

/// The cursor of the page after the item with this id.
pub fn cursor_of(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows (the extra one only says there is more).
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        request: PageRequest,
        id: impl Fn(&R) -> Uuid,
        view: impl Fn(R) -> T,
    ) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| cursor_of(id(r)))
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}
