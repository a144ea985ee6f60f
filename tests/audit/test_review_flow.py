"""Issue 14 item 8 through the HTTP app: the question before the evidence, the fault marked in
the task, "next sample" through the list a reviewer came from, stale decisions refused with
nothing lost, and decision bodies capped without being echoed."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipeline.audit.app import MAX_BODY_BYTES, create_app
from pipeline.models import Evidence, Rejection, RejectionCode, Review

if TYPE_CHECKING:
    from tests.audit.conftest import AuditRun

Served = Callable[[FastAPI], AbstractContextManager[str]]
BIG = 50 * 1024 * 1024


def _client(run: AuditRun) -> TestClient:
    return TestClient(create_app(run.run_dir), base_url="http://127.0.0.1")


def _lines(run_dir: Path) -> list[str]:
    path = run_dir / "reviews.jsonl"
    return path.read_text("utf-8").splitlines() if path.is_file() else []


def _add_rejections(run_dir: Path, *rejections: Rejection) -> None:
    with (run_dir / "evolve_rejected.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(rejection.model_dump_json() + "\n" for rejection in rejections)


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} field in the page"
    return html.unescape(found.group(1))


def _form(page: str, **fields: str) -> dict[str, str]:
    """What the page's decision form posts, with the reviewer's entries."""
    keys = ("sample_id", "seen", "queue")
    return {**{key: _field(page, key) for key in keys}, **fields}


def test_question_comes_before_the_evidence_and_the_fault_is_marked(audit_run: AuditRun) -> None:
    good, broken = audit_run.good, audit_run.broken
    client = _client(audit_run)
    page = client.get(f"/sample/{good.id}").text
    last = good.calls[-1]
    name = sorted(last.arguments)[-1]  # the argument the conftest rejection names
    assert page.index('class="question"') < page.index('<table class="calls">')
    assert page.index('<table class="calls">') < page.index('id="evidence"')
    assert page.count("⚠ at fault") == 1
    assert f'<div class="arg fault"><code>{name}</code>' in page
    faults = client.get(f"/api/samples/{good.id}").json()["faults"]
    assert faults == {
        "calls": [last.id],
        "arguments": {last.id: [name]},
        "bindings": {},
        "question": [],
    }
    # an unknown tool names the call only: the row is marked, no argument is
    plain = client.get(f"/api/samples/{broken.id}").json()["faults"]
    assert plain["arguments"] == {} and plain["bindings"] == {}

    bound = next(call for call in broken.calls if call.bindings)
    slot, source = next(iter(bound.bindings.items()))
    span = good.question.split()[1] + " " + good.question.split()[2]
    huge_diff = [f"+ line {n}" for n in range(200)]
    _add_rejections(
        audit_run.run_dir,
        Rejection(
            sample_id=broken.id,
            stage=RejectionCode.DEPENDENCY_TYPE_MISMATCH.stage,
            code=RejectionCode.DEPENDENCY_TYPE_MISMATCH,
            message=f"step {bound.id} fills {slot!r} with {source!r}: different meanings",
            evidence=Evidence(step_id=bound.id, output={"binding": {slot: source}}),
        ),
        Rejection(
            sample_id=good.id,
            stage=RejectionCode.QUESTION_FORMAT_LOST.stage,
            code=RejectionCode.QUESTION_FORMAT_LOST,
            message="the question loses a format",
            evidence=Evidence(output={"span": span.upper()}, diff=huge_diff),
        ),
    )
    faults = client.get(f"/api/samples/{broken.id}").json()["faults"]
    assert faults["bindings"] == {bound.id: [slot]}
    assert faults["arguments"] == {bound.id: [slot.split(".")[0]]}
    page = client.get(f"/sample/{broken.id}").text
    assert f'<div class="binding fault"><code>{slot} ← {source}</code>' in page
    page = client.get(f"/sample/{good.id}").text
    # the question keeps its own spelling; the check quoted it in another case
    assert f'<mark class="fault" title="named by the rejection">{span}</mark>' in page
    # a long block is folded, a short one open
    assert '<details class="evidence"><summary>state diff (200 lines)</summary>' in page
    assert '<details class="evidence" open><summary>state diff (1 line)</summary>' in page


def test_next_sample_follows_the_list_the_reviewer_came_from(audit_run: AuditRun) -> None:
    good, broken, payload = audit_run.good, audit_run.broken, audit_run.payload
    client = _client(audit_run)
    listing = client.get("/rejects", params={"category": "filesystem"}).text
    assert f'href="/sample/{good.id}?category=filesystem"' in listing
    page = client.get(f"/sample/{good.id}", params={"category": "filesystem"}).text
    assert f'href="/sample/{broken.id}?category=filesystem">next undecided sample' in page

    def decide(sample: str, page: str) -> str:
        form = _form(page, reviewer="Ann", decision="confirm_reject")
        response = client.post("/decide", data=form, follow_redirects=False)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"/sample/{sample}?saved=1&category=filesystem"
        return client.get(response.headers["location"]).text

    saved = decide(good.id, page)
    assert "Decision saved." in saved
    assert f'rel="next" href="/sample/{broken.id}?category=filesystem">next sample' in saved
    saved = decide(broken.id, client.get(f"/sample/{broken.id}?category=filesystem").text)
    assert f'rel="next" href="/sample/{payload.id}?category=filesystem"' in saved
    saved = decide(payload.id, client.get(f"/sample/{payload.id}?category=filesystem").text)
    assert "Every sample in this list is decided." in saved
    assert 'href="/rejects?category=filesystem">back to the list' in saved
    # without a filter the queue is every reject: the parse failure comes next
    assert client.get(f"/api/samples/{payload.id}").json()["next_undecided"] == audit_run.raw_only
    # a decision filter does not empty the queue of the sample just decided
    undecided = client.get(f"/api/samples/{good.id}", params={"decision": "undecided"}).json()
    assert undecided["next_undecided"] == audit_run.raw_only

    drawn = client.get("/api/spot", params={"seed": 3, "size": 4}).json()["ids"]
    spot = client.get("/spot", params={"seed": 3, "size": 4}).text
    assert f'href="/sample/{drawn[0]}?seed=3&amp;size=4"' in spot
    first = client.get(f"/sample/{drawn[0]}", params={"seed": 3, "size": 4}).text
    form = _form(first, reviewer="Di", decision="reject")
    response = client.post("/decide", data=form)
    assert response.status_code == 200 and "Decision saved." in response.text
    assert f'rel="next" href="/sample/{drawn[1]}?seed=3&amp;size=4"' in response.text
    assert 'href="/spot?seed=3&amp;size=4">← spot check' in response.text


def test_a_stale_decision_is_refused_and_nothing_is_lost(audit_run: AuditRun) -> None:
    sample = audit_run.good.id
    client = _client(audit_run)
    opened = client.get(f"/sample/{sample}").text
    assert _field(opened, "seen") == "0"
    # someone else decides while the page is open
    other = {"sample_id": sample, "reviewer": "Bo", "decision": "confirm_reject", "seen": 0}
    assert client.post("/api/decisions", json=other).status_code == 201
    note = "the value is in the question after all\n(line two)"
    form = _form(opened, reviewer="Ann", note=note, decision="override_accept")
    refused = client.post("/decide", data=form, follow_redirects=False)
    assert refused.status_code == 409
    assert "Not saved: this sample was decided by someone else" in refused.text
    assert "Bo chose <b>confirm reject</b>" in refused.text
    assert "Your choice (<b>override accept</b>)" in refused.text
    assert f'<textarea name="note" maxlength="10000">{html.escape(note)}</textarea>' in refused.text
    assert 'autocomplete="name" value="Ann"' in refused.text
    assert len(_lines(audit_run.run_dir)) == 1  # nothing written for Ann yet
    # the warning page carries the new version: posting again records Ann's decision after Bo's
    again = client.post(
        "/decide",
        data=_form(refused.text, reviewer="Ann", note=note, decision="override_accept"),
        follow_redirects=False,
    )
    assert again.status_code == 303
    reviews = [Review.model_validate_json(line) for line in _lines(audit_run.run_dir)]
    assert [(r.reviewer, r.decision.value, r.note) for r in reviews] == [
        ("Bo", "confirm_reject", ""),
        ("Ann", "override_accept", note.strip()),
    ]
    stale = client.post("/api/decisions", json={**other, "seen": 1})
    assert stale.status_code == 409
    body = stale.json()
    assert body["detail"].startswith("not saved") and "seen=2" in body["detail"]
    assert [review["reviewer"] for review in body["since"]] == ["Ann"]
    assert len(_lines(audit_run.run_dir)) == 2
    # a client that sends no version is not checked (older scripts keep working)
    unversioned = {key: value for key, value in other.items() if key != "seen"}
    assert client.post("/api/decisions", json=unversioned).status_code == 201
    assert client.post("/api/decisions", json={**other, "seen": -1}).status_code == 422


def test_racing_reviewers_on_one_sample_only_one_wins(
    audit_run: AuditRun, serve_app: Served
) -> None:
    racers = 6
    start = threading.Barrier(racers)
    statuses: list[int] = []

    def post(base: str, number: int) -> None:
        entry = {
            "sample_id": audit_run.broken.id,
            "reviewer": f"r{number}",
            "decision": "confirm_reject",
            "seen": 0,
        }
        with httpx.Client(base_url=base, timeout=30) as client:
            start.wait()
            statuses.append(client.post("/api/decisions", json=entry).status_code)

    with serve_app(create_app(audit_run.run_dir)) as base:
        workers = [threading.Thread(target=post, args=(base, n)) for n in range(racers)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert sorted(statuses) == [201] + [409] * (racers - 1)
    assert len(_lines(audit_run.run_dir)) == 1


def _chunks(total: int, piece: bytes = b"x" * 65536) -> Iterator[bytes]:
    yield b'{"sample_id": "'
    for _ in range(total // len(piece)):
        yield piece
    yield b'", "reviewer": "x", "decision": "confirm_reject"}'


def test_decision_bodies_are_capped_and_never_echoed(
    audit_run: AuditRun, serve_app: Served
) -> None:
    client = _client(audit_run)
    marker = "MARKER-" * 10
    big = (
        '{"sample_id": "' + marker + "x" * BIG + '", "reviewer": "x", "decision": "confirm_reject"}'
    ).encode()
    declared = client.post(
        "/api/decisions", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json() == {"detail": f"request body over {MAX_BODY_BYTES // 1024} KiB refused"}
    # a chunked body declares no length: it is counted while read
    chunked = client.post(
        "/api/decisions", content=_chunks(BIG), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413 and len(chunked.content) < 200
    form = client.post(
        "/decide",
        content=b"note=" + b"x" * BIG,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413 and len(form.content) < 200
    # a bad body under the cap is described, not echoed
    bad = client.post(
        "/api/decisions",
        content=f'{{"sample_id": "{marker}", "decision": 5'.encode(),
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 422 and marker not in bad.text and "bad decision" in bad.text
    wrong = client.post(
        "/api/decisions", json={"sample_id": marker, "reviewer": "x", "decision": marker}
    )
    assert wrong.status_code == 422 and marker not in wrong.text and "decision" in wrong.text
    assert (
        client.post(
            "/api/decisions", content=b"{}", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    with serve_app(create_app(audit_run.run_dir)) as base:
        response = httpx.post(
            f"{base}/api/decisions",
            content=big,
            headers={"content-type": "application/json"},
            timeout=60,
        )
    assert response.status_code == 413 and marker not in response.text
    assert _lines(audit_run.run_dir) == []
