"""identical.png: for each mode and spec, the share of the 16 problems whose text is the
same alone and at eight in flight, and the problems per hour of each run. Reads the run
files here; no model calls.

    python3 docs/results/reproducibility-under-load/plot.py MODEL
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from compare import clock, load  # noqa: E402  (this folder)

here = Path(__file__).resolve().parent
model = sys.argv[1]
specs = ("greedy", "self-consistency-k-4")
modes = ("default", "deterministic")


# (mode, spec, one at a time, eight at once): the default mode's alone run predates the
# MODEL-MODE-SPEC-cN names.
pairs = [("default", "greedy", f"{model}-alone.jsonl", f"{model}-default-greedy-c8.jsonl")]
pairs += [("deterministic", spec, f"{model}-deterministic-{spec}-c1.jsonl", f"{model}-deterministic-{spec}-c8.jsonl")
          for spec in specs]
figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
width = 0.38
for m, mode in enumerate(modes):
    xs, shares, alone_rates, loaded_rates = [], [], [], []
    for i, spec in enumerate(specs):
        found = [(a, b) for mode_, spec_, a, b in pairs if (mode_, spec_) == (mode, spec)
                 and (here / a).exists() and (here / b).exists()]
        if not found:
            continue
        alone, loaded = (load(here / name) for name in found[0])
        common = alone.keys() & loaded.keys()
        xs.append(i + (m - 0.5) * width)
        shares.append(100 * sum(alone[k]["text"] == loaded[k]["text"] for k in common) / len(common))
        alone_rates.append(3600 * len(alone) / clock(alone))
        loaded_rates.append(3600 * len(loaded) / clock(loaded))
    left.bar(xs, shares, width, label=mode)
    right.bar(xs, loaded_rates, width, label=f"{mode}, 8 at once")
    right.scatter(xs, alone_rates, color="black", marker="_", s=300,
                  label="one at a time" if m == 0 else None, zorder=3)
for axis in (left, right):
    axis.set_xticks(range(len(specs)), ["greedy", "self-consistency k=4"])
left.set_ylabel("texts identical alone and at 8 (%)")
left.set_ylim(0, 105)
right.set_ylabel("problems per hour")
left.legend(loc="lower right", fontsize=8)
right.legend(fontsize=8)
figure.suptitle(f"16 GSM8K train problems, {model}", fontsize=10)
figure.tight_layout()
figure.savefig(here / "identical.png", dpi=120)
