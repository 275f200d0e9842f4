#!/usr/bin/env bash
# Stage II's loss weights at the demo scale: each variant is configs/demo-stage2.toml (500 steps at lr 1e-4
# from the stage-I weights runs/demo-stage1/weights, the recipe's steps 1-2) with one setting changed,
# evaluated on self, cross and shape leakage like reports/demo-stage1-more (the stage-I control).
# Run from the repository root after `STEPS="1 2 3" bash configs/demo.sh`; about 8 minutes per variant
# on the 2-core CPU. Reports: reports/demo-stage2-sweep/<variant>/report.{json,md}; summary in docs/training.md.
# The committed reports were measured on the float32 recipe's stage I (5000 steps, before run.bf16_cpu); run
# now, the sweep starts from the bf16 recipe's 8000-step weights, so its numbers will differ.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
py="${PYTHON:-python}"
out=reports/demo-stage2-sweep
variants="${VARIANTS:-same0.1-other0.1 same0.1-other0.3 same0-other0.3 same0-other1 fixed-same0-other0.03 identity1200}"
want() { [[ " $variants " == *" $1 "* ]]; }
variant() {
  local name=$1; shift
  want "$name" || return 0
  echo "[stage2-sweep $(date -u +%H:%M:%S)] $name"
  "$py" -m x2face train configs/demo-stage2.toml --resume --set run.progress=false \
    --set "run.out_dir=\"runs/stage2-sweep/$name\"" "$@"
  "$py" -m x2face evaluate --weights "runs/stage2-sweep/$name/weights" --out "runs/stage2-sweep/$name-eval" \
    --metrics self,cross
  mkdir -p "$out/$name" && cp "runs/stage2-sweep/$name-eval/report."{json,md} "$out/$name/"
}
variant same0.1-other0.1 --set stage.same_ratio=0.1 --set stage.other_ratio=0.1
variant same0.1-other0.3 --set stage.same_ratio=0.1 --set stage.other_ratio=0.3
variant same0-other0.3 --set stage.same_ratio=0.0 --set stage.other_ratio=0.3
variant same0-other1 --set stage.same_ratio=0.0 --set stage.other_ratio=1.0
# fixed weights: 0.03 is what magnitude balance with ratio 0.3 gives at stage II's first step (photometric
# 0.032 against conv6/conv7 content 0.30/0.41), without the weight growing as the photometric loss does
variant fixed-same0-other0.03 --set stage.balance=\"fixed\" --set stage.same_ratio=0.0 --set stage.other_ratio=0.03
if want identity1200; then  # the paper's weights with an identity network trained 3x longer (val accuracy 1.0)
  "$py" -m x2face train-identity configs/demo-identity.toml --resume --set run.steps=1200 --set run.val_every=200 \
    --set run.progress=false --set 'run.out_dir="runs/stage2-sweep/identity1200-net"'
  variant identity1200 --set 'stage.identity_network="runs/stage2-sweep/identity1200-net/weights"'
fi
echo "[stage2-sweep $(date -u +%H:%M:%S)] done"
