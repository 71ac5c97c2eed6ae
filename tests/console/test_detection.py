"""The detection pages in a real browser, through the console and the analysis service (its CPU
worker runs a small random-weights model with a threshold low enough to answer boxes): an image
with its boxes drawn on the canvas (checked in the pixels), a video made here from ultralytics'
bundled images with OpenCV (frames, FPS, pause and play, the saved video), and the camera."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.console.conftest import new_page, screenshot, sign_in

pytestmark = pytest.mark.timeout(600)

# The canvas's box colours (detection.js PALETTE).
PALETTE = [(255, 59, 48), (52, 199, 89), (10, 132, 255), (255, 204, 0), (255, 149, 0),
           (175, 82, 222), (90, 200, 250), (255, 45, 85)]  # fmt: skip


def _assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def _palette_share(png: bytes) -> float:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    near = np.zeros(pixels.shape[:2], dtype=bool)
    for colour in PALETTE:
        near |= (np.abs(pixels - np.array(colour)) <= 6).all(axis=-1)
    return float(near.mean())


def test_an_image_is_analysed_and_its_boxes_drawn(stack, browser):
    page = new_page(browser, stack)
    sign_in(page, stack, "/detection")
    button = page.get_by_role("button", name="Analyse")
    assert button.is_disabled()  # nothing chosen yet
    page.locator("#image-file").set_input_files(str(_assets() / "bus.jpg"))
    button.click()
    assert button.is_disabled()  # once per chosen file
    page.get_by_text("object(s) found by yolov8n").wait_for(timeout=120_000)
    canvas = page.locator("#image-canvas")
    assert int(canvas.get_attribute("data-boxes")) > 0
    with_labels = canvas.screenshot()
    # The boxes (and their labels) in the palette's colours: the photo alone has almost none.
    plain = Image.open(_assets() / "bus.jpg").convert("RGB")
    buffer = io.BytesIO()
    plain.save(buffer, format="PNG")
    assert _palette_share(with_labels) > 3 * _palette_share(buffer.getvalue()) + 0.002
    # Names and scores off: less of the palette (the label backgrounds go).
    page.get_by_label("Names and scores").uncheck()
    without = canvas.screenshot()
    assert _palette_share(without) < _palette_share(with_labels)
    # Display size: the canvas is shown smaller.
    width = canvas.bounding_box()["width"]
    page.get_by_label("Display size").fill("50")
    assert canvas.bounding_box()["width"] < width * 0.75
    page.get_by_label("Display size").fill("100")
    page.get_by_label("Names and scores").check()
    screenshot(page, "detection-image")
    assert not page.outside and not page.js_errors, (page.outside, page.js_errors)


def _video(path: Path, frames: int = 16, fps: float = 4.0) -> Path:
    import cv2

    size = (320, 240)
    images = [cv2.resize(cv2.imread(str(_assets() / n)), size) for n in ("bus.jpg", "zidane.jpg")]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(images[(i // 4) % 2])
    writer.release()
    return path


def test_a_video_is_analysed_frame_by_frame_paused_and_saved(stack, browser, tmp_path):
    import cv2

    video = _video(tmp_path / "bus-zidane.webm")
    page = new_page(browser, stack)
    sign_in(page, stack, "/detection")
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-file").set_input_files(str(video))
    page.get_by_role("button", name="Upload and analyse").click()
    page.wait_for_function("() => document.getElementById('video-upload').value === 100")
    page.wait_for_function(
        "() => document.getElementById('video-frames').textContent === '16'", timeout=60_000
    )
    # Frames drawn as their results arrive, with the live FPS.
    page.wait_for_function(
        "() => Number(document.getElementById('video-frame').textContent) >= 2", timeout=120_000
    )
    assert float(page.locator("#video-fps").inner_text()) > 0
    # Pause: the frame counter stops; play: it goes on.
    page.get_by_role("button", name="Pause").click()
    held = page.locator("#video-frame").inner_text()
    page.wait_for_timeout(1500)
    assert page.locator("#video-frame").inner_text() == held
    page.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "() => Number(document.getElementById('video-frame').textContent) === 16", timeout=180_000
    )
    frame_png = page.locator("#video-canvas").screenshot()
    assert _palette_share(frame_png) > 0.002  # boxes on the last frame
    pixels = np.asarray(Image.open(io.BytesIO(frame_png)).convert("RGB")).astype(int)
    assert pixels.std() > 20  # the picture itself, not a plain background

    # Save as video: enabled once every frame is analysed, with its own progress bar.
    save = page.get_by_role("button", name="Save as video")
    page.wait_for_function("() => !document.getElementById('video-save').disabled", timeout=180_000)
    with page.expect_download() as download:
        save.click()
    saved = tmp_path / "saved.mp4"
    download.value.save_as(saved)
    assert page.locator("#video-save-progress").evaluate("p => p.value") == 100
    capture = cv2.VideoCapture(str(saved))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 16
    capture.release()
    screenshot(page, "detection-video")
    assert not page.js_errors, page.js_errors


def test_the_camera_is_analysed_frame_by_frame(stack, browser):
    page = new_page(browser, stack)
    sign_in(page, stack, "/detection#camera")  # a deep link to the tab
    page.get_by_role("tabpanel", name="Camera").wait_for()
    page.get_by_role("button", name="Start camera").click()
    page.wait_for_function(
        "() => Number(document.getElementById('camera-fps').textContent) > 0", timeout=120_000
    )
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Play").wait_for()
    screenshot(page, "detection-camera")
    assert not page.js_errors, page.js_errors
