"""The Docker image's recipe, tested without a Docker engine.

The build context is assembled from the Dockerfile's COPY lines (so a file the image needs but does not
copy fails here), ``docker/install.sh`` runs its steps in the Dockerfile's order into a fresh virtual
environment (the local CPU wheel of torch: ``TORCH_SPEC=torch==2.13.0``), and the app is then served
from that environment and answers a request.
"""
from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import app_server

ROOT = app_server.ROOT
DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_lines() -> list[str]:
    """Instructions of the Dockerfile, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def copy_sources() -> list[str]:
    out = []
    for ln in dockerfile_lines():
        if ln.startswith("COPY "):
            out += shlex.split(ln)[1:-1]
    return out


def ignored(path: str) -> bool:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_dockerfile_copies_what_the_app_needs():
    sources = copy_sources()
    for needed in ("docker/install.sh", "requirements.txt", "pyproject.toml", "README.md", "x2face", "app.py",
                   "assets"):
        assert needed in sources, f"the Dockerfile does not copy {needed}"
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not ignored(src), f".dockerignore leaves out {src}, which the Dockerfile copies"
    for heavy in (".venv", ".git", "tests", "test-artifacts", "runs"):
        assert ignored(heavy), f".dockerignore should leave out {heavy}"
    lines = dockerfile_lines()
    runs = [ln for ln in lines if ln.startswith("RUN ") and "docker/install.sh" in ln]
    assert [ln.split()[-1] for ln in runs] == ["deps", "package"], runs
    assert lines[-1].startswith("CMD") and "app.py" in lines[-1] and "0.0.0.0" in lines[-1]
    assert "EXPOSE 7860" in lines


def build_context(dest: Path) -> Path:
    """What ``docker build`` would send: the Dockerfile's COPY sources (less what .dockerignore drops)."""
    for src in copy_sources():
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(path, dest / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / src)
    return dest


@pytest.mark.slow
def test_install_recipe_into_a_fresh_environment(tmp_path, real_dir):
    from gradio_client import Client, handle_file

    ctx = build_context(tmp_path / "app")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "GRADIO_TEMP_DIR")}  # the app makes its own
    env.update(PYTHON=str(python), TORCH_SPEC="torch==2.13.0", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
               X2FACE_SYSTEM_DEPS="0", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    for step in ("deps", "package"):  # the Dockerfile's order
        proc = subprocess.run(["bash", "docker/install.sh", step], cwd=ctx, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "x2face 0" in proc.stdout and "CPU build" in proc.stdout
    assert not (ctx / "build").exists() and not list(ctx.glob("*.egg-info"))  # the sources stay clean
    # the package is installed (not just importable from the folder)
    out = subprocess.run([str(python), "-c", "import x2face, sys; print(x2face.__file__)"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "site-packages" in out.stdout, out.stderr
    help_ = subprocess.run([str(python), "app.py", "--help"], cwd=ctx, env=env, capture_output=True, text=True,
                           timeout=300)
    assert help_.returncode == 0 and "--share" in help_.stdout and "--weights" in help_.stdout, help_.stderr

    # the image's command, on tiny weights: serves the page and a job
    weights = app_server.save_tiny_weights(tmp_path / "weights")
    port = app_server.free_port()
    log = open(tmp_path / "app.log", "w")
    server = subprocess.Popen([str(python), "app.py", "--host", "127.0.0.1", "--port", str(port), "--weights",
                               str(weights)], cwd=ctx, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(url, timeout=5).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, (tmp_path / "app.log").read_text()[-3000:]
            time.sleep(1)
        video, summary = Client(url, verbose=False).predict(
            handle_file(str(real_dir / "photos/jixinya_EAMM__test_image_anne.png")), "yaw sweep (turn left and right)",
            0, 0, 0, 1.0, False, api_name="/animate_pose")
        from x2face.media import probe_video

        assert probe_video(video).num_frames_estimate == 25, summary
        assert "networks run on CPU" in (tmp_path / "app.log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
