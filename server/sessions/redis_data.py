"""The Redis side of sessions: one hash per session, changed only by the Lua scripts in lua/, each call bounded.

The hash holds the session's counters (generation, owner, start, first and next seq, count, bytes, dropped), each
entry's JSON (`m<seq>`) and its image as received (`i<seq>`, binary). Every call runs under `timeout_s`, on a
blocking pool that waits at most as long for a free connection, without retries: a slow or missing Redis costs a
request that long once, and the caller keeps the history in memory instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..history import Bounds, Entry, Snapshot
from .base import TakenOver

_LUA = Path(__file__).with_name("lua")
_SCRIPTS = ("reserve", "claim", "adopt", "append", "release", "refresh", "snapshot")
_POOL_SIZE = 32  # Redis calls of one worker at once: about one per frame being answered, and one for pub/sub

T = TypeVar("T")


class Unavailable(Exception):  # noqa: N818
    """Redis did not answer within the timeout, or failed."""


class Gone(Exception):  # noqa: N818
    """Redis holds no such session: it expired, or Redis lost it (a restart without persistence)."""


def session_key(token: str) -> str:
    return f"digits:session:{{{token}}}"  # the braces: one hash slot per session, should Redis ever be a cluster


def worker_channel(worker: str) -> str:
    return f"digits:worker:{worker}"


class RedisData:
    def __init__(self, url: str, timeout_s: float, bounds: Bounds) -> None:
        self.timeout_s = timeout_s
        self.bounds = bounds
        pool = BlockingConnectionPool.from_url(url, max_connections=_POOL_SIZE, timeout=timeout_s,
                                               socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                               retry=Retry(NoBackoff(), 0))
        self.client = Redis.from_pool(pool)  # closing the client closes the pool
        self._scripts = {name: self.client.register_script((_LUA / f"{name}.lua").read_text()) for name in _SCRIPTS}

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except ResponseError as error:
            if str(error).startswith("FENCED"):
                raise TakenOver() from None
            if str(error).startswith("GONE"):
                raise Gone() from None
            raise Unavailable(str(error)) from error
        except (RedisError, OSError, TimeoutError) as error:
            raise Unavailable(str(error) or type(error).__name__) from error

    async def _script(self, name: str, keys: list[str], *args: Any) -> Any:
        return await self._bounded(self._scripts[name](keys=keys, args=args))

    async def reserve(self, token: str) -> tuple[int, str] | None:
        """The next generation of a session about to be taken over, and its owner now ('' for none)."""
        reserved = await self._script("reserve", [session_key(token)])
        return (int(reserved[0]), reserved[1].decode()) if reserved else None

    async def claim(self, token: str, generation: int, owner: str, ttl_ms: int) -> tuple[float, int] | None:
        """Make `generation` the one that writes; the session's start (epoch s) and next seq, or None if gone."""
        claimed = await self._script("claim", [session_key(token)], generation, owner, ttl_ms)
        return (float(claimed[0]), int(claimed[1])) if claimed else None

    async def adopt(self, token: str, generation: int, owner: str, started: float, first_seq: int,
                    ttl_ms: int) -> bool:
        """Create the session if Redis lacks it, owned by `generation`; False when a newer connection owns it."""
        return bool(await self._script("adopt", [session_key(token)], generation, owner, repr(started), first_seq,
                                       ttl_ms))

    async def append(self, token: str, generation: int, frame: int, kind: str, t: float, data: bytes,
                     result: dict[str, Any], lowest_seq: int, exact: bool = False) -> tuple[int, list[int]]:
        """Store a frame, trimmed to the bounds at once: its seq (at least `lowest_seq`, or exactly it) and the
        seqs evicted."""
        entry = json.dumps({"frame": frame, "kind": kind, "t": t, "size": len(data), "result": result})
        seq, evicted = await self._script("append", [session_key(token)], generation, entry, data,
                                          self.bounds.frames, self.bounds.photos, self.bounds.bytes, lowest_seq,
                                          int(exact))
        return int(seq), [int(s) for s in evicted]

    async def release(self, token: str, generation: int, grace_ms: int) -> bool:
        return bool(await self._script("release", [session_key(token)], generation, grace_ms))

    async def refresh(self, tokens: list[str], owner: str, ttl_ms: int) -> list[int | None]:
        """Renew the TTL of the sessions `owner` still owns; every session's generation (None: not in Redis)."""
        generations = await self._script("refresh", [session_key(t) for t in tokens], owner, ttl_ms)
        return [int(g) if g is not None else None for g in generations]

    async def snapshot(self, token: str, since: int) -> Snapshot:
        kept = await self._script("snapshot", [session_key(token)], since)
        if not kept:
            raise Gone()
        entries = [_entry(int(seq), json.loads(meta)) for seq, meta in zip(kept[2::2], kept[3::2], strict=True)]
        return Snapshot(entries, int(kept[0]), int(kept[1]))

    async def image(self, token: str, seq: int) -> bytes | None:
        return await self._bounded(self.client.hget(session_key(token), f"i{seq}"))

    async def ping(self) -> None:
        await self._bounded(self.client.ping())

    async def publish(self, channel: str, message: dict[str, str]) -> int:
        """Send to a channel; how many subscribers got it (0: nobody listens there, e.g. a killed worker)."""
        return int(await self._bounded(self.client.publish(channel, json.dumps(message))))

    async def subscribe(self, channel: str) -> PubSub:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await self._bounded(pubsub.subscribe(channel))
        except Unavailable:
            await pubsub.aclose()
            raise
        return pubsub

    async def close(self) -> None:
        await self.client.aclose()


def _entry(seq: int, meta: dict[str, Any]) -> Entry:
    return Entry(seq, meta["frame"], meta["kind"], meta["t"], meta["size"], meta["result"])
