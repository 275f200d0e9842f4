"""x2face.media on the real files in ../shared/data/real: photos in any mode, videos as streams, audio at
any rate, H.264 output with audio in sync, and the limits that refuse hour-long or 20000x20000 inputs."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import time
import tracemalloc
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from x2face.errors import MediaError
from x2face.media import (Limits, VideoReader, VideoWriter, check_output_path, decode_check, ffmpeg_exe,
                          is_animated_image, is_still_image, iter_video_frames, probe_video, read_audio, read_image,
                          to_rgb_array, write_video)

from helpers import best_lag

GRID = "clips/rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"  # MPEG-1 + mp2 audio, 360x288, 25 fps, 3 s
FOMM = "clips/AliaksandrSiarohin_first-order-model__demo_old_00.mp4"  # 256x256, 30 fps, silent
LP720 = "clips/KwaiVGI_LivePortrait__assets_examples_source_s18.mp4"  # 1280x720, 30 fps, aac
VFR = "clips/OpenTalker_video-retalking__examples_face_1.mp4"  # 22.13 fps average, 30 tbr, video starts at 0.033 s
WAV24 = "speech/OpenTalker_SadTalker__examples_driven_audio_deyu.wav"  # 24-bit WAVE_FORMAT_EXTENSIBLE, 48 kHz stereo
WAV16 = "speech/ggerganov_whisper.cpp__samples_jfk.wav"  # 16 kHz mono
PHOTO_WIDE = "photos/KwaiVGI_LivePortrait__assets_examples_source_s9.jpg"  # 720x1280 (portrait)
PHOTO = "photos/jixinya_EAMM__test_image_anne.png"


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


def ffmpeg_decode_audio(path, sr=16000) -> np.ndarray:
    """Independent decode (ffmpeg's own resampler and downmix) to compare read_audio against."""
    raw = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", str(sr), "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, "<f4")


# ----------------------------------------------------------------------------------------- images
def test_read_image_photo(real_dir):
    img = read_image(real_dir / PHOTO_WIDE)
    assert img.dtype == np.uint8 and img.shape == (1280, 720, 3)
    assert read_image((real_dir / PHOTO_WIDE).read_bytes()).shape == (1280, 720, 3)


def test_read_image_exif_rotation(real_dir, tmp_path):
    src = Image.open(real_dir / PHOTO_WIDE).convert("RGB")  # 720 wide, 1280 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    src.save(path, quality=95, exif=exif)
    img = read_image(path)
    assert img.shape == (720, 1280, 3)
    expected = np.rot90(np.asarray(src), k=-1)  # clockwise
    assert np.abs(img.astype(int) - expected.astype(int)).mean() < 3


def test_read_image_rgba_grey_and_16bit(real_dir, tmp_path):
    rgb = np.asarray(Image.open(real_dir / PHOTO).convert("RGB"))
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :100] = 0  # left part transparent
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.shape == rgb.shape
    assert (img[:, :100] == 255).all() and np.array_equal(img[:, 100:], rgb[:, 100:])

    grey = np.asarray(Image.open(real_dir / PHOTO).convert("L"))
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (*grey.shape, 3) and np.array_equal(img[..., 0], grey) and np.array_equal(img[..., 2], grey)

    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # a 16-bit greyscale PNG
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = read_image(tmp_path / "g16.png")
    assert img.dtype == np.uint8 and np.abs(img[..., 1].astype(int) - grey).max() <= 1

    assert np.abs(to_rgb_array(grey.astype(np.uint16) * 257)[..., 0].astype(int) - grey).max() <= 1
    assert np.array_equal(to_rgb_array(rgb.astype(np.float32) / 255.0), rgb)


def test_read_image_corrupt_and_unsupported(real_dir, tmp_path):
    data = (real_dir / PHOTO_WIDE).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="corrupt or truncated"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "notes.jpg").write_bytes(b"this is not a photo at all" * 10)
    with pytest.raises(MediaError, match="not an image"):
        read_image(tmp_path / "notes.jpg")
    with pytest.raises(MediaError, match="no such photo"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "face.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
                                       '<circle cx="32" cy="32" r="20"/></svg>')
    for read in (read_image, probe_video):  # (ffmpeg would rasterise it as a one-frame video)
        with pytest.raises(MediaError, match="face.svg is a vector drawing .SVG., not a photo or a clip: export it"):
            read(tmp_path / "face.svg")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a few bytes of (truncated) pixel data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_from_header(real_dir, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20000, 20000))
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="400 megapixels"):
        read_image(path)
    with pytest.raises(MediaError, match="megapixels"):
        read_image(path.read_bytes())
    assert time.perf_counter() - t0 < 2.0
    # the limit is read from the header and configurable: a real 720x1280 photo over a 0.5 MP limit
    with pytest.raises(MediaError, match="720x1280"):
        read_image(real_dir / PHOTO_WIDE, limits=Limits(max_image_pixels=500_000))


# ----------------------------------------------------------------------------------------- video in
def test_probe_real_clips(real_dir):
    info = probe_video(real_dir / GRID)
    assert (info.width, info.height, info.fps) == (360, 288, 25)
    assert info.has_audio and info.audio_rate == 44100 and info.audio_channels == 2
    assert abs(info.duration - 2.98) < 0.05
    info = probe_video(real_dir / FOMM)
    assert (info.width, info.height, info.fps, info.has_audio) == (256, 256, 30, False)
    info = probe_video(real_dir / WAV24)
    assert not info.has_video and info.has_audio and info.audio_rate == 48000


@pytest.mark.parametrize("clip,size,fps", [(FOMM, (256, 256), 30), (GRID, (288, 360), 25), (LP720, (720, 1280), 30)])
def test_reader_streams_first_second(real_dir, clip, size, fps):
    reader = VideoReader(real_dir / clip, seconds=1.0)
    frames = list(reader)
    assert len(frames) == fps == reader.num_frames_estimate
    assert all(f.shape == (*size, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[0].std() > 10  # real pictures, not blank buffers
    assert not np.array_equal(frames[0], frames[-1])


def test_reader_variable_frame_rate_clip(real_dir):
    reader = VideoReader(real_dir / VFR)
    assert reader.fps == pytest.approx(22.13)
    n = sum(1 for _ in reader)
    assert abs(n - reader.info.duration * float(reader.fps)) <= 1


def test_reader_vfr_timing(tmp_path):
    """1 s black at 10 fps then 1 s white at 30 fps, stored with variable frame rate: at a constant
    output rate, frame i shows what was on screen at i / fps."""
    path = tmp_path / "vfr.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=10:d=1", "-f", "lavfi", "-i", "color=c=white:s=64x48:r=30:d=1",
           "-filter_complex", "[0][1]concat=n=2:v=1:a=0", "-fps_mode", "vfr", "-c:v", "libx264", "-qp", "0", str(path))
    reader = VideoReader(path, fps=20)
    frames = [f.mean() for f in reader]
    assert abs(len(frames) - 40) <= 1
    first_white = next(i for i, m in enumerate(frames) if m > 128)
    assert abs(first_white - 20) <= 1


@pytest.mark.parametrize("fps", [25, 30, 12.5, 5, 3, 1])
def test_reader_frame_i_is_the_picture_at_i_over_fps(tmp_path, fps):
    """A 25 fps clip whose frame k has grey level 4k: read at any rate, frame i is input frame floor(25 i / fps)
    (the one on screen at i / fps), also when frames are dropped (the 5 fps of training's real clips)."""
    path = tmp_path / "ramp.mp4"
    ramp = np.repeat(np.arange(0, 240, 4, dtype=np.uint8), 32 * 32 * 3).tobytes()  # 60 frames of 32x32 RGB
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "32x32",
                    "-r", "25", "-i", "-", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(path)],
                   input=ramp, check=True)
    shown = [int(round(f.mean() / 4)) for f in VideoReader(path, fps=fps)]
    expected = [int(25 * i / fps + 1e-9) for i in range(int(round(2.4 * fps)))]
    assert shown == expected


@pytest.mark.parametrize("ext,vcodec,acodec", [("webm", "libvpx", "libopus"), ("mov", "libx264", "aac"),
                                              ("avi", "mpeg4", "libmp3lame"), ("mkv", "libx264", "libvorbis")])
def test_reader_common_containers(real_dir, tmp_path, ext, vcodec, acodec):
    path = tmp_path / f"clip.{ext}"
    extra = ["-deadline", "realtime", "-cpu-used", "8"] if vcodec == "libvpx" else []
    ffmpeg("-ss", "1", "-i", str(real_dir / GRID), "-t", "1", "-c:v", vcodec, *extra, "-c:a", acodec, str(path))
    frames = list(VideoReader(path))
    assert abs(len(frames) - 25) <= 1 and frames[0].shape == (288, 360, 3)
    audio, sr = read_audio(path)
    assert sr == 16000 and abs(len(audio) - 16000) < 800 and np.abs(audio).max() > 0.1  # speech, not silence
    lag, corr = best_lag(ffmpeg_decode_audio(path), audio)
    assert abs(lag) <= 2 and corr > 0.99


def test_reader_rotation_metadata(real_dir, tmp_path):
    plain, rotated = tmp_path / "plain.mp4", tmp_path / "rotated.mp4"
    ffmpeg("-i", str(real_dir / GRID), "-t", "0.4", "-an", "-c:v", "libx264", str(plain))
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))
    reader = VideoReader(rotated)
    assert (reader.width, reader.height) == (288, 360)
    assert all(f.shape == (360, 288, 3) for f in reader)


@pytest.mark.parametrize("name,args", [("clip.gif", []), ("clip.webp", ["-loop", "0"]), ("clip.png", ["-f", "apng"])])
def test_animated_images_are_clips(real_dir, tmp_path, name, args):
    path = tmp_path / name
    ffmpeg("-i", str(real_dir / FOMM), "-t", "1", "-vf", "fps=10,scale=96:96", *args, str(path))
    assert is_animated_image(path) and not is_still_image(path)
    frames = list(VideoReader(path))
    assert len(frames) == 10 and frames[0].shape == (96, 96, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the frames differ: it moves



@pytest.mark.parametrize("ext", ["gif", "webp", "png"])
def test_animated_images_with_frames_held_longer_keep_every_frame(tmp_path, ext):
    """A GIF (WebP, PNG) whose frames are shown for 100 to 500 ms: read at ffmpeg's average rate (4.5 fps) the
    last frame was dropped and the third came late; read at one slot per shortest frame (10 fps), every frame
    shows, for as long as the file shows it."""
    path = tmp_path / f"held.{ext}"
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)) for i in range(5)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 500, 100, 300, 100], loop=0,
                   **({"lossless": True} if ext == "webp" else {}))
    reader = VideoReader(path)
    assert reader.fps == 10 and reader.num_frames_estimate == 11
    assert [int(f[0, 0, 0]) for f in reader] == [0, 40, 40, 40, 40, 40, 80, 120, 120, 120, 160]
    fast = tmp_path / f"fast.{ext}"  # a 10 ms frame: GIFs show it for 100 ms (as browsers do); else the rate cap
    frames[0].save(fast, save_all=True, append_images=frames[1:], duration=[10, 100, 100, 100, 100], loop=0,
                   **({"lossless": True} if ext == "webp" else {}))
    assert probe_video(fast).fps == (10 if ext == "gif" else 50)  # (else 100 fps: capped)
    from x2face.media import _animation_timing  # the blocks are read, not decoded: a cut file keeps ffmpeg's rate

    data = path.read_bytes()
    for cut in range(1, len(data), 7):
        (tmp_path / "cut").write_bytes(data[:cut])
        rate, _ = _animation_timing(tmp_path / "cut", Fraction(7))
        assert rate in (7, 10)


def test_still_images_and_unreadable_files_are_photos(real_dir, tmp_path):
    one_frame = tmp_path / "one.gif"
    Image.open(real_dir / PHOTO).convert("RGB").save(one_frame)
    broken = tmp_path / "broken.gif"
    broken.write_bytes(b"GIF89a not really")
    for path in (real_dir / PHOTO, real_dir / PHOTO_WIDE, one_frame, broken):
        assert is_still_image(path) and not is_animated_image(path)
    assert not is_still_image(real_dir / FOMM) and not is_animated_image(real_dir / FOMM)
    with pytest.raises(MediaError):
        read_image(broken)  # read as a photo, it gets the photo reader's message


def test_reader_refuses_hour_long_video_from_header(tmp_path):
    path = tmp_path / "hour.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=16x16:r=1:d=3600", "-c:v", "libx264", "-preset", "ultrafast", str(path))
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match=r"1\.0 h long; the limit is 10\.0 min"):
        VideoReader(path)
    assert time.perf_counter() - t0 < 2.0
    # the first seconds of it stream fine, and the limit is configurable
    assert sum(1 for _ in iter_video_frames(path, seconds=5)) == 5
    with pytest.raises(MediaError, match="limit"):
        iter_video_frames(path, max_seconds=4000, max_pixels=100)


def test_reader_stops_streams_without_duration(real_dir):
    """A file whose header gives no duration (browser recordings) is cut off once it passes the limit."""
    from dataclasses import replace

    info = replace(probe_video(real_dir / FOMM), duration=None, num_frames_estimate=None)  # as such a header reads
    reader = VideoReader(real_dir / FOMM, limits=Limits(max_seconds=1.0), info=info)
    n = 0
    with pytest.raises(MediaError, match="longer than the limit of 1.0 s"):
        for _ in reader:
            n += 1
    assert n == 31  # 1 s at 30 fps (+1 frame of tolerance), then refused; not the clip's 265 frames


def test_reader_corrupt_files(real_dir, tmp_path):
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 4096, np.uint8).tobytes())
    with pytest.raises(MediaError, match="cannot read junk.mp4"):
        VideoReader(tmp_path / "junk.mp4")
    data = (real_dir / FOMM).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    try:
        n = sum(1 for _ in VideoReader(tmp_path / "cut.mp4"))
    except MediaError:
        n = 0
    assert n < 265  # a truncated file gives a clear error or its readable part, nothing else
    with pytest.raises(MediaError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")


def test_reader_memory_is_constant(real_dir):
    """300 frames of 720p (830 MB decoded) stream through a few MB of Python memory."""
    tracemalloc.start()
    try:
        n = 0
        for frame in VideoReader(real_dir / LP720, seconds=10):
            n += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(n - 9.43 * 30) <= 1  # the whole 9.43 s clip
    assert peak < 30e6, f"peak traced memory {peak / 1e6:.0f} MB"


# ----------------------------------------------------------------------------------------- audio
def test_read_audio_24bit_wav(real_dir):
    audio, sr = read_audio(real_dir / WAV24)
    assert sr == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - round(9.34 * 16000)) < 200
    lag, corr = best_lag(ffmpeg_decode_audio(real_dir / WAV24), audio)
    assert lag == 0 and corr > 0.99
    stereo, sr = read_audio(real_dir / WAV24, sr=None, mono=False)
    assert sr == 48000 and stereo.shape[0] == 2 and abs(stereo.shape[1] - round(9.34 * 48000)) < 500


def test_read_audio_mp3_m4a_and_mpg_track(real_dir, tmp_path):
    ref, _ = read_audio(real_dir / WAV16)
    for ext, codec in (("mp3", "libmp3lame"), ("m4a", "aac")):
        path = tmp_path / f"speech.{ext}"
        ffmpeg("-i", str(real_dir / WAV16), "-c:a", codec, "-b:a", "96k", str(path))
        audio, sr = read_audio(path)
        assert sr == 16000 and abs(len(audio) - len(ref)) < 0.05 * 16000, ext
        lag, corr = best_lag(ref, audio)
        assert abs(lag) < 16000 / 25 and corr > 0.9, (ext, lag, corr)  # within a video frame
    audio, sr = read_audio(real_dir / GRID)  # MPEG-1 layer II track of an .mpg
    assert abs(len(audio) - 2.98 * 16000) < 400
    lag, corr = best_lag(ffmpeg_decode_audio(real_dir / GRID), audio)
    assert abs(lag) <= 2 and corr > 0.99


def test_read_audio_mixes_surround_down_by_its_layout(tmp_path):
    """A voice in the centre channel of 5.1 audio (a film's dialogue) keeps its level in mono: ffmpeg's downmix by
    the layout, not a mean of six channels (a sixth of it); stereo and the channels themselves are as before."""
    for name, codec in (("film.wav", "pcm_s16le"), ("film.ac3", "ac3"), ("film.mka", "flac")):
        path = tmp_path / name
        ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=1", "-af", "pan=5.1|FC=c0", "-c:a", codec, str(path))
        mono, sr = read_audio(path)
        every, _ = read_audio(path, mono=False)
        assert every.shape[0] == 6 and np.abs(every).max(axis=1).argmax() == 2  # (FC is the third channel)
        assert np.abs(mono).max() > 0.8 * np.abs(every).max(), name  # was a sixth
    stereo = tmp_path / "stereo.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=1", "-af", "pan=stereo|FL=c0", "-c:a", "pcm_s16le", str(stereo))
    left, _ = read_audio(stereo)
    assert abs(np.abs(left).max() - 0.5 * np.abs(read_audio(stereo, mono=False)[0]).max()) < 0.01  # the mean


def test_read_audio_errors(real_dir):
    with pytest.raises(MediaError, match="no audio track"):
        read_audio(real_dir / FOMM)
    with pytest.raises(MediaError, match="limit"):
        read_audio(real_dir / WAV24, max_seconds=5)
    audio, _ = read_audio(real_dir / WAV24, seconds=2.0)
    assert abs(len(audio) - 32000) <= 2


# ----------------------------------------------------------------------------------------- video out
def _stream_line(path, kind: str) -> str:
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode()
    return next((ln for ln in text.splitlines() if f": {kind}:" in ln), "")


def test_writer_browser_mp4_even_size(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (47, 65, 3), np.uint8) for _ in range(10)]
    path = write_video(frames, tmp_path / "odd.mp4", 25)
    ok, errors = decode_check(path)
    assert ok, errors
    line = _stream_line(path, "Video")
    assert "h264" in line and "yuv420p" in line and "64x46" in line
    assert sum(1 for _ in VideoReader(path)) == 10
    assert _stream_line(path, "Audio") == ""
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left



def test_writer_scales_frames_larger_than_phones_play(tmp_path):
    """A paste-back into a 36-megapixel photo made a 6000x6000 H.264 video, past every H.264 level (phones and
    hardware decoders refuse it); frames past level 5.1 (4096 a side, 4096x2304 pixels) are scaled down into it."""
    from x2face.media import PLAYABLE_PIXELS, PLAYABLE_SIDE, playable_size

    assert playable_size(1920, 1080) == (1920, 1080) and playable_size(641, 479) == (640, 478)
    assert playable_size(6000, 6000) == (3072, 3072) and playable_size(8000, 1000) == (4096, 512)
    for w, h in [(6000, 6000), (4000, 3000), (8000, 1000), (1000, 8000), (4097, 100)]:
        pw, ph = playable_size(w, h)
        assert max(pw, ph) <= PLAYABLE_SIDE and pw * ph <= PLAYABLE_PIXELS and pw % 2 == ph % 2 == 0
        assert abs(pw / ph - w / h) < 0.03 * w / h  # the aspect ratio kept (to the even sides)
    ramp = np.repeat(np.linspace(0, 255, 4400).astype(np.uint8)[None, :, None], 8, 0).repeat(3, 2)  # [8, 4400, 3]
    with VideoWriter(tmp_path / "wide.mp4", 25) as w:
        for _ in range(3):
            w.write(ramp)
    assert w.output_size == (4096, 6) and "4096x6" in _stream_line(tmp_path / "wide.mp4", "Video")
    frame = next(iter(VideoReader(tmp_path / "wide.mp4")))
    assert np.abs(frame[3, ::512, 0].astype(int) - ramp[3, ::550, 0]).max() <= 6  # the picture, scaled
    assert playable_size(4400, 8, max_side=1100) == (1100, 2)  # a smaller side asked for
    for bad in ({"crf": 52}, {"crf": 1.5}, {"max_side": 8}):
        with pytest.raises(MediaError):
            VideoWriter(tmp_path / "bad.mp4", 25, **bad)


def test_writer_audio_in_sync(tmp_path):
    """A flash at 1.2 s and a click at 1.2 s in the input stay within one frame of each other after
    decoding with VideoReader and encoding with VideoWriter (audio muxed from the input file)."""
    src = tmp_path / "flash.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=25:d=3,drawbox=c=white:t=fill:enable='eq(n\\,30)'",
           "-f", "lavfi", "-i", "aevalsrc='if(between(t\\,1.2\\,1.21)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:d=3",
           "-c:v", "libx264", "-c:a", "aac", str(src))
    reader = VideoReader(src)
    out = write_video(reader, tmp_path / "out.mp4", reader.fps, audio=src)
    fps = 25
    flash = [i for i, f in enumerate(VideoReader(out)) if f.mean() > 128]
    audio, sr = read_audio(out, sr=16000)
    click = int(np.argmax(np.abs(audio))) / sr
    assert flash and abs(flash[0] / fps - 1.2) <= 1 / fps
    assert abs(click - flash[0] / fps) < 1 / fps, (click, flash)
    assert abs(len(audio) / sr - 75 / fps) < 1 / fps  # audio as long as the video


def test_a_start_into_the_clip_keeps_picture_and_sound_in_step(tmp_path):
    """Reading from 0.8 s (VideoReader's start) and muxing the clip's sound from there (audio_start): the flash
    and the click of 1.2 s are at 0.4 s of the result, within a frame of each other; read_audio starts there too."""
    src = tmp_path / "flash.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=25:d=3,drawbox=c=white:t=fill:enable='eq(n\\,30)'",
           "-f", "lavfi", "-i", "aevalsrc='if(between(t\\,1.2\\,1.21)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:d=3",
           "-c:v", "libx264", "-g", "50", "-c:a", "aac", str(src))
    reader = VideoReader(src, start=0.8, seconds=1.0)
    assert reader.num_frames_estimate == 25
    out = write_video(reader, tmp_path / "out.mp4", reader.fps, audio=src, audio_start=0.8)
    flash = [i for i, f in enumerate(VideoReader(out)) if f.mean() > 128]
    audio, sr = read_audio(out, sr=16000)
    assert flash == [10] and abs(len(audio) / sr - 1.0) < 1 / 25, flash  # 1.2 s - 0.8 s = frame 10 at 25 fps
    assert abs(np.argmax(np.abs(audio)) / sr - 0.4) < 1 / 25
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(str(wav), read_audio(src, sr=16000)[0], 16000)
    for start in (0.8, 0.5):  # through soundfile (a wav) and through ffmpeg (the mp4's AAC)
        for path in (wav, src):
            part, sr = read_audio(path, sr=16000, start=start, seconds=1.0)
            assert len(part) == 16000 and abs(np.argmax(np.abs(part)) / sr - (1.2 - start)) < 0.01, path
    # the tail of the clip (no --seconds), and starts the clip does not reach
    assert len(list(VideoReader(src, start=2.0))) == 25 and VideoReader(src, start=2.0).num_frames_estimate == 25
    for bad in (3.0, 10, -1, float("nan")):
        with pytest.raises(MediaError, match="past its end|seconds >= 0"):
            VideoReader(src, start=bad)
        with pytest.raises(MediaError, match="past its end|seconds >= 0"):
            read_audio(src, start=bad)
    with pytest.raises(MediaError, match="limit"):  # the part read counts against the limits, not the whole clip
        VideoReader(src, start=0.5, limits=Limits(max_seconds=2))
    assert VideoReader(src, start=1.5, limits=Limits(max_seconds=2)).num_frames_estimate == 38
    # a browser-style WebM whose header has no duration: a start past its end is found once reading ends
    webm = tmp_path / "nodur.webm"
    with open(webm, "wb") as f:
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=s=64x64:r=25:d=2", "-c:v", "libvpx",
                        "-f", "webm", "-"], stdout=f, check=True)
    assert probe_video(webm).duration is None and len(list(VideoReader(webm, start=1))) == 25
    with pytest.raises(MediaError, match="has no frames after 5 s: it is shorter than that"):
        list(VideoReader(webm, start=5))


def test_writer_audio_array_padded_to_video(tmp_path):
    frames = [np.full((32, 32, 3), i * 20, np.uint8) for i in range(12)]  # 0.48 s at 25 fps
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)).astype(np.float32)  # 0.25 s
    path = write_video(frames, tmp_path / "a.mp4", 25, audio=tone, audio_sr=16000)
    audio, sr = read_audio(path)
    assert abs(len(audio) / sr - 12 / 25) < 1 / 25
    assert np.abs(audio[: int(0.2 * sr)]).max() > 0.3 and np.abs(audio[int(0.3 * sr):]).max() < 0.05


def test_writer_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "x.mp4", 25) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MediaError, match="frame 1 is 16x16"):
        with VideoWriter(tmp_path / "y.mp4", 25) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            w.write(np.zeros((16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_output_path_never_an_input(real_dir, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((real_dir / FOMM).read_bytes())
    with pytest.raises(MediaError, match="one of the inputs"):
        check_output_path(clip, [clip], overwrite=True)
    with pytest.raises(MediaError, match="exists"):
        check_output_path(clip, [])
    with pytest.raises(MediaError, match=r"\.mp4"):
        check_output_path(tmp_path / "out.gif", [], extensions=(".mp4",))
    assert check_output_path(tmp_path / "new.mp4", [clip]) == tmp_path / "new.mp4"
    assert clip.read_bytes() == (real_dir / FOMM).read_bytes()
    with pytest.raises(MediaError, match="choose another --confidence"):
        check_output_path(clip, [clip], option="--confidence")


def test_output_path_in_a_read_only_folder(tmp_path, monkeypatch):
    """A folder that cannot be written (a read-only mount; root writes anywhere else) is refused before any work,
    not met as an OSError on the temporary file at the end."""
    import x2face.media as media

    real_access = os.access
    monkeypatch.setattr(media.os, "access", lambda p, mode, **k: False if Path(p) == tmp_path and mode == os.W_OK
                        else real_access(p, mode, **k))
    with pytest.raises(MediaError, match=f"cannot write in the folder {tmp_path} .it is read-only, or not yours.: "
                                         "choose another --out"):
        check_output_path(tmp_path / "new.mp4")
    with pytest.raises(MediaError, match="the folder .*missing does not exist"):
        check_output_path(tmp_path / "missing" / "new.mp4")


def test_read_image_from_file_object(real_dir):
    buf = io.BytesIO((real_dir / PHOTO).read_bytes())
    assert read_image(buf).shape == (256, 256, 3)


@pytest.mark.parametrize("ext", [".heic", ".avif"])
def test_read_image_heic_and_avif_rotated_like_jpeg(real_dir, tmp_path, ext):
    """iPhone photos are HEIC with a rotation: read as photos (not as one-frame videos through ffmpeg, which
    failed on them), turned upright as the JPEG with the same EXIF orientation is."""
    from x2face.media import image_size, register_image_formats

    assert register_image_formats()  # pillow-heif is a requirement
    src = Image.open(real_dir / PHOTO_WIDE).convert("RGB")  # 720 wide, 1280 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / f"phone{ext}"
    src.save(path, quality=90, exif=exif.tobytes())  # pillow-heif turns these bytes into HEIF's own rotation
    assert is_still_image(path) and not is_animated_image(path)
    img = read_image(path)
    assert img.shape == (720, 1280, 3)
    expected = np.rot90(np.asarray(src), k=-1)  # clockwise
    assert np.abs(img.astype(int) - expected.astype(int)).mean() < 4
    assert sorted(image_size(path)) == [720, 1280]


def test_heic_messages(tmp_path, monkeypatch):
    from x2face import media

    (tmp_path / "junk.heic").write_bytes(b"not a HEIF container" * 20)
    with pytest.raises(MediaError, match="not an image x2face can read .*HEIC"):
        read_image(tmp_path / "junk.heic")
    monkeypatch.setattr(media, "_heif_registered", False)  # as if pillow-heif were not installed
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if "HEIF" not in k.upper()})
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if "HEIF" not in k.upper()])
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    (tmp_path / "photo.heic").write_bytes((tmp_path / "x.png").read_bytes()[:8] + b"\x00" * 64)
    with pytest.raises(MediaError, match=r"needs the pillow-heif package \(pip install pillow-heif\)"):
        read_image(tmp_path / "photo.heic")


def test_writer_gif_ignores_sound_and_leaves_nothing_on_failure(tmp_path):
    from PIL import Image

    frames = [np.full((30, 41, 3), (i * 20, 255 - i * 20, 128), np.uint8) for i in range(12)]  # odd width
    out = write_video(frames, tmp_path / "a.gif", 12, audio=np.zeros(16000, np.float32), audio_sr=16000)
    with Image.open(out) as gif:
        assert gif.n_frames == 12 and gif.size == (40, 30) and gif.info["loop"] == 0
        gif.seek(5)
        assert np.abs(np.asarray(gif.convert("RGB"))[10, 10].astype(int) - (100, 155, 128)).max() <= 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]  # no temporary files left
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "b.gif", 12) as writer:
            writer.write(frames[0])
            raise RuntimeError("the run stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]


def test_a_gif_of_a_fast_clip_plays_at_its_speed(tmp_path):
    """A GIF's delays are whole hundredths and browsers show one under 2 as 10: a 120 fps video's GIF is every 3rd
    frame at 40 fps (its delays sum to the video's length within a hundredth, none under 2); 50 fps and under keep
    every frame."""
    from PIL import Image, ImageSequence

    from x2face.media import gif_fps

    assert [gif_fps(f) for f in (24, 30, 50, 60, 120, 240)] == [24, 30, 50, 30, 40, 48]
    for fps, kept in ((120, 40), (50, 50)):
        frames = [np.full((32, 32, 3), (i * 2 % 256, 0, 0), np.uint8) for i in range(fps)]  # one second
        out = write_video(frames, tmp_path / f"{fps}.gif", fps)
        with Image.open(out) as gif:
            durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
            red = [int(np.asarray(f.convert("RGB"))[16, 16, 0]) for f in ImageSequence.Iterator(gif)]
        assert len(durations) == kept and abs(sum(durations) - 1000) <= 10 and min(durations) >= 20
        step = fps // kept
        assert all(abs(r - (i * step * 2 % 256)) <= 8 for i, r in enumerate(red)), red  # every step-th frame


def test_a_start_into_an_mpeg_program_stream_is_frame_exact(real_dir):
    """Seeking straight to 1.2 s in the GRID clip (MPEG-1 in a program stream) lands 6 frames late; the reader's
    seek to before the start and its drop by timestamp give frame 30 (1.2 s at 25 fps), as a read from the start."""
    full = list(VideoReader(real_dir / GRID, seconds=2.6))
    for start in (0.5, 1.2, 2.0):
        part = list(VideoReader(real_dir / GRID, start=start, seconds=0.6))
        for k in (0, 7, 14):
            diffs = [np.abs(part[k].astype(int) - f).mean() for f in full]
            assert int(np.argmin(diffs)) == int(start * 25) + k and min(diffs) == 0, (start, k)


def test_capped_fps_drops_frames_evenly():
    from x2face.media import capped_fps

    for fps, want in ((60, 30), (50, 25), (Fraction(60000, 1001), Fraction(30000, 1001)), (120, 30), (240, 30),
                      (25, 25), (30, 30), (Fraction(30000, 1001), Fraction(30000, 1001)), (31, Fraction(31, 2)),
                      (90, 30), (100, 25)):
        assert capped_fps(fps, 30) == want, fps
    assert capped_fps(60, None) == 60 and capped_fps(48, 24) == 24 and capped_fps(49, 24) == Fraction(49, 3)
    for bad in (0, -5, float("nan"), float("inf"), True, "30"):
        with pytest.raises(MediaError, match="frame-rate cap"):
            capped_fps(60, bad)


def test_audio_with_samples_that_are_not_numbers_is_muxed_clean(tmp_path):
    """A float WAV with NaN samples: ffmpeg's AAC encoder stops on them; the writer then reads the track with
    ``read_audio`` (NaN -> 0) and muxes that, so the video keeps its sound, in step."""
    import soundfile as sf

    t = np.arange(32000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wave[::100] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    frames = [np.zeros((32, 32, 3), np.uint8)] * 25
    out = write_video(frames, tmp_path / "o.mp4", 25, audio=tmp_path / "nan.wav", audio_start=0.5)
    assert probe_video(out).has_audio and sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav", "o.mp4"]
    got, _ = read_audio(out, 16000)
    assert abs(len(got) / 16000 - 1.0) < 0.03 and np.isfinite(got).all()
    assert abs(np.percentile(np.abs(got[4000:12000]), 99) - 0.3) < 0.03  # the tone, from 0.5 s on


def test_an_encoder_stopped_from_outside_says_so(tmp_path):
    """ffmpeg stopped by a signal x2face did not get (Ctrl-C reaching the process group of a program that ignores it,
    a kill): the message names the signal, not 'no details', and no partial file is left."""
    import signal

    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(MediaError, match="the video encoder (stopped|failed): ffmpeg was stopped by SIGINT"):
        with VideoWriter(tmp_path / "o.mp4", 25) as writer:
            writer.write(frame)
            writer._proc.send_signal(signal.SIGINT)
            writer._proc.wait(timeout=10)
            for _ in range(200):  # until the pipe breaks (or close finds the encoder gone)
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []
