#!/usr/bin/env bash
# Install the project with the CUDA build of torch that this node's NVIDIA driver can run.
#
# PyPI's torch (the pin in pyproject.toml) is built for CUDA 13.0 and needs driver >= 580; on an older driver
# torch imports but sees no GPU. PyTorch publishes builds for other CUDA versions on its own indexes
# (https://download.pytorch.org/whl/cu126, cu128, cu130); this script reads the driver version from
# `nvidia-smi`, picks the newest index the driver supports, prints the choice, and installs from it:
#
#   driver >= 580      cu130   (CUDA 13.0)
#   driver >= 570      cu128   (CUDA 12.8)
#   driver >= 525.60   cu126   (CUDA 12.6; drivers 525-559 run it through CUDA 12's minor-version
#                              compatibility, which covers everything torch uses but PTX JIT of newer code)
#   older / no driver  refused (no CUDA build of this torch runs there)
#
# usage: scripts/install_gpu.sh [--print]
#   --print   only print the driver, the index and the pip commands (nothing is installed)
#   PY        the python whose environment gets the packages (default: python3)
#   NVIDIA_SMI  the nvidia-smi command (default: nvidia-smi; the tests point it at a fake)
# e.g. conda: `conda env create -f environment-gpu.yml` (cu128), or `conda create -n afp-gpu python=3.11 pip`,
# `conda activate afp-gpu`, `scripts/install_gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

# cuda_index DRIVER_VERSION: the wheel index tag for a driver version like 535.104.05 (exit 1: none)
cuda_index() {
  local major minor
  IFS=. read -r major minor _ <<< "$1"
  minor=${minor:-0}
  case "$major" in ''|*[!0-9]*) return 1 ;; esac
  minor=$((10#${minor//[!0-9]/}))
  if [ "$major" -ge 580 ]; then echo cu130
  elif [ "$major" -ge 570 ]; then echo cu128
  elif [ "$major" -gt 525 ] || { [ "$major" -eq 525 ] && [ "$minor" -ge 60 ]; }; then echo cu126
  else return 1
  fi
}

PRINT=0
case "${1:-}" in
  --print) PRINT=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (use --print or --help)" >&2; exit 2 ;;
esac
PY=${PY:-python3}
SMI=${NVIDIA_SMI:-nvidia-smi}

if ! out=$($SMI --query-gpu=driver_version --format=csv,noheader 2>&1); then
  echo "install_gpu: '$SMI' failed (no NVIDIA driver on this node?): $out" >&2
  echo "install_gpu: for a CPU-only node use environment.yml or the Makefile's venv" >&2
  exit 3
fi
driver=$(printf '%s\n' "$out" | head -n 1 | tr -d '[:space:]')
if ! index=$(cuda_index "$driver"); then
  echo "install_gpu: driver '$driver' is older than 525.60, the oldest any CUDA build of torch here runs on;" \
       "update the driver or use the CPU install" >&2
  exit 3
fi
torch_pin=$(sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml | head -n 1)
[ -n "$torch_pin" ] || { echo "install_gpu: no torch==... pin found in pyproject.toml" >&2; exit 3; }
url="https://download.pytorch.org/whl/$index"
echo "install_gpu: driver $driver -> $index ($url), $torch_pin"
cmd1=("$PY" -m pip install "$torch_pin" --index-url "$url")
cmd2=("$PY" -m pip install --require-hashes -r requirements.lock)   # the locked rest (torch is not in it)
cmd3=("$PY" -m pip install --no-deps -e .)
echo "install_gpu: ${cmd1[*]}"
echo "install_gpu: ${cmd2[*]}"
echo "install_gpu: ${cmd3[*]}"
[ "$PRINT" = 1 ] && exit 0
"${cmd1[@]}"
"${cmd2[@]}"  # torch is already satisfied: pip keeps the CUDA build (2.x.y+cuNNN satisfies torch==2.x.y)
"${cmd3[@]}"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('install_gpu: torch', torch.__version__, 'CUDA', torch.version.cuda, 'on', torch.cuda.get_device_name(0))"
