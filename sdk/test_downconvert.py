"""Tests of downconvert.py: python3 -m unittest discover -s sdk -p 'test_*.py'"""

import json
import os
import unittest

import downconvert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SchemaTests(unittest.TestCase):
    def test_a_nullable_type_list_becomes_nullable(self):
        self.assertEqual(
            downconvert.schema({"type": ["string", "null"], "format": "uuid"}),
            {"type": "string", "format": "uuid", "nullable": True},
        )

    def test_a_single_type_list_becomes_the_type(self):
        self.assertEqual(downconvert.schema({"type": ["integer"]}), {"type": "integer"})

    def test_an_optional_reference_becomes_a_nullable_all_of_keeping_its_description(self):
        converted = downconvert.schema(
            {"oneOf": [{"$ref": "#/components/schemas/SyncPatch", "description": "Calendar."}, {"type": "null"}]}
        )
        self.assertEqual(
            converted,
            {"allOf": [{"$ref": "#/components/schemas/SyncPatch"}], "description": "Calendar.", "nullable": True},
        )

    def test_nested_schemas_are_converted(self):
        converted = downconvert.schema(
            {
                "type": "object",
                "properties": {"a": {"type": ["boolean", "null"]}},
                "items": {"type": ["string", "null"]},
                "additionalProperties": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
            }
        )
        self.assertEqual(converted["properties"]["a"], {"type": "boolean", "nullable": True})
        self.assertEqual(converted["items"], {"type": "string", "nullable": True})
        self.assertEqual(converted["additionalProperties"], {"allOf": [{"type": "integer"}], "nullable": True})

    def test_const_and_examples_take_their_3_0_forms(self):
        self.assertEqual(downconvert.schema({"const": "Bearer"}), {"enum": ["Bearer"]})
        self.assertEqual(downconvert.schema({"type": "string", "examples": ["a", "b"]}), {"type": "string", "example": "a"})

    def test_plain_text_patterns_are_dropped_and_others_kept(self):
        for pattern in downconvert.PLAIN_TEXT:
            self.assertEqual(downconvert.schema({"type": "string", "pattern": pattern}), {"type": "string"})
        self.assertEqual(downconvert.schema({"type": "string", "pattern": "^a$"}), {"type": "string", "pattern": "^a$"})

    def test_unknown_3_1_constructs_fail_loudly(self):
        for bad in ({"type": ["string", "integer"]}, {"type": "null"}, {"prefixItems": []}):
            with self.assertRaises(downconvert.Unsupported, msg=bad):
                downconvert.schema(bad)


class MediaTypeTests(unittest.TestCase):
    def tearDown(self):
        downconvert.JSON_MEDIA_TYPES = False

    def test_json_media_types_are_kept_by_default(self):
        content = {"application/merge-patch+json": {"schema": {"type": "object"}}}
        self.assertEqual(downconvert.media(content), content)

    def test_json_media_types_become_application_json_on_request(self):
        downconvert.JSON_MEDIA_TYPES = True
        converted = downconvert.media(
            {"application/problem+json": {"schema": {"type": ["string", "null"]}}, "text/html": {}}
        )
        self.assertEqual(
            converted, {"application/json": {"schema": {"type": "string", "nullable": True}}, "text/html": {}}
        )


class DocumentTests(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(ROOT, "openapi", "openapi.json"), encoding="utf-8") as f:
            self.original = json.load(f)
        self.converted = downconvert.document(self.original)

    def test_the_service_document_becomes_3_0_without_3_1_keywords(self):
        self.assertEqual(self.converted["openapi"], "3.0.3")
        self.assertNotIn("identifier", self.converted["info"].get("license", {}))
        text = json.dumps(self.converted)
        self.assertNotIn('{"type": "null"}', text)
        self.assertNotIn('"type": [', text)

    def test_every_operation_and_schema_is_kept(self):
        self.assertEqual(list(self.converted["paths"]), list(self.original["paths"]))
        self.assertEqual(list(self.converted["components"]["schemas"]), list(self.original["components"]["schemas"]))
        for path, item in self.original["paths"].items():
            self.assertEqual(set(item), set(self.converted["paths"][path]), path)

    def test_the_input_is_not_modified(self):
        with open(os.path.join(ROOT, "openapi", "openapi.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f), self.original)


if __name__ == "__main__":
    unittest.main()
