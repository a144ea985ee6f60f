"""One process per run folder, a record of what defines a run, and cleanup after a kill.

A run folder is resumable: a rerun skips finished shards. That is safe only while one process
works in it and only under the inputs and settings it started with, so a stage
:func:`claim`\\ s its inputs once and refuses others, and :func:`run_lock` refuses a second
process. Files a killed process left half-written (``.*.tmp``, a dataset folder being swapped
in) are swept when the next process takes the lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.jsonl import write_atomic

LOCK_FILE = ".lock"


class RunBusy(RuntimeError):
    """Another process holds the run folder."""


class RunMismatch(ValueError):
    """A run folder was started with other inputs or settings than this rerun."""


_held: dict[Path, tuple[int, int]] = {}  # resolved run folder -> (lock fd, depth)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this process (re-entrant); another process gets :class:`RunBusy`.

    The lock is an advisory ``flock`` on ``run_dir/.lock``: the kernel drops it when the
    holder dies, so a killed run never leaves the folder locked.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise RunBusy(
            f"{run_dir} is in use by another process (pid {holder}); wait for it to finish, "
            "or use another run id"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    _held[key] = (fd, 1)
    try:
        sweep_leftovers(key)
        yield
    finally:
        del _held[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def sweep_leftovers(run_dir: Path) -> list[Path]:
    """Remove what a killed process left half-done in ``run_dir``; returns what went.

    Only the lock holder may call this: a live writer's temporary files look the same.
    A dataset folder caught between the two renames of a swap is put back first.
    """
    removed: list[Path] = []
    for old in sorted(run_dir.glob(".*-old-*")):
        if old.is_dir():
            for kept in old.iterdir():
                target = run_dir / kept.name
                if not target.exists():  # killed after moving the old folder aside
                    os.replace(kept, target)
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    for new in sorted(run_dir.glob(".*-new-*")):
        if new.is_dir():
            shutil.rmtree(new, ignore_errors=True)
            removed.append(new)
    for temp in sorted(run_dir.rglob(".*.tmp")):
        if temp.is_file():
            temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def claim(record: Path, inputs: Mapping[str, Any], stage: str) -> None:
    """Record what defines this stage of a run in ``record``, or refuse other inputs.

    A stage reuses the finished shards of its run folder, so resuming it with another input
    file or other settings would silently mix two runs.
    """
    wanted = json.loads(json.dumps(inputs))
    if record.exists():
        before = json.loads(record.read_text(encoding="utf-8"))
        if before == wanted:
            return
        keys = wanted.keys() | before.keys()
        changed = sorted(key for key in keys if before.get(key) != wanted.get(key))
        raise RunMismatch(
            f"{record.parent} was {stage} from other {', '.join(changed)} "
            f"(before: {_short(before, changed)}; now: {_short(wanted, changed)}); resuming "
            "would mix two runs. Use a new run id, or delete that folder to start it again."
        )
    folder = record.parent
    if folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir()):
        raise RunMismatch(
            f"{folder} holds a {stage} stage that does not record its inputs; resuming could "
            "mix two runs. Use a new run id, or delete that folder to start it again."
        )
    write_atomic(record, json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def _short(values: Mapping[str, Any], keys: list[str]) -> str:
    text = ", ".join(f"{key}={json.dumps(values.get(key))}" for key in keys)
    return text if len(text) <= 200 else text[:197] + "..."
