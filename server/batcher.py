"""One micro-batcher shared by every connection and the HTTP API.

Work waits at most `batch_wait_ms` for company (up to `max_batch` images); each image is decoded and
preprocessed in a thread pool, then the crops of the whole batch go through the model in ONE call on a
single inference thread. The event loop only moves futures around; it never touches pixels.
Two batches may be in flight, so one is preprocessed while the other is in the model.
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

_IN_FLIGHT_BATCHES = 2


class EngineFailure(RuntimeError):
    """The engine failed on one image (a bug or a model error, not the client's fault)."""


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]  # engine.assemble output: number, reason, digits, width, height
    timings: dict[str, float]  # queue_ms, decode_ms, preprocess_ms, inference_ms
    batch_size: int


@dataclass
class _Work:
    data: bytes
    received: float  # time.monotonic() when the message arrived
    future: asyncio.Future[Outcome]


class Batcher:
    def __init__(self, classifier: engine.Classifier, metrics: Metrics, *, max_batch: int, batch_wait_ms: float,
                 threads: int, max_pixels: int, fault_marker: bytes = b"") -> None:
        self.classifier = classifier
        self.metrics = metrics
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, batch_wait_ms) / 1000
        self.max_pixels = max_pixels
        self.fault_marker = fault_marker
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._slots = asyncio.Semaphore(_IN_FLIGHT_BATCHES)
        self._prepare_pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="prepare")
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Finish the batches in flight, fail what is still queued, stop the threads."""
        if self._task is not None:
            self._task.cancel()
        await asyncio.gather(*self._batches, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._prepare_pool.shutdown(cancel_futures=True)
        self._infer_pool.shutdown(cancel_futures=True)

    async def recognize(self, data: bytes, received: float) -> Outcome:
        """Recognise one image; raises engine.ImageError (the client's image) or EngineFailure (ours)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Work(data, received, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            await self._slots.acquire()
            task = asyncio.create_task(self._process(batch))
            self._batches.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._slots.release()

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
        started = time.monotonic()
        for work in batch:
            self.metrics.queue_wait.observe(started - work.received)
        self.metrics.batch_size.observe(len(batch))
        prepared = await asyncio.gather(
            *(loop.run_in_executor(self._prepare_pool, self._prepare, work.data) for work in batch),
            return_exceptions=True,
        )
        ready = [p for p in prepared if isinstance(p, engine.Prepared)]
        outcomes, inference_s = await loop.run_in_executor(self._infer_pool, self._classify, ready)
        self.metrics.inference.observe(inference_s)
        assembled = iter(outcomes)
        for work, prep in zip(batch, prepared, strict=True):
            outcome = next(assembled) if isinstance(prep, engine.Prepared) else prep
            if work.future.done():
                continue
            if isinstance(outcome, BaseException):
                work.future.set_exception(_client_or_ours(outcome))
                continue
            timings = {"queue_ms": (started - work.received) * 1000, **prep.timings, "inference_ms": inference_s * 1000}
            work.future.set_result(Outcome(outcome, {k: round(v, 2) for k, v in timings.items()}, len(batch)))

    def _prepare(self, data: bytes) -> engine.Prepared:
        prepared = engine.prepare(data, self.max_pixels)
        if self.fault_marker and self.fault_marker in data:
            # Test hook: hand the real model a malformed tensor, so it fails in the inference thread.
            prepared = dataclasses.replace(prepared, crops=np.zeros((1, 3, 3, 1), np.float32))
        return prepared

    def _classify(self, batch: list[engine.Prepared]) -> tuple[list[dict[str, Any] | Exception], float]:
        """Runs on the inference thread: one model call for all crops, then one assemble per image."""
        if not batch:
            return [], 0.0
        started = time.perf_counter()
        try:
            probs = self._split(self.classifier.classify(np.concatenate([p.crops for p in batch])), batch)
        except Exception:
            # One bad image must not sink the batch: retry image by image to confine the failure.
            probs = [self._classify_one(p) for p in batch]
        inference_s = time.perf_counter() - started
        outcomes: list[dict[str, Any] | Exception] = []
        for prep, prob in zip(batch, probs, strict=True):
            try:
                outcomes.append(prob if isinstance(prob, Exception) else engine.assemble(prep, prob))
            except Exception as error:
                outcomes.append(error)
        return outcomes, inference_s

    def _classify_one(self, prepared: engine.Prepared) -> np.ndarray | Exception:
        try:
            return self.classifier.classify(prepared.crops)
        except Exception as error:
            return error

    @staticmethod
    def _split(probs: np.ndarray, batch: list[engine.Prepared]) -> list[np.ndarray]:
        ends = np.cumsum([len(p.crops) for p in batch])[:-1]
        return np.split(probs, ends)


def _client_or_ours(error: BaseException) -> BaseException:
    if isinstance(error, engine.ImageError):
        return error
    if not isinstance(error, EngineFailure):
        log.error("the engine failed on one image", exc_info=error)
    return EngineFailure("the server could not process this image; other images are unaffected")
