"""The ink map -> rows of digits, by plain geometry, each cut out as the line reader's input.

The map's shapes (its chances at 0.5, 8-connected) are grouped into rows, tallest first: a shape joins a row when
their heights overlap by half the smaller one, or when it lies right by the row (a piece of a stroke the map broke,
a 5's flag that the pen left apart), and a row is cut where the gap between its shapes is wider than the row is
tall. Every length is measured in the row's own height, so a row of 8 px digits and one filling the frame are found
alike; a shape cut by the frame's edge is a shape like any other. What is read is the map itself, shrunk or grown
to the reader's height, thin strokes thickened: the reader learns on the very maps it reads, whatever the paper,
light and pen were.

The map is drawn first on the picture shrunk to an overview (`map_rows`): its view of a few dozen pixels then spans
a bold digit that fills a photo, whose long straight strokes it would otherwise take for a page's edges or ruled
lines. Where the overview holds no row tall enough to read, the picture is mapped again at its working size, for
small digits; and a row still only a few map pixels tall there is found again on a tile of the picture around it,
enlarged (`_closer`): at half resolution a small digit's strokes are a map pixel wide, and its row a blur. No state
besides the map's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import cv2
import numpy as np

from .crops import stroke_width
from .inkmap import SCALE, InkMap
from .lines import HEIGHT, INK_ROWS, MARGIN, WIDTHS, Line

SAME_ROW = 0.5  # a shape joins a row when their heights overlap by this share of the smaller one
NEAR = 0.25  # ... or when it lies this near the row's box (of the taller's height), in any direction
MAX_GAP = 1.0  # a row is cut where its shapes stand further apart than this many times its height
MIN_HEIGHT = 4  # map pixels (8 px of the picture): a shorter row is a speck, not a digit anyone could read
MIN_AREA = 3  # map pixels: a smaller shape is not looked at
MAX_ROWS = 12  # a ten-digit number written with wide gaps is ten rows
# A row no wider than this many times its height may be one digit: where the reader reads one digit there, the
# classifier reads the row too (assemble.py).
ONE_DIGIT = 1.3
STROKE = 3.0  # the reader's thinnest strokes, in input pixels: MNIST's 2.5 in 20, at INK_ROWS
# The overview's long side (px), and the height in map pixels (16: 32 px of the overview) that some row there must
# reach, else the picture is mapped again at its working size. Chosen on the held-out validation scenes and
# photos-extra (docs/experiments.md).
OVERVIEW = 320
DETAIL = 16
# A row shorter than CLOSER map pixels at the working size (small digits, 8-24 px tall) is found again on the
# picture around it enlarged, MAX_ZOOM times at most, to DETAIL map pixels: at half resolution a small digit's
# strokes are a map pixel wide.
CLOSER = 12
MAX_ZOOM = 4
TILE = (128, 384)  # (height, width) px: every closer look has this one input shape, so LiteRT plans it once


@dataclass
class MappedRows:
    rows: list[Line]  # boxes and origins in map pixels
    chances: np.ndarray  # the map they were found on
    pixel: float  # the working image's pixels per map pixel


def map_rows(gray: np.ndarray, ink_map: InkMap) -> MappedRows:
    """The picture's rows of digits on its ink map: first on the overview, and at the working size where the
    overview finds no row tall enough (small digits in a big picture)."""
    shrink = OVERVIEW / max(gray.shape)
    if shrink < 1:
        small = cv2.resize(gray, (max(1, round(gray.shape[1] * shrink)), max(1, round(gray.shape[0] * shrink))),
                           interpolation=cv2.INTER_AREA)
        chances = ink_map(small)
        rows = find_rows(chances)
        if any(row.box[3] >= DETAIL for row in rows):
            return MappedRows(rows, chances, SCALE * gray.shape[1] / small.shape[1])
    chances = ink_map(gray)
    rows = find_rows(chances)
    small = [row for row in rows if row.box[3] < CLOSER]
    if small:
        rows = _biggest([row for row in rows if row.box[3] >= CLOSER] + _closer(gray, ink_map, small))
    return MappedRows(rows, chances, float(SCALE))


def _closer(gray: np.ndarray, ink_map: InkMap, small: list[Line]) -> list[Line]:
    """The rows found again where small rows were, on a TILE of the picture around them enlarged so that they come
    out DETAIL map pixels tall; boxes and origins in the working size's map pixels, as the other rows'."""
    found = []
    for (x, y, w, h), height in _merged([_around(row.box, gray.shape) for row in small]):
        zoom = min(MAX_ZOOM, DETAIL / height, TILE[1] / w, TILE[0] / h)
        if zoom <= 1:
            continue
        # The tile's (0, 0) in the picture: the region in its middle, the tile inside the picture where it can be.
        left = float(np.clip(x + w / 2 - TILE[1] / zoom / 2, 0, max(0, gray.shape[1] - TILE[1] / zoom)))
        top = float(np.clip(y + h / 2 - TILE[0] / zoom / 2, 0, max(0, gray.shape[0] - TILE[0] / zoom)))
        enlarge = np.float32([[zoom, 0, -left * zoom], [0, zoom, -top * zoom]])
        tile = cv2.warpAffine(gray, enlarge, TILE[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        for row in find_rows(ink_map(tile)):
            bx, by, bw, bh = row.box
            box = (round(left / SCALE + bx / zoom), round(top / SCALE + by / zoom), max(1, round(bw / zoom)),
                   max(1, round(bh / zoom)))
            # Only the small rows again, not a piece of a taller row that the tile cut.
            if any(_inside(box, _centre(other.box)) or _inside(other.box, _centre(box)) for other in small):
                found.append(Line(box, row.members, row.image, row.scale * zoom,
                                  (left / SCALE + row.origin[0] / zoom, top / SCALE + row.origin[1] / zoom)))
    return found


def _centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def _inside(box: tuple[int, int, int, int], point: tuple[float, float]) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def _around(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int], int]:
    """A small row's box in map pixels -> the part of the picture around it (its height on every side), in the
    picture's pixels, and the row's height."""
    x, y, w, h = box
    x0, y0 = max(0, (x - h) * SCALE), max(0, (y - h) * SCALE)
    x1, y1 = min(shape[1], (x + w + h) * SCALE), min(shape[0], (y + 2 * h) * SCALE)
    return (x0, y0, x1 - x0, y1 - y0), h


def _merged(regions: list[tuple[tuple[int, int, int, int], int]]) -> list[tuple[tuple[int, int, int, int], int]]:
    """Regions that overlap made one (with the taller row's height), until none overlap: a row is found once."""
    regions = list(regions)
    while True:
        pair = next(((i, j) for i, j in combinations(range(len(regions)), 2)
                     if _overlap(regions[i][0], regions[j][0])), None)
        if pair is None:
            return regions
        (a, ha), (b, hb) = regions[pair[0]], regions[pair[1]]
        x0, y0 = min(a[0], b[0]), min(a[1], b[1])
        x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
        regions = [r for k, r in enumerate(regions) if k not in pair] + [((x0, y0, x1 - x0, y1 - y0), max(ha, hb))]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def find_rows(chances: np.ndarray) -> list[Line]:
    """The map's rows of digits, top row first, each as the line reader's input; boxes and origins in map pixels."""
    ink = (chances >= 0.5).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(ink, 8, cv2.CV_32S, cv2.CCL_GRANA)
    shapes = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= MIN_AREA]
    rows: list[list[int]] = []
    for i in sorted(shapes, key=lambda i: -stats[i, cv2.CC_STAT_HEIGHT]):  # the tallest shapes make the rows
        row = next((row for row in rows if _same_row(_box(stats, row), _box(stats, [i]))), None)
        if row is None:
            rows.append([i])
        else:
            row.append(i)
    pieces = [piece for row in rows for piece in _cut(stats, row)]
    boxes = [_box(stats, piece) for piece in pieces]
    kept = [(box, piece) for box, piece in zip(boxes, pieces, strict=True) if box[3] >= MIN_HEIGHT]
    kept = sorted(kept, key=lambda row: -row[0][3] * row[0][2])[:MAX_ROWS]  # the biggest, when there are many
    return _biggest([_line(chances, labels, box, piece) for box, piece in kept])


def _biggest(lines: list[Line]) -> list[Line]:
    """The MAX_ROWS biggest rows, when there are more, top row first."""
    lines = sorted(lines, key=lambda line: -line.box[3] * line.box[2])[:MAX_ROWS]
    return sorted(lines, key=lambda line: (line.box[1], line.box[0]))


def _cut(stats: np.ndarray, row: list[int]) -> list[list[int]]:
    """A row's shapes, left to right, cut where a gap is wider than MAX_GAP times the row's height."""
    height = _box(stats, row)[3]
    ordered = sorted(row, key=lambda i: stats[i, cv2.CC_STAT_LEFT])
    pieces, right = [[ordered[0]]], _right(stats, ordered[0])
    for i in ordered[1:]:
        if stats[i, cv2.CC_STAT_LEFT] - right > MAX_GAP * height:
            pieces.append([i])
        else:
            pieces[-1].append(i)
        right = max(right, _right(stats, i))
    return pieces


def _line(chances: np.ndarray, labels: np.ndarray, box: tuple[int, int, int, int], members: list[int]) -> Line:
    """The row's shapes (and only them) cut from the map and scaled to the reader's input: the row's height to
    INK_ROWS, or its width to the widest input. Strokes that would come out thinner than STROKE input pixels are
    thickened first: a pen line in a digit filling a photo would all but vanish when shrunk."""
    x, y, w, h = box
    inside = np.isin(labels[y : y + h, x : x + w], members)
    region = np.where(inside, chances[y : y + h, x : x + w], 0).astype(np.float32)
    scale = INK_ROWS / h
    if w * scale + 2 * MARGIN > WIDTHS[-1]:
        scale = (WIDTHS[-1] - 2 * MARGIN) / w
    grow = round((STROKE / scale - stroke_width(inside.view(np.uint8))) / 2)
    if grow >= 1:  # on every side, the row's edges too
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        region = cv2.dilate(np.pad(region, grow), kernel)
        x, y = x - grow, y - grow
    h, w = region.shape
    width = next((side for side in WIDTHS if w * scale + 2 * MARGIN <= side), WIDTHS[-1])
    size = (max(1, min(round(w * scale), width - 2 * MARGIN)), max(1, min(round(h * scale), HEIGHT)))
    grown = cv2.resize(region, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    image = np.zeros((HEIGHT, width), np.float32)
    top = (HEIGHT - size[1]) // 2
    image[top : top + size[1], MARGIN : MARGIN + size[0]] = grown
    return Line(box, members, image, scale, (x - MARGIN / scale, y - top / scale))


def _box(stats: np.ndarray, shapes: list[int]) -> tuple[int, int, int, int]:
    x0 = min(stats[i, cv2.CC_STAT_LEFT] for i in shapes)
    y0 = min(stats[i, cv2.CC_STAT_TOP] for i in shapes)
    x1 = max(_right(stats, i) for i in shapes)
    y1 = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in shapes)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _right(stats: np.ndarray, i: int) -> int:
    return int(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH])


def _same_row(row: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
    """Whether a shape joins a row: their heights overlap enough, or it lies right by the row's box, within NEAR of
    the taller's height (a piece of a stroke the map broke, a 5's flag or a 7's bar that the pen left apart)."""
    overlap = min(row[1] + row[3], box[1] + box[3]) - max(row[1], box[1])
    if overlap >= SAME_ROW * min(row[3], box[3]):
        return True
    across = max(row[0], box[0]) - min(row[0] + row[2], box[0] + box[2])  # the gap between them, < 0 if none
    return max(across, -overlap) <= NEAR * max(row[3], box[3])
