"""The fast engine: S seeds of one cell trained together in one compiled XLA program.

Why it is fast: ``model.fit`` pays Python/Keras overhead per step and runs one small
matmul at a time. Here one ``tf.function(jit_compile=True)`` call runs up to
``steps_per_execution`` SGD steps for S seeds at once (weights ``[S, in, out]``, batched
``tf.einsum``), so the per-step overhead is a loop iteration inside XLA and each matmul is
S times larger.

Data feeding (measured, see docs/performance.md): the training set is a float32 tensor
*argument* (made once per dataset), and each call gets only the ``[K, S, B]`` int32 indices
of its batches; batches are gathered inside the program. Nothing large is captured as a
constant.

Exactness: each seed has its own batches (``epoch_order(seed, epoch, n)``), BN statistics
and moving averages, the Keras initial weights (``initial_weights``), and Keras' update and
metric formulas (see ``_xla_mlp``). Every step of the epoch runs, the last partial batch in
its own, separately compiled program (K=1, B=n mod batch). The chunk loop count is a tensor,
and not a compile-time constant (``_Program._train_steps``), so the remainder chunk (fewer
than K steps) reuses the K-step executable.

Test split: whenever a seed's validation accuracy strictly improves, that seed's slice of
every variable (BN moving statistics included) is copied to the host. After training the
test split is evaluated with the final weights, then with the kept copies loaded back into
the program (a cached program is re-initialized before its next use anyway).

Compile time: each program is first called for one step on throwaway indices, then the
state is reset to the seeds' initial values. That call traces, XLA-compiles and runs the
loop body once (XLA's CPU runtime compiles kernels lazily on first execution, so a
zero-step call would leave ~0.4 s of compilation in epoch 1); its wall time is recorded as
compile time, apart from the epochs' training time (amortized over the program's seeds,
like epoch_s). Programs
are cached per process by shape and cell settings; a group that reuses one records only the
near-zero cost of the warm-up calls, which is what it really paid.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from bench.cnn import CnnSpec, spec_of
from bench.datasets import Dataset
from bench.device import Device, SeedsChoice, active_device, auto_seeds, footprint_bytes
from bench.engines.common import diverged, make_result, now_iso
from bench.pairing import epoch_order
from bench.progress import epoch_done
from bench.results import EpochMetrics, RunResult, TestScores
from bench.spec import RunConfig

#: Largest validation slice evaluated at once (bounds S x slice x width floats).
_EVAL_FLOATS = 1 << 25


_DATA: dict[int, tuple[Dataset, object, object]] = {}


def _train_tensors(data: Dataset):
    """The training set as tensors, made once per dataset and shared by cached programs.

    float32, as loaded. (uint8 codes converted in-graph ran at the same speed, and are not
    exact: XLA rewrites ``x / 255`` as ``x * (1/255)``, off by an ulp for some codes.)
    """
    hit = _DATA.get(id(data))
    if hit is None or hit[0] is not data:
        _DATA.clear()  # one dataset at a time: a worker trains one grid's data
        hit = (data, _resident(data.x_train), _resident(data.y_train.astype(np.int32)))
        _DATA[id(data)] = hit
    return hit[1], hit[2]


def _resident(array: np.ndarray):
    """``array`` as a tensor in the training device's memory.

    ``tf.constant`` always makes a host tensor: on a GPU it would be copied to the device at
    every call. ``tf.identity`` (placed on the GPU when there is one) copies it there once.
    """
    import tensorflow as tf

    tensor = tf.constant(array)
    return tf.identity(tensor) if tf.config.list_logical_devices("GPU") else tensor


def eval_slices(x_eval: np.ndarray, y_eval: np.ndarray, n_seeds: int,
                width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An evaluation split as [nb, VB, F] padded slices, [nb, VB] labels and a 0/1 weight mask.

    VB is as large as ``_EVAL_FLOATS`` allows for ``n_seeds`` seeds' activations of ``width``.
    TensorFlow-free, so that tests/perf/xla_replay.py slices a split exactly as the engine does.
    """
    n, n_features = len(x_eval), x_eval.shape[1]
    vb = max(1, min(n, _EVAL_FLOATS // max(1, n_seeds * max(width, n_features))))
    nb = -(-n // vb)
    x = np.zeros((nb * vb, n_features), np.float32)
    y = np.zeros(nb * vb, np.int32)
    w = np.zeros(nb * vb, np.float32)
    x[:n], y[:n], w[:n] = x_eval, y_eval, 1.0
    shape = (nb, vb)
    return x.reshape(*shape, -1), y.reshape(shape), w.reshape(shape)


def eval_means(losses: np.ndarray, hits: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed (mean loss, accuracy) from an evaluation program's [nb, S, VB] per-sample
    losses and hits and ``eval_slices``' [nb, VB] mask, summed in float64 over real samples."""
    w = w[:, None, :].astype(np.float64)  # [nb, 1, VB]
    n = w.sum()
    return (losses.astype(np.float64) * w).sum(axis=(0, 2)) / n, (hits.astype(np.float64) * w).sum(axis=(0, 2)) / n


class _Program:
    """The compiled training and evaluation functions for one group of seeds."""

    def __init__(self, cfgs: list[RunConfig], data: Dataset):
        import tensorflow as tf

        cfg = cfgs[0]
        self.tf = tf
        self.net = _make_net(_net_spec(cfg, data), [c.seed for c in cfgs], cfg.initializer)
        self.use_data(cfgs, data)
        # A CNN trains as a TensorFlow graph, never with XLA: XLA's CPU convolutions ran its
        # training steps slower than TensorFlow's oneDNN kernels in every layout tried, and
        # XLA has no deterministic max-pool gradient (docs/performance.md, "CNN").
        jit = cfg.engine.jit_compile and not isinstance(self.net.spec, CnnSpec)
        self.train_fn = tf.function(self._train_steps, jit_compile=jit)
        self.eval_fn = tf.function(self.net.eval_per_sample, jit_compile=jit)

    def use_data(self, cfgs: list[RunConfig], data: Dataset) -> None:
        """Point the program at ``data`` (same shapes as any earlier data: see _cache_key)."""
        cfg = cfgs[0]
        self.data = data
        self.x_train, self.y_train = _train_tensors(data)
        spec = _net_spec(cfg, data)
        width = spec.activation_floats if isinstance(spec, CnnSpec) else max(cfg.hidden)
        self.val = self._eval_batches(data.x_val, data.y_val, len(cfgs), width)
        self.test = self._eval_batches(data.x_test, data.y_test, len(cfgs), width)

    def _eval_batches(self, x_eval: np.ndarray, y_eval: np.ndarray, n_seeds: int, width: int):
        x, y, w = eval_slices(x_eval, y_eval, n_seeds, width)
        return _resident(x), _resident(y), w

    def _train_steps(self, x_all, y_all, idx, n_steps):
        """Run ``n_steps`` (<= idx.shape[0]) steps; step i trains on rows idx[i] ([S, B]).

        A plain while-loop on ``i < n_steps``, not ``for i in tf.range(n_steps)``: AutoGraph
        hands the range's length to the loop as ``maximum_iterations``, which XLA must know at
        compile time, so every new step count (the K-step chunks, an epoch's remainder chunk)
        compiled and cached one more executable on its first call (measured: +0.9 s each,
        docs/performance.md).
        """
        tf = self.tf

        def step(i):
            rows = idx[i]
            self.net.train_step(tf.gather(x_all, rows), tf.gather(y_all, rows))
            return (i + 1,)

        tf.while_loop(lambda i: i < n_steps, step, (tf.constant(0),))

    def train(self, idx: np.ndarray, n_steps: int) -> None:
        tf = self.tf
        self.train_fn(self.x_train, self.y_train, tf.constant(idx), tf.constant(n_steps, tf.int32))

    def compile(self, k: int, batch: int) -> float:
        """Trace and XLA-compile the K-step program for this batch size; return seconds.

        Runs ONE step on throwaway indices (the caller resets the state afterwards): a call
        with zero steps builds the executable, but XLA's CPU runtime compiles the loop body's
        kernels lazily on their first execution (measured: +0.37 s on the first step).
        """
        t0 = time.perf_counter()
        self.train(np.zeros((k, self.net.n_seeds, batch), np.int32), 1)
        return time.perf_counter() - t0

    def evaluate(self, split: str = "val") -> tuple[np.ndarray, np.ndarray]:
        """Per-seed (mean loss, accuracy) on ``val`` or ``test``, summed in float64 over real samples."""
        x, y, w = self.val if split == "val" else self.test
        losses, hits = self.eval_fn(x, y)
        return eval_means(losses.numpy(), hits.numpy(), w)


#: Compiled programs kept for reuse within this process (a worker trains many groups of the
#: same shape: seed chunks of one cell, or repeated cells). Bounded: programs hold memory.
_CACHE: dict[tuple, _Program] = {}
_CACHE_SIZE = 4


def _net_spec(cfg: RunConfig, data: Dataset):
    """The network a cell trains: ``bench.cnn.CnnSpec`` for a CNN, else the MLP's ``NetSpec``."""
    from bench.engines._xla_mlp import NetSpec

    cnn = spec_of(cfg, data.name, data.n_classes)
    return cnn if cnn is not None else NetSpec.from_config(cfg, data.n_features, data.n_classes)


def _make_net(spec, seeds: list[int], initializer: str):
    if isinstance(spec, CnnSpec):
        from bench.engines._xla_cnn import StackedCNN

        return StackedCNN(spec, seeds, initializer)
    from bench.engines._xla_mlp import StackedMLP

    return StackedMLP(spec, seeds, initializer)


def _cache_key(cfgs: list[RunConfig], data: Dataset) -> tuple:
    """Everything the traced, compiled program depends on, the seeds excluded."""
    cfg = cfgs[0]
    spec = _net_spec(cfg, data)
    return (spec, len(cfgs), cfg.engine.jit_compile, data.x_train.shape, data.x_val.shape, data.x_test.shape)


def _program(cfgs: list[RunConfig], data: Dataset) -> _Program:
    """A program for these seeds: a cached one re-initialized, or a new one."""
    key = _cache_key(cfgs, data)
    prog = _CACHE.pop(key, None)
    if prog is None:
        prog = _Program(cfgs, data)
    else:
        prog.net.reset([c.seed for c in cfgs], cfgs[0].initializer)
        if prog.data is not data:
            prog.use_data(cfgs, data)
    _CACHE[key] = prog
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    return prog


def _batches(orders: np.ndarray, start: int, k: int, batch: int, k_pad: int) -> np.ndarray:
    """Indices [k_pad, S, batch] for steps start..start+k (zero-padded beyond k)."""
    n_seeds = orders.shape[0]
    idx = np.zeros((k_pad, n_seeds, batch), np.int32)
    block = orders[:, start * batch:(start + k) * batch].reshape(n_seeds, k, batch)
    idx[:k] = block.transpose(1, 0, 2)
    return idx


def _train_group(cfgs: list[RunConfig], data: Dataset) -> list[RunResult]:
    """Train one program's seeds; one result per config, in order."""
    import tensorflow as tf

    started_at, t_start = now_iso(), time.perf_counter()
    cfg, n_seeds, n = cfgs[0], len(cfgs), len(data.x_train)
    batch = cfg.batch_size
    full, rem = divmod(n, batch)
    k = max(1, min(cfg.engine.steps_per_execution, full))

    t0 = time.perf_counter()
    prog = _program(cfgs, data)
    if full:
        prog.compile(k, batch)
    if rem:
        prog.compile(1, rem)
    prog.evaluate()  # compiles the evaluation programs; their results are discarded
    prog.evaluate("test")
    prog.net.reset([c.seed for c in cfgs], cfg.initializer)  # undo the warm-up steps
    compile_s = time.perf_counter() - t0

    history: list[list[EpochMetrics]] = [[] for _ in cfgs]
    live = np.ones(n_seeds, bool)
    best = _BestWeights(prog.net)
    for epoch in range(1, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        orders = np.stack([epoch_order(c.seed, epoch, n) for c in cfgs]).astype(np.int32)
        prog.net.reset_metrics()
        for start in range(0, full, k):
            steps = min(k, full - start)
            prog.train(_batches(orders, start, steps, batch, k), steps)
        if rem:
            prog.train(orders[:, full * batch:][None], 1)
        train_loss, train_acc = prog.net.train_metrics()
        val_loss, val_acc = prog.evaluate()
        epoch_s = (time.perf_counter() - t_epoch) / n_seeds
        reported = np.flatnonzero(live)
        for s in reported:
            m = EpochMetrics(epoch, float(train_loss[s]), float(train_acc[s]),
                             float(val_loss[s]), float(val_acc[s]), epoch_s)
            history[s].append(m)
            # Same stopping rule as the Keras engine: a seed stops at a non-finite loss.
            if diverged(m):
                live[s] = False
        best.update(val_acc, seeds=np.flatnonzero(np.array([h[-1].epoch == epoch for h in history])))
        epoch_done(cfgs[s].run_id for s in reported)
        if not live.any():
            break
    test = best.test_scores(prog)

    total_s = (time.perf_counter() - t_start) / n_seeds
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return [
        make_result(c, history[s], compile_s=compile_s / n_seeds, total_s=total_s,
                    started_at=started_at, seeds_in_program=n_seeds, threads=threads,
                    test=test[s], data_fingerprint=data.fingerprint)
        for s, c in enumerate(cfgs)
    ]


def seeds_choice(configs: list[RunConfig], data: Dataset, device: Device) -> SeedsChoice:
    """``seeds_per_program = "auto"`` for this cell on ``device``: its footprint and the data's."""
    cfg = configs[0]
    spec = _net_spec(cfg, data)
    if isinstance(spec, CnnSpec):
        per_seed = spec.footprint_bytes(cfg.batch_size)
    else:
        per_seed = footprint_bytes(spec.sizes, spec.bn_widths, cfg.optimizer, cfg.batch_size)
    # Held once, whatever S: the data set on the device and the validation
    # and test passes' slices (inputs and logits, at most _EVAL_FLOATS each).
    data_bytes = (data.x_train.nbytes + data.x_val.nbytes + data.x_test.nbytes
                  + 4 * (len(data.y_train) + len(data.y_val) + len(data.y_test)))
    fixed = data_bytes + 2 * 4 * _EVAL_FLOATS
    return auto_seeds(device, per_seed, fixed, len(configs))


def _worker_device() -> Device:
    """This worker's device; on a CPU, with the cores its TensorFlow threads may use (a
    worker of ``--jobs 2`` on 2 cores sizes its programs for 1 core)."""
    import tensorflow as tf

    device = active_device()
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if device.kind == "cpu" and threads:
        device = dataclasses.replace(device, cores=min(device.cores, threads))
    return device


class _BestWeights:
    """Each seed's variables at its best validation accuracy so far, kept on the host."""

    def __init__(self, net):
        self.net = net
        self.vars = (net.kernels + net.biases + net.gammas + net.betas
                     + net.moving_means + net.moving_vars)
        self.acc = np.full(net.n_seeds, -np.inf)
        self.saved: list[np.ndarray] | None = None
        # Whether a seed's kept weights are its current ones (it improved in its last epoch):
        # then its test score "at best" is its final one, and the second test pass is skipped.
        self.current = np.zeros(net.n_seeds, dtype=bool)

    def update(self, val_acc: np.ndarray, seeds: np.ndarray) -> None:
        """Copy the slices of ``seeds`` (those trained this epoch) whose accuracy improved."""
        better = np.zeros_like(self.acc, dtype=bool)
        better[seeds] = np.isfinite(val_acc[seeds]) & (val_acc[seeds] > self.acc[seeds])
        self.current[:] = better
        if not better.any():
            return
        now = [v.numpy() for v in self.vars]
        if self.saved is None:
            self.saved = [a.copy() for a in now]
        for kept, a in zip(self.saved, now):
            kept[better] = a[better]
        self.acc[better] = val_acc[better]

    def test_scores(self, prog: _Program) -> list[TestScores]:
        """Test loss/accuracy per seed: final weights first, then the kept best ones loaded back
        (only when some seed's best epoch was not its last: a test pass costs a validation pass
        over the whole test split)."""
        n_test = len(prog.data.y_test)
        final_loss, final_acc = prog.evaluate("test")
        best_loss, best_acc = final_loss, final_acc
        if self.saved is not None and not self.current[np.isfinite(self.acc)].all():
            for v, kept in zip(self.vars, self.saved):
                v.assign(kept)
            best_loss, best_acc = prog.evaluate("test")
        has_best = np.isfinite(self.acc)
        return [
            TestScores(n_test, float(final_loss[s]), float(final_acc[s]),
                       float(best_loss[s]) if has_best[s] else None,
                       float(best_acc[s]) if has_best[s] else None)
            for s in range(self.net.n_seeds)
        ]


def train_cell(configs: list[RunConfig], data: Dataset) -> list[RunResult]:
    """Train every seed of one cell, ``engine.seeds_per_program`` seeds per program.

    With ``"auto"`` the count comes from the device this process trains on
    (``seeds_choice``), and the choice is recorded in each run's host record (``seeds_auto``).
    """
    if not configs:
        return []
    cells = {c.program_key for c in configs}
    if len(cells) != 1:
        raise ValueError(f"train_cell expects runs that differ only by seed, got {len(cells)} program keys")
    per, choice = configs[0].engine.seeds_per_program, None
    if per == "auto":
        choice = seeds_choice(configs, data, _worker_device())
        per = choice.seeds
    per = max(1, int(per))
    results: list[RunResult] = []
    for i in range(0, len(configs), per):
        results.extend(_train_group(configs[i:i + per], data))
    if choice is not None:
        for r in results:
            r.host["seeds_auto"] = choice.record()
    return results
