#!/usr/bin/env bash
# The GPU benchmark: one prepared command for a session that is lent a GPU (H100 or H200). About 5-8 minutes.
#
#   1. here, once:           bash benchmarks/prepare_gpu.sh     (a face clip and the imageio-ffmpeg wheel in .gpu/bench)
#   2. through the device tool:
#        run(command="bash benchmarks/gpu_run.sh", carry=[".gpu/bench"], timeout_s=540)
#   3. copy the files that come back (files_at) into benchmarks/results/ and commit them; quote them in
#      benchmarks/README.md and docs/speed.md.
#
# It runs `python -m x2face bench` twice on the paper config (256x256):
#   <gpu>-eager.json/.md  bf16 + channels_last + cudnn.benchmark + CUDA graphs, no torch.compile (robust, ~2-3 min),
#                         with the end-to-end animate of the 10 s clip
#   <gpu>.json/.md        the same plus torch.compile (drive buckets and the training step; compiling takes minutes),
#                         without the animate part
# Each run also times the fp32 eager baseline on the same GPU, checks the bf16 output against fp32 (it fails loudly
# when off), and writes its JSON after every part, so a run cut off by its time limit still leaves what it measured.
# Outputs go to $OUT (the device tool's folder) or, without it, benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"

# The GPU image has torch, numpy, opencv and huggingface_hub but not imageio-ffmpeg: install the carried wheel.
if ! "$py" -c "import imageio_ffmpeg" 2>/dev/null && ls .gpu/bench/wheels/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/x2face-site .gpu/bench/wheels/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/x2face-site"
fi

name="$("$py" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name(0).lower()).strip('-'))")" \
  || { echo "no CUDA device visible to torch" >&2; exit 1; }
{
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit --format=csv
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  "$py" -c "import cv2; print('opencv', cv2.__version__, 'CascadeClassifier', hasattr(cv2, 'CascadeClassifier'))"
  "$py" -c "from x2face.faces import HaarDetector; print('face cascade engine', HaarDetector().engine)"
  nproc
} > "$out/$name-machine.txt" 2>&1
cat "$out/$name-machine.txt"

status=0
# What to run (defaults: everything). A follow-up call can measure only what a first one missed, e.g.
#   EAGER_PARTS=animate,train COMPILE_PARTS=train SUFFIX=-2 bash benchmarks/gpu_run.sh
eager_parts="${EAGER_PARTS-drive,accuracy,full,train,animate}"  # set empty to skip a run
compile_parts="${COMPILE_PARTS-drive,accuracy,full,train}"
train_batch="${TRAIN_BATCH:-16,128}"  # the release's batch 16, and a batch that fills the GPU
suffix="${SUFFIX:-}"
# 1) no torch.compile: the numbers that need nothing but cuDNN
if [ -n "$eager_parts" ]; then
  timeout -k 10 200 "$py" -m x2face bench --device cuda --config paper --compile off --parts "$eager_parts" \
    --train-batch "$train_batch" --out "$out/$name-eager$suffix.json" > "$out/$name-eager$suffix.log" 2>&1 || status=$?
  tail -n 30 "$out/$name-eager$suffix.log"
fi
# 2) with torch.compile (one compile per batch bucket and per training batch; in training the networks only,
#    grid_sample eager: TRAIN_COMPILE=model|off for the others); the animate stage was measured in 1) and would
#    only add compile time here
if [ -n "$compile_parts" ]; then
  timeout -k 10 260 "$py" -m x2face bench --device cuda --config paper --compile on --parts "$compile_parts" \
    --train-batch "$train_batch" --train-compile "${TRAIN_COMPILE:-networks}" --out "$out/$name$suffix.json" > "$out/$name$suffix.log" 2>&1 || status=$?
  tail -n 30 "$out/$name$suffix.log"
fi
ls -la "$out"
exit $status
