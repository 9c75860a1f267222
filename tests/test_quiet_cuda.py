"""The CUDA build of TensorFlow stays quiet on a machine without a GPU (bench.quiet_cuda)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import quiet_cuda

ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
CUDART = ("I0000 00:00:1795779864.171326   11370 cudart_stub.cc:31] Could not find cuda drivers on "
          "your machine, GPU will not be used.\n")
CUINIT = ("E0000 00:00:1795779873.575908   11370 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
          "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
ONEDNN = ("I0000 00:00:1795870544.277710   26354 port.cc:153] oneDNN custom operations are on. You may "
          "see slightly different numerical results due to floating-point round-off errors from different "
          "computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n")
REAL = "E0000 00:00:1.0 1 some_kernel.cc:1] a real error\n"


def test_notices_are_recognized_and_real_lines_are_not():
    assert quiet_cuda.is_startup_notice(ABSL, driver_present=True)
    assert quiet_cuda.is_startup_notice(CUDART, driver_present=True)
    assert quiet_cuda.is_startup_notice(ONEDNN, driver_present=True)
    assert quiet_cuda.is_startup_notice(CUINIT, driver_present=False)
    assert not quiet_cuda.is_startup_notice(CUINIT, driver_present=True)  # a real failure there
    assert not quiet_cuda.is_startup_notice(REAL, driver_present=False)


def test_filtered_stderr_drops_notices_and_keeps_the_rest_in_order(capfd, monkeypatch):
    monkeypatch.setattr(quiet_cuda, "nvidia_driver_present", lambda: False)
    with quiet_cuda.filtered_stderr():
        for line in (ABSL, ONEDNN, CUDART, REAL, CUINIT):
            os.write(2, line.encode())  # C++ writes to the descriptor, not to sys.stderr
    assert capfd.readouterr().err == REAL


def test_importing_tensorflow_through_bench_prints_nothing():
    """Whatever TensorFlow wheel is installed (CPU or CUDA build), no start-up line reaches stderr."""
    code = ("import bench, tensorflow as tf; from bench.device import use_device; use_device(0); "
            "tf.constant(1.0) + 1")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
