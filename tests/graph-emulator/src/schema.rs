//! The Graph schemas of graph-subset.yaml (carried as JSON in `schema/graph-subset.json`, which
//! a test keeps equal to the YAML) and a small validator for the OpenAPI 3.0 subset they use:
//! `$ref`, `type`, `properties`, `required`, `enum`, `items`, `nullable`, `allOf`, `anyOf`,
//! `oneOf` (checked as `anyOf`: the generated schemas overlap) and date/date-time formats.
//!
//! The emulator checks write bodies with it, as Graph's request reader refuses values of the
//! wrong type; the tests check every response body with it.

use serde_json::Value;
use std::sync::OnceLock;

static DOC: OnceLock<Value> = OnceLock::new();

/// The whole OpenAPI document.
pub fn document() -> &'static Value {
    DOC.get_or_init(|| {
        serde_json::from_str(include_str!("../schema/graph-subset.json")).unwrap_or(Value::Null)
    })
}

/// A schema by component name, e.g. `microsoft.graph.event`.
pub fn component(name: &str) -> &'static Value {
    &document()["components"]["schemas"][name]
}

fn resolve(r: &str) -> &'static Value {
    component(r.trim_start_matches("#/components/schemas/"))
}

/// Validates `v` against `schema`; returns the violations with their JSON paths.
pub fn validate(schema: &Value, v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    check(schema, v, "$", false, &mut errs);
    errs
}

/// Validates a request body against a component; enum members match ignoring case, as Graph's
/// reader accepts `"HTML"` for `bodyType`. The error is the first violation.
pub(crate) fn check_request(component_name: &str, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    check(component(component_name), body, "$", true, &mut errs);
    errs.into_iter().next().map_or(Ok(()), Err)
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

fn check(schema: &Value, v: &Value, at: &str, loose: bool, errs: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return check(resolve(r), v, at, loose, errs);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(s, v, at, loose, errs);
        }
    }
    for key in ["anyOf", "oneOf"] {
        // oneOf is checked as anyOf: the generated schemas overlap (string vs enum string).
        if let Some(any) = schema.get(key).and_then(Value::as_array)
            && !any.iter().any(|s| validate_inner(s, v, loose))
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
        && !allowed.iter().any(|a| a == v || (loose && enum_eq(a, v)))
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
                check(s, x, &format!("{at}.{k}"), loose, errs);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(items, x, &format!("{at}[{i}]"), loose, errs);
        }
    }
}

fn enum_eq(a: &Value, v: &Value) -> bool {
    matches!((a.as_str(), v.as_str()), (Some(a), Some(v)) if a.eq_ignore_ascii_case(v))
}

fn validate_inner(schema: &Value, v: &Value, loose: bool) -> bool {
    let mut errs = Vec::new();
    check(schema, v, "", loose, &mut errs);
    errs.is_empty()
}
