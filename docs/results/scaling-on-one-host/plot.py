"""Draws scaling.svg from the two outputs of scripts/bench-scaling in this folder:
problems per hour of the sweep, and generation tokens/s of each model placement."""
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def rows(path):
    """The Markdown table rows of a bench-scaling output, as lists of cells."""
    for line in path.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("| run ") and not line.startswith("| model placement"):
            yield [cell.strip() for cell in line.strip("|").split("|")]


def main():
    sweep = [(cells[0], float(cells[5])) for cells in rows(HERE / "bench-scaling-sweep.txt") if cells[5]]
    rpc = [(cells[0], float(cells[1].split()[0]), float(cells[2].split()[0]))
           for cells in rows(HERE / "bench-scaling-rpc.txt")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.barh([name for name, _ in sweep], [value for _, value in sweep], color=["#4c72b0", "#dd8452"])
    left.set_xlabel("problems per hour (greedy, 32 GSM8K test problems)")
    left.invert_yaxis()
    names = [re.sub(r", (\d) thread", r",\n\1 thread", name) for name, _, _ in rpc]
    positions = range(len(rpc))
    right.barh([p - 0.2 for p in positions], [one for _, one, _ in rpc], height=0.4, label="1 solve")
    right.barh([p + 0.2 for p in positions], [many for _, _, many in rpc], height=0.4, label="16 solves at once")
    right.set_yticks(list(positions), names)
    right.set_xlabel("generated tokens/s")
    right.invert_yaxis()
    right.legend(loc="lower right")
    figure.suptitle("qwen2.5-coder-1.5b-instruct Q4_K_M on one 2-core host")
    figure.tight_layout()
    figure.savefig(HERE / "scaling.svg")
    print(f"wrote {HERE / 'scaling.svg'}")


if __name__ == "__main__":
    main()
