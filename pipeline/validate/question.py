"""Question checks: the question stands on its own, asks for something and reads cleanly.

(Placeholder: the checks are being written; see docs/validation.md.)
"""

from __future__ import annotations

from pipeline.validate.context import ValidationContext


def check_question(ctx: ValidationContext) -> None:
    """Reject a question that presumes context, asks nothing, or carries generator artefacts."""
    return None
