"""Per-stage counters of LLM use (tokens, requests, retries, cache hits, ...) for manifest.json."""

from __future__ import annotations

import threading

#: prompt/completion_tokens: as reported by the server, for requests actually sent (cached
#: answers cost nothing); requests: HTTP requests sent, probes and retries included; retries:
#: backoffs after a transient failure; cache_hits: conversation turns answered from the cache;
#: reasks: turns that re-asked after invalid output (cached or not); failures: calls that
#: returned no value; failed_requests: requests answered with an HTTP error (refusals that taught
#: the client what the endpoint supports included); truncated: replies cut at the token cap
#: (``finish_reason=length``, cached or not); resamples: new samples drawn after such a reply
COUNTERS = (
    "prompt_tokens",
    "completion_tokens",
    "requests",
    "retries",
    "cache_hits",
    "reasks",
    "failures",
    "failed_requests",
    "truncated",
    "resamples",
)


class UsageLedger:
    """Safe to share between threads and tasks: every update holds one lock for a few adds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, dict[str, int]] = {}

    def record(
        self,
        stage: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        requests: int = 0,
        retries: int = 0,
        cache_hits: int = 0,
        reasks: int = 0,
        failures: int = 0,
        failed_requests: int = 0,
        truncated: int = 0,
        resamples: int = 0,
    ) -> None:
        deltas = (
            prompt_tokens,
            completion_tokens,
            requests,
            retries,
            cache_hits,
            reasks,
            failures,
            failed_requests,
            truncated,
            resamples,
        )
        with self._lock:
            counters = self._stages.get(stage)
            if counters is None:
                counters = self._stages[stage] = dict.fromkeys(COUNTERS, 0)
            for name, delta in zip(COUNTERS, deltas):
                counters[name] += delta

    def as_dict(self) -> dict[str, dict[str, int]]:
        """stage -> counters, sorted by stage so manifests diff cleanly."""
        with self._lock:
            return {stage: dict(self._stages[stage]) for stage in sorted(self._stages)}

    def total(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTERS, 0)
        for counters in self.as_dict().values():
            for name, value in counters.items():
                totals[name] += value
        return totals
