#!/usr/bin/env bash
# A training.recipe run on a lent GPU machine, prepared here so the machine's few minutes go to training.
#
#   bash training/device_run.sh OUT_DIR [training.recipe options]      # e.g. OUT_DIR=$OUT on the device tool
#
# What the machine may lack, it is given: Keras (its image has JAX but no Keras) comes from the wheels in .whl/
# (keras, namex, optree: carry .whl with the pack), installed into a scratch folder; without ffmpeg the recipe's codec
# damage falls back to JPEG. The backend is JAX when it imports, else TensorFlow (KERAS_BACKEND overrides). The run
# goes to OUT_DIR/run, its log to OUT_DIR/log.txt; files over 16 MiB are named at the end, since the device tool
# returns only smaller ones (the recipe's weight files are about 9 MB). The same command runs on a CPU machine, with
# the checkout's .venv when it has one (PYTHON overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  echo "usage: bash training/device_run.sh OUT_DIR [training.recipe options]" >&2
  exit 2
fi
out=$1
shift
# this checkout's virtual environment where there is one (a CPU machine here), else the machine's python3 (a device)
if [ -n "${PYTHON:-}" ]; then py=$PYTHON; elif [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
wheels=${WHEELS:-.whl}

if ! "$py" -c "import keras" >/dev/null 2>&1; then
  shopt -s nullglob
  found=("$wheels"/*.whl)
  if [ ${#found[@]} -eq 0 ]; then
    echo "error: keras does not import and there are no wheels in $wheels/ to install it from (carry .whl)" >&2
    exit 2
  fi
  site=$(mktemp -d)
  "$py" -m pip install -q --no-index --no-deps --target "$site" "${found[@]}"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${KERAS_BACKEND:-}" ]; then
  if "$py" -c "import jax" >/dev/null 2>&1; then KERAS_BACKEND=jax; else KERAS_BACKEND=tensorflow; fi
fi
export KERAS_BACKEND

mkdir -p "$out"
{
  echo "device_run: backend $KERAS_BACKEND, $(nproc) cores, started $(date -u +%H:%M:%S)"
  if [ "$KERAS_BACKEND" = jax ]; then "$py" -c "import jax; print('device_run: devices', jax.devices())"; fi
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
} 2>&1 | tee "$out/log.txt"

status=0
"$py" -m training.recipe --out "$out/run" "$@" 2>&1 | tee -a "$out/log.txt" || status=$?
echo "device_run: finished $(date -u +%H:%M:%S), exit status $status" | tee -a "$out/log.txt"
find "$out" -type f -size +16M -printf "device_run: %p is over 16 MiB and will not come back\n" | tee -a "$out/log.txt"
exit "$status"
