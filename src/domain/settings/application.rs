//! Azure AD application settings (client ID, client secret, tenant) at global and
//! organization scope. The secret is write-only: stored AES-256-GCM encrypted, never returned.

use chrono::Utc;
use entity::azure_app_settings as row;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Scope, Source, resolve};
use crate::{
    crypto::Cipher,
    domain::{etag, patch::Patch},
    error::{ApiError, ApiResult, FieldError, is_unique_violation},
};

/// The path of the OAuth callback, appended to the public URL to form the redirect URI.
pub const CALLBACK_PATH: &str = "/api/v1/microsoft/oauth/callback";

/// A JSON merge patch of the Azure application settings at one scope: a value overrides,
/// `null` falls back to the global scope.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "client_id": "8a9f3c52-1b1e-4a38-9d6e-3f0b3a4c2d11",
    "client_secret": "value-of-the-secret",
    "tenant": "common"
}))]
pub struct ApplicationSettingsPatch {
    /// Application (client) ID: a GUID.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub client_id: Patch<String>,
    /// Client secret value (not its ID), 1 to 1024 characters, not blank. Write-only.
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only, min_length = 1, max_length = 1024, pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub client_secret: Patch<String>,
    /// Directory (tenant): `common`, `organizations`, `consumers`, a tenant GUID or a domain.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 253, pattern = r"^(common|organizations|consumers|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)$")]
    pub tenant: Patch<String>,
}

/// An effective optional text setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TextSetting {
    /// The effective value; `null` when no scope sets it.
    pub value: Option<String>,
    /// The scope the value comes from.
    pub source: Source,
    /// Whether the scope being viewed sets this value itself.
    pub overridden: bool,
}

/// Whether a client secret is set, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SecretSetting {
    /// Whether an effective secret exists (its value is never returned).
    pub value: bool,
    /// The scope the secret comes from.
    pub source: Source,
    /// Whether the scope being viewed sets a secret itself.
    pub overridden: bool,
}

/// Azure application settings as seen from one scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApplicationSettingsView {
    /// The scope viewed.
    pub scope: Source,
    /// Application (client) ID.
    pub client_id: TextSetting,
    /// Whether a client secret is set.
    pub client_secret_set: SecretSetting,
    /// Directory (tenant).
    pub tenant: TextSetting,
    /// The redirect URI to register in Azure (read-only, derived from the public URL).
    #[schema(example = "https://sync.example.com/api/v1/microsoft/oauth/callback")]
    pub redirect_uri: String,
}

/// Rows of a scope chain, most specific first, with the version of the viewed scope.
#[derive(Debug)]
pub struct Resolved {
    scope: Scope,
    chain: Vec<(Source, Option<row::Model>)>,
    version: i64,
}

impl Resolved {
    /// The `ETag` version of the viewed scope's row (0 when never written).
    pub fn version(&self) -> i64 {
        self.version
    }

    fn pick<T: Clone>(&self, get: impl Fn(&row::Model) -> Option<T>) -> (Option<T>, Source, bool) {
        let chain: Vec<(Source, Option<Option<T>>)> = self
            .chain
            .iter()
            .map(|(s, r)| (*s, r.as_ref().and_then(&get).map(Some)))
            .collect();
        resolve(self.scope.source(), &chain, None)
    }

    /// The view from the viewed scope.
    pub fn view(&self, public_url: &str) -> ApplicationSettingsView {
        let (client_id, source, overridden) = self.pick(|r| r.client_id.clone());
        let client_id = TextSetting {
            value: client_id,
            source,
            overridden,
        };
        let (tenant, source, overridden) = self.pick(|r| r.tenant.clone());
        let tenant = TextSetting {
            value: tenant,
            source,
            overridden,
        };
        let (secret, source, overridden) =
            self.pick(|r| r.client_secret_encrypted.as_ref().map(|_| ()));
        ApplicationSettingsView {
            scope: self.scope.source(),
            client_id,
            client_secret_set: SecretSetting {
                value: secret.is_some(),
                source,
                overridden,
            },
            tenant,
            redirect_uri: redirect_uri(public_url),
        }
    }

    /// The effective application, when client ID, secret and tenant are all set.
    ///
    /// # Errors
    /// When the stored secret does not decrypt (wrong key or corruption).
    pub fn effective(&self, cipher: &Cipher) -> anyhow::Result<Option<EffectiveApplication>> {
        let (Some(client_id), _, _) = self.pick(|r| r.client_id.clone()) else {
            return Ok(None);
        };
        let (Some(tenant), _, _) = self.pick(|r| r.tenant.clone()) else {
            return Ok(None);
        };
        let secret_row = self
            .chain
            .iter()
            .filter_map(|(_, r)| r.as_ref())
            .find(|r| r.client_secret_encrypted.is_some());
        let Some(secret_row) = secret_row else {
            return Ok(None);
        };
        let Some(stored) = &secret_row.client_secret_encrypted else {
            return Ok(None);
        };
        let secret = cipher.decrypt(stored, &secret_context(&secret_row.scope_key))?;
        Ok(Some(EffectiveApplication {
            client_id,
            tenant,
            client_secret: SecretString::from(String::from_utf8(secret)?),
        }))
    }
}

/// A fully configured Azure application: the one a scope's calls to Microsoft act as.
pub use crate::graph::identity::Application as EffectiveApplication;

/// The redirect URI for a public base URL.
pub fn redirect_uri(public_url: &str) -> String {
    format!("{public_url}{CALLBACK_PATH}")
}

fn secret_context(scope_key: &str) -> String {
    format!("azure_app_settings:{scope_key}:client_secret")
}

/// Whether `tenant` is `common`, `organizations`, `consumers`, a GUID or a domain name.
fn valid_tenant(tenant: &str) -> bool {
    if matches!(tenant, "common" | "organizations" | "consumers") || Uuid::parse_str(tenant).is_ok()
    {
        return true;
    }
    let labels: Vec<&str> = tenant.split('.').collect();
    tenant.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A patch with validated, normalised values.
struct ValidPatch {
    client_id: Patch<String>,
    client_secret: Patch<String>,
    tenant: Patch<String>,
}

impl ApplicationSettingsPatch {
    fn validate(self) -> ApiResult<ValidPatch> {
        let mut errors = Vec::new();
        let client_id = match self.client_id {
            Patch::Set(id) => match Uuid::parse_str(id.trim()) {
                Ok(uuid) => Patch::Set(uuid.hyphenated().to_string()),
                Err(_) => {
                    errors.push(FieldError::new(
                        "/client_id",
                        "must be a GUID such as 8a9f3c52-1b1e-4a38-9d6e-3f0b3a4c2d11",
                    ));
                    Patch::Absent
                }
            },
            other => other,
        };
        let client_secret = match self.client_secret {
            Patch::Set(secret) if secret.trim().is_empty() || secret.len() > 1024 => {
                errors.push(FieldError::new(
                    "/client_secret",
                    "must be 1 to 1024 characters",
                ));
                Patch::Absent
            }
            other => other,
        };
        let tenant = match self.tenant {
            Patch::Set(tenant) => {
                let tenant = tenant.trim().to_lowercase();
                if valid_tenant(&tenant) {
                    Patch::Set(tenant)
                } else {
                    errors.push(FieldError::new(
                        "/tenant",
                        "must be common, organizations, consumers, a tenant GUID or a domain",
                    ));
                    Patch::Absent
                }
            }
            other => other,
        };
        if errors.is_empty() {
            Ok(ValidPatch {
                client_id,
                client_secret,
                tenant,
            })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// Loads the rows of `scope` and the scopes above it.
///
/// # Errors
/// On database failure.
pub async fn load(db: &impl ConnectionTrait, scope: Scope) -> ApiResult<Resolved> {
    let levels: Vec<Scope> = scope
        .chain()
        .into_iter()
        .filter(|s| !matches!(s, Scope::User { .. }))
        .collect();
    let keys: Vec<String> = levels.iter().map(Scope::key).collect();
    let rows = row::Entity::find()
        .filter(row::Column::ScopeKey.is_in(keys.clone()))
        .all(db)
        .await?;
    let mut resolved = Resolved {
        scope,
        chain: Vec::new(),
        version: 0,
    };
    for (level, key) in levels.iter().zip(&keys) {
        let stored = rows.iter().find(|r| &r.scope_key == key).cloned();
        if level == &scope {
            resolved.version = stored.as_ref().map_or(0, |r| r.version);
        }
        resolved.chain.push((level.source(), stored));
    }
    Ok(resolved)
}

/// Applies a merge patch at `scope` (global or organization), encrypting a new secret.
///
/// # Errors
/// 422 for invalid members, 412 for a stale `If-Match`, 409 on a concurrent write.
pub async fn patch(
    db: &impl ConnectionTrait,
    cipher: &Cipher,
    scope: Scope,
    patch: ApplicationSettingsPatch,
    if_match: Option<&str>,
) -> ApiResult<Resolved> {
    let patch = patch.validate()?;
    let key = scope.key();
    let stored = row::Entity::find_by_id(key.clone()).one(db).await?;
    let version = stored.as_ref().map_or(0, |r| r.version);
    etag::check(if_match, version)?;
    if !(patch.client_id.is_present()
        || patch.client_secret.is_present()
        || patch.tenant.is_present())
    {
        return load(db, scope).await;
    }
    let now = Utc::now().fixed_offset();
    let mut model = match &stored {
        Some(current) => current.clone().into_active_model(),
        None => row::ActiveModel {
            scope_key: Set(key.clone()),
            organization_id: Set(match scope {
                Scope::Organization(id) => Some(id),
                _ => None,
            }),
            client_id: Set(None),
            client_secret_encrypted: Set(None),
            tenant: Set(None),
            version: Set(0),
            updated_at: Set(now),
        },
    };
    let mut client_id = stored.as_ref().and_then(|r| r.client_id.clone());
    patch.client_id.apply_to(&mut client_id);
    model.client_id = Set(client_id);
    let mut tenant = stored.as_ref().and_then(|r| r.tenant.clone());
    patch.tenant.apply_to(&mut tenant);
    model.tenant = Set(tenant);
    match &patch.client_secret {
        Patch::Absent => {}
        Patch::Null => model.client_secret_encrypted = Set(None),
        Patch::Set(secret) => {
            let secret = SecretString::from(secret.clone());
            let sealed =
                cipher.encrypt(secret.expose_secret().as_bytes(), &secret_context(&key))?;
            model.client_secret_encrypted = Set(Some(sealed));
        }
    }
    model.version = Set(version + 1);
    model.updated_at = Set(now);
    let concurrent = || {
        ApiError::conflict(
            "concurrent_update",
            "These settings were changed concurrently; read them again and retry.",
        )
    };
    if stored.is_some() {
        let result = row::Entity::update_many()
            .set(model)
            .filter(row::Column::ScopeKey.eq(key.clone()))
            .filter(row::Column::Version.eq(version))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(concurrent());
        }
    } else {
        model.insert(db).await.map_err(|e| {
            if is_unique_violation(&e) {
                concurrent()
            } else {
                e.into()
            }
        })?;
    }
    load(db, scope).await
}
