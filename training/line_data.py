"""Training lines for the line reader: photo-like scenes put through the engine's own preprocessing, so that the
reader learns from the very inputs it will get, and the digits on each line.

    line_examples(pools, n, seed) -> [(input image (32, width) float32, the digits on it), ...]
    line_examples(pools, n, seed, inkmap=path)   the same from the rows of the ink map (engine v3)
    save(examples, path) / load(path) -> the same examples, kept in an .npz file between runs

A scene is drawn by `training.categories.draw` with one axis of its look fixed at random (or none, as training's
scenes are), from training digits only; a share of them has no digit at all. Each scene is sent as a JPEG,
decoded and preprocessed by the engine; each line it finds is labelled with the digits whose centres lie in it,
left to right (a line of shadow, page edge or speck gets none: the reader learns to read nothing there).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from server.engine.decode import decode
from server.engine.inkmap import InkMap, load_inkmap
from server.engine.lines import HEIGHT, INK_ROWS, MARGIN, WIDTHS
from server.engine.preprocess import preprocess
from server.engine.rows import map_rows
from training.categories import AXES, Pool, draw
from training.scenes import blank_scene, encode_jpeg

BLANK_SHARE = 0.08
# Small frames only: drawing a scene takes 25 ms at 320x240 and 660 ms at 1600x1200, and the reader's input is
# scaled to the line's height anyway; digits still come 10 px to 200 px tall.
FRAMES = {(240, 320): 0.5, (480, 640): 0.4, (640, 480): 0.1}
MIX_SHARE = 0.3  # scenes with no axis fixed; the rest fix one of AXES' values, every value alike
CHUNK = 250
# The ink map's rows as rows.map_rows finds them: 2 since it maps an overview first, 3 since thin strokes are
# thickened, 4 since DETAIL is 16, 5 since small rows are looked at closer. Cached rows of another recipe are not
# used again.
ROWS_RECIPE = 5

Example = tuple[np.ndarray, str]


def line_examples(pools: list[Pool], n: int, seed: int, workers: int = 2, inkmap: str = "") -> list[Example]:
    """The lines of `n` scenes, the same for the same seed, made in `workers` processes: the rules' lines, or with
    `inkmap` (a path), the rows of that ink map."""
    chunks = [(pools, seed, start, min(n, start + CHUNK), inkmap) for start in range(0, n, CHUNK)]
    with ProcessPoolExecutor(workers) as pool:
        return [example for part in pool.map(_chunk, chunks) for example in part]


def _chunk(args: tuple[list[Pool], int, int, int, str]) -> list[Example]:
    pools, seed, start, stop, inkmap = args
    ink_map = _load_inkmap(inkmap) if inkmap else None
    return [example for k in range(start, stop)
            for example in scene_lines(pools, np.random.default_rng([seed, k]), ink_map)]


@cache
def _load_inkmap(path: str) -> InkMap:
    return load_inkmap(path)  # once per worker process


def scene_lines(pools: list[Pool], rng: np.random.Generator, ink_map: InkMap | None = None) -> list[Example]:
    """One scene's lines as the engine finds them (the rules' lines, or with `ink_map` the map's rows), each with
    the digits on it."""
    values = [(axis, value) for axis in AXES for value in AXES[axis]]
    if rng.random() < BLANK_SHARE:
        image, boxes, labels = blank_scene(rng, *list(FRAMES)[rng.choice(len(FRAMES), p=list(FRAMES.values()))]), [], []
    else:
        axis, value = values[rng.integers(len(values))] if rng.random() >= MIX_SHARE else (None, None)
        drawn, labels = draw(pools, rng, axis, value, FRAMES)
        image, boxes = drawn.image, drawn.boxes
    decoded = decode(encode_jpeg(image, int(rng.integers(70, 96))))
    if ink_map is None:
        lines, scale = preprocess(decoded.gray, decoded.brightest).lines, decoded.gray.shape[1] / image.shape[1]
    else:  # rows are found in map pixels
        mapped = map_rows(decoded.gray, ink_map)
        lines, scale = mapped.rows, decoded.gray.shape[1] / image.shape[1] / mapped.pixel
    centres = [((x + w / 2) * scale, (y + h / 2) * scale, label)
               for (x, y, w, h), label in zip(boxes, labels, strict=True) if w > 0]
    examples = []
    for line in lines:
        x, y, w, h = line.box
        on_it = sorted((cx, str(label)) for cx, cy, label in centres if x <= cx < x + w and y <= cy < y + h)
        examples.append((line.image, "".join(label for _, label in on_it)))
    return examples


def joined(examples: list[Example], n: int, seed: int, max_digits: int) -> list[Example]:
    """`n` longer rows, each two to four of `examples` side by side: the scenes hold few rows of five digits or
    more (about 2%), long numbers many. Each row's ink is taken as the engine cut it, the rows set from touching
    to a digit's width apart (the engine cuts rows only where a gap is wider than the row is tall), and the whole
    shrunk to the widest input where it is too long, as the engine shrinks a long row."""
    rng = np.random.default_rng(seed)
    made = []
    while len(made) < n:
        parts = [examples[i] for i in rng.choice(len(examples), rng.integers(2, 5), replace=False)]
        label = "".join(part_label for _, part_label in parts)
        inks = [_ink_columns(image) for image, _ in parts]
        if len(label) > max_digits or any(ink.shape[1] == 0 for ink in inks):
            continue
        row = inks[0]
        for ink in inks[1:]:
            gap = int(rng.integers(-2, INK_ROWS // 2))
            if gap >= 0:
                row = np.concatenate([row, np.zeros((HEIGHT, gap), np.float32), ink], axis=1)
            else:  # the two touch: their ink overlaps by -gap columns
                joint = np.maximum(row[:, gap:], ink[:, :-gap])
                row = np.concatenate([row[:, :gap], joint, ink[:, -gap:]], axis=1)
        made.append((_input(row), label))
    return made


def _ink_columns(image: np.ndarray) -> np.ndarray:
    columns = np.flatnonzero(image.max(axis=0) > 0.1)
    return image[:, columns[0] : columns[-1] + 1] if len(columns) else image[:, :0]


def _input(row: np.ndarray) -> np.ndarray:
    """A row of ink (HEIGHT tall, centred) as the reader's input: in the narrowest width it fits, with MARGIN
    columns free on both sides, shrunk to fit the widest."""
    width = next((side for side in WIDTHS if row.shape[1] + 2 * MARGIN <= side), WIDTHS[-1])
    if row.shape[1] + 2 * MARGIN > width:
        scale = (width - 2 * MARGIN) / row.shape[1]
        small = cv2.resize(row, (width - 2 * MARGIN, max(1, round(HEIGHT * scale))), interpolation=cv2.INTER_AREA)
        row = np.zeros((HEIGHT, small.shape[1]), np.float32)
        top = (HEIGHT - small.shape[0]) // 2
        row[top : top + small.shape[0]] = small
    image = np.zeros((HEIGHT, width), np.float32)
    image[:, MARGIN : MARGIN + row.shape[1]] = row
    return image


def save(examples: list[Example], path: Path) -> None:
    """The examples as one .npz: images padded to the widest input, their widths, their labels."""
    images = np.zeros((len(examples), HEIGHT, WIDTHS[-1]), np.uint8)
    for i, (image, _) in enumerate(examples):
        images[i, :, : image.shape[1]] = np.round(image * 255)
    widths = np.array([image.shape[1] for image, _ in examples], np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images, widths=widths, labels=np.array([label for _, label in examples]))


def load(path: Path) -> list[Example]:
    with np.load(path) as data:
        return [(image[:, :width].astype(np.float32) / 255, str(label))
                for image, width, label in zip(data["images"], data["widths"], data["labels"], strict=True)]
