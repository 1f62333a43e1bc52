"""Engine v3 with the committed networks: the learned ink map finds the ink, rows are grouped by geometry, the line
reader of v3 reads each row whole. What it reads, on real samples and on generated digits that the rules find hard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, sample_label

from server.config import load_config
from server.engine import MIN_CONFIDENCE, Engine, ImageError, Prepared, assemble
from server.engine.prepare import PreparedLine
from training.categories import draw
from training.scenes import Look, blank_scene, encode_jpeg, ink_scene

SAMPLE_PATHS = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".png"})


def load_v3(backend: str) -> Engine:
    return Engine.from_config(replace(load_config([]), engine="v3", backend=backend))


@pytest.fixture(scope="module")
def v3() -> Engine:
    return load_v3("litert")


def number(data: bytes, engine: Engine) -> str | None:
    (result,) = engine.recognize([data])
    if isinstance(result, ImageError):
        raise result
    return result["number"]


# What v3 does not read yet (model card): the map leaves the pencil "5" in specks, so that its row holds pieces.
# Strict: a fix shows as a failure to take this list down.
MISSED = {"5.jpg"}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="missed by v3 yet"))
                                  if p.name in MISSED else p for p in SAMPLE_PATHS], ids=lambda p: p.name)
def test_each_sample_is_read(path: Path, v3: Engine) -> None:
    assert number(path.read_bytes(), v3) == (sample_label(path) or None)


def test_a_result_has_boxes_in_the_users_image_and_no_digit_a_reason(v3: Engine) -> None:
    (result,) = v3.recognize([(SAMPLES / "407__multi.jpg").read_bytes()])
    assert [d["value"] for d in result["digits"]] == [4, 0, 7]
    xs = [d["box"][0] for d in result["digits"]]
    assert xs == sorted(xs) and all(0 <= x < result["width"] for x in xs)
    assert all(0.5 <= d["confidence"] <= 1 and len(d["top3"]) == 3 for d in result["digits"])
    (blank,) = v3.recognize([(SAMPLES / "blank__page.jpg").read_bytes()])
    assert blank["number"] is None and blank["reason"]


def test_both_backends_read_alike(v3: Engine) -> None:
    datas = [path.read_bytes() for path in SAMPLE_PATHS]
    keras = load_v3("keras").recognize(datas)
    assert [r["number"] for r in keras] == [r["number"] for r in v3.recognize(datas)]


def test_a_row_the_reader_reads_as_one_digit_is_read_by_the_classifier() -> None:
    """Where the line reader reads one digit on a row that may be one digit, the classifier's digit stands when it
    reads one (MIN_CONFIDENCE sure); else, and on rows of none or more digits, the reader's reading stands."""
    def read_row(reader_digits: tuple[int, ...], crop: tuple[int, float] | None) -> str | None:
        steps = np.full((16, 11), 0.001, np.float32)
        steps[:, 10] = 0.99  # blank
        for k, digit in enumerate(reader_digits):
            steps[2 + 4 * k] = 0.001
            steps[2 + 4 * k, digit] = 0.99
        probs = np.zeros((0 if crop is None else 1, 11), np.float32)
        if crop is not None:
            probs[0] = (1 - crop[1]) / 10
            probs[0, crop[0]] = crop[1]
        line = PreparedLine(np.zeros((32, 64), np.float32), [], (10, 10, 20, 20), (0.0, 0.0), (1.0, 1.0),
                            None if crop is None else 0)
        prepared = Prepared(np.zeros((len(probs), 28, 28, 1), np.float32), [], 100, 100, None, [], [line])
        return assemble(prepared, probs, [steps])["number"]

    assert read_row((7,), (1, 0.95)) == "1"
    assert read_row((7,), (1, MIN_CONFIDENCE - 0.05)) == "7"
    assert read_row((), (4, 0.99)) is None  # the reader saw no digit there
    assert read_row((7,), (10, 0.99)) == "7"  # the classifier says it is no digit: the reader's reading stands
    assert read_row((2, 3), (1, 0.99)) == "23"
    assert read_row((7,), None) == "7"  # too wide a row to be one digit


def test_rows_that_may_be_one_digit_get_a_crop(v3: Engine) -> None:
    one = v3.prepare((SAMPLES / "7.jpg").read_bytes())
    assert [line.crop for line in one.lines] == [0] and one.crops.shape == (1, 28, 28, 1)
    assert one.crops.max() > 0.9
    three = v3.prepare((SAMPLES / "407__multi.jpg").read_bytes())
    assert [line.crop for line in three.lines] == [None] and len(three.crops) == 0


def pools() -> list:
    """Template digits (training/strokes.py), no data set needed: ten of each digit."""
    from training.strokes import draw as stroke

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    return [(np.stack([(stroke(rng, int(d)) * 255).astype(np.uint8) for d in labels]), labels)] * 2


def scenes(axis: str, value: str, count: int = 10) -> list[tuple[bytes, str]]:
    made = []
    for k in range(count):
        drawn, labels = draw(pools(), np.random.default_rng([k, 11]), axis, value, {(480, 640): 1.0})
        made.append((encode_jpeg(drawn.image, 90), "".join(str(label) for label, box in
                                                          zip(labels, drawn.boxes, strict=True) if box[2] > 0)))
    return made


@pytest.mark.parametrize(("axis", "value", "least"), [
    ("layout", "broken", 7), ("layout", "detached", 7), ("size", "fills", 7), ("stroke", "marker", 7),
    ("size", "small", 7), ("layout", "touching", 5),  # 5 of 10 as committed: the rows are right, the reader is not
    ("size", "tiny", 4),  # 4 of 10 as committed: digits 10 px tall are below what the map marks at the working size
    pytest.param("stroke", "hairline", 7, marks=pytest.mark.xfail(strict=True, reason="the map at half size loses "
                                                                  "1 px strokes (model card)")),
])
def test_generated_digits_the_rules_find_hard(axis: str, value: str, least: int, v3: Engine) -> None:
    """Broken and detached digits, digits filling the frame (some cut by it), marker strokes, small, tiny and touching
    digits, hairline strokes: 10 scenes of template digits each, at least `least` read exactly."""
    made = scenes(axis, value)
    right = sum(number(jpeg, v3) == label for jpeg, label in made)
    assert right >= least, f"{right}/10"


def test_a_digit_cut_by_the_frames_edge_is_read(v3: Engine) -> None:
    """Digits filling a webcam frame with some of their ink off it (at most 15%): 4 of 5 read."""
    cut = []
    for k in range(40):
        drawn, labels = draw(pools(), np.random.default_rng([k, 12]), "size", "fills", {(240, 320): 1.0})
        if min(drawn.visible) < 0.99:
            cut.append((encode_jpeg(drawn.image, 90), "".join(map(str, labels))))
    assert len(cut) >= 5
    assert sum(number(jpeg, v3) == label for jpeg, label in cut[:5]) >= 4


def test_blank_scenes_and_clutter_read_no_digit(v3: Engine) -> None:
    """Blank pages read no digit; clutter alone (scribbles, crossed-out marks, printed words) more often than not:
    v3 read 117 of 200 such scenes as no digit (model card), so half of these 10 at least."""
    rng = np.random.default_rng(5)
    blanks = [encode_jpeg(blank_scene(rng, 480, 640), 90) for _ in range(10)]
    clutter = [encode_jpeg(ink_scene(rng, [], 480, 640, look=Look(paper="clutter")).image, 90) for _ in range(10)]
    assert [number(data, v3) for data in blanks] == [None] * 10
    assert sum(number(data, v3) is None for data in clutter) >= 5
