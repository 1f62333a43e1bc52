"""All settings in one place: a dataclass filled from defaults, then env vars, then CLI flags.

Every field `some_name` is read from the env var `DIGITS_SOME_NAME` and the flag `--some-name`;
`host` and `port` also honour plain `HOST` and `PORT` (so `PORT=5123 make run` works).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from server.engine import BACKENDS, KINDS

ROOT = Path(__file__).resolve().parent.parent


def _opt(default: object, help: str, choices: tuple[str, ...] | None = None) -> object:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    # Network
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 for phones on the LAN)")
    port: int = _opt(5000, "TCP port")
    workers: int = _opt(1, "Hypercorn worker processes (sessions are per worker unless redis_url is set)")
    worker_name: str = _opt("", "this worker's name in /metrics and the X-Worker header (default HOSTNAME:PORT)")
    certfile: str = _opt("", "TLS certificate (PEM); phones need HTTPS for the camera")
    keyfile: str = _opt("", "TLS private key (PEM)")
    web_dir: str = _opt(str(ROOT / "web"), "the page and its assets; nothing outside it is served")
    allowed_origins: str = _opt("", "extra WebSocket Origins allowed besides the page's own, comma-separated; * any")
    # Model and batching
    model_path: str = _opt(str(ROOT / "model" / "digits.tflite"), "trained model: .tflite (or .keras)")
    reader_path: str = _opt(str(ROOT / "model" / "reader.tflite"),
                            "the line reader: .tflite (or .keras); empty: the candidates are read alone")
    engine: str = _opt("rules", "which engine reads: rules (hand-written ink and segmentation rules, the classifier "
                                "and the line reader), or v3 (the learned ink map's rows, read by the line reader)",
                       KINDS)
    inkmap_path: str = _opt(str(ROOT / "model" / "inkmap.tflite"), "the ink map (v3): .tflite (or .keras)")
    row_reader_path: str = _opt(str(ROOT / "model" / "row_reader.tflite"),
                                "the line reader of v3, trained on the ink map's rows: .tflite (or .keras)")
    backend: str = _opt("litert", "runs the model: litert, or keras (the .keras beside it; needs TensorFlow)", BACKENDS)
    max_batch: int = _opt(32, "most images decoded and classified in one batch")
    batch_wait_ms: float = _opt(4.0, "longest wait for a batch to fill")
    threads: int = _opt(os.cpu_count() or 1, "threads for decoding and preprocessing")
    # History and replay
    history_frames: int = _opt(120, "live frames kept per connection")
    history_photos: int = _opt(30, "photos kept per connection (live frames never push them out)")
    history_bytes: int = _opt(16 * 2**20, "image bytes kept per connection (live frames give way first)")
    history_live_every_s: float = _opt(2.0, "a live frame that reads what the last live frame kept read is kept "
                                            "only this long after it")
    history_live_gap_s: float = _opt(0.25, "least time between two live frames kept, however the reading changes "
                                           "(both 0: every live frame is kept)")
    resume_grace_s: float = _opt(60.0, "how long a dropped session waits for its client")
    redis_url: str = _opt("", "Redis for sessions and history shared by every worker (redis://HOST:PORT/DB); "
                              "empty: in this worker's memory")
    redis_timeout_s: float = _opt(0.5, "longest wait for Redis on any call; beyond it history is kept in memory")
    # Limits
    max_message_bytes: int = _opt(8 * 2**20, "largest WebSocket message or upload")
    max_pixels: int = _opt(40_000_000, "largest image, in pixels")
    max_fps: float = _opt(30.0, "live frames per second per connection")
    max_connections: int = _opt(200, "WebSocket connections per worker, and HTTP recognitions in flight")
    ping_interval_s: float = _opt(20.0, "WebSocket ping interval (0 turns pings off)")
    max_queued_photos: int = _opt(16, "photos per connection waiting for a result; more are refused")
    max_queued_bytes: int = _opt(32 * 2**20, "bytes of the photos waiting per connection (one photo always fits)")
    drain_timeout_s: float = _opt(10.0, "on SIGTERM, longest wait for in-flight frames before closing sockets")
    # Testing
    fault_marker: str = _opt("", "test hook: images containing these bytes make the model fail (empty = off)")


def _env_name(name: str) -> str:
    return "DIGITS_" + name.upper()


def load_config(argv: list[str] | None = None) -> Config:
    """Build the Config: defaults, overridden by env vars, overridden by CLI flags."""
    values: dict[str, object] = {}
    for f in dataclasses.fields(Config):
        kind = type(f.default)
        for env in (_env_name(f.name), f.name.upper() if f.name in ("host", "port") else None):
            if env and os.environ.get(env):
                values[f.name] = kind(os.environ[env])
                break

    parser = argparse.ArgumentParser(prog="python -m server", description="Digit recogniser server")
    for f in dataclasses.fields(Config):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=None,
            choices=f.metadata["choices"],
            help=f"{f.metadata['help']} (env {_env_name(f.name)}, default {f.default!r})",
        )
    args = parser.parse_args(argv)
    values.update({k: v for k, v in vars(args).items() if v is not None})
    for f in dataclasses.fields(Config):
        if f.metadata["choices"] and f.name in values and values[f.name] not in f.metadata["choices"]:
            parser.error(f"{_env_name(f.name)}={values[f.name]}: choose one of {', '.join(f.metadata['choices'])}")
    return Config(**values)  # type: ignore[arg-type]
