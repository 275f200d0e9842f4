"""The pose and audio drivers of ``python -m x2face animate`` (``x2face.animate.DRIVERS``).

    python -m x2face animate --source photo.jpg --pose=30,0,0 --out turn.mp4        # turn to yaw 30 deg
    python -m x2face animate --source photo.jpg --pose=30,0,0 --pose=-30,10,0 --out look.mp4
    python -m x2face animate --source photo.jpg --pose-sweep yaw --out sweep.mp4    # Fig. 6 of the paper
    python -m x2face animate --source photo.jpg --audio speech.wav --out talk.mp4   # the voice muxed in

(write ``--pose=-30,0,0`` with ``=`` when the first angle is negative.) Each driver turns its
options into frames with ``x2face.control.pose`` / ``x2face.control.audio`` on the command's
``X2FacePipeline``; the command writes them (with the audio) like a driving video's.
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .pose import POSE_NAMES, drive_poses, pose_path, pose_sweep, source_pose

FPS = 25


def parse_pose(text: str) -> tuple[float, float, float]:
    """``"yaw,pitch,roll"`` (degrees) -> a tuple of 3 floats."""
    parts = [p.strip() for p in str(text).replace(" ", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InputError(f"--pose takes yaw,pitch,roll in degrees (e.g. --pose=30,0,0), got {text!r}")
    return values  # type: ignore[return-value]


def _check_length(seconds: float, what: str, limits) -> None:
    """Refuse a pose video longer than ``limits.max_seconds`` (before any frame is made)."""
    top = getattr(limits, "max_seconds", None)
    if top is not None and seconds > top:
        raise InputError(f"{what} makes a {seconds:g} s video; the limit is {top:g} s (--max-seconds)")


def _with_source(args: argparse.Namespace, pipe, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``--side-by-side``: source crop | result."""
    if not getattr(args, "side_by_side", False):
        yield from frames
        return
    from ..pipeline import side_by_side

    for frame in frames:
        yield side_by_side(pipe.source.crops[0], frame)


class PoseDriver:
    """``--pose yaw,pitch,roll`` (repeatable): the source turns from its own pose through the given ones."""

    name = "pose"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pose", action="append", metavar="YAW,PITCH,ROLL",
                            help="drive the face to this head pose in degrees (repeat for a path; needs a pose "
                                 "head: python -m x2face fit-pose); write --pose=-30,0,0 for a negative first angle")
        parser.add_argument("--pose-seconds", type=float, default=1.0, metavar="S",
                            help="seconds per pose move (default 1)")

    def selected(self, args: argparse.Namespace) -> bool:
        return bool(getattr(args, "pose", None))

    def inputs(self, args: argparse.Namespace) -> list[str]:
        return []

    def open(self, args: argparse.Namespace, pipe, limits):
        from ..animate import Drive

        if not args.pose_seconds > 0:
            raise InputError(f"--pose-seconds must be positive, got {args.pose_seconds}")
        targets = [parse_pose(p) for p in args.pose]
        _check_length(len(targets) * args.pose_seconds + 0.5, f"--pose-seconds {args.pose_seconds:g} for "
                      f"{len(targets)} pose(s)", limits)
        poses = pose_path(source_pose(pipe), targets, frames_per_move=max(1, round(args.pose_seconds * FPS)),
                          hold=FPS // 2)
        frames = drive_poses(pipe, poses, paste_back=args.paste_back, batch_size=args.batch_size)
        label = "pose " + " -> ".join(",".join(f"{a:g}" for a in t) for t in targets)
        return Drive(_with_source(args, pipe, frames), Fraction(FPS), total=poses.shape[0], label=label)


class PoseSweepDriver:
    """``--pose-sweep yaw|pitch|roll``: one angle swings to +A, to -A and back, the others stay (Fig. 6)."""

    name = "pose-sweep"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pose-sweep", choices=POSE_NAMES, metavar="AXIS",
                            help="sweep one head angle (yaw, pitch or roll) through a range; needs a pose head")
        parser.add_argument("--sweep-degrees", type=float, default=None, metavar="A",
                            help="sweep amplitude in degrees (default 45 for yaw, 25 for pitch and roll)")
        parser.add_argument("--sweep-seconds", type=float, default=3.0, metavar="S", help="sweep length (default 3)")

    def selected(self, args: argparse.Namespace) -> bool:
        return getattr(args, "pose_sweep", None) is not None

    def inputs(self, args: argparse.Namespace) -> list[str]:
        return []

    def open(self, args: argparse.Namespace, pipe, limits):
        from ..animate import Drive

        if not args.sweep_seconds > 0:
            raise InputError(f"--sweep-seconds must be positive, got {args.sweep_seconds}")
        _check_length(args.sweep_seconds, f"--sweep-seconds {args.sweep_seconds:g}", limits)
        n = max(2, round(args.sweep_seconds * FPS))
        frames = pose_sweep(pipe, args.pose_sweep, args.sweep_degrees, n, paste_back=args.paste_back,
                            batch_size=args.batch_size)
        return Drive(_with_source(args, pipe, frames), Fraction(FPS), total=n, label=f"{args.pose_sweep} sweep")


class AudioDriver:
    """``--audio FILE``: the source speaks the recording (any rate, mono/stereo, wav/mp3/m4a/webm); the
    output is 25 fps with the recording muxed in."""

    name = "audio"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--audio", metavar="FILE",
                            help="drive the mouth with speech (wav, mp3, m4a, webm, ...); needs an audio head: "
                                 "python -m x2face fit-audio")
        parser.add_argument("--audio-pose", choices=("keep-source", "paper", "none"), default="keep-source",
                            help="pose term of the audio formula: keep the source's pose (default), the paper's "
                                 "printed term, or none")
        parser.add_argument("--audio-raw", action="store_true",
                            help="apply the audio map to unnormalised features, as the paper did")
        parser.add_argument("--audio-gain", type=float, default=1.0, help="scale of the audio term, 0-10 (default 1)")

    def selected(self, args: argparse.Namespace) -> bool:
        return getattr(args, "audio", None) is not None

    def inputs(self, args: argparse.Namespace) -> list[str]:
        return [args.audio]

    def open(self, args: argparse.Namespace, pipe, limits):
        from ..animate import Drive
        from .audio import AudioDriveSettings, drive_audio

        settings = AudioDriveSettings(normalise=not args.audio_raw, pose_correction=args.audio_pose, gain=args.audio_gain)
        drive = drive_audio(pipe, args.audio, fps=FPS, settings=settings, paste_back=args.paste_back,
                            batch_size=args.batch_size, seconds=args.seconds, start=args.start)
        # the recording itself is muxed (full quality); the writer trims it to the frames' duration
        note = drive.note()
        label = Path(args.audio).name + (f" from {args.start:g} s" if args.start else "")
        return Drive(_with_source(args, pipe, drive.frames), Fraction(FPS), total=drive.num_frames,
                     audio=args.audio, audio_start=args.start, label=label + (f" ({note})" if note else ""))


#: what ``x2face.animate`` adds to its ``DRIVERS``
CONTROL_DRIVERS = {"pose": PoseDriver(), "pose-sweep": PoseSweepDriver(), "audio": AudioDriver()}

__all__ = ["AudioDriver", "CONTROL_DRIVERS", "PoseDriver", "PoseSweepDriver", "parse_pose"]
