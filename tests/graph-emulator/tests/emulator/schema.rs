//! A small validator for the OpenAPI 3.0 subset graph-subset.yaml uses (`$ref`, `type`,
//! `properties`, `required`, `enum`, `items`, `nullable`, `allOf`, `anyOf`, `oneOf`, date and
//! date-time formats), and the mapping from a Graph request to the schema of its response.

use serde_json::Value;
use std::sync::OnceLock;

static DOC: OnceLock<Value> = OnceLock::new();

fn doc() -> &'static Value {
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/graph-subset.yaml"
        ))
        .expect("schema/graph-subset.yaml is readable");
        serde_yaml_ng::from_str(&text).expect("graph-subset.yaml parses")
    })
}

/// A schema by component name.
pub fn component(name: &str) -> Value {
    doc()["components"]["schemas"][name].clone()
}

fn resolve(r: &str) -> &'static Value {
    let name = r.trim_start_matches("#/components/schemas/");
    &doc()["components"]["schemas"][name]
}

/// Validates `v` against `schema`; returns the violations with their JSON paths.
pub fn validate(schema: &Value, v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    check(schema, v, "$", &mut errs);
    errs
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn check(schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return check(resolve(r), v, at, errs);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(s, v, at, errs);
        }
    }
    for key in ["anyOf", "oneOf"] {
        // oneOf is checked as anyOf: the generated schemas overlap (string vs enum string).
        if let Some(any) = schema.get(key).and_then(Value::as_array)
            && !any.iter().any(|s| validate_inner(s, v))
        {
            errs.push(format!("{at}: matches none of {key} ({v})"));
        }
    }
    if v.is_null() {
        let nullable = schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let open = schema.get("type").is_none() && schema.get("$ref").is_none();
        if !nullable && !open && schema.get("anyOf").is_none() {
            errs.push(format!("{at}: null is not allowed"));
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        errs.push(format!("{at}: expected {t}, got {v}"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {allowed:?}"));
    }
    let text = v.as_str().unwrap_or_default();
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
            errs.push(format!("{at}: {v} is not a date-time"));
        }
        Some("date") if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() => {
            errs.push(format!("{at}: {v} is not a date"));
        }
        _ => {}
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if v.get(r).is_none() {
                errs.push(format!("{at}: missing required {r}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (k, s) in props {
            if let Some(x) = obj.get(k) {
                check(s, x, &format!("{at}.{k}"), errs);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

fn validate_inner(schema: &Value, v: &Value) -> bool {
    let mut errs = Vec::new();
    check(schema, v, "", &mut errs);
    errs.is_empty()
}

/// The schema of a response, from the request's method, path (after `/v1.0`, decoded
/// segments) and status. `None` for responses without a body.
pub fn for_response(method: &str, segments: &[String], status: u16) -> Option<Value> {
    if status == 204 {
        return None;
    }
    if !(200..300).contains(&status) {
        return Some(component("microsoft.graph.ODataErrors.ODataError"));
    }
    let mut segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // `/users/{id}/...` has the same shapes as `/me/...`.
    if segs.first() == Some(&"users") && segs.len() >= 2 {
        segs.splice(0..2, ["me"]);
    }
    let coll = |item: &str| {
        serde_json::json!({"type": "object", "required": ["value"], "properties": {
            "value": {"type": "array", "items": {"$ref": format!("#/components/schemas/microsoft.graph.{item}")}}}})
    };
    let one = |name: &str| component(&format!("microsoft.graph.{name}"));
    Some(match (method, segs.as_slice()) {
        (_, ["me"]) => one("user"),
        ("GET", ["me", "events"])
        | ("GET", ["me", "calendarView"])
        | ("GET", ["me", "events", _, "instances"]) => {
            component("microsoft.graph.eventCollectionResponse")
        }
        (_, ["me", "events"]) | (_, ["me", "events", _]) => one("event"),
        ("GET", ["me", "events", _, "extensions"])
        | ("GET", ["me", "todo", "lists", _, "tasks", _, "extensions"]) => {
            coll("openTypeExtension")
        }
        (_, ["me", "events", _, "extensions", ..])
        | (_, ["me", "todo", "lists", _, "tasks", _, "extensions", ..]) => one("openTypeExtension"),
        (_, ["me", "calendarView", _]) => path_schema("/me/calendarView/delta()"),
        (_, ["me", "todo", "lists", "delta"]) => serde_json::json!({"allOf": [
            {"$ref": "#/components/schemas/BaseDeltaFunctionResponse"},
            {"type": "object", "properties": {"value": {"type": "array", "items": {"$ref": "#/components/schemas/microsoft.graph.todoTaskList"}}}}
        ]}),
        ("GET", ["me", "todo", "lists"]) => {
            component("microsoft.graph.todoTaskListCollectionResponse")
        }
        (_, ["me", "todo", "lists"]) | (_, ["me", "todo", "lists", _]) => one("todoTaskList"),
        (_, ["me", "todo", "lists", _, "tasks", "delta"]) => {
            path_schema("/me/todo/lists/{todoTaskList-id}/tasks/delta()")
        }
        ("GET", ["me", "todo", "lists", _, "tasks"]) => {
            component("microsoft.graph.todoTaskCollectionResponse")
        }
        (_, ["me", "todo", "lists", _, "tasks"]) | (_, ["me", "todo", "lists", _, "tasks", _]) => {
            one("todoTask")
        }
        ("GET", ["me", "todo", "lists", _, "tasks", _, "linkedResources"]) => {
            coll("linkedResource")
        }
        (_, ["me", "todo", "lists", _, "tasks", _, "linkedResources", ..]) => one("linkedResource"),
        _ => panic!("no schema mapping for {method} /{}", segs.join("/")),
    })
}

/// The 2XX response schema of a path in the document.
fn path_schema(path: &str) -> Value {
    doc()["paths"][path]["get"]["responses"]["2XX"]["content"]["application/json"]["schema"].clone()
}
