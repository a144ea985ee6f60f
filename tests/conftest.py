"""Shared fixtures. Peer data is read from ../shared at test time and skipped where absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ASYNCTOOL_SHARED", REPO.parent / "shared"))
BFCL_V4 = SHARED / "peers" / "bfcl" / "v4"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (entering one takes 10-13 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def bfcl_dir() -> Path:
    if not (BFCL_V4 / "BFCL_v4_multi_turn_base.json").exists():
        pytest.skip(f"BFCL peer data not found at {BFCL_V4}")
    return BFCL_V4
