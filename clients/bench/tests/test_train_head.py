"""strategyd-train-head: the rationale format, the fit on data with a known answer, and a
head file written against the real daemon's model facts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from strategyd_bench import train_head

np = pytest.importorskip("numpy")


def test_rationale_drops_calculator_annotations_and_states_the_answer():
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    assert train_head.rationale(gold) == ("Natalia sold 48/2 = 24 clips in May.\n\n"
                                          "Natalia sold 48+24 = 72 clips.\n\nThe answer is 72.")


def synthetic(rows: int, seed: int):
    """The thought helps (its true-token log-prob is higher) exactly where feature 0 > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    helps = x[:, 0] > 0
    logp_base = np.where(helps, np.log(0.05), np.log(0.6))
    logp_thought = np.where(helps, np.log(0.7), np.log(0.02))
    return x, logp_base, logp_thought, helps


def test_fit_learns_where_the_thought_helps():
    x, lb, lt, helps = synthetic(800, 0)
    layers = train_head.fit(x, lb, lt, hidden=16, epochs=300, learning_rate=1e-2, weight_decay=0.0, seed=0)
    x_new, lb_new, lt_new, helps_new = synthetic(400, 1)
    w = train_head.predict(layers, x_new)
    assert w[helps_new].mean() > 0.8 and w[~helps_new].mean() < 0.2
    learned = train_head.mixture_nll(w, lb_new, lt_new).mean()
    best_constant = min(train_head.mixture_nll(c, lb_new, lt_new).mean() for c in np.linspace(0, 1, 21))
    assert learned < best_constant - 0.3


def test_early_stopping_keeps_a_useless_thought_out():
    """Thoughts that never help, many inputs, few rows: trained to the end the head
    overfits and mixes noise in; stopped at its best validation epoch it stays near the
    base model on problems it never saw."""
    rng = np.random.default_rng(3)

    def useless(rows):
        x = rng.normal(size=(rows, 200))
        logp_base = np.log(rng.uniform(0.2, 0.9, rows))
        return x, logp_base, logp_base + np.log(rng.uniform(0.05, 1.5, rows))

    train, validation, unseen = useless(120), useless(120), useless(2000)
    base_only = train_head.mixture_nll(0.0, *unseen[1:]).mean()

    def unseen_nll(layers):
        return train_head.mixture_nll(train_head.predict(layers, unseen[0]), *unseen[1:]).mean()

    overfit = train_head.fit(*train, hidden=32, epochs=400, learning_rate=1e-2, weight_decay=0.0, seed=0)
    stopped = train_head.fit(*train, hidden=32, epochs=400, learning_rate=1e-2, weight_decay=0.0, seed=0,
                             validation=validation)
    assert unseen_nll(overfit) > base_only + 0.02
    assert unseen_nll(stopped) < base_only + 0.01


def test_head_file_for_the_resident_model(daemon, client, tmp_path: Path):
    info = client.models_info()
    width = info.embedding_width
    model = {key: getattr(info, key) for key in train_head.MODEL_KEYS}
    rng = np.random.default_rng(0)
    # Saved features (as a collection run would store them): 4 problems, 10 positions each.
    features = [[{"h_base": rng.normal(size=width).tolist(), "h_thought": rng.normal(size=width).tolist(),
                  "logp_base": float(np.log(rng.uniform(0.05, 0.9))), "logp_thought": float(np.log(rng.uniform(0.05, 0.9)))}
                 for _ in range(10)] for _ in range(4)]
    saved = tmp_path / "features.json"
    saved.write_text(json.dumps({"model": model, "problems": [1, 2, 3, 4], "features": features}))
    out = tmp_path / "head.json"
    assert train_head.main(["--socket", daemon.socket_path, "--features", str(saved), "--out", str(out),
                            "--epochs", "20", "--hidden", "8"]) == 0
    head = json.loads(out.read_text())
    assert head["format"] == "strategyd-mixing-head" and head["version"] == 1
    assert head["model"] == model
    shapes = [(len(layer["weight"]), len(layer["weight"][0]), len(layer["bias"])) for layer in head["layers"]]
    assert shapes == [(8, 2 * width, 8), (8, 8, 8), (1, 8, 1)]
    assert head["training"]["positions"] == 40
    assert head["training"]["loss"]["heldout"]["positions"] == 10
    # Features of another model are refused, not trained on.
    saved.write_text(json.dumps({"model": {**model, "name": "other"}, "problems": [], "features": features}))
    with pytest.raises(SystemExit):
        train_head.main(["--socket", daemon.socket_path, "--features", str(saved), "--out", str(out)])
