"""JSON-lines reading and atomic writing of contract records, files and folders."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class RecordError(ValueError):
    """A line of a JSON-lines file is not a valid record; says which file and line."""


def read_records(path: Path, model: type[M]) -> Iterator[M]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield model.model_validate_json(line)
            except ValidationError as error:
                raise RecordError(
                    f"{path}:{number}: not a valid {model.__name__}: {error}"
                ) from None


@contextmanager
def _replacing(path: Path, mode: str) -> Iterator[IO[Any]]:
    """A handle on a temporary file beside ``path`` that replaces ``path`` when the block
    ends; on any failure (a full disk, a kill signal) the temporary file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half."""
    with _replacing(path, "w") as handle:
        handle.write(text)


def write_records(path: Path, records: Iterable[BaseModel]) -> int:
    """Stream records to a temporary file, then rename: memory stays flat for any count."""
    count = 0
    with _replacing(path, "w") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
            count += 1
    return count


def write_parts(parts: Iterable[Path], path: Path) -> None:
    """Join files into ``path`` in order, atomically; a failed join (a full disk) leaves no
    half-written temporary file behind."""
    with _replacing(path, "wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_cwd = -100
    done = renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False  # an old kernel or a file system without exchange
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(built: Path, target: Path) -> None:
    """Put the folder ``built`` in place of ``target`` so that ``target`` is a complete folder
    at every instant: exchanged in one step where the system can. Elsewhere the old folder is
    moved aside first; a kill between the two renames leaves it in ``.<name>-old-*``, which
    :func:`pipeline.runguard.sweep_leftovers` puts back."""
    if not target.exists():
        os.replace(built, target)
        return
    if _exchange(built, target):
        shutil.rmtree(built)  # now the old folder
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-old-"))
    os.replace(target, old / target.name)
    os.replace(built, target)
    shutil.rmtree(old)
