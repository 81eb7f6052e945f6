"""The JSON Schema of spec files: the document's shape as written in schema.json, and the
row fields (their names, types and ranges) generated from the blocks' field declarations,
so a field a block declares is known to the schema as soon as the block is registered.

``python -m archspec.spec.generate`` writes the generated part into schema.json for
editors; the loader always uses the registry's current declarations."""
from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from ..blocks.fields import Field

SCHEMA_FILE = Path(__file__).with_name("schema.json")
ROW_KEYS = ("block", "name", "from")  # row keys that are not block fields (schema.json);
# `name` and `from` are for `heads` entries
GENERATED = ("generated from the block registry (each block's field declarations): "
             "python -m archspec.spec.generate")


@lru_cache(maxsize=1)
def _written() -> str:
    return SCHEMA_FILE.read_text()


def build(fields: dict[str, Field]) -> dict:
    """The full schema: schema.json with its row fields replaced by ``fields``
    (name -> declaration)."""
    full = json.loads(_written())
    defs = full["$defs"]
    keys = {k: defs["fields"]["properties"][k] for k in ROW_KEYS}
    defs["fieldname"] = {"$comment": GENERATED, "enum": [*ROW_KEYS, *fields]}
    defs["fields"] = {**defs["fields"], "$comment": GENERATED,
                      "properties": {**keys, **{k: field_schema(f) for k, f in fields.items()}}}
    return full


def field_schema(f: Field) -> dict:
    """One field's schema, described by the doc it was declared with."""
    return {**f.schema(), "description": f.shared_doc or f.doc}


def integer_fields(fields: Iterable[Field]) -> frozenset:
    """The names of the fields that take whole numbers."""
    return frozenset(f.name for f in fields if f.type is int)
