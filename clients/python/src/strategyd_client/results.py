"""Dataclasses mirroring the results of docs/api.md.

Parsing rule: a field without a default is required in the JSON (its absence raises
ProtocolError); a field with a default may be missing. Keys the client does not know
(a newer daemon) are kept in `extra` rather than dropped.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Type, TypeVar, Union

from .errors import ProtocolError

T = TypeVar("T")


def _build(cls: Type[T], value: Any, convert: Optional[Mapping[str, Callable[[Any], Any]]] = None) -> T:
    if not isinstance(value, dict):
        raise ProtocolError(f"{cls.__name__}: expected a JSON object, got {value!r}")
    convert = convert or {}
    kwargs: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "extra":
            continue
        if f.name in value:
            raw = value[f.name]
            kwargs[f.name] = convert[f.name](raw) if f.name in convert and raw is not None else raw
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{cls.__name__}: the daemon's object lacks {f.name!r}: {value!r}")
    kwargs["extra"] = {k: v for k, v in value.items() if k not in kwargs}
    return cls(**kwargs)


@dataclass(frozen=True)
class Metrics:
    """Compute used by a solve (or, in Status.totals, since the daemon started)."""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    thought_tokens: int = 0
    scorer_tokens: int = 0
    evaluated_tokens: int = 0
    flops: float = 0.0
    scorer_flops: float = 0.0
    # What the prompt cache lent: in evaluated_tokens and flops all the same (a solve's
    # compute as if alone); executed_flops leaves it out.
    cached_tokens: int = 0
    executed_flops: Optional[float] = None
    wall_s: float = 0.0
    forks: int = 0
    peak_sequences: int = 0
    decode_calls: int = 0
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "Metrics":
        return _build(cls, value)


@dataclass(frozen=True)
class Candidate:
    """One solution a strategy considered. `votes` and `vote_weight` are its answer's tally
    in the strategy's vote: how many candidates give that answer, and the sum of their
    weights (0 for a candidate without an answer)."""
    text: str
    answer: Optional[str] = None
    score: Optional[float] = None
    votes: Optional[int] = None
    vote_weight: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "Candidate":
        return _build(cls, value)


@dataclass(frozen=True)
class StrategyInfo:
    """Which plugin build answered: `generation` grows with every reload."""
    name: str
    version: str
    generation: int
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "StrategyInfo":
        return _build(cls, value)


def _list_of(item: Callable[[Any], T]) -> Callable[[Any], List[T]]:
    def convert(value: Any) -> List[T]:
        if not isinstance(value, list):
            raise ProtocolError(f"expected a JSON array, got {value!r}")
        return [item(v) for v in value]
    return convert


@dataclass(frozen=True)
class SolveResult:
    answer: Optional[str]
    text: str
    candidates: List[Candidate]
    strategy: StrategyInfo
    metrics: Metrics
    budget_exhausted: bool
    # What ran out first: "max_tokens", "max_flops", "timeout_s", "kv_cache", or None.
    stopped_by: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "SolveResult":
        return _build(cls, value, {"candidates": _list_of(Candidate.from_json),
                                   "strategy": StrategyInfo.from_json,
                                   "metrics": Metrics.from_json})


@dataclass(frozen=True)
class Progress:
    """A `progress` notification of a streaming solve: `id` is the solve's request id.

    Every strategy sends `started` and, per generation round, `step` with metrics; the
    strategy's own fields (REBASE: depth, live nodes, ...) are in `extra`.
    """
    id: Union[int, str]
    event: str
    metrics: Optional[Metrics] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "Progress":
        return _build(cls, value, {"metrics": Metrics.from_json})


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    sha256: Optional[str]
    architecture: str
    description: str
    parameters: int
    non_embedding_parameters: int
    layers: int
    embedding_width: int
    heads: int
    heads_kv: int
    attention_width: int
    trained_context: int
    vocabulary_size: int
    file_bytes: int
    context_size: int
    max_sequences: int
    hidden_states: bool
    flops_formula: str
    backend: Dict[str, str] = field(default_factory=dict)  # the llama.cpp build and its CPU kernels
    # Where the layers are: this host's CPU, and each llama.cpp RPC server's device with its
    # share of the layers (strategyd --rpc).
    devices: List[Dict[str, Any]] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "ModelInfo":
        return _build(cls, value)


@dataclass(frozen=True)
class Status:
    version: str
    uptime_s: float
    model: ModelInfo
    plugins: List[str]
    requests_in_flight: int
    solves_in_flight: int
    totals: Metrics
    limits: Dict[str, Any]
    # Batch-invariant numerics (strategyd --deterministic): a seeded solve gives the same
    # tokens alone or beside other solves. False from daemons without the mode.
    deterministic: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "Status":
        return _build(cls, value, {"model": ModelInfo.from_json, "totals": Metrics.from_json})


@dataclass(frozen=True)
class PluginInfo:
    name: str
    kind: str  # "strategy" or "scorer"
    version: str
    abi: int
    file: str
    generation: int
    loaded_at: str  # ISO 8601, as sent
    description: str
    params_schema: Dict[str, Any]
    in_flight: int
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> "PluginInfo":
        return _build(cls, value)


@dataclass(frozen=True)
class Budget:
    """A solve's budget; None leaves a limit at the daemon's maximum."""
    max_tokens: Optional[int] = None
    max_flops: Optional[float] = None
    timeout_s: Optional[float] = None

    def to_json(self) -> Dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
