"""The disk cache of model answers: SQLite in WAL mode, one connection per thread.

Every HTTP-successful answer is stored, valid or not, so a rerun replays the same conversation
(re-asks included) without a single request. Lookups and inserts take well under a millisecond,
so they run inline on the event loop.

A key names one sample, not just a prompt (``cache_key``'s ``sample``): a prompt asked twice in
a run at a temperature above 0 has two answers, and a rerun gets both back, each for the same
caller. The first answer stored under a key is the one kept (``put`` returns it), so two
requests for one sample racing each other agree with what a rerun will read.

A key also names the server when it is another machine (``endpoint_identity``): two providers
serving one model name (a hosted model and a quantised copy behind another URL) are different
samplers, and one's answers must not replay as the other's. A server on this machine (loopback)
is keyed by the model name alone, whatever its port: the port of a local server is an accident
of what was free (``make llm-local LLM_PORT=...``, a test's fake server on any port), the model
name is the file it serves, and a run resumed after the server was restarted elsewhere must
replay what it already has. Two local servers that answer one model name differently (the same file
under another chat format) must be given different model names, or different cache files.
Local keys are the ones written before servers were named, so those caches still answer.

The same file remembers what each endpoint supports (``endpoints``), so every client, shard and
run that shares the cache starts from what an earlier one learned.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.models import canonical_json

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    raw TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    model TEXT,
    stored_at REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS endpoints (
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    learned_at REAL NOT NULL,
    PRIMARY KEY (base_url, model)
)
""",
)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_this_machine(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def endpoint_identity(base_url: str) -> str | None:
    """The server as a cache key names it: None for a server on this machine (see the module
    docstring), else the base URL normalised so that spellings of one address agree (scheme
    and host in lower case, no default port, user, query or trailing slash)."""
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").rstrip(".")
    if _is_this_machine(host):
        return None
    scheme, path = parts.scheme.lower(), parts.path.rstrip("/")
    try:
        port = parts.port
    except ValueError:  # not a number: kept as written (no request can reach it anyway)
        return f"{scheme}://{parts.netloc.rpartition('@')[2].lower()}{path}"
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    shown_port = "" if port is None or port == _DEFAULT_PORTS.get(scheme) else f":{port}"
    return f"{scheme}://{host}{shown_port}{path}"


def cache_key(
    *,
    model: str,
    messages: list[dict[str, str]],
    parameters: dict[str, Any],
    template_hash: str,
    schema_digest: str,
    sample: int = 0,
    resample: int = 0,
    endpoint: str | None = None,
) -> str:
    """sha256 over what decides the answer; deliberately not the response_format mode.

    ``schema_digest`` is ``content_hash(output_json_schema, 64)``, computed once per output type.
    ``sample`` tells apart the answers to one prompt asked several times, ``resample`` the new
    samples drawn after a reply was cut at the token cap. The first sample's first draw keys as
    before samples were counted, so caches written earlier still answer. ``endpoint`` is
    ``endpoint_identity(base_url)``: None (a local server) keys as before servers were named.
    """
    material: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "parameters": parameters,
        "template_hash": template_hash,
        "schema": schema_digest,
    }
    if sample or resample:
        material["sample"] = [sample, resample]
    if endpoint is not None:
        material["endpoint"] = endpoint
    return hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    raw: str
    prompt_tokens: int
    completion_tokens: int
    #: why generation stopped ("stop", "length", "tool_calls", ...), None when the server did
    #: not say (or the answer was cached before this was kept)
    finish_reason: str | None = None


#: how long opening a cache waits for another process that is switching it to WAL
WAL_WAIT_SECONDS = 30.0


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the file to write-ahead logging. Two processes opening a new cache at once both
    try; the switch takes an exclusive lock that SQLite's busy timeout does not wait for, so
    "database is locked" is retried here until the other has finished."""
    deadline = time.monotonic() + WAL_WAIT_SECONDS
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class AnswerCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connection()  # create the file and tables now, so a bad path fails early

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # autocommit; the timeout waits out other processes' write locks
            connection = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            _use_wal(connection)
            # WAL + NORMAL: durable against process crashes, no fsync per insert
            connection.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                connection.execute(statement)
            _add_finish_reason(connection)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def get(self, key: str) -> CachedAnswer | None:
        row = (
            self._connection()
            .execute(
                "SELECT raw, prompt_tokens, completion_tokens, finish_reason FROM answers"
                " WHERE key = ?",
                (key,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return CachedAnswer(row[0], row[1], row[2], row[3])

    def put(self, key: str, answer: CachedAnswer, model: str | None = None) -> CachedAnswer:
        """Store ``answer`` unless the key already has one; returns the answer kept."""
        connection = self._connection()
        connection.execute(
            "INSERT OR IGNORE INTO answers"
            " (key, raw, prompt_tokens, completion_tokens, model, stored_at, finish_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                answer.raw,
                answer.prompt_tokens,
                answer.completion_tokens,
                model,
                time.time(),
                answer.finish_reason,
            ),
        )
        kept = self.get(key)
        return answer if kept is None else kept

    def __len__(self) -> int:
        row = self._connection().execute("SELECT COUNT(*) FROM answers").fetchone()
        return int(row[0])

    # -- what endpoints support --

    def endpoint(self, base_url: str, model: str) -> dict[str, Any] | None:
        row = (
            self._connection()
            .execute(
                "SELECT capabilities FROM endpoints WHERE base_url = ? AND model = ?",
                (base_url, model),
            )
            .fetchone()
        )
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except ValueError:
            return None  # unreadable: learn again
        return data if isinstance(data, dict) else None

    def put_endpoint(self, base_url: str, model: str, capabilities: dict[str, Any]) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?)",
            (base_url, model, canonical_json(capabilities), time.time()),
        )

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


def _add_finish_reason(connection: sqlite3.Connection) -> None:
    """Caches written before finish reasons were kept gain the column (NULL for old rows)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(answers)")}
    if "finish_reason" not in columns:
        try:
            connection.execute("ALTER TABLE answers ADD COLUMN finish_reason TEXT")
        except sqlite3.OperationalError as error:  # another connection added it first
            if "duplicate column" not in str(error):
                raise
