"""``python -m x2face env``: the machine report for bug reports."""
from __future__ import annotations

import importlib.metadata
import json

import torch

from x2face import __version__
from x2face.cli import main as cli
from x2face.doctor import format_report, report


def test_env_reports_what_this_machine_has(capsys, monkeypatch):
    monkeypatch.setenv("X2FACE_DEVICE", "cpu")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HF_HUB_TOKEN", "hf_secret")
    monkeypatch.setenv("X2FACE_API_KEY", "secret")
    assert cli(["env", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["x2face"]["version"] == __version__
    assert data["packages"]["torch"] == importlib.metadata.version("torch") and data["machine"]["torch"] == \
        torch.__version__
    assert data["machine"]["cuda_available"] == torch.cuda.is_available()
    assert data["machine"]["compute_dtype"] in ("float32", "bfloat16")
    assert data["ffmpeg"]["version"].startswith("ffmpeg version")
    assert "opencv" in data["face_detectors"]["usable"]  # the offline detector is always there
    from x2face.faces import HaarDetector

    assert data["face_detectors"]["haar_cascades_run_on"] == HaarDetector().engine  # what the detector does use
    assert data["weights"]["demo"]["present"] and data["weights"]["demo"]["image_size"] == 128  # the bundled model
    assert data["weights"]["hub"]["offline"]  # (the tests run with HF_HUB_OFFLINE=1)
    assert data["environment"]["X2FACE_DEVICE"] == "cpu" and data["environment"]["HF_HUB_OFFLINE"] == "1"
    assert "hf_secret" not in json.dumps(data) and "X2FACE_API_KEY" not in data["environment"]  # never secrets
    assert cli(["env"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("x2face:\n  version: ") and "\nface_detectors:\n  usable: " in text
    assert "opencv-python:" not in text or data["packages"]["opencv-python"]  # packages not installed are left out


def test_env_survives_a_broken_probe(monkeypatch):
    """A probe that raises (a broken package) shows as its error in its section; the rest is still reported."""
    import x2face.doctor as doctor

    def broken():
        raise ImportError("libGL.so.1: cannot open shared object file\nmore")

    monkeypatch.setattr(doctor, "_faces", broken)
    data = report()
    assert data["face_detectors"] == {"error": "ImportError: libGL.so.1: cannot open shared object file"}
    assert data["ffmpeg"]["path"] and "face_detectors:\n  error: ImportError: libGL" in format_report(data)
