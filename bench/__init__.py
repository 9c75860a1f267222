"""bnbench's running half: grid specs, datasets, models, training engines, runner, store, CLI.

Importing this package must stay cheap and TensorFlow-free; modules that need TensorFlow
import it themselves.
"""

__version__ = "0.1.0"
