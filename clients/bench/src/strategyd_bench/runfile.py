"""Run files: one JSONL record per (condition, problem), appended as each solve ends and
read back to resume and to report."""
from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Any, BinaryIO, Dict, List, Optional, Sequence, Tuple

from .errors import RunFileError, UsageError

if TYPE_CHECKING:
    from .data import Problem

Record = Dict[str, Any]


def read_run_file(path: Path, repair: bool = False) -> List[Record]:
    """The records of a run file. A broken last line (a run killed mid-write) is skipped
    with a warning, and with `repair` cut from the file, so appends start on a fresh line."""
    try:
        data = path.read_bytes()
    except OSError as error:  # a mistyped path must not report nothing
        raise RunFileError(f"{path}: {error.strerror or error}") from None
    records: List[Record] = []
    offset = 0  # where the current line starts
    lines = data.split(b"\n")
    complete = lines[:-1]  # the piece after the last newline is empty or a truncated line
    for number, line in enumerate(lines, 1):
        is_last = number == len(complete) + (1 if lines[-1] else 0)
        if line.strip():
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError:
                if not is_last:
                    raise RunFileError(f"{path}:{number}: not a JSON record; only a last line may be broken")
                print(f"{path}:{number}: dropping a truncated last line (an interrupted run)", file=sys.stderr)
                if repair:
                    with open(path, "r+b") as file:
                        file.truncate(offset)
                return records
            records.append(record)
        offset += len(line) + 1
    if repair and data and not data.endswith(b"\n"):
        with open(path, "ab") as file:  # a whole last record without its newline
            file.write(b"\n")
    return records


def record_key(record: Record) -> str:
    """What a record is the result of: one problem under one condition. A run (of one
    model) holds at most one record per key; resuming skips the keys already there."""
    return json.dumps([record["dataset"], record["problem_id"], *condition_of(record)], sort_keys=True)


def keep_first_success(by_key: Dict[str, Record], key: str, record: Record) -> None:
    """Keeps under `key` the first record of a solve that succeeded, else the first failure."""
    kept = by_key.get(key)
    if kept is None or (kept.get("error") is not None and record.get("error") is None):
        by_key[key] = record


def condition_of(record: Record) -> Tuple[Any, ...]:
    """Strategy and its version, params, budget and seed, and the versions of the plugins
    its params name (`uses`, where there are any): records that share them are one row of
    the table. A new version of a plugin is a new condition: resuming solves its problems
    again rather than mixing two versions' records in one row."""
    uses = record["strategy"].get("uses")
    return (record["strategy"]["name"], record["strategy"].get("version"), json.dumps(record["params"], sort_keys=True),
            json.dumps(record["budget"], sort_keys=True), record["seed"]) + ((json.dumps(uses, sort_keys=True),) if uses else ())


class RunFile:
    """The JSONL records of a run: read back (a truncated last line cut off) to resume, then
    appended one whole line per write, each flushed to disk before the next problem counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._open_locked()
        self.by_key = self._by_key(read_run_file(path, repair=True))

    @staticmethod
    def _by_key(records: Sequence[Record]) -> Dict[str, Record]:
        """Each key's record: a success over a failure, so that resuming does not run it again."""
        by_key: Dict[str, Record] = {}
        for record in records:
            keep_first_success(by_key, record_key(record), record)
        return by_key

    def _open_locked(self) -> BinaryIO:
        """The file for appending, unbuffered (one write() per record), locked against a
        second run appending to it at the same time; the lock ends with the process."""
        file = open(self.path, "ab", buffering=0)
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise UsageError(f"another strategyd-bench run is writing {self.path}") from None
        return file

    def close(self) -> None:
        self._file.close()

    def append(self, record: Record) -> None:
        self._file.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self._file.fileno())
        self.by_key[record_key(record)] = record

    def drop_errors(self, keys: AbstractSet[str]) -> int:
        """Removes the records of failed solves of `keys`, so that they run again; atomically.
        Rewritten from the file, not by_key: a success that shares its key with a failure stays."""
        records = read_run_file(self.path)
        kept = [record for record in records if record.get("error") is None or record_key(record) not in keys]
        dropped = len(records) - len(kept)
        if dropped:
            temporary = self.path.with_name(self.path.name + ".tmp")
            replacement = open(temporary, "wb", buffering=0)
            try:
                # Locked before it takes the path: no other run can lock the new file in between.
                fcntl.flock(replacement.fileno(), fcntl.LOCK_EX)
                replacement.write("".join(json.dumps(record, ensure_ascii=False) + "\n"
                                          for record in kept).encode("utf-8"))
                os.fsync(replacement.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                replacement.close()
                raise
            replaced, self._file = self._file, replacement
            replaced.close()
            self.by_key = self._by_key(kept)
        return dropped

    def check_problems(self, dataset: str, problems: Sequence["Problem"]) -> None:
        """Refuses to resume over records of another problem text (its data set file or the
        instruction added to it changed): they would stand for problems never sent."""
        fingerprints = {problem.id: problem.text_sha256 for problem in problems}
        for record in self.by_key.values():
            stored = record.get("problem_sha256")
            if record["dataset"] == dataset and stored and stored != fingerprints.get(record["problem_id"], stored):
                raise UsageError(f"{self.path} holds problem {record['problem_id']} of {dataset} as another text was "
                                 "solved (the data set or the instruction added to it changed): use another --out")

    def check_model(self, model: Dict[str, Optional[str]]) -> None:
        """Refuses to mix models in one file: resuming would skip problems another model solved."""
        for record in self.by_key.values():
            other = record["model"]
            if other["name"] != model["name"] or (other["sha256"] and model["sha256"]
                                                   and other["sha256"] != model["sha256"]):
                raise UsageError(f"{self.path} holds records of model {other['name']} (sha256 {other['sha256']}); "
                                 f"the daemon runs {model['name']} (sha256 {model['sha256']}): use another --out")
