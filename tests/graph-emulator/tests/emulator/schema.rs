//! The mapping from a Graph request to the schema of its response, and a check that the JSON
//! copy of graph-subset.yaml the emulator carries equals the YAML.

use serde_json::Value;

pub use graph_emulator::schema::validate;

/// A schema by component name.
pub fn component(name: &str) -> Value {
    graph_emulator::schema::component(name).clone()
}

fn doc() -> &'static Value {
    graph_emulator::schema::document()
}

#[test]
fn the_json_schema_copy_matches_the_yaml() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/graph-subset.yaml"
    ))
    .expect("schema/graph-subset.yaml is readable");
    let yaml: Value = serde_yaml_ng::from_str(&text).expect("graph-subset.yaml parses");
    assert_eq!(
        &yaml,
        doc(),
        "regenerate schema/graph-subset.json from the YAML"
    );
    assert!(doc()["components"]["schemas"]["microsoft.graph.event"].is_object());
}

/// The schema of a response, from the request's method, path (after `/v1.0`, decoded
/// segments) and status. `None` for responses without a body (204, and the 202 of the meeting
/// actions).
pub fn for_response(method: &str, segments: &[String], status: u16) -> Option<Value> {
    if status == 204 || status == 202 {
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
