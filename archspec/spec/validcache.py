"""Remembers documents that passed validation whole, so that costing an unchanged spec
again does not pay for importing jsonschema (about 70 ms of a 0.3 s command).

A document is known valid when a marker named by the SHA-256 of (the JSON Schema in force,
the merged document) exists in the cache folder. Only documents with no problem at all
are remembered, and only the JSON Schema pass is skipped: every other check still runs.
Folder: ``$ARCHSPEC_CACHE_DIR/validated``, else ``$XDG_CACHE_HOME/archspec/validated``,
else ``~/.cache/archspec/validated``; ``ARCHSPEC_CACHE_DIR=`` (empty) turns it off. A
folder that cannot be written is not used, silently (the cache only saves time).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def folder() -> Path | None:
    """Where markers live, or None when the cache is off."""
    env = os.environ.get("ARCHSPEC_CACHE_DIR")
    if env is not None:
        return Path(env) / "validated" if env else None
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(base) if base else Path.home() / ".cache") / "archspec" / "validated"
    except RuntimeError:  # no home folder
        return None


def key(schema_text: str, data) -> str | None:
    """The marker name for ``data`` under the schema; None if it has no JSON form."""
    try:
        doc = json.dumps(data, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(f"{schema_text}\0{doc}".encode()).hexdigest()


def known_valid(marker: str | None) -> bool:
    where = folder()
    return marker is not None and where is not None and (where / marker).is_file()


def remember(marker: str | None) -> None:
    where = folder()
    if marker is None or where is None:
        return
    try:
        where.mkdir(parents=True, exist_ok=True)
        (where / marker).touch()
    except OSError:
        pass
