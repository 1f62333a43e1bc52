"""Which training digits are held out for validation, in one place: training fits on the rest and picks its
best epoch on them, and tools/heldout.py writes its validation scenes with them."""

from __future__ import annotations

import numpy as np

SPLIT_SEED = 2026  # fixed: the validation split never changes with --seed
MNIST_VALIDATION = 5000  # the last 5,000 of MNIST train


def usps_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into USPS train's n digits: (validation, train), a fixed 10% held out."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return order[: n // 10], order[n // 10 :]
