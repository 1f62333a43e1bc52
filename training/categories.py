"""The categories of a scene's look, and scenes drawn by them: one axis fixed, everything else at random.

    draw(pools, rng, axis, value) -> (Scene: image, boxes, ink mask; each digit's label)

The held-out evaluation (tools/heldout.py) draws its scenes this way, one value at a time, from digits no model
was fitted on; the line reader's training (training/line_data.py) draws them from training digits, any value.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.scenes import LAYOUTS, LIGHTS, PAPERS, STROKES, Look, Scene, ink_scene

POOL_SHARES = (0.75, 0.25)  # each digit from MNIST or USPS
FRAMES = {(240, 320): 0.3, (480, 640): 0.3, (720, 1280): 0.2, (640, 480): 0.1, (1200, 1600): 0.1}  # (h, w)
SIZES = {  # the digits' ink height as a share of the frame's height, at least MIN_INK px
    "tiny": (0.0, 0.05), "small": (0.05, 0.12), "medium": (0.12, 0.3), "large": (0.3, 0.6), "huge": (0.6, 0.85),
    "fills": (0.8, 1.2),  # filling the frame, maybe a little cut by its edges
}
CUT = "fills"  # the one size whose digits may be cut by the frame, each keeping MIN_VISIBLE of its ink
MIN_VISIBLE = 0.85
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
TRIES = 20  # scenes drawn again while a digit is cut by the frame's edge (more than a CUT size's may be)

Pool = tuple[np.ndarray, np.ndarray]  # uint8 (n, 28, 28) white-on-black digits and their labels


Box = tuple[int, int, int, int]


def draw(pools: list[Pool], rng: np.random.Generator, axis: str | None, value: str | None,
         frames: dict[tuple[int, int], float] = FRAMES, pen: str | None = None) -> tuple[Scene, list[int]]:
    """A scene with `axis` fixed to `value` (None: training's mix) and each digit's label, in a frame of `frames`
    (height, width: chance), its digits written with `pen` (a stroke of STROKES) whatever the axis, when given."""
    for _ in range(TRIES):
        height, width = list(frames)[rng.choice(len(frames), p=list(frames.values()))]
        n, look = int(rng.integers(1, 5)), Look()
        if axis == "count":
            n = int(rng.integers(COUNTS[value][0], COUNTS[value][1] + 1))
        elif axis == "size":
            low = max(SIZES[value][0], MIN_INK / height)
            share = rng.uniform(low, max(low, SIZES[value][1]))
            # Neighbours stand about 1.2 ink heights apart at most: no more digits than the width holds.
            n = max(1, min(n, 1 + int((0.95 * width / (share * height) - 1) / 1.2)))
            look = Look(size=share)
        elif axis is not None:
            look = Look(**{axis: value})
        if pen and axis != "stroke":
            look = replace(look, stroke=pen)
        sources = rng.choice(len(pools), n, p=POOL_SHARES)
        picks = [(pools[s][0], pools[s][1], int(rng.integers(len(pools[s][1])))) for s in sources]
        style = "screen" if axis == "screen" else "paper"
        scene = ink_scene(rng, [x[i] for x, _, i in picks], height, width, style=style, look=look)
        if (axis, value) == ("size", CUT) and min(scene.visible) >= MIN_VISIBLE or all(
                _inside(box, height, width) for box in scene.boxes):
            break
    return scene, [int(y[i]) for _, y, i in picks]


def _inside(box: tuple[int, int, int, int], height: int, width: int) -> bool:
    """The digit's ink is all in the frame: its box touches no edge."""
    x, y, w, h = box
    return w > 0 and x > 0 and y > 0 and x + w < width and y + h < height
