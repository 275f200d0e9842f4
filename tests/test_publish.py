"""``python -m x2face push``: the staged folder loads as the same weights and carries a model card with the
report's numbers; uploads go through ``HfApi`` (replaced here: no network); nothing of the user's is deleted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from x2face import X2Face
from x2face.cli import main as cli
from x2face.errors import InputError, WeightsError
from x2face.hub import SHIPPED_DEMO_DIR
from x2face.publish import stage, upload

REPORT = Path(__file__).resolve().parent.parent / "reports" / "demo"


def test_staged_demo_loads_as_the_same_weights_with_its_card(tmp_path, capsys):
    out = tmp_path / "staged"
    assert cli(["push", "demo", "you/x2face-demo", "--report", str(REPORT), "--license", "mit",
                "--stage-only", str(out)]) == 0
    assert "upload it with `python -m x2face push" in capsys.readouterr().out
    names = {f.name for f in out.iterdir()}
    assert {"config.json", "model.safetensors", "provenance.json", "README.md", "report.json", "report.md",
            "self_reenactment.png"} <= names
    a, b = X2Face.from_pretrained(SHIPPED_DEMO_DIR), X2Face.from_pretrained(out)
    assert a.config == b.config
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    card = (out / "README.md").read_text()
    report = json.loads((REPORT / "report.json").read_text())
    assert card.startswith("---\nlibrary_name: x2face\n") and "license: mit" in card
    assert 'X2FacePipeline.from_pretrained("you/x2face-demo")' in card and "--weights you/x2face-demo" in card
    assert f"| `cross_l1` | {report['cross_l1']:.4f} |" in card
    assert f"| `source_baseline_l1` | {report['source_baseline_l1']:.4f} |" in card
    assert "control heads: pose, audio" in card and "Trained on the synthetic face world" in card
    # staged again from the staged folder (no --report): the report stays
    again = stage(out, "you/x2face-demo", tmp_path / "again")
    assert (again / "report.json").is_file() and "| `cross_l1` |" in (again / "README.md").read_text()


def test_a_model_without_report_or_provenance(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "w")
    out = stage(tmp_path / "w", "you/tiny", tmp_path / "s")
    card = (out / "README.md").read_text()
    assert "Not evaluated here: `python -m x2face evaluate --weights you/tiny" in card
    assert "no `provenance.json`" in card and "license:" not in card and not (out / "provenance.json").exists()


def test_staging_refuses_what_would_lose_or_break_something(tmp_path, tiny_model, capsys):
    w = tmp_path / "w"
    tiny_model.save_pretrained(w)
    (w / "notes.txt").write_text("mine")
    cases = [
        (["you/tiny", "--stage-only", str(w)], "holds the weights or report being published"),
        (["you/tiny", "--stage-only", str(tmp_path)], "holds the weights or report being published"),
        (["you", "--stage-only", str(tmp_path / "s")], "name its owner too"),
        (["a b/c", "--stage-only", str(tmp_path / "s")], "is not a Hub repo id"),
        (["you/tiny", "--report", str(w), "--stage-only", str(tmp_path / "s")], "no report.json in"),
    ]
    for args, message in cases:
        assert cli(["push", str(w), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("keep")
    with pytest.raises(InputError, match="is not empty"):
        stage(w, "you/tiny", busy)
    with pytest.raises(InputError, match="holds more than a staged folder"):
        stage(w, "you/tiny", busy, overwrite=True)
    assert (busy / "thesis.tex").read_text() == "keep" and (w / "notes.txt").read_text() == "mine"
    staged = stage(w, "you/tiny", tmp_path / "s")
    assert stage(w, "you/other", staged, overwrite=True) == staged  # a folder staged before is replaced
    assert "you/other" in (staged / "README.md").read_text()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(WeightsError):
        stage(tmp_path / "broken", "you/tiny", tmp_path / "s2")


class FakeApi:
    """``huggingface_hub.HfApi`` as ``upload`` uses it, recording the calls (or failing like the Hub)."""

    calls: list = []
    fail: Exception | None = None

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw))
        if FakeApi.fail is not None:
            raise FakeApi.fail
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kw):
        FakeApi.calls.append(("create_branch", repo_id, kw))

    def upload_folder(self, **kw):
        FakeApi.calls.append(("upload_folder", kw["repo_id"], {**kw, "files": sorted(p.name for p in
                                                                                       Path(kw["folder_path"]).iterdir())}))


def test_push_uploads_the_staged_folder(tmp_path, tiny_model, monkeypatch, capsys):
    import huggingface_hub

    tiny_model.save_pretrained(tmp_path / "w")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    FakeApi.calls, FakeApi.fail = [], None
    assert cli(["push", str(tmp_path / "w"), "you/tiny", "--private", "--revision", "v1"]) == 0
    assert "to https://huggingface.co/you/tiny (branch v1)" in capsys.readouterr().out
    (_, repo, create), (_, _, branch), (_, _, up) = FakeApi.calls
    assert repo == "you/tiny" and create == {"private": True, "exist_ok": True} and branch["branch"] == "v1"
    assert up["revision"] == "v1" and {"README.md", "config.json", "model.safetensors"} <= set(up["files"])
    assert not Path(up["folder_path"]).exists()  # the temporary staging folder is gone
    FakeApi.fail = RuntimeError("401 Unauthorized: invalid token")
    with pytest.raises(WeightsError, match="could not publish to you/tiny: RuntimeError: 401 Unauthorized"):
        upload(tmp_path / "w", "you/tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli(["push", str(tmp_path / "w"), "you/tiny"]) == 2
    assert "the Hub is offline here" in capsys.readouterr().err
