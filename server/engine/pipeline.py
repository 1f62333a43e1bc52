"""Many images at once: prepare each (in threads), classify every crop in ONE network call, read every line with
the line reader, assemble each.

The CLI, `make eval` and the training script's scene check use `recognize`; the server's batcher calls the
same three steps itself, so that it can prepare images as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

import numpy as np

from .assemble import assemble
from .classifier import CLASSES
from .decode import ImageError
from .inkmap import InkMap
from .prepare import Prepared, prepare

# (n, 28, 28, 1) crops -> (n, 11) probabilities: a Classifier's `classify` when serving, a Keras model in training.
Classify = Callable[[np.ndarray], np.ndarray]
# Line images -> per line its steps' chances: a LineReader's `read`.
ReadLines = Callable[[list[np.ndarray]], list[np.ndarray]]


def classify_batch(prepared: list[Prepared], classify: Classify) -> list[np.ndarray]:
    """Every crop of every image through the model in ONE call; the probabilities split back per image."""
    if not prepared:
        return []
    crops = np.concatenate([p.crops for p in prepared])
    probs = classify(crops) if len(crops) else np.zeros((0, CLASSES), np.float32)
    return np.split(probs, np.cumsum([len(p.crops) for p in prepared])[:-1])


def read_lines_batch(prepared: list[Prepared], read_lines: ReadLines | None) -> list[list[np.ndarray] | None]:
    """Every line of every image through the line reader; per image its lines' chances (None: no reader)."""
    if read_lines is None:
        return [None] * len(prepared)
    steps = iter(read_lines([line.image for p in prepared for line in p.lines]))
    return [[next(steps) for _ in p.lines] for p in prepared]


def recognize(
    datas: list[bytes],
    classify: Classify,
    max_pixels: int = 40_000_000,
    map_fn: Callable[..., Iterable] = map,
    read_lines: ReadLines | None = None,
    ink_map: InkMap | None = None,
) -> list[dict | ImageError]:
    """Prepare each image (finding its ink with `ink_map`, when given), classify every crop in one batch, read every
    line (with `read_lines`; without, the candidates alone are read), assemble each result (errors returned, not
    raised). Pass a thread pool's `map` as `map_fn` to prepare the images in parallel."""
    prepared = list(map_fn(partial(_prepare_or_error, max_pixels=max_pixels, ink_map=ink_map), datas))
    ready = [p for p in prepared if isinstance(p, Prepared)]
    probs: Iterator[np.ndarray] = iter(classify_batch(ready, classify))
    lines = iter(read_lines_batch(ready, read_lines))
    return [p if isinstance(p, ImageError) else assemble(p, next(probs), next(lines)) for p in prepared]


def _prepare_or_error(data: bytes, max_pixels: int, ink_map: InkMap | None) -> Prepared | ImageError:
    try:
        return prepare(data, max_pixels, ink_map)
    except ImageError as exc:
        return exc
