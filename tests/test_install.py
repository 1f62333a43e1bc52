"""`make run` installs requirements-serve.txt only: nothing on the serving path may need TensorFlow or Keras."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

SERVE = """
import sys
from pathlib import Path
import server.app, server.runner
from server.config import Config
from server.engine import load_classifier, recognize
classifier = load_classifier(Config().model_path)
print(recognize([Path("samples/4.jpg").read_bytes()], classifier.classify)[0]["number"])
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_serving_loads_the_model_and_reads_a_digit_without_tensorflow() -> None:
    done = subprocess.run([sys.executable, "-c", SERVE], cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    number, modules = done.stdout.splitlines()
    assert number == "4"
    assert {"tensorflow", "keras"}.isdisjoint(modules.split())
