"""How the interop scripts report: `@@ok <check>` per check that held, `@@mismatch <check>: <what>`
per field that did not (read by `bubus_test_support::peers::run_checks`)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import TypeAdapter, ValidationError

MISMATCHES: list[str] = []


def ok(check: str) -> None:
    print(f'@@ok {check}', flush=True)


def mismatch(check: str, what: str) -> None:
    MISMATCHES.append(f'{check}: {what}')
    print(f'@@mismatch {check}: {what}', flush=True)


def short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:300] + '…'


def accepts(result_type: Any, value: Any) -> bool:
    """Whether a result type (a Python type, as abxbus rebuilds one from a schema) takes `value`."""
    try:
        TypeAdapter(result_type).validate_python(value)
    except ValidationError:
        return False
    return True


def finish() -> None:
    """Exits 1 if any check did not hold."""
    if MISMATCHES:
        print(f'{len(MISMATCHES)} mismatches', file=sys.stderr)
        sys.exit(1)
