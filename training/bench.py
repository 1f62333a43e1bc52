"""Per-digit inference time of a saved model on ONE CPU core, at batch 1 and batch 32, as the server runs it.

    python -m training.bench model/digits.tflite [--json]

Loads the model through `server.engine.load_classifier` (LiteRT, XNNPACK on one thread, a .keras file converted
first; or `--backend keras`), warms it up, then reports the median of many calls (crops in, probabilities out).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from server.engine import BACKENDS, Classifier, load_classifier


def measure(classifier: Classifier, batch: int, repeats: int = 300) -> float:
    """Median milliseconds for one call on `batch` images."""
    x = np.random.default_rng(0).random((batch, 28, 28, 1), dtype=np.float32)
    for _ in range(30):
        classifier.classify(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        classifier.classify(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--backend", default="litert", choices=BACKENDS, help="what runs the model")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    classifier = load_classifier(args.model, args.backend)
    b1, b32 = measure(classifier, 1), measure(classifier, 32)
    figures = {
        "ms_batch1": round(b1, 3),
        "ms_batch32": round(b32, 3),
        "ms_per_digit_batch1": round(b1, 3),
        "ms_per_digit_batch32": round(b32 / 32, 4),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
