"""The cluster on real processes (loopback only): Redis, two workers, HAProxy in front, as `make cluster` runs
them. A worker killed with SIGKILL, Redis stopped under load, a takeover across workers, `make cluster` itself."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from conftest import ROOT, SAMPLES
from services import free_ports, missing
from wsclient import LIVE, PHOTO, SLIDE, Client, answered_frames, split_binary

from server.cluster import Cluster, haproxy_config, redis_command, wait_for_http, wait_for_redis
from server.config import Config
from server.sessions.redis_data import session_key

pytestmark = pytest.mark.skipif(bool(missing("redis-server", "haproxy")), reason=missing("redis-server", "haproxy")
                                or "")

IMAGES = [(SAMPLES / name).read_bytes() for name in ("4.jpg", "7.jpg", "407__multi.jpg")]
NUMBERS = ["4", "7", "407"]
# Every live frame enters the history: these tests follow each answered frame across workers.
WORKER_SETTINGS = ["--max-fps", "0", "--resume-grace-s", "60", "--drain-timeout-s", "5", "--history-live-every-s", "0",
                   "--history-live-gap-s", "0"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two workers behind HAProxy, with Redis; a worker that dies is started again, as `make cluster` does."""
    base = free_ports(4)
    running = Cluster(Config(host="127.0.0.1", port=base, workers=2), tmp_path_factory.mktemp("cluster"),
                      WORKER_SETTINGS)
    stopping = threading.Event()
    try:
        running.start()
        supervisor = threading.Thread(target=running.supervise, args=(stopping,), daemon=True)
        supervisor.start()
        yield running
    finally:
        stopping.set()
        running.stop()


def balancer(cluster: Cluster) -> str:
    return f"ws://127.0.0.1:{cluster.config.port}/ws"


def owner_port(cluster: Cluster, token: str) -> int:
    """The port of the worker that owns a session, from Redis (its owner is "HOSTNAME:PORT/instance")."""
    owner = redis.Redis(port=cluster.redis_port).hget(session_key(token), "owner")
    return int(owner.decode().split("/")[0].rsplit(":", 1)[1])


async def stream(client: Client, frames: range) -> dict[int, tuple[int, str]]:
    """Send live frames one at a time; seq -> (frame, number) of each result."""
    answered = {}
    for frame in frames:
        await client.send_image(IMAGES[frame % 3], frame, LIVE)
        result = await client.expect("result")
        answered[result["seq"]] = (result["frame"], result["number"])
    return answered


def test_a_client_whose_worker_is_killed_resumes_with_every_answered_frame_and_replays_them(cluster: Cluster) -> None:
    async def main() -> tuple[dict, int, dict, dict, list, list]:
        async with Client.connect(balancer(cluster)) as first:
            answered = await stream(first, range(6))
            killed = owner_port(cluster, first.session)
            cluster.workers[killed].send_signal(signal.SIGKILL)
            await first.close_code()  # the balancer drops the socket with its worker
        async with Client.connect(balancer(cluster), session=first.session) as again:
            await again.send_json({"type": "history"})
            listing = await again.expect("history")
            await again.send_json({"type": "replay", "mode": "realtime", "speed": 20})
            replay = await again.until(lambda m: bool(m) and isinstance(m[-1], dict) and m[-1]["type"] == "replay_end")
            await again.send_json({"type": "replay", "mode": "step", "seq": 4})
            step = await again.until(lambda m: bool(m) and isinstance(m[-1], bytes))
            return answered, killed, again.hello, listing, replay, step

    answered, killed, hello, listing, replay, step = asyncio.run(main())
    assert hello["resumed"] is True and hello["history"] == len(answered) == 6
    assert {f["seq"]: (f["frame"], f["number"]) for f in listing["frames"]} == answered
    slides = [m for m in replay if isinstance(m, dict) and m["type"] == "slide"]
    images = [split_binary(m) for m in replay if isinstance(m, bytes)]
    assert {s["seq"]: (s["frame"], s["result"]["number"]) for s in slides} == answered
    assert [(kind, seq, data) for kind, seq, data in images] == [(SLIDE, s, IMAGES[answered[s][0] % 3])
                                                                 for s in sorted(answered)]
    assert step[0]["seq"] == 4 and split_binary(step[-1]) == (SLIDE, 4, IMAGES[4 % 3])
    assert answered[4][1] == NUMBERS[4 % 3] and killed in cluster.worker_ports


def test_with_redis_stopped_under_load_recognition_goes_on_then_history_lands_in_redis_again(cluster: Cluster) -> None:
    outage, back = asyncio.Event(), asyncio.Event()

    async def client(index: int) -> tuple[str, list, dict[int, tuple[int, str]]]:
        async with Client.connect(balancer(cluster)) as c:
            frames = iter(range(index * 1000, index * 1000 + 1000))
            before = await stream(c, [next(frames) for _ in range(3)])
            await outage.wait()
            during: dict[int, tuple[int, str]] = {}
            while not any(m.get("type") == "history_store" for _, m in c.received if isinstance(m, dict)):
                during |= await stream(c, [next(frames)])
            await back.wait()
            after: dict[int, tuple[int, str]] = {}
            while sum(m.get("type") == "history_store" for _, m in c.received if isinstance(m, dict)) < 2:
                after |= await stream(c, [next(frames)])
            after |= await stream(c, [next(frames) for _ in range(2)])
            await c.ping()  # the eviction report that follows the last result arrives before the pong
            sent = sorted(set(f for f, _ in (before | during | after).values()))
            return c.session, [m for _, m in c.received], {**during, **after}, sent

    async def main() -> list:
        clients = [asyncio.create_task(client(i)) for i in range(4)]
        await asyncio.sleep(1)
        cluster.redis.kill()
        cluster.redis.wait()
        outage.set()
        await asyncio.sleep(2)  # under load, Redis down for a while
        cluster.redis = subprocess.Popen(redis_command(cluster.redis_port, cluster.directory),
                                         stdout=subprocess.DEVNULL, cwd=ROOT)
        await asyncio.to_thread(wait_for_redis, cluster.redis_port, cluster.redis)
        back.set()
        return await asyncio.gather(*clients)

    outcomes = asyncio.run(main())
    kept = redis.Redis(port=cluster.redis_port)
    for token, messages, since_outage, sent in outcomes:
        notices = [m for m in messages if isinstance(m, dict) and m["type"] == "history_store"]
        assert [n["shared"] for n in notices] == [False, True]  # told, then told it is over
        assert answered_frames(messages) == dict.fromkeys(sent, "result")  # zero lost answers
        stored = kept.hgetall(session_key(token))
        dropped = {seq for m in messages if isinstance(m, dict) and m["type"] == "history_dropped" for seq in m["seqs"]}
        assert len(since_outage.keys() - dropped) >= 3
        for seq, (frame, _) in since_outage.items():  # what was kept in memory moved in, and new frames land there
            if seq not in dropped:  # the history's own bounds may evict the oldest, and say so
                assert stored[f"i{seq}".encode()] == IMAGES[frame % 3], (token, seq)


def wait_for_hand_over_channels(cluster: Cluster) -> None:
    """Until every worker listens on its hand-over channel (each subscribes again a moment after Redis restarts)."""
    kept = redis.Redis(port=cluster.redis_port)
    deadline = time.monotonic() + 30
    while len(kept.pubsub_channels("digits:worker:*")) < len(cluster.worker_ports) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_takeover_across_workers_answers_the_old_sockets_frames_first(cluster: Cluster) -> None:
    one, two = (f"ws://127.0.0.1:{port}/ws" for port in cluster.worker_ports)
    wait_for_hand_over_channels(cluster)

    async def main() -> tuple[list, int | None, dict, dict]:
        async with Client.connect(one) as old:
            await stream(old, range(3))
            await old.send_image(IMAGES[2], 3, PHOTO)  # in flight when the new socket arrives
            async with Client.connect(two, session=old.session) as new:
                code = await old.close_code()
                await new.send_json({"type": "history"})
                return [m for _, m in old.received], code, new.hello, await new.expect("history")

    old_messages, code, hello, listing = asyncio.run(main())
    assert answered_frames(old_messages) == dict.fromkeys(range(4), "result") and code == 4001
    assert hello["resumed"] is True and hello["history"] == 4
    assert [f["frame"] for f in listing["frames"]] == [0, 1, 2, 3]


def test_make_cluster_honours_port_and_workers_and_stops_everything_on_sigterm() -> None:
    port = free_ports(5)
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1")
    supervisor = subprocess.Popen([sys.executable, "-m", "server.cluster", "--workers", "3"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}", supervisor)
        children = psutil.Process(supervisor.pid).children()
        workers = set()
        for _ in range(30):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
                workers.add(response.headers["X-Worker"])
        supervisor.send_signal(signal.SIGTERM)
        status = supervisor.wait(60)
    finally:
        supervisor.kill()
    assert {name.rsplit(":", 1)[1] for name in workers} == {str(port + i) for i in (1, 2, 3)}
    assert status == 0 and len(children) == 5  # Redis, three workers, HAProxy
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]


def test_the_balancer_config_is_valid_and_its_tunnel_outlives_the_pings(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config([("127.0.0.1", 5001), ("127.0.0.1", 5002)]))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], env=dict(os.environ, DIGITS_BALANCER="127.0.0.1:5000"),
                           capture_output=True, text=True, check=False)
    text = config.read_text()
    tunnel = int(re.search(r"^\s*timeout tunnel (\d+)s", text, re.M).group(1))

    assert check.returncode == 0, check.stdout + check.stderr
    assert Config().ping_interval_s < tunnel  # every WebSocket carries a ping before the balancer thinks it idle
    for directive in ("balance url_param session", "hash-type consistent", "option redispatch",
                      "http-check send meth GET uri /healthz"):
        assert directive in text
    assert len(re.findall(r"^\s*server w\d 127\.0\.0\.1:500[12]$", text, re.M)) == 2
