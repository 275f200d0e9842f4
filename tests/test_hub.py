"""Saving and loading weights: local folders, the offline Hub cache, strict loading."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from x2face import X2Face, X2FaceConfig
from x2face.errors import ConfigError, WeightsError
from x2face.hub import describe, load_model, resolve


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 2, 3, 64, 64, generator=g)


def test_round_trip(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "w")
    assert {"config.json", "model.safetensors", "README.md"} == {p.name for p in (tmp_path / "w").iterdir()}
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    assert cfg["image_size"] == 64 and cfg["base_channels"] == 8
    loaded = X2Face.from_pretrained(tmp_path / "w")
    assert not loaded.training
    assert loaded.config == tiny_model.config
    drv, src = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(drv, src), tiny_model(drv, src), atol=0, rtol=0)


def test_round_trip_with_pose_head(tmp_path):
    model = X2Face(X2FaceConfig(image_size=64, base_channels=8, pose_head=True)).eval()
    with torch.no_grad():
        model.pose.to_pose.weight.normal_()
    model.save_pretrained(tmp_path)
    loaded = X2Face.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.pose.to_pose.weight, model.pose.to_pose.weight)


def test_hub_cache_offline(tmp_path, tiny_model, monkeypatch):
    """A repo id resolves through huggingface_hub's cache with HF_HUB_OFFLINE=1 (no network)."""
    from huggingface_hub import constants

    src = tmp_path / "src"
    tiny_model.save_pretrained(src)
    cache = tmp_path / "cache"
    snap = cache / "models--someone--x2face-tiny" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snap / name).write_bytes((src / name).read_bytes())
    (cache / "models--someone--x2face-tiny" / "refs").mkdir()
    (cache / "models--someone--x2face-tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = X2Face.from_pretrained("someone/x2face-tiny", cache_dir=cache)
    assert loaded.config == tiny_model.config
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        X2Face.from_pretrained("someone/not-cached", cache_dir=cache)


def test_hub_failures_say_what_to_do(monkeypatch):
    """Each way a Hub download fails (raised here by huggingface_hub's own error types) is one line saying what to do,
    not the library's message."""
    import httpx
    import huggingface_hub
    from huggingface_hub import errors as hf

    def response(code):
        return httpx.Response(code, request=httpx.Request("GET", "https://huggingface.co/me/x2face"))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cases = [
        (hf.GatedRepoError("Access to model me/x2face is restricted", response=response(403)),
         "'me/x2face' is a gated repo: accept its terms on huggingface.co/me/x2face"),
        (hf.RepositoryNotFoundError("Repository Not Found for url", response=response(404)),
         "no Hub repo 'me/x2face' (or it is private: log in"),
        (hf.RevisionNotFoundError("Invalid rev id: v9", response=response(404)), "'me/x2face' has no revision 'v9'"),
        (hf.RemoteEntryNotFoundError("404 Client Error", response=response(404)),
         "'me/x2face' has no config.json: it does not hold x2face weights"),
        (hf.LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub\nmore"),
         "cannot reach the Hugging Face Hub for 'me/x2face', and its config.json is not in the local cache (An error"),
        (RuntimeError("disk full\nmore"), "cannot get config.json of 'me/x2face': RuntimeError: disk full"),
    ]
    for exc, message in cases:
        def fail(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
        with pytest.raises(WeightsError) as info:
            load_model("me/x2face@v9", device="cpu")
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set and it is not in the local cache$"):
        X2Face.from_pretrained("me/x2face")


def test_missing_tensor_is_named(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["driving.up.3.norm.running_var"]
    state["embedding.extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(WeightsError) as err:
        X2Face.from_pretrained(tmp_path)
    assert "driving.up.3.norm.running_var" in str(err.value)
    assert "embedding.extra.weight" in str(err.value)


def test_shape_mismatch_is_named(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["base_channels"] = 16
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="embedding.down.0.conv.weight: file"):
        X2Face.from_pretrained(tmp_path)


def test_bad_folders(tmp_path, tiny_model):
    with pytest.raises(WeightsError, match="model.safetensors is missing"):
        (tmp_path / "config.json").write_text("{}")
        X2Face.from_pretrained(tmp_path)
    tiny_model.save_pretrained(tmp_path / "w")
    (tmp_path / "w" / "config.json").write_text(json.dumps({"image_size": 64, "typo": 1}))
    with pytest.raises(ConfigError, match="typo"):
        X2Face.from_pretrained(tmp_path / "w")
    (tmp_path / "w" / "model.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "w" / "config.json").write_text(json.dumps({"image_size": 64, "base_channels": 8}))
    with pytest.raises(WeightsError, match="cannot read"):
        X2Face.from_pretrained(tmp_path / "w")


def test_weights_specs(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("X2FACE_DEMO_WEIGHTS", str(tmp_path / "none"))
    with pytest.raises(WeightsError, match="no bundled demo weights"):
        resolve(None)
    tiny_model.save_pretrained(tmp_path / "demo")
    monkeypatch.setenv("X2FACE_DEMO_WEIGHTS", str(tmp_path / "demo"))
    assert resolve("demo") == (str(tmp_path / "demo"), None)
    assert resolve("owner/name@v1") == ("owner/name", "v1")
    model = load_model(None, device="cpu")
    assert model.config.image_size == 64
    info = describe(str(tmp_path / "demo"))
    assert info["parameters"]["total"] == sum(p.numel() for p in tiny_model.parameters())


def test_push_to_hub_uploads_a_loadable_folder(tmp_path, tiny_model, monkeypatch):
    """push_to_hub goes through HfApi; here the API is replaced by a recorder (no network)."""
    import shutil

    from huggingface_hub import HfApi

    uploaded = tmp_path / "uploaded"

    class Repo:
        repo_id = "someone/x2face-tiny"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: Repo())

    def upload_folder(self, *, repo_id, folder_path, **kw):
        shutil.copytree(folder_path, uploaded)
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = tiny_model.push_to_hub("someone/x2face-tiny")
    assert url.endswith("/commit/0")
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in uploaded.iterdir()}
    loaded = X2Face.from_pretrained(uploaded)
    drv, src = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(drv, src), tiny_model(drv, src), atol=0, rtol=0)


def test_pick_device_names_what_to_use(monkeypatch):
    """A device the machine lacks, or one torch does not know, is a one-line ``WeightsError``, not torch's error."""
    from x2face.hub import pick_device

    assert pick_device("cpu") == torch.device("cpu") and pick_device(None).type in ("cpu", "cuda")
    with pytest.raises(WeightsError, match="unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps"):
        pick_device("tpu")
    with pytest.raises(WeightsError, match="unknown device"):
        pick_device("cuda:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(WeightsError, match="no usable CUDA GPU; use --device cpu"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(WeightsError, match="cuda:2 was asked for but this machine has 2 CUDA GPU"):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(WeightsError, match="mps .* is not available here"):
        pick_device("mps")
    with pytest.raises(WeightsError, match="meta was asked for but is not available here"):
        pick_device("meta")
