#!/usr/bin/env bash
# The GPU figures of the README's performance section in one time-boxed run, for a session lent a GPU
# (15 minutes of device time, the machine's start included; one command may run 10 minutes).
#
#   once, here:      ../shared/scripts/gpu-wheels.sh .gpuwhl && echo '/.gpuwhl/' >> .git/info/exclude
#   on the device:   carry [".gpuwhl"], command "bash benchmarks/gpu_session.sh", timeout_s 590
#
# Every step has its own time box (seconds, first column below) and writes its printout, and JSON where the
# script writes one, under $OUT (default benchmark_runs/gpu_session): 8 files at most, as the device returns.
# A step that runs out of time keeps what it printed and the next step runs. Random weights, bf16.
# TINY=1 runs every step on the tiny random CLIP (a CPU smoke run of this script).
set -uo pipefail
out="${OUT:-benchmark_runs/gpu_session}"
mkdir -p "$out"
if compgen -G ".gpuwhl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpuwhl/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src"
else
  export PYTHONPATH="$PWD/src"
fi
export ANOMALIB_GLOCALCLIP_OFFLINE=1 HF_HUB_OFFLINE=1
tiny=()
three=(--categories bottle cable carpet)
if [[ "${TINY:-0}" == 1 ]]; then
  tiny=(--tiny)
  three=()
fi

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; git rev-parse HEAD; } \
  > "$out/device.txt" 2>&1

step() {
  local seconds=$1 name=$2
  shift 2
  echo "== $name (at most $seconds s): $*" | tee -a "$out/device.txt"
  timeout --kill-after=5 "$seconds" "$@" > "$out/$name.txt" 2>&1
  echo "== exit status $?" >> "$out/$name.txt"
}

# Issue 17: GlocalCLIP vs the bare encoders at batch 1 and 32, eager; then compiled with CUDA graphs.
step 90 inference python3 benchmarks/inference_speed.py "${tiny[@]}" --batch-sizes 1 32 --precisions bf16 \
  --json "$out/inference.json"
step 80 inference_compiled python3 benchmarks/inference_speed.py "${tiny[@]}" --batch-sizes 1 32 \
  --precisions bf16 --compile --cuda-graphs --models "ViT-L-14 bare" GlocalCLIP
# Issue 14: three categories first (a figure even if the full sweep overruns), then all 15 with and without
# heatmaps, anomalib test's two passes (validate + test) against the sweep's one pass, and the metrics timed alone.
step 50 evaluate_3 python3 benchmarks/evaluate_speed.py "${tiny[@]}" "${three[@]}" --heatmaps off --no-host-metrics
step 160 evaluate python3 benchmarks/evaluate_speed.py "${tiny[@]}" --no-host-metrics --json "$out/evaluate.json"
# Issue 17: the 15-epoch fit on 2,162 VisA-sized JPEGs, eager and compiled (two fits and an uncached epoch).
step 180 training python3 benchmarks/training_speed.py "${tiny[@]}" --precision bf16 --compile
