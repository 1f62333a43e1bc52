"""Digit candidates -> lines: the candidates side by side in one row, and each line's ink as the line reader's input.

A line is read whole by the line reader (reader.py), so digits that touch or that fell apart need no cuts: its
input is the ink of the row, scaled to a fixed height, whatever the rules made of it. Only ink that lies mostly
inside the row's box is taken (a neighbouring row's strokes that reach into it stay out).

Pure NumPy/OpenCV, no state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .segment import Candidate

HEIGHT = 32  # the reader's input rows
INK_ROWS = 24  # a line's box is scaled to this many of them, centred
MARGIN = 4  # input columns left free before and after the ink
WIDTHS = (64, 128, 256)  # the input widths the reader runs at: a line takes the narrowest it fits
STRIDE = 4  # input columns per output step of the reader
SAME_ROW = 0.5  # a candidate joins a line when their heights overlap by this share of the smaller one
PAD = 0.1  # of the line's height: ink this near the box is looked at too (a flag that segment left out)
INSIDE = 0.5  # a shape of the ink is the line's when this share of it lies in the line's box


@dataclass
class Line:
    box: tuple[int, int, int, int]  # (x, y, w, h) in working-image pixels: its candidates' boxes together
    members: list[int]  # indices of its candidates, left to right
    image: np.ndarray  # (HEIGHT, width) float32 in [0, 1], ink 1: the reader's input
    scale: float  # input pixels per working pixel
    origin: tuple[float, float]  # the input's (0, 0) in working-image pixels


def find_lines(candidates: list[Candidate], mask: np.ndarray) -> list[Line]:
    """The candidates grouped in rows, top row first, each with its input image cut from `mask` (0/1 ink)."""
    rows: list[list[int]] = []
    for i in sorted(range(len(candidates)), key=lambda i: candidates[i].box[0]):
        row = next((row for row in rows if _same_row(_union([candidates[j].box for j in row]), candidates[i].box)),
                   None)
        if row is None:
            rows.append([i])
        else:
            row.append(i)
    lines = [_line(mask, _union([candidates[j].box for j in row]), row) for row in rows]
    return sorted(lines, key=lambda line: line.box[1])


def to_working(line: Line, x0: float, x1: float) -> tuple[float, float]:
    """Input columns [x0, x1) of `line` -> working-image columns."""
    return line.origin[0] + x0 / line.scale, line.origin[0] + x1 / line.scale


def _line(mask: np.ndarray, box: tuple[int, int, int, int], members: list[int]) -> Line:
    x, y, w, h = box
    pad = max(1, round(PAD * h))
    top, left = max(0, y - pad), max(0, x - pad)
    region = mask[top : y + h + pad, left : x + w + pad]
    ink = _inside_ink(region, (x - left, y - top, w, h))
    scale = INK_ROWS / h
    if w * scale + 2 * MARGIN > WIDTHS[-1]:
        scale = (WIDTHS[-1] - 2 * MARGIN) / w
    width = next(side for side in WIDTHS if w * scale + 2 * MARGIN <= side)
    origin = (x - MARGIN / scale, y + h / 2 - HEIGHT / 2 / scale)
    # Where the region lands on the input, then the region shrunk or grown to it (areas averaged when shrunk,
    # so that a big digit's strokes stay as dark as their share of the pixels).
    size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    grown = cv2.resize(ink, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    image = np.zeros((HEIGHT, width), np.float32)
    dx, dy = round((left - origin[0]) * scale), round((top - origin[1]) * scale)
    src = grown[max(0, -dy) : HEIGHT - dy, max(0, -dx) : width - dx]
    image[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return Line(box, members, image, scale, origin)


def _inside_ink(region: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The shapes of `region`'s ink that lie mostly inside `box` (region pixels), as float32 0/1."""
    count, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    x, y, w, h = box
    total = np.bincount(labels.ravel(), minlength=count)
    inside = np.bincount(labels[y : y + h, x : x + w].ravel(), minlength=count)
    keep = inside >= INSIDE * total
    keep[0] = False
    return keep[labels].astype(np.float32)


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def _same_row(line: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
    overlap = min(line[1] + line[3], box[1] + box[3]) - max(line[1], box[1])
    return overlap >= SAME_ROW * min(line[3], box[3])
