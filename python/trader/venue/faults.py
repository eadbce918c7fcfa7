"""Injected faults: latency, 429 rate limits, 5xx errors, responses dropped after an order was
accepted, websocket disconnects and gaps in the diff stream. Every random choice comes from one
seeded generator, so a run with the same seed and the same requests injects the same faults.

The fields may be changed while the server runs (``exchange.faults.error_rate = 1.0``); tests do
that to load markets cleanly, then turn a fault on.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Faults:
    latency_ms: float = 0.0  # added to every REST response (half before, half after processing) and
    # to every websocket message
    latency_jitter_ms: float = 0.0  # uniform 0..jitter added on top (REST only; ws keeps order)
    rate_limit: int = 0  # requests per window before 429 (0 = off); a 429'd request is not processed
    rate_window_s: float = 10.0
    error_rate: float = 0.0  # probability of a 5xx instead of processing (the request is not processed)
    error_status: int = 503
    drop_after_accept: float = 0.0  # probability that an accepted order's response (POST/DELETE
    # /api/v3/order) is dropped: the order is placed or canceled, the connection is closed
    ws_disconnect_every: float = 0.0  # close each websocket this many wall seconds after it opened
    sequence_gap_every: int = 0  # leave out every N-th message of each depth diff stream
    paths: frozenset | None = None  # REST endpoints (e.g. {"order", "depth"}) the REST faults apply
    # to; None = all. Latency applies everywhere.
    seed: int = 0


@dataclass
class FaultStats:
    rate_limited: int = 0
    errors: int = 0
    dropped: int = 0
    ws_disconnects: int = 0
    sequence_gaps: int = 0
    requests: int = 0


@dataclass
class FaultInjector:
    faults: Faults
    stats: FaultStats = field(default_factory=FaultStats)

    def __post_init__(self):
        self.rng = random.Random(self.faults.seed)
        self._window_start = time.monotonic()
        self._window_count = 0
        self._weight_window: deque[float] = deque()

    def applies(self, endpoint: str) -> bool:
        return self.faults.paths is None or endpoint in self.faults.paths

    def rate_limited(self) -> int | None:
        """Count a request; seconds until the window resets if it is over the limit, else None."""
        f = self.faults
        if f.rate_limit <= 0:
            return None
        now = time.monotonic()
        if now - self._window_start >= f.rate_window_s:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > f.rate_limit:
            self.stats.rate_limited += 1
            return max(1, math.ceil(self._window_start + f.rate_window_s - now))
        return None

    def error(self) -> bool:
        if self.faults.error_rate > 0 and self.rng.random() < self.faults.error_rate:
            self.stats.errors += 1
            return True
        return False

    def drop(self) -> bool:
        if self.faults.drop_after_accept > 0 and self.rng.random() < self.faults.drop_after_accept:
            self.stats.dropped += 1
            return True
        return False

    def latency_s(self) -> float:
        f = self.faults
        ms = f.latency_ms
        if f.latency_jitter_ms > 0:
            ms += self.rng.uniform(0, f.latency_jitter_ms)
        return ms / 1000.0

    def used_weight(self) -> int:
        """Requests in the last minute (sent as X-MBX-USED-WEIGHT-1M)."""
        now = time.monotonic()
        self._weight_window.append(now)
        while self._weight_window and self._weight_window[0] < now - 60:
            self._weight_window.popleft()
        return len(self._weight_window)
