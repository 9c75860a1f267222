"""Keep the CUDA build of TensorFlow quiet on a machine without an NVIDIA driver.

bnbench depends on the ``tensorflow`` wheel (a CUDA build) so that one distribution owns the
``tensorflow`` module on CPU and GPU machines alike (``pip install 'bnbench[gpu]'`` adds the
CUDA libraries). On a machine without a GPU that build writes start-up lines straight to file
descriptor 2 from C++, before absl logging starts, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide
them: absl's "log messages before InitializeLog" notice, ``cudart_stub.cc ... Could not find
cuda drivers`` (twice per import) and, at the first device query, ``failed call to cuInit``;
on CPUs where TensorFlow turns oneDNN on by default, also its "oneDNN custom operations are
on" notice (any build).
They would break every one-line error and every progress bar, in every worker.

The first ``import tensorflow`` after ``import bench`` and bnbench's device query run with
descriptor 2 sent to a temporary file; afterwards every line except those notices is written
back to stderr in order, so real errors and warnings still show. With an NVIDIA driver present
(``/proc/driver/nvidia``) the ``cuInit`` line is a real error and is kept.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

#: Lines of the CUDA build that carry no information on a driver-less machine.
_STARTUP_NOTICES = (
    re.compile(r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"cudart_stub\.cc.*Could not find cuda drivers on your machine"),
    # On CPUs with AVX-512 VNNI/BF16 (Zen 4, Cascade Lake and later) every import announces
    # TensorFlow's oneDNN kernels, whatever TF_CPP_MIN_LOG_LEVEL says.
    re.compile(r"oneDNN custom operations are on"),
)
_CUINIT_FAILURE = re.compile(r"failed call to cuInit")


def nvidia_driver_present() -> bool:
    """Whether this Linux machine has the NVIDIA kernel driver loaded."""
    return os.path.exists("/proc/driver/nvidia")


def is_startup_notice(line: str, driver_present: bool) -> bool:
    """Whether ``line`` is one of the notices this module hides."""
    if any(p.search(line) for p in _STARTUP_NOTICES):
        return True
    return not driver_present and bool(_CUINIT_FAILURE.search(line))


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with fd 2 captured; write its lines back without the start-up notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            driver = nvidia_driver_present()
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_startup_notice(line, driver)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietTensorFlowLoader(importlib.abc.Loader):
    """Wraps TensorFlow's own loader: the module executes inside ``filtered_stderr``."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):  # noqa: ANN001, ANN201 - importlib protocol
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001 - importlib protocol
        module.__loader__ = module.__spec__.loader = self._loader  # the real one, for importlib.resources
        with filtered_stderr():
            self._loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as usual and hands back a spec whose loader filters stderr."""

    done = False

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201 - importlib protocol
        if fullname != "tensorflow" or self.done:
            return None
        self.done = True  # once: later lookups (a reload) go to the real finders
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietTensorFlowLoader(spec.loader)
        return spec


def install() -> None:
    """Filter the first ``import tensorflow`` of this process (no-op once TensorFlow is in)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
