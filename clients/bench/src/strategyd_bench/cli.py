"""strategyd-bench: runs inference strategies over a maths data set through strategyd, grades
every answer and reports accuracy per FLOP.

    strategyd-bench run --dataset gsm8k-test --sample 128 --seed 0 \\
        --strategy greedy --strategy 'rebase:width=8,scorer=arith' --out runs/1.5b.jsonl
    strategyd-bench run --preset paper --out runs/paper.jsonl [--only rebase] [--limit 32]
    strategyd-bench report runs/paper.jsonl --out-dir runs/paper
    strategyd-bench calibrate runs/paper.jsonl --out calibration.json   # for the auto strategy

A strategy spec is NAME[:KEY=VALUE,...][@BUDGET]. Values read as integers, numbers,
true/false, else strings; a "quoted" value is a JSON string ("\\n\\n", " ки"); a {...} value
is passed on as the JSON text it is (scorer_params={"neutral":0.4}; commas inside braces
or quotes do not split). BUDGET is max_tokens=N,max_flops=F,timeout_s=T (any of them) and
replaces --budget for that spec.

Each (spec, problem) gives one JSONL record in --out, written and fsync'd as soon as it is
known. Running the same command again resumes: problems already recorded are skipped,
unless the strategy's plugin, or a plugin its params name (a scorer), has a new version
since (then they are solved again, a row of their own in the report).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from strategyd_client import Client, DaemonNotRunning, StrategydError

from . import cluster
from .calibrate import write_calibration
from .data import DATA_PACKAGE, DATASETS, Problem, default_data_dir, load_dataset, select_problems
from .errors import MissingMatplotlib, RunFileError, UnknownBaseline, UsageError
from .grading import require_math_verify
from .presets import PRESETS
from .report import write_report
from .run import (RunContext, backend_identity, check_strategies, git_state, model_identity, problem_key,
                  run_spec)
from .runfile import RunFile
from .specs import Spec, parse_spec


def resolve_specs(args: argparse.Namespace) -> List[Spec]:
    if args.preset and args.strategy:
        raise UsageError("give --preset or --strategy, not both")
    texts = PRESETS[args.preset].specs if args.preset else args.strategy
    if not texts:
        raise UsageError("give at least one --strategy SPEC, or --preset paper")
    specs = [parse_spec(text, args.budget or "", args.params or "") for text in texts]
    if args.only:
        unknown = sorted(set(args.only) - {spec.strategy for spec in specs})
        if unknown:
            raise UsageError(f"--only {', '.join(unknown)}: not among the strategies "
                             f"{', '.join(sorted({spec.strategy for spec in specs}))}")
        specs = [spec for spec in specs if spec.strategy in args.only]
    return specs


def command_run(args: argparse.Namespace) -> int:
    preset = PRESETS[args.preset] if args.preset else None
    dataset = args.dataset or (preset.dataset if preset else "gsm8k-test")
    sample = args.sample if args.sample is not None or preset is None else preset.sample
    specs = resolve_specs(args)
    problems = select_problems(load_dataset(dataset, Path(args.data_dir) if args.data_dir else default_data_dir()),
                               sample, args.seed, args.offset, args.limit)
    seed = args.solve_seed if args.solve_seed is not None else args.seed
    given = [flag for flag, value in (("--ray-model", args.ray_model), ("--ray-threads", args.ray_threads),
                                      ("--ray-checkout", args.ray_checkout), ("--ray-bin", args.ray_bin),
                                      ("--ray-daemon-arg", args.ray_daemon_arg)) if value]
    if given and args.ray is None:
        raise UsageError(f"{', '.join(given)} without --ray")
    # Any answer can be an expression that only math-verify grades: a missing library
    # fails the run here, not at the first such answer hours in.
    require_math_verify()
    run_file = RunFile(Path(args.out))
    try:
        if args.ray is not None:
            return _run_on_ray(args, dataset, seed, specs, problems, run_file)
        with Client(args.socket) as client:
            versions = check_strategies(client, specs)
            commit, dirty = git_state(Path(args.out))
            status = client.status(timeout=60)
            # By default as many solves in flight as the daemon runs at once: its scheduler
            # batches their decodes, which is what fills the machine.
            concurrency = args.concurrency or int(status.limits.get("max_concurrent_solves", 1))
            context = RunContext(dataset=dataset, seed=seed, model=model_identity(client),
                                 daemon_version=status.version, commit=commit, dirty=dirty,
                                 command=shlex.join(["strategyd-bench", *args.argv]), concurrency=concurrency,
                                 strategy_versions=versions, backend=backend_identity(status),
                                 solve_timeout=status.limits.get("max_timeout_s"))
            run_file.check_model(context.model)
            run_file.check_problems(dataset, problems)
            if args.retry_errors:
                keys = {problem_key(context, spec, problem) for spec in specs for problem in problems}
                print(f"strategyd-bench: {run_file.drop_errors(keys)} failed records removed, to run again",
                      file=sys.stderr)
            for number, spec in enumerate(specs, 1):
                run_spec(client, spec, problems, run_file, context, f"[{number}/{len(specs)}] {spec.label}",
                         concurrency, args.timeout)
    finally:
        run_file.close()
    return 0


def _run_on_ray(args: argparse.Namespace, dataset: str, seed: int, specs: List[Spec], problems: List[Problem],
                run_file: RunFile) -> int:
    ray = cluster.import_ray()
    checkout = args.ray_checkout or cluster.default_checkout()
    if args.ray_model and checkout is None:
        raise UsageError("--ray-model needs --ray-checkout DIR (the strategyd checkout on every node)")
    model = args.ray_model
    if model and ("/" in model or model.endswith(".gguf")):
        model = str(Path(model).resolve())  # the same file on every node, whatever their working folders
    setup = cluster.NodeSetup(model=model, threads=args.ray_threads, checkout=checkout,
                              bin_dir=args.ray_bin, daemon_args=tuple(args.ray_daemon_arg))
    commit, dirty = git_state(Path(args.out))
    # Filled in per node (model, build, threads, limits) once the nodes answer.
    base = RunContext(dataset=dataset, seed=seed, model={}, daemon_version="", commit=commit, dirty=dirty,
                      command=shlex.join(["strategyd-bench", *args.argv]), concurrency=0, strategy_versions={},
                      backend={})
    cluster.ray_init(ray, args.ray or None)
    nodes: List[cluster.Node] = []
    try:
        nodes = cluster.start_nodes(ray, setup)
        cluster.run_on_ray(ray, nodes, specs, problems, run_file, base, args.concurrency, args.timeout,
                           args.retry_errors)
    finally:
        cluster.stop_nodes(ray, nodes)
        ray.shutdown()
    return 0


def command_report(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir) if args.out_dir else None
    print(write_report([Path(path) for path in args.runs], out_dir, plot=not args.no_plot, baseline=args.baseline),
          end="")
    if out_dir is not None:
        print(f"strategyd-bench: wrote {out_dir / 'report.md'}" + ("" if args.no_plot else " and the plots"),
              file=sys.stderr)
    return 0


def command_calibrate(args: argparse.Namespace) -> int:
    result = write_calibration([Path(path) for path in args.runs], Path(args.out), args.dataset)
    for model in result["models"]:
        frontier = [spec for spec in model["specs"] if spec["frontier"]]
        for spec in model["specs"]:
            if spec["graded"] > spec["problems"]:
                print(f"strategyd-bench: {model['name']}: {spec['spec']} measured on {spec['problems']} of its "
                      f"{spec['graded']} problems, those every spec shares", file=sys.stderr)
        print(f"{model['name']} ({model['sha256'][:12]}), {model['dataset']}: {len(model['specs'])} specs, frontier:")
        for spec in frontier:
            print(f"  {spec['spec']}: {spec['solved']}/{spec['problems']} at {spec['mean_flops']:.3g} FLOPs")
    print(f"strategyd-bench: wrote {args.out}", file=sys.stderr)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strategyd-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="solve a data set's problems with strategies, one JSONL record each",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.set_defaults(handler=command_run)
    run.add_argument("--out", required=True, metavar="FILE.jsonl",
                     help="the JSONL run file: appended to, and resumed from")
    run.add_argument("--strategy", action="append", default=[], metavar="SPEC",
                     help="NAME[:KEY=VALUE,...][@BUDGET], repeatable (see above)")
    run.add_argument("--preset", choices=sorted(PRESETS),
                     help="a set of specs: paper = greedy, self-consistency, rebase, quiet-star and quiet-rebase "
                          "(faithful and anchored) at several budgets, on --sample 128 of gsm8k-test by default")
    run.add_argument("--only", action="append", default=[], metavar="NAME",
                     help="run only the specs of this strategy (repeatable)")
    run.add_argument("--dataset", choices=DATASETS, help="default: gsm8k-test (or the preset's)")
    run.add_argument("--data-dir", metavar="DIR",
                     help=f"where DATASET.jsonl is (default: the strategyd cache's data/{DATA_PACKAGE})")
    run.add_argument("--sample", type=_positive, metavar="N", help="a seeded sample of N problems (by --seed)")
    run.add_argument("--seed", type=_non_negative, default=0, metavar="S",
                     help="seed of the sample and of every solve (default 0)")
    run.add_argument("--solve-seed", type=_non_negative, metavar="S", help="seed of the solves, if not --seed")
    run.add_argument("--offset", type=_non_negative, default=0, metavar="N",
                     help="skip the first N problems (of the sample)")
    run.add_argument("--limit", type=_positive, metavar="N", help="then take at most N problems")
    run.add_argument("--budget", metavar="BUDGET",
                     help="max_tokens=N,max_flops=F,timeout_s=T for every spec without its own @BUDGET")
    run.add_argument("--params", metavar="KEY=VALUE,...",
                     help="params for every spec that does not set them itself (its label then names them), "
                          "such as max_tokens=1024 where solutions are long")
    run.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="seconds to wait for one solve; then it is cancelled and recorded as failed "
                          "(default: no limit)")
    run.add_argument("--concurrency", type=_positive, metavar="N",
                     help="solves in flight at once (default: as many as the daemon runs at once, its "
                          "max_concurrent_solves); the daemon batches their steps together, for more problems "
                          "per hour, but each solve's wall time then includes the others' steps (the report "
                          "marks such rows); 1 for wall times of solves alone")
    run.add_argument("--retry-errors", action="store_true", help="run again the problems whose solve failed")
    run.add_argument("--socket", help="the daemon's socket (default: STRATEGYD_SOCKET, then the standard path)")
    ray = run.add_argument_group("over a Ray cluster (docs/scaling.md)")
    ray.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="solve on every node of the Ray cluster at ADDRESS (default: RAY_ADDRESS, else the "
                          "cluster on this host, else one started for the run), one daemon per node; "
                          "--concurrency is then per node")
    ray.add_argument("--ray-model", metavar="NAME|PATH",
                     help="each node starts its own daemon on this catalog model (fetched, hash-checked, into "
                          "the node's cache) or GGUF path; default: attach to each node's running daemon")
    ray.add_argument("--ray-threads", type=_positive, metavar="N",
                     help="threads of each node's own daemon (default: the node's cores)")
    ray.add_argument("--ray-checkout", metavar="DIR",
                     help="the strategyd checkout, at this path on every node (default: this one)")
    ray.add_argument("--ray-bin", metavar="DIR",
                     help="strategyd and its plugins on every node (default: CHECKOUT/.build/release)")
    ray.add_argument("--ray-daemon-arg", action="append", default=[], metavar="ARG",
                     help="an argument for each node's own daemon, such as --context-size=8192 (repeatable)")

    report = commands.add_parser("report", help="the Markdown table, frontier and plot of run files")
    report.set_defaults(handler=command_report)
    report.add_argument("runs", nargs="+", metavar="RUN.jsonl")
    report.add_argument("--out-dir", metavar="DIR", help="write report.md and frontier-DATASET.png/.svg there")
    report.add_argument("--no-plot", action="store_true", help="no plot (matplotlib not needed)")
    report.add_argument("--baseline", metavar="SPEC",
                        help="compare every condition with this one problem by problem (its spec as in the table; "
                             "default: greedy)")

    calibrate = commands.add_parser("calibrate", help="the calibration file the auto strategy reads, from run files")
    calibrate.set_defaults(handler=command_calibrate)
    calibrate.add_argument("runs", nargs="+", metavar="RUN.jsonl")
    calibrate.add_argument("--out", required=True, metavar="FILE.json")
    calibrate.add_argument("--dataset", choices=DATASETS, help="the data set to calibrate on, where runs hold several")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    args.argv = arguments
    try:
        return int(args.handler(args))
    except (UsageError, RunFileError, MissingMatplotlib, UnknownBaseline) as error:
        print(f"strategyd-bench: {error}", file=sys.stderr)
        return 2
    except DaemonNotRunning as error:
        print(f"strategyd-bench: {error.hint}", file=sys.stderr)
        return 1
    except StrategydError as error:
        print(f"strategyd-bench: stopped: {error}. Finished problems are recorded; "
              "run the same command again to resume.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstrategyd-bench: interrupted. Finished problems are recorded; "
              "run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

