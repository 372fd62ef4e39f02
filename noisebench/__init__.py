"""noisebench: benchmark label-noise-robust training of token classifiers.

The Python API (``noisebench.api``): the commands as functions with typed results,
each parameter named as the command's option (docs/api.md)::

    import noisebench as nb

    noisy = nb.corrupt("conll2003", rate=0.4)
    run = nb.train(data=str(noisy.out), loss="sgce", q=0.8, s=0.1)
    board = nb.leaderboard("runs")
"""

__version__ = "0.1.0"

from noisebench.api import (
    Cell,
    Leaderboard,
    Run,
    Scores,
    Sweep,
    corrupt,
    detect,
    leaderboard,
    sweep,
    train,
)
from noisebench.data.noise import CorruptResult, NoiseReport
from noisebench.detection.detect import Detected
from noisebench.errors import InputError

__all__ = [
    "Cell",
    "CorruptResult",
    "Detected",
    "InputError",
    "Leaderboard",
    "NoiseReport",
    "Run",
    "Scores",
    "Sweep",
    "__version__",
    "corrupt",
    "detect",
    "leaderboard",
    "sweep",
    "train",
]
