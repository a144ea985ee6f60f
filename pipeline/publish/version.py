"""Dataset versions: plain semantic versions, published as git tags ``v<version>``."""

from __future__ import annotations

import re

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def check_version(version: str) -> str:
    """Return ``version`` if it is ``MAJOR.MINOR.PATCH`` (e.g. ``0.1.0``), else raise ValueError."""
    if not _SEMVER.match(version):
        raise ValueError(
            f"version {version!r} is not MAJOR.MINOR.PATCH (e.g. 0.1.0); it becomes the tag "
            f"v<version> that load_dataset(..., revision=...) pins"
        )
    return version


def tag_of(version: str) -> str:
    return f"v{check_version(version)}"
