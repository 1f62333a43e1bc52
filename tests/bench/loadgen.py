"""Load generator: N WebSocket clients streaming frames (or uploading photos) at F fps for T seconds.

Run in its own process by the benchmark, so the clients do not share a GIL with what they measure:

    python -m tests.bench.loadgen --url ws://127.0.0.1:5000/ws --connections 10 --fps 10 --seconds 20

`--fps 0` keeps exactly one frame in flight per connection (the next is sent when the last is answered).
Prints one JSON object: sent/answered/skipped/errors/missing counts, answered frames per second and
round-trip latency percentiles. The soak test reuses `Stats` and `stream`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
import websockets

from tests.bench import images
from tests.bench.probe import cpu_seconds
from tests.wsclient import LIVE, PHOTO, Client

GRACE_S = 15.0
# Browsers offer permessage-deflate and Hypercorn always accepts it, but deflating JPEGs saves nothing and costs
# the client ~0.2 s of CPU per phone photo, on the cores the server needs: the load generator does not offer it.
COMPRESSION = None  # after the last send, how long answers may still arrive before they count as missing


@dataclass
class Stats:
    """Frame accounting shared by every client of one run."""

    sent: int = 0
    answered: int = 0
    skipped: int = 0
    rejected: int = 0  # frames answered with an error
    errors: Counter[str] = field(default_factory=Counter)  # by error code (frame or not), and failed connections
    missing: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    history_bytes: list[int] = field(default_factory=list)  # what each session's history held at the end

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = np.array(self.latencies_ms or [np.nan])
        return {
            "sent": self.sent, "answered": self.answered, "skipped": self.skipped, "rejected": self.rejected,
            "errors": dict(self.errors),
            "missing": self.missing, "throughput_fps": round(self.answered / seconds, 2),
            **{f"latency_p{q}_ms": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)},
            "history_bytes_mean": round(float(np.mean(self.history_bytes)), 0) if self.history_bytes else None,
        }


class Tracker:
    """Frames of one connection still waiting for an answer, resolved by the receiving task."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.pending: dict[int, float] = {}  # frame id -> monotonic send time
        self.changed = asyncio.Event()
        self.history_bytes: int | None = None

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "result" and message["frame"] in self.pending:
            self.stats.latencies_ms.append((time.monotonic() - self.pending.pop(message["frame"])) * 1000)
            self.stats.answered += 1
        elif kind == "skipped":
            for frame in message["frames"]:
                self.stats.skipped += self.pending.pop(frame, None) is not None
        elif kind == "error":
            self.stats.errors[message["code"]] += 1
            self.stats.rejected += self.pending.pop(message["frame"], None) is not None
        elif kind == "history":
            self.history_bytes = message["bytes"]
        self.changed.set()

    async def send(self, client: Client, data: bytes, frame: int, kind: int = LIVE) -> None:
        self.pending[frame] = time.monotonic()
        self.stats.sent += 1
        await client.send_image(data, frame, kind)

    def give_up(self) -> None:
        """Count what is still pending as missing."""
        self.stats.missing += len(self.pending)
        self.pending.clear()

    async def until(self, done: Callable[[], bool], timeout: float = GRACE_S) -> None:
        """Wait until `done()` (checked after each message) or `timeout`."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                break


async def receive(client: Client, tracker: Tracker) -> None:
    async for raw in client.ws:
        if isinstance(raw, str):  # binary messages are replayed slide images; the load never asks for them
            tracker.on_message(json.loads(raw))


async def stream(url: str, frames: list[bytes], fps: float, seconds: float, stats: Stats, *, kind: int = LIVE,
                 start_delay: float = 0.0, history: bool = False, session: str | None = None) -> str | None:
    """One client: send `frames` round-robin for `seconds`, then wait for the answers; returns its session."""
    await asyncio.sleep(start_delay)
    tracker = Tracker(stats)
    try:
        async with Client.connect(url, session=session, compression=COMPRESSION) as client:
            receiver = asyncio.create_task(receive(client, tracker))
            try:
                await _send_loop(client, tracker, frames, fps, seconds, kind)
                await tracker.until(lambda: not tracker.pending)
                tracker.give_up()
                if history:
                    await client.send_json({"type": "history"})
                    await tracker.until(lambda: tracker.history_bytes is not None)
                    stats.history_bytes.append(tracker.history_bytes or 0)
            finally:
                receiver.cancel()
            return client.session
    except (OSError, TimeoutError, websockets.WebSocketException) as error:
        stats.errors[f"connection: {type(error).__name__}"] += 1
        tracker.give_up()
        return None


async def _send_loop(client: Client, tracker: Tracker, frames: list[bytes], fps: float, seconds: float,
                     kind: int) -> None:
    start = time.monotonic()
    frame = 0
    while time.monotonic() - start < seconds:
        if fps:
            # A fixed schedule, not sleep(1/fps) after each send, so slow sends do not lower the rate.
            await asyncio.sleep(max(0.0, start + frame / fps - time.monotonic()))
        else:
            await tracker.until(lambda: not tracker.pending)
        await tracker.send(client, frames[frame % len(frames)], frame, kind)
        frame += 1


async def run(url: str, connections: int, fps: float, seconds: float, photo: bool = False,
              server_pid: int | None = None) -> dict[str, Any]:
    """Every client at once; start times spread over one frame interval, as real cameras are not in step.

    With `server_pid`, also the server's CPU use (% of one core) while the clients run.
    """
    frames = [images.phone_photo()] if photo else images.frames()
    stats = Stats()
    rng = random.Random(0)
    spread = 1 / fps if fps else 0.1
    server = psutil.Process(server_pid) if server_pid else None
    server_cpu = cpu_seconds(server) if server else 0.0
    own_cpu = time.process_time()
    started = time.monotonic()
    await asyncio.gather(*(
        stream(url, frames, fps, seconds, stats, kind=PHOTO if photo else LIVE, start_delay=rng.uniform(0, spread),
               history=True)
        for _ in range(connections)
    ))
    wall = time.monotonic() - started
    return {
        "connections": connections, "fps": fps, "seconds": seconds, "kind": "photo" if photo else "live",
        "frame_bytes": int(np.mean([len(f) for f in frames])), "wall_s": round(wall, 2), **stats.summary(seconds),
        "loadgen_cpu_percent": round(100 * (time.process_time() - own_cpu) / wall, 1),
        "server_cpu_percent": round(100 * (cpu_seconds(server) - server_cpu) / wall, 1) if server else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the server's WebSocket URL, ws://HOST:PORT/ws")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--fps", type=float, default=10.0, help="live frames per second per client; 0 = one in flight")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--photo", action="store_true", help="upload a 4000x3000 photo instead of webcam frames")
    parser.add_argument("--server-pid", type=int, help="also report this process's CPU use during the run")
    args = parser.parse_args()
    row = asyncio.run(run(args.url, args.connections, args.fps, args.seconds, args.photo, args.server_pid))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
