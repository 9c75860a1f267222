"""The benchmarks the A/B speed gate times: engines, the smoke grid, report rendering.

Imported by ``ab_worker.py`` as ``perf.ab_suite`` with one side's code (the reference
commit's or the working tree's) first on ``sys.path``: the definitions here and in the
pytest-benchmark modules they reuse (``test_engine_perf.ENGINES``, ``test_report_perf.SIZES``)
are always the current tree's, ``bench`` and ``reports`` are the side's, as asv's
``continuous`` runs today's benchmarks against both commits. Names are those of the
pytest-benchmark suite, so a gate line and a ``tox -e perf`` line mean the same work.

A factory gets a scratch folder and returns the callable one round times; building inputs
(data, synthetic stores) happens in the factory, and the worker calls the callable once
untimed (compilation, caches) before the rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .perf_helpers import notebook_configs
from .test_engine_perf import ENGINES
from .test_report_perf import SIZES

Factory = Callable[[Path], Callable[[], object]]
ROOT_SPEC = Path(__file__).resolve().parents[2] / "ablations" / "smoke.toml"
THREADS = 2  # as the pytest-benchmark suite (conftest.py)
#: Engine benchmarks: one epoch of 3,000 MNIST images, 1,000 validation and 1,000 test images
#: (the pytest-benchmark suite uses 11,000 / 5,000 / 10,000). A quarter of the work, so that
#: 2 sides x 8 rounds fit CI's time; the same per-step and per-evaluation code runs.
TRAIN, VALIDATION, TEST = 3000, 1000, 1000


def _engine(engine: str, placement: str) -> Factory:
    def factory(scratch: Path) -> Callable[[], object]:
        from bench.datasets import load_dataset
        from bench.tf_setup import configure_tensorflow

        configure_tensorflow(THREADS, deterministic=False)
        module, seeds, settings = ENGINES[engine]
        cfgs = notebook_configs(placement, seeds, epochs=1, **settings)
        data = load_dataset("mnist", VALIDATION, train_limit=TRAIN)
        data = replace(data, x_test=data.x_test[:TEST], y_test=data.y_test[:TEST])

        def run() -> object:
            results = module.train_cell(cfgs, data)
            if not all(r.status == "ok" for r in results):
                raise RuntimeError(f"{engine}-{placement}: a run did not finish ok")
            return results
        return run
    return factory


def _smoke_grid(scratch: Path) -> Callable[[], object]:
    from bench.runner import run_grid
    from bench.spec import load_spec
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(THREADS, deterministic=False)
    spec = load_spec(ROOT_SPEC)
    stores = iter(range(10**6))
    return lambda: run_grid(spec, scratch / f"smoke{next(stores)}.sqlite", progress=False)


def _report(fmt: str, size: str) -> Factory:
    """As ``test_report_perf``'s ``large_store`` fixture and ``_render``: same store, same call."""
    def factory(scratch: Path) -> Callable[[], object]:
        from synthetic_store import build_store, make_spec

        from reports.render import render_report

        factors, seeds = SIZES[size]
        spec = make_spec(name=size, placements=["none", "before", "after"], factors=factors,
                         seeds=seeds, epochs=10)
        path = scratch / f"{size}.sqlite"
        if not path.exists():  # html and markdown of one size share the store
            build_store(path, spec, through_store=False, diverged=[("after", 3)], failed=[("before", 2)])
        return lambda: render_report(path, fmt=fmt)
    return factory


#: Report sizes gated: rendering 600 runs takes ~11.5 s (HTML) and ~2 s (Markdown) on a quiet
#: 2-core AMD EPYC, 3,000 runs ~18 s and ~10 s: the larger sizes would double CI's perf time.
REPORT_SIZES = ["600_runs"]

#: Gated by default. The stacked engine (the default) with and without BN, plain Keras ``fit``
#: (the keras engine's own code around it), the whole pipeline on the smoke grid, and both
#: report formats at ``REPORT_SIZES``. Keras+XLA and stacked S=1 are left out for CI time:
#: they run the same bnbench code as ``keras_fit`` and ``stacked_s8``.
BENCHMARKS: dict[str, Factory] = {
    "test_one_epoch[stacked_s8-none]": _engine("stacked_s8", "none"),
    "test_one_epoch[stacked_s8-after+input]": _engine("stacked_s8", "after+input"),
    "test_one_epoch[keras_fit-none]": _engine("keras_fit", "none"),
    "test_smoke_grid": _smoke_grid,
    **{f"test_render_{name}_report[{size}]": _report(fmt, size)
       for size in REPORT_SIZES for name, fmt in (("html", "html"), ("markdown", "markdown"))},
}
