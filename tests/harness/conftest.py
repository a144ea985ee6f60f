"""A freshly built dataset (evolve, then compose) shared by the harness tests; the same run
published after a reviewer's reject; a loopback Hub that serves published folders."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.compose import ComposeSettings, compose
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.harness.evaluate import load_split
from pipeline.jsonl import read_records, write_records
from pipeline.models import Decision, Instance, Review, Task
from pipeline.seeds import load_seeds


@pytest.fixture(scope="session")
def built_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("harness") / "run"
    evolve(load_seeds(), run, EvolveSettings(rounds=1))
    tasks = list(read_records(run / "evolved.jsonl", Task))
    write_records(
        run / "instances.jsonl", compose(tasks, ComposeSettings(count=300, seed=5)).instances
    )
    return run


@pytest.fixture(scope="session")
def instances(built_run: Path) -> list[Instance]:
    return list(read_records(built_run / "instances.jsonl", Instance))


# --- a published release, and a loopback Hub that serves it --------------------------------


@dataclass(frozen=True)
class PublishedRun:
    run_dir: Path
    folder: Path  # run_dir / "dataset"
    rejected_task: str  # accepted, then rejected by a reviewer: never evaluated
    held_by: list[str]  # the test-split instances holding that task


@pytest.fixture(scope="session", autouse=True)
def private_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The datasets and Hub caches of these tests live in a temporary folder, not ~/.cache."""
    import datasets
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", root / "datasets")
        patch.setattr(constants, "HF_HUB_CACHE", str(root / "hub"))
        yield


def _review(run_dir: Path, task_id: str) -> None:
    review = Review(
        sample_id=task_id,
        decision=Decision.REJECT,
        reviewer="ann",
        note="asks for two things",
        at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    write_records(run_dir / "reviews.jsonl", [review])


@pytest.fixture(scope="session")
def published_run(built_run: Path, tmp_path_factory: pytest.TempPathFactory) -> PublishedRun:
    """A copy of the built run in which a reviewer rejected one task of a test instance, then
    published with ``asynctool publish``."""
    from pipeline.cli import main

    run_dir = tmp_path_factory.mktemp("published") / "runs" / "r1"
    run_dir.mkdir(parents=True)
    for name in ("evolved.jsonl", "instances.jsonl"):
        shutil.copy(built_run / name, run_dir / name)
    test_split = load_split(run_dir, "test")  # not published yet: the run's own files
    rejected = test_split[0].tasks[0].id
    held_by = [i.id for i in test_split if any(t.id == rejected for t in i.tasks)]
    _review(run_dir, rejected)
    assert main(["publish", "--run-dir", str(run_dir), "--version", "0.1.0"]) == 0
    return PublishedRun(run_dir, run_dir / "dataset", rejected, held_by)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class ServedHub:
    """A read-only Hub on 127.0.0.1: dataset repos whose revisions are local folders. It
    answers what ``huggingface_hub`` asks to download a snapshot, and 404s anything else."""

    url: str = ""
    repos: dict[str, dict[str, Path]] = field(default_factory=dict)  # repo -> revision -> folder
    asked: list[str] = field(default_factory=list)

    def commit(self, repo: str, revision: str) -> str:
        return _sha(f"{repo}@{revision}")

    def _folder(self, repo: str, revision: str) -> tuple[int, str, Path | None]:
        if repo not in self.repos:
            return 404, "RepoNotFound", None
        for name, folder in self.repos[repo].items():
            if revision in (name, self.commit(repo, name)):
                return 200, self.commit(repo, name), folder
        return 404, "RevisionNotFound", None

    def files(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def answer(self, method: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        path = urllib.parse.unquote(raw_path.split("?", 1)[0])
        self.asked.append(f"{method} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6:
            repo, action, revision = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
            status, commit, folder = self._folder(repo, revision)
            if folder is None:
                return status, {"X-Error-Code": commit}, b'{"error": "not found"}'
            if action == "revision":
                siblings = [{"rfilename": str(p.relative_to(folder))} for p in self.files(folder)]
                body = {"id": repo, "sha": commit, "siblings": siblings, "private": False}
                return 200, {}, json.dumps(body).encode()
            if action == "tree":
                tree = [
                    {"type": "file", "path": str(p.relative_to(folder)), "size": p.stat().st_size,
                     "oid": _sha(p.read_bytes().hex())}
                    for p in self.files(folder)
                ]  # fmt: skip
                return 200, {}, json.dumps(tree).encode()
        if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
            repo, revision, name = f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:])
            status, commit, folder = self._folder(repo, revision)
            if folder is None:
                return status, {"X-Error-Code": commit}, b'{"error": "not found"}'
            target = folder / name
            if not target.is_file():
                return 404, {"X-Error-Code": "EntryNotFound"}, b'{"error": "not found"}'
            data = target.read_bytes()
            headers = {"X-Repo-Commit": commit, "ETag": f'"{_sha(data.hex())}"'}
            return 200, headers, data
        return 404, {}, b'{"error": "the served hub does not answer this"}'


def _hub_handler(hub: ServedHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, body: bool) -> None:
            status, headers, data = hub.answer(self.command, self.path)
            self.send_response(status)
            for name, value in {"Content-Type": "application/octet-stream", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve(True)

        def do_HEAD(self) -> None:
            self._serve(False)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def served_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedHub]:
    from huggingface_hub import constants

    hub = ServedHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _hub_handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # huggingface_hub reads HF_HUB_OFFLINE at import time: the constant is patched too
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
