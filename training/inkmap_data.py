"""Training crops for the ink map: photo-like scenes with the exact mask of their digits' ink, cut at random scales.

    crops(pools, n, seed) -> (gray (m, CROP, CROP) uint8, ink (m, CROP, CROP) uint8 0/1): CROPS_PER_SCENE a scene
    save(crops, path) / load(path) -> the same arrays, kept in an .npz file between runs

A scene is drawn by `training.categories.draw` with one axis of its look fixed at random (or none, as training's
scenes are), from training digits only; a share of them has no digit at all, half of those with clutter (ink that
is no digit's); half of them are written with a pen thinner or bolder than MNIST's strokes, as most real photos
are. Each scene is shrunk by a random factor, so that one network sees digits and strokes of every size the
engine's working images hold (frames of 320x240 to photos of 1000x750), then cut into square crops.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from training.categories import AXES, Pool, draw
from training.scenes import Look, blank_scene, ink_scene

CROP = 192  # the network is fully convolutional: any size works, this one holds a few digits with their context
CROPS_PER_SCENE = 2
BLANK_SHARE = 0.15
MIX_SHARE = 0.3  # scenes with no axis fixed; the rest fix one of AXES' values, every value alike
# Bigger frames hold the bold digits that fill a photo: shrunk, their strokes are 30-120 px wide.
FRAMES = {(240, 320): 0.45, (480, 640): 0.35, (720, 1280): 0.2}
MIN_SCALE = 0.4
# Real photos are mostly written with pens far thinner than MNIST's strokes: half the scenes take one of these.
PEN_SHARE = 0.5
PENS = {"hairline": 0.2, "pencil": 0.3, "ballpoint": 0.35, "marker": 0.15}
RECIPE = 2  # in the crops' file name: crops made by an earlier recipe are not used again
CHUNK = 100

Crops = tuple[np.ndarray, np.ndarray]


def crops(pools: list[Pool], n: int, seed: int, workers: int = 2) -> Crops:
    """The crops of `n` scenes, the same for the same seed, made in `workers` processes."""
    chunks = [(pools, seed, start, min(n, start + CHUNK)) for start in range(0, n, CHUNK)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_chunk, chunks))
    return np.concatenate([g for g, _ in parts]), np.concatenate([m for _, m in parts])


def _chunk(args: tuple[list[Pool], int, int, int]) -> Crops:
    pools, seed, start, stop = args
    made = [crop for k in range(start, stop) for crop in scene_crops(pools, np.random.default_rng([seed, k]))]
    return np.stack([g for g, _ in made]), np.stack([m for _, m in made])


def scene(pools: list[Pool], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scene as the engine sees it (grayscale) and its digits' ink (uint8 0/1)."""
    height, width = list(FRAMES)[rng.choice(len(FRAMES), p=list(FRAMES.values()))]
    values = [(axis, value) for axis in AXES for value in AXES[axis]]
    if rng.random() < BLANK_SHARE:
        if rng.random() < 0.5:
            image = blank_scene(rng, height, width)
        else:
            image = ink_scene(rng, [], height, width, look=Look(paper="clutter")).image
        ink = np.zeros((height, width), bool)
    else:
        axis, value = values[rng.integers(len(values))] if rng.random() >= MIX_SHARE else (None, None)
        pen = str(rng.choice(list(PENS), p=list(PENS.values()))) if rng.random() < PEN_SHARE else None
        drawn, _ = draw(pools, rng, axis, value, FRAMES, pen)
        image, ink = drawn.image, drawn.ink
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), ink.astype(np.uint8)


def scene_crops(pools: list[Pool], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """CROPS_PER_SCENE crops of one scene, shrunk by a random factor first (never below CROP on its short side)."""
    gray, ink = scene(pools, rng)
    height, width = gray.shape
    scale = rng.uniform(max(MIN_SCALE, CROP / min(height, width)), 1.0)
    if scale < 1.0:
        size = (round(width * scale), round(height * scale))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        ink = (cv2.resize(ink.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.4).astype(np.uint8)
        height, width = gray.shape
    out = []
    for _ in range(CROPS_PER_SCENE):
        y, x = int(rng.integers(0, height - CROP + 1)), int(rng.integers(0, width - CROP + 1))
        out.append((gray[y : y + CROP, x : x + CROP], ink[y : y + CROP, x : x + CROP]))
    return out


def save(made: Crops, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, gray=made[0], ink=made[1])


def load(path: Path) -> Crops:
    with np.load(path) as data:
        return data["gray"], data["ink"]
