"""Rendering shared by the app and ``asynctool audit export`` (one self-contained HTML report).

Every template is rendered with autoescaping on, so sample content (questions, states, LLM text)
is always text, never markup; pages also carry a Content-Security-Policy without scripts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.audit.faults import Faults, find_faults, mark_question
from pipeline.audit.store import (
    DECISIONS,
    Kind,
    RejectRow,
    RunData,
    latest_reviews,
    read_reviews,
    reject_rows,
)
from pipeline.jsonl import write_atomic
from pipeline.models import Review

TEMPLATES = Path(__file__).parent / "templates"
#: no scripts, no remote anything: a page (or a shared report) can only show text and styles
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def pretty(value: Any) -> str:
    """JSON for reading; returned as plain text so autoescaping still applies."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every sample value is text, whatever the file extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = pretty
    env.globals["CSP"] = CSP
    return env


def sample_context(
    data: RunData, reviews: Sequence[Review], sample_id: str
) -> dict[str, Any] | None:
    """What the sample page shows, or None for an id the run does not know."""
    kind = data.kind(sample_id)
    if kind is None:
        return None
    task = data.task(sample_id)
    rejections = data.rejections.get(sample_id, [])
    history = [review for review in reviews if review.sample_id == sample_id]
    faults = find_faults(task, rejections)
    return {
        "sample_id": sample_id,
        "kind": kind.value,
        "task": task,
        "rejections": rejections,
        "failing": faults.calls,
        "faults": faults,
        "question_parts": mark_question(task.question, faults.spans) if task else [],
        "history": history,
        # the version a decision form carries: a different count at submit time means
        # someone decided this sample after the page was rendered
        "seen": len(history),
        "latest": history[-1] if history else None,
        "decisions": [decision.value for decision in DECISIONS[kind]],
        "lineage": data.lineage(sample_id),
        # an override can only be published when the candidate task was stored
        "publishable": kind is Kind.ACCEPTED or task is not None,
    }


def sample_json(context: Mapping[str, Any]) -> dict[str, Any]:
    """The sample page's data as JSON-ready values."""
    task = context["task"]
    return {
        "sample_id": context["sample_id"],
        "kind": context["kind"],
        "task": task.model_dump(mode="json") if task is not None else None,
        "rejections": [r.model_dump(mode="json") for r in context["rejections"]],
        "reviews": [r.model_dump(mode="json") for r in context["history"]],
        "latest": context["latest"].model_dump(mode="json") if context["latest"] else None,
        "decisions": context["decisions"],
        "seen": context["seen"],
        "faults": faults_json(context["faults"]),
        "lineage": [
            {"id": step.id, "depth": step.depth, "kind": step.kind.value if step.kind else None}
            for step in context["lineage"]
        ],
    }


def faults_json(faults: Faults) -> dict[str, Any]:
    return {
        "calls": sorted(faults.calls),
        "arguments": {key: sorted(names) for key, names in faults.arguments.items() if names},
        "bindings": {key: sorted(slots) for key, slots in faults.bindings.items() if slots},
        "question": faults.spans,
    }


def render_report(data: RunData, reviews: Sequence[Review], now: datetime) -> str:
    latest = latest_reviews(reviews)
    rows: list[RejectRow] = reject_rows(data, latest)
    anchors = {row.sample_id: f"s-{number}" for number, row in enumerate(rows, 1)}

    def href(sample_id: str) -> str | None:
        return f"#{anchors[sample_id]}" if sample_id in anchors else None

    samples = []
    for row in rows:
        context = sample_context(data, reviews, row.sample_id)
        if context is not None:
            samples.append({**context, "anchor": anchors[row.sample_id]})
    codes: dict[str, int] = {}
    for row in rows:
        for rejection in row.rejections:
            codes[rejection.code.value] = codes.get(rejection.code.value, 0) + 1
    return (
        environment()
        .get_template("report.html")
        .render(
            run=data.run_dir.name,
            generated=now.isoformat(timespec="seconds"),
            samples=samples,
            codes=sorted(codes.items(), key=lambda item: (-item[1], item[0])),
            href=href,
            standalone=True,
        )
    )


def export_report(
    run_dir: Path, out: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> int:
    """Write the report of every rejected sample to ``out``; returns how many it holds."""
    data = RunData.load(run_dir)
    reviews = read_reviews(run_dir)
    write_atomic(out, render_report(data, reviews, clock()))
    out.chmod(0o644)  # a report is for sharing; the atomic write leaves it private
    return sum(1 for sample_id in data.rejections if sample_id not in data.accepted)
