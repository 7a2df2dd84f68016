"""python3 -m strategyd_bench: the strategyd-bench command."""
import sys

from .cli import main

sys.exit(main())
