#!/usr/bin/env python3
"""Derives an OpenAPI 3.0 view of the service's 3.1 document for generators that read only 3.0
(progenitor). It rewrites only what the document uses and fails on anything else:

- `type: [T, "null"]` becomes `type: T` with `nullable: true`;
- `oneOf: [S, {type: "null"}]` (an optional object) becomes `allOf: [S]` with `nullable: true`,
  the branch's sibling keywords (a `$ref`'s `description`) moving up beside it;
- `const: v` becomes `enum: [v]`, and a schema's `examples: [v, ...]` becomes `example: v`;
- `info.license.identifier` (3.1 only) is dropped;
- the patterns that only say "no control characters" (PLAIN_TEXT, the service's
  src/domain/plain_text.rs) are dropped: the service checks them on every string, and
  progenitor would otherwise make a newtype of every string field of every request.

With --json-media-types, `application/*+json` media types (merge-patch bodies, problem
responses) are also listed as `application/json`, the only JSON type progenitor types; the
service reads any `+json` body, and the Rust SDK sends PATCH bodies as merge patches again.

Usage: downconvert.py [--json-media-types] IN.json OUT.json
"""

import json
import sys

NULL = {"type": "null"}
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SCHEMA_MAPS = ("properties", "patternProperties")
SCHEMA_VALUES = ("items", "additionalProperties", "not")


# The single-line and multi-line forms of src/domain/plain_text.rs.
PLAIN_TEXT = (
    r"^[^\x00-\x1f\x7f-\x9f]*$",
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$",
)


class Unsupported(ValueError):
    """A 3.1 construct this conversion does not know."""


def schema(node):
    """Converts one schema object (recursively)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in SCHEMA_LISTS:
            # A null branch is handled by the parent, below.
            out[key] = [s if s == NULL else schema(s) for s in value]
        elif key in SCHEMA_MAPS:
            out[key] = {name: schema(s) for name, s in value.items()}
        elif key in SCHEMA_VALUES:
            out[key] = schema(value)
        else:
            out[key] = value
    kind = out.get("type")
    if isinstance(kind, list):
        others = [t for t in kind if t != "null"]
        if len(others) != 1:
            raise Unsupported(f"type {kind}")
        out["type"] = others[0]
        if len(others) < len(kind):
            out["nullable"] = True
    elif kind == "null":
        raise Unsupported("a schema of type null alone")
    if "oneOf" in out and NULL in out["oneOf"]:
        branches = [s for s in out.pop("oneOf") if s != NULL]
        if len(branches) == 1:
            branch = dict(branches[0])
            if "$ref" in branch:
                ref = {"$ref": branch.pop("$ref")}
                for key, value in branch.items():
                    out.setdefault(key, value)
                out["allOf"] = [ref]
            else:
                out["allOf"] = [branch]
        else:
            out["oneOf"] = branches
        out["nullable"] = True
    if any(NULL in out.get(key, []) for key in SCHEMA_LISTS):
        raise Unsupported("a null branch outside oneOf")
    if out.get("pattern") in PLAIN_TEXT:
        del out["pattern"]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    for key in ("prefixItems", "$defs", "contentMediaType", "unevaluatedProperties"):
        if key in out:
            raise Unsupported(key)
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(out.get(key), (int, float)) and not isinstance(out.get(key), bool):
            out[key.replace("exclusive", "").lower()] = out[key]
            out[key] = True
    return out


JSON_MEDIA_TYPES = False


def plain_json(media_type):
    """`application/json` for an `application/*+json` type under --json-media-types."""
    if JSON_MEDIA_TYPES and media_type.startswith("application/") and media_type.endswith("+json"):
        return "application/json"
    return media_type


def media(content):
    out = {}
    for media_type, entry in content.items():
        entry = {**entry, **({"schema": schema(entry["schema"])} if "schema" in entry else {})}
        name = plain_json(media_type)
        if name in out and out[name] != entry:
            raise Unsupported(f"{media_type} and {name} with different schemas")
        out[name] = entry
    return out


def parameter(node):
    node = dict(node)
    if "schema" in node:
        node["schema"] = schema(node["schema"])
    if "content" in node:
        node["content"] = media(node["content"])
    return node


def operation(node):
    node = dict(node)
    if "parameters" in node:
        node["parameters"] = [parameter(p) for p in node["parameters"]]
    if "requestBody" in node and "content" in node["requestBody"]:
        node["requestBody"] = {**node["requestBody"], "content": media(node["requestBody"]["content"])}
    responses = {}
    for status, response in node.get("responses", {}).items():
        response = dict(response)
        if "content" in response:
            response["content"] = media(response["content"])
        if "headers" in response:
            response["headers"] = {name: parameter(h) for name, h in response["headers"].items()}
        responses[status] = response
    if "responses" in node:
        node["responses"] = responses
    return node


METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document(doc):
    """Converts a whole 3.1 document to 3.0.3."""
    if not str(doc.get("openapi", "")).startswith("3.1"):
        raise Unsupported(f"openapi {doc.get('openapi')}")
    for key in ("webhooks", "jsonSchemaDialect"):
        if key in doc:
            raise Unsupported(key)
    out = dict(doc)
    out["openapi"] = "3.0.3"
    info = dict(out.get("info", {}))
    if "license" in info:
        info["license"] = {k: v for k, v in info["license"].items() if k != "identifier"}
    out["info"] = info
    paths = {}
    for path, item in doc.get("paths", {}).items():
        item = dict(item)
        for method in METHODS:
            if method in item:
                item[method] = operation(item[method])
        if "parameters" in item:
            item["parameters"] = [parameter(p) for p in item["parameters"]]
        paths[path] = item
    out["paths"] = paths
    components = dict(doc.get("components", {}))
    if "schemas" in components:
        components["schemas"] = {name: schema(s) for name, s in components["schemas"].items()}
    out["components"] = components
    return out


def main(argv):
    global JSON_MEDIA_TYPES
    if len(argv) > 1 and argv[1] == "--json-media-types":
        JSON_MEDIA_TYPES = True
        argv = argv[:1] + argv[2:]
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(document(doc), f, indent=2, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
