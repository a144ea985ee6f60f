"""The review app through FastAPI's TestClient (and one real uvicorn server for concurrency)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipeline.audit.app import create_app, is_loopback
from pipeline.audit.store import PAGE_SIZE
from pipeline.cli import main
from pipeline.models import Review

if TYPE_CHECKING:
    from tests.audit.conftest import AuditRun

Served = Callable[[FastAPI], AbstractContextManager[str]]


def _client(run: AuditRun, clock: Callable[[], datetime] | None = None) -> TestClient:
    # the app answers loopback hosts only; TestClient's default host is "testserver"
    return TestClient(create_app(run.run_dir, clock), base_url="http://127.0.0.1")


def _lines(run_dir: Path) -> list[str]:
    return (run_dir / "reviews.jsonl").read_text("utf-8").splitlines()


def test_filters_counts_and_paging(audit_run: AuditRun) -> None:
    client = _client(audit_run)
    everything = client.get("/api/rejects").json()
    assert everything["total"] == 4 + len(audit_run.filler)
    assert everything["counts"] == {
        "minimality.redundant_call": len(audit_run.filler),
        "grounding.ungrounded_argument": 1,
        "static.unknown_tool": 1,
        "execute.tool_error": 1,
        "parse.malformed": 1,
    }
    assert len(everything["items"]) == PAGE_SIZE and everything["pages"] == 2
    second = client.get("/api/rejects", params={"page": 2}).json()
    assert len(second["items"]) == everything["total"] - PAGE_SIZE
    assert set(everything["options"]["operator"]) == {"-", "extend", "paraphrase", "verbalise"}

    def ids(**filters: str) -> set[str]:
        return {
            item["sample_id"] for item in client.get("/api/rejects", params=filters).json()["items"]
        }

    assert ids(code="static.unknown_tool") == {audit_run.broken.id}
    assert ids(stage="parse") == {audit_run.raw_only}
    assert ids(category="filesystem") == {
        audit_run.good.id,
        audit_run.broken.id,
        audit_run.payload.id,
    }
    assert ids(category="filesystem", operator="paraphrase") == {audit_run.good.id}
    assert ids(model="smollm2-135m") == {audit_run.good.id}
    assert ids(model="-", code="parse.malformed") == {audit_run.raw_only}
    # counts ignore the code filter itself, so every code stays one click away
    narrowed = client.get("/api/rejects", params={"category": "filesystem", "code": "x"}).json()
    assert narrowed["total"] == 0
    assert narrowed["counts"] == {
        "grounding.ungrounded_argument": 1,
        "static.unknown_tool": 1,
        "execute.tool_error": 1,
    }
    page = client.get("/rejects", params={"operator": "extend"})
    assert page.status_code == 200
    # the sample link keeps the filters: they define the sample page's "next sample"
    assert f'href="/sample/{audit_run.broken.id}?operator=extend"' in page.text
    assert audit_run.good.id not in page.text
    assert "static.unknown_tool</a> 1" in page.text


def test_sample_page_shows_what_failed(audit_run: AuditRun) -> None:
    client = _client(audit_run)
    good = audit_run.good
    html = client.get(f"/sample/{good.id}").text
    failing = good.calls[-1].id
    assert f'<tr class="failing">\n  <td><code>{failing}</code> ✗ failing' in html
    assert html.count('class="failing"') == 1
    assert '<details class="state"><summary>initial state</summary>' in html
    assert "+ alice/out.txt" in html and "grounding.ungrounded_argument" in html
    data = client.get(f"/api/samples/{good.id}").json()
    assert data["kind"] == "rejected"
    assert data["decisions"] == ["confirm_reject", "override_accept"]
    parent = good.lineage.parents[0]
    seed = next(t for t in audit_run.accepted if t.id == parent).lineage.parents[0]
    assert [(step["id"], step["depth"], step["kind"]) for step in data["lineage"]] == [
        (parent, 1, "accepted"),
        (seed, 2, "accepted"),
    ]
    raw = client.get(f"/sample/{audit_run.raw_only}").text
    assert "raw LLM text" in raw and "No candidate task was stored" in raw
    assert "cannot be published" in raw
    accepted = client.get(f"/api/samples/{audit_run.seeds[0].id}").json()
    assert accepted["kind"] == "accepted" and accepted["decisions"] == ["reject"]
    assert client.get("/sample/nope").status_code == 404


def test_decisions_are_appended_with_reviewer_and_time(
    audit_run: AuditRun, clock: Callable[[], datetime]
) -> None:
    client = _client(audit_run, clock)
    sample = audit_run.good.id
    form = {
        "sample_id": sample,
        "reviewer": " Ann ",
        "note": "fine as is",
        "decision": "override_accept",
    }
    response = client.post("/decide", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/sample/{sample}?saved=1"
    first = _lines(audit_run.run_dir)
    assert len(first) == 1
    review = Review.model_validate_json(first[0])
    assert (review.reviewer, review.note, review.decision.value) == (
        "Ann",
        "fine as is",
        "override_accept",
    )
    assert review.at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    client.post("/decide", data={**form, "reviewer": "Bo", "decision": "confirm_reject"})
    lines = _lines(audit_run.run_dir)
    assert len(lines) == 2 and lines[0] == first[0]  # append-only: the first line is untouched
    page = client.get(f"/sample/{sample}?saved=1").text
    assert "Decision saved." in page and "Ann" in page and "Bo" in page
    assert client.get(f"/api/samples/{sample}").json()["latest"]["decision"] == "confirm_reject"
    listed = client.get("/api/rejects", params={"decision": "confirm_reject"}).json()["items"]
    assert [item["sample_id"] for item in listed] == [sample]

    refused = [
        ({**form, "decision": "reject"}, 400),  # spot-check decision on a rejected sample
        ({**form, "reviewer": "  "}, 400),
        ({**form, "decision": "maybe"}, 400),
        ({**form, "sample_id": "nope"}, 404),
    ]
    for bad, status in refused:
        assert client.post("/decide", data=bad).status_code == status
    made = client.post("/api/decisions", json={**form, "reviewer": "Cy"})
    assert made.status_code == 201 and made.json()["reviewer"] == "Cy"
    assert len(_lines(audit_run.run_dir)) == 3
    assert len(client.get("/api/reviews").json()) == 3


def test_requests_from_elsewhere_are_refused(audit_run: AuditRun) -> None:
    client = _client(audit_run)
    form = {"sample_id": audit_run.good.id, "reviewer": "x", "decision": "confirm_reject"}
    evil = client.post("/decide", data=form, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    same = client.post(
        "/decide", data=form, headers={"origin": "http://127.0.0.1"}, follow_redirects=False
    )
    assert same.status_code == 303
    assert len(_lines(audit_run.run_dir)) == 1
    rebound = TestClient(create_app(audit_run.run_dir), base_url="http://attacker.example")
    assert rebound.get("/rejects").status_code == 400
    headers = client.get("/rejects").headers
    assert "script-src" not in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]


def test_spot_check_is_deterministic_and_takes_reject(audit_run: AuditRun) -> None:
    client = _client(audit_run)
    drawn = client.get("/api/spot", params={"seed": 3, "size": 4}).json()
    assert drawn == client.get("/api/spot", params={"seed": 3, "size": 4}).json()
    assert len(drawn["ids"]) == 4 and drawn["total"] == len(audit_run.accepted)
    assert set(drawn["ids"]) <= {task.id for task in audit_run.accepted}
    page = client.get("/spot", params={"seed": 3, "size": 4}).text
    assert all(f'href="/sample/{task_id}?seed=3&amp;size=4"' in page for task_id in drawn["ids"])
    target = drawn["ids"][0]
    sample = client.get(f"/sample/{target}").text
    assert 'value="reject">reject</button>' in sample and "override accept" not in sample
    form = {"sample_id": target, "reviewer": "Di", "decision": "reject"}
    assert client.post("/decide", data=form).status_code == 200  # followed to the sample page
    assert client.post("/decide", data={**form, "decision": "override_accept"}).status_code == 400


def test_sample_content_is_escaped(audit_run: AuditRun) -> None:
    client = _client(audit_run)
    html = client.get(f"/sample/{audit_run.payload.id}").text
    for payload in (audit_run.SCRIPT, audit_run.IMG):
        assert payload not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html.lower()
    listing = client.get("/rejects").text
    assert audit_run.IMG not in listing and "&lt;img src=x onerror=alert(1)&gt;" in listing


def test_concurrent_decisions_from_two_clients_lose_nothing(
    audit_run: AuditRun, serve_app: Served
) -> None:
    per_thread, threads_per_client = 25, 4
    samples = [audit_run.good.id, audit_run.broken.id]
    failures: list[str] = []

    def hammer(base: str, client_no: int, thread_no: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            for n in range(per_thread):
                form = {
                    "sample_id": samples[(thread_no + n) % 2],
                    "reviewer": f"client{client_no}",
                    "note": f"{client_no}-{thread_no}-{n}",
                    "decision": "confirm_reject",
                }
                response = client.post("/decide", data=form)
                if response.status_code != 303:
                    failures.append(f"{response.status_code} {response.text}")

    with serve_app(create_app(audit_run.run_dir)) as base:
        workers = [
            threading.Thread(target=hammer, args=(base, client_no, thread_no))
            for client_no in (1, 2)
            for thread_no in range(threads_per_client)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert not failures
    lines = _lines(audit_run.run_dir)
    expected = 2 * threads_per_client * per_thread
    assert len(lines) == expected
    notes = {Review.model_validate_json(line).note for line in lines}
    assert len(notes) == expected  # every decision exactly once, none torn


def test_loopback_only(audit_run: AuditRun, capsys: pytest.CaptureFixture[str]) -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.4", "example.com", ""):
        assert not is_loopback(host), host
    code = main(["audit", "serve", "--run-dir", str(audit_run.run_dir), "--host", "0.0.0.0"])
    assert code == 2 and "loopback only" in capsys.readouterr().err


def test_export_writes_one_escaped_self_contained_report(
    audit_run: AuditRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "share" / "report.html"
    assert main(["audit", "export", "--run-dir", str(audit_run.run_dir), "--out", str(out)]) == 0
    assert f"{4 + len(audit_run.filler)} rejected samples" in capsys.readouterr().out
    html = out.read_text("utf-8")
    assert audit_run.SCRIPT not in html and audit_run.IMG not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    lowered = html.lower()
    assert (
        "<script" not in lowered
        and "<link" not in lowered
        and "src=" not in lowered.replace("img src=x", "")
    )
    assert "http://" not in html and "https://" not in html
    assert 'action="/decide"' not in html  # a shared report has no forms
    for task in (audit_run.good, audit_run.broken, audit_run.payload):
        assert f"<h2>{task.id} " in html
    # the lineage of a reject links inside the report only when the parent is in it
    assert 'href="#s-' in html
    default = main(["audit", "export", "--run-dir", str(audit_run.run_dir)])
    assert default == 0 and (audit_run.run_dir / "audit_report.html").is_file()


def test_missing_run_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="evolved.jsonl"):
        create_app(tmp_path)


def _json(value: Any) -> str:
    return json.dumps(value)


def test_ids_with_slashes_and_spaces_round_trip(
    make_run: Callable[..., AuditRun], tmp_path: Path
) -> None:
    run = make_run(tmp_path / "odd")
    path = run.run_dir / "evolve_rejected.jsonl"
    odd = "bfcl:multi turn/3#1"
    line = {
        "sample_id": odd,
        "stage": "parse",
        "code": "parse.malformed",
        "message": "m",
        "raw": "x",
    }
    path.write_text(path.read_text("utf-8") + _json(line) + "\n", "utf-8")
    client = _client(run)
    assert client.get("/sample/" + quote(odd, safe="")).status_code == 200
    form = {"sample_id": odd, "reviewer": "Ed", "decision": "confirm_reject"}
    response = client.post("/decide", data=form, follow_redirects=False)
    assert response.headers["location"] == "/sample/" + quote(odd, safe="") + "?saved=1"
