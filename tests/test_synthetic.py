"""The synthetic talking-head world: geometry, audio, determinism, dataset contract."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from x2face.data.synthetic import (
    POSE_LIMITS,
    SAMPLE_RATE,
    SPLITS,
    FrameParams,
    Motion,
    SyntheticPairs,
    SyntheticWorld,
    identity,
    paint_overlay,
    project,
    sample_video,
    video_motion,
)
from x2face.errors import InputError

SEED = SPLITS["test"][3]


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(128, cache_size=64)


def _marker_texture(world, seed, uv, color=(0.0, 1.0, 0.0), radius=0.018):
    """The identity's texture with a small disc of ``color`` at ``uv``."""
    tex = world.texture([seed])
    ident = identity(seed)
    overlay = torch.zeros(4, 16, 16)
    overlay[:3] = torch.tensor(color).view(3, 1, 1)
    lin = torch.linspace(-1, 1, 16)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    overlay[3] = ((xx**2 + yy**2) <= 1).float()
    return paint_overlay(tex, overlay, uv, (radius / (math.pi * ident.width), radius / ident.height))


def _marker_centroid(frame, mask):
    """Pixel centroid (x, y) of the pure-green marker pixels of frame [3, S, S] within mask [S, S]."""
    r, g, b = frame
    hit = (g > 0.25) & (g > 2.5 * r) & (g > 2.5 * b) & mask
    assert hit.sum() >= 3, "marker not visible"
    ys, xs = torch.nonzero(hit, as_tuple=True)
    return torch.stack([xs.float().mean(), ys.float().mean()])


@pytest.mark.parametrize("pose", [(30.0, 0.0, 0.0), (-30.0, 0.0, 0.0), (20.0, 15.0, 0.0), (0.0, -20.0, 10.0)])
def test_pose_moves_the_nose_tip_where_the_geometry_says(pose):
    """The nose tip (a marker painted at its UV point) lands where projecting the 3-D nose tip predicts,
    and a yaw moves it the right way by ``zoom * tip_z * sin(yaw)`` half-widths."""
    size = 256
    world = SyntheticWorld(size, cache_size=4)
    ident = identity(SEED)
    tip = torch.tensor(ident.nose_tip)
    tex = _marker_texture(world, SEED, (0.0, -ident.nose_tip[1] / ident.height))
    frontal = FrameParams.neutral(1)
    posed = FrameParams.neutral(1, pose=torch.tensor(pose))
    centroids = []
    for params in (frontal, posed):
        frame = world.render([SEED], params, texture=tex)[0]
        mask = world.face_mask([SEED], params)[0, 0] > 0
        got = _marker_centroid(frame, mask)
        expected = (project(tip[None], params)[0] + 1) / 2 * (size - 1)  # normalised -> pixels
        assert torch.allclose(got, expected, atol=1.5), (got, expected)
        centroids.append(got)
    if pose[1] == pose[2] == 0:
        shift = centroids[1][0] - centroids[0][0]
        want = ident.nose_tip[2] * math.sin(math.radians(pose[0])) * (size - 1) / 2
        assert math.copysign(1, float(shift)) == math.copysign(1, pose[0])  # positive yaw: nose to the right
        assert abs(float(shift) - want) < 2.0


def test_pitch_and_roll_signs(world):
    ident = identity(SEED)
    tip = torch.tensor([ident.nose_tip])
    up = project(tip, FrameParams.neutral(1, pose=torch.tensor([0.0, 20.0, 0.0])))
    assert float(up[0, 1]) < float(project(tip, FrameParams.neutral(1))[0, 1])  # positive pitch raises the nose
    crown = torch.tensor([[0.0, ident.height, 0.0]])
    tilted = project(crown, FrameParams.neutral(1, pose=torch.tensor([0.0, 0.0, 20.0])))
    assert float(tilted[0, 0]) > 0  # positive roll tilts the crown to the image's right


def test_head_shape_is_the_identity_shape(world):
    """A frontal head's silhouette is 2*width x 2*height (zoom 1); shape_from swaps the geometry only."""
    a, b = SPLITS["test"][0], SPLITS["test"][1]
    params = FrameParams.neutral(2)
    mask = world.face_mask([a, b], params)[:, 0]
    half = (world.image_size - 1) / 2
    for m, seed in zip(mask, (a, b)):
        cols = torch.nonzero(m.any(0))[:, 0]
        rows = torch.nonzero(m.any(1))[:, 0]
        width_px = float(cols.max() - cols.min() + 1)
        height_px = float(rows.max() - rows.min() + 1)
        ident = identity(seed)
        # ears may stick out at the sides; the crown and chin are the skull's
        assert width_px >= 2 * ident.width * half - 2
        assert abs(height_px - 2 * ident.height * half) <= 2.5
    swapped = world.face_mask([a], params.index([0]), shape_from=[b])[0, 0]
    assert torch.equal(swapped, mask[1] > 0)  # same pose: the silhouette is b's
    both = world.render([a], params.index([0]), shape_from=[b])
    assert not torch.equal(both, world.render([b], params.index([0])))  # but a's texture


def test_texture_override_changes_only_the_head(world):
    seeds = [SPLITS["test"][5], SPLITS["test"][6]]
    params = Motion.draw(2, torch.Generator().manual_seed(3)).at(torch.tensor([[1.0], [2.0]]))
    plain = world.render(seeds, params)
    same = world.render(seeds, params, texture=world.texture(seeds))
    assert torch.equal(plain, same)  # texture() is exactly what render uses
    painted = world.render(seeds, params, texture=torch.ones(2, 3, 64, 64) * torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1))
    changed = (painted - plain).abs().amax(1) > 1e-6  # [B, S, S]
    head = world.face_mask(seeds, params)[:, 0] > 0
    assert changed.any()
    assert not (changed & ~head).any()


def test_mouth_and_blink_change_only_the_face(world):
    seed = SPLITS["val"][0]
    closed = FrameParams.neutral(1)
    face = world.face_mask([seed], closed, region="face")[0, 0] > 0
    base = world.render([seed], closed)
    for field in ("mouth", "blink"):
        moved = world.render([seed], closed.replace(**{field: torch.ones(1)}))
        changed = (moved - base).abs().amax(1)[0] > 1e-4
        assert changed.sum() > 10, field
        assert not (changed & ~face).any(), field


def test_head_points_are_where_the_render_draws_the_head_and_turn_with_it(world):
    seed = SPLITS["val"][1]
    params = FrameParams.neutral(2, pose=torch.tensor([[0.0, 0.0, 0.0], [35.0, 10.0, 0.0]]))
    part, xyz = world.head_points([seed, seed], params)
    assert part.shape == (2, 128, 128) and part.dtype == torch.int8 and xyz.shape == (2, 128, 128, 3)
    assert torch.equal(part >= 0, world.surface([seed, seed], params).mask[:, 0])
    a, h, c = identity(seed).shape
    skull = xyz[part == 0]  # [N, 3] points on the head's ellipsoid, in its own frame
    on = (skull[:, 0] / a) ** 2 + (skull[:, 1] / h) ** 2 + (skull[:, 2] / c) ** 2
    torch.testing.assert_close(on, torch.ones_like(on), atol=1e-3, rtol=0)
    assert bool((part[0] == 1).any()) and bool((part[1] == 1).any())  # the nose, seen in both poses
    # the same point of the head keeps its coordinates: the frontal frame's most forward nose point is
    # still on the nose when turned (its nearest turned point is close), and it moved in the image
    nose0 = xyz[0][part[0] == 1]
    tip = nose0[nose0[:, 2].argmax()]
    nose1 = xyz[1][part[1] == 1]
    assert float((nose1 - tip).norm(dim=1).min()) < 0.02
    pix0 = torch.nonzero((xyz[0] - tip).norm(dim=-1) < 1e-6)[0]
    pix1 = torch.nonzero(part[1] == 1)[(nose1 - tip).norm(dim=1).argmin()]
    assert int(pix1[1]) != int(pix0[1])
    chunked = SyntheticWorld(128, cache_size=4, chunk_pixels=128 * 128)  # one frame per chunk
    p2, x2 = chunked.head_points([seed, seed], params)
    assert torch.equal(p2, part) and torch.allclose(x2, xyz)


def test_render_sizes_devices_and_ranges():
    params = FrameParams.neutral(3, pose=torch.tensor([10.0, 5.0, -5.0]))
    for size in (64, 256):
        w = SyntheticWorld(size, cache_size=8)
        out = w.render([1, 2, 3], params)
        assert out.shape == (3, 3, size, size) and out.dtype == torch.float32
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert w.texture([1]).shape == (1, 3, w.texture_size, w.texture_size)


def test_determinism_and_batch_independence(world):
    params = Motion.draw(3, torch.Generator().manual_seed(0)).at(torch.rand(3, 1, generator=torch.Generator().manual_seed(1)))
    together = world.render([7, 8, 9], params)
    fresh = SyntheticWorld(128, cache_size=2)  # another cache, other batch compositions
    alone = torch.cat([fresh.render([s], params.index([i])) for i, s in enumerate([7, 8, 9])])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    assert identity(7) == identity(7) and identity(7) != identity(8)
    a = sample_video(11, 2, 5, 64)
    b = sample_video(11, 2, 5, 64)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.frames, sample_video(11, 3, 5, 64).frames)


def test_splits_are_disjoint_and_large():
    ranges = list(SPLITS.values())
    for i, r in enumerate(ranges):
        assert len(r) >= 10_000
        for q in ranges[i + 1:]:
            assert r.stop <= q.start or q.stop <= r.start
    assert set(SPLITS) == {"train", "val", "test"}


def test_identities_vary():
    ids = [identity(s) for s in range(200)]
    widths = np.array([i.width for i in ids])
    assert widths.std() > 0.03
    assert 0.1 < np.mean([i.glasses for i in ids]) < 0.4
    assert 0.1 < np.mean([i.beard > 0 for i in ids]) < 0.4
    assert len({i.hair for i in ids}) > 50


def test_video_trajectories_are_smooth_and_in_range():
    motion = video_motion(5, 0)
    t = torch.arange(250, dtype=torch.float32).view(1, -1) / 25
    params = motion.at(t)
    lim = torch.tensor(POSE_LIMITS)
    assert (params.pose.abs() <= lim + 1e-4).all()
    assert float((params.pose[1:] - params.pose[:-1]).abs().max()) < 6.0  # degrees per frame at 25 fps
    for x in (params.mouth, params.blink):
        assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert float(params.mouth.max()) > 0.5 and float((params.mouth == 0).float().mean()) > 0.05  # talks and pauses


def _frame_rms(audio, fps, n):
    hop = int(SAMPLE_RATE / fps)
    return torch.stack([audio[i * hop:(i + 1) * hop].pow(2).mean().sqrt() for i in range(n)])


def test_mouth_opening_makes_the_sound():
    video = sample_video(SPLITS["test"][0], 0, 250, 64, with_frames=False)
    assert video.sample_rate == SAMPLE_RATE and video.audio.dtype == torch.float32
    assert len(video.audio) == 10 * SAMPLE_RATE
    rms = _frame_rms(video.audio, video.fps, 250)
    mouth = video.params.mouth
    r = float(torch.corrcoef(torch.stack([rms, mouth]))[0, 1])
    assert r > 0.8, r
    closed, open_ = rms[mouth < 0.02], rms[mouth > 0.5]
    assert len(closed) > 5 and len(open_) > 5
    assert float(open_.median()) > 5 * float(closed.median())


def test_first_formant_rises_with_the_opening():
    """The spectral centroid below 1.2 kHz (where F1 lives) grows with the mouth opening."""
    video = sample_video(SPLITS["test"][1], 0, 250, 64, with_frames=False)
    hop = SAMPLE_RATE // 25
    cents, mouths = [], []
    for i in range(250):
        if video.params.mouth[i] < 0.15:
            continue
        seg = video.audio[i * hop:(i + 1) * hop] * torch.hann_window(hop)
        spec = torch.fft.rfft(seg).abs()
        freqs = torch.fft.rfftfreq(hop, 1 / SAMPLE_RATE)
        band = freqs < 1200
        cents.append(float((spec[band] * freqs[band]).sum() / spec[band].sum()))
        mouths.append(float(video.params.mouth[i]))
    assert len(cents) > 30
    assert np.corrcoef(cents, mouths)[0, 1] > 0.5


def _pitch(audio, mouth, fps=25):
    """Median autocorrelation pitch (Hz) over frames with the mouth well open."""
    hop = int(SAMPLE_RATE / fps)
    out = []
    for i in range(len(mouth)):
        if mouth[i] < 0.4:
            continue
        seg = audio[i * hop: i * hop + 2 * hop].numpy()
        seg = seg - seg.mean()
        ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        out.append(SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(out))


def test_each_identity_has_its_pitch():
    pitches = []
    for seed in (SPLITS["test"][0], SPLITS["test"][2]):
        video = sample_video(seed, 1, 150, 64, with_frames=False)
        got = _pitch(video.audio, video.params.mouth)
        want = identity(seed).voice_pitch
        assert abs(got - want) / want < 0.1, (got, want)
        pitches.append(got)
    assert abs(pitches[0] - pitches[1]) > 10 or abs(identity(SPLITS["test"][0]).voice_pitch - identity(SPLITS["test"][2]).voice_pitch) < 10


def test_dataset_items_and_batches():
    data = SyntheticPairs("val", 64, num_sources=2, length=5, seed=1)
    assert len(data) == 5
    item = data[3]
    assert item["sources"].shape == (2, 3, 64, 64)
    assert item["driving"].shape == item["driving_other"].shape == (3, 64, 64)
    assert item["identity"].dtype == torch.long and int(item["identity"]) in SPLITS["val"]
    assert int(item["identity_other"]) in SPLITS["val"] and int(item["identity_other"]) != int(item["identity"])
    assert item["pose"].shape == item["pose_other"].shape == (3,)
    again = SyntheticPairs("val", 64, num_sources=2, length=5, seed=1)[3]
    for k in item:
        assert torch.equal(item[k], again[k]), k
    with pytest.raises(IndexError):
        data[5]
    clone = pickle.loads(pickle.dumps(data))  # what DataLoader workers get: no texture cache inside
    assert clone._world is None and torch.equal(clone[3]["driving"], item["driving"])
    batch = data.batch(4, torch.Generator().manual_seed(0))
    assert batch["sources"].shape == (4, 2, 3, 64, 64) and batch["driving"].shape == (4, 3, 64, 64)
    assert batch["identity"].shape == (4,) and (batch["identity"] != batch["identity_other"]).all()
    same = data.batch(4, torch.Generator().manual_seed(0))
    assert all(torch.equal(batch[k], same[k]) for k in batch)
    # the driving frame is the rendered truth of its identity at its pose
    item, params = data.draw(2, torch.Generator().manual_seed(5))
    truth = data.world.render(item["identity"].tolist(), params["driving"])
    assert torch.equal(truth, item["driving"])
    assert torch.equal(params["driving"].pose, item["pose"])


def test_bad_arguments_are_clear(world):
    with pytest.raises(InputError, match="split"):
        SyntheticPairs("training", 64)
    with pytest.raises(InputError, match="image size"):
        SyntheticWorld(8)
    with pytest.raises(InputError, match="seeds"):
        world.render([1, 2], FrameParams.neutral(3))
    with pytest.raises(InputError, match="texture"):
        world.render([1], FrameParams.neutral(1), texture=torch.zeros(1, 4, 8, 8))
    with pytest.raises(InputError, match="pose"):
        FrameParams.neutral(2).replace(pose=torch.zeros(2, 2))
    with pytest.raises(InputError, match="num_frames"):
        sample_video(1, 1, 0, 64)
    with pytest.raises(InputError, match="int"):
        identity("abc")


def test_texture_caches_evict_without_losing_seeds_in_use():
    """Small caches, many identities: renders stay identical to a fresh world's (eviction must not drop a seed
    that the same render still needs)."""
    small = SyntheticWorld(64, cache_size=8)
    small.float_cache_size = 4
    for i in range(20):
        seeds = [i, i + 1, i + 2, 3, i + 5, 100 + i]
        out = small.render(seeds, FrameParams.neutral(6))
    assert len(small._textures) <= 8
    torch.testing.assert_close(out, SyntheticWorld(64).render(seeds, FrameParams.neutral(6)), rtol=0, atol=0)


def test_grouped_batches_share_sources_and_render_each_driving_frame():
    """``drivers`` = 3: groups of three consecutive items of one video with the same source frames, each
    driving frame the rendered truth at its own time, and a driving_other of another identity per item."""
    data = SyntheticPairs("val", 64, num_sources=2, seed=1)
    item, params = data.draw(6, torch.Generator().manual_seed(2), drivers=3)
    assert item["sources"].shape == (6, 2, 3, 64, 64) and item["driving"].shape == (6, 3, 64, 64)
    for group in (slice(0, 3), slice(3, 6)):
        src, ids = item["sources"][group], item["identity"][group]
        assert all(torch.equal(src[0], s) for s in src[1:]) and len(set(ids.tolist())) == 1
    assert not torch.equal(item["sources"][0], item["sources"][3])
    assert all(not torch.equal(item["driving"][i], item["driving"][i + 1]) for i in (0, 1, 3, 4))
    assert (item["identity"] != item["identity_other"]).all()
    ids = item["identity"].tolist()
    assert torch.equal(data.world.render(ids, params["driving"]), item["driving"])
    assert torch.equal(params["driving"].pose, item["pose"])
    sources = data.world.render([i for i in ids for _ in range(2)], params["sources"])  # [B*K, 3, S, S]
    assert torch.equal(sources.view(6, 2, 3, 64, 64), item["sources"])  # [B*K, ...] -> [B, K, ...]
    plain = data.batch(6, torch.Generator().manual_seed(2), drivers=1)
    assert not torch.equal(plain["sources"][0], plain["sources"][1])
    for bad in (4, 0, True):
        with pytest.raises(InputError, match="drivers"):
            data.batch(6, torch.Generator(), drivers=bad)
