#!/usr/bin/env bash
# How much longer training helps the demo model: stage I continued 9000 more steps at lr 3e-4 from the recipe's
# runs/demo-stage1 (the recipe's stage I; run `STEPS="1 2" bash configs/demo.sh` first), then 500 at lr 1e-4 as in step 3,
# and, for the equal-steps comparison of step 4, 500 steps of stage II from the same weights; both evaluated on
# self, cross and real. About 85 minutes on the 2-core CPU. reports/demo-stage1-longer and
# reports/demo-stage2-longer hold the reports (measured with the same commands, the runs then under scratch/exp3/,
# on the float32 recipe's 5000 steps, before run.bf16_cpu; run now, it continues the bf16 recipe's 8000 steps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
py="${PYTHON:-python}"
"$py" -m x2face train configs/demo.toml --resume --set 'stage.init_from="runs/demo-stage1/weights"' --set run.steps=9000 \
  --set run.seed=1 --set run.ckpt_every=1000 --set run.max_minutes=0 --set 'run.out_dir="runs/demo-stage1-plus9000"'
"$py" -m x2face train configs/demo-stage1-more.toml --resume --set 'stage.init_from="runs/demo-stage1-plus9000/weights"' \
  --set 'run.out_dir="runs/demo-stage1-plus9000-more"'
"$py" -m x2face evaluate --weights runs/demo-stage1-plus9000-more/weights --out reports/demo-stage1-longer --metrics self,cross,real
"$py" -m x2face train configs/demo-stage2.toml --resume --set 'stage.init_from="runs/demo-stage1-plus9000/weights"' \
  --set 'run.out_dir="runs/demo-stage2-plus9000"'
"$py" -m x2face evaluate --weights runs/demo-stage2-plus9000/weights --out reports/demo-stage2-longer --metrics self,cross,real
