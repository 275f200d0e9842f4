"""Where weights come from: the bundled demo model, a local folder, or a Hugging Face Hub repo.

A *weights spec* is one of:

* ``None``, ``""`` or ``"demo"``: the bundled demo weights in ``assets/x2face-demo`` (or the folder
  named by ``X2FACE_DEMO_WEIGHTS``);
* a path to a folder holding ``config.json`` + ``model.safetensors`` (``save_pretrained`` output);
* a Hub repo id ``owner/name``, optionally ``owner/name@revision``.

Weights folders may also hold ``provenance.json``: what the weights were trained or converted from,
shown by ``python -m x2face info`` and the app.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .errors import WeightsError
from .model import CONFIG_NAME, WEIGHTS_NAME, X2Face

PROVENANCE_NAME = "provenance.json"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_NAMES = ("", "demo")


#: the smoke-test demo weights this repository ships
SHIPPED_DEMO_DIR = REPO_ROOT / "assets" / "x2face-demo"


def bundled_weights_dir() -> Path:
    """Folder of the bundled demo weights (``X2FACE_DEMO_WEIGHTS`` overrides ``SHIPPED_DEMO_DIR``)."""
    return Path(os.environ.get("X2FACE_DEMO_WEIGHTS") or SHIPPED_DEMO_DIR)


def resolve(spec: str | os.PathLike | None) -> tuple[str, str | None]:
    """Weights spec -> ``(folder or repo id, revision)``; raises ``WeightsError`` for a missing demo model."""
    if spec is None or str(spec) in DEMO_NAMES:
        folder = bundled_weights_dir()
        if not (folder / WEIGHTS_NAME).is_file():
            raise WeightsError(
                f"no bundled demo weights in {folder}; make them with `bash configs/demo.sh` "
                f"or pass --weights FOLDER_OR_HUB_REPO"
            )
        return str(folder), None
    spec = str(spec)
    if os.path.exists(spec) or spec.startswith((".", "/", "~")):
        return os.path.expanduser(spec), None
    repo, _, revision = spec.partition("@")
    return repo, revision or None


def pick_device(preference: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; otherwise ``torch.device(preference)``, which must be
    usable here (a CUDA index below the number of GPUs; Apple's ``mps`` where it is built and available).

    Raises:
        WeightsError: a device name torch does not know, or one this machine lacks (the message says what to use).
    """
    if preference is None or str(preference) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError, ValueError):
        raise WeightsError(f"unknown device {str(preference)!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise WeightsError("CUDA was asked for but this machine has no usable CUDA GPU; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise WeightsError(f"{device} was asked for but this machine has {count} CUDA GPU(s): cuda:0"
                               + (f" to cuda:{count - 1}" if count > 1 else ""))
    elif device.type == "mps" and not (torch.backends.mps.is_built() and torch.backends.mps.is_available()):
        raise WeightsError("mps (Apple's GPU) was asked for but is not available here; use --device cpu")
    elif device.type not in ("cpu", "mps"):
        module = getattr(torch, device.type, None)
        if not callable(getattr(module, "is_available", None)) or not module.is_available():
            raise WeightsError(f"{device.type} was asked for but is not available here; use --device cpu")
    return device


def load_model(spec: str | os.PathLike | None = None, device: str | torch.device | None = "auto",
               dtype: torch.dtype = torch.float32) -> X2Face:
    """Load an ``X2Face`` (eval mode) from a weights spec onto ``device`` in ``dtype``."""
    where, revision = resolve(spec)
    model = X2Face.from_pretrained(where, revision=revision)
    return model.to(device=pick_device(device), dtype=dtype)


def read_provenance(spec: str | os.PathLike | None) -> dict[str, Any]:
    """The weights' ``provenance.json`` as a dict (empty when there is none or it is on the Hub and absent)."""
    where, revision = resolve(spec)
    path = Path(where) / PROVENANCE_NAME
    if not path.is_file() and not os.path.isdir(where):
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(where, PROVENANCE_NAME, revision=revision))
        except Exception:
            return {}
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_provenance(folder: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write ``provenance.json`` beside the weights in ``folder``."""
    path = Path(folder) / PROVENANCE_NAME
    path.write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def training_summary(provenance: dict[str, Any]) -> str:
    """One line on what the weights were trained (or converted, or fitted) on, from ``provenance.json``."""
    if not provenance:
        return "unknown (the weights carry no provenance.json)"
    parts = []
    if provenance.get("source"):
        parts.append(str(provenance["source"]))
    data = provenance.get("data")
    if isinstance(data, dict):
        what = []
        for name in data.get("sources", []):
            if name == "real" and isinstance(data.get("real"), dict):
                real = data["real"]
                where = [Path(str(m)).parent.name or str(m) for m in (real.get("manifests") or [])]
                where += [Path(str(r)).name for r in (real.get("voxceleb_roots") or [])]
                clips = real.get("clips") or real.get("num_clips")
                what.append("real face videos" + (f" ({', '.join(where)})" if where else "")
                            + (f", {clips} clips" if clips else ""))
            elif name == "synthetic":
                what.append("the synthetic face world")
            else:
                what.append(str(name))
        if what:
            parts.append("trained on " + " and ".join(what))
    if provenance.get("stage") is not None:
        stage = provenance["stage"]
        steps = provenance.get("steps")
        history = [h for h in provenance.get("history") or [] if isinstance(h, dict) and h.get("steps")]
        if steps and history:  # e.g. stage I continued from earlier stage-I weights
            runs = [*(f"{h['steps']} (stage {h.get('stage')})" for h in history), f"{steps} (stage {stage})"]
            parts.append(f"{sum(h['steps'] for h in history) + steps} steps: " + " + ".join(runs))
        else:
            parts.append(f"stage {stage}" + (f", {steps} steps" if steps else ""))
    if isinstance(provenance.get("pose_head"), dict):
        parts.append("pose head fitted")
    if isinstance(provenance.get("audio_head"), dict):
        parts.append("audio head fitted")
    if not parts:
        keys = ", ".join(sorted(provenance)[:6])
        return f"see provenance.json ({keys})"
    return "; ".join(parts)


def describe(spec: str | os.PathLike | None) -> dict[str, Any]:
    """Everything a user wants to know about some weights: where, architecture, size, provenance."""
    where, revision = resolve(spec)
    model = X2Face.from_pretrained(where, revision=revision)
    return {
        "weights": where if revision is None else f"{where}@{revision}",
        "config": model.config.to_dict(),
        "parameters": model.num_parameters(),
        "provenance": read_provenance(spec),
    }


def main(argv: list[str]) -> int:
    """``python -m x2face info [WEIGHTS]``: print ``describe(WEIGHTS)`` as JSON."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m x2face info", description="Describe x2face weights.")
    p.add_argument("weights", nargs="?", default=None, help="folder, Hub repo id or 'demo' (default)")
    args = p.parse_args(argv)
    print(json.dumps(describe(args.weights), indent=2, default=str))
    return 0


__all__ = ["CONFIG_NAME", "SHIPPED_DEMO_DIR", "WEIGHTS_NAME", "bundled_weights_dir", "describe", "load_model",
           "pick_device", "read_provenance", "resolve", "training_summary", "write_provenance"]
