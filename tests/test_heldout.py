"""The held-out scene set (tools/heldout.py) and the looks it fixes (training.scenes.Look): each look is honoured,
measured on the image; the set covers every category and is the same again for its seed; evaluate reports it."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT
from tools import heldout
from training import categories, split
from training.scenes import Look, digit_scene, plain_scene


def ring() -> np.ndarray:
    """A "0" of the MNIST convention: white on black, 20 px tall in 28."""
    digit = np.zeros((28, 28), np.uint8)
    cv2.circle(digit, (14, 14), 8, 255, 3)
    return digit


def bar() -> np.ndarray:
    """A "1"."""
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255
    return digit


def screen(seed: int, digits: list[np.ndarray], **look: object) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Dark ink on a light drawing app's canvas (no light, no camera), so that the ink is what the look made it:
    the gray image and the digits' boxes."""
    rng = np.random.default_rng(seed)
    image, boxes = digit_scene(rng, digits, 240, 320, style="screen", look=Look(screen="light", **look))
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), boxes


def components(ink: np.ndarray) -> int:
    return cv2.connectedComponents(ink.astype(np.uint8))[0] - 1


def stroke_width(ink: np.ndarray) -> float:
    """The mean width of a mask's strokes: twice their area over their outline's length (which goes along both
    sides of each stroke)."""
    outlines, _ = cv2.findContours(ink.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return 2 * float(ink.sum()) / max(sum(cv2.arcLength(outline, True) for outline in outlines), 1.0)


def test_no_look_draws_the_usual_scene() -> None:
    """Training's scenes and `make eval`'s depend on it (checked against the generator before Look by hashing
    60 scenes, blank and written, of five seeds)."""
    rng, again = np.random.default_rng(5), np.random.default_rng(5)
    usual, boxes = digit_scene(rng, [ring(), bar()], 480, 640)
    looked, looked_boxes = digit_scene(again, [ring(), bar()], 480, 640, look=Look())
    assert np.array_equal(usual, looked) and boxes == looked_boxes
    assert rng.random() == again.random()  # the same draws, so what follows them is the same too


def test_an_unknown_look_is_refused() -> None:
    with pytest.raises(ValueError, match="stroke"):
        Look(stroke="crayon")
    with pytest.raises(ValueError, match="share"):
        Look(size=40)


def test_strokes_have_their_width_whatever_the_digit() -> None:
    widths = {}
    for stroke in ("hairline", "pencil", "ballpoint", "marker"):
        measured = []
        for seed in range(3):
            gray, [(x, y, w, h)] = screen(seed, [ring()], stroke=stroke, size=0.5)
            measured.append(stroke_width(gray[y : y + h, x : x + w] < 128))
        widths[stroke] = float(np.median(measured))
    assert widths["hairline"] < 2 < widths["pencil"] < widths["ballpoint"] < widths["marker"]
    assert widths["marker"] > 0.15 * 0.5 * 240  # a share of the ink's height: 120 px here


def test_size_is_the_inks_share_of_the_frame() -> None:
    for share in (0.05, 0.4, 0.85):
        gray, [(x, y, w, h)] = screen(1, [ring()], size=share)
        assert abs(h / gray.shape[0] - share) < 0.2 * share
        assert 0 < y and y + h < gray.shape[0]  # a big digit still fits: its ink, not its MNIST box


def test_touching_digits_overlap_and_spaced_ones_do_not() -> None:
    for seed in range(3):
        gray, boxes = screen(seed, [ring(), bar(), ring()], layout="touching")
        assert all(left[0] + left[2] > right[0] for left, right in zip(boxes, boxes[1:], strict=False))
        assert components(gray < 128) == 1  # their ink meets, not only their boxes
        gray, boxes = screen(seed, [ring(), bar(), ring()], layout="gaps")
        assert all(left[0] + left[2] < right[0] for left, right in zip(boxes, boxes[1:], strict=False))
        assert components(gray < 128) == 3


def test_broken_digits_have_gaps_in_their_strokes() -> None:
    for seed in range(3):
        gray, _ = screen(seed, [bar()], layout="broken")
        assert components(gray < 128) >= 2


def test_detached_digits_have_a_piece_apart_from_the_rest() -> None:
    for seed in range(3):
        gray, _ = screen(seed, [bar()], layout="detached", size=0.5)
        assert components(gray < 128) >= 2


def test_a_digit_filling_the_frame_may_be_cut_by_it() -> None:
    from training.scenes import ink_scene

    cut = [ink_scene(np.random.default_rng(seed), [ring()], look=Look(size=1.1)).visible[0] for seed in range(4)]
    assert all(0 < share < 1 for share in cut)  # 1.1 frames tall: some of its ink is always off the frame


def test_the_ink_mask_is_the_digits_ink_and_nothing_else() -> None:
    """The scene is the very one digit_scene draws; its mask covers the digits' dark strokes, and clutter (ink
    that is no digit's), ruled lines and the table stay out of it."""
    from training.scenes import ink_scene

    for seed in range(4):
        scene = ink_scene(np.random.default_rng(seed), [ring(), bar()], 480, 640, look=Look(paper="clutter"))
        image, boxes = digit_scene(np.random.default_rng(seed), [ring(), bar()], 480, 640, look=Look(paper="clutter"))
        assert np.array_equal(scene.image, image) and scene.boxes == boxes
        for x, y, w, h in boxes:
            assert scene.ink[y : y + h, x : x + w].mean() > 0.1
        outside = np.ones(scene.ink.shape, bool)
        for x, y, w, h in boxes:
            outside[y : y + h, x : x + w] = False
        assert not scene.ink[outside].any()
    blank = ink_scene(np.random.default_rng(1), [], 240, 320, look=Look(paper="clutter"))
    gray = cv2.cvtColor(blank.image, cv2.COLOR_BGR2GRAY)
    assert not blank.ink.any() and (gray < 0.6 * np.median(gray)).sum() > 50  # the clutter is there, not in the mask


def periodic(gray: np.ndarray, axis: int) -> float:
    """How regularly spaced the image's dark rows (axis 0) or columns (axis 1) are, at the best tilt within 10
    degrees: the highest autocorrelation of their brightness profile, high-passed, at a lag of 8 px or more."""
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    h, w = g.shape
    best = 0.0
    for angle in range(-10, 11):
        turned = cv2.warpAffine(g, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h))
        profile = turned[h // 5 : 4 * h // 5, w // 5 : 4 * w // 5].mean(axis=1 - axis)
        profile = profile - cv2.GaussianBlur(profile.reshape(-1, 1), (0, 0), 3).ravel()
        profile = (profile - profile.mean()) / (profile.std() + 1e-6)
        n = len(profile)
        lags = np.arange(8, n // 2)
        correlation = np.correlate(profile, profile, "full")[n - 1 + lags] / (n - lags)
        best = max(best, float(correlation.max()))
    return best


def test_lined_and_squared_papers_show_their_lines() -> None:
    """Over a few seeds, as the lines' tone sometimes all but matches the paper's, as it does in training."""
    scores = {}
    for paper in ("white", "lined", "squared"):
        grays = []
        for seed in range(6):
            image, _ = digit_scene(np.random.default_rng(seed), [ring()], look=Look(paper=paper, size=0.08))
            grays.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        scores[paper] = [float(np.median([periodic(gray, axis) for gray in grays])) for axis in (0, 1)]
    assert scores["white"][0] < 0.6 < 0.8 < scores["lined"][0]
    assert scores["lined"][1] < 0.6 < 0.8 < scores["squared"][1]


def test_a_plain_scene_is_black_ink_at_the_size_asked() -> None:
    gray = cv2.cvtColor(plain_scene(ring()), cv2.COLOR_BGR2GRAY)
    ys, xs = np.nonzero(gray < 128)
    assert gray.max() > 230 and gray.min() < 40
    assert abs((ys.max() - ys.min() + 1) / 240 - 0.6) < 0.1 * 0.6
    assert abs((xs.min() + xs.max()) / 2 - 160) <= 5 and abs((ys.min() + ys.max()) / 2 - 120) <= 5  # in the middle


@pytest.mark.data
def test_the_categorised_set_covers_every_value_and_is_the_same_again(shared_data: Path) -> None:
    pools = heldout.test_digits(shared_data)
    with ThreadPoolExecutor(2) as pool:
        scenes = heldout.categorised_scenes(pools, heldout.TEST_SEED, 1, map_fn=pool.map)
    axes = categories.AXES
    assert [scene[:2] for scene in scenes] == [(axis, value) for axis in axes for value in axes[axis]]
    for axis, value, jpeg, number in scenes:
        low, high = categories.COUNTS[value] if axis == "count" else (1, 4)
        assert low <= len(number) <= high, (axis, value, number)
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).shape in categories.FRAMES
    for axis, value, jpeg, number in scenes[::9]:  # made again alone, in another thread and order
        assert heldout.scene(pools, heldout.TEST_SEED, axis, value, 0) == (jpeg, number)


@pytest.mark.data
def test_validation_digits_are_those_training_holds_out(shared_data: Path) -> None:
    from training.split import usps_split

    (mnist_x, mnist_y), (usps_x, _) = split.validation_digits(shared_data)
    with np.load(shared_data / "mnist.npz") as mnist, np.load(shared_data / "usps.npz") as usps:
        assert np.array_equal(mnist_x, mnist["x_train"][-5000:]) and np.array_equal(mnist_y, mnist["y_train"][-5000:])
        assert np.array_equal(usps_x, usps["x_train"][usps_split(len(usps["x_train"]))[0]])


def test_evaluate_reports_each_category(tmp_path: Path) -> None:
    """`make eval`'s new sections on a data folder of its own making, from the validation digits."""
    digits = np.stack([ring(), bar()] * 10)
    labels = np.array([0, 1] * 10)
    for name in ("mnist", "usps"):
        np.savez(tmp_path / f"{name}.npz", x_train=digits, y_train=labels, x_test=digits, y_test=labels)
    done = subprocess.run(
        [sys.executable, "-m", "tools.evaluate", "--data", str(tmp_path), "--scenes", "0", "--blank", "0",
         "--loss", "3", "--per-value", "1", "--validation"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    values = [[axis, value] for axis in categories.AXES for value in categories.AXES[axis]]
    n = len(values)
    lines = [line.split() for line in done.stdout.splitlines()[-(n + 4):]]
    assert [line[:4] + line[7:8] for line in lines[:2]] == [["engine", "loss,", "MNIST", "validation", "2/2"],
                                                            ["engine", "loss,", "USPS", "validation", "1/1"]]
    assert "gap" in lines[0] and "points" in lines[0]
    assert [line[3:5] for line in lines[2 : n + 2]] == values
    assert all(line[5] in ("0/1", "1/1") for line in lines[2 : n + 2])
    assert lines[n + 2][3] == "all" and lines[n + 2][4].endswith(f"/{n}")
    assert lines[n + 2][-1] == str(heldout.VALIDATION_SEED)
    assert lines[n + 3][3] == "lowest," and lines[n + 3][4:6] in values
