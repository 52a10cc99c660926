#!/usr/bin/env bash
# The paper-shape rehearsals on one GPU, prepared for a session that is lent one (e.g. an H200; under 10 minutes).
#
#   1. XGLM-564M on the paper's real path: the paper profile's packed CIT rows beside the MCL pairs, 16 pairs
#      x seq 512, bf16, DeepSpeed ZeRO-2, random weights: tokens/s, peak memory, MFU over non-embedding FLOPs.
#   2. XGLM-7.5B, BLOOM-7b1 and Llama-7B at their real width and vocabulary, cut to 2 and 4 blocks, with and
#      without gradient checkpointing (`rehearse --depths 2,4 --ckpt both`, one process per model): peak
#      allocated and reserved memory and step time per block by difference, extrapolated to the full depth,
#      and that extrapolation with the ZeRO-2 states sharded over 8 GPUs (the paper's node).
# Each is `python -m torch.distributed.run --nproc_per_node 1 -m afp_lib rehearse ... --json` (the real launcher
# and backend). Into $OUT go summary.json (every attempt's numbers, or why it failed), summary.md (the same
# as tables) and rehearsal.log (every attempt's output). docs/gpu.md says how to read them.
#
# usage: scripts/gpu_rehearsal.sh [--dry-run]
#   OUT       where the three files go (default runs/gpu_rehearsal)
#   PY        python with torch (default: .venv/bin/python if there, else python3)
#   BACKEND   deepspeed | torch | auto (default auto: deepspeed when it imports, else torch, which trains fp32
#             master weights under bf16 autocast: more memory than DeepSpeed's bf16 weights)
#   BUDGET_S  seconds for the whole script (default 540); an attempt that cannot start in time is skipped
#   STEPS     optimizer steps of the XGLM-564M attempt (default 5), SWEEP_STEPS of each depth (default 3);
#             the first step is warm-up and not timed
#   ARCHS     the per-block sweeps (default "xglm-7.5B bloom-7b1 llama-7b": registered checkpoints)
#   --dry-run the same sequence on the CPU, cut down (depths 1 and 2, width 64, vocabulary 512, fp32,
#             batch 2 x 32): checks the script and its commands, measures nothing of interest. No wheels.
#
# Packages: the project's imports. A machine without a package index takes wheels from a `.whl` folder in the
# checkout (built by scripts/fetch_rehearsal_wheels.sh from scripts/rehearsal_wheels.txt: Python 3.12
# manylinux wheels, deepspeed built as a wheel), installed here with
# `pip install --no-index --no-deps --target /tmp/site .whl/*.whl`; an import the rehearsal needs that still
# fails stops the script, naming the package and its pinned version.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (use --dry-run or --help)" >&2; exit 2 ;;
esac

OUT=${OUT:-runs/gpu_rehearsal}
BUDGET_S=${BUDGET_S:-540}
STEPS=${STEPS:-5}
SWEEP_STEPS=${SWEEP_STEPS:-3}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LOG="$OUT/rehearsal.log"
: > "$LOG"
START=$(date +%s)
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the checkout's afp_lib, installed or not

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl/*.whl failed" >&2; exit 3; }
  export PYTHONPATH=/tmp/site:$PYTHONPATH PATH=/tmp/site/bin:$PATH  # bin: ninja, for DeepSpeed's JIT build
fi

if [ "$DRY" = 0 ]; then  # every package the rehearsal needs: a missing one is named with its pinned version
  "$PY" scripts/check_rehearsal_wheels.py scripts/rehearsal_wheels.txt || exit 3
fi
if ! "$PY" -c "import afp_lib.trainer.loop, afp_lib.trainer.rehearse" 2>"$WORK/import.err"; then
  echo "the project does not import with $PY:" >&2; tail -3 "$WORK/import.err" >&2
  echo "(install its packages, or bring wheels in .whl: see the head of this script)" >&2
  exit 3
fi
if [ "${BACKEND:-auto}" = auto ]; then
  if "$PY" -c "import deepspeed" >/dev/null 2>&1; then BACKEND=deepspeed; else BACKEND=torch; fi
fi
if [ "$DRY" = 1 ]; then
  CUT=(--vocab 512 --width 64 device=cpu precision=fp32 batch_size=2 seq_len=32) FIRST=(--layers 1) DEPTHS=1,2
  STEPS=2 SWEEP_STEPS=2
else
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "torch sees no GPU (use --dry-run to check the script on the CPU)" >&2; exit 3; }
  CUT=() FIRST=() DEPTHS=2,4
fi
NPROC=1
echo "gpu_rehearsal: backend $BACKEND, budget ${BUDGET_S}s, dry run $DRY, out $OUT" | tee -a "$LOG"

# attempt NAME ARGS...: one rehearsal; prints ok | oom | failed | skipped and leaves $WORK/NAME.json
attempt() {
  local name=$1; shift
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -lt 60 ]; then
    echo "{\"attempt\": \"$name\", \"status\": \"skipped\", \"why\": \"${left}s of the budget left\"}" > "$WORK/$name.json"
    echo skipped; return
  fi
  timeout --signal=TERM --kill-after=20 "$left" "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
    -m afp_lib rehearse --json "$WORK/$name.ok.json" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  { echo "=== $name (exit $rc): rehearse $*"; cat "$WORK/$name.log"; } >> "$LOG"
  if [ "$rc" = 0 ] && [ -f "$WORK/$name.ok.json" ]; then
    "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); d.update(attempt=sys.argv[2], status='ok')
json.dump(d, open(sys.argv[3], 'w'))" "$WORK/$name.ok.json" "$name" "$WORK/$name.json"
    echo ok
  elif grep -q -E "OutOfMemoryError|CUDA out of memory|CUBLAS_STATUS_ALLOC_FAILED" "$WORK/$name.log"; then
    echo "{\"attempt\": \"$name\", \"status\": \"oom\", \"exit\": $rc}" > "$WORK/$name.json"; echo oom
  else
    echo "{\"attempt\": \"$name\", \"status\": \"failed\", \"exit\": $rc, \"why\": \"see rehearsal.log\"}" > "$WORK/$name.json"
    echo failed
  fi
}

s=$(attempt xglm-564M-paper-path --arch xglm-564M --steps "$STEPS" "${FIRST[@]}" "${CUT[@]}" "backend=$BACKEND")
echo "xglm-564M on the paper's path (packed, ZeRO-2, bf16, 16 x 512): $s" | tee -a "$LOG"
for arch in ${ARCHS:-xglm-7.5B bloom-7b1 llama-7b}; do
  s=$(attempt "$arch-per-block" --arch "$arch" --depths "$DEPTHS" --ckpt both --steps "$SWEEP_STEPS" "${CUT[@]}" \
      "backend=$BACKEND")
  echo "$arch at depths $DEPTHS, gradient checkpointing off and on: $s" | tee -a "$LOG"
done

"$PY" -c "import sys; from afp_lib.trainer.rehearse import summarise; summarise(*sys.argv[1:3], sys.argv[3] == '1')" \
  "$WORK" "$OUT" "$DRY"
echo "gpu_rehearsal: $(( $(date +%s) - START ))s" | tee -a "$LOG"
