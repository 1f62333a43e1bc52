"""Sessions in Redis, shared by every worker: a reconnect resumes on any of them, even after its first died.

Each connection's handle writes under the generation it claimed; a takeover claims a newer one, so the old
owner's writes are refused from then on (fencing). When Redis is unreachable or slow, a handle keeps its history
in this worker's memory (`degraded`, and the connection tells its client); once Redis answers again, the next
frame moves what was kept meanwhile into Redis and the history is shared again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from typing import Any

from ..history import Bounds, History, Snapshot
from ..metrics import Metrics
from .base import Owner, Session, SessionStore, TakenOver, wall_to_monotonic
from .handover import HandOvers
from .redis_data import Gone, RedisData, Unavailable

log = logging.getLogger("digits.sessions")

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what open() issues; anything else is unknown, not a Redis key
_KEEP_S = 1.0  # health check, refresh of the owned sessions' TTL, and check that no newer connection took them
_LEASE_MS = 5000  # an owned session outlives a silent (killed) owner by the grace period plus this


class RedisSession(Session):
    def __init__(self, store: RedisStore, token: str, generation: int, started: float, next_seq: int) -> None:
        super().__init__(token, started)
        self._store = store
        self._data = store.data
        self.generation = generation
        self._next = next_seq  # the next seq as far as this handle knows: seqs go on from it whatever happens
        self._local: History | None = None  # the history while Redis fails
        self._recovering = asyncio.Lock()

    @property
    def degraded(self) -> bool:
        return self._local is not None

    def degrade(self, redis_failed: bool = True) -> None:
        if self._local is None:
            self._local = History(self._data.bounds, first_seq=self._next)
        if redis_failed:
            self._store.redis_failed()

    async def add(self, frame: int, kind: str, t: float, data: bytes, result: dict[str, Any]) -> tuple[int, list[int]]:
        evicted: list[int] = []
        for _ in range(2):  # twice when Redis lost the session: it is written anew, then the frame goes in
            if self._local is not None:
                if not self._store.available:
                    break
                evicted += await self._recover()
                if self._local is not None:
                    break
            try:
                seq, dropped = await self._data.append(self.token, self.generation, frame, kind, t, data, result,
                                                       self._next)
            except Gone:
                self.degrade(redis_failed=False)
                continue
            except Unavailable as error:
                log.warning("history kept in memory for session %s: %s", self.token[:6], error)
                self.degrade()
                break
            self._next = max(self._next, seq + 1)
            return seq, evicted + dropped
        assert self._local is not None
        seq, dropped = self._local.add(frame, kind, t, data, result)
        self._next = self._local.next_seq
        return seq, evicted + dropped

    async def _recover(self) -> list[int]:
        """Redis answers again: write the session anew if Redis lost it (or check it is still ours), then move the
        frames kept here meanwhile into it, oldest first, with their seqs. Raises TakenOver if a newer owns it."""
        async with self._recovering:  # one at a time: the live frame and the photos of a connection may race here
            local = self._local
            if local is None:
                return []
            evicted: list[int] = []
            try:
                oldest = local.oldest()
                if not await self._data.adopt(self.token, self.generation, self._store.me, self.started_wall,
                                              oldest[0].seq if oldest else local.next_seq, self._store.owned_ttl_ms):
                    raise TakenOver()
                while (kept := local.oldest()) is not None:
                    entry, image = kept
                    _, dropped = await self._data.append(self.token, self.generation, entry.frame, entry.kind,
                                                         entry.t, image, entry.result, entry.seq, exact=True)
                    evicted += dropped
                    local.remove_oldest()
            except (Unavailable, Gone):
                self._store.redis_failed()  # what did not move stays here, with its seqs
                return evicted
            self._local = None
            self._next = max(self._next, local.next_seq)
            log.info("history of session %s is in Redis again", self.token[:6])
            return evicted

    @property
    def started_wall(self) -> float:
        return time.time() - (time.monotonic() - self.started)

    async def snapshot(self, since: int = 0) -> Snapshot:
        if self._local is None:
            try:
                return await self._data.snapshot(self.token, since)
            except Gone:
                self.degrade(redis_failed=False)
            except Unavailable:
                self.degrade()
        assert self._local is not None
        return self._local.snapshot(since)

    async def image(self, seq: int) -> bytes | None:
        if self._local is None:
            try:
                return await self._data.image(self.token, seq)
            except Unavailable:
                self.degrade()
        assert self._local is not None
        return self._local.image(seq)

    async def release(self, grace_ms: int) -> None:
        if self._local is None:
            try:
                await self._data.release(self.token, self.generation, grace_ms)
            except Unavailable:
                pass  # the owned session's TTL ends it all the same, a lease later


class RedisStore(SessionStore):
    def __init__(self, url: str, timeout_s: float, grace_s: float, bounds: Bounds, hand_over_s: float, worker: str,
                 metrics: Metrics) -> None:
        self.data = RedisData(url, timeout_s, bounds)
        self.me = f"{worker}/{secrets.token_hex(4)}"  # unique even when a restarted worker reuses its name
        self.grace_ms = int(grace_s * 1000)
        self.owned_ttl_ms = self.grace_ms + _LEASE_MS
        self.metrics = metrics
        self.available = False  # Redis answered the last health check, and no call failed since
        self._owners: dict[str, Owner] = {}  # token -> the connection of this worker that serves it
        self._held: dict[str, tuple[RedisSession, Owner]] = {}  # token -> a connection's handle, once opened
        self._handovers = HandOvers(self.data, self.me, hand_over_s, self._hand_over_here)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()  # connections being closed: a newer one took their session

    def __len__(self) -> int:
        return len(self._owners)

    async def start(self) -> None:
        await self._check()  # so that the first connections already know whether Redis answers
        self._tasks = [asyncio.create_task(self._keep()), asyncio.create_task(self._handovers.listen())]

    async def stop(self) -> None:
        for task in (*self._tasks, *self._closing):
            task.cancel()
        self._handovers.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.data.close()

    def redis_failed(self) -> None:
        """A call failed: the other connections go straight to memory until a health check succeeds again."""
        self.available = False
        self.metrics.redis_up.value = 0

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(_KEEP_S)
            await self._check()

    async def _check(self) -> None:
        held = list(self._held.items())
        try:
            if held:
                generations = await self.data.refresh([token for token, _ in held], self.me, self.owned_ttl_ms)
                self._close_taken(held, generations)
            else:
                await self.data.ping()
        except Unavailable:
            if self.available:
                log.warning("Redis does not answer: new history is kept in memory until it does")
            self.redis_failed()
            return
        if not self.available:
            log.info("Redis answers")
        self.available = True
        self.metrics.redis_up.value = 1

    def _close_taken(self, held: list[tuple[str, tuple[RedisSession, Owner]]],
                     generations: list[int | None]) -> None:
        """A newer connection claimed these sessions while this worker could not be asked (its hand-over channel
        was down): their connections here are fenced already; close them rather than wait for their next write.
        One that a newer connection of this worker is taking over is left to it."""
        for (token, (session, owner)), generation in zip(held, generations, strict=True):
            if generation not in (None, session.generation) and self._owners.get(token) is owner:
                del self._held[token]
                task = asyncio.create_task(owner.hand_over())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def open(self, token: str | None, owner: Owner) -> tuple[Session, bool]:
        session, resumed = await self._open(token, owner)
        if self._owners.get(session.token) is owner:
            self._held[session.token] = (session, owner)
        return session, resumed

    async def _open(self, token: str | None, owner: Owner) -> tuple[RedisSession, bool]:
        if token and _TOKEN.fullmatch(token) and self.available:
            previous = self._owners.get(token)
            self._owners[token] = owner
            try:
                session = await self._take(token, previous)
            except Unavailable:
                session = None
                self.redis_failed()
            except BaseException:  # the new socket went while it waited for the old owner
                if self._owners.get(token) is owner:
                    del self._owners[token]
                raise
            if session is not None:
                return session, True
            if self._owners.get(token) is owner:
                del self._owners[token]
        return await self._new(owner), False

    async def _take(self, token: str, previous: Owner | None) -> RedisSession | None:
        """Take over a session Redis holds: its owner hands over first (here, or on its worker), then it is fenced."""
        reserved = await self.data.reserve(token)
        if reserved is None:
            return None
        generation, holder = reserved
        if previous is not None:
            await previous.hand_over()
        elif holder and holder != self.me:
            await self._handovers.request(holder, token)
        claimed = await self.data.claim(token, generation, self.me, self.owned_ttl_ms)
        if claimed is None:
            return None
        started, next_seq = claimed
        return RedisSession(self, token, generation, wall_to_monotonic(started), next_seq)

    async def _new(self, owner: Owner) -> RedisSession:
        token = secrets.token_urlsafe(18)
        self._owners[token] = owner
        session = RedisSession(self, token, 1, time.monotonic(), 0)
        try:
            if not self.available:
                raise Unavailable("Redis did not answer its last health check")
            await self.data.adopt(token, 1, self.me, time.time(), 0, self.owned_ttl_ms)
        except Unavailable:
            session.degrade()  # a fresh session all the same; Redis gets it once it answers
        return session

    async def close(self, session: Session, owner: Owner) -> None:
        if self._owners.get(session.token) is not owner:
            return  # taken over by a newer connection of this worker
        del self._owners[session.token]
        self._held.pop(session.token, None)
        assert isinstance(session, RedisSession)
        await session.release(self.grace_ms)

    async def _hand_over_here(self, token: str) -> None:
        owner = self._owners.get(token)
        if owner is not None:
            await owner.hand_over()
