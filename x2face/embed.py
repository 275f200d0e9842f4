"""``python -m x2face embed``: write a face's embedded face, to paint on for ``animate --edit-painted``.

    python -m x2face embed --source photo.jpg --out face.png        # the face's size in the photo (up to 1024 px)
    python -m x2face embed --source photo.jpg --out face.png --no-sharp --confidence conf.png   # the model's size
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

from .animate import add_source_arguments, group_note, open_pipeline
from .errors import InputError
from .media import IMAGE_EXTENSIONS, Limits, check_output_path, write_image


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m x2face embed",
        description="Write the embedded face of a photo (X2Face's pose-invariant picture of the face) to paint "
                    "on; `animate --edit-painted` then drives the painted face.")
    add_source_arguments(p)
    p.add_argument("--out", required=True, metavar="PNG",
                   help="the embedded face: a square image, the face's size in the photo (at most 1024 px)")
    p.add_argument("--sharp", action=argparse.BooleanOptionalAction, default=True,
                   help="sample the embedded face from the full-resolution photo at the face's size there (default); "
                        "--no-sharp: the model's own, at the model's size")
    p.add_argument("--confidence", metavar="PNG",
                   help="also write where the embedded face has evidence from the source (bright) as a grey image")
    p.add_argument("--overwrite", action="store_true", help="replace --out / --confidence if they exist")
    return p


def main(argv: list[str]) -> int:
    """Run ``python -m x2face embed``; returns the exit code (errors are raised as X2FaceError)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    outs = [check_output_path(o, args.source, overwrite=args.overwrite, extensions=IMAGE_EXTENSIONS)
            for o in (args.out, args.confidence) if o]
    if len(outs) == 2 and outs[0] == outs[1]:
        raise InputError("--out and --confidence are the same file")
    pipe = open_pipeline(args, Limits())
    s = pipe.sharp_side if args.sharp else pipe.image_size
    write_image(outs[0], pipe.embedded_face(s if args.sharp else None))
    if args.confidence:
        import cv2

        write_image(outs[1], cv2.resize(pipe.confidence_map(), (s, s), interpolation=cv2.INTER_CUBIC))
    k = len(pipe.source.names)
    print(f"x2face embed: wrote {outs[0]} ({s}x{s}){f' and {outs[1]}' if args.confidence else ''}; the embedded "
          f"face of {k} source frame{'s' if k > 1 else ''}{group_note(pipe, args)}; {time.perf_counter() - t0:.1f} s. "
          f"Paint on a copy and give it to `python -m x2face animate --edit-painted` with the same --source, --face "
          f"and --weights")
    return 0


__all__ = ["build_parser", "main"]
