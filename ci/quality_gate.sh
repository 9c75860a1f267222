#!/usr/bin/env bash
# Quality gate: train the gate grid (ablations/gate.toml) into a fresh store and compare it with the committed
# baseline. Exit 0 pass, 1 regression, 2 bad input. Timing metrics are compared only when
# this machine's fingerprint matches the baseline's (otherwise skipped, with a warning).
#
#   ci/quality_gate.sh [REPORT_DIR]          (default REPORT_DIR: gate-report)
#
# Environment: SPEC (default ablations/gate.toml), BASELINE (default
# ablations/baselines/gate.sqlite), GATE_LIMITS (the limits; default: what the gate grid's
# 8 seeds can enforce, docs/ci.md "What the gate can detect"), GATE_ARGS (extra
# `bnbench compare` options, e.g. "--max-slowdown 20%"), BNBENCH (the command, default bnbench).
set -euo pipefail

out="${1:-gate-report}"
spec="${SPEC:-ablations/gate.toml}"
baseline="${BASELINE:-ablations/baselines/gate.sqlite}"
bnbench="${BNBENCH:-bnbench}"
# A change at twice these limits is caught with >= 80% power by 8 seeds (tests/gate_sim.py);
# the defaults of `bnbench compare` (0.5 pp, 1 epoch) are below what 8 seeds can detect.
limits="${GATE_LIMITS:---max-accuracy-drop 2pp --max-epochs-increase 2}"

mkdir -p "$out"
rm -f "$out/current.sqlite" "$out/current.sqlite-wal" "$out/current.sqlite-shm"
$bnbench run "$spec" --store "$out/current.sqlite" --no-progress

status=0
# shellcheck disable=SC2086  # limits and GATE_ARGS are lists of options
$bnbench compare "$baseline" "$out/current.sqlite" $limits \
    --markdown-file "$out/compare.md" --json-file "$out/compare.json" ${GATE_ARGS:-} || status=$?

if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/compare.md" ]; then
    cat "$out/compare.md" >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
