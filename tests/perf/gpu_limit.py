"""A device's practical float32 matmul rate under XLA, measured with JAX (no TensorFlow needed).

The GPU counterpart of tests/perf/measure_limit.py's XLA chain: ``reps`` dependent n x n
GEMMs inside one compiled loop (each product feeds the next, so nothing is hoisted), at
``precision=HIGHEST`` (true float32, as the exported engine programs ask: no TF32). Also the
notebook cell's own GEMM shape stacked over S seeds ([S, 32, 784] x [S, 784, 300], the first
layer's forward product), chained through a fixed projection back to 784 columns.

    python tests/perf/gpu_limit.py     # prints one JSON line per case
"""

from __future__ import annotations

import json
import time


def _rate(fn, args, flop: float) -> float:
    fn(*args).block_until_ready()  # compile and warm up
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn(*args).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return flop / best / 1e9


def chain_gflops(n: int, reps: int, precision: str = "highest") -> float:
    import jax
    import jax.numpy as jnp

    x = jnp.full((n, n), 1.0 / n, jnp.float32)
    w = jnp.eye(n, dtype=jnp.float32)

    @jax.jit
    def run(x, w):
        return jax.lax.fori_loop(0, reps, lambda i, h: jnp.dot(h, w, precision=precision), x)

    return _rate(run, (x, w), 2.0 * n**3 * reps)


def stacked_gflops(seeds: int, reps: int, batch: int = 32, n_in: int = 784, n_out: int = 300) -> float:
    import jax
    import jax.numpy as jnp

    x = jnp.full((seeds, batch, n_in), 0.01, jnp.float32)
    w = jnp.full((seeds, n_in, n_out), 0.01, jnp.float32)
    back = jnp.full((seeds, n_out, n_in), 0.01, jnp.float32)

    @jax.jit
    def run(x, w, back):
        def body(i, h):
            y = jnp.einsum("sbi,sio->sbo", h, w, precision="highest")
            return jnp.einsum("sbo,soi->sbi", y, back, precision="highest") * 1e-3
        return jax.lax.fori_loop(0, reps, body, x)

    return _rate(run, (x, w, back), 2.0 * 2 * seeds * batch * n_in * n_out * reps)


def main() -> int:
    import jax

    print(json.dumps({"device": str(jax.devices()[0]), "jax": jax.__version__}), flush=True)
    for n, reps in ((1024, 200), (4096, 20), (8192, 4)):
        for precision in ("highest", "default"):
            print(json.dumps({"case": "chain", "n": n, "reps": reps, "precision": precision,
                              "gflops": round(chain_gflops(n, reps, precision), 1)}), flush=True)
    for seeds in (8, 64, 256, 1024):
        print(json.dumps({"case": "stacked notebook layer", "seeds": seeds,
                          "gflops": round(stacked_gflops(seeds, 200), 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
