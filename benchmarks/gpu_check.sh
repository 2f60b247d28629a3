#!/usr/bin/env bash
# One prepared GPU check of leanconv's CUDA kernels, for a session that has a
# GPU machine (an H200 with torch 2.11/CUDA 13, Python 3.12, no network):
#
#   bash benchmarks/gpu_check.sh            # build + tests + benchmark (about 8 min)
#   bash benchmarks/gpu_check.sh build tests
#   bash benchmarks/gpu_check.sh build bench
#   bash benchmarks/gpu_check.sh build dropin # the drop-in benchmark (module against torch module)
#   bash benchmarks/gpu_check.sh build more   # the wave and float16 benchmarks
#
# Stages:
#   build  pip install --no-build-isolation --no-deps for TORCH_CUDA_ARCH_LIST
#          (default 9.0) into build/gpu-check-site (no site-packages touched;
#          the build folder build/<wheel tag> is kept, so a rerun on a warm
#          machine recompiles nothing), LEANCONV_CUDA=ON (a CPU-only build fails);
#   tests  pytest on the test files with CUDA cases (CUDA-only files first),
#          one process per file so that a crash stops only its file
#          (GPU_TEST_FILES replaces the list, GPU_TEST_K adds a pytest -k
#          expression; TESTS_LIMIT is for all of them), junit XML kept; a test
#          that crashes the process runs once more under cuda-gdb (or gdb) for
#          a native backtrace (crash-<file>.log; CRASH_LIMIT, default 90 s);
#   bench  python -m leanconv bench depthwise --device cuda --dtype D for
#          D in float32 bfloat16 (extra arguments: BENCH_ARGS);
#   dropin (not in the default list) the drop-in benchmark on CUDA (module
#          against the torch module, per-shape choice included) in float32 and
#          bfloat16 (DROPIN_LIMIT 120 per dtype, extra arguments: DROPIN_ARGS);
#   more   (not in the default list) the depthwise benchmark in float16, and
#          the wave benchmark on CUDA (batch 64, 256^2: fused CUDA kernel
#          against the torch ops; MORE_LIMIT 120 per step).
# Everything lands in $OUT (the device tool's output folder
# when OUT is unset: build/gpu-check-out): summary.txt, tests.log, bench.md (the benchmark's
# markdown tables) and gpu_check.tar.gz with every log, the junit XML and the
# benchmark's JSON/markdown files.  The whole run keeps within GPU_CHECK_BUDGET
# seconds (default 540): each stage gets at most its own limit (BUILD_LIMIT 300,
# TESTS_LIMIT 270, BENCH_LIMIT 120 per dtype) and what is left of the budget.
# Exit status: 0 when every stage that ran passed.
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="${OUT:-$ROOT/build/gpu-check-out}"
PY="${PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET:-540}"
WORK="$ROOT/build/gpu-check"   # logs and results before they are packed
SITE="$ROOT/build/gpu-check-site"
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(build tests bench)
rm -rf "$WORK"
mkdir -p "$OUT" "$WORK"
rm -f "$OUT/summary.txt" "$OUT/tests.log" "$OUT/bench.md" "$OUT/gpu_check.tar.gz"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
STATUS=0

log() { echo "== $(date -u +%H:%M:%S) [${SECONDS}s] $*" | tee -a "$WORK/summary.txt"; }

# step NAME LIMIT CMD...: runs CMD with a time limit of min(LIMIT, what is
# left of the budget), output to $WORK/NAME.log, prints its tail.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - SECONDS - 15))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 20 ]; then
    log "$name: skipped (budget of ${BUDGET}s used up)"
    STATUS=1
    return 1
  fi
  log "$name: start (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && log "$name: TIMED OUT after ${limit}s"
  log "$name: exit $rc"
  tail -n 30 "$WORK/$name.log"
  [ $rc -ne 0 ] && STATUS=1
  return $rc
}

pack() {
  cp "$WORK/summary.txt" "$OUT/summary.txt"
  [ -f "$WORK/tests.log" ] && cp "$WORK/tests.log" "$OUT/tests.log"
  [ -f "$WORK/bench.md" ] && cp "$WORK/bench.md" "$OUT/bench.md"
  tar -czf "$OUT/gpu_check.tar.gz" -C "$WORK" . 2>/dev/null
}
trap pack EXIT

has_stage() { local s; for s in "${STAGES[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# collect NAME: the benchmark files written since the stamp of stage NAME into
# results/ (the benchmarks write under benchmarks/results in a source checkout,
# ./benchmark-results from an installed package) and their markdown into bench.md.
collect() {
  mkdir -p "$WORK/results"
  find "$ROOT/benchmarks/results" "$ROOT/benchmark-results" -type f -newer "$WORK/.$1-start" \
    -exec cp {} "$WORK/results/" \; 2>/dev/null
  find "$ROOT/benchmarks/results" "$ROOT/benchmark-results" -name '*.md' -newer "$WORK/.$1-start" \
    -exec cat {} + >>"$WORK/bench.md" 2>/dev/null
  log "$1 benchmark files: $(ls -t "$WORK/results" 2>/dev/null | tr '\n' ' ')"
}

log "leanconv GPU check: stages ${STAGES[*]}, budget ${BUDGET}s, python $PY"
{
  echo "## nvidia-smi"; nvidia-smi 2>&1 || true
  echo "## nvcc"; nvcc --version 2>&1 || true
  echo "## torch"
  "$PY" -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', sys.version.split()[0], 'gpu:', torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1
  echo "## tools"; "$PY" -m pip list 2>/dev/null | grep -iE "^(torch|scikit-build-core|pybind11|ninja|cmake|pytest|hypothesis) " || true
} >"$WORK/env.log" 2>&1
grep -A1 "## torch" "$WORK/env.log" | tail -n 1 | tee -a "$WORK/summary.txt"

if has_stage build; then
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
  export LEANCONV_CUDA="${LEANCONV_CUDA:-ON}"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  if ! step build "${BUILD_LIMIT:-300}" "$PY" -m pip install -v --no-build-isolation --no-deps --no-index --upgrade \
      --target "$SITE" "$ROOT"; then
    log "build failed: see build.log in gpu_check.tar.gz"
    exit 1
  fi
  grep -E "Building CUDA|Linking|leanconv:" "$WORK/build.log" | tail -n 12 >>"$WORK/summary.txt"
fi

# The installed package, not the sources under python/, must be imported.
step info 60 "$PY" -c "import leanconv, json; print(json.dumps(leanconv.build_info(), indent=1))" || true

if has_stage tests; then
  files=()
  # shellcheck disable=SC2086  # GPU_TEST_FILES is a list of words
  for f in ${GPU_TEST_FILES:-tests/test_depthwise_cuda.py tests/test_factorized_ops.py tests/wave/test_cuda.py \
             tests/test_backend_choice.py tests/test_depthwise_module.py tests/test_factorized_nn.py \
             tests/wave/test_wave_step_op.py tests/test_build.py tests/test_depthwise.py}; do
    [ -f "$f" ] && files+=("$f")
  done
  kexpr=()
  [ -n "${GPU_TEST_K:-}" ] && kexpr=(-k "$GPU_TEST_K")
  # One pytest process per file: a crash in one (a segmentation fault stopped the
  # 2026-12-04 run in its second file) does not take the others with it.
  tests_start=$SECONDS
  : >"$WORK/tests.log"
  for f in "${files[@]}"; do
    name=$(basename "$f" .py)
    left=$(( ${TESTS_LIMIT:-270} - (SECONDS - tests_start) ))
    # -v: each test's name is printed before it runs, so a crash names its test
    step "tests-$name" "$left" "$PY" -m pytest -v -ra -p no:cacheprovider --junitxml="$WORK/junit-$name.xml" \
      "${kexpr[@]}" "$f"
    rc=$?
    { echo "## $f"; tail -n 40 "$WORK/tests-$name.log"; } >>"$WORK/tests.log"
    echo "$f: $(grep -E "passed|failed|skipped|error|Fatal" "$WORK/tests-$name.log" | tail -n 1)" >>"$WORK/summary.txt"
    # A crash (segmentation fault, abort): that test once more under the debugger for a
    # native backtrace (Python's own shows only the Python frames), so that one run
    # says where it crashed (the 2026-12-04 libstdc++ crash took a second run to find).
    if [ "$rc" -eq 139 ] || [ "$rc" -eq 134 ]; then
      crashed=$(grep -oE "^$f::[^ ]+" "$WORK/tests-$name.log" | tail -n 1)
      dbg=$(command -v cuda-gdb || command -v gdb)
      if [ -n "$crashed" ] && [ -n "$dbg" ]; then
        step "crash-$name" "${CRASH_LIMIT:-90}" "$dbg" -q -batch -ex run -ex "bt 30" --args \
          "$PY" -m pytest -q -p no:cacheprovider "$crashed"
        echo "$crashed crashed: $(grep -m1 -E "^#0 " "$WORK/crash-$name.log")" >>"$WORK/summary.txt"
      fi
    fi
  done
fi

if has_stage bench; then
  touch "$WORK/.bench-start"
  "$PY" -m leanconv bench depthwise --help >"$WORK/bench-help.log" 2>&1 || true
  for dtype in float32 bfloat16; do
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
    step "bench-$dtype" "${BENCH_LIMIT:-120}" "$PY" -m leanconv bench depthwise --device cuda --dtype "$dtype" ${BENCH_ARGS:-}
  done
  collect bench
fi

if has_stage dropin; then
  touch "$WORK/.dropin-start"
  for dtype in float32 bfloat16; do
    # shellcheck disable=SC2086  # DROPIN_ARGS is a list of words
    step "dropin-$dtype" "${DROPIN_LIMIT:-120}" "$PY" -m leanconv bench dropin --device cuda --dtype "$dtype" \
      ${DROPIN_ARGS:-}
  done
  collect dropin
fi

if has_stage more; then
  touch "$WORK/.more-start"
  step "depthwise-float16" "${MORE_LIMIT:-120}" "$PY" -m leanconv bench depthwise --device cuda --dtype float16 --quick
  step "wave-cuda" "${MORE_LIMIT:-120}" "$PY" -m leanconv bench wave --device cuda --grids 256 --batches 64 \
    --no-sparse --min-time 0.5
  collect more
fi

log "done, status $STATUS"
exit $STATUS
