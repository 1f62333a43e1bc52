"""The held-out scene set, by category: digits no model was fitted on, written into generated photos with one
axis of their look fixed at a time, so that a weakness shows where it lies (issue 21).

    test_digits(data)                            -> MNIST test and USPS test: to report on, never to select on
    categorised_scenes(pools, seed, per_value)   -> [(category, value, jpeg, label), ...]
    scene(pools, seed, category, value, k)       -> (jpeg, label): the set's scene k of that value, alone
    drawn_scene(pools, seed, category, value, k) -> (Scene, labels): the same scene as drawn, with its ink mask

For each category of AXES and each of its values, `per_value` scenes with that axis fixed and everything else
drawn at random as training's scenes are (`training.scenes.Look`); 1-4 digits a scene except on the "count"
axis, photos of paper except on the "screen" axis, every digit wholly in the frame. Scene k of a value comes
from a Generator of its own, so a smaller per_value makes the first scenes of a bigger one, in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from training.categories import AXES, Pool, draw
from training.scenes import Scene, encode_jpeg

TEST_SEED = 2101  # issue 21
VALIDATION_SEED = 2102
PER_VALUE = 120  # 26 values: 3,120 scenes
Categorised = tuple[str, str, bytes, str]  # category, value, JPEG, label


def test_digits(data: Path) -> list[Pool]:
    """MNIST test and USPS test, in POOL_SHARES' order."""
    return [_load(data / name, "x_test", "y_test") for name in ("mnist.npz", "usps.npz")]


def categorised_scenes(
    pools: list[Pool], seed: int, per_value: int = PER_VALUE, map_fn: Callable[..., Iterable] = map
) -> list[Categorised]:
    """`per_value` scenes for each value of each axis of AXES, as (category, value, JPEG bytes, the number on
    it); `map_fn` (a thread pool's map) may make them in parallel, the scenes are the same."""
    jobs = [(axis, value, k) for axis in AXES for value in AXES[axis] for k in range(per_value)]
    made = map_fn(lambda job: scene(pools, seed, *job), jobs)
    return [(axis, value, jpeg, number) for (axis, value, _), (jpeg, number) in zip(jobs, made, strict=True)]


def scene(pools: list[Pool], seed: int, axis: str, value: str, k: int) -> tuple[bytes, str]:
    """Scene k of `value` of the category `axis`, as JPEG bytes, and the number written on it."""
    drawn, labels = drawn_scene(pools, seed, axis, value, k)
    return encode_jpeg(drawn.image, 85), "".join(
        str(label) for label, box in zip(labels, drawn.boxes, strict=True) if box[2] > 0)


def drawn_scene(pools: list[Pool], seed: int, axis: str, value: str, k: int) -> tuple[Scene, list[int]]:
    """Scene k of `value` of the category `axis` as drawn (image, boxes, ink mask) and its digits' labels."""
    rng = np.random.default_rng([seed, list(AXES).index(axis), AXES[axis].index(value), k])
    return draw(pools, rng, axis, value)


def _load(path: Path, x: str, y: str) -> Pool:
    with np.load(path) as data:
        return data[x], data[y]
