"""One WebSocket connection: a reader that never waits for the engine, a writer, and recognition tasks.

Quart queues every incoming message without bound, so the reader takes each message at once and decides
on the spot: live frames keep only the newest pending one (older ones are reported `skipped`), photos
queue up to `max_queued_photos` / `max_queued_bytes`, control messages are answered (the reader waits only for
the session store, which answers from memory or within `redis_timeout_s`). Everything outgoing goes through one
outbox drained by the writer task, so messages leave in the order they were produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from quart import Websocket

from . import protocol
from .batcher import Batcher, EngineFailure, Outcome
from .config import Config
from .engine import ImageError
from .history import Entry
from .limits import RateLimiter
from .metrics import Metrics
from .protocol import ImageMessage, ProtocolError
from .sampling import LiveSampler
from .sessions import Session, TakenOver

log = logging.getLogger("digits.connection")

# A client that lets this many messages, or this many full-size messages' worth of bytes, pile up is not
# reading them; it is closed instead of buffered (a tiny `step` request is answered with a whole image).
_OUTBOX_LIMIT = 1000
_OUTBOX_FULL_SIZE_MESSAGES = 4  # bytes: this many times max_message_bytes


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class Connection:
    def __init__(self, ws: Websocket, config: Config, batcher: Batcher, metrics: Metrics) -> None:
        self.ws = ws
        self.session: Session  # set by run(), once the store has opened it
        self.config = config
        self.batcher = batcher
        self.metrics = metrics
        self.rate = RateLimiter(self.config.max_fps)
        self.sampler = LiveSampler(self.config.history_live_every_s, self.config.history_live_gap_s)
        self.closing = False  # no new work is taken once the socket is about to close
        self._outbox: asyncio.Queue[str | bytes | _Close] = asyncio.Queue()
        self._outbox_bytes = 0
        self._close_requested = False
        self._live: asyncio.Task[None] | None = None
        self._live_next: tuple[ImageMessage, float] | None = None
        self._photos: set[asyncio.Task[None]] = set()
        self._photo_bytes = 0
        self._photo_turn = asyncio.Lock()  # FIFO: photos enter the engine one at a time, in order
        self._replay: asyncio.Task[None] | None = None
        self._told_degraded = False  # whether the client was last told that its history is kept here only

    async def run(self, session: Session, resumed: bool) -> None:
        """Serve the socket on `session` until it closes (either side); Quart cancels us when the client goes."""
        self.session = session
        limits = {name: getattr(self.config, name)
                  for name in ("max_message_bytes", "max_pixels", "max_fps", "history_frames", "history_photos",
                               "history_bytes")}
        held = len((await session.snapshot()).entries)
        self.send(protocol.hello(session.token, resumed, held, limits))
        self._report_store()
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            failure = next((task.exception() for task in done if task.exception() is not None), None)
            if failure is not None:
                log.error("connection failed", exc_info=failure)
                if not self._close_requested:
                    await self.ws.close(protocol.CLOSE_INTERNAL, "internal error")
        finally:
            reader.cancel()
            writer.cancel()
            self._cancel_work()

    async def finish(self, code: int, reason: str) -> None:
        """Take no new work, answer what is in flight (for up to drain_timeout_s), then close with `code`.

        Used on server shutdown (1001) and when a newer socket takes the session over (4001): the frames
        this socket sent are answered here, and are in the history before the newer socket's hello. Work
        still unfinished after the wait is cancelled, unanswered, so that it never lands in the history later.
        """
        self.closing = True
        if self._replay is not None:
            self._replay.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.drain_timeout_s):
                while self._live is not None or self._photos:
                    await asyncio.gather(*(t for t in (self._live, *self._photos) if t), return_exceptions=True)
        self._cancel_work()
        self.close(code, reason)

    async def hand_over(self) -> None:
        """A newer connection resumed this session: answer what is in flight, then close with 4001."""
        await self.finish(protocol.CLOSE_TAKEN_OVER, "session taken over by a newer connection")

    def _cancel_work(self) -> None:
        self._live_next = None  # or cancelling the live task would start it
        for task in (self._live, self._replay, *self._photos):
            if task is not None:
                task.cancel()

    # Outgoing

    def send(self, message: dict[str, Any] | bytes) -> None:
        if self._close_requested:
            return
        item = message if isinstance(message, bytes) else json.dumps(message)
        if (self._outbox.qsize() >= _OUTBOX_LIMIT
                or self._outbox_bytes + len(item) > _OUTBOX_FULL_SIZE_MESSAGES * self.config.max_message_bytes):
            self.close(protocol.CLOSE_POLICY, "client is not reading its messages")
            return
        self._outbox_bytes += len(item)
        self._outbox.put_nowait(item)

    def _report_store(self) -> None:
        """Tell the client when its history starts or stops being kept in this worker only (Redis trouble)."""
        if self.session.degraded != self._told_degraded:
            self._told_degraded = self.session.degraded
            self.send(protocol.history_store(shared=not self._told_degraded))

    def send_error(self, code: str, message: str, frame: int | None = None) -> None:
        self.metrics.errors.inc(code=code)
        self.send(protocol.error(code, message, frame))

    def close(self, code: int, reason: str) -> None:
        """Close after everything already queued has been sent."""
        if not self._close_requested:
            self._close_requested = True
            self.closing = True
            self._outbox.put_nowait(_Close(code, reason))

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                if isinstance(item, _Close):
                    await self.ws.close(item.code, item.reason)
                    return
                await self.ws.send(item)
                self._outbox_bytes -= len(item)
            finally:
                self._outbox.task_done()

    # Incoming

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            received = time.monotonic()
            if self.closing:
                continue  # the socket is about to close; new work would not be answered
            try:
                await self._on_message(message, received)
            except ProtocolError as error:
                self.send_error(error.code, error.message, error.frame)
            # Quart hands over a backlog without suspending: yield, so that under a flood the writer sends the
            # answers as they are made instead of the outbox overflowing (which would close a client that reads).
            await asyncio.sleep(0)

    async def _on_message(self, message: str | bytes | None, received: float) -> None:
        if not message:
            raise ProtocolError("bad_message", "empty message")
        size = len(message) if isinstance(message, bytes) else len(message.encode())
        if size > self.config.max_message_bytes:
            frame = int.from_bytes(message[1:5], "big") if isinstance(message, bytes) else None
            self.send_error("too_large", f"a message may have at most {self.config.max_message_bytes} bytes, "
                                         f"this one has {size}; the connection closes", frame)
            self.close(protocol.CLOSE_TOO_BIG, "message too big")
        elif isinstance(message, bytes):
            self._on_image(protocol.parse_image(message), received)
        else:
            await self._on_control(protocol.parse_control(message))

    def _on_image(self, image: ImageMessage, received: float) -> None:
        self.metrics.received.inc(kind=image.kind_name)
        if image.kind == protocol.KIND_PHOTO:
            if self._photos and (len(self._photos) >= self.config.max_queued_photos
                                 or self._photo_bytes + len(image.data) > self.config.max_queued_bytes):
                raise ProtocolError("rate_limited", f"{len(self._photos)} photos ({self._photo_bytes} bytes) are "
                                                    "already waiting; send the next one after a result", image.frame)
            self._spawn_photo(image, received)
        elif not self.rate.allow():
            raise ProtocolError("rate_limited", f"live frames over {self.config.max_fps:g} per second are not "
                                                "processed; slow down", image.frame)
        elif self._live is None:
            self._live = self._spawn(self._recognize(image, received), self._live_done)
        else:
            if self._live_next is not None:
                self._skip(self._live_next[0].frame)
            self._live_next = (image, received)

    def _skip(self, frame: int) -> None:
        self.metrics.skipped.inc()
        self.send(protocol.skipped([frame]))

    @staticmethod
    def _spawn(coro: Coroutine[Any, Any, None], done: Callable[[asyncio.Task[None]], object]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        task.add_done_callback(done)
        return task

    def _spawn_photo(self, image: ImageMessage, received: float) -> None:
        self._photo_bytes += len(image.data)

        def done(task: asyncio.Task[None]) -> None:
            self._photos.discard(task)
            self._photo_bytes -= len(image.data)

        self._photos.add(self._spawn(self._recognize_photo(image, received), done))

    async def _recognize_photo(self, image: ImageMessage, received: float) -> None:
        # One photo per connection in the engine at a time: a client queueing heavy photos then holds one
        # preparing thread, not all of them, and every other client keeps getting answers.
        async with self._photo_turn:
            await self._recognize(image, received)

    def _live_done(self, _: asyncio.Task[None]) -> None:
        self._live = None
        if self._live_next is not None:
            image, received = self._live_next
            self._live_next = None
            self._live = self._spawn(self._recognize(image, received), self._live_done)

    async def _recognize(self, image: ImageMessage, received: float) -> None:
        try:
            outcome = await self.batcher.recognize(image.data, received)
        except ImageError as error:
            self.send_error(error.code, error.message, image.frame)
            return
        except EngineFailure as error:
            self.send_error("internal", str(error), image.frame)
            return
        try:
            await self._answer(image, received, outcome)
        except TakenOver:  # a newer connection owns the session: this frame can no longer enter its history
            self.close(protocol.CLOSE_TAKEN_OVER, "session taken over by a newer connection")
        except Exception as error:  # a bug of ours: the frame still gets its one answer, and the log says why
            log.error("answering frame %d failed", image.frame, exc_info=error)
            self.send_error("internal", str(EngineFailure()), image.frame)

    async def _answer(self, image: ImageMessage, received: float, outcome: Outcome) -> None:
        """Keep the frame in the history (a live frame only when the sampler says so), send its result, then report
        what the history evicted for it."""
        t = self.session.elapsed(received)
        seq: int | None = None
        evicted: list[int] = []
        if image.kind != protocol.KIND_LIVE or self.sampler.keep(t, outcome.result["number"]):
            writing = time.perf_counter()
            seq, evicted = await self.session.add(image.frame, image.kind_name, t, image.data, outcome.result)
            self.metrics.history_write.observe(time.perf_counter() - writing)
            self._report_store()
        self.send(protocol.result(image.frame, image.kind_name, seq, outcome.result,
                                  outcome.timings_until_now(received), outcome.batch_size))
        self.metrics.answered.inc(kind=image.kind_name)
        if evicted:
            self.send(protocol.history_dropped(evicted))

    # Control

    async def _on_control(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            self.send(protocol.pong())
        elif kind == "history":
            snapshot = await self.session.snapshot()
            self._report_store()
            self.send(protocol.history_listing(snapshot))
        elif kind == "replay_stop":
            if self._replay is not None:
                self._replay.cancel()
        elif message["mode"] == "step":
            await self._step(message["seq"])
        else:
            if self._replay is not None:
                self._replay.cancel()
            self._replay = asyncio.create_task(self._replay_realtime(message["from"], message["speed"]))

    async def _step(self, seq: int) -> None:
        entries = (await self.session.snapshot()).entries
        index = next((i for i, entry in enumerate(entries) if entry.seq == seq), None)
        image = await self.session.image(seq) if index is not None else None
        self._report_store()
        if index is None or image is None:
            raise ProtocolError("not_found", f"seq {seq} is not in the history (it holds {self._span(entries)})")
        self._send_slide(entries, index, image)

    @staticmethod
    def _span(entries: list[Entry]) -> str:
        return f"seqs {entries[0].seq} to {entries[-1].seq}" if entries else "nothing yet"

    def _send_slide(self, entries: list[Entry], index: int, image: bytes) -> None:
        entry = entries[index]
        self.send(protocol.slide(entry, index, len(entries)))
        self.send(protocol.slide_image(entry.seq, image))

    async def _replay_realtime(self, start: int, speed: float) -> None:
        """Send the history from seq `start` with its original spacing divided by `speed`."""
        sent = 0
        try:
            entries = (await self.session.snapshot(start)).entries
            loop = asyncio.get_running_loop()
            began = loop.time()
            for index, entry in enumerate(entries):
                await asyncio.sleep(max(0.0, began + (entry.t - entries[0].t) / speed - loop.time()))
                image = await self.session.image(entry.seq)
                self._report_store()
                if image is None:
                    continue  # evicted since the replay began
                self._send_slide(entries, index, image)
                sent += 1
                await self._outbox.join()  # pace the images by what the client takes in
        finally:
            if asyncio.current_task() is self._replay:
                self._replay = None
            self.send(protocol.replay_end(sent))
