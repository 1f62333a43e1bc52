"""A tiny Prometheus text exposition (format 0.0.4): counters, gauges and histograms, per worker process.

Only the event loop thread updates these, so there is no locking.
"""

from __future__ import annotations

import bisect
import math


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in pairs)
    return "{" + inner + "}"


def _number(value: float) -> str:
    return "+Inf" if value == math.inf else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str) -> None:
        self.name = name
        self.help = help

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A counter with optional labels, e.g. errors by code."""

    kind = "counter"

    def __init__(self, name: str, help: str) -> None:
        super().__init__(name, help)
        self.values: dict[tuple[tuple[str, str], ...], float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0) + amount

    def render(self) -> list[str]:
        values = self.values or {(): 0}
        return self.header() + [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(values.items())]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help: str, value: float = 0.0, **labels: str) -> None:
        super().__init__(name, help)
        self.value = value
        self.labels = tuple(sorted(labels.items()))

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def render(self) -> list[str]:
        return self.header() + [f"{self.name}{_labels(self.labels)} {_number(self.value)}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: tuple[float, ...]) -> None:
        super().__init__(name, help)
        self.bounds = (*sorted(buckets), math.inf)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def render(self) -> list[str]:
        lines = self.header()
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
        lines += [f"{self.name}_sum {_number(self.sum)}", f"{self.name}_count {running}"]
        return lines


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0)  # Redis: sub-ms


class Metrics:
    """Everything the server exposes at /metrics."""

    def __init__(self, worker: str = "") -> None:
        # Which worker answered: with several, each is scraped on its own, and a saved scrape still says whose it is.
        self.worker = Gauge("digits_worker", "always 1; its label names the worker process that answered", 1,
                            worker=worker)
        self.connections = Gauge("digits_connections", "open WebSocket connections")
        self.sessions = Gauge("digits_sessions", "sessions kept here: connected, or waiting resume_grace_s for their "
                              "client (with Redis: those connected to this worker)")
        self.tasks = Gauge("digits_tasks", "asyncio tasks alive in this worker (a leak shows as growth)")
        self.received = Counter("digits_frames_received_total", "images received, by kind")
        self.answered = Counter("digits_frames_answered_total", "images answered with a result, by kind")
        self.skipped = Counter("digits_frames_skipped_total", "live frames skipped for a newer one")
        self.errors = Counter("digits_errors_total", "error messages sent, by code")
        self.batch_size = Histogram("digits_batch_size", "images per batch", (1, 2, 4, 8, 16, 32, 64, 128))
        self.queue_wait = Histogram("digits_queue_wait_seconds",
                                    "per image, time spent waiting for a thread, the batch or the model",
                                    _LATENCY_BUCKETS)
        self.inference = Histogram("digits_inference_seconds", "model time per batch", _LATENCY_BUCKETS)
        self.history_write = Histogram("digits_history_write_seconds", "storing one answered frame in its history",
                                       _STORE_BUCKETS)
        self.redis_up = Gauge("digits_redis_up", "1 while Redis answers the session store (0 without redis_url)")
        self.loop_lag = Histogram("digits_event_loop_lag_seconds", "how late the event loop wakes up (GIL, busy loop)",
                                  _LATENCY_BUCKETS)

    def render(self) -> str:
        lines: list[str] = []
        for metric in vars(self).values():
            lines += metric.render()
        return "\n".join(lines) + "\n"
