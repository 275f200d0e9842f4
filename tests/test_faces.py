"""x2face.faces on real photos and clips: VoxCeleb-style crops, "no human face" on animals, stable boxes
through talking-head videos, frames without faces, paste-back, and the detector registry."""
from __future__ import annotations

import importlib.machinery
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from x2face.errors import InputError, MediaError, NoFaceError
from x2face.faces import (FaceCropper, FaceDetector, _iou, available_backends, box_motion, check_select,
                          crop_square, describe_select, face_alignment_available, feather_mask,
                          head_pose_from_landmarks, parse_face_select, paste_back)
from x2face.media import VideoReader, read_image

from helpers import group_clip, group_photo

HUMANS = [  # photos, paintings, black-and-white, a cartoon person, 256 px to 2048 px
    "photos/jixinya_EAMM__test_image_anne.png",
    "photos/timesler_facenet-pytorch__data_test_images_paul_rudd_1.jpg",
    "photos/KwaiVGI_LivePortrait__assets_examples_source_s2.jpg",  # black-and-white, 2048 px
    "photos/KwaiVGI_LivePortrait__assets_examples_source_s0.jpg",  # painting, small face
    "photos/KwaiVGI_LivePortrait__assets_examples_source_s9.jpg",  # Mona Lisa
    "photos/ageitgey_face_recognition__examples_knn_examples_train_obama_obama2.jpg",
    "photos/KwaiVGI_LivePortrait__assets_examples_source_s7.jpg",  # cartoon boy
]
# every animal photo in data/real except s22 (a capuchin monkey, whose face the Haar cascades take for a person's)
ANIMALS = [f"photos/KwaiVGI_LivePortrait__assets_examples_source_s{n}.jpg"
           for n in (23, 25, 30, 31, 32, 33, 36, 38, 39, 40, 41)]
TALKING_HEADS = [  # (clip, seconds)
    ("clips/AliaksandrSiarohin_first-order-model__demo_old_00.mp4", 3.0),  # 256 px, FOMM
    ("clips/FuxiVirtualHuman_styletalk__samples_source_video_video_Obama_clip1.mp4", 3.0),  # 256 px, StyleTalk
    ("clips/OpenTalker_SadTalker__examples_ref_video_WDA_AlexandriaOcasioCortez_000.mp4", 3.0),  # 512 px
    ("clips/KwaiVGI_LivePortrait__assets_examples_source_s18.mp4", 2.0),  # 1280x720
]
GRID = "clips/rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"


@pytest.fixture(scope="module")
def cropper():
    return FaceCropper(64, backend="opencv")


@pytest.mark.parametrize("name", HUMANS)
def test_crop_human_photos(real_dir, cropper, name):
    img = read_image(real_dir / name)
    face = cropper.crop_image(img)
    assert face.crop.shape == (64, 64, 3) and face.crop.dtype == np.uint8 and face.found
    x0, y0, x1, y1 = face.box
    assert abs((x1 - x0) - (y1 - y0)) < 1e-6  # square
    fx0, fy0, fx1, fy1 = face.face_box
    assert x0 < fx0 < fx1 < x1 and y0 < fy0 < fy1 < y1  # the face is inside its crop box
    assert (x1 - x0) / (fx1 - fx0) == pytest.approx(1.6 * cropper.detector.box_scale, rel=0.05)
    assert face.backend == "opencv" and face.crop.std() > 20


@pytest.mark.parametrize("name", ANIMALS)
def test_animals_are_not_human_faces(real_dir, cropper, name):
    with pytest.raises(NoFaceError, match="no human face found in"):
        cropper.crop_image(read_image(real_dir / name), name)


def test_crops_match_voxceleb(real_dir, cropper):
    """vox1-frames are VoxCeleb's own 1.6x crops: cropping them again at scale 1.6 must give back (almost)
    the whole frame."""
    names = sorted(p.name for p in (real_dir / "vox1-frames").iterdir())
    picks = [n for n in names if "Taylor_Swift" in n][:3] + [n for n in names if "audio_faces" in n][:6]
    ious = []
    for name in picks:
        img = read_image(real_dir / "vox1-frames" / name)
        h, w = img.shape[:2]
        ious.append(_iou(np.array(cropper.crop_image(img).box), np.array([0, 0, w, h], dtype=float)))
    assert min(ious) > 0.7 and np.mean(ious) > 0.85, ious


def test_several_faces_choose(real_dir):
    canvas = group_photo(real_dir)  # a small face on the left, a large one on the right
    largest = FaceCropper(64, backend="opencv").crop_image(canvas)
    assert largest.box[0] > 300 and largest.faces == 2
    left = FaceCropper(64, backend="opencv", select=0).crop_image(canvas)
    assert left.box[0] < 150 and left.box[2] < 260
    assert FaceCropper(64, backend="opencv", select=1).crop_image(canvas).box == largest.box
    near = FaceCropper(64, backend="opencv", select=(100, 60)).crop_image(canvas)
    assert near.box == left.box
    with pytest.raises(NoFaceError, match="the photo has 2 faces: there is no 6th from the left"):
        FaceCropper(64, backend="opencv", select=5).crop_image(canvas, "the photo")
    # a choice per photo overrides the cropper's own
    assert FaceCropper(64, backend="opencv").crop_image(canvas, select=0).box == left.box
    with pytest.raises(NoFaceError, match="there is no 3rd from the right"):
        FaceCropper(64, backend="opencv").crop_image(canvas, "the photo", select=-3)
    with pytest.raises(InputError, match="select must be"):
        FaceCropper(64, backend="opencv").crop_image(canvas, select="smallest")


def test_face_choice_text_and_summary():
    assert parse_face_select("largest") == "largest"
    assert parse_face_select(" 2 ") == 2 and parse_face_select("-1") == -1
    assert parse_face_select("320,41.5") == (320.0, 41.5)
    for bad in ("", "biggest", "1.5", "1,2,3", "nan,1", "x,y"):
        with pytest.raises(InputError, match="--face must be 'largest', a face index"):
            parse_face_select(bad)
    with pytest.raises(InputError, match="--driving-face must be"):
        parse_face_select("left", "--driving-face")
    for select in (True, 1.0, (1, 2, 3), "left"):
        with pytest.raises(InputError):
            check_select(select)
    assert describe_select("largest", 3) == "the largest of 3 faces"
    assert [describe_select(i, 4) for i in (0, 1, 2, 3, -1, -2)] == [
        "the leftmost of 4 faces", "the 2nd from the left of 4 faces", "the 3rd from the left of 4 faces",
        "the rightmost of 4 faces", "the rightmost of 4 faces", "the 3rd from the left of 4 faces"]
    assert describe_select((10, 20.5), 2) == "the face nearest (10, 20.5) of 2"


def test_one_face_is_one_detection(cropper):
    """The example photo's face used to come out twice (two overlapping alt2 boxes, both confirmed)."""
    photo = read_image(Path(__file__).resolve().parent.parent / "assets/examples/photo_a.jpg")
    dets = cropper.detect(photo)
    assert len(dets) == 1 and cropper.crop_image(photo).faces == 1


def test_crop_box_past_the_edge_is_padded(real_dir, cropper):
    img = read_image(real_dir / "photos/jixinya_EAMM__test_image_anne.png")[:, 40:]  # face near the left edge
    face = cropper.crop_image(img)
    assert face.box[0] < 0 and face.crop.shape == (64, 64, 3)
    black = crop_square(img, face.box, 64, pad="constant")
    n = face.box[2] - face.box[0]
    outside = int(-face.box[0] / n * 64) - 1  # columns of the crop left of the image
    assert outside >= 1 and (black[:, :outside] == 0).all() and not (face.crop[:, :outside] == 0).all()


@pytest.mark.parametrize("clip,seconds", TALKING_HEADS)
def test_track_is_stable_on_talking_heads(real_dir, cropper, clip, seconds):
    track = cropper.track(VideoReader(real_dir / clip, seconds=seconds))
    faces = list(track)
    assert track.report.found == track.report.frames == len(faces) > 0
    assert all(f.crop.shape == (64, 64, 3) for f in faces)
    motion = box_motion([f.box for f in faces])
    assert motion.max() < 0.02, f"box moved {motion.max():.1%} of its size between two frames"
    assert track.report.detections <= len(faces) // cropper.detect_every + 2  # detector every 5th frame


def test_track_keeps_and_reports_frames_without_face(real_dir, cropper):
    frames = list(VideoReader(real_dir / GRID, seconds=1.2))  # 30 frames
    for i in range(10, 18):
        frames[i] = np.zeros_like(frames[i])
    black = np.zeros_like(frames[0])
    track = cropper.track([black] * 4 + frames)
    out = list(track)
    assert len(out) == 34 and [f.index for f in out] == list(range(34))
    assert track.report.missing == [0, 1, 2, 3] + list(range(14, 22))
    assert all(f.crop is None and f.box is None for f in out[:4])
    held = [f for f in out[14:22]]
    assert all(not f.found and f.crop is not None and f.box == out[13].box for f in held)  # last box held
    assert all(f.found for f in out[22:])
    assert "face found in 22/34 frames (none in frames 0-3, 14-21)" in track.report.summary()


def test_box_motion_measure():
    boxes = [(0, 0, 100, 100), (1, 0, 101, 100), (1, 0, 104, 103)]
    assert np.allclose(box_motion(boxes), [0.01, 0.03])


def test_feather_mask_and_paste_back(real_dir):
    m = feather_mask(64)
    assert m.shape == (64, 64) and m[32, 32] == 1.0 and m[0].max() == 0 and m[:, 0].max() == 0
    assert np.all(np.diff(m[32, :33]) >= 0)  # rises towards the centre

    frame = read_image(real_dir / "photos/KwaiVGI_LivePortrait__assets_examples_source_s9.jpg")
    box = (200.0, 150.0, 520.0, 470.0)
    generated = np.zeros((64, 64, 3), np.uint8)
    generated[..., 0] = 255  # a red face
    out = paste_back(frame, generated, box)
    assert out.shape == frame.shape and out.dtype == np.uint8
    outside = np.ones(frame.shape[:2], bool)
    outside[150:470, 200:520] = False
    assert np.array_equal(out[outside], frame[outside])  # untouched outside the box
    assert tuple(out[310, 360]) == (255, 0, 0)  # the centre is the generated face
    assert not np.array_equal(out, frame)
    # pure black (X2Face's "outside the embedded face") is left out; a box past the edge is clipped
    assert np.array_equal(paste_back(frame, np.zeros((64, 64, 3), np.uint8), box), frame)
    edge = paste_back(frame, generated, (-100.0, -100.0, 200.0, 200.0))
    assert edge.shape == frame.shape and tuple(edge[50, 50]) == (255, 0, 0)


def test_paste_back_without_blend_linear(real_dir, monkeypatch):
    """OpenCV's blendLinear (the fast path) and the NumPy blend agree to one grey level."""
    import cv2

    frame = read_image(real_dir / "photos/KwaiVGI_LivePortrait__assets_examples_source_s9.jpg")
    rng = np.random.default_rng(0)
    generated = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    generated[:8] = 0  # some pure black, left out
    for box in ((200.0, 150.0, 520.0, 470.0), (-40.0, -30.0, 200.0, 210.0)):
        fast = paste_back(frame, generated, box)
        with monkeypatch.context() as m:
            m.delattr(cv2, "blendLinear", raising=False)
            plain = paste_back(frame, generated, box)
        assert np.abs(fast.astype(int) - plain.astype(int)).max() <= 1
        assert not np.array_equal(fast, frame)


# ----------------------------------------------------------------------------------------- backends
def test_backend_registry_offline():
    assert "opencv" in available_backends()
    assert FaceCropper(64).backend in available_backends()
    if not face_alignment_available():
        assert FaceCropper(64).backend == "opencv"
        with pytest.raises(MediaError, match="never downloads"):
            FaceCropper(64, backend="face-alignment")
    with pytest.raises(MediaError, match="unknown face detector"):
        FaceCropper(64, backend="dlib")
    assert "face_alignment" not in sys.modules or face_alignment_available()  # never imported for nothing


def _canonical_landmarks(center=(0.0, 0.0), scale=1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    p = rng.normal(0, 0.3, (68, 3))
    p[36], p[45] = (-1.0, 0.0, 0.0), (1.0, 0.0, 0.0)  # outer eye corners
    p[27], p[8] = (0.0, 0.0, 0.0), (0.0, 2.0, 0.0)  # nose bridge, chin
    p *= scale
    p[:, 0] += center[0]
    p[:, 1] += center[1]
    return p


def _rot(yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    """Rotation in camera coordinates (x right, y down, z away) with the documented angle meanings."""
    y, p, r = map(math.radians, (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@pytest.mark.parametrize("angles", [(25.0, 0.0, 0.0), (0.0, 15.0, 0.0), (0.0, 0.0, -10.0), (-20.0, 10.0, 5.0)])
def test_head_pose_from_landmarks(angles):
    pts = _canonical_landmarks() @ _rot(*angles).T
    assert np.allclose(head_pose_from_landmarks(pts), angles, atol=1e-6)


def test_face_alignment_backend_when_weights_are_on_disk(real_dir, tmp_path, monkeypatch):
    """With the package importable and its weights in torch's hub cache, "auto" picks face-alignment and
    its boxes, landmarks and head pose come through (a stand-in module plays face_alignment here)."""
    import torch

    calls = {}

    class FakeFaceAlignment:
        def __init__(self, kind, device="cpu", face_detector="sfd"):
            calls["init"] = (kind, device, face_detector)

        def get_landmarks_from_image(self, image, return_bboxes=False):
            h, w = image.shape[:2]
            pts = _canonical_landmarks((w / 2, h / 2), w / 10) @ _rot(yaw=20).T
            pts[:, 0] += w / 2 - pts[27, 0]
            return [pts], None, [np.array([w * 0.3, h * 0.3, w * 0.7, h * 0.7, 0.99])]

    fake = types.ModuleType("face_alignment")
    fake.__spec__ = importlib.machinery.ModuleSpec("face_alignment", None)
    fake.LandmarksType = types.SimpleNamespace(TWO_D=1, THREE_D=3)
    fake.FaceAlignment = FakeFaceAlignment
    monkeypatch.setitem(sys.modules, "face_alignment", fake)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert not face_alignment_available()  # importable, but no weights yet: opencv
    assert FaceCropper(64).backend == "opencv"

    (tmp_path / "checkpoints").mkdir()
    for name in ("s3fd-619a316812.pth", "3DFAN4-4a694010b9.zip", "depth-6c4283c0e0.zip"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    assert available_backends() == ["face-alignment", "opencv"]
    cropper = FaceCropper(64)
    assert cropper.backend == "face-alignment" and calls["init"] == (3, "cpu", "sfd")
    img = read_image(real_dir / "photos/jixinya_EAMM__test_image_anne.png")
    face = cropper.crop_image(img)
    assert face.backend == "face-alignment" and face.crop.shape == (64, 64, 3)
    assert face.face_box == pytest.approx((76.8, 76.8, 179.2, 179.2))
    assert face.pose == pytest.approx((20.0, 0.0, 0.0), abs=1e-6)
    assert isinstance(cropper.detector, FaceDetector)


def _moving_face_video(real_dir, offsets) -> list[np.ndarray]:
    """A photo's face pasted into a 360x360 grey canvas at per-frame (dx, dy) pixel offsets: uint8 frames."""
    import cv2

    face = cv2.resize(read_image(real_dir / HUMANS[0]), (200, 200), interpolation=cv2.INTER_AREA)
    frames = []
    for dx, dy in offsets:
        canvas = np.full((360, 360, 3), 120, np.uint8)
        canvas[80 + dy:280 + dy, 80 + dx:280 + dx] = face
        frames.append(canvas)
    return frames


def _centres(track) -> np.ndarray:
    boxes = np.array([f.box for f in track], dtype=np.float64)  # [N, 4]
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def test_adaptive_stride_detects_less_on_a_still_face(real_dir):
    frames = _moving_face_video(real_dir, [(0, 0)] * 100)
    fixed = FaceCropper(64, backend="opencv", detect_every=5, max_gap=5).track(iter(frames))
    adaptive = FaceCropper(64, backend="opencv", detect_every=5, max_gap=20).track(iter(frames))
    a, b = _centres(fixed), _centres(adaptive)
    assert len(a) == len(b) == 100 and np.abs(a - b).max() < 1.0
    assert fixed.report.detections >= 20 and adaptive.report.detections <= 10
    assert adaptive.report.refinements == 0


def test_adaptive_stride_splits_where_the_face_moves_and_returns(real_dir, monkeypatch):
    import x2face.faces as faces

    # still, then a quick move of 40 px (about a third of the face) and back inside what would be one stride
    offsets = [(0, 0)] * 40 + [(40, 10)] * 10 + [(0, 0)] * 30
    frames = _moving_face_video(real_dir, offsets)
    ref = _centres(FaceCropper(64, backend="opencv", detect_every=1, max_gap=1).track(iter(frames)))
    fixed = FaceCropper(64, backend="opencv", detect_every=5, max_gap=5).track(iter(frames))
    fixed_err = np.abs(_centres(fixed) - ref).max()  # 21 px: a fixed stride interpolates across the jumps too
    track = FaceCropper(64, backend="opencv", detect_every=5, max_gap=20).track(iter(frames))
    err = np.abs(_centres(track) - ref).max(1)  # [N] px
    assert track.report.refinements >= 1
    assert err.max() <= fixed_err + 1.0, "the adaptive stride tracks the move worse than a fixed one"
    assert err[42:48].max() < 10, "the tracker missed the face's move between two detections"
    assert track.report.detections < fixed.report.detections  # and with fewer detector runs (12 against 17)
    # without the window check the same stride is interpolated across the move (what the check is for)
    monkeypatch.setattr(faces, "STRIDE_CHANGE", float("inf"))
    blind = _centres(FaceCropper(64, backend="opencv", detect_every=5, max_gap=20).track(iter(frames)))
    assert np.abs(blind[42:48] - ref[42:48]).max() > 20


def test_adaptive_stride_holds_no_more_frames_than_its_memory_budget(real_dir, monkeypatch):
    import x2face.faces as faces

    monkeypatch.setattr(faces, "MAX_PENDING_BYTES", 1)  # every frame is "too big": the fixed stride
    frames = _moving_face_video(real_dir, [(0, 0)] * 60)
    track = FaceCropper(64, backend="opencv", detect_every=5, max_gap=20).track(iter(frames))
    assert len(list(track)) == 60 and track.report.detections == 60 // 5 + 1
    with pytest.raises(faces.InputError, match="max_gap"):
        FaceCropper(64, backend="opencv", max_gap=0)


def test_group_track_follows_each_face_and_searches_each_frame_once(real_dir):
    """``track_every``: the faces of a clip of two people, each followed as a single track follows it; the tracks
    start together at the first frame that shows both, and share their whole-frame searches."""
    from x2face.faces import HaarDetector

    class Counting(HaarDetector):
        searches = 0

        def detect(self, image, region=None, expected_side=None):
            Counting.searches += region is None
            return super().detect(image, region, expected_side)

    clip = group_clip(real_dir, 12)
    frames = [np.full_like(clip[0], 128) for _ in range(4)] + [f.copy() for f in clip]  # nobody, then two people
    cropper = FaceCropper(64, backend=Counting(), remember=0)  # (the memo would answer the repeated empty frames)
    track = cropper.track_every(frames, 2)
    crops = list(track)
    assert [g.found for g in crops] == [False] * 4 + [True] * 12 and track.report.faces == 2
    assert track.report.summary() == "all 2 faces found in 12/16 frames (not all in frames 0-3)"
    assert Counting.searches == 5  # the four empty frames and the first with faces, once each for both tracks
    for i in (0, 1):  # each face as a single track started there follows it
        alone = list(FaceCropper(64, backend="opencv").track(frames[4:], i))
        assert all(np.array_equal(a.crop, g.faces[i].crop) for a, g in zip(alone, crops[4:]))
    assert crops[4].faces[0].face_box[0] < crops[4].faces[1].face_box[0]  # from the left
    with pytest.raises(InputError, match="must be an int >= 1"):
        cropper.track_every(frames, 0)


class _CountingDetector(FaceDetector):
    """The opencv backend, counting its calls."""

    def __init__(self):
        from x2face.faces import HaarDetector

        self.inner, self.calls = HaarDetector(), 0
        self.name, self.box_scale, self.box_shift = "opencv", self.inner.box_scale, self.inner.box_shift

    def detect(self, image, region=None, expected_side=None):
        self.calls += 1
        return self.inner.detect(image, region, expected_side)


def test_detection_memo_tracks_a_clip_again_without_the_detector(real_dir):
    """A clip tracked again costs no detection (``DetectionMemo``), and gives exactly the crops of a cropper that
    remembers nothing; a frame that differs in one pixel is searched afresh."""
    clip, seconds = TALKING_HEADS[1]
    frames = list(VideoReader(real_dir / clip, seconds=seconds))
    plain = list(FaceCropper(64, backend="opencv", remember=0).track(frames))
    counting = _CountingDetector()
    cropper = FaceCropper(64, backend=counting)
    first = list(cropper.track(frames))
    calls = counting.calls
    assert calls >= 3 and cropper.memo.misses == calls and cropper.memo.hits == 0
    again = list(cropper.track(frames))
    assert counting.calls == calls and cropper.memo.hits == calls  # nothing searched a second time
    for a, b, c in zip(plain, first, again):
        assert a.box == b.box == c.box and a.found == b.found == c.found
        assert np.array_equal(a.crop, b.crop) and np.array_equal(a.crop, c.crop)
    changed = [f.copy() for f in frames]
    changed[0][0, 0, 0] ^= 1  # the first frame, one bit of one pixel
    list(cropper.track(changed))
    assert counting.calls == calls + 1  # only that frame's search, the rest remembered
    photo = read_image(real_dir / HUMANS[0])
    assert cropper.crop_image(photo).box == cropper.crop_image(photo.copy()).box and counting.calls == calls + 2


def test_detection_memo_keeps_copies_a_bounded_number_and_one_detector(real_dir):
    from x2face.faces import DetectionMemo, HaarDetector

    photo = read_image(real_dir / HUMANS[0])
    counting = _CountingDetector()
    memo = DetectionMemo(2)
    found = memo.detect(counting, photo)
    found[0].box[:] = 0  # the caller's copy: the memo's answer stays as it was
    assert memo.detect(counting, photo)[0].box.max() > 0 and counting.calls == 1
    memo.detect(counting, photo, (0.0, 0.0, 200.0, 200.0), 100.0)
    memo.detect(counting, photo[::2, ::2])  # a third call: the least recently used (the whole photo) is dropped
    assert len(memo) == 2 and counting.calls == 3
    memo.detect(counting, photo)
    assert counting.calls == 4
    other = HaarDetector()
    memo.detect(other, photo)  # another detector: what the memo held is forgotten
    assert len(memo) == 1 and memo.misses == 5
    memo.clear()
    assert len(memo) == 0
    # a search in a region reads only its pixels: a change outside it (past a pixel's margin) is the same call
    region = (10.0, 20.0, 110.5, 120.5)
    memo.detect(counting, photo, region, 50.0)
    calls = counting.calls
    outside, inside = photo.copy(), photo.copy()
    outside[122, 112] ^= 1
    inside[121, 111] ^= 1  # the margin's pixel
    memo.detect(counting, outside, region, 50.0)
    assert counting.calls == calls
    memo.detect(counting, inside, region, 50.0)
    assert counting.calls == calls + 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="int >= 1"):
            DetectionMemo(bad)
    with pytest.raises(InputError, match="remember must be an int >= 0"):
        FaceCropper(64, backend="opencv", remember=-1)
    assert FaceCropper(64, backend="opencv", remember=0).memo is None
