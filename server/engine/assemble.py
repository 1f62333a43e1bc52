"""Probabilities -> the result: each candidate read whole or in parts, the digits left to right as one number.

The result is what the protocol sends (docs/protocol.md): the number, a truthful reason when there is none, and
per digit its value, confidence, top-3 and box in the user's image.
"""

from __future__ import annotations

import numpy as np

from .classifier import NOT_A_DIGIT
from .prepare import Prepared

# A candidate is read as a digit only when the model is at least this sure. Chosen on validation data (MNIST
# train's last 5,000, 808 generated negatives, 1,200 blank scenes of another seed than `make eval`'s): 0.5 gave
# the fewest errors of all three together (81; 87 with no minimum, 84 at 0.4 and at 0.6).
MIN_CONFIDENCE = 0.5
# A shape is read in parts only when the model is surer of each part than of the whole by this much: it is
# often near 1.0 for both, and a single wide "5" once read as "85" by 0.0006.
SPLIT_MARGIN = 0.01


def read(probs: np.ndarray) -> np.ndarray:
    """(n, 11) probabilities -> (n,) the digit each crop is read as, or NOT_A_DIGIT: the model's choice, refused
    when that is "not a digit" or when the model is less sure than MIN_CONFIDENCE."""
    values = np.argmax(probs, axis=1)
    return np.where(probs.max(axis=1, initial=0.0) < MIN_CONFIDENCE, NOT_A_DIGIT, values)


def assemble(prepared: Prepared, probs: np.ndarray) -> dict:
    """Read each candidate whole or cut in parts, whichever way the model is surest of, then all digits left to
    right as one number.

    Only ways whose every crop is a digit count. A way's score is how sure the model is of its least sure crop;
    parts must beat the whole by SPLIT_MARGIN. A whole the model refuses does not stop its parts: letting it
    (with its "not a digit" confidence as score) kept a speck from reading "11" but lost more touching digits.
    """
    values = read(probs)
    chosen = []
    for ways in prepared.readings:
        digits_only = [way for way in ways if all(values[j] != NOT_A_DIGIT for j in way)]
        if digits_only:  # max keeps the first of equals: the whole
            chosen += max(digits_only, key=lambda way: min(probs[j].max() for j in way) - SPLIT_MARGIN * (len(way) > 1))
    digits = []
    for i in sorted(chosen, key=lambda i: prepared.boxes[i][0]):
        value, p = int(values[i]), probs[i]
        top3 = np.argsort(p[:NOT_A_DIGIT])[::-1][:3]
        digits.append(
            {
                "value": value,
                "confidence": round(float(p[value]), 4),
                "top3": [[int(d), round(float(p[d]), 4)] for d in top3],
                "box": list(prepared.boxes[i]),
            }
        )
    number = "".join(str(d["value"]) for d in digits) or None
    reason = None if number else prepared.reason or _refusal(probs)
    return {"number": number, "reason": reason, "digits": digits, "width": prepared.width, "height": prepared.height}


def _refusal(probs: np.ndarray) -> str:
    """Why shapes were found and none was read: the model's best guess, when it had one, tells the user that
    the digit was seen and what to improve (a clearer or bigger digit), not that there was nothing there."""
    unsure = probs[np.argmax(probs, axis=1) != NOT_A_DIGIT]
    if not len(unsure):
        return "no shape looks like a digit"
    best = unsure[np.argmax(unsure.max(axis=1))]
    return f"not sure enough to read it (best guess {int(np.argmax(best))}, {best.max():.0%})"
