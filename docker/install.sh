#!/usr/bin/env bash
# The install recipe of the x2face image: the Dockerfile runs it, and so does CI
# (tests/test_docker_recipe.py, into a fresh virtual environment), so the image's steps are tested.
#
# usage: [PYTHON=python3] [TORCH_SPEC="torch>=2.4"] [TORCH_INDEX_URL=URL] bash docker/install.sh [deps|package|all]
#
#   deps     PyTorch ($TORCH_SPEC; the default from PyPI is the Linux build with CUDA libraries, which
#            also runs on a machine without a GPU; e.g. TORCH_SPEC="torch==2.13.0" with
#            TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for a small CPU-only image), then
#            requirements.txt
#   package  the x2face package itself (pip install --no-deps .)
#   all      both (default)
#
# X2FACE_SYSTEM_DEPS=1 (the Dockerfile sets it; needs root and apt-get) first installs the few
# shared libraries a slim Debian image lacks. Run from anywhere: paths are relative to this file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
step="${1:-all}"
case "$step" in deps|package|all) ;; *) echo "usage: bash docker/install.sh [deps|package|all]" >&2; exit 2 ;; esac
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch>=2.4}"
pip=("$PYTHON" -m pip install --no-input --disable-pip-version-check)

if [ "${X2FACE_SYSTEM_DEPS:-0}" = 1 ] && [ "$step" != package ]; then
  # libglib2.0-0: OpenCV's wheels need libgthread; libgomp1: OpenMP for the CPU kernels
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libglib2.0-0 libgomp1 >/dev/null
  rm -rf /var/lib/apt/lists/*
fi

if [ "$step" != package ]; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
  else
    "${pip[@]}" "$TORCH_SPEC"
  fi
  "${pip[@]}" -r requirements.txt
fi

if [ "$step" != deps ]; then
  # a copy of the sources, so that building leaves nothing (build/, *.egg-info) in this folder
  src="$(mktemp -d)"
  trap 'rm -rf "$src"' EXIT
  cp -r pyproject.toml README.md requirements.txt x2face "$src/"
  "${pip[@]}" --no-deps "$src"
  "$PYTHON" - <<'PY'
import torch, gradio, x2face
cuda = torch.cuda.is_available()
print(f"x2face {x2face.__version__}, torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build'}"
      f"{', GPU present' if cuda else ''}), gradio {gradio.__version__}")
PY
fi
