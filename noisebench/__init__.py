"""noisebench: benchmark label-noise-robust training of token classifiers.

The Python API (``noisebench.api``): the commands as functions with typed results,
each parameter named as the command's option (docs/api.md)::

    import noisebench as nb

    noisy = nb.corrupt("conll2003", rate=0.4)
    run = nb.train(data=str(noisy.out), loss="sgce", q=0.8, s=0.1)
    board = nb.leaderboard("runs")

The API is imported when first used, so ``import noisebench.training.losses`` (in your
own training code) loads the losses alone.
"""

import importlib

from noisebench._version import __version__

# name -> the module that defines it
_API = {
    "corrupt": "noisebench.api",
    "train": "noisebench.api",
    "detect": "noisebench.api",
    "sweep": "noisebench.api",
    "leaderboard": "noisebench.api",
    "review_sample": "noisebench.api",
    "review_merge": "noisebench.api",
    "Run": "noisebench.api",
    "Scores": "noisebench.api",
    "Sweep": "noisebench.api",
    "Leaderboard": "noisebench.api",
    "Cell": "noisebench.api",
    "CorruptResult": "noisebench.data.noise",
    "NoiseReport": "noisebench.data.noise",
    "Detected": "noisebench.detection.detect",
    "InputError": "noisebench.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'noisebench' has no attribute '{name}'")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
