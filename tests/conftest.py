"""Shared fixtures. Everything runs on the CPU, offline, with tiny configs unless marked slow."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("X2FACE_SHARED", ROOT.parent / "shared"))
REAL = SHARED / "data" / "real"
FACTS = SHARED / "facts"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_config():
    from x2face import X2FaceConfig

    return X2FaceConfig(image_size=64, base_channels=8)


@pytest.fixture
def tiny_model(tiny_config):
    from x2face import X2Face

    torch.manual_seed(0)
    return X2Face(tiny_config).eval()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the shared data folder) is not present")
    return SHARED


@pytest.fixture(scope="session")
def real_dir(shared_dir) -> Path:
    return shared_dir / "data" / "real"
