"""Grayscale image -> MNIST-style digit crops: find the ink, find the digits, normalise each one.

Pure NumPy/OpenCV, no state: safe to call from many threads at once (OpenCV releases the GIL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, pairwise

import cv2
import numpy as np

from .decode import DARK_PICTURE

# Pictures are small and the server prepares several at once in its own threads: OpenCV's thread pool
# only adds hand-off cost here (measured: 1.24 -> 1.02 ms for a 320x240 frame).
cv2.setNumThreads(1)

MAX_CANDIDATES = 16
# A candidate wider than tall may be digits written into each other: it is also cut into 2, 3 or 4 parts (at most
# one part per half its height of width), and the engine keeps the reading the model is surest of (a wide "2"
# stays whole, a "07" written in one go splits). One digit is never more than SINGLE_ASPECT times as wide as tall
# (the widest of photos-dev's 644 digits: a "2", 1.8): a wider shape is read only in parts.
MAX_PARTS = 4
PART_ASPECT = 0.5
SINGLE_ASPECT = 2.0
# Cuts go where equal parts would meet, or at the thinnest columns: the MAX_CUT_POINTS lowest local minima of the
# ink per column, at least CUT_SPACING of the height apart (a "1" beside a "0" parts well off the middle).
MAX_CUT_POINTS = 5
CUT_SPACING = 0.2
# A big shape, this share of the picture's long side or more, is checked to stand out before strokes are grouped.
BIG_SHAPE = 0.2
RUNS_OUT_ASPECT = 6  # an upright shape this many times taller than wide that reaches the frame is a line, not a "1"
# Pixels of the working image: smaller shapes are specks, not digits anyone could read. No share of the picture:
# a 3% minimum lost every digit under 90 px of a 4000x3000 photo and kept out no blank scene (model card).
MIN_DIGIT_HEIGHT = 10
MAX_STROKE_DEPTH = 0.13  # light strokes on a dark screen: no point deeper inside them (fraction of the short side)
MAX_STROKE_SHARE = 0.3  # ... and they cover less than this share of it; the lit part of a shadowed page, more
MIN_SCREEN_RANGE = 8  # a screen's levels are spread only when its strokes are this much brighter than it
MIN_CONTRAST = 0.10  # ink must be at least this much darker than the paper around it (fraction)
MIN_PEAK_CONTRAST = 0.22  # ... and somewhere at least this dark, or it is grain, show-through or shadow
# The paper is estimated on a copy about this big (long side), by a closing this wide, then a box blur this
# wide; both are scaled to the copy's actual size.
PAPER_SIDE = 128
PAPER_KERNEL = 17
PAPER_BLUR = 9
BEYOND_PAPER = 0.7  # a paper estimate under this share of the brightest paper is a table or a deep shadow
MIN_STANDOUT = 0.20  # ink must be this much darker than the darkest paper right around it (fraction)
LOCAL_PAPER = 0.25  # ... or than the darkest ring pixel in a window about this wide (of the shape's size) around each
MIN_LOCAL_CONTRAST = 0.05  # ... ink pixel, and nine tenths of it this much: a shadow's rim joined to a digit is not
STANDOUT_PERCENTILE = 20  # a shadow's dark side fills about half the ring; glare in marker ink a few pixels
THICK_STROKE = 2.0  # strokes over this many times MNIST's width are thinned (a fat marker fills a 3's loops)
MNIST_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
MNIST_STROKE = 2.5  # typical MNIST stroke width, in pixels of the 28x28 image
FIT_SIDE = 80  # digits are brought to this size before their strokes are adjusted (cheap, still precise)
RULED_TILT = 15  # degrees: ruled lines and margins are looked for this far either side of level/upright
RULED_SPAN = 0.5  # ... and are ink over at least this share of the picture's width (or height)
RULED_SEARCH_WIDTH = 200  # the line search runs on a copy about this wide
MAX_RULED_LINES = 128  # the strongest lines only: a noisy picture can give a thousand, each costing 0.1 ms
RULED_MAX_DEPTH = 3  # ... and no deeper than this inside their ink (pixels): a ruled line is at most about 6 px thick
# A stroke cut by an erased band is joined across it by a closing this long, which fills gaps of up to 8 px: the
# band of a line up to 4 px thick lying within about 10 degrees of level. (Thicker or more tilted lines leave a gap.)
LINE_BRIDGE = 9


@dataclass
class Candidate:
    box: tuple[int, int, int, int]  # (x, y, w, h) in working-image pixels
    mask: np.ndarray  # uint8 0/1 ink of this digit only, cropped to box
    parts: list[Candidate] = field(default_factory=list)  # pieces cut from a wide shape, each once
    splits: list[tuple[int, ...]] = field(default_factory=list)  # ways to cut it: indices into parts, left to right
    single: bool = True  # narrow enough to be one digit


def dark_ink(gray: np.ndarray, brightest: np.ndarray | None = None) -> np.ndarray:
    """Invert a picture of light strokes on a dark screen or board so that ink is dark, its levels spread first
    (`_stretch`). `brightest`, a dark colour picture's brightest channel, is tried first: saturated strokes are
    light in it, not in gray.

    Mostly dark is not enough: a sheet of paper on a dark desk is mostly dark too, and so is a page mostly in
    shadow. Strokes are thin and few, so the light part is inverted only when no point of it lies far inside
    and it covers little of the picture (measured: strokes at most 0.11 of the picture's short side from their
    edge and 27% of it, sheets of paper 0.16 and more, the lit band of a shadowed page 36% and more).
    """
    for picture in (brightest, gray):
        if picture is not None and _light_strokes(picture):
            return 255 - _stretch(picture)
    return gray


def _stretch(picture: np.ndarray) -> np.ndarray:
    """Spread a dark screen's levels from its median (the screen) to its brightest strokes (the 3x3-blurred
    maximum) over 0-255: dim strokes on a screen are far brighter than the screen, but would be faint ink on the
    paper that inverting makes of it. At most 255 / MIN_SCREEN_RANGE times, or noise would pass as strokes."""
    low, high = round(_quantile(picture[::4, ::4].ravel(), 50)), int(cv2.blur(picture, (3, 3)).max())
    if high - low < MIN_SCREEN_RANGE:
        return picture
    return cv2.multiply(cv2.subtract(picture, low), 255 / (high - low))  # both saturate at 0 and 255


def _light_strokes(picture: np.ndarray) -> bool:
    """Whether a picture is mostly dark, with thin light strokes covering little of it (see `dark_ink`)."""
    small = np.ascontiguousarray(picture[::4, ::4])
    if _quantile(small.ravel(), 50) >= DARK_PICTURE:
        return False
    _, light = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if np.count_nonzero(light) >= MAX_STROKE_SHARE * light.size:
        return False
    return cv2.distanceTransform(light, cv2.DIST_L2, 3).max() < MAX_STROKE_DEPTH * min(small.shape)


def ink_strength(gray: np.ndarray) -> np.ndarray:
    """How much darker than the local paper each pixel of a dark-ink image is: uint8, 0 (paper) to 255 (black)."""
    return cv2.bitwise_not(cv2.divide(gray, _paper(gray), scale=255))


def _paper(gray: np.ndarray) -> np.ndarray:
    """Estimate the paper brightness everywhere (illumination, shadows, vignetting) without the ink.

    Closing on a small copy erases strokes thinner than about 1/8 of the picture; blurring smooths the rest,
    except over a table or deep shadow. (A softer shadow's edge can leave a band of false ink: `_stands_out`
    rejects it later.)
    The copy is shrunk by a whole factor, which OpenCV does many times faster than any other ratio.
    """
    height, width = gray.shape
    factor = max(1, min(max(height, width) // PAPER_SIDE, height, width))  # a 300x1 strip stays 1 wide
    small = cv2.resize(
        gray[: height - height % factor, : width - width % factor],
        (max(1, width // factor), max(1, height // factor)),
        interpolation=cv2.INTER_AREA,
    )
    zoom = max(small.shape) / PAPER_SIDE  # the kernels are sized for a copy PAPER_SIDE pixels long
    kernel = np.ones((_odd(PAPER_KERNEL * zoom),) * 2, np.uint8)
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    blur = _odd(PAPER_BLUR * zoom)
    blurred = cv2.blur(small, (blur, blur))
    # Blurring carries the paper's brightness onto the table or deep shadow beside it, and that rim reads as
    # ink along the page edge, joined to any digit near it. Where the estimate is such a region, keep it dark.
    beyond = _beyond_paper(small, zoom)
    if beyond.any():  # seldom: most pictures are all paper
        blurred = np.where(beyond, np.minimum(blurred, small), blurred)
    small = np.maximum(blurred, 1)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _beyond_paper(paper: np.ndarray, zoom: float) -> np.ndarray:
    """Where a paper estimate (a closing: strokes gone) is a table or a deep shadow: well under the brightest
    paper, over an area half as wide again as the closing's kernel, which no stroke the closing left can be."""
    dark = (paper < BEYOND_PAPER * _quantile(paper.ravel(), 95)).view(np.uint8)
    if not dark.any():
        return dark.view(bool)
    kernel = np.ones((_odd(1.5 * PAPER_KERNEL * zoom),) * 2, np.uint8)
    return cv2.morphologyEx(dark, cv2.MORPH_OPEN, kernel) > 0


def _odd(size: float) -> int:
    return 2 * round((size - 1) / 2) + 1


def thresholds(strength: np.ndarray) -> tuple[int, int] | None:
    """(low, high) ink thresholds for this picture, None when nothing is dark enough to be ink.

    Hysteresis: pixels over `low` are ink when their stroke reaches `high` somewhere, so faint parts of a
    pencil line stay attached while paper grain stays out.
    """
    peak = int(cv2.blur(strength, (3, 3)).max())
    if peak < MIN_PEAK_CONTRAST * 255:
        return None
    high = min(max(0.45 * peak, MIN_CONTRAST * 255), 0.40 * 255)
    return round(0.6 * high), round(high)


def remove_ruled_lines(mask: np.ndarray) -> np.ndarray:
    """Erase long thin lines that run across (nearly) the whole picture: ruled and squared paper, margins.

    Both directions are found on the same mask: erasing one first would cut the other into short pieces.
    Where a digit's stroke crosses a line, the cut is bridged again, or squared paper leaves digits in pieces.
    """
    (across, across_whole), (down, down_whole) = _ruled_rows(mask), _ruled_rows(cv2.transpose(mask))
    whole = across_whole + down_whole
    if len(whole) == 1 and not whole[0]:
        return mask  # one long stroke alone, short of an edge: the stem of a big digit drawn close up
    bands = []  # (erased band, closing kernel that bridges a cut across it)
    if across is not None:
        bands.append((across, np.ones((LINE_BRIDGE, 1), np.uint8)))
    if down is not None:
        bands.append((cv2.transpose(down), np.ones((1, LINE_BRIDGE), np.uint8)))
    if not bands:
        return mask
    kept = mask.copy()
    for band, _ in bands:
        kept &= 1 - band
    for band, kernel in bands:
        # Ink on both sides of the band within the kernel: a stroke crossing the line, not the line itself.
        kept |= cv2.morphologyEx(kept, cv2.MORPH_CLOSE, kernel) & band & mask
    return kept


def _ruled_rows(mask: np.ndarray) -> tuple[np.ndarray | None, list[bool]]:
    """The nearly horizontal lines of `remove_ruled_lines` as a 0/1 mask (None when there are none), and for
    each line whether its ink runs from border to border of the picture.

    A Hough transform limited to RULED_TILT degrees either side of level finds them on a shrunken copy, tilted
    (a phone held askew) or broken (light lines only partly dark enough to be ink), once the ink of all of
    them together reaches across 85% of the width. Each is then fitted on the full mask and erased from edge
    to edge, except where thick ink runs along it. A line that leaves through the top or bottom corner within
    half the width is not found.
    """
    height, width = mask.shape
    if min(height, width) < 8 or np.count_nonzero(mask.any(axis=0)) < 0.85 * width:  # cheap: ink must reach across
        return None, []
    factor = max(1, width // RULED_SEARCH_WIDTH)
    # Scaled to 255 first: averaging a 0/1 mask would round a thin line away.
    small = cv2.resize(mask * np.uint8(255), (width // factor, max(1, height // factor)), interpolation=cv2.INTER_AREA)
    tilt = np.deg2rad(RULED_TILT)
    lines = cv2.HoughLines(
        (small > 0).view(np.uint8), 1, np.pi / 360, max(8, round(RULED_SPAN * small.shape[1])),
        min_theta=np.pi / 2 - tilt, max_theta=np.pi / 2 + tilt,
    )
    if lines is None:
        return None, []
    points = cv2.findNonZero(mask).reshape(-1, 2)  # row by row: the points near a line are one slice of them
    xs, ys = points[:, 0], points[:, 1]
    # How far ink lies from paper, at most 3 px from each pixel: a ruled line is thin everywhere, the stem of a
    # big "1" is not, even where the search band only grazes its edge.
    depth = cv2.dilate(cv2.distanceTransform(mask, cv2.DIST_L1, 3), np.ones((7, 7), np.uint8))
    found = np.zeros((height, width), np.uint8)
    whole = []
    for rho, theta in _distinct(lines[:MAX_RULED_LINES * 4, 0, :2])[:MAX_RULED_LINES]:
        rho, sin, cos = (rho + 0.5) * factor, np.sin(theta), np.cos(theta)
        ends = [(rho - cos * x) / sin for x in (0, width - 1)]  # the row where it meets each side
        start, stop = np.searchsorted(ys, [min(ends) - factor - 2, max(ends) + factor + 3])
        line_x, line_y = xs[start:stop], ys[start:stop]
        near = np.abs(line_x * cos + line_y * sin - rho) <= factor + 2
        near &= found[line_y, line_x] == 0  # not a line erased already
        line_x, line_y = line_x[near], line_y[near]
        per_column = np.bincount(line_x, minlength=width)
        if np.count_nonzero(per_column) < RULED_SPAN * width:
            continue  # ink along less than RULED_SPAN of the width: a stroke, not a line
        # A median: it ignores the places where a digit crosses the line.
        thickness = int(np.median(per_column[per_column > 0]))
        points = np.column_stack([line_x, line_y]).astype(np.float32)
        vx, vy, x0, y0 = cv2.fitLine(points, cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        core = np.abs((line_x - x0) * vy - (line_y - y0) * vx) <= thickness / 2 + 1
        if np.count_nonzero(np.bincount(line_x[core], minlength=width)) < RULED_SPAN * width:
            continue  # ink scattered about a straight path (speckle, desk grain) is no line
        # Each column's shallowest ink on the line's core: deep where thick ink runs along the line (a "1" on a
        # grid line, a marker stroke) or crosses it, shallow elsewhere; a thick digit on a few columns does not
        # stop the line from being erased around it.
        shallowest = np.full(width, np.inf, np.float32)
        np.minimum.at(shallowest, line_x[core], depth[line_y[core], line_x[core]])
        deep = np.isfinite(shallowest) & (shallowest > RULED_MAX_DEPTH)
        if np.count_nonzero(deep) > 0.5 * np.count_nonzero(np.isfinite(shallowest)):
            continue  # a thick stroke or a dark band (a close-up digit, a shadow, a table edge)
        slope = vy / vx if abs(vx) > 1e-6 else 0.0
        # A pixel to spare on each side for anti-aliasing: where a faint line fades out, its pieces would
        # otherwise stay behind as "1"s.
        ends = [(0, round(y0 - slope * x0)), (width - 1, round(y0 + slope * (width - 1 - x0)))]
        _draw_line(found, ends, thickness + 2, deep)
        first, last = np.argmin(line_x), np.argmax(line_x)
        whole.append(_at_border(line_x[first], line_y[first], mask.shape)
                     and _at_border(line_x[last], line_y[last], mask.shape))
    return (found if whole else None), whole


def _draw_line(found: np.ndarray, ends: list[tuple[int, int]], thickness: int, deep: np.ndarray) -> None:
    """Mark a line to erase in `found`, except in the `deep` columns, where thick ink runs along it."""
    if not deep.any():
        cv2.line(found, ends[0], ends[1], 1, thickness)
        return
    top = max(0, min(y for _, y in ends) - thickness)
    band = found[top : max(y for _, y in ends) + thickness + 1]
    line = np.zeros_like(band)
    cv2.line(line, (ends[0][0], ends[0][1] - top), (ends[1][0], ends[1][1] - top), 1, thickness)
    line[:, deep] = 0
    band |= line


def _at_border(x: int, y: int, shape: tuple[int, ...]) -> bool:
    """Whether (x, y) lies within 2% of any edge: a tilted line may leave the picture through a side."""
    height, width = shape
    return min(x, y, width - 1 - x, height - 1 - y) <= 0.02 * max(height, width)


def _distinct(lines: np.ndarray) -> np.ndarray:
    """Hough lines (rho, theta), strongest first, without the near copies a thick line leaves beside itself."""
    close = (np.abs(lines[:, None, 0] - lines[None, :, 0]) <= 1) & (
        np.abs(lines[:, None, 1] - lines[None, :, 1]) <= np.deg2rad(1.5)
    )
    suppressed = np.zeros(len(lines), bool)
    keep = []
    for i in range(len(lines)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= close[i]
    return lines[keep]


@dataclass
class FirstLook:
    """What `find_digits` peeled on its first look at a picture, for its second."""

    mask: np.ndarray  # the ink before peeling (0/1)
    left: np.ndarray  # bool: the ink left of the shapes that were peeled


def find_digits(
    mask: np.ndarray, strong: np.ndarray, gray: np.ndarray, first: FirstLook | None = None
) -> list[Candidate]:
    """Connected components -> filtered, grouped digit candidates, left to right.

    `mask`: faint-or-better ink (0/1); `strong`: clearly dark ink (bool); `gray`: dark ink on light paper;
    `first`: given on the second look only, after big shapes that do not stand out were peeled.
    """
    # Grana's algorithm: several times faster than OpenCV's default when stats are wanted.
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA)
    reaches_strong = np.bincount(labels[strong], minlength=count) > 0
    ids = [i for i in range(1, count) if reaches_strong[i] and _is_ink(i, labels, stats)]
    # A big shape that is no darker than the paper around it (a shadow's rim, a page edge) would swallow any
    # digit it touches when strokes are grouped, and set the scale for "small" below: out with it first.
    big = BIG_SHAPE * max(mask.shape)
    standing = {}  # the big shapes kept, as candidates: one that stays alone in its group is not checked again
    for i in ids:
        if max(stats[i, 2:4]) >= big:
            shape = _component(labels, stats, i)
            if _stands_out(shape, _not_paper(shape, mask, first), gray):
                standing[i] = shape
    failing = [i for i in ids if max(stats[i, 2:4]) >= big and i not in standing]
    if failing and first is None:
        # A digit joined to a shadow's rim or a page edge goes with them: take away the parts of these shapes that
        # are no darker than the paper beside them, and look again if anything is left.
        peeled, left = mask.copy(), np.zeros(mask.shape, bool)
        for i in failing:
            shape = _component(labels, stats, i)
            x, y, w, h = shape.box
            left[y : y + h, x : x + w] |= _standing_pixels(shape, mask, gray)
            peeled[y : y + h, x : x + w][(shape.mask > 0) & ~left[y : y + h, x : x + w]] = 0
        if left.any():
            return find_digits(peeled, strong & (peeled > 0), gray, FirstLook(mask, left))
    ids = [i for i in ids if max(stats[i, 2:4]) < big or i in standing]
    if not ids:
        return []
    largest = max(stats[i, cv2.CC_STAT_AREA] for i in ids)
    ids = [i for i in ids if stats[i, cv2.CC_STAT_AREA] >= 0.02 * largest]  # specks
    groups, boxes = _group(ids, stats)
    tallest = max(h for _, _, _, h in boxes)
    min_height = max(MIN_DIGIT_HEIGHT, 0.35 * tallest)
    chosen = [
        (box, group) for box, group in zip(boxes, groups, strict=True) if _digit_like(box, min_height, mask.shape)
    ]
    chosen.sort(key=lambda item: item[0][2] * item[0][3], reverse=True)
    candidates = []
    for box, group in chosen[:MAX_CANDIDATES]:
        if len(group) == 1 and group[0] in standing:
            candidates.append(standing[group[0]])
            continue
        candidate = Candidate(box, _crop(labels, box, group))
        if _stands_out(candidate, _not_paper(candidate, mask, first), gray):
            candidates.append(candidate)
        elif kept := [i for i in group if i in standing]:
            # Big digits grouped with pieces of shadow beside them: the digits alone, as found to stand out, grouped
            # among themselves again (two of them joined only through the shadow are two candidates, and every
            # column of a candidate holds ink, as `_part` needs).
            for ids, box in zip(*_group(kept, stats), strict=True):
                if _digit_like(box, min_height, mask.shape):
                    candidates.append(standing[ids[0]] if len(ids) == 1 else Candidate(box, _crop(labels, box, ids)))
    for candidate in candidates:
        _, _, w, h = candidate.box
        candidate.single = w <= SINGLE_ASPECT * h
        ways = [list(pairwise((0, *cuts, w))) for cuts in _cuts(candidate.mask)]  # (left, right) columns
        pieces = sorted({piece for way in ways for piece in way})  # a piece shared by several ways is cut once
        candidate.parts = [_part(candidate, left, right) for left, right in pieces]
        candidate.splits = [tuple(pieces.index(piece) for piece in way) for way in ways]
    return sorted(candidates, key=lambda c: c.box[0])


def _cuts(mask: np.ndarray) -> list[tuple[int, ...]]:
    """The ways to cut a shape into 2 to MAX_PARTS parts, as the columns of the cuts: at the thinnest column near
    where equal parts would meet, and at every combination of the thinnest columns (`_thin_columns`)."""
    h, w = mask.shape
    most = min(MAX_PARTS, int(w / (PART_ASPECT * h)))
    ink = mask.sum(axis=0)
    ways = set()
    for parts in range(2, most + 1):
        windows = [(round((i - 0.4) * w / parts), round((i + 0.4) * w / parts)) for i in range(1, parts)]
        ways.add(tuple(start + int(np.argmin(ink[start:stop])) for start, stop in windows))
        ways.update(combinations(_thin_columns(ink, h), parts - 1))
    return sorted(ways)


def _thin_columns(ink: np.ndarray, h: int) -> list[int]:
    """The MAX_CUT_POINTS columns of least ink (local minima of ink per column, inside the middle 80%), at least
    CUT_SPACING of the height apart, left to right."""
    w = len(ink)
    smooth = np.convolve(ink, np.ones(3) / 3, mode="same")
    minima = [i for i in range(max(1, round(0.1 * w)), min(w - 1, round(0.9 * w)))
              if smooth[i] <= smooth[i - 1] and smooth[i] <= smooth[i + 1]]
    chosen: list[int] = []
    for i in sorted(minima, key=lambda i: smooth[i]):
        if all(abs(i - j) >= CUT_SPACING * h for j in chosen):
            chosen.append(i)
        if len(chosen) == MAX_CUT_POINTS:
            break
    return sorted(chosen)


def _part(candidate: Candidate, left: int, right: int) -> Candidate:
    """The candidate's columns left to right-1, trimmed to their ink. (Every column of a candidate holds ink: its
    strokes are connected or overlap sideways, so no part is empty.)"""
    x, y, _, _ = candidate.box
    part = candidate.mask[:, left:right]
    rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
    box = (x + left + int(cols[0]), y + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
    return Candidate(box, part[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _stands_out(candidate: Candidate, mask: np.ndarray, gray: np.ndarray) -> bool:
    """Ink is darker than all the paper around it; the dark side of a shadow or a page edge is not.

    Compares the ink with the darkest of the non-ink pixels in a ring just outside the shape. A digit that a
    shadow's edge crosses fails that (the ring is dark on one side only), so it gets a second look, pixel by
    pixel against the darkest ring pixels near each (`_local_contrast`): of the ink with ring paper near it (at
    least half of it, or the shape fails), half must stand out by MIN_STANDOUT and nine tenths by MIN_LOCAL_CONTRAST.
    """
    region, is_ink, in_ring = _surroundings(candidate, mask, gray)
    ring = region[in_ring]
    if ring.size < 10:
        return True
    ink = region[is_ink]
    if _darker(_quantile(ink, 50), _quantile(ring, STANDOUT_PERCENTILE)) >= MIN_STANDOUT:
        return True
    # No pixel's nearby paper is brighter than the ring's brightest: if a quarter of the ink is not darker than that
    # by MIN_STANDOUT, the second look cannot pass (most shadows stop here, before the costly part).
    if _darker(_quantile(ink, 25), ring.max()) < MIN_STANDOUT:
        return False
    contrast = _local_contrast(region, in_ring, is_ink, max(candidate.box[2:]))
    contrast = contrast[~np.isnan(contrast)]
    if 2 * contrast.size < ink.size:
        return False
    return _quantile(contrast, 50) >= MIN_STANDOUT and _quantile(contrast, 10) >= MIN_LOCAL_CONTRAST


def _not_paper(candidate: Candidate, mask: np.ndarray, first: FirstLook | None) -> np.ndarray:
    """The ink that is not paper around a candidate. On the second look, what was peeled is paper for what is left
    of the peeled shapes (judged against the rim they were cut from), not for a digit beside them."""
    if first is None:
        return mask
    x, y, w, h = candidate.box
    return mask if np.any((candidate.mask > 0) & first.left[y : y + h, x : x + w]) else first.mask


def _standing_pixels(candidate: Candidate, mask: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """The candidate's ink (bool, box-sized) that stands out by MIN_STANDOUT from the paper near it, without pieces
    of upright lines: what is left of a digit joined to a shadow's rim or a page edge, once they are taken away.
    (A "1" 6 or more times taller than wide joined to such a rim goes too: it cannot be told from a margin.)"""
    region, is_ink, in_ring = _surroundings(candidate, mask, gray)
    _, _, w, h = candidate.box
    if not in_ring.any() or _darker(region[is_ink].min(), region[in_ring].max()) < MIN_STANDOUT:
        return np.zeros((h, w), bool)  # no ink pixel darker than the brightest paper: nothing to look at closely
    kept = np.zeros_like(is_ink)
    with np.errstate(invalid="ignore"):  # NaN, no paper near: not kept
        kept[is_ink] = _local_contrast(region, in_ring, is_ink, max(w, h)) >= MIN_STANDOUT
    top, left = _ring_width(candidate, mask.shape)[:2]
    kept = kept[top : top + h, left : left + w]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(kept.view(np.uint8), 8, cv2.CV_32S)
    # A margin or grid line cut out of a shadow is a piece of line, not a "1" (RUNS_OUT_ASPECT times taller than wide).
    lines = [i for i in range(1, count) if stats[i, 3] >= RUNS_OUT_ASPECT * stats[i, 2]]
    return kept & ~np.isin(labels, lines) if lines else kept


def _surroundings(candidate: Candidate, mask: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, ...]:
    """The gray pixels of the candidate's box widened by the ring, and in it (bool) the candidate's ink and the ring:
    the pixels outside the whole `mask` that lie 3 to r_out pixels (a square's half side) from the candidate's ink."""
    x, y, w, h = candidate.box
    top, left, bottom, right, r_out = _ring_width(candidate, mask.shape)
    shape = np.zeros((top + h + bottom, left + w + right), np.uint8)
    shape[top : top + h, left : left + w] = candidate.mask
    near = cv2.dilate(shape, np.ones((5, 5), np.uint8))  # a stroke's blurred edge is neither ink nor paper
    far = cv2.dilate(shape, np.ones((2 * r_out + 1, 2 * r_out + 1), np.uint8))
    window = (slice(y - top, y + h + bottom), slice(x - left, x + w + right))
    return gray[window], shape > 0, (far > near) & (mask[window] == 0)


def _ring_width(candidate: Candidate, picture: tuple[int, ...]) -> tuple[int, int, int, int, int]:
    """How far the region of `_surroundings` reaches beyond the box on each side (top, left, bottom, right; less
    at the border of a picture of shape `picture`), and the ring's outer radius."""
    x, y, w, h = candidate.box
    r_out = max(4, round(0.06 * max(w, h)))
    height, width = picture[:2]
    return min(r_out, y), min(r_out, x), min(r_out, height - y - h), min(r_out, width - x - w), r_out


def _local_contrast(region: np.ndarray, in_ring: np.ndarray, is_ink: np.ndarray, size: int) -> np.ndarray:
    """How much darker each ink pixel is than the darkest ring pixel in a window LOCAL_PAPER of `size` wide around
    it; NaN where no ring pixel is in its window (reach is taken from the ring: ring paper can be 255, glare)."""
    side = _odd(LOCAL_PAPER * size)
    window = np.ones((side, side), np.uint8)
    reach = cv2.dilate(in_ring.view(np.uint8), window)[is_ink] > 0
    paper = cv2.erode(np.where(in_ring, region, 255).astype(np.uint8), window)[is_ink]
    return np.where(reach, _darker(region[is_ink], paper), np.nan)


def _darker(ink: np.ndarray | float, paper: np.ndarray | float) -> np.ndarray | float:
    """How much darker ink is than paper, as a fraction of the paper (1 is black; +1 keeps a black paper finite)."""
    return 1.0 - (ink + 1.0) / (paper + 1.0)


def _quantile(values: np.ndarray, percent: int) -> float:
    """A percentile by partial sort: np.percentile costs more than the rest of this test on small arrays."""
    k = min(len(values) - 1, len(values) * percent // 100)
    return float(np.partition(values, k)[k])


def _is_ink(i: int, labels: np.ndarray, stats: np.ndarray) -> bool:
    """Reject specks and the dark borders of photos (table, shadow, paper edge) that run along the frame."""
    x, y, w, h, area = stats[i]
    if area < 6:
        return False
    height, width = labels.shape
    if x > 0 and y > 0 and x + w < width and y + h < height:
        return True
    on_border = (
        np.count_nonzero(labels[0, x : x + w] == i)
        + np.count_nonzero(labels[-1, x : x + w] == i)
        + np.count_nonzero(labels[y : y + h, 0] == i)
        + np.count_nonzero(labels[y : y + h, -1] == i)
    )
    return on_border <= 0.3 * max(w, h)


def _group(ids: list[int], stats: np.ndarray) -> tuple[list[list[int]], list[tuple[int, int, int, int]]]:
    """Merge the strokes of one digit: components that overlap horizontally and are vertically close.

    Returns the groups and their bounding boxes; each group's box is kept up to date as groups merge. Groups
    stay sorted by their left edge (a merge keeps the earlier one's), so a scan to the right stops at the
    first group that starts beyond this one's right edge: no later one can overlap it.
    """
    order = np.asarray(ids)[np.argsort(stats[ids, cv2.CC_STAT_LEFT], kind="stable")]
    groups = [[i] for i in order.tolist()]
    boxes = [tuple(box) for box in stats[order, :4].tolist()]
    a = 0
    while a < len(groups):
        b = _first_partner(boxes, a)
        if b is None:
            a += 1
            continue
        groups[a] += groups.pop(b)
        boxes[a] = _union(boxes[a], boxes.pop(b))
        # Grown, this group may now belong with one before it: that one takes it in, and is scanned again.
        while (e := next((e for e in range(a) if _belong_together(boxes[e], boxes[a])), None)) is not None:
            groups[e] += groups.pop(a)
            boxes[e] = _union(boxes[e], boxes.pop(a))
            a = e
    return groups, boxes


def _first_partner(boxes: list[tuple[int, int, int, int]], a: int) -> int | None:
    """The first group after `a` that belongs with it, if any."""
    right = boxes[a][0] + boxes[a][2]
    for b in range(a + 1, len(boxes)):
        if boxes[b][0] >= right:
            return None
        if _belong_together(boxes[a], boxes[b]):
            return b
    return None


def _belong_together(one: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    x1, y1, w1, h1 = one
    x2, y2, w2, h2 = other
    overlap_x = min(x1 + w1, x2 + w2) - max(x1, x2)
    gap_y = max(y1, y2) - min(y1 + h1, y2 + h2)
    # One above the other (the two loops of a slanted 8, a 5's flag) may be shifted sideways more than two
    # pieces side by side, which are more likely two digits of a number.
    stacked = gap_y >= -0.25 * min(h1, h2)
    if overlap_x >= (0.3 if stacked else 0.5) * min(w1, w2) and gap_y <= 0.3 * max(h1, h2):
        return True
    # A piece whose box lies largely inside another's (a pencil 8 broken at its waist).
    return overlap_x > 0 and overlap_x * -gap_y >= 0.25 * min(w1 * h1, w2 * h2)


def _union(one: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0 = min(one[0], other[0]), min(one[1], other[1])
    x1, y1 = max(one[0] + one[2], other[0] + other[2]), max(one[1] + one[3], other[1] + other[3])
    return x0, y0, x1 - x0, y1 - y0


def _digit_like(box: tuple[int, int, int, int], min_height: float, shape: tuple[int, ...]) -> bool:
    """Tall enough, not too wide even for MAX_PARTS digits in a row, not the whole frame (that is a shadow or
    the paper's edge: no digit among the 659 candidates of photos-dev spans 90% of both sides), and not a thin
    upright line running from inside the picture out of it (a margin from a page edge, too short to be found as
    a ruled line: the digits read at the frame's edge in photos-dev and 1,200 digit scenes are at most 3 times
    taller than wide, such lines 7 to 56 times). A "1" touching the frame on one side is lost with them; one
    from the top of the frame to the bottom (a tight crop) is kept."""
    x, y, w, h = box
    height, width = shape[:2]
    whole_frame = w >= 0.9 * width and h >= 0.9 * height
    gaps = (x, y, width - x - w, height - y - h)  # to the left, top, right and bottom edges
    tight_crop = (gaps[0] <= 1 and gaps[2] <= 1) or (gaps[1] <= 1 and gaps[3] <= 1)
    runs_out = h >= RUNS_OUT_ASPECT * w and min(gaps) <= 1 and not tight_crop
    return h >= min_height and w <= MAX_PARTS * h and not whole_frame and not runs_out


def _component(labels: np.ndarray, stats: np.ndarray, i: int) -> Candidate:
    box = tuple(int(v) for v in stats[i, :4])
    return Candidate(box, _crop(labels, box, [i]))


def _crop(labels: np.ndarray, box: tuple[int, int, int, int], group: list[int]) -> np.ndarray:
    x, y, w, h = box
    window = labels[y : y + h, x : x + w]
    mask = window == group[0]
    for i in group[1:]:
        mask |= window == i
    return mask.view(np.uint8)


def normalize(mask: np.ndarray) -> np.ndarray:
    """One digit's ink mask -> 28x28 float32, MNIST style: 20x20 box, stroke ~2.5 px, centre of mass centred."""
    mask = _fit_stroke(_shrink_mask(mask))
    h, w = mask.shape
    scale = MNIST_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    peak = digit.max()
    if peak > 0:
        digit /= peak
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = digit
    return _centre_mass(canvas)


def _shrink_mask(mask: np.ndarray) -> np.ndarray:
    """Bring a big digit down to FIT_SIDE pixels, keeping strokes that thin out to a fraction of a pixel."""
    h, w = mask.shape
    scale = FIT_SIDE / max(h, w)
    if scale >= 1:
        return mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    coverage = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return (coverage >= 0.2).astype(np.uint8)


def _fit_stroke(mask: np.ndarray) -> np.ndarray:
    """Thicken thin strokes to about MNIST's width (a pen line in a big digit would vanish at 20 px)."""
    area = int(mask.sum())
    edge = area - int(cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0).sum())
    stroke = 2.0 * area / max(edge, 1)
    target = MNIST_STROKE * max(mask.shape) / MNIST_BOX
    grow = round((target - stroke) / 2)
    if grow >= 1:
        mask = cv2.copyMakeBorder(mask, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        return cv2.dilate(mask, kernel)
    shrink = round((stroke - THICK_STROKE * target) / 2)
    if shrink >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
        thinner = cv2.erode(mask, kernel)
        if thinner.any():
            return thinner
    return mask


def _centre_mass(image: np.ndarray) -> np.ndarray:
    moments = cv2.moments(image)
    if moments["m00"] <= 0:
        return image
    dx = 14.0 - moments["m10"] / moments["m00"]
    dy = 14.0 - moments["m01"] / moments["m00"]
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, shift, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)


def preprocess(
    gray: np.ndarray, brightest: np.ndarray | None = None
) -> tuple[list[Candidate], np.ndarray, str | None]:
    """Grayscale working image (and a dark picture's brightest channel, see `dark_ink`) -> (candidates, crops
    (n,28,28,1) float32, reason when there are none). The crops are each candidate's, followed by its parts'
    when it is cut (`shapes`)."""
    gray = dark_ink(gray, brightest)
    strength = ink_strength(gray)
    levels = thresholds(strength)
    if levels is None:
        return [], np.zeros((0, 28, 28, 1), np.float32), "no ink found"
    mask = remove_ruled_lines((strength >= levels[0]).view(np.uint8))
    candidates = find_digits(mask, strength >= levels[1], gray)
    if not candidates:
        return [], np.zeros((0, 28, 28, 1), np.float32), "no digit-like shapes"
    crops = np.stack([normalize(c.mask) for c in shapes(candidates)])[..., None]
    return candidates, crops, None


def shapes(candidates: list[Candidate]) -> list[Candidate]:
    """Each candidate followed by its parts: the order of `preprocess`'s crops."""
    return [shape for c in candidates for shape in (c, *c.parts)]
