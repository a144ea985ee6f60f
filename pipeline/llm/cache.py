"""The disk cache of model answers: SQLite in WAL mode, one connection per thread.

Every HTTP-successful answer is stored, valid or not, so a rerun replays the same conversation
(re-asks included) without a single request. Lookups and inserts take well under a millisecond,
so they run inline on the event loop.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.models import canonical_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    raw TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    model TEXT,
    stored_at REAL NOT NULL
)
"""


def cache_key(
    *,
    model: str,
    messages: list[dict[str, str]],
    parameters: dict[str, Any],
    template_hash: str,
    schema_digest: str,
) -> str:
    """sha256 over what decides the answer; deliberately not the response_format mode.

    ``schema_digest`` is ``content_hash(output_json_schema, 64)``, computed once per output type.
    """
    material = {
        "model": model,
        "messages": messages,
        "parameters": parameters,
        "template_hash": template_hash,
        "schema": schema_digest,
    }
    return hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    raw: str
    prompt_tokens: int
    completion_tokens: int


class AnswerCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connection()  # create the file and table now, so a bad path fails early

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # autocommit; the timeout waits out other processes' write locks
            connection = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: durable against process crashes, no fsync per insert
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def get(self, key: str) -> CachedAnswer | None:
        row = (
            self._connection()
            .execute(
                "SELECT raw, prompt_tokens, completion_tokens FROM answers WHERE key = ?", (key,)
            )
            .fetchone()
        )
        if row is None:
            return None
        return CachedAnswer(raw=row[0], prompt_tokens=row[1], completion_tokens=row[2])

    def put(self, key: str, answer: CachedAnswer, model: str | None = None) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
            (key, answer.raw, answer.prompt_tokens, answer.completion_tokens, model, time.time()),
        )

    def __len__(self) -> int:
        row = self._connection().execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()
