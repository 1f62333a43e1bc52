"""Serve the app with Hypercorn (`python -m server [flags]`; `--help` lists every setting).

One worker runs in this process. With `--workers N` the listening sockets are opened here and shared
with N spawned worker processes, each loading the model once; SIGTERM/SIGINT are passed on to them.
Each worker drains on SIGTERM itself: no new sockets, in-flight frames answered, sockets closed with 1001.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection, wait

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from . import hypercorn_patches
from .config import Config, load_config
from .engine import model_file


def hypercorn_config(config: Config) -> HypercornConfig:
    hyper = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    if config.certfile:
        hyper.certfile, hyper.keyfile = config.certfile, config.keyfile or None
    # Hypercorn closes an over-size message with 1009 without a word; leave room so we can say why first.
    hyper.websocket_max_message_size = 2 * config.max_message_bytes
    hyper.websocket_ping_interval = config.ping_interval_s or None
    hyper.graceful_timeout = 5.0
    hyper.errorlog = logging.getLogger("hypercorn.error")  # a Logger, not "-": one handler (ours), no doubled lines
    return hyper


def serve(config: Config, sockets: Sockets | None = None, ready: Connection | None = None) -> None:
    """Run one worker until SIGTERM/SIGINT; `ready` is told once a signal can no longer kill it uncleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    hypercorn_patches.apply()
    asyncio.run(_serve(config, sockets, ready))


async def _serve(config: Config, sockets: Sockets | None, ready: Connection | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first: a signal while the model loads must not kill us
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.send(True)
        ready.close()
    from .app import create_app  # here, so that the parent of several workers never loads the model

    app = create_app(config)

    async def shutdown_trigger() -> None:
        await stop.wait()
        await app.extensions["digits"].drain()

    await worker_serve(wrap_app(app, 0, "asgi"), hypercorn_config(config), sockets=sockets,
                       shutdown_trigger=shutdown_trigger)


def main(argv: list[str] | None = None) -> int:
    """Parse the settings and serve until SIGTERM/SIGINT; the exit status."""
    config = load_config(argv)
    model = model_file(config.model_path, config.backend)
    if not model.is_file():
        raise SystemExit(f"no model at {model}: train one (make train) or pass --model-path")
    if config.workers <= 1:
        serve(config)
        return 0
    sockets = hypercorn_config(config).create_sockets()
    context = multiprocessing.get_context("spawn")
    pipes = [context.Pipe(duplex=False) for _ in range(config.workers)]
    workers = [context.Process(target=serve, args=(config, sockets, sender), daemon=True) for _, sender in pipes]
    for worker, (_, sender) in zip(workers, pipes, strict=True):
        worker.start()
        sender.close()

    stopping = False

    def forward(sig: int, _frame: object) -> None:
        # Once only: a second SIGTERM could hit a worker whose loop already ended and kill it uncleanly.
        nonlocal stopping
        if not stopping:
            stopping = True
            for worker, (ready, _) in zip(workers, pipes, strict=True):
                # A worker still starting (spawn imports for seconds) would die of the signal: wait until it can drain.
                wait([ready, worker.sentinel], timeout=120)
                if worker.is_alive():
                    worker.terminate()  # SIGTERM: the worker drains

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    wait([worker.sentinel for worker in workers])  # the first to exit, by signal or crash, ends the server
    forward(signal.SIGTERM, None)
    for worker in workers:
        worker.join()
    return max(abs(worker.exitcode or 0) for worker in workers)

