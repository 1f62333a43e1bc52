"""The ink mask -> digit candidates, by hand-written rules: connected components filtered against specks,
shadows, page edges and lines running out of the picture, strokes grouped into digits, wide shapes cut into parts.

Pure NumPy/OpenCV, no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, pairwise

import cv2
import numpy as np

from .ink import odd, quantile

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
SCALE_TRIES = 3  # how many times the scale is set again without a shape that faded into the paper
RUNS_OUT_ASPECT = 6  # an upright shape this many times taller than wide that reaches the frame is a line, not a "1"
# Pixels of the working image: smaller shapes are specks, not digits anyone could read. No share of the picture:
# a 3% minimum lost every digit under 90 px of a 4000x3000 photo and kept out no blank scene (model card).
MIN_DIGIT_HEIGHT = 10
MIN_STANDOUT = 0.20  # ink must be this much darker than the darkest paper right around it (fraction)
LOCAL_PAPER = 0.25  # ... or than the darkest ring pixel in a window about this wide (of the shape's size) around each
MIN_LOCAL_CONTRAST = 0.05  # ... ink pixel, and nine tenths of it this much: a shadow's rim joined to a digit is not
STANDOUT_PERCENTILE = 20  # a shadow's dark side fills about half the ring; glare in marker ink a few pixels


@dataclass
class Candidate:
    box: tuple[int, int, int, int]  # (x, y, w, h) in working-image pixels
    mask: np.ndarray  # uint8 0/1 ink of this digit only, cropped to box
    parts: list[Candidate] = field(default_factory=list)  # pieces cut from a wide shape, each once
    splits: list[tuple[int, ...]] = field(default_factory=list)  # ways to cut it: indices into parts, left to right
    single: bool = True  # narrow enough to be one digit

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
    # The biggest shapes set the scale of what counts as a speck or too small; when the one that set it is paper
    # (a shadow's edge, a smudge), the digits it outscaled are looked for again without it.
    candidates: list[Candidate] = []
    for _ in range(SCALE_TRIES):
        if not ids:
            break
        candidates, faded = _standing_candidates(ids, labels, stats, mask, gray, first, standing)
        if not faded:
            break
        ids = [i for i in ids if i not in faded]
    for candidate in candidates:
        _, _, w, h = candidate.box
        candidate.single = w <= SINGLE_ASPECT * h
        ways = [list(pairwise((0, *cuts, w))) for cuts in _cuts(candidate.mask)]  # (left, right) columns
        pieces = sorted({piece for way in ways for piece in way})  # a piece shared by several ways is cut once
        candidate.parts = [_part(candidate, left, right) for left, right in pieces]
        candidate.splits = [tuple(pieces.index(piece) for piece in way) for way in ways]
    return sorted(candidates, key=lambda c: c.box[0])


def _standing_candidates(
    ids: list[int], labels: np.ndarray, stats: np.ndarray, mask: np.ndarray, gray: np.ndarray,
    first: FirstLook | None, standing: dict[int, Candidate],
) -> tuple[list[Candidate], set[int]]:
    """The components `ids` grouped into digit-like candidates that stand out from the paper, biggest first, and
    the components of the shapes that set the scale (the tallest group, the largest component) but did not."""
    largest = max(stats[i, cv2.CC_STAT_AREA] for i in ids)
    ids = [i for i in ids if stats[i, cv2.CC_STAT_AREA] >= 0.02 * largest]  # specks
    groups, boxes = _group(ids, stats)
    # Only shapes that could be digits set it: not a line running out of the picture, nor the whole frame.
    tallest = max((box[3] for box in boxes if _digit_like(box, 0, mask.shape)), default=0)
    min_height = max(MIN_DIGIT_HEIGHT, 0.35 * tallest)
    chosen = [
        (box, group) for box, group in zip(boxes, groups, strict=True) if _digit_like(box, min_height, mask.shape)
    ]
    chosen.sort(key=lambda item: item[0][2] * item[0][3], reverse=True)
    candidates, faded = [], set()
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
        elif box[3] == tallest or any(stats[i, cv2.CC_STAT_AREA] == largest for i in group):
            faded.update(group)
    return candidates, faded


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
    if _darker(quantile(ink, 50), quantile(ring, STANDOUT_PERCENTILE)) >= MIN_STANDOUT:
        return True
    # No pixel's nearby paper is brighter than the ring's brightest: if a quarter of the ink is not darker than that
    # by MIN_STANDOUT, the second look cannot pass (most shadows stop here, before the costly part).
    if _darker(quantile(ink, 25), ring.max()) < MIN_STANDOUT:
        return False
    contrast = _local_contrast(region, in_ring, is_ink, max(candidate.box[2:]))
    contrast = contrast[~np.isnan(contrast)]
    if 2 * contrast.size < ink.size:
        return False
    return quantile(contrast, 50) >= MIN_STANDOUT and quantile(contrast, 10) >= MIN_LOCAL_CONTRAST


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
    side = odd(LOCAL_PAPER * size)
    window = np.ones((side, side), np.uint8)
    reach = cv2.dilate(in_ring.view(np.uint8), window)[is_ink] > 0
    paper = cv2.erode(np.where(in_ring, region, 255).astype(np.uint8), window)[is_ink]
    return np.where(reach, _darker(region[is_ink], paper), np.nan)


def _darker(ink: np.ndarray | float, paper: np.ndarray | float) -> np.ndarray | float:
    """How much darker ink is than paper, as a fraction of the paper (1 is black; +1 keeps a black paper finite)."""
    return 1.0 - (ink + 1.0) / (paper + 1.0)


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
