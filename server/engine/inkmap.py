"""The ink map, loaded once: a grayscale picture -> for each 2x2 pixels the chance that they are a handwritten
digit's ink, and nothing else's (paper, ruled lines, shadows, glare, the table, clutter), on either backend.

    load_inkmap(path, backend)(gray) -> (ceil(h / 2), ceil(w / 2)) float32 in [0, 1]

The network is fully convolutional: a picture is padded to a multiple of MULTIPLE (its four halvings) and run at
its own size. LiteRT plans its buffers for one input shape, and an interpreter may serve one thread at a time, so
each thread keeps its own interpreters, one per padded shape it has seen (the few most recent). LiteRT releases the
GIL while it runs: the server's preparing threads run their maps side by side.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

from .backends import LiteRTRun, keras_function, litert_model, model_file

SCALE = 2  # the map has one value per SCALE x SCALE pixels of the picture
MULTIPLE = 32  # sides are padded to this: the network halves four times, and fewer shapes need fewer interpreters
SHAPES_PER_THREAD = 6  # a webcam sends one shape; photos come in a few


class InkMap(Protocol):
    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """(h, w) uint8 grayscale -> (ceil(h / SCALE), ceil(w / SCALE)) float32 chances of digit ink."""
        ...


def load_inkmap(model_path: str | Path, backend: str = "litert") -> InkMap:
    """The ink map at `model_path` on `backend`."""
    path = model_file(model_path, backend)
    return LiteRTInkMap(path) if backend == "litert" else KerasInkMap(path)


def padded(gray: np.ndarray) -> np.ndarray:
    """The network's input: (1, H, W, 1) float32 in [0, 1], the picture's edge pixels repeated up to MULTIPLE."""
    h, w = gray.shape
    pad = ((0, -h % MULTIPLE), (0, -w % MULTIPLE))
    return np.pad(gray, pad, mode="edge")[None, ..., None].astype(np.float32) * np.float32(1 / 255)


def _unpadded(out: np.ndarray, gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    return np.ascontiguousarray(out[0, : -(-h // SCALE), : -(-w // SCALE), 0])


class LiteRTInkMap:
    def __init__(self, model_path: str | Path) -> None:
        self._flatbuffer = litert_model(model_path)
        self._local = threading.local()
        self(np.zeros((240, 320), np.uint8))  # a webcam frame's interpreter, before the first user

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        x = padded(gray)
        return _unpadded(self._run(x.shape)(x), gray)

    def _run(self, shape: tuple[int, ...]) -> LiteRTRun:
        runs: OrderedDict = self._local.__dict__.setdefault("runs", OrderedDict())
        if shape not in runs:
            if len(runs) >= SHAPES_PER_THREAD:
                runs.popitem(last=False)
            runs[shape] = LiteRTRun(self._flatbuffer, shape)
        runs.move_to_end(shape)
        return runs[shape]


class KerasInkMap:
    def __init__(self, model_path: str | Path) -> None:
        self._run = keras_function(model_path, (None, None, 1))
        self._lock = threading.Lock()
        self(np.zeros((240, 320), np.uint8))  # trace before the first user

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        x = padded(gray)
        with self._lock:
            return _unpadded(self._run(x), gray)
