#!/usr/bin/env bash
# The GPU run of issue 15, prepared to run once on the GPU machine: install cuDF from
# carried wheel parts, run the polars-vs-cuDF parity test (both feature sets), then the
# benchmark, and print its JSON line last. See docs/gpu.md.
#
#   scripts/gpu/run-on-device.sh stage     # one call per carried part: keeps .gpu/p* in $PARTS_DIR
#   scripts/gpu/run-on-device.sh run       # assemble, install, parity, benchmark
#   scripts/gpu/run-on-device.sh dry-run   # here, on CPU: no install, polars only, tiny sizes
#
# Wheels: on a machine with PyPI, from the repo root,
#   ../shared/gpu/prepare-wheels.sh polars==2.1.0 polars-runtime-32==2.1.0 orjson==3.13.0 msgspec==0.23.0
# writes .gpu/p00, p01, ... (58 MiB each; one travels per device call, with `carry`).
# Everything else the tests and the benchmark import is on the GPU machine already
# (numpy, pyarrow, cupy-cuda13x, numba-cuda, pytest, pytest-timeout, hypothesis).
set -euo pipefail
mode=${1:-run}
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
PARTS_DIR=${PARTS_DIR:-/tmp/sp-parts}
WORK=${WORK:-/tmp/sp-gpu}
OUT_DIR=${OUT:-$WORK/out}
BENCH_SIZES=${BENCH_SIZES:-1000 10000 100000 1000000 10000000}
mkdir -p "$OUT_DIR"

stage() {
  mkdir -p "$PARTS_DIR"
  shopt -s nullglob
  local parts=(.gpu/p[0-9][0-9])
  ((${#parts[@]})) || { echo "no .gpu/pNN part was carried" >&2; exit 2; }
  cp "${parts[@]}" "$PARTS_DIR"/
  echo "staged: $(cd "$PARTS_DIR" && ls p[0-9][0-9] | tr '\n' ' ')"
}

install() {
  shopt -s nullglob
  local carried=(.gpu/p[0-9][0-9])
  ((${#carried[@]})) && stage
  rm -rf "$WORK/w" "$WORK/site" && mkdir -p "$WORK/w"
  cat "$PARTS_DIR"/p[0-9][0-9] > "$WORK/w.tar"
  tar xf "$WORK/w.tar" -C "$WORK/w" && rm -f "$WORK/w.tar"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WORK"/w/*.whl
  # numba-cuda 0.30 still calls numpy.row_stack, which numpy 2.5 removed (../shared/gpu/README.md).
  printf 'import numpy\nif not hasattr(numpy, "row_stack"):\n    numpy.row_stack = numpy.vstack\n' \
    > "$WORK/site/sitecustomize.py"
  export PYTHONPATH="$WORK/site:$PWD/src:$PWD"
}

parity() {
  # --confcutdir: the suite's top conftest starts Kafka fixtures this run does not need.
  # -p no:warnings: the project turns warnings into errors; cuDF's own import warnings
  # are not what this run checks.
  "$PYTHON" -m pytest -q -p no:cacheprovider -p no:warnings --confcutdir=tests/unit/platform/features \
    tests/unit/platform/features/test_parity.py tests/unit/platform/features/test_parity_cases.py "$@" 2>&1 \
    | tee "$OUT_DIR/parity.log"
}

bench() {
  # shellcheck disable=SC2086 # the sizes are a word list on purpose
  "$PYTHON" scripts/bench_features.py --sizes $BENCH_SIZES "$@" 2> "$OUT_DIR/bench.err" \
    | tee "$OUT_DIR/bench.json"
}

case "$mode" in
  stage) stage ;;
  run)
    set -o pipefail
    install
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    "$PYTHON" -c 'import cudf, polars; print("cudf", cudf.__version__, "polars", polars.__version__)'
    STREAMPLANE_REQUIRE_GPU=1 parity || echo "PARITY FAILED (log: $OUT_DIR/parity.log)"
    bench --min-seconds 1 --max-call-s 20
    ;;
  dry-run)
    set -o pipefail
    PYTHON=${PYTHON_DRY:-.venv/bin/python}
    [ -x "$PYTHON" ] || PYTHON=python3
    export PYTHONPATH="$PWD/src:$PWD"
    parity
    BENCH_SIZES=${DRY_SIZES:-200 2000} bench --min-seconds 0 --max-call-s 20
    ;;
  *) echo "usage: $0 stage|run|dry-run" >&2; exit 2 ;;
esac
