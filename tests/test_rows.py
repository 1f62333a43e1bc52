"""Rows of the ink map (engine v3), by plain geometry: what joins a row, what starts another, what is dropped."""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.lines import HEIGHT, WIDTHS
from server.engine.rows import MIN_HEIGHT, find_rows


def chances(*strokes: tuple[tuple[int, int], tuple[int, int]], size: tuple[int, int] = (120, 160),
            width: int = 3) -> np.ndarray:
    """A map with these strokes (each from one point to another) sure, and nothing else."""
    ink = np.zeros(size, np.float32)
    for start, end in strokes:
        cv2.line(ink, start, end, 1.0, width)
    return ink


def test_digits_side_by_side_are_one_row_and_its_input_is_the_readers() -> None:
    (row,) = find_rows(chances(((20, 40), (20, 80)), ((40, 40), (60, 80)), ((70, 40), (70, 80))))
    assert row.box[1] <= 40 and row.box[1] + row.box[3] >= 80 and row.box[0] <= 20 and row.box[0] + row.box[2] >= 70
    assert row.image.shape[0] == HEIGHT and row.image.shape[1] in WIDTHS and row.image.max() > 0.9


def test_a_detached_flag_joins_its_digit() -> None:
    """A 5 whose flag stands apart: the flag lies within the body's height, so the row takes it."""
    body = (((30, 50), (30, 70)), ((30, 70), (50, 75)), ((50, 75), (30, 95)))
    (row,) = find_rows(chances(*body, ((36, 44), (56, 44))))
    assert row.box[1] <= 44 and row.box[0] + row.box[2] >= 56
    assert len(row.members) == 2


def test_rows_above_each_other_are_apart_top_first() -> None:
    rows = find_rows(chances(((20, 10), (20, 40)), ((40, 10), (40, 40)), ((20, 70), (20, 100))))
    assert [len(row.members) for row in rows] == [2, 1]
    assert rows[0].box[1] < rows[1].box[1]


def test_a_wide_gap_starts_another_row_and_specks_are_dropped() -> None:
    far = chances(((10, 40), (10, 70)), ((140, 40), (140, 70)))
    assert len(find_rows(far)) == 2  # 130 px apart, rows 30 px tall
    speck = chances(((10, 40), (10, 70)))
    speck[50 : 50 + MIN_HEIGHT - 1, 100 : 100 + MIN_HEIGHT] = 1
    assert len(find_rows(speck)) == 1


def test_a_pen_line_and_a_markers_stroke_reach_the_reader_alike() -> None:
    """A 1 px line in a tall row (a tenth of an input pixel, shrunk plainly) and a marker's 15 px stroke both come
    out 3-4 input pixels wide: the reader sees one stroke width whatever the pen and the digit's size."""
    for width in (1, 15):
        (row,) = find_rows(chances(((80, 20), (80, 220)), size=(240, 160), width=width))
        assert 3 <= (row.image[HEIGHT // 2] > 0.5).sum() <= 4


def test_a_digit_cut_by_the_frame_is_a_row() -> None:
    (row,) = find_rows(chances(((0, 0), (30, 119)), ((30, 0), (0, 119)), width=9))
    assert row.box[1] == 0 and row.box[3] == 120


def test_nothing_sure_is_no_row() -> None:
    assert find_rows(np.full((60, 80), 0.4, np.float32)) == []
