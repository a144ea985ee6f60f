"""What an operator produces: a candidate task, or a rejection when it could not make one."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models import Rejection, Task


@dataclass(frozen=True)
class Candidate:
    """A task to validate, or a rejection; both when the operator itself rejected the task it
    made (a paraphrase that respelt a value), which is kept for reviewers."""

    operator: str
    parent_id: str
    task: Task | None = None
    rejection: Rejection | None = None
    raw: str | None = None  # the model's text, kept on any rejection of an LLM candidate
