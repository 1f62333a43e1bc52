"""How the engine's Keras networks run: `litert` (the default) or `keras`.

Training saves each network as a `.keras` model and its LiteRT (TensorFlow Lite) conversion beside it.

- `litert` runs the conversion: XNNPACK on one core with no per-call overhead to speak of, and the server
  process needs no TensorFlow (about 120 MB of RSS after start-up instead of 750). A `.keras` path is converted
  on load, so a model fresh from training can be served or evaluated as it is.
- `keras` runs the `.keras` model itself through one compiled function: the reference the conversion is checked
  against, and the way to serve a model that LiteRT cannot run. It needs TensorFlow (requirements.txt) and pays
  about 0.25 ms a call.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ai_edge_litert.interpreter import Interpreter

if TYPE_CHECKING:
    import keras

BACKENDS = ("litert", "keras")


def model_file(model_path: str | Path, backend: str) -> Path:
    """The file `backend` loads for `model_path`: `keras` takes the `.keras` file beside a `.tflite` path."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return Path(model_path).with_suffix(".keras") if backend == "keras" else Path(model_path)


def litert_model(model_path: str | Path) -> bytes:
    """The LiteRT flatbuffer of a `.tflite` file, or of a `.keras` file converted."""
    path = Path(model_path)
    return path.read_bytes() if path.suffix == ".tflite" else to_litert(path)


class LiteRTRun:
    """A LiteRT graph at one fixed input shape, on one thread, its buffers planned once."""

    def __init__(self, flatbuffer: bytes, shape: tuple[int, ...]) -> None:
        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.interpreter.resize_tensor_input(self.input, shape, strict=False)
        self.interpreter.allocate_tensors()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


def keras_function(model_path: str | Path, input_shape: tuple[int | None, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """The `.keras` model as one compiled function of (n, *input_shape) float32 arrays (None: any size), traced
    once for every batch size and shape: a new one must not retrace (and recompile) on a user's frame."""
    keras, tf = tensorflow("the keras backend")
    try:  # one core, as LiteRT runs: the server's preparing threads need the others
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow has run in this process already (training, a conversion)
        pass
    model = keras.saving.load_model(model_path, compile=False)
    run = tf.function(lambda x: model(x, training=False),
                      input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
    return lambda x: run(x).numpy()


def to_litert(model_or_path: keras.Model | str | Path) -> bytes:
    """A Keras model (or its `.keras` file) as a LiteRT flatbuffer; training writes this beside the model."""
    keras, tf = tensorflow("converting a .keras model")
    model = model_or_path
    if not isinstance(model, keras.Model):
        model = keras.saving.load_model(model, compile=False)
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, verbose=False)  # quietly: stdout is the CLI's
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        # Weights stored as float16: half the bytes under the models' 5 MB, and XNNPACK unpacks them once at load,
        # so a call is as fast and its outputs within 1e-4 of float32's.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def save_keras(model: keras.Model, path: str | Path) -> None:
    """`model.save(path)`, deflated: Keras writes its .keras zip uncompressed, and deflating makes the committed
    files a third to a half smaller (they load alike: the zip says how each file was stored)."""
    model.save(path)
    with zipfile.ZipFile(path) as saved:
        files = [(info.filename, saved.read(info)) for info in saved.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as deflated:
        for name, data in files:
            deflated.writestr(name, data)


def tensorflow(purpose: str):  # noqa: ANN201 (the modules themselves)
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
