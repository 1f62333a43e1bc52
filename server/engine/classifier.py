"""The trained CNN, loaded once: (n, 28, 28, 1) crops -> (n, 11) probabilities, on either backend (backends.py).

Both are thread-safe (calls are serialised); the server makes all of them from its one inference thread anyway.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from .backends import LiteRTRun, keras_function, litert_model, model_file

NOT_A_DIGIT = 10
CLASSES = 11
INPUT_SHAPE = (28, 28, 1)
# One interpreter per batch size, each with its buffers planned once; a batch of n runs as the binary
# decomposition of n (13 = 8 + 4 + 1), so no call pads and none re-plans.
SIZES = (64, 32, 16, 8, 4, 2, 1)


class Classifier(Protocol):
    def classify(self, crops: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 in [0, 1] -> (n, 11) softmax probabilities; class 10 = not a digit."""
        ...


def load_classifier(model_path: str | Path, backend: str = "litert") -> Classifier:
    """The model at `model_path` on `backend`."""
    path = model_file(model_path, backend)
    return LiteRTClassifier(path) if backend == "litert" else KerasClassifier(path)


class LiteRTClassifier:
    def __init__(self, model_path: str | Path) -> None:
        flatbuffer = litert_model(model_path)
        self._runs = {size: LiteRTRun(flatbuffer, (size, *INPUT_SHAPE)) for size in SIZES}
        self._lock = threading.Lock()
        self.classify(np.zeros((sum(SIZES), *INPUT_SHAPE), np.float32))  # warm every size before the first user

    def classify(self, crops: np.ndarray) -> np.ndarray:
        crops = _checked(crops)
        out = np.empty((len(crops), CLASSES), np.float32)
        start = 0
        with self._lock:
            while start < len(crops):
                size = next(s for s in SIZES if s <= len(crops) - start)
                out[start : start + size] = self._runs[size](crops[start : start + size])
                start += size
        return out


class KerasClassifier:
    def __init__(self, model_path: str | Path) -> None:
        self._run = keras_function(model_path, INPUT_SHAPE)
        self._lock = threading.Lock()
        self.classify(np.zeros((1, *INPUT_SHAPE), np.float32))  # trace before the first user

    def classify(self, crops: np.ndarray) -> np.ndarray:
        crops = _checked(crops)
        with self._lock:
            return self._run(crops)


def _checked(crops: np.ndarray) -> np.ndarray:
    crops = np.ascontiguousarray(crops, np.float32)
    if crops.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"crops must be (n, 28, 28, 1), not {crops.shape}")
    return crops
