"""The ``noisebench`` command line: parse, call the library, render with rich.

    noisebench corrupt --rate 0.4
    noisebench review sample my-data --split validation -n 300 -o review
    noisebench train --loss sgce --q 0.8 --s 0.1 --rate 0.4
    noisebench score runs/*
    noisebench sweep --preset quick
    noisebench leaderboard runs --out lb --plots
    noisebench sources

Heavy libraries (torch, transformers, datasets) are imported inside the commands, so
``noisebench --help`` stays fast. Expected failures (``InputError``) print one line on
stderr and exit 2; nothing is left half-written.
"""

from noisebench.cli import (  # noqa: F401  (registers the commands)
    data,
    detection,
    review,
    sources,
    studies,
    training,
)
from noisebench.cli.common import app

__all__ = ["app"]
