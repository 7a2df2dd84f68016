"""Solving a run's problems through the daemon: one record per (spec, problem), each
graded and appended to the run file as soon as it is known, with what it takes to tell
records apart later (the model, the llama.cpp build, the commit, the command)."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from strategyd_client import Client, SolveResult, Status
from strategyd_client.errors import (Busy, ConnectionLost, DaemonNotRunning, InvalidParams, InvalidRequest,
                                     MethodNotFound, NotPermitted, ParseError, ProtocolError, RequestTimeout,
                                     RPCError, ShuttingDown, UnknownPlugin)

from .data import Problem
from .errors import UsageError
from .grading import is_correct
from .report import format_flops
from .runfile import Record, RunFile, record_key
from .specs import Spec

# The daemon hashes its model file in the background after it starts; sha256 is null until then.
MODEL_HASH_WAIT_S = 10.0
BUSY_RETRY_S = 1.0
# Failures of the run rather than of one problem: recording them for every remaining problem
# would only have to be undone, so the run stops and a re-run resumes.
FATAL_ERRORS = (DaemonNotRunning, ConnectionLost, ProtocolError, ParseError, InvalidRequest, MethodNotFound,
                InvalidParams, UnknownPlugin, NotPermitted, ShuttingDown)


@dataclass(frozen=True)
class RunContext:
    """What every record of this run shares."""
    dataset: str
    seed: int
    model: Dict[str, Optional[str]]
    daemon_version: str
    commit: Optional[str]
    dirty: Optional[bool]
    command: str
    concurrency: int  # solves in flight at once: above 1 each wall time includes the others' steps
    strategy_versions: Dict[str, str]  # of the plugins the specs name, as loaded when the run started
    backend: Dict[str, Any]  # llama.cpp build, CPU kernels, threads: seeded samples repeat only where all match
    # Seconds each solve may run unless its spec's budget says: the daemon's maximum, since a
    # solve of a sweep shares every step with the others in flight (not part of the record's budget).
    solve_timeout: Optional[float] = None


def git_state(run_file: Optional[Path] = None) -> Tuple[Optional[str], Optional[bool]]:
    """HEAD of the repository of the working directory (else of this package's source tree)
    and whether tracked files other than run files differ from it; (None, None) outside git.
    The run file and the other JSONL files of its folder (the run files of other models,
    as in docs/results/gsm8k-paper-table) are left out: committed ones grow as runs go, and records
    are not code; a restart would otherwise call its own records dirty."""
    for directory in (Path.cwd(), Path(__file__).resolve().parent):
        try:
            head = subprocess.run(["git", "rev-parse", "HEAD", "--show-toplevel"], cwd=directory,
                                  capture_output=True, text=True, timeout=30)
            if head.returncode != 0:
                continue
            commit, top = head.stdout.split("\n")[:2]
            pathspec = []
            if run_file is not None:
                try:
                    inside = run_file.resolve().relative_to(Path(top).resolve())
                    pathspec = ["--", ":/", f":(top,exclude){inside.as_posix()}",
                                f":(top,exclude,glob){(inside.parent / '*.jsonl').as_posix()}"]
                except ValueError:
                    pass
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *pathspec],
                                    cwd=directory, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        return commit, bool(status.stdout.strip()) if status.returncode == 0 else None
    return None, None


def model_identity(client: Client) -> Dict[str, Optional[str]]:
    deadline = time.monotonic() + MODEL_HASH_WAIT_S
    info = client.models_info()
    while info.sha256 is None and time.monotonic() < deadline:
        time.sleep(0.5)
        info = client.models_info()
    if info.sha256 is None:
        print("strategyd-bench: the daemon does not know its model's sha256 yet; records say null",
              file=sys.stderr)
    return {"name": info.name, "sha256": info.sha256}


def backend_identity(status: Status) -> Dict[str, Any]:
    """The llama.cpp build, its threads, and whether the daemon's numerics are batch-invariant
    (only then does a seeded solve run beside others repeat one run alone)."""
    return {**status.model.backend, "threads": status.model.extra.get("threads"), "deterministic": status.deterministic}


def check_strategies(client: Client, specs: Sequence[Spec]) -> Dict[str, str]:
    """Every spec names a loaded strategy and only params of its schema: fail before solving.
    Returns the version of each strategy named, and of each plugin the specs' params name."""
    loaded = client.plugins()
    plugins = {plugin.name: plugin for plugin in loaded if plugin.kind == "strategy"}
    for spec in specs:
        plugin = plugins.get(spec.strategy)
        if plugin is None:
            raise UsageError(f"{spec.label}: strategyd has no strategy {spec.strategy!r}; "
                             f"loaded: {', '.join(sorted(plugins))}")
        # A param may go by a name its schema declares as an alias (the daemon maps it to the
        # param's own name): specs keep the names they were run with, and so resume.
        names = set(plugin.params_schema) | {alias for entry in plugin.params_schema.values()
                                             if isinstance(entry, dict) for alias in entry.get("aliases") or ()}
        unknown = sorted(set(spec.params) - names)
        if unknown:
            raise UsageError(f"{spec.label}: {spec.strategy} has no param {', '.join(unknown)}; "
                             f"its params: {', '.join(sorted(plugin.params_schema))}")
    versions = {plugin.name: plugin.version for plugin in loaded}
    return {name: versions[name] for spec in specs for name in [spec.strategy, *plugins_named(spec, versions)]}


def plugins_named(spec: Spec, loaded: Iterable[str]) -> List[str]:
    """The loaded plugins other than its strategy that a spec's params name (best-of-n's
    scorer, combine's scorers). Their versions are part of the spec's condition: a new
    scorer changes a solve's outcome or cost as a new strategy does."""
    names = set(loaded) - {spec.strategy}
    found: set = set()

    def visit(value: Any) -> None:
        if isinstance(value, str):
            # Any word of the text: a list ("arith:0.5,logprob") or JSON ({"scorers": "arith"}).
            found.update(word for word in re.split(r"[^\w-]+", value) if word in names)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(spec.params)
    return sorted(found)


def plugins_used(context: RunContext, spec: Spec) -> Dict[str, Any]:
    """The record's `strategy` entry for the other plugins a spec names, with the versions
    the run started with: {"uses": {name: version}}, nothing where it names none (so that
    the keys of such specs' records stay what they were)."""
    uses = {name: context.strategy_versions.get(name) for name in plugins_named(spec, context.strategy_versions)}
    return {"uses": uses} if uses else {}


def _solved(result: SolveResult) -> Record:
    """A solve's outcome, not yet graded (graded() grades it in the run's main thread)."""
    metrics = {field.name: getattr(result.metrics, field.name)
               for field in dataclasses.fields(result.metrics) if field.name != "extra"}
    return {
        "strategy": {"name": result.strategy.name, "version": result.strategy.version,
                     "generation": result.strategy.generation},
        "answer": result.answer, "correct": None,
        "budget_exhausted": result.budget_exhausted, "stopped_by": result.stopped_by,
        "metrics": {**metrics, **result.metrics.extra},
        # Each candidate's tally in the daemon's vote, so that the report need not vote again.
        "candidates": [{"answer": c.answer, "score": c.score, "votes": c.votes, "vote_weight": c.vote_weight}
                       for c in result.candidates],
        "text": result.text,
        # What the strategy says of its solve (what it chose, each signal it measured), for
        # studies that read more than the answer.
        "details": result.details,
        "error": None,
    }


def failed(spec: Spec, version: Optional[str], error: Exception) -> Record:
    """The outcome of a solve that failed: its error, no answer."""
    return {
        "strategy": {"name": spec.strategy, "version": version, "generation": None},
        "answer": None, "correct": None, "budget_exhausted": None, "stopped_by": None, "metrics": None,
        "candidates": None, "text": None, "details": None,
        "error": error_of(error),
    }


def error_of(error: Exception) -> Dict[str, Any]:
    """A record's account of what failed."""
    return {"type": type(error).__name__, "code": getattr(error, "code", None), "message": str(error)}


def graded(record: Record) -> Record:
    """The record with its answer graded. Runs call it in their main thread, where
    math-verify can enforce its time limit; a grading bug costs this problem, not the run
    (it is solved again at every resume)."""
    if record["error"] is not None:
        return record
    try:
        return {**record, "correct": is_correct(record["answer"], record["gold"])}
    except UsageError:
        raise  # math-verify missing: no problem can be graded
    except Exception as error:
        return {**record, "correct": None, "error": error_of(error)}


def solve_problem(client: Client, spec: Spec, problem: Problem, context: RunContext, timeout: Optional[float],
                  stopping: threading.Event) -> Record:
    """The record of one problem: its result, or the error of a solve that failed."""
    while True:
        try:
            budget = dict(spec.budget)
            if context.solve_timeout is not None:
                budget.setdefault("timeout_s", context.solve_timeout)
            outcome = _solved(client.solve(problem.text, spec.strategy, spec.params, budget or None,
                                           context.seed, timeout=timeout))
            break
        except Busy:  # other clients hold the daemon's solve slots: wait for one, unless the run stops
            if stopping.wait(BUSY_RETRY_S):
                raise ConnectionLost("the run stopped while waiting for a solve slot") from None
        except FATAL_ERRORS:
            raise
        except (RPCError, RequestTimeout) as error:
            outcome = failed(spec, context.strategy_versions.get(spec.strategy), error)
            break
    return problem_record(context, spec, problem, outcome)


def problem_record(context: RunContext, spec: Spec, problem: Problem, outcome: Record) -> Record:
    """A problem's record: what it was, its outcome, and what the run shares."""
    return {
        "dataset": context.dataset, "problem_id": problem.id, "source_id": problem.source_id,
        "problem_sha256": problem.text_sha256,
        "spec": spec.label, "params": spec.params, "budget": spec.budget, "seed": context.seed,
        "gold": problem.gold, **outcome, "strategy": {**outcome["strategy"], **plugins_used(context, spec)},
        "model": context.model, "backend": context.backend, "daemon_version": context.daemon_version,
        "commit": context.commit, "dirty": context.dirty, "command": context.command,
        "concurrency": context.concurrency, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --- progress -----------------------------------------------------------------------------

class Tally:
    """Running accuracy and mean FLOPs of one spec."""

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.graded = self.correct = self.errors = 0
        self.flops = 0.0
        for record in records:
            self.add(record)

    def add(self, record: Record) -> None:
        if record.get("error") is not None:
            self.errors += 1
            return
        self.graded += 1
        self.correct += bool(record["correct"])
        self.flops += record["metrics"]["flops"]

    def summary(self) -> str:
        text = (f"acc {100 * self.correct / self.graded:.1f} % ({self.correct}/{self.graded}), "
                f"{format_flops(self.flops / self.graded)} FLOPs/problem") if self.graded else "acc —"
        return text + (f", {self.errors} failed" if self.errors else "")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """A tqdm bar when tqdm is installed, else a plain line on stderr: done/total, running
    accuracy, mean FLOPs, ETA, and the problems each node solved when a run spans nodes."""

    def __init__(self, description: str, total: int, done: Sequence[Record]) -> None:
        self.description, self.total, self.done, self.new = description, total, len(done), 0
        self.tally = Tally(done)
        self.by_node: Dict[str, int] = {}
        self.started = time.monotonic()
        self.interactive = sys.stderr.isatty()
        try:
            from tqdm import tqdm  # type: ignore
        except ImportError:
            self.bar = None
            self._print()
        else:
            self.bar = tqdm(total=total, initial=self.done, desc=description, unit="problem", file=sys.stderr,
                            dynamic_ncols=True)
            self.bar.set_postfix_str(self.tally.summary())

    def summary(self) -> str:
        nodes = ", ".join(f"{node} {count}" for node, count in sorted(self.by_node.items()))
        return self.tally.summary() + (f" | by node: {nodes}" if nodes else "")

    def update(self, record: Record) -> None:
        self.tally.add(record)
        if record.get("node"):
            self.by_node[record["node"]] = self.by_node.get(record["node"], 0) + 1
        self.done += 1
        self.new += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self.summary(), refresh=False)
            self.bar.update(1)
        else:
            self._print()

    def _print(self) -> None:
        left = self.total - self.done
        if not left:
            eta = "done"
        elif self.new:
            eta = _duration((time.monotonic() - self.started) / self.new * left)
        else:
            eta = "?"  # nothing solved by this process yet to time
        line = f"{self.description}: {self.done}/{self.total} | {self.summary()} | ETA {eta}"
        if self.interactive:  # redraw one line; close() ends it
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.interactive:
            print(file=sys.stderr)


# --- one spec over the problems -----------------------------------------------------------

def run_spec(client: Client, spec: Spec, problems: Sequence[Problem], run_file: RunFile, context: RunContext,
             description: str, concurrency: int, timeout: Optional[float]) -> None:
    keys = [problem_key(context, spec, problem) for problem in problems]
    todo = [problem for problem, key in zip(problems, keys) if key not in run_file.by_key]
    progress = Progress(description, len(problems), [run_file.by_key[key] for key in keys if key in run_file.by_key])
    stopping = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="solve") as pool:
            futures = [pool.submit(solve_problem, client, spec, problem, context, timeout, stopping)
                       for problem in todo]
            unwritten = set(futures)
            try:
                for future in as_completed(futures):
                    unwritten.discard(future)
                    record = graded(future.result())
                    run_file.append(record)
                    progress.update(record)
            except BaseException:
                stopping.set()
                for future in futures:
                    future.cancel()
                client.close()  # the daemon cancels the solves in flight; their workers end at once
                # Solves that finished before as_completed got to them are not lost with the run.
                for future in futures:
                    if future in unwritten and future.done() and not future.cancelled() and future.exception() is None:
                        run_file.append(graded(future.result()))
                raise
    finally:
        progress.close()


def problem_key(context: RunContext, spec: Spec, problem: Problem) -> str:
    strategy = {"name": spec.strategy, "version": context.strategy_versions.get(spec.strategy),
                **plugins_used(context, spec)}
    return record_key({"dataset": context.dataset, "problem_id": problem.id, "strategy": strategy,
                       "params": spec.params, "budget": spec.budget, "seed": context.seed})

