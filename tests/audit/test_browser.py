"""The review app in a real browser: Playwright for Python driving Debian's ``/usr/bin/chromium``.

A reviewer filters the list, opens a reject, overrides it, and publishing then includes it; a
sample full of script payloads renders as text and no dialog ever opens; the question is on screen
above a long evidence block, the argument at fault is marked, "next sample" leads on after a
decision, and a decision made on a page someone else has since decided is refused, note kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import pytest
from fastapi import FastAPI

from pipeline.audit.app import create_app
from pipeline.audit.store import read_reviews
from pipeline.cli import main
from pipeline.models import Evidence, Rejection, RejectionCode

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.audit.conftest import AuditRun

pytestmark = pytest.mark.slow  # a real browser: seconds per test

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 1000}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

Served = Callable[[FastAPI], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (make test installs it)"
    )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the messages of every dialog (alert, confirm, ...) it opened."""
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    dialogs: list[str] = []

    def record(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", record)
    opened.set_default_timeout(15_000)
    yield opened, dialogs
    context.close()


def test_filter_open_override_then_publish(
    audit_run: AuditRun, serve_app: Served, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, dialogs = page
    good = audit_run.good
    with serve_app(create_app(audit_run.run_dir)) as base:
        tab.goto(f"{base}/rejects")
        tab.select_option("select[name=category]", "filesystem")
        tab.select_option("select[name=operator]", "paraphrase")
        tab.get_by_role("button", name="filter").click()
        tab.wait_for_url("**/rejects?*operator=paraphrase*")
        rows = tab.locator("table.rejects tr")
        assert rows.count() == 2  # the header and the one match
        tab.get_by_role("link", name=good.id).click()
        tab.wait_for_url(f"**/sample/{good.id}?*operator=paraphrase*")
        assert tab.locator("tr.failing").count() == 1
        assert good.calls[-1].id in tab.locator("tr.failing").inner_text()
        shot = tmp_path / "sample_page.png"
        tab.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the sample page: {shot}")
        assert shot.stat().st_size > 10_000
        tab.get_by_label("reviewer").fill("Ann Reviewer")
        tab.get_by_label("note").fill("the argument is in the initial state; grounding missed it")
        tab.get_by_role("button", name="override accept").click()
        tab.wait_for_url(f"**/sample/{good.id}?saved=1*")
        assert tab.get_by_text("Decision saved.").is_visible()
        assert "override_accept" in tab.locator("h2").inner_text()
    reviews = read_reviews(audit_run.run_dir)
    assert [(r.sample_id, r.decision.value, r.reviewer) for r in reviews] == [
        (good.id, "override_accept", "Ann Reviewer")
    ]
    assert main(["publish", "--run-dir", str(audit_run.run_dir)]) == 0  # what `make publish` runs
    folder = audit_run.run_dir / "dataset"
    single: Any = datasets.load_dataset(str(folder), "single", cache_dir=str(tmp_path / "cache"))
    published = {row["id"] for split in single.values() for row in split}
    assert good.id in published
    assert published == {task.id for task in audit_run.accepted} | {good.id}
    assert not dialogs


def test_payloads_render_as_text(
    audit_run: AuditRun, serve_app: Served, page: tuple[Page, list[str]]
) -> None:
    tab, dialogs = page
    with serve_app(create_app(audit_run.run_dir)) as base:
        tab.goto(f"{base}/sample/{audit_run.payload.id}")
        question = tab.locator(".question")
        assert question.is_visible()
        text = question.inner_text()
        assert audit_run.SCRIPT in text and audit_run.IMG in text
        state = tab.locator("details.state pre")
        assert not state.is_visible()  # collapsed until asked for
        tab.get_by_text("initial state").click()
        assert state.is_visible() and audit_run.SCRIPT + audit_run.IMG in state.inner_text()
        # nothing from the sample became an element
        assert tab.locator("script").count() == 0
        assert tab.locator("img").count() == 0
        tab.goto(f"{base}/rejects?category=filesystem")
        assert tab.get_by_text(audit_run.IMG).first.is_visible()
        tab.wait_for_timeout(300)  # give a stray onerror handler time to fire
    assert dialogs == []


def _inflate_evidence(run: AuditRun) -> None:
    """Give the good sample a second rejection with the long output and diff real runs have."""
    bulky = Rejection(
        sample_id=run.good.id,
        stage=RejectionCode.EXECUTE_TOOL_ERROR.stage,
        code=RejectionCode.EXECUTE_TOOL_ERROR,
        message="a long trace",
        evidence=Evidence(
            output={f"key{n}": "value " * 20 for n in range(150)},
            diff=[f"+ alice/file{n}.txt" for n in range(150)],
        ),
        raw="\n".join(f"model line {n}" for n in range(150)),
    )
    with (run.run_dir / "evolve_rejected.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(bulky.model_dump_json() + "\n")


def test_question_first_fault_marked_then_next_sample(
    audit_run: AuditRun, serve_app: Served, page: tuple[Page, list[str]]
) -> None:
    tab, dialogs = page
    good, broken = audit_run.good, audit_run.broken
    _inflate_evidence(audit_run)
    with serve_app(create_app(audit_run.run_dir)) as base:
        tab.goto(f"{base}/rejects?category=filesystem")
        tab.get_by_role("link", name=good.id).click()
        tab.wait_for_url(f"**/sample/{good.id}?*")
        question = tab.locator(".question").bounding_box()
        evidence = tab.locator("#evidence").bounding_box()
        assert question is not None and evidence is not None
        # the question is on the first screen, the evidence comes after it
        assert question["y"] + question["height"] < VIEWPORT["height"]
        assert evidence["y"] > question["y"]
        fault = tab.locator("tr.failing .arg.fault")
        assert fault.count() == 1 and fault.is_visible()
        assert fault.locator("code").inner_text() == sorted(good.calls[-1].arguments)[-1]
        tab.get_by_label("reviewer").fill("Ann")
        tab.get_by_role("button", name="confirm reject").click()
        tab.wait_for_url(f"**/sample/{good.id}?saved=1*")
        tab.get_by_role("link", name="next sample").click()
        tab.wait_for_url(f"**/sample/{broken.id}?*category=filesystem*")
        assert tab.locator("h2").inner_text().split()[0] == broken.id
        assert tab.get_by_text("none yet").is_visible()  # the next one is undecided
    assert not dialogs


def test_a_decision_on_a_stale_page_is_refused_and_kept(
    audit_run: AuditRun, serve_app: Served, browser: Browser, page: tuple[Page, list[str]]
) -> None:
    tab, dialogs = page
    sample = audit_run.good.id
    note = "grounding missed the value in the question"
    other_context = browser.new_context(viewport=VIEWPORT)
    other = other_context.new_page()
    other.set_default_timeout(15_000)
    try:
        with serve_app(create_app(audit_run.run_dir)) as base:
            tab.goto(f"{base}/sample/{sample}")
            other.goto(f"{base}/sample/{sample}")
            other.get_by_label("reviewer").fill("Bo")
            other.get_by_role("button", name="confirm reject").click()
            other.wait_for_url(f"**/sample/{sample}?saved=1*")
            # Ann's page was loaded before Bo decided
            tab.get_by_label("reviewer").fill("Ann")
            tab.get_by_label("note").fill(note)
            tab.get_by_role("button", name="override accept").click()
            alert = tab.get_by_role("alert")
            assert (
                "Not saved" in alert.inner_text()
                and "Bo chose confirm reject" in alert.inner_text()
            )
            assert tab.get_by_label("note").input_value() == note
            assert tab.get_by_label("reviewer").input_value() == "Ann"
            assert len(read_reviews(audit_run.run_dir)) == 1
            tab.get_by_role("button", name="override accept").click()
            tab.wait_for_url(f"**/sample/{sample}?saved=1*")
            assert tab.get_by_text("Decision saved.").is_visible()
    finally:
        other_context.close()
    reviews = read_reviews(audit_run.run_dir)
    assert [(r.reviewer, r.decision.value, r.note) for r in reviews] == [
        ("Bo", "confirm_reject", ""),
        ("Ann", "override_accept", note),
    ]
    assert not dialogs
