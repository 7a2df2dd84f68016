"""Strategy specs: NAME[:KEY=VALUE,...][@BUDGET], what one row of a run solves with (and
the `model` the gateway takes: Sources/Gateway/StrategySpec.swift, held to the same cases,
Tests/cases/specs.json).

Values read as integers, numbers, true/false, else strings; a "quoted" value is a JSON
string ("\\n\\n", " ки"); a {...} value is passed on as the JSON text it is
(scorer_params={"neutral":0.4}; commas inside braces or quotes do not split). BUDGET is
max_tokens=N,max_flops=F,timeout_s=T (any of them) and replaces --budget for that spec.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List

from .errors import UsageError

BUDGET_KEYS = ("max_tokens", "max_flops", "timeout_s")


@dataclass(frozen=True)
class Spec:
    label: str  # as written, with the --budget it runs under
    strategy: str
    params: Dict[str, Any]
    budget: Dict[str, Any]


def split_top_level(text: str, separator: str) -> List[str]:
    """`text` split at `separator`, except inside double quotes, braces and brackets."""
    parts: List[str] = []
    current: List[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_value(raw: str) -> Any:
    """A spec value: integer, number, true/false, a "JSON string", {JSON} or [JSON] kept as text, or a string."""
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f"{raw} is not a JSON string")
        return value
    if raw.startswith(("{", "[")):
        try:
            json.loads(raw)  # the plugin parses it; a typo is better caught here
        except json.JSONDecodeError:
            raise ValueError(f"{raw} is not JSON") from None
        return raw
    if raw in ("true", "false"):
        return raw == "true"
    if re.fullmatch(r"[+-]?[0-9]+", raw):
        value = int(raw)
        if not -2**63 <= value < 2**63:
            raise ValueError(f"{raw} is out of the 64-bit integer range")
        return value
    if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", raw):
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(f"{raw} is not a finite number")
        return number
    return raw


def parse_assignments(text: str, what: str) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for item in split_top_level(text, ","):
        key, equals, raw = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise UsageError(f"{what}: {item.strip()!r} is not KEY=VALUE")
        if key in values:
            raise UsageError(f"{what}: {key} given twice")
        try:
            values[key] = parse_value(raw.strip())
        except ValueError as error:
            raise UsageError(f"{what}: {key}: {error}") from None
    return values


def parse_budget(text: str) -> Dict[str, Any]:
    if not text.strip():
        return {}
    budget = parse_assignments(text, f"budget {text!r}")
    for key, value in budget.items():
        if key not in BUDGET_KEYS:
            raise UsageError(f"budget {text!r}: {key} is not one of {', '.join(BUDGET_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int if key == "max_tokens" else (int, float)):
            raise UsageError(f"budget {text!r}: {key} must be {'an integer' if key == 'max_tokens' else 'a number'}")
    return budget


def parse_spec(text: str, default_budget: str = "", default_params: str = "") -> Spec:
    """NAME[:KEY=VALUE,...][@BUDGET]; without its own @BUDGET a spec runs under `default_budget`,
    and it takes each of `default_params` (KEY=VALUE,...) it does not set itself, written into
    its label as if it had."""
    text = text.strip()
    pieces = split_top_level(text, "@")
    if len(pieces) > 2:
        raise UsageError(f"spec {text!r}: more than one @BUDGET")
    body = pieces[0]
    budget_text = pieces[1] if len(pieces) == 2 else default_budget
    name, _, params_text = body.partition(":")
    name = name.strip()
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise UsageError(f"spec {text!r}: {name!r} is not a strategy name")
    params = parse_assignments(params_text, f"spec {text!r}") if params_text.strip() else {}
    added = [item.strip() for item in split_top_level(default_params, ",") if item.strip()
             and item.partition("=")[0].strip() not in params] if default_params.strip() else []
    if added:
        params.update(parse_assignments(",".join(added), f"params {default_params!r}"))
        body = f"{body}{',' if params_text.strip() else ':'}{','.join(added)}"
    written = f"{body}@{pieces[1]}" if len(pieces) == 2 else body
    label = written if len(pieces) == 2 or not default_budget.strip() else f"{written}@{default_budget.strip()}"
    return Spec(label=label, strategy=name, params=params, budget=parse_budget(budget_text))
