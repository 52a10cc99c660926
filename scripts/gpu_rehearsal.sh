#!/usr/bin/env bash
# The paper-shape rehearsals on one GPU, prepared for a session that is lent one (e.g. an H200; under 10 minutes).
#
#   1. XGLM-564M at the paper's per-GPU batch (the paper profile: 16 pairs x seq 512, bf16, DeepSpeed ZeRO-2),
#      gradient checkpointing off, as `paper-plan --commands` trains it.
#   2. The largest paper shape that fits the GPU with gradient checkpointing: Llama-7B at batch 16, then 8, 4,
#      2, 1 per GPU until one runs without running out of memory (an out-of-memory error moves down the ladder;
#      any other error stops it).
# Each is `python -m torch.distributed.run --nproc_per_node 1 -m afp_lib rehearse ... --json` (the real launcher
# and backend; random weights, synthetic rows). Into $OUT go three files: summary.json (every attempt: peak
# GPU memory, tokens/s, MFU, step times, or why it failed), summary.md (the same as a table) and
# rehearsal.log (every attempt's output). Paste the table into the README's "Running the paper profile".
#
# usage: scripts/gpu_rehearsal.sh [--dry-run]
#   OUT       where the three files go (default runs/gpu_rehearsal)
#   PY        python with torch (default: .venv/bin/python if there, else python3)
#   BACKEND   deepspeed | torch | auto (default auto: deepspeed when it imports, else torch, which trains fp32
#             master weights under bf16 autocast: more memory than DeepSpeed's bf16 weights)
#   BUDGET_S  seconds for the whole script (default 540); an attempt that cannot start in time is skipped
#   STEPS     optimizer steps per attempt (default 5; the first is warm-up and not timed)
#   --dry-run the same sequence on the CPU with a cut-down model (1 layer, vocabulary 512, fp32, batch 2 x 32,
#             ladder 2 1): checks the script and its commands, measures nothing of interest.
#
# Packages: the script needs the project's imports (torch, transformers, datasets; deepspeed for
# BACKEND=deepspeed). A machine that cannot install them may take wheels from a `.whl` folder in the
# repository root, installed here into /tmp/site (pure-Python ones: e.g. `pip download --no-deps
# --only-binary=:all: --python-version 3.12 -d .whl datasets dill multiprocess` and, since DeepSpeed publishes
# no wheel, `pip wheel --no-deps -w .whl deepspeed hjson`, with their missing requirements).
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

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl/*.whl failed" >&2; exit 3; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
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
  CUT=(--layers 1 --vocab 512 device=cpu precision=fp32 batch_size=2 seq_len=32) LADDER="2 1" NPROC=1
else
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "torch sees no GPU (use --dry-run to check the script on the CPU)" >&2; exit 3; }
  CUT=() LADDER="16 8 4 2 1" NPROC=1
fi
echo "gpu_rehearsal: backend $BACKEND, $STEPS steps per attempt, budget ${BUDGET_S}s, dry run $DRY, out $OUT" | tee -a "$LOG"

# attempt NAME ARGS...: one rehearsal; prints ok | oom | failed | skipped and leaves $WORK/NAME.json when ok
attempt() {
  local name=$1; shift
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -lt 60 ]; then
    echo "{\"attempt\": \"$name\", \"status\": \"skipped\", \"why\": \"${left}s of the budget left\"}" > "$WORK/$name.json"
    echo skipped; return
  fi
  timeout --signal=TERM --kill-after=20 "$left" "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
    -m afp_lib rehearse --steps "$STEPS" --json "$WORK/$name.ok.json" "$@" > "$WORK/$name.log" 2>&1
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

s=$(attempt xglm-564M-paper-batch --arch xglm-564M "${CUT[@]}" "backend=$BACKEND")
echo "xglm-564M at the paper's batch: $s" | tee -a "$LOG"
for b in $LADDER; do
  s=$(attempt "llama-7B-ckpt-b$b" --arch llama-7B "${CUT[@]}" "backend=$BACKEND" gradient_checkpointing=true "batch_size=$b")
  echo "llama-7B, gradient checkpointing, batch $b per GPU: $s" | tee -a "$LOG"
  [ "$s" = oom ] || break
done

"$PY" - "$WORK" "$OUT" "$DRY" <<'EOF'
import json, sys
from pathlib import Path
work, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
rows = [json.loads(p.read_text()) for p in sorted(work.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        if not p.name.endswith(".ok.json")]
(out / "summary.json").write_text(json.dumps({"dry_run": dry, "attempts": rows}, indent=1))
lines = ["| attempt | status | params | backend | batch x seq | ckpt | peak GiB | tokens/s | CIT tokens/s | MFU | step s |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    if r["status"] != "ok":
        lines.append(f"| {r['attempt']} | {r['status']} |" + " |" * 9)
        continue
    be = r["backend"] + (f" ZeRO-{r['zero_stage']}" if r.get("zero_stage") is not None else "")
    mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
    lines.append(f"| {r['attempt']} | ok | {r['params'] / 1e6:.0f}M | {be}, {r['precision']} | "
                 f"{r['batch_size_per_rank']} x {r['seq_len']} | {'on' if r['gradient_checkpointing'] else 'off'} | "
                 f"{max(r['peak_memory_gib_per_rank']):.2f} | {r['tokens_per_s']:.0f} | {r['cit_tokens_per_s']:.0f} | "
                 f"{mfu} | {', '.join(f'{s:.2f}' for s in r['step_seconds'])} |")
head = f"GPU rehearsal on {next((r['device'] for r in rows if r.get('device')), '?')}" + (" (dry run: cut-down model on the CPU)" if dry else "")
(out / "summary.md").write_text(head + "\n\n" + "\n".join(lines) + "\n")
print((out / "summary.md").read_text())
EOF
echo "gpu_rehearsal: $(( $(date +%s) - START ))s" | tee -a "$LOG"
