"""Names the tool accepts from users: checked once, used by the command line and by the stages
that write or push, so that every entry point refuses the same things."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a Hub repository id ``user/name``, else raise ValueError."""
    if len(repo_id) > 96 or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ValueError(f"repository id {repo_id[:100]!r} is not of the form user/name")
    return repo_id


#: where BFCL v4's multi-turn files sit beside a checkout (``../shared``)
DEFAULT_BFCL = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "bfcl" / "v4"


def new_run_id() -> str:
    """A timestamp, plus a random suffix: two runs started in one second get two folders."""
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
