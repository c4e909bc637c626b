"""The check of a row written before rows carried `check`: derived, once and only here, from the fields the
recipes stored then (`reference`, `options`, `tests`/`test_setup`/`test_imports`, the Dolly category)."""

from __future__ import annotations

import json

CODE_TIMEOUT = 20.0                           # seconds: the code recipe's --verify-timeout default
TEXT_MATCH_CATEGORIES = ("closed_qa", "classification")   # Dolly's categories with a checkable human answer
TEXT_MATCH_MIN_F1 = 0.5                       # Dolly's --min-f1 default


def derive_check(row: dict) -> dict | None:
    reference = row.get("reference")
    reference = None if reference is None or not str(reference).strip() else str(reference)
    tests = _decoded(row.get("tests"))
    if tests:
        return {"kind": "code", "tests": list(tests), "setup": row.get("test_setup") or "",
                "imports": list(_decoded(row.get("test_imports")) or []), "timeout": CODE_TIMEOUT}
    options = _decoded(row.get("options"))
    if options and reference:
        return {"kind": "choice", "options": options, "answer": reference}
    if reference and row.get("category") == "math":
        return {"kind": "math", "gold": reference}
    if reference and row.get("category") in TEXT_MATCH_CATEGORIES and _is_dolly(row):
        return {"kind": "text_match", "reference": reference, "min_f1": TEXT_MATCH_MIN_F1}
    return None


def _is_dolly(row: dict) -> bool:
    return str(row.get("id", "")).startswith("dolly/") or "dolly" in str(row.get("dataset") or "")


def _decoded(value):
    """A field as stored, or as text holding JSON (a parquet round trip stores lists and dicts as JSON)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value
