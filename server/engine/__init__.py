"""The recognition engine: image bytes -> digits. It imports nothing from the serving code.

    decode      bytes -> grayscale image as the user sees it (EXIF orientation applied), shrunk while decoding
    preprocess  image -> digit candidates, their MNIST-style 28x28 crops, and their lines
    prepare     decode + preprocess for one image: a Prepared (crops, boxes, ways to read each candidate, lines)
    backends    how the networks run: LiteRT (the default) or Keras
    classifier  crops -> probabilities: `load_classifier(path, backend)`
    inkmap      image -> where a digit's ink is, learned (v3): `load_inkmap(path, backend)`
    reader      lines -> per step probabilities, and those -> digits: `load_reader(path, backend)`
    assemble    probabilities -> the result: the number, per digit value, confidence, top-3 and box
    rows        the ink map -> rows of digits by plain geometry, each the line reader's input (v3)
    engine      `Engine`: the networks loaded once and all of it for many images, every crop in one network call
"""

from .assemble import MIN_CONFIDENCE, assemble, read
from .backends import BACKENDS, model_file
from .classifier import CLASSES, NOT_A_DIGIT, Classifier, load_classifier
from .decode import ImageError
from .engine import KINDS, Classify, Engine, ReadLines, classify_batch, read_lines_batch
from .inkmap import InkMap, load_inkmap
from .prepare import Prepared, prepare
from .reader import LineReader, load_reader

__all__ = [
    "BACKENDS", "CLASSES", "KINDS", "MIN_CONFIDENCE", "NOT_A_DIGIT", "Classifier", "Classify", "Engine", "ImageError",
    "InkMap", "LineReader", "Prepared", "ReadLines", "assemble", "classify_batch", "load_classifier", "load_inkmap",
    "load_reader", "model_file", "prepare", "read", "read_lines_batch",
]
