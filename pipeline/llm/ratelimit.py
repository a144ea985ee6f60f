"""The two independent limits applied to every HTTP request: requests in flight and per minute.

Both hold their state under a ``threading.Lock`` instead of in asyncio primitives, so one client
can be shared by tasks running on different event loops (e.g. orchestrator worker threads) and
the limits still hold for the client as a whole.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    granted: bool = field(default=False)


class ConcurrencyLimit:
    """A FIFO counting semaphore usable from any event loop in any thread."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"concurrency must be at least 1, got {limit}")
        self.limit = limit
        self._free = limit
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()
        self.in_flight_peak = 0

    async def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                self._note_peak()
                return
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:  # the slot arrived as we were cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if not self._waiters:
                self._free += 1
                return
            waiter = self._waiters.popleft()
            waiter.granted = True  # the slot moves straight to the waiter; _free is unchanged
        if waiter.loop.is_closed():  # its loop is gone: nobody will take the slot
            self.release()
            return
        waiter.loop.call_soon_threadsafe(_wake, waiter.future)

    def _note_peak(self) -> None:
        self.in_flight_peak = max(self.in_flight_peak, self.limit - self._free)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_: object) -> None:
        self.release()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RequestSpacing:
    """At most ``per_minute`` request starts a minute, spaced evenly (``60 / per_minute`` s).

    Each caller reserves the next free start time under the lock and sleeps until then, so
    waiting callers are served in order without polling.
    """

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {per_minute}")
        self.interval = 60.0 / per_minute
        self._lock = threading.Lock()
        self._next = 0.0

    async def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)
