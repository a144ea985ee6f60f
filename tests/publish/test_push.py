"""Pushing to a fake Hub on 127.0.0.1: one commit with every file of the folder, then the tag."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants

from pipeline.cli import main
from pipeline.jsonl import write_records
from pipeline.models import Rejection, RejectionCode, Stage
from pipeline.publish import PushError, build_dataset_folder, push_folder
from pipeline.publish.card import WHERE_END, WHERE_START, retarget_card
from pipeline.seeds import load_seeds


@dataclass
class FakeHub:
    """Records every request and answers the few a dataset push needs; anything else is 404."""

    url: str = ""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    repos: set[str] = field(default_factory=set)
    tags: dict[str, list[str]] = field(default_factory=dict)
    history: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # repo -> commits
    fail_tags: int = 0  # answer this many tag requests with a server error

    def head(self, repo: str) -> str:
        return self.history[repo][-1]["id"] if self.history.get(repo) else "c0"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/agent-harnesses"):
            # huggingface_hub's best-effort user-agent registry, fetched at most once a day
            return 200, {"standardEnvVars": [], "harnesses": {}}
        parts = path.split("?", 1)[0].strip("/").split("/")
        payload: Any = body
        if path.startswith("/api/datasets/") and parts[4:5] == ["commit"]:
            payload = [json.loads(line) for line in body.splitlines() if line.strip()]
        elif body:
            payload = json.loads(body)
        self.requests.append((method, path, payload))
        if (method, path) == ("POST", "/api/validate-yaml"):
            return 200, {"errors": [], "warnings": []}
        if (method, path) == ("POST", "/api/repos/create"):
            repo = f"{payload['organization']}/{payload['name']}"
            status = 409 if repo in self.repos else 200  # the Hub sends the url with a 409 too
            self.repos.add(repo)
            return status, {"error": "already exists", "url": f"{self.url}/datasets/{repo}"}
        if parts[:2] == ["api", "datasets"] and len(parts) >= 5:
            repo, action = f"{parts[2]}/{parts[3]}", parts[4]
            if method == "GET" and action == "refs":
                tags = [
                    {"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": "c0"}
                    for tag in self.tags.get(repo, [])
                ]
                head = self.head(repo)
                main_ref = {"name": "main", "ref": "refs/heads/main", "targetCommit": head}
                return 200, {"branches": [main_ref], "converts": [], "tags": tags}
            if method == "GET" and action == "commits":
                commits = [
                    {
                        **c,
                        "message": "",
                        "authors": [{"user": "me"}],
                        "date": "2026-01-01T00:00:00Z",
                    }
                    for c in reversed(self.history.get(repo, []))
                ]
                return 200, commits
            if method == "POST" and action == "preupload":
                files = [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                    for f in payload["files"]
                ]
                return 200, {"files": files, "commitOid": "c0"}
            if method == "POST" and action == "commit":
                oid = f"{len(self.commits()):040x}"
                title = payload[0]["value"]["summary"]
                self.history.setdefault(repo, []).append({"id": oid, "title": title})
                return 200, {
                    "commitUrl": f"{self.url}/datasets/{repo}/commit/{oid}",
                    "commitOid": oid,
                }
            if method == "POST" and action == "tag":
                if self.fail_tags:
                    self.fail_tags -= 1
                    return 500, {"error": "tag service unavailable"}
                self.tags.setdefault(repo, []).append(payload["tag"])
                return 200, {}
        self.unknown.append(f"{method} {path}")
        return 404, {"error": f"fake hub does not serve {method} {path}"}

    def commits(self) -> list[list[dict[str, Any]]]:
        return [body for method, path, body in self.requests if "/commit/" in path]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            status, payload = hub.answer(self.command, self.path, self._body())
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # huggingface_hub reads these at import time, so the constants are patched as well as the env
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    write_records(tmp_path / "evolved.jsonl", load_seeds())
    (tmp_path / "manifest.json").write_text('{"run_id": "p"}', encoding="utf-8")
    build_dataset_folder(tmp_path, version="0.3.0")
    return tmp_path


def _folder_contents(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_push_is_one_commit_of_every_file_then_the_tag(hub: FakeHub, run_dir: Path) -> None:
    folder = run_dir / "dataset"
    result = push_folder(folder, "me/forge", "0.3.0", endpoint=hub.url)
    assert hub.unknown == []
    (commit,) = hub.commits()
    header, *files = commit
    assert header["key"] == "header" and "v0.3.0" in header["value"]["summary"]
    sent = {f["value"]["path"]: base64.b64decode(f["value"]["content"]) for f in files}
    local = _folder_contents(folder)
    assert {"README.md", "manifest.json"} <= set(sent) and len(sent) >= 4
    # every file as it is, except the card, whose examples now name the repo and tag pushed to
    assert {p: b for p, b in sent.items() if p != "README.md"} == {
        p: b for p, b in local.items() if p != "README.md"
    }
    card = sent["README.md"].decode("utf-8")
    assert card == retarget_card(local["README.md"].decode("utf-8"), "me/forge", "v0.3.0")
    assert [f"{method} {path.split('?')[0]}" for method, path, _ in hub.requests] == [
        "POST /api/repos/create",
        "GET /api/datasets/me/forge/refs",
        "GET /api/datasets/me/forge/commits/main",
        "POST /api/validate-yaml",
        "POST /api/datasets/me/forge/preupload/main",
        "POST /api/datasets/me/forge/commit/main",
        f"POST /api/datasets/me/forge/tag/{result.commit_oid}",  # the tag points at our commit
    ]
    assert hub.requests[0][2]["type"] == "dataset"
    assert hub.requests[-1][2]["tag"] == "v0.3.0"
    assert result.tag == "v0.3.0" and not result.dry_run
    assert [f.path for f in result.files] == sorted(sent)


def test_cli_push_and_dry_run(
    hub: FakeHub, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["push", "--repo", "me/forge", "--version", "0.3.0", "--run-dir", str(run_dir)]
    assert main([*base, "--dry-run", "--endpoint", hub.url]) == 0
    assert hub.requests == []  # a dry run sends nothing
    out = capsys.readouterr().out
    assert "would upload" in out and re.search(r"data/single/train-[0-9a-f]{16}\.parquet", out)
    assert main([*base, "--endpoint", hub.url]) == 0
    assert len(hub.commits()) == 1 and hub.tags == {"me/forge": ["v0.3.0"]}
    assert "tagged it v0.3.0" in capsys.readouterr().out
    # the same version again: refused before any commit, the tag is immutable
    assert main([*base, "--endpoint", hub.url]) == 2
    assert "already has the tag v0.3.0" in capsys.readouterr().err
    assert len(hub.commits()) == 1


def test_push_refuses_bad_input_before_sending(
    hub: FakeHub, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = run_dir / "dataset"
    with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
        push_folder(folder, "me/forge", "0.3")
    with pytest.raises(PushError, match="built as version 0.3.0, not 0.4.0"):
        push_folder(folder, "me/forge", "0.4.0")
    with pytest.raises(PushError, match="README.md missing"):
        push_folder(run_dir / "nothing", "me/forge", "0.3.0")
    with pytest.raises(PushError, match="user/name"):
        push_folder(folder, "forge", "0.3.0")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("pipeline.publish.push.get_token", lambda: None)
    with pytest.raises(PushError, match="no Hugging Face token"):
        push_folder(folder, "me/forge", "0.3.0", endpoint=hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PushError, match="HF_HUB_OFFLINE"):
        push_folder(folder, "me/forge", "0.3.0", endpoint=hub.url, token="t")
    assert hub.requests == []


def _sent_card(hub: FakeHub, commit: int = -1) -> str:
    files = hub.commits()[commit][1:]
    (card,) = [f["value"]["content"] for f in files if f["value"]["path"] == "README.md"]
    return base64.b64decode(card).decode("utf-8")


def test_pushed_card_names_the_repo_and_tag_pushed(
    hub: FakeHub, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # built for another repo (or none): the card on the Hub names where it actually lives
    rejection = Rejection(
        sample_id="x1", stage=Stage.PARSE, code=RejectionCode.PARSE_MALFORMED, message="m"
    )
    write_records(run_dir / "evolve_rejected.jsonl", [rejection])
    build_dataset_folder(run_dir, version="0.3.0", repo_id="someone/else")
    local = (run_dir / "dataset" / "README.md").read_text("utf-8")
    argv = ["push", "--repo", "me/forge-2", "--version", "0.3.0", "--run-dir", str(run_dir)]
    assert main([*argv, "--endpoint", hub.url]) == 0
    card = _sent_card(hub)
    # an example per config there is (this run has no multi-task instances)
    for config, split in (("single", "test"), ("rejected", "full")):
        assert f'load_dataset("me/forge-2", "{config}", split="{split}", revision="v0.3.0")' in card
    assert '"multi"' not in card.split(WHERE_START)[1].split(WHERE_END)[0]
    assert "asynctool eval --dataset me/forge-2 --revision v0.3.0 --split test" in card
    assert "someone/else" not in card and "output/runs/" not in card
    assert "the tag `v0.3.0` of the dataset repository `me/forge-2`" in card
    # only the examples changed; the local folder is left as published
    assert (run_dir / "dataset" / "README.md").read_text("utf-8") == local
    assert card.split("## Loading")[0] == local.split("## Loading")[0]
    assert card.split("## How it was built")[1] == local.split("## How it was built")[1]
    assert 'load_dataset("me/forge-2", revision="v0.3.0")' in capsys.readouterr().out


def test_failed_tag_is_reported_and_the_rerun_tags_the_same_commit(
    hub: FakeHub, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["push", "--repo", "me/forge", "--version", "0.3.0", "--run-dir", str(run_dir)]
    hub.fail_tags = 1
    assert main([*argv, "--endpoint", hub.url]) == 1
    err = capsys.readouterr().err
    (first,) = hub.history["me/forge"]
    assert f"committed {hub.url}/datasets/me/forge/commit/{first['id']}" in err
    assert "tagging it v0.3.0 failed" in err and "rerun the same push to tag it" in err
    assert hub.tags == {}
    # the rerun finds that commit at the head of the branch and tags it: no second commit
    assert main([*argv, "--endpoint", hub.url]) == 0
    assert "tagged the existing commit" in capsys.readouterr().out
    assert hub.history["me/forge"] == [first] and hub.tags == {"me/forge": ["v0.3.0"]}
    assert hub.requests[-1][1] == f"/api/datasets/me/forge/tag/{first['id']}"


def test_rerun_with_other_content_commits_it_before_tagging(hub: FakeHub, run_dir: Path) -> None:
    argv = ["push", "--repo", "me/forge", "--version", "0.3.0", "--run-dir", str(run_dir)]
    hub.fail_tags = 1
    assert main([*argv, "--endpoint", hub.url]) == 1
    # republished with other data under the same version: the untagged commit is not reused
    build_dataset_folder(run_dir, version="0.3.0", test_fraction=0.5)
    assert main([*argv, "--endpoint", hub.url]) == 0
    first, second = hub.history["me/forge"]
    assert first["title"] != second["title"] and "v0.3.0" in second["title"]
    assert hub.requests[-1][1] == f"/api/datasets/me/forge/tag/{second['id']}"
