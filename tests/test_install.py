"""`make run` installs requirements-serve.txt only: nothing on the serving path (either engine) may need TensorFlow or
Keras."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

SERVE = """
import sys
from pathlib import Path
import server.app, server.runner
from server.config import Config
from server.engine import Engine
for kind in ("rules", "v3"):
    engine = Engine.from_config(Config(engine=kind))
    print(engine.recognize([Path("samples/4.jpg").read_bytes()])[0]["number"], end=" ")
print()
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_serving_loads_the_model_and_reads_a_digit_without_tensorflow() -> None:
    done = subprocess.run([sys.executable, "-c", SERVE], cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    numbers, modules = done.stdout.splitlines()
    assert numbers.split() == ["4", "4"]  # both engines
    assert {"tensorflow", "keras"}.isdisjoint(modules.split())
