"""X2FacePipeline with a tiny random model on real photos and clips: embed once, drive in batches, paste
back, hold frames without faces, drive by vectors, edit the embedded face."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from x2face.errors import InputError, NoFaceError, WeightsError
from x2face.faces import FaceCropper
from x2face.media import VideoReader, read_image
from x2face.pipeline import X2FacePipeline, side_by_side

ANNE = "photos/jixinya_EAMM__test_image_anne.png"  # 256x256
SCARLETT = "photos/jixinya_EAMM__test_image_scarlett.jpg"
OBAMA = "photos/ageitgey_face_recognition__examples_knn_examples_train_obama_obama2.jpg"  # 626x1200
CAT = "photos/KwaiVGI_LivePortrait__assets_examples_source_s41.jpg"
GRID = "clips/rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny convolutions on a shared 2-core machine: one thread is several times faster than two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def pipe(tiny_model):
    return X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"))


@pytest.fixture(scope="module")
def grid_frames(real_dir):
    return list(VideoReader(real_dir / GRID, seconds=0.8))  # 20 frames


def _tensor(crops):
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0  # [N, S, S, 3] -> [N, 3, S, S]


def test_set_source_embeds_once(pipe, tiny_model, real_dir):
    info = pipe.set_source(str(real_dir / ANNE))
    assert len(info.crops) == 1 and info.crops[0].shape == (64, 64, 3)
    assert info.embedded.shape == (1, 3, 64, 64) and info.confidence.shape == (1, 1, 64, 64)
    assert info.photo.shape == (256, 256, 3) and info.names == [ANNE.split("/")[-1]]
    with torch.no_grad():
        expected = tiny_model.embed(_tensor(info.crops).unsqueeze(0))
    assert torch.allclose(info.embedded, expected, atol=1e-6)
    # several photos of one person: the paper's multi-frame embedding
    info2 = pipe.set_source([real_dir / ANNE, read_image(real_dir / SCARLETT)])
    assert len(info2.crops) == 2 and info2.names[1] == "source photo 2"
    with torch.no_grad():
        expected = tiny_model.embed(_tensor(info2.crops).unsqueeze(0))  # [1, 2, 3, S, S]
    assert torch.allclose(info2.embedded, expected, atol=1e-6)
    assert tiny_model.check_inputs  # the pipeline switches checks off only inside its own calls


def test_set_source_names_the_photo_without_face(pipe, real_dir):
    with pytest.raises(NoFaceError, match="no human face found in .*s41.jpg"):
        pipe.set_source([real_dir / ANNE, real_dir / CAT])
    with pytest.raises(InputError, match="set_source"):
        pipe.drive_vectors(torch.zeros(1, 128)).__next__()


def test_drive_frames_matches_the_model(pipe, tiny_model, real_dir, grid_frames):
    pipe.set_source(real_dir / ANNE)
    out = list(pipe.drive_frames(grid_frames, batch_size=8))
    assert len(out) == len(grid_frames) and [o.index for o in out] == list(range(len(grid_frames)))
    assert all(o.found and o.image.shape == (64, 64, 3) and o.image.dtype == np.uint8 for o in out)
    assert pipe.last_report.found == len(grid_frames)
    # the same as X2Face.forward on the tracked crops of the same frames
    crops = [fc.crop for fc in FaceCropper(64, backend="opencv").track(grid_frames)]
    with torch.no_grad():
        ref = tiny_model(_tensor(crops), _tensor(pipe.source.crops).unsqueeze(0).expand(len(crops), -1, -1, -1, -1))
    ref = (ref.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    got = np.stack([o.image for o in out])
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert np.array_equal(np.stack([o.driving_crop for o in out]), np.stack(crops))
    # batching does not change anything
    one = np.stack([o.image for o in pipe.drive_frames(grid_frames, batch_size=1)])
    assert np.array_equal(one, got)


def test_drive_frames_paste_back_keeps_the_photo(pipe, real_dir, grid_frames):
    info = pipe.set_source(real_dir / OBAMA)
    photo = info.photo
    out = list(pipe.drive_frames(grid_frames[:6], paste_back=True))
    x0, y0, x1, y1 = (int(round(v)) for v in info.boxes[0])
    outside = np.ones(photo.shape[:2], bool)
    outside[max(y0, 0):y1, max(x0, 0):x1] = False
    for o in out:
        assert o.image.shape == photo.shape == (1200, 626, 3)
        assert np.array_equal(o.image[outside], photo[outside])
        assert o.generated.shape == (64, 64, 3)
    assert not np.array_equal(out[0].image, photo)


@pytest.mark.parametrize("mode", ["hold", "source", "skip"])
def test_frames_without_face(pipe, real_dir, grid_frames, mode):
    pipe.set_source(real_dir / ANNE)
    frames = [f.copy() for f in grid_frames]
    for i in range(6, 12):
        frames[i][:] = 0
    out = list(pipe.drive_frames(frames, on_missing=mode, batch_size=4))
    missing = pipe.last_report.missing
    assert missing == list(range(6, 12))
    if mode == "skip":
        assert [o.index for o in out] == [i for i in range(len(frames)) if i not in missing]
        return
    assert len(out) == len(frames)
    for i in missing:
        assert not out[i].found
        expected = out[5].image if mode == "hold" else pipe.source.crops[0]
        assert np.array_equal(out[i].image, expected)


def test_drive_vectors_and_source_vector(pipe, tiny_model, real_dir):
    pipe.set_source(real_dir / ANNE)
    v = pipe.source_vector()
    assert v.shape == (1, 128) and (v >= 0).all()
    with torch.no_grad():
        expected = tiny_model.driving_vector(_tensor(pipe.source.crops))
        rendered = tiny_model.render(pipe.source.embedded, expected)
    assert torch.allclose(v, expected, atol=1e-6)
    frames = list(pipe.drive_vectors(torch.cat([v, v * 0.5, v * 2.0]), batch_size=2))
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3)
    ref = (rendered.clamp(0, 1) * 255 + 0.5).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.abs(frames[0].astype(int) - ref.astype(int)).max() <= 1
    pasted = next(pipe.drive_vectors(v[0].numpy(), paste_back=True))
    assert pasted.shape == (256, 256, 3)
    with pytest.raises(InputError, match=r"\[N, 128\]"):
        next(pipe.drive_vectors(torch.zeros(2, 7)))


def test_edit_embedded_face(pipe, real_dir):
    pipe.set_source(real_dir / ANNE)
    v = pipe.source_vector()
    before = next(pipe.drive_vectors(v))
    face = pipe.embedded_face()
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
    pipe.set_embedded_face(face)  # round trip through uint8: at most rounding differences
    assert np.abs(next(pipe.drive_vectors(v)).astype(int) - before.astype(int)).max() <= 2
    edited = face.copy()
    edited[:, :, 0] = 255  # paint the texture red: the edit shows up in what is rendered
    pipe.set_embedded_face(edited)
    after = next(pipe.drive_vectors(v))
    assert after[..., 0].mean() > before[..., 0].mean() + 40
    pipe.set_embedded_face(torch.zeros(3, 64, 64))
    assert next(pipe.drive_vectors(v)).max() == 0
    with pytest.raises(InputError, match="64x64"):
        pipe.set_embedded_face(np.zeros((32, 32, 3), np.uint8))


def test_side_by_side():
    a = np.zeros((64, 64, 3), np.uint8)
    b = np.full((128, 64, 3), 200, np.uint8)
    out = side_by_side(a, None, b)
    assert out.shape == (128, 128 + 4 + 128 + 4 + 64, 3)
    assert side_by_side(a, a, a, height=32, gap=0).shape == (32, 96, 3)


def test_from_pretrained(tiny_model, tmp_path, real_dir, grid_frames):
    tiny_model.save_pretrained(tmp_path / "w")
    pipe = X2FacePipeline.from_pretrained(str(tmp_path / "w"), device="cpu", backend="opencv", detect_every=3)
    assert pipe.cropper.image_size == 64 and pipe.cropper.detect_every == 3 and pipe.device.type == "cpu"
    pipe.set_source(real_dir / ANNE)
    assert len(list(pipe.drive_frames(grid_frames[:4]))) == 4
    with pytest.raises(WeightsError):
        X2FacePipeline.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="64px"):
        X2FacePipeline(tiny_model, cropper=FaceCropper(128, backend="opencv"))


def test_pipeline_runs_in_the_models_dtype(tiny_model, real_dir, grid_frames):
    """The caller picks the dtype: a bfloat16 model gets bfloat16 inputs and still returns uint8 RGB."""
    ref = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"))
    ref.set_source(real_dir / ANNE)
    expected = np.stack([o.image for o in ref.drive_frames(grid_frames[:4])]).astype(int)
    half = X2FacePipeline(tiny_model, dtype=torch.bfloat16, cropper=FaceCropper(64, backend="opencv"))
    assert next(tiny_model.parameters()).dtype == torch.bfloat16
    half.set_source(real_dir / ANNE)
    assert half.source.embedded.dtype == torch.bfloat16
    got = np.stack([o.image for o in half.drive_frames(grid_frames[:4])])
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - expected).mean() < 6
