"""The held-out scene set, by category: digits no model was fitted on, written into generated photos with one
axis of their look fixed at a time, so that a weakness shows where it lies (issue 21).

    test_digits(data)                            -> MNIST test and USPS test: to report on, never to select on
    validation_digits(data)                      -> what training holds out for validation: to select on
    categorised_scenes(pools, seed, per_value)   -> [(category, value, jpeg, label), ...]
    scene(pools, seed, category, value, k)       -> (jpeg, label): the set's scene k of that value, alone

For each category of AXES and each of its values, `per_value` scenes with that axis fixed and everything else
drawn at random as training's scenes are (`training.scenes.Look`); 1-4 digits a scene except on the "count"
axis, photos of paper except on the "screen" axis, every digit wholly in the frame. Scene k of a value comes
from a Generator of its own, so a smaller per_value makes the first scenes of a bigger one, in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from training.scenes import LAYOUTS, LIGHTS, PAPERS, STROKES, Look, digit_scene, encode_jpeg
from training.split import MNIST_VALIDATION, usps_split

TEST_SEED = 2101  # issue 21
VALIDATION_SEED = 2102
PER_VALUE = 120  # 26 values: 3,120 scenes
POOL_SHARES = (0.75, 0.25)  # each digit from MNIST or USPS
FRAMES = {(240, 320): 0.3, (480, 640): 0.3, (720, 1280): 0.2, (640, 480): 0.1, (1200, 1600): 0.1}  # (h, w)
SIZES = {  # the digits' ink height as a share of the frame's height, at least MIN_INK px
    "tiny": (0.0, 0.05), "small": (0.05, 0.12), "medium": (0.12, 0.3), "large": (0.3, 0.6), "huge": (0.6, 0.85),
}
MIN_INK = 10
COUNTS = {"1": (1, 1), "2": (2, 2), "3-4": (3, 4), "5-8": (5, 8)}
AXES = {
    "stroke": tuple(STROKES),
    "size": tuple(SIZES),
    "count": tuple(COUNTS),
    "layout": tuple(LAYOUTS),
    "paper": tuple(PAPERS),
    "lighting": tuple(light for light in LIGHTS if light),
    "screen": ("dark", "light"),
}
TRIES = 20  # scenes drawn again while a digit is cut by the frame's edge

Pool = tuple[np.ndarray, np.ndarray]  # uint8 (n, 28, 28) white-on-black digits and their labels
Scene = tuple[str, str, bytes, str]  # category, value, JPEG, label


def test_digits(data: Path) -> list[Pool]:
    """MNIST test and USPS test, in POOL_SHARES' order."""
    return [_load(data / name, "x_test", "y_test") for name in ("mnist.npz", "usps.npz")]


def validation_digits(data: Path) -> list[Pool]:
    """The digits training holds out for validation: MNIST train's last 5,000 and USPS train's fixed 10%."""
    mnist_x, mnist_y = _load(data / "mnist.npz", "x_train", "y_train")
    usps_x, usps_y = _load(data / "usps.npz", "x_train", "y_train")
    held_out = usps_split(len(usps_x))[0]
    return [(mnist_x[-MNIST_VALIDATION:], mnist_y[-MNIST_VALIDATION:]), (usps_x[held_out], usps_y[held_out])]


def categorised_scenes(
    pools: list[Pool], seed: int, per_value: int = PER_VALUE, map_fn: Callable[..., Iterable] = map
) -> list[Scene]:
    """`per_value` scenes for each value of each axis of AXES, as (category, value, JPEG bytes, the number on
    it); `map_fn` (a thread pool's map) may make them in parallel, the scenes are the same."""
    jobs = [(axis, value, k) for axis in AXES for value in AXES[axis] for k in range(per_value)]
    made = map_fn(lambda job: scene(pools, seed, *job), jobs)
    return [(axis, value, jpeg, number) for (axis, value, _), (jpeg, number) in zip(jobs, made, strict=True)]


def scene(pools: list[Pool], seed: int, axis: str, value: str, k: int) -> tuple[bytes, str]:
    """Scene k of `value` of the category `axis`, as JPEG bytes, and the number written on it."""
    names = list(AXES)
    rng = np.random.default_rng([seed, names.index(axis), AXES[axis].index(value), k])
    for _ in range(TRIES):
        height, width = list(FRAMES)[rng.choice(len(FRAMES), p=list(FRAMES.values()))]
        n, look = int(rng.integers(1, 5)), Look()
        if axis == "count":
            n = int(rng.integers(COUNTS[value][0], COUNTS[value][1] + 1))
        elif axis == "size":
            low = max(SIZES[value][0], MIN_INK / height)
            share = rng.uniform(low, max(low, SIZES[value][1]))
            # Neighbours stand about 1.2 ink heights apart at most: no more digits than the width holds.
            n = max(1, min(n, 1 + int((0.95 * width / (share * height) - 1) / 1.2)))
            look = Look(size=share)
        else:
            look = Look(**{axis: value})
        sources = rng.choice(len(pools), n, p=POOL_SHARES)
        picks = [(pools[s][0], pools[s][1], int(rng.integers(len(pools[s][1])))) for s in sources]
        style = "screen" if axis == "screen" else "paper"
        image, boxes = digit_scene(rng, [x[i] for x, _, i in picks], height, width, style=style, look=look)
        if all(_inside(box, height, width) for box in boxes):
            break
    number = "".join(str(y[i]) for (_, y, i), box in zip(picks, boxes, strict=True) if box[2] > 0)
    return encode_jpeg(image, 85), number


def _inside(box: tuple[int, int, int, int], height: int, width: int) -> bool:
    """The digit's ink is all in the frame: its box touches no edge."""
    x, y, w, h = box
    return w > 0 and x > 0 and y > 0 and x + w < width and y + h < height


def _load(path: Path, x: str, y: str) -> Pool:
    with np.load(path) as data:
        return data[x], data[y]
