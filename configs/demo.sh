#!/usr/bin/env bash
# The recipe of the bundled demo model (assets/x2face-demo), run from the repository root:
#   bash configs/demo.sh
# 1. the identity network of stage II      runs/demo-identity/weights
# 2. stage I (photometric L1)               runs/demo-stage1/weights
# 3. stage II (+ identity losses)           runs/demo-stage2/weights  ->  assets/x2face-demo
# 4. the control: stage I for as many more steps as stage II, same lr   runs/demo-stage1-more/weights
# 5. evaluation reports                     reports/demo-stage2 (all metrics), reports/demo-stage1-more
# Every step resumes from its checkpoint when the recipe is run again (finished steps only re-export).
# TRAIN_ARGS adds options to every training step, e.g. on a GPU:
#   TRAIN_ARGS="--set data.synthetic_device=train --set run.num_workers=0" bash configs/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # OpenMP threads sleep, not spin, while the data worker renders
py="${PYTHON:-python}"
x2face() { "$py" -m x2face "$@"; }
read -r -a extra <<< "${TRAIN_ARGS:-}"

x2face train-identity configs/demo-identity.toml --resume "${extra[@]}"
x2face train configs/demo.toml --resume "${extra[@]}"
x2face train configs/demo-stage2.toml --resume "${extra[@]}"
x2face train configs/demo-stage1-more.toml --resume "${extra[@]}"
x2face evaluate --weights runs/demo-stage2/weights --out reports/demo-stage2   # the model card's numbers
# the control needs only what the comparison reads (same settings and seeds, so the numbers compare)
x2face evaluate --weights runs/demo-stage1-more/weights --out reports/demo-stage1-more --metrics self,cross,real
