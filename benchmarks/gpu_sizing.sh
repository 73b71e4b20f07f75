#!/bin/bash
# The GPU sizing measurements of benchmarks/README.md ("On a GPU") in one call on a GPU machine with JAX:
# the speed by width and batch (batch_speed.py), then 60-s sweep.py runs one after another, all under a time cap.
#   CORPUS=path/nietzsche.txt bash benchmarks/gpu_sizing.sh      (results in $OUT, default /tmp/gpuout)
# Variables: CAP (seconds in all, 540), BUDGET (60), CELL (timed seconds per grid cell, 2), GRID (batch_speed.py
# arguments, or none), SPECS (sweep.py configurations), PY (python3). Where a .whl folder exists (Keras and its
# two missing needs, for a machine without them; see gpu_check.py), they are installed into /tmp/site first
# (LOCAL=1 skips that).
set -u
CAP=${CAP:-540}; BUDGET=${BUDGET:-60}; SECONDS_PER_CELL=${CELL:-2}
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"
T0=$(date +%s)
left() { echo $(( CAP - ($(date +%s) - T0) )); }
if [ -d .whl ] && [ -z "${LOCAL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
PY=${PY:-python3}
LOG=$OUT/gpu.log
quiet() { grep -v -E "^I0000|^W0000|WARNING: All log|oneDNN|cudart_stub|rebuild TensorFlow|AVX"; }
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1; nproc; lscpu | grep "Model name";
  $PY -c "import jax, keras, numpy; print('jax', jax.__version__, 'keras', keras.__version__, 'numpy', numpy.__version__, jax.devices())"; } 2>&1 | tee -a "$LOG"
echo "== grid ($(left) s left)" | tee -a "$LOG"
[ "${GRID:-}" = none ] || timeout 150 $PY benchmarks/batch_speed.py ${GRID:---widths 512 1024 2048 --batches 64 256 1024} --seconds "$SECONDS_PER_CELL" --out "$OUT/batch_speed.txt" 2>&1 | quiet | tee -a "$LOG"
for spec in ${SPECS:-units=auto units=1024,batch-size=256 units=512,batch-size=256 units=1024,batch-size=64}; do
  need=$(( BUDGET + 45 ))
  [ "$(left)" -gt "$need" ] || { echo "== skipped $spec ($(left) s left)" | tee -a "$LOG"; continue; }
  echo "== $spec ($(left) s left)" | tee -a "$LOG"
  timeout $(( $(left) - 5 )) $PY benchmarks/sweep.py --budget "$BUDGET" --corpus "${CORPUS:-../shared/corpora/nietzsche.txt}" --out "$OUT/sweep.txt" --train-log "$OUT/train.log" "$spec" 2>&1 | quiet | tee -a "$LOG"
done
echo "== done ($(left) s left)" | tee -a "$LOG"
