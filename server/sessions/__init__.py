"""Session stores: in this worker's memory (the default), or in Redis when `redis_url` is set."""

from __future__ import annotations

from ..config import Config
from ..history import Bounds
from ..metrics import Metrics
from .base import Owner, Session, SessionStore, TakenOver
from .memory import MemoryStore

__all__ = ["Owner", "Session", "SessionStore", "TakenOver", "history_bounds", "make_store"]


def make_store(config: Config, worker: str, metrics: Metrics) -> SessionStore:
    if not config.redis_url:
        return MemoryStore(config.resume_grace_s, history_bounds(config), max_detached=config.max_connections)
    from .redis_store import RedisStore  # only then: `make run` without Redis never imports redis-py

    # A takeover waits for the old owner as long as that owner may take to drain, and a little more.
    return RedisStore(config.redis_url, config.redis_timeout_s, config.resume_grace_s, history_bounds(config),
                      config.drain_timeout_s + 1, worker, metrics)


def history_bounds(config: Config) -> Bounds:
    return Bounds(config.history_frames, config.history_photos, config.history_bytes)
