#!/usr/bin/env bash
# Create .venv (once) and install x2face with the given requirements file into it.
# usage: source scripts/setup.sh [requirements.txt|requirements-dev.txt]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reqs="${1:-requirements.txt}"
cd "$here"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=".venv/.installed-$(basename "$reqs")-$(cat requirements.txt "$reqs" pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  if ! python -c "import torch" 2>/dev/null; then
    # Where a local CPU wheel of torch 2.13.0 is on disk (the CI machine) pip takes it; elsewhere pip
    # fetches torch from PyPI (a CUDA build on Linux).
    pip install "torch==2.13.0" || pip install "torch>=2.4"
  fi
  pip install -r "$reqs" -e .
  touch "$stamp"
fi
