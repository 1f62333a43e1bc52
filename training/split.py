"""Which training digits are held out for validation, in one place: training fits on the rest and picks its
best epoch on them, and tools/heldout.py writes its validation scenes with them.

    training_digits(data) / validation_digits(data) -> [(MNIST's digits, labels), (USPS's digits, labels)]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPLIT_SEED = 2026  # fixed: the validation split never changes with --seed
MNIST_VALIDATION = 5000  # the last 5,000 of MNIST train


def usps_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into USPS train's n digits: (validation, train), a fixed 10% held out."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return order[: n // 10], order[n // 10 :]


def training_digits(data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """MNIST train and USPS train, less what is held out for validation."""
    return _pools(data, train=True)


def validation_digits(data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The digits training holds out for validation: MNIST train's last 5,000 and USPS train's fixed 10%."""
    return _pools(data, train=False)


def _pools(data: Path, train: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    with np.load(data / "mnist.npz") as mnist, np.load(data / "usps.npz") as usps:
        mnist_x, mnist_y, usps_x, usps_y = mnist["x_train"], mnist["y_train"], usps["x_train"], usps["y_train"]
    held_out, rest = usps_split(len(usps_x))
    if train:
        return [(mnist_x[:-MNIST_VALIDATION], mnist_y[:-MNIST_VALIDATION]), (usps_x[rest], usps_y[rest])]
    return [(mnist_x[-MNIST_VALIDATION:], mnist_y[-MNIST_VALIDATION:]), (usps_x[held_out], usps_y[held_out])]
