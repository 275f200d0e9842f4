"""The app in a real browser (Debian's chromium through Playwright, headless and offline).

The frame-driven tab: upload a photo and a clip, run, wait for the result video and check that it
plays, make its GIF; the live tab: Chromium's fake webcam (a face clip) streams frames that drive the
photo; the pose tab: a slider move changes the preview; a screenshot of every tab goes to
``test-artifacts/``. Skipped only where /usr/bin/chromium is absent (``scripts/test.sh`` installs it
when it runs as root).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

import app_server

CHROMIUM = Path(os.environ.get("X2FACE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = app_server.ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
PHOTO = "photos/jixinya_EAMM__test_image_anne.png"
CLIP = "clips/jixinya_EAMM__test_video_disgusted.mp4"
TIMEOUT_MS = 120_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(),
                       reason=f"no chromium at {CHROMIUM} (scripts/test.sh installs it when run as root)"),
]


@pytest.fixture(scope="module")
def page(shared_dir, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    from x2face.media import ffmpeg_exe

    server = app_server.serve()
    ARTIFACTS.mkdir(exist_ok=True)
    outside: list[str] = []
    camera = tmp_path_factory.mktemp("camera") / "face.y4m"  # the fake webcam: a face clip, looped by chromium
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(shared_dir / "data/real" / CLIP), "-t", "2",
                    "-pix_fmt", "yuv420p", str(camera)], check=True)
    webcam = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-video-capture={camera}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS + webcam)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        def note(request):
            host = urlparse(request.url).hostname
            web = request.url.startswith(("http://", "https://", "ws://", "wss://"))
            if web and host not in ("127.0.0.1", "localhost"):
                outside.append(request.url)

        page.on("request", note)
        page.goto(server["url"], wait_until="domcontentloaded")
        page.wait_for_selector("#weights-status:has-text('Loaded')")
        page.outside_requests = outside  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"app-{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(300)


def test_frame_driven_tab_runs_and_the_video_plays(page, real_dir):
    open_tab(page, "Frame-driven")
    page.locator("#frames-photos input[type=file]").set_input_files(str(real_dir / PHOTO))
    page.wait_for_selector("text=1 face crop(s) found")  # the crop is shown before running
    page.locator("#frames-driving input[type=file]").set_input_files(str(real_dir / CLIP))
    page.wait_for_selector("#frames-driving video")
    page.get_by_role("button", name="Animate", exact=True).click()
    page.wait_for_function("""() => { const v = document.querySelector('#frames-result video');
                                      return v && v.readyState >= 2 && v.duration > 0; }""")
    played = page.evaluate("""async () => {
        const v = document.querySelector('#frames-result video');
        v.muted = true; v.loop = true; v.currentTime = 0;
        await v.play();
        const t0 = v.currentTime;
        await new Promise(r => setTimeout(r, 800));
        return {t0, t1: v.currentTime, duration: v.duration, error: v.error && v.error.code,
                width: v.videoWidth, height: v.videoHeight};
    }""")
    assert played["error"] is None and played["t1"] > played["t0"], played
    assert abs(played["duration"] - app_server.MAX_SECONDS) < 0.2 and played["width"] > 64, played  # sharp
    page.wait_for_selector("#frames-comparison video")
    page.wait_for_selector("text=face found in")
    page.locator("#frames-result-gif button", has_text="Make a GIF").click()  # the GIF appears to download
    link = page.locator("#frames-result-gif a[download$='.gif']")
    link.wait_for()
    assert link.get_attribute("href")
    shot(page, "1-frame-driven")


def test_pose_slider_changes_the_preview(page, real_dir):
    open_tab(page, "Pose-driven")
    page.locator("#pose-photo input[type=file]").set_input_files(str(real_dir / PHOTO))
    page.wait_for_selector("text=The head in the photo reads as")
    preview = page.locator("#pose-preview img")
    preview.wait_for()
    before = preview.get_attribute("src")
    page.locator("#pose-yaw input[type=range]").fill("45")
    page.wait_for_function("""(before) => { const i = document.querySelector('#pose-preview img');
                                           return i && i.src && i.getAttribute('src') !== before; }""", arg=before)
    shot(page, "2-pose-driven")


def test_face_of_a_group_photo_is_picked_from_the_menu(page, real_dir, tmp_path):
    from helpers import group_photo
    from x2face.media import write_image

    group = write_image(tmp_path / "group.png", group_photo(real_dir))  # a small face left, a large one right
    open_tab(page, "Pose-driven")
    page.locator("#pose-photo input[type=file]").set_input_files(str(group))
    page.wait_for_selector("text=the largest of 2 faces (pick another under Face)")
    preview = page.locator("#pose-preview img")
    before = preview.get_attribute("src")
    page.locator("#pose-face input").click()
    page.get_by_role("option", name="the leftmost").click()
    page.wait_for_selector("text=the leftmost of 2 faces")
    page.wait_for_function("""(before) => { const i = document.querySelector('#pose-preview img');
                                           return i && i.src && i.getAttribute('src') !== before; }""", arg=before)
    shot(page, "2-pose-group-photo")


def test_motion_strength_is_usable_with_relative_motion_only(page):
    open_tab(page, "Frame-driven")
    slider = page.locator("#frames-strength input[type=range]")
    assert slider.is_disabled()
    page.locator("#frames-relative input[type=checkbox]").check()
    page.wait_for_function("() => !document.querySelector('#frames-strength input[type=range]').disabled")
    page.locator("#frames-relative input[type=checkbox]").uncheck()
    page.wait_for_function("() => document.querySelector('#frames-strength input[type=range]').disabled")


def wait_playable(page, selector: str) -> dict:
    """Wait for a result <video> that has decoded data; its size, length and error code."""
    page.wait_for_function("""(sel) => { const v = document.querySelector(sel);
                                         return v && v.readyState >= 2 && v.duration > 0; }""", arg=selector)
    return page.evaluate("""(sel) => { const v = document.querySelector(sel);
        return {duration: v.duration, width: v.videoWidth, error: v.error && v.error.code}; }""", selector)


def test_audio_tab_runs_its_example(page):
    open_tab(page, "Audio-driven")
    page.locator("#audio-examples tbody tr").first.click()
    page.get_by_role("button", name="Speak", exact=True).click()
    video = wait_playable(page, "#audio-result video")
    assert video["error"] is None and video["width"] > 64 and abs(video["duration"] - app_server.MAX_SECONDS) < 0.2
    shot(page, "3-audio-driven")


def test_edit_tab_runs_its_example(page):
    open_tab(page, "Video editing")
    page.locator("#edit-examples tbody tr").first.click()
    page.wait_for_selector("text=Paint on the embedded face")  # the embedded face is on the canvas
    page.get_by_role("button", name="Render the edited face", exact=True).click()
    video = wait_playable(page, "#edit-result video")
    assert video["error"] is None and video["width"] > 64
    page.wait_for_selector("text=edit (an overlay) driven by driving.mp4")
    shot(page, "4-video-editing")
    assert not page.outside_requests, page.outside_requests  # the page works offline


def test_live_webcam_tab_drives_the_photo(page, real_dir):
    """Chromium's fake camera plays a face clip: streamed frame by frame, each one drives the photo."""
    open_tab(page, "Live webcam")
    page.locator("#live-examples button").first.click()  # the tab's example photo (one input: a gallery)
    page.wait_for_selector("#live-photo img")
    page.locator("#live-webcam").get_by_text("Click to Access Webcam").click()
    page.locator("#live-webcam button[aria-label='capture photo']").click()  # "Record": start streaming
    page.wait_for_selector("#live-status:has-text('webcam frames')")
    result = page.locator("#live-result img")
    first = result.get_attribute("src")
    page.wait_for_function("""(first) => { const i = document.querySelector('#live-result img');
                                           return i && i.src !== first; }""", arg=first)  # a new frame came
    page.wait_for_function("""() => /face in ([3-9]|\\d\\d+) of/.test(
                                  document.querySelector('#live-status').innerText)""")
    status = page.locator("#live-status").inner_text()
    assert "no face" not in status, status
    shot(page, "1b-live-webcam")
    page.locator("#live-webcam button[aria-label='capture photo']").click()  # stop
    page.locator("#live-save").click()  # the results streamed so far, as a video
    video = wait_playable(page, "#live-video video")
    assert video["error"] is None and video["width"] > 64 and video["duration"] > 0.1, video
    page.wait_for_selector("text=of the live result, at 10 fps")
    shot(page, "1c-live-saved")
