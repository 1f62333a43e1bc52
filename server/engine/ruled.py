"""Ruled and squared paper, and margins: long thin lines across the picture erased from the ink mask, with the
strokes that cross them kept.

Pure NumPy/OpenCV, no state.
"""

from __future__ import annotations

import cv2
import numpy as np

RULED_TILT = 15  # degrees: ruled lines and margins are looked for this far either side of level/upright
RULED_SPAN = 0.5  # ... and are ink over at least this share of the picture's width (or height)
RULED_SEARCH_WIDTH = 200  # the line search runs on a copy about this wide
MAX_RULED_LINES = 128  # the strongest lines only: a noisy picture can give a thousand, each costing 0.1 ms
RULED_MAX_DEPTH = 3  # ... and no deeper than this inside their ink (pixels): a ruled line is at most about 6 px thick
# A stroke cut by an erased band is joined across it by a closing this long, which fills gaps of up to 8 px: the
# band of a line up to 4 px thick lying within about 10 degrees of level. (Thicker or more tilted lines leave a gap.)
LINE_BRIDGE = 9


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
