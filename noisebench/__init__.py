"""noisebench: benchmark label-noise-robust training of token classifiers.

The Python API (``noisebench.api``), the commands as functions with typed results::

    import noisebench as nb

    noisy = nb.corrupt("conll2003", rate=0.4)
    run = nb.train(data=str(noisy.out), loss="sgce", q=0.8, s=0.1)
    board = nb.leaderboard("runs")
"""

__version__ = "0.1.0"

from noisebench.api import Run, Scores, corrupt, train
from noisebench.data.noise import CorruptResult, NoiseReport
from noisebench.errors import InputError

__all__ = [
    "CorruptResult",
    "InputError",
    "NoiseReport",
    "Run",
    "Scores",
    "__version__",
    "corrupt",
    "train",
]
