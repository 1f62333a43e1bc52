"""Lines of candidates and the line reader's decoding, on inputs the tests make themselves."""

from __future__ import annotations

import numpy as np

from server.engine.lines import HEIGHT, INK_ROWS, MARGIN, STRIDE, WIDTHS, find_lines, to_working
from server.engine.reader import BLANK, CLASSES, decode_line
from server.engine.segment import Candidate


def candidate(mask: np.ndarray, box: tuple[int, int, int, int]) -> Candidate:
    x, y, w, h = box
    return Candidate(box, mask[y : y + h, x : x + w])


def test_candidates_side_by_side_make_one_line_and_rows_apart_make_two() -> None:
    mask = np.zeros((200, 300), np.uint8)
    boxes = [(10, 20, 20, 40), (40, 25, 20, 40), (70, 22, 20, 40), (20, 120, 25, 50)]
    for x, y, w, h in boxes:
        mask[y : y + h, x : x + 4] = 1  # a "1" at each box's left edge
        mask[y : y + 4, x : x + w] = 1
    lines = find_lines([candidate(mask, box) for box in boxes], mask)
    assert [line.members for line in lines] == [[0, 1, 2], [3]]
    assert lines[0].box == (10, 20, 80, 45)
    for line in lines:
        assert line.image.shape[0] == HEIGHT and line.image.shape[1] in WIDTHS
        rows = np.flatnonzero(line.image.max(axis=1) > 0.5)
        assert rows[0] >= (HEIGHT - INK_ROWS) // 2 - 1 and rows[-1] <= (HEIGHT + INK_ROWS) // 2
        cols = np.flatnonzero(line.image.max(axis=0) > 0.5)
        assert cols[0] >= MARGIN - 1
        x0, _ = to_working(line, cols[0], cols[-1] + 1)
        assert abs(x0 - line.box[0]) <= 1 / line.scale + 1


def test_a_neighbours_stroke_reaching_into_the_line_is_left_out() -> None:
    mask = np.zeros((200, 200), np.uint8)
    mask[50:90, 20:24] = 1  # the line's "1"
    mask[0:60, 60:64] = 1  # a long stroke from above, only its end inside the line's box
    (line,) = find_lines([candidate(mask, (20, 50, 4, 40))], mask)
    widened = find_lines([candidate(mask, (20, 50, 60, 40))], mask)[0]
    assert line.image.sum() > 0
    assert widened.image[:, widened.image.shape[1] // 2 :].sum() == 0  # its end is in the box, most of it is not


def test_a_very_long_line_is_scaled_to_the_widest_input() -> None:
    mask = np.zeros((60, 2000), np.uint8)
    mask[10:50, 10:1990] = 1
    (line,) = find_lines([candidate(mask, (10, 10, 1980, 40))], mask)
    assert line.image.shape == (HEIGHT, WIDTHS[-1])
    assert line.image[HEIGHT // 2, MARGIN] > 0.5 and line.image[HEIGHT // 2, WIDTHS[-1] - MARGIN - 2] > 0.5


def steps(path: list[int], sure: float = 0.9) -> np.ndarray:
    probs = np.full((len(path), CLASSES), (1 - sure) / (CLASSES - 1), np.float32)
    probs[np.arange(len(path)), path] = sure
    return probs


def test_runs_of_one_digit_are_one_digit_and_blanks_part_repeats() -> None:
    b = BLANK
    reads = decode_line(steps([b, 4, 4, b, b, 4, 7, 7, b, 1]))
    assert [r.value for r in reads] == [4, 4, 7, 1]
    assert [r.columns for r in reads] == [(1 * STRIDE, 3 * STRIDE), (5 * STRIDE, 6 * STRIDE),
                                          (6 * STRIDE, 8 * STRIDE), (9 * STRIDE, 10 * STRIDE)]
    assert all(abs(r.confidence - 0.9) < 1e-6 and r.top3[0] == (r.value, r.confidence) for r in reads)
    assert decode_line(steps([b] * 8)) == []
