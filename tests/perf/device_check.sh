#!/usr/bin/env bash
# Device check (docs/performance.md, "GPU and other devices"): the notebook grid with
# seeds_per_program = "auto" on this machine's GPU, plain Keras fit on the same GPU, and a CPU
# reference, in one process (<= 5 min on one H100). `--cpu`: the tiny CPU mode (seconds) that
# tests/perf/test_device_check.py runs, so CI keeps this script working.
#   bash tests/perf/device_check.sh [--cpu] [--nondeterministic-too] [--json FILE] ...
set -euo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" tests/perf/device_check.py "$@"
