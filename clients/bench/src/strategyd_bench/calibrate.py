"""The calibration file the `auto` strategy reads: from run files, per model (by sha256) and
data set, each spec's accuracy and mean FLOPs per problem, which specs are on the
compute-optimal frontier (the report's frontier, Pareto over accuracy and FLOPs), and each
problem's FLOPs and outcome (`solves`, cheapest first), from which auto reads what a spec
solves when a request's max_flops caps every solve.

    {"format": "strategyd-calibration/1",
     "models": [{"name", "sha256", "dataset",
                 "specs": [{"spec", "strategy", "params", "budget", "problems", "graded", "solved",
                            "accuracy", "mean_flops", "frontier",
                            "solves": [{"flops", "correct"}, ...]}, ...]}, ...]}

A spec measured under its own budget (NAME@BUDGET) is listed with it; auto does not choose
such specs, whose figures hold only under that budget. A budget that stopped none of its
solves (a generous timeout_s, say) shaped nothing: such records count as the bare spec's.
Every spec of a model is measured on the problems all its specs were graded on.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .errors import UsageError
from .report import deduplicated, pareto_frontier
from .runfile import read_run_file
from .specs import split_top_level

FORMAT = "strategyd-calibration/1"


@dataclass
class _Measured:
    spec: str
    strategy: str
    params: Dict[str, Any]
    budget: Dict[str, Any]
    problems: int
    solved: int
    graded: int  # problems of its own runs, of which `problems` were shared with every other spec
    solves: List[Dict[str, Any]]  # per shared problem: its FLOPs and whether it was solved, cheapest first

    @property
    def accuracy(self) -> float:
        return self.solved / self.problems


def _version(record: Dict[str, Any]) -> tuple:
    """The strategy's version, then those of the plugins its params name (a scorer's)."""
    def parts(version: Any) -> tuple:
        return tuple(int(part) if part.isdigit() else 0 for part in str(version or "0").split("."))
    uses = record["strategy"].get("uses") or {}
    return parts(record["strategy"].get("version")), tuple(parts(uses[name]) for name in sorted(uses))


def _stopped_by_its_budget(record: Dict[str, Any]) -> bool:
    return record.get("stopped_by") in (record.get("budget") or {})


def calibration(run_files: Sequence[Path], dataset: Optional[str] = None) -> Dict[str, Any]:
    # auto's own runs are not a strategy it could choose (it would call itself).
    records = [record for record in deduplicated(record for path in run_files for record in read_run_file(path))
               if record.get("error") is None and record.get("model", {}).get("sha256")
               and record["strategy"]["name"] != "auto"]
    if dataset is not None:
        records = [record for record in records if record["dataset"] == dataset]
    groups: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["model"]["sha256"], record["dataset"], record["spec"])].append(record)
    for key in [key for key, group in groups.items()
                if group[0].get("budget") and not any(map(_stopped_by_its_budget, group))]:
        bare = split_top_level(key[2], "@")[0]
        groups[(*key[:2], bare)].extend({**record, "spec": bare, "budget": {}} for record in groups.pop(key))
    chosen: Dict[tuple, Dict[str, Dict[Any, Dict[str, Any]]]] = defaultdict(dict)
    names: Dict[str, str] = {}
    for (sha256, data, spec), group in groups.items():
        # A spec run under several versions of its plugin: the newest stands for it (what would run now).
        newest = max(_version(record) for record in group)
        # One record per problem, the first: a bare spec and its non-binding budgets may share
        # some, and runs of other seeds fold into it.
        problems: Dict[Any, Dict[str, Any]] = {}
        for record in group:
            if _version(record) == newest:
                problems.setdefault(record["problem_id"], record)
        chosen[(sha256, data)][spec] = problems
        names[sha256] = group[0]["model"]["name"]
    per_model: Dict[tuple, List[tuple]] = defaultdict(list)
    for (sha256, data), by_spec in chosen.items():
        # Specs run on different samples are compared on the problems all of them were graded
        # on: an easier sample must not make a cheap spec look better than a dear one.
        common = set.intersection(*(set(problems) for problems in by_spec.values()))
        if not common:
            raise UsageError(f"the runs of {names[sha256]} on {data} share no problem "
                             f"({', '.join(sorted(by_spec))}): run the specs on one sample")
        for spec, problems in by_spec.items():
            group = [problems[problem_id] for problem_id in sorted(common)]
            first = group[0]
            solves = sorted(({"flops": record["metrics"]["flops"], "correct": bool(record["correct"])} for record in group),
                            key=lambda solve: (solve["flops"], solve["correct"]))
            measured = _Measured(spec, first["strategy"]["name"], first["params"], first.get("budget") or {}, len(group),
                                 sum(1 for record in group if record["correct"]), graded=len(problems), solves=solves)
            per_model[(sha256, data)].append((sum(record["metrics"]["flops"] for record in group) / len(group), measured))
    datasets_of = defaultdict(set)
    for sha256, data in per_model:
        datasets_of[sha256].add(data)
    for sha256, data in datasets_of.items():
        if len(data) > 1:
            raise UsageError(f"{names[sha256]} has runs on {', '.join(sorted(data))}: choose one with --dataset")
    models = []
    for (sha256, data), points in sorted(per_model.items(), key=lambda item: names[item[0][0]]):
        on_frontier = {id(measured) for _, measured in pareto_frontier(points)}
        specs = [{"spec": measured.spec, "strategy": measured.strategy, "params": measured.params, "budget": measured.budget,
                  "problems": measured.problems, "graded": measured.graded, "solved": measured.solved,
                  "accuracy": measured.accuracy,
                  "mean_flops": flops, "frontier": id(measured) in on_frontier, "solves": measured.solves}
                 for flops, measured in sorted(points, key=lambda point: point[0])]
        models.append({"name": names[sha256], "sha256": sha256, "dataset": data, "specs": specs})
    if not models:
        raise UsageError("the run files hold no graded records with a model sha256")
    return {"format": FORMAT, "models": models}


def write_calibration(run_files: Sequence[Path], out: Path, dataset: Optional[str] = None) -> Dict[str, Any]:
    result = calibration(run_files, dataset)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return result
