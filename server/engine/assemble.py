"""Probabilities -> the result: each candidate read whole or in parts, the digits left to right as one number.

The result is what the protocol sends (docs/protocol.md): the number, a truthful reason when there is none, and
per digit its value, confidence, top-3 and box in the user's image.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from .classifier import NOT_A_DIGIT
from .prepare import Prepared, PreparedLine
from .reader import decode_line

# A candidate is read as a digit only when the model is at least this sure. Chosen on validation data (MNIST
# train's last 5,000, 808 generated negatives, 1,200 blank scenes of another seed than `make eval`'s): 0.5 gave
# the fewest errors of all three together (81; 87 with no minimum, 84 at 0.4 and at 0.6).
MIN_CONFIDENCE = 0.5
# A shape is read in parts only when the model is surer of each part than of the whole by this much: it is
# often near 1.0 for both, and a single wide "5" once read as "85" by 0.0006.
SPLIT_MARGIN = 0.01
LINE_INK = 0.25  # of a line's input, a pixel this dark or more is ink (for a digit's box)
# A line's reading by the line reader replaces the rules' when its least sure digit is LINE_SURE, or when the doubt
# (1 - confidence) about it is under LINE_DOUBT of the doubt about theirs; where the rules read nothing, when that
# digit is LINE_ALONE sure. Chosen on the validation scenes, 300 blank scenes and photos-extra (model card): taking
# the surer of the two readings lost a number of photos-extra and misread a frame of the bench's real ink, and no
# minimum where the rules read nothing read 2 of the blanks.
LINE_SURE = 0.995
LINE_DOUBT = 0.1
LINE_ALONE = 0.9


def read(probs: np.ndarray) -> np.ndarray:
    """(n, 11) probabilities -> (n,) the digit each crop is read as, or NOT_A_DIGIT: the model's choice, refused
    when that is "not a digit" or when the model is less sure than MIN_CONFIDENCE."""
    values = np.argmax(probs, axis=1)
    return np.where(probs.max(axis=1, initial=0.0) < MIN_CONFIDENCE, NOT_A_DIGIT, values)


def assemble(prepared: Prepared, probs: np.ndarray, line_probs: list[np.ndarray] | None = None) -> dict:
    """Read each candidate whole or cut in parts, whichever way the model is surest of; where the line reader read
    a line (`line_probs`, one per prepared line), take its reading of the line instead when `_take_line` says so;
    then all digits left to right as one number.

    Only ways whose every crop is a digit count. A way's score is how sure the model is of its least sure crop;
    parts must beat the whole by SPLIT_MARGIN. A whole the model refuses does not stop its parts: letting it
    (with its "not a digit" confidence as score) kept a speck from reading "11" but lost more touching digits.
    """
    values = read(probs)
    chosen: list[tuple[int, ...]] = []  # per candidate, the crops it is read as
    for ways in prepared.readings:
        digits_only = [way for way in ways if all(values[j] != NOT_A_DIGIT for j in way)]
        # max keeps the first of equals: the whole
        chosen.append(max(digits_only, key=lambda way: min(probs[j].max() for j in way) - SPLIT_MARGIN * (len(way) > 1))
                      if digits_only else ())
    digits = [[_crop_digit(prepared.boxes[i], int(values[i]), probs[i]) for i in way] for way in chosen]
    doubted: list[dict] = []  # rows of the ink map the reader was not sure enough of
    for line, steps in zip(prepared.lines, line_probs or [], strict=False):
        by_line = line_digits(line, steps)
        if not line.candidates:  # a row of the ink map (v3)
            by_line = _read_row(line, by_line, probs)
            sure = bool(by_line) and min(d["confidence"] for d in by_line) >= MIN_CONFIDENCE
            (digits if sure else doubted).append(by_line)
            continue
        by_rules = [digit for c in line.candidates for digit in digits[c]]
        if _take_line(by_rules, by_line):  # the line's digits stand in for all of its candidates'
            for c in line.candidates:
                digits[c] = []
            digits[line.candidates[0]] = by_line
    read_out = sorted((digit for found in digits for digit in found), key=lambda digit: digit["box"][0])
    number = "".join(str(d["value"]) for d in read_out) or None
    reason = None if number else prepared.reason or _refusal(probs, [d for row in doubted for d in row])
    return {"number": number, "reason": reason, "digits": read_out, "width": prepared.width, "height": prepared.height}


def line_digits(line: PreparedLine, steps: np.ndarray) -> list[dict]:
    """The line reader's digits on `line`, each boxed by the ink between the midpoints to its neighbours' runs."""
    reads = decode_line(steps)
    centres = [(r.columns[0] + r.columns[1]) / 2 for r in reads]
    edges = [0.0, *((a + b) / 2 for a, b in pairwise(centres)), float(line.image.shape[1])]
    digits = []
    for r, left, right in zip(reads, edges, edges[1:], strict=False):
        ink = line.image[:, round(left) : round(right)] > LINE_INK
        cols, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
        x0, x1 = (round(left) + cols[0], round(left) + cols[-1] + 1) if len(cols) else (r.columns[0], r.columns[1])
        y0, y1 = (rows[0], rows[-1] + 1) if len(rows) else (0, line.image.shape[0])
        box = (round(line.origin[0] + x0 * line.pixel[0]), round(line.origin[1] + y0 * line.pixel[1]),
               max(1, round((x1 - x0) * line.pixel[0])), max(1, round((y1 - y0) * line.pixel[1])))
        digits.append({"value": r.value, "confidence": round(r.confidence, 4),
                       "top3": [[d, round(p, 4)] for d, p in r.top3], "box": list(box)})
    return digits


def _read_row(line: PreparedLine, by_line: list[dict], probs: np.ndarray) -> list[dict]:
    """A row of the ink map (v3) read: where it may be one digit and the line reader reads one digit there, the
    classifier's reading of its crop, when that is a digit (it learned single digits from far more writers than the
    reader's scenes hold: docs/experiments.md); else the line reader's digits. Where the reader reads nothing, nothing
    stands: the classifier alone reads a page's edge or a shadow's rim as a "1"."""
    if line.crop is None or len(by_line) != 1:
        return by_line
    p = probs[line.crop]
    value = int(read(p[None])[0])
    if value == NOT_A_DIGIT:
        return by_line
    return [_crop_digit(line.box, value, p)]


def _take_line(by_rules: list[dict], by_line: list[dict]) -> bool:
    """Whether the line reader's reading of a line replaces the rules' reading of its candidates: when its least
    sure digit is LINE_SURE, or the doubt about it is under LINE_DOUBT of the doubt about theirs; where the rules
    read nothing, when that digit is LINE_ALONE sure."""
    if not by_line:
        return False
    least = min(d["confidence"] for d in by_line)
    if not by_rules:
        return least >= LINE_ALONE
    return least >= LINE_SURE or 1 - least < LINE_DOUBT * (1 - min(d["confidence"] for d in by_rules))


def _crop_digit(box: tuple[int, int, int, int], value: int, p: np.ndarray) -> dict:
    top3 = np.argsort(p[:NOT_A_DIGIT])[::-1][:3]
    return {"value": value, "confidence": round(float(p[value]), 4),
            "top3": [[int(d), round(float(p[d]), 4)] for d in top3], "box": list(box)}


def _refusal(probs: np.ndarray, doubted: list[dict]) -> str:
    """Why shapes were found and none was read: the best guess of the classifier or the line reader, when they had
    one, tells the user that the digit was seen and what to improve (a clearer or bigger digit), not that there was
    nothing there."""
    unsure = probs[np.argmax(probs, axis=1) != NOT_A_DIGIT]
    guesses = [(float(p.max()), int(np.argmax(p))) for p in unsure]
    guesses += [(d["confidence"], d["value"]) for d in doubted]
    if not guesses:
        return "no shape looks like a digit"
    confidence, value = max(guesses)
    return f"not sure enough to read it (best guess {value}, {confidence:.0%})"
