"""Takeover across workers: the worker that a reconnect lands on asks the session's owner, over Redis pub/sub,
to hand it over, and waits until it has, so that the old socket's answers are in the history before the new hello.

Each worker listens on its own channel. A worker killed with SIGKILL listens nowhere (Redis drops its subscription
with its socket), so a request to it reaches nobody and the new connection goes ahead at once; one that is alive
but slow is waited for at most `wait_s`, and the generation fences it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from .redis_data import RedisData, Unavailable, worker_channel

log = logging.getLogger("digits.handover")

_LISTEN_S = 0.5  # how long one read of the channel waits, so that a dropped Redis connection is noticed soon
_RESUBSCRIBE_S = 1.0  # pause before subscribing again after Redis failed


class HandOvers:
    def __init__(self, data: RedisData, me: str, wait_s: float, hand_over: Callable[[str], Awaitable[None]]) -> None:
        self.data = data
        self.me = me
        self.wait_s = wait_s
        self._hand_over = hand_over  # hands the session of a token over, if a connection of this worker has it
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def request(self, owner: str, token: str) -> None:
        """Ask `owner` to hand `token` over; returns once it has, or nobody got the request, or after wait_s."""
        future = self._waiting.setdefault(token, asyncio.get_running_loop().create_future())
        try:
            if await self.data.publish(worker_channel(owner), {"take": token, "reply": self.me}):
                await asyncio.wait_for(asyncio.shield(future), self.wait_s)
        except (Unavailable, TimeoutError):
            pass  # the claim that follows fences the old owner all the same
        finally:
            if self._waiting.get(token) is future:
                del self._waiting[token]

    async def listen(self) -> None:
        """Serve this worker's channel for as long as the worker runs, subscribing again whenever Redis comes back."""
        while True:
            try:
                pubsub = await self.data.subscribe(worker_channel(self.me))
            except Unavailable:
                await asyncio.sleep(_RESUBSCRIBE_S)
                continue
            try:
                while True:
                    message = await pubsub.get_message(timeout=_LISTEN_S)
                    if message is not None:
                        self._on_message(json.loads(message["data"]))
            except (RedisError, OSError, TimeoutError, ValueError) as error:
                log.warning("hand-over channel lost (%s): subscribing again", error)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(_RESUBSCRIBE_S)

    def _on_message(self, message: dict[str, str]) -> None:
        if "take" in message:
            task = asyncio.create_task(self._answer(message["take"], message["reply"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif (future := self._waiting.get(message.get("released", ""))) is not None and not future.done():
            future.set_result(None)

    async def _answer(self, token: str, asker: str) -> None:
        await self._hand_over(token)
        with contextlib.suppress(Unavailable):
            await self.data.publish(worker_channel(asker), {"released": token})

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
