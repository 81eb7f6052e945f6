"""Rendering of analysis results: rich tables, markdown, CSV (JSON lives on the results)."""
