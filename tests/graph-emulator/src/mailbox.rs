//! One user's mailbox: the directory user, calendar events and To Do lists, with a change
//! sequence that delta queries compare against. Graph handlers and the "as the user in Outlook"
//! control API call the same operations here, so both produce the same delta entries.

use crate::events::EventRecord;
use crate::ids;
use crate::tasks::TaskList;
use crate::types::{MailboxUser, UserSpec};
use serde_json::{Map, Value, json};

/// A directory user.
#[derive(Debug, Clone)]
pub(crate) struct UserRecord {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub job_title: Option<String>,
    pub preferred_language: Option<String>,
    pub tenant_id: String,
}

impl UserRecord {
    /// `/me` with its default properties (user-get.md).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": self.given_name,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": self.preferred_language,
            "surname": self.surname,
            "userPrincipalName": self.user_principal_name,
            "id": self.id,
        })
    }

    /// The `emailAddress` of this user as an organizer.
    pub(crate) fn email_address(&self) -> Value {
        json!({
            "name": self.display_name,
            "address": self.mail.as_deref().unwrap_or(&self.user_principal_name),
        })
    }
}

/// A mailbox and its items.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    pub user: UserRecord,
    /// Last change number; every write takes the next one.
    pub seq: u64,
    /// Counts created items, to alternate IDs with and without `/`.
    pub created: u64,
    pub events: Vec<EventRecord>,
    pub lists: Vec<TaskList>,
}

impl Mailbox {
    /// A new mailbox with the built-in "Tasks" list.
    pub(crate) fn new(spec: UserSpec, default_tenant: &str) -> Self {
        let id = spec.id.unwrap_or_else(ids::new_guid);
        let user = UserRecord {
            id,
            user_principal_name: spec.user_principal_name,
            display_name: spec.display_name,
            mail: spec.mail,
            given_name: spec.given_name,
            surname: spec.surname,
            job_title: spec.job_title,
            preferred_language: spec.preferred_language,
            tenant_id: spec.tenant_id.unwrap_or_else(|| default_tenant.to_owned()),
        };
        let mut mbox = Self {
            user,
            seq: 0,
            created: 0,
            events: Vec::new(),
            lists: Vec::new(),
        };
        let seq = mbox.next_seq();
        mbox.lists.push(TaskList::new("Tasks", "defaultList", seq));
        mbox
    }

    /// The next change number.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Whether the next item ID should contain `/`: every other one does, so that clients that
    /// forget to percent-encode IDs fail early and reliably.
    pub(crate) fn next_id_has_slash(&mut self) -> bool {
        self.created += 1;
        self.created % 2 == 1
    }

    /// The public description of this mailbox's user.
    pub(crate) fn public(&self) -> MailboxUser {
        MailboxUser {
            id: self.user.id.clone(),
            user_principal_name: self.user.user_principal_name.clone(),
            display_name: self.user.display_name.clone(),
            mail: self.user.mail.clone(),
            tenant_id: self.user.tenant_id.clone(),
            default_task_list_id: self.lists.first().map(|l| l.id.clone()).unwrap_or_default(),
        }
    }
}

/// Checks that every property of a write body is defined on the type, as Graph's request reader
/// does; annotations (`@odata.type`...) are allowed.
pub(crate) fn check_known_properties(
    body: &Map<String, Value>,
    known: &[&str],
    type_name: &str,
) -> crate::errors::ApiResult<()> {
    for key in body.keys() {
        if !key.starts_with('@') && !known.contains(&key.as_str()) {
            return Err(crate::errors::ApiError::body_read(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.{type_name}'. Make \
                 sure to only use property names that are defined by the type or mark the type \
                 as open type."
            )));
        }
    }
    Ok(())
}

/// Checks an `If-Match` header against the current change key (`*` matches anything).
pub(crate) fn check_if_match(
    if_match: Option<&str>,
    change_key: &str,
) -> crate::errors::ApiResult<()> {
    let Some(value) = if_match else { return Ok(()) };
    let value = value.trim();
    if value == "*" {
        return Ok(());
    }
    let bare = value.trim_start_matches("W/").trim_matches('"');
    if bare == change_key {
        Ok(())
    } else {
        Err(crate::errors::ApiError::conflict())
    }
}

/// `W/"<changeKey>"`.
pub(crate) fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

/// Validates an enum-valued property, the way Graph's request reader rejects unknown members.
pub(crate) fn check_enum(
    body: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
) -> crate::errors::ApiResult<()> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) => Ok(()),
        Some(other) => Err(crate::errors::ApiError::body_read(format!(
            "Requested value '{}' was not found.",
            other.as_str().unwrap_or(&other.to_string())
        ))),
    }
}

/// Adds an open extension to `extensions`, as `POST .../extensions` does; returns the stored
/// extension. Its ID is `Microsoft.OutlookServices.OpenTypeExtension.<extensionName>`.
pub(crate) fn add_extension(
    extensions: &mut Vec<Map<String, Value>>,
    body: &Value,
) -> crate::errors::ApiResult<Value> {
    let Some(obj) = body.as_object() else {
        return Err(crate::errors::ApiError::body_read(
            "An extension must be a JSON object.",
        ));
    };
    let Some(name) = obj.get("extensionName").and_then(Value::as_str) else {
        return Err(crate::errors::ApiError::invalid_request(
            "The extensionName property is required for an open extension.",
        ));
    };
    if extensions
        .iter()
        .any(|e| e.get("extensionName").and_then(Value::as_str) == Some(name))
    {
        return Err(crate::errors::ApiError::new(
            409,
            "NameAlreadyExists",
            format!("An extension named '{name}' already exists on this item."),
        ));
    }
    let mut ext = obj.clone();
    ext.insert(
        "@odata.type".into(),
        json!("#microsoft.graph.openTypeExtension"),
    );
    ext.insert("extensionName".into(), json!(name));
    ext.insert(
        "id".into(),
        json!(format!(
            "Microsoft.OutlookServices.OpenTypeExtension.{name}"
        )),
    );
    extensions.push(ext.clone());
    Ok(Value::Object(ext))
}

/// Finds an extension by ID or by extension name.
pub(crate) fn find_extension(extensions: &[Map<String, Value>], key: &str) -> Option<usize> {
    extensions.iter().position(|e| {
        e.get("id").and_then(Value::as_str) == Some(key)
            || e.get("extensionName").and_then(Value::as_str) == Some(key)
    })
}

/// Applies a PATCH to an open extension (ID and name are kept).
pub(crate) fn patch_extension(ext: &mut Map<String, Value>, body: &Value) {
    if let Some(obj) = body.as_object() {
        for (k, v) in obj {
            if k != "id" && k != "extensionName" && !k.starts_with('@') {
                ext.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Checks a write body against the entity's schema (types, enum members, nested shapes).
pub(crate) fn check_schema(body: &Value, component: &str) -> crate::errors::ApiResult<()> {
    crate::schema::check_request(component, body).map_err(|violation| {
        crate::errors::ApiError::body_read(format!(
            "Cannot read the request body as '{component}': {violation}."
        ))
    })
}
