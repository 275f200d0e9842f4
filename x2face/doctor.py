"""``python -m x2face env``: what x2face finds on this machine, for bug reports and for "why is it slow / why is the
face box different here".

    python -m x2face env            # a readable report
    python -m x2face env --json     # the same as JSON

It reports the versions of x2face and the packages it uses, the machine (CPU, threads, GPU), the compute dtype the
optimised path picks, the ffmpeg binary, the face detectors usable here (and which face-alignment weight files are
on disk: x2face never downloads them), the bundled demo weights, the Hugging Face cache, and the environment
variables that change what x2face does (``ENV_PREFIXES``; never one whose name says token, key, secret, password or
auth). Every probe is guarded:
a broken package shows as its error, never as a traceback. Nothing is downloaded and no network is used.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from typing import Any, Callable

#: the distributions (pip names) whose versions the report lists; those not installed are left out of the text
PACKAGES = ("torch", "numpy", "opencv-python", "opencv-python-headless", "pillow", "pillow-heif", "imageio-ffmpeg",
            "soundfile", "librosa", "numba", "safetensors", "huggingface-hub", "gradio", "gradio-client",
            "face-alignment", "scikit-learn")


def _guard(probe: Callable[[], Any]) -> Any:
    """``probe()``, or ``{"error": "Type: message"}`` when it raises."""
    try:
        return probe()
    except Exception as exc:  # a broken install is what this command is for: report it, do not die of it
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _machine() -> dict[str, Any]:
    import torch

    from .bench import machine_info
    from .fast import resolve_dtype
    from .hub import pick_device

    device = pick_device("auto")
    info = machine_info(device, torch.get_num_threads())
    info["device"] = str(device)
    info["compute_dtype"] = str(resolve_dtype("auto", device)).replace("torch.", "")
    info["cuda_available"] = torch.cuda.is_available()
    return info


def _ffmpeg() -> dict[str, Any]:
    from .media import ffmpeg_exe

    exe = ffmpeg_exe()
    text = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30).stdout
    return {"path": exe, "version": (text.splitlines() or ["?"])[0]}


def _faces() -> dict[str, Any]:
    import cv2

    from .faces import available_backends, face_alignment_weights
    from .haar import compiled_available

    cascades = "opencv" if hasattr(cv2, "CascadeClassifier") else "numba" if compiled_available() else "torch"
    return {"usable": available_backends(), "auto_picks": available_backends()[0],
            "opencv": cv2.__version__, "opencv_has_cascade_classifier": hasattr(cv2, "CascadeClassifier"),
            "haar_cascades_run_on": cascades, "face_alignment_weights_on_disk": face_alignment_weights()}


def _weights() -> dict[str, Any]:
    from .hub import bundled_weights_dir
    from .model import CONFIG_NAME, WEIGHTS_NAME

    folder = bundled_weights_dir()
    found = (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file()
    demo: dict[str, Any] = {"folder": str(folder), "present": found}
    if found:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        demo.update(image_size=config.get("image_size"), base_channels=config.get("base_channels"),
                    pose_head=config.get("pose_head"), audio_head=config.get("audio_head"),
                    megabytes=round((folder / WEIGHTS_NAME).stat().st_size / 1e6, 1))
    from huggingface_hub import constants

    hub = {"offline": bool(constants.HF_HUB_OFFLINE), "cache": str(constants.HF_HUB_CACHE),
           "token_set": bool(os.environ.get("HF_TOKEN") or os.path.isfile(constants.HF_TOKEN_PATH))}
    return {"demo": demo, "hub": hub}


#: the environment variables the report shows: x2face's own, the Hub's, Gradio's and the threading/GPU ones
ENV_PREFIXES = ("X2FACE_", "HF_HUB_", "GRADIO_", "OMP_", "MKL_", "CUDA_", "PYTORCH_", "TORCH_")
#: never shown, whatever their prefix: a bug report is public
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "AUTH")


def _environment() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith(ENV_PREFIXES) and not any(w in k.upper() for w in SECRET_WORDS)}


def report() -> dict[str, Any]:
    """Everything ``env`` prints, as a dict (each section an ``{"error": ...}`` dict where its probe failed)."""
    from . import __version__

    return {"x2face": {"version": __version__, "location": os.path.dirname(os.path.abspath(__file__)),
                       "python": sys.version.split()[0], "executable": sys.executable},
            "packages": _guard(_versions), "machine": _guard(_machine), "ffmpeg": _guard(_ffmpeg),
            "face_detectors": _guard(_faces), "weights": _guard(_weights), "environment": _guard(_environment)}


def format_report(data: dict[str, Any]) -> str:
    """The report as indented ``key: value`` lines, one section after another (missing packages left out)."""
    lines: list[str] = []

    def put(value: Any, indent: int) -> None:
        for key, item in value.items():
            if isinstance(item, dict) and not any(v is not None for v in item.values()):
                lines.append(f"{' ' * indent}{key}: (none)")
            elif isinstance(item, dict):
                lines.append(f"{' ' * indent}{key}:")
                put(item, indent + 2)
            elif item is not None or indent == 0:
                shown = ", ".join(map(str, item)) if isinstance(item, list) else item
                lines.append(f"{' ' * indent}{key}: {shown}")

    for section, value in data.items():
        lines.append(f"{section}:" + ("" if value else " (none)"))
        put({k: v for k, v in value.items() if not (section == "packages" and v is None)}, 2)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m x2face env [--json]``."""
    p = argparse.ArgumentParser(prog="python -m x2face env",
                                description="Show what x2face finds on this machine (paste it into bug reports).")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = p.parse_args(argv)
    data = report()
    print(json.dumps(data, indent=2, default=str) if args.json else format_report(data))
    return 0


__all__ = ["ENV_PREFIXES", "PACKAGES", "SECRET_WORDS", "format_report", "main", "report"]
