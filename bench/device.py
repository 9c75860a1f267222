"""Which device a worker trains on, and how many seeds one stacked program may hold there.

Everything but ``_list_gpus`` and ``_activate_gpu`` is plain Python over a ``Device``
description, so the device choice, the ``--jobs`` assignment and the
``seeds_per_program = "auto"`` sizing are tested with simulated devices on any machine.
Those two are the only places that ask TensorFlow (``tf.config.list_physical_devices``,
``get_device_details``, ``set_visible_devices``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.host import cores, cpu_model
from bench.quiet_cuda import filtered_stderr

#: Share of the device's memory that a program's seeds may fill. The rest is left for XLA's
#: temporaries, the allocator's fragmentation and (on a CPU) everything else on the machine.
MEMORY_FRACTION = 0.5

#: CPU: seeds per core. Measured on 2 cores (docs/performance.md): ms/step/seed 0.350 at S=4,
#: 0.320 at S=8, 0.314 at S=16, so S=8 (4 per core) is the knee; other core counts are an
#: extrapolation (one GEMM per seed keeps each core busy at about this many seeds).
CPU_SEEDS_PER_CORE = 4

#: GPU: most seeds in one program when memory allows more. Measured on an H200 (notebook cell,
#: docs/performance.md "GPU numbers"): 2.7 TFLOP/s at S=8, 10.8 at 256, 11.9 at 1,024: past a
#: few hundred seeds a program gains little and holds more memory.
GPU_MAX_SEEDS = 512

#: Activation-sized tensors alive per layer in one training step (pre-activation, the BN
#: output, the activation and its gradient).
ACTIVATION_COPIES = 4


@dataclass(frozen=True)
class Device:
    """What trains a worker's programs: a CPU (all its cores) or one GPU."""

    kind: str  # "cpu" or "gpu"
    name: str  # CPU model or GPU name, as the system reports it
    memory_bytes: int  # RAM this process may use, or the GPU memory TensorFlow may allocate
    cores: int = 0  # CPU cores this process may use (0 for a GPU)
    index: int = 0  # GPU ordinal on the machine

    def record(self) -> dict[str, Any]:
        """The host record's ``device`` entry."""
        return asdict(self)


def _ram_bytes() -> int:
    """Physical memory, or the cgroup's limit when lower (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="utf-8") as f:
            limit = f.read().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def cpu_device() -> Device:
    return Device("cpu", cpu_model(), _ram_bytes(), cores())


# ------------------------------------------------------------------ --jobs on several GPUs


def assign_gpu(gpus: Sequence[Device], slot: int) -> Device | None:
    """The GPU that worker ``slot`` (0 .. jobs-1) trains on; None when there is no GPU.

    ``--jobs N`` on a GPU machine means N worker processes, worker i on GPU i mod #GPUs:
    ``--jobs`` = the number of GPUs gives one worker per device.
    """
    return gpus[slot % len(gpus)] if gpus else None


def claim_slot(folder: str, jobs: int, pid: int | None = None,
               alive: Callable[[int], bool] | None = None) -> int:
    """The lowest worker slot in 0..jobs-1 not held by a live process; claim it for ``pid``.

    Pool workers are anonymous processes; each claims a slot once (a file ``slot-i`` holding
    its pid, made with O_EXCL) and keeps it for its life. A slot whose owner died (a killed
    worker that the pool replaced) is taken over. More claimants than slots share them
    round-robin (slot = pid mod jobs), which cannot happen with the runner's own pool.
    """
    pid = os.getpid() if pid is None else pid
    alive = alive or _pid_alive
    for slot in range(jobs):
        path = os.path.join(folder, f"slot-{slot}")
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    with open(path, encoding="utf-8") as f:
                        owner = int(f.read().strip() or -1)
                except (OSError, ValueError):
                    owner = -1
                if owner == pid:
                    return slot
                if owner > 0 and alive(owner):
                    break  # held: try the next slot
                try:
                    os.unlink(path)  # its owner died: take it over
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(str(pid))
            return slot
    return pid % max(1, jobs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ seeds_per_program = "auto"


def footprint_bytes(sizes: Sequence[int], bn_widths: Sequence[int], optimizer: str, batch: int) -> int:
    """Bytes one seed adds to a stacked program (float32): the model's footprint.

    Weights, their gradients and the optimizer's slots (momentum 1, Adam 2), BN's moving
    statistics, and the step's activations (``ACTIVATION_COPIES`` per layer of ``batch`` rows).
    """
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:])) + 2 * sum(bn_widths)
    slots = {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]
    floats = params * (2 + slots) + 2 * sum(bn_widths) + ACTIVATION_COPIES * batch * sum(sizes)
    return 4 * floats


@dataclass(frozen=True)
class SeedsChoice:
    """``seeds_per_program = "auto"`` resolved for one cell on one device, with its reasons."""

    seeds: int  # seeds per program used (the cell's seeds split evenly)
    limit: int  # most seeds one program may hold on this device
    memory_limit: int  # of which the memory allows this many
    footprint_bytes: int  # per seed
    device: str  # kind and name

    def record(self) -> dict[str, Any]:
        return asdict(self)


def auto_seeds(device: Device, footprint: int, fixed_bytes: int, n_seeds: int) -> SeedsChoice:
    """Seeds per program for a cell of ``n_seeds`` seeds on ``device``.

    The limit is the smaller of what fits in ``MEMORY_FRACTION`` of the device's memory
    (after ``fixed_bytes``: the data set and the validation pass; not applied when the
    memory could not be read, 0) and the compute rule (``CPU_SEEDS_PER_CORE`` per core;
    ``GPU_MAX_SEEDS``). The cell's seeds are then split
    as evenly as the limit allows (10 seeds with a limit of 8 train as 5 + 5, not 8 + 2:
    one compiled shape, both programs equally full; 5 with a limit of 4 as 3 + 2).
    """
    rule = GPU_MAX_SEEDS if device.kind == "gpu" else CPU_SEEDS_PER_CORE * max(1, device.cores)
    room = device.memory_bytes * MEMORY_FRACTION - fixed_bytes
    memory_limit = max(1, int(room // max(1, footprint))) if device.memory_bytes > 0 else rule
    limit = max(1, min(memory_limit, rule))
    n = max(1, n_seeds)
    seeds = math.ceil(n / math.ceil(n / limit))
    return SeedsChoice(seeds, limit, memory_limit, footprint, f"{device.kind}: {device.name}")


# ------------------------------------------------------------------ this process's device

_ACTIVE: Device | None = None


def active_device() -> Device:
    """The device this process trains on: the GPU chosen by ``use_device``, else the CPU."""
    return _ACTIVE or cpu_device()


def use_device(slot: int = 0, probe: Callable[[], list[Device]] | None = None,
               activate: Callable[[Device], Device] | None = None) -> Device:
    """Pick this worker's device (its slot's GPU, else the CPU) before TensorFlow starts.

    On a GPU machine the worker sees only its GPU (``tf.config.set_visible_devices``), so
    TensorFlow's allocator claims one device per process and ops land there by default.
    """
    global _ACTIVE
    gpu = assign_gpu((probe or _list_gpus)(), slot)
    if gpu is not None:
        _ACTIVE = (activate or _activate_gpu)(gpu)
    return active_device()


def _list_gpus() -> list[Device]:
    """The GPUs TensorFlow sees (none with the CPU-only wheel or without CUDA); memory unread."""
    import tensorflow as tf

    with filtered_stderr():  # the first device query: the CUDA build's cuInit notice
        physical_gpus = tf.config.list_physical_devices("GPU")
    devices = []
    for i, physical in enumerate(physical_gpus):
        details = tf.config.experimental.get_device_details(physical)
        devices.append(Device("gpu", details.get("device_name", physical.name), 0, 0, i))
    return devices


def _activate_gpu(device: Device) -> Device:
    """Make ``device`` the only GPU TensorFlow uses; fill in how much memory it may allocate.

    TensorFlow has no public call for a GPU's total memory; ``device_lib`` reports the
    allocator's ``memory_limit`` once the device is initialized (which training does anyway).
    """
    import tensorflow as tf
    from tensorflow.python.client import device_lib

    try:
        tf.config.set_visible_devices([tf.config.list_physical_devices("GPU")[device.index]], "GPU")
    except RuntimeError:  # TensorFlow already initialized: the visible set is fixed
        pass
    try:
        limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    except Exception:  # noqa: BLE001 - a private API: unknown memory (0) only drops the memory bound
        limits = []
    return Device(device.kind, device.name, int(limits[0]) if limits else 0, 0, device.index)
