"""Per-digit inference time of a saved model on ONE CPU core, at batch 1 and batch 32.

    python -m training.bench model/digits.keras [--json]

Runs the model as a compiled tf.function (graph mode, no XLA) with one intra-op and one inter-op thread,
warms it up, then reports the median of many calls (including the copy of the result to numpy).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402


def measure(model: keras.Model, batch: int, repeats: int = 300) -> float:
    """Median milliseconds for one call on `batch` images."""
    fn = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32))
    for _ in range(30):
        fn(x).numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    model = keras.models.load_model(args.model, compile=False)
    b1, b32 = measure(model, 1), measure(model, 32)
    figures = {
        "ms_batch1": round(b1, 3),
        "ms_batch32": round(b32, 3),
        "ms_per_digit_batch1": round(b1, 3),
        "ms_per_digit_batch32": round(b32 / 32, 4),
        "params": int(model.count_params()),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
