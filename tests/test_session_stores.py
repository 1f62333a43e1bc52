"""Both session stores, in process, against the same promises: bounds, eviction reports, expiry, fencing. The Redis
store also against a real redis-server that hangs, dies and comes back, and across two "workers" (two stores)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from services import RedisServer, missing

from server.config import Config
from server.history import History
from server.metrics import Metrics
from server.sessions import Session, SessionStore, TakenOver, history_bounds, make_store
from server.sessions.redis_data import session_key
from server.sessions.redis_store import RedisStore

FRAMES, PHOTOS, BYTES, GRACE_S = 5, 3, 100, 0.3
RESULT = {"number": "4", "reason": None, "digits": [], "width": 10, "height": 10}
WAIT_S = 20.0  # a bound for what must happen "soon" on a busy machine; never asserted as a duration


class Owner:
    """A connection as the store sees it: it can be asked to hand over, and may still write while it does."""

    def __init__(self) -> None:
        self.handed_over = 0
        self.while_handing_over: Session | None = None  # writes one frame into this handle while handing over

    async def hand_over(self) -> None:
        self.handed_over += 1
        if self.while_handing_over is not None:
            await self.while_handing_over.add(99, "photo", 0.0, b"last", RESULT)


def config(redis_url: str = "", **settings: object) -> Config:
    return Config(resume_grace_s=GRACE_S, history_frames=FRAMES, history_photos=PHOTOS, history_bytes=BYTES,
                  redis_url=redis_url,
                  redis_timeout_s=0.3, drain_timeout_s=2, **settings)


@pytest_asyncio.fixture
async def started() -> AsyncIterator[list[SessionStore]]:
    stores: list[SessionStore] = []
    yield stores
    for store in stores:
        await store.stop()


async def start(stores: list[SessionStore], settings: Config, worker: str = "w1") -> SessionStore | RedisStore:
    store = make_store(settings, worker, Metrics(worker))
    await store.start()
    stores.append(store)
    return store


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, started: list[SessionStore]) -> SessionStore:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    return await start(started, config(url))


def image(seq_hint: int, size: int) -> bytes:
    return (f"{seq_hint}:".encode() * size)[:size]


@pytest.mark.asyncio
async def test_bounds_hold_under_concurrent_appends(store: SessionStore) -> None:
    session, _ = await store.open(None, Owner())
    sizes = [7, 23, 41, 60, 2, 0, 33] * 6
    added = await asyncio.gather(*(session.add(n, "live", n / 10, image(n, size), RESULT)
                                   for n, size in enumerate(sizes)))
    snapshot = await session.snapshot()
    seqs = [seq for seq, _ in added]
    evicted = [seq for _, dropped in added for seq in dropped]
    kept = [entry.seq for entry in snapshot.entries]

    assert sorted(seqs) == list(range(len(sizes)))  # one seq each, none reused
    assert len(evicted) == len(set(evicted)) and set(evicted).isdisjoint(kept)
    assert sorted(evicted + kept) == sorted(seqs)  # every seq either kept or reported evicted
    assert kept == sorted(seqs)[len(seqs) - len(kept):]  # the newest are kept, oldest first
    assert len(kept) <= FRAMES and snapshot.bytes <= BYTES
    assert snapshot.bytes == sum(entry.size for entry in snapshot.entries) and snapshot.dropped == len(evicted)
    by_frame = dict(enumerate(sizes))
    for entry in snapshot.entries:  # each image as received, with its frame
        assert await session.image(entry.seq) == image(entry.frame, by_frame[entry.frame])


@pytest.mark.asyncio
async def test_evictions_are_reported_as_the_in_memory_history_reports_them(store: SessionStore) -> None:
    session, _ = await store.open(None, Owner())
    reference = History(history_bounds(config()))
    sizes = [10, 10, 10, 10, 10, 10, 60, 101, 0, 100, 1]  # by count, by bytes, one over the whole budget, exact fits
    reports = [await session.add(n, "live", 0.0, b"x" * size, RESULT) for n, size in enumerate(sizes)]
    expected = [reference.add(n, "live", 0.0, b"x" * size, RESULT) for n, size in enumerate(sizes)]

    assert reports == expected
    assert reports[7] == (7, [2, 3, 4, 5, 6, 7])  # larger than the budget: its seq, and evicted at once
    snapshot = await session.snapshot()
    assert [e.seq for e in snapshot.entries] == [10] and (snapshot.bytes, snapshot.dropped) == (1, 10)


@pytest.mark.asyncio
async def test_live_frames_never_push_out_a_photo_in_either_store(store: SessionStore) -> None:
    """Photos and live frames each by their own count; over the bytes, live frames give way first: the same
    reports as the in-memory history's."""
    session, _ = await store.open(None, Owner())
    reference = History(history_bounds(config()))
    added = [("photo", 30), *[("live", 10)] * 7, ("live", 80), ("photo", 30), ("live", 10), ("photo", 30),
             ("photo", 30), ("photo", 5)]
    reports = [await session.add(n, kind, 0.0, b"x" * size, RESULT) for n, (kind, size) in enumerate(added)]
    expected = [reference.add(n, kind, 0.0, b"x" * size, RESULT) for n, (kind, size) in enumerate(added)]

    assert reports == expected
    assert reports[8] == (8, [3, 4, 5, 6, 7, 8])  # a live frame that cannot fit beside the photo goes itself
    snapshot = await session.snapshot()
    assert [(e.seq, e.kind) for e in snapshot.entries] == [(11, "photo"), (12, "photo"), (13, "photo")]


async def left_behind(store: SessionStore, token: str) -> bool:
    """Whether anything of the session is left: in Redis, any key naming it; in memory, any session."""
    if isinstance(store, RedisStore):
        return bool([key async for key in store.data.client.scan_iter(f"*{token}*")])
    return len(store) > 0


@pytest.mark.asyncio
async def test_a_session_resumes_within_the_grace_then_expires_leaving_nothing(store: SessionStore) -> None:
    first_owner, owner = Owner(), Owner()
    session, resumed = await store.open(None, first_owner)
    await session.add(1, "live", 0.0, b"abc", RESULT)
    await store.close(session, first_owner)
    again, resumed_again = await store.open(session.token, owner)
    await store.close(again, Owner())  # not its owner: nothing happens
    still = await left_behind(store, session.token)
    await store.close(again, owner)

    assert (resumed, resumed_again, still) == (False, True, True)
    assert len((await again.snapshot()).entries) == 1
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while await left_behind(store, session.token) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert not await left_behind(store, session.token)  # expired, by a TTL in Redis
    expired, resumed = await store.open(session.token, Owner())
    assert resumed is False and expired.token != session.token


@pytest.mark.asyncio
async def test_the_old_owner_is_fenced_once_a_newer_connection_owns_the_session(store: SessionStore) -> None:
    old_owner, new_owner = Owner(), Owner()
    old, _ = await store.open(None, old_owner)
    await old.add(1, "live", 0.0, b"one", RESULT)
    old_owner.while_handing_over = old  # the old socket's answers in flight still enter the history
    new, resumed = await store.open(old.token, new_owner)

    assert resumed and old_owner.handed_over == 1
    assert [(e.seq, e.frame) for e in (await new.snapshot()).entries] == [(0, 1), (1, 99)]
    with pytest.raises(TakenOver):
        await old.add(2, "live", 0.0, b"late", RESULT)
    assert await new.add(3, "live", 0.0, b"new", RESULT) == (2, [])
    await store.close(old, old_owner)  # the old socket going away leaves the session with the new one
    newest, resumed = await store.open(old.token, Owner())
    assert resumed and new_owner.handed_over == 1 and len((await newest.snapshot()).entries) == 3


# ---------------------------------------------------------------- Redis only


async def two_workers(started: list[SessionStore], request: pytest.FixtureRequest
                      ) -> tuple[RedisStore, RedisStore, Owner, Session]:
    """Two stores on one Redis, as two workers, and a session opened on the first."""
    url = request.getfixturevalue("redis_server").url
    first, second = await start(started, config(url), "w1"), await start(started, config(url), "w2")
    owner = Owner()
    session, _ = await first.open(None, owner)
    return first, second, owner, session


@pytest.mark.asyncio
async def test_a_session_resumes_on_another_worker_with_the_same_seqs_and_readings(
        started: list[SessionStore], request: pytest.FixtureRequest) -> None:
    _, second, owner, session = await two_workers(started, request)
    for frame in range(3):
        await session.add(frame, "live", frame / 10, image(frame, 20), {**RESULT, "number": str(frame)})
    owner.while_handing_over = session

    resumed, was_kept = await asyncio.wait_for(second.open(session.token, Owner()), WAIT_S)

    assert was_kept and owner.handed_over == 1  # asked over pub/sub, on the other worker
    entries = (await resumed.snapshot()).entries
    assert [(e.seq, e.frame, e.result["number"]) for e in entries] == [(0, 0, "0"), (1, 1, "1"), (2, 2, "2"),
                                                                      (3, 99, "4")]
    assert [await resumed.image(e.seq) for e in entries[:3]] == [image(frame, 20) for frame in range(3)]
    with pytest.raises(TakenOver):
        await session.add(5, "live", 0.0, b"late", RESULT)


@pytest.mark.asyncio
async def test_a_dead_workers_session_is_taken_at_once(started: list[SessionStore],
                                                       request: pytest.FixtureRequest) -> None:
    dead, alive, owner, session = await two_workers(started, request)
    await session.add(1, "live", 0.0, b"kept", RESULT)
    await dead.stop()  # as after SIGKILL: nobody listens on its channel, nothing was released
    started.remove(dead)

    resumed, was_kept = await asyncio.wait_for(alive.open(session.token, Owner()), WAIT_S)

    assert was_kept and owner.handed_over == 0
    assert [e.frame for e in (await resumed.snapshot()).entries] == [1]


@pytest.mark.asyncio
async def test_a_connection_whose_session_was_taken_without_asking_it_is_closed(
        started: list[SessionStore], request: pytest.FixtureRequest) -> None:
    deaf, other, owner, session = await two_workers(started, request)
    await session.add(1, "live", 0.0, b"kept", RESULT)
    listener = deaf._tasks[1]  # its hand-over channel, as while Redis came back and it had not subscribed again
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await other.open(session.token, Owner())
    asked_at_open = owner.handed_over

    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not owner.handed_over and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert (asked_at_open, owner.handed_over) == (0, 1)  # its worker found it taken, and closed it


async def until_available(store: RedisStore) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not store.available and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert store.available


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server this test alone may hang, kill and start again."""
    reason = missing("redis-server")
    if reason:
        pytest.skip(reason)
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def a_session_in(started: list[SessionStore], redis: RedisServer) -> tuple[RedisStore, Session]:
    """A store on `redis`, and a session of it holding frame 0 (seq 0)."""
    store = await start(started, config(redis.url))
    session, _ = await store.open(None, Owner())
    await session.add(0, "live", 0.0, b"frame 0", RESULT)
    return store, session


@pytest.mark.asyncio
async def test_a_hung_redis_degrades_to_memory_then_the_history_moves_back(started: list[SessionStore],
                                                                          own_redis: RedisServer) -> None:
    store, session = await a_session_in(started, own_redis)
    own_redis.pause()
    try:
        hung = [await session.add(frame, "live", 0.0, b"in memory", RESULT) for frame in (1, 2)]
        degraded = session.degraded
        listing = [e.seq for e in (await session.snapshot()).entries]
    finally:
        own_redis.resume()
    await until_available(store)
    back = await session.add(3, "live", 0.0, b"in redis again", RESULT)

    assert hung == [(1, []), (2, [])] and degraded and listing == [1, 2]
    assert back == (3, []) and not session.degraded
    other = await start(started, config(own_redis.url), "w2")
    entries = (await (await other.open(session.token, Owner()))[0].snapshot()).entries
    assert [(e.seq, e.frame) for e in entries] == [(0, 0), (1, 1), (2, 2), (3, 3)]  # all of it, in Redis


@pytest.mark.asyncio
async def test_after_a_redis_restart_the_session_is_written_anew(started: list[SessionStore],
                                                                own_redis: RedisServer) -> None:
    store, session = await a_session_in(started, own_redis)
    own_redis.stop()  # frame 0 is lost with it
    down = await session.add(1, "live", 0.0, b"kept here", RESULT)
    own_redis.start()  # empty: nothing is saved
    await until_available(store)
    back = await session.add(2, "live", 0.0, b"in redis", RESULT)

    assert down == (1, []) and back == (2, []) and not session.degraded
    raw = own_redis.client().hgetall(session_key(session.token))
    assert (raw[b"i1"], raw[b"i2"], raw[b"next"]) == (b"kept here", b"in redis", b"3") and b"i0" not in raw
