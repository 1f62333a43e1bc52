"""Make the synthetic samples in samples/: `python -m tools.make_samples --data ../shared/data`.

- `407__multi.jpg`: MNIST test digits 4, 0, 7 (the first of each in x_test) written as ink on photo-like
  paper by `training.scenes.digit_scene`, a multi-digit number to read in order.
- `blank__page.jpg`: a photo-like sheet of paper with no digit (`training.scenes.blank_scene`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from server.config import ROOT
from training.scenes import blank_scene, digit_scene, encode_jpeg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.make_samples", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    args = parser.parse_args(argv)

    mnist = np.load(args.data / "mnist.npz")
    x, y = mnist["x_test"], mnist["y_test"]
    digits = [x[np.flatnonzero(y == d)[0]] for d in (4, 0, 7)]
    rng = np.random.default_rng(407)
    image, _ = digit_scene(rng, digits, height=360, width=480, digit_height=150)
    (ROOT / "samples" / "407__multi.jpg").write_bytes(encode_jpeg(image, 85))
    (ROOT / "samples" / "blank__page.jpg").write_bytes(encode_jpeg(blank_scene(rng, 360, 480), 85))


if __name__ == "__main__":
    main()
