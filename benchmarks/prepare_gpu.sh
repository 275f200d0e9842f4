#!/usr/bin/env bash
# Run HERE (the development machine, no GPU needed) before benchmarks/gpu_run.sh goes to a lent GPU machine.
# That machine has no network and does not see ../shared, so this fills .gpu/bench/ (git-ignored; carry ".gpu/bench"):
#   .gpu/bench/clip.mp4   a 512x512 talking-head clip of the shared data: the animate stage's input
#                         (the bench loops/cuts it to 10 s at 25 fps itself)
#   .gpu/bench/wheels/    the imageio-ffmpeg wheel (the ffmpeg binary x2face.media uses; the GPU image lacks it)
# About 31 MB in all: with the working tree, under the 64 MiB a device call may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${X2FACE_SHARED:-../shared}"
clip="$shared/data/real/clips/KwaiVGI_LivePortrait__assets_examples_driving_d10.mp4"
mkdir -p .gpu/bench/wheels
cp "$clip" .gpu/bench/clip.mp4
py="${PYTHON:-.venv/bin/python}"
rm -f .gpu/bench/wheels/*.whl
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .gpu/bench/wheels "imageio-ffmpeg==0.6.0"  # 29 MB (0.7+ wheels are 68 MB: too big)
du -sh .gpu/bench
echo "ready: run(command=\"bash benchmarks/gpu_run.sh\", carry=[\".gpu/bench\"], timeout_s=540) through the device tool"
