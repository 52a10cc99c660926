#!/usr/bin/env bash
# Build the wheel folder .whl/ that scripts/gpu_rehearsal.sh installs on a machine without a package index
# (Python 3.12, x86_64 Linux): every package of scripts/rehearsal_wheels.txt as a Python 3.12 manylinux wheel,
# deepspeed (a source archive only on PyPI) built here into a wheel without its CUDA ops (DS_BUILD_OPS=0: the
# GPU machine JIT-builds FusedAdam with nvcc at the first step). Prints each wheel's size and the total,
# and fails when the total exceeds the 64 MiB a checkout may carry.
#
# All of them come to 71 MiB (pyarrow alone 52 MiB, pandas 11 MiB, the rest 7 MiB; measured 2026-12-04), so
# one of the two large ones must already be on the target: SKIP leaves packages out (default pandas, the more
# common of the two); gpu_rehearsal.sh names any the target then lacks.
#
# usage: scripts/fetch_rehearsal_wheels.sh [DEST]    (DEST default .whl; never committed: .gitignore)
#   PY    the python whose pip downloads/builds (default: python3; any Python version: the downloads name 3.12)
#   SKIP  distributions of rehearsal_wheels.txt not to fetch, space-separated (default "pandas"; "" = none)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY=${PY:-python3}
SKIP=${SKIP-pandas}
LIMIT=$((64 * 1024 * 1024))
mkdir -p "$DEST"
mapfile -t SPECS < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/rehearsal_wheels.txt | awk '{print $1}')
for spec in "${SPECS[@]}"; do
  name=${spec%%==*}
  case " $SKIP " in *" $name "*) echo "skipped (SKIP): $spec"; continue ;; esac
  if [ "$name" = deepspeed ]; then  # pure-Python once its ops are left to the JIT: py3-none-any
    DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$spec" \
      || DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps -w "$DEST" "$spec"
  else
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$DEST" "$spec"
  fi
done
total=0
for f in "$DEST"/*.whl; do
  size=$(stat -c %s "$f"); total=$((total + size))
  printf '%10d  %s\n' "$size" "$(basename "$f")"
done
printf 'total %d bytes (%.1f MiB) in %s, limit 64 MiB\n' "$total" "$(echo "$total / 1048576" | bc -l)" "$DEST"
[ "$total" -le "$LIMIT" ] || { echo "fetch_rehearsal_wheels: over the 64 MiB a checkout may carry" >&2; exit 1; }
