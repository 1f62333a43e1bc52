"""The cluster's figures: `make bench` prints them with the rest; alone, `python -m tests.bench.cluster [--quick]`.

- Scaling through HAProxy at saturation (one frame in flight per client), 1 worker against 2 in one run: frames
  answered per second, and per CPU-second of the whole server side (workers, HAProxy, Redis; from /proc), with the
  load generator's CPU beside (the machine's cores are shared with it). The same 2 workers without Redis, too.
- The history write in Redis (the Lua append with its trim, over loopback): p50 and p99; and a full session's
  `MEMORY USAGE` against its bound.
- Failover: one of 2 workers killed with SIGKILL under streaming clients: time until every client reads again,
  answered frames missing from the histories, frames accepted and never answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from server.cluster import stop, wait_for_http, worker_command
from server.config import load_config
from server.sessions import history_bounds
from server.sessions.redis_data import RedisData, session_key
from tests.bench import failover, images
from tests.bench.probe import cpu_seconds
from tests.services import Balancer, RedisServer, free_port, missing

ROOT = Path(__file__).resolve().parent.parent.parent
WORKER_SETTINGS = ["--max-fps", "0", "--max-connections", "400", "--drain-timeout-s", "5"]


@dataclass(frozen=True)
class Plan:
    connections: int  # saturation rows: clients, one frame in flight each
    seconds: float
    rounds: int  # 1 worker and 2 workers, alternated this many times
    writes: int  # history writes timed
    failover_clients: int
    failover_fps: float
    failover_seconds: tuple[float, float]  # streaming before and after the kill


FULL = Plan(20, 15, 2, 2000, 20, 10, (5, 6))
QUICK = Plan(6, 2, 1, 200, 6, 10, (2, 2))


@contextlib.contextmanager
def workers(count: int, redis_url: str, log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` workers (python -m server) on free loopback ports, all answering /healthz; stopped at the end."""
    ports = [free_port() for _ in range(count)]
    started = []
    for port in ports:
        with (log_dir / f"worker-{port}.log").open("wb") as log:
            started.append(subprocess.Popen(worker_command(port, redis_url, WORKER_SETTINGS), cwd=ROOT,
                                            stdout=log, stderr=subprocess.STDOUT))
    try:
        for port, process in zip(ports, started, strict=True):
            wait_for_http(f"http://127.0.0.1:{port}", process)
            process.port = port  # type: ignore[attr-defined]
        yield started
    finally:
        for process in started:
            stop(process, 30)


def saturation_row(label: str, balancer: Balancer, server_side: list[int], plan: Plan) -> dict[str, Any]:
    """The load generator (its own process) at one frame in flight per client; CPU of every server-side process."""
    processes = [psutil.Process(pid) for pid in server_side]
    before = sum(cpu_seconds(p) for p in processes)
    command = [sys.executable, "-m", "tests.bench.loadgen", "--url", balancer.ws_url, "--connections",
               str(plan.connections), "--fps", "0", "--seconds", str(plan.seconds)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    load = json.loads(out.stdout)
    server_cpu = sum(cpu_seconds(p) for p in processes) - before
    row = {"label": label, "answered_per_s": load["throughput_fps"], "answered": load["answered"],
           "server_cpu_s": round(server_cpu, 2),
           "frames_per_cpu_s": round(load["answered"] / server_cpu, 1) if server_cpu else None,
           "server_cpu_percent": round(100 * server_cpu / load["wall_s"], 1),
           "loadgen_cpu_percent": load["loadgen_cpu_percent"], "missing": load["missing"], "errors": load["errors"],
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(f"  {label:<24} {row['answered_per_s']:>7} answered/s  {row['frames_per_cpu_s']} frames/CPU-s  "
          f"server CPU {row['server_cpu_percent']}%  load generator {row['loadgen_cpu_percent']}%", flush=True)
    return row


def history_writes(redis_url: str, frame: bytes, count: int) -> dict[str, Any]:
    """The history write as a worker does it (RedisData.append: the Lua append and trim), timed one by one;
    then the full session's MEMORY USAGE against what it holds and its bound."""
    config = load_config([])

    async def main() -> dict[str, Any]:
        data = RedisData(redis_url, config.redis_timeout_s, history_bounds(config))
        token = f"bench-{os.getpid()}-writes"
        await data.adopt(token, 1, "bench", time.time(), 0, 600_000)
        result = {"number": "42", "reason": None, "digits": [], "width": 320, "height": 240}
        times = []
        for n in range(count):
            start = time.perf_counter()
            await data.append(token, 1, n, "live", n / 10, frame, result, 0)
            times.append((time.perf_counter() - start) * 1000)
        snapshot = await data.snapshot(token, 0)
        usage = await data.client.memory_usage(session_key(token), samples=0)
        await data.client.delete(session_key(token))
        await data.close()
        times.sort()
        return {"writes": count, "frame_bytes": len(frame), "p50_ms": round(statistics.median(times), 3),
                "p99_ms": round(times[int(0.99 * (count - 1))], 3), "max_ms": round(times[-1], 3),
                "session_frames": len(snapshot.entries), "session_image_bytes": snapshot.bytes,
                "memory_usage_bytes": usage, "overhead": round(usage / snapshot.bytes, 3),
                "bound": f"{config.history_frames} frames, {config.history_bytes} bytes"}

    return asyncio.run(main())


def measure(plan: Plan, log_dir: Path) -> dict[str, Any]:
    reason = missing("redis-server", "haproxy")
    if reason:
        return {"skipped": reason}
    frames = images.frames()
    results: dict[str, Any] = {"plan": plan.__dict__, "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    redis = RedisServer(log_dir)
    redis_pid = redis.process.pid
    try:
        rows = []
        with workers(2, redis.url, log_dir) as shared:
            one, two = Balancer(log_dir, [shared[0].port]), Balancer(log_dir, [w.port for w in shared])
            try:
                saturation_row("warm-up", two, [], QUICK)
                for _ in range(plan.rounds):
                    rows.append(saturation_row("1 worker, Redis", one,
                                               [shared[0].pid, one.process.pid, redis_pid], plan))
                    rows.append(saturation_row("2 workers, Redis", two,
                                               [*(w.pid for w in shared), two.process.pid, redis_pid], plan))
                with workers(2, "", log_dir) as alone:
                    memory = Balancer(log_dir, [w.port for w in alone])
                    try:
                        rows.append(saturation_row("2 workers, no Redis", memory,
                                                   [*(w.pid for w in alone), memory.process.pid], plan))
                    finally:
                        memory.stop()
                results["history_write"] = history_writes(redis.url, frames[0], plan.writes)
                print(f"  history write {results['history_write']}", flush=True)
                before, after = plan.failover_seconds
                results["failover"] = asyncio.run(failover.run(two.ws_url, frames, plan.failover_clients,
                                                               plan.failover_fps, before, after, shared[0].kill))
                print(f"  failover {results['failover']}", flush=True)
            finally:
                one.stop()
                two.stop()
    finally:
        redis.stop()
    results["rows"] = rows
    results["scaling"] = scaling(rows)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def scaling(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the rounds: 2 workers' frames per CPU-second over 1 worker's, and Redis's cost."""
    def total(label: str) -> tuple[float, float, float]:
        chosen = [r for r in rows if r["label"] == label]
        return (sum(r["answered"] for r in chosen), sum(r["server_cpu_s"] for r in chosen),
                statistics.mean(r["answered_per_s"] for r in chosen))

    (a1, c1, f1), (a2, c2, f2), (a0, c0, f0) = (total(label) for label in
                                                 ("1 worker, Redis", "2 workers, Redis", "2 workers, no Redis"))
    return {"two_over_one_answered_per_s": round(f2 / f1, 3),
            "two_over_one_frames_per_cpu_s": round((a2 / c2) / (a1 / c1), 3),
            "redis_over_no_redis_frames_per_cpu_s": round((a2 / c2) / (a0 / c0), 3)}


def markdown(results: dict[str, Any]) -> str:
    if "skipped" in results:
        return f"Cluster: skipped ({results['skipped']})."
    lines = [f"Cluster through HAProxy, load average {results['load_average_start']} at the start", "",
             "| saturation, one frame in flight x clients | answered/s | frames per server CPU-s | server CPU % | "
             "load generator CPU % | missing |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['label']} x {results['plan']['connections']} | {r['answered_per_s']} | "
                     f"{r['frames_per_cpu_s']} | {r['server_cpu_percent']} | {r['loadgen_cpu_percent']} | "
                     f"{r['missing']} |")
    s, w, f = results["scaling"], results["history_write"], results["failover"]
    lines += ["", f"- 2 workers / 1 worker: **{s['two_over_one_frames_per_cpu_s']:.0%}** of the frames per CPU-second "
              f"(goal >= 90%), {s['two_over_one_answered_per_s']}x the frames per second; with Redis / without: "
              f"{s['redis_over_no_redis_frames_per_cpu_s']:.0%} of the frames per CPU-second.",
              f"- History write ({w['frame_bytes']} B frames, {w['writes']} writes): p50 **{w['p50_ms']} ms**, "
              f"p99 **{w['p99_ms']} ms** (goal <= 1), max {w['max_ms']} ms.",
              f"- A full session ({w['session_frames']} frames, {w['session_image_bytes']} B of images; bound "
              f"{w['bound']}): MEMORY USAGE **{w['memory_usage_bytes']} B**, {w['overhead']}x its images.",
              f"- SIGKILL of 1 of 2 workers under {f['clients']} clients at {f['fps']:g} fps: {f['clients_dropped']} "
              f"dropped, {f['clients_reading_again']} reading again within **{f['reading_again_max_s']} s** "
              f"(goal <= 5); history lost **{f['history_lost_frames']}** frames; "
              f"{f['unanswered_on_killed_sockets']} frames in flight on the killed sockets (lost with them, the "
              f"client knows), **{f['never_answered_on_live_sockets']}** accepted and unanswered."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rows, few clients")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as log_dir:
        results = measure(QUICK if args.quick else FULL, Path(log_dir))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
