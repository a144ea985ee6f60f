"""Start or stop the one local Prefect server the make targets share.

Without a server every process that runs a flow starts a temporary one (10–20 s here), so the
make targets share one on 127.0.0.1. Starting is idempotent: a healthy server is reused.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STATE_DIR = Path("output") / "prefect"
STARTUP_SECONDS = 120


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url(port)}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(port: int) -> int:
    if healthy(port):
        print(f"Prefect server already running: UI at http://127.0.0.1:{port}")
        return 0
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(STATE_DIR.resolve() / "home"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    log = (STATE_DIR / "server.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 - a fixed command line, no user input
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    (STATE_DIR / "server.pid").write_text(str(process.pid))
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if healthy(port):
            print(f"Prefect server started: UI at http://127.0.0.1:{port} (log {log.name})")
            return 0
        if process.poll() is not None:
            break
        time.sleep(1)
    print(f"error: Prefect server did not become healthy; see {log.name}", file=sys.stderr)
    return 1


def stop() -> int:
    pid_file = STATE_DIR / "server.pid"
    if not pid_file.exists():
        print("no Prefect server started by this project")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        print(f"stopped Prefect server (pid {pid})")
    except ProcessLookupError:
        print("Prefect server was not running")
    pid_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "url"])
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    if args.action == "url":
        print(api_url(args.port))
        return 0
    return start(args.port) if args.action == "start" else stop()


if __name__ == "__main__":
    raise SystemExit(main())
