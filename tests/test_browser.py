"""The page in a real browser (Debian's chromium, headless, fake camera) against the real server.

One browser for the module; the tests from live mode to the slideshow share one page, in order, so the
slideshow replays what the earlier tests sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import (
    CONTROLS_JS,
    LAN_HOST,
    camera_scene,
    exif_rotated,
    launch,
    require_chromium,
    screenshot,
    self_signed_cert,
    write_y4m,
)
from conftest import SAMPLES, Server, free_port, running_server, sample_label
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Playwright, WebSocket, expect, sync_playwright

pytestmark = pytest.mark.browser

CAMERA_SAMPLE = SAMPLES / "4.jpg"  # what the fake camera films
PHOTO_SAMPLE = SAMPLES / "1.jpg"  # what is sent as a photo: landscape, so a photo on its side shows
NUMBER_SAMPLE = SAMPLES / "407__multi.jpg"  # several digits, for the layout's screenshots
TIMEOUT_MS = 30_000

# Records every reading the page shows, in order.
WATCH_READINGS_JS = """() => {
  window.readingsSeen = [];
  const reading = document.querySelector('[data-testid=reading]');
  new MutationObserver(() => window.readingsSeen.push(reading.textContent))
    .observe(reading, {childList: true, characterData: true, subtree: true});
}"""

# Records every slide the page shows (seq, number, kind), in order, from the figure's data attributes.
WATCH_SLIDES_JS = """() => {
  window.slidesSeen = [];
  const figure = document.querySelector('[data-testid=slide]');
  new MutationObserver(() => {
    const last = window.slidesSeen.at(-1);
    const {seq, number, kind} = figure.dataset;
    if (!last || last.seq !== seq) window.slidesSeen.push({seq, number, kind});
  }).observe(figure, {attributes: true, attributeFilter: ['data-seq']});
}"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    y4m = write_y4m(tmp_path_factory.mktemp("camera") / "digit.y4m", camera_scene(CAMERA_SAMPLE))
    browser = launch(playwright, y4m)
    yield browser
    browser.close()


def open_page(browser: Browser, url: str, **context_options: object) -> Page:
    """A fresh context and page on `url`, connected; the page records the WebSocket frames it sends."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.sockets, page.sent_frames = [], []

    def watch(socket: WebSocket) -> None:
        page.sockets.append(socket)
        socket.on("framesent", lambda payload: page.sent_frames.append(payload))

    page.on("websocket", watch)
    page.goto(url)
    expect(page.get_by_test_id("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def page(browser: Browser, server: Server) -> Iterator[Page]:
    page = open_page(browser, server.url, permissions=["camera"], viewport={"width": 1280, "height": 800})
    yield page
    page.context.close()


def photo_answered(page: Page, path: Path) -> None:
    """Send `path` through the photo input and wait for its answer."""
    frame = page.locator("[data-role=photo-frame]")
    page.get_by_test_id("photo-input").set_input_files(str(path))
    expect(frame).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)


def sent_images(page: Page, kind: int) -> list[bytes]:
    return [f for f in page.sent_frames if isinstance(f, bytes) and len(f) > 5 and f[0] == kind]


def test_live_camera_reads_the_digit_and_draws_boxes(page: Page) -> None:
    page.evaluate(WATCH_READINGS_JS)
    page.get_by_role("button", name="Start camera").click()
    expect(page.get_by_test_id("reading")).to_have_text(sample_label(CAMERA_SAMPLE), timeout=TIMEOUT_MS)
    # Twenty more answered frames of the same picture leave the reading as it is: no flicker.
    wait_for_more_frames(page, 20)
    assert [r for r in page.evaluate("window.readingsSeen") if r] == [sample_label(CAMERA_SAMPLE)]
    overlay = page.get_by_test_id("live-overlay")
    expect(overlay).not_to_have_attribute("data-boxes", "0")
    inked = overlay.evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0)"
    )
    assert inked, "the overlay canvas has no box drawn on it"
    expect(page.get_by_test_id("stats")).to_contain_text("fps")
    frames = sent_images(page, kind=1)
    assert frames, "no binary live frames went over the socket"
    assert frames[0][5:7] == b"\xff\xd8", "a live frame is not a JPEG after the 5-byte header"
    ids = [int.from_bytes(frame[1:5], "big") for frame in frames]
    assert ids == sorted(set(ids)), "frame ids are not increasing"

    # The slideshow replays while the camera goes on reading.
    play = page.locator("[data-action=play]")
    play.click()
    expect(page.get_by_test_id("slide")).to_have_attribute("data-number", sample_label(CAMERA_SAMPLE))
    wait_for_more_frames(page, 5)
    expect(play).to_have_attribute("aria-pressed", "true")
    play.click()
    expect(play).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_test_id("reading")).to_have_text(sample_label(CAMERA_SAMPLE))


def wait_for_more_frames(page: Page, count: int) -> None:
    """Wait until `count` more images than now are answered (the strip's newest seq grows by as much)."""
    newest = "() => Number(document.querySelector('[data-role=strip]').lastElementChild?.dataset.seq ?? -1)"
    page.wait_for_function(f"n => ({newest})() >= n", arg=page.evaluate(newest) + count, timeout=TIMEOUT_MS)


def test_photo_mode_reads_photos_and_honours_exif(page: Page, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Photo").click()
    expect(page.get_by_role("button", name="Start camera")).to_be_hidden()
    label = sample_label(PHOTO_SAMPLE)
    upright = Image.open(PHOTO_SAMPLE).size
    small = exif_rotated(PHOTO_SAMPLE, tmp_path / "rotated.jpg")
    large = exif_rotated(PHOTO_SAMPLE, tmp_path / "rotated-large.jpg", scale=4, quality=95)
    assert large.stat().st_size > 2 * 2**20, "the large copy must be over the page's send-as-is size"

    for path in (PHOTO_SAMPLE, small, large):
        photo_answered(page, path)
        expect(page.get_by_test_id("reading")).to_have_text(label)
        assert page.get_by_test_id("photo-overlay").get_attribute("data-boxes") != "0"
        # The preview is the image that was read: upright, with the overlay in its pixel coordinates.
        shown = page.locator("[data-role=photo-image]").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        canvas = page.get_by_test_id("photo-overlay").evaluate("c => [c.width, c.height]")
        assert shown == canvas
        assert (shown[0] > shown[1]) == (upright[0] > upright[1]), f"{path.name} is shown on its side"

    sent = sent_images(page, kind=2)
    assert len(sent) == 3
    assert len(sent[1]) - 5 == small.stat().st_size, "a small photo goes as it is"
    assert len(sent[2]) - 5 < large.stat().st_size / 2, "a large photo is scaled down before sending"


def test_a_photo_without_a_digit_says_why(browser: Browser, server: Server) -> None:
    """Its own session, so the slideshow test's history stays as the tests above left it."""
    page = open_page(browser, server.url)
    try:
        page.get_by_role("tab", name="Photo").click()
        photo_answered(page, SAMPLES / "blank__page.jpg")
        expect(page.get_by_test_id("reading")).to_have_text("")
        # Its own state, not the empty start screen: a verdict, and the reason in plain words.
        expect(page.locator(".reading")).to_have_attribute("data-state", "none")
        expect(page.locator("[data-role=verdict]")).to_have_text("No digit found")
        expect(page.locator("[data-role=verdict]")).to_be_visible()
        expect(page.locator("[data-role=hint]")).to_contain_text("none looks like a digit")
        assert page.get_by_test_id("photo-overlay").get_attribute("data-boxes") == "0"
    finally:
        page.context.close()


def test_a_server_whose_redis_is_down_still_reads_and_the_page_says_the_history_is_local(browser: Browser) -> None:
    with running_server(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.2) as degraded:
        page = open_page(browser, degraded.url)
        try:
            notice = page.get_by_test_id("store-notice")
            expect(notice).to_be_visible(timeout=TIMEOUT_MS)
            expect(notice).to_contain_text("kept on this server only")
            page.get_by_role("tab", name="Photo").click()
            photo_answered(page, PHOTO_SAMPLE)
            expect(page.get_by_test_id("reading")).to_have_text(sample_label(PHOTO_SAMPLE))
        finally:
            page.context.close()


def test_slideshow_replays_frames_and_photos_in_order(page: Page) -> None:
    thumbs = page.locator("[data-role=strip] [data-seq]")
    expect(thumbs.first).to_be_visible()
    strip = thumbs.evaluate_all(
        "ts => ts.map(t => ({seq: t.dataset.seq, number: t.dataset.number, kind: t.dataset.kind}))"
    )
    assert {t["kind"] for t in strip} == {"live", "photo"}

    page.evaluate(WATCH_SLIDES_JS)
    thumbs.first.click()  # from the first slide on
    expect(page.get_by_test_id("slide")).to_have_attribute("data-seq", strip[0]["seq"])
    page.get_by_label("Slideshow speed").select_option("10")
    play = page.locator("[data-action=play]")
    play.click()
    expect(play).to_have_attribute("aria-pressed", "false", timeout=60_000)  # the replay ended
    seen = page.evaluate("window.slidesSeen")
    assert seen == strip, "the replay did not show the history in order with its readings"
    assert [s["number"] for s in seen if s["kind"] == "photo"] == [sample_label(PHOTO_SAMPLE)] * 3

    slide = page.get_by_test_id("slide")
    page.keyboard.press("ArrowLeft")
    expect(slide).to_have_attribute("data-seq", seen[-2]["seq"])
    page.keyboard.press("ArrowRight")
    expect(slide).to_have_attribute("data-seq", seen[-1]["seq"])
    thumbs.first.click()
    expect(slide).to_have_attribute("data-seq", seen[0]["seq"])
    expect(slide).to_have_attribute("data-number", seen[0]["number"])
    swipe(page, page.locator("[data-role=stage]"), -120)
    expect(slide).to_have_attribute("data-seq", seen[1]["seq"])
    swipe(page, page.locator("[data-role=stage]"), 120)
    expect(slide).to_have_attribute("data-seq", seen[0]["seq"])


def test_photos_outlast_the_camera_and_the_count_shown_is_exact(browser: Browser) -> None:
    """Two photos, then the camera: its frames give way to each other, never to a photo; only frames worth
    replaying are kept, not every frame sent; the count the page shows is its thumbnails'. (Here history_frames is
    3 and a live frame of an unchanged reading is kept every 0.3 s, so that seconds of camera go over the bound.)"""
    with running_server(history_frames=3, history_live_every_s=0.3) as small_history:
        page = open_page(browser, small_history.url, permissions=["camera"], viewport={"width": 1280, "height": 800})
        page.get_by_role("tab", name="Photo").click()
        for _ in range(2):
            photo_answered(page, PHOTO_SAMPLE)
        page.get_by_role("tab", name="Camera").click()
        page.get_by_role("button", name="Start camera").click()
        newest = "() => Number(document.querySelector('[data-role=strip]').lastElementChild?.dataset.seq ?? -1)"
        page.wait_for_function(f"() => ({newest})() >= 6", timeout=TIMEOUT_MS)  # 5 live frames kept, 2 dropped
        page.get_by_role("button", name="Stop camera").click()
        strip = page.locator("[data-role=strip] [data-seq]").evaluate_all(
            "ts => ts.map(t => [Number(t.dataset.seq), t.dataset.kind])")
        sent_live = len(sent_images(page, kind=1))
        hint = page.locator("[data-role=slide-hint]").text_content()
        page.context.close()
    assert strip[:2] == [[0, "photo"], [1, "photo"]] and [kind for _, kind in strip[2:]] == ["live"] * 3
    assert f"{len(strip)} images saved" in hint
    assert sent_live > strip[-1][0] - 1, "every live frame was kept"


def swipe(page: Page, target: Locator, dx: int) -> None:
    """A horizontal drag across `target` (pointer events, as a finger's swipe sends them)."""
    box = target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


def test_camera_permission_denied_offers_photos(browser: Browser, server: Server) -> None:
    page = open_page(browser, server.url)  # a context that was not granted the camera
    try:
        page.get_by_role("button", name="Start camera").click()
        problem = page.get_by_test_id("camera-problem")
        expect(problem).to_be_visible()
        expect(problem).to_have_attribute("data-code", "denied")
        expect(problem).to_contain_text("denied")
        page.get_by_role("button", name="Use a photo instead").click()
        photo_answered(page, PHOTO_SAMPLE)
        expect(page.get_by_test_id("reading")).to_have_text(sample_label(PHOTO_SAMPLE))
        # A file that is no picture: said in plain words, the old reading and boxes go, and the page carries on.
        broken = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture at all"}
        page.get_by_test_id("photo-input").set_input_files(files=[broken])
        expect(page.get_by_test_id("photo-problem")).to_have_text(
            "This file isn't a picture this browser can open. Try a photo in JPEG or PNG.")
        expect(page.get_by_test_id("reading")).to_have_text("")
        expect(page.locator(".reading")).to_have_attribute("data-state", "idle")
        photo_answered(page, PHOTO_SAMPLE)
        expect(page.get_by_test_id("photo-problem")).to_be_hidden()
    finally:
        page.context.close()


def test_no_camera_says_so(browser: Browser, server: Server) -> None:
    context = browser.new_context(permissions=["camera"])
    # What a desktop without a webcam answers.
    context.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('none', 'NotFoundError'))"
    )
    page = context.new_page()
    try:
        page.goto(server.url)
        page.get_by_role("button", name="Start camera").click()
        problem = page.get_by_test_id("camera-problem")
        expect(problem).to_have_attribute("data-code", "missing")
        expect(problem).to_contain_text("No camera")
        expect(page.get_by_role("button", name="Use a photo instead")).to_be_visible()
    finally:
        context.close()


def test_insecure_page_explains_https_and_photos_still_work(browser: Browser, server: Server) -> None:
    page = open_page(browser, f"http://{LAN_HOST}:{server.port}/", permissions=["camera"])
    try:
        assert page.evaluate("isSecureContext") is False
        expect(page.get_by_role("tab", name="Photo")).to_have_attribute("aria-selected", "true")
        expect(page.get_by_test_id("photo-status")).to_contain_text("https://")
        expect(page.get_by_test_id("camera-problem")).to_have_attribute("data-code", "insecure")
        photo_answered(page, PHOTO_SAMPLE)
        expect(page.get_by_test_id("reading")).to_have_text(sample_label(PHOTO_SAMPLE))
    finally:
        page.context.close()


def test_https_on_a_lan_name_gives_the_camera(browser: Browser, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, LAN_HOST)
    with running_server(certfile=cert, keyfile=key) as tls:
        page = open_page(browser, f"https://{LAN_HOST}:{tls.port}/", permissions=["camera"], ignore_https_errors=True)
        try:
            assert page.evaluate("isSecureContext") is True
            assert page.sockets[0].url.startswith(f"wss://{LAN_HOST}:{tls.port}/ws")
            page.get_by_role("button", name="Start camera").click()
            expect(page.get_by_test_id("reading")).to_have_text(sample_label(CAMERA_SAMPLE), timeout=TIMEOUT_MS)
        finally:
            page.context.close()


def test_page_shows_a_lost_server_and_reconnects(browser: Browser) -> None:
    port = free_port()
    with running_server(port=port) as first:
        page = open_page(browser, first.url)
    try:
        status = page.get_by_test_id("status")
        expect(status).to_have_text("reconnecting", timeout=TIMEOUT_MS)
        expect(page.get_by_role("alert").filter(has_text="Reconnecting")).to_be_visible()
        with running_server(port=port):
            expect(status).to_have_text("connected", timeout=60_000)
            expect(page.locator("[data-role=banner]")).to_be_hidden()
            page.get_by_role("tab", name="Photo").click()
            photo_answered(page, PHOTO_SAMPLE)
            expect(page.get_by_test_id("reading")).to_have_text(sample_label(PHOTO_SAMPLE))
    finally:
        page.context.close()


def test_a_duplicated_tab_takes_the_session_and_the_first_waits_for_the_user(browser: Browser, server: Server) -> None:
    first = open_page(browser, server.url)
    token = first.evaluate("sessionStorage.getItem('digits.session')")
    # A duplicated tab copies sessionStorage, token included.
    duplicate = browser.new_context()
    duplicate.add_init_script(f"sessionStorage.setItem('digits.session', {json.dumps(token)})")
    second = duplicate.new_page()
    try:
        second.goto(server.url)
        expect(second.get_by_test_id("status")).to_have_text("connected", timeout=TIMEOUT_MS)
        assert second.evaluate("sessionStorage.getItem('digits.session')") == token
        status, banner = first.get_by_test_id("status"), first.get_by_role("alert")
        expect(status).to_have_text("taken over", timeout=TIMEOUT_MS)
        expect(banner).to_contain_text("This session is now open in another tab or window")
        # Longer than the first retry of a lost connection: the first tab has not tried to take it back.
        first.wait_for_timeout(2000)
        assert len(first.sockets) == 1 and status.inner_text() == "taken over"
        banner.get_by_role("button", name="Use it here").click()
        expect(status).to_have_text("connected", timeout=TIMEOUT_MS)
        expect(second.get_by_test_id("status")).to_have_text("taken over", timeout=TIMEOUT_MS)
    finally:
        first.context.close()
        duplicate.close()


@pytest.mark.parametrize(
    "name, options",
    [
        ("phone", {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}),
        ("phone-360", {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}),
        ("desktop", {"viewport": {"width": 1280, "height": 800}}),
    ],
)
def test_layout_fits_and_controls_are_reachable(browser: Browser, server: Server, name: str, options: dict) -> None:
    page = open_page(browser, server.url, device_scale_factor=2 if options.get("is_mobile") else 1, **options)
    try:
        page.get_by_role("tab", name="Photo").click()
        photo_answered(page, NUMBER_SAMPLE)
        expect(page.get_by_test_id("reading")).to_have_text(sample_label(NUMBER_SAMPLE))
        expect(page.get_by_test_id("photo-overlay")).to_have_attribute("data-boxes", "3")
        page.wait_for_timeout(500)  # the reading scrolled into view
        screenshot(page, f"browser-{name}-read", full_page=False)
        if not options.get("is_mobile"):  # beside the reading, the slideshow's controls are in view too
            expect(page.get_by_role("button", name="Play slideshow")).to_be_in_viewport()
        page.get_by_role("button", name="Next slide").click()
        expect(page.get_by_test_id("slide")).to_be_visible()
        screenshot(page, f"browser-{name}", full_page=not options.get("is_mobile"))
        width, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width <= inner, f"the page scrolls sideways: {width} > {inner}"
        controls = page.evaluate(CONTROLS_JS)
        assert len(controls) >= 8
        for control in controls:
            assert control["width"] >= 44 and control["height"] >= 44, f"too small to touch: {control}"
            assert control["left"] >= 0 and control["right"] <= inner, f"off screen: {control}"
    finally:
        page.context.close()


# ---- the page as a new user meets it (issue 31) -------------------------------------------------------------

def reading_state(page: Page) -> str:
    return page.locator(".reading").get_attribute("data-state")


def test_a_reading_leaves_with_its_picture(browser: Browser) -> None:
    """Stop the camera: its reading goes. Lose the server: the live reading is marked old and its boxes go, the
    page retries at least every 2 s and is back once the server answers."""
    port = free_port()
    with running_server(port=port) as first:
        page = open_page(browser, first.url, permissions=["camera"])
        toggle = page.get_by_role("button", name="Start camera")
        toggle.click()
        reading = page.get_by_test_id("reading")
        expect(reading).to_have_text(sample_label(CAMERA_SAMPLE), timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Stop camera").click()
        expect(reading).to_have_text("")
        expect(page.locator(".reading")).to_have_attribute("data-state", "idle")
        page.get_by_role("button", name="Start camera").click()
        expect(reading).to_have_text(sample_label(CAMERA_SAMPLE), timeout=TIMEOUT_MS)
    try:
        expect(page.get_by_test_id("status")).to_have_text("reconnecting", timeout=TIMEOUT_MS)
        expect(page.locator(".reading")).to_have_attribute("data-old", "true")
        expect(page.locator("[data-role=age]")).to_contain_text("Last reading")
        expect(page.get_by_test_id("live-overlay")).to_have_attribute("data-boxes", "0")
        page.wait_for_timeout(4000)  # several refused attempts: the retries do not back off beyond a second or so
        seconds = int(page.locator("[data-role=banner-text]").inner_text().split("Reconnecting in ")[1].split(" s")[0])
        assert seconds <= 2, page.locator("[data-role=banner-text]").inner_text()
        with running_server(port=port):
            expect(page.get_by_test_id("status")).to_have_text("connected", timeout=TIMEOUT_MS)
            expect(reading).to_have_text(sample_label(CAMERA_SAMPLE), timeout=TIMEOUT_MS)
            expect(page.locator(".reading")).to_have_attribute("data-old", "false")
    finally:
        page.context.close()


def test_keyboard_keeps_focus_and_every_control_answers_enter_and_space(browser: Browser, server: Server) -> None:
    page = open_page(browser, server.url, permissions=["camera"], viewport={"width": 1280, "height": 800})
    try:
        toggle = page.locator("[data-role=camera-toggle]")
        toggle.focus()
        page.keyboard.press("Space")
        expect(toggle).to_have_text("Stop camera", timeout=TIMEOUT_MS)
        expect(toggle).to_be_focused()
        wait_for_more_frames(page, 30)
        page.keyboard.press("Space")  # the same key on the same button: the camera stops, no slideshow starts
        expect(toggle).to_have_text("Start camera")
        expect(toggle).to_be_focused()
        expect(page.locator("[data-action=play]")).to_have_attribute("aria-pressed", "false")

        # The thumbnails are one Tab stop, however many frames were saved.
        thumbs = page.locator("[data-role=strip] [data-seq]")
        assert thumbs.count() >= 30
        stops = page.evaluate("""() => [...document.querySelectorAll('[data-role=strip] [data-seq]')]
                                        .filter((t) => t.tabIndex >= 0).length""")
        assert stops == 1
        page.locator("[data-role=strip] [tabindex='0']").focus()
        page.keyboard.press("Home")
        slide = page.get_by_test_id("slide")
        expect(slide).to_have_attribute("data-seq", thumbs.first.get_attribute("data-seq"))
        page.keyboard.press("ArrowRight")
        expect(slide).to_have_attribute("data-seq", thumbs.nth(1).get_attribute("data-seq"))
        expect(thumbs.nth(1)).to_be_focused()

        # The photo buttons open their picker with Enter and with Space.
        page.get_by_role("tab", name="Photo").click()
        choose = page.get_by_role("button", name="Choose a picture")
        for key in ("Enter", "Space"):
            expect(choose).to_be_visible()  # the tab's panel shown: a hidden button takes no focus
            choose.focus()
            expect(choose).to_be_focused()
            with page.expect_file_chooser() as chooser:
                page.keyboard.press(key)
            chooser.value.set_files(str(PHOTO_SAMPLE))
            expect(page.locator("[data-role=photo-frame]")).to_have_attribute("data-state", "done",
                                                                            timeout=TIMEOUT_MS)
            expect(choose).to_be_focused()
    finally:
        page.context.close()


def test_one_numbering_in_the_slideshow(page: Page) -> None:
    """After the tests above: the caption counts the strip's slides from 1, as the thumbnails' names do."""
    thumbs = page.locator("[data-role=strip] [data-seq]")
    count = thumbs.count()
    thumbs.nth(1).click()
    caption = page.locator("[data-role=slide-caption]")
    expect(caption).to_contain_text(f"2 of {count} ·")
    assert thumbs.nth(1).get_attribute("aria-label").startswith(f"2 of {count},")
    page.get_by_role("button", name="Next slide").click()
    expect(caption).to_contain_text(f"3 of {count} ·")
    expect(page.locator("[data-role=legend]")).to_contain_text("marks a photo")


def test_play_plays_after_the_speed_changed(browser: Browser, server: Server) -> None:
    """Change the speed while a replay plays: it goes on at the new speed (the first replay's end does not stop the
    new one); Pause pauses and Play plays."""
    page = open_page(browser, server.url)
    try:
        page.get_by_role("tab", name="Photo").click()
        for _ in range(5):  # a history 4 s long or more: its replay at 1x lasts as long
            photo_answered(page, PHOTO_SAMPLE)
            page.wait_for_timeout(1000)
        play = page.locator("[data-action=play]")
        page.get_by_label("Slideshow speed").select_option("0.5")
        play.click()
        expect(play).to_have_attribute("aria-pressed", "true")
        page.get_by_label("Slideshow speed").select_option("1")  # goes on at the new speed
        page.wait_for_timeout(300)  # the first replay's end has come by now, and left the second one playing
        expect(play).to_have_attribute("aria-pressed", "true")
        play.click()
        expect(play).to_have_attribute("aria-pressed", "false")
        play.click()
        expect(play).to_have_attribute("aria-pressed", "true")
    finally:
        page.context.close()


def test_a_long_number_is_one_line_with_every_digits_details(browser: Browser, server: Server, tmp_path: Path) -> None:
    strip = tmp_path / "long.png"
    names = ["1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg", "6.jpg", "7.jpg", "8.1.jpg", "9.2.jpg"]
    samples = [Image.open(SAMPLES / name).convert("L").resize((240, 320)) for name in names]
    row = Image.new("L", (240 * len(samples), 320), 255)
    for i, sample in enumerate(samples):
        row.paste(sample, (240 * i, 0))
    row.save(strip)
    page = open_page(browser, server.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page.get_by_role("tab", name="Photo").click()
        photo_answered(page, strip)
        number = page.get_by_test_id("reading").inner_text()
        assert len(number) >= 7, number
        lines = page.get_by_test_id("reading").evaluate(
            "n => [n.getClientRects().length, n.scrollWidth <= n.clientWidth, "
            "n.getBoundingClientRect().height / parseFloat(getComputedStyle(n).fontSize)]")
        assert lines[1], "the number is cut off"
        assert lines[2] < 1.6, f"the number wraps: {lines}"
        expect(page.locator("[data-role=bars] .digit-bars")).to_have_count(len(number))
    finally:
        page.context.close()


def test_an_unsure_digit_is_marked(browser: Browser, server: Server, tmp_path: Path) -> None:
    """Most of a 5, cut by the picture's edge: read, but less than 90% sure, and so marked."""
    cut = tmp_path / "cut5.jpg"
    five = Image.open(SAMPLES / "5.jpg")
    five.crop((0, 0, int(five.width * 0.6), five.height)).save(cut, quality=90)
    page = open_page(browser, server.url)
    try:
        page.get_by_role("tab", name="Photo").click()
        photo_answered(page, cut)
        expect(page.get_by_test_id("reading")).not_to_have_text("")
        expect(page.locator("[data-testid=reading] .unsure")).to_have_count(1)
        expect(page.locator(".reading")).to_have_attribute("data-unsure", "true")
        expect(page.locator("[data-role=hint]")).to_contain_text("Unsure")
    finally:
        page.context.close()


def test_a_huge_png_is_shrunk_in_the_browser_and_read(browser: Browser, server: Server, tmp_path: Path) -> None:
    """9000x9000 pixels, more than the server takes (40,000,000): the page decodes it and sends a JPEG."""
    huge = tmp_path / "huge.png"
    digit = Image.open(PHOTO_SAMPLE).convert("L").point(lambda v: 0 if v < 110 else 255).convert("1")
    digit.resize((9000, 9000)).save(huge, optimize=True)
    page = open_page(browser, server.url)
    try:
        page.get_by_role("tab", name="Photo").click()
        photo_answered(page, huge)
        expect(page.get_by_test_id("reading")).to_have_text(sample_label(PHOTO_SAMPLE))
        (sent,) = sent_images(page, kind=2)
        assert sent[5:7] == b"\xff\xd8", "the huge PNG was not sent as a JPEG"
    finally:
        page.context.close()


def test_a_tiny_picture_is_shown_enlarged(browser: Browser, server: Server, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.png"
    Image.open(PHOTO_SAMPLE).convert("L").resize((88, 66)).save(tiny)
    page = open_page(browser, server.url)
    try:
        page.get_by_role("tab", name="Photo").click()
        photo_answered(page, tiny)
        width = page.locator("[data-role=photo-image]").evaluate("i => i.getBoundingClientRect().width")
        assert width >= 88 * 2.5, width
    finally:
        page.context.close()


def test_the_reading_is_in_view_after_a_photo_on_a_small_phone(browser: Browser, server: Server,
                                                               tmp_path: Path) -> None:
    page = open_page(browser, server.url, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                     device_scale_factor=2)
    try:
        # A phone opens on the photo tab: photos are what phones are for here.
        expect(page.get_by_role("tab", name="Photo")).to_have_attribute("aria-selected", "true")
        expect(page.get_by_role("button", name="Take a photo")).to_be_visible()
        photo = Image.open(PHOTO_SAMPLE).convert("RGB")  # a portrait photo: the sample on a tall sheet of its paper
        portrait = Image.new("RGB", (photo.width, photo.width * 2), photo.getpixel((5, 5)))
        portrait.paste(photo, (0, (portrait.height - photo.height) // 2))
        path = tmp_path / "portrait.jpg"
        portrait.save(path, quality=90)
        photo_answered(page, path)
        expect(page.get_by_test_id("reading")).to_have_text(sample_label(PHOTO_SAMPLE))
        expect(page.get_by_test_id("reading")).to_be_in_viewport()
    finally:
        page.context.close()
