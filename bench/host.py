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
    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores": cores(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_fingerprint(host: dict[str, Any], versions: dict[str, str]) -> str:
    """Hash of what makes timings comparable: CPU model, cores, TensorFlow/Keras/NumPy versions.

    The hostname is deliberately left out: two identical CI runners are comparable.
    """
    key = {
        "cpu": host.get("cpu"),
        "cores": host.get("cores"),
        "machine": host.get("machine"),
        "versions": {k: v for k, v in versions.items() if k != "bnbench"},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
