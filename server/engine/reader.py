"""The line reader, loaded once: lines of ink (lines.py) -> for every STRIDE columns the chances of the ten digits
and of BLANK ("no digit here", CTC's blank), on either backend (backends.py); and those chances -> the digits on
the line, by CTC's greedy decoding, each with its confidence, top-3 and the input columns it was read at.

The reader (training/train_reader.py) is a small fully convolutional network: it reads a line whole, so digits
that touch or fell apart need no cut. Both loaders are thread-safe (calls are serialised); the server makes all
its calls from its one inference thread anyway.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .backends import LiteRTRun, keras_function, litert_model, model_file
from .lines import HEIGHT, STRIDE, WIDTHS

BLANK = 10
CLASSES = 11


@dataclass
class Read:
    value: int
    confidence: float  # its highest chance along its run
    top3: list[tuple[int, float]]  # the digits most likely at that step, and their chances
    columns: tuple[int, int]  # the input columns [x0, x1) of its run


def decode_line(probs: np.ndarray) -> list[Read]:
    """(steps, CLASSES) chances of one line -> its digits, left to right (greedy CTC: best class per step, runs
    merged, blanks dropped)."""
    best = probs.argmax(axis=1)
    reads = []
    start = 0
    for step in range(1, len(best) + 1):
        if step < len(best) and best[step] == best[start]:
            continue
        if best[start] != BLANK:
            run = probs[start:step, best[start]]
            peak = start + int(run.argmax())
            top3 = np.argsort(probs[peak, :BLANK])[::-1][:3]
            reads.append(Read(int(best[start]), float(run.max()), [(int(d), float(probs[peak, d])) for d in top3],
                              (start * STRIDE, step * STRIDE)))
        start = step
    return reads


class LineReader(Protocol):
    def read(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        """(HEIGHT, width) float32 line images, width one of WIDTHS -> per line (width / STRIDE, CLASSES) chances."""
        ...


def load_reader(model_path: str | Path, backend: str = "litert") -> LineReader:
    """The line reader at `model_path` on `backend`."""
    path = model_file(model_path, backend)
    return LiteRTReader(path) if backend == "litert" else KerasReader(path)


class LiteRTReader:
    def __init__(self, model_path: str | Path) -> None:
        flatbuffer = litert_model(model_path)
        self._runs = {width: LiteRTRun(flatbuffer, (1, HEIGHT, width, 1)) for width in WIDTHS}
        self._lock = threading.Lock()
        self.read([np.zeros((HEIGHT, width), np.float32) for width in WIDTHS])  # warm before the first user

    def read(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return [self._runs[line.shape[1]](_checked(line)[None, :, :, None])[0, 0] for line in lines]


class KerasReader:
    def __init__(self, model_path: str | Path) -> None:
        self._run = keras_function(model_path, (HEIGHT, None, 1))
        self._lock = threading.Lock()
        self.read([np.zeros((HEIGHT, WIDTHS[0]), np.float32)])  # trace before the first user

    def read(self, lines: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return [self._run(_checked(line)[None, :, :, None])[0, 0] for line in lines]


def _checked(line: np.ndarray) -> np.ndarray:
    if line.ndim != 2 or line.shape[0] != HEIGHT or line.shape[1] not in WIDTHS:
        raise ValueError(f"a line must be ({HEIGHT}, one of {WIDTHS}), not {line.shape}")
    return np.ascontiguousarray(line, np.float32)
