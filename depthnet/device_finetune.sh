#!/usr/bin/env bash
# One prepared GPU run (issue 20 item 4, issue 21): fine-tune the shipped `cpu` network, stages
# and heads together, on the hard scenarios and plain frames, and bring back the candidate.
#
# Made for the `device` tool's lend (one H200, 16 cores, no network, about 15 minutes of device
# time in all, 10 minutes a command): rendering the data there (about 55 frames/s with 16 workers)
# and training there (about 240 img/s at batch 32) fits one command of about 9 minutes. The
# candidate is judged afterwards on this side's CPU by the commands of docs/depthnet.md ("A
# prepared GPU run"): the plain and scenario test splits, the hard bench, the main job.
#
# Usage, from the repository root:
#   bash depthnet/device_finetune.sh OUT            # the GPU run's sizes
#   SMOKE=1 bash depthnet/device_finetune.sh OUT    # the same steps on a few frames, on the CPU
# On the device machine: OUT is $OUT; carry `.whl` (PyOpenGL and trimesh, which its image lacks)
# and `.gl` (EGL's loader packages); docs/depthnet.md gives the exact call.
#
# OUT receives: model.pt (the candidate, <= 8 MB), metrics.csv (validation after each epoch),
# config.json, log.txt (everything printed), env.txt (the machine, GL renderer, torch device).
# Each step is timed in log.txt. Sizes (environment, defaults for the GPU run): PLAIN, SCEN
# (training frames), VAL (validation frames of each kind), EPOCHS, BATCH, LR, JPEG (the share of
# samples JPEG-compressed, docs/depthnet.md "Lossy frames"), LOW_LIGHT (the share taken as in a dim
# room, "Dim light"), WORKERS, TOTAL_S
# (the whole script's wall-clock budget; the training gets what the steps before it left, less
# 30 s, or TRAIN_S if given; on expiry its last checkpoint becomes the candidate), DATA (scratch
# folder for the frames), INIT (weights to start from).
set -euo pipefail

OUT=${1:?usage: bash depthnet/device_finetune.sh OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1

CORES=$(nproc)
if [[ ${SMOKE:-0} == 1 ]]; then
    : "${PLAIN:=24}" "${SCEN:=16}" "${VAL:=8}" "${EPOCHS:=1}" "${BATCH:=4}" "${TOTAL_S:=600}"
    : "${DEVICE:=cpu}" "${CHECKPOINT_EVERY:=5}"
else
    : "${PLAIN:=6000}" "${SCEN:=4000}" "${VAL:=200}" "${EPOCHS:=6}" "${BATCH:=32}" "${TOTAL_S:=540}"
    : "${DEVICE:=auto}" "${CHECKPOINT_EVERY:=100}"
fi
: "${LR:=2e-4}" "${JPEG:=0.5}" "${LOW_LIGHT:=0.3}" "${WORKERS:=$((CORES > 2 ? CORES - 1 : 0))}" "${DATA:=/tmp/handrgbd_device_data}"
: "${INIT:=depthnet/weights/depthnet_cpu_b650b2459a.pt}"

step() { echo "== $(date -u +%H:%M:%S) $*"; }

# Packages the device's image lacks travel as wheels (.whl), EGL's loader as Debian packages
# (.gl); here, with the project's own environment, neither folder exists and nothing happens.
if compgen -G ".whl/*.whl" >/dev/null; then
    step "installing carried wheels"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if compgen -G ".gl/*.deb" >/dev/null; then
    step "unpacking carried GL packages"
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    if [[ -d /usr/local/nvidia/share/glvnd/egl_vendor.d ]]; then
        export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && PY=${PYTHON:-.venv/bin/python}
handrgbd() { "$PY" -m handrgbd.cli "$@"; }

step "checks: the machine, torch's device, one rendered frame"
"$PY" - <<'EOF' | tee "$OUT/env.txt"
import os, platform, torch
print("cpu cores", os.cpu_count(), platform.processor() or platform.machine())
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
from renderer.context import create_context
ctx = create_context()
print("GL", ctx.info())
ctx.close()
EOF

mkdir -p "$DATA"
synth() {  # folder, frames, seed, split, extra options
    local dir=$DATA/$1
    step "synth $1: $2 frames"
    handrgbd synth --out "$dir" --frames "$2" --seed "$3" --split "$4" --collage-prob 0 \
        --workers "$CORES" --no-progress "${@:5}"
}
synth plain_val "$VAL" 0 val
synth scen_val "$VAL" 0 val --scenario all
synth scen_train "$SCEN" 31 train --scenario all
synth plain_train "$PLAIN" 32 train

RUN=$DATA/run
# the training gets what is left of TOTAL_S (the command's budget) less 30 s to export and copy
: "${TRAIN_S:=$(( ${TOTAL_S:-100000} - SECONDS - 30 ))}"
(( TRAIN_S > 0 )) || { echo "no time left to train (TOTAL_S=$TOTAL_S, $SECONDS s spent)" >&2; exit 1; }
RESUME=()
[[ -f $RUN/checkpoint.pt ]] && RESUME=(--resume)  # a second call on a warm machine continues
step "train: $EPOCHS epochs at most, $TRAIN_S s at most ${RESUME[*]}"
set +e
timeout --signal=INT "$TRAIN_S" "$PY" -m handrgbd.cli train \
    --data "$DATA/scen_train" "$DATA/plain_train" --val "$DATA/plain_val" "$DATA/scen_val" \
    --out "$RUN" --preset cpu+keypoints --keypoint-head hourglass --foreground eq1 \
    --epochs "$EPOCHS" --lr "$LR" --lr-step 2 --batch-size "$BATCH" --workers "$WORKERS" \
    --device "$DEVICE" --val-frames "$VAL" --checkpoint-every "$CHECKPOINT_EVERY" \
    --jpeg-prob "$JPEG" --low-light-prob "$LOW_LIGHT" --init "$INIT" --no-progress "${RESUME[@]}"
rc=$?
set -e
step "train exited with $rc"
cp "$RUN/config.json" "$OUT/" 2>/dev/null || true
cp "$RUN/metrics.csv" "$OUT/" 2>/dev/null || true
if [[ -f $RUN/model.pt ]]; then
    cp "$RUN/model.pt" "$OUT/model.pt"
elif [[ -f $RUN/checkpoint.pt ]]; then
    step "no model.pt (stopped): exporting the last checkpoint"
    "$PY" -c 'import sys; from depthnet.train import export_weights; export_weights(*sys.argv[1:])' \
        "$RUN/checkpoint.pt" "$OUT/model.pt"
else
    echo "no checkpoint was written" >&2
    exit 1
fi
ls -l "$OUT"
step "done"
