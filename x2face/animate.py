"""``python -m x2face animate``: a photo (or several of one person) + a driving clip -> an MP4.

    python -m x2face animate --source photo.jpg --driving clip.mp4 --out out.mp4
    python -m x2face animate --source a.jpg --source b.jpg --driving clip.mov --out out.mp4 --paste-back
    python -m x2face animate --source me.mp4 --driving clip.mp4 --out out.mp4   # 4 frames of a clip of the person
    python -m x2face animate --source photo.jpg --driving face.jpg --out out.png   # one driving photo
    python -m x2face animate --source photo.jpg --driving clip.mp4 --out out.mp4 --eager   # the fp32 reference

The networks run on ``X2FacePipeline``'s fast path (``--precision``; ``--eager`` for the plain fp32
model); with a GPU, decoding+cropping, the networks and paste+encoding overlap (``--overlap``).

What drives the face is chosen through ``DRIVERS``: each driver adds its options to the parser,
says whether the arguments select it, and turns them into frames (plus frame rate and audio).
``video`` (``--driving``) is built in; the pose (``--pose``) and audio (``--audio``) controls
register theirs the same way. The command holds no model logic: it sits on ``X2FacePipeline``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .errors import InputError, MediaError, NoFaceError
from .media import (IMAGE_EXTENSIONS, MAX_GIF_SIDE, PLAYABLE_SIDE, VIDEO_OUT_EXTENSIONS, Limits, VideoReader,
                    VideoWriter, check_input_file, check_output_path, fit_side, gif_fps, is_still_image, read_image,
                    write_image)
from .faces import EVERY_FACE, describe_select, ordinal, parse_face_select
from .pipeline import MAX_MOTION_SCALE, SHARP_MAX_SIDE, X2FacePipeline, motion_note, side_by_side


@dataclass
class Drive:
    """What a driver hands the command.

    Attributes:
        frames: uint8 [H, W, 3] RGB output frames (streamed).
        fps: frame rate of the output video.
        total: number of frames expected (for the progress bar), or None.
        audio: audio to mux (a media file path or a float array [N] / [C, N]), or None.
        audio_sr: sample rate of an audio array.
        audio_start: seconds into ``audio`` where the output's time 0 is (``--start``).
        still: the output is one image (a driving photo), not a video.
        label: what drove the face, for the summary line.
        report: callable returning the face-tracking summary (after ``frames`` is exhausted).
        found: callable returning how many driving frames had a face (after ``frames`` is exhausted).
        nothing: callable returning the message for a video in which no frame had its face (None: the plain one).
    """

    frames: Iterator[np.ndarray]
    fps: Fraction = Fraction(25)
    total: int | None = None
    audio: str | os.PathLike | np.ndarray | None = None
    audio_sr: int | None = None
    audio_start: float = 0.0
    still: bool = False
    label: str = ""
    report: Callable[[], str] = field(default=lambda: "")
    found: Callable[[], int | None] = field(default=lambda: None)
    nothing: Callable[[], str] | None = None


class Driver:
    """A way to drive the source face; subclasses register in ``DRIVERS``."""

    name = "base"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this driver's options."""

    def selected(self, args: argparse.Namespace) -> bool:
        """Whether the parsed arguments ask for this driver."""
        raise NotImplementedError

    def open(self, args: argparse.Namespace, pipe: X2FacePipeline, limits: Limits) -> Drive:
        """Turn the arguments into output frames of ``pipe`` (whose source is set)."""
        raise NotImplementedError

    def inputs(self, args: argparse.Namespace) -> list[str]:
        """Files this driver reads (never overwritten by --out)."""
        return []


def _output_frame(args: argparse.Namespace, pipe: X2FacePipeline, driven) -> np.ndarray:
    if args.side_by_side:
        result = driven.generated if driven.generated is not None else pipe.source.crops[0]
        return side_by_side(pipe.source.crops[0], driven.driving_crop, result)
    return driven.image


def _reference_frame(args: argparse.Namespace, reader: VideoReader) -> str | int:
    """``--relative-to`` as ``drive_frames``' ``reference``: a time becomes the index of the frame shown then (counted
    from ``--start``)."""
    if isinstance(args.relative_to, str):
        return args.relative_to
    if args.relative_to < args.start:
        raise InputError(f"--relative-to {args.relative_to:g} s is before --start {args.start:g} s")
    end = reader.info.duration
    if args.seconds is not None:
        end = min(end, args.start + args.seconds) if end is not None else args.start + args.seconds
    if end is not None and args.relative_to >= end:
        raise InputError(f"--relative-to {args.relative_to:g} s is past the end of the part animated "
                         f"({end:g} s into {Path(args.driving).name})")
    return int(round((args.relative_to - args.start) * float(reader.fps)))


class VideoDriver(Driver):
    """``--driving FILE``: a driving video (any format ffmpeg reads) or a driving photo."""

    name = "video"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--driving", metavar="FILE",
                            help="driving video (mp4, mov, webm, mpg, avi, animated GIF/WebP/PNG, ...) or photo whose "
                                 "face moves the source")

    def selected(self, args: argparse.Namespace) -> bool:
        return args.driving is not None

    def inputs(self, args: argparse.Namespace) -> list[str]:
        return [args.driving]

    def open(self, args: argparse.Namespace, pipe: X2FacePipeline, limits: Limits) -> Drive:
        path = args.driving
        each = parse_face_select(args.driving_face, "--driving-face", every=True)  # all: each face by its own driver
        each = each if each == EVERY_FACE else None  # (else the cropper's select, set by open_pipeline)
        if is_still_image(path):
            image = read_image(path, limits=limits)
            driven = list(pipe.drive_frames([image], paste_back=args.paste_back, on_missing="source",
                                            driving_face=each))
            if not driven[0].found:
                raise NoFaceError(pipe.last_report.nothing_found(f"the driving photo {Path(path).name}"))
            frame = _output_frame(args, pipe, driven[0])
            return Drive(iter([frame]), still=True, total=1, label=Path(path).name,
                         report=lambda: pipe.last_report.summary(), found=lambda: pipe.last_report.found)
        reader = VideoReader(path, seconds=args.seconds, fps=args.fps, limits=limits, start=args.start)
        overlap = args.overlap == "on" or (args.overlap == "auto" and pipe.device.type == "cuda")
        frames = (_output_frame(args, pipe, d) for d in
                  pipe.drive_frames(reader, paste_back=args.paste_back, batch_size=args.batch_size,
                                    on_missing=args.on_missing, overlap=overlap, relative=args.relative,
                                    motion_scale=args.motion_scale, driving_face=each,
                                    reference=_reference_frame(args, reader)))
        audio = path if (args.keep_audio and reader.info.has_audio) else None
        return Drive(frames, reader.fps, reader.num_frames_estimate, audio, audio_start=args.start,
                     label=Path(path).name + (f" from {args.start:g} s" if args.start else ""),
                     report=lambda: pipe.last_report.summary() if pipe.last_report else "",
                     found=lambda: pipe.last_report.found if pipe.last_report else None,
                     nothing=lambda: pipe.last_report.nothing_found(Path(path).name))


#: driver name -> Driver. Exactly one must be selected by the arguments.
DRIVERS: dict[str, Driver] = {"video": VideoDriver()}

from .control.drivers import CONTROL_DRIVERS  # noqa: E402  (--pose, --pose-sweep, --audio)

DRIVERS.update(CONTROL_DRIVERS)


def add_source_arguments(p: argparse.ArgumentParser, every: bool | str = False) -> None:
    """The options that pick the source face, the weights and the device (``animate`` and ``embed``; ``every``:
    ``--face all`` is offered, a string: what it does, for the help)."""
    p.add_argument("--source", action="append", required=True, metavar="PHOTO",
                   help="photo of the face to animate; repeat for several photos of the same person; a video of "
                        "the person gives --source-frames of its frames; a folder: the photos in it")
    p.add_argument("--source-frames", type=int, default=4, metavar="N",
                   help="frames taken from a source video, spread over its first minute (default 4)")
    p.add_argument("--weights", default=None, help="weights folder, Hub repo 'owner/name[@rev]' or 'demo' (default)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--backend", default="auto", help="face detector: auto (default), opencv, face-alignment")
    p.add_argument("--face", default="largest",
                   help="which face of a source photo with several people: largest (default), an index from the left "
                        "(0 = leftmost, -1 = rightmost) or X,Y (the face nearest that pixel)"
                        + (f"; all: {every}" if isinstance(every, str) else
                           "; all: every face of the photo, each driven alike and pasted back into it" if every
                           else ""))
    p.add_argument("--scale", type=float, default=1.6, help="crop size / face box size (1.6 = VoxCeleb, default)")


def add_edit_arguments(p: argparse.ArgumentParser) -> None:
    """``--edit-overlay`` / ``--edit-painted``: draw on the embedded face before driving (section 6)."""
    g = p.add_argument_group("editing the face (the edit follows the head; paper section 6)")
    g.add_argument("--edit-overlay", metavar="PICTURE",
                   help="put this picture (a PNG with transparency, or any photo) on the embedded face")
    g.add_argument("--edit-at", default="0.5,0.5", metavar="X,Y",
                   help="centre of the overlay as fractions of the embedded face's width and height (default 0.5,0.5)")
    g.add_argument("--edit-scale", type=float, default=0.25, metavar="F",
                   help="the overlay's width / the embedded face's width (default 0.25)")
    g.add_argument("--edit-painted", metavar="PNG",
                   help="a painted copy of the embedded face that `python -m x2face embed` wrote for the same "
                        "--source and --weights: what was painted is the edit")
    g.add_argument("--edit-face", type=int, default=None, metavar="N",
                   help="with --face all: put the edit on the Nth face from the left only (0 = leftmost, -1 = "
                        "rightmost; paint on what `embed --face N` wrote); default: on every face")
    g.add_argument("--edit-painted-on", metavar="PNG",
                   help="with --edit-painted: the embedded face it was painted on, when that is another person's "
                        "(`embed` of another --source): the paint moves to this face")


def expand_sources(sources: Sequence[str]) -> list[str]:
    """``--source`` values with each folder replaced by the photos in it (by name; not its subfolders).

    Raises:
        MediaError: a folder holds no photo.
    """
    out: list[str] = []
    for src in sources:
        if Path(src).is_dir():
            photos = sorted(str(p) for p in Path(src).iterdir() if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not photos:
                raise MediaError(f"the folder {src} holds no photos ({', '.join(IMAGE_EXTENSIONS)})")
            out += photos
        else:
            out.append(src)
    return out


def open_pipeline(args: argparse.Namespace, limits: Limits, every: bool = False, **options) -> X2FacePipeline:
    """The pipeline of ``add_source_arguments``' options with its source set (``every``: ``--face all`` is taken;
    ``options`` go to ``X2FacePipeline.from_pretrained``)."""
    if args.source_frames < 1:
        raise InputError(f"--source-frames must be >= 1, got {args.source_frames}")
    for src in args.source:
        check_input_file(src, "photo")
    face = parse_face_select(args.face, "--face", every=every)
    driving_face = parse_face_select(getattr(args, "driving_face", "largest"), "--driving-face", every=every)
    if driving_face == EVERY_FACE and face != EVERY_FACE:
        raise InputError("--driving-face all drives each face of a group photo with the clip's face in its place: "
                         "add --face all")
    select = "largest" if driving_face == EVERY_FACE else driving_face  # (all: the drivers pick their faces)
    pipe = X2FacePipeline.from_pretrained(args.weights, device=args.device, backend=args.backend,
                                          select=select, scale=args.scale, **options)
    set_source(pipe, args, limits, every)
    return pipe


def set_source(pipe: X2FacePipeline, args: argparse.Namespace, limits: Limits, every: bool = False) -> None:
    """``pipe.set_source`` with ``add_source_arguments``' options (``--source``, ``--source-frames``, ``--face``;
    ``every``: ``--face all`` is taken)."""
    pipe.set_source(args.source, video_frames=args.source_frames, limits=limits,
                    face=parse_face_select(args.face, "--face", every=every))


def clock_time(text: str) -> float:
    """``"62.5"``, ``"1:02.5"`` or ``"0:01:02.5"`` -> 62.5 seconds (how players show times); argparse's type for
    ``--start`` and ``--seconds``."""
    parts = text.strip().split(":")
    try:
        if len(parts) > 3 or any(not p.strip() for p in parts):
            raise ValueError
        values = [float(p) for p in parts]
        if not all(math.isfinite(v) for v in values):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (seconds, M:SS or H:MM:SS)") from None
    if len(values) > 1 and not all(0 <= v < 60 for v in values[1:]):
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (minutes and seconds go from 0 to 59)")
    seconds = 0.0
    for v in values:
        seconds = seconds * 60 + v
    return seconds


def reference_time(text: str) -> str | float:
    """``--relative-to``'s value: ``"first"``, ``"best"`` or a time in the clip (``clock_time``'s forms)."""
    return text if text in ("first", "best") else clock_time(text)


def each_output(out: str, sources: Sequence[str], suffix: str) -> list[Path]:
    """``--each``'s output files, one per source: ``out`` with ``{name}`` replaced by each source's file name without
    its extension, or, for an existing folder, ``NAME + suffix`` in it.

    Raises:
        InputError: ``out`` is neither; two sources would write the same file.
    """
    if "{name}" in out:
        paths = [Path(out.replace("{name}", Path(src).stem)) for src in sources]
    elif Path(out).is_dir():
        paths = [Path(out) / f"{Path(src).stem}{suffix}" for src in sources]
    elif out.endswith(("/", os.sep)):
        raise InputError(f"--each: the folder {out} does not exist; create it first")
    else:
        raise InputError(f"--each writes a file per --source: give --out a folder, or a name with {{name}} in it "
                         f"(e.g. out/{{name}}{suffix}), got {out}")
    seen: dict[Path, str] = {}
    for src, path in zip(sources, paths):
        if path in seen:
            raise InputError(f"--each: {seen[path]} and {src} would both write {path}; rename one")
        seen[path] = src
    return paths


def group_note(pipe: X2FacePipeline, args: argparse.Namespace) -> str:
    """"; group.jpg: the largest of 3 faces (--face picks another)" where a source photo showed several people."""
    note = pipe.source.group_photos()
    if not note:
        return ""
    return f"; {note}" + (" (--face picks another)" if args.face == "largest" else "")


def edit_inputs(args: argparse.Namespace) -> list[str]:
    """The edit's files (never overwritten by --out)."""
    return [f for f in (args.edit_overlay, args.edit_painted, args.edit_painted_on) if f]


def check_edit_arguments(args: argparse.Namespace) -> tuple[float, float]:
    """Refuse contradictory or missing edit options before anything loads; returns ``--edit-at`` as (x, y)."""
    if args.edit_overlay and args.edit_painted:
        raise InputError("give --edit-overlay or --edit-painted, not both")
    if args.edit_painted_on and not args.edit_painted:
        raise InputError("--edit-painted-on goes with --edit-painted")
    if args.edit_face is not None and not (args.edit_overlay or args.edit_painted):
        raise InputError("--edit-face goes with --edit-overlay or --edit-painted")
    for f in edit_inputs(args):
        check_input_file(f)
    try:
        x, y = (float(v) for v in args.edit_at.split(","))
    except ValueError:
        raise InputError(f"--edit-at takes X,Y fractions (e.g. 0.6,0.4), got {args.edit_at!r}") from None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # (NaN too) the centre is on the face, or the edit is not seen
        raise InputError(f"--edit-at X,Y are fractions of the embedded face from 0 to 1 (0,0 its top left), got "
                         f"{args.edit_at}")
    return x, y


def apply_edit_arguments(args: argparse.Namespace, pipe: X2FacePipeline, limits: Limits,
                         at: tuple[float, float]) -> str:
    """Edit ``pipe``'s embedded face as the options say (``at``: ``check_edit_arguments``' position); returns what
    to add to the summary ("" for none)."""
    from .control.edit import edit_layer, read_overlay

    path = args.edit_overlay or args.edit_painted
    if not path:
        return ""
    picture = read_overlay(path, limits.max_image_pixels, "the edit")
    face = args.edit_face
    target = pipe.member(face)  # (refuses a face the source does not have)
    every = len(pipe.sources) > 1 and face is None  # --face all: the edit goes on every face
    which = "every face" if every else "the face" if face is None else describe_select(face, len(pipe.sources))
    if args.edit_overlay:
        pipe.edit_embedded_face(face=face, overlay=picture, position=at, scale=args.edit_scale)
        return f"; {Path(path).name} on {which} at {at[0]:g},{at[1]:g}"
    if args.edit_painted_on:
        base = read_overlay(args.edit_painted_on, limits.max_image_pixels, "the embedded face")[:, :, :3]
        layer = pipe.edit_embedded_face(face=face, layer=edit_layer(base, picture))
        moved = f", moved from {Path(args.edit_painted_on).name}"
    else:
        side, s, r = picture.shape[0], target.image_size, target.sharp_side
        if picture.shape[1] != side or side not in (s, r):
            own = f" {face}" if face is not None else " 0" if every else ""
            raise InputError(f"the painting is {picture.shape[1]}x{side} but this photo's embedded face is {r}x{r} "
                             f"(what `python -m x2face embed` writes for it) or {s}x{s} (`embed --no-sharp`); paint on "
                             f"what embed wrote for the same --source, --face{own} and --weights, or "
                             f"name the face it was painted on with --edit-painted-on")
        layer = pipe.edit_embedded_face(face=face, painted=picture)
        moved = ""
    share = float((layer[:, :, 3] > 0.5).mean())
    if share > 0.9 and not moved:
        print(f"note: {share:.0%} of the embedded face differs from {Path(path).name}: was it painted on what "
              f"`python -m x2face embed` wrote for the same --source and --weights? (another person's: give that "
              f"one with --edit-painted-on)", file=sys.stderr)
    return f"; painted {share:.1%} of {which} ({Path(path).name}{moved})"


#: ``animate --help``'s examples (each is parsed by the tests, so they stay valid as the options change)
EXAMPLES = (
    ("a photo moved like the face in a clip", "--source me.jpg --driving clip.mp4 --out out.mp4"),
    ("... pasted back into the photo, keeping its pose", "--source me.jpg --driving clip.mp4 --out out.mp4 "
                                                         "--paste-back --relative"),
    ("... counting the motion from the clip's frame posed most like the photo",
     "--source me.jpg --driving clip.mp4 --out out.mp4 --relative --relative-to best"),
    ("5 s from 1:02 into the clip, as a GIF", "--source me.jpg --driving clip.mp4 --out part.gif --start 1:02 "
                                              "--seconds 5"),
    ("every face of a group photo", "--source group.jpg --face all --driving clip.mp4 --out group.mp4"),
    ("each photo on its own, a file each", "--source a.jpg --source b.jpg --each --driving clip.mp4 "
                                           "--out out/{name}.mp4"),
    ("every photo in a folder, a file each", "--source photos/ --each --driving clip.mp4 --out out/"),
    ("turn the head (needs a pose head)", "--source me.jpg --pose-sweep yaw --out turn.mp4"),
    ("make it speak (needs an audio head)", "--source me.jpg --audio speech.m4a --out talk.mp4"),
    ("a sticker that follows the head", "--source me.jpg --driving clip.mp4 --out out.mp4 --edit-overlay "
                                        "sticker.png --edit-at 0.6,0.4"),
)


def build_parser() -> argparse.ArgumentParser:
    examples = "\n".join(f"  {what}:\n    python -m x2face animate {line}" for what, line in EXAMPLES)
    p = argparse.ArgumentParser(
        prog="python -m x2face animate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Animate the face in a photo with a driving video (X2Face). The output shows the "
                    "source person moving like the driving face.", epilog=f"examples:\n{examples}")
    add_source_arguments(p, every=True)
    for driver in DRIVERS.values():
        driver.add_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE",
                   help=f"output .mp4, or .gif (a looping GIF, no sound, at most {MAX_GIF_SIDE} px a side); an image "
                        f"file for a driving photo")
    p.add_argument("--paste-back", action="store_true",
                   help="put the animated face back into the full-resolution source photo")
    p.add_argument("--sharp", action=argparse.BooleanOptionalAction, default=True,
                   help="render the face from the full-resolution photo at its size there (default; up to "
                        f"{SHARP_MAX_SIDE} px; pasted back, with the photo's detail); --no-sharp: the model's output, "
                        "at the model's size (enlarged when pasted back)")
    p.add_argument("--side-by-side", action="store_true", help="output source | driving | result crops side by side")
    p.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="scale the output down so that its longest side is at most PX (default: as rendered, within "
                        f"what phones play: {PLAYABLE_SIDE} px a side, {PLAYABLE_SIDE}x2304 in all)")
    p.add_argument("--crf", type=int, default=18, metavar="Q",
                   help="H.264 quality of an .mp4 output, 0-51 (default 18, visually lossless; lower: better, bigger)")
    p.add_argument("--keep-audio", action=argparse.BooleanOptionalAction, default=True,
                   help="copy the driving clip's audio track into the output (default: yes)")
    p.add_argument("--seconds", type=clock_time, default=None, metavar="S",
                   help="animate only S seconds (the first, or from --start; also M:SS)")
    p.add_argument("--start", type=clock_time, default=0.0, metavar="S",
                   help="begin S seconds into the driving clip or the --audio recording (default 0), its sound too; "
                        "also M:SS or H:MM:SS, e.g. 1:02.5")
    p.add_argument("--fps", type=float, default=None, metavar="F",
                   help="read the driving clip at F frames per second, 1-60 (default: its own rate; e.g. 25 for a "
                        "60 fps phone clip: fewer frames to animate, the sound still in sync)")
    p.add_argument("--max-seconds", type=float, default=Limits.max_seconds, metavar="S",
                   help=f"refuse longer inputs (default {Limits.max_seconds:.0f})")
    p.add_argument("--max-pixels", type=int, default=Limits.max_pixels, metavar="N",
                   help=f"refuse video frames with more pixels (default {Limits.max_pixels})")
    p.add_argument("--relative", action="store_true",
                   help="relative motion: the photo keeps its own pose and head shape and moves as the driving face "
                        "moves from its first frame (best when the clip starts posed as the photo is; see "
                        "--relative-to)")
    p.add_argument("--relative-to", type=reference_time, default="first", metavar="first|best|TIME",
                   help="with --relative: the driving frame the motion counts from: the first with a face (default), "
                        "the one posed most like the photo, wherever it is in the clip (best: its driving vector "
                        "nearest the photo's, reliable for a clip of the same person), or the first with a face from "
                        "TIME in the clip on (seconds or M:SS: where the face is posed as the photo is); the last two "
                        "read the clip twice")
    p.add_argument("--motion-scale", type=float, default=1.0, metavar="F",
                   help=f"with --relative: how much of the driving motion the photo makes (0 none, 1 as much, default; "
                        f"2 twice; at most {MAX_MOTION_SCALE:g})")
    p.add_argument("--driving-face", default="largest",
                   help="which face drives when the driving clip or photo shows several people: largest (default), "
                        "an index from the left or X,Y, picked where faces are first seen and then followed; all (with "
                        "--face all): each face of the group photo is driven by the clip's face in its place")
    p.add_argument("--detect-every", type=int, default=5, metavar="N",
                   help="run the face detector at least every N frames where the face moves (default 5)")
    p.add_argument("--max-gap", type=int, default=20, metavar="N",
                   help="frames between detections while the face holds still (default 20; N <= --detect-every: "
                        "a fixed stride)")
    p.add_argument("--on-missing", choices=("hold", "source"), default="hold",
                   help="frames without a driving face: hold the last frame (default) or show the source")
    p.add_argument("--batch-size", type=int, default=16, help="frames per model call")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="compute dtype of the per-frame networks (auto, default: bf16 on CUDA and on CPUs with AMX, "
                        "else fp32; sampling is always fp32)")
    p.add_argument("--eager", action="store_true",
                   help="run the plain fp32 eager model instead of the optimised path (the reference; slower; "
                        "--precision is then ignored)")
    p.add_argument("--overlap", choices=("auto", "on", "off"), default="auto",
                   help="a driving video: decode+crop, the networks and paste+encode in three threads "
                        "(auto, default: on when the networks run on a GPU; no consistent gain on a 2-core CPU)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the model (default: X2FACE_THREADS, OMP_NUM_THREADS or one per physical core)")
    p.add_argument("--each", action="store_true",
                   help="animate each --source on its own (not as photos of one person), a file each: --out is a "
                        "folder or a name with {name} (the photo's name), e.g. out/{name}.mp4; a photo that fails "
                        "is reported and the others go on")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave outputs that exist as they are and do not redo them (with --each: animate only the "
                        "photos not done yet, e.g. after an interrupted run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_edit_arguments(p)
    return p


def main(argv: list[str]) -> int:
    """Run ``python -m x2face animate``; returns the exit code (errors are raised as X2FaceError)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    args.source = expand_sources(args.source)
    chosen = [d for d in DRIVERS.values() if d.selected(args)]
    if len(chosen) != 1:
        names = ", ".join(f"--{n}" if n != "video" else "--driving" for n in DRIVERS)
        raise InputError(f"give exactly one of {names}" + (f" (got {len(chosen)})" if chosen else ""))
    driver = chosen[0]
    if args.seconds is not None and not args.seconds > 0:
        raise InputError(f"--seconds must be positive, got {args.seconds}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.fps is not None and not 1 <= args.fps <= 60:
        raise InputError(f"--fps must be from 1 to 60, got {args.fps:g}")
    if not 0 <= args.start < math.inf:
        raise InputError(f"--start must be a number of seconds >= 0, got {args.start:g}")
    if args.start and driver.name not in ("video", "audio"):
        raise InputError("--start is where a driving clip or an --audio recording begins: it needs one of them")
    if args.fps is not None and driver.name != "video":
        raise InputError("--fps sets the rate a driving clip is read at: it needs --driving CLIP")
    if args.max_side is not None and args.max_side < 16:
        raise InputError(f"--max-side must be at least 16 pixels, got {args.max_side}")
    if not 0 <= args.crf <= 51:
        raise InputError(f"--crf must be from 0 to 51, got {args.crf}")
    for option, value in (("--max-seconds", args.max_seconds), ("--max-pixels", args.max_pixels)):
        if not 0 < value < math.inf:
            raise InputError(f"{option} must be a positive number, got {value:g}")
    limits = Limits(max_seconds=args.max_seconds, max_pixels=args.max_pixels)
    for item in driver.inputs(args):
        check_input_file(item)
    still_in = driver.name == "video" and is_still_image(args.driving)
    if args.start and still_in:
        raise InputError("--start is where a driving clip begins: a driving photo has no time to start at")
    if args.relative and (driver.name != "video" or still_in):
        raise InputError("--relative moves the photo as a driving video's face moves: it needs --driving CLIP")
    if args.motion_scale != 1.0 and not args.relative:
        raise InputError("--motion-scale scales relative motion: add --relative")
    if args.relative_to != "first" and not args.relative:
        raise InputError("--relative-to picks relative motion's reference frame: add --relative")
    if not 0.0 <= args.motion_scale <= MAX_MOTION_SCALE:
        raise InputError(f"--motion-scale must be from 0 to {MAX_MOTION_SCALE:g}, got {args.motion_scale:g}")
    if args.face.strip() == EVERY_FACE and args.side_by_side:
        raise InputError("--face all pastes every face back into the group photo; --side-by-side shows one face's "
                         "crops: choose it with --face")
    kind = (f"{Path(args.driving).name} is a photo: driving with it gives one picture (drive with a clip for a video)"
            if still_in else "this gives a video")
    if args.each and len(args.source) < 2:
        raise InputError("--each animates each of several --source photos on its own: give two or more")
    if args.each and args.edit_painted and not args.edit_painted_on:
        raise InputError("--each with --edit-painted: paint is on one photo's embedded face; name it with "
                         "--edit-painted-on so that it moves to each photo's face")
    outs = each_output(args.out, args.source, ".png" if still_in else ".mp4") if args.each else [args.out]
    if args.skip_existing and args.overwrite:
        raise InputError("--skip-existing keeps outputs that exist, --overwrite replaces them: give one")
    if args.skip_existing:
        exists = [Path(o).is_file() for o in outs]
        if any(exists):
            done = [Path(o).name for o, e in zip(outs, exists) if e]
            print(f"x2face animate: skipped {len(done)} output(s) that exist: {', '.join(done)}")
        keep = [i for i, e in enumerate(exists) if not e]
        if not keep:
            return 0
        outs, args.source = [outs[i] for i in keep], [args.source[i] for i in keep] if args.each else args.source
    inputs = [*args.source, *driver.inputs(args), *edit_inputs(args)]
    outs = [check_output_path(o, inputs, overwrite=args.overwrite,
                              extensions=IMAGE_EXTENSIONS if still_in else VIDEO_OUT_EXTENSIONS, kind=kind)
            for o in outs]
    edit_at = check_edit_arguments(args)

    if args.threads is not None:
        import torch

        from .fast import check_threads

        torch.set_num_threads(check_threads(args.threads))
    options = dict(detect_every=args.detect_every, max_gap=args.max_gap, fast=False if args.eager else "auto",
                   precision=args.precision, sharp=args.sharp)
    if not args.each:
        pipe = open_pipeline(args, limits, every=True, **options)
        print(animate_one(args, pipe, driver, outs[0], limits, edit_at, t0))
        return 0
    pipe, failed = None, []
    for src, out in zip(args.source, outs):  # one model; each photo its own source
        t0, one = time.perf_counter(), argparse.Namespace(**{**vars(args), "source": [src]})
        try:
            if pipe is None:
                pipe = open_pipeline(one, limits, every=True, **options)
            else:
                set_source(pipe, one, limits, every=True)
            print(animate_one(one, pipe, driver, out, limits, edit_at, t0))
        except (NoFaceError, MediaError) as exc:  # this photo's problem: say it and go on with the others
            failed.append(Path(src).name)
            print(f"x2face animate: {Path(src).name}: {exc}", file=sys.stderr)
    done = len(outs) - len(failed)
    print(f"x2face animate --each: {done} of {len(outs)} photos animated" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    return 2 if failed else 0


def animate_one(args: argparse.Namespace, pipe: X2FacePipeline, driver: Driver, out: Path, limits: Limits,
                edit_at: tuple[float, float], t0: float) -> str:
    """Edit ``pipe``'s source as the options say, drive it with ``driver`` and write ``out``; returns the summary
    line (``t0``: when the work for it began, for the rate)."""
    edited = apply_edit_arguments(args, pipe, limits, edit_at)
    drive = driver.open(args, pipe, limits)

    if drive.still:
        frame = fit_side(next(drive.frames), args.max_side)
        write_image(out, frame)
        frames, size = 1, frame.shape[1::-1]
        what = f"{out} ({size[0]}x{size[1]})"
    else:
        from tqdm import tqdm

        audio = drive.audio if args.keep_audio else None
        bar = tqdm(total=drive.total, unit="frame", desc="animate", disable=args.quiet, dynamic_ncols=True,
                   file=sys.stderr)
        try:
            with VideoWriter(out, drive.fps, audio=audio, audio_sr=drive.audio_sr, crf=args.crf,
                             max_side=args.max_side, audio_start=drive.audio_start) as writer:
                for frame in drive.frames:
                    writer.write(frame)
                    bar.update(1)
                if drive.found() == 0:
                    raise NoFaceError(drive.nothing() if drive.nothing else
                                      f"no human face found in {drive.label} ({writer.frames} frames checked)")
        finally:
            bar.close()
            close = getattr(drive.frames, "close", None)
            if close is not None:  # on an error: stop the decoder and any overlap threads now
                close()
        frames, size = writer.frames, writer.output_size
        if writer.gif:  # (at most MAX_GIF_FPS: every k-th frame of a faster clip)
            step = round(drive.fps / gif_fps(drive.fps))
            sound = f", a GIF of every {ordinal(step)} frame: no sound" if step > 1 else ", a GIF: no sound"
        elif isinstance(audio, (str, os.PathLike)):
            sound = f", audio from {Path(os.fspath(audio)).name}"
        else:
            sound = ", audio" if audio is not None else ", no audio"
        what = (f"{out} ({frames} frames, {writer.duration:.2f} s at {float(drive.fps):.3g} fps, "
                f"{size[0]}x{size[1]}{sound})")
    seconds = time.perf_counter() - t0
    k = len(pipe.source.names)
    embedded = (f"; {k} source frames embedded together" if k > 1 else "") + group_note(pipe, args)
    tracked = drive.report()
    driven = f"{tracked} of {drive.label}" if tracked else f"driven by {drive.label}"  # pose and audio: no tracking
    motion = (motion_note(args.motion_scale, pipe.last_reference, float(drive.fps), args.start,
                          best=args.relative_to == "best") if args.relative else "")
    driven += f" ({pipe.cropper.backend})" + (f", {motion}" if motion else "")
    return (f"x2face animate: wrote {what}; {driven}{embedded}{edited}; "
            f"{seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s)")


__all__ = ["DRIVERS", "Drive", "Driver", "EXAMPLES", "VideoDriver", "add_edit_arguments", "add_source_arguments",
           "animate_one", "apply_edit_arguments", "build_parser", "check_edit_arguments", "clock_time", "each_output",
           "edit_inputs", "expand_sources", "reference_time", "set_source",
           "group_note", "main", "open_pipeline"]
