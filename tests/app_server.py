"""Serve ``app.py`` once per test process, on tiny random weights (64 px, with pose and audio heads).

Used by ``tests/test_app.py`` (gradio_client) and ``tests/test_browser.py`` (Playwright). The app is
imported from the repository root and launched in a thread on a free port; it is closed and its
temporary folder deleted when the process exits.
"""
from __future__ import annotations

import atexit
import importlib
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
#: what the test app refuses: small enough that the tests can exceed it cheaply
MAX_FILE_SIZE = 4 * 1024**2
MAX_SECONDS = 2.0
MAX_UPLOAD_SECONDS = 30.0

_LOCK = threading.Lock()
_SERVER: dict = {}


def save_tiny_weights(folder: Path, heads: bool = True) -> Path:
    """A random 64 px X2Face (seeded) with a fitted pose head and an MFCC audio head, saved to ``folder``."""
    from x2face import X2Face, X2FaceConfig
    from x2face.control.pose import fit_pose_maps

    torch.manual_seed(0)
    if not heads:
        X2Face(X2FaceConfig(image_size=64, base_channels=8)).save_pretrained(folder)
        return folder
    cfg = X2FaceConfig(image_size=64, base_channels=8, pose_head=True, audio_head=True, audio_feature_dim=260,
                       audio_features="mfcc")
    model = X2Face(cfg).eval()
    with torch.no_grad():
        model.audio.linear.weight.normal_(0, 0.05)
    g = np.random.default_rng(1)
    v = np.abs(g.normal(size=(300, cfg.vector_dim)))
    # small poses for these vectors: a degree moves the vector a lot, so the random face visibly turns
    model.pose.load_state_dict(fit_pose_maps(v, v @ g.normal(size=(cfg.vector_dim, 3)) * 0.05).state_dict())
    model.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_module():
    """``app.py`` imported (builds ``demo``; launches nothing)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("app")


def serve() -> dict:
    """Start the app once: returns {"url", "app", "weights" (with heads), "plain" (without heads)}."""
    with _LOCK:
        if _SERVER:
            return _SERVER
        torch.set_num_threads(1)
        tmp = Path(tempfile.mkdtemp(prefix="x2face-app-test-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        heads = save_tiny_weights(tmp / "heads")
        plain = save_tiny_weights(tmp / "plain", heads=False)
        app = app_module()
        app.SETTINGS.weights = str(heads)
        app.SETTINGS.max_seconds = MAX_SECONDS
        app.SETTINGS.max_upload_seconds = MAX_UPLOAD_SECONDS
        app.SETTINGS.max_file_size = MAX_FILE_SIZE
        port = free_port()
        app.demo.queue(default_concurrency_limit=1, max_size=8)
        app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **app.launch_kwargs(app.SETTINGS))
        atexit.register(app.demo.close)
        _SERVER.update(url=f"http://127.0.0.1:{port}/", app=app, weights=heads, plain=plain, tmp=tmp)
        return _SERVER
