"""Device awareness with simulated devices: the GPU choice per worker, S = "auto", the host
record's device, the fingerprint, and ``compare`` refusing to mix CPU and GPU timings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import compare_helpers as h
from bench import device as dev
from bench.device import Device, assign_gpu, auto_seeds, claim_slot, footprint_bytes
from bench.host import host_info, library_versions, machine_fingerprint
from bench.runner import plan_tasks
from bench.spec import SpecError, parse_spec
from bench.store import result_row
from reports.compare import compare_data
from reports.load import prepare

GIB = 1 << 30
TWO_CORES = Device("cpu", "Simulated 2-core CPU", 8 * GIB, cores=2)
H100 = Device("gpu", "NVIDIA H100 80GB HBM3", 79 * GIB, index=0)
SMALL_GPU = Device("gpu", "Simulated 4 GiB GPU", 4 * GIB, index=0)

#: The notebook model: 784-300-100-10, SGD, batch 32; MNIST on the device (55,000 + 5,000 rows).
NOTEBOOK = footprint_bytes((784, 300, 100, 10), (), "sgd", 32)
MNIST_BYTES = 60000 * 784 * 4 + 60000 * 4
FIXED = MNIST_BYTES + 2 * 4 * (1 << 25)


@pytest.fixture
def cpu_process(monkeypatch):
    """This process as a CPU worker, whatever earlier tests chose."""
    monkeypatch.setattr(dev, "_ACTIVE", None)


# ------------------------------------------------------------------------- footprint


def test_footprint_counts_weights_gradients_slots_and_activations():
    # 2-3-2 net: 2*3+3 + 3*2+2 = 17 parameters; BN on the hidden layer adds gamma/beta (6)
    # and moving statistics (6); activations 4 copies x batch 5 x (2+3+2) units.
    params = 17 + 6
    assert footprint_bytes((2, 3, 2), (3,), "sgd", 5) == 4 * (2 * params + 6 + 4 * 5 * 7)
    assert footprint_bytes((2, 3, 2), (3,), "adam", 5) == 4 * (4 * params + 6 + 4 * 5 * 7)
    assert footprint_bytes((2, 3, 2), (), "momentum", 1) == 4 * (3 * 17 + 4 * 7)


# ------------------------------------------------------------------------- S = auto


def test_auto_on_two_cores_is_todays_eight():
    for n_seeds, expected in ((8, 8), (16, 8), (24, 8), (3, 3), (1, 1)):
        assert auto_seeds(TWO_CORES, NOTEBOOK, FIXED, n_seeds).seeds == expected
    assert auto_seeds(TWO_CORES, NOTEBOOK, FIXED, 100).limit == 8


def test_auto_splits_a_cell_into_equal_programs():
    assert auto_seeds(TWO_CORES, NOTEBOOK, FIXED, 10).seeds == 5  # 5 + 5, not 8 + 2
    assert auto_seeds(TWO_CORES, NOTEBOOK, FIXED, 17).seeds == 6  # 6 + 6 + 5


def test_auto_on_a_large_gpu_is_hundreds_of_seeds():
    choice = auto_seeds(H100, NOTEBOOK, FIXED, 256)
    assert choice.seeds == 256  # the notebook grid's 256 seeds in one program
    assert choice.memory_limit > 10_000  # memory is not what binds for this model
    assert auto_seeds(H100, NOTEBOOK, FIXED, 5000).limit == dev.GPU_MAX_SEEDS
    assert choice.record()["device"] == "gpu: NVIDIA H100 80GB HBM3"


def test_auto_is_bounded_by_memory_for_a_large_model():
    wide = footprint_bytes((784, 4096, 4096, 10), (4096, 4096), "adam", 256)
    choice = auto_seeds(SMALL_GPU, wide, FIXED, 256)
    expected = int((4 * GIB * dev.MEMORY_FRACTION - FIXED) // wide)
    assert choice.memory_limit == expected == choice.limit
    assert 1 <= choice.seeds <= expected < 256
    unknown = Device("gpu", "Simulated GPU, memory unread", 0)
    assert auto_seeds(unknown, wide, FIXED, 1000).limit == dev.GPU_MAX_SEEDS  # no memory bound
    tiny = Device("gpu", "Simulated 256 MiB GPU", 256 << 20)
    assert auto_seeds(tiny, wide, FIXED, 8).seeds == 1  # never zero: one seed is tried


# ------------------------------------------------------------------------- --jobs = devices


def test_workers_are_spread_over_the_gpus():
    gpus = [Device("gpu", f"GPU {i}", 16 * GIB, index=i) for i in range(2)]
    assert [assign_gpu(gpus, slot).index for slot in range(4)] == [0, 1, 0, 1]
    assert assign_gpu([], 3) is None


def test_each_worker_claims_its_own_slot(tmp_path: Path):
    alive = {100, 101}.__contains__
    assert claim_slot(str(tmp_path), 2, pid=100, alive=alive) == 0
    assert claim_slot(str(tmp_path), 2, pid=101, alive=alive) == 1
    assert claim_slot(str(tmp_path), 2, pid=100, alive=alive) == 0  # kept for life
    # Worker 100 died; the pool's replacement takes its slot (and so its GPU).
    assert claim_slot(str(tmp_path), 2, pid=102, alive={101, 102}.__contains__) == 0
    assert (tmp_path / "slot-0").read_text() == "102"


def test_use_device_picks_the_slots_gpu_and_the_host_record_names_it(monkeypatch, cpu_process):
    gpus = [Device("gpu", f"Simulated GPU {i}", 0, index=i) for i in range(2)]
    activated = []

    def activate(d: Device) -> Device:
        activated.append(d.index)
        return Device(d.kind, d.name, 40 * GIB, 0, d.index)

    assert dev.use_device(3, probe=lambda: gpus, activate=activate).index == 1
    assert activated == [1]
    host = host_info()
    assert host["device"] == {"kind": "gpu", "name": "Simulated GPU 1", "memory_bytes": 40 * GIB,
                              "cores": 0, "index": 1}


def test_without_a_gpu_the_worker_trains_on_the_cpu(cpu_process):
    d = dev.use_device(0, probe=list, activate=lambda d: pytest.fail("no GPU to activate"))
    assert d.kind == "cpu" and d.cores >= 1 and d.memory_bytes > 0
    assert host_info()["device"]["kind"] == "cpu"


# ------------------------------------------------------------------------- fingerprint


def test_fingerprint_of_cpu_runs_is_unchanged_and_a_gpu_never_matches(cpu_process):
    versions = library_versions()
    cpu_host = host_info()
    legacy = {k: v for k, v in cpu_host.items() if k != "device"}  # stores before devices
    assert machine_fingerprint(cpu_host, versions) == machine_fingerprint(legacy, versions)
    gpu_host = {**cpu_host, "device": H100.record()}
    other_gpu = {**cpu_host, "device": SMALL_GPU.record()}
    fingerprints = {machine_fingerprint(x, versions) for x in (cpu_host, gpu_host, other_gpu)}
    assert len(fingerprints) == 3
    # The GPU's memory reading or ordinal does not split one GPU model's runs.
    same_model = {**H100.record(), "memory_bytes": 1, "index": 3}
    assert machine_fingerprint({**cpu_host, "device": same_model}, versions) == \
        machine_fingerprint(gpu_host, versions)


def test_fingerprint_is_the_same_for_either_tensorflow_distribution(cpu_process):
    """bnbench depended on tensorflow-cpu before; the base is now tensorflow (same CPU build)."""
    host = host_info()
    before = {"tensorflow-cpu": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "bnbench": "0.1.0"}
    after = {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "bnbench": "0.1.0"}
    assert machine_fingerprint(host, before) == machine_fingerprint(host, after)
    assert machine_fingerprint(host, before) != machine_fingerprint(host, {**after, "tensorflow": "2.20.0"})


# ------------------------------------------------------------------------- compare


def _side(seeds: list[int], device: Device | None, **kw) -> object:
    """A synthetic side whose runs trained on ``device`` (None: host records without one)."""
    res = h.results(h.spec(seeds), **kw)
    for r in res:
        r.host = {**r.host, "device": device.record()} if device else dict(r.host)
    runs = pd.DataFrame([result_row(r) for r in res])
    epochs = pd.DataFrame(
        [(r.config.run_id, e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.epoch_s)
         for r in res for e in r.epochs],
        columns=["run_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_s"],
    )
    return prepare(Path("<memory>"), None, runs, epochs, pd.DataFrame())


def test_compare_never_mixes_cpu_and_gpu_timings():
    cpu = _side(list(range(8)), None)
    gpu = _side(list(range(8, 16)), H100, slowdown=0.1)
    for allow in (False, True):
        c = compare_data(cpu, gpu, allow_different_hardware=allow, n_resamples=200, seed=1)
        assert set(c.rows["metric"]) == {"epochs_to_target", "final_val_acc"}
        assert not c.hardware["timing_compared"]
        assert any(w.startswith("devices differ (baseline cpu; current gpu)") for w in c.warnings)


def test_compare_two_gpu_machines_with_the_flag():
    a = _side(list(range(8)), H100)
    b = _side(list(range(8, 16)), SMALL_GPU)
    assert not compare_data(a, b, n_resamples=200, seed=1).hardware["timing_compared"]
    forced = compare_data(a, b, allow_different_hardware=True, n_resamples=200, seed=1)
    assert forced.hardware["timing_compared"] and "epoch_s" in set(forced.rows["metric"])


# ------------------------------------------------------------------------- spec and runner


def _spec(seeds_per_program, seeds=10):
    return parse_spec({"grid": {"name": "g", "seeds": seeds, "epochs": 1},
                       "factors": {"placement": ["none", "after"]},
                       "engine": {"seeds_per_program": seeds_per_program}})


def test_spec_accepts_auto_and_rejects_other_words():
    assert _spec("auto").engine.seeds_per_program == "auto"
    assert _spec(4).engine.seeds_per_program == 4
    for bad in ("Auto", "8", 0, 2.5, True):
        with pytest.raises(SpecError, match="engine.seeds_per_program"):
            _spec(bad)


def test_auto_plans_one_task_per_cell():
    tasks = plan_tasks(_spec("auto").expand(), set())
    assert [len(t) for t in tasks] == [10, 10]
    assert [len(t) for t in plan_tasks(_spec(4).expand(), set())] == [4, 4, 2] * 2
