"""Train quiet-star's learned mixing head on GSM8K train rationales, over the socket.

The resident model (strategyd with quiet-star's hidden_states setting on) decodes each rationale with
teacher forcing through the quiet-star plugin (param `teacher`): at every position it
thinks once and returns h_base, h_thought and the log-probabilities of the true next token
before and after the thought. The head is Quiet-STaR's mixing head, an MLP over
[h_base ; h_thought] ending in a sigmoid that gives w, here fitted to minimise

    NLL = -log((1 - w) p_base(true token) + w p_thought(true token))

(the probability-space mixture: full logit vectors are too big to collect; see
Sources/StrategyKit/ThoughtMixture.swift). Problems are split into training and held-out
ones; losses before and after are printed and stored in the file. Put it in the plugin's
heads folder (its heads_dir setting, which `strategyctl plugins` shows); the plugin loads
it with mixing=learned, head=FILE_NAME and refuses it for another model.

    strategyd-train-head --socket S --problems 32 --out head.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from strategyd_client import Client

from . import cache

FORMAT = "strategyd-mixing-head"
VERSION = 1
MODEL_KEYS = ("name", "architecture", "embedding_width", "vocabulary_size")


def default_data() -> str:
    return str(cache.data_dir() / "gsm8k-train.jsonl")


def rationale(answer: str) -> str:
    """A GSM8K answer in the form the strategies' prompt asks for: calculator annotations
    <<...>> dropped, a blank line between steps, "#### N" as "The answer is N."."""
    body, _, final = answer.partition("####")
    steps = [re.sub(r"<<[^>]*>>", "", line).strip() for line in body.strip().splitlines() if line.strip()]
    return "\n\n".join(steps + [f"The answer is {final.strip()}."])


class Progress:
    """tqdm when installed, a plain line otherwise."""

    def __init__(self, total: int, description: str) -> None:
        try:
            from tqdm import tqdm  # type: ignore
            self.bar = tqdm(total=total, desc=description, unit="problem")
        except ImportError:
            self.bar = None
        self.total, self.done, self.description, self.started = total, 0, description, time.monotonic()

    def update(self, note: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(note)
            self.bar.update(1)
        else:
            elapsed = time.monotonic() - self.started
            eta = elapsed / self.done * (self.total - self.done)
            print(f"{self.description}: {self.done}/{self.total} {note} eta {eta:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def collect(client: Client, problems: Sequence[Dict[str, Any]], params: Dict[str, Any],
            positions: int) -> List[List[Dict[str, Any]]]:
    """Features per problem: a list of dicts (h_base, h_thought, logp_base, logp_thought)."""
    out: List[List[Dict[str, Any]]] = []
    progress = Progress(len(problems), "collecting")
    for problem in problems:
        result = client.solve(problem["question"], "quiet-star",
                              {**params, "teacher": rationale(problem["answer"]), "max_tokens": positions, "n_thoughts": 1})
        features = result.details.get("features") or []
        out.append(features)
        progress.update(f"{len(features)} positions, {result.metrics.thought_tokens} thought tokens")
    progress.close()
    return out


def mixture_nll(w, logp_base, logp_thought):
    import numpy as np
    return -np.log((1 - w) * np.exp(logp_base) + w * np.exp(logp_thought) + 1e-30)


def fit(x_train, lb_train, lt_train, hidden: int, epochs: int, learning_rate: float, weight_decay: float,
        seed: int, validation: Optional[Tuple[Any, Any, Any]] = None) -> List[Tuple[Any, Any]]:
    """Adam on the mixture NLL; returns [(W, b)] per layer, W as (out, in). With
    `validation` (x, logp_base, logp_thought of other problems), the layers of the epoch
    with the lowest validation NLL, the start included: a few hundred positions against
    thousands of inputs overfit within epochs, and the start is nearly the base model."""
    import numpy as np
    rng = np.random.default_rng(seed)
    sizes = [x_train.shape[1], hidden, hidden, 1]
    layers = [(rng.normal(0, np.sqrt(2 / n_in), (n_out, n_in)), np.zeros(n_out)) for n_in, n_out in zip(sizes, sizes[1:])]
    # Start close to the base model: w = sigmoid(-3) ~ 0.05 everywhere.
    layers[-1] = (np.zeros_like(layers[-1][0]), np.full(1, -3.0))
    params = [p for layer in layers for p in layer]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    p_base, p_thought = np.exp(lb_train), np.exp(lt_train)

    def validation_nll() -> float:
        x, lb, lt = validation
        return float(mixture_nll(predict(layers, x), lb, lt).mean())

    best = (validation_nll(), [(w.copy(), b.copy()) for w, b in layers]) if validation is not None else None
    for step in range(1, epochs + 1):
        # Forward (full batch: a few thousand rows).
        activations = [x_train]
        for index, (weight, bias) in enumerate(layers):
            z = activations[-1] @ weight.T + bias
            activations.append(z if index == len(layers) - 1 else np.maximum(z, 0))
        w = 1 / (1 + np.exp(-activations[-1][:, 0]))
        mixed = (1 - w) * p_base + w * p_thought + 1e-30
        # d(-log mixed)/dz = -(p_thought - p_base) * w (1 - w) / mixed, averaged.
        grad = (-(p_thought - p_base) * w * (1 - w) / mixed / len(w))[:, None]
        grads: List[Any] = []
        for index in range(len(layers) - 1, -1, -1):
            weight, _ = layers[index]
            grads[:0] = [grad.T @ activations[index] + weight_decay * weight, grad.sum(axis=0)]
            grad = grad @ weight
            if index > 0:
                grad = grad * (activations[index] > 0)
        for i, (p, g) in enumerate(zip(params, grads)):
            m, v = moments[i]
            m[:] = 0.9 * m + 0.1 * g
            v[:] = 0.999 * v + 0.001 * g * g
            p -= learning_rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
        if best is not None:
            loss = validation_nll()
            if loss < best[0]:
                best = (loss, [(w.copy(), b.copy()) for w, b in layers])
    return best[1] if best is not None else layers


def predict(layers, x):
    import numpy as np
    a = x
    for index, (weight, bias) in enumerate(layers):
        a = a @ weight.T + bias
        if index < len(layers) - 1:
            a = np.maximum(a, 0)
    return 1 / (1 + np.exp(-a[:, 0]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strategyd-train-head", description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", help="the daemon's socket (default: strategyctl's)")
    parser.add_argument("--data", default=default_data(), help="GSM8K train JSONL (default: the fetched one)")
    parser.add_argument("--problems", type=int, default=32, help="train problems to collect from")
    parser.add_argument("--positions", type=int, default=64, help="rationale tokens per problem (one thought each)")
    parser.add_argument("--seed", type=int, default=0, help="which problems (random.Random(seed).sample)")
    parser.add_argument("--heldout", type=float, default=0.25, help="share of problems held out for the loss after")
    parser.add_argument("--validation", type=float, default=0.25,
                        help="share of the training problems kept aside to stop training at its best epoch (0: never stop early)")
    parser.add_argument("--thought-params", default="{}", help="quiet-star params of the thoughts, JSON (thought_len, markers...)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the head's two hidden layers")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--features", help="also save the collected features here (JSON), or reuse them if the file exists")
    parser.add_argument("--out", required=True, help="the head file to write (.json)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".json"):
        parser.error("--out must end in .json")
    try:
        import numpy as np
    except ImportError:
        parser.error("training needs numpy (pip install numpy)")

    with Client(args.socket) as client:
        info = client.models_info()
        model = {key: getattr(info, key) for key in MODEL_KEYS}
        if args.features and os.path.exists(args.features):
            with open(args.features, encoding="utf-8") as f:
                saved = json.load(f)
            if saved["model"] != model:
                parser.error(f"{args.features} holds features of {saved['model']}, not of {model}")
            per_problem, indices = saved["features"], saved["problems"]
        else:
            if not info.hidden_states:
                parser.error("the daemon must keep hidden states (--plugin-config quiet-star.hidden_states=true): the head reads them")
            with open(args.data, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            indices = sorted(random.Random(args.seed).sample(range(len(rows)), args.problems))
            per_problem = collect(client, [rows[i] for i in indices], json.loads(args.thought_params), args.positions)
            if args.features:
                with open(args.features, "w", encoding="utf-8") as f:
                    json.dump({"model": model, "problems": indices, "features": per_problem}, f)

    held = max(1, int(round(len(per_problem) * args.heldout)))
    split = {"train": per_problem[held:], "heldout": per_problem[:held]}
    kept = int(round(len(split["train"]) * args.validation))
    fit_problems, validation_problems = split["train"][kept:], split["train"][:kept]

    def arrays(groups):
        rows = [row for group in groups for row in group]
        x = np.array([row["h_base"] + row["h_thought"] for row in rows], dtype=np.float64)
        return x, np.array([row["logp_base"] for row in rows]), np.array([row["logp_thought"] for row in rows])

    x_train, lb_train, lt_train = arrays(split["train"])
    x_held, lb_held, lt_held = arrays(split["heldout"])
    x_fit, lb_fit, lt_fit = arrays(fit_problems)
    if len(x_fit) == 0 or len(x_held) == 0:
        parser.error("too few positions collected to train and hold out")
    # Standardise inputs; the scaling is folded into the first layer before saving.
    mean, scale = x_fit.mean(axis=0), x_fit.std(axis=0) + 1e-6
    validation = None
    if validation_problems:
        x_val, lb_val, lt_val = arrays(validation_problems)
        validation = ((x_val - mean) / scale, lb_val, lt_val)
    layers = fit((x_fit - mean) / scale, lb_fit, lt_fit, args.hidden, args.epochs, args.learning_rate,
                 args.weight_decay, args.seed, validation)
    first_w, first_b = layers[0]
    layers[0] = (first_w / scale, first_b - (first_w / scale) @ mean)

    def losses(x, lb, lt):
        constant = {f"w={w:.1f}": float(mixture_nll(w, lb, lt).mean()) for w in (0.0, 0.1, 0.3, 0.5)}
        return {"base_only": constant["w=0.0"], "constant": constant,
                "learned": float(mixture_nll(predict(layers, x), lb, lt).mean()),
                "mean_w": float(predict(layers, x).mean()), "positions": int(len(x))}

    report = {"train": losses(x_train, lb_train, lt_train), "heldout": losses(x_held, lb_held, lt_held)}
    training = {"problems": indices, "heldout_problems": indices[:held], "data": os.path.basename(args.data),
                "validation_problems": len(validation_problems),
                "positions": int(len(x_train) + len(x_held)), "hidden": args.hidden, "epochs": args.epochs,
                "learning_rate": args.learning_rate, "weight_decay": args.weight_decay, "seed": args.seed,
                "thought_params": json.loads(args.thought_params), "loss": report,
                "loss_definition": "mean NLL of the true next token under (1-w) p_base + w p_thought (nats)"}
    head = {"format": FORMAT, "version": VERSION, "space": "probabilities", "input": "h_base,h_thought",
            "activation": "relu", "output": "sigmoid", "model": model, "training": training,
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in layers]}
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(head, f)
    os.replace(tmp, args.out)
    for name, figures in report.items():
        print(f"{name:8} positions {figures['positions']:5d}  NLL base only {figures['base_only']:.4f}  "
              f"best constant {min(figures['constant'].values()):.4f}  learned {figures['learned']:.4f}  "
              f"mean w {figures['mean_w']:.3f}")
    print(f"wrote {args.out} (for {model['name']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
