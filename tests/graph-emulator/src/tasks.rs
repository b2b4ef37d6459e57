//! To Do task lists and tasks: the built-in "Tasks" list, CRUD with etags, open extensions
//! and linked resources, rendered as `todoTaskList` and `todoTask`.

use crate::errors::{ApiError, ApiResult};
use crate::ids;
use crate::mailbox::{
    Mailbox, add_extension, check_enum, check_if_match, check_known_properties, etag,
};
use crate::time::{format_local, format_stamp, parse_local, resolve_zone, to_utc};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Properties of `microsoft.graph.todoTask` a write body may name.
const TASK_PROPERTIES: &[&str] = &[
    "body",
    "bodyLastModifiedDateTime",
    "categories",
    "completedDateTime",
    "createdDateTime",
    "dueDateTime",
    "hasAttachments",
    "importance",
    "isReminderOn",
    "lastModifiedDateTime",
    "recurrence",
    "reminderDateTime",
    "startDateTime",
    "status",
    "title",
    "checklistItems",
    "extensions",
    "linkedResources",
    "id",
];
const TASK_READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "bodyLastModifiedDateTime",
    "hasAttachments",
];
const DATE_PROPERTIES: &[&str] = &[
    "completedDateTime",
    "dueDateTime",
    "reminderDateTime",
    "startDateTime",
];

/// A To Do list.
#[derive(Debug, Clone)]
pub(crate) struct TaskList {
    pub id: String,
    pub display_name: String,
    pub wellknown: String,
    pub change_key: String,
    pub seq: u64,
    pub tasks: Vec<TaskRecord>,
}

/// A To Do task.
#[derive(Debug, Clone)]
pub(crate) struct TaskRecord {
    pub id: String,
    pub props: Map<String, Value>,
    pub change_key: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub body_modified: DateTime<Utc>,
    pub seq: u64,
    pub extensions: Vec<Map<String, Value>>,
    pub linked: Vec<Map<String, Value>>,
}

impl TaskList {
    pub(crate) fn new(name: &str, wellknown: &str, seq: u64) -> Self {
        Self {
            id: format!("{}=", ids::new_item_id(0x4c, false).trim_end_matches('=')),
            display_name: name.to_owned(),
            wellknown: wellknown.to_owned(),
            change_key: ids::new_change_key(),
            seq,
            tasks: Vec::new(),
        }
    }

    /// Renders the list as `todoTaskList`.
    pub(crate) fn render(&self) -> Value {
        json!({
            "@odata.etag": etag(&self.change_key),
            "displayName": self.display_name,
            "isOwner": true,
            "isShared": false,
            "wellknownListName": self.wellknown,
            "id": self.id,
        })
    }
}

/// Finds a list by ID.
pub(crate) fn find_list(mbox: &Mailbox, id: &str) -> ApiResult<usize> {
    mbox.lists
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(ApiError::not_found)
}

/// Finds a task of a list by ID.
pub(crate) fn find_task(mbox: &Mailbox, list: usize, id: &str) -> ApiResult<usize> {
    mbox.lists[list]
        .tasks
        .iter()
        .position(|t| t.id == id)
        .ok_or_else(ApiError::not_found)
}

/// Creates a list (`POST /me/todo/lists`).
pub(crate) fn create_list(mbox: &mut Mailbox, body: &Value) -> ApiResult<usize> {
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid_request("The displayName property is required."))?;
    let seq = mbox.next_seq();
    mbox.lists.push(TaskList::new(name, "none", seq));
    Ok(mbox.lists.len() - 1)
}

/// Renames a list; built-in lists cannot be renamed.
pub(crate) fn update_list(mbox: &mut Mailbox, list: usize, body: &Value) -> ApiResult<()> {
    if mbox.lists[list].wellknown != "none" {
        return Err(ApiError::invalid_request(
            "A built-in list can't be renamed.",
        ));
    }
    if let Some(name) = body.get("displayName").and_then(Value::as_str) {
        let seq = mbox.next_seq();
        let l = &mut mbox.lists[list];
        l.display_name = name.to_owned();
        l.change_key = ids::new_change_key();
        l.seq = seq;
    }
    Ok(())
}

/// Deletes a list; built-in lists cannot be deleted.
pub(crate) fn delete_list(mbox: &mut Mailbox, list: usize) -> ApiResult<()> {
    if mbox.lists[list].wellknown != "none" {
        return Err(ApiError::invalid_request(
            "A built-in list can't be deleted.",
        ));
    }
    mbox.lists.remove(list);
    mbox.next_seq();
    Ok(())
}

fn check_task_body(obj: &Map<String, Value>) -> ApiResult<()> {
    check_known_properties(obj, TASK_PROPERTIES, "todoTask")?;
    crate::mailbox::check_schema(&Value::Object(obj.clone()), "microsoft.graph.todoTask")?;
    check_enum(obj, "importance", &["low", "normal", "high"])?;
    check_enum(
        obj,
        "status",
        &[
            "notStarted",
            "inProgress",
            "completed",
            "waitingOnOthers",
            "deferred",
        ],
    )
}

/// Stores writable properties; dates are converted to UTC as To Do returns them.
fn apply_props(obj: &Map<String, Value>, props: &mut Map<String, Value>) -> ApiResult<()> {
    for (k, v) in obj {
        if k.starts_with('@') || TASK_READ_ONLY.contains(&k.as_str()) {
            continue;
        }
        if matches!(
            k.as_str(),
            "extensions" | "linkedResources" | "checklistItems"
        ) {
            continue;
        }
        let value = if DATE_PROPERTIES.contains(&k.as_str()) && !v.is_null() {
            let local = v
                .get("dateTime")
                .and_then(Value::as_str)
                .and_then(parse_local);
            let zone = v.get("timeZone").and_then(Value::as_str).unwrap_or("UTC");
            let (Some(local), Some(tz)) = (local, resolve_zone(zone)) else {
                return Err(ApiError::body_read(format!(
                    "Cannot convert the literal to {k}."
                )));
            };
            json!({"dateTime": format_local(to_utc(local, tz).naive_utc()), "timeZone": "UTC"})
        } else if k == "status" || k == "importance" {
            json!(v.as_str().map(normalise_enum))
        } else {
            v.clone()
        };
        props.insert(k.clone(), value);
    }
    if props.get("status").and_then(Value::as_str) == Some("completed") {
        if props.get("completedDateTime").is_none_or(Value::is_null) {
            let today = Utc::now()
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default();
            props.insert(
                "completedDateTime".into(),
                json!({"dateTime": format_local(today), "timeZone": "UTC"}),
            );
        }
    } else if obj.contains_key("status") {
        props.remove("completedDateTime");
    }
    Ok(())
}

fn normalise_enum(s: &str) -> String {
    const ALL: &[&str] = &[
        "notStarted",
        "inProgress",
        "completed",
        "waitingOnOthers",
        "deferred",
        "low",
        "normal",
        "high",
    ];
    ALL.iter()
        .find(|a| a.eq_ignore_ascii_case(s))
        .map_or_else(|| s.to_owned(), |a| (*a).to_owned())
}

/// Creates a task (`POST /me/todo/lists/{id}/tasks`).
pub(crate) fn create_task(mbox: &mut Mailbox, list: usize, body: &Value) -> ApiResult<usize> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::body_read("The request body must be a JSON object."))?;
    check_task_body(obj)?;
    let mut props = Map::new();
    apply_props(obj, &mut props)?;
    let mut extensions = Vec::new();
    for ext in obj
        .get("extensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add_extension(&mut extensions, ext)?;
    }
    let mut linked = Vec::new();
    for lr in obj
        .get("linkedResources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        linked.push(new_linked_resource(lr)?);
    }
    let now = Utc::now();
    let id = ids::new_item_id(0x54, mbox.next_id_has_slash());
    let seq = mbox.next_seq();
    mbox.lists[list].tasks.push(TaskRecord {
        id,
        props,
        change_key: ids::new_change_key(),
        created: now,
        modified: now,
        body_modified: now,
        seq,
        extensions,
        linked,
    });
    Ok(mbox.lists[list].tasks.len() - 1)
}

/// A linked resource from a request body, with a new ID.
pub(crate) fn new_linked_resource(body: &Value) -> ApiResult<Map<String, Value>> {
    let mut obj = body
        .as_object()
        .cloned()
        .ok_or_else(|| ApiError::body_read("A linkedResource must be a JSON object."))?;
    check_known_properties(
        &obj,
        &[
            "applicationName",
            "displayName",
            "externalId",
            "webUrl",
            "id",
        ],
        "linkedResource",
    )?;
    obj.insert("id".into(), json!(ids::new_guid()));
    Ok(obj)
}

/// Updates a task (`PATCH`), honouring `If-Match`.
pub(crate) fn update_task(
    mbox: &mut Mailbox,
    list: usize,
    task: usize,
    body: &Value,
    if_match: Option<&str>,
) -> ApiResult<()> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::body_read("The request body must be a JSON object."))?;
    check_task_body(obj)?;
    check_if_match(if_match, &mbox.lists[list].tasks[task].change_key)?;
    let mut props = mbox.lists[list].tasks[task].props.clone();
    apply_props(obj, &mut props)?;
    let seq = mbox.next_seq();
    let t = &mut mbox.lists[list].tasks[task];
    let now = Utc::now();
    if obj.contains_key("body") {
        t.body_modified = now;
    }
    t.props = props;
    bump(t, seq);
    Ok(())
}

/// Gives a task a new change key and change number.
pub(crate) fn bump(t: &mut TaskRecord, seq: u64) {
    t.change_key = ids::new_change_key();
    t.modified = Utc::now();
    t.seq = seq;
}

/// Deletes a task, honouring `If-Match`.
pub(crate) fn delete_task(
    mbox: &mut Mailbox,
    list: usize,
    task: usize,
    if_match: Option<&str>,
) -> ApiResult<()> {
    check_if_match(if_match, &mbox.lists[list].tasks[task].change_key)?;
    mbox.lists[list].tasks.remove(task);
    mbox.next_seq();
    Ok(())
}

/// Renders a task as `todoTask`.
pub(crate) fn render_task(t: &TaskRecord, expand_extensions: bool, expand_linked: bool) -> Value {
    let mut m = Map::new();
    m.insert("@odata.etag".into(), json!(etag(&t.change_key)));
    m.insert("importance".into(), json!("normal"));
    m.insert("isReminderOn".into(), json!(false));
    m.insert("status".into(), json!("notStarted"));
    m.insert("title".into(), json!(""));
    m.insert("hasAttachments".into(), json!(false));
    m.insert("categories".into(), json!([]));
    m.insert("body".into(), json!({"content": "", "contentType": "text"}));
    for (k, v) in &t.props {
        m.insert(k.clone(), v.clone());
    }
    m.insert("createdDateTime".into(), json!(format_stamp(t.created)));
    m.insert(
        "lastModifiedDateTime".into(),
        json!(format_stamp(t.modified)),
    );
    m.insert(
        "bodyLastModifiedDateTime".into(),
        json!(format_stamp(t.body_modified)),
    );
    m.insert("id".into(), json!(t.id));
    if expand_extensions {
        m.insert(
            "extensions".into(),
            Value::Array(t.extensions.iter().cloned().map(Value::Object).collect()),
        );
    }
    if expand_linked {
        m.insert(
            "linkedResources".into(),
            Value::Array(t.linked.iter().cloned().map(Value::Object).collect()),
        );
    }
    Value::Object(m)
}
