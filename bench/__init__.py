"""bnbench's running half: grid specs, datasets, models, training engines, runner, store, CLI.

Importing this package must stay cheap and TensorFlow-free; modules that need TensorFlow
import it themselves.
"""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up notices (CPU features, oneDNN, the XLA service, absl's "log
# messages before InitializeLog") go to stderr once per process, so a pool of workers floods
# the terminal. Set before anything imports TensorFlow, here, so the driver, loky workers
# and Dask workers (which import bench to unpickle tasks) inherit it; errors still print.
# TF_CPP_MIN_LOG_LEVEL=0 in the environment brings the notices back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The CUDA build of TensorFlow writes start-up lines that no log level hides on a machine
# without a GPU; the first `import tensorflow` of the process filters them (bench.quiet_cuda).
from bench import quiet_cuda as _quiet_cuda  # noqa: E402

_quiet_cuda.install()
