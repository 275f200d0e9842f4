"""X2FacePipeline with a tiny random model on real photos and clips: embed once, drive in batches, paste
back, hold frames without faces, drive by vectors, edit the embedded face; the fast path (FastDriver)
against the eager model, and the three-stage overlap against the sequential path."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from x2face.errors import InputError, NoFaceError, WeightsError
from x2face.faces import FaceCropper, FaceDetector
from x2face.media import VideoReader, read_image
from x2face.pipeline import X2FacePipeline, side_by_side

from helpers import ffmpeg_children, group_clip, group_photo

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
    """The default (fast) path computing in fp32, so results can be compared with the model itself."""
    return X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32")


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


def _clip_with_a_blank_start(real_dir, tmp_path):
    """2 s of grey (no face) then 2 s of the GRID speaker: 4 s at 25 fps, 360x288."""
    import subprocess

    from x2face.media import ffmpeg_exe

    path = tmp_path / "late.mp4"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=360x288:r=25:d=2",
                    "-i", str(real_dir / GRID), "-filter_complex", "[1:v]fps=25,trim=duration=2,setpts=PTS-STARTPTS[f];"
                    "[0:v][f]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264", str(path)], check=True)
    return path


def test_set_source_from_a_video_takes_frames_with_a_face(pipe, tiny_model, real_dir, tmp_path):
    late = _clip_with_a_blank_start(real_dir, tmp_path)
    info = pipe.set_source(late)  # 4 of its frames, all from the part with a face, spread over it
    assert len(info.crops) == 4 and all(c.shape == (64, 64, 3) for c in info.crops)
    times = [float(n.split(" at ")[1].rstrip(" s")) for n in info.names]
    assert all(n.startswith("late.mp4 at ") for n in info.names)
    assert times == sorted(times) and times[0] >= 1.9 and times[-1] >= 3.5, info.names
    assert info.photo.shape == (288, 360, 3)  # the first taken frame, full size: the paste-back target
    with torch.no_grad():
        expected = tiny_model.embed(_tensor(info.crops).unsqueeze(0))  # [1, 4, 3, S, S]
    assert torch.allclose(info.embedded, expected, atol=1e-6)
    one = pipe.set_source([real_dir / ANNE, late], video_frames=1)  # a photo and one frame of the clip
    assert len(one.names) == 2 and one.names[0] == ANNE.split("/")[-1] and one.photo.shape == (256, 256, 3)
    assert one.names[1].startswith("late.mp4 at ") and float(one.names[1].split(" at ")[1].rstrip(" s")) >= 1.9
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="video_frames"):
            pipe.set_source(late, video_frames=bad)


def test_set_source_picks_a_face_of_a_group_photo(pipe, real_dir, grid_frames, tmp_path):
    group = group_photo(real_dir)  # a small face on the left, a large one on the right
    crops = {sel: FaceCropper(64, backend="opencv", select=sel).crop_image(group).crop for sel in ("largest", 0)}
    info = pipe.set_source(group)
    assert info.faces == [2] and info.select == "largest" and np.array_equal(info.crops[0], crops["largest"])
    assert info.group_photos() == "the source photo: the largest of 2 faces"
    info = pipe.set_source([real_dir / ANNE, group], face=0)  # the left face of the group; ANNE has one face
    assert info.faces == [1, 2] and np.array_equal(info.crops[1], crops[0])
    assert info.group_photos() == "source photo 2: the leftmost of 2 faces"
    # the choice is the source's: a driving clip with one face still drives (the cropper keeps "largest")
    assert pipe.cropper.select == "largest"
    assert all(d.found for d in pipe.drive_frames(grid_frames[:4]))
    with pytest.raises(NoFaceError, match="the source photo has 2 faces: there is no 3rd from the left"):
        pipe.set_source(group, face=2)
    with pytest.raises(InputError, match="select must be"):
        pipe.set_source(group, face="left")
    # the driving face of a clip of several people, picked per call
    pipe.set_source(real_dir / ANNE)
    crops = {sel: FaceCropper(64, backend="opencv", select=sel).crop_image(group).crop for sel in ("largest", 0)}
    for sel in ("largest", 0):
        driven = list(pipe.drive_frames([group] * 3, driving_face=None if sel == "largest" else sel))
        assert all(np.array_equal(d.driving_crop, crops[sel]) for d in driven)
    with pytest.raises(NoFaceError, match="the video has 2 faces: there is no 3rd from the left"):
        next(pipe.drive_frames([group], driving_face=2))
    late = _clip_with_a_blank_start(real_dir, tmp_path)  # a source clip: its frames show one face
    with pytest.raises(NoFaceError, match=r"late\.mp4 at .* has 1 face: there is no 2nd from the left"):
        pipe.set_source(late, face=1)
    assert pipe.set_source(late, face=-1).faces == [0, 0, 0, 0]  # not counted in a clip's frames


@pytest.mark.parametrize("sharp", [False, True])
def test_every_face_of_a_group_photo_is_animated(moving_model, real_dir, grid_frames, sharp):
    """``set_source(face="all")``: every face of the group photo is driven by the same driving face and pasted
    back: each face's region is what driving that face alone gives."""
    group = group_photo(real_dir)
    pipe = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32", sharp=sharp)
    frames = grid_frames[:4]
    alone = []
    for i in (0, 1):
        pipe.set_source(group, face=i)
        alone.append((pipe.source.boxes[0], [d.image for d in pipe.drive_frames(frames, paste_back=True)]))
    info = pipe.set_source(group, face="all")
    assert info.select == "all" and info.faces == [2] and info.group_photos() == "the source photo: all 2 faces"
    every = list(pipe.drive_frames(frames))  # paste-back is implied: the output is the photo
    assert all(d.found and d.image.shape == group.shape for d in every)
    overlapped = list(pipe.drive_frames(frames, overlap=True))  # the GPU default of the command line
    assert all(np.array_equal(a.image, b.image) for a, b in zip(every, overlapped)) and len(overlapped) == 4
    for (x0, y0, x1, y1), frames_alone in alone:
        x0, y0, x1, y1 = max(0, round(x0)), max(0, round(y0)), round(x1), round(y1)
        for d, want in zip(every, frames_alone):
            np.testing.assert_array_equal(d.image[y0:y1, x0:x1], want[y0:y1, x0:x1])  # (the boxes do not overlap)
            assert np.abs(d.image[y0:y1, x0:x1].astype(int) - group[y0:y1, x0:x1]).mean() > 1  # both faces move
    relative = list(pipe.drive_frames(frames, relative=True, motion_scale=2.0))
    assert len(relative) == 4 and not np.array_equal(relative[-1].image, every[-1].image)
    live = pipe.live()  # the webcam drives every face too, one frame at a time: what the batches gave
    assert all(np.abs(live.step(f).image.astype(int) - d.image).max() <= 1 for f, d in zip(frames, every))
    # driving vectors (pose, audio) move every face by the same change from its own vector: at the leftmost
    # face's own vector, each face is at its own
    still = next(pipe.drive_vectors(pipe.source_vector()))
    change = torch.zeros_like(pipe.source_vector())
    change[0, :8] = 0.5
    moved = next(pipe.drive_vectors(pipe.source_vector() + change))
    assert still.shape == group.shape and not np.array_equal(still, moved)
    for i, ((x0, y0, x1, y1), _) in enumerate(alone):
        one = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32", sharp=sharp)
        one.set_source(group, face=i)
        box = slice(max(0, round(y0)), round(y1)), slice(max(0, round(x0)), round(x1))
        for got, v in ((still, one.source_vector()), (moved, one.source_vector() + change)):
            want = next(one.drive_vectors(v, paste_back=True))
            assert np.abs(got[box].astype(int) - want[box]).max() <= 1  # (float rounding of v + change - v_0)
    # an edit goes on every face (embedded faces line up across people); a snapshot brings it back
    green = np.zeros((8, 8, 4), np.uint8)
    green[..., 1] = green[..., 3] = 255
    plain = next(pipe.drive_frames(frames[:1])).image
    pipe.edit_embedded_face(overlay=green, position=(0.5, 0.5), scale=0.3)
    edited = next(pipe.drive_frames(frames[:1])).image
    state = pipe.edit_state()
    pipe.reset_embedded_face()
    assert np.array_equal(next(pipe.drive_frames(frames[:1])).image, plain)
    pipe.restore_edit(state)
    assert np.array_equal(next(pipe.drive_frames(frames[:1])).image, edited)
    for (x0, y0, x1, y1), _ in alone:
        region = edited[max(0, round(y0)):round(y1), max(0, round(x0)):round(x1)].astype(int)
        assert ((region[..., 1] > 200) & (region[..., 0] < 60)).mean() > 0.01  # the sticker on each face
    # or on one face alone: the right-hand one gets the sticker, the left-hand one is as unedited
    pipe.reset_embedded_face()
    assert pipe.member(-1) is pipe.member(1) is not pipe and pipe.member(0) is pipe
    pipe.edit_embedded_face(face=1, overlay=green, position=(0.5, 0.5), scale=0.3)
    one = next(pipe.drive_frames(frames[:1])).image
    for i, ((x0, y0, x1, y1), _) in enumerate(alone):
        box = slice(max(0, round(y0)), round(y1)), slice(max(0, round(x0)), round(x1))
        assert np.array_equal(one[box], plain[box]) == (i == 0)
    red = pipe.member(0).embedded_face()
    red[20:24, 10:50] = (255, 0, 0)  # paint on the left-hand face's own embedded face
    pipe.edit_embedded_face(face=0, painted=red)
    both = next(pipe.drive_frames(frames[:1])).image
    (x0, y0, x1, y1), _ = alone[0]
    assert not np.array_equal(both[max(0, round(y0)):round(y1), max(0, round(x0)):round(x1)],
                              one[max(0, round(y0)):round(y1), max(0, round(x0)):round(x1)])
    with pytest.raises(InputError, match="the source has 2 faces: there is no face 2"):
        pipe.edit_embedded_face(face=2, overlay=green)
    pipe.reset_embedded_face()
    with pytest.raises(InputError, match="for one group photo"):
        pipe.set_source([real_dir / ANNE, group], face="all")
    photo = read_image(real_dir / ANNE)  # one face: "all" is that face, still pasted back into the photo
    assert pipe.set_source(photo, face="all").select == "all" and pipe.sources == [pipe.source]
    assert next(pipe.drive_frames(frames)).image.shape == photo.shape
    pipe.set_source(group, face=1)  # one face again: everything works on it
    assert next(pipe.drive_vectors(pipe.source_vector())).ndim == 3


@pytest.mark.parametrize("sharp", [False, True])
def test_each_face_of_a_group_photo_is_driven_by_the_face_in_its_place(moving_model, real_dir, grid_frames, sharp):
    """``driving_face="all"``: a clip of two people drives a photo of two, each face by the clip's face in its place
    from the left; each face's region is what driving that face alone by that driving face gives."""
    group, clip = group_photo(real_dir), group_clip(real_dir)
    pipe = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32", sharp=sharp)
    alone = []
    for i in (0, 1):
        pipe.set_source(group, face=i)
        alone.append((pipe.source.boxes[0], [d.image for d in pipe.drive_frames(clip, paste_back=True,
                                                                                driving_face=i)]))
    with pytest.raises(InputError, match="set the source with every face"):
        next(pipe.drive_frames(clip, driving_face="all"))
    with pytest.raises(InputError, match="set the source with every face"):
        pipe.live(driving_face="all")
    pipe.set_source(group, face="all")
    each = list(pipe.drive_frames(clip, driving_face="all"))
    assert all(d.found and d.image.shape == group.shape for d in each) and len(each) == len(clip)
    assert pipe.last_report.faces == 2 and pipe.last_report.summary() == "all 2 faces found in 4/4 frames"
    overlapped = list(pipe.drive_frames(clip, driving_face="all", overlap=True))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(each, overlapped)) and len(overlapped) == 4
    alike = list(pipe.drive_frames(clip))  # one driving face (the largest, on the right) for both
    for i, ((x0, y0, x1, y1), frames_alone) in enumerate(alone):
        box = slice(max(0, round(y0)), round(y1)), slice(max(0, round(x0)), round(x1))
        for d, want in zip(each, frames_alone):
            np.testing.assert_array_equal(d.image[box], want[box])
        # the left face is driven by the left person here, by the right one when driven alike
        assert (i == 1) == all(np.array_equal(a.image[box], d.image[box]) for a, d in zip(alike, each))
    relative = list(pipe.drive_frames(clip, driving_face="all", relative=True, motion_scale=2.0))
    assert len(relative) == 4 and not np.array_equal(relative[-1].image, each[-1].image)
    # two people at the webcam: what the batches give with a detection in every frame (as a live session has)
    pipe.cropper = FaceCropper(64, backend="opencv", detect_every=1, max_gap=1)
    live = pipe.live(driving_face="all")
    each = list(pipe.drive_frames(clip, driving_face="all"))
    assert all(np.abs(live.step(f).image.astype(int) - d.image).max() <= 1 for f, d in zip(clip, each))
    assert live.found == 4
    # a driving face that is lost holds its last render while the other goes on
    gone = [f.copy() for f in clip]
    gone[3][:, 360:] = 128  # the right person leaves in the last frame
    held = list(pipe.drive_frames(gone, driving_face="all"))
    (lx0, ly0, lx1, ly1), (rx0, ry0, rx1, ry1) = (b for b, _ in alone)
    right = slice(max(0, round(ry0)), round(ry1)), slice(max(0, round(rx0)), round(rx1))
    left = slice(max(0, round(ly0)), round(ly1)), slice(max(0, round(lx0)), round(lx1))
    assert held[3].found and np.array_equal(held[3].image[right], held[2].image[right])
    assert not np.array_equal(held[3].image[left], held[2].image[left])
    assert pipe.last_report.summary() == "all 2 faces found in 3/4 frames (not all in frames 3)"
    # a clip that never shows two faces at once: nothing is found, and the message says why
    out = list(pipe.drive_frames(grid_frames[:3], driving_face="all"))
    assert not any(d.found for d in out) and np.array_equal(out[0].image, group)
    assert pipe.last_report.found == 0
    assert "never shows 2 faces at once (3 frames checked)" in pipe.last_report.nothing_found("grid.mpg")


def test_set_source_names_the_video_without_face(pipe, tmp_path):
    import subprocess

    from x2face.media import ffmpeg_exe

    blank = tmp_path / "blank.mp4"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=160x120:r=25:d=1",
                    "-c:v", "libx264", str(blank)], check=True)
    with pytest.raises(NoFaceError, match=r"no human face found in blank\.mp4 \(12 frames checked"):
        pipe.set_source(blank)


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
    torch.testing.assert_close(v, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
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


# ------------------------------------------------------------------------------------------------ the fast path
@pytest.fixture
def moving_model(tiny_model):
    """The tiny model with offsets of a few pixels (as a trained one has): its output depends on the driving
    frame, so a wrong fast path could not hide (at the default initialisation the offsets are ~1e-6)."""
    from x2face.bench import bench_frames, scale_offsets

    return scale_offsets(tiny_model, bench_frames(4, 64)[0]).eval()


def _frames_out(pipe, frames, **kw) -> np.ndarray:
    return np.stack([o.image for o in pipe.drive_frames(frames, **kw)]).astype(int)  # [N, S, S, 3]


def test_fp32_fast_path_is_bit_close_to_the_eager_model(moving_model, real_dir, grid_frames):
    eager = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), fast=False)
    fast = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32")
    assert eager.fast is None and fast.fast is not None and fast.fast.dtype == torch.float32
    for p in (eager, fast):
        p.set_source(real_dir / ANNE)
    torch.testing.assert_close(fast.source.embedded, eager.source.embedded, atol=0, rtol=0)  # embedded once, eagerly
    ref, got = _frames_out(eager, grid_frames), _frames_out(fast, grid_frames)
    assert np.abs(got - ref).max() <= 1 and (got == ref).mean() > 0.999  # only uint8 rounding at a tie can differ
    assert np.abs(ref[0] - ref[10]).max() > 10  # the driving frames move the face
    v = eager.source_vector()
    torch.testing.assert_close(fast.source_vector(), v, rtol=1e-4, atol=1e-5 * float(v.abs().max()))
    vectors = torch.cat([v, v * 0.5, v * 1.5])
    a = np.stack(list(eager.drive_vectors(vectors))).astype(int)
    b = np.stack(list(fast.drive_vectors(vectors))).astype(int)
    assert np.abs(a - b).max() <= 1


def test_default_path_is_within_the_stated_tolerance(moving_model, real_dir, grid_frames):
    from x2face.fast import MEAN_TOLERANCE, TOLERANCE
    from x2face.pipeline import resolve_precision

    eager = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), fast=False)
    pipe = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"))  # the default
    dtype = pipe.fast.dtype
    assert dtype == resolve_precision("auto", torch.device("cpu"), torch.float32)
    assert pipe.fast.features["compile"] is False and pipe.fast.features["cuda_graphs"] is False  # CUDA only
    for p in (eager, pipe):
        p.set_source(real_dir / ANNE)
    ref, got = _frames_out(eager, grid_frames, paste_back=False), _frames_out(pipe, grid_frames)
    diff = np.abs(got - ref) / 255.0
    assert diff.max() <= TOLERANCE[dtype] + 1 / 255 and diff.mean() <= MEAN_TOLERANCE[dtype] + 0.5 / 255
    v = eager.source_vector()
    a = np.stack(list(eager.drive_vectors(torch.cat([v, v * 1.5])))).astype(int)
    b = np.stack(list(pipe.drive_vectors(torch.cat([v, v * 1.5])))).astype(int)
    assert np.abs(a - b).max() / 255 <= TOLERANCE[dtype] + 1 / 255
    assert pipe.source_vector().dtype == torch.float32  # the model's dtype, whatever the fast path computes in


def test_edits_and_sources_reach_the_shared_fast_driver(moving_model, real_dir, grid_frames):
    a = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"))
    b = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"))
    assert a.fast is not None and a.fast is b.fast  # one driver per model: compiled and captured once
    a.set_source(real_dir / ANNE)
    b.set_source(real_dir / SCARLETT)
    v = a.source_vector()
    first = next(a.drive_vectors(v))
    assert not np.array_equal(next(b.drive_vectors(v)), first)  # b's face ...
    assert np.array_equal(next(a.drive_vectors(v)), first)  # ... then a's again, from the same driver
    clip = _frames_out(a, grid_frames[:4])
    red = a.embedded_face().copy()
    red[:, :, 0] = 255
    a.set_embedded_face(red)  # texture editing: the edit shows in vectors and frames alike
    assert next(a.drive_vectors(v))[..., 0].mean() > first[..., 0].mean() + 40
    assert _frames_out(a, grid_frames[:4])[..., 0].mean() > clip[..., 0].mean() + 40
    a.reset_embedded_face()
    assert np.array_equal(next(a.drive_vectors(v)), first)
    green = np.zeros((16, 16, 4), np.uint8)
    green[..., 1] = green[..., 3] = 255
    a.edit_embedded_face(overlay=green, position=(0.5, 0.5), scale=0.25)
    edited = next(a.drive_vectors(v)).astype(int)
    greenish = (edited[..., 1] > 200) & (edited[..., 0] < 60) & (edited[..., 2] < 60)
    assert greenish.sum() >= 100 and not np.array_equal(edited, first)
    assert np.array_equal(next(b.drive_vectors(v)), next(b.drive_vectors(v)))  # b unaffected by a's edit
    # weights changed in place: a new pipeline gets a new driver (the folded copy would be stale)
    with torch.no_grad():
        moving_model.driving.up[0].conv.weight.mul_(2.0)
    assert X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv")).fast is not a.fast


def test_custom_networks_run_eagerly(tiny_model):
    from x2face.errors import ConfigError

    tiny_model.driving.decode = lambda vector: torch.zeros(vector.shape[0], 2, 64, 64)  # a hand-made flow
    pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"))
    assert pipe.fast is None and "decode" in pipe.fast_note
    with pytest.raises(ConfigError, match="fast=False"):
        X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), fast=True)
    del tiny_model.driving.decode
    with pytest.raises(ConfigError, match="fast must be"):
        X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), fast="yes")
    with pytest.raises(ConfigError, match="dtype"):
        X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), precision="int8")


# ------------------------------------------------------------------------------------------------ overlap
def _stage_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("x2face-")]


def test_overlap_gives_the_same_frames(pipe, real_dir, grid_frames):
    pipe.set_source(real_dir / OBAMA)
    seq = list(pipe.drive_frames(VideoReader(real_dir / GRID, seconds=1.2), paste_back=True, batch_size=8))
    ovl = list(pipe.drive_frames(VideoReader(real_dir / GRID, seconds=1.2), paste_back=True, batch_size=8,
                                 overlap=True))
    assert len(seq) == len(ovl) == 30 and pipe.last_report.found == 30
    for s, o in zip(seq, ovl):
        assert s.index == o.index and s.found == o.found
        assert np.array_equal(s.image, o.image) and np.array_equal(s.generated, o.generated)
    frames = [f.copy() for f in grid_frames]
    for i in range(6, 12):
        frames[i][:] = 0  # no face there: held, shown as the source or skipped alike
    for mode in ("hold", "skip"):
        a = [(o.index, o.found, o.image) for o in pipe.drive_frames(frames, on_missing=mode, batch_size=4)]
        b = [(o.index, o.found, o.image) for o in pipe.drive_frames(frames, on_missing=mode, batch_size=4,
                                                                    overlap=True)]
        assert [x[:2] for x in a] == [x[:2] for x in b] and all(np.array_equal(x[2], y[2]) for x, y in zip(a, b))
    assert _stage_threads() == [] and ffmpeg_children() == []


class BrokenDetector(FaceDetector):
    """Finds the whole image as a face, until its ``after``-th call, which raises."""

    name = "broken"

    def __init__(self, after: int) -> None:
        self.calls, self.after = 0, after

    def detect(self, image, region=None, expected_side=None, thorough=False):
        from x2face.faces import Detection

        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError("the detector broke")
        h, w = image.shape[:2]
        s = min(h, w) / 1.6
        return [Detection(np.array([(w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2]), 1.0)]


def test_an_error_in_any_stage_stops_all_of_them(pipe, real_dir, monkeypatch):
    from x2face.errors import MediaError

    pipe.set_source(real_dir / ANNE)
    # decode + crop fails (the detector, mid-clip): the error comes out, ffmpeg and the threads end
    pipe.cropper = FaceCropper(64, backend=BrokenDetector(after=6), detect_every=5)
    with pytest.raises(RuntimeError, match="the detector broke"):
        for _ in pipe.drive_frames(VideoReader(real_dir / GRID), overlap=True, batch_size=4):
            pass
    assert _stage_threads() == [] and ffmpeg_children() == []
    # the networks fail on the second batch
    pipe.cropper = FaceCropper(64, backend="opencv")
    calls, drive = [], pipe._drive_crops

    def failing(crops, motion=None):
        calls.append(len(crops))
        if len(calls) == 2:
            raise MediaError("the networks broke")
        return drive(crops, motion)

    monkeypatch.setattr(pipe, "_drive_crops", failing)
    out = []
    with pytest.raises(MediaError, match="the networks broke"):
        for o in pipe.drive_frames(VideoReader(real_dir / GRID), overlap=True, batch_size=4):
            out.append(o)
    assert len(out) <= 4 and _stage_threads() == [] and ffmpeg_children() == []
    monkeypatch.undo()
    # the consumer stops early (an encoder error, Ctrl-C, a break): the stages stop too
    frames = pipe.drive_frames(VideoReader(real_dir / GRID), overlap=True, batch_size=4)
    next(frames)
    frames.close()
    assert _stage_threads() == [] and ffmpeg_children() == []


def test_live_session_answers_each_frame_as_a_video_tracked_every_frame(tiny_model, real_dir, grid_frames):
    """``pipe.live().step(frame)`` (a webcam) gives each frame's result at once, the same frames as driving the
    whole clip with a detection on every frame; a frame without a face repeats the last result."""
    live_pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32")
    live_pipe.set_source([real_dir / ANNE])
    clip_pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv", detect_every=1, max_gap=1),
                               precision="fp32")
    clip_pipe.set_source([real_dir / ANNE])
    frames = grid_frames[:12]
    expected = [d.image for d in clip_pipe.drive_frames(frames)]
    live = live_pipe.live()
    got = []
    for i, frame in enumerate(frames):
        out = live.step(frame)
        assert out.found and out.index == i and out.image.shape == (64, 64, 3)
        got.append(out.image)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    blank = live.step(np.zeros_like(frames[0]))
    assert not blank.found and np.array_equal(blank.image, got[-1])
    assert live.frames == 13 and live.found == 12
    back = live_pipe.live(paste_back=True).step(frames[0])
    assert back.image.shape == read_image(real_dir / ANNE).shape  # pasted into the 256 px photo
    with pytest.raises(InputError, match="no source face yet"):
        X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv")).live()


@pytest.mark.parametrize("fast", [False, "auto"])
def test_relative_motion_moves_the_source_by_the_driving_change(moving_model, real_dir, grid_frames, fast):
    """``relative=True``: v = v_source + v_t - v_first (the first frame with a face), on both paths, in a clip
    and live; a clip that starts with the source photo itself starts at the source's own rendering."""
    pipe = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv", detect_every=1, max_gap=1),
                          fast=fast, precision="fp32")
    pipe.set_source(real_dir / ANNE)
    frames = [np.zeros_like(grid_frames[0])] + grid_frames[:8]  # no face in the first frame: not the reference
    out = list(pipe.drive_frames(frames, relative=True, batch_size=3, on_missing="source"))
    assert not out[0].found and np.array_equal(out[0].image, pipe.source.crops[0])
    crops = torch.from_numpy(np.stack([o.driving_crop for o in out[1:]])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        v = moving_model.driving_vector(crops)  # [8, D]
        want = moving_model.render(pipe.source.embedded, pipe.source_vector() + v - v[:1])
    got = torch.from_numpy(np.stack([o.image for o in out[1:]])).permute(0, 3, 1, 2).float() / 255
    assert (got - want).abs().max() <= 1.5 / 255
    absolute = _frames_out(pipe, frames[1:])
    assert np.abs(np.stack([o.image for o in out[1:]]).astype(int) - absolute).mean() > 0.5  # not the same thing
    live = pipe.live(relative=True)
    diffs = [np.abs(live.step(f).image.astype(int) - o.image).max() for f, o in zip(frames, out)]
    assert max(diffs) <= 1, diffs  # batches of 3 against 1: float rounding
    # a clip starting with the source photo: its first frame renders the source's own driving vector
    photo = read_image(real_dir / ANNE)
    first = next(pipe.drive_frames([photo, *grid_frames[:2]], relative=True))
    still = next(pipe.drive_vectors(pipe.source_vector()))
    assert np.array_equal(first.image, still)
    # the motion's strength: 0 holds the source still, 2 moves it twice as far in vector space
    assert all(np.array_equal(o.image, still) for o in pipe.drive_frames(frames[1:], relative=True, motion_scale=0))
    twice = np.stack([o.image for o in pipe.drive_frames(frames[1:], relative=True, motion_scale=2.0, batch_size=3)])
    with torch.no_grad():
        want = moving_model.render(pipe.source.embedded, pipe.source_vector() + 2 * (v - v[:1]))
    assert (torch.from_numpy(twice).permute(0, 3, 1, 2).float() / 255 - want).abs().max() <= 1.5 / 255
    live = pipe.live(relative=True, motion_scale=2.0)
    assert max(np.abs(live.step(f).image.astype(int) - t).max() for f, t in zip(frames[1:], twice)) <= 1
    for bad in (dict(motion_scale=2.0), dict(relative=True, motion_scale=5.0), dict(relative=True, motion_scale=-1)):
        with pytest.raises(InputError, match="motion"):
            next(pipe.drive_frames(frames, **bad))
    with pytest.raises(InputError, match="motion_scale scales relative motion"):
        pipe.live(motion_scale=0.5)


def test_relative_motion_from_the_frame_posed_most_like_the_source(moving_model, real_dir, grid_frames):
    """``reference="best"``: the motion counts from the driving frame whose vector is nearest the source's own,
    wherever it is in the clip; there the source is rendered as it is."""
    pipe = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv", detect_every=1, max_gap=1),
                          precision="fp32")
    pipe.set_source(real_dir / ANNE)
    photo = read_image(real_dir / ANNE)
    frames = [*grid_frames[:4], photo, *grid_frames[4:6]]  # the source photo itself is frame 4
    memo = pipe.cropper.memo
    out = list(pipe.drive_frames(frames, relative=True, reference="best", batch_size=3))
    assert pipe.last_reference == [4] and len(out) == 7
    assert memo.hits >= 7 and memo.misses <= 8  # the second pass through the clip asked the detector nothing new
    still = next(pipe.drive_vectors(pipe.source_vector()))
    assert np.array_equal(out[4].image, still)  # at the reference the source is itself
    crops = torch.from_numpy(np.stack([o.driving_crop for o in out])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        v = moving_model.driving_vector(crops)  # [7, D]
        want = moving_model.render(pipe.source.embedded, pipe.source_vector() + v - v[4:5])
    got = torch.from_numpy(np.stack([o.image for o in out])).permute(0, 3, 1, 2).float() / 255
    assert (got - want).abs().max() <= 1.5 / 255
    first = list(pipe.drive_frames(frames, relative=True, batch_size=3))  # from the first frame: another video
    assert pipe.last_reference is None and not np.array_equal(first[4].image, still)
    (index, vector), = pipe.best_references(frames)
    assert index == 4 and vector.shape == (1, moving_model.config.vector_dim)
    # a frame given by index: there the source is itself too (frame 6 is another face's)
    given = list(pipe.drive_frames(frames, relative=True, reference=6, batch_size=3))
    assert pipe.last_reference == [6] and np.array_equal(given[6].image, still)
    assert not np.array_equal(given[4].image, still)
    with pytest.raises(NoFaceError, match="from frame 9 on"):
        pipe.best_references(frames, at=9)
    for bad, message in [(dict(reference="best"), "pass relative=True"),
                         (dict(relative=True, reference="middle"), "'first', 'best' or a frame index"),
                         (dict(relative=True, reference=-1), "a frame index >= 0")]:
        with pytest.raises(InputError, match=message):
            next(pipe.drive_frames(frames, **bad))
    with pytest.raises(InputError, match="reads the frames twice"):
        next(pipe.drive_frames(iter(frames), relative=True, reference="best"))
    with pytest.raises(NoFaceError, match="no human face found in the driving frames"):
        pipe.best_references([np.zeros_like(grid_frames[0])] * 3)


@pytest.mark.parametrize("fast", [False, "auto"])
def test_sharp_paste_back_renders_the_face_at_the_photos_resolution(moving_model, real_dir, grid_frames, fast):
    """``sharp=True``: the face is sampled from the full-resolution photo through the two warps composed; it is
    the model's output with the photo's detail (the same picture at the model's size, sharper at the photo's)."""
    import cv2

    pipe = X2FacePipeline(moving_model, cropper=FaceCropper(64, backend="opencv"), fast=fast, precision="fp32")
    src = pipe.set_source(real_dir / OBAMA)
    r = src.sharp[0].shape[0]
    assert src.sharp[0].shape == (r, r, 3) and 64 < r == round(src.boxes[0][2] - src.boxes[0][0])
    frames = grid_frames[:6]
    plain = list(pipe.drive_frames(frames, paste_back=True))
    sharp = list(pipe.drive_frames(frames, paste_back=True, sharp=True))
    for p, q in zip(plain, sharp):
        assert q.image.shape == p.image.shape == src.photo.shape
        assert np.abs(q.generated.astype(int) - p.generated.astype(int)).max() <= 1  # the model-size output
    pairs = pipe._generate([d.driving_crop for d in plain], sharp=True)
    x0, y0, x1, y1 = (int(round(v)) for v in src.boxes[0])
    m = (x1 - x0) // 4  # the middle of the crop box: the face
    x0, y0, x1, y1 = x0 + m, y0 + m, x1 - m, y1 - m
    for (small, big), p, q in zip(pairs, plain, sharp):
        assert big.shape == (r, r, 3)
        down = cv2.resize(big, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
        moved = np.abs(src.crops[0].astype(int) - small).mean()  # how far the output is from the source crop
        assert np.abs(down - small).mean() < 0.3 * moved, (np.abs(down - small).mean(), moved)
        detail = [cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(im[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY),
                                cv2.CV_64F).var() for im in (p.image, q.image)]
        assert detail[1] > 1.5 * detail[0], detail  # the photo's detail, not an enlarged 64-px face
    # an edit of the embedded face shows in the sharp face too (made before the first sharp rendering, as the
    # command line does)
    pipe.set_source(real_dir / OBAMA)
    face = pipe.embedded_face().copy()
    face[20:44, 20:44] = (0, 255, 0)
    pipe.set_embedded_face(face)
    green = lambda im: ((im[..., 1] > 200) & (im[..., 0] < 90)).mean()  # noqa: E731
    small, big = pipe._generate([plain[0].driving_crop], sharp=True)[0]
    assert green(small) > 0.05 and abs(green(big) - green(small)) < 0.05
    # the pipeline's default, pose and vectors, live, and several sources
    pipe.sharp = True
    pipe.reset_embedded_face()
    assert all(np.array_equal(d.image, q.image) for d, q in zip(pipe.drive_frames(frames, paste_back=True), sharp))
    v = pipe.source_vector()
    out = next(pipe.drive_vectors(v, paste_back=True))
    assert np.array_equal(out, next(pipe.drive_vectors(v, paste_back=True, sharp=True)))
    assert not np.array_equal(out, next(pipe.drive_vectors(v, paste_back=True, sharp=False)))
    assert pipe.live(paste_back=True).step(frames[0]).image.shape == src.photo.shape
    assert pipe.live(sharp=100).step(frames[0]).image.shape == (100, 100, 3)  # a cap on the side, for speed
    two = pipe.set_source([real_dir / OBAMA, real_dir / ANNE])
    assert [c.shape[0] for c in two.sharp] == [r, 256 if two.boxes[1][2] - two.boxes[1][0] >= 256 else
                                               max(64, round(two.boxes[1][2] - two.boxes[1][0]))]
    assert next(pipe.drive_frames(frames[:1], paste_back=True)).image.shape == src.photo.shape


def test_sharp_rendering_finds_the_photo_past_the_crop_box(tiny_model, real_dir):
    """Where the warps sample past the crop box (here an embedding that zooms out by 1.3), sharp rendering shows the
    photo around the box (``SourceInfo.surround``), not black: the embedded face is the photo's larger box."""
    from x2face.faces import crop_square
    from x2face.pipeline import SHARP_MARGIN
    from x2face.warp import identity_grid

    pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32")
    src = pipe.set_source(real_dir / OBAMA)
    r = pipe.sharp_side
    big, n, q = src.surround[0]
    assert q == math.ceil(SHARP_MARGIN * n) and big.shape == (round(r * (n + 2 * q) / n),) * 2 + (3,)
    zoom = 1.3

    def embedding_maps(sources):  # [1, K, 3, S, S] -> an identity grid zoomed out, every frame's share 1
        grid = identity_grid(1, 64, 64) * zoom  # [1, S, S, 2]
        return grid[:, None], torch.ones(1, 1, 1, 64, 64)

    pipe.model.embedding_maps = embedding_maps
    seen = pipe.embedded_face(r).astype(int)
    x0, y0, x1, y1 = src.boxes[0]
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * zoom  # output pixels sample where they lie
    want = crop_square(src.photo, (cx - half, cy - half, cx + half, cy + half), r).astype(int)
    ring = np.ones((r, r), bool)
    ring[r // 8:-r // 8, r // 8:-r // 8] = False  # the outer eighth: past the box
    assert (seen.max(-1) < 8)[ring].mean() < 0.01  # no black where the box ends
    assert np.abs(seen - want)[ring].mean() < 2, np.abs(seen - want)[ring].mean()  # the photo around the box
    assert np.abs(seen - want)[~ring].mean() < 2  # (0.5 measured: the geometry is exact, the resampling not)


def test_live_session_carries_on_after_a_failed_step(tiny_model, real_dir, grid_frames, monkeypatch):
    pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32")
    pipe.set_source([real_dir / ANNE])
    live = pipe.live()
    assert live.step(grid_frames[0]).found
    detect = live.cropper.detector.detect
    monkeypatch.setattr(live.cropper.detector, "detect", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        live.step(grid_frames[1])
    monkeypatch.setattr(live.cropper.detector, "detect", detect)
    assert live.step(grid_frames[2]).found  # a fresh tracker, not a StopIteration


def test_live_session_of_each_face_carries_on_after_a_failed_step(tiny_model, real_dir, monkeypatch):
    """With a driving face for each face, one track failing must not leave the others holding the next frame: the
    group track ends as a whole, and the next step starts a fresh one on its own frame."""
    pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend="opencv"), precision="fp32")
    pipe.set_source(group_photo(real_dir), face="all")
    clip = group_clip(real_dir, 3)
    live = pipe.live(driving_face="all")
    assert live.step(clip[0]).found and live.faces == 2
    detect, calls = live.cropper.detector.detect, []

    def second_fails(*a, **k):  # the right-hand face's track fails, after the left-hand one took the frame
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("x")
        return detect(*a, **k)

    monkeypatch.setattr(live.cropper.detector, "detect", second_fails)
    with pytest.raises(RuntimeError):
        live.step(clip[1])
    monkeypatch.setattr(live.cropper.detector, "detect", detect)
    out = live.step(clip[2])  # a fresh group track, not a StopIteration
    assert out.found and out.image.shape == group_photo(real_dir).shape


def test_motion_note_names_each_reference_frame_once():
    from x2face.pipeline import motion_note

    assert motion_note() == "relative motion from its first face"
    best = ", posed most like the photo"
    assert motion_note(2.0, [37], 25.0, start=1.0) == "relative motion x2 from frame 37 (2.48 s)" + best
    assert motion_note(1.0, [4, 4], 25.0, best=True) == "relative motion from frame 4 (0.16 s)" + best  # 2 faces
    assert motion_note(1.0, [4, 9], None, best=False) == "relative motion from frames 4, 9"
