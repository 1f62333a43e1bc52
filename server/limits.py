"""Per-connection limits that need a little state or parsing: the live frame rate and the Origin check."""

from __future__ import annotations

import time
from urllib.parse import urlsplit


class RateLimiter:
    """A token bucket: `rate` events per second on average, bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._last = time.monotonic()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True  # 0 turns the limit off
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def parse_origins(setting: str) -> frozenset[str]:
    """`allowed_origins` as a set of lower-case origins ("https://host:port"), "*" for any."""
    return frozenset(o.strip().rstrip("/").lower() for o in setting.split(",") if o.strip())


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """A browser's WebSocket is allowed from the page's own host or a configured origin.

    No Origin header means a non-browser client (scripts, tests), which cross-site attacks can't use.
    """
    if origin is None or "*" in allowed:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == (host or "").lower()
