"""Editing the embedded face (section 6): overlays, painted copies, transfer to another face, and the edit
following the driving motion through the pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from x2face import X2Face, X2FaceConfig
from x2face.control.edit import (
    apply_edit,
    apply_layer,
    apply_overlay,
    composite,
    confidence_image,
    edit_layer,
    flatten_painting,
    overlay_layer,
    transfer_edit,
)
from x2face.errors import InputError
from x2face.faces import FaceCropper

from helpers import WholeImage

GREEN = np.array([0, 255, 0], np.uint8)


def shifting_model() -> X2Face:
    """A tiny X2Face whose driving flow is known: driving vector component 0 = horizontal sampling offset dx
    (normalised units) everywhere, so a generated frame is the embedded face moved left by dx."""
    torch.manual_seed(0)
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8)).eval()
    size = model.config.image_size

    def decode(vector: torch.Tensor) -> torch.Tensor:  # render applies tanh to this
        off = torch.zeros(vector.shape[0], 2, size, size, dtype=vector.dtype, device=vector.device)
        off[:, 0] = torch.atanh(vector[:, 0].clamp(-0.95, 0.95)).view(-1, 1, 1)
        return off

    model.driving.decode = decode
    return model


def pipe_with(model, photos):
    from x2face.pipeline import X2FacePipeline

    pipe = X2FacePipeline(model, cropper=FaceCropper(model.config.image_size, backend=WholeImage()))
    pipe.set_source(photos)
    return pipe


def photo(seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    return (g.random((96, 96, 3)) * 120 + 60).astype(np.uint8)  # greys: nothing in it is pure green


def green_centroid(frame: np.ndarray) -> tuple[float, float, int]:
    mask = np.abs(frame.astype(int) - GREEN).max(axis=2) < 40
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean()), int(mask.sum())) if len(xs) else (float("nan"), float("nan"), 0)


def square(size=8, rgb=GREEN) -> np.ndarray:
    out = np.zeros((size, size, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out


# ------------------------------------------------------------------------------------------------ layers
def test_overlay_goes_where_and_as_large_as_asked():
    layer = overlay_layer(square(4), 32, position=(0.25, 0.5), scale=0.25)  # 8 px wide, centred at (8, 16)
    assert layer.shape == (32, 32, 4) and layer.dtype == np.float32
    ys, xs = np.nonzero(layer[..., 3] > 0.5)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (4, 11, 12, 19)
    np.testing.assert_allclose(layer[16, 8, :3], [0, 1, 0], atol=1e-5)
    edge = overlay_layer(square(4), 32, position=(0.0, 0.0), scale=0.25)  # half off the face: clipped, no error
    assert edge[..., 3].sum() == pytest.approx(16.0, abs=0.5)
    with pytest.raises(InputError):
        overlay_layer(square(4), 32, scale=0.0)
    with pytest.raises(InputError):
        overlay_layer(np.zeros((4, 4, 5), np.uint8), 32)


def test_alpha_compositing():
    base = np.full((16, 16, 3), 100, np.uint8)
    half = square(16, np.array([255, 0, 0], np.uint8))
    half[..., 3] = 128
    out = apply_overlay(base, half, (0.5, 0.5), 1.0)
    assert out.dtype == np.uint8
    np.testing.assert_allclose(out[8, 8], 100 + (np.array([255, 0, 0]) - 100) * 128 / 255, atol=1.0)
    floats = apply_overlay(base.astype(np.float32) / 255, half, (0.5, 0.5), 1.0)
    assert floats.dtype == np.float32 and abs(floats[8, 8, 0] * 255 - out[8, 8, 0]) < 1.0
    b = torch.rand(2, 3, 8, 8)
    lay = torch.rand(1, 4, 8, 8)
    torch.testing.assert_close(composite(b, lay), b * (1 - lay[:, 3:]) + lay[:, :3] * lay[:, 3:])
    with pytest.raises(InputError):
        composite(b, torch.rand(1, 3, 8, 8))


def test_a_painted_copy_becomes_a_layer_for_any_face():
    g = np.random.default_rng(0)
    face_a = (g.random((32, 32, 3)) * 200).astype(np.uint8)
    painted = face_a.copy()
    painted[10:14, 20:26] = [0, 0, 255]
    layer = edit_layer(face_a, painted)
    assert np.all(layer[10:14, 20:26, 3] == 1.0) and layer[0:6, 0:6, 3].max() == 0.0
    assert 0 < layer[9, 22, 3] < 1  # a soft edge of half a pixel
    face_b = (g.random((32, 32, 3)) * 200).astype(np.uint8)
    edited_b = apply_layer(face_b, layer)
    np.testing.assert_array_equal(edited_b[10:14, 20:26], np.broadcast_to([0, 0, 255], (4, 6, 3)))
    np.testing.assert_array_equal(edited_b[0:6, 0:6], face_b[0:6, 0:6])
    bigger = apply_layer(np.zeros((64, 64, 3), np.uint8), layer)  # a layer follows a face of another size
    assert bigger[24:26, 44:50, 2].min() > 200
    with pytest.raises(InputError):
        edit_layer(face_a, painted[:16])


def test_image_editor_values_and_rgba_paintings():
    base = np.full((8, 8, 3), 50, np.uint8)
    stroke = np.zeros((8, 8, 4), np.uint8)
    stroke[2:4, 2:4] = [255, 255, 0, 255]
    flat = flatten_painting({"background": base, "layers": [stroke], "composite": None})
    assert flat.shape == (8, 8, 3) and np.allclose(flat[2, 2], [1, 1, 0]) and np.allclose(flat[6, 6], 50 / 255)
    np.testing.assert_allclose(flatten_painting({"composite": Image.fromarray(stroke)}, base), flat, atol=1e-6)
    np.testing.assert_allclose(flatten_painting(stroke, base), flat, atol=1e-6)  # an RGBA layer over the face
    assert edit_layer(base, {"background": base, "layers": [stroke]})[2, 2, 3] == 1.0


def test_confidence_image():
    conf = torch.randn(1, 1, 16, 16)
    img = confidence_image(conf)
    assert img.shape == (16, 16) and img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    assert confidence_image(torch.zeros(1, 1, 4, 4)).min() == 255


# ------------------------------------------------------------------------------------------------ pipeline
def drive_dx(pipe, dx: float) -> np.ndarray:
    v = torch.zeros(1, pipe.model.config.vector_dim)
    v[0, 0] = dx
    return next(pipe.drive_vectors(v))


def test_an_edit_shows_in_the_generated_frames_and_moves_with_the_driving():
    pipe = pipe_with(shifting_model(), [photo(0)])
    assert green_centroid(drive_dx(pipe, 0.0))[2] == 0  # nothing green before the edit
    layer = pipe.edit_embedded_face(overlay=square(), position=(0.5, 0.5), scale=8 / 64)
    assert layer.shape == (96, 96, 4) and pipe.sharp_side == 96  # kept at the sharp face's size (the photo's)
    x0, y0, n0 = green_centroid(drive_dx(pipe, 0.0))
    assert n0 >= 50 and abs(x0 - 31.5) < 1.0 and abs(y0 - 31.5) < 1.0
    for dx in (0.25, -0.4):
        x, y, n = green_centroid(drive_dx(pipe, dx))
        assert abs(x - (x0 - dx * 63 / 2)) < 1.0 and abs(y - y0) < 0.5 and n >= 40  # moved with the flow
    pipe.reset_embedded_face()
    assert green_centroid(drive_dx(pipe, 0.0))[2] == 0


def checker(size: int, cell: int = 2) -> np.ndarray:
    """An opaque RGBA checkerboard of green and black cells: detail the model's 64 px cannot hold."""
    yy, xx = np.mgrid[:size, :size]
    on = ((yy // cell + xx // cell) % 2 == 0)[..., None]
    out = np.where(on, np.array([0, 255, 0, 255], np.uint8), np.array([0, 0, 0, 255], np.uint8))
    return out.astype(np.uint8)


def test_edits_keep_their_resolution_in_sharp_renders():
    """Sharp rendering draws an edit at the resolution it was made at (an overlay at the sharp face's size, paint
    at the size it was painted): a 2-px checkerboard and a 1-px line survive, and still move with the head."""
    big = np.asarray(Image.fromarray(photo(0)).resize((256, 256), Image.BILINEAR))
    pipe = pipe_with(shifting_model(), [big])
    assert pipe.sharp_side == 256
    zero = torch.zeros(1, pipe.model.config.vector_dim)
    plain = next(pipe.drive_vectors(zero, sharp=True))
    layer = pipe.edit_embedded_face(overlay=checker(64), position=(0.5, 0.5), scale=0.25)
    assert layer.shape == (256, 256, 4)
    sharp, small = next(pipe.drive_vectors(zero, sharp=True)), next(pipe.drive_vectors(zero, sharp=False))
    assert sharp.shape == (256, 256, 3) and small.shape == (64, 64, 3)
    patch = sharp[100:156, 100:156].astype(int)  # inside the 64-px sticker at the middle
    assert patch[..., 1].std() > 100 and np.abs(np.diff(patch[..., 1], axis=1)).mean() > 60  # the checkerboard
    assert np.array_equal(sharp[:80], plain[:80])  # the rest of the face is the unedited sharp face
    # it moves with the flow like the face does: dx = 0.25 shifts left by 0.25 * 255 / 2 pixels
    moved = next(pipe.drive_vectors(zero + torch.eye(1, zero.shape[1]) * 0.25, sharp=True))
    x0, _, n0 = green_centroid(sharp)
    x1, _, n1 = green_centroid(moved)
    assert abs((x0 - x1) - 0.25 * 255 / 2) < 1.5 and n1 > 0.3 * n0  # (a sub-pixel shift blends the cells)
    # paint at the sharp size: a 1-px line, over the sticker's layer (the two stack)
    canvas = pipe.embedded_face(256)
    assert canvas.shape == (256, 256, 3) and np.abs(canvas[100:156, 100:156].astype(int) - patch).max() <= 2
    canvas = canvas.copy()
    canvas[20:60, 40] = (255, 0, 255)
    lay = pipe.edit_embedded_face(painted=canvas)
    assert lay.shape == (256, 256, 4) and lay[20:60, 40, 3].min() == 1.0 and lay[100:156, 100:156, 3].max() == 0
    out = next(pipe.drive_vectors(zero, sharp=True))
    state = pipe.edit_state()
    np.testing.assert_array_equal(out[20:60, 40], np.broadcast_to((255, 0, 255), (40, 3)))
    assert np.abs(out[20:60, 42].astype(int) - plain[20:60, 42]).max() <= 1  # 1 px wide, not smeared
    assert np.abs(out[100:156, 100:156].astype(int) - patch).max() <= 2  # the sticker is still there
    # painted finer than the face is rendered (1024 px for a 256 px face): the layer is shrunk with antialiasing, so
    # a thin stroke keeps its ink wherever it falls between the output's pixels (point sampling would catch some
    # phases and miss others)
    fine = pipe.embedded_face(1024).copy()
    assert fine.shape == (1024, 1024, 3)
    for band, column in enumerate(range(160, 164)):  # four strokes, at the four phases of a 4:1 shrink
        fine[400 + 48 * band:440 + 48 * band, column] = (255, 0, 255)
    pipe.edit_embedded_face(painted=fine)
    faint = next(pipe.drive_vectors(zero, sharp=True)).astype(int)
    ink = [(faint[102 + 12 * b:108 + 12 * b, 36:45, 0] - out[102 + 12 * b:108 + 12 * b, 36:45, 0]).sum(1).mean()
           for b in range(4)]
    assert min(ink) > 0.5 * max(ink) and min(ink) > 30, ink  # point sampling: 17 to 107
    pipe.restore_edit(state)
    # a snapshot of the edits comes back exactly; without edits the sharp face is the plain one again
    pipe.reset_embedded_face()
    assert np.array_equal(next(pipe.drive_vectors(zero, sharp=True)), plain)
    pipe.restore_edit(state)
    assert np.array_equal(next(pipe.drive_vectors(zero, sharp=True)), out)
    # an embedded face set by hand replaces the layers: its difference is drawn, at the model's size
    pipe.set_embedded_face(pipe.embedded_face())
    hand = next(pipe.drive_vectors(zero, sharp=True))
    tint = hand[100:156, 100:156].astype(int)
    assert (tint[..., 1] - tint[..., 0]).mean() > 50 and np.abs(np.diff(tint[..., 1], axis=1)).mean() < 30  # blurred
    for bad in (0, 8, 10**6, 1.5, True):
        with pytest.raises(InputError, match="side"):
            pipe.embedded_face(bad)
    with pytest.raises(InputError, match="square"):
        pipe.edit_embedded_face(painted=canvas[:, :200])


def test_edits_with_several_source_frames_and_across_people():
    model = shifting_model()
    several = pipe_with(model, [photo(1), photo(2), photo(3)])
    assert several.confidence_map().shape == (64, 64)
    painted = several.embedded_face().copy()
    painted[40:46, 10:18] = GREEN
    layer = apply_edit(several, painted=painted)
    assert green_centroid(drive_dx(several, 0.0))[2] >= 40
    other = pipe_with(model, [photo(9)])
    before = other.embedded_face()
    edited = transfer_edit(other, layer)
    np.testing.assert_array_equal(edited[40:46, 10:18], np.broadcast_to(GREEN, (6, 8, 3)))
    np.testing.assert_array_equal(edited[:30], before[:30])  # the rest of the other face is its own
    x, y, n = green_centroid(drive_dx(other, 0.0))
    assert n >= 40 and abs(x - 13.5) < 1.5 and abs(y - 42.5) < 1.5
    with pytest.raises(InputError):
        apply_edit(other)  # nothing to apply
    with pytest.raises(InputError):
        apply_edit(other, overlay=square(), layer=layer)
