#!/usr/bin/env bash
# The app command of the README: installs x2face into .venv (first run only), then serves the app on
# the bundled demo weights at http://127.0.0.1:7860 (pass --share for a public link).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# shellcheck disable=SC1091
source scripts/setup.sh requirements.txt
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
exec python app.py "$@"
