"""A small JSON Schema validator for the agent: the keywords the bundle schema uses, nothing more.

Boards run the agent with the standard library and numpy only, so the manifest schema
(schemas/manifest.schema.json, the same file the host tests check with jsonschema) is
applied here by hand. Keywords: $ref (to #/$defs), type, const, enum, required, properties,
additionalProperties, min/maxProperties, items, min/maxItems, minimum, maximum,
exclusiveMinimum, min/maxLength, pattern. Unknown keywords are refused when the schema loads,
so the schema cannot silently ask for more than this checks.
"""

import json
import re
from functools import cache
from pathlib import Path

_KNOWN = {
    "$schema", "$id", "$defs", "title", "description", "$ref", "type", "const", "enum", "required",
    "properties", "additionalProperties", "minProperties", "maxProperties", "items", "minItems",
    "maxItems", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "pattern",
}  # fmt: skip
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@cache
def load(name):
    """A schema shipped with the agent (edge_agent/schemas/NAME), checked for keywords this module knows."""
    schema = json.loads((Path(__file__).parent / "schemas" / name).read_text())  # Python 3.8 boards: no resources.files
    _check_keywords(schema)
    return schema


def errors(instance, schema, root=None, path="manifest"):
    """The first violation as "path: what is wrong", or None."""
    root = root or schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    for check in (_type, _value, _object, _array, _number, _string):
        found = check(instance, schema, root, path)
        if found:
            return found
    return None


def _type(value, schema, root, path):
    kinds = schema.get("type")
    if kinds is None:
        return None
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not any(_TYPES[k](value) for k in kinds):
        return f"{path}: must be {' or '.join(kinds)}, not {type(value).__name__}"
    return None


def _value(value, schema, root, path):
    if "const" in schema and not _same(value, schema["const"]):
        return f"{path}: must be {schema['const']!r}"
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return f"{path}: must be one of {', '.join(map(repr, schema['enum']))}"
    return None


def _same(a, b):
    return type(a) is type(b) and a == b


def _object(value, schema, root, path):
    if not isinstance(value, dict):
        return None
    for key in schema.get("required", ()):
        if key not in value:
            return f"{path}: missing field {key!r}"
    if len(value) < schema.get("minProperties", 0):
        return f"{path}: needs at least {schema['minProperties']} entries"
    if len(value) > schema.get("maxProperties", len(value)):
        return f"{path}: has {len(value)} entries, at most {schema['maxProperties']} allowed"
    properties, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = properties.get(key, extra)
        if sub is False:
            return f"{path}: unexpected field {key!r}"
        if isinstance(sub, dict):
            found = errors(item, sub, root, f"{path}.{key}")
            if found:
                return found
    return None


def _array(value, schema, root, path):
    if not isinstance(value, list):
        return None
    if len(value) < schema.get("minItems", 0):
        return f"{path}: needs at least {schema['minItems']} items"
    if len(value) > schema.get("maxItems", len(value)):
        return f"{path}: has {len(value)} items, at most {schema['maxItems']} allowed"
    if "items" in schema:
        for i, item in enumerate(value):
            found = errors(item, schema["items"], root, f"{path}[{i}]")
            if found:
                return found
    return None


def _number(value, schema, root, path):
    if not _TYPES["number"](value):
        return None
    if "minimum" in schema and not value >= schema["minimum"]:
        return f"{path}: {value!r} is below the minimum {schema['minimum']}"
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        return f"{path}: {value!r} must be more than {schema['exclusiveMinimum']}"
    if "maximum" in schema and not value <= schema["maximum"]:
        return f"{path}: {value!r} is above the maximum {schema['maximum']}"
    return None


def _string(value, schema, root, path):
    if not isinstance(value, str):
        return None
    if len(value) < schema.get("minLength", 0):
        return f"{path}: must not be empty" if schema["minLength"] == 1 else f"{path}: too short"
    if len(value) > schema.get("maxLength", len(value)):
        return f"{path}: longer than {schema['maxLength']} characters"
    if "pattern" in schema and not re.search(_anchored(schema["pattern"]), value):
        return f"{path}: {value[:80]!r} does not match {schema['pattern']}"
    return None


def _anchored(pattern):
    """JSON Schema's `$` ends the string; Python's also matches before a final newline."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern


def _check_keywords(node):
    if isinstance(node, dict):
        for key, sub in node.items():
            if key in ("properties", "$defs"):
                for inner in sub.values():
                    _check_keywords(inner)
            elif key not in _KNOWN:
                raise ValueError(f"schema keyword {key!r} is not supported by edge_agent.schema")
            elif isinstance(sub, (dict, list)) and key not in ("enum", "const", "required"):
                _check_keywords(sub)
    elif isinstance(node, list):
        for item in node:
            _check_keywords(item)
