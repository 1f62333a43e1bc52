"""`python -m server.recognize`: the exact output scripts rely on, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SAMPLES


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.recognize", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=None if env is None else {**os.environ, **env})


def test_one_line_per_image_and_errors_at_the_end(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    missing = tmp_path / "missing.png"
    files = (SAMPLES / "4.jpg", text, SAMPLES / "407__multi.jpg", missing, SAMPLES / "blank__page.jpg")
    paths = [str(p) for p in files]

    done = run(*paths)

    assert done.stdout.splitlines() == [
        f"{paths[0]}\t4",
        f"{paths[1]}\t-",
        f"{paths[2]}\t407",
        f"{paths[3]}\t-",
        f"{paths[4]}\t-",
    ]
    assert done.returncode == 1
    assert f"{text}: not an image the server can read" in done.stderr
    assert f"{missing}: cannot read the file" in done.stderr


def test_all_readable_exits_zero() -> None:
    done = run(str(SAMPLES / "7.jpg"))
    assert (done.returncode, done.stdout) == (0, f"{SAMPLES / '7.jpg'}\t7\n")


def test_the_keras_backend_reads_alike_by_flag_or_env(tmp_path: Path) -> None:
    paths = [str(SAMPLES / name) for name in ("407__multi.jpg", "9.1.png", "blank__page.jpg")]
    expected = "".join(f"{path}\t{number}\n" for path, number in zip(paths, ("407", "9", "-"), strict=True))

    assert run("--backend", "keras", *paths).stdout == expected
    assert run(*paths, env={"DIGITS_BACKEND": "keras"}).stdout == expected
    # The keras backend loads the .keras file: with only the .tflite there, it says so, and litert reads as ever.
    tflite = tmp_path / "digits.tflite"
    tflite.write_bytes((ROOT / "model" / "digits.tflite").read_bytes())
    assert run("--model", str(tflite), *paths).stdout == expected
    missing = run("--model", str(tflite), *paths, env={"DIGITS_BACKEND": "keras"})
    assert missing.returncode == 2
    assert f"no model at {tmp_path / 'digits.keras'} for the keras backend" in missing.stderr
    refused = run(*paths, env={"DIGITS_BACKEND": "torch"})
    assert refused.returncode == 2 and "DIGITS_BACKEND=torch: choose one of litert, keras" in refused.stderr


def test_the_engine_is_chosen_by_flag_or_env() -> None:
    paths = [str(SAMPLES / name) for name in ("407__multi.jpg", "blank__page.jpg")]
    expected = f"{paths[0]}\t407\n{paths[1]}\t-\n"
    assert run("--engine", "v3", *paths).stdout == expected
    assert run(*paths, env={"DIGITS_ENGINE": "v3"}).stdout == expected
    missing = run("--engine", "v3", "--inkmap", "nowhere.tflite", *paths)
    assert missing.returncode == 2 and "no model at nowhere.tflite" in missing.stderr
    refused = run(*paths, env={"DIGITS_ENGINE": "v4"})
    assert refused.returncode == 2 and "DIGITS_ENGINE=v4: choose one of v3, rules" in refused.stderr


def test_json_prints_the_full_result(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")

    done = run("--json", str(SAMPLES / "407__multi.jpg"), str(empty))

    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["path"] == str(SAMPLES / "407__multi.jpg") and first["number"] == "407"
    assert [d["value"] for d in first["digits"]] == [4, 0, 7]
    assert {"reason", "width", "height"} <= first.keys()
    assert len(first["digits"][0]["box"]) == 4 and len(first["digits"][0]["top3"]) == 3
    assert second == {"path": str(empty), "error": second["error"], "code": "bad_image"}
    assert "empty" in second["error"] and done.returncode == 1


def test_make_eval_reports_each_set(tmp_path: Path) -> None:
    """`make eval` (tools.evaluate) on a data folder of its own making: one 28x28 test set, a few digit scenes made
    from it, a few blank scenes."""
    import numpy as np

    digits = np.zeros((3, 28, 28), np.uint8)
    digits[:, 4:24, 13:15] = 255  # three upright bars: "1"
    np.savez(tmp_path / "mnist.npz", x_test=digits, y_test=np.array([1, 1, 7]))

    done = subprocess.run(
        [sys.executable, "-m", "tools.evaluate", "--data", str(tmp_path), "--scenes", "3", "--blank", "6"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 0, done.stderr
    samples, mnist, scenes, blank = (line.split() for line in done.stdout.splitlines())
    n_samples = len(list(SAMPLES.iterdir()))
    assert samples == [str(SAMPLES), f"{n_samples}/{n_samples}", "100.00%"]
    assert mnist[:3] == ["mnist", "test", "set"]
    assert mnist[-7:] == ["2/3", "66.67%", "0", "refused;", "model", "argmax", "66.67%"]
    assert scenes[:2] == ["digit", "scenes"] and scenes[-2].endswith("/3")
    assert blank[:4] == ["blank", "scenes", "(no", "digit)"] and blank[4].endswith("/6")
