#!/usr/bin/env bash
# The recipe of the bundled demo model (assets/x2face-demo), run from the repository root:
#   bash configs/demo.sh
# 1. the identity network of stage II      runs/demo-identity/weights
# 2. stage I (photometric L1), lr 3e-4      runs/demo-stage1/weights
# 3. stage I continued at lr 1e-4           runs/demo-stage1-more/weights   <- the bundled networks
# 4. stage II from step 2 (+ identity losses), same lr and steps as 3: the comparison   runs/demo-stage2/weights
# 5. the pose maps f_v->p, f_p->v on 3      runs/demo-pose
# 6. the learned audio features + f_a->v    runs/audio-net, runs/demo-controls  ->  assets/x2face-demo
# 7. evaluation reports                     reports/demo (all metrics, the model card), reports/demo-stage1-more
#                                           vs reports/demo-stage2-only (stage II at equal steps), reports/untrained-demo
# Every training step resumes from its checkpoint when the recipe is run again (finished steps only re-export);
# the fitting steps redo their (quick) fits. STEPS="1 2 3" runs only those steps.
# TRAIN_ARGS adds options to every training step, e.g. on a GPU:
#   TRAIN_ARGS="--set data.synthetic_device=train --set run.num_workers=0" bash configs/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # OpenMP threads sleep, not spin, while the data worker renders
py="${PYTHON:-python}"
x2face() { "$py" -m x2face "$@"; }
read -r -a extra <<< "${TRAIN_ARGS:-}"
steps="${STEPS:-1 2 3 4 5 6 7}"
want() { [[ " $steps " == *" $1 "* ]]; }
stamp() { echo "[demo.sh $(date -u +%H:%M:%S)] $*"; }

want 1 && { stamp "1 identity network"; x2face train-identity configs/demo-identity.toml --resume "${extra[@]}"; }
want 2 && { stamp "2 stage I"; x2face train configs/demo.toml --resume "${extra[@]}"; }
want 3 && { stamp "3 stage I continued"; x2face train configs/demo-stage1-more.toml --resume "${extra[@]}"; }
want 4 && { stamp "4 stage II (the comparison)"; x2face train configs/demo-stage2.toml --resume "${extra[@]}"; }
want 5 && { stamp "5 pose maps"; x2face fit-pose --weights runs/demo-stage1-more/weights --out runs/demo-pose --overwrite; }
if want 6; then
  stamp "6 audio features and map"
  x2face train-audio --out runs/audio-net --overwrite
  x2face fit-audio --weights runs/demo-pose --out runs/demo-controls --audio-net runs/audio-net --overwrite
  rm -rf assets/x2face-demo.tmp && cp -r runs/demo-controls assets/x2face-demo.tmp
  rm -rf assets/x2face-demo && mv assets/x2face-demo.tmp assets/x2face-demo
fi
if want 7; then
  stamp "7 reports"
  x2face evaluate --weights assets/x2face-demo --out reports/demo                   # the model card's numbers
  # stage II against stage I at equal steps (same settings and seeds, so the numbers compare)
  x2face evaluate --weights runs/demo-stage2/weights --out reports/demo-stage2-only --metrics self,cross,real
  x2face evaluate --weights runs/demo-stage1-more/weights --out reports/demo-stage1-more --metrics self,cross,real
  x2face evaluate --untrained demo --out reports/untrained-demo --metrics self,cross,real
fi
stamp "done"
