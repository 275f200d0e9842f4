#!/usr/bin/env bash
# The demo recipe's training steps (configs/demo.sh steps 1-4) on one lent GPU, in one device call of ~9 minutes:
# the same configs and data, with each step bounded by wall-clock minutes instead of the CPU recipe's step counts,
# batch 64 instead of 16 (a batch of 16 leaves an H100 idle), and the synthetic world rendered on the GPU.
#
#   1. here, once: the real train/val crops as a portable folder (the GPU machine has no ../shared):
#        python -m x2face train configs/demo.toml --export-crops .gpu/train          (~27 MiB of JPEG frames)
#   2. through the device tool:
#        run(command="bash configs/demo-gpu.sh", carry=[".gpu/train"], timeout_s=570)
#   3. here: move the CPU recipe's runs/demo-{identity,stage1,stage1-more,stage2} aside (their checkpoints would
#      not match), unpack what comes back (files_at) into runs/ and finish the recipe on the CPU:
#        for t in FILES_AT/*.tar; do tar -C runs -xf "$t"; done
#        STEPS="5 6 7" bash configs/demo.sh       (pose maps, audio, assets/x2face-demo, the reports)
#
# Minutes per step (environment): ID_MIN (identity network, 0.75), S1_MIN (stage I, 4.5), MORE_MIN (stage I
# continued at lr 1e-4, 0.75); stage II then runs exactly as many steps as stage I continued did (the equal-steps
# comparison), with S2_MIN (1.5) as a safety limit. TRAIN_ARGS adds options to every step. Outputs: $OUT (the
# device tool's folder) or runs/gpu-out.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-runs/gpu-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
data="${DATA:-.gpu/train}"
[ -f "$data/MANIFEST.tsv" ] || { echo "no $data/MANIFEST.tsv: run step 1 (--export-crops) and carry it" >&2; exit 2; }
log="$out/demo-gpu.log"
stamp() { echo "[demo-gpu.sh $(date -u +%H:%M:%S)] $*" | tee -a "$log"; }
# the same data as configs/demo.sh, read from the exported crops; rendering on the GPU needs num_workers = 0
common=(--set "data.manifests=[\"$data/MANIFEST.tsv\"]" --set 'data.frame_folders=["frames"]'
        --set 'data.cache_dir="runs/cache-gpu"' --set 'data.synthetic_device="train"' --set run.num_workers=0
        --set run.threads=0 --set run.progress=false --set run.tensorboard=false ${DEVICE:+--set "run.device=\"$DEVICE\""})
read -r -a extra <<< "${TRAIN_ARGS:-}"  # options added last to every step (they win), e.g. --set run.val_batches=2
x2face() { "$py" -m x2face "$@" "${extra[@]}" >> "$log" 2>&1; local c=$?; tail -n 3 "$log"; return $c; }
# each run's weights and logs go back as soon as it ends (the device tool returns at most 8 files of 16 MiB):
# one tar per run, without its checkpoint
pack() { [ -d "runs/$1" ] && tar -C runs -cf "$out/$1.tar" --exclude checkpoint.pt --exclude tb "$1"; }
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; "$py" -c "import torch; print('torch', torch.__version__)"; } \
  >> "$log" 2>&1
status=0

stamp "1 identity network (${ID_MIN:-0.75} min)"
x2face train-identity configs/demo-identity.toml "${common[@]}" --set "run.max_minutes=${ID_MIN:-0.75}" || status=1
pack demo-identity

stamp "2 stage I (${S1_MIN:-4.5} min)"
x2face train configs/demo.toml "${common[@]}" --set optim.batch_size=64 --set run.steps=1000000 \
  --set run.ckpt_every=2000 --set "run.max_minutes=${S1_MIN:-4.5}" || status=1
pack demo-stage1

stamp "3 stage I continued (${MORE_MIN:-0.75} min)"
x2face train configs/demo-stage1-more.toml "${common[@]}" --set optim.batch_size=64 --set run.steps=1000000 \
  --set run.ckpt_every=2000 --set "run.max_minutes=${MORE_MIN:-0.75}" || status=1
pack demo-stage1-more

steps="$("$py" -c "import json; print(json.load(open('runs/demo-stage1-more/weights/provenance.json'))['steps'])" 2>/dev/null)"
if [ -n "$steps" ]; then
  stamp "4 stage II, $steps steps like step 3 (at most ${S2_MIN:-1.5} min)"
  x2face train configs/demo-stage2.toml "${common[@]}" --set optim.batch_size=64 --set "run.steps=$steps" \
    --set run.ckpt_every=2000 --set "run.max_minutes=${S2_MIN:-1.5}" || status=1
  pack demo-stage2
else
  stamp "4 skipped: step 3 left no weights"; status=1
fi
ls -la "$out" | tee -a "$log"
stamp "done (status $status)"
exit $status
