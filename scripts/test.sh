#!/usr/bin/env bash
# The test command of the README: installs what the tests need into .venv, then runs them all on the CPU.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# A real browser for the app's end-to-end test (Debian's chromium; needs root, skipped otherwise).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi
# shellcheck disable=SC1091
source scripts/setup.sh requirements-dev.txt
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
exec python -m pytest "$@"
