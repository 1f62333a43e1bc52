"""Shared fixtures: the real server under Hypercorn on 127.0.0.1, Redis, the shared data, the samples."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hypothesis_profiles  # noqa: F401  (registers --hypothesis-profile names before the plugin reads them)
import pytest
from services import RedisServer, free_port, missing

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = Path(os.environ.get("DIGITS_DATA", ROOT.parent / "shared" / "data"))


class Server:
    """A real server process: `python -m server` on 127.0.0.1 with the committed model."""

    def __init__(self, port: int | None = None, **settings: object) -> None:
        self.port = port or free_port()
        tls = bool(settings.get("certfile"))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.ws_url = f"{'wss' if tls else 'ws'}://127.0.0.1:{self.port}/ws"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update({"DIGITS_" + k.upper(): str(v) for k, v in settings.items()})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        unverified = ssl._create_unverified_context()  # a test's self-signed certificate: only readiness matters
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited early:\n" + self.proc.stdout.read().decode(errors="replace"))
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url + "/healthz", timeout=1, context=unverified) as r:
                    if r.status == 200:
                        return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not become ready")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> str:
        """Stop the server and return everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read().decode(errors="replace")


KEEP_EVERY_FRAME = {"history_live_every_s": 0, "history_live_gap_s": 0}


@contextlib.contextmanager
def running_server(**settings: object) -> Iterator[Server]:
    """A server with its own settings (Config field names, e.g. max_fps=5)."""
    server = Server(**settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server with default settings, shared by the tests that don't need their own; but every live frame enters
    its history (the tests count seqs), where by default a camera's repeats are left out (tests/test_server.py)."""
    with running_server(**KEEP_EVERY_FRAME) as s:
        yield s


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the tests that only need one that answers (they use keys of their own sessions)."""
    reason = missing("redis-server")
    if reason:
        pytest.skip(reason)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (DATA / "README.md").exists():
        pytest.skip(f"shared data not found at {DATA} (set DIGITS_DATA); it lives beside the checkout")
    return DATA


def sample_label(path: Path) -> str:
    """The label of a labelled image: the leading digits of its file name."""
    digits = ""
    for ch in path.name:
        if not ch.isdigit():
            break
        digits += ch
    return digits
