"""Spec files: safe YAML reading, JSON Schema, tables to rows, semantic checks."""
from .loader import load, loads, resolve_path, schema
from .model import Row, Spec

__all__ = ["load", "loads", "resolve_path", "schema", "Row", "Spec"]
