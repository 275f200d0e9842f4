"""Edit the embedded face, and the edit follows the head through a video (section 6 of the paper).

The embedded face is X2Face's pose-invariant picture of the source face (a UV-map-like texture the
driving network samples from), so anything drawn on it moves with the head when the face is driven,
and is hidden behind the nose in profile, as in the paper's Fig. 8. Two kinds of edit:

* an RGBA overlay (a sticker, a tattoo) placed at a position and scale (``overlay_layer``);
* a painted copy of the embedded face (from any paint tool, e.g. Gradio's ``ImageEditor``); what
  changed becomes an RGBA layer (``edit_layer``).

Either way the edit is an RGBA layer over the embedded face (``apply_layer``): the same layer can be
put on another person's embedded face, since embedded faces of different people line up (the paper:
"a given edit can be applied across different identities").

Images here are numpy arrays [H, W, C] RGB(A), uint8 or float in [0, 1] (returned as given), or PIL
images; tensors [B, C, S, S] float in [0, 1] for ``composite``. Layers use straight (not
premultiplied) alpha. ``apply_edit`` and ``transfer_edit`` work on an ``X2FacePipeline``: they read
its embedded face, edit it and put it back, and every frame driven afterwards shows the edit.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

#: pixels whose painted colour differs from the original by more than this (max over RGB, 0..1)
#: count as painted in ``edit_layer``
PAINT_THRESHOLD = 4.0 / 255.0


def composite(base: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
    """Straight-alpha "over": ``base * (1 - a) + rgb * a``.

    Args:
        base: float [B, 3, S, S] in [0, 1] (e.g. embedded faces).
        layer: float [B or 1, 4, S, S] in [0, 1]: RGB and alpha.

    Returns:
        float [B, 3, S, S].
    """
    if base.dim() != 4 or base.shape[1] != 3 or layer.dim() != 4 or layer.shape[1] != 4 \
            or layer.shape[-2:] != base.shape[-2:] or layer.shape[0] not in (1, base.shape[0]):
        raise InputError(f"composite needs base [B, 3, S, S] and layer [B or 1, 4, S, S], got "
                         f"{list(base.shape)} and {list(layer.shape)}")
    layer = layer.to(base)
    alpha = layer[:, 3:4]
    return base * (1.0 - alpha) + layer[:, :3] * alpha


def as_float_image(image: Any, channels: Sequence[int] = (3, 4), name: str = "image") -> np.ndarray:
    """numpy / PIL image -> float32 [H, W, C] in [0, 1]; uint8 is divided by 255, gray becomes RGB."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL
        image = np.asarray(image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} must be an image array [H, W, C] or a PIL image, got {type(image).__name__}")
    x = image
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"{name} must be [H, W, C], got shape {list(image.shape)}")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)  # gray -> RGB
    elif x.shape[2] == 2:
        x = np.concatenate([np.repeat(x[:, :, :1], 3, axis=2), x[:, :, 1:]], axis=2)  # gray + alpha -> RGBA
    if x.shape[2] not in channels:
        raise InputError(f"{name} must have {' or '.join(map(str, channels))} channels, got {x.shape[2]}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype == np.uint16:
        return x.astype(np.float32) / 65535.0
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{name} must be uint8 or float in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return np.clip(x, 0.0, 1.0)


def _like(result: np.ndarray, reference: Any) -> np.ndarray:
    """float [H, W, C] in [0, 1] -> the dtype of ``reference`` (uint8 stays uint8)."""
    if isinstance(reference, np.ndarray) and reference.dtype == np.uint8 or hasattr(reference, "mode"):
        return (np.clip(result, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return result.astype(np.float32)


def overlay_layer(overlay: Any, size: int | tuple[int, int], position: Sequence[float] = (0.5, 0.5),
                  scale: float = 0.25) -> np.ndarray:
    """Place an RGBA (or RGB, fully opaque) overlay on an empty layer the size of the embedded face.

    Args:
        overlay: [h, w, 4] RGBA (or [h, w, 3]) uint8 or float image, or a PIL image.
        size: side of the embedded face in pixels (or (height, width)).
        position: (x, y) of the overlay's centre as fractions of the width and height (0, 0 = top left).
        scale: the overlay's width as a fraction of the embedded face's width (height keeps its aspect).

    Returns:
        float32 [H, W, 4] layer in [0, 1], straight alpha; transparent where the overlay is not.
    """
    rgba = as_float_image(overlay, name="overlay")
    if rgba.shape[2] == 3:
        rgba = np.concatenate([rgba, np.ones_like(rgba[:, :, :1])], axis=2)
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < 1:
        raise InputError(f"size must be positive, got {size}")
    if len(position) != 2 or not all(math.isfinite(float(p)) for p in position):
        raise InputError(f"position must be (x, y) fractions, got {position!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= 4):
        raise InputError(f"scale must be in (0, 4] (the overlay's width / the face's width), got {scale!r}")
    ow = max(1, int(round(scale * w)))
    oh = max(1, int(round(ow * rgba.shape[0] / rgba.shape[1])))
    t = torch.from_numpy(rgba).permute(2, 0, 1)[None]  # [h, w, 4] -> [1, 4, h, w]
    pre = torch.cat([t[:, :3] * t[:, 3:], t[:, 3:]], 1)  # premultiplied: no dark fringes when resampling
    pre = F.interpolate(pre, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)[0]  # [4, oh, ow]
    layer = torch.zeros(4, h, w)
    x0 = int(round(float(position[0]) * w - ow / 2))
    y0 = int(round(float(position[1]) * h - oh / 2))
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    cw, ch = min(ow - sx0, w - dx0), min(oh - sy0, h - dy0)
    if cw > 0 and ch > 0:
        layer[:, dy0:dy0 + ch, dx0:dx0 + cw] = pre[:, sy0:sy0 + ch, sx0:sx0 + cw]
    alpha = layer[3:].clamp(0, 1)
    rgb = torch.where(alpha > 1e-6, layer[:3] / alpha.clamp(min=1e-6), torch.zeros_like(layer[:3]))
    return torch.cat([rgb.clamp(0, 1), alpha]).permute(1, 2, 0).numpy().copy()  # [4, H, W] -> [H, W, 4]


def flatten_painting(painted: Any, base: Any | None = None) -> np.ndarray:
    """A painted embedded face -> float32 [H, W, 3] RGB.

    Accepts an RGB image, an RGBA image (composited over ``base``, e.g. a transparent layer drawn on
    the embedded face), or a Gradio ``ImageEditor`` value: a dict with ``"composite"`` (used as is)
    or ``"background"`` and ``"layers"`` (composited in order).
    """
    if isinstance(painted, dict):
        if painted.get("composite") is not None:
            return flatten_painting(painted["composite"], base)
        if painted.get("background") is None and base is None:
            raise InputError("the painting has neither a composite nor a background image")
        out = flatten_painting(painted["background"], base) if painted.get("background") is not None \
            else as_float_image(base, (3,), "base")
        for layer in painted.get("layers") or []:
            lay = as_float_image(layer, name="painted layer")
            if lay.shape[:2] != out.shape[:2]:
                raise InputError(f"a painted layer is {lay.shape[1]}x{lay.shape[0]}, the image {out.shape[1]}x{out.shape[0]}")
            if lay.shape[2] == 3:
                out = lay
            else:
                a = lay[:, :, 3:]
                out = out * (1 - a) + lay[:, :, :3] * a
        return out
    img = as_float_image(painted, name="painted face")
    if img.shape[2] == 4:
        under = as_float_image(base, (3,), "base") if base is not None else np.ones_like(img[:, :, :3])
        if under.shape[:2] != img.shape[:2]:
            raise InputError(f"the painting is {img.shape[1]}x{img.shape[0]} but the embedded face "
                             f"{under.shape[1]}x{under.shape[0]}; paint on the embedded face itself")
        a = img[:, :, 3:]
        img = under * (1 - a) + img[:, :, :3] * a
    return img


def edit_layer(original: Any, painted: Any, threshold: float = PAINT_THRESHOLD) -> np.ndarray:
    """What was painted on an embedded face, as an RGBA layer that can go on any embedded face.

    Args:
        original: the embedded face before painting, [S, S, 3] (uint8 or float) or PIL.
        painted: the painted copy (see ``flatten_painting``), same size.
        threshold: smallest colour change (max over RGB, 0..1) that counts as paint.

    Returns:
        float32 [S, S, 4]: the painted colours where they differ from ``original``, alpha 1 there
        (0 elsewhere, softened by half a pixel at the edges).
    """
    base = as_float_image(original, (3,), "original")
    paint = flatten_painting(painted, base)
    if paint.shape[:2] != base.shape[:2]:
        raise InputError(f"the painted face is {paint.shape[1]}x{paint.shape[0]} but the embedded face "
                         f"{base.shape[1]}x{base.shape[0]}; paint on the embedded face itself")
    changed = (np.abs(paint - base).max(axis=2) > threshold).astype(np.float32)  # [S, S]
    soft = F.avg_pool2d(torch.from_numpy(changed)[None, None], 3, 1, 1, count_include_pad=False)[0, 0].numpy()
    alpha = np.maximum(changed, soft)  # painted pixels stay opaque, their neighbours blend a little
    rgb = np.where(changed[:, :, None] > 0, paint, _dilate_colours(paint, changed))
    return np.concatenate([rgb, alpha[:, :, None]], axis=2).astype(np.float32)


def _dilate_colours(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Colours of the nearest painted pixel one step out (for the soft edge): [S, S, 3]."""
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None] * torch.from_numpy(mask)[None, None]  # [1, 3, S, S]
    m = torch.from_numpy(mask)[None, None]
    num = F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)
    den = F.avg_pool2d(m, 3, 1, 1, count_include_pad=False).clamp(min=1e-6)
    return (num / den)[0].permute(1, 2, 0).numpy()  # [1, 3, S, S] -> [S, S, 3]


def apply_layer(embedded: Any, layer: np.ndarray) -> np.ndarray:
    """Put an RGBA layer on an embedded face: [S, S, 3] (uint8 or float) + float [S, S, 4] -> like ``embedded``.

    A layer of another size is resized to the face first (edits carry across model sizes).
    """
    base = as_float_image(embedded, (3,), "embedded face")
    lay = as_float_image(layer, (4,), "layer")
    if lay.shape[:2] != base.shape[:2]:
        t = torch.from_numpy(lay).permute(2, 0, 1)[None]  # [1, 4, h, w]
        pre = torch.cat([t[:, :3] * t[:, 3:], t[:, 3:]], 1)
        pre = F.interpolate(pre, size=base.shape[:2], mode="bilinear", align_corners=False, antialias=True)[0]
        a = pre[3:].clamp(0, 1)
        rgb = torch.where(a > 1e-6, pre[:3] / a.clamp(min=1e-6), torch.zeros_like(pre[:3])).clamp(0, 1)
        lay = torch.cat([rgb, a]).permute(1, 2, 0).numpy()  # [4, S, S] -> [S, S, 4]
    out = composite(torch.from_numpy(base).permute(2, 0, 1)[None],  # [S, S, 3] -> [1, 3, S, S]
                    torch.from_numpy(lay).permute(2, 0, 1)[None])  # [S, S, 4] -> [1, 4, S, S]
    return _like(out[0].permute(1, 2, 0).numpy(), embedded)  # [3, S, S] -> [S, S, 3]


def apply_overlay(embedded: Any, overlay: Any, position: Sequence[float] = (0.5, 0.5), scale: float = 0.25) -> np.ndarray:
    """Alpha-composite an RGBA overlay onto an embedded face at ``position`` (centre, fractions) and
    ``scale`` (width fraction); returns an image like ``embedded`` (uint8 stays uint8)."""
    base = as_float_image(embedded, (3,), "embedded face")
    return apply_layer(embedded, overlay_layer(overlay, base.shape[:2], position, scale))


def confidence_image(confidence: torch.Tensor | np.ndarray) -> np.ndarray:
    """The embedding's confidence (log sampling weight, float [1, 1, S, S] or [S, S]) as uint8 [S, S] for
    display: min-max scaled, brighter = more evidence from the source frames (edit where it is bright)."""
    c = torch.as_tensor(np.asarray(confidence.detach().float().cpu() if isinstance(confidence, torch.Tensor)
                                   else confidence, dtype=np.float32))
    c = c.reshape(c.shape[-2], c.shape[-1])  # [1, 1, S, S] -> [S, S]
    lo, hi = float(c.min()), float(c.max())
    scaled = (c - lo) / (hi - lo) if hi > lo else torch.ones_like(c)
    return (scaled * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def read_overlay(path: Any, max_pixels: int, what: str = "the overlay") -> np.ndarray:
    """An overlay picture (PNG with transparency, or any photo) -> float32 [h, w, 4] RGBA in [0, 1],
    EXIF-rotated, its size checked from the header before anything is decoded.

    Args:
        path: the picture's file.
        max_pixels: refuse pictures with more pixels than this.
        what: how the picture is called in messages.

    Raises:
        MediaError: unreadable, corrupt or too large.
    """
    from pathlib import Path

    from PIL import Image, ImageOps, UnidentifiedImageError

    from ..errors import MediaError
    from ..media import image_size

    name = Path(path).name
    w, h = image_size(path)  # registers the HEIC plugin too
    if w * h > max_pixels:
        raise MediaError(f"{what} {name} is {w}x{h}; the limit is {max_pixels / 1e6:.0f} megapixels")
    try:
        with Image.open(path) as im:
            im.seek(0)
            im = ImageOps.exif_transpose(im)
            rgba = im.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError(f"cannot read {what} {name}: {exc}") from exc
    return as_float_image(np.asarray(rgba), (4,), "overlay")


# ------------------------------------------------------------------------------------------------ pipeline
def apply_edit(pipeline, *, overlay: Any = None, position: Sequence[float] = (0.5, 0.5), scale: float = 0.25,
               painted: Any = None, layer: np.ndarray | None = None, face: int | None = None) -> np.ndarray:
    """Edit the pipeline's embedded face; every frame driven afterwards shows the edit.

    Give exactly one of: ``overlay`` (RGBA image, placed at ``position``/``scale``, at the sharp face's
    resolution), ``painted`` (a painted copy of ``pipeline.embedded_face()``, [S, S], or of
    ``pipeline.embedded_face(side)``, [side, side], see ``flatten_painting``) or ``layer`` (an RGBA layer
    from an earlier edit, e.g. of another person, at any size). ``face``: with every face of a group photo as the
    source, edit only that face (an index from the left; ``pipeline.member(face)``'s sizes and embedded face);
    None: every face.

    Returns:
        the edit as a float32 [E, E, 4] RGBA layer (E: the overlay's or painting's resolution;
        ``transfer_edit`` puts it on another face).
    """
    given = [x is not None for x in (overlay, painted, layer)]
    if sum(given) != 1:
        raise InputError("give exactly one of overlay, painted or layer")
    target = pipeline.member(face)
    if overlay is not None:
        layer = overlay_layer(overlay, target.sharp_side, position, scale)
    elif painted is not None:
        h, w = painting_size(painted)
        if h != w:
            raise InputError(f"the painted face is {w}x{h}; paint on the embedded face itself (it is square)")
        base = target.embedded_face() if h == target.image_size else target.embedded_face(h)
        layer = edit_layer(base, painted)
    layer = as_float_image(layer, (4,), "layer")
    pipeline.add_edit_layer(layer, face=face)
    return layer


def painting_size(painted: Any) -> tuple[int, int]:
    """(height, width) of a painting as ``flatten_painting`` takes it (an image or an ``ImageEditor`` value)."""
    if isinstance(painted, dict):
        first = painted.get("composite") if painted.get("composite") is not None else painted.get("background")
        if first is None:
            layers = painted.get("layers") or []
            if not layers:
                raise InputError("the painting has neither a composite nor a background image")
            first = layers[0]
        return painting_size(first)
    h, w = as_float_image(painted, name="painted face").shape[:2]
    return h, w


def transfer_edit(pipeline, layer: np.ndarray) -> np.ndarray:
    """Put an edit made on one embedded face (``apply_edit``'s layer) on another pipeline's face;
    returns the edited embedded face, uint8 [S, S, 3]."""
    pipeline.add_edit_layer(as_float_image(layer, (4,), "layer"))
    return pipeline.embedded_face()


__all__ = ["PAINT_THRESHOLD", "apply_edit", "apply_layer", "apply_overlay", "as_float_image", "composite",
           "confidence_image", "edit_layer", "flatten_painting", "overlay_layer", "painting_size", "read_overlay",
           "transfer_edit"]
