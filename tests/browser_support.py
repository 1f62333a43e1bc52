"""Helpers for the browser tests: Debian's chromium with a fake camera, and the pictures it films."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
FRAME_SIZE = (640, 480)
# A name for 127.0.0.1 that is not "localhost": pages served under it are not a secure context,
# like a phone's http://192.168.x.y page.
LAN_HOST = "phone-lan.test"

# Quiet, deterministic chromium: no GPU, no network of its own, camera and microphone faked.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--use-fake-device-for-media-stream",
    f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1",
]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium, or `make browser`)")


def launch(playwright: Playwright, y4m: Path) -> Browser:
    """Headless chromium whose fake camera plays `y4m`; the camera is allowed only where a context grants it."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={y4m}"],
    )


def camera_scene(sample: Path, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """The sample photo as a webcam would see it: fitted into the frame, the paper's edges extended."""
    image = cv2.imread(str(sample), cv2.IMREAD_COLOR)
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    image = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top = (height - image.shape[0]) // 2
    left = (width - image.shape[1]) // 2
    return cv2.copyMakeBorder(
        image, top, height - image.shape[0] - top, left, width - image.shape[1] - left, cv2.BORDER_REPLICATE
    )


def write_y4m(path: Path, image_bgr: np.ndarray, frames: int = 10, fps: int = 10) -> Path:
    """A YUV4MPEG2 video of `image_bgr` (width and height even) for chromium's fake camera, which loops it."""
    height, width = image_bgr.shape[:2]
    planes = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    return path


def exif_rotated(sample: Path, out: Path, scale: float = 1.0, quality: int = 92) -> Path:
    """A JPEG whose pixels are turned a quarter and whose EXIF orientation (6) turns them back upright.

    Scaled up, it gets sensor-like grain, so that it weighs what a real phone photo of that size does.
    """
    image = Image.open(sample).convert("RGB")
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        grain = np.random.default_rng(0).normal(0, 6, (image.height, image.width, 3))
        image = Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    image.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=quality, exif=exif)
    return out


def self_signed_cert(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate and key for `host` made with openssl (skips the test when openssl is missing)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is missing: no certificate for the HTTPS test")
    cert, key = directory / "cert.pem", directory / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={host}"]
    extension = ["-addext", f"subjectAltName=DNS:{host}"]
    subprocess.run(["openssl", *request, *extension, "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot under artifacts/ (gitignored) for people to look at. A phone's is of its screen: chromium
    drops the touch emulation (and so the page's phone layout) for a full-page capture."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# Every visible control with its size and whether it can be scrolled to; run in the page.
CONTROLS_JS = """() => [...document.querySelectorAll('button, select, [role=tab], label.button, a[href]')]
  .filter((el) => el.offsetParent !== null && !el.classList.contains('skip-link'))
  .map((el) => {
    const r = el.getBoundingClientRect();
    return {name: el.getAttribute('aria-label') || el.textContent.trim() || el.tagName,
            width: r.width, height: r.height, left: r.left + scrollX, right: r.right + scrollX};
  })"""
