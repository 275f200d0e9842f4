"""Real-video training data (x2face.data.video): layouts, identity-disjoint splits, frame sampling, crop cache, items."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from x2face.data import video as vd
from x2face.data.video import RealVideoPairs, clips_from_manifest, clips_from_voxceleb, hash_split, load_clips
from x2face.errors import ConfigError


def _colour(identity: int, clip: int, frame: int) -> tuple[int, int, int]:
    """A frame's flat colour encodes (identity, clip, frame), so an item tells where its frames came from."""
    return (40 * identity + 20, 50 * clip + 30, 10 * frame + 5)


def _frames_folder(folder: Path, identity: int, clip: int, n: int, size: int = 40) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n):
        Image.fromarray(np.full((size, size + 8, 3), _colour(identity, clip, f), np.uint8)).save(folder / f"{f:04d}.png")


def _video(path: Path, seconds: float, fps: int, size: int = 48) -> None:
    """An mp4 whose frame i has the grey level 8 * (i // fps): one level per second."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for i in range(int(seconds * fps)):
        w.write(np.full((size, size, 3), 8 * (i // fps) + 40, np.uint8))
    w.release()


@pytest.fixture
def vox_tree(tmp_path) -> Path:
    """ROOT/identity/video/clip with frame-folder clips of 3 identities (2 clips each)."""
    root = tmp_path / "vox"
    for i in range(3):
        for c in range(2):
            _frames_folder(root / f"id{i:05d}" / f"video{c}" / "00001", i, c, 4)
    return root


def test_hash_split_is_stable_identity_disjoint_and_follows_fractions():
    names = [f"person{i}" for i in range(3000)]
    splits = [hash_split(n) for n in names]
    assert splits == [hash_split(n) for n in names]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert share["train"] == pytest.approx(0.75, abs=0.04) and share["val"] == pytest.approx(0.15, abs=0.03)
    assert {hash_split(n, (0, 1, 0)) for n in names[:50]} == {"val"}
    with pytest.raises(ConfigError):
        hash_split("x", (1, 1))


def test_voxceleb_layout(vox_tree):
    clips = clips_from_voxceleb(vox_tree, (1, 0, 0))
    assert len(clips) == 6 and {c.identity for c in clips} == {"id00000", "id00001", "id00002"}
    assert all(c.video is None and len(c.frames) == 4 and c.split == "train" for c in clips)
    with pytest.raises(ConfigError, match="no VoxCeleb-style folder"):
        clips_from_voxceleb(vox_tree / "missing")


def test_manifest_groups_frames_skips_heldout_and_other_rows(tmp_path):
    from PIL import Image

    root = tmp_path / "real"
    (root / "vox1-frames").mkdir(parents=True)
    rows = []
    for f in range(3):  # frames of one video of person a, flattened file names as in ../shared
        name = f"vox1-frames/a_vidA_{f:04d}.png"
        Image.fromarray(np.full((40, 40, 3), _colour(0, 0, f), np.uint8)).save(root / name)
        rows.append({"file": name, "kind": "photo", "identity": "a", "split": "train", "path": f"a/vidA/{f}.png"})
    _video(root / "clips" / "b.mp4", 2, 10)
    _video(root / "clips" / "c.mp4", 2, 10)
    rows += [
        {"file": "clips/b.mp4", "kind": "video", "identity": "b", "split": "val", "path": ""},
        {"file": "clips/c.mp4", "kind": "video", "identity": "c", "split": "heldout", "path": ""},
        {"file": "clips/gone.mp4", "kind": "video", "identity": "d", "split": "train", "path": ""},
        {"file": "speech/s.wav", "kind": "audio", "identity": "b", "split": "val", "path": ""},
        {"file": "photos/p.jpg", "kind": "photo", "identity": "e", "split": "train", "path": ""},
    ]
    with (root / "MANIFEST.tsv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "kind", "identity", "split", "path"], delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    clips = {c.identity: c for c in clips_from_manifest(root / "MANIFEST.tsv")}
    assert set(clips) == {"a", "b"}  # heldout row, missing file, audio and loose photos are not clips
    assert len(clips["a"].frames) == 3 and clips["a"].split == "train"
    assert clips["b"].video == root / "clips" / "b.mp4" and clips["b"].split == "val"


def test_heldout_folders_are_refused(tmp_path):
    (tmp_path / "heldout").mkdir()
    (tmp_path / "heldout" / "MANIFEST.tsv").write_text("file\tkind\tidentity\n")
    with pytest.raises(ConfigError, match="held-out"):
        clips_from_manifest(tmp_path / "heldout" / "MANIFEST.tsv")
    with pytest.raises(ConfigError, match="held-out"):
        clips_from_voxceleb(tmp_path / "heldout")


def test_video_frames_are_sampled_at_the_asked_rate(tmp_path):
    _video(tmp_path / "v.mp4", 3, 10)
    clip = vd.Clip("v", "p", "train", video=tmp_path / "v.mp4")
    every = vd.decode_clip(clip, 32, 0, "none")
    one_fps = vd.decode_clip(clip, 32, 1.0, "center")
    assert every.shape == (30, 32, 32, 3) and every.dtype == np.uint8
    assert one_fps.shape == (3, 32, 32, 3)
    levels = one_fps.reshape(3, -1).mean(1)
    np.testing.assert_allclose(levels, [40, 48, 56], atol=3)  # one frame from each second
    assert vd.sample_indices(30, 10.0, 1.0) == [0, 10, 20]
    assert vd.sample_indices(5, 25.0, 0) == vd.sample_indices(5, 25.0, 30.0) == [0, 1, 2, 3, 4]


def test_crops_are_cached_once_and_keyed_by_settings(vox_tree, tmp_path, monkeypatch):
    clips = clips_from_voxceleb(vox_tree, (1, 0, 0))
    first = RealVideoPairs(clips, "train", 32, cache_dir=tmp_path / "cache", verbose=False)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 6

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(vd, "decode_clip", no_decoding)
    again = RealVideoPairs(clips, "train", 32, cache_dir=tmp_path / "cache", verbose=False)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(first.batch(4, g1), again.batch(4, g2), equal_nan=True)
    assert vd.cache_key(clips[0], 32, 1.0, "none") != vd.cache_key(clips[0], 64, 1.0, "none")
    with pytest.raises(AssertionError, match="decoded again"):  # another size is another cache entry
        RealVideoPairs(clips, "train", 64, cache_dir=tmp_path / "cache", verbose=False)


def test_items_pair_frames_of_one_clip_with_another_identity(vox_tree, tmp_path):
    clips = clips_from_voxceleb(vox_tree, (1, 0, 0))
    data = RealVideoPairs(clips, "train", 32, num_sources=2, seed=5, cache_dir=tmp_path / "c", verbose=False)
    assert data.identity_names == ["id00000", "id00001", "id00002"]
    item = data[7]
    assert item["sources"].shape == (2, 3, 32, 32) and item["driving"].shape == (3, 32, 32)
    assert item["driving_other"].shape == (3, 32, 32) and item["sources"].dtype == torch.float32
    assert torch.isnan(item["pose"]).all() and item["pose"].shape == (3,)
    torch.testing.assert_close(data[7], item, equal_nan=True)  # a pure function of (seed, index)
    batch = data.batch(64, torch.Generator().manual_seed(0))
    assert batch["sources"].shape == (64, 2, 3, 32, 32)
    assert (batch["identity"] != batch["identity_other"]).all()
    px = (batch["sources"][:, :, :, 0, 0] * 255).round()  # [B, K, 3] colours: (identity, clip, frame)
    drv = (batch["driving"][:, :, 0, 0] * 255).round()
    other = (batch["driving_other"][:, :, 0, 0] * 255).round()
    assert torch.equal(((px[:, 0, 0] - 20) / 40).long(), batch["identity"])  # sources of the item's identity
    assert torch.equal(px[:, 0, :2], drv[:, :2]) and torch.equal(px[:, 1, :2], drv[:, :2])  # one clip
    assert (px[:, 0, 2] != drv[:, 2]).all()  # different frames
    assert torch.equal(((other[:, 0] - 20) / 40).long(), batch["identity_other"])


def test_splits_need_two_identities(vox_tree, tmp_path):
    clips = [c for c in clips_from_voxceleb(vox_tree, (1, 0, 0)) if c.identity == "id00000"]
    with pytest.raises(ConfigError, match="at least 2"):
        RealVideoPairs(clips, "train", 32, cache_dir=tmp_path / "c", verbose=False)


def test_shared_real_clips_split_by_identity_and_face_crops(real_dir, tmp_path):
    clips = load_clips([real_dir / "MANIFEST.tsv"])
    train = {c.identity for c in clips if c.split == "train"}
    val = {c.identity for c in clips if c.split == "val"}
    assert train and val and not train & val
    assert not any("heldout" in str(c.video or c.frames[0]) for c in clips)
    assert any(c.video is None and len(c.frames) > 10 for c in clips)  # vox1-frames grouped into clips
    clip = next(c for c in clips if c.video is not None and c.split == "val")
    crops = vd.decode_clip(clip, 64, 1.0, "face")
    assert crops.ndim == 4 and crops.shape[1:] == (64, 64, 3) and len(crops) >= 2


def test_datasets_travel_to_workers_without_their_frames(vox_tree, tmp_path):
    import pickle

    data = RealVideoPairs(clips_from_voxceleb(vox_tree, (1, 0, 0)), "train", 32, cache_dir=tmp_path / "c", verbose=False)
    data.batch(2, torch.Generator().manual_seed(0))  # opens the memory maps
    blob = pickle.dumps(data)
    assert len(blob) < 20_000  # paths, not 24 frames of 32x32x3
    copy = pickle.loads(blob)
    torch.testing.assert_close(copy[3], data[3], equal_nan=True)


def test_prepare_cache_shards_clips_over_processes(vox_tree, tmp_path):
    clips = clips_from_voxceleb(vox_tree, (1, 0, 0))
    for rank in range(2):
        assert vd.prepare_cache(clips, 32, 1.0, "none", tmp_path / "c", rank=rank, world=2, verbose=False) == []
        assert len(list((tmp_path / "c").glob("*.npy"))) == 3 * (rank + 1)


def test_grouped_real_batches_share_one_clip_and_its_sources(vox_tree, tmp_path):
    """``drivers`` = 3: three consecutive items of one clip with the same source frame and their own driving frames
    (distinct where the clip has enough), each with a driving_other of another identity; 1 draws as before."""
    clips = clips_from_voxceleb(vox_tree, (1, 0, 0))
    data = RealVideoPairs(clips, "train", 32, num_sources=1, seed=5, cache_dir=tmp_path / "c", verbose=False)
    batch = data.batch(6, torch.Generator().manual_seed(0), drivers=3)
    assert batch["sources"].shape == (6, 1, 3, 32, 32) and batch["driving"].shape == (6, 3, 32, 32)
    px = (batch["sources"][:, 0, :, 0, 0] * 255).round()  # [B, 3] colours: (identity, clip, frame)
    drv = (batch["driving"][:, :, 0, 0] * 255).round()
    for g in (slice(0, 3), slice(3, 6)):
        assert torch.equal(batch["sources"][g], batch["sources"][g][:1].expand(3, -1, -1, -1, -1))
        assert len(set(batch["identity"][g].tolist())) == 1
        assert torch.equal(drv[g, :2], px[g, :2])  # the group's clip
        frames = drv[g, 2].tolist() + px[g.start:g.start + 1, 2].tolist()
        assert len(set(frames)) == 4  # the clips' 4 frames: all distinct
    assert (batch["identity"] != batch["identity_other"]).all()
    one = data.batch(8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(one, data.batch(8, torch.Generator().manual_seed(0), drivers=1), equal_nan=True)
    with pytest.raises(ConfigError, match="drivers"):
        data.batch(8, torch.Generator(), drivers=3)
