# A/B on the GPU: the engine's programs before (step count compiled in: for i in tf.range) and
# after (tf.while_loop(i < n_steps)) the 2026-11-28 change, 256 seeds, 2 epochs, alternated.
export PYTHONUNBUFFERED=1 XLA_FLAGS=--xla_gpu_exclude_nondeterministic_ops=true
for i in 1 2 3; do
  python3 .xla/old/xla_replay_old.py .xla/old/s256/none .xla/old/s256/after_input --epochs 2 --data-path .xla/mnist.npz --json $OUT/old$i.json > /dev/null || echo "old $i failed"
  python3 tests/perf/xla_replay.py .xla/s256/none .xla/s256/after_input --epochs 2 --data-path .xla/mnist.npz --json $OUT/new$i.json > /dev/null || echo "new $i failed"
done
python3 - <<'PY'
import json, os
out = os.environ["OUT"]
for i in (1, 2, 3):
    for v in ("old", "new"):
        for c in json.load(open(f"{out}/{v}{i}.json")):
            h0 = c["history"][0][0]
            print(f"{v} {i} {c['placement']:12} compile {c['compile_s']:6.2f} train {c['train_s']:6.2f} wall {c['wall_s']:6.2f} "
                  f"acc {c['mean_final_acc']:.5f} seed0 ep1 loss {h0[0]:.7f}")
PY
