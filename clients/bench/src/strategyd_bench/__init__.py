"""strategyd-bench: solves a data set's problems with strategies through strategyd, grades
every answer and reports accuracy per FLOP (see README.md).

    python3 -m strategyd_bench run --preset paper --out runs/paper.jsonl
    python3 -m strategyd_bench report runs/paper.jsonl --out-dir runs/paper

The command line is cli.py; a run is specs.py, presets.py, data.py, run.py and runfile.py;
grading.py and vote.py hold the rules answers are judged and chosen by; the report is
report.py, stats.py, paper.py and plot.py; cache.py says where fetched models and data are.
"""

__version__ = "0.1.0"
