"""The trained CNN, loaded once: (n, 28, 28, 1) crops -> (n, 11) probabilities, through one of two backends.

Training saves the Keras model (`model/digits.keras`) and its LiteRT (TensorFlow Lite) conversion
(`model/digits.tflite`) beside it.

- `litert` (the default) runs the conversion: XNNPACK on one core with no per-call overhead to speak of, and
  the server process needs no TensorFlow (about 120 MB of RSS after start-up instead of 750). A `.keras` path
  is converted on load, so a model fresh from training can be served or evaluated as it is.
- `keras` runs the `.keras` model itself through one compiled function: the reference the conversion is
  checked against, and the way to serve a model that LiteRT cannot run. It needs TensorFlow
  (requirements.txt) and pays about 0.25 ms a call.

Both are thread-safe (calls are serialised); the server makes all of them from its one inference thread anyway.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from ai_edge_litert.interpreter import Interpreter

if TYPE_CHECKING:
    import keras

NOT_A_DIGIT = 10
CLASSES = 11
INPUT_SHAPE = (28, 28, 1)
BACKENDS = ("litert", "keras")
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


def model_file(model_path: str | Path, backend: str) -> Path:
    """The file `backend` loads for `model_path`: `keras` takes the `.keras` file beside a `.tflite` path."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return Path(model_path).with_suffix(".keras") if backend == "keras" else Path(model_path)


class LiteRTClassifier:
    def __init__(self, model_path: str | Path) -> None:
        path = Path(model_path)
        flatbuffer = path.read_bytes() if path.suffix == ".tflite" else to_litert(path)
        self._runs = {size: _Run(flatbuffer, size) for size in SIZES}
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


class KerasClassifier:
    def __init__(self, model_path: str | Path) -> None:
        keras, tf = _tensorflow("the keras backend")
        try:  # one core, as LiteRT runs: the server's preparing threads need the others
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow has run in this process already (training, a conversion)
            pass
        model = keras.saving.load_model(model_path, compile=False)
        # One trace for every batch size: a new shape must not retrace (and recompile) on a user's frame.
        self._run = tf.function(lambda x: model(x, training=False),
                                input_signature=[tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)])
        self._lock = threading.Lock()
        self.classify(np.zeros((1, *INPUT_SHAPE), np.float32))  # trace before the first user

    def classify(self, crops: np.ndarray) -> np.ndarray:
        crops = _checked(crops)
        with self._lock:
            return self._run(crops).numpy()


def _checked(crops: np.ndarray) -> np.ndarray:
    crops = np.ascontiguousarray(crops, np.float32)
    if crops.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"crops must be (n, 28, 28, 1), not {crops.shape}")
    return crops


def to_litert(model_or_path: keras.Model | str | Path) -> bytes:
    """A Keras model (or its `.keras` file) as a LiteRT flatbuffer; training writes this beside the model."""
    keras, tf = _tensorflow("converting a .keras model")
    model = model_or_path
    if not isinstance(model, keras.Model):
        model = keras.saving.load_model(model, compile=False)
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, verbose=False)  # quietly: stdout is the CLI's
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


def _tensorflow(purpose: str):  # noqa: ANN202 (the modules themselves)
    """Keras and TensorFlow, imported only here: `make run` installs the serving packages, without them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for users
    try:
        import keras
        import tensorflow as tf
    except ImportError as missing:
        raise RuntimeError(
            f"{purpose} needs TensorFlow: use the litert backend with the .tflite, or pip install -r requirements.txt"
        ) from missing
    return keras, tf
