"""Start-up time of the command line (issue 14): ``asynctool --help`` and ``asynctool tools``.

Each command runs as a fresh process, best of 5 wall-clock times; the import profile of
``pipeline.cli`` shows that only the parser's own modules load.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

ASYNCTOOL = Path(sys.executable).with_name("asynctool")


def best_of(command: list[str], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    for args in (["--help"], ["tools"], ["tools", "--full"]):
        seconds = best_of([str(ASYNCTOOL), *args])
        print(f"asynctool {' '.join(args):14s} {seconds:6.3f} s (best of 5)")
    bare = best_of([sys.executable, "-c", "pass"])
    print(f"python -c pass           {bare:6.3f} s (the interpreter alone)")


if __name__ == "__main__":
    main()
