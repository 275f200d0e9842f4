"""``python -m x2face animate`` end to end with a tiny random model on real photos and clips: the MP4 plays
to the end, keeps the driving clip's duration and audio in sync; bad input is one line and exit code 2."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from x2face.animate import clock_time
from x2face.cli import main as cli
from x2face.media import VideoReader, decode_check, ffmpeg_exe, probe_video, read_audio, read_image

from helpers import best_lag, ffmpeg_children, group_clip, group_photo

ANNE = "photos/jixinya_EAMM__test_image_anne.png"
OBAMA = "photos/ageitgey_face_recognition__examples_knn_examples_train_obama_obama2.jpg"  # 626x1200
DOG = "photos/KwaiVGI_LivePortrait__assets_examples_source_s30.jpg"
GRID = "clips/rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"  # 3 s, 25 fps, speech track
SADTALKER = "clips/OpenTalker_SadTalker__examples_ref_video_WDA_KatieHill_000.mp4"  # 512 px, aac


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("X2FACE_THREADS", "1")  # what the command's thread set-up picks (x2face.cli)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from x2face import X2Face, X2FaceConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    X2Face(X2FaceConfig(image_size=64, base_channels=8)).save_pretrained(folder)
    return str(folder)


def run(*args: str) -> int:
    return cli(["animate", *map(str, args), "--quiet", "--backend", "opencv"])


def test_animate_grid_clip_plays_with_audio_in_sync(real_dir, weights, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run("--source", real_dir / ANNE, "--driving", real_dir / GRID, "--out", out, "--weights", weights) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("x2face animate: wrote") and "face found in 75/75 frames" in summary
    assert "frames/s" in summary and "opencv" in summary

    ok, errors = decode_check(out)
    assert ok, errors  # plays to the end
    driving_frames = sum(1 for _ in VideoReader(real_dir / GRID))
    frames = list(VideoReader(out))
    fps = 25
    assert len(frames) == driving_frames and frames[0].shape[0] == frames[0].shape[1] > 64  # sharp: the face's size
    assert abs(len(frames) / fps - probe_video(real_dir / GRID).duration) <= 1 / fps  # within one frame
    info = probe_video(out)
    assert info.has_audio and info.video_codec == "h264"
    audio_in, sr = read_audio(real_dir / GRID)
    audio_out, _ = read_audio(out)
    assert abs(len(audio_out) / sr - len(frames) / fps) < 1 / fps  # the audio track is as long as the video
    lag, corr = best_lag(audio_in, audio_out)
    assert abs(lag) < sr / fps and corr > 0.9, (lag, corr)  # in sync: less than one frame apart
    # --fps reads the clip at another rate: fewer frames, the same length, the sound still in sync
    slow = tmp_path / "slow.mp4"
    assert run("--source", real_dir / ANNE, "--driving", real_dir / GRID, "--out", slow, "--weights", weights,
               "--fps", "10") == 0
    info = probe_video(slow)
    assert info.fps == 10 and sum(1 for _ in VideoReader(slow)) == 30 and info.has_audio
    lag, corr = best_lag(audio_in, read_audio(slow)[0])
    assert abs(lag) < sr / 10 and corr > 0.9, (lag, corr)
    for args, message in [(["--driving", real_dir / GRID, "--fps", "0.5"], "--fps must be from 1 to 60, got 0.5"),
                          (["--pose=10,0,0", "--fps", "10"], "--fps sets the rate a driving clip is read at")]:
        assert run("--source", real_dir / ANNE, "--out", tmp_path / "bad.mp4", "--weights", weights, *args) == 2
        assert message in capsys.readouterr().err


def test_animate_from_a_start_into_the_clip(real_dir, weights, tmp_path, capsys, monkeypatch):
    """--start 1.2 --seconds 1: the clip's frames and sound from 1.2 s on, in step with each other (that the reader's
    frames are the clip's from its start is test_media's: a flash and a click)."""
    import x2face.animate

    opened = []

    class Reader(VideoReader):  # the reader the command opens, as it was opened
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(x2face.animate, "VideoReader", Reader)
    out = tmp_path / "part.mp4"
    assert run("--source", real_dir / ANNE, "--driving", real_dir / GRID, "--out", out, "--weights", weights,
               "--start", "1.2", "--seconds", "1") == 0
    assert "bbaf2n.mpg from 1.2 s" in capsys.readouterr().out
    assert [(r.start, r.seconds, r.frames_read) for r in opened] == [(1.2, 1.0, 25)]
    assert sum(1 for _ in VideoReader(out)) == 25
    audio_in, sr = read_audio(real_dir / GRID, start=1.2, seconds=1)
    audio_out, _ = read_audio(out)
    lag, corr = best_lag(audio_in, audio_out)
    assert abs(lag) < sr / 25 and corr > 0.9, (lag, corr)
    assert [clock_time(t) for t in ("62.5", "1:02.5", "0:01:02.5", "1:2", "0")] == [62.5, 62.5, 62.5, 62, 0]
    for bad in ("1:60", "soon", "1::2", "1:2:3:4", "", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a time"):
            clock_time(bad)
    for args, message in [(["--driving", real_dir / GRID, "--start", "5"], "is past its end"),
                          (["--driving", real_dir / GRID, "--start", "0:05"], "is past its end"),
                          (["--driving", real_dir / GRID, "--start", "-1"], "--start must be a number of seconds"),
                          (["--pose=10,0,0", "--start", "1"], "--start is where a driving clip or an --audio"),
                          (["--driving", real_dir / ANNE, "--start", "1"], "a driving photo has no time")]:
        assert run("--source", real_dir / ANNE, "--out", tmp_path / "bad.mp4", "--weights", weights, *args) == 2
        assert message in capsys.readouterr().err, message


def test_animate_each_photo_on_its_own(real_dir, weights, tmp_path, capsys):
    """--each: a file per --source, each the same as animating that photo alone; a photo without a face is reported
    and the others still written (exit code 2)."""
    out = tmp_path / "out"
    out.mkdir()
    common = ["--driving", real_dir / GRID, "--weights", weights, "--seconds", "0.4", "--no-keep-audio"]
    assert run("--source", real_dir / ANNE, "--source", real_dir / DOG, "--source", real_dir / OBAMA, "--each",
               "--out", f"{out}/{{name}}-moved.mp4", *common) == 2
    text = capsys.readouterr()
    assert f"x2face animate --each: 2 of 3 photos animated; failed: {Path(DOG).name}" in text.out
    assert "s30.jpg: no human face found in" in text.err
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([f"{Path(ANNE).stem}-moved.mp4", f"{Path(OBAMA).stem}-moved.mp4"]), written
    for photo in (ANNE, OBAMA):  # the second photo too: set on the same pipeline, as if it were animated alone
        alone = tmp_path / f"alone-{Path(photo).stem}.mp4"
        assert run("--source", real_dir / photo, "--out", alone, *common) == 0
        for a, b in zip(VideoReader(alone), VideoReader(out / f"{Path(photo).stem}-moved.mp4"), strict=True):
            assert np.array_equal(a, b)
    capsys.readouterr()
    # --skip-existing: after an interrupted run, only the photos not done yet
    done = out / f"{Path(OBAMA).stem}-moved.mp4"
    kept = (out / f"{Path(ANNE).stem}-moved.mp4").stat().st_mtime_ns
    done.unlink()
    assert run("--source", real_dir / ANNE, "--source", real_dir / OBAMA, "--each", "--skip-existing",
               "--out", f"{out}/{{name}}-moved.mp4", *common) == 0
    text = capsys.readouterr().out
    assert f"skipped 1 output(s) that exist: {Path(ANNE).stem}-moved.mp4" in text and "1 of 1 photos animated" in text
    assert done.is_file() and (out / f"{Path(ANNE).stem}-moved.mp4").stat().st_mtime_ns == kept
    assert run("--source", real_dir / ANNE, "--out", done, "--skip-existing", *common) == 0  # nothing left to do
    assert "skipped 1 output(s)" in capsys.readouterr().out
    assert run("--source", real_dir / ANNE, "--out", done, "--skip-existing", "--overwrite", *common) == 2
    assert "give one" in capsys.readouterr().err
    # a folder as --out; a driving photo gives pictures
    assert run("--source", real_dir / ANNE, "--source", real_dir / OBAMA, "--each", "--out", out, "--weights",
               weights, "--driving", real_dir / OBAMA) == 0
    assert (out / f"{Path(ANNE).stem}.png").is_file() and (out / f"{Path(OBAMA).stem}.png").is_file()
    assert "2 of 3" not in capsys.readouterr().out
    for args, message in [(["--out", tmp_path / "one.mp4"], "--each writes a file per --source: give --out a folder"),
                          (["--out", out], "exists; pass --overwrite"),
                          (["--out", f"{tmp_path}/missing/"], f"--each: the folder {tmp_path}/missing/ does not exist"),
                          (["--out", f"{out}/x.mp4{{name}}"], "the output must end in"),
                          (["--out", f"{tmp_path}/{{name}}.mp4", "--source", tmp_path / "sub" / Path(ANNE).name],
                           "would both write")]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / Path(ANNE).name).write_bytes((real_dir / ANNE).read_bytes())
        assert run("--source", real_dir / ANNE, "--source", real_dir / OBAMA, "--each", "--weights", weights,
                   "--driving", real_dir / OBAMA, *args) == 2
        assert message in capsys.readouterr().err, message
    assert run("--source", real_dir / ANNE, "--each", "--out", out, *common) == 2
    assert "give two or more" in capsys.readouterr().err
    # a folder of photos: the photos in it, by name (not its other files)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in (ANNE, OBAMA):
        (photos / Path(name).name).write_bytes((real_dir / name).read_bytes())
    (photos / "notes.txt").write_text("not a photo")
    folder_out = tmp_path / "from-folder"
    folder_out.mkdir()
    assert run("--source", photos, "--each", "--out", folder_out, *common) == 0
    assert sorted(p.name for p in folder_out.iterdir()) == sorted(f"{Path(n).stem}.mp4" for n in (ANNE, OBAMA))
    (tmp_path / "empty").mkdir()
    assert run("--source", tmp_path / "empty", "--out", tmp_path / "e.mp4", *common) == 2
    assert "the folder" in capsys.readouterr().err


def test_help_examples_are_valid_commands(capsys):
    """Every example of ``animate --help`` parses with the current options and picks exactly one driver."""
    import shlex

    from x2face.animate import DRIVERS, EXAMPLES, build_parser

    for what, line in EXAMPLES:
        args = build_parser().parse_args(shlex.split(line))
        assert sum(d.selected(args) for d in DRIVERS.values()) == 1, line
    with pytest.raises(SystemExit):
        cli(["animate", "--help"])
    shown = capsys.readouterr().out
    assert all(f"python -m x2face animate {line}" in shown for _, line in EXAMPLES)


def test_animate_paste_back_keeps_photo_resolution(real_dir, weights, tmp_path):
    out = tmp_path / "pasted.mp4"
    assert run("--source", real_dir / OBAMA, "--driving", real_dir / SADTALKER, "--out", out, "--weights", weights,
               "--paste-back", "--seconds", "0.4") == 0
    frames = list(VideoReader(out))
    assert len(frames) == 10 and frames[0].shape == (1200, 626, 3)
    photo = read_image(real_dir / OBAMA)
    assert np.abs(frames[0][:100].astype(int) - photo[:100].astype(int)).mean() < 4  # framing kept (H.264 aside)
    # the face is rendered from the full-resolution photo (--sharp, the default): more detail than --no-sharp
    blurred = tmp_path / "blurred.mp4"
    assert run("--source", real_dir / OBAMA, "--driving", real_dir / SADTALKER, "--out", blurred, "--weights",
               weights, "--paste-back", "--seconds", "0.4", "--no-sharp") == 0
    import cv2

    face = (slice(350, 650), slice(180, 450))  # the middle of Obama's face in the 626x1200 photo
    detail = [cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(f[face]), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
              for f in (next(iter(VideoReader(blurred))), frames[0])]
    assert detail[1] > 1.3 * detail[0], detail
    # --max-side scales the output down (aspect ratio kept); --crf trades size for quality
    small, rough = tmp_path / "small.mp4", tmp_path / "rough.mp4"
    common = ["--source", real_dir / OBAMA, "--driving", real_dir / SADTALKER, "--weights", weights, "--paste-back",
              "--seconds", "0.4"]
    assert run(*common, "--out", small, "--max-side", "600") == 0
    assert VideoReader(small).info.width == 312 and VideoReader(small).info.height == 600
    assert run(*common, "--out", rough, "--max-side", "600", "--crf", "40") == 0
    assert rough.stat().st_size < 0.6 * small.stat().st_size
    for args, message in [(["--max-side", "8"], "--max-side must be at least 16"), (["--crf", "52"], "--crf must be")]:
        assert run(*common, "--out", tmp_path / "bad.mp4", *args) == 2 and not (tmp_path / "bad.mp4").exists()


def test_animate_to_a_gif(real_dir, weights, tmp_path, capsys):
    """A looping GIF to share: the MP4's frames scaled to at most MAX_GIF_SIDE, the clip's duration, no sound."""
    from PIL import Image, ImageSequence

    from x2face.media import MAX_GIF_SIDE

    common = ["--source", real_dir / OBAMA, "--driving", real_dir / SADTALKER, "--weights", weights, "--paste-back",
              "--seconds", "0.4"]
    assert run(*common, "--out", tmp_path / "clip.mp4") == 0
    capsys.readouterr()
    assert run(*common, "--out", tmp_path / "clip.gif") == 0
    summary = capsys.readouterr().out
    with Image.open(tmp_path / "clip.gif") as gif:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
        durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
        assert gif.info["loop"] == 0  # loops forever
    w, h = round(626 * MAX_GIF_SIDE / 1200), MAX_GIF_SIDE  # the 626x1200 photo, pasted back, scaled down
    assert len(frames) == 10 and frames[0].shape == (h, w, 3) and sum(durations) == 400
    assert f"{w}x{h}, a GIF: no sound" in summary  # the clip's AAC track cannot go into a GIF
    mp4 = [np.asarray(Image.fromarray(f).resize((w, h), Image.LANCZOS)) for f in VideoReader(tmp_path / "clip.mp4")]
    assert np.abs(np.stack(frames).astype(int) - np.stack(mp4).astype(int)).mean() < 6  # the same video


def test_animate_several_sources_side_by_side_no_audio(real_dir, weights, tmp_path, capsys):
    out = tmp_path / "sbs.mp4"
    assert run("--source", real_dir / ANNE, "--source", real_dir / "photos/jixinya_EAMM__test_image_21.png",
               "--driving", real_dir / GRID, "--seconds", "0.4", "--side-by-side", "--no-keep-audio",
               "--out", out, "--weights", weights) == 0
    info = probe_video(out)
    assert (info.width, info.height) == (64 * 3 + 8, 64) and not info.has_audio
    assert "no audio" in capsys.readouterr().out


def test_animate_driving_photo_gives_image(real_dir, weights, tmp_path):
    out = tmp_path / "still.png"
    assert run("--source", real_dir / ANNE, "--driving", real_dir / OBAMA, "--out", out, "--weights", weights) == 0
    assert read_image(out).shape[0] == read_image(out).shape[1] > 64
    assert run("--source", real_dir / ANNE, "--driving", real_dir / OBAMA, "--out", out, "--weights", weights,
               "--no-sharp", "--overwrite") == 0
    assert read_image(out).shape == (64, 64, 3)  # the model's own output
    assert run("--source", real_dir / ANNE, "--driving", real_dir / OBAMA, "--out", out, "--weights", weights,
               "--paste-back", "--max-side", "100", "--overwrite") == 0
    assert read_image(out).shape == (100, 100, 3)  # the 256-px photo, scaled down


def test_animate_animated_gif_driving_gives_video(real_dir, weights, tmp_path, capsys):
    gif = tmp_path / "reaction.gif"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(real_dir / GRID), "-t", "1", "-vf",
                    "fps=10,scale=180:-1", str(gif)], check=True)
    before = gif.read_bytes()
    out = tmp_path / "out.mp4"
    assert run("--source", real_dir / ANNE, "--driving", gif, "--out", out, "--weights", weights) == 0
    assert "face found in 10/10 frames of reaction.gif" in capsys.readouterr().out
    ok, errors = decode_check(out)
    assert ok, errors
    assert len(list(VideoReader(out))) == 10 and probe_video(out).fps == 10
    assert gif.read_bytes() == before
    still = tmp_path / "still.png"
    assert run("--source", real_dir / ANNE, "--driving", gif, "--out", still, "--weights", weights) == 2
    assert "must end in .mp4" in capsys.readouterr().err


def test_animate_source_video_gives_its_frames(real_dir, weights, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run("--source", real_dir / SADTALKER, "--source-frames", "3", "--driving", real_dir / GRID, "--seconds", "1",
               "--out", out, "--paste-back", "--weights", weights) == 0
    assert "; 3 source frames embedded together;" in capsys.readouterr().out
    info = probe_video(out)
    first = probe_video(real_dir / SADTALKER)
    assert (info.width, info.height) == (first.width, first.height)  # pasted back into the clip's first frame
    assert run("--source", real_dir / SADTALKER, "--source-frames", "0", "--driving", real_dir / GRID,
               "--out", tmp_path / "bad.mp4", "--weights", weights) == 2
    assert "--source-frames must be >= 1" in capsys.readouterr().err and not (tmp_path / "bad.mp4").exists()


def test_embed_then_animate_the_painted_face(real_dir, weights, tmp_path, capsys):
    """The CLI's editing (section 6): ``embed`` writes the embedded face, a copy is painted, and ``animate
    --edit-painted`` drives the painted face; ``--edit-overlay`` puts a picture on it."""
    from PIL import Image

    from x2face.pipeline import X2FacePipeline

    face, conf = tmp_path / "face.png", tmp_path / "conf.png"
    assert cli(["embed", "--source", str(real_dir / ANNE), "--out", str(face), "--confidence", str(conf),
                "--weights", weights, "--backend", "opencv"]) == 0
    assert "x2face embed: wrote" in capsys.readouterr().out
    pipe = X2FacePipeline.from_pretrained(weights, backend="opencv")
    pipe.set_source([real_dir / ANNE])
    r = pipe.sharp_side
    assert r > 64 and np.array_equal(read_image(face), pipe.embedded_face(r))  # sampled from the photo, at its size
    assert np.asarray(Image.open(conf)).shape[:2] == (r, r)
    small = tmp_path / "small.png"
    assert cli(["embed", "--source", str(real_dir / ANNE), "--out", str(small), "--weights", weights,
                "--backend", "opencv", "--no-sharp"]) == 0
    assert np.array_equal(read_image(small), pipe.embedded_face())  # the model's own, 64 x 64

    def paint(image: np.ndarray) -> tuple[np.ndarray, str]:
        """A green square over a sixteenth of the face, where the face's size puts it; and its share."""
        n = image.shape[0]
        a, b = round(n * 20 / 64), round(n * 36 / 64)
        image = image.copy()
        image[a:b, a:b] = (0, 255, 0)
        return image, f"{(b - a) ** 2 / n ** 2:.1%}"

    painted, share = paint(read_image(face))
    Image.fromarray(painted).save(tmp_path / "painted.png")
    Image.fromarray(paint(read_image(small))[0]).save(tmp_path / "painted-small.png")
    common = ["--source", real_dir / ANNE, "--driving", real_dir / GRID, "--seconds", "0.4", "--no-keep-audio",
              "--weights", weights]
    assert run(*common, "--out", tmp_path / "plain.mp4") == 0
    assert run(*common, "--edit-painted", tmp_path / "painted.png", "--out", tmp_path / "edited.mp4") == 0
    out = capsys.readouterr().out
    assert f"painted {share} of the face (painted.png)" in out
    assert run(*common, "--edit-painted", tmp_path / "painted-small.png", "--out", tmp_path / "edited-small.mp4") == 0
    assert "painted 6.2% of the face (painted-small.png)" in capsys.readouterr().out  # 256 of 4096 pixels
    plain, edited, coarse = (np.stack(list(VideoReader(tmp_path / n))).astype(int)
                             for n in ("plain.mp4", "edited.mp4", "edited-small.mp4"))
    for video in (edited, coarse):
        green = (video[..., 1] - video[..., [0, 2]].max(-1)) - (plain[..., 1] - plain[..., [0, 2]].max(-1))
        assert (green > 100).mean(axis=(1, 2)).min() > 0.01  # the paint is in every frame
    assert np.abs(edited - coarse).mean() < 3  # the same square; painted at the photo's size its edges are crisper

    sticker = tmp_path / "sticker.png"
    Image.new("RGBA", (20, 20), (255, 0, 0, 255)).save(sticker)
    assert run("--source", real_dir / ANNE, "--driving", real_dir / OBAMA, "--edit-overlay", sticker,
               "--edit-at", "0.3,0.4", "--weights", weights, "--out", tmp_path / "still.png") == 0
    assert "sticker.png on the face at 0.3,0.4" in capsys.readouterr().out
    assert run("--source", real_dir / ANNE, "--driving", real_dir / OBAMA, "--weights", weights,
               "--out", tmp_path / "still0.png") == 0
    assert np.abs(read_image(tmp_path / "still.png").astype(int) - read_image(tmp_path / "still0.png")).max() > 50

    other = tmp_path / "other.png"  # painted on another person's embedded face: nearly everything differs
    assert cli(["embed", "--source", str(real_dir / OBAMA), "--out", str(other), "--weights", weights,
                "--backend", "opencv"]) == 0
    capsys.readouterr()
    assert run(*common, "--edit-painted", tmp_path / "small.png", "--edit-painted-on", other,
               "--out", tmp_path / "o.mp4") == 2  # a painting and a face of different sizes
    assert "is 64x64 but the embedded face" in capsys.readouterr().err
    other_small = tmp_path / "other-small.png"
    assert cli(["embed", "--source", str(real_dir / OBAMA), "--out", str(other_small), "--weights", weights,
                "--backend", "opencv", "--no-sharp"]) == 0
    capsys.readouterr()
    assert run(*common, "--edit-painted", other_small, "--out", tmp_path / "o.mp4") == 0
    assert "differs from other-small.png: was it painted on what `python -m x2face embed` wrote" \
        in capsys.readouterr().err
    other_painted, other_share = paint(read_image(other))  # the same square, on the other person's embedded face
    Image.fromarray(other_painted).save(tmp_path / "other-painted.png")
    assert run(*common, "--edit-painted", tmp_path / "other-painted.png", "--edit-painted-on", other,
               "--out", tmp_path / "moved.mp4") == 0
    assert f"painted {other_share} of the face (other-painted.png, moved from other.png)" in capsys.readouterr().out
    moved = np.stack(list(VideoReader(tmp_path / "moved.mp4"))).astype(int)
    assert np.abs(moved - edited).mean() < 2  # the same edit as painting this person's face (H.264 aside)

    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    cases = [(["--edit-painted", tmp_path / "big.png"],
              f"the painting is 100x100 but this photo's embedded face is {r}x{r} (what `python -m x2face embed` "
              f"writes for it) or 64x64 (`embed --no-sharp`); paint on"),
             (["--edit-painted", other], f"the painting is {read_image(other).shape[0]}x"),
             (["--edit-painted", tmp_path / "painted.png", "--edit-overlay", sticker], "not both"),
             (["--edit-overlay", sticker, "--edit-at", "middle"], "--edit-at takes X,Y fractions"),
             (["--edit-overlay", sticker, "--edit-at", "2,2"], "--edit-at X,Y are fractions of the embedded face from "
                                                               "0 to 1 (0,0 its top left), got 2,2"),
             (["--edit-overlay", sticker, "--edit-at=-1e30,0.5"], "got -1e30,0.5"),
             (["--edit-overlay", sticker, "--edit-at", "nan,0.5"], "got nan,0.5"),
             (["--edit-painted-on", other], "--edit-painted-on goes with --edit-painted"),
             (["--edit-overlay", tmp_path / "nope.png"], "no such file"),
             (["--edit-overlay", sticker, "--out", sticker, "--overwrite"], "one of the inputs")]
    for extra, message in cases:
        argv = [*common, *extra] + ([] if "--out" in extra else ["--out", tmp_path / "bad.mp4"])
        assert run(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad.mp4").exists() and sticker.stat().st_size > 0
    assert cli(["embed", "--source", str(real_dir / ANNE), "--out", str(real_dir / ANNE), "--overwrite"]) == 2
    assert cli(["embed", "--source", str(real_dir / ANNE), "--out", str(face), "--weights", weights]) == 2  # exists
    assert "exists" in capsys.readouterr().err


def test_animate_a_face_of_a_group_photo(real_dir, weights, tmp_path, capsys):
    """--face picks the source face, --driving-face the driving one: before they were one option, and choosing
    the 2nd face of a group photo failed on a driving clip with one face."""
    from x2face.media import write_image

    group = write_image(tmp_path / "group.png", group_photo(real_dir))  # a small face left, a large one right
    out = tmp_path / "out.mp4"
    common = ["--driving", real_dir / GRID, "--out", out, "--weights", weights, "--seconds", "0.4", "--overwrite"]
    assert run("--source", group, *common) == 0
    assert "group.png: the largest of 2 faces (--face picks another)" in capsys.readouterr().out
    assert run("--source", group, "--face", "0", *common) == 0
    assert "group.png: the leftmost of 2 faces;" in capsys.readouterr().out
    assert run("--source", group, "--face", "60,40", *common, "--paste-back") == 0  # a point on the left face
    assert "group.png: the face nearest (60, 40) of 2;" in capsys.readouterr().out
    assert VideoReader(out).info.width == 640  # pasted into the whole group photo
    for args, message in [(["--face", "2"], "group.png has 2 faces: there is no 3rd from the left"),
                          (["--face", "left"], "--face must be 'largest', 'all', a face index"),
                          (["--driving-face", "1"], "the video has 1 face: there is no 2nd from the left"),
                          (["--driving-face", "1,2,3"], "--driving-face must be")]:
        assert run("--source", group, *args, *common) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert cli(["embed", "--source", str(group), "--face", "-1", "--out", str(tmp_path / "face.png"),
                "--weights", weights, "--backend", "opencv"]) == 0
    assert "group.png: the rightmost of 2 faces;" in capsys.readouterr().out
    # every face: each driven by the clip and pasted back (no --paste-back needed), with relative motion too
    assert run("--source", group, "--face", "all", *common, "--relative") == 0
    assert "group.png: all 2 faces;" in capsys.readouterr().out
    assert VideoReader(out).info.width == 640
    sticker = write_image(tmp_path / "sticker.png", np.full((8, 8, 3), 255, np.uint8))
    assert run("--source", group, "--face", "all", *common, "--edit-overlay", sticker) == 0
    assert "sticker.png on every face at 0.5,0.5;" in capsys.readouterr().out
    assert run("--source", group, "--face", "all", *common, "--edit-overlay", sticker, "--edit-face", "-1") == 0
    assert "sticker.png on the rightmost of 2 faces at 0.5,0.5;" in capsys.readouterr().out
    right = tmp_path / "right.png"  # paint on the right-hand face's own embedded face, then on that face only
    assert cli(["embed", "--source", str(group), "--face", "1", "--out", str(right), "--weights", weights]) == 0
    painted = read_image(right)
    painted[10:14, :] = (255, 0, 0)
    write_image(tmp_path / "painted.png", painted)
    assert run("--source", group, "--face", "all", *common, "--edit-painted", tmp_path / "painted.png",
               "--edit-face", "1") == 0
    assert "of the rightmost of 2 faces (painted.png)" in capsys.readouterr().out
    for args, message in [(["--edit-face", "1"], "--edit-face goes with --edit-overlay or --edit-painted"),
                          (["--edit-overlay", sticker, "--edit-face", "2"], "the source has 2 faces: there is no face 2")]:
        assert run("--source", group, "--face", "all", *common, *args) == 2
        assert message in capsys.readouterr().err
    import app_server

    heads = app_server.save_tiny_weights(tmp_path / "heads")  # with pose and audio heads
    assert run("--source", group, "--face", "all", "--pose=10,0,0", "--out", out, "--weights", heads,
               "--overwrite") == 0  # a head pose turns everyone alike
    assert "group.png: all 2 faces;" in capsys.readouterr().out and VideoReader(out).info.width == 640
    assert run("--source", group, "--face", "all", *common, "--side-by-side") == 2
    err = capsys.readouterr().err.strip()
    assert "--side-by-side shows one face's crops" in err and len(err.splitlines()) == 1, err
    assert run("--source", group, "--source", real_dir / ANNE, "--face", "all", *common) == 2
    assert "every face (face='all') is for one group photo" in capsys.readouterr().err
    # embed --face all: a file per face, numbered from the left, each that face's own (what --edit-face N paints on)
    every = ["embed", "--source", str(group), "--face", "all", "--out", str(tmp_path / "all.png"), "--weights",
             weights]
    assert cli(every) == 0
    assert "all_0.png" in capsys.readouterr().out
    assert np.array_equal(read_image(tmp_path / "all_1.png"), read_image(right))  # embed --face 1's
    assert read_image(tmp_path / "all_0.png").shape != read_image(right).shape  # (a smaller face on the left)
    assert cli(every) == 2 and "exists; pass --overwrite" in capsys.readouterr().err  # nothing replaced unasked
    assert cli(every + ["--overwrite", "--confidence", str(tmp_path / "conf.png")]) == 0
    assert (tmp_path / "conf_0.png").is_file() and (tmp_path / "conf_1.png").is_file()



def test_animate_a_group_photo_with_a_clip_of_several_people(real_dir, weights, tmp_path, capsys):
    """--face all --driving-face all: each face of the group photo is driven by the clip's face in its place."""
    from x2face.media import VideoWriter, write_image

    group = write_image(tmp_path / "group.png", group_photo(real_dir))
    clip = tmp_path / "two.mp4"
    with VideoWriter(clip, 25) as w:
        for frame in group_clip(real_dir, 10):
            w.write(frame)
    out, png = tmp_path / "out.mp4", tmp_path / "out.png"
    common = ["--source", group, "--weights", weights, "--overwrite"]
    assert run(*common, "--out", out, "--face", "all", "--driving", clip, "--driving-face", "all") == 0
    assert "all 2 faces found in 10/10 frames of two.mp4" in capsys.readouterr().out
    assert VideoReader(out).info.width == 640  # the group photo, every face pasted back
    still = write_image(tmp_path / "two.png", group_clip(real_dir, 1)[0])  # a driving photo of two people
    assert run(*common, "--out", png, "--face", "all", "--driving", still, "--driving-face", "all") == 0
    for args, message in [([out, "--driving", clip, "--driving-face", "all"], "add --face all"),
                          ([out, "--face", "all", "--driving", real_dir / GRID, "--driving-face", "all",
                            "--seconds", "0.4"], "bbaf2n.mpg never shows 2 faces at once (10 frames checked)"),
                          ([png, "--face", "all", "--driving", real_dir / ANNE, "--driving-face", "all"],
                           "the driving photo jixinya_EAMM__test_image_anne.png never shows 2 faces at once")]:
        assert run(*common, "--out", *args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err

def test_animate_relative_motion(real_dir, weights, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    common = ["--source", real_dir / ANNE, "--out", out, "--weights", weights, "--overwrite"]
    assert run(*common, "--driving", real_dir / GRID, "--seconds", "0.4", "--relative") == 0
    assert "(opencv), relative motion from its first face;" in capsys.readouterr().out
    assert probe_video(out).num_frames_estimate == 10
    for driver in (["--driving", real_dir / ANNE], ["--pose=10,0,0"]):  # a photo or a pose has no motion to follow
        assert run(*common, *driver, "--relative") == 2
        assert "--relative moves the photo as a driving video's face moves" in capsys.readouterr().err
    assert run(*common, "--driving", real_dir / GRID, "--seconds", "0.4", "--relative", "--motion-scale", "1.5") == 0
    assert "relative motion x1.5 from its first face;" in capsys.readouterr().out
    # from the frame posed most like the photo (the clip is read twice)
    assert run(*common, "--driving", real_dir / GRID, "--seconds", "0.4", "--relative", "--relative-to", "best") == 0
    text = capsys.readouterr().out
    assert re.search(r"relative motion from frame \d+ \(\d\.\d\d s\), posed most like the photo;", text), text
    assert probe_video(out).num_frames_estimate == 10
    assert run(*common, "--driving", real_dir / GRID, "--seconds", "0.4", "--relative", "--relative-to", "0.2") == 0
    assert "relative motion from frame 5 (0.20 s);" in capsys.readouterr().out  # the frame shown at 0.2 s
    assert run(*common, "--driving", real_dir / GRID, "--seconds", "0.4", "--start", "0.4", "--relative",
               "--relative-to", "0:00.6") == 0
    assert "relative motion from frame 5 (0.60 s);" in capsys.readouterr().out  # (counted from --start)
    with pytest.raises(SystemExit):  # (argparse's own error: usage and the message, exit code 2)
        run(*common, "--driving", real_dir / GRID, "--relative", "--relative-to", "soon")
    assert "not a time: 'soon'" in capsys.readouterr().err
    for args, message in [(["--relative-to", "best"], "--relative-to picks relative motion's reference frame"),
                          (["--relative", "--relative-to", "0.1", "--start", "0.2"], "is before --start"),
                          (["--relative", "--relative-to", "99"], "--relative-to 99 s is past the end of the part "
                                                                   "animated (2.98 s into rizkiarm_LipNet"),
                          (["--relative", "--relative-to", "0.5", "--seconds", "0.4"], "past the end of the part "
                                                                                       "animated (0.4 s into"),
                          (["--motion-scale", "2"], "--motion-scale scales relative motion: add --relative"),
                          (["--relative", "--motion-scale", "9"], "--motion-scale must be from 0 to 4, got 9")]:
        assert run(*common, "--driving", real_dir / GRID, *args) == 2
        assert message in capsys.readouterr().err


def test_animate_errors_are_one_line(real_dir, weights, tmp_path, capsys):
    clip = tmp_path / "clip.mpg"
    clip.write_bytes((real_dir / GRID).read_bytes())
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    hour = tmp_path / "hour.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=16x16:r=1:d=3600",
                    "-c:v", "libx264", "-preset", "ultrafast", str(hour)], check=True)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01" * 2000)
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    cases = [
        (["--source", real_dir / DOG, "--driving", clip], "no human face found in"),
        (["--source", real_dir / ANNE, "--driving", hour], "1.0 h long; the limit is 10.0 min"),
        (["--source", real_dir / ANNE, "--driving", junk], "cannot read junk.mp4"),
        (["--source", real_dir / ANNE, "--driving", clip, "--max-seconds", "1"], "the limit is 1.0 s"),
        (["--source", real_dir / ANNE, "--driving", tmp_path / "nope.mp4"], "no such file"),
        (["--source", real_dir / ANNE, "--driving", clip, "--max-gap", "0"], "max_gap must be an int >= 1"),
        (["--source", real_dir / ANNE, "--driving", clip, "--threads", "100000"], "--threads must be from 1 to"),
        (["--source", real_dir / ANNE, "--driving", "/dev/zero"], "/dev/zero is not a file (a folder, a pipe or a "
                                                                  "device): give a file"),
        (["--source", "/dev/null", "--driving", clip], "/dev/null is not a file (a folder, a pipe or a device): "
                                                       "give a photo"),
        (["--source", real_dir / ANNE, "--driving", clip, "--device", "tpu"], "unknown device 'tpu'"),
    ]
    for args, message in cases:
        assert run(*args, "--out", tmp_path / "o.mp4", "--weights", weights) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert run("--source", real_dir / ANNE, "--driving", clip, "--out", clip, "--weights", weights, "--overwrite") == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert run("--source", real_dir / ANNE, "--driving", clip, "--out", existing, "--weights", weights) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert run("--source", real_dir / ANNE, "--driving", clip, "--out", f"{tmp_path}/", "--weights", weights) == 2
    assert f"{tmp_path} is a folder: give a file name in it, e.g. {tmp_path}/out.mp4" in capsys.readouterr().err
    assert run("--source", real_dir / ANNE, "--driving", clip, "--out", tmp_path / "o.mp4", "--batch-size", "0") == 2
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err
    # the output's kind follows the driver's: a photo gives a picture, a clip a video
    assert run("--source", real_dir / ANNE, "--driving", real_dir / OBAMA, "--out", tmp_path / "o.mp4") == 2
    assert "obama2.jpg is a photo: driving with it gives one picture (drive with a clip for a video), so the output " \
        "must end in .jpg or" in capsys.readouterr().err
    assert run("--source", real_dir / ANNE, "--driving", clip, "--out", tmp_path / "o.png") == 2
    assert "this gives a video, so the output must end in .mp4 or .m4v or .mov or .gif, got o.png" in \
        capsys.readouterr().err
    assert existing.read_bytes() == b"keep me" and hashlib.sha256(clip.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "o.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mpg", "existing.mp4", "hour.mp4", "junk.mp4"]


def test_animate_process_exit_code_and_no_traceback(real_dir, tmp_path):
    """The real command line: missing weights is a one-line error, exit code 2."""
    env = {**os.environ, "X2FACE_DEMO_WEIGHTS": str(tmp_path / "none"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "x2face", "animate", "--source", str(real_dir / ANNE),
                           "--driving", str(real_dir / GRID), "--out", str(tmp_path / "o.mp4")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert "no bundled demo weights" in proc.stderr


def test_overlapped_stages_write_the_same_video(real_dir, weights, tmp_path):
    """--overlap on (decode+crop | networks | paste+encode in three threads) gives the frames of --overlap off."""
    videos = []
    for mode in ("off", "on"):
        out = tmp_path / f"{mode}.mp4"
        assert run("--source", real_dir / OBAMA, "--driving", real_dir / GRID, "--seconds", "1", "--paste-back",
                   "--batch-size", "4", "--overlap", mode, "--out", out, "--weights", weights) == 0
        videos.append(np.stack(list(VideoReader(out))))
    assert videos[0].shape == (25, 1200, 626, 3) and np.array_equal(videos[0], videos[1])


@pytest.mark.parametrize("stage", ["networks", "encoder"])
def test_a_failing_stage_is_one_line_and_leaves_nothing(real_dir, weights, tmp_path, capsys, monkeypatch, stage):
    import threading

    from x2face.errors import MediaError
    from x2face.media import VideoWriter
    from x2face.pipeline import X2FacePipeline

    calls = []
    if stage == "networks":
        real = X2FacePipeline._generate

        def broken(self, crops, motion=None, sharp=False):
            calls.append(1)
            if len(calls) == 3:
                raise MediaError("the networks broke")
            return real(self, crops, motion, sharp)

        monkeypatch.setattr(X2FacePipeline, "_generate", broken)
    else:
        real = VideoWriter.write

        def broken(self, frame):
            calls.append(1)
            if len(calls) == 7:
                raise MediaError("the encoder broke")
            return real(self, frame)

        monkeypatch.setattr(VideoWriter, "write", broken)
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    assert run("--source", real_dir / ANNE, "--driving", real_dir / GRID, "--overlap", "on", "--batch-size", "4",
               "--out", out, "--weights", weights) == 2
    err = capsys.readouterr().err.strip()
    assert f"the {stage} broke" in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert list(out.parent.iterdir()) == []  # no output, no partial files
    assert [t.name for t in threading.enumerate() if t.name.startswith("x2face-")] == []
    assert ffmpeg_children() == []


def test_thread_setup_respects_threads(monkeypatch):
    from x2face import cli as cli_module, fast

    calls = []
    monkeypatch.setattr(fast, "configure_cpu_threads", lambda n=None: calls.append(n) or 1)
    cli_module._configure_threads("animate", ["--source", "a.jpg"])
    cli_module._configure_threads("fit-pose", ["--weights", "w"])
    assert calls == [None, None]  # the commands that run the networks: one thread per physical core
    cli_module._configure_threads("animate", ["--threads", "3"])
    cli_module._configure_threads("animate", ["--threads=3"])
    cli_module._configure_threads("info", [])
    cli_module._configure_threads("animate", ["--help"])
    assert calls == [None, None]  # the user's --threads, commands without networks, help: left alone


def test_eager_and_precision_options(real_dir, weights, tmp_path):
    """--eager (the fp32 eager model) and --precision fp32 (the fast path in fp32) animate the same video."""
    videos = []
    for opts in (["--eager"], ["--precision", "fp32"]):
        out = tmp_path / f"{opts[-1]}.mp4"
        assert run("--source", real_dir / ANNE, "--driving", real_dir / GRID, "--seconds", "0.4", *opts,
                   "--out", out, "--weights", weights) == 0
        videos.append(np.stack(list(VideoReader(out))).astype(int))
    assert videos[0].shape == videos[1].shape and videos[0].shape[0] == 10
    assert np.abs(videos[0] - videos[1]).mean() < 0.5


def test_pose_videos_longer_than_the_limit_are_refused(real_dir, tmp_path, capsys):
    """--pose-seconds and --sweep-seconds make videos as long as they say: past --max-seconds they are refused before
    a frame is made (they used to run for hours, or fail to allocate), as clips are."""
    import app_server

    heads = app_server.save_tiny_weights(tmp_path / "heads")
    out = tmp_path / "o.mp4"
    common = ["--source", real_dir / ANNE, "--out", out, "--weights", heads]
    for args, message in [
        (["--pose=10,0,0", "--pose-seconds", "100000"],
         "--pose-seconds 100000 for 1 pose(s) makes a 100000 s video; the limit is 600 s (--max-seconds)"),
        (["--pose=10,0,0", "--pose=0,10,0", "--pose-seconds", "4", "--max-seconds", "8"],
         "--pose-seconds 4 for 2 pose(s) makes a 8.5 s video; the limit is 8 s (--max-seconds)"),
        (["--pose=10,0,0", "--pose-seconds", "1e9"], "makes a 1e+09 s video"),
        (["--pose-sweep", "yaw", "--sweep-seconds", "1e9"], "--sweep-seconds 1e+09 makes a 1e+09 s video"),
        (["--pose-sweep", "yaw", "--max-seconds", "0"], "--max-seconds must be a positive number, got 0"),
        (["--pose-sweep", "yaw", "--max-pixels", "-1"], "--max-pixels must be a positive number, got -1"),
    ]:
        assert run(*common, *args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == [tmp_path / "heads"]  # no output, no partial file
    assert run(*common, "--pose-sweep", "yaw", "--sweep-seconds", "0.4", "--max-seconds", "0.5", "--quiet") == 0
    assert sum(1 for _ in VideoReader(out)) == 10


@pytest.mark.slow
@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_a_stopped_animate_leaves_no_partial_file(real_dir, weights, tmp_path, signame, code):
    """``kill`` (SIGTERM), a closed terminal (SIGHUP) and Ctrl-C (SIGINT), sent to the command and its ffmpeg
    children while they write: a one-line message, exit 128 + the signal, no partial file, a kept --out untouched
    (SIGTERM and SIGHUP used to kill Python at once, leaving the hidden temporary video beside --out)."""
    import signal
    import time

    sig = getattr(signal, signame)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    clip = real_dir / "clips/FuxiVirtualHuman_styletalk__samples_source_video_video_KristiNoem.mp4"  # 18 s
    proc = subprocess.Popen([sys.executable, "-m", "x2face", "animate", "--source", str(real_dir / OBAMA),
                             "--driving", str(clip), "--paste-back", "--out", str(out), "--overwrite", "--quiet",
                             "--weights", weights, "--backend", "opencv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()):  # writing has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, sig)  # the command and its ffmpeg processes, as a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err, err
    assert err.strip() == (f"x2face animate: stopped by {signame}" if signame != "SIGINT" else
                           "x2face animate: interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"] and out.read_bytes() == b"keep me"


def test_stop_signals_keep_an_ignored_signal_ignored_and_come_back():
    """Under ``nohup`` SIGHUP is ignored and stays so; training commands keep their own SIGTERM handling; the
    previous handlers are back after the command."""
    import signal

    from x2face.cli import _stop_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        term = signal.getsignal(signal.SIGTERM)
        with _stop_signals("animate"):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not term
        assert signal.getsignal(signal.SIGTERM) is term and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        with _stop_signals("train"):
            assert signal.getsignal(signal.SIGTERM) is term
    finally:
        signal.signal(signal.SIGHUP, before)
