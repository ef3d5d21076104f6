#!/usr/bin/env bash
# The GPU check: install the carried wheels, run every GPU benchmark, write results.json + summary.md under --out,
# print the summary table last. On one H200 it finishes within 8 minutes (a hard limit of 470 s on the Python part).
#
#   benchmarks/gpu/run.sh [--wheels DIR] [--out DIR]     # on the GPU machine (wheels: `make gpu-wheels` here)
#   benchmarks/gpu/run.sh --cpu [--out DIR]              # the same script with tiny shapes, on CPU (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=gpu
out=build/gpu-bench
wheels=build/gpu-wheels
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --out) out="$2"; shift ;;
    --wheels) wheels="$2"; shift ;;
    *) echo "usage: $0 [--cpu] [--out DIR] [--wheels DIR]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"

if [ "$mode" = cpu ]; then
  py=python3
  [ -x .venv/bin/python ] && py=.venv/bin/python
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  export TRITON_INTERPRET=1  # the Triton kernel runs in Triton's CPU interpreter (when triton is installed)
  limit=120
else
  py=python3
  if ! "$py" -c "import sae_lens, nnsight, datasets, neuronpedia" 2>/dev/null; then
    if [ ! -d "$wheels" ]; then
      echo "error: sae_lens/nnsight/datasets/neuronpedia are missing and $wheels does not exist: run \`make gpu-wheels\` on a machine with PyPI access and carry that folder" >&2
      exit 2
    fi
    site=/tmp/interp_sot_gpu_site
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  limit=470
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
rc=0
timeout "$limit" "$py" benchmarks/gpu/bench.py --mode "$mode" --out "$out" || rc=$?
[ "$rc" = 124 ] && echo "error: the benchmarks ran past ${limit} s; the sections that finished are below" >&2
echo
if [ -f "$out/summary.md" ]; then cat "$out/summary.md"; else echo "no summary written" >&2; fi
exit "$rc"
