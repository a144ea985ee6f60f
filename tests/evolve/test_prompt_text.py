"""The operators' and the judge's prompts, rendered for a few seeds, kept as text.

The text of a prompt is what the LLM cache keys on and what the judge's calibration was measured
with, so it may change only on purpose. A change of how prompts are rendered (the Jinja
environment and its options, a helper that formats tools or results) shows here as a diff. After
a deliberate change to a template, a worked example or a tool's description, rewrite the
snapshot and review its diff:

    ASYNCTOOL_WRITE_SNAPSHOTS=1 .venv/bin/pytest tests/evolve/test_prompt_text.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.evolve.judge import messages
from pipeline.evolve.prompts import render
from pipeline.models import Evidence, Rejection, RejectionCode, Stage, Task
from pipeline.seeds import load_seeds

SNAPSHOT = Path(__file__).parent / "snapshots" / "prompt_text.json"
#: a data_format seed (quotes, newlines and ``>`` in what the prompts show) and a tickets one
SEEDS = ("cfbbcfcfcef9d1db", "c91b78da47abb1bf")
#: characters an HTML-escaping template engine would rewrite
MARKUP = "<b> & \"quoted\" 'single'"


def _seed(task_id: str) -> Task:
    found = [task for task in load_seeds() if task.id == task_id]
    assert found, f"seed {task_id} is gone: pick another seed and rewrite the snapshot"
    return found[0]


def _rejection(task: Task) -> Rejection:
    return Rejection(
        sample_id=task.id,
        stage=Stage.GROUNDING,
        code=RejectionCode.GROUNDING_HIDDEN_STATE,
        message=f"step s1 uses a value the request never gives ({MARKUP})",
        evidence=Evidence(step_id="s1"),
    )


def _rendered() -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for task_id in SEEDS:
        task = _seed(task_id)
        for operation in ("deepen", "broaden", "paraphrase"):
            out[f"{operation} {task_id}"] = render(operation, task).messages
        out[f"repair {task_id}"] = render("repair", task, _rejection(task)).messages
        out[f"judge {task_id}"] = messages(task)
        marked = task.model_copy(update={"question": f"{task.question} {MARKUP}"})
        out[f"judge-markup {task_id}"] = messages(marked)
    return out


def test_prompts_render_as_the_snapshot_says() -> None:
    rendered = _rendered()
    if os.environ.get("ASYNCTOOL_WRITE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        text = json.dumps(rendered, indent=1, ensure_ascii=False) + "\n"
        SNAPSHOT.write_text(text, encoding="utf-8")
    stored = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert sorted(stored) == sorted(rendered)
    for key, prompt in rendered.items():
        for message, expected in zip(prompt, stored[key], strict=True):
            assert message == expected, f"{key}: the {message['role']} message changed"


@pytest.mark.parametrize("task_id", SEEDS)
def test_prompts_are_plain_text(task_id: str) -> None:
    """Text reaches the model as written: nothing HTML-escaped, in any prompt."""
    task = _seed(task_id)
    repair = render("repair", task, _rejection(task)).messages[-1]["content"]
    judged = messages(task.model_copy(update={"question": f"{task.question} {MARKUP}"}))
    assert MARKUP in repair and MARKUP in judged[-1]["content"]
    assert "&amp;" not in repair + judged[-1]["content"]
