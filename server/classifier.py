"""The Keras CNN, loaded once and compiled for the CPU: (n, 28, 28, 1) crops -> (n, 11) probabilities.

The model is trained and saved with Keras (`model/digits.keras`, the one file the server loads). At load it is
converted in memory to a LiteRT (TensorFlow Lite) graph that XNNPACK runs on one core: TensorFlow's own
compiled tf.function pays about 0.25 ms of fixed cost per call, more than this whole network costs per digit.
"""

from __future__ import annotations

import os
import tempfile
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

NOT_A_DIGIT = 10
CLASSES = 11
INPUT_SHAPE = (28, 28, 1)
# One interpreter per batch size, each with its buffers planned once; a batch of n runs as the binary
# decomposition of n (13 = 8 + 4 + 1), so no call pads and none re-plans.
SIZES = (64, 32, 16, 8, 4, 2, 1)


class Classifier:
    """Thread-safe: calls are serialised (an interpreter runs one call at a time); the server makes all of
    them from its one inference thread anyway."""

    def __init__(self, model_path: str) -> None:
        self.model = keras.saving.load_model(model_path, compile=False)
        flatbuffer = _convert(self.model)
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


def _convert(model: keras.Model) -> bytes:
    """The Keras model as a LiteRT flatbuffer, by way of a SavedModel (exported quietly: stdout is the CLI's)."""
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


class _Run:
    """The converted graph at one fixed batch size, on one thread."""

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
