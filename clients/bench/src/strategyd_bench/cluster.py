"""Sweeps over a Ray cluster (`strategyd-bench run --ray [ADDRESS]`, docs/scaling.md).

One actor per node owns that node's strategyd: it starts one on a private socket, on a
catalog model it fetches (hash-checked, into the node's cache), or attaches to the daemon
already at the node's standard socket. The driver sends each actor as many problems at
once as its daemon runs (the daemon batches them), takes results as they come
(`ray.wait`) and alone writes the run file, one flushed record each: resuming is the same
as for one daemon. A node lost mid-run gives its problems in flight back to the queue, for
the others; nodes whose model, llama.cpp build or plugins differ refuse the run.

Ray is an optional dependency (`pip install 'strategyd-bench[ray]'`): imported only here,
only for --ray.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from strategyd_client import Client, StrategydError
from strategyd_client.errors import ConnectionLost, DaemonNotRunning, ShuttingDown

from .cache import model_path
from .data import Problem
from .errors import UsageError
from .run import (Progress, RunContext, backend_identity, check_strategies, failed, graded, model_identity,
                  problem_key, problem_record, solve_problem)
from .runfile import Record, RunFile
from .specs import Spec

RAY_VERSION = "2.60.0"
# A node's daemon is gone, rather than the run's specs being wrong: its problems go elsewhere.
NODE_LOST = (DaemonNotRunning, ConnectionLost, ShuttingDown)
# A problem whose solve was in flight on this many lost nodes is recorded as failed rather
# than handed to another: a problem that kills daemons must not take the whole cluster.
LOSSES_PER_PROBLEM = 2
# Loading a model takes seconds; fetching one the node lacks, minutes.
DAEMON_START_TIMEOUT_S = 600.0
PR_SET_PDEATHSIG = 1
# More than the daemon's most concurrent solves (64), so that identity calls never wait.
ACTOR_THREADS = 80


class NodesLost(StrategydError):
    """Every node's daemon is lost: the run stops (finished problems are recorded)."""


@dataclass(frozen=True)
class NodeSetup:
    """How each node's actor gets its daemon. With `model`, it starts its own on a private
    socket from the checkout's build; without, it attaches to the node's standard socket
    (STRATEGYD_SOCKET of the node's Ray processes, else the standard path)."""
    model: Optional[str] = None
    threads: Optional[int] = None
    checkout: Optional[str] = None  # the strategyd checkout, at the same path on every node
    bin_dir: Optional[str] = None  # strategyd and its plugins (default: CHECKOUT/.build/release)
    daemon_args: Tuple[str, ...] = ()


def default_checkout() -> Optional[str]:
    """This source tree's checkout, when the harness runs from one."""
    root = Path(__file__).resolve().parents[4]
    return str(root) if (root / "scripts" / "fetch.py").is_file() else None


def wait_ready(process: "subprocess.Popen[bytes]", socket_path: str, log_path: Path, timeout: float,
               who: str = "strategyd") -> None:
    """Until the daemon answers ping and knows its model's sha256 (which a run's records
    carry); raises RuntimeError with its log's tail if it exits first, or after `timeout`."""
    with Client(socket_path, connect_timeout=2) as client:
        if client.wait_ready(timeout, alive=lambda: process.poll() is None, model_hash=True):
            return
    if process.poll() is not None:
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"{who} exited with {process.returncode} while starting:\n" + "\n".join(tail))
    raise RuntimeError(f"{who} was not ready within {timeout:.0f} s (log: {log_path})")


class NodeDaemon:
    """The body of each node's actor (wrapped by ray.remote when a run starts)."""

    def __init__(self, setup: NodeSetup) -> None:
        self.host = socket.gethostname()
        self.stopping = threading.Event()
        self.process: Optional["subprocess.Popen[bytes]"] = None
        self.folder: Optional[Path] = None
        self.socket_path = self._start(setup) if setup.model else None
        self.client = Client(self.socket_path)
        if setup.model is None:
            try:
                self.client.ping(timeout=10)
            except StrategydError as error:
                raise RuntimeError(f"{self.host}: no daemon answers at the node's standard socket: {error}") from None

    def _start(self, setup: NodeSetup) -> str:
        checkout = Path(setup.checkout or "")
        model = setup.model or ""
        if "/" in model or model.endswith(".gguf"):
            path = Path(model)
        else:
            path = model_path(model)
            if not path.is_file():
                fetch = checkout / "scripts" / "fetch.py"
                fetched = subprocess.run([sys.executable, str(fetch), "model", model], capture_output=True, text=True)
                if fetched.returncode != 0:
                    raise RuntimeError(f"{self.host}: {fetch} model {model} failed: {fetched.stderr.strip()[-2000:]}")
        binary = Path(setup.bin_dir or checkout / ".build" / "release") / "strategyd"
        if not binary.is_file():
            raise RuntimeError(f"{self.host}: no strategyd at {binary}: run scripts/setup in the checkout on every "
                               "node (or give --ray-bin)")
        self.folder = Path(tempfile.mkdtemp(prefix="strategyd-ray-"))
        socket_path, log_path = self.folder / "strategyd.sock", self.folder / "strategyd.log"
        command = [str(binary), "--model", str(path), "--socket", str(socket_path),
                   *(["--threads", str(setup.threads)] if setup.threads else []), *setup.daemon_args]
        # The daemon gets SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG): a
        # thread that waits on it for its whole life, so a killed actor takes its daemon
        # along. prctl is looked up here: the child between fork and exec only calls it.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        started = threading.Event()
        failure: List[BaseException] = []

        def own() -> None:
            try:
                with open(log_path, "wb") as log:
                    self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                    stderr=subprocess.STDOUT,
                                                    preexec_fn=lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM))
            except BaseException as error:  # noqa: BLE001 - handed to the actor's constructor
                failure.append(error)
                return
            finally:
                started.set()
            self.process.wait()

        threading.Thread(target=own, name="strategyd", daemon=True).start()
        started.wait()
        if failure or self.process is None:
            raise RuntimeError(f"{self.host}: cannot start {binary}: {failure[0] if failure else 'no process'}")
        wait_ready(self.process, str(socket_path), log_path, DAEMON_START_TIMEOUT_S, f"{self.host}: strategyd")
        return str(socket_path)

    def identity(self) -> Dict[str, Any]:
        """What must match across nodes (model, llama.cpp build, plugins), and the node's limits."""
        status = self.client.status(timeout=60)
        return {"host": self.host, "model": model_identity(self.client), "backend": backend_identity(status),
                "daemon_version": status.version,
                "plugins": {plugin.name: plugin.version for plugin in self.client.plugins()},
                "max_concurrent_solves": int(status.limits.get("max_concurrent_solves", 1)),
                "max_timeout_s": status.limits.get("max_timeout_s")}

    def check(self, specs: Sequence[Spec]) -> Dict[str, str]:
        return check_strategies(self.client, specs)

    def solve(self, spec: Spec, problem: Problem, context: RunContext, timeout: Optional[float],
              node: str) -> Record:
        return {**solve_problem(self.client, spec, problem, context, timeout, self.stopping), "node": node}

    def stop(self) -> None:
        self.stopping.set()
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def import_ray() -> Any:
    try:
        import ray  # type: ignore
    except ImportError:
        raise UsageError(f"--ray needs Ray: pip install 'ray=={RAY_VERSION}' "
                         "(or pip install './clients/bench[ray]')") from None
    return ray


@dataclass
class Node:
    label: str
    actor: Any
    identity: Dict[str, Any]
    context: Optional[RunContext] = None
    capacity: int = 1
    in_flight: int = 0
    alive: bool = True


# What must be equal on every node, and how to say it.
def _fingerprint(identity: Dict[str, Any]) -> Dict[str, Any]:
    backend = identity["backend"]
    return {"model": identity["model"]["name"], "model sha256": identity["model"]["sha256"],
            "llama.cpp build": f"{backend.get('ggml_version')} ({backend.get('ggml_commit')})",
            "strategyd": identity["daemon_version"], "plugins": identity["plugins"]}


def check_nodes(nodes: Sequence[Node]) -> None:
    """Refuses a cluster whose nodes would not give comparable records."""
    first = nodes[0]
    expected = _fingerprint(first.identity)
    for node in nodes[1:]:
        found = _fingerprint(node.identity)
        for what in expected:
            if found[what] != expected[what]:
                if what == "plugins":
                    names = sorted(set(expected[what]) | set(found[what]))
                    detail = ", ".join(f"{name} {expected[what].get(name, 'absent')} against "
                                       f"{found[what].get(name, 'absent')}"
                                       for name in names if expected[what].get(name) != found[what].get(name))
                else:
                    detail = f"{expected[what]} against {found[what]}"
                raise UsageError(f"node {node.label} differs from node {first.label} in its {what}: {detail} "
                                 f"(on {first.label} first); every node must run the same")


def _labels(hosts: Sequence[str], node_ids: Sequence[str]) -> List[str]:
    """Host names, with the Ray node id's start where two nodes share a host."""
    return [host if hosts.count(host) == 1 else f"{host}:{node_id[:6]}" for host, node_id in zip(hosts, node_ids)]


def start_nodes(ray: Any, setup: NodeSetup) -> List[Node]:
    """One actor on each live node, each with its daemon; refuses the run if one fails."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # type: ignore

    remote = ray.remote(NodeDaemon)
    live = [entry for entry in ray.nodes() if entry.get("Alive")]
    if not live:
        raise UsageError("the Ray cluster has no live node")
    actors = [remote.options(num_cpus=0, max_concurrency=ACTOR_THREADS, max_restarts=0,
                             scheduling_strategy=NodeAffinitySchedulingStrategy(entry["NodeID"], soft=False))
              .remote(setup) for entry in live]
    identities = []
    for entry, actor in zip(live, actors):
        try:
            identities.append(ray.get(actor.identity.remote()))
        except ray.exceptions.RayError as error:
            host = entry.get("NodeManagerHostname") or entry.get("NodeManagerAddress")
            raise UsageError(f"node {host} ({entry['NodeID'][:6]}): its daemon did not start: {error}") from None
    labels = _labels([identity["host"] for identity in identities], [entry["NodeID"] for entry in live])
    return [Node(label, actor, identity) for label, actor, identity in zip(labels, actors, identities)]


def run_on_ray(ray: Any, nodes: List[Node], specs: Sequence[Spec], problems: Sequence[Problem], run_file: RunFile,
               base: RunContext, concurrency: Optional[int], timeout: Optional[float], retry_errors: bool) -> None:
    """Every spec over the problems on the nodes, spec after spec."""
    check_nodes(nodes)
    try:
        versions = ray.get(nodes[0].actor.check.remote(list(specs)))
    except ray.exceptions.RayTaskError as error:
        raise error.cause if isinstance(error.cause, Exception) else error
    first = nodes[0].identity
    run_file.check_model(first["model"])
    run_file.check_problems(base.dataset, problems)
    for node in nodes:
        # An actor runs at most ACTOR_THREADS calls at once; one is kept for identity and stop.
        node.capacity = min(concurrency or node.identity["max_concurrent_solves"], ACTOR_THREADS - 1)
        node.context = replace(base, model=first["model"], daemon_version=first["daemon_version"],
                               strategy_versions=versions, backend=node.identity["backend"],
                               concurrency=node.capacity, solve_timeout=node.identity["max_timeout_s"])
    if retry_errors:
        keys = {problem_key(nodes[0].context, spec, problem) for spec in specs for problem in problems}
        print(f"strategyd-bench: {run_file.drop_errors(keys)} failed records removed, to run again", file=sys.stderr)
    print(f"strategyd-bench: {len(nodes)} nodes: "
          + ", ".join(f"{node.label} ({node.capacity} at once)" for node in nodes), file=sys.stderr)
    for number, spec in enumerate(specs, 1):
        _run_spec(ray, nodes, spec, problems, run_file, f"[{number}/{len(specs)}] {spec.label}", timeout)


def _run_spec(ray: Any, nodes: List[Node], spec: Spec, problems: Sequence[Problem], run_file: RunFile,
              description: str, timeout: Optional[float]) -> None:
    context = nodes[0].context
    assert context is not None
    keys = {problem.id: problem_key(context, spec, problem) for problem in problems}
    queue: Deque[Problem] = deque(problem for problem in problems if keys[problem.id] not in run_file.by_key)
    progress = Progress(description, len(problems), [run_file.by_key[key] for key in keys.values()
                                                     if key in run_file.by_key])
    in_flight: Dict[Any, Tuple[Node, Problem]] = {}
    losses: Dict[int, int] = {}
    try:
        while queue or in_flight:
            # One problem per node in turn, so that a short run spreads over every node.
            while queue:
                open_nodes = [node for node in nodes if node.alive and node.in_flight < node.capacity]
                if not open_nodes:
                    break
                for node in open_nodes[:len(queue)]:
                    problem = queue.popleft()
                    in_flight[node.actor.solve.remote(spec, problem, node.context, timeout, node.label)] = (node, problem)
                    node.in_flight += 1
            if not in_flight:
                raise NodesLost("every node's daemon is lost; finished problems are recorded")
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                node, problem = in_flight.pop(ref)
                node.in_flight -= 1
                try:
                    record = graded(ray.get(ref))
                except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(error, ray.exceptions.RayTaskError) and not isinstance(cause, NODE_LOST):
                        raise cause if isinstance(cause, Exception) else error
                    if node.alive:
                        node.alive = False
                        print(f"strategyd-bench: node {node.label} lost ({type(cause or error).__name__}); its "
                              "problems in flight go to the other nodes", file=sys.stderr)
                        ray.kill(node.actor)
                    losses[problem.id] = losses.get(problem.id, 0) + 1
                    if losses[problem.id] < LOSSES_PER_PROBLEM:
                        queue.appendleft(problem)
                        continue
                    lost = ConnectionLost(f"{losses[problem.id]} nodes were lost while solving this problem")
                    record = problem_record(node.context, spec, problem,
                                            failed(spec, node.context.strategy_versions.get(spec.strategy), lost))
                run_file.append(record)
                progress.update(record)
    except BaseException:
        # Calls not started are dropped; running ones end with their actors, whose daemons
        # cancel the solves of a client that goes away.
        for ref in in_flight:
            try:
                ray.cancel(ref, force=False)
            except Exception:  # noqa: BLE001 - the run is stopping for another reason, which it reports
                pass
        raise
    finally:
        progress.close()


def stop_nodes(ray: Any, nodes: Sequence[Node]) -> None:
    """Stops every live node's daemon at once (each within a minute), then its actor."""
    live = [node for node in nodes if node.alive]
    stopping = [node.actor.stop.remote() for node in live]
    try:
        ray.wait(stopping, num_returns=len(stopping), timeout=60)
    finally:
        for node in live:
            ray.kill(node.actor)


def ray_init(ray: Any, address: Optional[str]) -> None:
    """Connects to the cluster at `address` (else RAY_ADDRESS, else a cluster on this host, else
    starts one for the run). Workers get this harness and the client as Ray ships them, so
    a node needs Ray and Python, not these packages."""
    import strategyd_bench
    import strategyd_client

    ray.init(address=address or None, runtime_env={"py_modules": [strategyd_bench, strategyd_client]},
             include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             namespace=f"strategyd-bench-{os.getpid()}")
