"""Names the tool accepts from users: checked once, used by the command line and by the stages
that write or push, so that every entry point refuses the same things."""

from __future__ import annotations

import re

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a Hub repository id ``user/name``, else raise ValueError."""
    if len(repo_id) > 96 or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ValueError(f"repository id {repo_id[:100]!r} is not of the form user/name")
    return repo_id
