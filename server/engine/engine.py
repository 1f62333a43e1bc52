"""The engine as one object: its networks, loaded once from their paths, and the steps every caller takes.

    engine = Engine.from_config(config)        # the kind, model paths and backend a Config asks for
    engine = Engine.load("v3", model_path, reader_path, inkmap_path, backend)   # or given one by one
    engine.recognize(datas, map_fn=pool.map)   -> per image its result (or its ImageError)
    engine.prepare(data) / engine.infer(prepared)   the same in two steps: the server prepares in its threads,
                                                    and runs the networks for a whole batch on one other thread

Two kinds, side by side until v3 has shown it reads better everywhere:
- `rules`: the hand-written ink and segmentation rules find candidates, the classifier reads each one, the line
  reader reads each row of them where it is surer (preprocess.py, assemble.py);
- `v3`: the learned ink map finds the ink, rows are grouped by plain geometry, the line reader reads each row whole,
  and where it reads one digit, the classifier reads it again (inkmap.py, rows.py, assemble.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from .assemble import assemble
from .classifier import CLASSES, Classifier, load_classifier
from .decode import ImageError
from .inkmap import InkMap, load_inkmap
from .prepare import Prepared, prepare, prepare_rows
from .reader import LineReader, load_reader

KINDS = ("v3", "rules")
# (n, 28, 28, 1) crops -> (n, 11) probabilities: a Classifier's `classify` when serving, a Keras model in training.
Classify = Callable[[np.ndarray], np.ndarray]
# Line images -> per line its steps' chances: a LineReader's `read`.
ReadLines = Callable[[list[np.ndarray]], list[np.ndarray]]


class Settings(Protocol):
    """What the engine takes from the server's Config (the engine imports nothing from serving)."""

    engine: str
    model_path: str
    reader_path: str
    row_reader_path: str
    inkmap_path: str
    backend: str
    max_pixels: int


@dataclass(frozen=True)
class Engine:
    kind: str
    classifier: Classifier | None  # reads the rules' candidates, and v3's rows of one digit
    reader: LineReader | None  # None: the rules' candidates are read alone
    ink_map: InkMap | None  # v3's, or in the rules' place of their ink thresholds (a swap test)
    max_pixels: int = 40_000_000

    @classmethod
    def load(cls, kind: str, model_path: str, reader_path: str, inkmap_path: str, backend: str = "litert",
             max_pixels: int = 40_000_000) -> Engine:
        """The networks `kind` needs, from their paths ('' for none), on `backend`."""
        if kind not in KINDS:
            raise ValueError(f"unknown engine {kind!r}: choose one of {', '.join(KINDS)}")
        if kind == "v3" and not (reader_path and inkmap_path):
            raise ValueError("the v3 engine needs the ink map and the line reader")
        classifier = load_classifier(model_path, backend) if model_path else None
        reader = load_reader(reader_path, backend) if reader_path else None
        ink_map = load_inkmap(inkmap_path, backend) if inkmap_path else None
        return cls(kind, classifier, reader, ink_map, max_pixels)

    @classmethod
    def from_config(cls, config: Settings) -> Engine:
        """The engine a Config (server/config.py) asks for: its kind, model paths, backend and pixel limit."""
        if config.engine == "v3":
            return cls.load("v3", config.model_path, config.row_reader_path, config.inkmap_path, config.backend,
                            config.max_pixels)
        return cls.load("rules", config.model_path, config.reader_path, "", config.backend, config.max_pixels)

    def prepare(self, data: bytes) -> Prepared:
        """Decode one image and find what to read on it; raises ImageError for unreadable or oversized input."""
        if self.kind == "v3":
            return prepare_rows(data, self.ink_map, self.max_pixels)
        return prepare(data, self.max_pixels, self.ink_map)

    def infer(self, prepared: list[Prepared]) -> list[dict | Exception]:
        """The networks over a whole batch (every crop in one call, every line), then each image's result; an image
        whose networks or assembly fail gets its exception, the others their results."""
        try:
            outputs: list = list(zip(self._classify(prepared), self._read_lines(prepared), strict=True))
        except Exception:
            outputs = [self._infer_one(p) for p in prepared]  # one bad image must not sink the batch
        results: list[dict | Exception] = []
        for p, output in zip(prepared, outputs, strict=True):
            try:
                results.append(output if isinstance(output, Exception) else assemble(p, *output))
            except Exception as error:
                results.append(error)
        return results

    def recognize(self, datas: list[bytes], map_fn: Callable[..., Iterable] = map) -> list[dict | ImageError]:
        """Prepare each image (with a thread pool's `map` as `map_fn`, in parallel), run the networks over them all,
        assemble each result; unreadable images get their ImageError. Other failures are raised."""
        prepared = list(map_fn(partial(_prepare_or_error, self), datas))
        ready = [p for p in prepared if isinstance(p, Prepared)]
        results = iter(self.infer(ready))
        out: list[dict | ImageError] = []
        for p in prepared:
            result = p if isinstance(p, ImageError) else next(results)
            if isinstance(result, Exception) and not isinstance(result, ImageError):
                raise result
            out.append(result)
        return out

    def _classify(self, prepared: list[Prepared]) -> list[np.ndarray]:
        if self.classifier is None:
            return [np.zeros((0, CLASSES), np.float32) for _ in prepared]
        return classify_batch(prepared, self.classifier.classify)

    def _read_lines(self, prepared: list[Prepared]) -> list[list[np.ndarray] | None]:
        return read_lines_batch(prepared, self.reader.read if self.reader else None)

    def _infer_one(self, prepared: Prepared) -> tuple | Exception:
        try:
            return self._classify([prepared])[0], self._read_lines([prepared])[0]
        except Exception as error:
            return error


def _prepare_or_error(engine: Engine, data: bytes) -> Prepared | ImageError:
    try:
        return engine.prepare(data)
    except ImageError as error:
        return error


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
