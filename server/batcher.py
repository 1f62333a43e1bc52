"""One micro-batcher shared by every connection and the HTTP API.

Each image is decoded and preprocessed in a thread pool as soon as it arrives; prepared images then wait
at most `batch_wait_ms` for company (up to `max_batch`), and the crops of the whole batch go through the
model in ONE call on a single inference thread. Preparing on arrival keeps the preprocessing threads busy
while the model runs. The event loop only moves futures around; it never touches pixels.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import engine
from .metrics import Metrics

log = logging.getLogger("digits.batcher")


class EngineFailure(RuntimeError):
    """The engine failed on one image (a bug or a model error, not the client's fault)."""

    def __init__(self) -> None:
        super().__init__("the server could not process this image; other images are unaffected")


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]  # engine.assemble output: number, reason, digits, width, height
    timings: dict[str, float]  # queue_ms, decode_ms, preprocess_ms, inference_ms
    batch_size: int

    def timings_until_now(self, received: float) -> dict[str, float]:
        """The timings with `total_ms`: from the message's arrival (time.monotonic()) until now, as it is sent."""
        return {**self.timings, "total_ms": round((time.monotonic() - received) * 1000, 2)}


@dataclass
class _Work:
    prepared: engine.Prepared
    received: float  # time.monotonic() when the message arrived
    future: asyncio.Future[Outcome]


class Batcher:
    def __init__(self, recognizer: engine.Engine, metrics: Metrics, *, max_batch: int, batch_wait_ms: float,
                 threads: int, fault_marker: bytes = b"") -> None:
        self.engine = recognizer
        self.metrics = metrics
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, batch_wait_ms) / 1000
        self.fault_marker = fault_marker
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._batch: list[_Work] = []  # the batch in the model
        self._prepare_pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="prepare")
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop: whoever still waits (nobody, after a drain) gets CancelledError; the threads end."""
        if self._task is not None:
            self._task.cancel()
        for work in self._batch:
            work.future.cancel()
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._prepare_pool.shutdown(cancel_futures=True)
        self._infer_pool.shutdown(cancel_futures=True)

    async def recognize(self, data: bytes, received: float) -> Outcome:
        """Recognise one image; raises engine.ImageError (the client's image) or EngineFailure (ours)."""
        loop = asyncio.get_running_loop()
        try:
            prepared = await loop.run_in_executor(self._prepare_pool, self._prepare, data)
        except engine.ImageError:
            raise
        except Exception as error:
            log.error("preparing an image failed", exc_info=error)
            raise EngineFailure() from error
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put_nowait(_Work(prepared, received, future))
        return await future

    async def _run(self) -> None:
        while True:
            self._batch = await self._collect()
            try:
                await self._process(self._batch)
            except Exception as error:  # a bug of ours must not end this loop: every later image would hang
                log.error("a batch failed", exc_info=error)
                for work in self._batch:
                    if not work.future.done():
                        work.future.set_exception(EngineFailure())
            self._batch = []

    async def _collect(self) -> list[_Work]:
        batch = [await self._queue.get()]
        # Sleeping once then taking what is there avoids wait_for(queue.get()), which can lose an item.
        if self.wait_s and self._queue.qsize() < self.max_batch - 1:
            await asyncio.sleep(self.wait_s)
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [work for work in batch if not work.future.done()]  # a client that left cancels its future

    async def _process(self, batch: list[_Work]) -> None:
        if not batch:
            return
        loop = asyncio.get_running_loop()
        self.metrics.batch_size.observe(len(batch))
        outcomes, inference_s = await loop.run_in_executor(self._infer_pool, self._classify,
                                                           [work.prepared for work in batch])
        self.metrics.inference.observe(inference_s)
        done = time.monotonic()
        for work, outcome in zip(batch, outcomes, strict=True):
            if work.future.done():
                continue
            if isinstance(outcome, Exception):
                log.error("the model failed on one image", exc_info=outcome)
                work.future.set_exception(EngineFailure())
                continue
            work_ms = {**work.prepared.timings, "inference_ms": inference_s * 1000}
            # Whatever was not work was waiting: for a preprocessing thread, for the batch, for the model.
            queue_ms = max(0.0, (done - work.received) * 1000 - sum(work_ms.values()))
            self.metrics.queue_wait.observe(queue_ms / 1000)
            timings = {"queue_ms": queue_ms, **work_ms}
            work.future.set_result(Outcome(outcome, {k: round(v, 2) for k, v in timings.items()}, len(batch)))

    def _prepare(self, data: bytes) -> engine.Prepared:
        prepared = self.engine.prepare(data)
        if self.fault_marker and self.fault_marker in data:
            # Test hook: hand the real networks malformed tensors, so that they fail in the inference thread.
            bad = np.zeros((3, 3), np.float32)
            prepared = dataclasses.replace(prepared, crops=np.zeros((1, 3, 3, 1), np.float32),
                                           lines=[dataclasses.replace(line, image=bad) for line in prepared.lines])
        return prepared

    def _classify(self, batch: list[engine.Prepared]) -> tuple[list[dict[str, Any] | Exception], float]:
        """Runs on the inference thread: the networks over the whole batch, then one assemble per image (a failure
        confined to its image)."""
        started = time.perf_counter()
        outcomes = self.engine.infer(batch)
        return outcomes, time.perf_counter() - started
