"""Convert the authors' release checkpoints (PyTorch 0.2 / 0.4) into an x2face weights folder.

    python -m x2face convert-original x2face_model_forpython3.pth OUT_DIR [--pose-reg posereg.pth --pose-to posetobottle.pth]

Release keys look like ``pix2pixUnwrapped.netG.model.submodule.submodule.down.2.running_mean``: the
network (``pix2pixUnwrapped`` = embedding, ``pix2pixSampler`` = driving), the U-Net level (one
``submodule.`` per level), the encoder (``down``) or decoder (``up``) half, and an index into that
half's ``nn.Sequential``. Within one half of one level the 4-D tensor is the convolution and the 1-D
tensors the BatchNorm: keys are mapped by that structure, not by the indices, and every tensor's
shape is checked against the model built from the inferred config.

Files are read with ``torch.load(..., weights_only=True)``: nothing in them is executed.
"""
from __future__ import annotations

import math
import pickle
import re
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from .config import X2FaceConfig
from .errors import WeightsError
from .model import X2Face, load_state_dict_checked

_KEY = re.compile(
    r"^(?P<net>pix2pixUnwrapped|pix2pixSampler)\.netG\.model\.(?P<sub>(?:submodule\.)*)"
    r"(?P<half>down|up)\.(?P<idx>\d+)\.(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)$"
)
_NETS = {"pix2pixUnwrapped": "embedding", "pix2pixSampler": "driving"}
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# The release gives pose as (roll, pitch, yaw) in radians; x2face uses (yaw, pitch, roll) in degrees.
_RELEASE_POSE_ORDER = ("roll", "pitch", "yaw")


class ConversionError(WeightsError):
    """A release file that cannot be mapped onto X2Face; the message names what did not fit."""


def load_release_file(path: str | Path) -> dict:
    """Read a release ``.pth`` safely (``weights_only=True``) and return its top-level object.

    Python-2 pickles (``x2face_model.pth``) are retried with ``encoding='latin1'``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    last: Exception | None = None
    for kwargs in ({}, {"encoding": "latin1"}):
        try:
            with warnings.catch_warnings():  # torch warns that `encoding` is for pickle, yet passes it on
                warnings.simplefilter("ignore", UserWarning)
                return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
        except pickle.UnpicklingError as exc:
            if "Unsupported global" in str(exc):
                raise ConversionError(
                    f"{path} holds pickled Python objects, not only tensors; x2face will not unpickle it (it could "
                    f"run arbitrary code). In a trusted environment, re-save its state_dict with "
                    f"torch.save(obj.state_dict(), ...)."
                ) from None
            last = exc
        except Exception as exc:  # noqa: BLE001 (a user's file: torch's legacy reader raises KeyError, IndexError,
            last = exc  # ... on bytes that are no checkpoint; each is "not readable", never a crash)
    reason = f"{type(last).__name__}: {str(last).splitlines()[0]}" if str(last) else type(last).__name__
    raise ConversionError(f"{path} is not a readable PyTorch checkpoint ({reason[:200]})")


def _state_dict_of(obj: object, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a release file: ``obj['state_dict']`` or ``obj`` itself (``optimizer`` etc. ignored)."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a dict of tensors (or {{'state_dict': ...}}), got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConversionError(f"{path}: no tensors found (top-level keys: {', '.join(map(str, obj))})")
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def map_release_state(release: dict[str, torch.Tensor]) -> tuple[X2FaceConfig, dict[str, torch.Tensor]]:
    """Map the release's ``netG`` tensors onto x2face names and infer the architecture.

    Args:
        release: the checkpoint's ``state_dict`` (with or without ``num_batches_tracked``).

    Returns:
        ``(config, state)``: an ``X2FaceConfig`` whose networks have exactly these shapes, and the
        tensors under x2face names (``embedding.down.3.conv.weight``, ``driving.up.0.conv.weight``, ...).

    Raises:
        ConversionError: naming every key that does not parse or does not fit the structure.
    """
    groups: dict[tuple[str, int, str], dict[str, dict[str, torch.Tensor]]] = defaultdict(lambda: defaultdict(dict))
    unknown = []
    for key, tensor in release.items():
        m = _KEY.match(key)
        if m is None:
            unknown.append(key)
            continue
        level = m["sub"].count("submodule.")
        groups[(_NETS[m["net"]], level, m["half"])][m["idx"]][m["param"]] = tensor
    if unknown:
        raise ConversionError("not X2Face release tensors: " + ", ".join(sorted(unknown)))
    state: dict[str, torch.Tensor] = {}
    problems = []
    for (net, level, half), layers in sorted(groups.items()):
        where = f"{net} level {level} {half}"
        convs = [idx for idx, p in layers.items() if "weight" in p and p["weight"].dim() == 4]
        norms = [idx for idx, p in layers.items() if idx not in convs]
        if len(convs) != 1 or len(norms) > 1:
            problems.append(f"{where}: expected one conv and at most one norm, found layers {sorted(layers)}")
            continue
        conv = layers[convs[0]]
        if set(conv) != {"weight"}:
            problems.append(f"{where}: conv has unexpected tensors {sorted(set(conv) - {'weight'})} (x2face convs have no bias)")
        state[f"{net}.{half}.{level}.conv.weight"] = conv["weight"]
        if norms:
            norm = layers[norms[0]]
            need = {"weight", "bias", "running_mean", "running_var"}
            if not need <= set(norm) or not set(norm) <= set(_BN_PARAMS):
                problems.append(f"{where}: norm layer has tensors {sorted(norm)}, expected {sorted(need)}")
                continue
            for p in _BN_PARAMS:
                value = norm.get(p, torch.zeros((), dtype=torch.long))  # PyTorch 0.2 files lack the counter
                state[f"{net}.{half}.{level}.norm.{p}"] = value
    if problems:
        raise ConversionError("; ".join(problems))
    for net in _NETS.values():
        if (net, 0, "down") not in groups:
            raise ConversionError(f"the checkpoint has no {net} network (release prefix missing)")
    levels = {net: 1 + max(lv for (n, lv, _h) in groups if n == net) for net in _NETS.values()}
    if levels["embedding"] != levels["driving"]:
        raise ConversionError(f"embedding has {levels['embedding']} levels but driving has {levels['driving']}")
    first = state["embedding.down.0.conv.weight"]
    innermost = state[f"driving.down.{levels['driving'] - 1}.conv.weight"]
    config = X2FaceConfig(image_size=2 ** levels["embedding"], base_channels=first.shape[0], vector_dim=innermost.shape[0])
    if math.log2(config.image_size) != levels["embedding"]:  # pragma: no cover - guarded by X2FaceConfig
        raise ConversionError("unsupported number of levels")
    return config, state


def _find_linear(tensors: dict[str, torch.Tensor], out_dim: int, in_dim: int) -> tuple[str, torch.Tensor]:
    found = [(k, v) for k, v in tensors.items() if k.endswith("weight") and tuple(v.shape) == (out_dim, in_dim)]
    if len(found) != 1:
        raise ConversionError(f"expected one [{out_dim}, {in_dim}] weight, found {[k for k, _ in found] or 'none'}")
    return found[0]


def _pose_permutation(order: tuple[str, ...]) -> list[int]:
    """Index into the release's pose rows for each of x2face's (yaw, pitch, roll)."""
    return [order.index(name) for name in ("yaw", "pitch", "roll")]


def map_pose_files(pose_reg: dict[str, torch.Tensor] | None, pose_to: dict[str, torch.Tensor] | None,
                   vector_dim: int, *, units: str = "radians",
                   order: tuple[str, ...] = _RELEASE_POSE_ORDER) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map ``posereg*.pth`` (f_v->p) and ``posetobottle*.pth`` (f_p->v) onto ``X2Face.pose``.

    Tensors are found by shape, not name (the release's names are only known from its code). The
    result uses x2face's pose convention, (yaw, pitch, roll) in degrees; ``units``/``order`` describe
    the release's. Returns ``(state under 'pose.*', notes on what was found)``.
    """
    if units not in ("radians", "degrees"):
        raise ConversionError(f"pose units must be 'radians' or 'degrees', got {units!r}")
    if sorted(order) != sorted(_RELEASE_POSE_ORDER):
        raise ConversionError(f"pose order must name yaw, pitch and roll once each, got {order}")
    if (pose_reg is None) != (pose_to is None):
        raise ConversionError("pose conversion needs both files: posereg*.pth (f_v->p) and posetobottle*.pth (f_p->v)")
    perm = _pose_permutation(tuple(order))
    to_deg = 180.0 / math.pi if units == "radians" else 1.0
    state: dict[str, torch.Tensor] = {}
    notes: list[str] = []
    if pose_reg is not None:
        wkey, w = _find_linear(pose_reg, 3, vector_dim)
        bias = [(k, v) for k, v in pose_reg.items() if tuple(v.shape) == (3,)]
        if len(bias) != 1:
            raise ConversionError(f"f_v->p: expected one bias of shape [3], found {[k for k, _ in bias] or 'none'}")
        state["pose.to_pose.weight"] = w.float()[perm] * to_deg
        state["pose.to_pose.bias"] = bias[0][1].float()[perm] * to_deg
        notes.append(f"f_v->p from {wkey} {list(w.shape)} and {bias[0][0]} [3]")
    if pose_to is not None:
        wkey, w = _find_linear(pose_to, vector_dim, 3)
        prefix = wkey.rsplit("weight", 1)[0]
        lin_bias = pose_to.get(prefix + "bias")
        norm = {}
        for k, v in pose_to.items():
            if k.startswith(prefix) or v.dim() > 1:
                continue
            name = k.rsplit(".", 1)[-1]
            if name in _BN_PARAMS and (name == "num_batches_tracked" or tuple(v.shape) == (vector_dim,)):
                norm[name] = v
        missing = {"weight", "bias", "running_mean", "running_var"} - set(norm)
        if missing:
            raise ConversionError(f"f_p->v: no BatchNorm1d({vector_dim}) found beside {wkey} (missing {sorted(missing)})")
        weight = w.float()[:, perm] / to_deg  # inputs now in degrees, x2face order
        if lin_bias is not None:  # a bias before BatchNorm only shifts its running mean
            norm = dict(norm, running_mean=norm["running_mean"].float() - lin_bias.float())
            notes.append(f"f_p->v linear bias {prefix}bias folded into the BatchNorm mean")
        state["pose.from_pose.0.weight"] = weight
        for p in _BN_PARAMS:
            state[f"pose.from_pose.1.{p}"] = norm.get(p, torch.zeros((), dtype=torch.long))
        notes.append(f"f_p->v from {wkey} {list(w.shape)} + BatchNorm1d({vector_dim})")
    return state, notes


def convert_original(checkpoint: str | Path, out_dir: str | Path, *, pose_reg: str | Path | None = None,
                     pose_to: str | Path | None = None, pose_units: str = "radians",
                     pose_order: tuple[str, ...] = _RELEASE_POSE_ORDER) -> tuple[X2Face, list[str]]:
    """Convert a release checkpoint (and optionally its pose files) and save it with ``save_pretrained``.

    Returns:
        ``(model, notes)``: the converted model (eval mode, CPU, float32) and a line per finding.
    """
    release = _state_dict_of(load_release_file(checkpoint), checkpoint)
    config, state = map_release_state(release)
    notes = [
        f"{checkpoint}: {len(release)} tensors; image size {config.image_size}, base channels "
        f"{config.base_channels}, driving vector {config.vector_dim}"
        + ("" if any(k.endswith("num_batches_tracked") for k in release) else " (no num_batches_tracked: PyTorch 0.2 file)")
    ]
    if pose_reg is not None or pose_to is not None:
        if pose_reg is None or pose_to is None:
            raise ConversionError("pose conversion needs both --pose-reg (posereg*.pth) and --pose-to (posetobottle*.pth)")
        reg = _state_dict_of(load_release_file(pose_reg), pose_reg)
        to = _state_dict_of(load_release_file(pose_to), pose_to)
        pose_state, pose_notes = map_pose_files(reg, to, config.vector_dim, units=pose_units, order=pose_order)
        state.update(pose_state)
        notes += pose_notes
        config.pose_head = True
    model = X2Face(config)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    load_state_dict_checked(model, state, strict=True, source=str(checkpoint))
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    from .hub import write_provenance

    write_provenance(out, {"source": "converted from the authors' X2Face release (ECCV 2018)",
                           "checkpoint": Path(checkpoint).name, "notes": notes})
    return model, notes


def main(argv: list[str]) -> int:
    """``python -m x2face convert-original CHECKPOINT OUT_DIR [--pose-reg F --pose-to F]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m x2face convert-original", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="x2face_model_forpython3.pth or x2face_model.pth from the authors' release")
    p.add_argument("out_dir", help="folder to write config.json + model.safetensors to")
    p.add_argument("--pose-reg", help="posereg*.pth (f_v->p: driving vector -> pose)")
    p.add_argument("--pose-to", help="posetobottle*.pth (f_p->v: pose -> driving vector)")
    p.add_argument("--pose-units", choices=("radians", "degrees"), default="radians",
                   help="angle units of the release pose files (default: radians, as its code uses)")
    p.add_argument("--pose-order", default="roll,pitch,yaw",
                   help="row order of the release's pose vectors (default: roll,pitch,yaw)")
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConversionError(f"{out} exists and is not empty; choose a new folder (nothing was overwritten)")
    _, notes = convert_original(args.checkpoint, out, pose_reg=args.pose_reg, pose_to=args.pose_to,
                                pose_units=args.pose_units, pose_order=tuple(s.strip() for s in args.pose_order.split(",")))
    for line in notes:
        print(line)
    print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'}; load with X2Face.from_pretrained({str(out)!r}) "
          f"or publish with model.push_to_hub('user/name')")
    return 0
