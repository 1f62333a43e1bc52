"""The trained CNN, loaded once: (n, 28, 28, 1) crops -> (n, 11) probabilities.

Training saves the Keras model (`model/digits.keras`) and its LiteRT (TensorFlow Lite) conversion
(`model/digits.tflite`), which the server loads: XNNPACK runs it on one core with no per-call overhead to speak
of, where a compiled tf.function pays about 0.25 ms a call, more than this network costs per digit, and the
server process needs no TensorFlow (about 120 MB of RSS after start-up instead of 750). A `.keras` path is
converted on load, so a model fresh from training can be served or evaluated as it is.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert.interpreter import Interpreter

NOT_A_DIGIT = 10
CLASSES = 11
INPUT_SHAPE = (28, 28, 1)
# One interpreter per batch size, each with its buffers planned once; a batch of n runs as the binary
# decomposition of n (13 = 8 + 4 + 1), so no call pads and none re-plans.
SIZES = (64, 32, 16, 8, 4, 2, 1)

if TYPE_CHECKING:
    import keras


class Classifier:
    """Thread-safe: calls are serialised (an interpreter runs one call at a time); the server makes all of
    them from its one inference thread anyway."""

    def __init__(self, model_path: str | Path) -> None:
        path = Path(model_path)
        flatbuffer = path.read_bytes() if path.suffix == ".tflite" else to_litert(path)
        self._runs = {size: _Run(flatbuffer, size) for size in SIZES}
        self._lock = threading.Lock()
        self.classify(np.zeros((sum(SIZES), *INPUT_SHAPE), np.float32))  # warm every size before the first user

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 in [0, 1] -> (n, 11) softmax probabilities; class 10 = not a digit."""
        crops = np.ascontiguousarray(crops, np.float32)
        if crops.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"crops must be (n, 28, 28, 1), not {crops.shape}")
        out = np.empty((len(crops), CLASSES), np.float32)
        start = 0
        with self._lock:
            while start < len(crops):
                size = next(s for s in SIZES if s <= len(crops) - start)
                out[start : start + size] = self._runs[size](crops[start : start + size])
                start += size
        return out


class _Run:
    """The graph at one fixed batch size, on one thread."""

    def __init__(self, flatbuffer: bytes, size: int) -> None:
        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.interpreter.resize_tensor_input(self.input, (size, *INPUT_SHAPE), strict=True)
        self.interpreter.allocate_tensors()

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input, crops)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


def to_litert(model_or_path: keras.Model | str | Path) -> bytes:
    """A Keras model (or its `.keras` file) as a LiteRT flatbuffer; training writes this beside the model.
    TensorFlow is imported here only: converting is the one thing that needs it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users
    try:
        import keras
        import tensorflow as tf
    except ImportError as missing:  # `make run` installs the serving packages only
        raise RuntimeError(
            "converting a .keras model needs TensorFlow: serve its .tflite, or pip install -r requirements.txt"
        ) from missing

    model = model_or_path
    if not isinstance(model, keras.Model):
        model = keras.saving.load_model(model, compile=False)
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, verbose=False)  # quietly: stdout is the CLI's
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()
