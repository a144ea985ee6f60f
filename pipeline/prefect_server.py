"""Start or stop the one local Prefect server the make targets share.

Without a server every process that runs a flow starts a temporary one (10–20 s here), so the
make targets share one on 127.0.0.1. Starting is idempotent: a healthy server is reused.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent dies, even by
    SIGKILL, so a killed run never leaves its temporary server listening (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@contextmanager
def temporary_api() -> Iterator[None]:
    """Give the flows of this process a Prefect API: the configured one, else a temporary
    server on a free loopback port that lives exactly as long as this process.

    Prefect's own temporary server is stopped by an ``atexit`` hook, which a SIGKILL skips; this
    one is tied to its parent by the kernel.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield
        return
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="asynctool-prefect-"))
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    process = subprocess.Popen(  # noqa: S603 - a fixed command line, no user input
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks or imports
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the temporary Prefect server did not start; run `make prefect-start`, or "
                    "pass --inline to run without Prefect"
                )
            time.sleep(0.5)
        with temporary_settings(updates={PREFECT_API_URL: api_url(port)}):
            yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


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
