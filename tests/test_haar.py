"""x2face.haar: OpenCV's Haar cascades evaluated by a numba-compiled scan or with torch, for OpenCV 5 builds
without CascadeClassifier.

Against OpenCV 4's own ``CascadeClassifier`` (installed here) on real photos: the same boxes and weights;
and the face pipeline working, with the same crops, when ``cv2.CascadeClassifier`` is gone."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from x2face.errors import MediaError, NoFaceError
from x2face.faces import FaceCropper, HaarDetector, box_motion
from x2face.haar import HaarCascade, cascade_path, group_rectangles, load_cascade
from x2face.media import VideoReader, read_image

needs_cv2_cascades = pytest.mark.skipif(not hasattr(cv2, "CascadeClassifier"),
                                        reason="this OpenCV has no CascadeClassifier to compare against")
PHOTOS = [
    "photos/jixinya_EAMM__test_image_anne.png",
    "photos/KwaiVGI_LivePortrait__assets_examples_source_s0.jpg",  # painting, small face
    "photos/KwaiVGI_LivePortrait__assets_examples_driving_d8.jpg",
    "photos/ageitgey_face_recognition__examples_knn_examples_train_obama_obama2.jpg",
    "photos/KwaiVGI_LivePortrait__assets_examples_source_s31.jpg",  # an animal: the cascades still fire somewhere
]


def _gray(real_dir, name: str, side: int = 320) -> np.ndarray:
    img = read_image(real_dir / name)
    h, w = img.shape[:2]
    s = side / max(h, w)
    g = cv2.cvtColor(cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return cv2.equalizeHist(g)


@needs_cv2_cascades
@pytest.mark.slow
@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "torch"])
@pytest.mark.parametrize("cascade", ["frontalface_alt2", "frontalface_default", "profileface"])
def test_same_detections_as_opencv(real_dir, cascade, compiled):
    mine, ref = load_cascade(cascade), cv2.CascadeClassifier(cascade_path(cascade))
    found = 0
    for name in PHOTOS:
        g = _gray(real_dir, name)
        for sf, neighbors in ((1.1, 3), (1.05, 1)):
            b_ref, _, w_ref = ref.detectMultiScale3(g, scaleFactor=sf, minNeighbors=neighbors, minSize=(24, 24),
                                                     maxSize=g.shape[::-1], outputRejectLevels=True)
            b_ref, w_ref = np.asarray(b_ref).reshape(-1, 4), np.asarray(w_ref, dtype=np.float64).reshape(-1)
            b, w = mine.detect_multi_scale3(g, sf, neighbors, (24, 24), g.shape[::-1], compiled=compiled)
            order_ref, order = np.lexsort(b_ref.T[::-1]), np.lexsort(b.T[::-1])
            assert b.shape == b_ref.shape, (name, sf, b.tolist(), b_ref.tolist())
            np.testing.assert_array_equal(b[order], b_ref[order_ref])
            np.testing.assert_allclose(w[order], w_ref[order_ref], atol=1e-4)
            found += len(b)
    assert found > 0  # the comparison saw detections, not only empty lists


@needs_cv2_cascades
@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "torch"])
@pytest.mark.parametrize("photo, cascade", [
    # OpenCV rejects a window whose grey levels vary by 10 or less before any stage: here a window of the
    # flat background otherwise passes every stage (a box OpenCV does not report)
    ("photos/KwaiVGI_LivePortrait__assets_examples_source_s5.jpg", "frontalface_default"),
    # OpenCV scans in stripes sized from the first scale: at one scale the last row of windows is never
    # scanned, and a window there otherwise passes (a box one pixel off OpenCV's)
    ("photos/KwaiVGI_LivePortrait__assets_examples_source_s6.jpg", "profileface"),
], ids=["flat-window", "stripe-rows"])
def test_opencv_scan_details(real_dir, photo, cascade, compiled):
    g = _gray(real_dir, photo)
    ref = cv2.CascadeClassifier(cascade_path(cascade))
    b_ref, _, _ = ref.detectMultiScale3(g, scaleFactor=1.05, minNeighbors=3, minSize=(24, 24),
                                        maxSize=g.shape[::-1], outputRejectLevels=True)
    b, _ = load_cascade(cascade).detect_multi_scale3(g, 1.05, 3, (24, 24), g.shape[::-1], compiled=compiled)
    assert len(b_ref) > 0
    assert sorted(b.tolist()) == sorted(np.asarray(b_ref).reshape(-1, 4).tolist())


@pytest.mark.slow
def test_compiled_scan_splits_rows_over_threads_without_changing_results(real_dir):
    """The numba scan runs its rows on torch.get_num_threads() threads: any count gives the same windows."""
    import torch

    cascade, g = load_cascade("frontalface_default"), _gray(real_dir, PHOTOS[2])
    factors = [1.0, 1.21, 1.5, 2.0, 2.6]
    before = torch.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(cascade._hits_compiled(g, factors))
    finally:
        torch.set_num_threads(before)
    reference = cascade._hits(g, factors, torch.device("cpu"))
    assert sum(len(xy) for xy, _ in reference) > 0
    for hits in results:
        for (xy, w), (xy_ref, w_ref) in zip(hits, reference):
            np.testing.assert_array_equal(xy, xy_ref)
            np.testing.assert_allclose(w, w_ref, atol=1e-4)


def test_group_rectangles_matches_opencv():
    rng = np.random.default_rng(0)
    rects = []
    for cx, cy, s, n in ((50, 50, 40, 6), (52, 54, 12, 4), (200, 80, 60, 2), (300, 300, 30, 5)):
        for _ in range(n):
            j = rng.integers(-2, 3, 3)
            rects.append((cx + j[0], cy + j[1], s + j[2], s + j[2]))
    rects = np.array(rects, dtype=np.int64)
    ref, _ = cv2.groupRectangles(rects.tolist(), 2, 0.2)
    mine, weights = group_rectangles(rects, np.arange(len(rects), dtype=np.float64), 2, 0.2)
    np.testing.assert_array_equal(np.sort(mine, 0), np.sort(np.asarray(ref).reshape(-1, 4), 0))
    assert len(mine) == 2  # the 2-member group is dropped, the small box inside the large one too
    assert weights.max() == len(rects) - 1  # a group reports its highest member weight


def test_bad_cascade_file(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage><cascade><featureType>LBP</featureType></cascade></opencv_storage>")
    with pytest.raises(ValueError, match="not an OpenCV Haar cascade"):
        HaarCascade(str(bad))
    with pytest.raises(ValueError, match="cannot read"):
        HaarCascade(str(tmp_path / "missing.xml"))


@pytest.fixture
def no_cascade_classifier(monkeypatch):
    """OpenCV 5: cv2 without CascadeClassifier."""
    if hasattr(cv2, "CascadeClassifier"):
        monkeypatch.delattr(cv2, "CascadeClassifier")


@pytest.mark.slow
def test_face_pipeline_without_cascade_classifier(real_dir, no_cascade_classifier):
    cropper = FaceCropper(64)
    assert cropper.detector.engine == "numba" and cropper.backend == "opencv"  # numba comes with librosa
    with pytest.raises(MediaError, match="no CascadeClassifier"):
        HaarDetector(engine="opencv")
    face = cropper.crop_image(read_image(real_dir / "photos/jixinya_EAMM__test_image_anne.png"))
    assert face.found and face.crop.shape == (64, 64, 3)
    with pytest.raises(NoFaceError, match="no human face found"):
        cropper.crop_image(read_image(real_dir / "photos/KwaiVGI_LivePortrait__assets_examples_source_s31.jpg"))
    track = cropper.track(VideoReader(real_dir / "clips/AliaksandrSiarohin_first-order-model__demo_old_00.mp4",
                                      seconds=1.0))
    faces = list(track)
    assert track.report.found == track.report.frames == len(faces) > 0
    assert box_motion([f.box for f in faces]).max() < 0.02


@needs_cv2_cascades
def test_engine_without_opencv_cascades_or_numba(no_cascade_classifier, monkeypatch):
    import x2face.haar

    assert HaarDetector(engine="torch").engine == "torch"
    monkeypatch.setattr(x2face.haar, "compiled_available", lambda: False)
    assert HaarDetector().engine == "torch"  # neither OpenCV 4 nor numba: torch
    with pytest.raises(MediaError, match="numba is not installed"):
        HaarDetector(engine="numba")


def test_compiled_scan_unavailable_when_numba_fails(monkeypatch):
    """A numba that is missing, fails to import or to compile means the torch engine, not an error per photo."""
    import x2face.haar

    def broken():
        raise ImportError("Numba needs NumPy 2.3 or less")

    assert x2face.haar.compiled_available()
    monkeypatch.setattr(x2face.haar, "_scan", broken)
    x2face.haar.compiled_available.cache_clear()
    try:
        assert not x2face.haar.compiled_available()
    finally:
        monkeypatch.undo()
        x2face.haar.compiled_available.cache_clear()
    assert x2face.haar.compiled_available()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_haar_engines_give_opencv_crops(real_dir, engine):
    haar_crop = FaceCropper(64, backend=HaarDetector(engine=engine))
    cv_crop = FaceCropper(64, backend=HaarDetector(engine="opencv"))
    assert haar_crop.detector.engine == engine and cv_crop.detector.engine == "opencv"
    img = read_image(real_dir / "photos/timesler_facenet-pytorch__data_test_images_paul_rudd_1.jpg")  # 1024 px
    a, b = haar_crop.crop_image(img), cv_crop.crop_image(img)
    assert a.box == b.box and np.array_equal(a.crop, b.crop)
    frames = list(VideoReader(real_dir / "clips/KwaiVGI_LivePortrait__assets_examples_driving_d10.mp4", seconds=1.0))
    assert [f.box for f in haar_crop.track(frames)] == [f.box for f in cv_crop.track(frames)]


def test_unknown_engine():
    with pytest.raises(MediaError, match="unknown cascade engine"):
        HaarDetector(engine="gpu")
