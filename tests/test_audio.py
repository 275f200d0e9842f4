"""Audio control (section 4.2): features and their timing, the SyncNet-style network and its weights,
the least-squares map, the driving formula, audio inputs of every kind, and the commands."""
from __future__ import annotations

import itertools
import subprocess

import numpy as np
import pytest
import torch
import torch.nn as nn

from x2face import X2Face, X2FaceConfig
from x2face.control.audio import (
    AudioDriveSettings,
    audio_vectors,
    drive_audio,
    drive_from_audio,
    fit_audio_map,
    prepare_audio,
)
from x2face.control.audio_net import (
    AudioStream,
    LipStream,
    SyncNet,
    audio_net_config,
    load_audio_net,
    load_syncnet_v2,
    save_audio_net,
)
from x2face.control.features import (
    FEATURES,
    build_features,
    mfcc_steps,
    mfcc_windows,
    num_frames_for,
)
from x2face.errors import ConfigError, InputError, MediaError, WeightsError
from x2face.faces import FaceCropper

from helpers import WholeImage, best_lag, write_silence

SR = 16000


def tone(seconds=1.0, freq=220.0, amp=0.3, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ features
def test_frames_cover_the_audio_at_25_fps():
    assert num_frames_for(2 * SR) == 50
    assert num_frames_for(SR + 100) == 25 and num_frames_for(10) == 1
    w = mfcc_windows(tone(2.0))
    assert w.shape == (50, 13, 20) and w.dtype == torch.float32
    assert build_features("mfcc").extract(tone(2.0)).shape == (50, 260)
    assert mfcc_windows(tone(1.0), fps=30).shape == (30, 13, 20)


def test_windows_are_0_2_s_centred_on_each_frame():
    wav = np.zeros(2 * SR, np.float32)
    wav[SR - 40:SR + 40] = 0.8  # a 5 ms click at exactly 1.0 s = frame 25 at 25 fps
    energy = mfcc_windows(wav)[:, 0, :]  # [T, 20] log energy per 10 ms step
    hot = energy.max(1).values > energy.min() + 10.0
    assert torch.nonzero(hot).flatten().tolist() == [23, 24, 25, 26, 27]  # frames within 0.1 s of the click
    centre = energy[25]
    assert int(centre.argmax()) in (9, 10)  # the middle of frame 25's window
    assert float(energy[25, 0]) < energy.min() + 1.0 and float(energy[25, -1]) < energy.min() + 1.0


def test_mfcc_match_python_speech_features():
    psf = pytest.importorskip("python_speech_features")  # not a dependency: `pip install python_speech_features`
    g = np.random.default_rng(0)
    wav = (0.3 * tone(1.0) + 0.02 * g.normal(size=SR)).astype(np.float32)
    # its frame j starts at sample 160 j; x2face's step j at 160 j - 120: shift the signal to compare
    ref = psf.mfcc(np.concatenate([np.zeros(120), wav * 32768.0]), SR)
    ours = mfcc_steps(wav, 0, 90).numpy()
    np.testing.assert_allclose(ours[1:90], ref[1:90], atol=5e-3)  # step 0 differs by the pre-emphasis edge


def test_gain_shifts_only_the_log_energy():
    noise = np.random.default_rng(0).normal(size=SR // 2).astype(np.float32)  # energy in every mel band
    a = mfcc_steps(0.05 * noise, 0, 40)
    b = mfcc_steps(0.2 * noise, 0, 40)
    torch.testing.assert_close(b[5:35, 0] - a[5:35, 0], torch.full((30,), 2 * np.log(4.0)), atol=0.01, rtol=0)
    torch.testing.assert_close(b[5:35, 1:], a[5:35, 1:], atol=0.05, rtol=0)


def test_streaming_in_chunks_gives_the_same_features():
    wav = np.random.default_rng(0).normal(scale=0.1, size=3 * SR).astype(np.float32)
    ex = build_features("syncnet-small", 32)
    whole = ex.extract(wav)
    chunks = list(ex.iter_features(wav, chunk_frames=7))
    assert len(chunks) == 11 and all(len(c) <= 7 for c in chunks)
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-5)


def test_silence_and_clipping_give_finite_features():
    ex = build_features("mfcc")
    silent = ex.extract(np.zeros(SR, np.float32))
    assert np.isfinite(silent).all()
    np.testing.assert_allclose(silent[5], ex.silence(), atol=1e-4)  # a still photo's feature
    clipped = ex.extract(np.clip(tone(1.0, amp=50.0), -1, 1))
    assert np.isfinite(clipped).all() and clipped[5, 0] > silent[5, 0]


def test_bad_waveforms_are_refused():
    ex = build_features("mfcc")
    for bad in (np.zeros(0, np.float32), np.full(100, np.nan, np.float32), np.zeros((2, 100), np.float32),
                np.zeros(100, np.int16), "speech.wav"):
        with pytest.raises(InputError):
            ex.extract(bad)
    with pytest.raises(ConfigError):
        build_features("mfcc", 256)
    with pytest.raises(ConfigError):
        build_features("wav2vec")
    assert set(FEATURES) >= {"mfcc", "syncnet", "syncnet-small"}


# ------------------------------------------------------------------------------------------------ networks
def test_audio_and_lip_streams_shapes_and_gradients():
    cfg = audio_net_config("syncnet-small", 64)
    net = SyncNet(cfg)
    a, v = net(torch.randn(3, 1, 13, 20), torch.rand(3, 5, 3, 32, 64))
    assert a.shape == (3, 64) and v.shape == (3, 64)
    (a.sum() + v.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    paper = AudioStream(audio_net_config("syncnet"))
    assert paper(torch.randn(2, 1, 13, 20)).shape == (2, 256)
    assert [c.conv.out_channels for c in paper.convs] == [64, 192, 384, 256, 256, 512]
    assert LipStream(cfg)(torch.rand(2, 5, 3, 32, 64)).shape == (2, 64)


def syncnet_v2_layout(out_dim=1024) -> tuple[nn.Sequential, nn.Sequential]:
    """The public syncnet_v2 audio stream's layer layout (netcnnaud, netfcaud), for a fake checkpoint."""
    cnn = nn.Sequential(
        nn.Conv2d(1, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(1, 1),
        nn.Conv2d(64, 192, 3, 1, 1), nn.BatchNorm2d(192), nn.ReLU(), nn.MaxPool2d((3, 3), (1, 2)),
        nn.Conv2d(192, 384, 3, 1, 1), nn.BatchNorm2d(384), nn.ReLU(),
        nn.Conv2d(384, 256, 3, 1, 1), nn.BatchNorm2d(256), nn.ReLU(),
        nn.Conv2d(256, 256, 3, 1, 1), nn.BatchNorm2d(256), nn.ReLU(), nn.MaxPool2d((3, 3), (2, 2)),
        nn.Conv2d(256, 512, (5, 4), 1, 0), nn.BatchNorm2d(512), nn.ReLU())
    fc = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, out_dim))
    torch.manual_seed(0)
    for m in list(cnn) + list(fc):
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return cnn.eval(), fc.eval()


def test_syncnet_v2_weights_load_and_compute_the_same(tmp_path):
    cnn, fc = syncnet_v2_layout()
    state = {f"netcnnaud.{k}": v for k, v in cnn.state_dict().items()}
    state.update({f"netfcaud.{k}": v for k, v in fc.state_dict().items()})
    state["netcnnlip.0.weight"] = torch.randn(96, 3, 5, 7, 7)  # the lip stream is ignored
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)
    stream = load_syncnet_v2(path)
    assert stream.config.name == "syncnet" and stream.config.out_dim == 1024
    x = torch.randn(4, 1, 13, 20)
    with torch.no_grad():
        torch.testing.assert_close(stream(x), fc(cnn(x).flatten(1)), atol=1e-4, rtol=1e-4)
    # a missing tensor, a wrong shape and a file that is not a state dict are refused by name
    del state["netfcaud.3.bias"]
    torch.save(state, tmp_path / "missing.model")
    with pytest.raises(WeightsError, match="fc2.bias"):
        load_syncnet_v2(tmp_path / "missing.model")
    state["netfcaud.3.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "shape.model")
    with pytest.raises(WeightsError, match="shape"):
        load_syncnet_v2(tmp_path / "shape.model")
    (tmp_path / "junk.model").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        load_syncnet_v2(tmp_path / "junk.model")


def test_audio_net_round_trip(tmp_path):
    net = SyncNet(audio_net_config("syncnet-small", 48)).eval()
    save_audio_net(net, tmp_path / "an", {"note": "test"})
    loaded = load_audio_net(tmp_path / "an")
    x = torch.randn(2, 1, 13, 20)
    with torch.no_grad():
        torch.testing.assert_close(loaded.audio(x), net.audio(x))
    with pytest.raises(WeightsError):
        load_audio_net(tmp_path)


# ------------------------------------------------------------------------------------------------ map + formula
def test_least_squares_recovers_a_known_linear_map():
    g = np.random.default_rng(0)
    a = g.normal(size=(500, 20)) * g.uniform(0.1, 30.0, size=20) + g.normal(scale=50, size=20)  # any scale/offset
    w, b = g.normal(size=(8, 20)) / 10.0, g.normal(size=8)
    v = a @ w.T + b
    amap = fit_audio_map(a, v)
    at = torch.from_numpy(a).float()
    with torch.no_grad():
        torch.testing.assert_close(amap(at), torch.from_numpy(v).float(), atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(amap.delta(at[:5], at[5:6]), amap(at[:5]) - amap(at[5:6]), atol=1e-3, rtol=1e-3)
        # the paper's driving applies the same weights to unnormalised features
        raw = amap.delta(at[:5], at[5:6], normalise=False)
        torch.testing.assert_close(raw, (at[:5] - at[5:6]) @ amap.linear.weight.T)
    with pytest.raises(InputError):
        fit_audio_map(a[:10], v[:9])


def heads_model(features="mfcc", dim=260, pose=True):
    torch.manual_seed(0)
    cfg = X2FaceConfig(image_size=64, base_channels=8, pose_head=pose, audio_head=True, audio_feature_dim=dim,
                       audio_features=features)
    model = X2Face(cfg).eval()
    with torch.no_grad():
        model.audio.linear.weight.normal_(0, 0.01)
        model.audio.feature_std.uniform_(0.5, 2.0)
    if pose:  # pose maps fitted the way fit-pose fits them (so f_v->p reads back what f_p->v moves)
        from x2face.control.pose import fit_pose_maps

        g = np.random.default_rng(1)
        v = np.abs(g.normal(size=(300, 128)))
        model.pose.load_state_dict(fit_pose_maps(v, v @ g.normal(size=(128, 3)) * 3.0).state_dict())
    return model


def test_formula_of_section_4_2():
    model = heads_model()
    v_src = torch.rand(1, 128)
    a_drv, a_src = torch.randn(6, 260) * 5, torch.randn(260) * 5
    maps, amap = model.pose, model.audio
    with torch.no_grad():
        paper = audio_vectors(model, v_src, a_drv, a_src, AudioDriveSettings(normalise=False, pose_correction="paper"))
        delta = (a_drv - a_src) @ amap.linear.weight.T
        p_src = maps.vector_to_pose(v_src)
        p_audio = maps.vector_to_pose(amap(a_drv, normalise=False))
        expected = v_src + delta + maps.pose_to_vector(p_audio) - maps.pose_to_vector(p_src)
        torch.testing.assert_close(paper, expected)
        keep = audio_vectors(model, v_src, a_drv, a_src, AudioDriveSettings(pose_correction="keep-source"))
        torch.testing.assert_close(maps.vector_to_pose(keep), p_src.expand(6, 3), atol=1e-3, rtol=1e-3)
        none = audio_vectors(model, v_src, a_drv, a_src, AudioDriveSettings(pose_correction="none", gain=2.0))
        torch.testing.assert_close(none, v_src + 2.0 * amap.delta(a_drv, a_src.reshape(1, -1)))
        same = audio_vectors(model, v_src, a_src.expand(3, 260), a_src, AudioDriveSettings(pose_correction="keep-source"))
        torch.testing.assert_close(same, v_src.expand(3, 128), atol=1e-5, rtol=1e-5)  # a_drv = a_src: the source
    no_pose = heads_model(pose=False)
    with torch.no_grad():
        out = audio_vectors(no_pose, v_src, a_drv, a_src, AudioDriveSettings(pose_correction="paper"))
        torch.testing.assert_close(out, v_src + no_pose.audio.delta(a_drv, a_src.reshape(1, -1)))  # skipped
    with pytest.raises(ConfigError):
        AudioDriveSettings(pose_correction="sideways")
    for gain in (float("nan"), -1.0, 1e30):  # (1e30 rendered noise without a word)
        with pytest.raises(ConfigError, match="the audio gain must be from 0 to 10"):
            AudioDriveSettings(gain=gain)
    with pytest.raises(InputError):
        audio_vectors(model, v_src, torch.zeros(2, 100), a_src)


def test_audio_head_with_learned_features_round_trips(tmp_path):
    model = heads_model("syncnet-small", 256)
    assert any(k.startswith("audio.extractor.net.convs") for k in model.state_dict())
    model.save_pretrained(tmp_path / "m")
    loaded = X2Face.from_pretrained(tmp_path / "m")  # strict
    w = loaded.audio.extractor.net.fc2.weight
    torch.testing.assert_close(w, model.audio.extractor.net.fc2.weight)
    assert loaded.audio.extractor.name == "syncnet-small" and loaded.audio.extractor.learned


# ------------------------------------------------------------------------------------------------ inputs
def test_prepare_audio_arrays():
    stereo = np.stack([tone(1.0, sr=48000), -tone(1.0, sr=48000) * 0.5])  # [2, N] at 48 kHz
    mono = prepare_audio(stereo, 48000)
    assert mono.dtype == np.float32 and mono.shape == (SR,)
    np.testing.assert_allclose(prepare_audio(stereo.T.copy(), 48000), mono, atol=1e-6)  # [N, 2] too
    ints = (tone(0.5) * 32767).astype(np.int16)
    np.testing.assert_allclose(prepare_audio(ints, SR), tone(0.5), atol=1e-3)
    loud = prepare_audio(tone(0.5, amp=3.0), SR)
    assert loud.max() <= 1.0 and loud.min() >= -1.0
    assert np.isfinite(prepare_audio(np.array([np.nan, 1.0, np.inf] * 100, np.float32), SR)).all()
    assert prepare_audio(tone(2.0), SR, seconds=0.5).shape == (SR // 2,)
    ramp = np.linspace(0, 0.99, 2 * SR, dtype=np.float32)  # 2 s: the sample's value says where it is
    part = prepare_audio(ramp, SR, start=1.5, seconds=0.25)
    assert part.shape == (SR // 4,) and abs(part[0] - ramp[int(1.5 * SR)]) < 1e-6
    with pytest.raises(MediaError, match="past its end"):
        prepare_audio(ramp, SR, start=2.0)
    for bad, rate in ((tone(1.0), None), (np.zeros(0, np.float32), SR), (np.zeros((3, 4, 5), np.float32), SR),
                      (tone(1.0), 50)):
        with pytest.raises(InputError):
            prepare_audio(bad, rate)
    with pytest.raises(InputError):
        prepare_audio(np.zeros(11 * 60 * 1000, np.float32), 1000)  # 11 minutes: over the 10-minute limit


def _manifest(real_dir):
    import csv

    with (real_dir / "MANIFEST.tsv").open(newline="", encoding="utf-8") as f:
        return {r["file"]: r for r in csv.DictReader(f, delimiter="\t")}


def test_speech_files_of_every_kind(real_dir, tmp_path):
    from x2face.media import ffmpeg_exe

    rows = _manifest(real_dir)
    wanted = {"24-bit 48 kHz stereo": "speech/OpenTalker_SadTalker__examples_driven_audio_deyu.wav",
              "44.1 kHz stereo": "speech/OpenTalker_DPE__docs_1.wav",
              "16 kHz mono": "speech/ggerganov_whisper.cpp__samples_jfk.wav"}
    present = {k: real_dir / v for k, v in wanted.items() if v in rows and (real_dir / v).is_file()}
    if not present:
        pytest.skip("no speech files in the shared folder")
    for kind, path in present.items():
        wav = prepare_audio(path)
        seconds = float(rows[str(path.relative_to(real_dir))]["seconds"])
        assert wav.ndim == 1 and wav.dtype == np.float32, kind
        assert abs(wav.shape[0] / SR - seconds) < 0.05, kind
        assert 0.01 < np.abs(wav).max() <= 1.0, kind
    # mp3, m4a and webm/opus (what browsers record): made from a speech file with ffmpeg
    src = next(iter(present.values()))
    for ext, codec in ((".mp3", ["-c:a", "libmp3lame"]), (".m4a", ["-c:a", "aac"]), (".webm", ["-c:a", "libopus"])):
        out = tmp_path / f"speech{ext}"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-t", "2", *codec, str(out)], check=True)
        wav = prepare_audio(out)
        assert abs(wav.shape[0] / SR - 2.0) < 0.1 and np.abs(wav).max() > 0.01, ext
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(MediaError):
        prepare_audio(tmp_path / "broken.wav")
    with pytest.raises(MediaError):
        prepare_audio(tmp_path / "missing.mp3")


def test_a_real_clip_gives_aligned_face_crops_and_sound(real_dir, tmp_path):
    from x2face.control.fit import real_av_clip

    path = real_dir / "clips" / "rizkiarm_LipNet__evaluation_samples_GRID_bbaf2n.mpg"  # MPEG-1 with sound, 3 s
    if not path.is_file():
        pytest.skip("GRID example clip missing from the shared folder")
    clip = real_av_clip(path, 64, cache_dir=tmp_path)
    assert clip is not None and clip.fps == 25.0
    assert clip.frames.shape[1:] == (3, 64, 64) and clip.frames.shape[0] == num_frames_for(clip.wav.shape[0])
    assert clip.valid.float().mean() > 0.8 and abs(clip.wav.shape[0] / SR - 3.0) < 0.1
    cached = real_av_clip(path, 64, cache_dir=tmp_path)  # the second time it comes from the cache
    assert len(list(tmp_path.glob("av-*.npz"))) == 1
    torch.testing.assert_close(cached.frames, clip.frames)
    with pytest.raises(InputError):
        real_av_clip(tmp_path / "heldout" / "x.mp4", 64)


# ------------------------------------------------------------------------------------------------ driving
@pytest.fixture(scope="module")
def audio_pipe():
    from x2face.pipeline import X2FacePipeline

    model = heads_model("mfcc", 260)
    pipe = X2FacePipeline(model, cropper=FaceCropper(64, backend=WholeImage()))
    pipe.set_source(np.full((64, 64, 3), 150, np.uint8) + np.arange(64, dtype=np.uint8)[:, None, None])
    return pipe


def test_drive_audio_frames_follow_the_audio(audio_pipe):
    drive = drive_audio(audio_pipe, tone(2.0, sr=44100) * 0.5, 44100)
    assert drive.sample_rate == SR and drive.fps == 25.0 and drive.num_frames == 50
    assert drive.audio.shape == (2 * SR,)
    frames = list(drive.frames)
    assert len(frames) == 50 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    # silence is a valid input: with the source's own pose kept, it is the source face
    quiet = list(drive_audio(audio_pipe, np.zeros(SR, np.float32), SR,
                             settings=AudioDriveSettings(pose_correction="keep-source")).frames)
    own = next(audio_pipe.drive_vectors(audio_pipe.source_vector()))
    assert len(quiet) == 25 and max(np.abs(f.astype(int) - own.astype(int)).max() for f in quiet) <= 1
    # and the user is told why nothing moves; a quiet tone (-40 dBFS) is not silence
    assert drive_audio(audio_pipe, np.full(SR, 1e-4, np.float32), SR).silent
    assert "silent" in drive_audio(audio_pipe, np.zeros(SR, np.float32), SR).note()
    assert not drive.silent and drive.note() == ""
    assert not drive_audio(audio_pipe, tone(1.0) * 0.01, SR).silent
    assert len(list(audio_pipe.drive_audio(tone(0.4), SR).frames)) == 10  # the pipeline's method delegates
    assert len(list(drive_audio(audio_pipe, tone(0.04), SR).frames)) == 1  # one frame's worth: one frame
    with pytest.raises(InputError, match="the audio holds 20 ms of sound: less than one video frame .40 ms."):
        drive_audio(audio_pipe, tone(0.02), SR)  # (a truncated file, a one-sample WAV: no "silent" 1-frame video)


def test_ten_minutes_of_audio_stream_in_bounded_memory(audio_pipe):
    ten_minutes = np.zeros(600 * SR, np.float32)
    ten_minutes[::97] = 0.2  # not silent
    drive = drive_audio(audio_pipe, ten_minutes, SR, chunk_frames=100)
    assert drive.num_frames == 15000
    first = list(itertools.islice(drive.frames, 120))  # frames come before the rest is computed
    assert len(first) == 120


def test_drive_without_an_audio_head_says_how_to_get_one(tiny_model):
    from x2face.pipeline import X2FacePipeline

    pipe = X2FacePipeline(tiny_model, cropper=FaceCropper(64, backend=WholeImage()))
    pipe.set_source(np.full((64, 64, 3), 120, np.uint8))
    with pytest.raises(WeightsError, match="fit-audio"):
        drive_audio(pipe, tone(1.0), SR)


def test_drive_from_audio_for_the_evaluation():
    model = heads_model("mfcc", 260)
    sources = torch.rand(1, 2, 3, 64, 64)
    frames = drive_from_audio(model, sources, tone(1.0), SR, 25.0, 20, "mfcc")
    assert frames.shape == (20, 3, 64, 64)
    assert drive_from_audio(model, sources, tone(1.0), SR, 25.0, 20, "learned") is None  # mfcc head only


def test_mouth_probe_separates_the_model_from_the_sound():
    from x2face.control.fit import AudioPairs, mouth_probe

    g = np.random.default_rng(0)
    direction = g.normal(size=16)  # where the (made-up) model keeps the mouth in its vector

    def pairs(n_clips, informative_audio):
        mouth = g.random(n_clips * 50).astype(np.float32)
        groups = np.repeat(np.arange(n_clips), 50)
        vectors = np.outer(mouth, direction) + 0.05 * g.normal(size=(len(mouth), 16)) + groups[:, None] * 0.3
        sound = mouth[:, None] if informative_audio else g.random((len(mouth), 1))
        feats = np.concatenate([sound, g.normal(size=(len(mouth), 3))], 1).astype(np.float32)
        return AudioPairs({"f": feats}, vectors.astype(np.float32), groups, mouth, {"clips": n_clips, "frames": len(mouth)})

    train, val = pairs(6, True), pairs(3, True)
    amap = fit_audio_map(train.features["f"], train.vectors, groups=train.groups)
    probe = mouth_probe(amap, train, val)
    assert probe["vectors_r"] > 0.95 and probe["audio_r"] > 0.95
    deaf_train, deaf_val = pairs(6, False), pairs(3, False)
    deaf = mouth_probe(fit_audio_map(deaf_train.features["f"], deaf_train.vectors, groups=deaf_train.groups),
                       deaf_train, deaf_val)
    assert deaf["vectors_r"] > 0.95 and abs(deaf["audio_r"]) < 0.3  # the model knows the mouth, the sound does not


def test_mfcc_baseline_is_fitted_once_and_kept_out_of_the_weights(tiny_model):
    from x2face.control.fit import load_extractor, mfcc_baseline

    keys = set(tiny_model.state_dict())
    base = mfcc_baseline(tiny_model, videos=2, seconds=1.0)
    assert base is mfcc_baseline(tiny_model, videos=2, seconds=1.0)
    assert base.extractor.name == "mfcc" and base.linear.weight.shape == (128, 260)
    assert set(tiny_model.state_dict()) == keys
    with pytest.raises(InputError, match="train-audio"):
        load_extractor("syncnet")  # learned features need trained weights


# ------------------------------------------------------------------------------------------------ commands
@pytest.mark.slow
def test_train_audio_then_fit_audio_then_animate(tmp_path, tiny_model, real_dir, capsys):
    from x2face.cli import main
    from x2face.hub import read_provenance
    from x2face.media import VideoReader, probe_video, read_audio

    net_dir, weights, out = tmp_path / "an", tmp_path / "w", tmp_path / "talk"
    assert main(["train-audio", "--out", str(net_dir), "--steps", "3", "--batch", "8", "--videos", "2", "--seconds",
                 "2", "--val-videos", "1", "--real", "none", "--threads", "1"]) == 0
    net = load_audio_net(net_dir)
    assert net.config.name == "syncnet-small"
    tiny_model.save_pretrained(weights)
    assert main(["fit-audio", "--weights", str(weights), "--out", str(out), "--audio-net", str(net_dir),
                 "--videos", "2", "--seconds", "2", "--val-videos", "1", "--real", "none", "--threads", "1"]) == 0
    model = X2Face.from_pretrained(out)
    assert model.config.audio_head and model.config.audio_features == "syncnet-small"
    torch.testing.assert_close(model.audio.extractor.net.fc2.weight, net.audio.fc2.weight)
    prov = read_provenance(str(out))["audio_head"]
    assert prov["pairs"]["frames"] == 100 and set(prov["val_mouth_probe"]) == {"vectors_r", "audio_r"}
    assert main(["fit-audio", "--weights", str(weights), "--out", str(tmp_path / "mfcc"), "--features", "mfcc",
                 "--videos", "1", "--seconds", "2", "--val-videos", "0", "--real", "none"]) == 0
    assert X2Face.from_pretrained(tmp_path / "mfcc").config.audio_feature_dim == 260
    # animate --audio: 25 fps frames with the recording muxed in
    photo = real_dir / "photos" / "jixinya_EAMM__test_image_anne.png"
    speech = real_dir / "speech" / "ggerganov_whisper.cpp__samples_jfk.wav"
    if not (photo.is_file() and speech.is_file()):
        pytest.skip("example photo or speech missing from the shared folder")
    video = tmp_path / "talk.mp4"
    assert main(["animate", "--source", str(photo), "--audio", str(speech), "--weights", str(out), "--out", str(video),
                 "--seconds", "1.2", "--quiet", "--device", "cpu"]) == 0
    info = probe_video(video)
    assert info.has_audio and abs(float(info.fps) - 25.0) < 0.01
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "; driven by ggerganov_whisper.cpp__samples_jfk.wav (" in summary and ";  of" not in summary, summary
    assert "silent" not in summary
    # --start: the speech from there, its sound too (the frames' audio is the recording's from 5 s)
    assert main(["animate", "--source", str(photo), "--audio", str(speech), "--weights", str(out), "--out", str(video),
                 "--start", "5", "--seconds", "1", "--quiet", "--device", "cpu", "--overwrite"]) == 0
    assert "; driven by ggerganov_whisper.cpp__samples_jfk.wav from 5 s" in capsys.readouterr().out
    assert sum(1 for _ in VideoReader(video)) == 25
    lag, corr = best_lag(read_audio(speech, start=5, seconds=1)[0], read_audio(video)[0])
    assert abs(lag) < SR / 25 and corr > 0.9, (lag, corr)
    hush = write_silence(tmp_path / "hush.wav", 0.5, SR)
    assert main(["animate", "--source", str(photo), "--audio", str(hush), "--weights", str(out),
                 "--out", str(tmp_path / "hush.mp4"), "--quiet", "--device", "cpu"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "driven by hush.wav (the recording is silent" in summary, summary
    # the same weights have no pose head: --pose-sweep says how to get one (exit 2, one line, no file)
    assert main(["animate", "--source", str(photo), "--pose-sweep", "yaw", "--weights", str(out),
                 "--out", str(tmp_path / "sweep.mp4"), "--quiet", "--device", "cpu"]) == 2
    assert not (tmp_path / "sweep.mp4").exists()
    assert main(["fit-audio", "--weights", str(weights), "--out", str(tmp_path / "x"), "--audio-net",
                 str(tmp_path / "no-such-net")]) == 2


@pytest.mark.slow
def test_train_audio_can_start_from_syncnet_v2_weights(tmp_path):
    from x2face.cli import main

    cnn, fc = syncnet_v2_layout()
    state = {f"netcnnaud.{k}": v for k, v in cnn.state_dict().items()}
    state.update({f"netfcaud.{k}": v for k, v in fc.state_dict().items()})
    torch.save(state, tmp_path / "syncnet_v2.model")
    out = tmp_path / "an"
    assert main(["train-audio", "--out", str(out), "--init", str(tmp_path / "syncnet_v2.model"), "--steps", "1",
                 "--batch", "4", "--videos", "1", "--seconds", "1.5", "--val-videos", "1", "--real", "none",
                 "--threads", "1"]) == 0
    net = load_audio_net(out)
    assert net.config.name == "syncnet" and net.config.out_dim == 1024
    with torch.no_grad():  # it started from the given weights (one small step away from them)
        assert (net.audio.convs[0].conv.weight - cnn[0].weight).abs().max() < 0.05
