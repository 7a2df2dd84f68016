"""The spec syntax against the cases the gateway's Swift parser is held to
(Tests/cases/specs.json)."""
import json
from pathlib import Path

import pytest

from strategyd_bench.errors import UsageError
from strategyd_bench.specs import parse_spec

CASES = json.loads((Path(__file__).resolve().parents[3] / "Tests" / "cases" / "specs.json").read_text("utf-8"))


@pytest.mark.parametrize("case", CASES["parse"], ids=lambda case: case["text"] or "(empty)")
def test_parses(case):
    spec = parse_spec(case["text"], case["default_budget"])
    assert (spec.strategy, spec.params, spec.budget) == (case["strategy"], case["params"], case["budget"])
    # 8 and 8.0 compare equal in Python; the daemon's schema tells them apart.
    for key, value in case["params"].items():
        assert type(spec.params[key]) is type(value), key
    for key, value in case["budget"].items():
        assert type(spec.budget[key]) is type(value), key


@pytest.mark.parametrize("case", CASES["refuse"], ids=lambda case: case["text"] or "(empty)")
def test_refuses(case):
    with pytest.raises(UsageError):
        parse_spec(case["text"], case["default_budget"])
