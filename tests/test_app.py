"""The Gradio app: its helpers (fast, no server) and every tab through gradio_client against a running app
(slow: tiny random weights, real photos, clips and speech from ../shared/data/real, 1-2 s of each)."""
from __future__ import annotations

import json
import os
import re
import struct
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest

from x2face import app_helpers as helpers
from x2face.app_helpers import AppSettings, ModelCache, SourceCache, TempSpace, WEIGHTS_SOURCES
from x2face.errors import InputError, MediaError, NoFaceError, WeightsError
from x2face.media import read_audio

import app_server
from helpers import best_lag, group_clip, group_photo, write_silence  # tests/helpers.py (``helpers`` here is x2face.app_helpers)

PHOTO = "photos/jixinya_EAMM__test_image_anne.png"
PHOTO_PAIR = ["photos/ageitgey_face_recognition__examples_knn_examples_train_rose_leslie_img1.jpg",
              "photos/ageitgey_face_recognition__examples_knn_examples_train_rose_leslie_img2.jpg"]
ANIMAL = "photos/KwaiVGI_LivePortrait__assets_examples_source_s30.jpg"
CLIP_WITH_SOUND = "clips/jixinya_EAMM__test_video_disgusted.mp4"  # 256 px, 25 fps, AAC
CLIP_MPG = "clips/rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"  # MPEG-1 with sound, 360x288
CLIP_SILENT = "clips/AliaksandrSiarohin_first-order-model__demo_old_00.mp4"  # 30 fps, no sound
SPEECH = "speech/OpenTalker_DPE__docs_1.wav"  # 44.1 kHz stereo
LONG_CLIP = "clips/KwaiVGI_LivePortrait__assets_examples_driving_d6.mp4"  # 33.6 s
LONG_SPEECH = "speech/FuxiVirtualHuman_styletalk__samples_source_video_wav_intro.wav"  # 46.3 s
POSE_SWEEP = "yaw sweep (turn left and right)"


def huge_png_header(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG whose header says width x height (the pixel data is missing: nothing may decode it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


# ============================================================================================ helpers (fast)
def test_file_sizes_parse_like_gradio():
    assert helpers.parse_file_size("200mb") == 200 * 1024**2
    assert helpers.parse_file_size("1 GB") == 1024**3
    assert helpers.parse_file_size("500kb") == 500 * 1024
    assert helpers.parse_file_size(1234) == 1234
    for bad in ("lots", "-1mb", "0"):
        with pytest.raises(InputError):
            helpers.parse_file_size(bad)


def test_settings_from_the_environment():
    s = AppSettings.from_env({"X2FACE_WEIGHTS": "me/x2face", "X2FACE_APP_MAX_SECONDS": "12",
                              "X2FACE_APP_CONCURRENCY": "3", "X2FACE_APP_MAX_FILE_SIZE": "10mb"})
    assert (s.weights, s.max_seconds, s.concurrency, s.max_file_size) == ("me/x2face", 12.0, 3, 10 * 1024**2)
    assert s.allow_local_weights and s.default_seconds <= s.max_seconds
    assert not AppSettings.from_env({"SPACE_ID": "me/space"}).allow_local_weights  # a public Space
    assert AppSettings.from_env({"SPACE_ID": "me/space", "X2FACE_APP_LOCAL_WEIGHTS": "1"}).allow_local_weights
    assert AppSettings.from_env({}).weights is None
    with pytest.raises(InputError):
        AppSettings.from_env({"X2FACE_APP_CONCURRENCY": "many"})
    s = AppSettings(max_seconds=4)
    assert s.clamp_seconds(100) == 4 and s.clamp_seconds(1.5) == 1.5 and s.clamp_seconds(None) == s.default_seconds
    with pytest.raises(InputError):
        s.clamp_seconds(-1)
    limits = AppSettings(max_upload_seconds=30, max_image_pixels=1000).limits()
    assert (limits.max_seconds, limits.max_image_pixels) == (30, 1000)
    assert AppSettings().max_fps == 30 and AppSettings.from_env({"X2FACE_APP_MAX_FPS": "24"}).max_fps == 24
    for bad in ("0", "-1", "inf", "nan", "fast"):
        with pytest.raises(InputError, match="X2FACE_APP_MAX_FPS|max_fps"):
            AppSettings.from_env({"X2FACE_APP_MAX_FPS": bad})
    assert [AppSettings.start(v) for v in (None, "", 0, 2.5, "3")] == [0, 0, 0, 2.5, 3]
    for bad in (-1, float("inf"), float("nan"), "soon", [1]):
        with pytest.raises(InputError, match="the start must be a number"):
            AppSettings.start(bad)


def test_fast_clips_are_read_at_a_whole_fraction_of_their_rate(tmp_path):
    from x2face.media import Limits, VideoWriter

    clip = tmp_path / "phone.mp4"
    with VideoWriter(clip, 60) as out:  # frame i is grey level 4 * i: which frames come back says which were read
        for i in range(60):
            out.write(np.full((64, 64, 3), 4 * i, np.uint8))
    reader, note = helpers.open_clip(clip, seconds=None, limits=Limits(max_seconds=5), max_fps=30)
    levels = [int(f.mean().round()) for f in reader]
    assert reader.fps == 30 and note == " (every 2nd frame of a 60 fps clip)"
    assert len(levels) == 30 and all(abs(v - 8 * i) <= 2 for i, v in enumerate(levels)), levels
    reader, note = helpers.open_clip(clip, seconds=0.5, max_fps=25)
    assert reader.fps == 20 and note == " (every 3rd frame of a 60 fps clip)" and len(list(reader)) == 10
    reader, note = helpers.open_clip(clip, seconds=None, max_fps=60)
    assert reader.fps == 60 and note == "" and len(list(reader)) == 60
    with pytest.raises(MediaError, match="limit"):
        helpers.open_clip(clip, seconds=None, limits=Limits(max_seconds=0.5), max_fps=30)


def test_weights_chooser_specs(tmp_path):
    s = AppSettings()
    assert helpers.weights_spec(WEIGHTS_SOURCES[0], "ignored", s) == "demo"
    assert helpers.weights_spec(WEIGHTS_SOURCES[1], " me/x2face-vox@v1 ", s) == "me/x2face-vox@v1"
    for bad in ("", "x2face", "a/b/c", "/abs/path", "me/with space"):
        with pytest.raises(WeightsError, match="owner/name"):
            helpers.weights_spec(WEIGHTS_SOURCES[1], bad, s)
    assert helpers.weights_spec(WEIGHTS_SOURCES[2], str(tmp_path), s) == str(tmp_path.resolve())
    with pytest.raises(WeightsError, match="no such folder"):
        helpers.weights_spec(WEIGHTS_SOURCES[2], str(tmp_path / "missing"), s)
    with pytest.raises(WeightsError, match="switched off"):
        helpers.weights_spec(WEIGHTS_SOURCES[2], str(tmp_path), AppSettings(allow_local_weights=False))
    with pytest.raises(WeightsError):
        helpers.weights_spec("somewhere else", "", s)
    with pytest.raises(WeightsError, match=r"got 'a/bbbbb.*\.\.\. \(5002 characters\)'$"):  # not all of it again
        helpers.weights_spec(WEIGHTS_SOURCES[1], "a/" + "b" * 5000, s)
    # the chooser starts where the app's default weights are
    assert helpers.chooser_default(None) == (WEIGHTS_SOURCES[0], "")
    assert helpers.chooser_default("me/x2face") == (WEIGHTS_SOURCES[1], "me/x2face")
    assert helpers.chooser_default(str(tmp_path)) == (WEIGHTS_SOURCES[2], str(tmp_path))


def test_training_summary_reads_provenance():
    assert "unknown" in helpers.training_summary({})
    trained = {"stage": 2, "steps": 3000, "data": {"sources": ["synthetic", "real"], "real": {
        "manifests": ["../shared/data/real/MANIFEST.tsv"], "voxceleb_roots": []}}, "pose_head": {"frames": {}}}
    text = helpers.training_summary(trained)
    assert "synthetic face world" in text and "real face videos (real)" in text and "stage 2, 3000 steps" in text
    assert "pose head fitted" in text
    assert "release" in helpers.training_summary({"source": "converted from the authors' X2Face release (ECCV 2018)"})
    assert "provenance.json (zzz)" in helpers.training_summary({"zzz": 1})


def test_temp_space_sweeps_old_jobs_and_cleans_up(tmp_path):
    space = TempSpace(tmp_path / "app", max_age_s=60)
    old, new = space.job_dir(), space.job_dir()
    assert old != new and old.is_dir() and space.contains(old) and not space.contains(tmp_path)
    (old / "result.mp4").write_bytes(b"x")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert space.sweep() == 1 and not old.exists() and new.exists()
    space.cleanup()
    assert not (tmp_path / "app").exists()


def test_jobs_write_into_the_app_temp_folder():
    space = helpers.app_temp()
    assert space is helpers.app_temp()
    job = helpers.job_dir()
    assert space.contains(job) and job.is_dir()


def test_model_cache_loads_once_and_says_what_is_missing(tmp_path, monkeypatch):
    app_server.save_tiny_weights(tmp_path / "w")
    models = ModelCache(AppSettings(weights=str(tmp_path / "w"), device="cpu"), capacity=1)
    a = models.get(None)
    assert models.get(str(tmp_path / "w")) is a and a.has_pose and a.has_audio
    md = a.markdown()
    assert "64 px" in md and "Trained on" in md and "CPU" in md and "Pose control:** yes" in md
    assert "smoke-test" not in md and not a.is_shipped_demo  # only the repository's own demo folder is flagged
    monkeypatch.setenv("X2FACE_DEMO_WEIGHTS", str(tmp_path / "no-demo-here"))
    with pytest.raises(WeightsError, match="no bundled demo weights") as err:
        models.get("demo")
    assert "Hub repo" in helpers.missing_weights_markdown(err.value)
    app_server.save_tiny_weights(tmp_path / "plain", heads=False)
    plain = models.get(str(tmp_path / "plain"))
    assert not plain.has_pose and "fit-pose" in plain.markdown()
    assert models.get(str(tmp_path / "w")) is not a  # capacity 1: the first was dropped and is loaded again


def test_weights_panel_says_the_shipped_demo_weights_are_a_smoke_test(monkeypatch):
    """The repository's own assets/x2face-demo get the quality note, however they were named."""
    from x2face.hub import REPO_ROOT

    monkeypatch.delenv("X2FACE_DEMO_WEIGHTS", raising=False)
    models = ModelCache(AppSettings(device="cpu"))
    for spec in ("demo", str(REPO_ROOT / "assets" / "x2face-demo")):  # the literal path, not hub's constant
        loaded = models.get(spec)
        assert loaded.is_shipped_demo and helpers.SHIPPED_DEMO_NOTE in loaded.markdown()


def test_source_cache_embeds_each_photo_set_once(real_dir, tmp_path):
    app_server.save_tiny_weights(tmp_path / "w")
    models = ModelCache(AppSettings(weights=str(tmp_path / "w"), device="cpu"))
    sources = SourceCache(models)
    with sources.get(None, [str(real_dir / PHOTO)]) as pipe:
        first = pipe
        assert pipe.source.crops[0].shape == (64, 64, 3)
    with sources.get(None, [{"path": str(real_dir / PHOTO)}]) as pipe:
        assert pipe is first  # same bytes: no second crop and embedding
    with sources.get(None, [str(real_dir / PHOTO)]) as busy:  # a render of the photo holds its pipeline ...
        with sources.get(None, [str(real_dir / PHOTO)], wait=False) as preview:  # ... a preview gets its own
            assert preview is not busy and np.array_equal(preview.source.crops[0], busy.source.crops[0])
    with sources.get(None, [str(real_dir / PHOTO)], wait=False) as pipe:
        assert pipe is first  # free again: the cached one
    renamed = tmp_path / "someone-else.png"
    renamed.write_bytes((real_dir / PHOTO).read_bytes())
    with sources.get(None, [str(renamed)]) as pipe:  # the same bytes as another visitor's, named otherwise
        assert pipe is not first and pipe.source.names == ["someone-else.png"]
    with sources.get(None, [str(real_dir / p) for p in PHOTO_PAIR]) as pipe:
        assert pipe is not first and len(pipe.source.crops) == 2
    with pytest.raises(NoFaceError, match="s30.jpg"):
        with sources.get(None, [str(real_dir / ANIMAL)]):
            pass
    with pytest.raises(MediaError, match="huge.png is (too large|20000x20000)"):
        with sources.get(None, [str(huge_png_header(tmp_path / "huge.png"))]):
            pass
    with pytest.raises(InputError, match="upload a photo"):
        with sources.get(None, []):
            pass


def test_live_step_tracks_the_webcam_face_across_frames(real_dir, tmp_path):
    from x2face.media import VideoReader

    app_server.save_tiny_weights(tmp_path / "w")
    sources = SourceCache(ModelCache(AppSettings(weights=str(tmp_path / "w"), device="cpu")))
    session, sessions = None, []
    for frame in VideoReader(real_dir / CLIP_WITH_SOUND, seconds=0.2):
        shown, session, note = helpers.live_step(sources, None, str(real_dir / PHOTO), frame, session)
        sessions.append(session)
    assert shown.shape == (helpers.LIVE_HEIGHT, 2 * helpers.LIVE_HEIGHT + 4, 3)  # your face | the result
    assert note == "face in 5 of 5 webcam frames" and all(x is session for x in sessions)  # one follows the stream
    _, session, note = helpers.live_step(sources, None, str(real_dir / PHOTO), np.zeros((240, 320, 3), np.uint8),
                                         session)
    assert note == "face in 5 of 6 webcam frames; no face now"
    _, other, _ = helpers.live_step(sources, None, str(real_dir / PHOTO_PAIR[0]), frame, session)
    assert other is not session and other.frames == 1  # another photo: a new session


def test_painted_layer_finds_the_paint(real_dir, tmp_path):
    app_server.save_tiny_weights(tmp_path / "w")
    sources = SourceCache(ModelCache(AppSettings(weights=str(tmp_path / "w"), device="cpu")))
    with sources.get(None, [str(real_dir / PHOTO)]) as pipe:
        shown = pipe.embedded_face(helpers.EDIT_DISPLAY)  # sampled from the photo, resized to the canvas
        assert shown.shape == (helpers.EDIT_DISPLAY, helpers.EDIT_DISPLAY, 3)
        import cv2

        detail = [cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                  for im in (shown, helpers.display_face(pipe.embedded_face()))]
        assert detail[0] > 1.5 * detail[1], detail  # the photo's detail to paint on, not the model's 64 px enlarged
        assert helpers.painted_layer(pipe, {"background": shown, "layers": [], "composite": shown}) is None
        painted = shown.copy()
        painted[100:200, 150:300] = (255, 0, 0)
        layer = helpers.painted_layer(pipe, {"background": shown, "layers": [], "composite": painted})
        assert layer.shape == (helpers.EDIT_DISPLAY,) * 2 + (4,)
        assert layer[150, 200, 3] == 1 and layer[400, 400, 3] == 0
        # a painting returned at another size (the editor's canvas) is mapped back
        small = helpers.painted_layer(pipe, painted[::2, ::2])
        assert small is not None and small[150, 200, 3] > 0.5
        # the picture came back from the browser lossy (webp/jpeg): only what differs from it is paint
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(shown).save(buf, format="JPEG", quality=60)
        lossy = np.asarray(Image.open(buf).convert("RGBA"))
        assert np.abs(lossy[..., :3].astype(int) - shown).max() > 8
        assert helpers.painted_layer(pipe, {"background": lossy, "layers": [], "composite": lossy}) is None
        stroke = lossy.copy()
        stroke[100:200, 150:300, :3] = (255, 0, 0)
        layer = helpers.painted_layer(pipe, {"background": lossy, "layers": [], "composite": stroke})
        assert layer[150, 200, 3] == 1 and layer[..., 3].mean() < 0.1


def test_result_names_say_what_made_them():
    assert helpers.result_name("photos/anne.jpg", "driven-by", "my clip (1).mp4") == "anne-driven-by-my_clip_1"
    assert helpers.result_name("photo 1", "yaw") == "photo_1-yaw" and helpers.result_name("...", "") == "result"
    assert len(helpers.result_name("x" * 300 + ".png")) == 40
    assert helpers.result_name("фото 1.png", "speaking", "запись.webm") == "фото_1-speaking-запись"


def test_output_frames_are_limited_in_size():
    big = np.zeros((3000, 4000, 3), np.uint8)
    assert helpers.fit_frame(big).shape == (960, 1280, 3)
    small = np.zeros((64, 64, 3), np.uint8)
    assert helpers.fit_frame(small) is small


def test_overlay_keeps_its_transparency(tmp_path):
    from x2face.control.edit import read_overlay

    ov = read_overlay(app_server.EXAMPLES / "sticker.png", 10**6)
    assert ov.shape[2] == 4 and ov[..., 3].min() == 0 and ov[..., 3].max() == 1
    with pytest.raises(MediaError, match="limit"):
        read_overlay(app_server.EXAMPLES / "sticker.png", 100)
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(MediaError):
        read_overlay(tmp_path / "bad.png", 10**6)


def test_examples_are_small_and_attributed():
    files = sorted(p for p in app_server.EXAMPLES.iterdir() if p.is_file())
    assert sum(p.stat().st_size for p in files) < 2 * 1024**2
    attribution = (app_server.ROOT / "assets" / "ATTRIBUTION.md").read_text()
    for p in files:
        assert f"examples/{p.name}" in attribution


# ============================================================================================ the running app
@pytest.fixture(scope="module")
def server(shared_dir):
    return app_server.serve()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def real(real_dir, *names):
    from gradio_client import handle_file

    files = [handle_file(str(real_dir / n)) for n in names]
    return files if len(files) > 1 else files[0]


def probe(path):
    from x2face.media import decode_check, probe_video

    ok, errors = decode_check(path)
    assert ok, errors
    return probe_video(path)



@pytest.mark.slow
def test_every_endpoint_is_named(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/animate_frames", "/animate_pose", "/animate_audio", "/edit_video", "/pose_preview",
                 "/pose_source", "/crop_sources", "/embed_face", "/load_weights", "/to_gif",
                 "/live_frame", "/save_live"):
        assert name in api, sorted(api)


def test_result_videos_are_not_upload_slots():
    """A result video feeds its GIF button, which made Gradio show it as an upload slot ("Drop Video Here")."""
    app = app_server.app_module()
    props = {c["props"].get("elem_id"): c["props"] for c in app.demo.get_config_file()["components"]}
    for name in ("frames-result", "pose-result", "audio-result", "edit-result", "live-video"):
        assert props[name]["interactive"] is False, name
    assert props["frames-driving"].get("interactive") is not False  # (the driving clip is one)


@pytest.mark.slow
def test_frame_driven_with_several_photos_and_sound(client, real_dir):
    from gradio_client import handle_file

    photos = [handle_file(str(real_dir / p)) for p in PHOTO_PAIR]
    crops, note = client.predict(photos, api_name="/crop_sources")
    assert len(crops) == 2 and "2 face crop(s)" in note
    video, comparison, still, summary = client.predict(photos, real(real_dir, CLIP_WITH_SOUND), None, False, True,
                                                       1.0, api_name="/animate_frames")
    assert still is None and "face found in 25/25 frames" in summary
    out, cmp = probe(video), probe(comparison)
    assert out.width == out.height > 64 and out.has_audio and abs(out.duration - 1.0) < 0.15  # sharp: the face's size
    assert cmp.width > 3 * cmp.height - 20 and cmp.height == helpers.COMPARE_HEIGHT and cmp.has_audio


@pytest.mark.slow
def test_a_50_fps_clip_is_animated_at_25(client, real_dir, tmp_path):
    import subprocess

    from gradio_client import handle_file

    from x2face.media import ffmpeg_exe

    fast = tmp_path / "fast.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-ss", "0.6", "-i", str(real_dir / CLIP_MPG), "-t", "1", "-vf",
                    "fps=50", "-c:v", "libx264", "-c:a", "aac", str(fast)], check=True)  # speech from 1 s in
    assert probe(fast).fps == 50
    photo = [real(real_dir, PHOTO_PAIR[0])]
    video, comparison, _, summary = client.predict(photo, handle_file(str(fast)), None, False, True, 1.0,
                                                   api_name="/animate_frames")
    assert "at 25 fps (every 2nd frame of a 50 fps clip)" in summary and "25/25 frames" in summary, summary
    stem = helpers.result_name(PHOTO_PAIR[0])  # downloads say what they are
    assert (Path(video).name, Path(comparison).name) == (f"{stem}-driven-by-fast.mp4",
                                                         f"{stem}-driven-by-fast-side-by-side.mp4")
    for info in (probe(video), probe(comparison)):
        assert info.fps == 25 and info.has_audio and abs(info.duration - 1.0) < 0.15
    # Start at: from 0.5 s of the 1 s clip (the parameter after the driving face), its sound from there too
    video, _, _, summary = client.predict(photo, handle_file(str(fast)), None, False, True, 1.0, "largest", False, 1.0,
                                          "largest", 0.5, api_name="/animate_frames")
    assert "at 25 fps from 0.5 s (every 2nd frame" in summary and "13/13 frames" in summary, summary
    lag, corr = best_lag(read_audio(fast, start=0.5)[0], read_audio(video)[0])
    assert abs(lag) < 16000 / 25 and corr > 0.9, (lag, corr)
    with pytest.raises(Exception, match="past its end"):
        client.predict(photo, handle_file(str(fast)), None, False, True, 1.0, "largest", False, 1.0, "largest", 5,
                       api_name="/animate_frames")


@pytest.mark.slow
def test_frame_driven_paste_back_mpeg_clip_limited_seconds(client, real_dir):
    from gradio_client import handle_file

    photo = [handle_file(str(real_dir / PHOTO_PAIR[0]))]
    # 30 s asked for (the slider's end): the app animates at most its max_seconds (2 s in the test app)
    video, _, _, summary = client.predict(photo, real(real_dir, CLIP_MPG), None, True, False, 30,
                                          api_name="/animate_frames")
    info = probe(video)
    assert info.width == 1280 and info.height in (798, 799) and not info.has_audio  # the whole photo
    assert abs(info.duration - app_server.MAX_SECONDS) < 0.15, summary


@pytest.mark.slow
def test_animated_gif_in_the_photo_slot_drives_a_video(client, real_dir, tmp_path):
    import subprocess

    from gradio_client import handle_file
    from x2face.media import ffmpeg_exe

    gif = tmp_path / "reaction.gif"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(real_dir / CLIP_SILENT), "-t", "1", "-vf",
                    "fps=10,scale=160:-1", str(gif)], check=True)
    video, comparison, still, summary = client.predict([handle_file(str(real_dir / PHOTO))], None,
                                                       handle_file(str(gif)), False, True, 1.0,
                                                       api_name="/animate_frames")
    assert still is None and "face found in 10/10 frames of" in summary, summary
    info = probe(video)
    assert info.width == info.height > 64 and abs(info.duration - 1.0) < 0.15
    assert probe(comparison).height == helpers.COMPARE_HEIGHT


@pytest.mark.slow
def test_a_clip_of_the_person_as_source(client, real_dir):
    from gradio_client import handle_file

    crops, note = client.predict([handle_file(str(real_dir / CLIP_WITH_SOUND))], api_name="/crop_sources")
    assert len(crops) == 4 and "4 face crop(s)" in note, note
    captions = [c["caption"] for c in crops]
    assert all(c.startswith("jixinya_EAMM__test_video_disgusted.mp4 at ") for c in captions), captions
    video, _, still, summary = client.predict([handle_file(str(real_dir / CLIP_WITH_SOUND))], real(real_dir, CLIP_MPG),
                                              None, False, False, 1.0, api_name="/animate_frames")
    assert still is None and probe(video).width > 64 and "face found" in summary


@pytest.mark.slow
def test_frame_driven_by_a_photo(client, real_dir):
    from gradio_client import handle_file

    video, comparison, still, summary = client.predict([handle_file(str(real_dir / PHOTO))], None,
                                                       real(real_dir, PHOTO_PAIR[1]), False, True, 1.0,
                                                       api_name="/animate_frames")
    assert video is None and comparison is None and "face found" in summary
    from PIL import Image

    with Image.open(still) as im:
        assert im.height == helpers.COMPARE_HEIGHT and im.width > 3 * im.height


@pytest.mark.slow
def test_pose_tab_moves_the_preview(client, real_dir, tmp_path):
    preview, yaw, pitch, roll, note = client.predict(real(real_dir, PHOTO), api_name="/pose_source")
    assert all(isinstance(a, float) for a in (yaw, pitch, roll)) and "yaw" in note
    from PIL import Image

    a = np.asarray(Image.open(client.predict(real(real_dir, PHOTO), yaw, pitch, roll, api_name="/pose_preview")))
    b = np.asarray(Image.open(client.predict(real(real_dir, PHOTO), 40.0, pitch, roll, api_name="/pose_preview")))
    assert a.shape == b.shape and a.shape[0] == a.shape[1] > 64  # sharp: the face at its size in the photo
    from gradio_client import handle_file

    Image.open(real_dir / PHOTO).resize((1024, 1024)).save(tmp_path / "big.png")  # its face box is ~1000 px
    big = np.asarray(Image.open(client.predict(handle_file(str(tmp_path / "big.png")), 10.0, 0, 0,
                                               api_name="/pose_preview")))
    assert big.shape == (helpers.PREVIEW_SIDE, helpers.PREVIEW_SIDE, 3)  # each slider move sends at most this
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0  # another yaw is another picture
    video, summary = client.predict(real(real_dir, PHOTO), POSE_SWEEP, 0, 0, 0, 1.0, False, api_name="/animate_pose")
    info = probe(video)
    assert info.num_frames_estimate == 25 and not info.has_audio and "yaw sweep" in summary
    from gradio_client import handle_file

    gif = client.predict(handle_file(video), api_name="/to_gif")  # the "Make a GIF" button
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 25 and im.size == (info.width, info.height)
        assert im.info["loop"] == 0
    with pytest.raises(Exception, match="render a video first"):
        client.predict(None, api_name="/to_gif")
    import subprocess

    from x2face.media import ffmpeg_exe

    long = tmp_path / "long.mp4"  # longer than any result: the public /to_gif is no free GIF maker
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=s=32x32:r=5:d=40", "-pix_fmt",
                    "yuv420p", str(long)], check=True)
    with pytest.raises(Exception, match="long.mp4 is 40.0 s long; the limit here is 31 s"):
        client.predict(handle_file(str(long)), api_name="/to_gif")
    video, _ = client.predict(real(real_dir, PHOTO), "to the sliders' pose and back", 30, 10, 0, 1.0, True,
                              api_name="/animate_pose")
    assert probe(video).width == 256  # pasted back into the 256 px photo


@pytest.mark.slow
def test_an_iphone_heic_photo_is_a_source(client, real_dir, tmp_path):
    """A HEIC photo (what iPhones save) stored on its side with HEIF's rotation: Gradio's upload opens it
    (x2face registers pillow-heif for it) and the face is found upright, as in the same photo as PNG."""
    from gradio_client import handle_file
    from PIL import Image

    im = Image.open(real_dir / PHOTO).convert("RGB").transpose(Image.Transpose.ROTATE_90)  # lying on its side
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: upright again
    im.save(tmp_path / "phone.heic", quality=90, exif=exif.tobytes())
    preview, yaw, pitch, roll, note = client.predict(handle_file(str(tmp_path / "phone.heic")), api_name="/pose_source")
    ref = client.predict(real(real_dir, PHOTO), api_name="/pose_source")
    assert "yaw" in note and abs(yaw - ref[1]) < 5 and abs(roll - ref[3]) < 5


def test_unreadable_files_in_the_image_slots_get_the_apps_message(client, real_dir, tmp_path):
    """Gradio opens an image slot's upload before any handler: an empty file, text named .png, a sound, got its
    generic 'error'; now the app's one line, the same as in the multi-photo slot (``app._image_slot``)."""
    from gradio_client import handle_file

    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not a picture " * 20)
    for bad in ("empty.png", "notes.png"):
        file = handle_file(str(tmp_path / bad))
        for call in (dict(args=(file,), api_name="/pose_source"),  # the photo slot of the pose (and audio, live) tab
                     dict(args=([real(real_dir, PHOTO)], None, file, False, True, 1.0), api_name="/animate_frames")):
            with pytest.raises(Exception, match=f"{bad} is not an image x2face can read .JPEG, PNG"):
                client.predict(*call["args"], api_name=call["api_name"])
    app = app_server.app_module()
    props = {c["props"].get("elem_id"): c for c in app.demo.get_config_file()["components"]}
    assert props["pose-photo"]["type"] == "image"  # (the browser draws it as a gr.Image: test_browser.py)
    assert not (app_server.ROOT / "app.pyi").exists()  # (a component subclass made Gradio write one beside app.py)


@pytest.mark.slow
def test_live_tab_handler_answers_a_frame_and_says_what_is_missing(client, real_dir):
    """``app.live_frame`` as the stream calls it (gradio_client cannot stream a webcam; the browser test does)."""
    from x2face.media import VideoReader

    app = app_server.serve()["app"]
    frame = next(iter(VideoReader(real_dir / CLIP_WITH_SOUND)))
    shown, session, note, recording = app.live_frame(frame, str(real_dir / PHOTO), False, None, "largest",
                                                     False, 1.0, "largest", None)
    assert shown.shape[0] == helpers.LIVE_HEIGHT
    assert note.startswith("face in 1 of 1 webcam frames; the last 0.0 s kept for Save")
    _, again, note, kept = app.live_frame(frame, str(real_dir / PHOTO), False, session, "largest",
                                          False, 1.0, "largest", None, recording)
    assert again is session and note.startswith("face in 2 of 2 webcam frames") and kept is recording
    assert len(recording.frames) == 2
    video, summary = app.save_live(recording)  # the Save button: the results kept, as a video
    info = probe(video)
    even = tuple(v // 2 * 2 for v in recording.size)  # (H.264's even sides)
    assert info.fps == helpers.LIVE_RECORD_FPS and (info.width, info.height) == even
    assert summary.startswith("the last ") and "of the live result, at 10 fps" in summary
    pasted, other, note, kept = app.live_frame(frame, str(real_dir / PHOTO_PAIR[0]), True, again, "largest",
                                               False, 1.0, "largest", None, recording)
    assert other is not session and note.startswith("face in 1 of 1 webcam frames")  # pasted back: a new session
    assert pasted.shape[1] > shown.shape[1]  # your face | the whole photo
    assert len(kept.frames) == 1  # the whole photo is another size: the recording starts anew
    shown, session, note, _ = app.live_frame(frame, str(real_dir / ANIMAL), False, session, "largest",
                                             False, 1.0, "largest", None)
    assert shown is None and session is None and "no human face found in" in note  # said beside, not raised
    shown, session, note, _ = app.live_frame(frame, None, False, None, "largest", False, 1.0, "largest", None)
    assert shown is None and note.startswith("Upload a photo of a face first")
    with pytest.raises(Exception, match="nothing recorded yet"):
        app.save_live(None)


def test_live_recording_keeps_the_webcam_pace(tmp_path):
    """Frames that came unevenly are written at LIVE_RECORD_FPS, each slot showing the last frame that had come."""
    from x2face.media import VideoReader

    now = [0.0]
    rec = helpers.LiveRecording(seconds=5, clock=lambda: now[0])
    for t, level in ((0.0, 0), (0.05, 60), (0.32, 120), (1.0, 180)):
        now[0] = t
        rec.add(np.full((48, 64, 3), level, np.uint8))
    path, count = rec.save(tmp_path / "live.mp4", fps=10)
    levels = [int(round(f.mean() / 60)) * 60 for f in VideoReader(path)]
    assert count == 11 and levels == [0, 60, 60, 60, 120, 120, 120, 120, 120, 120, 180], levels
    for t in np.arange(1.1, 8.0, 0.1):  # only the last 5 s are kept
        now[0] = float(t)
        rec.add(np.zeros((48, 64, 3), np.uint8))
    assert 4.9 < rec.duration <= 5.0 and rec.frames[0][0] > 2.8
    rec.add(np.zeros((32, 32, 3), np.uint8))  # another size (paste-back turned on): a new recording
    assert len(rec.frames) == 1 and rec.size == (32, 32) and rec.duration == 0
    with pytest.raises(InputError, match="nothing recorded yet"):
        helpers.LiveRecording().save(tmp_path / "none.mp4")


@pytest.mark.slow
def test_audio_tab_speaks_with_the_recording(client, real_dir, tmp_path):
    from gradio_client import handle_file

    video, summary = client.predict(real(real_dir, PHOTO), real(real_dir, SPEECH), 1.5, False,
                                    api_name="/animate_audio")
    info = probe(video)
    assert info.has_audio and abs(info.duration - 1.5) < 0.1 and info.fps == 25
    assert "with its sound" in summary and "silent" not in summary
    # Start at: the speech from 2 s in (the last parameter), its sound too
    video, summary = client.predict(real(real_dir, PHOTO), real(real_dir, SPEECH), 1.0, False, "largest", 2.0,
                                    api_name="/animate_audio")
    assert " from 2 s: 1.0 s at 25 fps" in summary, summary
    lag, corr = best_lag(read_audio(real_dir / SPEECH, start=2.0, seconds=1.0)[0], read_audio(video)[0])
    assert abs(lag) < 16000 / 25 and corr > 0.9, (lag, corr)
    hush = write_silence(tmp_path / "hush.wav", 1.0)  # a muted microphone: a video all the same, and why nothing moves
    video, summary = client.predict(real(real_dir, PHOTO), handle_file(str(hush)), 1.5, False,
                                    api_name="/animate_audio")
    assert probe(video).fps == 25 and "the recording is silent" in summary, summary


@pytest.mark.slow
def test_a_face_of_a_group_photo_is_chosen_in_every_tab(client, real_dir, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image

    from x2face.media import VideoReader, VideoWriter, write_image

    group = handle_file(str(write_image(tmp_path / "group.png", group_photo(real_dir))))  # small left, large right
    crops, note = client.predict([group], api_name="/crop_sources")  # the choice left out: the largest
    assert "group.png: the largest of 2 faces (pick another under Face)" in note
    left, note = client.predict([group], "0", api_name="/crop_sources")
    assert "group.png: the leftmost of 2 faces" in note
    crop = lambda c: np.asarray(Image.open(c[0]["image"]).convert("RGB"))  # noqa: E731
    assert not np.array_equal(crop(left), crop(crops))
    *_, summary = client.predict([group], real(real_dir, CLIP_SILENT), None, False, True, 0.5, "-1",
                                 api_name="/animate_frames")
    assert "face found in" in summary and "the rightmost of 2 faces" in summary
    # every face of the group photo (the frame-driven tab's menu only): both crops, the photo out
    crops_all, note = client.predict([group], "all", api_name="/crop_sources")
    assert len(crops_all) == 2 and "each animated and pasted back" in note and "group.png: all 2 faces" in note
    video, _, _, summary = client.predict([group], real(real_dir, CLIP_SILENT), None, False, True, 0.5, "all",
                                          api_name="/animate_frames")
    assert "group.png: all 2 faces" in summary and probe(video).width == 640  # pasted back into the photo
    *_, note = client.predict(group, "all", api_name="/pose_source")  # the pose tab turns everyone alike
    assert "group.png: all 2 faces" in note
    preview = client.predict(group, 10, 0, 0, "all", api_name="/pose_preview")
    h, w = np.asarray(Image.open(preview).convert("RGB")).shape[:2]
    assert w == 2 * h == helpers.PREVIEW_SIDE  # the whole 2:1 photo, every face turned, at the preview's size
    *_, note = client.predict(group, "0", api_name="/pose_source")
    assert "the leftmost of 2 faces" in note
    _, note = client.predict(group, real(real_dir, SPEECH), 0.5, False, "0", api_name="/animate_audio")
    assert "the leftmost of 2 faces" in note
    *_, note = client.predict([group], "all", api_name="/embed_face")
    assert "the paint goes on every face" in note and "group.png: all 2 faces" in note
    sticker = handle_file(str(app_server.EXAMPLES / "sticker.png"))
    _, video, _, summary = client.predict([group], None, sticker, 0.5, 0.4, 0.4, real(real_dir, CLIP_SILENT), 0.5,
                                          "all", api_name="/edit_video")
    assert "group.png: all 2 faces" in summary and probe(video).width == 640  # every face edited, in the photo
    *_, note = client.predict([group], "1", api_name="/embed_face")
    assert "the rightmost of 2 faces" in note
    with pytest.raises(AppError, match="group.png has 2 faces: there is no 4th from the left"):
        client.predict(group, 0, 0, 0, "3", api_name="/pose_preview")
    # the driving face: a group photo drives with the face chosen (the 4th does not exist)
    *_, summary = client.predict([real(real_dir, PHOTO)], None, group, False, True, 0.5, "largest", False, 1.0, "0",
                                 api_name="/animate_frames")
    assert "face found" in summary
    with pytest.raises(AppError, match="has 2 faces: there is no 4th from the left"):
        client.predict([real(real_dir, PHOTO)], None, group, False, True, 0.5, "largest", False, 1.0, "3",
                       api_name="/animate_frames")
    # a clip (or photo) of two people drives the group photo, each face by the face in its place
    clip = tmp_path / "two.mp4"
    with VideoWriter(clip, 25) as w:
        for f in group_clip(real_dir, 10):
            w.write(f)
    video, _, _, summary = client.predict([group], handle_file(str(clip)), None, False, True, 0.5, "all", False, 1.0,
                                          "all", api_name="/animate_frames")
    assert "all 2 faces found in 10/10 frames of two.mp4" in summary and probe(video).width == 640
    with pytest.raises(AppError, match="set the source with every face"):
        client.predict([group], handle_file(str(clip)), None, False, True, 0.5, "0", False, 1.0, "all",
                       api_name="/animate_frames")
    with pytest.raises(AppError, match="never shows 2 faces at once"):
        client.predict([group], real(real_dir, CLIP_SILENT), None, False, True, 0.5, "all", False, 1.0, "all",
                       api_name="/animate_frames")
    _, video, _, summary = client.predict([group], None, sticker, 0.5, 0.4, 0.4, handle_file(str(clip)), 0.5, "all",
                                          False, 1.0, "all", api_name="/edit_video")  # the editing tab too
    assert "all 2 faces found in" in summary and probe(video).width == 640
    # the editing tab edits one face of the group photo when asked: its own embedded face is shown to paint on
    left_canvas, _, note = client.predict([group], "all", "0", api_name="/embed_face")
    right_canvas, _, note = client.predict([group], "all", "-1", api_name="/embed_face")
    assert "(the rightmost of 2 faces: the paint goes on that face only)" in note
    shown = [np.asarray(Image.open(c["background"]).convert("RGB")).astype(int) for c in (left_canvas, right_canvas)]
    assert np.abs(shown[0] - shown[1]).mean() > 10  # two people's embedded faces
    still, video, _, summary = client.predict([group], None, sticker, 0.5, 0.4, 0.4, real(real_dir, CLIP_SILENT), 0.5,
                                              "all", False, 1.0, "largest", "-1", api_name="/edit_video")
    assert "group.png: all 2 faces" in summary and probe(video).width == 640
    before_after = np.asarray(Image.open(still).convert("RGB"))
    h = before_after.shape[0]
    before = before_after[:, :h].astype(int)  # (before | after, squares side by side)
    refs = [np.asarray(Image.fromarray(x.astype(np.uint8)).resize((h, h))).astype(int) for x in shown]
    gaps = [np.abs(before - r).mean() for r in refs]
    assert gaps[1] < 0.5 * gaps[0], gaps  # the right-hand face was the one edited
    with pytest.raises(AppError, match="the source has 2 faces: there is no face 4"):
        client.predict([group], "all", "4", api_name="/embed_face")
    with pytest.raises(AppError):  # not one of the choices
        client.predict([group], "largest please", api_name="/crop_sources")
    # the live tab, as the stream calls it
    app = app_server.serve()["app"]
    frame = next(iter(VideoReader(real_dir / CLIP_WITH_SOUND)))
    _, _, note, _ = app.live_frame(frame, group.get("path"), False, None, "0", False, 1.0, "largest", None)
    assert note.startswith("face in 1 of 1 webcam frames") and "the leftmost of 2 faces" in note
    shown, session, note, _ = app.live_frame(frame, group.get("path"), False, None, "all", False, 1.0, "largest", None)
    assert "all 2 faces" in note and shown.shape[1] == 3 * shown.shape[0] + 4  # webcam | the 2:1 group photo
    _, again, note, _ = app.live_frame(frame, group.get("path"), False, session, "all", False, 1.0, "largest", None)
    assert again is session and note.startswith("face in 2 of 2 webcam frames")  # one session follows the stream
    two = group_clip(real_dir, 2)  # two people at the webcam, each driving the face in its place
    shown, each, note, _ = app.live_frame(two[0], group.get("path"), False, again, "all", False, 1.0, "all", None)
    assert each is not again and each.driving_face == "all" and note.startswith("all 2 faces in 1 of 1 webcam")
    _, still_each, note, _ = app.live_frame(two[1], group.get("path"), False, each, "all", False, 1.0, "all", None)
    assert still_each is each and note.startswith("all 2 faces in 2 of 2 webcam frames")
    _, _, note, _ = app.live_frame(two[0], group.get("path"), False, None, "0", False, 1.0, "all", None)
    assert "set the source with every face" in note  # said beside the picture


@pytest.mark.slow
def test_relative_motion_in_the_frame_edit_and_live_tabs(client, real_dir):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from x2face.media import VideoReader

    photo = [real(real_dir, PHOTO)]
    *_, summary = client.predict(photo, real(real_dir, CLIP_SILENT), None, False, True, 0.5, "largest", True,
                                 api_name="/animate_frames")  # the strength left out: 1
    assert "(relative motion from its first face)" in summary
    *_, summary = client.predict(photo, real(real_dir, CLIP_SILENT), None, False, True, 0.5, "largest", True, 2.5,
                                 api_name="/animate_frames")
    assert "(relative motion x2.5 from its first face)" in summary
    *_, summary = client.predict(photo, real(real_dir, CLIP_SILENT), None, False, True, 0.5, "largest", True, 1.0,
                                 "largest", 0, True, api_name="/animate_frames")  # from the frame posed most like it
    assert re.search(r"\(relative motion from frame \d+ \(\d\.\d\d s\), posed most like the photo\)", summary), summary
    *_, summary = client.predict(photo, real(real_dir, CLIP_SILENT), None, False, True, 0.5, "largest", False, 2.5,
                                 api_name="/animate_frames")  # the strength counts only with relative motion
    assert "relative" not in summary
    with pytest.raises(AppError, match="relative motion follows a driving video's face"):
        client.predict(photo, None, real(real_dir, PHOTO), False, True, 0.5, "largest", True,
                       api_name="/animate_frames")
    sticker = handle_file(str(app_server.EXAMPLES / "sticker.png"))
    *_, summary = client.predict(photo, None, sticker, 0.5, 0.4, 0.4, real(real_dir, CLIP_SILENT), 0.5, "largest",
                                 True, 1.5, api_name="/edit_video")
    assert "edit (an overlay) driven by" in summary and "with relative motion" in summary
    *_, summary = client.predict(photo, None, sticker, 0.5, 0.4, 0.4, real(real_dir, CLIP_SILENT), 0.5, "largest",
                                 True, 1.0, "largest", "all", 0, True, api_name="/edit_video")
    assert "with relative motion from frame " in summary and "posed most like the photo" in summary, summary
    app = app_server.serve()["app"]
    frame = next(iter(VideoReader(real_dir / CLIP_WITH_SOUND)))
    _, session, _, _ = app.live_frame(frame, str(real_dir / PHOTO), False, None, "largest", True, 1.0, "largest", None)
    assert session.relative
    _, again, _, _ = app.live_frame(frame, str(real_dir / PHOTO), False, session, "largest", True, 1.0, "largest", None)
    assert again is session
    _, stronger, _, _ = app.live_frame(frame, str(real_dir / PHOTO), False, again, "largest", True, 2.0, "largest",
                                       None)
    assert stronger is not session and stronger.motion_scale == 2.0
    _, other, _, _ = app.live_frame(frame, str(real_dir / PHOTO), False, stronger, "largest", False, 2.0, "largest",
                                    None)
    assert other is not stronger and not other.relative and other.motion_scale == 1.0  # unticked: a new session


@pytest.mark.slow
def test_edit_tab_paint_follows_the_head(client, real_dir, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    photos = [handle_file(str(real_dir / PHOTO))]
    editor, confidence, note = client.predict(photos, api_name="/embed_face")
    background = np.asarray(Image.open(editor["background"]).convert("RGB"))
    assert background.shape == (helpers.EDIT_DISPLAY, helpers.EDIT_DISPLAY, 3) and "Paint" in note
    painted = background.copy()
    painted[180:330, 180:330] = (0, 255, 0)  # a green square in the middle of the face
    Image.fromarray(painted).save(tmp_path / "painted.png")
    Image.fromarray(background).save(tmp_path / "background.png")
    value = {"background": handle_file(str(tmp_path / "background.png")), "layers": [],
             "composite": handle_file(str(tmp_path / "painted.png"))}
    faces, video, comparison, summary = client.predict(photos, value, None, 0.5, 0.3, 0.3,
                                                       real(real_dir, CLIP_WITH_SOUND), 1.0, api_name="/edit_video")
    both = np.asarray(Image.open(faces).convert("RGB")).astype(int)
    half = both.shape[1] // 2
    before, after = both[:, :half - 2], both[:, half + 2:]
    green = lambda im: ((im[..., 1] > 200) & (im[..., 0] < 80)).mean()  # noqa: E731
    assert green(after) > 0.05 and green(before) < 0.01
    assert probe(video).num_frames_estimate == 25 and probe(comparison).width > 2 * helpers.COMPARE_HEIGHT
    assert probe(video).has_audio and probe(comparison).has_audio  # the clip's sound, as in the frame-driven tab
    assert "paint" in summary
    # an overlay picture instead, and the cached source is unedited again afterwards
    faces2, *_ = client.predict(photos, None, handle_file(str(app_server.EXAMPLES / "sticker.png")), 0.5, 0.4, 0.4,
                                real(real_dir, CLIP_SILENT), 1.0, api_name="/edit_video")
    again, *_ = client.predict(photos, api_name="/embed_face")
    assert np.array_equal(np.asarray(Image.open(again["background"]).convert("RGB")), background)


@pytest.mark.slow
def test_bad_input_gets_a_message(client, real_dir, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    clip = real(real_dir, CLIP_SILENT)
    cases = [
        (([handle_file(str(real_dir / ANIMAL))], clip, None, False, True, 1.0), "no human face found in"),
        (([handle_file(str(real_dir / PHOTO))], None, None, False, True, 1.0), "add a driving video"),
        (([], clip, None, False, True, 1.0), "upload a photo"),
    ]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    cases.append((([handle_file(str(real_dir / PHOTO))], handle_file(str(corrupt)), None, False, True, 1.0),
                  "corrupt.mp4"))
    cases.append((([handle_file(str(huge_png_header(tmp_path / "huge.png")))], clip, None, False, True, 1.0),
                  "20000x20000"))
    cases.append((([handle_file(str(real_dir / PHOTO))], real(real_dir, LONG_CLIP), None, False, True, 1.0),
                  "d6.mp4 is 33.6 s long; the limit here is 30 s"))
    for args, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/animate_frames")
    with pytest.raises(AppError, match="speech"):
        client.predict(real(real_dir, PHOTO), None, 1.0, False, api_name="/animate_audio")
    with pytest.raises(AppError, match="intro.wav is 46.3 s long"):
        client.predict(real(real_dir, PHOTO), real(real_dir, LONG_SPEECH), 1.0, False, api_name="/animate_audio")
    with pytest.raises(AppError, match="paint on the embedded face or choose an overlay"):
        client.predict([handle_file(str(real_dir / PHOTO))], None, None, 0.5, 0.5, 0.3, clip, 1.0,
                       api_name="/edit_video")


@pytest.mark.slow
def test_weights_chooser_and_missing_heads(server, real_dir):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    own = Client(server["url"], verbose=False)  # a session of its own: its weights choice is its own
    status = own.predict("local folder", str(server["plain"]), api_name="/load_weights")
    assert "Pose control:** no" in status and "CPU" in status
    with pytest.raises(AppError, match="no pose head"):
        own.predict(real(real_dir, PHOTO), 10, 0, 0, api_name="/pose_preview")
    with pytest.raises(AppError, match="no audio head"):
        own.predict(real(real_dir, PHOTO), real(real_dir, SPEECH), 1.0, False, api_name="/animate_audio")
    _, _, _, _, note = own.predict(real(real_dir, PHOTO), api_name="/pose_source")
    assert "no pose head" in note  # said on the tab, not an error, when a photo is chosen
    with pytest.raises(AppError, match="owner/name"):
        own.predict("Hugging Face Hub repo", "not a repo", api_name="/load_weights")
    with pytest.raises(AppError, match="no such folder"):
        own.predict("local folder", "/no/such/folder", api_name="/load_weights")


@pytest.mark.slow
def test_every_tab_runs_on_the_bundled_weights_and_examples(server, monkeypatch, tmp_path):
    """Issue 7's "done when": the README's app, its bundled demo weights, its bundled examples, every tab."""
    from gradio_client import Client, handle_file
    from PIL import Image

    monkeypatch.delenv("X2FACE_DEMO_WEIGHTS", raising=False)
    ex = lambda name: handle_file(str(app_server.EXAMPLES / name))  # noqa: E731
    own = Client(server["url"], verbose=False)
    status = own.predict("bundled demo weights", "", api_name="/load_weights")
    assert "bundled demo weights" in status and "128 px" in status and "stage I" in status
    assert "smoke-test weights" in status  # the panel says what quality to expect from them
    assert "Pose control:** yes" in status and "audio control:** yes" in status
    photos = [ex("photo_a.jpg"), ex("photo_b.jpg")]
    video, comparison, _, summary = own.predict(photos, ex("driving.mp4"), None, False, True, 1.0,
                                                api_name="/animate_frames")
    assert probe(video).width == probe(video).height > 128 and "face found in 25/25" in summary
    _, yaw, pitch, roll, _ = own.predict(ex("photo_a.jpg"), api_name="/pose_source")
    preview = np.asarray(Image.open(own.predict(ex("photo_a.jpg"), 30.0, pitch, roll, api_name="/pose_preview")))
    assert preview.shape[0] == preview.shape[1] > 128
    video, _ = own.predict(ex("photo_a.jpg"), POSE_SWEEP, 0, 0, 0, 1.0, False, api_name="/animate_pose")
    assert probe(video).num_frames_estimate == 25
    video, _ = own.predict(ex("photo_a.jpg"), ex("speech.wav"), 1.0, False, api_name="/animate_audio")
    assert probe(video).has_audio
    own.predict([ex("photo_a.jpg")], api_name="/embed_face")
    faces, video, _, _ = own.predict([ex("photo_a.jpg")], None, ex("sticker.png"), 0.5, 0.4, 0.4, ex("driving.mp4"),
                                     1.0, api_name="/edit_video")
    assert probe(video).width > 128 and Image.open(faces).size[0] > 128


@pytest.mark.slow
def test_serves_only_its_own_files_and_limits_uploads(server, client, real_dir):
    app = server["app"]
    assert app.TEMP.contains(os.environ["GRADIO_TEMP_DIR"])  # uploads and outputs live in the app's folder
    jobs = [p for p in app.TEMP.jobs.iterdir() if p.is_dir()]
    assert jobs and all(app.TEMP.contains(p) for p in jobs)
    for outside in ("/etc/passwd", str(app_server.ROOT / "README.md"), str(real_dir / PHOTO)):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server["url"] + "gradio_api/file=" + outside, timeout=10)
        assert err.value.code == 403
    # uploads over max_file_size are refused by the server before anything reads them
    body = os.urandom(app_server.MAX_FILE_SIZE + 1024)
    boundary = "x2faceboundary"
    data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(server["url"] + "gradio_api/upload", data=data, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 413
    config = json.loads(urllib.request.urlopen(server["url"] + "config", timeout=10).read())
    assert config["max_file_size"] == app_server.MAX_FILE_SIZE


@pytest.mark.slow
def test_command_line_options(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    app = app_server.app_module()
    args = app.build_parser().parse_args(["--share", "--weights", "me/x2face", "--max-seconds", "7",
                                          "--concurrency", "2", "--port", "7999", "--host", "0.0.0.0"])
    settings = app.apply_args(args, AppSettings())
    assert (settings.weights, settings.max_seconds, settings.concurrency) == ("me/x2face", 7.0, 2)
    assert not settings.allow_local_weights  # --share: no folders on this server unless --local-weights
    args = app.build_parser().parse_args(["--share", "--local-weights", "--max-fps", "24"])
    assert app.apply_args(args, AppSettings()).allow_local_weights and app.apply_args(args, AppSettings()).max_fps == 24
    # listening beyond this machine: the chooser shows no server folders unless asked (it tells which paths exist)
    assert not app.apply_args(app.build_parser().parse_args(["--host", "0.0.0.0"]), AppSettings()).allow_local_weights
    assert app.apply_args(app.build_parser().parse_args([]), AppSettings()).allow_local_weights
    assert app.launch_kwargs(settings)["max_file_size"] == settings.max_file_size
    assert not app.launch_kwargs(settings)["allowed_paths"]


def test_readme_front_matter_makes_a_space():
    from importlib.metadata import version

    text = (app_server.ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    block = text.split("---\n")[1]
    meta = dict(line.split(": ", 1) for line in block.strip().splitlines())
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == version("gradio")
    assert (app_server.ROOT / meta["app_file"]).is_file() and meta["pinned"] == "false"
    assert meta["license"] == "mit" and meta["python_version"].strip('"').startswith("3.")
    assert {"title", "emoji"} <= set(meta)



@pytest.mark.slow
def test_app_starts_without_bundled_weights(server, monkeypatch, tmp_path, real_dir):
    import gradio as gr

    app = server["app"]
    monkeypatch.setattr(app.SETTINGS, "weights", None)
    monkeypatch.setenv("X2FACE_DEMO_WEIGHTS", str(tmp_path / "not-trained-yet"))
    choice, text, status = app.show_weights(None)
    assert choice["value"] == "bundled demo weights" and "No weights loaded" in status
    assert "no bundled demo weights" in status and "Hub repo" in status
    with pytest.raises(gr.Error, match="no bundled demo weights"):
        app.pose_preview(str(real_dir / PHOTO), 0, 0, 0, "largest", None)


def test_a_cancelled_render_stops_at_its_next_frame():
    """gradio cancels a job's task (an API client's cancel) and frees its place at once; the render thread then
    stops at its next frame (``helpers.STOP``, ``_progress``), its outputs deleted, instead of running on."""
    import asyncio
    import threading

    app = app_server.app_module()
    seen, ended = [], threading.Event()

    @app.cancellable
    def render(n):
        try:
            for i in helpers._progress(range(n), n, "test"):
                seen.append(i)
                time.sleep(0.01)
            return "done"
        finally:
            ended.set()

    assert asyncio.run(render(3)) == "done" and seen == [0, 1, 2] and helpers.STOP.get() is None

    async def cancel_soon():
        task = asyncio.ensure_future(render(100000))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    seen.clear()
    ended.clear()
    asyncio.run(cancel_soon())
    assert ended.wait(5) and 5 < len(seen) < 200  # stopped within a frame of the cancel, not after 100000 frames
    count = len(seen)
    time.sleep(0.2)
    assert len(seen) == count
    assert list(helpers._progress(range(3), 3, "no job")) == [0, 1, 2]  # outside a job: a plain progress bar


def test_a_closed_tab_stops_its_render():
    """Gradio runs ``unload`` when a browser session ends (its tab closed): ``stop_session_jobs`` then stops that
    session's running renders at their next frame; another session's go on."""
    import asyncio
    from types import SimpleNamespace

    import gradio as gr

    app = app_server.app_module()
    counts = {"a": [], "b": []}

    @app.cancellable
    def render(n, who, request: gr.Request = None):
        for i in helpers._progress(range(n), n, "test"):
            counts[who].append(i)
            time.sleep(0.01)
        return who

    def session(name):
        return gr.Request(request=None, session_hash=name)

    async def both():
        a = asyncio.ensure_future(render(100000, "a", session("tab-a")))
        b = asyncio.ensure_future(render(60, "b", session("tab-b")))
        await asyncio.sleep(0.3)
        app.stop_session_jobs(session("tab-a"))  # what Gradio's unload calls
        with pytest.raises(gr.Error, match="the job was stopped: its page was closed"):
            await a
        return await b

    assert asyncio.run(both()) == "b" and len(counts["b"]) == 60  # the other tab's render finished
    assert 5 < len(counts["a"]) < 200
    assert app.SESSION_JOBS.stop("tab-a") == 0 and app.SESSION_JOBS.stop("tab-b") == 0  # none left registered
    app.stop_session_jobs(SimpleNamespace(session_hash=None))  # (no session: nothing to stop)
    unload = [d for d in app.demo.fns.values() if any(t[1] == "unload" for t in d.targets)]
    assert [d.fn for d in unload] == [app.stop_session_jobs]
