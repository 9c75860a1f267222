"""Describe the machine a run trained on, so timings are only compared like with like."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from importlib import metadata
from typing import Any

_VERSIONED = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "bnbench")

#: Distributions that are one build for timing purposes. ``tensorflow`` and ``tensorflow-cpu``
#: of one version run the same CPU kernels (the former adds CUDA); bnbench depended on
#: ``tensorflow-cpu`` before the gpu extra, so that is the name fingerprints keep: stores and
#: baselines recorded before the switch stay comparable on the same machine.
_SAME_BUILD = {"tensorflow": "tensorflow-cpu"}


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """Cores this process may use (respects affinity masks and cgroup-limited cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def host_info() -> dict[str, Any]:
    """The run's host record; ``device`` is what trained it (see bench.device)."""
    from bench.device import active_device  # bench.device builds on this module

    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores": cores(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "device": active_device().record(),
    }


def device_kind(host: dict[str, Any]) -> str:
    """``"gpu"`` or ``"cpu"``; records written before devices were recorded trained on the CPU."""
    device = host.get("device")
    return str(device.get("kind", "cpu")) if isinstance(device, dict) else "cpu"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_fingerprint(host: dict[str, Any], versions: dict[str, str]) -> str:
    """Hash of what makes timings comparable: CPU model, cores, TensorFlow/Keras/NumPy versions,
    and the GPU when one trained the run.

    The hostname is deliberately left out: two identical CI runners are comparable. A CPU
    run's key has no device entry, so CPU fingerprints are those of stores written before
    devices were recorded; a GPU run's key names the GPU, so it never matches a CPU run.
    """
    key: dict[str, Any] = {
        "cpu": host.get("cpu"),
        "cores": host.get("cores"),
        "machine": host.get("machine"),
        "versions": {_SAME_BUILD.get(k, k): v for k, v in versions.items() if k != "bnbench"},
    }
    if device_kind(host) != "cpu":
        key["device"] = {k: host["device"].get(k) for k in ("kind", "name")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
