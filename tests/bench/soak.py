"""`make soak`: a mixed load against a real server for a long time; its memory and descriptors must stay flat.

    python -m tests.bench.soak                # 30 minutes
    python -m tests.bench.soak --minutes 5

The load, all at once: live webcam streams at 10 fps (reconnecting every two minutes), a phone uploading
photos, clients that drop and resume their session (and replay it), clients that vanish with frames in
flight, a flooder over the frame-rate limit, and bad input (not images, truncated JPEGs, short messages,
bad JSON, replays of unknown frames). The server runs with its default settings.

Every `--every` seconds it prints the server's RSS, open descriptors and CPU, and the frame accounting:
sent = answered + skipped + rejected (error answers) + missing (never answered: must stay 0).
Exits 1 when frames went missing or memory grew after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

from server.config import load_config
from tests.bench import images
from tests.bench.loadgen import Stats, Tracker, receive, stream
from tests.bench.probe import MB, Probe, bench_server
from tests.wsclient import PHOTO, Client

LIVE_STREAMS = 4
FLOOD_FPS = 100  # over the default max_fps (30): most of these are refused with rate_limited
# Sessions reconnect every 60-120 s and linger resume_grace_s (60 s): memory plateaus after about 150 s.
WARM_UP_S = 150.0
GROWTH_ALLOWED_MB = 30.0  # RSS may wander this much after warm-up (allocator noise) and still count as flat


async def live(url: str, frames: list[bytes], stats: Stats, until: float) -> None:
    """A webcam streaming at 10 fps, reconnecting every two minutes as a user reloading the page would."""
    while time.monotonic() < until:
        await stream(url, frames, 10, min(120.0, until - time.monotonic()), stats, start_delay=random.random())


async def photos(url: str, photo: bytes, stats: Stats, until: float) -> None:
    """A phone uploading a 4000x3000 photo every two seconds."""
    while time.monotonic() < until:
        await stream(url, [photo], 0.5, min(60.0, until - time.monotonic()), stats, kind=PHOTO)


async def resumer(url: str, frames: list[bytes], stats: Stats, until: float) -> None:
    """Short visits that resume the same session (a flaky phone network), replaying the history each time."""
    session = None
    for visit in itertools.count():
        if time.monotonic() >= until:
            return
        if visit % 5 == 0:
            session = None  # now and then a new session, so old ones expire on the server
        session = await stream(url, frames, 10, 1.0, stats, session=session)
        if session:
            await _replay(url, session, stats)
        await asyncio.sleep(1.0)


async def _replay(url: str, session: str, stats: Stats) -> None:
    """Resume, replay the history at 20x speed, read it to the end."""
    try:
        async with Client.connect(url, session=session) as client:
            await client.send_json({"type": "replay", "mode": "realtime", "speed": 20})
            await client.expect("replay_end")
    except (OSError, TimeoutError, websockets.WebSocketException) as error:
        stats.errors[f"connection: {type(error).__name__}"] += 1


async def vanisher(url: str, frames: list[bytes], stats: Stats, until: float, counts: dict[str, int]) -> None:
    """Clients that send a few frames and close at once, leaving them in flight."""
    while time.monotonic() < until:
        try:
            async with Client.connect(url) as client:
                for frame in range(3):
                    await client.send_image(frames[frame], frame)
            counts["abandoned"] += 3
        except (OSError, TimeoutError, websockets.WebSocketException) as error:
            stats.errors[f"connection: {type(error).__name__}"] += 1
        await asyncio.sleep(2.0)


async def bad_input(url: str, frame: bytes, stats: Stats, until: float) -> None:
    """Every error path the protocol has, on one connection, again and again; each must be answered."""
    rng = np.random.default_rng(0)
    async with Client.connect(url) as client:
        tracker = Tracker(stats)
        receiver = asyncio.create_task(receive(client, tracker))
        try:
            for n in itertools.count(step=3):
                if time.monotonic() >= until:
                    break
                # As photos, which are never skipped, so each must be answered with bad_image.
                await tracker.send(client, rng.bytes(2000), n, PHOTO)  # not an image
                await tracker.send(client, frame[: len(frame) // 2], n + 1, PHOTO)  # truncated JPEG
                await tracker.send(client, b"", n + 2, PHOTO)  # header only
                await client.ws.send(b"\x01\x00")  # shorter than the header
                await client.ws.send("{not json")
                await client.send_json({"type": "replay", "mode": "step", "seq": 10**9})
                await tracker.until(lambda: not tracker.pending)
                await asyncio.sleep(1.0)
        finally:
            tracker.give_up()
            receiver.cancel()


async def flooder(url: str, frames: list[bytes], stats: Stats, until: float) -> None:
    """A client sending far more live frames than allowed; the excess must be refused, not queued."""
    while time.monotonic() < until:
        await stream(url, frames, FLOOD_FPS, min(60.0, until - time.monotonic()), stats)


def _line(elapsed: float, probe: Probe, cpu: float, stats: Stats, counts: dict[str, int]) -> str:
    dropped = sum(v for k, v in stats.errors.items() if k.startswith("connection"))
    gauges = "  ".join(f"{name} {value}" for name, value in probe.gauges().items())
    return (f"{elapsed:7.0f} s  RSS {probe.rss() / MB:7.1f} MB  fds {probe.open_files():4d}  CPU {cpu:5.1f}%  "
            f"{gauges}  sent {stats.sent}  answered {stats.answered}  skipped {stats.skipped}  "
            f"rejected {stats.rejected}  missing {stats.missing}  abandoned {counts['abandoned']}  "
            f"connection errors {dropped}")


async def soak(url: str, probe: Probe, seconds: float, every: float) -> dict[str, object]:
    frames = images.frames()
    photo = images.phone_photo()
    stats = Stats()
    counts = {"abandoned": 0}
    start = time.monotonic()
    until = start + seconds
    baseline_fds = probe.open_files()
    load = [
        *(live(url, frames, stats, until) for _ in range(LIVE_STREAMS)),
        photos(url, photo, stats, until),
        resumer(url, frames, stats, until),
        vanisher(url, frames, stats, until, counts),
        bad_input(url, frames[0], stats, until),
        flooder(url, frames, stats, until),
    ]
    tasks = [asyncio.create_task(job) for job in load]
    samples: list[tuple[float, float, int]] = []  # (seconds since start, RSS MB, open descriptors)
    cpu, last = probe.cpu_seconds(), 0.0
    while not all(t.done() for t in tasks):
        await asyncio.wait(tasks, timeout=every)
        now_cpu, elapsed = probe.cpu_seconds(), time.monotonic() - start
        samples.append((elapsed, probe.rss() / MB, probe.open_files()))
        print(_line(elapsed, probe, 100 * (now_cpu - cpu) / (elapsed - last), stats, counts), flush=True)
        cpu, last = now_cpu, elapsed
    for task in tasks:
        task.result()  # a crash in the load itself is a bug in this file: show it
    await asyncio.sleep(2.0)  # let the server close the last sockets
    return {**verdict(samples, seconds, stats, counts, baseline_fds, probe.open_files()), "gauges_end": probe.gauges()}


def verdict(samples: list[tuple[float, float, int]], seconds: float, stats: Stats, counts: dict[str, int],
            baseline_fds: int, final_fds: int) -> dict[str, object]:
    """Flat memory after warm-up: a fifth of the run, at least 150 s (histories full, first sessions expired)."""
    warm = [s for s in samples if s[0] >= min(max(WARM_UP_S, seconds / 5), seconds / 2)] or samples[-1:]
    t, rss = np.array([s[0] for s in warm]), np.array([s[1] for s in warm])
    slope = float(np.polyfit(t / 60, rss, 1)[0]) if len(warm) > 2 else 0.0
    growth = float(rss[-1] - rss[0])
    return {
        "seconds": round(seconds), "sent": stats.sent, "answered": stats.answered, "skipped": stats.skipped,
        "rejected": stats.rejected, "errors": dict(stats.errors), "missing": stats.missing,
        "abandoned": counts["abandoned"],
        "rss_after_warmup_mb": round(float(rss[0]), 1), "rss_end_mb": round(float(rss[-1]), 1),
        "rss_max_mb": round(max(s[1] for s in samples), 1), "rss_growth_after_warmup_mb": round(growth, 1),
        "rss_slope_mb_per_min": round(slope, 2), "fds_before": baseline_fds, "fds_end": final_fds,
        "memory_flat": growth <= GROWTH_ALLOWED_MB, "nothing_missing": stats.missing == 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between two lines of figures")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    config = load_config([])
    with tempfile.TemporaryDirectory(prefix="soak-") as log_dir, \
            bench_server(Path(log_dir), model_path=config.model_path) as server:
        probe = Probe(server)
        print(f"soak: {args.minutes:g} min against {server.ws_url} (pid {server.proc.pid}), "
              f"RSS at start {probe.rss() / MB:.1f} MB, {probe.open_files()} fds", flush=True)
        try:
            result = asyncio.run(soak(server.ws_url, probe, seconds, min(args.every, seconds / 4)))
        except (OSError, websockets.WebSocketException):
            print("server log:\n" + server.log_tail(), file=sys.stderr)
            raise
    print(json.dumps(result, indent=2))
    return 0 if result["memory_flat"] and result["nothing_missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
