"""``python -m x2face embed``: write a face's embedded face, to paint on for ``animate --edit-painted``.

    python -m x2face embed --source photo.jpg --out face.png        # the face's size in the photo (up to 1024 px)
    python -m x2face embed --source photo.jpg --out face.png --no-sharp --confidence conf.png   # the model's size
    python -m x2face embed --source group.jpg --face all --out face.png   # face_0.png, face_1.png, ... from the left
    # paint on a copy of face.png in any editor and save it as PNG (JPEG noise would count as paint), then
    python -m x2face animate --source photo.jpg --driving clip.mp4 --edit-painted painted.png --out out.mp4

The embedded face is X2Face's pose-invariant picture of the source (``X2FacePipeline.embedded_face``):
what is painted on it follows the head when the face is driven (``x2face.control.edit``). By default it is
sampled from the full-resolution photo at the face's size there (``embedded_face(side)``), so the paint keeps
its detail in animate's sharp output; ``--no-sharp`` writes the model's own S x S embedded face. The command
holds no model logic: it sits on ``X2FacePipeline`` with ``animate``'s source options.
"""
from __future__ import annotations

import argparse
import time

from pathlib import Path

from .animate import add_source_arguments, expand_sources, group_note, open_pipeline
from .errors import InputError
from .faces import EVERY_FACE
from .media import IMAGE_EXTENSIONS, Limits, check_output_path, write_image


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m x2face embed",
        description="Write the embedded face of a photo (X2Face's pose-invariant picture of the face) to paint "
                    "on; `animate --edit-painted` then drives the painted face.")
    add_source_arguments(p, every="every face of the photo, a file each (see --out)")
    p.add_argument("--out", required=True, metavar="PNG",
                   help="the embedded face: a square image, the face's size in the photo (at most 1024 px); with "
                        "--face all, one per face: NAME_0.png (the leftmost), NAME_1.png, ... beside --out")
    p.add_argument("--sharp", action=argparse.BooleanOptionalAction, default=True,
                   help="sample the embedded face from the full-resolution photo at the face's size there (default); "
                        "--no-sharp: the model's own, at the model's size")
    p.add_argument("--confidence", metavar="PNG",
                   help="also write where the embedded face has evidence from the source (bright) as a grey image")
    p.add_argument("--overwrite", action="store_true", help="replace --out / --confidence if they exist")
    return p


def _numbered(path: str, i: int) -> str:
    """``face.png`` -> ``face_1.png``: face ``i``'s file of ``embed --face all``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_{i}{p.suffix}"))


def main(argv: list[str]) -> int:
    """Run ``python -m x2face embed``; returns the exit code (errors are raised as X2FaceError)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    args.source = expand_sources(args.source)
    every = args.face.strip() == EVERY_FACE  # a file per face, numbered once the faces are found

    def check(names: list[tuple[str, str | None]], overwrite: bool) -> None:
        for out, conf in names:
            for o, option in ((out, "--out"), (conf, "--confidence")):
                if o:
                    check_output_path(o, args.source, overwrite=overwrite, extensions=IMAGE_EXTENSIONS,
                                      option=option)

    check([(args.out, args.confidence)], args.overwrite or every)  # before the weights load
    if args.confidence and Path(args.out).resolve() == Path(args.confidence).resolve():
        raise InputError("--out and --confidence are the same file")
    pipe = open_pipeline(args, Limits(), every=True)
    members = [pipe.member(i) for i in range(len(pipe.sources))] if every else [pipe]
    names = [(args.out, args.confidence)] if not every else \
        [(_numbered(args.out, i), args.confidence and _numbered(args.confidence, i)) for i in range(len(members))]
    if every:  # the numbered files: nothing is written unless every one may be
        check(names, args.overwrite)
    wrote = []
    for m, (out, conf) in zip(members, names):
        s = m.sharp_side if args.sharp else m.image_size
        write_image(out, m.embedded_face(s if args.sharp else None))
        if conf:
            import cv2

            write_image(conf, cv2.resize(m.confidence_map(), (s, s), interpolation=cv2.INTER_CUBIC))
        wrote.append(f"{out} ({s}x{s}){f' and {conf}' if conf else ''}")
    k = len(pipe.source.names)
    what = f"the embedded face of {k} source frame{'s' if k > 1 else ''}" if not every else \
        "each face's embedded face, from the left"
    edit = "--edit-painted" + ("" if not every else " with --face all --edit-face N (N: the file's number)")
    print(f"x2face embed: wrote {', '.join(wrote)}; {what}{group_note(pipe, args)}; {time.perf_counter() - t0:.1f} s. "
          f"Paint on a copy and give it to `python -m x2face animate {edit}` with the same --source, --face "
          f"and --weights")
    return 0


__all__ = ["build_parser", "main"]
