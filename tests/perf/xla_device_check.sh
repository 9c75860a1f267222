#!/usr/bin/env bash
# The device check where the GPU machine has no TensorFlow (docs/performance.md, "GPU and other
# devices"): the stacked engine's programs, exported as XLA HLO by tests/perf/xla_export.py on a
# machine with TensorFlow, replayed by JAX's XLA (tests/perf/xla_replay.py) on this machine's
# default device, and checked against the engine's CPU runs of the same seeds.
#
#   bash tests/perf/xla_device_check.sh DIR
#
# Then plain Keras fit of seed 0 per placement on the same device, the engine under Keras 3's JAX
# backend (tests/perf/keras_device_check.py), for s256's data and epochs (else the largest cell's).
#
# DIR holds one xla_export.py OUT folder per program size, named s<S> (the check used s256: 256
# seeds x 10 epochs, S = auto on an H100; s8, s64, s1024: 1 epoch), mnist.npz and
# cpu_reference.json (device_check.py --json on a CPU; REFERENCE_EPOCHS: its epochs, 10).
# JSON results go to $OUT (the device tool's folder) or DIR. About 5 minutes on one H100;
# tests/perf/test_xla_replay.py runs it on the CPU with a tiny DIR.
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=$1
out=${OUT:-$dir}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
# XLA's deterministic GPU kernels: what TensorFlow's op determinism (engine.deterministic, on by
# default) asks of XLA programs.
deterministic=--xla_gpu_exclude_nondeterministic_ops=true
check=()  # without cpu_reference.json, check later: xla_replay.py --check RESULT.json --cpu-reference ...
[ -f "$dir/cpu_reference.json" ] && check=(--cpu-reference "$dir/cpu_reference.json" --reference-epochs "${REFERENCE_EPOCHS:-10}")
replay() {
  "$py" tests/perf/xla_replay.py --data-path "$dir/mnist.npz" "${check[@]}" "$@" || echo "# replay exited $?"
}

"$py" -c "import jax, numpy; print('# jax', jax.__version__, 'numpy', numpy.__version__, jax.devices())"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
for cell in $(ls -d "$dir"/s*/ | sort -V); do  # smallest programs first
  echo "## $(basename "$cell"): $(ls "$cell" | tr '\n' ' ')- deterministic kernels"
  XLA_FLAGS=$deterministic replay "$cell"* --json "$out/$(basename "$cell").json"
done
if [ -d "$dir/s256" ]; then
  echo "## s256 with XLA's default kernels, 2 epochs"
  replay "$dir"/s256/* --epochs 2 --json "$out/s256_default.json"
fi
# The 10-epoch s256 cell where there is one (the accuracy check needs the reference's epochs).
cell=$(ls -d "$dir"/s256/*/ 2>/dev/null | head -1)
[ -n "$cell" ] || cell=$(ls -d "$dir"/s*/*/ | sort -V | tail -1)
echo "## keras fit, JAX backend, seed 0 per placement, the cell of $cell - deterministic kernels"
XLA_FLAGS=$deterministic KERAS_BACKEND=jax "$py" tests/perf/keras_device_check.py --cell "$cell" \
  --data-path "$dir/mnist.npz" "${check[@]}" --json "$out/keras.json" || echo "# keras check exited $?"
